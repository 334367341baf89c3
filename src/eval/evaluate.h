// Evaluation in memory: a graph (fp32 or packed) run over a dataset in
// batches, scored against the labels and, optionally, against cached outputs
// of a reference model (agreement of top-1 classes, output SQNR), so that
// candidates without labelled data can be compared and each candidate costs
// one pass. No file is written. `lowbit eval` is a client of this.
#ifndef LOWBIT_EVAL_EVALUATE_H_
#define LOWBIT_EVAL_EVALUATE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "ir/graph.h"
#include "kernels/kernel_path.h"
#include "lowbit/status.h"

namespace lowbit {

// Outputs of a reference model (usually the fp32 original) on a dataset:
// each sample's class scores, in order.
struct ReferenceOutputs {
  std::string data_key;  // the dataset's spec, preprocessing and limit
  int64_t samples = 0, classes = 0;
  std::vector<float> scores;  // samples x classes
  std::vector<int32_t> top1;  // argmax of each sample's scores (first of ties)
  std::vector<uint8_t> correct;  // with labels: each sample's top-1 hit (as EvalResult counts)
};

struct EvalOptions {
  int64_t batch = 32;  // the plan's batch (see EvalBatch)
  int threads = 1;
  // The plan's kernel choices and byte edges (runtime/plan.h).
  KernelOptions kernels;
  bool byte_edges = true;
  Preprocess preprocess;
  int64_t limit = 0;  // evaluate at most this many samples; 0: all
  // Score against labels (refused when the data has none); without, only
  // the reference metrics are computed.
  bool labels = true;
  // With a reference: agreement and SQNR of the outputs against it.
  const ReferenceOutputs* reference = nullptr;
  std::string model_name;  // for messages and the progress line
  bool quiet = true;
};

struct EvalResult {
  int64_t samples = 0, batch = 0, classes = 0;
  // With labels (percentages; NaN without).
  int64_t correct_top1 = 0, correct_top5 = 0;
  double top1 = 0, top5 = 0;
  std::vector<int64_t> class_samples, class_correct;  // per label
  // With a reference (NaN without): percent of samples whose top-1 class is
  // the reference's; SQNR of all class scores in dB.
  double agreement = 0, sqnr_db = 0;
  // With a reference recorded with labels, and labels: samples the
  // reference gets right and this model wrong, and the other way round (the
  // paired counts behind the top-1 difference and its standard error).
  int64_t lost = 0, gained = 0;
  double run_seconds = 0;  // inside Plan::Run
  double seconds = 0;      // the whole evaluation
  double images_per_second = 0;
};

// The batch to evaluate `graph` (from `path`) at: the model's own where its
// first input fixes the batch dimension, `requested` otherwise. A `requested`
// batch the user gave (`given`) that such a model does not take is refused.
Result<int64_t> EvalBatch(const Graph& graph, const std::string& path, int64_t requested, bool given);

// Errors name the dataset and the model's input or output involved.
// With `record`, each sample's scores are stored there (a reference).
Result<EvalResult> Evaluate(const Graph& graph, Dataset& data, const EvalOptions& options,
                            ReferenceOutputs* record = nullptr);

// The data key a reference made with these options carries.
std::string ReferenceKey(const Dataset& data, const EvalOptions& options);

}  // namespace lowbit

#endif  // LOWBIT_EVAL_EVALUATE_H_
