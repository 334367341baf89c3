// Loading a model for the commands: ONNX import, then the graph passes.
#ifndef LOWBIT_TOOLS_MODEL_UTIL_H_
#define LOWBIT_TOOLS_MODEL_UTIL_H_

#include <string>

#include "ir/graph.h"
#include "ir/passes.h"
#include "onnx/onnx_import.h"
#include "runtime/op.h"

namespace lowbit {

inline Result<Graph> LoadModel(const std::string& path) {
  ImportOptions options;
  options.is_supported = [](const std::string& domain, const std::string& op, int opset) {
    return FindOp(domain, op, opset) != nullptr;
  };
  Graph g;
  LOWBIT_ASSIGN_OR_RETURN(g, ImportOnnx(path, options));
  LOWBIT_RETURN_IF_ERROR(CheckSupported(g));
  LOWBIT_RETURN_IF_ERROR(OptimizeGraph(&g));
  return g;
}

// The batch a command runs `g` (from `path`) at: the model's own where its
// first input fixes the batch dimension, `requested` otherwise. A --batch the
// user gave (`given`) that such a model does not take is refused.
inline Result<int64_t> ModelBatch(const Graph& g, const std::string& path, int64_t requested,
                                  bool given) {
  if (g.inputs.empty() || g.inputs[0].shape.empty() || g.inputs[0].shape[0] <= 0) return requested;
  const int64_t fixed = g.inputs[0].shape[0];
  if (given && requested != fixed) {
    return InvalidArgument("--batch ", requested, ": ", path, " fixes the batch of input '",
                           g.inputs[0].name, "' at ", fixed);
  }
  return fixed;
}

}  // namespace lowbit

#endif  // LOWBIT_TOOLS_MODEL_UTIL_H_
