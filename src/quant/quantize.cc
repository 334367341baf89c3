#include "quant/quantize.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <memory>
#include <set>

#include "base/progress.h"
#include "base/strings.h"
#include "model/packed_node.h"
#include "runtime/plan.h"

namespace lowbit {
namespace {

double Sqnr(const float* ref, const float* got, int64_t n) {
  double s = 0, e = 0;
  for (int64_t i = 0; i < n; ++i) {
    s += static_cast<double>(ref[i]) * ref[i];
    const double d = static_cast<double>(ref[i]) - got[i];
    e += d * d;
  }
  if (e == 0) return std::numeric_limits<double>::infinity();
  return 10.0 * std::log10(std::max(s, 1e-30) / e);
}

}  // namespace

Status MeasureOutputSqnr(const Graph& graph, Dataset& data, const Preprocess& preprocess,
                         int threads, bool quiet, Graph* quantized, std::vector<double>* db) {
  const std::vector<QuantLayer> layers = QuantLayers(graph);
  const int64_t batch = std::min<int64_t>(8, data.size());
  PlanOptions po;
  po.batch = batch;
  po.threads = threads;
  po.byte_edges = false;  // every layer output observed as fp32
  std::set<std::string> outputs;
  for (const QuantLayer& c : layers) outputs.insert(graph.nodes[c.node].outputs[0]);
  std::map<std::string, std::vector<float>> ref, got;
  for (int pass = 0; pass < 2; ++pass) {
    std::map<std::string, std::vector<float>>& dst = pass == 0 ? ref : got;
    Result<std::unique_ptr<Plan>> made = Plan::Create(pass == 0 ? graph : *quantized, po);
    if (!made.ok()) {
      return Status(made.status().code(),
                    std::string(pass == 0 ? "" : "quantized model: ") + made.status().message());
    }
    LOWBIT_RETURN_IF_ERROR(ForEachBatch(
        made->get(), data, preprocess, batch,
        pass == 0 ? "layer SQNR (fp32)" : "layer SQNR (quantized)", quiet,
        [&](const std::string& name, const Tensor&, const float* x, int64_t used) {
          if (outputs.count(name)) dst[name].assign(x, x + used);
        }));
  }
  db->clear();
  for (const QuantLayer& l : layers) {
    const std::string& y = graph.nodes[l.node].outputs[0];
    db->push_back(Sqnr(ref[y].data(), got[y].data(), static_cast<int64_t>(ref[y].size())));
    Node& node = quantized->nodes[l.node];
    if (IsPackedNode(node)) node.attrs["sqnr_db"] = static_cast<float>(std::min(db->back(), 999.0));
  }
  return OkStatus();
}

std::vector<std::string> QuantizableLayers(const Graph& graph) {
  std::vector<std::string> out;
  for (const QuantLayer& c : QuantLayers(graph)) out.push_back(c.name);
  return out;
}

Result<std::vector<LayerSettings>> ResolvePlan(const Graph& graph,
                                               const std::vector<QuantLayer>& layers,
                                               const QuantPlan& plan) {
  if (layers.empty()) {
    return InvalidArgument(graph.source, ": no layer to quantize (Conv, Gemm or MatMul with "
                                         "constant weights)");
  }
  // Every exact-name rule must name a layer.
  std::string names;
  for (const QuantLayer& c : layers) names += (names.empty() ? "" : ", ") + c.name;
  for (const LayerRule& r : plan.rules) {
    bool hit = false;
    for (const QuantLayer& c : layers) hit = hit || GlobMatch(r.pattern, c.name);
    if (!hit) {
      return InvalidArgument("layer pattern '", r.pattern, "' matches no quantizable layer of ",
                             graph.source, " (layers: ", names, ")");
    }
  }
  std::vector<LayerSettings> settings;
  for (const QuantLayer& c : layers) {
    settings.push_back(plan.Resolve(c.name));
    LOWBIT_RETURN_IF_ERROR(ValidateSettings(settings.back(), "layer '" + c.name + "'"));
  }
  return settings;
}

Status ParseCalibOptions(const std::string& act_calib, const std::string& weight_clip,
                         LayerQuantOptions* o) {
  if (act_calib == "minmax") {
    o->act_calib = ActCalib::kMinMax;
  } else if (act_calib == "mse") {
    o->act_calib = ActCalib::kMse;
  } else if (act_calib.rfind("percentile:", 0) == 0) {
    o->act_calib = ActCalib::kPercentile;
    LOWBIT_ASSIGN_OR_RETURN(o->act_percentile, ParseDouble(act_calib.substr(11), "--act-calib"));
    if (!(o->act_percentile > 50 && o->act_percentile <= 100)) {
      return InvalidArgument("--act-calib ", act_calib, ": the percentile must be in (50, 100]");
    }
  } else {
    return InvalidArgument("--act-calib '", act_calib, "' (minmax, mse or percentile:P)");
  }
  if (weight_clip == "auto") {
    o->weight_clip_auto = true;
  } else {
    LOWBIT_RETURN_IF_ERROR(ParseClip(weight_clip, &o->weight_fit));
  }
  return OkStatus();
}

Result<QuantizeResult> QuantizeGraph(const Graph& graph, const QuantizeOptions& o) {
  const std::vector<QuantLayer> layers = QuantLayers(graph);
  std::vector<LayerSettings> settings;
  LOWBIT_ASSIGN_OR_RETURN(settings, ResolvePlan(graph, layers, o.plan));
  if (o.prune < 0 || o.prune >= 1) return InvalidArgument("--prune must be in [0, 1), got ", o.prune);
  if (o.gptq && o.calib == nullptr && o.stats == nullptr) {
    return InvalidArgument("--rounding gptq needs calibration data (--calib): it rounds under the "
                           "Gram matrix of each layer's calibration inputs");
  }

  QuantizeResult result;
  CalibrationStats own;
  const CalibrationStats* stats = o.stats;
  if (o.calib != nullptr && stats == nullptr) {
    CalibrateOptions co;
    co.preprocess = o.preprocess;
    co.batch = o.calib_batch;
    co.histograms = o.act_calib != ActCalib::kMinMax;
    co.gram_max_cols = o.gptq ? kGptqMaxCols : 0;
    co.threads = o.threads;
    co.quiet = o.quiet;
    LOWBIT_ASSIGN_OR_RETURN(own, Calibrate(graph, *o.calib, co));
    stats = &own;
  }
  if (stats != nullptr) result.calib_samples = stats->samples;

  result.graph = graph;
  {
    Progress progress("quantize weights", static_cast<int64_t>(layers.size()), "layers", o.quiet);
    for (size_t ci = 0; ci < layers.size(); ++ci) {
      QuantizedLayer q;
      LOWBIT_ASSIGN_OR_RETURN(q, QuantizeLayer(graph, layers[ci], settings[ci], stats, o));
      ApplyLayer(q, &result.graph);
      result.resolved.push_back({layers[ci].name, q.report.settings});
      result.layers.push_back(std::move(q.report));
      progress.Advance();
    }
  }
  DropUnusedConstants(&result.graph);
  if (o.calib != nullptr) {
    std::vector<double> db;
    LOWBIT_RETURN_IF_ERROR(
        MeasureOutputSqnr(graph, *o.calib, o.preprocess, o.threads, o.quiet, &result.graph, &db));
    for (size_t i = 0; i < db.size(); ++i) result.layers[i].output_sqnr_db = db[i];
  }
  return result;
}

}  // namespace lowbit
