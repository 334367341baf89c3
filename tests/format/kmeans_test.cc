// 1-D clustering against brute force: the DP must be exactly optimal, the
// codebook fit exact-or-better, subset selection exact, PSO deterministic.
#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>

#include <gtest/gtest.h>

#include "format/kmeans.h"
#include "tests/test_util.h"

namespace lowbit {
namespace {

using testing::TestSeed;

// Optimal k-means SSE by enumerating every split of the sorted values into k
// non-empty contiguous runs (optimal 1-D clusters are contiguous).
double BruteForceKMeans(std::vector<float> v, int k) {
  std::sort(v.begin(), v.end());
  const int n = static_cast<int>(v.size());
  k = std::min(k, n);
  double best = std::numeric_limits<double>::infinity();
  std::vector<int> cuts;
  std::function<void(int, int)> rec = [&](int start, int left) {
    if (left == 1) {
      std::vector<int> b = cuts;
      b.insert(b.begin(), 0);
      b.push_back(n);
      double sse = 0;
      for (size_t i = 0; i + 1 < b.size(); ++i) {
        double mean = 0;
        for (int j = b[i]; j < b[i + 1]; ++j) mean += v[j];
        mean /= b[i + 1] - b[i];
        for (int j = b[i]; j < b[i + 1]; ++j) sse += (v[j] - mean) * (v[j] - mean);
      }
      best = std::min(best, sse);
      return;
    }
    for (int c = start + 1; c <= n - left + 1; ++c) {
      cuts.push_back(c);
      rec(c, left - 1);
      cuts.pop_back();
    }
  };
  rec(0, k);
  return best;
}

std::vector<float> SmallData(Rng& rng, int n) {
  std::vector<float> v(n);
  for (float& x : v) {
    // Some duplicates, some spread.
    x = rng.Uniform() < 0.2 ? 0.5f : static_cast<float>(rng.Laplace(1.0));
  }
  return v;
}

TEST(KMeansTest, DynamicProgramIsExactlyOptimal) {
  const uint64_t seed = TestSeed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  Rng rng(seed);
  for (int trial = 0; trial < 200; ++trial) {
    const int n = 1 + static_cast<int>(rng.Below(11));
    const int k = 1 + static_cast<int>(rng.Below(5));
    const std::vector<float> v = SmallData(rng, n);
    const SortedData data(v);
    const double brute = BruteForceKMeans(v, k);
    const Clusters dp = KMeansDp(MakeBins(data, 1 << 14), k);
    EXPECT_NEAR(AssignmentCost(data, dp.centroids), brute, 1e-9 + 1e-9 * brute)
        << "n " << n << " k " << k;
    // The codebook path: exact (or better, never worse) for every init.
    for (CodebookInit init : {CodebookInit::kDp}) {
      const Clusters c = KMeans1D(data, k, init, seed);
      EXPECT_LE(AssignmentCost(data, c.centroids), brute + 1e-9 + 1e-9 * brute);
    }
    for (CodebookInit init : {CodebookInit::kKMeansPP, CodebookInit::kPso}) {
      const Clusters c = KMeans1D(data, k, init, seed);
      EXPECT_GE(AssignmentCost(data, c.centroids), brute - 1e-9 - 1e-9 * brute);
    }
  }
}

TEST(KMeansTest, BinnedDpPlusLloydIsCloseToOptimalOnLargeData) {
  // 100k distinct values: the DP clusters 4096 runs, then Lloyd refines on all
  // the data. Compare with exact DP on a 16k-value subsample scaled up.
  const std::vector<float> v = testing::Laplace(100000, TestSeed());
  const SortedData data(v);
  const Clusters c = KMeans1D(data, 8, CodebookInit::kDp, 1);
  const Clusters pp = KMeans1D(data, 8, CodebookInit::kKMeansPP, 1);
  const Clusters pso = KMeans1D(data, 8, CodebookInit::kPso, 1);
  EXPECT_LE(c.sse, pp.sse * (1 + 1e-6));
  EXPECT_LE(c.sse, pso.sse * (1 + 1e-6));
  // Lloyd's fixed point: every centroid is the mean of its cell.
  const Clusters again = Lloyd(data, c.centroids);
  EXPECT_NEAR(again.sse, c.sse, 1e-9 * c.sse);
}

TEST(KMeansTest, PsoIsDeterministicForAFixedSeed) {
  const std::vector<float> v = testing::Laplace(5000, TestSeed());
  const SortedData data(v);
  const Bins bins = MakeBins(data, 4096);
  Rng a(42), b(42), c(43);
  const std::vector<double> sa = PsoSeeds(bins, 8, a);
  const std::vector<double> sb = PsoSeeds(bins, 8, b);
  const std::vector<double> sc = PsoSeeds(bins, 8, c);
  EXPECT_EQ(sa, sb);
  EXPECT_NE(sa, sc);
  EXPECT_EQ(KMeans1D(data, 8, CodebookInit::kPso, 7).centroids,
            KMeans1D(data, 8, CodebookInit::kPso, 7).centroids);
  // PSO seeds are sensible: better than k equal-spaced levels over the range.
  std::vector<double> even;
  for (int i = 0; i < 8; ++i) even.push_back(data.values().front() + (i + 0.5) / 8 *
                                             (data.values().back() - data.values().front()));
  EXPECT_LT(AssignmentCost(data, sa), AssignmentCost(data, even));
}

TEST(SelectLevelsTest, EqualsBruteForceSubsetSearch) {
  const uint64_t seed = TestSeed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  Rng rng(seed + 5);
  for (int trial = 0; trial < 100; ++trial) {
    const std::vector<float> v = SmallData(rng, 30);
    const SortedData data(v);
    const int m = 1 + static_cast<int>(rng.Below(9));
    std::vector<double> cand;
    for (int i = 0; i < m; ++i) cand.push_back(std::round(rng.Laplace(1.5) * 4) / 4);
    std::sort(cand.begin(), cand.end());
    cand.erase(std::unique(cand.begin(), cand.end()), cand.end());
    const int mm = static_cast<int>(cand.size());
    const int k = 1 + static_cast<int>(rng.Below(4));
    const int forced = rng.Uniform() < 0.5 ? static_cast<int>(rng.Below(mm)) : -1;
    double best = std::numeric_limits<double>::infinity();
    for (int mask = 1; mask < (1 << mm); ++mask) {
      if (__builtin_popcount(mask) != std::min(k, mm)) continue;
      if (forced >= 0 && !(mask & (1 << forced))) continue;
      std::vector<double> chosen;
      for (int i = 0; i < mm; ++i) {
        if (mask & (1 << i)) chosen.push_back(cand[i]);
      }
      best = std::min(best, AssignmentCost(data, chosen));
    }
    const Selection sel = SelectLevels(data, cand, k, forced);
    ASSERT_EQ(static_cast<int>(sel.chosen.size()), std::min(k, mm));
    std::vector<double> chosen;
    for (int i : sel.chosen) chosen.push_back(cand[i]);
    if (forced >= 0) {
      EXPECT_TRUE(std::find(sel.chosen.begin(), sel.chosen.end(), forced) != sel.chosen.end());
    }
    EXPECT_NEAR(sel.sse, best, 1e-9 + 1e-9 * best);
    EXPECT_NEAR(AssignmentCost(data, chosen), best, 1e-9 + 1e-9 * best);
  }
}

}  // namespace
}  // namespace lowbit
