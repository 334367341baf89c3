#include "tune/refine.h"

#include <chrono>

namespace lowbit {

Result<std::vector<RefinedPoint>> RefineFront(const TuneResult& r, const RefineFn& refine,
                                              double budget_seconds, int* chosen) {
  *chosen = -1;
  std::vector<RefinedPoint> done;
  if (r.best < 0) return done;
  // Front points cheaper than the choice, cheapest first.
  std::vector<int> cand;
  for (int p : r.front) {
    if (p != r.best && r.points[p].objective < r.points[r.best].objective) cand.push_back(p);
  }
  const auto start = std::chrono::steady_clock::now();
  size_t lo = 0, hi = cand.size();  // cand[hi] (or the choice) is known to meet the bound
  while (lo < hi) {
    const double spent = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (budget_seconds > 0 && spent >= budget_seconds) break;
    const size_t mid = lo + (hi - lo) / 2;
    RefinedPoint t;
    LOWBIT_ASSIGN_OR_RETURN(t, refine(cand[mid]));
    t.point = cand[mid];
    t.feasible = t.metric - r.z * t.se >= r.bound;
    done.push_back(t);
    if (t.feasible) {
      hi = mid;
      *chosen = static_cast<int>(done.size()) - 1;
    } else {
      lo = mid + 1;
    }
  }
  return done;
}

}  // namespace lowbit
