// FinetuneModel (include/lowbit/finetune.h): train/finetune.h from the API's
// options, the packed result written and summarized.
#include "lowbit/finetune.h"

#include <cmath>
#include <exception>
#include <filesystem>

#include "api/load_model.h"
#include "base/npy.h"
#include "onnx/onnx_export.h"
#include "train/finetune.h"

namespace lowbit {
namespace {

FinetuneEpoch ToEpoch(const EpochReport& e) {
  FinetuneEpoch f;
  f.stage = e.stage;
  f.epoch = e.epoch;
  f.loss = e.loss;
  f.val_top1 = e.val_top1;
  f.seconds = e.seconds;
  f.images_per_second = e.images_per_second;
  f.mean_bits = std::isfinite(e.mean_bits) ? e.mean_bits : -1;
  f.resumed = e.resumed;
  return f;
}

Result<FinetuneSummary> Run(const std::string& model_path, const std::string& out_path,
                            const FinetuneConfig& c) {
  FinetuneOptions o;
  if (c.plan_file.empty() && c.weights.empty() && !c.learn_bits) {
    return InvalidArgument("give --weights FORMAT, --plan FILE or --learn-bits");
  }
  LOWBIT_ASSIGN_OR_RETURN(o.plan, PlanFromOptions(c.plan_file, c.weights, c.granularity, c.acts, {},
                                                  "options"));
  if (c.calib_samples < 1) return InvalidArgument("--calib-samples must be >= 1, got ", c.calib_samples);
  o.quant.weight_clip_auto = true;  // as `lowbit quantize`
  LOWBIT_ASSIGN_OR_RETURN(o.quant.weight_fit.codebook_init, ParseCodebookInit(c.codebook_init));
  o.quant.weight_fit.seed = c.seed;
  o.epochs = c.epochs;
  o.batch = c.batch;
  o.lr = c.lr;
  o.optimizer = c.optimizer;
  o.distill = c.distill;
  o.two_stage = c.two_stage;
  o.prune = c.prune;
  o.checkpoint_dir = c.checkpoint_dir;
  o.resume = c.resume;
  o.threads = c.threads;
  o.seed = c.seed;
  o.quiet = !c.show_progress;
  o.calib_samples = c.calib_samples;
  o.val_limit = c.val_limit;
  o.learn_bits = c.learn_bits;
  o.bitops_weight = c.bitops_weight;
  o.min_bits = c.min_bits;
  o.max_bits = c.max_bits;
  o.preprocess.scale = c.preprocess_scale;
  o.preprocess.mean = c.mean;
  o.preprocess.std = c.stddev;
  Graph g;
  LOWBIT_ASSIGN_OR_RETURN(g, LoadModel(model_path));
  std::unique_ptr<Dataset> train, val;
  LOWBIT_ASSIGN_OR_RETURN(train, Dataset::Open(c.train));
  LOWBIT_ASSIGN_OR_RETURN(val, Dataset::Open(c.val));
  std::function<void(const EpochReport&)> on_epoch;
  if (c.on_epoch) on_epoch = [&c](const EpochReport& e) { c.on_epoch(ToEpoch(e)); };
  FinetuneResult r;
  LOWBIT_ASSIGN_OR_RETURN(r, Finetune(g, *train, *val, o, on_epoch));
  ExportOptions eo;
  eo.graph_name = std::filesystem::path(model_path).stem().string() + " (lowbit finetune)";
  LOWBIT_RETURN_IF_ERROR(ExportOnnx(r.graph, out_path, eo));
  if (!c.plan_out.empty()) {
    LOWBIT_RETURN_IF_ERROR(WriteFileAtomic(c.plan_out, PlanJson(o.plan.defaults, r.resolved)));
  }
  FinetuneSummary s;
  s.fp32_val_top1 = r.fp32_val_top1;
  for (const StageReport& st : r.stages) {
    FinetuneStage fs;
    fs.name = st.name;
    fs.start_val_top1 = st.start_val_top1;
    for (const EpochReport& e : st.epochs) fs.epochs.push_back(ToEpoch(e));
    s.stages.push_back(fs);
  }
  for (const LayerReport& l : r.layers) {
    s.layers.push_back({l.name, l.op, l.settings.weights, l.settings.acts, l.bytes, l.settings.filters});
  }
  s.input_bytes = static_cast<int64_t>(std::filesystem::file_size(model_path));
  s.output_bytes = static_cast<int64_t>(std::filesystem::file_size(out_path));
  s.bitops = r.bitops;
  s.bitops_w4a8 = r.bitops_w4a8;
  s.seconds = r.seconds;
  s.peak_rss_bytes = r.peak_rss_bytes;
  return s;
}

}  // namespace

Result<FinetuneSummary> FinetuneModel(const std::string& model_path, const std::string& out_path,
                                      const FinetuneConfig& config) {
  try {
    return Run(model_path, out_path, config);
  } catch (const std::bad_alloc&) {
    return Status(StatusCode::kInternal, "out of memory");
  } catch (const std::exception& e) {
    return Status(StatusCode::kInternal, e.what());
  }
}

}  // namespace lowbit
