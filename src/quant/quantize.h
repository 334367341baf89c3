// Post-training quantization of an fp32 graph into a packed one: Calibrate
// (quant/calibrate.h), then QuantizeLayer (quant/quantize_layer.h) for every
// layer.
//
// Layers: Conv (constant weight), Gemm (constant B; alpha and beta folded) and
// MatMul (constant 2-D B). Each gets the plan's settings; its weight is fitted
// and packed (PackedTensor), and the node becomes PackedConv / PackedGemm
// (model/packed_node.h). With calibration data:
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
#include "quant/calibrate.h"
#include "quant/quant_plan.h"
#include "quant/quantize_layer.h"

namespace lowbit {

struct QuantizeOptions : LayerQuantOptions {
  QuantPlan plan;
  // Calibration (optional): samples of the dataset, preprocessed like eval.
  Dataset* calib = nullptr;
  Preprocess preprocess;
  int64_t calib_batch = 32;
  // Statistics from Calibrate on this graph and `calib` (optional): used
  // instead of calibrating again; `calib` still gives the output SQNR.
  const CalibrationStats* stats = nullptr;
  int threads = 1;
  bool quiet = false;
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

// Each layer's settings under `plan` (ValidateSettings-checked); refuses a
// rule that matches no layer, and a graph with no layer.
Result<std::vector<LayerSettings>> ResolvePlan(const Graph& graph,
                                               const std::vector<QuantLayer>& layers,
                                               const QuantPlan& plan);

// Per-layer output SQNR of `quantized` (made from the fp32 `graph`, every
// layer in place) against `graph` on the first 8 samples of `data` (a small
// batch, so the copies of every layer output stay small): one value per
// QuantLayers(graph) entry in `db`, and as each packed node's sqnr_db.
Status MeasureOutputSqnr(const Graph& graph, Dataset& data, const Preprocess& preprocess,
                         int threads, bool quiet, Graph* quantized, std::vector<double>* db);

// The command line's --act-calib (minmax, mse, percentile:P) and
// --weight-clip (auto, minmax, mse, percentile:P) into `o`; errors name the
// option and value.
Status ParseCalibOptions(const std::string& act_calib, const std::string& weight_clip,
                         LayerQuantOptions* o);

// The layers QuantizeGraph would quantize, in graph order.
std::vector<std::string> QuantizableLayers(const Graph& graph);

}  // namespace lowbit

#endif  // LOWBIT_QUANT_QUANTIZE_H_
