#include "api/load_model.h"

#include "ir/passes.h"
#include "onnx/onnx_import.h"
#include "runtime/op.h"

namespace lowbit {

Result<Graph> LoadModel(const std::string& path) { return LoadModel(path, 0, nullptr); }

Result<Graph> LoadModel(const std::string& path, int upgrade_opset, std::string* note) {
  ImportOptions options;
  options.upgrade_opset = upgrade_opset;
  options.upgrade_note = note;
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
