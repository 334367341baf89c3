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

  // One input vector (GEMV). Prepare once per x, then y[r] = sum_c w(r, c)
  // x[c] for any row ranges. Where the CPU has AVX-512 and codes pack whole
  // (1, 2 or 4 bits) with one scale per row or tensor, codes are looked up
  // in a register-held level table (vpermps) and multiplied in registers;
  // otherwise rows are decoded into a small buffer and dotted.
  struct GemvInput {
    const float* x = nullptr;
    float sum = 0;             // sum of x
    std::vector<float> phase;  // x[i * P + j] at phase[j * bytes + i], P = codes per byte
  };
  void PrepareGemv(const float* x, GemvInput* in) const;
  void Gemv(const GemvInput& in, int64_t r0, int64_t r1, float* y) const;

 private:
  void DecodeRow(int64_t r, float* dst) const;

  PackedTensor w_;
  bool vector_gemv_ = false;
  int per_byte_ = 0;          // codes per byte when bits divide 8, else 0
  std::vector<float> lut_;    // per_byte_ > 0: levels of each byte's codes, 256 x per_byte_
  std::vector<float> levels_; // levels padded to 2^bits (bits < 32)
};

// sum_i a[i] * b[i] (vectorized partial sums).
float DotF32(const float* a, const float* b, int64_t n);

// The AVX-512 body of WeightDecoder::Gemv for one row of `bytes` code bytes
// (bits 1, 2 or 4): sum over its codes of levels[code] * x[column], with x as
// GemvInput::phase (zero past the last column).
bool WeightGemvAvx512Available();
float LevelDotAvx512(const uint8_t* codes, int bits, const float* levels16, const float* phase,
                     int64_t bytes);

// The calling thread's buffer of at least n floats for decoded weights,
// shared by every layer it runs (so only one tile per thread is ever fp32).
// Pool workers may write into the caller's buffer.
float* DecodeBuffer(int64_t n);

// Rows per decoded tile for a layer with `cols` inputs: a multiple of 16 (or
// all rows) whose fp32 tile fits in about 256 KiB.
int64_t DecodeTileRows(int64_t rows, int64_t cols);

}  // namespace lowbit

#endif  // LOWBIT_KERNELS_WEIGHT_DECODE_H_
