// Loading a model for the commands: ONNX import, then the graph passes.
#ifndef LOWBIT_TOOLS_MODEL_UTIL_H_
#define LOWBIT_TOOLS_MODEL_UTIL_H_

#include <cstdlib>
#include <string>

#include "eval/evaluate.h"
#include "ir/graph.h"
#include "ir/passes.h"
#include "onnx/onnx_import.h"
#include "runtime/op.h"
#include "runtime/plan.h"

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

// The plan options the environment sets for the commands: the kernel
// choices (LOWBIT_KERNEL, LOWBIT_LUT, LOWBIT_WINOGRAD) and LOWBIT_BYTE_EDGES=0.
// The library reads no environment variable; the command line is the edge.
inline Result<PlanOptions> PlanOptionsFromEnvironment() {
  PlanOptions po;
  LOWBIT_RETURN_IF_ERROR(ApplyKernelEnvironment(&po.kernels));
  const char* edges = std::getenv("LOWBIT_BYTE_EDGES");
  po.byte_edges = !(edges != nullptr && std::string(edges) == "0");
  return po;
}

}  // namespace lowbit

#endif  // LOWBIT_TOOLS_MODEL_UTIL_H_
