// Error-compensated rounding (GPTQ, Frantar et al. 2023, after Optimal Brain
// Quantization): a layer's weights are coded one input column at a time, and
// each column's rounding error is pushed onto the columns not yet coded,
// weighted by the inverse of the layer input's Gram matrix H = sum x x^T, so
// that the layer's output error ||(W - Q) X|| -- not the weights' -- is what
// the rounding minimizes. The format's parameters (scales, zero points, level
// tables) are fitted as before; only the codes change, so the file size and
// the kernels are the same as nearest rounding's.
//
// H comes from calibration: for a Gemm/MatMul the rows of its input, for a
// Conv the im2col patches of its input (column c = (channel * kh + y) * kw + x,
// the weight's column order), gathered in Calibrate when asked for.
#ifndef LOWBIT_QUANT_GPTQ_H_
#define LOWBIT_QUANT_GPTQ_H_

#include <cstdint>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "lowbit/status.h"
#include "model/packed_node.h"
#include "quant/layers.h"

namespace lowbit {

// Sum of x x^T over the input rows of one layer (upper triangle kept).
struct InputGram {
  int64_t cols = 0;
  int64_t rows = 0;       // input rows (samples x output positions) summed
  std::vector<double> h;  // cols x cols, row-major; entries below the diagonal unused
  // From PrepareGptq: the coding order of the columns and the upper Cholesky
  // factor of the (dampened, permuted) inverse of H.
  std::vector<int64_t> order;
  std::vector<double> u;

  bool operator==(const InputGram&) const = default;
};

// Fills gram->order and gram->u from gram->h: once per layer, shared by every
// setting the layer is quantized under.
Status PrepareGptq(const std::string& layer, InputGram* gram);

// The widest layer (weight columns) whose Gram matrix calibration gathers for
// GPTQ: 1152 (ResNet-18's 128-channel 3x3 convs) keeps the matrices under
// 11 MB each and their factorization under a second.
inline constexpr int64_t kGptqMaxCols = 1152;

// Whether a Gram matrix of `layer`'s input can be gathered: an ungrouped Conv
// or a Gemm/MatMul with at most `max_cols` weight columns.
bool GramApplies(const Graph& graph, const QuantLayer& layer, int64_t max_cols);

// Adds the input rows of one batch to `gram`: `x` is the first `used` values
// of the layer's input (shape `shape`, batch first). A Conv contributes at
// most kMaxPositions output positions per sample, evenly spaced.
inline constexpr int64_t kGramMaxPositions = 256;
Status AccumulateGram(const Graph& graph, const QuantLayer& layer, const Shape& shape,
                      const float* x, int64_t used, InputGram* gram);

// Re-codes every part of `parts` (fitted to layer.w) by error-compensated
// rounding under `gram` (prepared), columns in order of decreasing H
// diagonal. Float parts are left as they are. Refuses a Gram of another
// width.
Status GptqRound(const QuantLayer& layer, const InputGram& gram, PackedParts* parts);

}  // namespace lowbit

#endif  // LOWBIT_QUANT_GPTQ_H_
