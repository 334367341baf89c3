#include "base/half.h"

#include <cmath>
#include <cstring>

namespace lowbit {
namespace {

uint32_t Bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
float FromBits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

}  // namespace

float HalfToFloat(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  const uint32_t exp = (h >> 10) & 0x1f;
  const uint32_t man = h & 0x3ff;
  if (exp == 0) {
    // Zero or subnormal: man * 2^-24, exact in fp32.
    const float v = std::ldexp(static_cast<float>(man), -24);
    return sign ? -v : v;
  }
  if (exp == 31) return FromBits(sign | 0x7f800000u | (man << 13));
  return FromBits(sign | ((exp + 112) << 23) | (man << 13));
}

uint16_t FloatToHalf(float f) {
  const uint32_t u = Bits(f);
  const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000);
  const float a = std::fabs(f);
  if (std::isnan(f)) return sign | 0x7e00;
  if (a >= 65520.0f) return sign | 0x7bff;  // would round to Inf: saturate
  if (a < 0x1.0p-14f) {
    // Subnormal range: the value in units of 2^-24, rounded to nearest even.
    const float units = a * 0x1.0p24f;  // exact: scaling by a power of two
    return sign | static_cast<uint16_t>(std::nearbyint(units));
  }
  // Normal: drop 13 mantissa bits with round-to-nearest-even on the bit pattern;
  // a carry into the exponent is the correct rounding.
  const uint32_t abs_bits = u & 0x7fffffffu;
  const uint32_t lsb = (abs_bits >> 13) & 1;
  const uint32_t rounded = abs_bits + 0xfff + lsb;
  return sign | static_cast<uint16_t>((rounded >> 13) - (112u << 10));
}

float Bf16ToFloat(uint16_t b) { return FromBits(static_cast<uint32_t>(b) << 16); }

uint16_t FloatToBf16(float f) {
  const uint32_t u = Bits(f);
  if (std::isnan(f)) return static_cast<uint16_t>((u >> 16) | 0x40);
  const uint32_t lsb = (u >> 16) & 1;
  uint32_t rounded = u + 0x7fff + lsb;
  if (((rounded >> 23) & 0xff) == 0xff && std::isfinite(f)) {
    rounded = (u & 0x80000000u) | 0x7f7f0000u;  // saturate to the largest finite
  }
  return static_cast<uint16_t>(rounded >> 16);
}

}  // namespace lowbit
