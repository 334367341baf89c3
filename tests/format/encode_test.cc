// Encode/decode against the specification: exhaustive round trips over every
// code, and encode equal to brute-force nearest-level search.
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <limits>

#include <gtest/gtest.h>

#include "lowbit/format.h"
#include "tests/test_util.h"

namespace lowbit {
namespace {

using testing::Laplace;
using testing::TestSeed;

std::vector<GranularitySpec> Granularities() {
  return {{Granularity::kTensor, 0}, {Granularity::kChannel, 0}, {Granularity::kGroup, 5}};
}

std::vector<FormatSpec> LowBitVariants() {
  std::vector<FormatSpec> out;
  for (int b = 1; b <= 8; ++b) {
    for (const FormatSpec& s : AllVariants(b)) {
      if (s.family != Family::kFloat) out.push_back(s);
    }
  }
  return out;
}

// The specification of Encode for one value: with u = x / scale, values at or
// beyond an end level clip to it; in between, the effective level at the least
// float distance |u - l|, ties to the smaller magnitude, then to the positive
// level. (Far outside the range float distances to two levels can round equal,
// which is why clipping comes first.)
uint32_t BruteForceCode(const QuantParams& p, int64_t g, float x) {
  const float u = x / p.scales[g];
  const float zp = static_cast<float>(p.zero_point(g));
  if (u <= p.levels.front() - zp) return 0;
  if (u >= p.levels.back() - zp) return static_cast<uint32_t>(p.levels.size() - 1);
  uint32_t best = 0;
  float best_d = std::numeric_limits<float>::infinity(), best_l = 0;
  for (uint32_t c = 0; c < p.levels.size(); ++c) {
    const float l = p.levels[c] - zp;
    const float d = std::fabs(u - l);
    const bool better = d < best_d || (d == best_d && (std::fabs(l) < std::fabs(best_l) ||
                                                       (std::fabs(l) == std::fabs(best_l) && l > best_l)));
    if (c == 0 || better) {
      best = c;
      best_d = d;
      best_l = l;
    }
  }
  return best;
}

TEST(EncodeTest, EveryCodeOfEveryLowBitFormatRoundTrips) {
  const uint64_t seed = TestSeed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  const int64_t rows = 7, cols = 13;
  const std::vector<float> x = Laplace(rows * cols, seed);
  int checked = 0;
  for (const FormatSpec& spec : LowBitVariants()) {
    for (const GranularitySpec& gran : Granularities()) {
      SCOPED_TRACE(FormatName(spec) + " " + GranularityName(gran));
      FitOptions o;
      o.granularity = gran;
      Result<QuantParams> p = Fit(x.data(), rows, cols, spec, o);
      ASSERT_TRUE(p.ok()) << p.status().ToString();
      ASSERT_LE(p->levels.size(), size_t{1} << spec.bits);
      // Distinct codes -> distinct values: the table is strictly ascending.
      for (size_t i = 1; i < p->levels.size(); ++i) ASSERT_LT(p->levels[i - 1], p->levels[i]);
      for (int64_t g = 0; g < p->num_granules(); ++g) {
        for (uint32_t c = 0; c < p->levels.size(); ++c) {
          const float v = p->Decode(c, g);
          // Encode one value of granule g: put it at an element of that granule.
          std::vector<float> one(rows * cols, 0.0f);
          int64_t r0 = 0, c0 = 0;
          if (gran.kind == Granularity::kChannel) r0 = g;
          if (gran.kind == Granularity::kGroup) {
            r0 = g / p->groups_per_row();
            c0 = (g % p->groups_per_row()) * gran.group_size;
          }
          one[r0 * cols + c0] = v;
          std::vector<uint32_t> codes(rows * cols);
          ASSERT_TRUE(Encode(*p, one.data(), codes.data()).ok());
          ASSERT_EQ(codes[r0 * cols + c0], c) << "level " << p->levels[c] << " value " << v;
          ++checked;
        }
      }
    }
  }
  EXPECT_GT(checked, 10000);
}

TEST(EncodeTest, EveryFp16AndBf16CodeRoundTrips) {
  for (FloatKind kind : {FloatKind::kFp16, FloatKind::kBf16}) {
    FormatSpec spec;
    spec.family = Family::kFloat;
    spec.bits = 16;
    spec.float_kind = kind;
    const float one = 1.0f;
    Result<QuantParams> p = Fit(&one, 1, 1, spec, FitOptions());
    ASSERT_TRUE(p.ok());
    int finite = 0;
    for (uint32_t c = 0; c < 65536; ++c) {
      const float v = p->Decode(c, 0);
      if (!std::isfinite(v)) continue;
      uint32_t back = 0;
      ASSERT_TRUE(Encode(*p, &v, &back).ok());
      ASSERT_EQ(back, c) << FormatName(spec) << " value " << v;
      ++finite;
    }
    EXPECT_EQ(finite, kind == FloatKind::kFp16 ? 63488 : 65280);  // all but exponent 0x1f / 0xff
  }
}

TEST(EncodeTest, Fp32IsExactPassthrough) {
  const std::vector<float> x = Laplace(1000, TestSeed());
  const FormatSpec spec = *ParseFormat("fp32");
  Result<QuantParams> p = Fit(x.data(), 10, 100, spec, FitOptions());
  ASSERT_TRUE(p.ok());
  std::vector<uint32_t> codes(x.size());
  std::vector<float> y(x.size());
  ASSERT_TRUE(Encode(*p, x.data(), codes.data()).ok());
  Decode(*p, codes.data(), y.data());
  EXPECT_EQ(x, y);
}

// Values that stress the tie rule and the ends of the range for one granule.
std::vector<float> Adversarial(const QuantParams& p, int64_t g) {
  const float s = p.scales[g];
  const float zp = static_cast<float>(p.zero_point(g));
  std::vector<float> v = {0.0f, -0.0f, FLT_MIN, -FLT_MIN, 1e-45f, -1e-45f, 3e-39f, -3e-39f,
                          FLT_MAX, -FLT_MAX, 1e30f, -1e30f};
  for (size_t i = 0; i < p.levels.size(); ++i) {
    const float l = p.levels[i] - zp;
    v.push_back(s * l);
    v.push_back(std::nextafter(s * l, INFINITY));
    v.push_back(std::nextafter(s * l, -INFINITY));
    v.push_back(-s * l);
    if (i + 1 < p.levels.size()) {
      const float mid = 0.5f * (l + (p.levels[i + 1] - zp));  // exact tie in u
      v.push_back(s * mid);
      v.push_back(std::nextafter(s * mid, INFINITY));
      v.push_back(std::nextafter(s * mid, -INFINITY));
    }
  }
  const float top = s * (p.levels.back() - zp), bottom = s * (p.levels.front() - zp);
  for (float f : {1.0001f, 1.5f, 2.0f, 1000.0f}) {
    v.push_back(top * f);
    v.push_back(bottom * f);
  }
  return v;
}

TEST(EncodeTest, EncodeEqualsBruteForceNearestLevel) {
  const uint64_t seed = TestSeed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  const int64_t rows = 3, cols = 40;
  const std::vector<float> x = Laplace(rows * cols, seed);
  Rng rng(seed + 1);
  int64_t checked = 0;
  for (const FormatSpec& spec : LowBitVariants()) {
    for (const GranularitySpec& gran : Granularities()) {
      for (ClipMethod clip : {ClipMethod::kMinMax, ClipMethod::kMse}) {
        SCOPED_TRACE(FormatName(spec) + " " + GranularityName(gran));
        FitOptions o;
        o.granularity = gran;
        o.clip = clip;
        Result<QuantParams> fitted = Fit(x.data(), rows, cols, spec, o);
        ASSERT_TRUE(fitted.ok()) << fitted.status().ToString();
        QuantParams p = *fitted;
        // Also a power-of-two scale, where midpoints between levels are exact.
        for (bool pow2_scale : {false, true}) {
          if (pow2_scale) {
            for (float& s : p.scales) s = std::exp2(std::round(std::log2(s)));
          }
          // One probe per value, always at element (0, 0)'s granule (g = 0),
          // plus random values for the whole tensor.
          std::vector<float> probe = Adversarial(p, 0);
          for (int i = 0; i < 200; ++i) probe.push_back(static_cast<float>(rng.Laplace(2.0)));
          std::vector<float> t(rows * cols);
          std::vector<uint32_t> codes(rows * cols);
          for (size_t i = 0; i < probe.size(); i += t.size()) {
            for (size_t j = 0; j < t.size(); ++j) {
              t[j] = i + j < probe.size() ? probe[i + j] : static_cast<float>(rng.Normal());
            }
            ASSERT_TRUE(Encode(p, t.data(), codes.data()).ok());
            for (int64_t e = 0; e < rows * cols; ++e) {
              const int64_t g = p.granule_of(e / cols, e % cols);
              ASSERT_EQ(codes[e], BruteForceCode(p, g, t[e]))
                  << "x = " << t[e] << " scale " << p.scales[g] << " zp " << p.zero_point(g);
              ++checked;
            }
          }
        }
      }
    }
  }
  EXPECT_GT(checked, 100000);
}

TEST(EncodeTest, NonFiniteValuesAreRefusedByName) {
  std::vector<float> x = {1.0f, 2.0f, NAN, 3.0f};
  const FormatSpec spec = *ParseFormat("int4");
  Result<QuantParams> p = Fit(x.data(), 2, 2, spec, FitOptions());
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("[1, 0]"), std::string::npos) << p.status().message();
  EXPECT_NE(p.status().message().find("nan"), std::string::npos) << p.status().message();
  x[2] = 0.5f;
  p = Fit(x.data(), 2, 2, spec, FitOptions());
  ASSERT_TRUE(p.ok());
  x[3] = -INFINITY;
  std::vector<uint32_t> codes(4);
  const Status s = Encode(*p, x.data(), codes.data());
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("-inf"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("[1, 1]"), std::string::npos) << s.message();
}

TEST(EncodeTest, EmptyAndInvalidInputsAreRefused) {
  const float x = 1.0f;
  EXPECT_FALSE(Fit(&x, 0, 5, *ParseFormat("int4"), FitOptions()).ok());
  EXPECT_FALSE(Fit(&x, 3, 0, *ParseFormat("int4"), FitOptions()).ok());
  FormatSpec bad = *ParseFormat("int4");
  bad.bits = 9;
  const Result<QuantParams> r = Fit(&x, 1, 1, bad, FitOptions());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("9"), std::string::npos);
  FitOptions o;
  o.granularity = {Granularity::kGroup, 0};
  EXPECT_FALSE(Fit(&x, 1, 1, *ParseFormat("int4"), o).ok());
  o = FitOptions();
  o.require_zero = true;
  EXPECT_FALSE(Fit(&x, 1, 1, *ParseFormat("int1"), o).ok());  // binary has no zero
  EXPECT_FALSE(Fit(&x, 1, 1, *ParseFormat("pow2-1"), o).ok());
}

TEST(EncodeTest, AllZeroGranulesEncodeExactly) {
  std::vector<float> x(6 * 8, 0.0f);
  for (int c = 0; c < 8; ++c) x[3 * 8 + c] = static_cast<float>(c) - 3.5f;  // one live row
  for (const FormatSpec& spec : LowBitVariants()) {
    FitOptions o;
    o.granularity = {Granularity::kChannel, 0};
    Result<QuantParams> p = Fit(x.data(), 6, 8, spec, o);
    ASSERT_TRUE(p.ok()) << FormatName(spec);
    // Only a table with an exact zero can promise it (not int1 or pow2-1).
    if (std::find(p->levels.begin(), p->levels.end(), 0.0f) == p->levels.end()) continue;
    std::vector<uint32_t> codes(x.size());
    std::vector<float> y(x.size());
    ASSERT_TRUE(Encode(*p, x.data(), codes.data()).ok());
    Decode(*p, codes.data(), y.data());
    for (int64_t i = 0; i < 6 * 8; ++i) {
      if (i / 8 != 3) {
        ASSERT_EQ(y[i], 0.0f) << FormatName(spec) << " at " << i;
      }
    }
  }
}

}  // namespace
}  // namespace lowbit
