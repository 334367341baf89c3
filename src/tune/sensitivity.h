// Sensitivity of a model to quantizing one layer or one filter, as the tuner
// and training rank them. Today's output_sqnr_db in a packed file is
// cumulative (every earlier layer quantized too); these are isolated.
#ifndef LOWBIT_TUNE_SENSITIVITY_H_
#define LOWBIT_TUNE_SENSITIVITY_H_

#include <vector>

#include "data/dataset.h"
#include "eval/evaluate.h"
#include "ir/graph.h"
#include "quant/calibrate.h"
#include "quant/layers.h"
#include "quant/quantize_layer.h"

namespace lowbit {

// The metrics of `graph` with only `layer` quantized (the rest fp32).
Result<EvalResult> IsolatedLayerMetric(const Graph& graph, const QuantizedLayer& layer,
                                       Dataset& data, const EvalOptions& options);

// Per filter r of `layer`: the expected squared output error its weight error
// causes in one output value, E[(sum_j (w_rj - wq_rj) x_j)^2], under the
// diagonal approximation of E[x x^T] from the input's per-channel second
// moments: sum_j (w_rj - wq_rj)^2 E[x_c(j)^2]. `wq`: the quantized weights
// (QuantizedLayer::wq).
std::vector<double> FilterOutputErrors(const QuantLayer& layer, const std::vector<float>& wq,
                                       const TensorStats& input);

}  // namespace lowbit

#endif  // LOWBIT_TUNE_SENSITIVITY_H_
