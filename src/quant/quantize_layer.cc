#include "quant/quantize_layer.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <set>

#include "ir/passes.h"
#include "kernels/qlinear.h"
#include "lowbit/packed_tensor.h"
#include "model/packed_node.h"
#include "quant/gptq.h"

namespace lowbit {
namespace {

// Splits a weight (C-ordered, `shape`, rows = output channels) into parts by
// `part_of` (one per row, values 0..specs.size()-1, every part non-empty),
// quantizing each with its spec; errors name the part.
Result<PackedParts> QuantizeParts(const float* w, const std::vector<int64_t>& shape,
                                  const std::vector<FormatSpec>& specs,
                                  const std::vector<int32_t>& part_of, FitOptions options,
                                  double prune_ratio) {
  int64_t rows = 0, cols = 0;
  LOWBIT_RETURN_IF_ERROR(ShapeAs2D(shape, &rows, &cols));
  if (static_cast<int64_t>(part_of.size()) != rows) {
    return InvalidArgument("filter-wise formats: ", part_of.size(), " assignments for ", rows,
                           " filters");
  }
  PackedParts out;
  out.shape = shape;
  out.channels.assign(specs.size(), {});
  for (int64_t r = 0; r < rows; ++r) {
    if (part_of[r] < 0 || part_of[r] >= static_cast<int32_t>(specs.size())) {
      return InvalidArgument("filter ", r, ": format index ", part_of[r], " (", specs.size(),
                             " formats)");
    }
    out.channels[part_of[r]].push_back(static_cast<int32_t>(r));
  }
  for (size_t i = 0; i < specs.size(); ++i) {
    if (out.channels[i].empty())
      return InvalidArgument("format ", FormatName(specs[i]), " has no filter");
    if (specs.size() > 1 && StoresLevels(specs[i])) {
      return InvalidArgument(
          "format ", FormatName(specs[i]),
          " stores levels; filter-wise formats take int, uint, int-asym or pow2");
    }
    std::vector<float> sub(out.channels[i].size() * cols);
    for (size_t r = 0; r < out.channels[i].size(); ++r) {
      std::copy_n(w + out.channels[i][r] * cols, cols, sub.data() + r * cols);
    }
    std::vector<int64_t> sub_shape = shape;
    sub_shape[0] = static_cast<int64_t>(out.channels[i].size());
    Result<PackedTensor> t = PackedTensor::Quantize(
        sub.data(), specs.size() > 1 ? sub_shape : shape, specs[i], options, prune_ratio);
    if (!t.ok())
      return Status(t.status().code(),
                    "format " + FormatName(specs[i]) + ": " + t.status().message());
    out.parts.push_back(std::move(t).value());
  }
  return out;
}

// Codebook levels moved to the int8 grid (SnapLevelsToInt8) so the integer
// kernels can run them; the codes are re-encoded under the snapped table.
Result<PackedTensor> SnapToInt8Grid(const PackedTensor& t, const std::vector<float>& w,
                                    double prune) {
  QuantParams p = t.params();
  p.levels = SnapLevelsToInt8(p.levels);
  std::vector<float> x = w;
  if (prune > 0) LOWBIT_RETURN_IF_ERROR(Prune(x.data(), static_cast<int64_t>(x.size()), prune));
  std::vector<uint32_t> codes(x.size());
  LOWBIT_RETURN_IF_ERROR(Encode(p, x.data(), codes.data()));
  return PackedTensor::FromCodes(std::move(p), t.shape(), codes.data());
}

// Filter-wise formats for one layer: the plan's assignment, or the fraction
// rule (the second format goes to the filters the first fits worst, by
// squared error relative to the filter's own energy).
Result<PackedParts> QuantizeFilterWise(const QuantLayer& c, const LayerSettings& s, FitOptions fo,
                                       const LayerQuantOptions& o) {
  FilterFormats ff;
  LOWBIT_ASSIGN_OR_RETURN(ff, ParseFilterFormats(s.weights));
  if (fo.granularity.kind == Granularity::kGroup) {
    return Unimplemented("filter-wise weights '", s.weights,
                         "' take channel or tensor granularity, not ",
                         GranularityName(fo.granularity));
  }
  std::vector<FormatSpec> specs;
  for (const std::string& n : ff.names) {
    FormatSpec f;
    LOWBIT_ASSIGN_OR_RETURN(f, ParseFormat(n));
    specs.push_back(f);
  }
  const int64_t rows = c.wshape[0], cols = static_cast<int64_t>(c.w.size()) / rows;
  std::vector<int32_t> part_of = s.filters;
  if (c.group != 1) {
    // Grouped and depthwise layers run one format: a fraction gives them the
    // widest (their few weights weigh most per parameter); an assignment
    // cannot apply.
    if (!part_of.empty()) {
      return Unimplemented("a 'filters' assignment needs an ungrouped layer; this one has group ",
                           c.group);
    }
    size_t widest = 0;
    for (size_t i = 1; i < specs.size(); ++i)
      widest = specs[i].bits > specs[widest].bits ? i : widest;
    part_of.assign(rows, static_cast<int32_t>(widest));
  }
  if (!part_of.empty() && static_cast<int64_t>(part_of.size()) != rows) {
    return InvalidArgument("'filters' has ", part_of.size(), " entries; the layer has ", rows,
                           " filters");
  }
  if (part_of.empty()) {
    FitOptions f0 = fo;
    if (o.weight_clip_auto) f0.clip = specs[0].bits >= 4 ? ClipMethod::kMinMax : ClipMethod::kMse;
    PackedTensor first;
    LOWBIT_ASSIGN_OR_RETURN(first,
                            PackedTensor::Quantize(c.w.data(), c.wshape, specs[0], f0, o.prune));
    std::vector<float> d(c.w.size());
    first.Dequantize(d.data());
    std::vector<double> rel(rows);
    for (int64_t r = 0; r < rows; ++r) {
      double e = 0, energy = 1e-30;
      for (int64_t j = r * cols; j < (r + 1) * cols; ++j) {
        e += (static_cast<double>(c.w[j]) - d[j]) * (static_cast<double>(c.w[j]) - d[j]);
        energy += static_cast<double>(c.w[j]) * c.w[j];
      }
      rel[r] = e / energy;
    }
    std::vector<int32_t> order(rows);
    for (int64_t r = 0; r < rows; ++r) order[r] = static_cast<int32_t>(r);
    std::stable_sort(order.begin(), order.end(),
                     [&](int32_t a, int32_t b) { return rel[a] > rel[b]; });
    const int64_t second = std::llround(ff.fraction * static_cast<double>(rows));
    part_of.assign(rows, 0);
    for (int64_t i = 0; i < second; ++i) part_of[order[i]] = 1;
  }
  // Formats no filter takes drop out (a fraction of 0 or 1: one format);
  // parts stay in the order of the plan's formats.
  std::vector<bool> taken(specs.size(), false);
  for (int32_t p : part_of) taken[p] = true;
  std::vector<FormatSpec> used;
  std::vector<int32_t> remap(specs.size(), -1);
  for (size_t p = 0; p < specs.size(); ++p) {
    if (!taken[p]) continue;
    remap[p] = static_cast<int32_t>(used.size());
    used.push_back(specs[p]);
  }
  for (int32_t& p : part_of) p = remap[p];
  // MSE clipping when any format is below 4 bits (as for uniform layers).
  if (o.weight_clip_auto) {
    int min_bits = 8;
    for (const FormatSpec& f : used) min_bits = std::min(min_bits, f.bits);
    fo.clip = min_bits >= 4 ? ClipMethod::kMinMax : ClipMethod::kMse;
  }
  return QuantizeParts(c.w.data(), c.wshape, used, part_of, fo, o.prune);
}

// Adds the mean output shift of the weight error, (W - Wq) * E[x], to the
// bias (sized to the layer's rows; zeros when the layer had none).
void CorrectBias(const QuantLayer& c, const std::vector<float>& wd, const TensorStats& is,
                 std::vector<float>* bias) {
  const int64_t rows = c.rows(), cols = c.cols();
  const int64_t ch = static_cast<int64_t>(is.channel_sum.size());
  std::vector<double> mean(ch);
  for (int64_t i = 0; i < ch; ++i) mean[i] = is.Mean(i);
  if (bias->empty()) bias->assign(rows, 0.0f);
  const int64_t taps = c.op == "Conv" ? cols / c.wshape[1] : 1;
  const int64_t cg = c.op == "Conv" ? c.wshape[1] : cols;
  const int64_t mg = rows / c.group;
  for (int64_t r = 0; r < rows; ++r) {
    double shift = 0;
    const int64_t c0 = c.op == "Conv" ? (r / mg) * cg : 0;
    for (int64_t j = 0; j < cols; ++j) {
      const int64_t chan = c0 + j / taps;
      if (chan < ch) shift += (static_cast<double>(c.w[r * cols + j]) - wd[r * cols + j]) * mean[chan];
    }
    (*bias)[r] += static_cast<float>(shift);
  }
}

// The packed node replacing layer c, from its packed weight (decoded: wd),
// bias and ranges; result has node and report name/op/params set.
Result<QuantizedLayer> BuildPacked(const Graph& graph, const QuantLayer& c, const LayerSettings& s,
                                   FixedLayer fixed, std::vector<float> wd, QuantizedLayer result) {
  LayerReport& rep = result.report;
  const std::string where = "layer '" + c.name + "'";
  const PackedParts& parts = fixed.weights;
  const bool weight_only = s.acts == "float";
  if (!weight_only) {
    std::optional<bool> signed_acts;  // the activation operand of the first format's layout
    for (const PackedTensor& pt : parts.parts) {
      Result<QLinearWeights> runnable = PrepareQLinear(pt);
      if (!runnable.ok()) {
        return Status(runnable.status().code(),
                      where + ": " + runnable.status().message() +
                          (parts.mixed() ? "" : " (--acts float runs any format)"));
      }
      if (!signed_acts) signed_acts = runnable->signed_acts();
      if (runnable->signed_acts() != *signed_acts) {
        return Unimplemented(
            where, ": filter-wise formats ", parts.format(),
            " mix kernel layouts: take 1, 2, 4 and 8-bit uniform grids, or only other formats");
      }
    }
  }
  rep.weight_sqnr_db = MeasureError(c.w.data(), wd.data(), static_cast<int64_t>(wd.size())).sqnr_db;
  rep.quantized = true;
  rep.bytes = parts.bytes();
  // The packed node.
  const Node& old = graph.nodes[c.node];
  Node q;
  q.name = old.name;
  q.op_type = c.op == "Conv" ? kPackedConv : kPackedGemm;
  q.domain = kLowbitDomain;
  q.opset = kLowbitDomainVersion;
  q.outputs = old.outputs;
  for (const auto& [key, value] : old.attrs) {
    if (c.op == "Conv" || key.rfind("lowbit.", 0) == 0) q.attrs[key] = value;
  }
  Tensor codes, scales;
  SetPackedParts(parts, &q, &codes, &scales);
  q.attrs["act"] = s.acts;
  if (fixed.act_range && !weight_only) {
    const auto [lo, hi] = *fixed.act_range;
    q.attrs["act_range"] = std::vector<float>{lo, hi};
    rep.static_acts = true;
    rep.act_lo = lo;
    rep.act_hi = hi;
  }
  const std::string base = old.name;
  q.inputs = {c.x, base + ".codes", base + ".scales"};
  result.constants[base + ".codes"] = codes;
  result.constants[base + ".scales"] = scales;
  const std::vector<float>& bias = fixed.bias;
  if (!bias.empty()) {
    result.constants[base + ".bias"] = Tensor::FromFloats({static_cast<int64_t>(bias.size())}, bias);
    q.inputs.push_back(base + ".bias");
  }
  if (!old.input(3).empty()) {  // a fused residual (Conv input 3, PackedConv input 4)
    q.inputs.resize(4);
    q.inputs.push_back(old.input(3));
    if (fixed.residual_range && !weight_only) {
      const auto [lo, hi] = *fixed.residual_range;
      q.attrs["residual_range"] = std::vector<float>{lo, hi};
    }
    if (fixed.pre_residual_range && !weight_only) {
      const auto [lo, hi] = *fixed.pre_residual_range;
      q.attrs["pre_residual_range"] = std::vector<float>{lo, hi};
    }
  }
  if (fixed.output_range && !weight_only) {
    const auto [lo, hi] = *fixed.output_range;
    q.attrs["output_range"] = std::vector<float>{lo, hi};
  }
  result.packed = std::move(q);
  result.wq = std::move(wd);
  return result;
}

}  // namespace

std::vector<float> SnapLevelsToInt8(const std::vector<float>& levels, std::vector<int64_t>* from) {
  float amax = 0;
  for (float l : levels) amax = std::max(amax, std::fabs(l));
  int e = 7;
  while (e > 0 && amax * std::ldexp(1.0f, e) > 127.0f) --e;
  const float mul = std::ldexp(1.0f, e);
  std::vector<float> out;
  if (from != nullptr) from->clear();
  for (size_t i = 0; i < levels.size(); ++i) {
    const float v = std::clamp(std::nearbyint(levels[i] * mul), -128.0f, 127.0f) / mul;
    if (out.empty() || v > out.back()) {
      out.push_back(v);
      if (from != nullptr) from->push_back(static_cast<int64_t>(i));
    }
  }
  return out;
}

Status ParseRounding(std::string_view text, LayerQuantOptions* options,
                     std::string_view plan_rounding) {
  if (text.empty()) text = plan_rounding.empty() ? "nearest" : plan_rounding;
  if (text != "nearest" && text != "gptq") {
    return InvalidArgument("--rounding '", text, "': nearest or gptq");
  }
  options->gptq = text == "gptq";
  return OkStatus();
}

Result<QuantizedLayer> QuantizeLayer(const Graph& graph, const QuantLayer& c, const LayerSettings& s,
                                     const CalibrationStats* stats, const LayerQuantOptions& o) {
  QuantizedLayer result;
  result.node = c.node;
  LayerReport& rep = result.report;
  rep.name = c.name;
  rep.op = c.op;
  rep.settings = s;
  rep.params = static_cast<int64_t>(c.w.size());
  rep.output_sqnr_db = std::numeric_limits<double>::quiet_NaN();
  const std::string where = "layer '" + c.name + "'";
  if (s.weights == "float") {
    rep.bytes = rep.params * 4;
    rep.weight_sqnr_db = std::numeric_limits<double>::infinity();
    return result;
  }
  FitOptions fo = o.weight_fit;
  LOWBIT_ASSIGN_OR_RETURN(fo.granularity, ParseGranularity(s.granularity));
  const bool weight_only = s.acts == "float";
  PackedParts parts;
  if (IsFilterWise(s.weights)) {
    Result<PackedParts> p = QuantizeFilterWise(c, s, fo, o);
    if (!p.ok()) return Status(p.status().code(), where + ": " + p.status().message());
    parts = std::move(p).value();
    rep.settings.filters.assign(parts.rows(), 0);
    for (size_t i = 0; i < parts.channels.size(); ++i) {
      for (int32_t ch : parts.channels[i]) rep.settings.filters[ch] = static_cast<int32_t>(i);
    }
    if (parts.mixed()) {
      // The plan that reproduces this layer: its formats (without the
      // fraction) and the assignment.
      rep.settings.weights = s.weights.substr(0, s.weights.find(':'));
    } else {
      rep.settings.weights = parts.format();
      rep.settings.filters.clear();
    }
  } else {
    FormatSpec spec;
    LOWBIT_ASSIGN_OR_RETURN(spec, ParseFormat(s.weights));
    if (o.weight_clip_auto) fo.clip = spec.bits >= 4 ? ClipMethod::kMinMax : ClipMethod::kMse;
    Result<PackedTensor> packed =
        PackedTensor::Quantize(c.w.data(), c.wshape, spec, fo, o.prune);
    if (!packed.ok())
      return Status(packed.status().code(), where + ": " + packed.status().message());
    PackedTensor pt = std::move(packed).value();
    // 8-bit activations run on integer kernels, which need levels on an
    // int8 grid; weight-only layers (acts float) decode any levels.
    if (spec.family == Family::kCodebook && !weight_only) {
      Result<PackedTensor> snapped = SnapToInt8Grid(pt, c.w, o.prune);
      if (!snapped.ok())
        return Status(snapped.status().code(), where + ": " + snapped.status().message());
      pt = std::move(snapped).value();
    }
    parts = PackedParts::Uniform(std::move(pt));
  }
  if (o.gptq && o.prune == 0 && stats != nullptr) {
    auto g = stats->grams.find(c.name);
    if (g != stats->grams.end() && !g->second.u.empty()) LOWBIT_RETURN_IF_ERROR(GptqRound(c, g->second, &parts));
  }
  std::vector<float> wd(c.w.size());
  parts.Dequantize(wd.data());
  std::vector<float> bias = c.bias;
  const TensorStats* st = stats != nullptr ? stats->Find(c.x) : nullptr;
  const bool calibrated = st != nullptr && st->per_channel > 0;
  if (calibrated && o.bias_correction) CorrectBias(c, wd, *st, &bias);
  FixedLayer fixed;
  fixed.weights = std::move(parts);
  fixed.bias = std::move(bias);
  if (calibrated && !weight_only) fixed.act_range = ChooseRange(*st, o.range(), s.acts == "int8");
  const Node& old = graph.nodes[c.node];
  if (!old.input(3).empty()) {
    const TensorStats* rs = stats != nullptr ? stats->Find(old.input(3)) : nullptr;
    if (!weight_only && rs != nullptr && rs->per_channel > 0)
      fixed.residual_range = ChooseRange(*rs, o.range(), false);
    const TensorStats* ps = stats != nullptr ? stats->Find(PreResidualName(old.outputs[0])) : nullptr;
    if (!weight_only && ps != nullptr && ps->per_channel > 0)
      fixed.pre_residual_range = ChooseRange(*ps, o.range(), false);
  }
  const TensorStats* os = stats != nullptr ? stats->Find(old.outputs[0]) : nullptr;
  if (!weight_only && os != nullptr && os->per_channel > 0)
    fixed.output_range = ChooseRange(*os, o.range(), false);
  const LayerSettings settings = rep.settings;
  return BuildPacked(graph, c, settings, std::move(fixed), std::move(wd), std::move(result));
}

Result<QuantizedLayer> PackFixedLayer(const Graph& graph, const QuantLayer& c, const std::string& acts,
                                      FixedLayer fixed) {
  QuantizedLayer result;
  result.node = c.node;
  LayerReport& rep = result.report;
  rep.name = c.name;
  rep.op = c.op;
  rep.params = static_cast<int64_t>(c.w.size());
  rep.output_sqnr_db = std::numeric_limits<double>::quiet_NaN();
  const PackedParts& parts = fixed.weights;
  if (parts.numel() != rep.params || parts.shape != c.wshape) {
    return InvalidArgument("layer '", c.name, "': packed weight of ", parts.numel(),
                           " values for a weight of ", rep.params);
  }
  rep.settings.weights = parts.format();
  rep.settings.granularity = GranularityName(parts.parts[0].params().granularity);
  rep.settings.acts = acts;
  if (parts.mixed()) {
    rep.settings.filters.assign(parts.rows(), 0);
    for (size_t i = 0; i < parts.channels.size(); ++i) {
      for (int32_t ch : parts.channels[i]) rep.settings.filters[ch] = static_cast<int32_t>(i);
    }
  }
  std::vector<float> wd(c.w.size());
  parts.Dequantize(wd.data());
  const LayerSettings settings = rep.settings;
  return BuildPacked(graph, c, settings, std::move(fixed), std::move(wd), std::move(result));
}

void ApplyLayer(const QuantizedLayer& layer, Graph* graph) {
  if (!layer.report.quantized) return;
  graph->nodes[layer.node] = layer.packed;
  for (const auto& [name, t] : layer.constants) graph->constants[name] = t;
}

void DropUnusedConstants(Graph* graph) {
  std::set<std::string> used;
  for (const Node& n : graph->nodes) used.insert(n.inputs.begin(), n.inputs.end());
  for (auto it = graph->constants.begin(); it != graph->constants.end();) {
    it = used.count(it->first) || graph->IsOutput(it->first) ? std::next(it)
                                                             : graph->constants.erase(it);
  }
}

Graph AssembleGraph(const Graph& graph, const std::vector<const QuantizedLayer*>& layers) {
  Graph out = graph;
  for (const QuantizedLayer* l : layers) ApplyLayer(*l, &out);
  DropUnusedConstants(&out);
  return out;
}

}  // namespace lowbit
