#include "runtime/profile.h"

#include <algorithm>
#include <chrono>

namespace lowbit {

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
  return v[v.size() / 2];
}

double MedianRunMs(Plan* plan, int warmup, int runs) {
  for (int i = 0; i < warmup; ++i) plan->Run();
  std::vector<double> ms;
  for (int r = 0; r < std::max(runs, 1); ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    plan->Run();
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  return Median(std::move(ms));
}

std::vector<StepTime> ProfileSteps(Plan* plan, int warmup, int runs) {
  for (int i = 0; i < warmup; ++i) plan->Run();
  std::vector<std::vector<double>> per_step(plan->num_steps());
  std::vector<double> s;
  for (int r = 0; r < std::max(runs, 1); ++r) {
    plan->RunTimed(&s);
    for (size_t i = 0; i < s.size(); ++i) per_step[i].push_back(s[i] * 1e3);
  }
  std::vector<StepTime> out;
  for (int i = 0; i < plan->num_steps(); ++i) {
    out.push_back({plan->step_name(i), plan->step_op(i), plan->step_algorithm(i),
                   Median(std::move(per_step[i]))});
  }
  return out;
}

}  // namespace lowbit
