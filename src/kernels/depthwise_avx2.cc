// DepthwiseNhwc's body on 256-bit lanes (AVX2 + FMA), for the kAvx2 and
// kAvxVnni paths: 16 channels per pass, the same int16 tap pairs and vpmaddwd
// as the AVX-512 body (each 256-bit half of that body's 32-channel pass).
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "kernels/avx2_lanes.h"
#include "kernels/depthwise.h"

namespace lowbit {

namespace {

// 16 bytes of a pixel from channel c0 (n < 16: the first n, zeros after; a
// full load could read past the image).
inline __m256i LoadChannels(const uint8_t* p, int64_t n) {
  if (n >= 16) return _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  alignas(16) uint8_t tmp[16] = {};
  std::memcpy(tmp, p, static_cast<size_t>(n));
  return _mm256_cvtepu8_epi16(_mm_load_si128(reinterpret_cast<const __m128i*>(tmp)));
}

// R output pixels from p, 16 channels from c0. Pair weights of 32-channel
// block c0 / 32: its half h = (c0 / 32) % 2 sits at int16 offsets 16h (lo
// pairs: channels 0-3 and 8-11 of the half) and 32 + 16h (hi: 4-7, 12-15).
template <int R>
inline void DepthwisePairPixels16(const DepthwiseNhwcArgs& a, const ByteQuantizer256& bq, int64_t p,
                                  int64_t c0) {
  const int64_t n = a.c - c0;
  const int64_t blocks = (a.c + 31) / 32, pairs = (a.taps + 1) / 2, half = (c0 / 16) % 2;
  const uint8_t* base[R];
  for (int r = 0; r < R; ++r) base[r] = a.image + a.pix[p + r] * a.c + c0;
  __m256i lo[R], hi[R];
  for (int r = 0; r < R; ++r) lo[r] = hi[r] = _mm256_setzero_si256();
  for (int64_t q = 0; q < pairs; ++q) {
    const int16_t* wq = a.w_pairs + (q * blocks + c0 / 32) * 64 + 16 * half;
    const __m256i wl = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wq));
    const __m256i wh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wq + 32));
    const int64_t off0 = a.tap[2 * q] * a.c, off1 = a.tap[std::min(2 * q + 1, a.taps - 1)] * a.c;
    for (int r = 0; r < R; ++r) {
      const __m256i x0 = LoadChannels(base[r] + off0, n), x1 = LoadChannels(base[r] + off1, n);
      lo[r] = _mm256_add_epi32(lo[r], _mm256_madd_epi16(_mm256_unpacklo_epi16(x0, x1), wl));
      hi[r] = _mm256_add_epi32(hi[r], _mm256_madd_epi16(_mm256_unpackhi_epi16(x0, x1), wh));
    }
  }
  // lo holds channels 0-3 | 8-11, hi 4-7 | 12-15: 128-bit halves recombined.
  __m256 zw[2], scale[2], bias[2];
  for (int e = 0; e < 2; ++e) {
    const __m256i m = LaneMask(n - 8 * e);
    const int64_t ch = c0 + 8 * e;
    zw[e] = _mm256_mul_ps(_mm256_set1_ps(static_cast<float>(a.zero)),
                          _mm256_maskload_ps(a.wsum + ch, m));
    scale[e] = _mm256_maskload_ps(a.scale + ch, m);
    bias[e] = _mm256_maskload_ps(a.bias + ch, m);
  }
  for (int r = 0; r < R; ++r) {
    __m256 v[2];
    const __m256i acc[2] = {_mm256_permute2x128_si256(lo[r], hi[r], 0x20),
                            _mm256_permute2x128_si256(lo[r], hi[r], 0x31)};
    for (int e = 0; e < 2; ++e) {
      v[e] = _mm256_fmadd_ps(_mm256_sub_ps(_mm256_cvtepi32_ps(acc[e]), zw[e]), scale[e], bias[e]);
    }
    if (a.yb != nullptr) {
      const __m128i packed = PackBytes16(bq.Quantize(v[0]), bq.Quantize(v[1]));
      uint8_t* dst = a.yb + (p + r) * a.c + c0;
      if (n >= 16) {
        _mm_storeu_si128(reinterpret_cast<__m128i*>(dst), packed);
      } else {
        alignas(16) uint8_t tmp[16];
        _mm_store_si128(reinterpret_cast<__m128i*>(tmp), packed);
        std::memcpy(dst, tmp, static_cast<size_t>(n));
      }
      continue;
    }
    for (int e = 0; e < 2; ++e) {
      alignas(32) float tmp[8];
      _mm256_store_ps(
          tmp, _mm256_min_ps(_mm256_max_ps(v[e], _mm256_set1_ps(a.lo)), _mm256_set1_ps(a.hi)));
      for (int64_t j = 0; j < std::min<int64_t>(8, n - 8 * e); ++j)
        a.yf[(c0 + 8 * e + j) * a.ldy + p + r] = tmp[j];
    }
  }
}

}  // namespace

void DepthwiseNhwcAvx2(const DepthwiseNhwcArgs& a, int64_t p0, int64_t p1) {
  const ByteQuantizer256 bq(a.lo, a.hi, a.out_inv, a.out_zero);
  int64_t p = p0;
  for (; p + 4 <= p1; p += 4) {
    for (int64_t c0 = 0; c0 < a.c; c0 += 16) DepthwisePairPixels16<4>(a, bq, p, c0);
  }
  for (; p < p1; ++p) {
    for (int64_t c0 = 0; c0 < a.c; c0 += 16) DepthwisePairPixels16<1>(a, bq, p, c0);
  }
}

}  // namespace lowbit
