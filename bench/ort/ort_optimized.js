// Saves ONNX Runtime's optimized graph of a model (graph optimization level
// 'all', CPU), to see which kernels ORT really runs: e.g. how many
// convolutions of a QDQ model became QLinearConv.
//   node bench/ort/ort_optimized.js MODEL.onnx OUT.onnx
const ort = require('onnxruntime-node');
(async () => {
  const [model, out] = process.argv.slice(2);
  await ort.InferenceSession.create(model, {
    executionProviders: ['cpu'], graphOptimizationLevel: 'all', optimizedModelFilePath: out,
  });
})().catch((e) => { console.error(String(e)); process.exit(1); });
