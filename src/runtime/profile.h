// Timing a plan's steps in-process: per-step medians after warm-up, for
// `lowbit bench --profile` and the tuner's per-layer latency tables.
#ifndef LOWBIT_RUNTIME_PROFILE_H_
#define LOWBIT_RUNTIME_PROFILE_H_

#include <string>
#include <vector>

#include "runtime/plan.h"

namespace lowbit {

struct StepTime {
  std::string name, op, algorithm;  // Plan::step_name, step_op, step_algorithm
  double ms = 0;                    // median over the timed runs
};

// Runs `plan` `warmup` times untimed, then `runs` (>= 1) times timed; one
// entry per step, in plan order. The input buffers are used as they are.
std::vector<StepTime> ProfileSteps(Plan* plan, int warmup, int runs);

// Runs `plan` `warmup` times, then times `runs` (>= 1) whole runs: their
// median in milliseconds. The input buffers are used as they are.
double MedianRunMs(Plan* plan, int warmup, int runs);

// The median of `v` (reordered); 0 for none.
double Median(std::vector<double> v);

// Fills every plan's float input 0 with the same standard normal values
// (seed 1, as `lowbit bench`), then times them in `rounds` interleaved
// rounds of MedianRunMs(plan, 3, runs): each plan's median over the rounds.
// Machines that share their cores drift; interleaving spreads the drift.
std::vector<double> InterleavedMedianMs(const std::vector<Plan*>& plans, int rounds, int runs);

}  // namespace lowbit

#endif  // LOWBIT_RUNTIME_PROFILE_H_
