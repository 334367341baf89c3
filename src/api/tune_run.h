// A whole tuning run, as `lowbit tune` and the API's Tune do it: options
// checked, the model loaded, the tuner run (tune/tuner.h), optionally the
// front refined by training (tune/refine.h), the chosen model written with
// its plan, front and report, the test split and (for a latency objective)
// end-to-end time measured. Printing is the caller's.
#ifndef LOWBIT_API_TUNE_RUN_H_
#define LOWBIT_API_TUNE_RUN_H_

#include <functional>
#include <string>
#include <vector>

#include "eval/evaluate.h"
#include "kernels/kernel_path.h"
#include "tune/refine.h"
#include "tune/report.h"
#include "tune/tuner.h"

namespace lowbit {

struct TuneRunArgs {
  std::string model, out, calib, val, test;
  std::string objective = "size", metric = "top1", search = "lagrangian";
  std::string rounding = "gptq";  // nearest or gptq (quant/gptq.h)
  std::string formats, bits;  // as --formats, --bits ("": all)
  std::string journal, pareto, report, write_plan;  // files ("": none)
  double budget_seconds = 600, max_loss = 1.0, min_sqnr = 20, confidence = 0.9;
  bool relative = false, filter_wise = true, allow_fp32 = true, quiet = false;
  int64_t max_evals = 0, batch = 100, calib_batch = 32;
  uint64_t seed = 1;
  int threads = 1;
  Preprocess preprocess;
  KernelOptions kernels;
  bool byte_edges = true;
  // Refining the front by training (optional): the training data (checked
  // disjoint from val) and a maker of the RefineFn, given the result, the
  // validation data, its evaluation options and the fp32 reference.
  std::string train;
  std::function<RefineFn(const TuneResult&, Dataset*, const EvalOptions&, const ReferenceOutputs*)> refiner;
  std::function<void(const TuneProgress&)> on_progress;
};

struct TuneRun {
  TuneResult r;
  bool writer = true;  // false on MPI ranks other than 0 (they only measured)
  std::vector<RefinedPoint> refined;
  int chosen_ref = -1;  // into refined: the trained point chosen, or -1
  int chosen = -1;      // into r.points
  double chosen_metric = 0;
  bool feasible = false;
  ReportInfo info;      // test metrics, file sizes, the resolved plan
  double e2e_ms = -1, e2e_fp32_ms = -1;  // latency objective: batch 1 medians
};

Result<TuneRun> RunTuning(const TuneRunArgs& a);

// A dataset spec `val` must not share samples with `other` (named by
// `other_name` in the error: "--calib", "--train").
Status CheckDisjoint(const std::string& other, const std::string& val, const char* other_name = "--calib");

}  // namespace lowbit

#endif  // LOWBIT_API_TUNE_RUN_H_
