// Fine-tuning the front (lowbit tune --finetune): training wins back much of
// what post-training quantization loses, so the cheapest front point that
// meets the bound once trained may lie well below the tuner's choice. The
// front is ordered by objective and, being a Pareto front, by accuracy, so
// trained accuracy is close to monotone along it too: a bisection over the
// points cheaper than the choice finds the cheapest that meets the bound
// after training in about log2(n) trainings, each a client-supplied
// function (training lives outside this library: src/train).
#ifndef LOWBIT_TUNE_REFINE_H_
#define LOWBIT_TUNE_REFINE_H_

#include <functional>
#include <string>
#include <vector>

#include "lowbit/status.h"
#include "tune/tuner.h"

namespace lowbit {

struct RefinedPoint {
  int point = -1;           // index into TuneResult::points
  double metric = 0, se = 0;  // of the trained model on the validation data
  bool feasible = false;    // metric - z * se >= bound
  std::string artifact;     // the trained model's file
  double seconds = 0;
};

// Trains point `point` and evaluates it (metric and standard error as the
// tuner computes them); `feasible` is set by RefineFront.
using RefineFn = std::function<Result<RefinedPoint>(int point)>;

// The trainings done, in order; *chosen: index into them of the cheapest
// feasible trained point, or -1 (keep the tuner's choice). Stops bisecting
// when `budget_seconds` (> 0) are spent.
Result<std::vector<RefinedPoint>> RefineFront(const TuneResult& r, const RefineFn& refine,
                                              double budget_seconds, int* chosen);

}  // namespace lowbit

#endif  // LOWBIT_TUNE_REFINE_H_
