// `lowbit bench`: latency of a model on random input, after warm-up: median,
// p90 and min over repeated runs, throughput, and peak resident memory.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/rng.h"
#include "commands.h"
#include "model_util.h"
#include "runtime/blas_setup.h"
#include "runtime/plan.h"
#include "runtime/profile.h"

namespace lowbit {
namespace {

// Peak resident memory of this process image in MiB: VmHWM belongs to the
// current address space, unlike getrusage's ru_maxrss, which carries over a
// parent's peak through fork and exec.
double PeakRssMib() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::strtod(line.c_str() + 6, nullptr) / 1024.0;
  }
  return 0.0;
}

struct BenchArgs {
  std::string model;
  int64_t batch = 1;
  bool batch_given = false;  // --batch on the command line
  int threads = 1;
  int warmup = 5;
  int runs = 0;          // 0: as many as fit in `seconds`
  double seconds = 2.0;
  bool json = false;
  bool profile = false;
};

Status RunBench(const BenchArgs& a) {
  if (a.batch < 1) return InvalidArgument("--batch must be >= 1, got ", a.batch);
  if (a.threads < 1) return InvalidArgument("--threads must be >= 1, got ", a.threads);
  if (a.warmup < 0 || a.runs < 0 || !(a.seconds > 0)) {
    return InvalidArgument("--warmup and --runs must be >= 0 and --seconds > 0");
  }
  Graph g;
  LOWBIT_ASSIGN_OR_RETURN(g, LoadModel(a.model));
  int64_t batch = 0;
  LOWBIT_ASSIGN_OR_RETURN(batch, EvalBatch(g, a.model, a.batch, a.batch_given));
  PlanOptions po;
  LOWBIT_ASSIGN_OR_RETURN(po, PlanOptionsFromEnvironment());
  po.batch = batch;
  po.threads = a.threads;
  std::unique_ptr<Plan> plan;
  LOWBIT_ASSIGN_OR_RETURN(plan, Plan::Create(g, po));
  Rng rng(1);
  for (int i = 0; i < plan->num_inputs(); ++i) {
    Tensor& t = plan->input(i);
    if (t.dtype() != DType::kFloat32) {
      return Unimplemented(a.model, ": input '", plan->input_info(i).name, "' is not float32");
    }
    for (int64_t j = 0; j < t.numel(); ++j) t.data<float>()[j] = static_cast<float>(rng.Normal());
  }
  for (int i = 0; i < a.warmup; ++i) plan->Run();
  std::vector<double> ms;
  const auto start = std::chrono::steady_clock::now();
  while (true) {
    const auto t0 = std::chrono::steady_clock::now();
    plan->Run();
    const auto t1 = std::chrono::steady_clock::now();
    ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
    const double elapsed = std::chrono::duration<double>(t1 - start).count();
    if (a.runs > 0 ? static_cast<int>(ms.size()) >= a.runs
                   : (elapsed >= a.seconds && ms.size() >= 5)) {
      break;
    }
  }
  std::sort(ms.begin(), ms.end());
  const double median = ms[ms.size() / 2];
  const double p90 = ms[std::min(ms.size() - 1, ms.size() * 9 / 10)];
  const double peak_mib = PeakRssMib();
  const double throughput = 1000.0 * static_cast<double>(batch) / median;
  std::vector<StepTime> nodes;
  std::map<std::string, double> op_ms;
  double node_total = 0;
  if (a.profile) {
    // The slowest first.
    nodes = ProfileSteps(plan.get(), 0, static_cast<int>(ms.size()));
    std::stable_sort(nodes.begin(), nodes.end(),
                     [](const StepTime& x, const StepTime& y) { return x.ms > y.ms; });
    for (const StepTime& n : nodes) {
      op_ms[n.op] += n.ms;
      node_total += n.ms;
    }
  }
  if (a.json) {
    nlohmann::json j;
    j["model"] = a.model;
    j["batch"] = batch;
    j["threads"] = a.threads;
    j["runs"] = ms.size();
    j["median_ms"] = median;
    j["p90_ms"] = p90;
    j["min_ms"] = ms.front();
    j["images_per_second"] = throughput;
    j["peak_rss_mib"] = peak_mib;
    j["blas_core"] = BlasCoreName();
    j["activation_buffer_mib"] = static_cast<double>(plan->buffer_bytes()) / (1 << 20);
    if (a.profile) {
      nlohmann::json jn = nlohmann::json::array();
      for (const StepTime& n : nodes) {
        jn.push_back({{"name", n.name}, {"op", n.op}, {"algorithm", n.algorithm}, {"median_ms", n.ms}});
      }
      j["profile"]["nodes"] = jn;
      for (const auto& [op, t] : op_ms) j["profile"]["ops_ms"][op] = t;
    }
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    std::printf(
        "%s: batch %lld, %d thread%s: median %.3f ms, p90 %.3f ms, min %.3f ms over %zu "
        "runs; %.1f images/s; peak RSS %.1f MiB\n",
        a.model.c_str(), static_cast<long long>(batch), a.threads, a.threads > 1 ? "s" : "", median,
        p90, ms.front(), ms.size(), throughput, peak_mib);
    if (a.profile) {
      std::printf("\nper node (median of %zu runs; the sum of medians is %.3f ms):\n", ms.size(),
                  node_total);
      std::printf("  %9s %6s  %-18s %s\n", "ms", "share", "op", "node [kernel]");
      for (const StepTime& n : nodes) {
        if (n.ms <= 0) continue;
        std::printf("  %9.3f %5.1f%%  %-18s %s%s%s%s\n", n.ms, 100 * n.ms / node_total, n.op.c_str(),
                    n.name.c_str(), n.algorithm.empty() ? "" : " [", n.algorithm.c_str(),
                    n.algorithm.empty() ? "" : "]");
      }
      std::vector<std::pair<double, std::string>> by_op;
      for (const auto& [op, t] : op_ms) by_op.push_back({t, op});
      std::sort(by_op.rbegin(), by_op.rend());
      std::printf("\nper operator:\n");
      for (const auto& [t, op] : by_op) {
        if (t > 0) std::printf("  %9.3f %5.1f%%  %s\n", t, 100 * t / node_total, op.c_str());
      }
    }
  }
  return OkStatus();
}

}  // namespace

Command AddBenchCommand(CLI::App& app) {
  auto args = std::make_shared<BenchArgs>();
  CLI::App* cmd = app.add_subcommand("bench", "Latency, throughput and memory of a model");
  cmd->add_option("model", args->model, "Model (.onnx)")->required();
  cmd->add_option("--batch", args->batch, "Batch size (a model that fixes its batch runs at that)")
      ->capture_default_str();
  cmd->add_option("--threads", args->threads, "Threads")->capture_default_str();
  cmd->add_option("--warmup", args->warmup, "Untimed runs first")->capture_default_str();
  cmd->add_option("--runs", args->runs, "Timed runs (default: as many as fit in --seconds)");
  cmd->add_option("--seconds", args->seconds, "Time to spend on timed runs")->capture_default_str();
  cmd->add_flag("--json", args->json, "Print one JSON object");
  cmd->add_flag("--profile", args->profile,
                "Also time every node (as many runs again) and list them, the slowest first");
  return {cmd, [args, cmd] {
            args->batch_given = cmd->count("--batch") > 0;
            return RunBench(*args);
          }};
}

}  // namespace lowbit
