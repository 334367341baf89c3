// ONNX out: the IR back to a standard ONNX model (IR version 8, the graph's
// opset, plus "com.lowbit" when packed nodes are present). Activations fused
// into standard nodes are written as separate Relu/Clip nodes again. The
// result passes the ONNX checker before it is returned or written.
#ifndef LOWBIT_ONNX_ONNX_EXPORT_H_
#define LOWBIT_ONNX_ONNX_EXPORT_H_

#include <string>

#include "ir/graph.h"
#include "lowbit/status.h"

namespace lowbit {

struct ExportOptions {
  std::string graph_name = "lowbit";
  std::string producer_version = "0.1.0";
};

Result<std::string> ExportOnnxBytes(const Graph& graph, const ExportOptions& options = {});
// Writes through a temporary file and a rename (never a half-written model).
Status ExportOnnx(const Graph& graph, const std::string& path, const ExportOptions& options = {});

}  // namespace lowbit

#endif  // LOWBIT_ONNX_ONNX_EXPORT_H_
