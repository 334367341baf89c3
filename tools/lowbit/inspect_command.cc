// `lowbit inspect`: what a model holds, layer by layer: op, format, bits,
// granularity, parameters, bytes, MACs, bit-operations (MACs x weight bits x
// activation bits) and, for files quantized with calibration data, the SQNR
// of each layer's output; totals and the compression versus fp32.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "model_util.h"
#include "runtime/packed_node.h"
#include "runtime/plan.h"

namespace lowbit {
namespace {

struct InspectArgs {
  std::string model;
  bool json = false;
};

struct Row {
  std::string name, op, format = "fp32", granularity = "-";
  double wbits = 32;  // the mean over filters for filter-wise formats
  int abits = 32;
  int64_t params = 0, bytes = 0, macs = 0, bias_bytes = 0;
  double sqnr = std::nan("");
};

Status RunInspect(const InspectArgs& a) {
  Graph g;
  LOWBIT_ASSIGN_OR_RETURN(g, LoadModel(a.model));
  PlanOptions po;
  std::vector<int> layer_nodes;
  for (int i = 0; i < static_cast<int>(g.nodes.size()); ++i) {
    const Node& n = g.nodes[i];
    const bool fp32_layer = n.domain.empty() && (n.op_type == "Conv" || n.op_type == "Gemm" ||
                                                 n.op_type == "MatMul") &&
                            g.IsConstant(n.input(1));
    if (!fp32_layer && !IsPackedNode(n)) continue;
    layer_nodes.push_back(i);
    po.keep.push_back(n.outputs[0]);
  }
  std::unique_ptr<Plan> plan;
  LOWBIT_ASSIGN_OR_RETURN(plan, Plan::Create(g, po));
  std::vector<Row> rows;
  for (int i : layer_nodes) {
    const Node& n = g.nodes[i];
    Row r;
    r.name = n.name;
    r.op = n.op_type;
    const Tensor* y = plan->value(n.outputs[0]);
    const bool conv = n.op_type == "Conv" || n.op_type == kPackedConv;
    const int64_t out_ch = y->rank() == 0 ? 1 : y->shape()[conv ? 1 : y->rank() - 1];
    if (IsPackedNode(n)) {
      PackedParts w;
      LOWBIT_ASSIGN_OR_RETURN(
          w, PackedPartsOf(n, g.constants.at(n.input(1)), g.constants.at(n.input(2))));
      r.format = w.format();
      r.granularity = GranularityName(w.parts[0].params().granularity);
      r.wbits = w.mean_bits();
      r.abits = n.GetString("act", "uint8") == "float" ? 32 : 8;
      r.params = w.numel();
      r.bytes = w.bytes();
      if (n.Has("sqnr_db")) r.sqnr = n.GetFloat("sqnr_db", 0);
    } else {
      const Tensor& w = g.constants.at(n.input(1));
      r.params = w.numel();
      r.bytes = static_cast<int64_t>(w.bytes());
    }
    const std::string& bias = IsPackedNode(n) ? n.input(3) : n.input(2);
    if (!bias.empty() && g.IsConstant(bias)) r.bias_bytes = g.constants.at(bias).bytes();
    r.bytes += r.bias_bytes;
    r.macs = y->numel() * (r.params / std::max<int64_t>(out_ch, 1));
    rows.push_back(r);
  }
  int64_t params = 0, bytes = 0, macs = 0;
  double bitops = 0;
  for (const Row& r : rows) {
    params += r.params;
    bytes += r.bytes;
    macs += r.macs;
    bitops += static_cast<double>(r.macs) * r.wbits * r.abits;
  }
  int64_t fp32_bytes = 0;  // the same layers with fp32 weights
  for (const Row& r : rows) fp32_bytes += r.params * 4 + r.bias_bytes;
  const int64_t file_bytes = static_cast<int64_t>(std::filesystem::file_size(a.model));
  const double ratio = bytes > 0 ? static_cast<double>(fp32_bytes) / static_cast<double>(bytes) : 0;
  if (a.json) {
    nlohmann::ordered_json j;
    j["model"] = a.model;
    j["file_bytes"] = file_bytes;
    nlohmann::ordered_json layers = nlohmann::ordered_json::array();
    for (const Row& r : rows) {
      layers.push_back(
          {{"name", r.name},
           {"op", r.op},
           {"format", r.format},
           {"bits", r.wbits == std::floor(r.wbits)
                        ? nlohmann::ordered_json(static_cast<int>(r.wbits))
                        : nlohmann::ordered_json(r.wbits)},
           {"act_bits", r.abits},
           {"granularity", r.granularity},
           {"params", r.params},
           {"bytes", r.bytes},
           {"macs", r.macs},
           {"bit_ops", static_cast<double>(r.macs) * r.wbits * r.abits},
           {"sqnr_db", std::isfinite(r.sqnr) ? nlohmann::ordered_json(r.sqnr) : nullptr}});
    }
    j["layers"] = layers;
    j["total"] = {{"params", params}, {"bytes", bytes}, {"fp32_bytes", fp32_bytes},
                  {"compression", ratio}, {"macs", macs}, {"bit_ops", bitops}};
    std::printf("%s\n", j.dump(2).c_str());
    return OkStatus();
  }
  std::printf("%-36s %-10s %-19s %5s %-8s %9s %9s %11s %13s %7s\n", "layer", "op", "format", "bits",
              "gran", "params", "bytes", "MACs", "bit-ops", "SQNR");
  for (const Row& r : rows) {
    char sq[16] = "-";
    if (std::isfinite(r.sqnr)) std::snprintf(sq, sizeof sq, "%.1f", r.sqnr);
    std::printf("%-36s %-10s %-19s %5.3g %-8s %9lld %9lld %11lld %13.4g %7s\n", r.name.c_str(),
                r.op.c_str(), r.format.c_str(), r.wbits, r.granularity.c_str(),
                static_cast<long long>(r.params), static_cast<long long>(r.bytes),
                static_cast<long long>(r.macs), static_cast<double>(r.macs) * r.wbits * r.abits,
                sq);
  }
  std::printf("total: %lld parameters in %lld bytes (fp32: %lld, %.2fx smaller); %lld MACs, %.4g "
              "bit-ops per sample; file %lld bytes\n",
              static_cast<long long>(params), static_cast<long long>(bytes),
              static_cast<long long>(fp32_bytes), ratio, static_cast<long long>(macs), bitops,
              static_cast<long long>(file_bytes));
  return OkStatus();
}

}  // namespace

Command AddInspectCommand(CLI::App& app) {
  auto args = std::make_shared<InspectArgs>();
  CLI::App* cmd = app.add_subcommand("inspect", "Per-layer formats, sizes and costs of a model");
  cmd->add_option("model", args->model, "Model (.onnx, fp32 or quantized)")->required();
  cmd->add_flag("--json", args->json, "Print one JSON object");
  return {cmd, [args] { return RunInspect(*args); }};
}

}  // namespace lowbit
