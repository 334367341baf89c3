// Format names, cost model, storage accounting, pruning, granularity, and the
// quality ordering the families are meant to have.
#include <algorithm>
#include <cmath>

#include <gtest/gtest.h>

#include "format/family.h"
#include "lowbit/format.h"
#include "lowbit/packed_tensor.h"
#include "tests/test_util.h"

namespace lowbit {
namespace {

using testing::Laplace;
using testing::TestSeed;

TEST(FormatSpecTest, EveryVariantNameRoundTrips) {
  int n = 0;
  for (int b = 1; b <= 32; ++b) {
    for (const FormatSpec& s : AllVariants(b)) {
      const std::string name = FormatName(s);
      Result<FormatSpec> back = ParseFormat(name);
      ASSERT_TRUE(back.ok()) << name << ": " << back.status().ToString();
      EXPECT_EQ(*back, s) << name;
      EXPECT_TRUE(ValidateSpec(s).ok()) << name;
      ++n;
    }
  }
  // int/uint/int-asym, pow2, nhot1..3, codebook at 1..8 bits; fp16, bf16, fp32.
  EXPECT_EQ(n, 8 * 8 + 3);
}

TEST(FormatSpecTest, NamesUsersTypeParse) {
  EXPECT_EQ(ParseFormat("int8")->bits, 8);
  EXPECT_TRUE(ParseFormat("int8")->is_signed);
  EXPECT_FALSE(ParseFormat("uint4")->is_signed);
  EXPECT_TRUE(ParseFormat("int3-asym")->asymmetric);
  EXPECT_EQ(ParseFormat("nhot2-4")->hot, 2);
  EXPECT_EQ(ParseFormat("nhot2-4")->bits, 4);
  EXPECT_EQ(ParseFormat("codebook-3")->family, Family::kCodebook);
  EXPECT_EQ(ParseFormat("pow2-4")->family, Family::kPow2);
  EXPECT_EQ(ParseFormat("float")->float_kind, FloatKind::kFp32);
  EXPECT_EQ(ParseFormat("bf16")->float_kind, FloatKind::kBf16);
}

TEST(FormatSpecTest, BadNamesGiveOneLineErrorsNamingTheValue) {
  for (const char* bad : {"int9", "int0", "uint12", "nhot4-2", "nhot0-3", "nhot2-9", "nhot-4",
                          "codebook-", "codebook-x", "pow2-0", "int4-asymx", "uint4-asym", "foo",
                          "", "fp8"}) {
    Result<FormatSpec> r = ParseFormat(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().message().find('\n'), std::string::npos);
    EXPECT_NE(r.status().message().find(std::string("'") + bad), std::string::npos)
        << r.status().message();
  }
}

TEST(FormatSpecTest, GranularityAndClipParse) {
  EXPECT_EQ(ParseGranularity("group:64")->group_size, 64);
  EXPECT_EQ(ParseGranularity("channel")->kind, Granularity::kChannel);
  EXPECT_FALSE(ParseGranularity("group:0").ok());
  EXPECT_FALSE(ParseGranularity("group:x").ok());
  EXPECT_FALSE(ParseGranularity("row").ok());
  FitOptions o;
  EXPECT_TRUE(ParseClip("percentile:99.9", &o).ok());
  EXPECT_EQ(o.clip, ClipMethod::kPercentile);
  EXPECT_DOUBLE_EQ(o.percentile, 99.9);
  EXPECT_FALSE(ParseClip("percentile:0", &o).ok());
  EXPECT_FALSE(ParseClip("percentile:101", &o).ok());
  EXPECT_FALSE(ParseClip("max", &o).ok());
}

TEST(FormatSpecTest, MultiplyCost) {
  EXPECT_EQ(CostOf(*ParseFormat("int4")).ops, 4);
  EXPECT_EQ(CostOf(*ParseFormat("int4")).bits, 4);
  EXPECT_EQ(CostOf(*ParseFormat("pow2-4")).shift_adds, 1);
  EXPECT_EQ(CostOf(*ParseFormat("nhot3-5")).shift_adds, 3);
  EXPECT_EQ(CostOf(*ParseFormat("nhot3-5")).ops, 3);
  EXPECT_EQ(CostOf(*ParseFormat("nhot3-5")).bits, 5);
  EXPECT_EQ(CostOf(*ParseFormat("codebook-3")).ops, 3);
  EXPECT_EQ(CostOf(*ParseFormat("fp16")).ops, 16);
}

TEST(LevelsTest, FixedTables) {
  const float x[] = {-1.0f, 0.5f};
  auto levels = [&](const char* name) { return Fit(x, 1, 2, *ParseFormat(name), FitOptions())->levels; };
  EXPECT_EQ(levels("int2"), (std::vector<float>{-2, -1, 0, 1}));
  EXPECT_EQ(levels("int1"), (std::vector<float>{-1, 1}));
  EXPECT_EQ(levels("uint2"), (std::vector<float>{0, 1, 2, 3}));
  EXPECT_EQ(levels("int2-asym"), (std::vector<float>{0, 1, 2, 3}));
  EXPECT_EQ(levels("pow2-3"), (std::vector<float>{-1, -0.5, -0.25, 0, 0.25, 0.5, 1}));
  EXPECT_EQ(levels("pow2-8").size(), 255u);
  EXPECT_EQ(levels("int8").front(), -128);
  EXPECT_EQ(levels("int8").back(), 127);
}

// Number of nonzero digits in the non-adjacent form: the fewest signed powers
// of two that sum to v.
int NafWeight(int v) {
  int w = 0;
  while (v != 0) {
    if (v & 1) {
      const int d = 2 - ((v % 4 + 4) % 4);
      v -= d;
      ++w;
    }
    v /= 2;
  }
  return w;
}

TEST(LevelsTest, NHotCandidatesAreSumsOfAtMostNPowersOfTwo) {
  for (int n = 1; n <= 3; ++n) {
    const std::vector<int> cand = NHotCandidates(n);
    int expected = 0;
    for (int v = -127; v <= 127; ++v) {
      // With exponents 0..6 only, 127 = 128 - 1 is out of reach for n = 2 but
      // 64 + 64 - 1 reaches it for n = 3; check membership by search instead.
      bool reachable = false;
      std::vector<int> frontier = {0};
      for (int t = 0; t < n && !reachable; ++t) {
        std::vector<int> next;
        for (int f : frontier) {
          for (int e = 0; e <= 6; ++e) {
            for (int s : {-1, 1}) next.push_back(f + s * (1 << e));
          }
        }
        frontier.insert(frontier.end(), next.begin(), next.end());
        std::sort(frontier.begin(), frontier.end());
        frontier.erase(std::unique(frontier.begin(), frontier.end()), frontier.end());
      }
      reachable = std::binary_search(frontier.begin(), frontier.end(), v);
      if (reachable) {
        ++expected;
        EXPECT_TRUE(std::binary_search(cand.begin(), cand.end(), v)) << n << " " << v;
        EXPECT_LE(NafWeight(v), n) << v;
      }
    }
    EXPECT_EQ(static_cast<int>(cand.size()), expected);
  }
  EXPECT_EQ(NHotCandidates(1).size(), 15u);  // 0, +-2^0..2^6
}

TEST(LevelsTest, NHotLevelsComeFromTheCandidates) {
  const std::vector<float> x = Laplace(20000, TestSeed());
  for (int n = 1; n <= 3; ++n) {
    for (int b = 1; b <= 8; ++b) {
      FormatSpec s;
      s.family = Family::kNHot;
      s.hot = n;
      s.bits = b;
      Result<QuantParams> p = Fit(x.data(), 20, 1000, s, FitOptions());
      ASSERT_TRUE(p.ok());
      const std::vector<int> cand = NHotCandidates(n);
      // All 2^b levels are used while the candidates are plentiful; at wide
      // widths, candidates beyond the data's range are of no use and dropped.
      EXPECT_LE(p->levels.size(), std::min(size_t{1} << b, cand.size()));
      if (n >= 2 && b <= 4) {
        EXPECT_EQ(p->levels.size(), size_t{1} << b) << FormatName(s);
      }
      for (float l : p->levels) {
        EXPECT_TRUE(std::binary_search(cand.begin(), cand.end(), static_cast<int>(l)));
        EXPECT_EQ(l, std::round(l));
      }
    }
  }
}

TEST(FitTest, GranularityGivesOneScalePerGranule) {
  const std::vector<float> x = Laplace(10 * 70, TestSeed());
  FitOptions o;
  o.granularity = *ParseGranularity("group:32");
  Result<QuantParams> p = Fit(x.data(), 10, 70, *ParseFormat("int4-asym"), o);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->groups_per_row(), 3);
  EXPECT_EQ(p->scales.size(), 30u);
  EXPECT_EQ(p->zero_points.size(), 30u);
  EXPECT_EQ(p->granule_of(2, 69), 2 * 3 + 2);
  o.granularity = *ParseGranularity("channel");
  EXPECT_EQ(Fit(x.data(), 10, 70, *ParseFormat("int4"), o)->scales.size(), 10u);
  EXPECT_TRUE(Fit(x.data(), 10, 70, *ParseFormat("int4"), o)->zero_points.empty());
}

TEST(FitTest, PerChannelScalesFollowChannelRanges) {
  // Rows whose magnitudes differ by 1000x: per-channel scales must track them.
  std::vector<float> x = Laplace(4 * 256, TestSeed());
  for (int c = 0; c < 256; ++c) x[3 * 256 + c] *= 1000.0f;
  FitOptions tensor, channel;
  channel.granularity = {Granularity::kChannel, 0};
  const FormatSpec spec = *ParseFormat("int4");
  auto sqnr_row0 = [&](const FitOptions& o) {
    QuantParams p = *Fit(x.data(), 4, 256, spec, o);
    std::vector<uint32_t> codes(x.size());
    std::vector<float> y(x.size());
    EXPECT_TRUE(Encode(p, x.data(), codes.data()).ok());
    Decode(p, codes.data(), y.data());
    return MeasureError(x.data(), y.data(), 256).sqnr_db;
  };
  // One tensor scale flattens the small row to (almost) nothing; its own
  // scale keeps it at int4 quality.
  EXPECT_LT(sqnr_row0(tensor), 3.0);
  EXPECT_GT(sqnr_row0(channel), 15.0);
}

double Sqnr(const std::vector<float>& x, const char* format, FitOptions o = FitOptions()) {
  Result<PackedTensor> t =
      PackedTensor::Quantize(x.data(), {static_cast<int64_t>(x.size()) / 256, 256},
                             *ParseFormat(format), o);
  EXPECT_TRUE(t.ok()) << t.status().ToString();
  std::vector<float> y(x.size());
  t->Dequantize(y.data());
  return MeasureError(x.data(), y.data(), static_cast<int64_t>(x.size())).sqnr_db;
}

TEST(FitTest, MseClippingBeatsMinMax) {
  const std::vector<float> x = Laplace(1 << 16, TestSeed());
  FitOptions minmax;
  minmax.clip = ClipMethod::kMinMax;
  for (const char* f : {"int2", "int3", "int4", "int4-asym", "pow2-3"}) {
    EXPECT_GT(Sqnr(x, f), Sqnr(x, f, minmax) + 0.5) << f;
  }
  FitOptions pct;
  pct.clip = ClipMethod::kPercentile;
  pct.percentile = 99.0;
  EXPECT_GT(Sqnr(x, "int3", pct), Sqnr(x, "int3", minmax)) << "percentile clipping helps too";
}

// The point of the families: on weight-like (Laplace) data, a learned codebook
// is at least as good as n-hot, which is at least as good as a uniform grid.
TEST(FitTest, CodebookBeatsNHotBeatsIntOnLaplaceData) {
  const std::vector<float> x = Laplace(1 << 16, TestSeed());
  for (int b : {2, 3, 4}) {
    const std::string bs = std::to_string(b);
    const double i = Sqnr(x, ("int" + bs).c_str());
    const double ia = Sqnr(x, ("int" + bs + "-asym").c_str());
    const double n2 = Sqnr(x, ("nhot2-" + bs).c_str());
    const double n3 = Sqnr(x, ("nhot3-" + bs).c_str());
    const double cb = Sqnr(x, ("codebook-" + bs).c_str());
    SCOPED_TRACE(::testing::Message() << b << " bits: int " << i << " int-asym " << ia
                                      << " nhot2 " << n2 << " nhot3 " << n3 << " codebook " << cb);
    EXPECT_GE(cb + 1e-3, n3);
    EXPECT_GE(n3 + 1e-3, n2);
    EXPECT_GT(n2, std::max(i, ia));
  }
}

TEST(PruneTest, PrunesExactlyTheSmallestAndKeepsThemZero) {
  const std::vector<float> x = Laplace(4000, TestSeed());
  std::vector<float> p = x;
  ASSERT_TRUE(Prune(p.data(), 4000, 0.5).ok());
  EXPECT_EQ(std::count(p.begin(), p.end(), 0.0f), 2000);
  float max_pruned = 0, min_kept = INFINITY;
  for (int i = 0; i < 4000; ++i) {
    if (p[i] == 0) max_pruned = std::max(max_pruned, std::fabs(x[i]));
    else min_kept = std::min(min_kept, std::fabs(x[i]));
  }
  EXPECT_LE(max_pruned, min_kept);
  EXPECT_FALSE(Prune(p.data(), 4000, 1.0).ok());
  EXPECT_FALSE(Prune(p.data(), 4000, -0.1).ok());

  // Every format with a zero level keeps pruned weights exactly zero.
  for (int b = 2; b <= 4; ++b) {
    for (const FormatSpec& spec : AllVariants(b)) {
      if (spec.family == Family::kFloat) continue;
      Result<PackedTensor> t =
          PackedTensor::Quantize(x.data(), {40, 100}, spec, FitOptions(), 0.6);
      ASSERT_TRUE(t.ok()) << FormatName(spec) << ": " << t.status().ToString();
      std::vector<float> y(x.size());
      t->Dequantize(y.data());
      std::vector<float> pruned = x;
      ASSERT_TRUE(Prune(pruned.data(), 4000, 0.6).ok());
      for (int i = 0; i < 4000; ++i) {
        if (pruned[i] == 0.0f) {
          ASSERT_EQ(y[i], 0.0f) << FormatName(spec) << " at " << i;
        }
      }
    }
  }
  EXPECT_FALSE(PackedTensor::Quantize(x.data(), {4000}, *ParseFormat("int1"), FitOptions(), 0.5).ok());
}

}  // namespace
}  // namespace lowbit
