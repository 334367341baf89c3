// Nearest-level coding for one granule: the inner loop of Encode and of the
// scale search in Fit.
#ifndef LOWBIT_FORMAT_ENCODE_H_
#define LOWBIT_FORMAT_ENCODE_H_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "lowbit/format.h"

namespace lowbit {

// Codes one granule: u = x / scale, then the nearest effective level
// (level - zero_point). Ties go to the level of smaller magnitude, then the
// positive one; this is the rule brute-force search in the tests implements.
class GranuleCoder {
 public:
  // `levels` must outlive the coder and be strictly ascending.
  GranuleCoder(const std::vector<float>& levels, bool int_grid, float scale, int zero_point)
      : levels_(levels.data()),
        n_(static_cast<int>(levels.size())),
        int_grid_(int_grid),
        scale_(scale),
        zp_(zero_point),
        lo_(int_grid ? static_cast<int>(levels.front()) - zero_point : 0),
        hi_(int_grid ? static_cast<int>(levels.back()) - zero_point : 0) {}

  uint32_t EncodeOne(float x) const {
    const float u = x / scale_;
    if (int_grid_) {
      const float uc = std::clamp(u, static_cast<float>(lo_ - 1), static_cast<float>(hi_ + 1));
      const float q0 = std::floor(uc);
      const float d0 = uc - q0, d1 = (q0 + 1.0f) - uc;
      int q = static_cast<int>(q0);
      // Ties go toward zero: q0 when q0 >= 0, q0 + 1 when q0 + 1 <= 0.
      if (d1 < d0 || (d1 == d0 && q0 < 0.0f)) ++q;
      q = std::clamp(q, lo_, hi_);
      return static_cast<uint32_t>(q - lo_);
    }
    // First level above u; the answer is it or its left neighbour.
    const float* it = std::upper_bound(levels_, levels_ + n_, u);
    const int j = static_cast<int>(it - levels_);
    if (j == 0) return 0;
    if (j == n_) return static_cast<uint32_t>(n_ - 1);
    const float a = levels_[j - 1], b = levels_[j];
    const float da = std::fabs(u - a), db = std::fabs(u - b);
    if (da < db) return static_cast<uint32_t>(j - 1);
    if (db < da) return static_cast<uint32_t>(j);
    const bool prefer_b = std::fabs(b) < std::fabs(a) || (std::fabs(b) == std::fabs(a) && b > a);
    return static_cast<uint32_t>(prefer_b ? j : j - 1);
  }

  float DecodeOne(uint32_t code) const {
    return scale_ * (levels_[code] - static_cast<float>(zp_));
  }

  // Squared error of coding x[0..n).
  double Sse(const float* x, int64_t n) const {
    double sse = 0;
    for (int64_t i = 0; i < n; ++i) {
      const double e = static_cast<double>(x[i]) - DecodeOne(EncodeOne(x[i]));
      sse += e * e;
    }
    return sse;
  }

 private:
  const float* levels_;
  int n_;
  bool int_grid_;
  float scale_;
  int zp_;
  int lo_, hi_;
};

// True when levels are consecutive integers (the int family's grids), so the
// coder can round instead of searching.
bool IsIntGrid(const std::vector<float>& levels);

}  // namespace lowbit

#endif  // LOWBIT_FORMAT_ENCODE_H_
