#include "model/packed_node.h"

#include <algorithm>
#include <cmath>
#include <cstring>


namespace lowbit {

namespace {

std::vector<std::string> SplitFormats(const std::string& format) {
  std::vector<std::string> out;
  size_t b = 0;
  for (size_t e; (e = format.find('/', b)) != std::string::npos; b = e + 1)
    out.push_back(format.substr(b, e - b));
  out.push_back(format.substr(b));
  return out;
}

bool Mixed(const Node& node) { return node.Has(kFilterParts); }

}  // namespace

Result<PackedParts> PackedPartsOf(const Node& node, const Tensor& codes, const Tensor& scales) {
  const std::string where = node.Describe() + ": ";
  const std::string format = node.GetString("format", "");
  const std::vector<std::string> names = SplitFormats(format);
  const bool mixed = Mixed(node);
  if (mixed != (names.size() > 1)) {
    return InvalidArgument(
        where, "format '", format, "' ", mixed ? "needs" : "lists several formats without",
        " attribute ", kFilterParts, mixed ? " to list at least two formats joined by '/'" : "");
  }
  std::vector<FormatSpec> specs;
  for (const std::string& name : names) {
    Result<FormatSpec> spec = ParseFormat(name);
    if (!spec.ok())
      return InvalidArgument(where, "attribute format '", format, "': ", spec.status().message());
    if (spec->family == Family::kFloat) {
      return InvalidArgument(where, "format ", name, " is not a packed low-bit format");
    }
    if (mixed && StoresLevels(spec.value())) {
      return InvalidArgument(where, "format ", name, " stores levels; filter-wise formats (",
                             format, ") take int, uint, int-asym or pow2");
    }
    specs.push_back(spec.value());
  }
  Result<GranularitySpec> gran = ParseGranularity(node.GetString("granularity", ""));
  if (!gran.ok()) return InvalidArgument(where, "attribute granularity: ", gran.status().message());
  PackedParts out;
  out.shape = node.GetInts("weight_shape");
  if (out.shape.empty()) return InvalidArgument(where, "attribute weight_shape is missing");
  for (int64_t d : out.shape) {
    if (d <= 0)
      return InvalidArgument(where, "weight_shape ", ShapeToString(out.shape),
                             " has a dimension <= 0");
  }
  int64_t rows = 0, cols = 0;
  LOWBIT_RETURN_IF_ERROR(ShapeAs2D(out.shape, &rows, &cols));
  // Every packed row takes at least one byte: a weight_shape with more rows
  // than the codes hold bytes is refused before anything is sized by it.
  if (rows > static_cast<int64_t>(codes.bytes())) {
    return InvalidArgument(where, "weight_shape ", ShapeToString(out.shape), " has ", rows,
                           " output channels; the codes hold only ", codes.bytes(), " bytes");
  }
  // Each part's channels.
  out.channels.assign(specs.size(), {});
  if (mixed) {
    const std::vector<int64_t> part_of = node.GetInts(kFilterParts);
    if (static_cast<int64_t>(part_of.size()) != rows) {
      return InvalidArgument(where, kFilterParts, " has ", part_of.size(), " entries for ", rows,
                             " output channels");
    }
    for (int64_t r = 0; r < rows; ++r) {
      if (part_of[r] < 0 || part_of[r] >= static_cast<int64_t>(specs.size())) {
        return InvalidArgument(where, kFilterParts, "[", r, "] = ", part_of[r],
                               " is not a format index (0..", specs.size() - 1, " of ", format,
                               ")");
      }
      out.channels[part_of[r]].push_back(static_cast<int32_t>(r));
    }
    for (size_t p = 0; p < specs.size(); ++p) {
      if (out.channels[p].empty()) {
        return InvalidArgument(where, "format ", names[p], " of ", format,
                               " has no output channel in ", kFilterParts);
      }
    }
  } else {
    for (int64_t r = 0; r < rows; ++r) out.channels[0].push_back(static_cast<int32_t>(r));
  }
  if (scales.dtype() != DType::kFloat32 || scales.rank() != 1) {
    return InvalidArgument(where, "scales must be a 1-D float32 tensor, got ", DTypeName(scales.dtype()),
                           " ", ShapeToString(scales.shape()));
  }
  const std::vector<int64_t> zp = node.GetInts("zero_points");
  // Expected totals first, so a short tensor is named before it is sliced.
  int64_t want_scales = 0, want_bytes = 0;
  std::vector<QuantParams> params(specs.size());
  for (size_t i = 0; i < specs.size(); ++i) {
    QuantParams& p = params[i];
    p.spec = specs[i];
    p.granularity = gran.value();
    p.rows = static_cast<int64_t>(out.channels[i].size());
    p.cols = cols;
    want_scales += p.num_granules();
    want_bytes += p.rows * PackedRowBytes(cols, p.spec.bits);
  }
  if (scales.numel() != want_scales) {
    return InvalidArgument(where, "has ", scales.numel(), " scales; ", format, " ",
                           GranularityName(gran.value()), " on weight ", ShapeToString(out.shape),
                           " needs ", want_scales);
  }
  const bool any_asym =
      std::any_of(specs.begin(), specs.end(), [](const FormatSpec& f) { return f.asymmetric; });
  if (any_asym || !zp.empty()) {
    int64_t want_zp = 0;
    for (size_t i = 0; i < specs.size(); ++i)
      want_zp += specs[i].asymmetric ? params[i].num_granules() : 0;
    if (static_cast<int64_t>(zp.size()) != want_zp) {
      return InvalidArgument(where, "has ", zp.size(), " zero points; ", format, " needs ",
                             want_zp);
    }
  }
  const int64_t have_bytes = codes.dtype() == DType::kUint8 ? codes.numel() : -1;
  if (have_bytes != want_bytes || (mixed && codes.rank() != 1)) {
    return InvalidArgument(where, "codes are ", DTypeName(codes.dtype()), " ",
                           ShapeToString(codes.shape()), "; ", format, " weight ",
                           ShapeToString(out.shape), " needs ", want_bytes, " uint8 bytes",
                           mixed ? " (1-D)" : "");
  }
  const float* sc = scales.data<float>();
  const uint8_t* cd = codes.data<uint8_t>();
  size_t zi = 0;
  for (size_t i = 0; i < specs.size(); ++i) {
    QuantParams& p = params[i];
    if (StoresLevels(p.spec)) {
      auto it = node.attrs.find("levels");
      if (it == node.attrs.end() || !std::holds_alternative<std::vector<float>>(it->second)) {
        return InvalidArgument(where, format, " needs attribute levels (floats)");
      }
      p.levels = std::get<std::vector<float>>(it->second);
    } else {
      LOWBIT_ASSIGN_OR_RETURN(p.levels, ImpliedLevels(p.spec));
    }
    const int64_t ng = p.num_granules();
    p.scales.assign(sc, sc + ng);
    sc += ng;
    if (p.spec.asymmetric) {
      for (int64_t g = 0; g < ng; ++g, ++zi) {
        p.zero_points.push_back(static_cast<int32_t>(zp[zi]));
        if (zp[zi] != p.zero_points.back())
          return InvalidArgument(where, "zero point ", zp[zi], " out of range");
      }
    }
    std::vector<int64_t> shape = out.shape;
    shape[0] = p.rows;
    if (!mixed) shape = out.shape;
    const int64_t nbytes = p.rows * PackedRowBytes(cols, p.spec.bits);
    std::vector<uint8_t> data(cd, cd + nbytes);
    cd += nbytes;
    Result<PackedTensor> t = PackedTensor::FromPacked(shape, std::move(p), std::move(data));
    if (!t.ok()) {
      return Status(t.status().code(),
                    where + (mixed ? "format " + names[i] + ": " : "") + t.status().message());
    }
    out.parts.push_back(std::move(t).value());
  }
  return out;
}

PackedParts PackedParts::Uniform(PackedTensor w) {
  PackedParts p;
  p.shape = w.shape();
  p.channels.emplace_back(w.rows());
  for (int64_t r = 0; r < w.rows(); ++r) p.channels[0][r] = static_cast<int32_t>(r);
  p.parts.push_back(std::move(w));
  return p;
}

int64_t PackedParts::numel() const {
  int64_t n = 0;
  for (const PackedTensor& p : parts) n += p.numel();
  return n;
}

int64_t PackedParts::bytes() const {
  int64_t n = 0;
  for (const PackedTensor& p : parts) n += p.bytes().total();
  return n;
}

double PackedParts::mean_bits() const {
  double bits = 0;
  for (const PackedTensor& p : parts) bits += static_cast<double>(p.numel()) * p.bits();
  return numel() > 0 ? bits / static_cast<double>(numel()) : 0.0;
}

std::string PackedParts::format() const {
  std::string f;
  for (const PackedTensor& p : parts) {
    if (!f.empty()) f += '/';
    f += FormatName(p.params().spec);
  }
  return f;
}

void PackedParts::Dequantize(float* out) const {
  for (size_t i = 0; i < parts.size(); ++i) {
    const PackedTensor& p = parts[i];
    std::vector<float> d(p.numel());
    p.Dequantize(d.data());
    for (size_t r = 0; r < channels[i].size(); ++r) {
      std::copy_n(d.data() + r * p.cols(), p.cols(), out + channels[i][r] * p.cols());
    }
  }
}

std::optional<PackedTensor> PackedParts::Widened() const {
  if (!mixed()) return parts[0];
  const PackedTensor* wide = &parts[0];
  for (const PackedTensor& p : parts) {
    const QuantParams& q = p.params();
    if (q.spec.family != Family::kInt || q.granularity.kind != Granularity::kChannel ||
        q.spec.asymmetric != parts[0].params().spec.asymmetric ||
        q.spec.is_signed != parts[0].params().spec.is_signed) {
      return std::nullopt;
    }
    if (p.bits() > wide->bits()) wide = &p;
  }
  QuantParams w = wide->params();
  w.rows = rows();
  w.scales.assign(w.rows, 0.0f);
  if (!w.zero_points.empty()) w.zero_points.assign(w.rows, 0);
  std::vector<uint32_t> codes(w.rows * w.cols), row(w.cols);
  for (size_t i = 0; i < parts.size(); ++i) {
    const QuantParams& q = parts[i].params();
    for (size_t r = 0; r < channels[i].size(); ++r) {
      const int32_t ch = channels[i][r];
      w.scales[ch] = q.scales[r];
      if (!w.zero_points.empty()) w.zero_points[ch] = q.zero_points[r];
      parts[i].UnpackRow(static_cast<int64_t>(r), row.data());
      for (int64_t c = 0; c < w.cols; ++c) {
        const float v = q.levels[row[c]];
        const auto it = std::lower_bound(w.levels.begin(), w.levels.end(), v);
        if (it == w.levels.end() || *it != v) return std::nullopt;
        codes[ch * w.cols + c] = static_cast<uint32_t>(it - w.levels.begin());
      }
    }
  }
  Result<PackedTensor> t = PackedTensor::FromCodes(std::move(w), shape, codes.data());
  if (!t.ok()) return std::nullopt;
  return std::move(t).value();
}

void SetPackedParts(const PackedParts& w, Node* node, Tensor* codes, Tensor* scales) {
  if (!w.mixed()) {
    const PackedTensor& t = w.parts[0];
    const QuantParams& p = t.params();
    node->attrs["format"] = FormatName(p.spec);
    node->attrs["granularity"] = GranularityName(p.granularity);
    node->attrs["weight_shape"] = t.shape();
    if (StoresLevels(p.spec)) node->attrs["levels"] = p.levels;
    if (!p.zero_points.empty()) {
      node->attrs["zero_points"] = std::vector<int64_t>(p.zero_points.begin(), p.zero_points.end());
    }
    *codes = Tensor(DType::kUint8, {t.rows(), t.row_bytes()});
    if (!t.data().empty()) std::memcpy(codes->raw(), t.data().data(), t.data().size());
    *scales = Tensor::FromFloats({static_cast<int64_t>(p.scales.size())}, p.scales);
    node->attrs.erase(kFilterParts);
    return;
  }
  node->attrs["format"] = w.format();
  node->attrs["granularity"] = GranularityName(w.parts[0].params().granularity);
  node->attrs["weight_shape"] = w.shape;
  node->attrs.erase("levels");
  std::vector<int64_t> part_of(w.rows()), zp;
  std::vector<float> sc;
  std::vector<uint8_t> bytes;
  for (size_t i = 0; i < w.parts.size(); ++i) {
    const QuantParams& p = w.parts[i].params();
    for (int32_t ch : w.channels[i]) part_of[ch] = static_cast<int64_t>(i);
    sc.insert(sc.end(), p.scales.begin(), p.scales.end());
    zp.insert(zp.end(), p.zero_points.begin(), p.zero_points.end());
    bytes.insert(bytes.end(), w.parts[i].data().begin(), w.parts[i].data().end());
  }
  node->attrs[kFilterParts] = part_of;
  if (zp.empty()) {
    node->attrs.erase("zero_points");
  } else {
    node->attrs["zero_points"] = zp;
  }
  *codes = Tensor(DType::kUint8, {static_cast<int64_t>(bytes.size())});
  if (!bytes.empty()) std::memcpy(codes->raw(), bytes.data(), bytes.size());
  *scales = Tensor::FromFloats({static_cast<int64_t>(sc.size())}, sc);
}

namespace {

// Attribute `key`, a calibrated range [lo, hi] of 8-bit activations: false
// when absent; refused with fp32 activations (`weight_only`) or when not two
// finite floats lo <= hi.
Result<bool> RangeAttr(const Node& node, const char* key, bool weight_only, float* lo, float* hi) {
  auto it = node.attrs.find(key);
  if (it == node.attrs.end()) return false;
  if (weight_only) {
    return InvalidArgument(node.Describe(), ": attribute ", key,
                           " is for 8-bit activations, act is 'float'");
  }
  const auto* r = std::get_if<std::vector<float>>(&it->second);
  if (r == nullptr || r->size() != 2 || !std::isfinite((*r)[0]) || !std::isfinite((*r)[1]) ||
      (*r)[0] > (*r)[1]) {
    return InvalidArgument(node.Describe(), ": attribute ", key,
                           " must be two finite floats lo <= hi");
  }
  *lo = (*r)[0];
  *hi = (*r)[1];
  return true;
}

}  // namespace

Result<ActSpec> ActSpecOf(const Node& node) {
  const std::string act = node.GetString("act", "uint8");
  if (act != "int8" && act != "uint8" && act != "float") {
    return InvalidArgument(node.Describe(), ": attribute act '", act, "' (int8, uint8 or float)");
  }
  ActSpec a;
  a.symmetric = act == "int8";
  a.weight_only = act == "float";
  LOWBIT_ASSIGN_OR_RETURN(a.is_static, RangeAttr(node, "act_range", a.weight_only, &a.lo, &a.hi));
  return a;
}

Result<ResidualRange> ResidualRangeOf(const Node& node) {
  ResidualRange r;
  if (!node.Has("residual_range")) return r;
  if (node.op_type != kPackedConv || node.input(4).empty()) {
    return InvalidArgument(node.Describe(),
                           ": attribute residual_range needs a PackedConv with a residual input R");
  }
  LOWBIT_ASSIGN_OR_RETURN(
      r.present,
      RangeAttr(node, "residual_range", node.GetString("act", "uint8") == "float", &r.lo, &r.hi));
  return r;
}

}  // namespace lowbit
