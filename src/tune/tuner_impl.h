// The tuner's state and steps (tune/tuner.h describes the method), shared
// by tuner.cc (measurements, evaluation, the run) and search.cc (the search
// phases). Internal to lowbit_tune.
#ifndef LOWBIT_TUNE_TUNER_IMPL_H_
#define LOWBIT_TUNE_TUNER_IMPL_H_

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "eval/evaluate.h"
#include "quant/quantize_layer.h"
#include "tune/fanout.h"
#include "tune/journal.h"
#include "tune/tune_types.h"

namespace lowbit::tune_detail {

using Clock = std::chrono::steady_clock;

inline double Since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// A number of a journal record (null, JSON's stand-in for infinity, reads as
// +inf).
double Number(const nlohmann::json& rec, const char* key);

class Tuner {
 public:
  Tuner(const Graph& g, Dataset& calib, Dataset& val, const TuneOptions& o)
      : g_(g), calib_(calib), val_(val), o_(o) {}

  Result<TuneResult> Run();

 private:
  Status Prepare();
  // Quantizes layer l with setting s and takes its costs; its isolated loss
  // and latency come from the journal, or are measured when this rank owns
  // the item (into `shared`, for Prepare to give to every rank).
  Status MeasureLayer(int l, int s, std::vector<double>* shared);
  double Cost(int l, int s) const;
  double Proxy(int l, int s) const { return r_.layers[l].loss[s]; }
  // Evaluates a plan (or reads it from the journal); false when out of budget.
  Result<bool> Evaluate(const std::vector<int>& choice, const std::string& phase);
  // A plan's metric and the standard error of its difference to fp32.
  Result<std::pair<double, double>> Measure(const std::vector<int>& choice);
  std::string PlanName(const std::vector<int>& choice) const;
  // Under MPI: the ranks measure these plans between them, ahead of the
  // search that evaluates them in order (one process: nothing).
  Status Prefetch(std::vector<std::vector<int>> plans);
  bool OutOfBudget() const {
    return (o_.max_evals > 0 && r_.evaluations >= o_.max_evals) ||
           Since(start_) >= o_.budget_seconds;
  }
  std::vector<int> Lagrangian(double lambda) const;
  // Whether point i meets `level` (the bound, or a tighter level while the
  // front above the bound is filled) with the margin; the cheapest that does.
  bool Meets(int i, double level) const {
    return r_.points[i].metric - r_.z * r_.points[i].se >= level;
  }
  int BestMeeting(double level) const;
  int BestFeasible() const { return BestMeeting(r_.bound); }
  // Every layer setting s (a layer the kernels cannot run it on: its first
  // valid setting).
  std::vector<int> Uniform(int s) const;
  // The sweep's lambda k: cost units per unit of proxy loss, over 8 decades
  // around the ratio of the costs to the allowed loss.
  double SweepLambda(int k) const;
  Status Sweep();
  // From the cheapest plan meeting `level`: greedy moves to cheaper settings,
  // then seeded pairwise moves, each kept while the plan still meets it.
  Status Descend(double level, const std::string& phase);
  Status Pairs(double level, const std::string& phase, uint64_t seed);
  // Tighter levels between the bound and fp32, for the front above the bound.
  std::vector<double> FrontLevels() const;
  // Step 6 (latency objectives): end-to-end times of the candidates.
  Status Confirm();
  // A point's objective with its latency term from the end-to-end time.
  double ConfirmedObjective(const TunePoint& p) const;
  Status RandomSearch();
  void Finish();
  void ShowProgress(bool final = false);

  const Graph& g_;
  Dataset& calib_;
  Dataset& val_;
  const TuneOptions& o_;
  TuneResult r_;
  std::unique_ptr<Journal> journal_;
  std::unique_ptr<Dataset> val_mem_;
  CalibrationStats stats_;
  std::vector<QuantLayer> layers_;
  ReferenceOutputs ref_;
  std::map<std::pair<int, int>, QuantizedLayer> quantized_;
  std::map<std::vector<int>, int> seen_;  // plan -> index into r_.points
  const Fanout& fan_ = Fanout::Get();
  std::map<std::vector<int>, std::pair<double, double>> prefetched_;  // plan -> (metric, se)
  Clock::time_point start_ = Clock::now();
  Clock::time_point last_draw_ = Clock::now();
  bool progress_ = false;
};

}  // namespace lowbit::tune_detail

#endif  // LOWBIT_TUNE_TUNER_IMPL_H_
