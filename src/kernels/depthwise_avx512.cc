#include <immintrin.h>

#include <algorithm>

#include "kernels/avx512_lanes.h"
#include "kernels/depthwise.h"

namespace lowbit {
namespace {

// Inputs x[j], j in [0, n), as two registers of 16 (lanes past n zero).
inline void Load32(const float* x, int64_t n, __m512* lo, __m512* hi) {
  *lo = _mm512_maskz_loadu_ps(FirstLanes(n), x);
  *hi = _mm512_maskz_loadu_ps(FirstLanes(n - 16), x + 16);
}

}  // namespace

bool DepthwiseAvx512Available() {  // the file is compiled for F, BW and VL
  static const bool ok = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                         __builtin_cpu_supports("avx512vl");
  return ok;
}

void Depthwise3x3Avx512(const float* xp, int64_t pw, const float* w, int64_t stride, float* y,
                        int64_t oh_n, int64_t ow_n, float scale, float bias, float lo, float hi) {
  const __m512 vs = _mm512_set1_ps(scale), vb = _mm512_set1_ps(bias);
  const __m512 vlo = _mm512_set1_ps(lo), vhi = _mm512_set1_ps(hi);
  __m512 wv[9];
  for (int t = 0; t < 9; ++t) wv[t] = _mm512_set1_ps(w[t]);
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
  for (int64_t oh = 0; oh < oh_n; ++oh) {
    const float* x0 = xp + oh * stride * pw;
    float* yr = y + oh * ow_n;
    for (int64_t ow = 0; ow < ow_n; ow += 16) {
      const int64_t n = ow_n - ow;  // outputs left in this row
      const __mmask16 m = FirstLanes(n);
      __m512 acc = _mm512_setzero_ps();
      for (int kh = 0; kh < 3; ++kh) {
        const float* x = x0 + kh * pw;
        if (stride == 1) {
          // Outputs ow..ow+15 read x[ow + kw + j].
          for (int kw = 0; kw < 3; ++kw) {
            acc = _mm512_fmadd_ps(wv[kh * 3 + kw], _mm512_maskz_loadu_ps(m, x + ow + kw), acc);
          }
        } else {
          // Outputs read x[2 * (ow + j) + kw]: kw 0 and 1 are the even and
          // odd inputs from 2 * ow, kw 2 the even ones from 2 * ow + 2.
          const int64_t need = 2 * (n < 16 ? n : 16);  // inputs per kw, rounded up to pairs
          __m512 a, b, c, d;
          Load32(x + 2 * ow, need, &a, &b);
          Load32(x + 2 * ow + 2, need - 1, &c, &d);
          acc = _mm512_fmadd_ps(wv[kh * 3 + 0], _mm512_permutex2var_ps(a, even, b), acc);
          acc = _mm512_fmadd_ps(wv[kh * 3 + 1], _mm512_permutex2var_ps(a, odd, b), acc);
          acc = _mm512_fmadd_ps(wv[kh * 3 + 2], _mm512_permutex2var_ps(c, even, d), acc);
        }
      }
      acc = _mm512_maskz_min_ps(m, _mm512_maskz_max_ps(m, _mm512_fmadd_ps(acc, vs, vb), vlo), vhi);
      _mm512_mask_storeu_ps(yr + ow, m, acc);
    }
  }
}

namespace {

// R output pixels from p (R accumulator chains), 32 channels from c0, in
// integers: per tap pair, the two taps' pixels widened to int16 and
// interleaved, vpmaddwd against the pair weights
// (DepthwisePairWeights) adds both products of a channel into its int32 lane.
// Exact like the fp32 sums (|acc| < 2^24); the lanes hold channels in the
// unpack order and are put back in order before the same epilogue.
template <int R>
inline void DepthwisePairPixels(const DepthwiseNhwcArgs& a, const ByteQuantizer& bb, int64_t p,
                                int64_t c0) {
  const int64_t n = a.c - c0;
  const __mmask32 m = n >= 32 ? ~__mmask32{0} : static_cast<__mmask32>((uint64_t{1} << n) - 1);
  const int64_t blocks = (a.c + 31) / 32, pairs = (a.taps + 1) / 2;
  const uint8_t* base[R];
  for (int r = 0; r < R; ++r) base[r] = a.image + a.pix[p + r] * a.c + c0;
  __m512i lo[R], hi[R];
  for (int r = 0; r < R; ++r) lo[r] = hi[r] = _mm512_setzero_si512();
  for (int64_t q = 0; q < pairs; ++q) {
    const int16_t* wq = a.w_pairs + (q * blocks + c0 / 32) * 64;
    const __m512i wl = _mm512_loadu_si512(wq), wh = _mm512_loadu_si512(wq + 32);
    const int64_t off0 = a.tap[2 * q] * a.c, off1 = a.tap[std::min(2 * q + 1, a.taps - 1)] * a.c;
    for (int r = 0; r < R; ++r) {
      const __m512i x0 = _mm512_cvtepu8_epi16(_mm256_maskz_loadu_epi8(m, base[r] + off0));
      const __m512i x1 = _mm512_cvtepu8_epi16(_mm256_maskz_loadu_epi8(m, base[r] + off1));
      lo[r] = _mm512_add_epi32(lo[r], _mm512_madd_epi16(_mm512_unpacklo_epi16(x0, x1), wl));
      hi[r] = _mm512_add_epi32(hi[r], _mm512_madd_epi16(_mm512_unpackhi_epi16(x0, x1), wh));
    }
  }
  // Channel j of 32 sits in lane 4 * (j / 8) + j % 4 of lo (j % 8 < 4) or hi.
  const __m512i i0 = _mm512_setr_epi32(0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23);
  const __m512i i1 =
      _mm512_setr_epi32(8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31);
  __m512 zw[2], scale[2], bias[2];
  for (int half = 0; half < 2; ++half) {
    const int64_t ch = c0 + 16 * half;
    const __mmask16 mh = FirstLanes(a.c - ch);
    zw[half] = _mm512_mul_ps(_mm512_set1_ps(static_cast<float>(a.zero)),
                             _mm512_maskz_loadu_ps(mh, a.wsum + ch));
    scale[half] = _mm512_maskz_loadu_ps(mh, a.scale + ch);
    bias[half] = _mm512_maskz_loadu_ps(mh, a.bias + ch);
  }
  auto value = [&](int r, int half) {
    const __m512 acc = _mm512_cvtepi32_ps(_mm512_permutex2var_epi32(lo[r], half ? i1 : i0, hi[r]));
    return _mm512_fmadd_ps(_mm512_sub_ps(acc, zw[half]), scale[half], bias[half]);
  };
  if (a.yb != nullptr) {
    // Both halves' bytes packed together and stored at once.
    const __m512i zero = _mm512_setzero_si512();
    for (int r = 0; r < R; ++r) {
      const __m256i packed = _mm512_castsi512_si256(
          PackBytes64(bb.Quantize(value(r, 0)), bb.Quantize(value(r, 1)), zero, zero));
      uint8_t* dst = a.yb + (p + r) * a.c + c0;
      if (n >= 32) {
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst), packed);
      } else {
        _mm256_mask_storeu_epi8(dst, m, packed);
      }
    }
    return;
  }
  for (int half = 0; half < 2; ++half) {
    const int64_t ch = c0 + 16 * half;
    if (ch >= a.c) break;
    for (int r = 0; r < R; ++r) {
      alignas(64) float tmp[16];
      _mm512_store_ps(tmp, _mm512_min_ps(_mm512_max_ps(value(r, half), _mm512_set1_ps(a.lo)),
                                         _mm512_set1_ps(a.hi)));
      for (int64_t j = 0; j < std::min<int64_t>(16, a.c - ch); ++j)
        a.yf[(ch + j) * a.ldy + p + r] = tmp[j];
    }
  }
}

}  // namespace

void DepthwiseNhwcAvx512(const DepthwiseNhwcArgs& a, int64_t p0, int64_t p1) {
  DepthwiseNhwcAvx512Channels(a, p0, p1, 0);
}

void DepthwiseNhwcAvx512Channels(const DepthwiseNhwcArgs& a, int64_t p0, int64_t p1, int64_t c_begin) {
  const ByteQuantizer bb(a.lo, a.hi, a.out_inv, a.out_zero);
  int64_t p = p0;
  for (; p + 4 <= p1; p += 4) {
    for (int64_t c0 = c_begin; c0 < a.c; c0 += 32) DepthwisePairPixels<4>(a, bb, p, c0);
  }
  for (; p < p1; ++p) {
    for (int64_t c0 = c_begin; c0 < a.c; c0 += 32) DepthwisePairPixels<1>(a, bb, p, c0);
  }
}

}  // namespace lowbit
