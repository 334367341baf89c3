// One-dimensional clustering for level tables: exact k-means by dynamic
// programming, Lloyd refinement, k-means++ and particle-swarm (PSO) seeding,
// and optimal subset selection from a fixed candidate set (nhot).
//
// All of it rests on one fact: in 1-D, an optimal assignment to sorted levels
// splits the sorted data into contiguous runs, so prefix sums of v and v^2 give
// the squared error of any run against any level in O(1).
#ifndef LOWBIT_FORMAT_KMEANS_H_
#define LOWBIT_FORMAT_KMEANS_H_

#include <cstdint>
#include <vector>

#include "base/rng.h"
#include "lowbit/format.h"

namespace lowbit {

// Sorted values with prefix sums (in double).
class SortedData {
 public:
  explicit SortedData(std::vector<float> values);

  int64_t size() const { return static_cast<int64_t>(v_.size()); }
  const std::vector<float>& values() const { return v_; }
  // Number of values <= x.
  int64_t CountLessEqual(double x) const;
  // Sum over sorted indices [a, b) of (v - level)^2.
  double Cost(int64_t a, int64_t b, double level) const {
    const double n = static_cast<double>(b - a);
    const double s1 = p1_[b] - p1_[a], s2 = p2_[b] - p2_[a];
    const double c = s2 - 2.0 * level * s1 + level * level * n;
    return c > 0 ? c : 0.0;
  }
  // Mean of sorted indices [a, b); precondition a < b.
  double Mean(int64_t a, int64_t b) const {
    return (p1_[b] - p1_[a]) / static_cast<double>(b - a);
  }

 private:
  std::vector<float> v_;
  std::vector<double> p1_, p2_;
};

// Weighted points in ascending order: bin i stands for w[i] values whose sum is
// s1[i] and sum of squares s2[i].
struct Bins {
  std::vector<double> w, s1, s2;
  bool exact = false;  // one bin per distinct value
  int64_t size() const { return static_cast<int64_t>(w.size()); }
  double mean(int64_t i) const { return s1[i] / w[i]; }
};

// One bin per distinct value when there are at most `max_bins` of them (then
// clustering the bins is exact); otherwise `max_bins` runs of equal count.
Bins MakeBins(const SortedData& data, int64_t max_bins);

struct Clusters {
  std::vector<double> centroids;  // ascending
  double sse = 0;                 // on the data it was computed from
};

// Optimal k-means of the bins, each bin kept whole: O(k n log n) by divide and
// conquer over monotone split points. Returns min(k, n) clusters.
Clusters KMeansDp(const Bins& bins, int k);

// Lloyd iterations on the full data from sorted `centroids` until no boundary
// moves (at most `max_iter`); empty clusters keep their centroid.
Clusters Lloyd(const SortedData& data, std::vector<double> centroids, int max_iter = 300);

// Squared error of assigning every value to its nearest of sorted `centroids`.
double AssignmentCost(const SortedData& data, const std::vector<double>& centroids);

// k-means++ seeding on the bins (D^2 sampling, weighted by bin size).
std::vector<double> KMeansPlusPlusSeeds(const Bins& bins, int k, Rng& rng);

// Particle-swarm optimisation of k centroids on the bins (seed 002's
// initialisation for k-means): `particles` candidate centroid sets move for
// `iterations` steps towards their own and the swarm's best; returns the best.
std::vector<double> PsoSeeds(const Bins& bins, int k, Rng& rng, int particles = 20,
                             int iterations = 60);

// k clusters of `data` with the given initialisation, refined by Lloyd. kDp is
// exact when the data has at most 16384 distinct values; above that it clusters
// 4096 equal-count runs exactly, then refines with Lloyd on all the data.
Clusters KMeans1D(const SortedData& data, int k, CodebookInit init, uint64_t seed);

// Chooses min(k, candidates.size()) of the ascending `candidates` minimizing the
// squared error of assigning each value to its nearest chosen candidate;
// `forced` (an index, or -1) must be among them. Exact: O(k m^2) for m
// candidates.
struct Selection {
  std::vector<int> chosen;  // ascending candidate indices
  double sse = 0;
};
Selection SelectLevels(const SortedData& data, const std::vector<double>& candidates, int k,
                       int forced);

}  // namespace lowbit

#endif  // LOWBIT_FORMAT_KMEANS_H_
