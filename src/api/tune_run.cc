#include "api/tune_run.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "api/load_model.h"
#include "base/npy.h"
#include "onnx/onnx_export.h"
#include "quant/quantize.h"
#include "runtime/profile.h"
#include "tune/fanout.h"

namespace lowbit {
namespace {

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
}  // namespace

Status CheckDisjoint(const std::string& calib, const std::string& val, const char* calib_name) {
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

Result<TuneRun> RunTuning(const TuneRunArgs& a) {
  TuneRun run;
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
  so.filter_wise = a.filter_wise;
  so.allow_fp32 = a.allow_fp32;
  LOWBIT_ASSIGN_OR_RETURN(o.space, SearchSpace(so));
  if (!(a.budget_seconds > 0)) return InvalidArgument("budget must be > 0 seconds, got ", a.budget_seconds);
  o.budget_seconds = a.budget_seconds;
  LOWBIT_RETURN_IF_ERROR(CheckDisjoint(a.calib, a.val));
  if (a.refiner) {
    if (a.train.empty()) return InvalidArgument("--finetune needs --train SPEC (labelled training data)");
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
  o.quiet = a.quiet;
  o.on_progress = a.on_progress;
  const Preprocess& pre = a.preprocess;
  o.calib.preprocess = pre;
  o.calib.batch = a.calib_batch;
  o.calib.threads = a.threads;
  o.layer.weight_clip_auto = true;  // as `lowbit quantize`
  LOWBIT_RETURN_IF_ERROR(ParseRounding(a.rounding, &o.layer));
  o.calib.gram_max_cols = o.layer.gptq ? kGptqMaxCols : 0;
  o.layer.weight_fit.seed = a.seed;
  o.eval.preprocess = pre;
  o.eval.threads = a.threads;
  o.eval.kernels = a.kernels;
  o.eval.byte_edges = a.byte_edges;

  // Older than opset 13: converted first where ONNX's converter can, as
  // `lowbit quantize` does, so the chosen model's QDQ export is int8.
  Graph g;
  std::string upgrade;
  LOWBIT_ASSIGN_OR_RETURN(g, LoadModel(a.model, 13, &upgrade));
  if (!upgrade.empty() && !a.quiet) std::fprintf(stderr, "%s: %s\n", a.model.c_str(), upgrade.c_str());
  LOWBIT_ASSIGN_OR_RETURN(o.eval.batch, EvalBatch(g, a.model, a.batch, false));
  std::unique_ptr<Dataset> calib, val;
  LOWBIT_ASSIGN_OR_RETURN(calib, Dataset::Open(a.calib));
  LOWBIT_ASSIGN_OR_RETURN(val, Dataset::Open(a.val));
  if (calib->size() == 0) return InvalidArgument("--calib '", a.calib, "' has no samples");
  if (val->size() == 0) return InvalidArgument("--val '", a.val, "' has no samples");
  LOWBIT_ASSIGN_OR_RETURN(run.r, Tune(g, *calib, *val, o));
  TuneResult& r = run.r;
  if (r.best < 0) return Internal("the tuner evaluated no plan");
  // Under mpirun the other ranks measured; the first writes.
  if (Fanout::Get().rank() != 0) {
    run.writer = false;
    run.chosen = r.best;
    run.feasible = r.feasible;
    return run;
  }
  // Refinement by training: the cheapest front point that meets the bound once trained.
  std::vector<RefinedPoint>& refined = run.refined;
  int& chosen_ref = run.chosen_ref;
  if (a.refiner) {
    ReferenceOutputs ref;
    EvalOptions eo = o.eval;
    eo.quiet = true;
    LOWBIT_RETURN_IF_ERROR(Evaluate(g, *val, eo, &ref).status());
    LOWBIT_ASSIGN_OR_RETURN(refined, RefineFront(r, a.refiner(r, val.get(), eo, &ref), 0, &chosen_ref));
  }
  run.chosen = chosen_ref >= 0 ? refined[chosen_ref].point : r.best;
  const TunePoint& best = r.points[run.chosen];
  run.chosen_metric = chosen_ref >= 0 ? refined[chosen_ref].metric : best.metric;
  run.feasible = r.feasible || chosen_ref >= 0;

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

  if (!a.write_plan.empty()) {
    LOWBIT_RETURN_IF_ERROR(WriteFileAtomic(a.write_plan, PlanJson(qo.plan.defaults, q.resolved, o.layer.gptq ? "gptq" : "nearest")));
  }
  ReportInfo& info = run.info;
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
  double& e2e_ms = run.e2e_ms;
  double& e2e_fp32_ms = run.e2e_fp32_ms;
  if (o.objective.latency > 0) {
    PlanOptions po;
    po.kernels = a.kernels;
    po.byte_edges = a.byte_edges;
    po.threads = a.threads;
    std::unique_ptr<Plan> fp32_plan, q_plan;
    LOWBIT_ASSIGN_OR_RETURN(fp32_plan, Plan::Create(g, po));
    LOWBIT_ASSIGN_OR_RETURN(q_plan, Plan::Create(q.graph, po));
    const std::vector<double> t = InterleavedMedianMs({fp32_plan.get(), q_plan.get()}, 3, 50);
    e2e_fp32_ms = t[0];
    e2e_ms = t[1];
  }
  if (!a.pareto.empty()) LOWBIT_RETURN_IF_ERROR(WriteFileAtomic(a.pareto, ParetoJson(r).dump(2) + "\n"));
  if (!a.report.empty()) LOWBIT_RETURN_IF_ERROR(WriteFileAtomic(a.report, ReportHtml(r, info)));

  return run;
}

}  // namespace lowbit
