// `lowbit quantize`: post-training quantization of an ONNX model into a packed
// model file (ONNX with "com.lowbit" nodes; docs/model-file.md).
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>

#include <nlohmann/json.hpp>

#include "base/npy.h"
#include "base/strings.h"
#include "commands.h"
#include "model_util.h"
#include "onnx/onnx_export.h"
#include "quant/quantize.h"

namespace lowbit {
namespace {

struct QuantizeArgs {
  std::string model, out, weights, granularity, acts, calib, act_calib = "mse";
  std::string weight_clip = "auto", codebook_init = "dp", rounding, plan, write_plan;
  std::vector<std::string> layers;
  int64_t calib_batch = 32;
  double prune = 0, scale = -1;
  std::string mean, std;
  uint64_t seed = 1;
  int threads = 1;
  bool no_bias_correction = false, json = false, quiet = false;
};

std::string Db(double v) {
  if (std::isnan(v)) return "-";
  if (std::isinf(v)) return "inf";
  char b[32];
  std::snprintf(b, sizeof b, "%.1f", v);
  return b;
}

Status RunQuantize(const QuantizeArgs& a) {
  QuantizeOptions o;
  LOWBIT_ASSIGN_OR_RETURN(o.plan, PlanFromOptions(a.plan, a.weights, a.granularity, a.acts, a.layers,
                                                  "options"));
  LOWBIT_RETURN_IF_ERROR(ParseCalibOptions(a.act_calib, a.weight_clip, &o));
  LOWBIT_ASSIGN_OR_RETURN(o.weight_fit.codebook_init, ParseCodebookInit(a.codebook_init));
  o.weight_fit.seed = a.seed;
  o.prune = a.prune;
  LOWBIT_RETURN_IF_ERROR(ParseRounding(a.rounding, &o, o.plan.rounding));
  o.bias_correction = !a.no_bias_correction;
  o.threads = a.threads;
  o.quiet = a.quiet || a.json;
  o.calib_batch = a.calib_batch;
  o.preprocess.scale = a.scale;
  LOWBIT_ASSIGN_OR_RETURN(o.preprocess.mean, ParseFloatList(a.mean, "--mean"));
  LOWBIT_ASSIGN_OR_RETURN(o.preprocess.std, ParseFloatList(a.std, "--std"));
  if (a.threads < 1) return InvalidArgument("--threads must be >= 1, got ", a.threads);

  // Models older than opset 13 are converted to it first where ONNX's
  // converter can, so that `lowbit export --to onnx-qdq` can write int8
  // per-channel weights (QuantizeLinear's axis) for them.
  Graph g;
  std::string upgrade;
  LOWBIT_ASSIGN_OR_RETURN(g, LoadModel(a.model, 13, &upgrade));
  if (!upgrade.empty() && !o.quiet) std::fprintf(stderr, "%s: %s\n", a.model.c_str(), upgrade.c_str());
  std::unique_ptr<Dataset> calib;
  if (!a.calib.empty()) {
    LOWBIT_ASSIGN_OR_RETURN(calib, Dataset::Open(a.calib));
    if (calib->size() == 0) return InvalidArgument("--calib '", a.calib, "' has no samples");
    o.calib = calib.get();
  }
  QuantizeResult r;
  LOWBIT_ASSIGN_OR_RETURN(r, QuantizeGraph(g, o));
  ExportOptions eo;
  eo.graph_name = std::filesystem::path(a.model).stem().string() + " (lowbit)";
  LOWBIT_RETURN_IF_ERROR(ExportOnnx(r.graph, a.out, eo));
  if (!a.write_plan.empty()) {
    LOWBIT_RETURN_IF_ERROR(WriteFileAtomic(a.write_plan, PlanJson(o.plan.defaults, r.resolved, o.gptq ? "gptq" : "")));
  }
  const int64_t in_bytes = static_cast<int64_t>(std::filesystem::file_size(a.model));
  const int64_t out_bytes = static_cast<int64_t>(std::filesystem::file_size(a.out));
  if (a.json) {
    nlohmann::ordered_json j;
    j["model"] = a.model;
    j["output"] = a.out;
    j["calib"] = a.calib;
    j["calib_samples"] = r.calib_samples;
    j["input_bytes"] = in_bytes;
    j["output_bytes"] = out_bytes;
    j["compression"] = static_cast<double>(in_bytes) / static_cast<double>(out_bytes);
    nlohmann::ordered_json layers = nlohmann::ordered_json::array();
    for (const LayerReport& l : r.layers) {
      nlohmann::ordered_json e;
      e["name"] = l.name;
      e["op"] = l.op;
      e["weights"] = l.settings.weights;
      e["granularity"] = l.settings.granularity;
      e["acts"] = l.settings.acts;
      e["params"] = l.params;
      e["bytes"] = l.bytes;
      e["weight_sqnr_db"] = std::isfinite(l.weight_sqnr_db) ? nlohmann::ordered_json(l.weight_sqnr_db) : nullptr;
      if (l.static_acts) e["act_range"] = {l.act_lo, l.act_hi};
      e["output_sqnr_db"] = std::isfinite(l.output_sqnr_db) ? nlohmann::ordered_json(l.output_sqnr_db) : nullptr;
      layers.push_back(e);
    }
    j["layers"] = layers;
    std::printf("%s\n", j.dump(2).c_str());
    return OkStatus();
  }
  std::printf("%-36s %-7s %-11s %-8s %9s %9s %7s %7s\n", "layer", "op", "weights", "gran", "params",
              "bytes", "w-SQNR", "y-SQNR");
  for (const LayerReport& l : r.layers) {
    std::printf("%-36s %-7s %-11s %-8s %9lld %9lld %7s %7s\n", l.name.c_str(), l.op.c_str(),
                l.settings.weights.c_str(), l.settings.granularity.c_str(),
                static_cast<long long>(l.params), static_cast<long long>(l.bytes),
                Db(l.weight_sqnr_db).c_str(), Db(l.output_sqnr_db).c_str());
  }
  // What the activations do: only layers with 8-bit activations and no
  // calibration quantize them dynamically; weight-only layers keep fp32.
  bool dynamic = false, weight_only = !r.layers.empty();
  for (const LayerReport& l : r.layers) {
    const bool float_acts = l.settings.acts == "float";
    weight_only = weight_only && float_acts;
    dynamic = dynamic || (!float_acts && !l.static_acts);
  }
  const char* note = dynamic ? "; activations dynamic (no --calib)" : weight_only ? "; weight-only (fp32 activations)" : "";
  std::printf("%s: %lld bytes -> %s: %lld bytes (%.2fx smaller)%s\n", a.model.c_str(),
              static_cast<long long>(in_bytes), a.out.c_str(), static_cast<long long>(out_bytes),
              static_cast<double>(in_bytes) / static_cast<double>(out_bytes), note);
  return OkStatus();
}

}  // namespace

Command AddQuantizeCommand(CLI::App& app) {
  auto args = std::make_shared<QuantizeArgs>();
  CLI::App* cmd = app.add_subcommand("quantize", "Post-training quantization to a packed model file");
  cmd->add_option("model", args->model, "fp32 model (.onnx)")->required();
  cmd->add_option("-o,--output", args->out, "Quantized model to write (.onnx)")->required();
  cmd->add_option(
      "--weights", args->weights,
      "Weight format for every layer: int8, int4, int2, uint4, int3-asym, pow2-4, "
      "nhot2-4, codebook-3, ... (default int8, or the plan's); filter-wise: "
      "'int2/int4:0.25' gives int4 to the quarter of each layer's filters int2 fits worst");
  cmd->add_option("--granularity", args->granularity, "tensor, channel (default) or group:G");
  cmd->add_option("--acts", args->acts, "Activations: uint8 (asymmetric, default), int8 (symmetric) or float (weight-only: "
                  "fp32 activations, any weight format)");
  cmd->add_option("--calib", args->calib,
                  "Calibration data (as eval's --data, e.g. fashion-mnist:train[0:1000]); "
                  "without it activations are quantized dynamically");
  cmd->add_option("--calib-batch", args->calib_batch,
                  "Calibration batch size (a model that fixes its batch calibrates at that)")
      ->capture_default_str();
  cmd->add_option("--act-calib", args->act_calib, "Activation ranges: minmax, mse or percentile:P")
      ->capture_default_str();
  cmd->add_option("--weight-clip", args->weight_clip, "Weight ranges: auto (minmax at >= 4 bits, mse below), minmax, mse or percentile:P")
      ->capture_default_str();
  cmd->add_option("--codebook-init", args->codebook_init, "Codebook centroids: dp, kmeans++ or pso")
      ->capture_default_str();
  cmd->add_option("--prune", args->prune, "Magnitude-prune this fraction of each layer's weights");
  cmd->add_option("--rounding", args->rounding,
                  "Weight rounding: nearest (default, or the plan's), or gptq (error-compensated "
                  "under the calibration inputs' Gram matrix; needs --calib, layers of <= 1152 "
                  "weight columns)");
  cmd->add_flag("--no-bias-correction", args->no_bias_correction,
                "Do not correct biases for the mean error of quantized weights");
  cmd->add_option("--layer", args->layers, "Override one layer or pattern: 'conv1=int8', 'fc*=int4'");
  cmd->add_option("--plan", args->plan, "JSON plan (defaults and per-layer settings)");
  cmd->add_option("--write-plan", args->write_plan, "Write the per-layer plan used as JSON");
  cmd->add_option("--seed", args->seed, "Seed for k-means++ / PSO")->capture_default_str();
  cmd->add_option("--threads", args->threads, "Threads")->capture_default_str();
  cmd->add_option("--scale", args->scale, "Multiply raw calibration values (default: the dataset's)");
  cmd->add_option("--mean", args->mean, "Subtract after scaling: one value or one per channel");
  cmd->add_option("--std", args->std, "Divide after subtracting: one value or one per channel");
  cmd->add_flag("--json", args->json, "Print one JSON object");
  cmd->add_flag("--quiet", args->quiet, "No progress line");
  return {cmd, [args] { return RunQuantize(*args); }};
}

}  // namespace lowbit
