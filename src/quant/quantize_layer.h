// Quantizing one layer: fit and pack its weight under one layer's settings,
// correct its bias, choose its activation range from shared calibration
// statistics, and build the packed node that replaces it. Layers are
// independent: changing one layer's settings re-runs only that layer, which
// is what the tuner and training need. QuantizeGraph (quant/quantize.h) is a
// loop over QuantizeLayer.
#ifndef LOWBIT_QUANT_QUANTIZE_LAYER_H_
#define LOWBIT_QUANT_QUANTIZE_LAYER_H_

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ir/graph.h"
#include "lowbit/format.h"
#include "model/packed_node.h"
#include "quant/calibrate.h"
#include "quant/layers.h"
#include "quant/quant_plan.h"

namespace lowbit {

// The per-layer part of the quantization options.
struct LayerQuantOptions {
  // Activation ranges from the calibration statistics.
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
  // Error-compensated rounding (quant/gptq.h) where the calibration holds the
  // layer's input Gram matrix and nothing is pruned; nearest rounding else.
  bool gptq = false;

  RangeOptions range() const { return {act_calib, act_percentile}; }
};

// Parses --rounding: "nearest" or "gptq" (sets options->gptq); empty takes
// `plan_rounding` (a plan file's "rounding"), and that empty, nearest.
Status ParseRounding(std::string_view text, LayerQuantOptions* options,
                     std::string_view plan_rounding = "");

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

struct QuantizedLayer {
  int node = -1;  // the layer's node index
  // The node replacing it and the constants it reads (codes, scales, bias);
  // unset when the layer stays fp32 (!report.quantized).
  Node packed;
  std::map<std::string, Tensor> constants;
  LayerReport report;  // report.settings: the settings that reproduce the layer
  // The weights the kernels compute with, decoded ([rows, ...] as the
  // layer's w); empty when the layer stays fp32.
  std::vector<float> wq;
};

// Codebook levels (sorted) as the integer kernels run them under 8-bit
// activations: each moved to the nearest point of an int8 grid (level * 2^e
// an integer in [-128, 127], e as large as fits), duplicates merged. `from`,
// if given, receives for each kept level the index of the first level that
// gave it.
std::vector<float> SnapLevelsToInt8(const std::vector<float>& levels,
                                    std::vector<int64_t>* from = nullptr);

// Quantizes `layer` (of `graph`) under `settings`; `stats` (may be null:
// dynamic activations, no bias correction) from Calibrate on the same graph.
// Errors name the layer.
Result<QuantizedLayer> QuantizeLayer(const Graph& graph, const QuantLayer& layer,
                                     const LayerSettings& settings, const CalibrationStats* stats,
                                     const LayerQuantOptions& options);

// A layer quantized elsewhere (by training): its packed weight, bias and
// activation ranges, used as they are (no fitting, no bias correction).
struct FixedLayer {
  PackedParts weights;
  std::vector<float> bias;  // empty: none
  std::optional<std::pair<float, float>> act_range;       // absent: dynamic
  std::optional<std::pair<float, float>> residual_range;  // a fused residual's
  // For the QDQ export only (the kernels requantize at the reader's range):
  // the layer's output and, with a fused residual, its value before the Add.
  std::optional<std::pair<float, float>> output_range, pre_residual_range;
};
// The packed node for `layer` from `fixed`, with acts "uint8", "int8" or
// "float"; refuses a weight of another shape, or one the kernels cannot run.
Result<QuantizedLayer> PackFixedLayer(const Graph& graph, const QuantLayer& layer,
                                      const std::string& acts, FixedLayer fixed);

// Puts a quantized layer into `graph` (a copy of the graph it came from):
// its node replaced, its constants added. The fp32 weight stays until
// DropUnusedConstants.
void ApplyLayer(const QuantizedLayer& layer, Graph* graph);

// Removes constants no node reads and no output names.
void DropUnusedConstants(Graph* graph);

// `graph` with these layers (quantized from it) in place and every other
// layer fp32: a candidate for evaluation. Constants are shared, not copied.
Graph AssembleGraph(const Graph& graph, const std::vector<const QuantizedLayer*>& layers);

}  // namespace lowbit

#endif  // LOWBIT_QUANT_QUANTIZE_LAYER_H_
