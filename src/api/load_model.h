// Loading a model as every entry point does (the commands, the C++ API, the
// Python module): ONNX import with the runtime's operator list, the support
// check, then the graph passes (ir/passes.h).
#ifndef LOWBIT_API_LOAD_MODEL_H_
#define LOWBIT_API_LOAD_MODEL_H_

#include <string>

#include "ir/graph.h"
#include "lowbit/status.h"

namespace lowbit {

// An optimized graph of the fp32 or packed model at `path`; errors name the
// file and the node.
Result<Graph> LoadModel(const std::string& path);

}  // namespace lowbit

#endif  // LOWBIT_API_LOAD_MODEL_H_
