#include "runtime/ops/planes.h"

#include "base/target.h"
#include "kernels/depthwise.h"

namespace lowbit {

LOWBIT_VECTORIZE void AxpyRow(float* __restrict y, const float* __restrict x, float w, int64_t n,
                              int64_t stride) {
  if (stride == 1) {
    for (int64_t i = 0; i < n; ++i) y[i] += w * x[i];
  } else if (stride == 2) {
    for (int64_t i = 0; i < n; ++i) y[i] += w * x[2 * i];
  } else {
    for (int64_t i = 0; i < n; ++i) y[i] += w * x[i * stride];
  }
}

void DepthwisePlane(const float* __restrict xp, int64_t pw,
                                     const float* __restrict w, int64_t kh_n, int64_t kw_n,
                                     int64_t sh, int64_t sw, int64_t dh, int64_t dw,
                                     float* __restrict y, int64_t oh_n, int64_t ow_n) {
  if (kh_n == 3 && kw_n == 3 && dh == 1 && dw == 1 && sh == sw && (sh == 1 || sh == 2) &&
      Depthwise3x3Available()) {
    Depthwise3x3Avx512(xp, pw, w, sh, y, oh_n, ow_n);
    return;
  }
  DepthwisePlaneRef(xp, pw, w, kh_n, kw_n, sh, sw, dh, dw, y, oh_n, ow_n);
}

LOWBIT_VECTORIZE void DepthwisePlaneRef(const float* __restrict xp, int64_t pw,
                                        const float* __restrict w, int64_t kh_n, int64_t kw_n,
                                        int64_t sh, int64_t sw, int64_t dh, int64_t dw,
                                        float* __restrict y, int64_t oh_n, int64_t ow_n) {
  for (int64_t oh = 0; oh < oh_n; ++oh) {
    float* yr = y + oh * ow_n;
    for (int64_t ow = 0; ow < ow_n; ++ow) yr[ow] = 0.0f;
    for (int64_t kh = 0; kh < kh_n; ++kh) {
      const float* xr = xp + (oh * sh + kh * dh) * pw;
      for (int64_t kw = 0; kw < kw_n; ++kw) {
        const float wv = w[kh * kw_n + kw];
        const float* xs = xr + kw * dw;
        if (sw == 1) {
          for (int64_t ow = 0; ow < ow_n; ++ow) yr[ow] += wv * xs[ow];
        } else if (sw == 2) {
          for (int64_t ow = 0; ow < ow_n; ++ow) yr[ow] += wv * xs[2 * ow];
        } else {
          for (int64_t ow = 0; ow < ow_n; ++ow) yr[ow] += wv * xs[ow * sw];
        }
      }
    }
  }
}

}  // namespace lowbit
