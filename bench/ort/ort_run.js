// Runs a model in ONNX Runtime (CPU) on one .npy float32 input and writes the
// first output as .npy: the peer check for `lowbit export --to onnx-qdq`.
// usage: node ort_run.js MODEL INPUT.npy OUTPUT.npy
'use strict';
const fs = require('fs');
const ort = require('onnxruntime-node');

function readNpy(path) {
  const buf = fs.readFileSync(path);
  const headerLen = buf.readUInt16LE(8);
  const header = buf.toString('latin1', 10, 10 + headerLen);
  if (!/'descr': '<f4'/.test(header) || /'fortran_order': True/.test(header)) {
    throw new Error(path + ': expected a C-ordered float32 .npy');
  }
  const shape = header.match(/'shape': \(([^)]*)\)/)[1].split(',').filter((s) => s.trim()).map(Number);
  const start = 10 + headerLen;
  const data = new Float32Array(buf.buffer.slice(buf.byteOffset + start, buf.byteOffset + buf.length));
  return { shape, data };
}

function writeNpy(path, shape, data) {
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
  const pad = 64 - ((10 + header.length + 1) % 64);
  header += ' '.repeat(pad % 64) + '\n';
  const head = Buffer.alloc(10);
  head.write('\x93NUMPY', 0, 'latin1');
  head[6] = 1; head[7] = 0;
  head.writeUInt16LE(header.length, 8);
  fs.writeFileSync(path, Buffer.concat([head, Buffer.from(header, 'latin1'), Buffer.from(data.buffer, data.byteOffset, data.byteLength)]));
}

async function main() {
  const [model, input, output] = process.argv.slice(2);
  const session = await ort.InferenceSession.create(model, { executionProviders: ['cpu'], graphOptimizationLevel: 'all' });
  const x = readNpy(input);
  const result = await session.run({ [session.inputNames[0]]: new ort.Tensor('float32', x.data, x.shape) });
  const y = result[session.outputNames[0]];
  writeNpy(output, y.dims, y.data);
}

main().catch((e) => { console.error('ort_run: ' + e.message); process.exit(1); });
