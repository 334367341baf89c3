#include "kernels/weight_decode.h"

#include <algorithm>
#include <cstring>

#include "base/target.h"
#include "lowbit/bitpack.h"

namespace lowbit {
namespace {

// Byte-table decode: each byte of codes expands to PB level values at once.
template <int PB>
void LutRow(const uint8_t* __restrict src, int64_t cols, const float* __restrict lut,
            float* __restrict dst) {
  const int64_t full = cols / PB;
  for (int64_t i = 0; i < full; ++i) std::memcpy(dst + i * PB, lut + src[i] * PB, sizeof(float) * PB);
  const int64_t rest = cols - full * PB;
  if (rest > 0) std::memcpy(dst + full * PB, lut + src[full] * PB, sizeof(float) * rest);
}

}  // namespace

LOWBIT_VECTORIZE float DotF32(const float* __restrict a, const float* __restrict b, int64_t n) {
  // Sixteen lane-wise partial sums: a reduction the compiler vectorizes
  // without reassociating.
  float acc[16] = {};
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    for (int j = 0; j < 16; ++j) acc[j] += a[i + j] * b[i + j];
  }
  float s = 0;
  for (; i < n; ++i) s += a[i] * b[i];
  for (int j = 0; j < 16; ++j) s += acc[j];
  return s;
}

namespace {

// d[i] = s * (d[i] - z).
LOWBIT_VECTORIZE void ScaleShift(float* __restrict d, int64_t n, float s, float z) {
  for (int64_t i = 0; i < n; ++i) d[i] = s * (d[i] - z);
}

}  // namespace

WeightDecoder::WeightDecoder(PackedTensor w) : w_(std::move(w)) {
  const QuantParams& p = w_.params();
  const int bits = p.spec.bits;
  levels_.assign(std::max<size_t>(16, size_t{1} << std::min(bits, 16)), 0.0f);  // >= 16: a register
  std::copy(p.levels.begin(), p.levels.begin() + std::min(p.levels.size(), levels_.size()),
            levels_.begin());
  vector_gemv_ = bits <= 4 && 8 % bits == 0 && p.granularity.kind != Granularity::kGroup &&
                 p.spec.family != Family::kFloat && WeightGemvAvx512Available();
  if (8 % bits == 0) {
    per_byte_ = 8 / bits;
    lut_.assign(256 * per_byte_, 0.0f);
    const uint32_t mask = (1u << bits) - 1;
    for (int b = 0; b < 256; ++b) {
      for (int j = 0; j < per_byte_; ++j) lut_[b * per_byte_ + j] = levels_[(b >> (j * bits)) & mask];
    }
  }
}

void WeightDecoder::DecodeRow(int64_t r, float* dst) const {
  const QuantParams& p = w_.params();
  const int64_t cols = w_.cols();
  const uint8_t* src = w_.row(r);
  switch (per_byte_) {
    case 1: LutRow<1>(src, cols, lut_.data(), dst); break;
    case 2: LutRow<2>(src, cols, lut_.data(), dst); break;
    case 4: LutRow<4>(src, cols, lut_.data(), dst); break;
    case 8: LutRow<8>(src, cols, lut_.data(), dst); break;
    default: {
      thread_local std::vector<uint32_t> codes;
      codes.resize(cols);
      UnpackCodes(src, cols, p.spec.bits, codes.data());
      for (int64_t c = 0; c < cols; ++c) dst[c] = levels_[codes[c]];
    }
  }
  // Granules are runs of columns within the row: the whole row (tensor,
  // channel) or groups of group_size.
  const int64_t run = p.granularity.kind == Granularity::kGroup ? p.granularity.group_size : cols;
  for (int64_t c = 0; c < cols; c += run) {
    const int64_t g = p.granule_of(r, c);
    ScaleShift(dst + c, std::min(run, cols - c), p.scales[g], static_cast<float>(p.zero_point(g)));
  }
}

void WeightDecoder::DecodeRows(int64_t r0, int64_t r1, float* dst, int64_t ld) const {
  for (int64_t r = r0; r < r1; ++r) DecodeRow(r, dst + (r - r0) * ld);
}

void WeightDecoder::PrepareGemv(const float* x, GemvInput* in) const {
  const int64_t cols = w_.cols();
  in->x = x;
  double sum = 0;
  for (int64_t c = 0; c < cols; ++c) sum += x[c];
  in->sum = static_cast<float>(sum);
  if (!vector_gemv_) return;
  const int64_t bytes = w_.row_bytes(), pb = per_byte_;
  in->phase.assign(pb * bytes, 0.0f);
  float* ph = in->phase.data();
  for (int64_t j = 0; j < pb; ++j) {
    for (int64_t i = 0; i * pb + j < cols; ++i) ph[j * bytes + i] = x[i * pb + j];
  }
}

void WeightDecoder::Gemv(const GemvInput& in, int64_t r0, int64_t r1, float* y) const {
  const QuantParams& p = w_.params();
  const int64_t cols = w_.cols();
  if (vector_gemv_) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t g = p.granule_of(r, 0);
      const float dot = LevelDotAvx512(w_.row(r), p.spec.bits, levels_.data(), in.phase.data(),
                                       w_.row_bytes());
      y[r - r0] = p.scales[g] * (dot - static_cast<float>(p.zero_point(g)) * in.sum);
    }
    return;
  }
  thread_local std::vector<float> row;
  row.resize(cols);
  for (int64_t r = r0; r < r1; ++r) {
    DecodeRow(r, row.data());
    y[r - r0] = DotF32(row.data(), in.x, cols);
  }
}

float* DecodeBuffer(int64_t n) {
  thread_local std::vector<float> buf;
  if (static_cast<int64_t>(buf.size()) < n) buf.resize(n);
  return buf.data();
}

int64_t DecodeTileRows(int64_t rows, int64_t cols) {
  const int64_t fit = (int64_t{128} << 10) / std::max<int64_t>(cols, 1);
  const int64_t t = std::max<int64_t>(64, fit / 16 * 16);
  return std::min(rows, t);
}

}  // namespace lowbit
