#include "tune/tuner.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>
#include <memory>
#include <set>
#include <tuple>

#include "base/rng.h"
#include "quant/cost.h"
#include "runtime/plan.h"
#include "runtime/profile.h"
#include "tune/fanout.h"
#include "tune/journal.h"
#include "tune/sensitivity.h"
#include "tune/tuner_impl.h"

namespace lowbit {
namespace tune_detail {

// A number of a journal record. JSON has no infinity: an SQNR of an exact
// plan (every layer fp32) is written as null and read back as +inf.
double Number(const nlohmann::json& rec, const char* key) {
  const auto it = rec.find(key);
  if (it == rec.end()) return 0.0;
  if (it->is_null()) return std::numeric_limits<double>::infinity();
  return it->is_number() ? it->get<double>() : 0.0;
}

namespace {

// Bits of each filter of a quantized layer (its formats and assignment).
std::vector<int> FilterBits(const LayerReport& r, int64_t rows) {
  const std::string& w = r.settings.weights;
  std::vector<int> bits;
  size_t b = 0;
  for (size_t e; (e = w.find('/', b)) != std::string::npos; b = e + 1) {
    bits.push_back(ParseFormat(w.substr(b, e - b))->bits);
  }
  bits.push_back(ParseFormat(w.substr(b, w.find(':', b) - b))->bits);
  std::vector<int> out(rows, bits[0]);
  for (size_t i = 0; i < r.settings.filters.size() && static_cast<int64_t>(i) < rows; ++i) {
    out[i] = bits[r.settings.filters[i]];
  }
  return out;
}

// The one-sided standard normal quantile of p (bisection on erfc).
double NormalQuantile(double p) {
  double lo = -10, hi = 10;
  for (int i = 0; i < 100; ++i) {
    const double mid = 0.5 * (lo + hi);
    (0.5 * std::erfc(-mid / std::sqrt(2.0)) < p ? lo : hi) = mid;
  }
  return 0.5 * (lo + hi);
}


}  // namespace

Status Tuner::Prepare() {
  layers_ = QuantLayers(g_);
  if (layers_.empty()) {
    return InvalidArgument(g_.source, ": no layer to tune (Conv, Gemm or MatMul with constant weights)");
  }
  r_.space = o_.space;
  progress_ = !o_.quiet && isatty(fileno(stderr));
  // The journal's key: the model, the data and every option that changes a
  // measurement (not the bound, margin or search: their decisions are
  // derived again from the recorded measurements, so a journal serves runs
  // with other bounds too).
  std::string key = ModelFingerprint(g_) + "|" + DataKey(calib_, o_.calib.preprocess) + "|" +
                    DataKey(val_, o_.eval.preprocess) + "|";
  for (const std::string& s : o_.space) key += s + ",";
  char b[160];
  std::snprintf(b, sizeof b, "|metric%d latency%d seed%llu limit%lld gram%lld",
                static_cast<int>(o_.metric), o_.objective.latency > 0 ? 1 : 0,
                static_cast<unsigned long long>(o_.seed), static_cast<long long>(o_.eval.limit),
                static_cast<long long>(o_.layer.gptq ? o_.calib.gram_max_cols : 0));
  key += b;
  if (!o_.journal.empty()) {
    LOWBIT_ASSIGN_OR_RETURN(journal_, Journal::Open(o_.journal, key, /*append=*/fan_.rank() == 0));
  } else {
    journal_ = std::make_unique<Journal>();
  }
  r_.resumed = journal_->resumed();
  r_.z = o_.metric == TuneMetric::kSqnr ? 0.0 : std::max(0.0, NormalQuantile(o_.confidence));
  // Calibration, cached beside the journal.
  const std::string calib_path = o_.journal.empty() ? "" : o_.journal + ".calib.json";
  Result<CalibrationStats> cached = calib_path.empty()
                                        ? Result<CalibrationStats>(NotFound("no cache"))
                                        : CalibrationStats::Load(calib_path, ModelFingerprint(g_),
                                                                 DataKey(calib_, o_.calib.preprocess));
  // A cache without the Gram matrices GPTQ needs (or with some it does not)
  // is calibrated again.
  size_t grams = 0;
  for (const QuantLayer& l : layers_) grams += GramApplies(g_, l, o_.calib.gram_max_cols) ? 1 : 0;
  if (cached.ok() && cached->grams.size() == grams) {
    stats_ = std::move(cached).value();
  } else {
    CalibrateOptions co = o_.calib;
    co.quiet = o_.quiet;
    LOWBIT_ASSIGN_OR_RETURN(stats_, Calibrate(g_, calib_, co));
    if (!calib_path.empty() && fan_.rank() == 0) LOWBIT_RETURN_IF_ERROR(stats_.Save(calib_path));
  }
  LOWBIT_ASSIGN_OR_RETURN(val_mem_, LoadIntoMemory(val_));
  EvalOptions eo = o_.eval;
  eo.labels = o_.metric == TuneMetric::kTop1;
  eo.quiet = true;
  EvalResult fp32;
  LOWBIT_ASSIGN_OR_RETURN(fp32, lowbit::Evaluate(g_, *val_mem_, eo, &ref_));
  if (o_.metric == TuneMetric::kTop1) {
    r_.fp32_metric = fp32.top1;
    r_.bound = o_.relative ? fp32.top1 * (1 - o_.max_loss / 100) : fp32.top1 - o_.max_loss;
  } else if (o_.metric == TuneMetric::kAgreement) {
    r_.fp32_metric = 100;
    r_.bound = o_.relative ? 100 * (1 - o_.max_loss / 100) : 100 - o_.max_loss;
  } else {
    r_.fp32_metric = std::numeric_limits<double>::infinity();
    r_.bound = o_.min_sqnr;
  }
  // fp32 costs, for the objective's units.
  std::vector<LayerCost> costs;
  LOWBIT_ASSIGN_OR_RETURN(costs, LayerCosts(g_));
  r_.layers.resize(layers_.size());
  for (size_t l = 0; l < layers_.size(); ++l) {
    TuneLayer& tl = r_.layers[l];
    tl.name = layers_[l].name;
    for (const LayerCost& c : costs) {
      if (c.node == layers_[l].node) tl.macs = c.macs;
    }
    tl.params = static_cast<int64_t>(layers_[l].w.size());
    r_.fp32_bytes += tl.params * 4 + static_cast<int64_t>(layers_[l].bias.size()) * 4;
    r_.fp32_bitops += static_cast<double>(tl.macs) * 32 * 32;
  }
  if (o_.objective.latency > 0) {
    PlanOptions po;
    po.threads = o_.threads;
    std::unique_ptr<Plan> plan;
    LOWBIT_ASSIGN_OR_RETURN(plan, Plan::Create(g_, po));
    for (const StepTime& st : ProfileSteps(plan.get(), 5, 25)) {
      for (const QuantLayer& l : layers_) r_.fp32_ms += st.name == l.name ? st.ms : 0.0;
    }
  }
  // Per layer and setting: costs and isolated loss.
  const auto t0 = Clock::now();
  const int64_t total = static_cast<int64_t>(layers_.size() * o_.space.size());
  int64_t done = 0;
  // Per item (layer x setting) measured here: 1, loss, ms (0s elsewhere).
  std::vector<double> shared(3 * total, 0.0);
  for (size_t l = 0; l < layers_.size(); ++l) {
    TuneLayer& tl = r_.layers[l];
    tl.valid.assign(o_.space.size(), false);
    tl.loss.assign(o_.space.size(), 0.0);
    tl.bytes.assign(o_.space.size(), 0);
    tl.bitops.assign(o_.space.size(), 0.0);
    tl.ms.assign(o_.space.size(), 0.0);
    for (size_t s = 0; s < o_.space.size(); ++s) {
      LOWBIT_RETURN_IF_ERROR(MeasureLayer(static_cast<int>(l), static_cast<int>(s), &shared));
      ++done;
      if (progress_ && Since(last_draw_) > 0.1) {
        std::fprintf(stderr, "\r\033[Ktune: layer sensitivity %lld/%lld", static_cast<long long>(done),
                     static_cast<long long>(total));
        last_draw_ = Clock::now();
      }
    }
  }
  // Every rank gets the measurements the others made; the first records them.
  shared = fan_.Share(shared);
  for (size_t l = 0; l < layers_.size(); ++l) {
    for (size_t s = 0; s < o_.space.size(); ++s) {
      const size_t item = l * o_.space.size() + s;
      if (shared[3 * item] == 0) continue;
      TuneLayer& tl = r_.layers[l];
      tl.loss[s] = shared[3 * item + 1];
      tl.ms[s] = shared[3 * item + 2];
      if (fan_.rank() == 0) {
        LOWBIT_RETURN_IF_ERROR(journal_->Append("layer/" + tl.name + "/" + o_.space[s],
                                                {{"valid", true}, {"loss", tl.loss[s]}, {"ms", tl.ms[s]}}));
      }
    }
  }
  r_.sensitivity_seconds = Since(t0);
  return OkStatus();
}

Status Tuner::MeasureLayer(int l, int s, std::vector<double>* shared) {
  TuneLayer& tl = r_.layers[l];
  const QuantLayer& layer = layers_[l];
  LayerSettings settings;
  settings.weights = o_.space[s];
  Result<QuantizedLayer> q = QuantizeLayer(g_, layer, settings, &stats_, o_.layer);
  const std::string name = "layer/" + layer.name + "/" + o_.space[s];
  if (!q.ok()) {  // the kernels do not run this setting here
    if (journal_->Find(name) == nullptr && fan_.rank() == 0) {
      LOWBIT_RETURN_IF_ERROR(journal_->Append(name, {{"valid", false}}));
    }
    return OkStatus();
  }
  tl.valid[s] = true;
  const int64_t bias = !layer.bias.empty() || q->constants.count(layer.name + ".bias")
                           ? layer.rows() * 4
                           : 0;
  tl.bytes[s] = q->report.bytes + bias;
  if (q->report.quantized) {
    double bits = 0;
    for (int b : FilterBits(q->report, layer.rows())) bits += b;
    tl.bitops[s] = static_cast<double>(tl.macs) / static_cast<double>(layer.rows()) * bits * 8;
  } else {
    tl.bitops[s] = static_cast<double>(tl.macs) * 32 * 32;
  }
  if (const nlohmann::json* rec = journal_->Find(name)) {
    tl.loss[s] = Number(*rec, "loss");
    tl.ms[s] = Number(*rec, "ms");
  } else if (fan_.Owns(l * static_cast<int>(o_.space.size()) + s)) {
    EvalOptions eo = o_.eval;
    eo.labels = o_.metric == TuneMetric::kTop1;
    eo.reference = &ref_;
    eo.quiet = true;
    EvalResult m;
    LOWBIT_ASSIGN_OR_RETURN(m, IsolatedLayerMetric(g_, *q, *val_mem_, eo));
    // Proxy loss: points for top-1 and agreement; for SQNR the noise-to-signal
    // ratio, which adds over layers.
    tl.loss[s] = o_.metric == TuneMetric::kTop1       ? r_.fp32_metric - m.top1
                 : o_.metric == TuneMetric::kAgreement ? 100 - m.agreement
                                                       : std::pow(10.0, -m.sqnr_db / 10);
    if (o_.objective.latency > 0) {
      PlanOptions po;
      po.threads = o_.threads;
      std::unique_ptr<Plan> plan;
      LOWBIT_ASSIGN_OR_RETURN(plan, Plan::Create(AssembleGraph(g_, {&*q}), po));
      for (const StepTime& st : ProfileSteps(plan.get(), 3, 15)) {
        if (st.name == layer.name) tl.ms[s] = st.ms;
      }
    }
    const size_t item = static_cast<size_t>(l) * o_.space.size() + s;
    (*shared)[3 * item] = 1;
    (*shared)[3 * item + 1] = tl.loss[s];
    (*shared)[3 * item + 2] = tl.ms[s];
  }
  q->wq.clear();  // (the decoded weights: not needed here, and large)
  q->wq.shrink_to_fit();
  quantized_[{l, s}] = std::move(q).value();
  return OkStatus();
}

double Tuner::Cost(int l, int s) const {
  const TuneLayer& tl = r_.layers[l];
  double c = 0;
  if (o_.objective.size > 0) c += o_.objective.size * static_cast<double>(tl.bytes[s]) / r_.fp32_bytes;
  if (o_.objective.bitops > 0) c += o_.objective.bitops * tl.bitops[s] / r_.fp32_bitops;
  if (o_.objective.latency > 0 && r_.fp32_ms > 0) c += o_.objective.latency * tl.ms[s] / r_.fp32_ms;
  return c;
}

Result<std::pair<double, double>> Tuner::Measure(const std::vector<int>& choice) {
  std::vector<const QuantizedLayer*> parts;
  for (size_t l = 0; l < choice.size(); ++l) {
    parts.push_back(&quantized_.at({static_cast<int>(l), choice[l]}));
  }
  EvalOptions eo = o_.eval;
  eo.labels = o_.metric == TuneMetric::kTop1;
  eo.reference = &ref_;
  eo.quiet = true;
  EvalResult m;
  LOWBIT_ASSIGN_OR_RETURN(m, lowbit::Evaluate(AssembleGraph(g_, parts), *val_mem_, eo));
  const double metric = o_.metric == TuneMetric::kTop1       ? m.top1
                        : o_.metric == TuneMetric::kAgreement ? m.agreement
                                                              : m.sqnr_db;
  // Standard error of the difference to fp32 over the n samples (paired for
  // top-1: the samples one gets right and the other wrong).
  double se = 0;
  const double n = static_cast<double>(std::max<int64_t>(m.samples, 1));
  if (o_.metric == TuneMetric::kTop1) {
    const double b = static_cast<double>(m.lost) / n, c = static_cast<double>(m.gained) / n;
    se = 100 * std::sqrt(std::max(0.0, b + c - (b - c) * (b - c)) / n);
  } else if (o_.metric == TuneMetric::kAgreement) {
    const double q = 1 - m.agreement / 100;
    se = 100 * std::sqrt(q * (1 - q) / n);
  }
  return std::make_pair(metric, se);
}

std::string Tuner::PlanName(const std::vector<int>& choice) const {
  std::string name = "plan/";
  for (size_t l = 0; l < choice.size(); ++l) name += (l ? "," : "") + o_.space[choice[l]];
  return name;
}

Status Tuner::Prefetch(std::vector<std::vector<int>> plans) {
  if (fan_.size() == 1) return OkStatus();
  std::sort(plans.begin(), plans.end());
  plans.erase(std::unique(plans.begin(), plans.end()), plans.end());
  std::vector<std::vector<int>> todo;
  for (const auto& p : plans) {
    if (!seen_.count(p) && !prefetched_.count(p) && journal_->Find(PlanName(p)) == nullptr) todo.push_back(p);
  }
  std::vector<double> shared(2 * todo.size(), 0.0);
  for (size_t i = 0; i < todo.size(); ++i) {
    if (!fan_.Owns(static_cast<int>(i))) continue;
    std::pair<double, double> m;
    LOWBIT_ASSIGN_OR_RETURN(m, Measure(todo[i]));
    shared[2 * i] = m.first;
    shared[2 * i + 1] = m.second;
  }
  shared = fan_.Share(shared);
  for (size_t i = 0; i < todo.size(); ++i) prefetched_[todo[i]] = {shared[2 * i], shared[2 * i + 1]};
  return OkStatus();
}

Result<bool> Tuner::Evaluate(const std::vector<int>& choice, const std::string& phase) {
  if (seen_.count(choice)) return true;
  // The stop decision is rank 0's, shared, so every rank walks the same search.
  // The first plan is evaluated even when the per-layer measurements spent
  // the budget, so that a run always ends with a point to write.
  bool stop = OutOfBudget() && r_.evaluations > 0;
  if (fan_.size() > 1) stop = fan_.Share({fan_.rank() == 0 && stop ? 1.0 : 0.0})[0] > 0;
  if (stop) return false;
  TunePoint p;
  p.choice = choice;
  p.phase = phase;
  for (size_t l = 0; l < choice.size(); ++l) {
    p.objective += Cost(static_cast<int>(l), choice[l]);
    p.bytes += r_.layers[l].bytes[choice[l]];
    p.bitops += r_.layers[l].bitops[choice[l]];
    p.latency_ms += r_.layers[l].ms[choice[l]];
  }
  const std::string name = PlanName(choice);
  if (const nlohmann::json* rec = journal_->Find(name)) {
    p.metric = Number(*rec, "metric");
    p.se = Number(*rec, "se");
  } else {
    auto it = prefetched_.find(choice);
    if (it != prefetched_.end()) {
      std::tie(p.metric, p.se) = it->second;
    } else {
      std::pair<double, double> m;
      LOWBIT_ASSIGN_OR_RETURN(m, Measure(choice));
      std::tie(p.metric, p.se) = m;
    }
    if (fan_.rank() == 0) {
      LOWBIT_RETURN_IF_ERROR(journal_->Append(name, {{"metric", p.metric}, {"se", p.se}}));
    }
  }
  p.feasible = p.metric - r_.z * p.se >= r_.bound;
  seen_[choice] = static_cast<int>(r_.points.size());
  r_.points.push_back(p);
  ++r_.evaluations;
  ShowProgress();
  return true;
}

void Tuner::ShowProgress(bool final) {
  if (o_.on_progress && !final) {
    TuneProgress tp;
    tp.evaluations = r_.evaluations;
    tp.seconds = Since(start_);
    tp.budget_seconds = o_.budget_seconds;
    const int b = BestFeasible();
    tp.feasible = b >= 0;
    if (b >= 0) {
      tp.best_objective = r_.points[b].objective;
      tp.best_metric = r_.points[b].metric;
    }
    o_.on_progress(tp);
  }
  if (!progress_ || (!final && Since(last_draw_) < 0.1)) return;
  last_draw_ = Clock::now();
  const double t = Since(start_);
  const int best = BestFeasible();
  char line[256];
  std::snprintf(line, sizeof line, "tune: %lld evaluations, %.1f/s, ", static_cast<long long>(r_.evaluations),
                static_cast<double>(r_.evaluations) / std::max(t, 1e-9));
  std::string s = line;
  if (best >= 0) {
    std::snprintf(line, sizeof line, "best feasible objective %.4g (metric %.2f), ",
                  r_.points[best].objective, r_.points[best].metric);
    s += line;
  } else {
    s += "none feasible yet, ";
  }
  std::snprintf(line, sizeof line, "%.0fs left", std::max(0.0, o_.budget_seconds - t));
  s += line;
  std::fprintf(stderr, "\r\033[K%s%s", s.c_str(), final ? "\n" : "");
}

void Tuner::Finish() {
  int best = BestFeasible();
  // Confirmed end to end (latency objectives): the best of those by that time.
  for (size_t i = 0; i < r_.points.size(); ++i) {
    const TunePoint& p = r_.points[i];
    if (!p.feasible || !(p.e2e_ms > 0)) continue;
    if (!(r_.points[best].e2e_ms > 0) || ConfirmedObjective(p) < ConfirmedObjective(r_.points[best])) {
      best = static_cast<int>(i);
    }
  }
  r_.feasible = best >= 0;
  r_.best = best;
  if (best < 0) {
    for (size_t i = 0; i < r_.points.size(); ++i) {
      if (r_.best < 0 || r_.points[i].metric > r_.points[r_.best].metric) r_.best = static_cast<int>(i);
    }
  }
  std::vector<int> order(r_.points.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int>(i);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
    return r_.points[a].objective != r_.points[b].objective
               ? r_.points[a].objective < r_.points[b].objective
               : r_.points[a].metric > r_.points[b].metric;
  });
  // From the cheapest up: a point is on the front when no cheaper (or as
  // cheap) point reaches its metric.
  double top = -std::numeric_limits<double>::infinity();
  r_.front.clear();
  for (int i : order) {
    if (r_.points[i].metric > top) {
      top = r_.points[i].metric;
      r_.front.push_back(i);
    }
  }
  if (progress_) std::fprintf(stderr, "\r\033[K");
}

Result<TuneResult> Tuner::Run() {
  LOWBIT_RETURN_IF_ERROR(Prepare());
  if (o_.random_search) {
    if (o_.max_evals <= 0) return InvalidArgument("a random search needs --max-evals");
    LOWBIT_RETURN_IF_ERROR(RandomSearch());
    Finish();
    r_.seconds = Since(start_);
    r_.stats = std::move(stats_);
    return std::move(r_);
  }
  LOWBIT_RETURN_IF_ERROR(Sweep());
  LOWBIT_RETURN_IF_ERROR(Descend(r_.bound, "descent"));
  LOWBIT_RETURN_IF_ERROR(Pairs(r_.bound, "pairs", o_.seed));
  // The budget left goes to the front above the bound: the cheapest plans
  // that keep more accuracy (a user trading some size back for it).
  const std::vector<double> levels = FrontLevels();
  for (size_t i = 0; i < levels.size() && !OutOfBudget(); ++i) {
    LOWBIT_RETURN_IF_ERROR(Descend(levels[i], "front"));
    LOWBIT_RETURN_IF_ERROR(Pairs(levels[i], "front", o_.seed + 1 + i));
  }
  if (o_.objective.latency > 0) LOWBIT_RETURN_IF_ERROR(Confirm());
  Finish();
  r_.seconds = Since(start_);
  r_.stats = std::move(stats_);
  return std::move(r_);
}

}  // namespace tune_detail

std::vector<std::pair<std::string, LayerSettings>> TuneResult::Plan(const TunePoint& p) const {
  std::vector<std::pair<std::string, LayerSettings>> out;
  for (size_t l = 0; l < layers.size(); ++l) {
    LayerSettings s;
    s.weights = space[p.choice[l]];
    out.push_back({layers[l].name, s});
  }
  return out;
}

Result<TuneResult> Tune(const Graph& graph, Dataset& calib, Dataset& val, const TuneOptions& o) {
  if (o.space.empty()) return InvalidArgument("the search space is empty");
  if (!(o.max_loss >= 0)) return InvalidArgument("--max-loss must be >= 0, got ", o.max_loss);
  if (o.relative && o.max_loss >= 100) {
    return InvalidArgument("--max-loss ", o.max_loss, " --relative: must be below 100 percent");
  }
  if (!(o.confidence >= 0.5 && o.confidence < 1)) {
    return InvalidArgument("--confidence must be in [0.5, 1), got ", o.confidence);
  }
  if (o.metric == TuneMetric::kTop1 && !val.has_labels()) {
    return InvalidArgument("--val '", val.spec(),
                           "' has no labels: use --metric agreement or sqnr (against the fp32 model)");
  }
  tune_detail::Tuner t(graph, calib, val, o);
  return t.Run();
}

}  // namespace lowbit
