#include "quant/qdq_export.h"

#include <cmath>
#include <set>

#include "kernels/qlinear.h"
#include "model/packed_node.h"

namespace lowbit {
namespace {

const std::set<std::string>& PackedAttrs() {
  static const std::set<std::string> k = {"format",      "granularity",   "weight_shape", "levels",
                                          "zero_points", "act",           "act_range",    "sqnr_db",
                                          kFilterParts,  "residual_range"};
  return k;
}

// Integer weight values (levels on an integer grid) for an int8/uint8
// DequantizeLinear, or false when the format is not uniform.
bool UniformIntegers(const PackedTensor& w, DType* dtype) {
  const QuantParams& p = w.params();
  if (p.spec.family != Family::kInt || p.granularity.kind == Granularity::kGroup) return false;
  const float lo = p.levels.front(), hi = p.levels.back();
  if (lo >= -128 && hi <= 127) {
    *dtype = DType::kInt8;
  } else if (lo >= 0 && hi <= 255) {
    *dtype = DType::kUint8;
  } else {
    return false;
  }
  return true;
}

}  // namespace

Result<Graph> ToQdqGraph(const Graph& g, QdqReport* report) {
  Graph out = g;
  out.nodes.clear();
  std::set<std::string> dropped;
  for (const Node& n : g.nodes) {
    if (!IsPackedNode(n)) {
      out.nodes.push_back(n);
      continue;
    }
    const std::string where = n.Describe() + ": ";
    PackedParts parts;
    auto codes_t = g.constants.find(n.input(1));
    auto scales_t = g.constants.find(n.input(2));
    if (codes_t == g.constants.end() || scales_t == g.constants.end()) {
      return InvalidArgument(g.source, ": ", n.Describe(), ": its codes and scales (inputs 1 and 2, '",
                             n.input(1), "', '", n.input(2), "') must be initializers");
    }
    LOWBIT_ASSIGN_OR_RETURN(parts, PackedPartsOf(n, codes_t->second, scales_t->second));
    // Filter-wise formats export as one tensor in the widest format when
    // that is exact (int formats of one kind), else as decoded fp32.
    const std::optional<PackedTensor> widened = parts.Widened();
    dropped.insert(n.input(1));
    dropped.insert(n.input(2));
    ActSpec act;
    LOWBIT_ASSIGN_OR_RETURN(act, ActSpecOf(n));
    const bool conv = n.op_type == kPackedConv;
    const std::string base = n.name;
    auto make = [&](const std::string& op, const std::string& name) {
      Node m;
      m.name = name;
      m.op_type = op;
      m.opset = g.opset;
      return m;
    };
    // Activations: a QuantizeLinear/DequantizeLinear pair with the calibrated
    // parameters, DynamicQuantizeLinear when the model quantizes dynamically,
    // nothing for weight-only layers.
    const std::string xq = base + "/x_quantized";
    const std::string xd = act.weight_only ? n.input(0) : base + "/x_dequantized";
    if (act.weight_only) {
      // Weight-only: the activations stay fp32.
    } else if (act.is_static) {
      if (g.opset < 10) return Unimplemented(where, "QDQ export needs opset >= 10, the model has ", g.opset);
      const ActQuant a = StaticActParams(act.lo, act.hi, act.symmetric, false);
      out.constants[base + "/x_scale"] = Tensor::FromFloats({}, {a.scale});
      Tensor zp(DType::kUint8, {});
      zp.data<uint8_t>()[0] = static_cast<uint8_t>(a.zero);
      out.constants[base + "/x_zero_point"] = zp;
      Node q = make("QuantizeLinear", base + "/QuantizeLinear");
      q.inputs = {n.input(0), base + "/x_scale", base + "/x_zero_point"};
      q.outputs = {xq};
      Node d = make("DequantizeLinear", base + "/DequantizeLinear");
      d.inputs = {xq, base + "/x_scale", base + "/x_zero_point"};
      d.outputs = {xd};
      out.nodes.push_back(q);
      out.nodes.push_back(d);
    } else {
      if (g.opset < 11) return Unimplemented(where, "dynamic QDQ export needs opset >= 11, the model has ", g.opset);
      Node q = make("DynamicQuantizeLinear", base + "/DynamicQuantizeLinear");
      q.inputs = {n.input(0)};
      q.outputs = {xq, base + "/x_scale", base + "/x_zero_point"};
      Node d = make("DequantizeLinear", base + "/DequantizeLinear");
      d.inputs = {xq, base + "/x_scale", base + "/x_zero_point"};
      d.outputs = {xd};
      out.nodes.push_back(q);
      out.nodes.push_back(d);
    }
    // Weights: integer values plus DequantizeLinear (per channel on the
    // output axis) for uniform formats; decoded fp32 otherwise. Gemm weights
    // are stored transposed, [K, N], for MatMul.
    const PackedTensor& w = widened.has_value() ? *widened : parts.parts[0];
    const int64_t rows = parts.rows(), cols = parts.numel() / rows;
    const QuantParams& p = w.params();
    std::vector<uint32_t> codes(rows * cols);
    if (widened.has_value()) {
      for (int64_t r = 0; r < rows; ++r) w.UnpackRow(r, codes.data() + r * cols);
    }
    Shape wshape = conv ? parts.shape : Shape{cols, rows};
    auto at = [&](int64_t r, int64_t c) { return conv ? r * cols + c : c * rows + r; };
    const std::string wname = base + "/weight";
    DType dtype;
    const bool channel = p.granularity.kind == Granularity::kChannel;
    if (widened.has_value() && UniformIntegers(w, &dtype) && (!channel || g.opset >= 13)) {
      Tensor q(dtype, wshape);
      for (int64_t r = 0; r < rows; ++r) {
        for (int64_t c = 0; c < cols; ++c) {
          const int v = static_cast<int>(p.levels[codes[r * cols + c]]);
          if (dtype == DType::kInt8) {
            q.data<int8_t>()[at(r, c)] = static_cast<int8_t>(v);
          } else {
            q.data<uint8_t>()[at(r, c)] = static_cast<uint8_t>(v);
          }
        }
      }
      const int64_t gr = p.num_granules();
      Tensor zp(dtype, channel ? Shape{gr} : Shape{});
      for (int64_t i = 0; i < gr; ++i) {
        if (dtype == DType::kInt8) {
          zp.data<int8_t>()[i] = static_cast<int8_t>(p.zero_point(i));
        } else {
          zp.data<uint8_t>()[i] = static_cast<uint8_t>(p.zero_point(i));
        }
      }
      out.constants[wname + "_quantized"] = q;
      out.constants[wname + "_scale"] = Tensor::FromFloats(channel ? Shape{gr} : Shape{}, p.scales);
      out.constants[wname + "_zero_point"] = zp;
      Node d = make("DequantizeLinear", base + "/weight/DequantizeLinear");
      d.inputs = {wname + "_quantized", wname + "_scale", wname + "_zero_point"};
      d.outputs = {wname};
      if (channel) d.attrs["axis"] = static_cast<int64_t>(conv ? 0 : 1);
      out.nodes.push_back(d);
      if (report != nullptr) ++report->qdq_weights;
    } else {
      std::vector<float> decoded(rows * cols);
      parts.Dequantize(decoded.data());
      Tensor t(DType::kFloat32, wshape);
      for (int64_t r = 0; r < rows; ++r) {
        for (int64_t c = 0; c < cols; ++c) t.data<float>()[at(r, c)] = decoded[r * cols + c];
      }
      out.constants[wname] = t;
      if (report != nullptr) ++report->float_weights;
    }
    // The layer itself.
    if (conv) {
      Node c = make("Conv", base);
      for (const auto& [k, v] : n.attrs) {
        if (!PackedAttrs().count(k)) c.attrs[k] = v;
      }
      c.inputs = {xd, wname};
      if (!n.input(3).empty()) c.inputs.push_back(n.input(3));
      if (!n.input(4).empty()) {  // a fused residual: Conv input 3
        c.inputs.resize(3);
        c.inputs.push_back(n.input(4));
      }
      c.outputs = n.outputs;
      out.nodes.push_back(c);
      continue;
    }
    Node mm = make("MatMul", base + "/MatMul");
    mm.inputs = {xd, wname};
    mm.outputs = {n.outputs[0]};
    Node* last = &mm;
    Node add = make("Add", base + "/Add");
    if (!n.input(3).empty()) {
      mm.outputs = {base + "/matmul_out"};
      add.inputs = {mm.outputs[0], n.input(3)};
      add.outputs = {n.outputs[0]};
      last = &add;
    }
    for (const auto& [k, v] : n.attrs) {
      if (k.rfind("lowbit.", 0) == 0) last->attrs[k] = v;
    }
    out.nodes.push_back(mm);
    if (!n.input(3).empty()) out.nodes.push_back(add);
  }
  for (const std::string& c : dropped) out.constants.erase(c);
  LOWBIT_RETURN_IF_ERROR(VerifyGraph(&out));
  return out;
}

}  // namespace lowbit
