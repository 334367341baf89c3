#include "format/kmeans.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "base/check.h"

namespace lowbit {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// Prefix sums over bins, for the squared error of any run of whole bins.
struct BinPrefix {
  explicit BinPrefix(const Bins& b) : w(b.size() + 1), s1(b.size() + 1), s2(b.size() + 1) {
    for (int64_t i = 0; i < b.size(); ++i) {
      w[i + 1] = w[i] + b.w[i];
      s1[i + 1] = s1[i] + b.s1[i];
      s2[i + 1] = s2[i] + b.s2[i];
    }
  }
  // Error of bins [i, j) around their mean; i < j.
  double Sse(int64_t i, int64_t j) const {
    const double ww = w[j] - w[i], a = s1[j] - s1[i];
    const double c = (s2[j] - s2[i]) - a * a / ww;
    return c > 0 ? c : 0.0;
  }
  double Mean(int64_t i, int64_t j) const { return (s1[j] - s1[i]) / (w[j] - w[i]); }
  // Error of bins [i, j) against a fixed level.
  double Cost(int64_t i, int64_t j, double level) const {
    const double c = (s2[j] - s2[i]) - 2.0 * level * (s1[j] - s1[i]) + level * level * (w[j] - w[i]);
    return c > 0 ? c : 0.0;
  }
  std::vector<double> w, s1, s2;
};

// Squared error of assigning each bin (by its mean) to the nearest of the
// sorted centroids.
double BinAssignmentCost(const Bins& bins, const BinPrefix& pre, const std::vector<double>& c) {
  double total = 0;
  int64_t start = 0;
  for (size_t i = 0; i < c.size(); ++i) {
    int64_t end = bins.size();
    if (i + 1 < c.size()) {
      const double mid = 0.5 * (c[i] + c[i + 1]);
      // First bin whose mean is above mid.
      int64_t lo = start, hi = bins.size();
      while (lo < hi) {
        const int64_t m = (lo + hi) / 2;
        if (bins.mean(m) <= mid) lo = m + 1; else hi = m;
      }
      end = lo;
    }
    if (end > start) total += pre.Cost(start, end, c[i]);
    start = end;
  }
  return total;
}

}  // namespace

SortedData::SortedData(std::vector<float> values) : v_(std::move(values)) {
  std::sort(v_.begin(), v_.end());
  p1_.resize(v_.size() + 1);
  p2_.resize(v_.size() + 1);
  // Kahan-free double sums are ample: values are normalized to about [-1, 1].
  for (size_t i = 0; i < v_.size(); ++i) {
    const double x = v_[i];
    p1_[i + 1] = p1_[i] + x;
    p2_[i + 1] = p2_[i] + x * x;
  }
}

int64_t SortedData::CountLessEqual(double x) const {
  return std::upper_bound(v_.begin(), v_.end(), x,
                          [](double a, float b) { return a < static_cast<double>(b); }) -
         v_.begin();
}

Bins MakeBins(const SortedData& data, int64_t max_bins) {
  const std::vector<float>& v = data.values();
  const int64_t n = data.size();
  Bins bins;
  int64_t distinct = 0;
  for (int64_t i = 0; i < n && distinct <= max_bins; ++i) {
    if (i == 0 || v[i] != v[i - 1]) ++distinct;
  }
  auto add = [&](int64_t a, int64_t b) {
    double s1 = 0, s2 = 0;
    for (int64_t i = a; i < b; ++i) {
      s1 += v[i];
      s2 += static_cast<double>(v[i]) * v[i];
    }
    bins.w.push_back(static_cast<double>(b - a));
    bins.s1.push_back(s1);
    bins.s2.push_back(s2);
  };
  bins.exact = distinct <= max_bins;
  if (bins.exact) {
    for (int64_t a = 0; a < n;) {
      int64_t b = a + 1;
      while (b < n && v[b] == v[a]) ++b;
      add(a, b);
      a = b;
    }
  } else {
    for (int64_t i = 0; i < max_bins; ++i) add(n * i / max_bins, n * (i + 1) / max_bins);
  }
  return bins;
}

Clusters KMeansDp(const Bins& bins, int k) {
  const int64_t n = bins.size();
  Clusters out;
  if (n == 0 || k <= 0) return out;
  const BinPrefix pre(bins);
  if (k >= n) {
    for (int64_t i = 0; i < n; ++i) {
      out.centroids.push_back(bins.mean(i));
      out.sse += pre.Sse(i, i + 1);
    }
    return out;
  }
  // cost[t][j]: best error of the first j bins in t clusters; split[t][j] is
  // where the last cluster starts.
  std::vector<double> prev(n + 1, kInf), cur(n + 1, kInf);
  std::vector<std::vector<int32_t>> split(k + 1, std::vector<int32_t>(n + 1, 0));
  for (int64_t j = 1; j <= n; ++j) prev[j] = pre.Sse(0, j);
  for (int t = 2; t <= k; ++t) {
    std::fill(cur.begin(), cur.end(), kInf);
    // Divide and conquer: the optimal split point is monotone in j.
    struct Frame { int64_t jlo, jhi, olo, ohi; };
    std::vector<Frame> stack{{t, n, t - 1, n - 1}};
    while (!stack.empty()) {
      const Frame f = stack.back();
      stack.pop_back();
      if (f.jlo > f.jhi) continue;
      const int64_t j = (f.jlo + f.jhi) / 2;
      double best = kInf;
      int64_t best_i = f.olo;
      for (int64_t i = f.olo; i <= std::min(f.ohi, j - 1); ++i) {
        const double c = prev[i] + pre.Sse(i, j);
        if (c < best) {
          best = c;
          best_i = i;
        }
      }
      cur[j] = best;
      split[t][j] = static_cast<int32_t>(best_i);
      stack.push_back({f.jlo, j - 1, f.olo, best_i});
      stack.push_back({j + 1, f.jhi, best_i, f.ohi});
    }
    std::swap(prev, cur);
  }
  out.sse = prev[n];
  std::vector<int64_t> starts(k + 1);
  starts[k] = n;
  for (int t = k; t >= 2; --t) starts[t - 1] = split[t][starts[t]];
  starts[0] = 0;
  for (int t = 0; t < k; ++t) out.centroids.push_back(pre.Mean(starts[t], starts[t + 1]));
  return out;
}

Clusters Lloyd(const SortedData& data, std::vector<double> centroids, int max_iter) {
  std::sort(centroids.begin(), centroids.end());
  centroids.erase(std::unique(centroids.begin(), centroids.end()), centroids.end());
  const int64_t k = static_cast<int64_t>(centroids.size());
  std::vector<int64_t> bounds(k + 1, 0), old(k + 1, -1);
  for (int iter = 0; iter < max_iter && k > 0; ++iter) {
    bounds[0] = 0;
    bounds[k] = data.size();
    for (int64_t i = 1; i < k; ++i) {
      bounds[i] = data.CountLessEqual(0.5 * (centroids[i - 1] + centroids[i]));
    }
    if (bounds == old) break;
    old = bounds;
    for (int64_t i = 0; i < k; ++i) {
      if (bounds[i + 1] > bounds[i]) centroids[i] = data.Mean(bounds[i], bounds[i + 1]);
    }
  }
  Clusters out;
  out.centroids = std::move(centroids);
  out.sse = AssignmentCost(data, out.centroids);
  return out;
}

double AssignmentCost(const SortedData& data, const std::vector<double>& c) {
  double total = 0;
  int64_t start = 0;
  for (size_t i = 0; i < c.size(); ++i) {
    const int64_t end =
        i + 1 < c.size() ? data.CountLessEqual(0.5 * (c[i] + c[i + 1])) : data.size();
    if (end > start) total += data.Cost(start, end, c[i]);
    start = std::max(start, end);
  }
  return total;
}

std::vector<double> KMeansPlusPlusSeeds(const Bins& bins, int k, Rng& rng) {
  const int64_t n = bins.size();
  std::vector<double> seeds;
  if (n == 0) return seeds;
  auto pick = [&](const std::vector<double>& weight) {
    double total = 0;
    for (double w : weight) total += w;
    double r = rng.Uniform() * total;
    for (int64_t i = 0; i < n; ++i) {
      r -= weight[i];
      if (r < 0) return i;
    }
    return n - 1;
  };
  std::vector<double> d2(n);
  seeds.push_back(bins.mean(pick(bins.w)));
  for (int64_t i = 0; i < n; ++i) {
    const double d = bins.mean(i) - seeds[0];
    d2[i] = d * d;
  }
  while (static_cast<int>(seeds.size()) < std::min<int64_t>(k, n)) {
    std::vector<double> weight(n);
    double total = 0;
    for (int64_t i = 0; i < n; ++i) total += weight[i] = bins.w[i] * d2[i];
    if (total <= 0) break;  // every bin already coincides with a seed
    const double c = bins.mean(pick(weight));
    seeds.push_back(c);
    for (int64_t i = 0; i < n; ++i) {
      const double d = bins.mean(i) - c;
      d2[i] = std::min(d2[i], d * d);
    }
  }
  std::sort(seeds.begin(), seeds.end());
  return seeds;
}

std::vector<double> PsoSeeds(const Bins& bins, int k, Rng& rng, int particles, int iterations) {
  const int64_t n = bins.size();
  if (n == 0 || k <= 0) return {};
  if (k >= n) {
    std::vector<double> all;
    for (int64_t i = 0; i < n; ++i) all.push_back(bins.mean(i));
    return all;
  }
  const BinPrefix pre(bins);
  const double lo = bins.mean(0), hi = bins.mean(n - 1);
  const double vmax = 0.2 * (hi - lo);
  // Inertia and acceleration constants of the standard (Clerc) swarm.
  constexpr double kInertia = 0.7298, kCognitive = 1.49618, kSocial = 1.49618;

  std::vector<std::vector<double>> pos(particles), vel(particles), best(particles);
  std::vector<double> best_cost(particles, kInf);
  std::vector<double> swarm_best;
  double swarm_cost = kInf;
  auto evaluate = [&](int p) {
    std::sort(pos[p].begin(), pos[p].end());
    const double c = BinAssignmentCost(bins, pre, pos[p]);
    if (c < best_cost[p]) {
      best_cost[p] = c;
      best[p] = pos[p];
    }
    if (c < swarm_cost) {
      swarm_cost = c;
      swarm_best = pos[p];
    }
  };
  for (int p = 0; p < particles; ++p) {
    // Start each particle at k bins drawn by size, so particles begin where the
    // data is dense.
    pos[p].resize(k);
    for (int d = 0; d < k; ++d) {
      double r = rng.Uniform() * pre.w[n];
      const int64_t i = std::upper_bound(pre.w.begin() + 1, pre.w.end(), r) - pre.w.begin() - 1;
      pos[p][d] = bins.mean(std::min(i, n - 1));
    }
    vel[p].assign(k, 0.0);
    evaluate(p);
  }
  for (int it = 0; it < iterations; ++it) {
    for (int p = 0; p < particles; ++p) {
      for (int d = 0; d < k; ++d) {
        const double r1 = rng.Uniform(), r2 = rng.Uniform();
        double v = kInertia * vel[p][d] + kCognitive * r1 * (best[p][d] - pos[p][d]) +
                   kSocial * r2 * (swarm_best[d] - pos[p][d]);
        v = std::clamp(v, -vmax, vmax);
        vel[p][d] = v;
        pos[p][d] = std::clamp(pos[p][d] + v, lo, hi);
      }
      evaluate(p);
    }
  }
  return swarm_best;
}

Clusters KMeans1D(const SortedData& data, int k, CodebookInit init, uint64_t seed) {
  constexpr int64_t kExactDistinct = 16384, kRuns = 4096;
  Bins bins = MakeBins(data, kExactDistinct);
  if (!bins.exact) bins = MakeBins(data, kRuns);
  Rng rng(seed);
  std::vector<double> seeds;
  switch (init) {
    case CodebookInit::kDp: {
      Clusters dp = KMeansDp(bins, k);
      // Clusters of whole distinct values: the DP optimum is the optimum.
      if (bins.exact) return dp;
      seeds = std::move(dp.centroids);
      break;
    }
    case CodebookInit::kKMeansPP: seeds = KMeansPlusPlusSeeds(bins, k, rng); break;
    case CodebookInit::kPso: seeds = PsoSeeds(bins, k, rng); break;
  }
  return Lloyd(data, std::move(seeds));
}

Selection SelectLevels(const SortedData& data, const std::vector<double>& cand, int k,
                       int forced) {
  const int m = static_cast<int>(cand.size());
  Selection out;
  if (m == 0 || k <= 0) return out;
  const int kk = std::min(k, m);
  const int64_t n = data.size();
  std::vector<int64_t> pos(m);
  for (int i = 0; i < m; ++i) pos[i] = data.CountLessEqual(cand[i]);
  // pair[i][j]: error of the values between candidates i < j, each going to the
  // nearer of the two.
  std::vector<double> pair(static_cast<size_t>(m) * m, kInf);
  for (int i = 0; i < m; ++i) {
    for (int j = i + 1; j < m; ++j) {
      if (forced >= 0 && i < forced && forced < j) continue;  // would skip the forced one
      const int64_t mid = data.CountLessEqual(0.5 * (cand[i] + cand[j]));
      pair[static_cast<size_t>(i) * m + j] =
          data.Cost(pos[i], mid, cand[i]) + data.Cost(mid, pos[j], cand[j]);
    }
  }
  std::vector<double> prev(m, kInf), cur(m, kInf);
  std::vector<int> parent(static_cast<size_t>(kk) * m, -1);
  for (int j = 0; j < m; ++j) {
    if (forced >= 0 && j > forced) continue;
    prev[j] = data.Cost(0, pos[j], cand[j]);
  }
  for (int t = 1; t < kk; ++t) {
    std::fill(cur.begin(), cur.end(), kInf);
    for (int j = t; j < m; ++j) {
      double best = kInf;
      int arg = -1;
      for (int i = t - 1; i < j; ++i) {
        const double c = prev[i] + pair[static_cast<size_t>(i) * m + j];
        if (c < best) {
          best = c;
          arg = i;
        }
      }
      cur[j] = best;
      parent[static_cast<size_t>(t) * m + j] = arg;
    }
    std::swap(prev, cur);
  }
  double best = kInf;
  int last = -1;
  for (int j = kk - 1; j < m; ++j) {
    if (forced >= 0 && j < forced) continue;
    const double c = prev[j] + data.Cost(pos[j], n, cand[j]);
    if (c < best) {
      best = c;
      last = j;
    }
  }
  LOWBIT_CHECK(last >= 0);
  out.sse = best;
  out.chosen.resize(kk);
  for (int t = kk - 1; t >= 0; --t) {
    out.chosen[t] = last;
    last = t > 0 ? parent[static_cast<size_t>(t) * m + last] : -1;
  }
  return out;
}

}  // namespace lowbit
