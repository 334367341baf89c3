#include "tune_finetune.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "base/npy.h"
#include "model_util.h"
#include "quant/quant_plan.h"

extern char** environ;

namespace lowbit {
namespace {

std::string FinetuneProgram() {
  std::error_code ec;
  const std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string() : (self.parent_path() / "lowbit-finetune").string();
}

// Runs argv, stdout to `out`, stderr inherited; its exit status.
Result<int> Spawn(const std::vector<std::string>& args, const std::string& out) {
  std::vector<char*> argv;
  for (const std::string& s : args) argv.push_back(const_cast<char*>(s.c_str()));
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) return InvalidArgument("cannot run ", args[0]);
  int status = 0;
  if (waitpid(pid, &status, 0) < 0) return InvalidArgument("lost ", args[0]);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace

bool FinetuneProgramAvailable() {
  const std::string p = FinetuneProgram();
  return !p.empty() && std::filesystem::exists(p);
}

RefineFn FinetuneRefiner(const TuneResult& r, const FinetuneFrontArgs& a, Dataset* val,
                         const EvalOptions& eval, const ReferenceOutputs* reference) {
  return [&r, a, val, eval, reference](int point) -> Result<RefinedPoint> {
    const auto t0 = std::chrono::steady_clock::now();
    const std::string base = a.workdir + "/point" + std::to_string(point);
    LOWBIT_RETURN_IF_ERROR(WriteFileAtomic(base + ".plan", PlanJson({}, r.Plan(r.points[point]))));
    std::vector<std::string> args = {FinetuneProgram(), a.model, "-o", base + ".onnx", "--plan",
                                     base + ".plan", "--train", a.train, "--val", a.val, "--epochs",
                                     std::to_string(a.epochs), "--threads", std::to_string(a.threads),
                                     "--seed", std::to_string(a.seed), "--quiet", "--json"};
    args.insert(args.end(), a.extra.begin(), a.extra.end());
    int rc = 0;
    LOWBIT_ASSIGN_OR_RETURN(rc, Spawn(args, base + ".json"));
    if (rc != 0) return InvalidArgument("--finetune: training front point ", point, " failed (exit ", rc, ")");
    Graph g;
    LOWBIT_ASSIGN_OR_RETURN(g, LoadModel(base + ".onnx"));
    EvalOptions eo = eval;
    eo.reference = reference;
    eo.quiet = true;
    EvalResult m;
    LOWBIT_ASSIGN_OR_RETURN(m, Evaluate(g, *val, eo));
    RefinedPoint t;
    t.metric = m.top1;
    // As the tuner: the paired standard error of the difference to fp32.
    const double n = static_cast<double>(std::max<int64_t>(m.samples, 1));
    const double b = static_cast<double>(m.lost) / n, c = static_cast<double>(m.gained) / n;
    t.se = 100 * std::sqrt(std::max(0.0, b + c - (b - c) * (b - c)) / n);
    t.artifact = base + ".onnx";
    t.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (!a.quiet) {
      std::fprintf(stderr, "tune --finetune: front point %d (objective %.4g): top-1 %.2f after %d epoch%s, %.0f s\n",
                   point, r.points[point].objective, t.metric, a.epochs, a.epochs > 1 ? "s" : "", t.seconds);
    }
    return t;
  };
}

}  // namespace lowbit
