// TuneModel (include/lowbit/lowbit.h): a tuning run (api/tune_run.h) from
// the API's options.
#include <exception>

#include "api/tune_run.h"
#include "lowbit/lowbit.h"

namespace lowbit {
namespace {

TunePointInfo PointInfo(const TuneResult& r, const TunePoint& p) {
  TunePointInfo i;
  i.objective = p.objective;
  i.bytes = p.bytes;
  i.bitops = p.bitops;
  i.metric = p.metric;
  i.feasible = p.feasible;
  for (const auto& [name, s] : r.Plan(p)) i.plan.emplace_back(name, s.weights);
  return i;
}

}  // namespace

Result<TuneSummary> TuneModel(const std::string& model_path, const std::string& out_path,
                              const TuneConfig& c) {
  try {
    TuneRunArgs a;
    a.model = model_path;
    a.out = out_path;
    a.calib = c.calib;
    a.val = c.val;
    a.test = c.test;
    a.objective = c.objective;
    a.metric = c.metric;
    a.formats = c.formats;
    a.rounding = c.rounding;
    a.bits = c.bits;
    a.journal = c.journal;
    a.pareto = c.pareto_file;
    a.report = c.report_file;
    a.write_plan = c.plan_file;
    a.budget_seconds = c.budget_seconds;
    a.max_loss = c.max_loss;
    a.min_sqnr = c.min_sqnr;
    a.confidence = c.confidence;
    a.relative = c.relative;
    a.filter_wise = c.filter_wise;
    a.allow_fp32 = c.allow_fp32;
    a.quiet = true;
    a.max_evals = c.max_evals;
    a.batch = c.batch;
    a.calib_batch = c.calib_batch;
    a.seed = c.seed;
    a.threads = c.threads;
    a.preprocess.scale = c.preprocess_scale;
    a.preprocess.mean = c.mean;
    a.preprocess.std = c.stddev;
    if (c.progress) {
      a.on_progress = [&c](const TuneProgress& p) {
        TuneProgressInfo i;
        i.evaluations = p.evaluations;
        i.seconds = p.seconds;
        i.budget_seconds = p.budget_seconds;
        i.feasible = p.feasible;
        i.best_objective = p.best_objective;
        i.best_metric = p.best_metric;
        c.progress(i);
      };
    }
    TuneRun run;
    LOWBIT_ASSIGN_OR_RETURN(run, RunTuning(a));
    TuneSummary s;
    s.feasible = run.feasible;
    s.fp32_metric = run.r.fp32_metric;
    s.bound = run.r.bound;
    s.chosen = PointInfo(run.r, run.r.points[run.chosen]);
    s.chosen.metric = run.chosen_metric;
    for (int p : run.r.front) s.front.push_back(PointInfo(run.r, run.r.points[p]));
    s.evaluations = run.r.evaluations;
    s.output_bytes = run.info.out_bytes;
    s.test_top1 = run.info.test_metric;
    s.test_fp32_top1 = run.info.test_fp32;
    s.seconds = run.r.seconds;
    return s;
  } catch (const std::bad_alloc&) {
    return Status(StatusCode::kInternal, "out of memory");
  } catch (const std::exception& e) {
    return Status(StatusCode::kInternal, e.what());
  }
}

}  // namespace lowbit
