// Loading a model for the commands (api/load_model.h) and the plan options
// the environment sets.
#ifndef LOWBIT_TOOLS_MODEL_UTIL_H_
#define LOWBIT_TOOLS_MODEL_UTIL_H_

#include <cstdlib>
#include <string>

#include "api/load_model.h"
#include "eval/evaluate.h"
#include "ir/graph.h"
#include "ir/passes.h"
#include "onnx/onnx_import.h"
#include "runtime/op.h"
#include "runtime/plan.h"

namespace lowbit {

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
