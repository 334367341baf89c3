// fp16/bf16 conversion against brute force: the nearest representable value,
// ties to even, over random and boundary inputs.
#include "base/half.h"

#include <cmath>
#include <limits>

#include <gtest/gtest.h>

#include "base/rng.h"
#include "tests/test_util.h"

namespace lowbit {
namespace {

// Nearest finite fp16 by search over the ascending positive codes; ties to the
// even code; beyond the largest finite value, saturate.
uint16_t NearestHalf(float f) {
  const float a = std::fabs(f);
  const uint16_t sign = std::signbit(f) ? 0x8000 : 0;
  int lo = 0, hi = 0x7bff;
  if (a >= HalfToFloat(0x7bff)) return sign | 0x7bff;
  while (lo + 1 < hi) {  // largest code with value <= a
    const int mid = (lo + hi) / 2;
    if (HalfToFloat(static_cast<uint16_t>(mid)) <= a) lo = mid; else hi = mid;
  }
  if (HalfToFloat(static_cast<uint16_t>(hi)) <= a) lo = hi;
  const double below = HalfToFloat(static_cast<uint16_t>(lo));
  const double above = HalfToFloat(static_cast<uint16_t>(lo + 1));
  const double db = a - below, da = above - a;
  int code = lo;
  if (da < db || (da == db && (lo & 1))) code = lo + 1;
  return sign | static_cast<uint16_t>(code);
}

TEST(HalfTest, FloatToHalfIsNearestEven) {
  Rng rng(testing::TestSeed());
  std::vector<float> probes = {0.0f, -0.0f, 1.0f, 65504.0f, 65519.0f, 65520.0f, 1e6f, 6e-8f,
                               3e-8f, 2.9802322e-8f, 6.1035156e-5f, 6.0975552e-5f};
  // Exact midpoints between neighbouring halfs.
  for (int c = 0; c < 0x7bff; c += 7) {
    probes.push_back(0.5f * (HalfToFloat(c) + HalfToFloat(c + 1)));
  }
  for (int i = 0; i < 20000; ++i) {
    probes.push_back(static_cast<float>(std::ldexp(rng.Uniform() - 0.5, static_cast<int>(rng.Below(44)) - 28)));
  }
  for (float f : probes) {
    ASSERT_EQ(FloatToHalf(f), NearestHalf(f)) << f;
  }
}

TEST(HalfTest, Bf16RoundsToNearestEven) {
  EXPECT_EQ(FloatToBf16(1.0f), 0x3f80);
  // 1 + 2^-8 is exactly between 1 and 1 + 2^-7: ties to even (1.0).
  EXPECT_EQ(FloatToBf16(1.0f + 0x1.0p-8f), 0x3f80);
  EXPECT_EQ(FloatToBf16(1.0f + 0x1.0p-8f + 0x1.0p-20f), 0x3f81);
  EXPECT_EQ(FloatToBf16(std::numeric_limits<float>::max()), 0x7f7f);
  EXPECT_EQ(Bf16ToFloat(FloatToBf16(-2.5f)), -2.5f);
}

}  // namespace
}  // namespace lowbit
