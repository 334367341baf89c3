// ONNX Runtime (CPU execution provider) latency for one model, measured the way
// `lowbit bench` measures: random input, warm-up, repeated runs, median.
// usage: node ort_bench.js MODEL BATCH THREADS SECONDS
'use strict';
const ort = require('onnxruntime-node');

async function main() {
  const [model, batchArg, threadsArg, secondsArg] = process.argv.slice(2);
  const batch = Number(batchArg), threads = Number(threadsArg), seconds = Number(secondsArg || 2);
  const session = await ort.InferenceSession.create(model, {
    executionProviders: ['cpu'],
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
  });
  const name = session.inputNames[0];
  // The input shape from the model, with the batch bound.
  const meta = session.inputMetadata ? session.inputMetadata[0] : null;
  let dims = meta && meta.shape ? meta.shape.map((d) => (typeof d === 'number' ? d : batch)) : null;
  if (!dims) throw new Error('cannot read the input shape of ' + model);
  dims[0] = batch;
  const size = dims.reduce((a, b) => a * b, 1);
  const data = new Float32Array(size);
  let s = 1;
  for (let i = 0; i < size; ++i) { s = (s * 1103515245 + 12345) % 2147483648; data[i] = s / 2147483648 - 0.5; }
  const feeds = { [name]: new ort.Tensor('float32', data, dims) };
  for (let i = 0; i < 5; ++i) await session.run(feeds);
  const ms = [];
  const start = process.hrtime.bigint();
  for (;;) {
    const t0 = process.hrtime.bigint();
    await session.run(feeds);
    const t1 = process.hrtime.bigint();
    ms.push(Number(t1 - t0) / 1e6);
    if (Number(t1 - start) / 1e9 >= seconds && ms.length >= 5) break;
  }
  ms.sort((a, b) => a - b);
  const median = ms[Math.floor(ms.length / 2)];
  console.log(JSON.stringify({
    model, batch, threads, runs: ms.length, median_ms: median,
    p90_ms: ms[Math.min(ms.length - 1, Math.floor(ms.length * 0.9))], min_ms: ms[0],
    images_per_second: (1000 * batch) / median,
    // VmHWM: this process image's peak (maxRSS would include the parent's).
    peak_rss_mib: Number(/VmHWM:\s+(\d+)/.exec(require('fs').readFileSync('/proc/self/status', 'utf8'))[1]) / 1024,
  }));
}

main().catch((e) => { console.error('ort_bench: ' + e.message); process.exit(1); });
