#include "runtime/profile.h"

#include "base/rng.h"

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

std::vector<double> InterleavedMedianMs(const std::vector<Plan*>& plans, int rounds, int runs) {
  for (Plan* p : plans) {
    Rng same(1);
    Tensor& x = p->input(0);
    if (x.dtype() != DType::kFloat32) continue;
    for (int64_t j = 0; j < x.numel(); ++j) x.data<float>()[j] = static_cast<float>(same.Normal());
  }
  std::vector<std::vector<double>> t(plans.size());
  for (int round = 0; round < std::max(rounds, 1); ++round) {
    for (size_t j = 0; j < plans.size(); ++j) t[j].push_back(MedianRunMs(plans[j], 3, runs));
  }
  std::vector<double> out;
  for (std::vector<double>& v : t) out.push_back(Median(std::move(v)));
  return out;
}

}  // namespace lowbit
