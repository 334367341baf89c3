// ONNX in: model files and TensorProto files into the IR. The only code that
// includes ONNX's protobuf headers; protobuf and checker errors stop here.
#ifndef LOWBIT_ONNX_ONNX_IMPORT_H_
#define LOWBIT_ONNX_ONNX_IMPORT_H_

#include <functional>
#include <string>

#include "ir/graph.h"
#include "lowbit/status.h"

namespace lowbit {

struct ImportOptions {
  // When set, every node is checked first and a model with unsupported
  // operators is refused with one message listing each (domain, op type, node
  // name, opset), before any other error can mask it. The message contains
  // "unsupported operator".
  std::function<bool(const std::string& domain, const std::string& op_type, int opset)>
      is_supported;
  // When above the model's opset and every node is in the default domain
  // (an fp32 model, no packed nodes): the model is first converted to this
  // opset with ONNX's version converter (as ONNX Runtime's quantizer does
  // for old models), so what is built from it (a QDQ export) can use the
  // newer operators. If the conversion fails, or the converted model does
  // not import, the model is imported as it is. Either way *upgrade_note
  // (when set) gets one line saying what happened; it stays empty when
  // nothing was to be converted.
  int upgrade_opset = 0;
  std::string* upgrade_note = nullptr;
};

// Parses and checks an ONNX model (opsets 1-17). Constant nodes become graph
// constants; initializers listed as inputs are not runtime inputs. Errors name
// the file and what is wrong (truncated file, external data, unsupported
// element type of a value).
Result<Graph> ImportOnnx(const std::string& path, const ImportOptions& options = {});
Result<Graph> ImportOnnxBytes(const std::string& bytes, const std::string& name,
                              const ImportOptions& options = {});

// Reads a serialized TensorProto (ONNX test data's input_0.pb, ...).
Result<Tensor> ReadTensorProtoFile(const std::string& path, std::string* name = nullptr);

}  // namespace lowbit

#endif  // LOWBIT_ONNX_ONNX_IMPORT_H_
