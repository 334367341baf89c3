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

// d[i] = s * (d[i] - z).
LOWBIT_VECTORIZE void ScaleShift(float* __restrict d, int64_t n, float s, float z) {
  for (int64_t i = 0; i < n; ++i) d[i] = s * (d[i] - z);
}

}  // namespace

WeightDecoder::WeightDecoder(PackedTensor w) : w_(std::move(w)) {
  const QuantParams& p = w_.params();
  const int bits = p.spec.bits;
  levels_.assign(size_t{1} << std::min(bits, 16), 0.0f);
  std::copy(p.levels.begin(), p.levels.begin() + std::min(p.levels.size(), levels_.size()),
            levels_.begin());
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

int64_t DecodeTileRows(int64_t rows, int64_t cols) {
  const int64_t fit = (int64_t{128} << 10) / std::max<int64_t>(cols, 1);
  const int64_t t = std::max<int64_t>(64, fit / 16 * 16);
  return std::min(rows, t);
}

}  // namespace lowbit
