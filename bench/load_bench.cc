// Load time of a model: ONNX import with the graph passes (LoadModel), and
// plan creation (Plan::Create: every packed weight laid out for its kernel),
// medians of repeated runs.
//
//   build/bench/load_bench MODEL.onnx [ROUNDS]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "runtime/profile.h"
#include "tools/lowbit/model_util.h"

int main(int argc, char** argv) {
  using Clock = std::chrono::steady_clock;
  if (argc < 2) return std::fprintf(stderr, "usage: load_bench MODEL.onnx [ROUNDS]\n"), 2;
  const int rounds = argc > 2 ? std::atoi(argv[2]) : 7;
  std::vector<double> load_ms, plan_ms;
  for (int r = 0; r < rounds; ++r) {
    auto t0 = Clock::now();
    auto g = lowbit::LoadModel(argv[1]);
    if (!g.ok()) return std::fprintf(stderr, "%s\n", g.status().ToString().c_str()), 1;
    auto t1 = Clock::now();
    auto plan = lowbit::Plan::Create(*g, lowbit::PlanOptions());
    if (!plan.ok()) return std::fprintf(stderr, "%s\n", plan.status().ToString().c_str()), 1;
    auto t2 = Clock::now();
    load_ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
    plan_ms.push_back(std::chrono::duration<double, std::milli>(t2 - t1).count());
  }
  std::printf("%s: import + passes %.1f ms, Plan::Create %.1f ms (medians of %d)\n", argv[1],
              lowbit::Median(load_ms), lowbit::Median(plan_ms), rounds);
  return 0;
}
