// Byte and plane helpers of the packed operators: quantizing fp32 values to
// 8-bit operands, the window sums' additions, and conversions between fp32
// NCHW planes and canonical 8-bit NHWC pixels (byte edges). The loops are
// compiled for AVX-512, AVX2 and the baseline and chosen at run time
// (LOWBIT_VECTORIZE, base/target.h).
#ifndef LOWBIT_RUNTIME_OPS_BYTE_OPS_H_
#define LOWBIT_RUNTIME_OPS_BYTE_OPS_H_

#include <cstdint>

#include "ir/tensor.h"
#include "kernels/qlinear.h"

namespace lowbit {

// Quantizes n values with fixed parameters into bytes (int8 or uint8):
// clamp(round(x * inv) + zero, lo, hi).
void QuantizeBytes(const float* x, int64_t n, float inv, float zero, float lo, float hi, uint8_t* q,
                   bool is_signed);
// dst[i] = q - zero with q = x[i] quantized to int8 (zero point `zero`): the
// centered integer, as a float.
void QuantizeCentered(const float* x, int64_t n, float inv, float zero, float* dst);
// y[i] = clamp(acc[i] * scale + b, lo, hi).
void ScaleBiasClamp(const float* acc, int64_t n, float scale, float b, float lo, float hi,
                    float* y);
// y[i] += x[i * stride].
void AddStrided(int32_t* y, const int32_t* x, int64_t n, int64_t stride);
// The sum of n bytes, unsigned or signed.
int32_t SumBytes(const uint8_t* p, int64_t n);
int32_t SumBytes(const int8_t* p, int64_t n);

// [N, C, spatial...] <-> [N, spatial..., C].
Shape NhwcOf(const Shape& nchw);
Shape NchwOf(const Shape& nhwc);
// n pixels of c bytes into pixels of cs bytes (cs >= c; the rest untouched),
// each byte xor `flip`.
void CopyPixels(const uint8_t* x, int64_t n, int64_t c, int64_t cs, uint8_t flip, uint8_t* dst);
// Canonical 8-bit NHWC pixels of logical NCHW shape `shape` to fp32 planes,
// and back (the rounding of ByteOutput).
void BytesToPlanes(const uint8_t* q, const Shape& shape, const ActQuant& a, float* y);
void PlanesToBytes(const float* y, const Shape& shape, ByteOutput o, uint8_t* q);

}  // namespace lowbit

#endif  // LOWBIT_RUNTIME_OPS_BYTE_OPS_H_
