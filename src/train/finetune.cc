#include "train/finetune.h"

#include <cblas.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <random>

#include "base/progress.h"
#include "model/packed_node.h"
#include "quant/calibrate.h"
#include "quant/layers.h"
#include "quant/quantize.h"
#include "train/checkpoint.h"
#include "train/torch_graph.h"

namespace lowbit {

bool TrainingBuilt() { return true; }

namespace {

using train::ActQuantizer;
using train::TorchGraph;
using train::TrainLayer;
using train::WeightQuantizer;

using Clock = std::chrono::steady_clock;
double Since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// The first `n` samples of a dataset (the calibration samples).
class PrefixDataset final : public Dataset {
 public:
  PrefixDataset(Dataset& base, int64_t n) : base_(base) {
    spec_ = base.spec() + "{first " + std::to_string(n) + "}";
    sample_shape_ = base.sample_shape();
    has_labels_ = base.has_labels();
    default_scale_ = base.default_scale();
    begin_ = 0;
    end_ = std::min(n, base.size());
    total_ = end_;
  }
  Status Read(int64_t index, int64_t n, float* x, int64_t* labels) override {
    return base_.Read(index, n, x, labels);
  }

 private:
  Dataset& base_;
};

// Samples in memory, preprocessed, as batches of the model's input shape.
struct Samples {
  std::vector<float> x;
  std::vector<int64_t> y;
  int64_t n = 0, size = 0;
  std::vector<int64_t> input_shape;  // without the batch dimension

  torch::Tensor Batch(const std::vector<int64_t>& order, int64_t begin, int64_t count,
                      torch::Tensor* labels) const {
    torch::Tensor xb = torch::empty({count, size}, torch::kFloat32);
    torch::Tensor yb = torch::empty({count}, torch::kLong);
    float* px = xb.data_ptr<float>();
    int64_t* py = yb.data_ptr<int64_t>();
    for (int64_t i = 0; i < count; ++i) {
      const int64_t s = order.empty() ? begin + i : order[begin + i];
      std::copy_n(x.data() + s * size, size, px + i * size);
      py[i] = y[s];
    }
    *labels = yb;
    std::vector<int64_t> shape = {count};
    shape.insert(shape.end(), input_shape.begin(), input_shape.end());
    return xb.view(shape);
  }
};

Result<Samples> LoadSamples(const Graph& g, Dataset& data, const Preprocess& pre, const char* what) {
  if (!data.has_labels()) return InvalidArgument(what, " '", data.spec(), "' has no labels");
  if (data.size() == 0) return InvalidArgument(what, " '", data.spec(), "' has no samples");
  Samples s;
  const Shape& in = g.inputs[0].shape;
  for (size_t d = 1; d < in.size(); ++d) {
    if (in[d] <= 0) {
      return InvalidArgument(g.source, ": input '", g.inputs[0].name, "' has a dynamic dimension ", d,
                             "; training needs fixed sample dimensions");
    }
    s.input_shape.push_back(in[d]);
  }
  s.size = data.sample_size();
  const int64_t want = NumElements(s.input_shape);
  if (want != s.size || !SampleFitsInput(data.sample_shape(), s.input_shape)) {
    return InvalidArgument(what, " '", data.spec(), "': samples of shape ", ShapeToString(data.sample_shape()),
                           " do not fit input '", g.inputs[0].name, "' ", ShapeToString(in));
  }
  s.n = data.size();
  s.x.resize(static_cast<size_t>(s.n * s.size));
  s.y.resize(static_cast<size_t>(s.n));
  LOWBIT_RETURN_IF_ERROR(data.Read(0, s.n, s.x.data(), s.y.data()));
  const int64_t channels = in.size() >= 3 ? in[1] : 1;
  LOWBIT_RETURN_IF_ERROR(
      ApplyPreprocess(pre, data.default_scale(), s.n, s.size, channels, s.x.data()));
  return s;
}

// Top-1 of the graph (fake-quantized or fp32) on samples; classes per sample.
double EvalTop1(TorchGraph& tg, const Samples& s, bool quantized, int64_t limit,
                std::vector<int32_t>* classes) {
  torch::NoGradGuard no_grad;
  const int64_t n = limit > 0 ? std::min(limit, s.n) : s.n;
  int64_t correct = 0;
  if (classes != nullptr) classes->clear();
  for (int64_t b = 0; b < n; b += 256) {
    torch::Tensor y;
    const int64_t count = std::min<int64_t>(256, n - b);
    const torch::Tensor logits = tg.Forward(s.Batch({}, b, count, &y), quantized);
    const torch::Tensor pred = logits.reshape({count, -1}).argmax(1);
    correct += pred.eq(y).sum().item<int64_t>();
    if (classes != nullptr) {
      for (int64_t i = 0; i < count; ++i) classes->push_back(static_cast<int32_t>(pred[i].item<int64_t>()));
    }
  }
  return 100.0 * static_cast<double>(correct) / static_cast<double>(n);
}

// Settings of stage 1 of two-stage n-hot: nhotN-b becomes int-b.
LayerSettings WithoutBitSparsity(LayerSettings s, bool* changed) {
  Result<FormatSpec> f = ParseFormat(s.weights);
  if (f.ok() && f->family == Family::kNHot) {
    s.weights = "int" + std::to_string(f->bits);
    *changed = true;
  }
  return s;
}

// Gives every layer quantizers for `settings` from the graph's current
// weights, as post-training quantization would (fit, bias correction,
// activation ranges from `stats`). Keeps existing activation quantizers
// when `keep_acts`.
Status InitQuantizers(TorchGraph& tg, const std::vector<LayerSettings>& settings,
                      const CalibrationStats& stats, const FinetuneOptions& o, bool keep_acts) {
  const Graph cur = tg.TrainedGraph();
  const std::vector<QuantLayer> layers = QuantLayers(cur);
  for (size_t i = 0; i < layers.size(); ++i) {
    TrainLayer& tl = tg.layers()[i];
    const LayerSettings& s = settings[i];
    if (s.weights == "float") {
      tl.wq = nullptr;
      tl.xq = tl.rq = nullptr;
      continue;
    }
    LayerQuantOptions lo = o.quant;
    lo.prune = o.prune;
    QuantizedLayer ql;
    LOWBIT_ASSIGN_OR_RETURN(ql, QuantizeLayer(cur, layers[i], s, &stats, lo));
    const std::string base = ql.packed.name;
    PackedParts parts;
    LOWBIT_ASSIGN_OR_RETURN(parts, PackedPartsOf(ql.packed, ql.constants.at(base + ".codes"),
                                                 ql.constants.at(base + ".scales")));
    torch::Tensor mask;
    if (o.prune > 0) {
      std::vector<float> w = layers[i].w;
      LOWBIT_RETURN_IF_ERROR(Prune(w.data(), static_cast<int64_t>(w.size()), o.prune));
      mask = torch::tensor(w, torch::kFloat32).view(layers[i].wshape).ne(0).to(torch::kFloat32);
    }
    const bool weight_only = s.acts == "float";
    std::shared_ptr<WeightQuantizer> wq;
    LOWBIT_ASSIGN_OR_RETURN(wq, WeightQuantizer::FromParts(parts, o.learn_levels, weight_only, mask));
    tl.wq = wq;
    auto bias = ql.constants.find(base + ".bias");
    if (bias != ql.constants.end()) {
      const Tensor& b = bias->second;
      torch::NoGradGuard no_grad;
      torch::Tensor bt = torch::from_blob(const_cast<void*>(b.raw()), {b.numel()}, torch::kFloat32).clone();
      if (tl.b.defined()) {
        tl.b.copy_(bt);
      } else {
        tl.b = bt.requires_grad_(true);
      }
    }
    if (keep_acts && (tl.xq || weight_only)) continue;
    tl.xq = tl.rq = nullptr;
    if (weight_only) continue;
    ActSpec act;
    LOWBIT_ASSIGN_OR_RETURN(act, ActSpecOf(ql.packed));
    if (act.is_static) tl.xq = std::make_shared<ActQuantizer>(act.lo, act.hi, act.symmetric);
    ResidualRange rr;
    LOWBIT_ASSIGN_OR_RETURN(rr, ResidualRangeOf(ql.packed));
    if (rr.present) tl.rq = std::make_shared<ActQuantizer>(rr.lo, rr.hi, false);
  }
  return OkStatus();
}

void Constrain(TorchGraph& tg) {
  for (TrainLayer& l : tg.layers()) {
    if (l.wq) l.wq->Constrain();
    if (l.xq) l.xq->Constrain();
    if (l.rq) l.rq->Constrain();
  }
}

std::unique_ptr<torch::optim::Optimizer> MakeOptimizer(const FinetuneOptions& o,
                                                       const std::vector<torch::Tensor>& params) {
  if (o.optimizer == "sgd") {
    return std::make_unique<torch::optim::SGD>(params, torch::optim::SGDOptions(o.lr).momentum(0.9));
  }
  return std::make_unique<torch::optim::Adam>(params, torch::optim::AdamOptions(o.lr));
}

void SetLr(torch::optim::Optimizer& opt, double lr) {
  for (auto& group : opt.param_groups()) group.options().set_lr(lr);
}

// The packed graph of the trained state: every quantized layer packed from
// the parameters its fake quantizers used.
Status Export(TorchGraph& tg, const std::vector<LayerSettings>& settings, FinetuneResult* r) {
  const Graph cur = tg.TrainedGraph();
  const std::vector<QuantLayer> layers = QuantLayers(cur);
  std::vector<QuantizedLayer> packed(layers.size());
  std::vector<const QuantizedLayer*> use;
  for (size_t i = 0; i < layers.size(); ++i) {
    const TrainLayer& tl = tg.layers()[i];
    if (!tl.wq) {
      packed[i].node = layers[i].node;
      packed[i].report.name = layers[i].name;
      packed[i].report.op = layers[i].op;
      packed[i].report.settings = settings[i];
      packed[i].report.params = static_cast<int64_t>(layers[i].w.size());
      packed[i].report.bytes = packed[i].report.params * 4;
    } else {
      FixedLayer f;
      LOWBIT_ASSIGN_OR_RETURN(f.weights, tl.wq->Pack(tl.w));
      f.bias = layers[i].bias;
      if (tl.xq) f.act_range = tl.xq->Range();
      if (tl.rq) f.residual_range = tl.rq->Range();
      LOWBIT_ASSIGN_OR_RETURN(packed[i], PackFixedLayer(cur, layers[i], settings[i].acts, std::move(f)));
      use.push_back(&packed[i]);
    }
    r->layers.push_back(packed[i].report);
    r->resolved.emplace_back(layers[i].name, packed[i].report.settings);
  }
  r->graph = AssembleGraph(cur, use);
  return OkStatus();
}

std::string OptionsKey(const Graph& g, const Dataset& train, const FinetuneOptions& o,
                       const std::vector<LayerSettings>& settings) {
  std::vector<std::pair<std::string, LayerSettings>> named;
  const std::vector<QuantLayer> layers = QuantLayers(g);
  for (size_t i = 0; i < layers.size(); ++i) named.emplace_back(layers[i].name, settings[i]);
  char buf[256];
  std::snprintf(buf, sizeof(buf), "|epochs=%d|batch=%lld|lr=%.9g|opt=%s|distill=%d|two=%d|prune=%.9g|seed=%llu|calib=%lld",
                o.epochs, static_cast<long long>(o.batch), o.lr, o.optimizer.c_str(), o.distill ? 1 : 0,
                o.two_stage ? 1 : 0, o.prune, static_cast<unsigned long long>(o.seed),
                static_cast<long long>(o.calib_samples));
  return ModelFingerprint(g) + "|" + DataKey(train, o.preprocess) + "|" + PlanJson({}, named) + buf;
}

int64_t PeakRss() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<int64_t>(u.ru_maxrss) * 1024;
}

Status Validate(const FinetuneOptions& o) {
  if (o.epochs < 1) return InvalidArgument("--epochs must be >= 1, got ", o.epochs);
  if (o.batch < 1) return InvalidArgument("--batch must be >= 1, got ", o.batch);
  if (!(o.lr > 0) || !std::isfinite(o.lr)) return InvalidArgument("--lr must be > 0, got ", o.lr);
  if (o.optimizer != "adam" && o.optimizer != "sgd")
    return InvalidArgument("--optimizer '", o.optimizer, "' (adam or sgd)");
  if (!(o.prune >= 0 && o.prune < 1)) return InvalidArgument("--prune must be in [0, 1), got ", o.prune);
  if (o.threads < 1) return InvalidArgument("--threads must be >= 1, got ", o.threads);
  if (o.resume && o.checkpoint_dir.empty()) return InvalidArgument("--resume needs --checkpoint DIR");
  return OkStatus();
}

Result<FinetuneResult> Run(const Graph& graph, Dataset& train_data, Dataset& val_data,
                           const FinetuneOptions& o,
                           const std::function<void(const EpochReport&)>& on_epoch) {
  const Clock::time_point start = Clock::now();
  LOWBIT_RETURN_IF_ERROR(Validate(o));
  at::set_num_threads(o.threads);
  openblas_set_num_threads(1);
  torch::manual_seed(o.seed);
  FinetuneResult r;
  std::vector<LayerSettings> settings;
  LOWBIT_ASSIGN_OR_RETURN(settings, ResolvePlan(graph, QuantLayers(graph), o.plan));
  // Stages: the plan, or (two-stage) the plan without n-hot first.
  std::vector<std::vector<LayerSettings>> stages;
  std::vector<std::string> stage_names;
  if (o.two_stage) {
    bool changed = false;
    std::vector<LayerSettings> first;
    for (const LayerSettings& s : settings) first.push_back(WithoutBitSparsity(s, &changed));
    if (!changed) return InvalidArgument("--two-stage needs nhot weights in the plan");
    stages = {first, settings};
    stage_names = {"without bit-level sparsity (stage 1 of 2)", "n-hot (stage 2 of 2)"};
  } else {
    stages = {settings};
    stage_names = {"quantization-aware training"};
  }
  Samples train, val;
  LOWBIT_ASSIGN_OR_RETURN(train, LoadSamples(graph, train_data, o.preprocess, "--train"));
  LOWBIT_ASSIGN_OR_RETURN(val, LoadSamples(graph, val_data, o.preprocess, "--val"));
  std::unique_ptr<TorchGraph> tg, teacher;
  LOWBIT_ASSIGN_OR_RETURN(tg, TorchGraph::Build(graph));
  if (o.distill) {
    LOWBIT_ASSIGN_OR_RETURN(teacher, TorchGraph::Build(graph));
  }
  r.fp32_val_top1 = EvalTop1(*tg, val, false, o.val_limit, nullptr);
  // Activation ranges start from calibration on training samples.
  PrefixDataset calib_data(train_data, o.calib_samples);
  CalibrateOptions co;
  co.preprocess = o.preprocess;
  co.threads = o.threads;
  co.quiet = o.quiet;
  CalibrationStats stats;
  LOWBIT_ASSIGN_OR_RETURN(stats, Calibrate(graph, calib_data, co));
  const std::string key = OptionsKey(graph, train_data, o, settings);
  train::Checkpoint ck;
  const bool resuming = o.resume && train::CheckpointExists(o.checkpoint_dir);
  if (resuming) {
    LOWBIT_ASSIGN_OR_RETURN(ck, train::LoadCheckpoint(o.checkpoint_dir, key));
  }
  const int64_t steps_per_epoch = (train.n + o.batch - 1) / o.batch;
  for (size_t stage = 0; stage < stages.size(); ++stage) {
    StageReport report;
    report.name = stage_names[stage];
    LOWBIT_RETURN_IF_ERROR(InitQuantizers(*tg, stages[stage], stats, o, stage > 0));
    const bool skip_stage = resuming && static_cast<int>(stage) < ck.stage;
    const bool restore_here = resuming && static_cast<int>(stage) == ck.stage;
    std::unique_ptr<torch::optim::Optimizer> opt = MakeOptimizer(o, tg->Parameters());
    int first_epoch = 0;
    if (skip_stage) {
      for (const EpochReport& e : ck.history) {
        if (e.stage == static_cast<int>(stage)) report.epochs.push_back(e);
      }
      report.start_val_top1 = ck.stage_start_top1.size() > stage ? ck.stage_start_top1[stage] : NAN;
      r.stages.push_back(report);
      continue;
    }
    if (restore_here) {
      LOWBIT_RETURN_IF_ERROR(train::RestoreCheckpoint(ck, *tg, *opt));
      for (const EpochReport& e : ck.history) {
        if (e.stage == static_cast<int>(stage)) {
          report.epochs.push_back(e);
          report.epochs.back().resumed = true;
        }
      }
      report.start_val_top1 = ck.stage_start_top1.size() > stage ? ck.stage_start_top1[stage] : NAN;
      first_epoch = ck.epoch + 1;
    } else {
      report.start_val_top1 = EvalTop1(*tg, val, true, o.val_limit, nullptr);
    }
    std::vector<double> starts;
    for (const StageReport& s : r.stages) starts.push_back(s.start_val_top1);
    starts.push_back(report.start_val_top1);
    for (int epoch = first_epoch; epoch < o.epochs; ++epoch) {
      const Clock::time_point t0 = Clock::now();
      std::vector<int64_t> order(static_cast<size_t>(train.n));
      std::iota(order.begin(), order.end(), 0);
      std::mt19937_64 rng(o.seed * 1000003 + stage * 1009 + static_cast<uint64_t>(epoch));
      std::shuffle(order.begin(), order.end(), rng);
      char label[96];
      std::snprintf(label, sizeof(label), "finetune stage %zu/%zu epoch %d/%d", stage + 1, stages.size(),
                    epoch + 1, o.epochs);
      Progress progress(label, train.n, "images", o.quiet);
      double loss_sum = 0;
      for (int64_t step = 0; step < steps_per_epoch; ++step) {
        const int64_t b0 = step * o.batch, count = std::min(o.batch, train.n - b0);
        const double t = static_cast<double>(epoch * steps_per_epoch + step) /
                         static_cast<double>(o.epochs * steps_per_epoch);
        SetLr(*opt, o.lr * 0.5 * (1 + std::cos(M_PI * t)));
        torch::Tensor y;
        const torch::Tensor x = train.Batch(order, b0, count, &y);
        opt->zero_grad();
        const torch::Tensor logits = tg->Forward(x, true).reshape({count, -1});
        torch::Tensor loss = torch::nn::functional::cross_entropy(logits, y);
        if (teacher) {
          torch::Tensor target;
          {
            torch::NoGradGuard no_grad;
            target = torch::softmax(teacher->Forward(x, false).reshape({count, -1}), 1);
          }
          loss = loss + torch::nn::functional::kl_div(
                            torch::log_softmax(logits, 1), target,
                            torch::nn::functional::KLDivFuncOptions().reduction(torch::kBatchMean));
        }
        loss.backward();
        opt->step();
        Constrain(*tg);
        const double lv = loss.item<double>();
        if (!std::isfinite(lv)) {
          return InvalidArgument("training diverged (loss ", lv, ") in stage ", stage + 1, " epoch ",
                                 epoch + 1, "; try a smaller --lr than ", o.lr);
        }
        loss_sum += lv * static_cast<double>(count);
        char note[64];
        std::snprintf(note, sizeof(note), "loss %.4f", loss_sum / static_cast<double>(b0 + count));
        progress.SetNote(note);
        progress.Advance(count);
      }
      EpochReport e;
      e.stage = static_cast<int>(stage);
      e.epoch = epoch;
      e.loss = loss_sum / static_cast<double>(train.n);
      e.seconds = Since(t0);
      e.images_per_second = static_cast<double>(train.n) / e.seconds;
      const bool last = stage + 1 == stages.size() && epoch + 1 == o.epochs;
      e.val_top1 = EvalTop1(*tg, val, true, last ? 0 : o.val_limit, last ? &r.val_classes : nullptr);
      report.epochs.push_back(e);
      if (on_epoch) on_epoch(e);
      if (!o.checkpoint_dir.empty()) {
        std::vector<EpochReport> history;
        for (const StageReport& s : r.stages) history.insert(history.end(), s.epochs.begin(), s.epochs.end());
        history.insert(history.end(), report.epochs.begin(), report.epochs.end());
        LOWBIT_RETURN_IF_ERROR(train::SaveCheckpoint(o.checkpoint_dir, key, static_cast<int>(stage), epoch,
                                                     history, starts, *tg, *opt));
      }
    }
    r.stages.push_back(report);
  }
  if (r.val_classes.empty()) EvalTop1(*tg, val, true, 0, &r.val_classes);
  LOWBIT_RETURN_IF_ERROR(Export(*tg, settings, &r));
  r.seconds = Since(start);
  r.peak_rss_bytes = PeakRss();
  return r;
}

}  // namespace

Result<FinetuneResult> Finetune(const Graph& graph, Dataset& train, Dataset& val,
                                const FinetuneOptions& options,
                                const std::function<void(const EpochReport&)>& on_epoch) {
  try {
    return Run(graph, train, val, options, on_epoch);
  } catch (const std::exception& e) {
    return train::TorchStatus(e, "finetune");
  }
}

}  // namespace lowbit
