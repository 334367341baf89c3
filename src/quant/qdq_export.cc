#include "quant/qdq_export.h"

#include <cmath>
#include <map>
#include <optional>
#include <set>

#include "ir/passes.h"
#include "kernels/qlinear.h"
#include "model/packed_node.h"

namespace lowbit {
namespace {

const std::set<std::string>& PackedAttrs() {
  static const std::set<std::string> k = {
      "format",  "granularity", "weight_shape", "levels",         "zero_points",       "act",
      "act_range", "sqnr_db",   kFilterParts,   "residual_range", "pre_residual_range", "output_range"};
  return k;
}

// Operators that carry 8-bit values exactly: the output's quantization is the
// input's (ONNX Runtime runs them on bytes between DequantizeLinear and
// QuantizeLinear of equal parameters).
bool PreservesValues(const std::string& op) {
  static const std::set<std::string> k = {"MaxPool", "Flatten",   "Reshape", "Transpose",
                                          "Squeeze", "Unsqueeze", "Identity", "Dropout"};
  return k.count(op) > 0;
}
// Operators ONNX Runtime runs in 8 bits given Q/DQ around them, whose output
// stays within the input's range (or takes its reader's).
bool CarriesBytes(const std::string& op) {
  return PreservesValues(op) || op == "AveragePool" || op == "GlobalAveragePool" || op == "Concat" ||
         op == "Add";
}

struct Range {
  float lo = 0, hi = 0;
  bool symmetric = false;
};

std::optional<Range> RangeAttr(const Node& n, const char* key) {
  auto it = n.attrs.find(key);
  if (it == n.attrs.end()) return std::nullopt;
  const auto* v = std::get_if<std::vector<float>>(&it->second);
  if (v == nullptr || v->size() != 2 || !std::isfinite((*v)[0]) || !std::isfinite((*v)[1]) ||
      (*v)[0] > (*v)[1]) {
    return std::nullopt;
  }
  return Range{(*v)[0], (*v)[1], false};
}

// Exact int8 weights with zero point 0, per output channel: row r's weights
// are scale_r * (level - zero point); with one power of two 2^e per row
// making every (level - zero point) * 2^e an integer in [-128, 127], they are
// (scale_r / 2^e) * int8. False when some row has no such e (levels off the
// int8 grid, group granularity).
bool Int8Weights(const PackedParts& parts, std::vector<int8_t>* q, std::vector<float>* scales) {
  const int64_t rows = parts.rows(), cols = parts.numel() / std::max<int64_t>(rows, 1);
  q->assign(rows * cols, 0);
  scales->assign(rows, 0.0f);
  std::vector<uint32_t> codes(cols);
  for (size_t pi = 0; pi < parts.parts.size(); ++pi) {
    const PackedTensor& t = parts.parts[pi];
    const QuantParams& p = t.params();
    if (p.granularity.kind == Granularity::kGroup || p.levels.empty()) return false;
    for (int64_t local = 0; local < t.rows(); ++local) {
      const int64_t r = parts.channels[pi][local];
      const int64_t g = p.granularity.kind == Granularity::kChannel ? local : 0;
      const float zp = static_cast<float>(p.zero_point(g));
      int e = 0;
      for (; e <= 7; ++e) {
        bool fits = true;
        for (float l : p.levels) {
          const float v = std::ldexp(l - zp, e);
          fits = fits && v == std::nearbyint(v) && v >= -128 && v <= 127;
        }
        if (fits) break;
      }
      if (e > 7) return false;
      scales->at(r) = std::ldexp(p.scales[g], -e);
      t.UnpackRow(local, codes.data());
      for (int64_t c = 0; c < cols; ++c) {
        (*q)[r * cols + c] = static_cast<int8_t>(std::ldexp(p.levels[codes[c]] - zp, e));
      }
    }
  }
  return true;
}

class Exporter {
 public:
  Exporter(const Graph& g, QdqReport* report, const QdqOptions& options)
      : g_(g), report_(report), options_(options) {
    out_ = g;
    out_.nodes.clear();
    for (size_t i = 0; i < g.nodes.size(); ++i) {
      for (const std::string& in : g.nodes[i].inputs) readers_[in].push_back(static_cast<int>(i));
    }
    for (const ValueInfo& o : g.outputs) graph_outputs_.insert(o.name);
  }

  Result<Graph> Run() {
    for (const Node& n : g_.nodes) {
      if (IsPackedNode(n)) {
        LOWBIT_RETURN_IF_ERROR(Packed(n));
      } else {
        Other(n);
      }
    }
    for (const std::string& c : dropped_) out_.constants.erase(c);
    LOWBIT_RETURN_IF_ERROR(VerifyGraph(&out_));
    return std::move(out_);
  }

 private:
  Node Make(const std::string& op, const std::string& name) const {
    Node m;
    m.name = name;
    m.op_type = op;
    m.opset = g_.opset;
    return m;
  }

  // The DequantizeLinear output for value t, adding Q/DQ (uint8, as the
  // packed kernels quantize) at the first request; later requests share it.
  std::string Qdq(const std::string& t, const Range& r) {
    auto it = dq_.find(t);
    if (it != dq_.end()) return it->second;
    const ActQuant a = StaticActParams(r.lo, r.hi, r.symmetric, false);
    const std::string base = t + "/q";
    out_.constants[base + "_scale"] = Tensor::FromFloats({}, {a.scale});
    Tensor zp(DType::kUint8, {});
    zp.data<uint8_t>()[0] = static_cast<uint8_t>(a.zero);
    out_.constants[base + "_zero_point"] = zp;
    Node q = Make("QuantizeLinear", base + "/QuantizeLinear");
    q.inputs = {t, base + "_scale", base + "_zero_point"};
    q.outputs = {base + "_quantized"};
    Node d = Make("DequantizeLinear", base + "/DequantizeLinear");
    d.inputs = {q.outputs[0], base + "_scale", base + "_zero_point"};
    d.outputs = {t + "/dq"};
    out_.nodes.push_back(q);
    out_.nodes.push_back(d);
    dq_[t] = d.outputs[0];
    ranges_[t] = r;
    return d.outputs[0];
  }

  // Constant integer values `q` with per-channel `scale` and `zero_point`
  // (axis `axis`) and a DequantizeLinear producing `name`.
  void Dequantized(const std::string& name, Tensor q, Tensor scale, Tensor zero_point, int64_t axis) {
    out_.constants[name + "_quantized"] = std::move(q);
    out_.constants[name + "_scale"] = std::move(scale);
    out_.constants[name + "_zero_point"] = std::move(zero_point);
    Node d = Make("DequantizeLinear", name + "/DequantizeLinear");
    d.inputs = {name + "_quantized", name + "_scale", name + "_zero_point"};
    d.outputs = {name};
    d.attrs["axis"] = axis;
    out_.nodes.push_back(d);
  }

  std::string Read(const std::string& t) const {
    auto it = dq_.find(t);
    return it == dq_.end() ? t : it->second;
  }

  // The range the readers of t quantize it with: a packed reader's act_range
  // (or residual_range), looking through value-preserving operators.
  std::optional<Range> ReaderRange(const std::string& t, int depth = 0) const {
    auto it = readers_.find(t);
    if (it == readers_.end() || depth > 8) return std::nullopt;
    for (int i : it->second) {
      const Node& n = g_.nodes[i];
      if (IsPackedNode(n)) {
        if (n.input(0) == t) {
          Result<ActSpec> a = ActSpecOf(n);
          if (a.ok() && a->is_static) return Range{a->lo, a->hi, a->symmetric};
        } else if (n.input(4) == t) {
          if (auto r = RangeAttr(n, "residual_range")) return r;
        }
      } else if (PreservesValues(n.op_type) && !n.inputs.empty() && n.inputs[0] == t &&
                 !n.outputs.empty()) {
        if (auto r = ReaderRange(n.outputs[0], depth + 1)) return r;
      }
    }
    return std::nullopt;
  }

  void Other(const Node& n) {
    Node m = n;
    bool quantized_input = false;
    for (std::string& in : m.inputs) {
      if (dq_.count(in)) quantized_input = true;
      in = Read(in);
    }
    out_.nodes.push_back(m);
    if (!quantized_input || !CarriesBytes(n.op_type) || n.outputs.size() != 1) return;
    const std::string& y = n.outputs[0];
    if (graph_outputs_.count(y)) return;
    std::optional<Range> r = ReaderRange(y);
    if (!r && (PreservesValues(n.op_type) || n.op_type == "AveragePool" ||
               n.op_type == "GlobalAveragePool")) {
      // Within the input's range: the same parameters.
      auto in = ranges_.find(n.inputs[0]);
      if (in != ranges_.end()) r = in->second;
    }
    if (r) Qdq(y, *r);
  }

  Status Packed(const Node& n) {
    const std::string where = n.Describe() + ": ";
    auto codes_t = g_.constants.find(n.input(1));
    auto scales_t = g_.constants.find(n.input(2));
    if (codes_t == g_.constants.end() || scales_t == g_.constants.end()) {
      return InvalidArgument(where, "codes and scales must be initializers");
    }
    PackedParts parts;
    LOWBIT_ASSIGN_OR_RETURN(parts, PackedPartsOf(n, codes_t->second, scales_t->second));
    dropped_.insert(n.input(1));
    dropped_.insert(n.input(2));
    ActSpec act;
    LOWBIT_ASSIGN_OR_RETURN(act, ActSpecOf(n));
    const bool conv = n.op_type == kPackedConv;
    const std::string base = n.name;
    const int64_t rows = parts.rows(), cols = parts.numel() / rows;

    // Activations: Q/DQ with the calibrated parameters (shared by every
    // reader of the value), DynamicQuantizeLinear when the model quantizes
    // dynamically, nothing for weight-only layers.
    std::string xd = Read(n.input(0));
    float x_scale = 0;
    if (act.is_static) {
      if (g_.opset < 10) return Unimplemented(where, "QDQ export needs opset >= 10, the model has ", g_.opset);
      const Range want{act.lo, act.hi, act.symmetric};
      xd = Qdq(n.input(0), want);
      const Range& used = ranges_.at(n.input(0));  // an earlier reader's, if any
      x_scale = StaticActParams(used.lo, used.hi, used.symmetric, false).scale;
    } else if (!act.weight_only) {
      if (g_.opset < 11) return Unimplemented(where, "dynamic QDQ export needs opset >= 11, the model has ", g_.opset);
      Node q = Make("DynamicQuantizeLinear", base + "/DynamicQuantizeLinear");
      q.inputs = {n.input(0)};
      q.outputs = {base + "/x_quantized", base + "/x_scale", base + "/x_zero_point"};
      Node d = Make("DequantizeLinear", base + "/DequantizeLinear");
      d.inputs = q.outputs;
      xd = base + "/x_dequantized";
      d.outputs = {xd};
      out_.nodes.push_back(q);
      out_.nodes.push_back(d);
    }

    // Weights: exact int8 per output channel (zero point 0) where the levels
    // sit on an int8 grid, else decoded fp32. Conv keeps [M, C/g, k...];
    // Gemm takes [N, K] with transB; MatMul [K, N].
    const bool gemm = !conv && TwoDimensional(n.input(0));
    const bool transposed = !conv && !gemm;
    const Shape wshape = transposed ? Shape{cols, rows} : parts.shape;
    auto at = [&](int64_t r, int64_t c) { return transposed ? c * rows + r : r * cols + c; };
    const std::string wname = base + "/weight";
    std::vector<int8_t> wq;
    std::vector<float> wscale;
    const bool int8 = !act.weight_only && g_.opset >= 13 && Int8Weights(parts, &wq, &wscale);
    if (int8) {
      Tensor q(DType::kInt8, wshape);
      for (int64_t r = 0; r < rows; ++r) {
        for (int64_t c = 0; c < cols; ++c) q.data<int8_t>()[at(r, c)] = wq[r * cols + c];
      }
      Dequantized(wname, q, Tensor::FromFloats({rows}, wscale), Tensor(DType::kInt8, {rows}), transposed ? 1 : 0);
      if (report_ != nullptr) ++report_->qdq_weights;
    } else {
      std::vector<float> decoded(rows * cols);
      parts.Dequantize(decoded.data());
      Tensor t(DType::kFloat32, wshape);
      for (int64_t r = 0; r < rows; ++r) {
        for (int64_t c = 0; c < cols; ++c) t.data<float>()[at(r, c)] = decoded[r * cols + c];
      }
      out_.constants[wname] = t;
      if (report_ != nullptr) {
        ++report_->float_weights;
        if (!act.weight_only) report_->float_layers.push_back(n.name);
      }
    }

    // Bias: int32 at scale x_scale * w_scale (what QLinearConv and QGemm
    // take) when both sides are quantized statically.
    std::string bname = n.input(3);
    if (options_.int32_bias && !bname.empty() && int8 && act.is_static && g_.IsConstant(bname)) {
      const Tensor& b = g_.constants.at(bname);
      if (b.dtype() == DType::kFloat32 && b.numel() == rows) {
        Tensor bq(DType::kInt32, {rows});
        std::vector<float> bs(rows);
        bool fits = true;
        for (int64_t r = 0; r < rows; ++r) {
          bs[r] = x_scale * wscale[r];
          const double v = bs[r] > 0 ? std::nearbyint(b.data<float>()[r] / bs[r]) : 0.0;
          fits = fits && std::fabs(v) < 2147483647.0;
          bq.data<int32_t>()[r] = fits ? static_cast<int32_t>(v) : 0;
        }
        if (fits) {
          const std::string q = base + "/bias";
          Dequantized(q, bq, Tensor::FromFloats({rows}, bs), Tensor(DType::kInt32, {rows}), 0);
          if (readers_[bname].size() == 1) dropped_.insert(bname);
          bname = q;
        }
      }
    }

    // The layer, then its fused residual Add and activation as ONNX nodes.
    const std::string y = n.outputs[0];
    const std::string activation = n.GetString("lowbit.activation", "");
    const bool residual = conv && !n.input(4).empty();
    const std::string preact = activation.empty() ? y : base + "/preact";
    std::string layer_out = residual ? PreResidualName(y) : preact;
    Node layer = Make(conv ? "Conv" : gemm ? "Gemm" : "MatMul", conv ? base : base + (gemm ? "/Gemm" : "/MatMul"));
    if (conv) {
      for (const auto& [k, v] : n.attrs) {
        if (!PackedAttrs().count(k) && k.rfind("lowbit.", 0) != 0) layer.attrs[k] = v;
      }
    }
    layer.inputs = {xd, wname};
    if (gemm) layer.attrs["transB"] = int64_t{1};
    const bool matmul_bias = transposed && !bname.empty();
    if (!bname.empty() && !matmul_bias) layer.inputs.push_back(bname);
    layer.outputs = {matmul_bias ? base + "/matmul_out" : layer_out};
    out_.nodes.push_back(layer);
    if (matmul_bias) {
      Node add = Make("Add", base + "/Add");
      add.inputs = {layer.outputs[0], bname};
      add.outputs = {layer_out};
      out_.nodes.push_back(add);
    }
    if (residual) {
      std::string pre = layer_out, r = Read(n.input(4));
      if (act.is_static) {
        std::optional<Range> rr = RangeAttr(n, "residual_range");
        if (!rr) rr = ReaderRange(n.input(4));
        if (rr) r = Qdq(n.input(4), *rr);
        std::optional<Range> pr = RangeAttr(n, "pre_residual_range");
        if (!pr) pr = EstimatePreResidual(n, rr);
        if (pr) pre = Qdq(layer_out, *pr);
        else if (report_ != nullptr) report_->unquantized_values.push_back(layer_out);
      }
      Node add = Make("Add", base + "/residual");
      add.inputs = {pre, r};
      add.outputs = {preact};
      out_.nodes.push_back(add);
    }
    if (!activation.empty()) {
      Node a = Make(activation == "Relu" ? "Relu" : "Clip", base + "/" + activation);
      a.inputs = {preact};
      a.outputs = {y};
      if (activation != "Relu") {
        const float lo = n.GetFloat("lowbit.clip_min", 0), hi = n.GetFloat("lowbit.clip_max", 0);
        if (g_.opset >= 11) {
          out_.constants[base + "/clip_min"] = Tensor::FromFloats({}, {lo});
          out_.constants[base + "/clip_max"] = Tensor::FromFloats({}, {hi});
          a.inputs.push_back(base + "/clip_min");
          a.inputs.push_back(base + "/clip_max");
        } else {
          a.attrs["min"] = lo;
          a.attrs["max"] = hi;
        }
      }
      out_.nodes.push_back(a);
    }
    // The output quantized once, right after the layer (ONNX Runtime fuses
    // Conv [-> Relu/Clip] -> QuantizeLinear into QLinearConv), with its
    // readers' parameters, else the calibrated output_range. A graph output
    // stays fp32 (QGemm then writes fp32).
    if (act.is_static && !graph_outputs_.count(y)) {
      std::optional<Range> r = ReaderRange(y);
      if (!r) r = RangeAttr(n, "output_range");
      if (r) {
        Qdq(y, *r);
      } else if (report_ != nullptr) {
        report_->unquantized_values.push_back(y);
      }
    }
    return OkStatus();
  }

  // A range for a residual conv's value before its Add when the model has no
  // pre_residual_range (quantized before it was calibrated): the output's
  // range widened by the residual's, symmetric.
  std::optional<Range> EstimatePreResidual(const Node& n, const std::optional<Range>& residual) const {
    std::optional<Range> out = ReaderRange(n.outputs[0]);
    if (!out) out = RangeAttr(n, "output_range");
    if (!out || !residual) return std::nullopt;
    const float b = std::max(std::fabs(out->lo), std::fabs(out->hi)) +
                    std::max(std::fabs(residual->lo), std::fabs(residual->hi));
    return Range{-b, b, false};
  }

  // Whether value t is known to be 2-D (so a Gemm can take it): a Flatten's
  // or Gemm's output, or a 2-D graph input.
  bool TwoDimensional(const std::string& t) const {
    for (const ValueInfo& v : g_.inputs) {
      if (v.name == t) return v.shape.size() == 2;
    }
    const int p = g_.Producer(t);
    if (p < 0) return false;
    const Node& n = g_.nodes[p];
    if (n.op_type == "Flatten" || n.op_type == "Gemm") return true;
    if (n.op_type == kPackedGemm) return TwoDimensional(n.input(0));
    if (n.op_type == "Reshape") return StaticLength(n.input(1)) == 2;
    return false;
  }

  // The element count of a 1-D shape value when the graph fixes it (a
  // constant, or a Concat of constants and unsqueezed scalars, as exporters
  // write Flatten: Concat(Unsqueeze(Gather(Shape(x), 0)), [-1])); else -1.
  int64_t StaticLength(const std::string& t, int depth = 0) const {
    if (g_.IsConstant(t)) return g_.constants.at(t).numel();
    const int p = g_.Producer(t);
    if (p < 0 || depth > 8) return -1;
    const Node& n = g_.nodes[p];
    if (n.op_type == "Concat") {
      int64_t sum = 0;
      for (const std::string& in : n.inputs) {
        const int64_t l = StaticLength(in, depth + 1);
        if (l < 0) return -1;
        sum += l;
      }
      return sum;
    }
    if (n.op_type == "Unsqueeze") {
      const int q = g_.Producer(n.input(0));
      const bool scalar = q >= 0 && g_.nodes[q].op_type == "Gather" && g_.IsConstant(g_.nodes[q].input(1)) &&
                          g_.constants.at(g_.nodes[q].input(1)).rank() == 0;
      return scalar ? 1 : -1;
    }
    return -1;
  }

  const Graph& g_;
  QdqReport* report_;
  QdqOptions options_;
  Graph out_;
  std::map<std::string, std::vector<int>> readers_;
  std::set<std::string> graph_outputs_, dropped_;
  std::map<std::string, std::string> dq_;  // value -> its DequantizeLinear output
  std::map<std::string, Range> ranges_;    // value -> the range its Q/DQ quantizes with
};

}  // namespace

Result<Graph> ToQdqGraph(const Graph& g, QdqReport* report, const QdqOptions& options) {
  return Exporter(g, report, options).Run();
}

}  // namespace lowbit
