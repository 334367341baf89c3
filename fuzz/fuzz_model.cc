// Fuzzes what `inspect`, `run` (up to computing) and `export` do with a model
// file: ONNX import, the support check, the graph passes, the packed-node
// validators, planning at batch 1, per-layer costs and the QDQ export
// (the graph and its serialized ONNX).
// Structure-aware (onnx_mutator.h). Any error must be a Status.
#include <cstddef>
#include <cstdint>
#include <string>

#include "api/load_model.h"
#include "ir/passes.h"
#include "onnx/onnx_export.h"
#include "onnx/onnx_import.h"
#ifndef LOWBIT_REPLAY_ONLY
#include "onnx_mutator.h"
#endif
#include "quant/cost.h"
#include "quant/qdq_export.h"
#include "runtime/op.h"
#include "runtime/plan.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // Keeps every input small and fast: plan-time folding computes what the
  // model asks (a ConvTranspose over two 4 MiB tensors took 10 s under ASan);
  // 1 MiB tensors through a dozen folded operators, twice (costs and plan),
  // stay well under 1 s.
  lowbit::SetMemoryCap(int64_t{1} << 20);
  return 0;
}

#ifndef LOWBIT_REPLAY_ONLY
extern "C" size_t LLVMFuzzerCustomMutator(uint8_t* data, size_t size, size_t max_size, unsigned int seed) {
  return MutateOnnx(data, size, max_size, seed);
}
#endif

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lowbit;
  ImportOptions options;
  options.is_supported = [](const std::string& domain, const std::string& op, int opset) {
    return FindOp(domain, op, opset) != nullptr;
  };
  Result<Graph> g = ImportOnnxBytes(std::string(reinterpret_cast<const char*>(data), size), "fuzz.onnx", options);
  if (!g.ok()) return 0;
  if (!CheckSupported(*g).ok() || !OptimizeGraph(&*g).ok()) return 0;
  (void)LayerCosts(*g);
  QdqReport report;
  Result<Graph> qdq = ToQdqGraph(*g, &report);
  if (qdq.ok()) (void)ExportOnnxBytes(*qdq);  // what `export` writes (the ONNX checker runs on it)
  PlanOptions po;
  po.batch = 1;
  (void)Plan::Create(*g, po);
  return 0;
}
