// The ONNX checker's verdict on a model as one line ("" when it passes, or
// when the model is newer than the checker).
#ifndef LOWBIT_ONNX_CHECKER_MESSAGE_H_
#define LOWBIT_ONNX_CHECKER_MESSAGE_H_

#include <onnx/checker.h>
#include <onnx/defs/schema.h>
#include <onnx/onnx_pb.h>

#include <string>

namespace lowbit {

// Whether this build's ONNX checker knows the model's IR version and
// default-domain opset (Debian's onnx 1.12: IR 8, opset 17). Newer models
// skip it: lowbit's importer and each operator validate what they read.
inline bool CheckerKnows(const onnx::ModelProto& model) {
  if (model.ir_version() > onnx::IR_VERSION) return false;
  const auto& ranges = onnx::OpSchemaRegistry::DomainToVersionRange::Instance().Map();
  auto known = ranges.find(onnx::ONNX_DOMAIN);
  for (const auto& o : model.opset_import()) {
    if ((o.domain().empty() || o.domain() == "ai.onnx") && known != ranges.end() &&
        o.version() > known->second.second) {
      return false;
    }
  }
  return true;
}

inline std::string CheckerMessage(const onnx::ModelProto& model) {
  if (!CheckerKnows(model)) return "";
  try {
    onnx::checker::check_model(model);
  } catch (const std::exception& e) {
    std::string msg = e.what();
    for (char& c : msg) {
      if (c == '\n') c = ' ';
    }
    return msg.empty() ? "unknown checker error" : msg;
  }
  return "";
}

}  // namespace lowbit

#endif  // LOWBIT_ONNX_CHECKER_MESSAGE_H_
