// IEEE binary16 (fp16) and bfloat16 conversions, round to nearest even.
#ifndef LOWBIT_BASE_HALF_H_
#define LOWBIT_BASE_HALF_H_

#include <cstdint>

namespace lowbit {

float HalfToFloat(uint16_t h);
// Rounds to nearest even. Finite values beyond the fp16 range saturate to
// +-65504 (the nearest finite value); callers reject NaN/Inf beforehand.
uint16_t FloatToHalf(float f);

float Bf16ToFloat(uint16_t b);
// Rounds to nearest even; finite values beyond the bf16 range saturate to the
// largest finite bf16.
uint16_t FloatToBf16(float f);

}  // namespace lowbit

#endif  // LOWBIT_BASE_HALF_H_
