// lowbit-finetune: `lowbit finetune`, quantization-aware training
// (train/finetune.h). A program of its own because it links LibTorch, whose
// loading costs every process about half a second; `lowbit finetune ...`
// runs it (finetune_command.cc).
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>

#include <CLI/CLI.hpp>
#include <unistd.h>

#include "base/npy.h"
#include "base/strings.h"
#include "model_util.h"
#include "onnx/onnx_export.h"
#include "runtime/blas_setup.h"
#include "train/finetune.h"

namespace lowbit {
namespace {

struct FinetuneArgs {
  std::string model, out, train, val, weights, plan, acts, granularity, checkpoint, write_plan;
  std::string optimizer = "adam", mean, std, bits = "2..8";
  int epochs = 3, threads = 1;
  int64_t batch = 64, calib_samples = 2048, val_limit = 0;
  double lr = 5e-4, prune = 0, scale = -1;
  uint64_t seed = 1;
  bool distill = false, two_stage = false, resume = false, json = false, quiet = false;
  bool learn_bits = false;
  double bitops_weight = 0.5;
};

Status RunFinetune(const FinetuneArgs& a) {
  FinetuneOptions o;
  if (!a.plan.empty()) {
    std::string text;
    LOWBIT_ASSIGN_OR_RETURN(text, ReadFile(a.plan));
    LOWBIT_ASSIGN_OR_RETURN(o.plan, ParsePlanJson(text, a.plan));
  }
  if (a.plan.empty() && a.weights.empty() && !a.learn_bits) {
    return InvalidArgument("give --weights FORMAT, --plan FILE or --learn-bits");
  }
  if (!a.weights.empty()) o.plan.defaults.weights = a.weights;
  if (!a.granularity.empty()) o.plan.defaults.granularity = a.granularity;
  if (!a.acts.empty()) o.plan.defaults.acts = a.acts;
  LOWBIT_RETURN_IF_ERROR(ValidateSettings(o.plan.defaults, "options"));
  o.quant.weight_clip_auto = true;
  o.epochs = a.epochs;
  o.batch = a.batch;
  o.lr = a.lr;
  o.optimizer = a.optimizer;
  o.distill = a.distill;
  o.two_stage = a.two_stage;
  o.prune = a.prune;
  o.checkpoint_dir = a.checkpoint;
  o.resume = a.resume;
  o.threads = a.threads;
  o.seed = a.seed;
  o.quiet = a.quiet || a.json;
  o.calib_samples = a.calib_samples;
  o.val_limit = a.val_limit;
  o.learn_bits = a.learn_bits;
  o.bitops_weight = a.bitops_weight;
  {
    const size_t dots = a.bits.find("..");
    Result<double> lo = ParseDouble(a.bits.substr(0, dots), "--bits");
    Result<double> hi = dots == std::string::npos ? lo : ParseDouble(a.bits.substr(dots + 2), "--bits");
    if (!lo.ok() || !hi.ok() || *lo != std::floor(*lo) || *hi != std::floor(*hi)) {
      return InvalidArgument("--bits '", a.bits, "': expected a range like 2..8");
    }
    o.min_bits = static_cast<int>(*lo);
    o.max_bits = static_cast<int>(*hi);
  }
  o.preprocess.scale = a.scale;
  LOWBIT_ASSIGN_OR_RETURN(o.preprocess.mean, ParseFloatList(a.mean, "--mean"));
  LOWBIT_ASSIGN_OR_RETURN(o.preprocess.std, ParseFloatList(a.std, "--std"));
  if (a.calib_samples < 1) return InvalidArgument("--calib-samples must be >= 1, got ", a.calib_samples);

  Graph g;
  LOWBIT_ASSIGN_OR_RETURN(g, LoadModel(a.model));
  std::unique_ptr<Dataset> train, val;
  LOWBIT_ASSIGN_OR_RETURN(train, Dataset::Open(a.train));
  LOWBIT_ASSIGN_OR_RETURN(val, Dataset::Open(a.val));
  const bool text = !a.json;
  auto on_epoch = [&](const EpochReport& e) {
    if (!text || a.quiet) return;
    std::printf("stage %d epoch %d: loss %.4f  val top-1 %.2f%%  %.1f s  %.0f images/s", e.stage + 1,
                e.epoch + 1, e.loss, e.val_top1, e.seconds, e.images_per_second);
    if (std::isfinite(e.mean_bits)) std::printf("  mean weight bits %.2f", e.mean_bits);
    std::printf("\n");
    std::fflush(stdout);
  };
  FinetuneResult r;
  LOWBIT_ASSIGN_OR_RETURN(r, Finetune(g, *train, *val, o, on_epoch));
  ExportOptions eo;
  eo.graph_name = std::filesystem::path(a.model).stem().string() + " (lowbit finetune)";
  LOWBIT_RETURN_IF_ERROR(ExportOnnx(r.graph, a.out, eo));
  if (!a.write_plan.empty()) {
    LOWBIT_RETURN_IF_ERROR(WriteFileAtomic(a.write_plan, PlanJson(o.plan.defaults, r.resolved)));
  }
  const int64_t in_bytes = static_cast<int64_t>(std::filesystem::file_size(a.model));
  const int64_t out_bytes = static_cast<int64_t>(std::filesystem::file_size(a.out));
  if (a.json) {
    nlohmann::ordered_json j;
    j["model"] = a.model;
    j["output"] = a.out;
    j["input_bytes"] = in_bytes;
    j["output_bytes"] = out_bytes;
    j["fp32_val_top1"] = r.fp32_val_top1;
    for (const StageReport& s : r.stages) {
      nlohmann::ordered_json js;
      js["name"] = s.name;
      js["start_val_top1"] = s.start_val_top1;
      for (const EpochReport& e : s.epochs) {
        js["epochs"].push_back({{"epoch", e.epoch + 1}, {"loss", e.loss}, {"val_top1", e.val_top1},
                                {"seconds", e.seconds}, {"images_per_second", e.images_per_second},
                                {"resumed", e.resumed},
                                {"mean_bits", std::isfinite(e.mean_bits) ? nlohmann::ordered_json(e.mean_bits) : nullptr}});
      }
      j["stages"].push_back(js);
    }
    for (const LayerReport& l : r.layers) {
      j["layers"].push_back({{"name", l.name}, {"op", l.op}, {"weights", l.settings.weights},
                             {"acts", l.settings.acts}, {"bytes", l.bytes}, {"filters", l.settings.filters}});
    }
    j["bitops"] = r.bitops;
    j["bitops_vs_w4a8"] = r.bitops / r.bitops_w4a8;
    j["seconds"] = r.seconds;
    j["peak_rss_bytes"] = r.peak_rss_bytes;
    std::printf("%s\n", j.dump(2).c_str());
    return OkStatus();
  }
  if (!a.quiet) {
    for (const StageReport& s : r.stages) {
      const double end = s.epochs.empty() ? s.start_val_top1 : s.epochs.back().val_top1;
      std::printf("%s: val top-1 %.2f%% -> %.2f%% (fp32 %.2f%%)\n", s.name.c_str(), s.start_val_top1, end,
                  r.fp32_val_top1);
    }
  }
  std::printf("bit-ops per sample %.4g (%.1f%% of uniform W4A8)\n", r.bitops, 100 * r.bitops / r.bitops_w4a8);
  std::printf("%s: %lld bytes -> %s: %lld bytes (%.2fx smaller); %.1f s, peak memory %.0f MiB\n",
              a.model.c_str(), static_cast<long long>(in_bytes), a.out.c_str(),
              static_cast<long long>(out_bytes), static_cast<double>(in_bytes) / static_cast<double>(out_bytes),
              r.seconds, static_cast<double>(r.peak_rss_bytes) / (1 << 20));
  return OkStatus();
}

// LibTorch's OpenMP pool spins between parallel regions unless told not to
// (measured here: two threads with the default ran 2-3x slower per step than
// one); OpenMP reads the setting only when it loads, so set it and restart.
void EnsurePassiveOpenMp(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") != nullptr) return;
  setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
  execv("/proc/self/exe", argv);  // returns only on failure: carry on
}

}  // namespace
}  // namespace lowbit

int main(int argc, char** argv) {
  lowbit::EnsurePassiveOpenMp(argv);
  lowbit::EnsureFastBlas(argv);
  auto a = std::make_shared<lowbit::FinetuneArgs>();
  CLI::App app{"lowbit finetune: quantization-aware training (LibTorch) to a packed model"};
  app.name("lowbit finetune");
  app.add_option("model", a->model, "fp32 model (.onnx)")->required();
  app.add_option("-o,--output", a->out, "Packed model to write (.onnx)")->required();
  app.add_option("--train", a->train, "Training data (as eval's --data), labelled")->required();
  app.add_option("--val", a->val, "Validation data, labelled (reported each epoch)")->required();
  app.add_option("--weights", a->weights, "Weight format for every layer (int2, pow2-3, nhot2-3, ...)");
  app.add_option("--plan", a->plan, "Per-layer plan JSON (as quantize --plan; tune --write-plan)");
  app.add_option("--acts", a->acts, "uint8 (default), int8 or float");
  app.add_option("--granularity", a->granularity, "channel (default) or tensor");
  app.add_option("--epochs", a->epochs, "Epochs per stage")->capture_default_str();
  app.add_option("--batch", a->batch, "Training batch")->capture_default_str();
  app.add_option("--lr", a->lr, "Peak learning rate (cosine decay)")->capture_default_str();
  app.add_option("--optimizer", a->optimizer, "adam or sgd")->capture_default_str();
  app.add_flag("--distill", a->distill, "Add KL divergence to the fp32 model's outputs");
  app.add_flag("--two-stage", a->two_stage, "n-hot: train without bit-level sparsity first");
  app.add_flag("--learn-bits", a->learn_bits,
               "Learn each filter's bit width under a bit-ops penalty, snap to the kernels' widths, fine-tune");
  app.add_option("--bitops-weight", a->bitops_weight,
                 "--learn-bits: weight of (bit-ops / bit-ops at 4-bit weights) in the loss")
      ->capture_default_str();
  app.add_option("--bits", a->bits, "--learn-bits: range of widths, e.g. 2..8")->capture_default_str();
  app.add_option("--prune", a->prune, "Magnitude-prune this fraction of each layer (held at zero)");
  app.add_option("--checkpoint", a->checkpoint, "Directory for a checkpoint after every epoch");
  app.add_flag("--resume", a->resume, "Continue from --checkpoint's last epoch");
  app.add_option("--calib-samples", a->calib_samples, "Training samples the activation ranges start from")
      ->capture_default_str();
  app.add_option("--val-limit", a->val_limit, "Validate on at most this many samples per epoch (0: all)");
  app.add_option("--write-plan", a->write_plan, "Write the per-layer plan of the result as JSON");
  app.add_option("--threads", a->threads, "Threads")->capture_default_str();
  app.add_option("--seed", a->seed, "Seed (shuffling, initial values)")->capture_default_str();
  app.add_option("--scale", a->scale, "Multiply raw values (default: the dataset's)");
  app.add_option("--mean", a->mean, "Subtract after scaling: one value or one per channel");
  app.add_option("--std", a->std, "Divide after subtracting: one value or one per channel");
  app.add_flag("--json", a->json, "Print one JSON object");
  app.add_flag("--quiet", a->quiet, "No progress line or per-epoch lines");
  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "lowbit finetune: error: %s\n", e.what());
    return 2;
  }
  const lowbit::Status s = lowbit::RunFinetune(*a);
  if (!s.ok()) {
    std::fprintf(stderr, "lowbit finetune: error: %s\n", s.ToString().c_str());
    return 1;
  }
  return 0;
}
