// Depthwise 3x3 convolution of one padded fp32 plane, the shape that
// dominates depthwise layers (MobileNet): stride 1 or 2, dilation 1.
//
//   y[oh, ow] = sum_{kh, kw < 3} w[kh * 3 + kw] * xp[(oh * s + kh) * pw + ow * s + kw]
//
// xp is the zero-padded input plane with row length pw; it must hold every
// input the outputs read. Sixteen outputs of a row accumulate in one register
// over the nine taps and are stored once; stride 2 takes even and odd inputs
// apart with two-source permutes.
#ifndef LOWBIT_KERNELS_DEPTHWISE_H_
#define LOWBIT_KERNELS_DEPTHWISE_H_

#include <cstdint>
#include <vector>

namespace lowbit {

// Whether this CPU runs the AVX-512 depthwise kernels (Depthwise3x3Avx512,
// DepthwiseNhwcAvx512).
bool DepthwiseAvx512Available();
// Whether a 2-D depthwise window (kernel, strides, dilations) runs on it here.
inline bool Depthwise3x3Applies(int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t dh, int64_t dw) {
  return kh == 3 && kw == 3 && dh == 1 && dw == 1 && sh == sw && (sh == 1 || sh == 2) &&
         DepthwiseAvx512Available();
}

// Requires DepthwiseAvx512Available() and stride 1 or 2. The sum over taps runs
// in the order (kh, kw), one fused multiply-add each, so small-integer inputs
// and weights give exact sums. The epilogue writes
// y = min(max(sum * scale + bias, lo), hi) (one fused multiply-add).
void Depthwise3x3Avx512(const float* xp, int64_t pw, const float* w, int64_t stride, float* y,
                        int64_t oh_n, int64_t ow_n, float scale = 1.0f, float bias = 0.0f,
                        float lo = -__builtin_inff(), float hi = __builtin_inff());

// Depthwise convolution on 8-bit NHWC pixels, one output channel per input
// channel (byte edges, runtime/byte_edges.h). Output pixel p's window starts
// at pixel pix[p] of a padded image of c-byte pixels, tap t adds tap[t]
// pixels; w holds the weights tap-major (w[t * c + ch]) as small integers. For
// each channel ch:
//   acc = sum_t w[t * c + ch] * x[...] - zero * wsum[ch]   (exact in fp32)
//   v   = min(max(fma(acc, scale[ch], bias[ch]), lo), hi)
// which equals Depthwise3x3Avx512's value on the centered plane; v is written
// as bytes (ByteOutput rounding, pixel p at yb + p * c) or, when yb is null,
// as fp32 planes yf[ch * ldy + p]. Pixels [p0, p1).
struct DepthwiseNhwcArgs {
  const uint8_t* image = nullptr;
  const int64_t* pix = nullptr;
  const int64_t* tap = nullptr;
  int64_t taps = 0, c = 0;
  const float *w = nullptr, *wsum = nullptr, *scale = nullptr, *bias = nullptr;
  int32_t zero = 0;
  float lo = -__builtin_inff(), hi = __builtin_inff();
  float out_inv = 1.0f;  // ByteOutput
  int32_t out_zero = 0;
  uint8_t* yb = nullptr;
  float* yf = nullptr;
  int64_t ldy = 0;
  // The weights as int16 tap pairs (DepthwisePairWeights), which the SIMD
  // bodies multiply in integers (vpmaddwd on two taps' pixels interleaved),
  // 32 (AVX-512) or 16 (AVX2) channels at a time; null: the portable loop.
  const int16_t* w_pairs = nullptr;
  // The weights as int8 tap quads (DepthwiseQuadWeights), which the AVX-512
  // body multiplies four taps at a time with vpdpbusd where the CPU has
  // AVX512-VNNI (DepthwiseVnniAvailable); null (weights beyond int8): pairs.
  const int8_t* w_quads = nullptr;
};
// w (tap-major, small integers) as the int16 tap pairs the SIMD bodies read:
// for pair q (taps 2q and 2q + 1; an odd last tap pairs with weight 0) and
// 32-channel block b, 64 values at ((q * blocks + b) * 64): the pairs of
// channels {0-3, 8-11, 16-19, 24-27} of the block, then {4-7, 12-15, 20-23,
// 28-31} (the order vpunpcklwd / vpunpckhwd give), each as (w[2q], w[2q + 1]).
std::vector<int16_t> DepthwisePairWeights(const float* w, int64_t taps, int64_t c);
// w (tap-major, small integers) as the int8 tap quads of the VNNI body, or
// empty when a weight lies outside [-128, 127]: for 64-channel block b and
// quad g (taps 4g..4g + 3; taps past the last weigh 0), 256 bytes at
// ((b * groups + g) * 256), groups = (taps + 3) / 4: four registers s < 4 of
// 16 lanes, lane 4k + j of register s holding channel 64b + 16k + 4s + j as
// the bytes (w[4g], w[4g + 1], w[4g + 2], w[4g + 3]) -- the order the bytewise
// then wordwise interleave of four taps' pixels gives.
std::vector<int8_t> DepthwiseQuadWeights(const float* w, int64_t taps, int64_t c);
// Which body DepthwiseNhwc runs: the AVX-512 one (with w_pairs, when
// DepthwiseAvx512Available()), the 256-bit one (with w_pairs, when
// DepthwiseAvx2Available(): AVX2 and FMA) or the portable loop. All give the
// same bytes and floats; a body the CPU lacks falls back to the portable loop.
// The AVX-512 body runs the quads (w_quads, DepthwiseVnniAvailable()) or the
// pairs.
enum class DepthwiseBody { kPortable, kAvx2, kAvx512 };
void DepthwiseNhwc(const DepthwiseNhwcArgs& a, int64_t p0, int64_t p1, DepthwiseBody body);
bool DepthwiseAvx2Available();
void DepthwiseNhwcAvx2(const DepthwiseNhwcArgs& a, int64_t p0, int64_t p1);
void DepthwiseNhwcAvx512(const DepthwiseNhwcArgs& a, int64_t p0, int64_t p1);
// The pair body on channels [c_begin, c), c_begin a multiple of 32.
void DepthwiseNhwcAvx512Channels(const DepthwiseNhwcArgs& a, int64_t p0, int64_t p1, int64_t c_begin);
bool DepthwiseVnniAvailable();
void DepthwiseNhwcVnni(const DepthwiseNhwcArgs& a, int64_t p0, int64_t p1);

}  // namespace lowbit

#endif  // LOWBIT_KERNELS_DEPTHWISE_H_
