#include "runtime/ops/byte_ops.h"

#include <algorithm>
#include <cmath>

#include "base/target.h"

namespace lowbit {

// Quantizes n values with fixed parameters into bytes (int8 or uint8).
LOWBIT_VECTORIZE void QuantizeBytes(const float* __restrict x, int64_t n, float inv, float zero,
                                    float lo, float hi, uint8_t* __restrict q, bool is_signed) {
  if (is_signed) {
    int8_t* s = reinterpret_cast<int8_t*>(q);
    for (int64_t i = 0; i < n; ++i) {
      s[i] = static_cast<int8_t>(std::min(std::max(std::nearbyint(x[i] * inv) + zero, lo), hi));
    }
  } else {
    for (int64_t i = 0; i < n; ++i) {
      q[i] = static_cast<uint8_t>(std::min(std::max(std::nearbyint(x[i] * inv) + zero, lo), hi));
    }
  }
}

// dst[i] = q - zero with q = x[i] quantized to int8 (zero point `zero`):
// the centered integer, as a float.
LOWBIT_VECTORIZE void QuantizeCentered(const float* __restrict x, int64_t n, float inv, float zero,
                                       float* __restrict dst) {
  for (int64_t i = 0; i < n; ++i) {
    dst[i] = std::min(std::max(std::nearbyint(x[i] * inv) + zero, -128.0f), 127.0f) - zero;
  }
}

LOWBIT_VECTORIZE void ScaleBiasClamp(const float* __restrict acc, int64_t n, float scale, float b,
                                     float lo, float hi, float* __restrict y) {
  for (int64_t i = 0; i < n; ++i) y[i] = std::min(std::max(acc[i] * scale + b, lo), hi);
}

// y[i] += x[i * stride].
LOWBIT_VECTORIZE void AddStrided(int32_t* __restrict y, const int32_t* __restrict x, int64_t n,
                                 int64_t stride) {
  if (stride == 1) {
    for (int64_t i = 0; i < n; ++i) y[i] += x[i];
  } else {
    for (int64_t i = 0; i < n; ++i) y[i] += x[i * stride];
  }
}

LOWBIT_VECTORIZE int32_t SumBytes(const uint8_t* __restrict p, int64_t n) {
  int32_t s = 0;
  for (int64_t i = 0; i < n; ++i) s += p[i];
  return s;
}
LOWBIT_VECTORIZE int32_t SumBytes(const int8_t* __restrict p, int64_t n) {
  int32_t s = 0;
  for (int64_t i = 0; i < n; ++i) s += p[i];
  return s;
}

// [N, C, spatial...] <-> [N, spatial..., C].
Shape NhwcOf(const Shape& nchw) {
  Shape s = {nchw[0]};
  s.insert(s.end(), nchw.begin() + 2, nchw.end());
  s.push_back(nchw[1]);
  return s;
}
Shape NchwOf(const Shape& nhwc) {
  Shape s = {nhwc[0], nhwc.back()};
  s.insert(s.end(), nhwc.begin() + 1, nhwc.end() - 1);
  return s;
}

// n pixels of c bytes into pixels of cs bytes (cs >= c; the rest untouched),
// each byte xor `flip`.
LOWBIT_VECTORIZE void CopyPixels(const uint8_t* __restrict x, int64_t n, int64_t c, int64_t cs,
                                 uint8_t flip, uint8_t* __restrict dst) {
  if (cs == c) {
    for (int64_t i = 0; i < n * c; ++i) dst[i] = x[i] ^ flip;
    return;
  }
  for (int64_t p = 0; p < n; ++p) {
    for (int64_t j = 0; j < c; ++j) dst[p * cs + j] = x[p * c + j] ^ flip;
  }
}

// Canonical 8-bit NHWC pixels of logical NCHW shape `shape` to fp32 planes,
// and back (the rounding of ByteOutput).
void BytesToPlanes(const uint8_t* q, const Shape& shape, const ActQuant& a, float* y) {
  const int64_t n = shape[0], c = shape[1], hw = NumElements(shape) / (n * c);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t p = 0; p < hw; ++p) {
      for (int64_t j = 0; j < c; ++j) {
        y[(i * c + j) * hw + p] = a.scale * static_cast<float>(q[(i * hw + p) * c + j] - a.zero);
      }
    }
  }
}
void PlanesToBytes(const float* y, const Shape& shape, ByteOutput o, uint8_t* q) {
  const int64_t n = shape[0], c = shape[1], hw = NumElements(shape) / (n * c);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t p = 0; p < hw; ++p) {
      for (int64_t j = 0; j < c; ++j) {
        q[(i * hw + p) * c + j] = ToByte(y[(i * c + j) * hw + p], o);
      }
    }
  }
}

}  // namespace lowbit
