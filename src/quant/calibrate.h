// Calibration as data: activation statistics of an fp32 graph gathered once,
// in one streamed pass (two with histograms), and reused for any number of
// quantization plans.
//
// For every quantizable layer's input (and every fused residual a packed conv
// reads) CalibrationStats holds: min/max; per-channel sums and sums of squares
// (E[x] for bias correction, the diagonal of E[x x^T] for per-filter error
// estimates); optionally a 2048-bin histogram over [min(lo,0), max(hi,0)] for
// percentile and MSE range search. Channels are dim 1 of NCHW values, the last
// dim of a Gemm/MatMul input.
//
// Statistics are keyed by a fingerprint of the model and a description of the
// data (spec and preprocessing), so a cached file is never applied to another
// model or data set: Load refuses a mismatch with both keys in the message.
#ifndef LOWBIT_QUANT_CALIBRATE_H_
#define LOWBIT_QUANT_CALIBRATE_H_

#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "data/dataset.h"
#include "ir/graph.h"
#include "lowbit/status.h"
#include "quant/gptq.h"

namespace lowbit {

class Plan;

enum class ActCalib { kMinMax, kPercentile, kMse };

// How an 8-bit activation range is chosen from a tensor's statistics.
struct RangeOptions {
  ActCalib method = ActCalib::kMse;
  double percentile = 99.99;
};

// Statistics of one float value over the calibration samples.
struct TensorStats {
  static constexpr int kBins = 2048;
  int channel_axis = 1;  // -1: the last dimension
  float lo = std::numeric_limits<float>::infinity();  // +inf/-inf until observed
  float hi = -std::numeric_limits<float>::infinity();
  int64_t count = 0;  // values observed
  std::vector<double> channel_sum, channel_sq;
  int64_t per_channel = 0;  // values summed per channel
  float h_lo = 0, h_hi = 0;
  std::vector<double> hist;  // empty: not gathered

  // E[x] and E[x^2] of channel c.
  double Mean(int64_t c) const { return channel_sum[c] / static_cast<double>(per_channel); }
  double SecondMoment(int64_t c) const { return channel_sq[c] / static_cast<double>(per_channel); }
};

struct CalibrationStats {
  std::string model_key;  // ModelFingerprint of the graph calibrated
  std::string data_key;   // DataKey of the samples
  int64_t samples = 0;
  std::map<std::string, TensorStats> tensors;
  // Input Gram matrices by layer name, for error-compensated rounding
  // (quant/gptq.h); only when CalibrateOptions::gram_max_cols asked for them.
  std::map<std::string, InputGram> grams;

  // The statistics of `name`, or null when it was not observed.
  const TensorStats* Find(const std::string& name) const;

  std::string ToJson() const;
  static Result<CalibrationStats> FromJson(const std::string& text, const std::string& source);
  // Writes through a temporary file and a rename.
  Status Save(const std::string& path) const;
  // Reads `path`; refuses a file whose keys differ from the given non-empty
  // ones (the message names both).
  static Result<CalibrationStats> Load(const std::string& path, const std::string& model_key = "",
                                       const std::string& data_key = "");
};

struct CalibrateOptions {
  Preprocess preprocess;
  int64_t batch = 32;    // ignored where the model fixes its batch
  bool histograms = true;
  // Gather the input Gram matrix of every layer GramApplies to with at most
  // this many weight columns (0: none).
  int64_t gram_max_cols = 0;
  int threads = 1;
  bool quiet = false;
};

// A stable 64-bit hash (hex) of a graph: nodes, attributes, constants' bytes.
std::string ModelFingerprint(const Graph& graph);
// The dataset's spec and the preprocessing applied to it.
std::string DataKey(const Dataset& data, const Preprocess& preprocess);

// The values Calibrate observes: each quantizable layer's input (with its
// channel axis) and each fused residual.
std::map<std::string, TensorStats> CalibrationTargets(const Graph& graph);

// Runs `graph` (an optimized fp32 graph with one input) over every sample of
// `data`. Errors name the data spec and the input's shape.
Result<CalibrationStats> Calibrate(const Graph& graph, Dataset& data, const CalibrateOptions& options);

// The 8-bit range [lo, hi] (containing 0) for a tensor with these statistics.
std::pair<float, float> ChooseRange(const TensorStats& s, const RangeOptions& o, bool symmetric);

// observe(name, value, x, used) for every float value a run of `plan`
// produces, x being its first `used` elements: those of the batch's real
// samples.
using SampleObserver =
    std::function<void(const std::string& name, const Tensor& value, const float* x, int64_t used)>;

// The samples one run of `plan` takes (its input's batch dimension); refused
// unless the rest of the input is one sample of `data`. `what` names the data
// option in messages ("--calib").
Result<int64_t> PlanBatchFor(Plan* plan, const Dataset& data, const std::string& what);

// Runs `plan` over the first `limit` samples of `data` in batches, calling
// `observe` for every value produced; a progress line labelled `label`.
Status ForEachBatch(Plan* plan, Dataset& data, const Preprocess& preprocess, int64_t limit,
                    const std::string& label, bool quiet, const SampleObserver& observe);

}  // namespace lowbit

#endif  // LOWBIT_QUANT_CALIBRATE_H_
