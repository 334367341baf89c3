// The layers post-training quantization works on: Conv (constant weight),
// Gemm (constant B; alpha and beta folded) and MatMul (constant 2-D B), each
// with its weight as [rows, ...] where rows are the output channels
// (filters), and its costs.
#ifndef LOWBIT_QUANT_LAYERS_H_
#define LOWBIT_QUANT_LAYERS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "ir/graph.h"

namespace lowbit {

struct QuantLayer {
  int node = -1;             // index in the graph's nodes
  std::string name, op, x;   // op: Conv, Gemm, MatMul; x: the input
  Shape wshape;              // [rows, ...]: Conv [M, C/group, kh, kw], else [N, K]
  std::vector<float> w;
  std::vector<float> bias;   // empty: none
  int channel_axis = 1;      // of x, for per-channel input statistics (-1: last)
  int64_t group = 1;

  int64_t rows() const { return wshape.empty() ? 0 : wshape[0]; }
  int64_t cols() const { return rows() == 0 ? 0 : static_cast<int64_t>(w.size()) / rows(); }
};

// The quantizable layers of `graph`, in graph order.
std::vector<QuantLayer> QuantLayers(const Graph& graph);

}  // namespace lowbit

#endif  // LOWBIT_QUANT_LAYERS_H_
