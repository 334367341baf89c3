// DepthwiseNhwc's AVX-512 VNNI body: four taps per vpdpbusd (a last block of
// up to 32 channels on the pair body, depthwise_avx512.cc). The four taps'
// pixels (64 channels each) are interleaved bytewise (vpunpck{l,h}bw, then
// vpunpck{l,h}wd), so each int32 lane holds one channel's four bytes, and
// vpdpbusd against the weight quads (DepthwiseQuadWeights) adds all four
// products. Per 64 channels and 4 taps that is 8 shuffles and 4 vpdpbusd,
// against the pair body's 16 shuffles, 8 vpmaddwd and 8 adds.
//
// The interleave leaves channel 16k + 4s + j (k, s, j < 4) in lane 4k + j of
// register s; the epilogue constants are loaded in that order, so the sums
// never move, and vpackssdw / vpackuswb of registers 0-3 put the bytes back
// in channel order.
#include <immintrin.h>

#include <algorithm>

#include "kernels/avx512_lanes.h"
#include "kernels/depthwise.h"

namespace lowbit {
namespace {

// Out register s, 128-bit block k = in register k, block s.
inline void Transpose4x128(const __m512 in[4], __m512 out[4]) {
  const __m512 t0 = _mm512_shuffle_f32x4(in[0], in[1], 0x44), t1 = _mm512_shuffle_f32x4(in[0], in[1], 0xEE);
  const __m512 t2 = _mm512_shuffle_f32x4(in[2], in[3], 0x44), t3 = _mm512_shuffle_f32x4(in[2], in[3], 0xEE);
  out[0] = _mm512_shuffle_f32x4(t0, t2, 0x88);
  out[1] = _mm512_shuffle_f32x4(t0, t2, 0xDD);
  out[2] = _mm512_shuffle_f32x4(t1, t3, 0x88);
  out[3] = _mm512_shuffle_f32x4(t1, t3, 0xDD);
}

// A 64-channel block's epilogue constants, in the interleaved lane order.
struct QuadEpilogue {
  __m512 zw[4], scale[4], bias[4];
  QuadEpilogue(const DepthwiseNhwcArgs& a, int64_t c0) {
    __m512 zw_n[4], scale_n[4], bias_n[4];
    const __m512 z = _mm512_set1_ps(static_cast<float>(a.zero));
    for (int k = 0; k < 4; ++k) {
      const int64_t ch = c0 + 16 * k;
      const __mmask16 m = FirstLanes(a.c - ch);
      zw_n[k] = _mm512_mul_ps(z, _mm512_maskz_loadu_ps(m, a.wsum + ch));
      scale_n[k] = _mm512_maskz_loadu_ps(m, a.scale + ch);
      bias_n[k] = _mm512_maskz_loadu_ps(m, a.bias + ch);
    }
    Transpose4x128(zw_n, zw);
    Transpose4x128(scale_n, scale);
    Transpose4x128(bias_n, bias);
  }
};

// R output pixels from p (R x 4 accumulators), the 64 channels of block b
// (mask m: those below c).
template <int R>
inline void QuadPixels(const DepthwiseNhwcArgs& a, const ByteQuantizer& bb, const QuadEpilogue& e,
                       int64_t p, int64_t b, __mmask64 m) {
  const int64_t groups = (a.taps + 3) / 4, c0 = 64 * b;
  const uint8_t* base[R];
  for (int r = 0; r < R; ++r) base[r] = a.image + a.pix[p + r] * a.c + c0;
  __m512i acc[R][4];
  for (int r = 0; r < R; ++r) {
    for (int s = 0; s < 4; ++s) acc[r][s] = _mm512_setzero_si512();
  }
  const int8_t* wb = a.w_quads + b * groups * 256;
  // Group g of taps: its n < 4 taps (the last group) or 4; a missing tap
  // reads as zeros.
  auto group = [&](int64_t g, int n) {
    int64_t off[4];
    for (int t = 0; t < 4; ++t) off[t] = t < n ? a.tap[4 * g + t] * a.c : 0;
    const int8_t* wg = wb + g * 256;
    const __m512i w0 = _mm512_loadu_si512(wg), w1 = _mm512_loadu_si512(wg + 64);
    const __m512i w2 = _mm512_loadu_si512(wg + 128), w3 = _mm512_loadu_si512(wg + 192);
    for (int r = 0; r < R; ++r) {
      __m512i x[4];
      for (int t = 0; t < 4; ++t)
        x[t] = t < n ? _mm512_maskz_loadu_epi8(m, base[r] + off[t]) : _mm512_setzero_si512();
      const __m512i ab_lo = _mm512_unpacklo_epi8(x[0], x[1]), ab_hi = _mm512_unpackhi_epi8(x[0], x[1]);
      const __m512i cd_lo = _mm512_unpacklo_epi8(x[2], x[3]), cd_hi = _mm512_unpackhi_epi8(x[2], x[3]);
      DpbusdInPlace(acc[r][0], _mm512_unpacklo_epi16(ab_lo, cd_lo), w0);
      DpbusdInPlace(acc[r][1], _mm512_unpackhi_epi16(ab_lo, cd_lo), w1);
      DpbusdInPlace(acc[r][2], _mm512_unpacklo_epi16(ab_hi, cd_hi), w2);
      DpbusdInPlace(acc[r][3], _mm512_unpackhi_epi16(ab_hi, cd_hi), w3);
    }
  };
  const int64_t full = a.taps / 4;
  for (int64_t g = 0; g < full; ++g) group(g, 4);
  switch (a.taps % 4) {
    case 1: group(full, 1); break;
    case 2: group(full, 2); break;
    case 3: group(full, 3); break;
    default: break;
  }
  auto value = [&](int r, int s) {
    return _mm512_fmadd_ps(_mm512_sub_ps(_mm512_cvtepi32_ps(acc[r][s]), e.zw[s]), e.scale[s], e.bias[s]);
  };
  if (a.yb != nullptr) {
    for (int r = 0; r < R; ++r) {
      const __m512i bytes = _mm512_packus_epi16(
          _mm512_packs_epi32(bb.Quantize(value(r, 0)), bb.Quantize(value(r, 1))),
          _mm512_packs_epi32(bb.Quantize(value(r, 2)), bb.Quantize(value(r, 3))));
      _mm512_mask_storeu_epi8(a.yb + (p + r) * a.c + c0, m, bytes);
    }
    return;
  }
  const __m512 lo = _mm512_set1_ps(a.lo), hi = _mm512_set1_ps(a.hi);
  const int64_t n = std::min<int64_t>(64, a.c - c0);
  for (int r = 0; r < R; ++r) {
    alignas(64) float tmp[64];
    for (int s = 0; s < 4; ++s) _mm512_store_ps(tmp + 16 * s, _mm512_min_ps(_mm512_max_ps(value(r, s), lo), hi));
    for (int64_t j = 0; j < n; ++j) {
      // Channel j = 16k + 4s + i sits at lane 4k + i of register s.
      const int64_t k = j / 16, s = (j / 4) % 4, i = j % 4;
      a.yf[(c0 + j) * a.ldy + p + r] = tmp[16 * s + 4 * k + i];
    }
  }
}

}  // namespace

bool DepthwiseVnniAvailable() {  // the file is compiled for F, BW, VL and VNNI
  static const bool ok = DepthwiseAvx512Available() && __builtin_cpu_supports("avx512vnni");
  return ok;
}

void DepthwiseNhwcVnni(const DepthwiseNhwcArgs& a, int64_t p0, int64_t p1) {
  const ByteQuantizer bb(a.lo, a.hi, a.out_inv, a.out_zero);
  // Pixels in chunks, each chunk through every channel block with that
  // block's constants loaded once.
  constexpr int64_t kChunk = 32;
  // A last block of 32 channels or fewer runs on the pair body (32 a pass)
  // instead of a quad block with half its lanes or more idle.
  const bool pair_tail = a.w_pairs != nullptr && a.c % 64 != 0 && a.c % 64 <= 32;
  const int64_t blocks = pair_tail ? a.c / 64 : (a.c + 63) / 64;
  for (int64_t q0 = p0; q0 < p1; q0 += kChunk) {
    const int64_t q1 = std::min(p1, q0 + kChunk);
    for (int64_t b = 0; b < blocks; ++b) {
      const int64_t n = a.c - 64 * b;
      const __mmask64 m = n >= 64 ? ~__mmask64{0} : (__mmask64{1} << n) - 1;
      const QuadEpilogue e(a, 64 * b);
      int64_t p = q0;
      for (; p + 4 <= q1; p += 4) QuadPixels<4>(a, bb, e, p, b, m);
      for (; p < q1; ++p) QuadPixels<1>(a, bb, e, p, b, m);
    }
    if (pair_tail) DepthwiseNhwcAvx512Channels(a, q0, q1, 64 * blocks);
  }
}

}  // namespace lowbit
