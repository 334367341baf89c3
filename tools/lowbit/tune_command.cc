// `lowbit tune`: a weight format and bit width for every layer (and filter)
// minimizing the objective under an accuracy bound (tune/tuner.h), then the
// packed model at the chosen point, its plan, the Pareto front and a report
// (the run: api/tune_run.h; here the command line and what it prints).
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>

#include <nlohmann/json.hpp>

#include "api/tune_run.h"
#include "base/strings.h"
#include "commands.h"
#include "model_util.h"
#include "tune/report.h"
#include "tune_finetune.h"

namespace lowbit {
namespace {

struct TuneArgs {
  std::string model, out, calib, val, test, objective = "size", metric = "top1";
  std::string formats, bits, budget = "10m", journal, pareto, report, write_plan;
  std::string mean, std, train;
  int finetune = 0;
  double max_loss = 1.0, min_sqnr = 20, scale = -1, confidence = 0.9;
  bool relative = false, no_filter_wise = false, no_fp32 = false, json = false, quiet = false;
  std::string search = "lagrangian", rounding = "gptq";
  int64_t max_evals = 0, batch = 100, calib_batch = 32;
  uint64_t seed = 1;
  int threads = 1;
};

Result<double> ParseBudget(const std::string& text) {
  if (text.empty()) return InvalidArgument("--budget is empty (e.g. 90s, 10m, 1h)");
  double mul = 1;
  std::string num = text;
  switch (text.back()) {
    case 's': num.pop_back(); break;
    case 'm': mul = 60; num.pop_back(); break;
    case 'h': mul = 3600; num.pop_back(); break;
    default: break;
  }
  char* end = nullptr;
  const double v = std::strtod(num.c_str(), &end);
  if (num.empty() || *end != '\0' || !(v > 0)) {
    return InvalidArgument("--budget '", text, "': expected a positive time like 90s, 10m or 1h");
  }
  return v * mul;
}

Status RunTune(const TuneArgs& a) {
  if (a.finetune < 0) return InvalidArgument("--finetune must be >= 0 epochs, got ", a.finetune);
  TuneRunArgs t;
  t.model = a.model;
  t.out = a.out;
  t.calib = a.calib;
  t.val = a.val;
  t.test = a.test;
  t.objective = a.objective;
  t.metric = a.metric;
  t.search = a.search;
  t.rounding = a.rounding;
  t.formats = a.formats;
  t.bits = a.bits;
  t.journal = a.journal;
  t.pareto = a.pareto;
  t.report = a.report;
  t.write_plan = a.write_plan;
  LOWBIT_ASSIGN_OR_RETURN(t.budget_seconds, ParseBudget(a.budget));
  t.max_loss = a.max_loss;
  t.min_sqnr = a.min_sqnr;
  t.confidence = a.confidence;
  t.relative = a.relative;
  t.filter_wise = !a.no_filter_wise;
  t.allow_fp32 = !a.no_fp32;
  t.quiet = a.quiet || a.json;
  t.max_evals = a.max_evals;
  t.batch = a.batch;
  t.calib_batch = a.calib_batch;
  t.seed = a.seed;
  t.threads = a.threads;
  t.preprocess.scale = a.scale;
  LOWBIT_ASSIGN_OR_RETURN(t.preprocess.mean, ParseFloatList(a.mean, "--mean"));
  LOWBIT_ASSIGN_OR_RETURN(t.preprocess.std, ParseFloatList(a.std, "--std"));
  PlanOptions env;
  LOWBIT_ASSIGN_OR_RETURN(env, PlanOptionsFromEnvironment());
  t.kernels = env.kernels;
  t.byte_edges = env.byte_edges;
  // --finetune: front points trained by lowbit-finetune in a scratch directory.
  std::string workdir;
  if (a.finetune > 0) {
    if (a.train.empty()) return InvalidArgument("--finetune needs --train SPEC (labelled training data)");
    if (!FinetuneProgramAvailable()) {
      return InvalidArgument("--finetune: training is not built (lowbit-finetune is missing: install "
                             "libtorch-dev and rebuild)");
    }
    char tmpl[] = "/tmp/lowbit_tune_XXXXXX";
    if (mkdtemp(tmpl) == nullptr) return InvalidArgument("--finetune: cannot create a scratch directory");
    workdir = tmpl;
    FinetuneFrontArgs fa;
    fa.model = a.model;
    fa.train = a.train;
    fa.val = a.val;
    fa.workdir = workdir;
    fa.epochs = a.finetune;
    fa.threads = a.threads;
    fa.seed = a.seed;
    fa.quiet = t.quiet;
    if (a.scale >= 0) fa.extra.insert(fa.extra.end(), {"--scale", std::to_string(a.scale)});
    if (!a.mean.empty()) fa.extra.insert(fa.extra.end(), {"--mean", a.mean});
    if (!a.std.empty()) fa.extra.insert(fa.extra.end(), {"--std", a.std});
    t.train = a.train;
    t.refiner = [fa](const TuneResult& r, Dataset* val, const EvalOptions& eo, const ReferenceOutputs* ref) {
      return FinetuneRefiner(r, fa, val, eo, ref);
    };
  }
  Result<TuneRun> got = RunTuning(t);
  if (!workdir.empty()) std::filesystem::remove_all(workdir);
  if (!got.ok()) return got.status();
  const TuneRun& run = *got;
  const TuneResult& r = run.r;
  if (!run.writer) {  // an MPI rank other than 0: it measured; rank 0 prints
    if (!run.feasible) CommandExitCode() = 3;
    return OkStatus();
  }
  const TunePoint& best = r.points[run.chosen];
  const std::vector<RefinedPoint>& refined = run.refined;
  const int chosen_ref = run.chosen_ref;
  const double chosen_metric = run.chosen_metric;
  const bool feasible = run.feasible;
  const ReportInfo& info = run.info;
  const double e2e_ms = run.e2e_ms, e2e_fp32_ms = run.e2e_fp32_ms;
  const double ratio = static_cast<double>(r.fp32_bytes) / static_cast<double>(std::max<int64_t>(best.bytes, 1));
  if (a.json) {
    nlohmann::ordered_json j;
    j["model"] = a.model;
    j["output"] = a.out;
    j["feasible"] = feasible;
    j["metric"] = a.metric;
    j["bound"] = r.bound;
    j["fp32_metric"] = std::isfinite(r.fp32_metric) ? nlohmann::ordered_json(r.fp32_metric) : nullptr;
    j["chosen"] = PointJson(r, best);
    j["compression"] = ratio;
    j["output_bytes"] = info.out_bytes;
    if (info.test_metric >= 0) j["test"] = {{"top1", info.test_metric}, {"fp32_top1", info.test_fp32}};
    if (e2e_ms >= 0) j["end_to_end_ms"] = {{"chosen", e2e_ms}, {"fp32", e2e_fp32_ms}};
    j["front"] = ParetoJson(r)["front"];
    if (a.finetune > 0) {
      nlohmann::ordered_json ft = nlohmann::ordered_json::array();
      for (const RefinedPoint& t : refined) {
        ft.push_back({{"point", t.point}, {"objective", r.points[t.point].objective},
                      {"metric_before", r.points[t.point].metric}, {"metric", t.metric}, {"se", t.se},
                      {"feasible", t.feasible}, {"seconds", t.seconds}});
      }
      j["finetune"] = {{"epochs", a.finetune}, {"trained", ft}, {"chosen_trained", chosen_ref >= 0},
                       {"chosen_metric", chosen_metric}};
    }
    j["evaluations"] = r.evaluations;
    j["journal_records_reused"] = r.resumed;
    j["seconds"] = r.seconds;
    j["sensitivity_seconds"] = r.sensitivity_seconds;
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    std::printf("%-36s %s\n", "layer", "weights");
    for (const auto& [name, s] : r.Plan(best)) std::printf("%-36s %s\n", name.c_str(), s.weights.c_str());
    std::printf(
        "%s: %s %.2f (fp32 %.2f, bound %.2f); layers %lld bytes (%.2fx smaller than fp32), %.4g "
        "bit-ops per sample; %s: %lld bytes; %lld evaluations in %.1f s\n",
        feasible ? "chosen" : "no point met the bound; the most accurate", a.metric.c_str(),
        chosen_metric, r.fp32_metric, r.bound, static_cast<long long>(best.bytes), ratio, best.bitops,
        a.out.c_str(), static_cast<long long>(info.out_bytes), static_cast<long long>(r.evaluations),
        r.seconds);
    if (info.test_metric >= 0) {
      std::printf("test %s: top-1 %.2f (fp32 %.2f)\n", a.test.c_str(), info.test_metric, info.test_fp32);
    }
    if (e2e_ms >= 0) {
      std::printf("end to end, batch 1, %d thread%s: %.3f ms (fp32 %.3f ms, %.2fx)\n", a.threads,
                  a.threads > 1 ? "s" : "", e2e_ms, e2e_fp32_ms, e2e_fp32_ms / e2e_ms);
    }
  }
  if (!feasible) {
    std::fprintf(stderr, "lowbit tune: no plan met the bound (%s >= %.3f); wrote the most accurate (%.3f) to %s\n",
                 a.metric.c_str(), r.bound, best.metric, a.out.c_str());
    CommandExitCode() = 3;
  }
  return OkStatus();
}

}  // namespace

Command AddTuneCommand(CLI::App& app) {
  auto args = std::make_shared<TuneArgs>();
  CLI::App* cmd = app.add_subcommand(
      "tune", "Choose a format and bit width per layer and filter: smallest objective within the accuracy bound");
  cmd->add_option("model", args->model, "fp32 model (.onnx)")->required();
  cmd->add_option("-o,--output", args->out, "Quantized model to write (.onnx)")->required();
  cmd->add_option("--calib", args->calib, "Calibration data (as eval's --data)")->required();
  cmd->add_option("--val", args->val, "Validation data the bound is checked on (not --calib's samples)")
      ->required();
  cmd->add_option("--test", args->test, "Held-out data, evaluated for the chosen point only");
  cmd->add_option("--objective", args->objective, "size, bitops, latency, or a sum like 'size+0.3*latency'")
      ->capture_default_str();
  cmd->add_option("--max-loss", args->max_loss, "Allowed metric loss in points (--relative: percent)")
      ->capture_default_str();
  cmd->add_flag("--relative", args->relative, "--max-loss is a percentage of the fp32 metric");
  cmd->add_option("--metric", args->metric, "top1 (labels), agreement or sqnr (against the fp32 model)")
      ->capture_default_str();
  cmd->add_option("--min-sqnr", args->min_sqnr, "With --metric sqnr: the bound in dB")->capture_default_str();
  cmd->add_option("--confidence", args->confidence,
                  "The bound must hold by this one-sided confidence over the validation samples "
                  "(0.5: no margin)")
      ->capture_default_str();
  cmd->add_option("--formats", args->formats, "Families: int,int-asym,uint,pow2,nhot2,nhot3,codebook");
  cmd->add_option("--bits", args->bits, "Bit widths: 2..6, 4, or 2,4,8 (default 1..8)");
  cmd->add_flag("--no-filter-wise", args->no_filter_wise, "No mixes of two widths within a layer");
  cmd->add_flag("--no-fp32", args->no_fp32, "Quantize every layer (no layer stays fp32)");
  cmd->add_option("--budget", args->budget, "Time to spend (90s, 10m, 1h)")->capture_default_str();
  cmd->add_option("--max-evals", args->max_evals, "Stop after this many plan evaluations (0: no cap)");
  cmd->add_option("--search", args->search,
                  "lagrangian (the method), or random (max-evals random plans, for comparison)")
      ->capture_default_str();
  cmd->add_option("--rounding", args->rounding,
                  "Weight rounding: gptq (error-compensated under the calibration inputs' Gram "
                  "matrix, layers of <= 1152 weight columns) or nearest")
      ->capture_default_str();
  cmd->add_option("--journal", args->journal, "Append-only record of every evaluation; resume from it");
  cmd->add_option("--pareto", args->pareto, "Write the Pareto front (JSON)");
  cmd->add_option("--report", args->report, "Write a self-contained HTML report");
  cmd->add_option("--write-plan", args->write_plan, "Write the chosen plan (JSON, as quantize --plan reads)");
  cmd->add_option("--finetune", args->finetune,
                  "Fine-tune front points for this many epochs (lowbit finetune) and choose the cheapest "
                  "that meets the bound after training");
  cmd->add_option("--train", args->train, "--finetune: labelled training data (not --val's samples)");
  cmd->add_option("--batch", args->batch, "Evaluation batch")->capture_default_str();
  cmd->add_option("--calib-batch", args->calib_batch, "Calibration batch")->capture_default_str();
  cmd->add_option("--scale", args->scale, "Multiply raw values (default: the dataset's)");
  cmd->add_option("--mean", args->mean, "Subtract after scaling: one value or one per channel");
  cmd->add_option("--std", args->std, "Divide after subtracting: one value or one per channel");
  cmd->add_option("--threads", args->threads, "Threads")->capture_default_str();
  cmd->add_option("--seed", args->seed, "Seed (weight fitting, the search's moves)")->capture_default_str();
  cmd->add_flag("--json", args->json, "Print one JSON object");
  cmd->add_flag("--quiet", args->quiet, "No progress line");
  return {cmd, [args] { return RunTune(*args); }};
}

}  // namespace lowbit
