#include "runtime/packed_node.h"

#include "runtime/byte_edges.h"

#include <cmath>
#include <cstring>

namespace lowbit {

Result<PackedTensor> PackedWeightOf(const Node& node, const Tensor& codes, const Tensor& scales) {
  const std::string where = node.Describe() + ": ";
  QuantParams p;
  const std::string format = node.GetString("format", "");
  Result<FormatSpec> spec = ParseFormat(format);
  if (!spec.ok()) return InvalidArgument(where, "attribute format '", format, "': ", spec.status().message());
  p.spec = spec.value();
  if (p.spec.family == Family::kFloat) {
    return InvalidArgument(where, "format ", format, " is not a packed low-bit format");
  }
  Result<GranularitySpec> gran = ParseGranularity(node.GetString("granularity", ""));
  if (!gran.ok()) return InvalidArgument(where, "attribute granularity: ", gran.status().message());
  p.granularity = gran.value();
  const std::vector<int64_t> shape = node.GetInts("weight_shape");
  if (shape.empty()) return InvalidArgument(where, "attribute weight_shape is missing");
  for (int64_t d : shape) {
    if (d <= 0) return InvalidArgument(where, "weight_shape ", ShapeToString(shape), " has a dimension <= 0");
  }
  LOWBIT_RETURN_IF_ERROR(ShapeAs2D(shape, &p.rows, &p.cols));
  if (StoresLevels(p.spec)) {
    auto it = node.attrs.find("levels");
    if (it == node.attrs.end() || !std::holds_alternative<std::vector<float>>(it->second)) {
      return InvalidArgument(where, format, " needs attribute levels (floats)");
    }
    p.levels = std::get<std::vector<float>>(it->second);
  } else {
    LOWBIT_ASSIGN_OR_RETURN(p.levels, ImpliedLevels(p.spec));
  }
  if (scales.dtype() != DType::kFloat32 || scales.rank() != 1) {
    return InvalidArgument(where, "scales must be a 1-D float32 tensor, got ", DTypeName(scales.dtype()),
                           " ", ShapeToString(scales.shape()));
  }
  p.scales.assign(scales.data<float>(), scales.data<float>() + scales.numel());
  if (p.spec.asymmetric) {
    const std::vector<int64_t> zp = node.GetInts("zero_points");
    p.zero_points.assign(zp.begin(), zp.end());
    for (size_t i = 0; i < zp.size(); ++i) {
      if (zp[i] != p.zero_points[i]) return InvalidArgument(where, "zero point ", zp[i], " out of range");
    }
  }
  if (p.scales.size() != static_cast<size_t>(p.num_granules())) {
    return InvalidArgument(where, "has ", p.scales.size(), " scales; ", format, " ",
                           GranularityName(p.granularity), " on weight ", ShapeToString(shape),
                           " needs ", p.num_granules());
  }
  if (p.spec.asymmetric && p.zero_points.size() != p.scales.size()) {
    return InvalidArgument(where, "has ", p.zero_points.size(), " zero points for ", p.scales.size(),
                           " scales");
  }
  const int64_t row_bytes = PackedRowBytes(p.cols, p.spec.bits);
  if (codes.dtype() != DType::kUint8 || codes.numel() != p.rows * row_bytes) {
    return InvalidArgument(where, "codes are ", DTypeName(codes.dtype()), " ",
                           ShapeToString(codes.shape()), "; ", format, " weight ", ShapeToString(shape),
                           " needs ", p.rows * row_bytes, " uint8 bytes");
  }
  std::vector<uint8_t> data(codes.data<uint8_t>(), codes.data<uint8_t>() + codes.numel());
  Result<PackedTensor> t = PackedTensor::FromPacked(shape, std::move(p), std::move(data));
  if (!t.ok()) return Status(t.status().code(), where + t.status().message());
  return t;
}

Result<PackedTensor> PreparePackedInputs(const OpKernel& op, const std::vector<TensorInfo>& in) {
  const std::string where = op.node().Describe() + ": ";
  if (in.size() < 3 || !in[0].present || !in[1].present || !in[2].present) {
    return InvalidArgument(where, "expects inputs X, codes and scales");
  }
  if (in[1].constant == nullptr || in[2].constant == nullptr) {
    return Unimplemented(where, "codes and scales must be initializers");
  }
  if (op.node().GetInt(kByteInput, 0) != 0) {
    if (in[0].dtype != DType::kUint8 || in[0].shape.size() < 3) {
      return InvalidArgument(where, "X ", DTypeName(in[0].dtype), " ", ShapeToString(in[0].shape),
                             " must be uint8 pixels [N, spatial..., C] (", kByteInput, ")");
    }
  } else {
    LOWBIT_RETURN_IF_ERROR(ExpectFloat(op, in[0], "X"));
  }
  LOWBIT_RETURN_IF_ERROR(ActSpecOf(op.node()).status());
  Result<PackedTensor> w = PackedWeightOf(op.node(), *in[1].constant, *in[2].constant);
  if (w.ok() && w->params().spec.family == Family::kFloat) {
    return Unimplemented(where, "format ", FormatName(w->params().spec), " is not a packed format");
  }
  return w;
}

void SetPackedWeight(const PackedTensor& w, Node* node, Tensor* codes, Tensor* scales) {
  const QuantParams& p = w.params();
  node->attrs["format"] = FormatName(p.spec);
  node->attrs["granularity"] = GranularityName(p.granularity);
  node->attrs["weight_shape"] = w.shape();
  if (StoresLevels(p.spec)) node->attrs["levels"] = p.levels;
  if (!p.zero_points.empty()) {
    node->attrs["zero_points"] = std::vector<int64_t>(p.zero_points.begin(), p.zero_points.end());
  }
  *codes = Tensor(DType::kUint8, {w.rows(), w.row_bytes()});
  if (!w.data().empty()) std::memcpy(codes->raw(), w.data().data(), w.data().size());
  *scales = Tensor::FromFloats({static_cast<int64_t>(p.scales.size())}, p.scales);
}

Result<ActSpec> ActSpecOf(const Node& node) {
  const std::string act = node.GetString("act", "uint8");
  if (act != "int8" && act != "uint8" && act != "float") {
    return InvalidArgument(node.Describe(), ": attribute act '", act, "' (int8, uint8 or float)");
  }
  ActSpec a;
  a.symmetric = act == "int8";
  a.weight_only = act == "float";
  auto it = node.attrs.find("act_range");
  if (it == node.attrs.end()) return a;
  if (a.weight_only) {
    return InvalidArgument(node.Describe(), ": attribute act_range is for 8-bit activations, act is 'float'");
  }
  const auto* r = std::get_if<std::vector<float>>(&it->second);
  if (r == nullptr || r->size() != 2 || !std::isfinite((*r)[0]) || !std::isfinite((*r)[1]) ||
      (*r)[0] > (*r)[1]) {
    return InvalidArgument(node.Describe(), ": attribute act_range must be two finite floats lo <= hi");
  }
  a.is_static = true;
  a.lo = (*r)[0];
  a.hi = (*r)[1];
  return a;
}

}  // namespace lowbit
