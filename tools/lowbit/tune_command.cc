// `lowbit tune`: a weight format and bit width for every layer (and filter)
// minimizing the objective under an accuracy bound (tune/tuner.h), then the
// packed model at the chosen point, its plan, the Pareto front and a report.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>

#include <nlohmann/json.hpp>

#include "base/npy.h"
#include "base/rng.h"
#include "base/strings.h"
#include "commands.h"
#include "eval/evaluate.h"
#include "model_util.h"
#include "onnx/onnx_export.h"
#include "quant/quantize.h"
#include "runtime/profile.h"
#include "tune/fanout.h"
#include "tune/report.h"
#include "tune/tuner.h"
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
  std::string search = "lagrangian";
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

// The base spec and the [a, b) range of a dataset spec's slice (b < 0: to
// the end).
void SpecRange(const std::string& spec, std::string* base, int64_t* a, int64_t* b) {
  const size_t open = spec.rfind('[');
  *a = 0;
  *b = -1;
  *base = spec;
  if (open == std::string::npos || spec.back() != ']') return;
  *base = spec.substr(0, open);
  const std::string in = spec.substr(open + 1, spec.size() - open - 2);
  const size_t colon = in.find(':');
  if (colon == std::string::npos) return;
  if (colon > 0) *a = std::atoll(in.substr(0, colon).c_str());
  if (colon + 1 < in.size()) *b = std::atoll(in.substr(colon + 1).c_str());
}

// --val must not share samples with --calib (selection on data the
// quantizer saw overstates accuracy).
Status CheckDisjoint(const std::string& calib, const std::string& val, const char* calib_name = "--calib") {
  std::string cb, vb;
  int64_t ca, ce, va, ve;
  SpecRange(calib, &cb, &ca, &ce);
  SpecRange(val, &vb, &va, &ve);
  if (cb != vb) return OkStatus();
  const bool disjoint = (ce >= 0 && ce <= va) || (ve >= 0 && ve <= ca);
  if (!disjoint) {
    return InvalidArgument("--val '", val, "' overlaps ", calib_name, " '", calib,
                           "': validate on samples the calibration does not see (e.g. "
                           "fashion-mnist:train[0:1000] and fashion-mnist:train[50000:])");
  }
  return OkStatus();
}

Status RunTune(const TuneArgs& a) {
  if (a.threads < 1) return InvalidArgument("--threads must be >= 1, got ", a.threads);
  if (a.batch < 1) return InvalidArgument("--batch must be >= 1, got ", a.batch);
  if (a.max_evals < 0) return InvalidArgument("--max-evals must be >= 0, got ", a.max_evals);
  TuneOptions o;
  LOWBIT_ASSIGN_OR_RETURN(o.objective, ParseObjective(a.objective));
  if (a.metric == "top1") {
    o.metric = TuneMetric::kTop1;
  } else if (a.metric == "agreement") {
    o.metric = TuneMetric::kAgreement;
  } else if (a.metric == "sqnr") {
    o.metric = TuneMetric::kSqnr;
  } else {
    return InvalidArgument("--metric '", a.metric, "' (top1, agreement or sqnr)");
  }
  SpaceOptions so;
  if (!a.formats.empty()) LOWBIT_RETURN_IF_ERROR(ParseFormatsOption(a.formats, &so));
  if (!a.bits.empty()) LOWBIT_RETURN_IF_ERROR(ParseBitsOption(a.bits, &so));
  so.filter_wise = !a.no_filter_wise;
  so.allow_fp32 = !a.no_fp32;
  LOWBIT_ASSIGN_OR_RETURN(o.space, SearchSpace(so));
  LOWBIT_ASSIGN_OR_RETURN(o.budget_seconds, ParseBudget(a.budget));
  LOWBIT_RETURN_IF_ERROR(CheckDisjoint(a.calib, a.val));
  if (a.finetune < 0) return InvalidArgument("--finetune must be >= 0 epochs, got ", a.finetune);
  if (a.finetune > 0) {
    if (a.train.empty()) return InvalidArgument("--finetune needs --train SPEC (labelled training data)");
    if (!FinetuneProgramAvailable()) {
      return InvalidArgument("--finetune: training is not built (lowbit-finetune is missing: install "
                             "libtorch-dev and rebuild)");
    }
    LOWBIT_RETURN_IF_ERROR(CheckDisjoint(a.train, a.val, "--train"));
  }
  if (!a.test.empty()) LOWBIT_RETURN_IF_ERROR(CheckDisjoint(a.calib, a.test));
  o.max_loss = a.max_loss;
  o.relative = a.relative;
  o.min_sqnr = a.min_sqnr;
  o.confidence = a.confidence;
  o.max_evals = a.max_evals;
  if (a.search != "lagrangian" && a.search != "random") {
    return InvalidArgument("--search '", a.search, "' (lagrangian or random)");
  }
  o.random_search = a.search == "random";
  o.journal = a.journal;
  o.seed = a.seed;
  o.threads = a.threads;
  o.quiet = a.quiet || a.json;
  Preprocess pre;
  pre.scale = a.scale;
  LOWBIT_ASSIGN_OR_RETURN(pre.mean, ParseFloatList(a.mean, "--mean"));
  LOWBIT_ASSIGN_OR_RETURN(pre.std, ParseFloatList(a.std, "--std"));
  o.calib.preprocess = pre;
  o.calib.batch = a.calib_batch;
  o.calib.threads = a.threads;
  o.layer.weight_clip_auto = true;  // as `lowbit quantize`
  o.layer.weight_fit.seed = a.seed;
  o.eval.preprocess = pre;
  o.eval.threads = a.threads;
  PlanOptions env;
  LOWBIT_ASSIGN_OR_RETURN(env, PlanOptionsFromEnvironment());
  o.eval.kernels = env.kernels;

  Graph g;
  LOWBIT_ASSIGN_OR_RETURN(g, LoadModel(a.model));
  LOWBIT_ASSIGN_OR_RETURN(o.eval.batch, EvalBatch(g, a.model, a.batch, false));
  std::unique_ptr<Dataset> calib, val;
  LOWBIT_ASSIGN_OR_RETURN(calib, Dataset::Open(a.calib));
  LOWBIT_ASSIGN_OR_RETURN(val, Dataset::Open(a.val));
  if (calib->size() == 0) return InvalidArgument("--calib '", a.calib, "' has no samples");
  if (val->size() == 0) return InvalidArgument("--val '", a.val, "' has no samples");
  TuneResult r;
  LOWBIT_ASSIGN_OR_RETURN(r, Tune(g, *calib, *val, o));
  if (r.best < 0) return Internal("the tuner evaluated no plan");
  // Under mpirun the other ranks measured; the first writes and prints.
  if (Fanout::Get().rank() != 0) {
    if (!r.feasible) CommandExitCode() = 3;
    return OkStatus();
  }
  // --finetune: the cheapest front point that meets the bound once trained.
  std::vector<RefinedPoint> refined;
  int chosen_ref = -1;
  std::string workdir;
  if (a.finetune > 0) {
    char tmpl[] = "/tmp/lowbit_tune_XXXXXX";
    if (mkdtemp(tmpl) == nullptr) return InvalidArgument("--finetune: cannot create a scratch directory");
    workdir = tmpl;
    ReferenceOutputs ref;
    EvalOptions eo = o.eval;
    eo.quiet = true;
    LOWBIT_RETURN_IF_ERROR(Evaluate(g, *val, eo, &ref).status());
    FinetuneFrontArgs fa;
    fa.model = a.model;
    fa.train = a.train;
    fa.val = a.val;
    fa.workdir = workdir;
    fa.epochs = a.finetune;
    fa.threads = a.threads;
    fa.seed = a.seed;
    fa.quiet = o.quiet;
    if (a.scale >= 0) fa.extra.insert(fa.extra.end(), {"--scale", std::to_string(a.scale)});
    if (!a.mean.empty()) fa.extra.insert(fa.extra.end(), {"--mean", a.mean});
    if (!a.std.empty()) fa.extra.insert(fa.extra.end(), {"--std", a.std});
    Result<std::vector<RefinedPoint>> got =
        RefineFront(r, FinetuneRefiner(r, fa, val.get(), eo, &ref), 0, &chosen_ref);
    if (!got.ok()) {
      std::filesystem::remove_all(workdir);
      return got.status();
    }
    refined = std::move(got).value();
  }
  const TunePoint& best = chosen_ref >= 0 ? r.points[refined[chosen_ref].point] : r.points[r.best];
  const double chosen_metric = chosen_ref >= 0 ? refined[chosen_ref].metric : best.metric;
  const bool feasible = r.feasible || chosen_ref >= 0;

  // The model at the chosen point, as `lowbit quantize --plan` makes it.
  QuantizeOptions qo;
  static_cast<LayerQuantOptions&>(qo) = o.layer;
  for (const auto& [name, s] : r.Plan(best)) {
    LayerRule rule;
    rule.pattern = name;
    rule.weights = s.weights;
    qo.plan.rules.push_back(rule);
  }
  qo.calib = calib.get();  // (for the per-layer output SQNR)
  qo.stats = &r.stats;     // the tuner's calibration, not a second pass
  qo.preprocess = pre;
  qo.calib_batch = a.calib_batch;
  qo.threads = a.threads;
  qo.quiet = o.quiet;
  QuantizeResult q;
  if (chosen_ref >= 0) {  // the trained file
    std::string bytes;
    LOWBIT_ASSIGN_OR_RETURN(bytes, ReadFile(refined[chosen_ref].artifact));
    LOWBIT_RETURN_IF_ERROR(WriteFileAtomic(a.out, bytes));
    LOWBIT_ASSIGN_OR_RETURN(q.graph, LoadModel(a.out));
    q.resolved = r.Plan(best);
  } else {
    LOWBIT_ASSIGN_OR_RETURN(q, QuantizeGraph(g, qo));
    ExportOptions eo;
    eo.graph_name = std::filesystem::path(a.model).stem().string() + " (lowbit)";  // as quantize
    LOWBIT_RETURN_IF_ERROR(ExportOnnx(q.graph, a.out, eo));
  }
  if (!workdir.empty()) std::filesystem::remove_all(workdir);
  if (!a.write_plan.empty()) {
    LOWBIT_RETURN_IF_ERROR(WriteFileAtomic(a.write_plan, PlanJson(qo.plan.defaults, q.resolved)));
  }
  ReportInfo info;
  info.model = a.model;
  info.objective = a.objective;
  info.metric = a.metric;
  info.resolved = q.resolved;
  info.out_bytes = static_cast<int64_t>(std::filesystem::file_size(a.out));
  info.fp32_file_bytes = static_cast<int64_t>(std::filesystem::file_size(a.model));
  if (!a.test.empty()) {  // reported beside the point, never used to select it
    std::unique_ptr<Dataset> test;
    LOWBIT_ASSIGN_OR_RETURN(test, Dataset::Open(a.test));
    EvalOptions te = o.eval;
    te.quiet = true;
    EvalResult fp32, got;
    LOWBIT_ASSIGN_OR_RETURN(fp32, Evaluate(g, *test, te));
    LOWBIT_ASSIGN_OR_RETURN(got, Evaluate(q.graph, *test, te));
    info.test_fp32 = fp32.top1;
    info.test_metric = got.top1;
  }
  // The chosen point re-measured end to end (batch 1, medians of 50 runs,
  // fp32 and chosen interleaved in 3 rounds) when latency is the objective.
  double e2e_ms = -1, e2e_fp32_ms = -1;
  if (o.objective.latency > 0) {
    PlanOptions po = env;
    po.threads = a.threads;
    std::unique_ptr<Plan> fp32_plan, q_plan;
    LOWBIT_ASSIGN_OR_RETURN(fp32_plan, Plan::Create(g, po));
    LOWBIT_ASSIGN_OR_RETURN(q_plan, Plan::Create(q.graph, po));
    Rng rng(1);  // the same random input for both, as lowbit bench
    for (Plan* p : {fp32_plan.get(), q_plan.get()}) {
      Rng same = rng;
      Tensor& x = p->input(0);
      if (x.dtype() != DType::kFloat32) continue;
      for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = static_cast<float>(same.Normal());
    }
    std::vector<double> f, t;
    for (int round = 0; round < 3; ++round) {
      f.push_back(MedianRunMs(fp32_plan.get(), 5, 50));
      t.push_back(MedianRunMs(q_plan.get(), 5, 50));
    }
    e2e_fp32_ms = Median(f);
    e2e_ms = Median(t);
  }
  if (!a.pareto.empty()) LOWBIT_RETURN_IF_ERROR(WriteFileAtomic(a.pareto, ParetoJson(r).dump(2) + "\n"));
  if (!a.report.empty()) LOWBIT_RETURN_IF_ERROR(WriteFileAtomic(a.report, ReportHtml(r, info)));

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
