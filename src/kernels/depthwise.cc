#include <algorithm>
#include <cmath>

#include "kernels/depthwise.h"
#include "kernels/qlinear.h"

namespace lowbit {

std::vector<int16_t> DepthwisePairWeights(const float* w, int64_t taps, int64_t c) {
  const int64_t pairs = (taps + 1) / 2, blocks = (c + 31) / 32;
  std::vector<int16_t> out(static_cast<size_t>(pairs * blocks * 64), 0);
  for (int64_t q = 0; q < pairs; ++q) {
    for (int64_t b = 0; b < blocks; ++b) {
      int16_t* dst = out.data() + (q * blocks + b) * 64;
      for (int half = 0; half < 2; ++half) {
        for (int i = 0; i < 16; ++i) {
          const int64_t ch = b * 32 + 8 * (i / 4) + 4 * half + i % 4;
          if (ch >= c) continue;
          for (int e = 0; e < 2; ++e) {
            const int64_t t = 2 * q + e;
            dst[32 * half + 2 * i + e] = t < taps ? static_cast<int16_t>(w[t * c + ch]) : 0;
          }
        }
      }
    }
  }
  return out;
}

std::vector<int8_t> DepthwiseQuadWeights(const float* w, int64_t taps, int64_t c) {
  for (int64_t i = 0; i < taps * c; ++i) {
    if (!(w[i] >= -128.0f && w[i] <= 127.0f)) return {};
  }
  const int64_t groups = (taps + 3) / 4, blocks = (c + 63) / 64;
  std::vector<int8_t> out(static_cast<size_t>(blocks * groups * 256), 0);
  for (int64_t b = 0; b < blocks; ++b) {
    for (int64_t g = 0; g < groups; ++g) {
      int8_t* dst = out.data() + (b * groups + g) * 256;
      for (int s = 0; s < 4; ++s) {
        for (int lane = 0; lane < 16; ++lane) {
          const int64_t ch = 64 * b + 16 * (lane / 4) + 4 * s + lane % 4;
          for (int e = 0; e < 4; ++e) {
            const int64_t t = 4 * g + e;
            if (ch < c && t < taps) dst[64 * s + 4 * lane + e] = static_cast<int8_t>(w[t * c + ch]);
          }
        }
      }
    }
  }
  return out;
}

bool DepthwiseAvx2Available() { return EpilogueAvx2Available(); }  // the same AVX2 + FMA files

void DepthwiseNhwc(const DepthwiseNhwcArgs& a, int64_t p0, int64_t p1, DepthwiseBody body) {
  if (body == DepthwiseBody::kAvx512 && a.w_quads != nullptr && DepthwiseVnniAvailable()) {
    DepthwiseNhwcVnni(a, p0, p1);
    return;
  }
  if (body == DepthwiseBody::kAvx512 && a.w_pairs != nullptr && DepthwiseAvx512Available()) {
    DepthwiseNhwcAvx512(a, p0, p1);
    return;
  }
  if (body == DepthwiseBody::kAvx2 && a.w_pairs != nullptr && DepthwiseAvx2Available()) {
    DepthwiseNhwcAvx2(a, p0, p1);
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
