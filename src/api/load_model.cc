#include "api/load_model.h"

#include "ir/passes.h"
#include "onnx/onnx_import.h"
#include "runtime/op.h"

namespace lowbit {

Result<Graph> LoadModel(const std::string& path) {
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

}  // namespace lowbit
