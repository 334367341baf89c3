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

namespace lowbit {

// Whether this CPU runs Depthwise3x3Avx512.
bool Depthwise3x3Available();
// Whether a 2-D depthwise window (kernel, strides, dilations) runs on it here.
inline bool Depthwise3x3Applies(int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t dh, int64_t dw) {
  return kh == 3 && kw == 3 && dh == 1 && dw == 1 && sh == sw && (sh == 1 || sh == 2) &&
         Depthwise3x3Available();
}

// Requires Depthwise3x3Available() and stride 1 or 2. The sum over taps runs
// in the order (kh, kw), one fused multiply-add each, so small-integer inputs
// and weights give exact sums. The epilogue writes
// y = min(max(sum * scale + bias, lo), hi) (one fused multiply-add).
void Depthwise3x3Avx512(const float* xp, int64_t pw, const float* w, int64_t stride, float* y,
                        int64_t oh_n, int64_t ow_n, float scale = 1.0f, float bias = 0.0f,
                        float lo = -__builtin_inff(), float hi = __builtin_inff());

}  // namespace lowbit

#endif  // LOWBIT_KERNELS_DEPTHWISE_H_
