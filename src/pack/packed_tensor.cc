#include "lowbit/packed_tensor.h"

#include <cmath>
#include <string>

#include "lowbit/bitpack.h"

namespace lowbit {
namespace {

std::string ShapeString(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

}  // namespace

Status ShapeAs2D(const std::vector<int64_t>& shape, int64_t* rows, int64_t* cols) {
  if (shape.empty()) return InvalidArgument("cannot pack a scalar (rank-0) tensor");
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d <= 0) return InvalidArgument("cannot pack tensor of shape ", ShapeString(shape),
                                       ": every dimension must be >= 1");
    if (__builtin_mul_overflow(n, d, &n)) {
      return InvalidArgument("cannot pack tensor of shape ", ShapeString(shape), ": it has over 2^63 elements");
    }
  }
  *rows = shape.size() == 1 ? 1 : shape[0];
  *cols = n / *rows;
  return OkStatus();
}

Result<PackedTensor> PackedTensor::Quantize(const float* x, const std::vector<int64_t>& shape,
                                            const FormatSpec& spec, FitOptions options,
                                            double prune_ratio) {
  int64_t rows, cols;
  LOWBIT_RETURN_IF_ERROR(ShapeAs2D(shape, &rows, &cols));
  std::vector<float> pruned;
  if (prune_ratio != 0.0) {
    pruned.assign(x, x + rows * cols);
    LOWBIT_RETURN_IF_ERROR(Prune(pruned.data(), rows * cols, prune_ratio));
    options.require_zero = true;
    x = pruned.data();
  }
  QuantParams params;
  LOWBIT_ASSIGN_OR_RETURN(params, Fit(x, rows, cols, spec, options));
  std::vector<uint32_t> codes(rows * cols);
  LOWBIT_RETURN_IF_ERROR(Encode(params, x, codes.data()));
  return FromCodes(std::move(params), shape, codes.data());
}

Result<PackedTensor> PackedTensor::FromCodes(QuantParams params, const std::vector<int64_t>& shape,
                                             const uint32_t* codes) {
  int64_t rows, cols;
  LOWBIT_RETURN_IF_ERROR(ShapeAs2D(shape, &rows, &cols));
  if (rows != params.rows || cols != params.cols) {
    return InvalidArgument("shape ", ShapeString(shape), " is ", rows, " x ", cols,
                           " but the parameters were fitted for ", params.rows, " x ", params.cols);
  }
  const int64_t limit = params.num_codes();
  for (int64_t i = 0; i < rows * cols; ++i) {
    if (codes[i] >= static_cast<uint64_t>(limit)) {
      return InvalidArgument("code ", codes[i], " at index ", i, " is not below ", limit);
    }
  }
  PackedTensor t;
  t.shape_ = shape;
  t.params_ = std::move(params);
  const int64_t rb = t.row_bytes();
  t.data_.assign(rows * rb, 0);
  for (int64_t r = 0; r < rows; ++r) {
    PackCodes(codes + r * cols, cols, t.bits(), t.data_.data() + r * rb);
  }
  return t;
}

Result<PackedTensor> PackedTensor::FromPacked(const std::vector<int64_t>& shape, QuantParams params,
                                              std::vector<uint8_t> data) {
  PackedTensor t;
  t.shape_ = shape;
  t.params_ = std::move(params);
  t.data_ = std::move(data);
  LOWBIT_RETURN_IF_ERROR(t.Validate());
  return t;
}

void PackedTensor::UnpackRow(int64_t r, uint32_t* codes) const {
  UnpackCodes(row(r), cols(), bits(), codes);
}

void PackedTensor::Dequantize(float* out) const {
  std::vector<uint32_t> codes(numel());
  for (int64_t r = 0; r < rows(); ++r) UnpackRow(r, codes.data() + r * cols());
  Decode(params_, codes.data(), out);
}

PackedTensor::Bytes PackedTensor::bytes() const {
  const StorageBits s = StorageOf(params_);
  return Bytes{s.codes / 8, s.scales / 8, s.zero_points / 8, s.levels / 8};
}

double PackedTensor::bits_per_value() const {
  return numel() > 0 ? 8.0 * static_cast<double>(bytes().total()) / static_cast<double>(numel())
                     : 0.0;
}

Status PackedTensor::Validate() const {
  const QuantParams& p = params_;
  const std::string name = FormatName(p.spec);
  LOWBIT_RETURN_IF_ERROR(ValidateSpec(p.spec));
  int64_t rows, cols;
  LOWBIT_RETURN_IF_ERROR(ShapeAs2D(shape_, &rows, &cols));
  if (rows != p.rows || cols != p.cols) {
    return DataLoss(name, " tensor: shape ", ShapeString(shape_), " does not match ", p.rows,
                    " x ", p.cols);
  }
  if (static_cast<int64_t>(data_.size()) != rows * row_bytes()) {
    return DataLoss(name, " tensor: ", data_.size(), " code bytes, expected ", rows * row_bytes());
  }
  if (p.spec.family != Family::kFloat) {
    if (p.granularity.kind == Granularity::kGroup && p.granularity.group_size < 1) {
      return DataLoss(name, " tensor: group size ", p.granularity.group_size);
    }
    if (p.levels.empty() || static_cast<int64_t>(p.levels.size()) > (int64_t{1} << p.spec.bits)) {
      return DataLoss(name, " tensor: ", p.levels.size(), " levels for ", p.spec.bits, " bits");
    }
    for (size_t i = 0; i < p.levels.size(); ++i) {
      if (!std::isfinite(p.levels[i]) || (i > 0 && !(p.levels[i] > p.levels[i - 1]))) {
        return DataLoss(name, " tensor: level ", i, " = ", p.levels[i],
                        " is not finite and strictly ascending");
      }
    }
    if (static_cast<int64_t>(p.scales.size()) != p.num_granules()) {
      return DataLoss(name, " tensor: ", p.scales.size(), " scales, expected ", p.num_granules(),
                      " (", GranularityName(p.granularity), ")");
    }
    for (size_t g = 0; g < p.scales.size(); ++g) {
      if (!std::isfinite(p.scales[g]) || !(p.scales[g] > 0)) {
        return DataLoss(name, " tensor: scale ", g, " = ", p.scales[g], " is not finite and > 0");
      }
    }
    const bool want_zp = p.spec.family == Family::kInt && p.spec.asymmetric;
    if (want_zp != !p.zero_points.empty() ||
        (want_zp && static_cast<int64_t>(p.zero_points.size()) != p.num_granules())) {
      return DataLoss(name, " tensor: ", p.zero_points.size(), " zero points, expected ",
                      want_zp ? p.num_granules() : 0);
    }
    for (size_t g = 0; g < p.zero_points.size(); ++g) {
      if (p.zero_points[g] < 0 || p.zero_points[g] >= (1 << p.spec.bits)) {
        return DataLoss(name, " tensor: zero point ", g, " = ", p.zero_points[g], " is out of range");
      }
    }
  }
  // Codes below the level count, and padding bits zero.
  std::vector<uint32_t> codes(cols);
  const int64_t limit = p.num_codes();
  const int pad_bits = static_cast<int>(row_bytes() * 8 - cols * bits());
  for (int64_t r = 0; r < rows; ++r) {
    UnpackRow(r, codes.data());
    for (int64_t c = 0; c < cols; ++c) {
      if (codes[c] >= static_cast<uint64_t>(limit)) {
        return DataLoss(name, " tensor: code ", codes[c], " at [", r, ", ", c,
                        "] is not below the level count ", limit);
      }
    }
    if (pad_bits > 0 && (row(r)[row_bytes() - 1] >> (8 - pad_bits)) != 0) {
      return DataLoss(name, " tensor: row ", r, " has non-zero padding bits");
    }
  }
  return OkStatus();
}

}  // namespace lowbit
