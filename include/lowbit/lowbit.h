// lowbit's C++ API: load a model (an fp32 ONNX file or a packed lowbit file),
// run it on float tensors, quantize it, and read its per-layer report.
//
//   lowbit::Result<lowbit::Model> m = lowbit::Model::Load("model.onnx");
//   if (!m.ok()) { puts(m.status().ToString().c_str()); return 1; }
//   std::vector<float> x(1 * 1 * 28 * 28);
//   auto y = m->Run({{x.data(), {1, 1, 28, 28}}});  // Result<std::vector<Array>>
//
// Errors are Status / Result values carrying lowbit's one-line message (the
// file, node or option and the values involved); no exception crosses this
// API. No ONNX, protobuf or torch type appears in it. Link lowbit::lowbit
// (find_package(lowbit)).
#ifndef LOWBIT_LOWBIT_H_
#define LOWBIT_LOWBIT_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "lowbit/format.h"
#include "lowbit/status.h"

namespace lowbit {

// A float tensor the caller owns, C order; lowbit reads it during the call
// only.
struct TensorRef {
  const float* data = nullptr;
  std::vector<int64_t> shape;
};

// A float buffer the caller owns, for Run's outputs: `size` floats; `shape`
// is set by the call.
struct OutputRef {
  float* data = nullptr;
  int64_t size = 0;
  std::vector<int64_t> shape;
};

// A float tensor lowbit returns (owned by the caller from then on).
struct Array {
  std::vector<int64_t> shape;
  std::vector<float> data;
};

struct ModelOptions {
  // Threads each Run uses (>= 1).
  int threads = 1;
  // Kernel path for packed layers: "" for the best this CPU runs, or one of
  // KernelPaths(); a path the CPU lacks is refused.
  std::string kernel;
  // Activations between packed convolutions travel as 8-bit pixels (false:
  // as floats, to compare).
  bool byte_edges = true;
};

// A model input or output: its name and declared shape (-1: dynamic).
struct TensorDesc {
  std::string name;
  std::vector<int64_t> shape;
};

// One Conv/Gemm/MatMul layer as `lowbit inspect` reports it.
struct LayerInfo {
  std::string name, op;              // op: Conv, Gemm, MatMul, PackedConv, PackedGemm
  std::string format, granularity;   // "fp32" and "-" for float layers
  double weight_bits = 32;           // mean over filters for filter-wise formats
  int act_bits = 32;                 // 8 for integer kernels
  int64_t params = 0, bytes = 0;     // weights; bytes: packed codes + scales + ... + bias
  int64_t macs = 0;                  // per sample
  double bitops = 0;                 // MACs x weight bits x activation bits
};

class Model {
 public:
  // Loads and prepares a model; errors name the file and the node.
  static Result<Model> Load(const std::string& path, const ModelOptions& options = {});

  Model(Model&&) noexcept;
  Model& operator=(Model&&) noexcept;
  ~Model();

  const std::vector<TensorDesc>& inputs() const;
  const std::vector<TensorDesc>& outputs() const;

  // Runs the model on `inputs` (one per model input, in order; any batch the
  // model takes). Thread-safe: several threads may call Run on one Model at
  // once. Plans (buffers) are made on the first call for a set of input
  // shapes and reused after, so repeated calls with the same shapes allocate
  // only the returned arrays.
  Result<std::vector<Array>> Run(const std::vector<TensorRef>& inputs) const;
  // Inputs by name.
  Result<std::vector<Array>> Run(const std::map<std::string, TensorRef>& inputs) const;
  // Outputs into caller buffers (one per model output, each large enough;
  // their shapes are set): no allocation after the first call for these
  // input shapes.
  Status RunInto(const std::vector<TensorRef>& inputs, std::vector<OutputRef>* outputs) const;

  // Per-layer costs and formats.
  Result<std::vector<LayerInfo>> Layers() const;
  // Writes the model (ONNX, with lowbit's packed nodes when packed) through
  // a temporary file and a rename.
  Status Save(const std::string& path) const;

 private:
  struct Impl;
  explicit Model(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The kernel paths this build knows, and whether this CPU runs each.
std::vector<std::pair<std::string, bool>> KernelPaths();

struct QuantizeConfig {
  // A plan file (as `lowbit quantize --plan`), or none.
  std::string plan_file;
  // The defaults for every layer where non-empty (as --weights,
  // --granularity, --acts), over the plan file's; else the plan's, or int8,
  // channel, uint8. Then per-layer rules PATTERN -> weights (as --layer).
  std::string weights, granularity, acts;
  std::vector<std::pair<std::string, std::string>> layers;
  // Calibration: a dataset spec (as --calib), or samples in memory
  // ([n, ...] matching the model's first input; raw values, preprocessed as
  // `preprocess_scale`, `mean`, `std` say). Neither: dynamic activations.
  std::string calib_spec;
  TensorRef calib_samples;
  double preprocess_scale = -1;  // < 0: the dataset's default (1 for samples in memory)
  std::vector<float> mean, stddev;
  std::string act_calib = "mse";     // minmax, mse or percentile:P
  std::string weight_clip = "auto";  // auto, minmax, mse or percentile:P
  double prune = 0;
  // Weight rounding: nearest, or gptq (error-compensated; needs calibration);
  // "": the plan file's, else nearest.
  std::string rounding;
  bool bias_correction = true;
  int threads = 1;
  uint64_t seed = 1;
};

struct QuantizeSummary {
  int64_t input_bytes = 0, output_bytes = 0;  // the files' sizes
  std::vector<LayerInfo> layers;              // of the written model
};

// Post-training quantization of the fp32 model at `model_path` into a packed
// model file at `out_path` (written through a temporary file and a rename):
// what `lowbit quantize` does.
Result<QuantizeSummary> Quantize(const std::string& model_path, const std::string& out_path,
                                 const QuantizeConfig& config);

struct TuneProgressInfo {
  int64_t evaluations = 0;
  double seconds = 0, budget_seconds = 0;
  bool feasible = false;                       // a point within the bound was found
  double best_objective = 0, best_metric = 0;  // the best such point (when feasible)
};

// `lowbit tune`'s options (see its --help for each).
struct TuneConfig {
  std::string calib, val, test;              // dataset specs; calib and val required
  std::string objective = "size";            // size, bitops, latency or a sum 'size+0.3*latency'
  std::string metric = "top1";               // top1, agreement or sqnr
  double max_loss = 1.0;                     // metric points (relative: percent)
  bool relative = false;
  double min_sqnr = 20, confidence = 0.9;
  std::string formats, bits;                 // "" for all, else as --formats / --bits
  std::string rounding = "gptq";             // weight rounding: gptq or nearest (as --rounding)
  bool filter_wise = true, allow_fp32 = true;
  double budget_seconds = 600;
  int64_t max_evals = 0;
  std::string journal, pareto_file, report_file, plan_file;  // files to write ("": none)
  int64_t batch = 100, calib_batch = 32;
  double preprocess_scale = -1;
  std::vector<float> mean, stddev;
  int threads = 1;
  uint64_t seed = 1;
  // Called after every plan evaluation, on the calling thread.
  std::function<void(const TuneProgressInfo&)> progress;
};

struct TunePointInfo {
  double objective = 0;  // relative to fp32 (1 = fp32)
  int64_t bytes = 0;     // weights and biases of the quantizable layers
  double bitops = 0, metric = 0;
  bool feasible = false;
  std::vector<std::pair<std::string, std::string>> plan;  // layer -> weights
};

struct TuneSummary {
  bool feasible = false;  // false: no point met the bound; the most accurate was written
  double fp32_metric = 0, bound = 0;
  TunePointInfo chosen;
  std::vector<TunePointInfo> front;  // the Pareto front, by objective
  int64_t evaluations = 0, output_bytes = 0;
  double test_top1 = -1, test_fp32_top1 = -1;  // with config.test; else -1
  double seconds = 0;
};

// The auto-tuner: a format and width for every layer and filter of the fp32
// model at `model_path` minimizing the objective within the accuracy bound;
// writes the chosen packed model to `out_path` (and the files config names).
Result<TuneSummary> TuneModel(const std::string& model_path, const std::string& out_path,
                              const TuneConfig& config);

}  // namespace lowbit

#endif  // LOWBIT_LOWBIT_H_
