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
// The same, an fp32 model older than opset `upgrade_opset` first converted to
// it where ONNX's version converter can (onnx/onnx_import.h ImportOptions);
// *note says what happened (empty when nothing was to be converted).
Result<Graph> LoadModel(const std::string& path, int upgrade_opset, std::string* note);

}  // namespace lowbit

#endif  // LOWBIT_API_LOAD_MODEL_H_
