// The table kernel on AVX2: each 64-byte block of indices is two ymm (lanes
// 0-1 and 2-3, lut.h), so 32 lookups per vpshufb. Compiled with -mavx2 for
// this file only. Both ymm add into the same int16 accumulators, two entries
// per lane and block, so they are widened every kFlush = 8 blocks: at most
// 3 * 512 * 2 * 8 (2 bits) or 2 * 1020 * 2 * 8 = 32640 (1 bit) < 2^15.
#include <immintrin.h>

#include <algorithm>

#include "kernels/lut.h"

namespace lowbit {
namespace {

constexpr int64_t kFlush = 8;

inline __m256i Widen(__m256i acc32, __m256i s) {
  acc32 = _mm256_add_epi32(acc32, _mm256_cvtepi16_epi32(_mm256_castsi256_si128(s)));
  return _mm256_add_epi32(acc32, _mm256_cvtepi16_epi32(_mm256_extracti128_si256(s, 1)));
}

// Tile t's 16 dot products: map.scale * S + bias (lut.h).
template <int B>
void TileDot(const uint8_t* wt, int64_t blocks, const uint8_t* tab, LutMap map, int32_t bias,
             int32_t* dot) {
  const __m256i mask = _mm256_set1_epi8(0x0F);
  __m256i acc32[2] = {_mm256_setzero_si256(), _mm256_setzero_si256()};
  for (int64_t b0 = 0; b0 < blocks; b0 += kFlush) {
    __m256i a[2][2];  // [nibble][rows 0-7, rows 8-15]
    for (auto& n : a) n[0] = n[1] = _mm256_setzero_si256();
    const int64_t b1 = std::min(blocks, b0 + kFlush);
    for (int64_t b = b0; b < b1; ++b) {
      for (int part = 0; part < 2; ++part) {  // lanes 0-1, then 2-3
        const __m256i v =
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wt + b * 64 + 32 * part));
        const __m256i i[2] = {_mm256_and_si256(v, mask),
                              _mm256_and_si256(_mm256_srli_epi16(v, 4), mask)};
        for (int h = 0; h < 2; ++h) {
          const uint8_t* t = tab + 128 * (B == 2 ? b : 2 * b + h) + 32 * part;
          const __m256i lo =
              _mm256_shuffle_epi8(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(t)), i[h]);
          const __m256i hi = _mm256_shuffle_epi8(
              _mm256_loadu_si256(reinterpret_cast<const __m256i*>(t + 64)), i[h]);
          a[h][0] = _mm256_add_epi16(a[h][0], _mm256_unpacklo_epi8(lo, hi));
          a[h][1] = _mm256_add_epi16(a[h][1], _mm256_unpackhi_epi8(lo, hi));
        }
      }
    }
    for (int half = 0; half < 2; ++half) {
      const __m256i s =
          _mm256_add_epi16(a[0][half], B == 2 ? _mm256_slli_epi16(a[1][half], 1) : a[1][half]);
      acc32[half] = Widen(acc32[half], s);
    }
  }
  const __m256i scale = _mm256_set1_epi32(map.scale), add = _mm256_set1_epi32(bias);
  for (int half = 0; half < 2; ++half) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dot + 8 * half),
                        _mm256_add_epi32(_mm256_mullo_epi32(acc32[half], scale), add));
  }
}

}  // namespace

void LutDotRowsAvx2(const QLinearWeights& w, const uint8_t* const* rows, const int32_t* step_off,
                    int64_t nrows, int32_t* dot, int64_t t0, int64_t t1) {
  LutDotRowsWith(
      w, rows, nrows, dot, t0, t1,
      [&](const uint8_t* x, uint8_t* tables) { return BuildLutTablesRef(w, x, step_off, tables); },
      [](auto bits, auto... args) { TileDot<decltype(bits)::value>(args...); });
}

}  // namespace lowbit
