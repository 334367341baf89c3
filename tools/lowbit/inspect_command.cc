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
#include "quant/cost.h"

namespace lowbit {
namespace {

struct InspectArgs {
  std::string model;
  bool json = false;
};

Status RunInspect(const InspectArgs& a) {
  Graph g;
  LOWBIT_ASSIGN_OR_RETURN(g, LoadModel(a.model));
  std::vector<LayerCost> rows;
  LOWBIT_ASSIGN_OR_RETURN(rows, LayerCosts(g));
  int64_t params = 0, bytes = 0, macs = 0;
  double bitops = 0;
  for (const LayerCost& r : rows) {
    params += r.params;
    bytes += r.bytes();
    macs += r.macs;
    bitops += r.bitops();
  }
  int64_t fp32_bytes = 0;  // the same layers with fp32 weights
  for (const LayerCost& r : rows) fp32_bytes += r.params * 4 + r.bias_bytes;
  const int64_t file_bytes = static_cast<int64_t>(std::filesystem::file_size(a.model));
  const double ratio = bytes > 0 ? static_cast<double>(fp32_bytes) / static_cast<double>(bytes) : 0;
  if (a.json) {
    nlohmann::ordered_json j;
    j["model"] = a.model;
    j["file_bytes"] = file_bytes;
    nlohmann::ordered_json layers = nlohmann::ordered_json::array();
    for (const LayerCost& r : rows) {
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
           {"bytes", r.bytes()},
           {"macs", r.macs},
           {"bit_ops", r.bitops()},
           {"sqnr_db", std::isfinite(r.sqnr_db) ? nlohmann::ordered_json(r.sqnr_db) : nullptr}});
    }
    j["layers"] = layers;
    j["total"] = {{"params", params}, {"bytes", bytes}, {"fp32_bytes", fp32_bytes},
                  {"compression", ratio}, {"macs", macs}, {"bit_ops", bitops}};
    std::printf("%s\n", j.dump(2).c_str());
    return OkStatus();
  }
  std::printf("%-36s %-10s %-19s %5s %-8s %9s %9s %11s %13s %7s\n", "layer", "op", "format", "bits",
              "gran", "params", "bytes", "MACs", "bit-ops", "SQNR");
  for (const LayerCost& r : rows) {
    char sq[16] = "-";
    if (std::isfinite(r.sqnr_db)) std::snprintf(sq, sizeof sq, "%.1f", r.sqnr_db);
    std::printf("%-36s %-10s %-19s %5.3g %-8s %9lld %9lld %11lld %13.4g %7s\n", r.name.c_str(),
                r.op.c_str(), r.format.c_str(), r.wbits, r.granularity.c_str(),
                static_cast<long long>(r.params), static_cast<long long>(r.bytes()),
                static_cast<long long>(r.macs), r.bitops(),
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
