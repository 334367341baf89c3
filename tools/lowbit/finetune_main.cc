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

#include "base/strings.h"
#include "runtime/blas_setup.h"
#include "lowbit/finetune.h"

namespace lowbit {
namespace {

struct FinetuneArgs {
  std::string model, out, train, val, weights, plan, acts, granularity, checkpoint, write_plan;
  std::string optimizer = "adam", mean, std, bits = "2..8", codebook_init = "pso";
  int epochs = 3, threads = 1;
  int64_t batch = 64, calib_samples = 2048, val_limit = 0;
  double lr = 5e-4, prune = 0, scale = -1;
  uint64_t seed = 1;
  bool distill = false, two_stage = false, resume = false, json = false, quiet = false;
  bool learn_bits = false;
  double bitops_weight = 0.5;
};

Status RunFinetune(const FinetuneArgs& a) {
  FinetuneConfig c;
  c.train = a.train;
  c.val = a.val;
  c.weights = a.weights;
  c.plan_file = a.plan;
  c.acts = a.acts;
  c.granularity = a.granularity;
  c.epochs = a.epochs;
  c.batch = a.batch;
  c.lr = a.lr;
  c.optimizer = a.optimizer;
  c.distill = a.distill;
  c.two_stage = a.two_stage;
  c.learn_bits = a.learn_bits;
  c.bitops_weight = a.bitops_weight;
  {
    const size_t dots = a.bits.find("..");
    Result<double> lo = ParseDouble(a.bits.substr(0, dots), "--bits");
    Result<double> hi = dots == std::string::npos ? lo : ParseDouble(a.bits.substr(dots + 2), "--bits");
    if (!lo.ok() || !hi.ok() || *lo != std::floor(*lo) || *hi != std::floor(*hi)) {
      return InvalidArgument("--bits '", a.bits, "': expected a range like 2..8");
    }
    c.min_bits = static_cast<int>(*lo);
    c.max_bits = static_cast<int>(*hi);
  }
  c.prune = a.prune;
  c.codebook_init = a.codebook_init;
  c.checkpoint_dir = a.checkpoint;
  c.resume = a.resume;
  c.calib_samples = a.calib_samples;
  c.val_limit = a.val_limit;
  c.preprocess_scale = a.scale;
  LOWBIT_ASSIGN_OR_RETURN(c.mean, ParseFloatList(a.mean, "--mean"));
  LOWBIT_ASSIGN_OR_RETURN(c.stddev, ParseFloatList(a.std, "--std"));
  c.threads = a.threads;
  c.seed = a.seed;
  c.plan_out = a.write_plan;
  c.show_progress = !a.quiet && !a.json;
  if (!a.quiet && !a.json) {
    c.on_epoch = [](const FinetuneEpoch& e) {
      std::printf("stage %d epoch %d: loss %.4f  val top-1 %.2f%%  %.1f s  %.0f images/s", e.stage + 1,
                  e.epoch + 1, e.loss, e.val_top1, e.seconds, e.images_per_second);
      if (e.mean_bits >= 0) std::printf("  mean weight bits %.2f", e.mean_bits);
      std::printf("\n");
      std::fflush(stdout);
    };
  }
  FinetuneSummary r;
  LOWBIT_ASSIGN_OR_RETURN(r, FinetuneModel(a.model, a.out, c));
  if (a.json) {
    nlohmann::ordered_json j;
    j["model"] = a.model;
    j["output"] = a.out;
    j["input_bytes"] = r.input_bytes;
    j["output_bytes"] = r.output_bytes;
    j["fp32_val_top1"] = r.fp32_val_top1;
    for (const FinetuneStage& s : r.stages) {
      nlohmann::ordered_json js;
      js["name"] = s.name;
      js["start_val_top1"] = s.start_val_top1;
      for (const FinetuneEpoch& e : s.epochs) {
        js["epochs"].push_back({{"epoch", e.epoch + 1}, {"loss", e.loss}, {"val_top1", e.val_top1},
                                {"seconds", e.seconds}, {"images_per_second", e.images_per_second},
                                {"resumed", e.resumed},
                                {"mean_bits", e.mean_bits >= 0 ? nlohmann::ordered_json(e.mean_bits) : nullptr}});
      }
      j["stages"].push_back(js);
    }
    for (const FinetuneLayer& l : r.layers) {
      j["layers"].push_back({{"name", l.name}, {"op", l.op}, {"weights", l.weights}, {"acts", l.acts},
                             {"bytes", l.bytes}, {"filters", l.filters}});
    }
    j["bitops"] = r.bitops;
    j["bitops_vs_w4a8"] = r.bitops / r.bitops_w4a8;
    j["seconds"] = r.seconds;
    j["peak_rss_bytes"] = r.peak_rss_bytes;
    std::printf("%s\n", j.dump(2).c_str());
    return OkStatus();
  }
  if (!a.quiet) {
    for (const FinetuneStage& s : r.stages) {
      const double end = s.epochs.empty() ? s.start_val_top1 : s.epochs.back().val_top1;
      std::printf("%s: val top-1 %.2f%% -> %.2f%% (fp32 %.2f%%)\n", s.name.c_str(), s.start_val_top1, end,
                  r.fp32_val_top1);
    }
  }
  std::printf("bit-ops per sample %.4g (%.1f%% of uniform W4A8)\n", r.bitops, 100 * r.bitops / r.bitops_w4a8);
  std::printf("%s: %lld bytes -> %s: %lld bytes (%.2fx smaller); %.1f s, peak memory %.0f MiB\n",
              a.model.c_str(), static_cast<long long>(r.input_bytes), a.out.c_str(),
              static_cast<long long>(r.output_bytes),
              static_cast<double>(r.input_bytes) / static_cast<double>(r.output_bytes), r.seconds,
              static_cast<double>(r.peak_rss_bytes) / (1 << 20));
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
  app.add_option("--codebook-init", a->codebook_init, "Codebook centroids' start: pso, dp or kmeans++")
      ->capture_default_str();
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
