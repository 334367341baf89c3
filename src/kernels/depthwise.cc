#include <algorithm>
#include <cmath>

#include "kernels/depthwise.h"
#include "kernels/qlinear.h"

namespace lowbit {

void DepthwiseNhwc(const DepthwiseNhwcArgs& a, int64_t p0, int64_t p1, bool simd) {
  if (simd && DepthwiseAvx512Available()) {
    DepthwiseNhwcAvx512(a, p0, p1);
    return;
  }
  const float z = static_cast<float>(a.zero);
  for (int64_t p = p0; p < p1; ++p) {
    for (int64_t ch = 0; ch < a.c; ++ch) {
      float acc = 0.0f;
      for (int64_t t = 0; t < a.taps; ++t) {
        acc = std::fma(a.w[t * a.c + ch], static_cast<float>(a.image[(a.pix[p] + a.tap[t]) * a.c + ch]), acc);
      }
      acc -= z * a.wsum[ch];
      const float v = std::min(std::max(std::fma(acc, a.scale[ch], a.bias[ch]), a.lo), a.hi);
      if (a.yb == nullptr) {
        a.yf[ch * a.ldy + p] = v;
        continue;
      }
      a.yb[p * a.c + ch] = ToByte(v, ByteOutput{a.out_inv, a.out_zero});
    }
  }
}

}  // namespace lowbit
