// `lowbit export`: a quantized model as standard ONNX (QDQ) for other runtimes.
#include <cstdio>
#include <memory>

#include "commands.h"
#include "model_util.h"
#include "onnx/onnx_export.h"
#include "quant/qdq_export.h"
#include "model/packed_node.h"

namespace lowbit {
namespace {

struct ExportArgs {
  std::string model, out, to = "onnx-qdq";
  bool quiet = false;
};

Status RunExport(const ExportArgs& a) {
  if (a.to != "onnx-qdq") return InvalidArgument("--to '", a.to, "': supported: onnx-qdq");
  Graph g;
  LOWBIT_ASSIGN_OR_RETURN(g, LoadModel(a.model));
  bool packed = false;
  for (const Node& n : g.nodes) packed = packed || IsPackedNode(n);
  if (!packed) return InvalidArgument(a.model, ": has no quantized layers to export (run lowbit quantize first)");
  QdqReport report;
  Graph q;
  LOWBIT_ASSIGN_OR_RETURN(q, ToQdqGraph(g, &report));
  LOWBIT_RETURN_IF_ERROR(ExportOnnx(q, a.out));
  auto warn = [&](const std::vector<std::string>& names, const char* what) {
    if (names.empty()) return;
    std::string list;
    for (size_t i = 0; i < names.size() && i < 8; ++i) list += (i ? ", " : "") + names[i];
    if (names.size() > 8) list += ", ... (" + std::to_string(names.size()) + " in all)";
    std::fprintf(stderr, "lowbit export: warning: %s: %s\n", what, list.c_str());
  };
  warn(report.float_layers, "weights off the int8 grid, exported as fp32 (other runtimes run these layers in fp32)");
  warn(report.unquantized_values, "no calibrated range for these values (quantize the model again to record one); "
       "the layers writing them run in fp32 in other runtimes");
  if (!a.quiet) {
    std::printf("%s -> %s: %d layer(s) as int8 QDQ, %d with decoded fp32 weights\n", a.model.c_str(),
                a.out.c_str(), report.qdq_weights, report.float_weights);
  }
  return OkStatus();
}

}  // namespace

Command AddExportCommand(CLI::App& app) {
  auto args = std::make_shared<ExportArgs>();
  CLI::App* cmd = app.add_subcommand("export", "Write a quantized model as standard ONNX");
  cmd->add_option("model", args->model, "Quantized model (.onnx from lowbit quantize)")->required();
  cmd->add_option("--to", args->to, "Target: onnx-qdq")->capture_default_str();
  cmd->add_option("-o,--output", args->out, "Output model (.onnx)")->required();
  cmd->add_flag("--quiet", args->quiet, "Print nothing on success");
  return {cmd, [args] { return RunExport(*args); }};
}

}  // namespace lowbit
