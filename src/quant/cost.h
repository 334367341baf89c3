// Exact costs of a model's layers (fp32 or packed): multiply-accumulates from
// the layer geometry, bytes from the packer, bit-operations. One function per
// cost, shared by `lowbit inspect`, the tuner and training.
#ifndef LOWBIT_QUANT_COST_H_
#define LOWBIT_QUANT_COST_H_

#include <cstdint>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "lowbit/status.h"

namespace lowbit {

struct LayerCost {
  int node = -1;
  std::string name, op;  // op: Conv, Gemm, MatMul, PackedConv, PackedGemm
  std::string format = "fp32", granularity = "-";
  double wbits = 32;  // mean over filters for filter-wise formats
  int abits = 32;     // 8 for integer kernels, 32 for fp32 activations
  int64_t params = 0;
  int64_t filters = 0;       // output channels
  int64_t weight_bytes = 0;  // packed codes + scales + ..., or fp32 bytes
  int64_t bias_bytes = 0;
  int64_t macs = 0;          // per sample
  double sqnr_db = 0;        // the file's sqnr_db; NaN when absent

  int64_t bytes() const { return weight_bytes + bias_bytes; }
  // MACs x weight bits x activation bits, summed over filters.
  double bitops() const { return static_cast<double>(macs) * wbits * abits; }
  int64_t macs_per_filter() const { return filters > 0 ? macs / filters : 0; }
};

// The costs of every Conv/Gemm/MatMul with constant weights and every packed
// layer of `graph` (optimized), in graph order, at batch 1.
Result<std::vector<LayerCost>> LayerCosts(const Graph& graph);

// Bit-operations of a layer whose filters have these weight bits.
double FilterBitOps(int64_t macs_per_filter, const std::vector<int>& filter_bits, int act_bits);

}  // namespace lowbit

#endif  // LOWBIT_QUANT_COST_H_
