// Unstructured magnitude pruning.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "lowbit/format.h"

namespace lowbit {

Status Prune(float* x, int64_t n, double ratio) {
  if (!(ratio >= 0.0 && ratio < 1.0)) {
    return InvalidArgument("prune ratio must be in [0, 1), got ", ratio);
  }
  const int64_t k = static_cast<int64_t>(std::llround(ratio * static_cast<double>(n)));
  if (k == 0) return OkStatus();
  for (int64_t i = 0; i < n; ++i) {
    if (!std::isfinite(x[i])) {
      return InvalidArgument("cannot prune: value at index ", i, " is ", x[i]);
    }
  }
  // Order by magnitude, index as the tie-break, so exactly k values are zeroed
  // and the choice is deterministic.
  std::vector<int64_t> idx(n);
  std::iota(idx.begin(), idx.end(), 0);
  std::nth_element(idx.begin(), idx.begin() + (k - 1), idx.end(), [&](int64_t a, int64_t b) {
    const float fa = std::fabs(x[a]), fb = std::fabs(x[b]);
    return fa < fb || (fa == fb && a < b);
  });
  for (int64_t i = 0; i < k; ++i) x[idx[i]] = 0.0f;
  return OkStatus();
}

}  // namespace lowbit
