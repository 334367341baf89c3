#include "quant/calibrate.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>

#include <nlohmann/json.hpp>

#include "base/npy.h"
#include "base/progress.h"
#include "ir/passes.h"
#include "kernels/qlinear.h"
#include "quant/layers.h"
#include "runtime/plan.h"

namespace lowbit {
namespace {

constexpr int kBins = TensorStats::kBins;
constexpr int kStatsVersion = 1;

// FNV-1a, 64 bits.
class Hasher {
 public:
  void Bytes(const void* p, size_t n) {
    const auto* b = static_cast<const unsigned char*>(p);
    for (size_t i = 0; i < n; ++i) h_ = (h_ ^ b[i]) * 1099511628211ull;
  }
  void Str(const std::string& s) {
    Int(static_cast<int64_t>(s.size()));
    Bytes(s.data(), s.size());
  }
  void Int(int64_t v) { Bytes(&v, sizeof v); }
  void Tensor(const lowbit::Tensor& t) {
    Int(static_cast<int64_t>(t.dtype()));
    for (int64_t d : t.shape()) Int(d);
    Bytes(t.raw(), t.bytes());
  }
  std::string Hex() const {
    char b[20];
    std::snprintf(b, sizeof b, "%016llx", static_cast<unsigned long long>(h_));
    return b;
  }

 private:
  uint64_t h_ = 14695981039346656037ull;
};

// Quantization error of a histogram under an 8-bit quantizer over [lo, hi].
double RangeError(const TensorStats& s, float lo, float hi, bool symmetric) {
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
float Quantile(const TensorStats& s, double pct, bool absolute) {
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

}  // namespace

const TensorStats* CalibrationStats::Find(const std::string& name) const {
  auto it = tensors.find(name);
  return it == tensors.end() ? nullptr : &it->second;
}

std::string ModelFingerprint(const Graph& g) {
  Hasher h;
  for (const ValueInfo& v : g.inputs) {
    h.Str(v.name);
    for (int64_t d : v.shape) h.Int(d);
  }
  for (const Node& n : g.nodes) {
    h.Str(n.op_type);
    h.Str(n.domain);
    h.Str(n.name);
    for (const std::string& s : n.inputs) h.Str(s);
    for (const std::string& s : n.outputs) h.Str(s);
    for (const auto& [key, value] : n.attrs) {
      h.Str(key);
      h.Int(static_cast<int64_t>(value.index()));
      std::visit(
          [&](const auto& v) {
            using T = std::decay_t<decltype(v)>;
            if constexpr (std::is_same_v<T, int64_t> || std::is_same_v<T, float>) {
              h.Bytes(&v, sizeof v);
            } else if constexpr (std::is_same_v<T, std::string>) {
              h.Str(v);
            } else if constexpr (std::is_same_v<T, lowbit::Tensor>) {
              h.Tensor(v);
            } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
              for (const std::string& s : v) h.Str(s);
            } else {
              h.Int(static_cast<int64_t>(v.size()));
              h.Bytes(v.data(), v.size() * sizeof(v[0]));
            }
          },
          value);
    }
  }
  for (const auto& [name, t] : g.constants) {
    h.Str(name);
    h.Tensor(t);
  }
  return h.Hex();
}

std::string DataKey(const Dataset& data, const Preprocess& p) {
  std::string key = data.spec() + " scale=";
  char b[32];
  std::snprintf(b, sizeof b, "%.9g", p.scale < 0 ? data.default_scale() : p.scale);
  key += b;
  for (const auto* v : {&p.mean, &p.std}) {
    key += v == &p.mean ? " mean=" : " std=";
    for (size_t i = 0; i < v->size(); ++i) {
      std::snprintf(b, sizeof b, "%s%.9g", i ? "," : "", (*v)[i]);
      key += b;
    }
  }
  return key;
}

std::map<std::string, TensorStats> CalibrationTargets(const Graph& graph) {
  std::map<std::string, TensorStats> out;
  const std::vector<QuantLayer> layers = QuantLayers(graph);
  for (const QuantLayer& l : layers) out[l.x].channel_axis = l.channel_axis;
  // Fused residuals too (residual_range): a residual nothing else reads then
  // travels as bytes (runtime/byte_edges.h).
  for (const QuantLayer& l : layers) {
    const std::string& r = graph.nodes[l.node].input(3);
    if (l.op == "Conv" && !r.empty()) out.try_emplace(r);
  }
  // Each layer's output and, for a fused residual, its value before the Add:
  // the QDQ export quantizes both (output_range, pre_residual_range).
  for (const QuantLayer& l : layers) {
    const Node& n = graph.nodes[l.node];
    if (n.outputs.empty()) continue;
    out.try_emplace(n.outputs[0]).first->second.channel_axis = l.channel_axis;
    if (l.op == "Conv" && !n.input(3).empty()) {
      out.try_emplace(PreResidualName(n.outputs[0])).first->second.channel_axis = l.channel_axis;
    }
  }
  return out;
}

Result<int64_t> PlanBatchFor(Plan* plan, const Dataset& data, const std::string& what) {
  const Tensor& input = plan->input(0);
  const int64_t batch = input.rank() > 0 ? input.shape()[0] : 1;
  const Shape per_sample(input.shape().begin() + (input.rank() > 0 ? 1 : 0), input.shape().end());
  if (input.dtype() != DType::kFloat32 || batch < 1 ||
      !SampleFitsInput(data.sample_shape(), per_sample)) {
    return InvalidArgument(
        what, " '", data.spec(), "' has samples of ", data.sample_size(), " values ",
        ShapeToString(data.sample_shape()), ", but model input '", plan->input_info(0).name,
        "' is ", DTypeName(input.dtype()), " ", ShapeToString(input.shape()));
  }
  return batch;
}

Status ForEachBatch(Plan* plan, Dataset& ds, const Preprocess& preprocess, int64_t limit,
                    const std::string& label, bool quiet, const SampleObserver& observe) {
  Tensor& input = plan->input(0);
  int64_t batch = 0;
  LOWBIT_ASSIGN_OR_RETURN(batch, PlanBatchFor(plan, ds, "--calib"));
  const int64_t per_sample = input.numel() / batch;
  const int64_t channels = input.rank() == 4 ? input.shape()[1] : 1;
  const int64_t n = std::min(limit, ds.size());
  Progress progress(label, (n + batch - 1) / batch, "batches", quiet);
  for (int64_t i = 0; i < n; i += batch) {
    const int64_t m = std::min(batch, n - i);
    float* x = input.data<float>();
    LOWBIT_RETURN_IF_ERROR(ds.Read(i, m, x, nullptr));
    LOWBIT_RETURN_IF_ERROR(ApplyPreprocess(preprocess, ds.default_scale(), m, per_sample, channels, x));
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

Result<CalibrationStats> Calibrate(const Graph& graph, Dataset& data, const CalibrateOptions& o) {
  if (o.batch < 1) return InvalidArgument("--calib-batch must be >= 1, got ", o.batch);
  if (graph.inputs.size() != 1) {
    return InvalidArgument(graph.source, ": calibration needs a model with one input, it has ",
                           graph.inputs.size());
  }
  CalibrationStats out;
  out.model_key = ModelFingerprint(graph);
  out.data_key = DataKey(data, o.preprocess);
  out.samples = data.size();
  out.tensors = CalibrationTargets(graph);
  PlanOptions po;
  po.batch = o.batch;
  po.threads = o.threads;
  std::unique_ptr<Plan> plan;
  // Residual-fused convs run unfused so their pre-residual values are seen.
  const Graph unfused = UnfuseResiduals(graph);
  LOWBIT_ASSIGN_OR_RETURN(plan, Plan::Create(unfused, po));
  LOWBIT_RETURN_IF_ERROR(PlanBatchFor(plan.get(), data, "--calib").status());
  auto& stats = out.tensors;
  // Layers whose input Gram matrix is gathered, by input name.
  const std::vector<QuantLayer> layers = QuantLayers(graph);
  std::multimap<std::string, const QuantLayer*> gram_of;
  for (const QuantLayer& l : layers) {
    if (GramApplies(graph, l, o.gram_max_cols)) {
      gram_of.emplace(l.x, &l);
      out.grams[l.name];
    }
  }
  Status gram_status;
  // Statistics are taken from each layer input as the plan produces it, so
  // calibration holds no more activations than inference does.
  auto pass1 = [&](const std::string& name, const Tensor& t, const float* x, int64_t used) {
    for (auto [g, end] = gram_of.equal_range(name); g != end && gram_status.ok(); ++g) {
      gram_status = AccumulateGram(graph, *g->second, t.shape(), x, used, &out.grams[g->second->name]);
    }
    auto it = stats.find(name);
    if (it == stats.end()) return;
    TensorStats& s = it->second;
    const int rank = t.rank();
    const int axis = s.channel_axis < 0 ? rank - 1 : std::min(s.channel_axis, rank - 1);
    const int64_t ch = rank > 0 ? t.shape()[axis] : 1;
    int64_t inner = 1;
    for (int d = axis + 1; d < rank; ++d) inner *= t.shape()[d];
    if (s.channel_sum.empty()) {
      s.channel_sum.assign(ch, 0.0);
      s.channel_sq.assign(ch, 0.0);
    }
    for (int64_t i = 0; i < used; ++i) {
      s.lo = std::min(s.lo, x[i]);
      s.hi = std::max(s.hi, x[i]);
      const int64_t c = (i / inner) % ch;
      s.channel_sum[c] += x[i];
      s.channel_sq[c] += static_cast<double>(x[i]) * x[i];
    }
    s.count += used;
    s.per_channel += used / ch;
  };
  LOWBIT_RETURN_IF_ERROR(ForEachBatch(plan.get(), data, o.preprocess, data.size(),
                                      "calibrate (ranges)", o.quiet, pass1));
  LOWBIT_RETURN_IF_ERROR(gram_status);
  for (auto& [name, g] : out.grams) {
    if (g.rows > 0) LOWBIT_RETURN_IF_ERROR(PrepareGptq(name, &g));
  }
  if (o.histograms) {
    for (auto& [name, s] : stats) {
      s.h_lo = std::min(s.lo, 0.0f);
      s.h_hi = std::max(s.hi, 0.0f);
      if (s.h_hi <= s.h_lo) s.h_hi = s.h_lo + 1.0f;
      s.hist.assign(kBins, 0.0);
    }
    auto pass2 = [&](const std::string& name, const Tensor&, const float* x, int64_t used) {
      auto it = stats.find(name);
      if (it == stats.end()) return;
      TensorStats& s = it->second;
      const float inv = kBins / (s.h_hi - s.h_lo);
      for (int64_t i = 0; i < used; ++i) {
        s.hist[std::clamp(static_cast<int>((x[i] - s.h_lo) * inv), 0, kBins - 1)] += 1;
      }
    };
    LOWBIT_RETURN_IF_ERROR(ForEachBatch(plan.get(), data, o.preprocess, data.size(),
                                        "calibrate (histograms)", o.quiet, pass2));
  }
  return out;
}

std::pair<float, float> ChooseRange(const TensorStats& s, const RangeOptions& o, bool symmetric) {
  const float lo = std::min(s.lo, 0.0f), hi = std::max(s.hi, 0.0f);
  if (o.method == ActCalib::kMinMax || s.hist.empty()) return {lo, hi};
  if (o.method == ActCalib::kPercentile) {
    if (symmetric) {
      const float a = Quantile(s, o.percentile, true);
      return {-a, a};
    }
    return {std::min(0.0f, Quantile(s, 100.0 - o.percentile, false)),
            std::max(0.0f, Quantile(s, o.percentile, false))};
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

std::string CalibrationStats::ToJson() const {
  nlohmann::ordered_json j;
  j["lowbit_calibration"] = kStatsVersion;
  j["model_key"] = model_key;
  j["data_key"] = data_key;
  j["samples"] = samples;
  nlohmann::ordered_json ts = nlohmann::ordered_json::object();
  for (const auto& [name, s] : tensors) {
    nlohmann::ordered_json e;
    e["channel_axis"] = s.channel_axis;
    e["count"] = s.count;
    if (s.count > 0) e["range"] = {s.lo, s.hi};
    e["per_channel"] = s.per_channel;
    e["channel_sum"] = s.channel_sum;
    e["channel_sq"] = s.channel_sq;
    if (!s.hist.empty()) {
      e["hist_range"] = {s.h_lo, s.h_hi};
      e["hist"] = s.hist;
    }
    ts[name] = e;
  }
  j["tensors"] = ts;
  if (!grams.empty()) {
    nlohmann::ordered_json gs = nlohmann::ordered_json::object();
    for (const auto& [name, g] : grams) {
      std::vector<double> upper;
      upper.reserve(g.cols * (g.cols + 1) / 2);
      for (int64_t i = 0; i < g.cols; ++i) upper.insert(upper.end(), g.h.begin() + i * g.cols + i, g.h.begin() + (i + 1) * g.cols);
      gs[name] = {{"cols", g.cols}, {"rows", g.rows}, {"upper", upper}};
    }
    j["grams"] = gs;
  }
  return j.dump() + "\n";
}

Result<CalibrationStats> CalibrationStats::FromJson(const std::string& text, const std::string& source) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    return DataLoss(source, ": not a calibration file (", e.what(), ")");
  }
  CalibrationStats out;
  try {
    if (!j.is_object() || j.value("lowbit_calibration", 0) != kStatsVersion) {
      return DataLoss(source, ": not a lowbit calibration file of version ", kStatsVersion);
    }
    out.model_key = j.at("model_key").get<std::string>();
    out.data_key = j.at("data_key").get<std::string>();
    out.samples = j.at("samples").get<int64_t>();
    for (const auto& [name, e] : j.at("tensors").items()) {
      TensorStats s;
      s.channel_axis = e.at("channel_axis").get<int>();
      s.count = e.at("count").get<int64_t>();
      if (s.count > 0) {
        s.lo = e.at("range").at(0).get<float>();
        s.hi = e.at("range").at(1).get<float>();
      }
      s.per_channel = e.at("per_channel").get<int64_t>();
      s.channel_sum = e.at("channel_sum").get<std::vector<double>>();
      s.channel_sq = e.at("channel_sq").get<std::vector<double>>();
      if (s.channel_sum.size() != s.channel_sq.size() || s.count < 0 || s.per_channel < 0 ||
          (s.count > 0 && s.channel_sum.empty())) {
        return DataLoss(source, ": tensor '", name, "' has inconsistent channel statistics");
      }
      if (e.contains("hist")) {
        s.h_lo = e.at("hist_range").at(0).get<float>();
        s.h_hi = e.at("hist_range").at(1).get<float>();
        s.hist = e.at("hist").get<std::vector<double>>();
        if (static_cast<int>(s.hist.size()) != kBins || !(s.h_hi > s.h_lo)) {
          return DataLoss(source, ": tensor '", name, "' has a histogram of ", s.hist.size(),
                          " bins over [", s.h_lo, ", ", s.h_hi, "], expected ", kBins);
        }
      }
      out.tensors[name] = std::move(s);
    }
    if (j.contains("grams")) {
      for (const auto& [name, e] : j.at("grams").items()) {
        InputGram g;
        g.cols = e.at("cols").get<int64_t>();
        g.rows = e.at("rows").get<int64_t>();
        const std::vector<double> upper = e.at("upper").get<std::vector<double>>();
        if (g.cols < 1 || g.cols > 65536 || g.rows < 0 ||
            static_cast<int64_t>(upper.size()) != g.cols * (g.cols + 1) / 2) {
          return DataLoss(source, ": Gram matrix of layer '", name, "' has ", upper.size(),
                          " entries for ", g.cols, " columns");
        }
        g.h.assign(g.cols * g.cols, 0.0);
        size_t at = 0;
        for (int64_t i = 0; i < g.cols; ++i) {
          for (int64_t c = i; c < g.cols; ++c) g.h[i * g.cols + c] = upper[at++];
        }
        if (g.rows > 0) {
          Status st = PrepareGptq(name, &g);
          if (!st.ok()) return DataLoss(source, ": ", st.message());
        }
        out.grams[name] = std::move(g);
      }
    }
  } catch (const nlohmann::json::exception& e) {
    return DataLoss(source, ": malformed calibration file (", e.what(), ")");
  }
  return out;
}

Status CalibrationStats::Save(const std::string& path) const {
  return WriteFileAtomic(path, ToJson());
}

Result<CalibrationStats> CalibrationStats::Load(const std::string& path, const std::string& model_key,
                                                const std::string& data_key) {
  std::string text;
  LOWBIT_ASSIGN_OR_RETURN(text, ReadFile(path));
  CalibrationStats s;
  LOWBIT_ASSIGN_OR_RETURN(s, FromJson(text, path));
  if (!model_key.empty() && s.model_key != model_key) {
    return InvalidArgument(path, ": calibration of another model (key ", s.model_key,
                              ", this model's is ", model_key, ")");
  }
  if (!data_key.empty() && s.data_key != data_key) {
    return InvalidArgument(path, ": calibration of other data ('", s.data_key, "', not '",
                              data_key, "')");
  }
  return s;
}

}  // namespace lowbit
