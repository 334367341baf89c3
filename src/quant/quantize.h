// Post-training quantization of an fp32 graph into a packed one.
//
// Layers: Conv (constant weight), Gemm (constant B; alpha and beta folded) and
// MatMul (constant 2-D B). Each gets the plan's settings; its weight is fitted
// and packed (PackedTensor), and the node becomes PackedConv / PackedGemm
// (runtime/packed_node.h). With calibration data:
//   - activation ranges of every quantized layer's input, by min/max, a
//     percentile, or the range minimizing the expected quantization error
//     over a histogram (mse); stored as act_range (static quantization);
//   - bias correction: each layer's bias absorbs the mean output shift its
//     weight error causes, (W - Wq) * E[x], from per-channel input means;
//   - the SQNR of every quantized layer's output (all earlier layers
//     quantized too) against the fp32 model.
// Without calibration data, activations are quantized dynamically.
#ifndef LOWBIT_QUANT_QUANTIZE_H_
#define LOWBIT_QUANT_QUANTIZE_H_

#include <functional>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "ir/graph.h"
#include "lowbit/format.h"
#include "quant/quant_plan.h"

namespace lowbit {

enum class ActCalib { kMinMax, kPercentile, kMse };

struct QuantizeOptions {
  QuantPlan plan;
  // Calibration (optional): samples of the dataset, preprocessed like eval.
  Dataset* calib = nullptr;
  Preprocess preprocess;
  int64_t calib_batch = 32;
  ActCalib act_calib = ActCalib::kMse;
  double act_percentile = 99.99;
  // Weight fitting: clip method, codebook init, seed. With weight_clip_auto
  // the clip method is chosen per layer: min/max (keep every weight in range)
  // at 4 bits and more, MSE search below (measured on the bundled models:
  // at 4 bits clipping costs the CNN 0.3 points, at 2-3 bits it gains 1-10).
  FitOptions weight_fit;
  bool weight_clip_auto = false;
  bool bias_correction = true;
  double prune = 0.0;  // magnitude pruning ratio per layer, [0, 1)
  int threads = 1;
  bool quiet = false;
};

struct LayerReport {
  std::string name, op;  // op: Conv, Gemm, MatMul
  LayerSettings settings;
  bool quantized = false;  // false: kept fp32 (weights "float")
  int64_t params = 0;
  int64_t bytes = 0;       // packed weight bytes (codes + scales + ...), or fp32 bytes
  double weight_sqnr_db = 0;
  bool static_acts = false;
  float act_lo = 0, act_hi = 0;
  double output_sqnr_db = 0;  // with calibration data; NaN otherwise
};

struct QuantizeResult {
  Graph graph;
  std::vector<LayerReport> layers;
  std::vector<std::pair<std::string, LayerSettings>> resolved;  // for --write-plan
  int64_t calib_samples = 0;
};

// `graph` is an optimized fp32 graph (ir/passes.h). Errors name the layer,
// pattern or value involved; a --layer/plan pattern without wildcards that
// matches no layer is an error (listing the layers).
Result<QuantizeResult> QuantizeGraph(const Graph& graph, const QuantizeOptions& options);

// The layers QuantizeGraph would quantize, in graph order.
std::vector<std::string> QuantizableLayers(const Graph& graph);

}  // namespace lowbit

#endif  // LOWBIT_QUANT_QUANTIZE_H_
