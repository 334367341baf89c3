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
#include "quant/cost.h"
#include "quant/layers.h"
#include "quant/quantize.h"
#include "train/checkpoint.h"
#include "train/learn_bits.h"
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
      const torch::Tensor p32 = pred.to(torch::kInt32).contiguous();
      classes->insert(classes->end(), p32.data_ptr<int32_t>(), p32.data_ptr<int32_t>() + count);
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
    if (l.bq) l.bq->Constrain();
    if (l.xq) l.xq->Constrain();
    if (l.rq) l.rq->Constrain();
  }
}

// Learned widths (log2 step and maximum) move at this multiple of the
// learning rate: at --lr 5e-4 up to about 0.05 bit per step, so an epoch of
// Fashion-MNIST (940 steps) can move a filter across the whole range.
constexpr double kBitLrScale = 100;

// Two parameter groups: the layers' (weights, biases, step sizes, ranges)
// and the learned widths'.
std::unique_ptr<torch::optim::Optimizer> MakeOptimizer(const FinetuneOptions& o, const TorchGraph& tg) {
  std::vector<torch::Tensor> main = tg.Parameters(), bits;
  for (const TrainLayer& l : tg.layers()) {
    if (!l.bq) continue;
    for (const torch::Tensor& t : l.bq->Parameters()) {
      bits.push_back(t);
      main.erase(std::remove_if(main.begin(), main.end(),
                                [&](const torch::Tensor& m) { return m.is_same(t); }),
                 main.end());
    }
  }
  std::vector<torch::optim::OptimizerParamGroup> groups;
  if (o.optimizer == "sgd") {
    groups.emplace_back(main, std::make_unique<torch::optim::SGDOptions>(torch::optim::SGDOptions(o.lr).momentum(0.9)));
    if (!bits.empty()) {
      groups.emplace_back(bits, std::make_unique<torch::optim::SGDOptions>(
                                    torch::optim::SGDOptions(o.lr * kBitLrScale).momentum(0.9)));
    }
    return std::make_unique<torch::optim::SGD>(groups, torch::optim::SGDOptions(o.lr).momentum(0.9));
  }
  groups.emplace_back(main, std::make_unique<torch::optim::AdamOptions>(o.lr));
  if (!bits.empty()) groups.emplace_back(bits, std::make_unique<torch::optim::AdamOptions>(o.lr * kBitLrScale));
  return std::make_unique<torch::optim::Adam>(groups, torch::optim::AdamOptions(o.lr));
}

void SetLr(torch::optim::Optimizer& opt, double lr) {
  auto& groups = opt.param_groups();
  for (size_t g = 0; g < groups.size(); ++g) groups[g].options().set_lr(g == 0 ? lr : lr * kBitLrScale);
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
  char buf[320];
  std::snprintf(buf, sizeof(buf),
                "|epochs=%d|batch=%lld|lr=%.9g|opt=%s|distill=%d|two=%d|prune=%.9g|seed=%llu|calib=%lld"
                "|learn_bits=%d:%.9g:%d:%d|codebook=%d",
                o.epochs, static_cast<long long>(o.batch), o.lr, o.optimizer.c_str(), o.distill ? 1 : 0,
                o.two_stage ? 1 : 0, o.prune, static_cast<unsigned long long>(o.seed),
                static_cast<long long>(o.calib_samples), o.learn_bits ? 1 : 0, o.bitops_weight,
                o.min_bits, o.max_bits, static_cast<int>(o.quant.weight_fit.codebook_init));
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
  if (o.learn_bits) {
    if (o.min_bits < 1 || o.max_bits > 8 || o.min_bits > o.max_bits || train::KernelWidths(o.min_bits, o.max_bits).empty()) {
      return InvalidArgument("--bits ", o.min_bits, "..", o.max_bits,
                             ": learned widths need a range within 1..8 that holds 1, 2, 4 or 8");
    }
    if (!(o.bitops_weight >= 0) || !std::isfinite(o.bitops_weight))
      return InvalidArgument("--bitops-weight must be >= 0, got ", o.bitops_weight);
    if (o.two_stage) return InvalidArgument("--learn-bits and --two-stage do not combine");
  }
  return OkStatus();
}

// One stage of training: its layer settings and epochs; `learn_bits`: the
// weights train under BitWidthQuantizers (settings give activations and
// which layers stay float), and the next stage's settings come from them.
struct Stage {
  std::string name;
  std::vector<LayerSettings> settings;
  int epochs = 0;
  bool learn_bits = false;
};

// The penalty of learned widths: Σ MACs × b over Σ MACs × 4 (bit-ops relative
// to 4-bit weights; activation bits cancel), and the MAC-weighted mean width.
struct BitPenalty {
  std::vector<double> macs_per_filter;  // per layer (0: not learned)
  double w4 = 1;
  torch::Tensor Relative(const TorchGraph& tg, double* mean_bits) const {
    torch::Tensor sum = torch::zeros({});
    double macs = 0;
    for (size_t i = 0; i < tg.layers().size(); ++i) {
      const TrainLayer& l = tg.layers()[i];
      if (!l.bq || macs_per_filter[i] == 0) continue;
      sum = sum + l.bq->Bits().sum() * macs_per_filter[i];
      macs += macs_per_filter[i] * static_cast<double>(l.layer.rows());
    }
    if (mean_bits != nullptr) *mean_bits = macs > 0 ? sum.item<double>() / macs : NAN;
    return sum / w4;
  }
};

Result<BitPenalty> MakeBitPenalty(const Graph& graph, const std::vector<LayerSettings>& settings) {
  std::vector<LayerCost> costs;
  LOWBIT_ASSIGN_OR_RETURN(costs, LayerCosts(graph));
  const std::vector<QuantLayer> layers = QuantLayers(graph);
  BitPenalty p;
  p.macs_per_filter.assign(layers.size(), 0);
  double w4 = 0;
  for (size_t i = 0; i < layers.size(); ++i) {
    for (const LayerCost& c : costs) {
      if (c.node != layers[i].node || settings[i].weights == "float") continue;
      p.macs_per_filter[i] = static_cast<double>(c.macs_per_filter());
      w4 += static_cast<double>(c.macs) * 4;
    }
  }
  p.w4 = std::max(w4, 1.0);
  return p;
}

// Replaces each quantized layer's weight quantizer by a BitWidthQuantizer
// starting from its 4-bit fit.
void StartLearningBits(TorchGraph& tg, const FinetuneOptions& o) {
  for (TrainLayer& l : tg.layers()) {
    if (!l.wq) continue;
    const torch::Tensor scales = l.wq->Parameters()[0].detach().contiguous();
    std::vector<float> s(scales.data_ptr<float>(), scales.data_ptr<float>() + scales.numel());
    if (s.size() == 1) s.assign(static_cast<size_t>(l.layer.rows()), s[0]);
    l.bq = std::make_shared<train::BitWidthQuantizer>(s, 4, o.min_bits, o.max_bits);
    l.wq = nullptr;
  }
}

// The plan the learned widths snap to: per layer, the kernel widths its
// filters took ("int2/int4" with an assignment, or one format); grouped
// layers run one width, their widest; int1 only where a whole layer takes it.
std::vector<LayerSettings> SnappedSettings(const TorchGraph& tg, const std::vector<LayerSettings>& base) {
  std::vector<LayerSettings> out = base;
  for (size_t i = 0; i < tg.layers().size(); ++i) {
    const TrainLayer& l = tg.layers()[i];
    if (!l.bq) continue;
    std::vector<int> bits = l.bq->SnappedBits();
    if (l.layer.group != 1) bits.assign(bits.size(), *std::max_element(bits.begin(), bits.end()));
    // int1 (binary) runs on a kernel layout of its own: a layer mixing it
    // with wider filters gives those filters the next width instead.
    if (std::count(bits.begin(), bits.end(), 1) != static_cast<std::ptrdiff_t>(bits.size())) {
      const std::vector<int> widths = train::KernelWidths(2, 8);
      for (int& b : bits) b = b == 1 ? widths.front() : b;
    }
    std::vector<int> used = bits;
    std::sort(used.begin(), used.end());
    used.erase(std::unique(used.begin(), used.end()), used.end());
    LayerSettings& s = out[i];
    s.granularity = "channel";
    s.filters.clear();
    if (used.size() == 1) {
      s.weights = "int" + std::to_string(used[0]);
      continue;
    }
    s.weights.clear();
    for (int b : used) {
      if (!s.weights.empty()) s.weights += '/';
      s.weights += "int" + std::to_string(b);
    }
    for (int b : bits) {
      s.filters.push_back(static_cast<int32_t>(std::find(used.begin(), used.end(), b) - used.begin()));
    }
  }
  return out;
}

std::string NamedPlan(const Graph& g, const std::vector<LayerSettings>& settings) {
  std::vector<std::pair<std::string, LayerSettings>> named;
  const std::vector<QuantLayer> layers = QuantLayers(g);
  for (size_t i = 0; i < layers.size(); ++i) named.emplace_back(layers[i].name, settings[i]);
  return PlanJson({}, named);
}

Result<std::vector<LayerSettings>> SettingsFromPlan(const Graph& g, const std::string& json) {
  QuantPlan plan;
  LOWBIT_ASSIGN_OR_RETURN(plan, ParsePlanJson(json, "the checkpoint's learned plan"));
  return ResolvePlan(g, QuantLayers(g), plan);
}

Result<std::vector<Stage>> MakeStages(const std::vector<LayerSettings>& settings, const FinetuneOptions& o) {
  if (o.two_stage) {
    bool changed = false;
    std::vector<LayerSettings> first;
    for (const LayerSettings& s : settings) first.push_back(WithoutBitSparsity(s, &changed));
    if (!changed) return InvalidArgument("--two-stage needs nhot weights in the plan");
    return std::vector<Stage>{{"without bit-level sparsity (stage 1 of 2)", first, o.epochs, false},
                              {"n-hot (stage 2 of 2)", settings, o.epochs, false}};
  }
  if (o.learn_bits) {
    std::vector<LayerSettings> learn = settings;
    for (LayerSettings& s : learn) {
      if (s.weights != "float") {
        s.weights = "int4";
        s.granularity = "channel";
        s.filters.clear();
      }
    }
    return std::vector<Stage>{{"learning filter-wise bit widths (stage 1 of 2)", learn, o.epochs, true},
                              {"snapped widths (stage 2 of 2)", {}, std::max(1, o.epochs / 3), false}};
  }
  return std::vector<Stage>{{"quantization-aware training", settings, o.epochs, false}};
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
  std::vector<Stage> stages;
  LOWBIT_ASSIGN_OR_RETURN(stages, MakeStages(settings, o));
  BitPenalty penalty;
  if (o.learn_bits) {
    LOWBIT_ASSIGN_OR_RETURN(penalty, MakeBitPenalty(graph, stages[0].settings));
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
  std::string learned_plan;  // after a learn-bits stage
  for (size_t stage = 0; stage < stages.size(); ++stage) {
    Stage& st = stages[stage];
    StageReport report;
    report.name = st.name;
    const bool skip_stage = resuming && static_cast<int>(stage) < ck.stage;
    const bool restore_here = resuming && static_cast<int>(stage) == ck.stage;
    if (stage > 0 && stages[stage - 1].learn_bits) {
      if (skip_stage || restore_here) {
        learned_plan = ck.plan;
      } else {
        learned_plan = NamedPlan(graph, SnappedSettings(*tg, settings));
      }
      LOWBIT_ASSIGN_OR_RETURN(st.settings, SettingsFromPlan(graph, learned_plan));
    }
    if (skip_stage) {
      for (const EpochReport& e : ck.history) {
        if (e.stage == static_cast<int>(stage)) report.epochs.push_back(e);
      }
      report.start_val_top1 = ck.stage_start_top1.size() > stage ? ck.stage_start_top1[stage] : NAN;
      r.stages.push_back(report);
      continue;
    }
    for (TrainLayer& l : tg->layers()) l.bq = nullptr;
    LOWBIT_RETURN_IF_ERROR(InitQuantizers(*tg, st.settings, stats, o, stage > 0));
    if (st.learn_bits) StartLearningBits(*tg, o);
    std::unique_ptr<torch::optim::Optimizer> opt = MakeOptimizer(o, *tg);
    int first_epoch = 0;
    if (restore_here) {
      LOWBIT_RETURN_IF_ERROR(train::RestoreCheckpoint(ck, *tg, *opt));
      for (const EpochReport& e : ck.history) {
        if (e.stage == static_cast<int>(stage)) report.epochs.push_back(e);
      }
      report.start_val_top1 = ck.stage_start_top1.size() > stage ? ck.stage_start_top1[stage] : NAN;
      first_epoch = ck.epoch + 1;
    } else {
      report.start_val_top1 = EvalTop1(*tg, val, true, o.val_limit, nullptr);
    }
    std::vector<double> starts;
    for (const StageReport& s : r.stages) starts.push_back(s.start_val_top1);
    starts.push_back(report.start_val_top1);
    for (int epoch = first_epoch; epoch < st.epochs; ++epoch) {
      const Clock::time_point t0 = Clock::now();
      std::vector<int64_t> order(static_cast<size_t>(train.n));
      std::iota(order.begin(), order.end(), 0);
      std::mt19937_64 rng(o.seed * 1000003 + stage * 1009 + static_cast<uint64_t>(epoch));
      std::shuffle(order.begin(), order.end(), rng);
      char label[96];
      std::snprintf(label, sizeof(label), "finetune stage %zu/%zu epoch %d/%d", stage + 1, stages.size(),
                    epoch + 1, st.epochs);
      Progress progress(label, train.n, "images", o.quiet);
      double loss_sum = 0, mean_bits = NAN;
      for (int64_t step = 0; step < steps_per_epoch; ++step) {
        const int64_t b0 = step * o.batch, count = std::min(o.batch, train.n - b0);
        const double t = static_cast<double>(epoch * steps_per_epoch + step) /
                         static_cast<double>(st.epochs * steps_per_epoch);
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
        const double task = loss.item<double>();
        if (st.learn_bits) loss = loss + o.bitops_weight * penalty.Relative(*tg, &mean_bits);
        loss.backward();
        opt->step();
        Constrain(*tg);
        if (!std::isfinite(task)) {
          return InvalidArgument("training diverged (loss ", task, ") in stage ", stage + 1, " epoch ",
                                 epoch + 1, "; try a smaller --lr than ", o.lr);
        }
        loss_sum += task * static_cast<double>(count);
        char note[96];
        const int len = std::snprintf(note, sizeof(note), "loss %.4f", loss_sum / static_cast<double>(b0 + count));
        if (st.learn_bits) std::snprintf(note + len, sizeof(note) - len, "  mean bits %.2f", mean_bits);
        progress.SetNote(note);
        progress.Advance(count);
      }
      EpochReport e;
      e.stage = static_cast<int>(stage);
      e.epoch = epoch;
      e.loss = loss_sum / static_cast<double>(train.n);
      e.seconds = Since(t0);
      e.images_per_second = static_cast<double>(train.n) / e.seconds;
      if (st.learn_bits) penalty.Relative(*tg, &e.mean_bits);
      const bool last = stage + 1 == stages.size() && epoch + 1 == st.epochs;
      e.val_top1 = EvalTop1(*tg, val, true, last ? 0 : o.val_limit, last ? &r.val_classes : nullptr);
      report.epochs.push_back(e);
      if (on_epoch) on_epoch(e);
      if (!o.checkpoint_dir.empty()) {
        std::vector<EpochReport> history;
        for (const StageReport& s : r.stages) history.insert(history.end(), s.epochs.begin(), s.epochs.end());
        history.insert(history.end(), report.epochs.begin(), report.epochs.end());
        LOWBIT_RETURN_IF_ERROR(train::SaveCheckpoint(o.checkpoint_dir, key, static_cast<int>(stage), epoch,
                                                     history, starts, learned_plan, *tg, *opt));
      }
    }
    r.stages.push_back(report);
  }
  if (r.val_classes.empty()) EvalTop1(*tg, val, true, 0, &r.val_classes);
  LOWBIT_RETURN_IF_ERROR(Export(*tg, stages.back().settings, &r));
  std::vector<LayerCost> costs;
  LOWBIT_ASSIGN_OR_RETURN(costs, LayerCosts(r.graph));
  for (const LayerCost& c : costs) {
    r.bitops += c.bitops();
    r.bitops_w4a8 += static_cast<double>(c.macs) * 4 * 8;
  }
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
