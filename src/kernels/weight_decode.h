// Weight-only layers (activations stay fp32): packed weights are decoded a
// tile of rows at a time into a small fp32 buffer that stays in cache, and the
// caller multiplies that tile with fp32 GEMM. Only one tile per thread is ever
// fp32; the layer's weights stay packed in memory.
//
// Any packed format decodes: every bit width, every family (codebooks with
// arbitrary levels included) and every granularity, with
//   w(r, c) = scale[g] * (levels[code(r, c)] - zero_point[g]),  g = granule_of(r, c)
// exactly as QuantParams::Decode computes it, value for value.
#ifndef LOWBIT_KERNELS_WEIGHT_DECODE_H_
#define LOWBIT_KERNELS_WEIGHT_DECODE_H_

#include <cstdint>
#include <vector>

#include "lowbit/packed_tensor.h"

namespace lowbit {

class WeightDecoder {
 public:
  WeightDecoder() = default;
  explicit WeightDecoder(PackedTensor w);

  const PackedTensor& weight() const { return w_; }
  int64_t rows() const { return w_.rows(); }
  int64_t cols() const { return w_.cols(); }

  // dst[(r - r0) * ld + c] = w(r, c) for rows [r0, r1), every column.
  void DecodeRows(int64_t r0, int64_t r1, float* dst, int64_t ld) const;

 private:
  void DecodeRow(int64_t r, float* dst) const;

  PackedTensor w_;
  int per_byte_ = 0;          // codes per byte when bits divide 8, else 0
  std::vector<float> lut_;    // per_byte_ > 0: levels of each byte's codes, 256 x per_byte_
  std::vector<float> levels_; // levels padded to 2^bits (bits < 32)
};

// Rows per decoded tile for a layer with `cols` inputs: a multiple of 16 (or
// all rows) whose fp32 tile fits in about 256 KiB.
int64_t DecodeTileRows(int64_t rows, int64_t cols);

}  // namespace lowbit

#endif  // LOWBIT_KERNELS_WEIGHT_DECODE_H_
