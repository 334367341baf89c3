// The auto-tuner: a weight setting (format family, bit width, filter-wise
// mix, or fp32) for every layer, minimizing the objective (tune/space.h)
// while the metric on the validation data stays within the bound.
//
// Method (deterministic for a given seed and evaluation cap):
//  1. Calibrate once; per layer and setting, quantize only that layer and
//     measure its isolated loss on the validation data (tune/sensitivity.h)
//     and its exact costs: bytes from the packer, bit-ops from MACs x bits,
//     latency as the median of that layer's step in a plan on this CPU.
//  2. Uniform plans (every layer the same setting), for reference.
//  3. A Lagrangian sweep over the additive proxy (cost + lambda * isolated
//     loss), each distinct plan evaluated for real, then bisection of lambda
//     at the bound.
//  4. Greedy descent from the best feasible plan (cheaper settings in order
//     of cost saved per proxy loss), then seeded pairwise moves (one layer
//     cheaper, one dearer) until they stop finding cheaper plans.
//  5. The same descent and moves at two tighter levels between the bound and
//     fp32 (SQNR: 3 and 6 dB above it), so that the front above the bound
//     is searched too, until the evaluation cap or the time budget.
//  6. With a latency objective, the per-layer table only estimates a plan's
//     time (a layer runs other kernels beside quantized neighbours): the
//     cheapest feasible plans and the feasible uniform ones are re-measured
//     end to end, and the best is chosen by that time.
// Every evaluation goes to the journal (tune/journal.h) first, so a killed
// run resumes without repeating one. Returns every evaluated point, the
// Pareto front (objective vs metric), and the best feasible point -- or, when
// none meets the bound, the most accurate one (feasible false).
#ifndef LOWBIT_TUNE_TUNER_H_
#define LOWBIT_TUNE_TUNER_H_

#include "data/dataset.h"
#include "ir/graph.h"
#include "lowbit/status.h"
#include "tune/tune_types.h"

namespace lowbit {

// `graph` is an optimized fp32 graph with one input; `calib` and `val` its
// calibration and validation data (val labelled for the top-1 metric).
Result<TuneResult> Tune(const Graph& graph, Dataset& calib, Dataset& val, const TuneOptions& options);

}  // namespace lowbit

#endif  // LOWBIT_TUNE_TUNER_H_
