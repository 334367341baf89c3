#include "quant/quantize.h"

#include <algorithm>
#include <functional>
#include <cmath>
#include <limits>
#include <map>
#include <optional>
#include <set>

#include "base/progress.h"
#include "kernels/qlinear.h"
#include "lowbit/packed_tensor.h"
#include "runtime/packed_node.h"
#include "runtime/plan.h"

namespace lowbit {
namespace {

// A layer that can be quantized: its input, its weight as [rows, ...] with
// rows = output channels, and its bias (folded from Gemm's alpha/beta/C).
struct Candidate {
  int node = -1;
  std::string name, op, x;
  Shape wshape;
  std::vector<float> w;
  std::vector<float> bias;  // empty: none
  int channel_axis = 1;     // of x, for per-channel input means (-1: last)
  int64_t group = 1;
};

const Tensor* ConstantF32(const Graph& g, const std::string& name) {
  auto it = g.constants.find(name);
  if (it == g.constants.end() || it->second.dtype() != DType::kFloat32) return nullptr;
  return &it->second;
}

std::optional<Candidate> Extract(const Graph& g, int i) {
  const Node& n = g.nodes[i];
  if (!n.domain.empty()) return std::nullopt;
  Candidate c;
  c.node = i;
  c.name = n.name;
  c.op = n.op_type;
  c.x = n.input(0);
  if (c.x.empty() || g.IsConstant(c.x)) return std::nullopt;
  if (n.op_type == "Conv") {
    const Tensor* w = ConstantF32(g, n.input(1));
    if (w == nullptr || w->rank() < 3) return std::nullopt;
    c.wshape = w->shape();
    c.w.assign(w->data<float>(), w->data<float>() + w->numel());
    if (!n.input(2).empty()) {
      const Tensor* b = ConstantF32(g, n.input(2));
      if (b == nullptr || b->numel() != c.wshape[0]) return std::nullopt;
      c.bias.assign(b->data<float>(), b->data<float>() + b->numel());
    }
    c.group = n.GetInt("group", 1);
    return c;
  }
  if (n.op_type == "Gemm" || n.op_type == "MatMul") {
    const Tensor* b = ConstantF32(g, n.input(1));
    if (b == nullptr || b->rank() != 2) return std::nullopt;
    const bool gemm = n.op_type == "Gemm";
    if (gemm && n.GetInt("transA", 0) != 0) return std::nullopt;
    const bool trans_b = gemm && n.GetInt("transB", 0) != 0;
    const float alpha = gemm ? n.GetFloat("alpha", 1.0f) : 1.0f;
    const int64_t k = trans_b ? b->shape()[1] : b->shape()[0];
    const int64_t nn = trans_b ? b->shape()[0] : b->shape()[1];
    c.wshape = {nn, k};
    c.w.resize(nn * k);
    const float* src = b->data<float>();
    for (int64_t r = 0; r < nn; ++r) {
      for (int64_t j = 0; j < k; ++j) {
        c.w[r * k + j] = alpha * (trans_b ? src[r * k + j] : src[j * nn + r]);
      }
    }
    if (gemm && !n.input(2).empty()) {
      const Tensor* bias = ConstantF32(g, n.input(2));
      if (bias == nullptr || (bias->numel() != nn && bias->numel() != 1)) return std::nullopt;
      const float beta = n.GetFloat("beta", 1.0f);
      c.bias.resize(nn);
      for (int64_t r = 0; r < nn; ++r) {
        c.bias[r] = beta * bias->data<float>()[bias->numel() == 1 ? 0 : r];
      }
    }
    c.channel_axis = -1;
    return c;
  }
  return std::nullopt;
}

std::vector<Candidate> Candidates(const Graph& g) {
  std::vector<Candidate> out;
  for (int i = 0; i < static_cast<int>(g.nodes.size()); ++i) {
    if (auto c = Extract(g, i)) out.push_back(std::move(*c));
  }
  return out;
}

// Calibration statistics of one quantized layer input.
struct InputStats {
  int channel_axis = 1;
  float lo = std::numeric_limits<float>::infinity();
  float hi = -std::numeric_limits<float>::infinity();
  std::vector<double> channel_sum;
  int64_t per_channel = 0;  // values summed per channel
  float h_lo = 0, h_hi = 0;
  std::vector<double> hist;
};
constexpr int kBins = 2048;

// Quantization error of a histogram under an 8-bit quantizer over [lo, hi].
double RangeError(const InputStats& s, float lo, float hi, bool symmetric) {
  const ActQuant a = StaticActParams(lo, hi, symmetric, false);
  const double width = (static_cast<double>(s.h_hi) - s.h_lo) / kBins;
  double err = 0;
  for (int b = 0; b < kBins; ++b) {
    if (s.hist[b] == 0) continue;
    const double x = s.h_lo + (b + 0.5) * width;
    const double q = std::clamp(std::nearbyint(x / a.scale) + a.zero, 0.0, 255.0);
    const double d = x - a.scale * (q - a.zero);
    err += s.hist[b] * d * d;
  }
  return err;
}

// The value below which `pct` percent of the histogram's mass lies; with
// `absolute`, of |x|.
float Quantile(const InputStats& s, double pct, bool absolute) {
  const double width = (static_cast<double>(s.h_hi) - s.h_lo) / kBins;
  std::vector<std::pair<double, double>> v;  // (value, count)
  for (int b = 0; b < kBins; ++b) {
    const double x = s.h_lo + (b + 1.0) * width;  // upper edge
    if (s.hist[b] > 0) v.push_back({absolute ? std::fabs(s.h_lo + (b + 0.5) * width) + width / 2 : x, s.hist[b]});
  }
  std::sort(v.begin(), v.end());
  double total = 0;
  for (const auto& e : v) total += e.second;
  double acc = 0;
  for (const auto& e : v) {
    acc += e.second;
    if (acc >= total * pct / 100.0) return static_cast<float>(e.first);
  }
  return v.empty() ? 0.0f : static_cast<float>(v.back().first);
}

std::pair<float, float> ChooseRange(const InputStats& s, const QuantizeOptions& o, bool symmetric) {
  const float lo = std::min(s.lo, 0.0f), hi = std::max(s.hi, 0.0f);
  if (o.act_calib == ActCalib::kMinMax || s.hist.empty()) return {lo, hi};
  if (o.act_calib == ActCalib::kPercentile) {
    if (symmetric) {
      const float a = Quantile(s, o.act_percentile, true);
      return {-a, a};
    }
    return {std::min(0.0f, Quantile(s, 100.0 - o.act_percentile, false)),
            std::max(0.0f, Quantile(s, o.act_percentile, false))};
  }
  // MSE: shrink the range by a common factor; keep the best.
  double best = std::numeric_limits<double>::infinity();
  std::pair<float, float> out{lo, hi};
  for (int i = 0; i <= 80; ++i) {
    const float f = 1.0f - 0.01f * static_cast<float>(i);
    const float a = lo * f, b = hi * f;
    const double e = RangeError(s, a, b, symmetric);
    if (e < best) {
      best = e;
      out = {a, b};
    }
  }
  return out;
}

// Codebook levels moved to the nearest point of an int8 grid (level * 2^e an
// integer in [-128, 127]) so the integer kernels can run them; the codes are
// re-encoded under the snapped table.
Result<PackedTensor> SnapToInt8Grid(const PackedTensor& t, const std::vector<float>& w,
                                    double prune) {
  QuantParams p = t.params();
  float amax = 0;
  for (float l : p.levels) amax = std::max(amax, std::fabs(l));
  int e = 7;
  while (e > 0 && amax * std::ldexp(1.0f, e) > 127.0f) --e;
  const float mul = std::ldexp(1.0f, e);
  std::vector<float> snapped;
  for (float l : p.levels) {
    const float v = std::clamp(std::nearbyint(l * mul), -128.0f, 127.0f) / mul;
    if (snapped.empty() || v > snapped.back()) snapped.push_back(v);
  }
  p.levels = snapped;
  std::vector<float> x = w;
  if (prune > 0) LOWBIT_RETURN_IF_ERROR(Prune(x.data(), static_cast<int64_t>(x.size()), prune));
  std::vector<uint32_t> codes(x.size());
  LOWBIT_RETURN_IF_ERROR(Encode(p, x.data(), codes.data()));
  return PackedTensor::FromCodes(std::move(p), t.shape(), codes.data());
}

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

// observe(name, value, x, used) for every float value the plan produces,
// x being its first `used` elements: those of the batch's real samples.
using SampleObserver =
    std::function<void(const std::string& name, const Tensor& value, const float* x, int64_t used)>;

// The samples one run of `plan` takes: its input's batch dimension, which is
// the model's own where the model fixes it; refused unless the rest of the
// input is one calibration sample.
Result<int64_t> CalibBatch(Plan* plan, const QuantizeOptions& o) {
  const Tensor& input = plan->input(0);
  const int64_t batch = input.rank() > 0 ? input.shape()[0] : 1;
  const Shape per_sample(input.shape().begin() + (input.rank() > 0 ? 1 : 0), input.shape().end());
  if (input.dtype() != DType::kFloat32 || batch < 1 ||
      !SampleFitsInput(o.calib->sample_shape(), per_sample)) {
    return InvalidArgument(
        "--calib '", o.calib->spec(), "' has samples of ", o.calib->sample_size(), " values ",
        ShapeToString(o.calib->sample_shape()), ", but model input '", plan->input_info(0).name,
        "' is ", DTypeName(input.dtype()), " ", ShapeToString(input.shape()));
  }
  return batch;
}

// Runs `plan` over the first `limit` calibration samples in batches.
Status ForCalibBatches(Plan* plan, const QuantizeOptions& o, int64_t limit, const std::string& label,
                       const SampleObserver& observe) {
  Dataset& ds = *o.calib;
  Tensor& input = plan->input(0);
  int64_t batch = 0;
  LOWBIT_ASSIGN_OR_RETURN(batch, CalibBatch(plan, o));
  const int64_t per_sample = input.numel() / batch;
  const int64_t channels = input.rank() == 4 ? input.shape()[1] : 1;
  const int64_t n = std::min(limit, ds.size());
  Progress progress(label, (n + batch - 1) / batch, "batches", o.quiet);
  for (int64_t i = 0; i < n; i += batch) {
    const int64_t m = std::min(batch, n - i);
    float* x = input.data<float>();
    LOWBIT_RETURN_IF_ERROR(ds.Read(i, m, x, nullptr));
    LOWBIT_RETURN_IF_ERROR(ApplyPreprocess(o.preprocess, ds.default_scale(), m, per_sample, channels, x));
    std::fill(x + m * per_sample, x + batch * per_sample, 0.0f);
    plan->Run([&](const std::string& name, const Tensor& t) {
      if (t.dtype() != DType::kFloat32) return;
      const int64_t used = !t.shape().empty() && t.shape()[0] == batch ? t.numel() / batch * m : t.numel();
      observe(name, t, t.data<float>(), used);
    });
    progress.Advance();
  }
  return OkStatus();
}

Status CheckCalibInput(Plan* plan, const Graph& g, const QuantizeOptions& o) {
  if (g.inputs.size() != 1) {
    return InvalidArgument(g.source, ": calibration needs a model with one input, it has ",
                           g.inputs.size());
  }
  return CalibBatch(plan, o).status();
}

// Filter-wise formats for one layer: the plan's assignment, or the fraction
// rule (the second format goes to the filters the first fits worst, by
// squared error relative to the filter's own energy).
Result<PackedParts> QuantizeFilterWise(const Candidate& c, const LayerSettings& s, FitOptions fo,
                                       const QuantizeOptions& o) {
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

}  // namespace

std::vector<std::string> QuantizableLayers(const Graph& graph) {
  std::vector<std::string> out;
  for (const Candidate& c : Candidates(graph)) out.push_back(c.name);
  return out;
}

Result<QuantizeResult> QuantizeGraph(const Graph& graph, const QuantizeOptions& o) {
  std::vector<Candidate> cands = Candidates(graph);
  if (cands.empty()) {
    return InvalidArgument(graph.source, ": no layer to quantize (Conv, Gemm or MatMul with "
                                         "constant weights)");
  }
  // Every exact-name rule must name a layer.
  std::string names;
  for (const Candidate& c : cands) names += (names.empty() ? "" : ", ") + c.name;
  for (const LayerRule& r : o.plan.rules) {
    bool hit = false;
    for (const Candidate& c : cands) hit = hit || GlobMatch(r.pattern, c.name);
    if (!hit) {
      return InvalidArgument("layer pattern '", r.pattern, "' matches no quantizable layer of ",
                             graph.source, " (layers: ", names, ")");
    }
  }
  QuantizeResult result;
  std::vector<LayerSettings> settings;
  for (const Candidate& c : cands) {
    settings.push_back(o.plan.Resolve(c.name));
    LOWBIT_RETURN_IF_ERROR(ValidateSettings(settings.back(), "layer '" + c.name + "'"));
    result.resolved.push_back({c.name, settings.back()});
  }
  if (o.prune < 0 || o.prune >= 1) return InvalidArgument("--prune must be in [0, 1), got ", o.prune);

  // Calibration: ranges, histograms and per-channel means of layer inputs.
  std::map<std::string, InputStats> stats;
  std::unique_ptr<Plan> fp32_plan;
  if (o.calib != nullptr) {
    if (o.calib_batch < 1) return InvalidArgument("--calib-batch must be >= 1, got ", o.calib_batch);
    PlanOptions po;
    po.batch = o.calib_batch;
    po.threads = o.threads;
    for (const Candidate& c : cands) stats[c.x].channel_axis = c.channel_axis;
    // Fused residuals too (residual_range): a residual nothing else reads
    // then travels as bytes (runtime/byte_edges.h).
    for (const Candidate& c : cands) {
      const std::string& r = graph.nodes[c.node].input(3);
      if (c.op == "Conv" && !r.empty()) stats.try_emplace(r);
    }
    LOWBIT_ASSIGN_OR_RETURN(fp32_plan, Plan::Create(graph, po));
    LOWBIT_RETURN_IF_ERROR(CheckCalibInput(fp32_plan.get(), graph, o));
    const int64_t n = o.calib->size();
    result.calib_samples = n;
    // Statistics are taken from each layer input as the plan produces it, so
    // calibration holds no more activations than inference does.
    auto pass1 = [&](const std::string& name, const Tensor& t, const float* x, int64_t used) {
      auto it = stats.find(name);
      if (it == stats.end()) return;
      InputStats& s = it->second;
      const int rank = t.rank();
      const int axis = s.channel_axis < 0 ? rank - 1 : std::min(s.channel_axis, rank - 1);
      const int64_t ch = rank > 0 ? t.shape()[axis] : 1;
      int64_t inner = 1;
      for (int d = axis + 1; d < rank; ++d) inner *= t.shape()[d];
      if (s.channel_sum.empty()) s.channel_sum.assign(ch, 0.0);
      for (int64_t i = 0; i < used; ++i) {
        s.lo = std::min(s.lo, x[i]);
        s.hi = std::max(s.hi, x[i]);
        s.channel_sum[(i / inner) % ch] += x[i];
      }
      s.per_channel += used / ch;
    };
    LOWBIT_RETURN_IF_ERROR(ForCalibBatches(fp32_plan.get(), o, n, "calibrate (ranges)", pass1));
    if (o.act_calib != ActCalib::kMinMax) {
      for (auto& [name, s] : stats) {
        s.h_lo = std::min(s.lo, 0.0f);
        s.h_hi = std::max(s.hi, 0.0f);
        if (s.h_hi <= s.h_lo) s.h_hi = s.h_lo + 1.0f;
        s.hist.assign(kBins, 0.0);
      }
      auto pass2 = [&](const std::string& name, const Tensor&, const float* x, int64_t used) {
        auto it = stats.find(name);
        if (it == stats.end()) return;
        InputStats& s = it->second;
        const float inv = kBins / (s.h_hi - s.h_lo);
        for (int64_t i = 0; i < used; ++i) {
          s.hist[std::clamp(static_cast<int>((x[i] - s.h_lo) * inv), 0, kBins - 1)] += 1;
        }
      };
      LOWBIT_RETURN_IF_ERROR(ForCalibBatches(fp32_plan.get(), o, n, "calibrate (histograms)", pass2));
    }
  }

  // Weights: fit, pack, bias-correct; replace the nodes.
  Graph out = graph;
  {
    Progress progress("quantize weights", static_cast<int64_t>(cands.size()), "layers", o.quiet);
    for (size_t ci = 0; ci < cands.size(); ++ci) {
      const Candidate& c = cands[ci];
      const LayerSettings& s = settings[ci];
      LayerReport rep;
      rep.name = c.name;
      rep.op = c.op;
      rep.settings = s;
      rep.params = static_cast<int64_t>(c.w.size());
      rep.output_sqnr_db = std::numeric_limits<double>::quiet_NaN();
      const std::string where = "layer '" + c.name + "'";
      if (s.weights == "float") {
        rep.bytes = rep.params * 4;
        rep.weight_sqnr_db = std::numeric_limits<double>::infinity();
        result.layers.push_back(rep);
        progress.Advance();
        continue;
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
        result.resolved[ci].second = rep.settings;  // --write-plan records the assignment
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
      std::vector<float> wd(c.w.size());
      parts.Dequantize(wd.data());
      rep.weight_sqnr_db = MeasureError(c.w.data(), wd.data(), static_cast<int64_t>(wd.size())).sqnr_db;
      rep.quantized = true;
      rep.bytes = parts.bytes();
      std::vector<float> bias = c.bias;
      auto st = stats.find(c.x);
      const bool calibrated = st != stats.end() && st->second.per_channel > 0;
      const bool symmetric = s.acts == "int8";
      if (calibrated && o.bias_correction) {
        // Mean output shift of the weight error: (W - Wq) * E[x].
        const InputStats& is = st->second;
        const int64_t rows = c.wshape[0], cols = static_cast<int64_t>(c.w.size()) / rows;
        const int64_t ch = static_cast<int64_t>(is.channel_sum.size());
        std::vector<double> mean(ch);
        for (int64_t i = 0; i < ch; ++i) mean[i] = is.channel_sum[i] / static_cast<double>(is.per_channel);
        if (bias.empty()) bias.assign(rows, 0.0f);
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
          bias[r] += static_cast<float>(shift);
        }
      }
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
      if (calibrated && !weight_only) {
        const auto [lo, hi] = ChooseRange(st->second, o, symmetric);
        q.attrs["act_range"] = std::vector<float>{lo, hi};
        rep.static_acts = true;
        rep.act_lo = lo;
        rep.act_hi = hi;
      }
      const std::string base = old.name;
      q.inputs = {c.x, base + ".codes", base + ".scales"};
      out.constants[base + ".codes"] = codes;
      out.constants[base + ".scales"] = scales;
      if (!bias.empty()) {
        out.constants[base + ".bias"] = Tensor::FromFloats({static_cast<int64_t>(bias.size())}, bias);
        q.inputs.push_back(base + ".bias");
      }
      if (!old.input(3).empty()) {  // a fused residual (Conv input 3, PackedConv input 4)
        q.inputs.resize(4);
        q.inputs.push_back(old.input(3));
        auto rs = stats.find(old.input(3));
        if (!weight_only && rs != stats.end() && rs->second.per_channel > 0) {
          const auto [lo, hi] = ChooseRange(rs->second, o, false);
          q.attrs["residual_range"] = std::vector<float>{lo, hi};
        }
      }
      out.nodes[c.node] = std::move(q);
      result.layers.push_back(rep);
      progress.Advance();
    }
  }
  // Drop constants no node reads any more (the fp32 weights).
  std::set<std::string> used;
  for (const Node& n : out.nodes) used.insert(n.inputs.begin(), n.inputs.end());
  for (auto it = out.constants.begin(); it != out.constants.end();) {
    it = used.count(it->first) || out.IsOutput(it->first) ? std::next(it) : out.constants.erase(it);
  }

  // Per-layer output SQNR on the first few calibration samples (a small batch,
  // so the copies of every layer output stay small).
  if (fp32_plan != nullptr) {
    fp32_plan.reset();
    QuantizeOptions so = o;
    so.calib_batch = std::min<int64_t>(8, o.calib->size());
    PlanOptions po;
    po.batch = so.calib_batch;
    po.threads = o.threads;
    po.byte_edges = false;  // every layer output observed as fp32
    std::set<std::string> outputs;
    for (const Candidate& c : cands) outputs.insert(graph.nodes[c.node].outputs[0]);
    std::map<std::string, std::vector<float>> ref, got;
    for (int pass = 0; pass < 2; ++pass) {
      std::map<std::string, std::vector<float>>& dst = pass == 0 ? ref : got;
      Result<std::unique_ptr<Plan>> made = Plan::Create(pass == 0 ? graph : out, po);
      if (!made.ok()) {
        return Status(made.status().code(),
                      std::string(pass == 0 ? "" : "quantized model: ") + made.status().message());
      }
      LOWBIT_RETURN_IF_ERROR(ForCalibBatches(made->get(), so, so.calib_batch,
                                             pass == 0 ? "layer SQNR (fp32)" : "layer SQNR (quantized)",
                                             [&](const std::string& name, const Tensor&,
                                                 const float* x, int64_t used) {
                                               if (outputs.count(name)) dst[name].assign(x, x + used);
                                             }));
    }
    for (size_t ci = 0; ci < cands.size(); ++ci) {
      const std::string& y = graph.nodes[cands[ci].node].outputs[0];
      const double db = Sqnr(ref[y].data(), got[y].data(), static_cast<int64_t>(ref[y].size()));
      result.layers[ci].output_sqnr_db = db;
      Node& node = out.nodes[cands[ci].node];
      if (IsPackedNode(node)) node.attrs["sqnr_db"] = static_cast<float>(std::min(db, 999.0));
    }
  }
  result.graph = std::move(out);
  return result;
}

}  // namespace lowbit
