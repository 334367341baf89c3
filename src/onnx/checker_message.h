// The ONNX checker's verdict on a model as one line ("" when it passes).
#ifndef LOWBIT_ONNX_CHECKER_MESSAGE_H_
#define LOWBIT_ONNX_CHECKER_MESSAGE_H_

#include <onnx/checker.h>
#include <onnx/onnx_pb.h>

#include <string>

namespace lowbit {

inline std::string CheckerMessage(const onnx::ModelProto& model) {
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
