// The tuner's options and results (tune/tuner.h runs it): what a point, a
// layer's measurements and a whole run hold.
#ifndef LOWBIT_TUNE_TUNE_TYPES_H_
#define LOWBIT_TUNE_TUNE_TYPES_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "eval/evaluate.h"
#include "ir/graph.h"
#include "quant/calibrate.h"
#include "quant/quantize_layer.h"
#include "tune/space.h"

namespace lowbit {

enum class TuneMetric { kTop1, kAgreement, kSqnr };

// Where a tuning run stands, after every evaluation.
struct TuneProgress {
  int64_t evaluations = 0;
  double seconds = 0, budget_seconds = 0;
  bool feasible = false;          // a feasible point was found
  double best_objective = 0, best_metric = 0;  // the best feasible point's (when feasible)
};

struct TuneOptions {
  ObjectiveSpec objective;
  TuneMetric metric = TuneMetric::kTop1;
  // Top-1 or agreement: at most this many points below fp32 (with
  // `relative`, this percent of the fp32 value). SQNR: at least min_sqnr dB.
  double max_loss = 1.0;
  bool relative = false;
  double min_sqnr = 20.0;
  // A plan meets the bound when its metric, less z standard errors of its
  // difference to fp32 on these samples (paired, top-1 and agreement),
  // does: z the one-sided normal quantile of `confidence` (0.5: no margin).
  // Choosing among many plans on one validation set favours those its noise
  // flatters; the margin keeps the held-out loss within the bound.
  double confidence = 0.9;
  std::vector<std::string> space;  // SearchSpace
  double budget_seconds = 600;
  int64_t max_evals = 0;  // plan evaluations (0: until the budget or convergence)
  std::string journal;    // path; "" keeps records in memory only
  uint64_t seed = 1;
  // Instead of the method above: max_evals plans drawn at random (each
  // layer a uniformly drawn valid setting), for comparison.
  bool random_search = false;
  int threads = 1;
  bool quiet = false;
  CalibrateOptions calib;
  LayerQuantOptions layer;
  EvalOptions eval;  // batch, preprocessing, limit of the validation data
  // Called after every evaluation on the calling thread (optional).
  std::function<void(const TuneProgress&)> on_progress;
};

struct TunePoint {
  std::vector<int> choice;  // setting index per layer (into TuneResult::space)
  double objective = 0;     // the objective's value (relative units, see ObjectiveSpec)
  int64_t bytes = 0;        // weights and biases of the quantizable layers
  double bitops = 0;        // per sample
  double latency_ms = 0;    // sum of the layers' measured step medians
  // End to end (batch 1, median of interleaved rounds) and fp32's in the same
  // rounds, for the plans a latency objective confirms; 0 when not measured.
  double e2e_ms = 0, e2e_fp32_ms = 0;
  double metric = 0;        // on the validation data
  double se = 0;            // standard error of its difference to fp32 (metric units)
  bool feasible = false;    // metric - z * se >= bound
  std::string phase;        // uniform, sweep, bisect, descent, pairs, front
};

struct TuneLayer {
  std::string name;
  int64_t macs = 0, params = 0;
  std::vector<bool> valid;          // per setting: the kernels run it here
  std::vector<double> loss;         // isolated metric loss per setting
  std::vector<int64_t> bytes;
  std::vector<double> bitops, ms;
};

struct TuneResult {
  std::vector<std::string> space;
  std::vector<TuneLayer> layers;
  double fp32_metric = 0, bound = 0;  // the metric must be >= bound
  double z = 0;                       // standard errors of margin (TuneOptions::confidence)
  int64_t fp32_bytes = 0;
  double fp32_bitops = 0, fp32_ms = 0;
  std::vector<TunePoint> points;  // in evaluation order
  std::vector<int> front;         // indices into points: the Pareto front, by objective
  int best = -1;                  // index into points
  bool feasible = false;
  int64_t evaluations = 0, resumed = 0;
  CalibrationStats stats;  // the calibration every measurement used
  double seconds = 0, sensitivity_seconds = 0;

  // The plan of a point (the JSON `lowbit quantize --plan` reads).
  std::vector<std::pair<std::string, LayerSettings>> Plan(const TunePoint& p) const;
};

}  // namespace lowbit

#endif  // LOWBIT_TUNE_TUNE_TYPES_H_
