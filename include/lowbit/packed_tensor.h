// A quantized tensor as lowbit stores it: shape, fitted format parameters and
// densely packed codes (see bitpack.h for the bit layout).
//
// Codes are stored row by row (rows = dim 0, the output channels; a rank-1
// tensor is one row); each row is PackedRowBytes(cols, bits) bytes and rows are
// contiguous. Parameters: fp32 scales (one per granule), one byte per zero
// point, and the level table when the spec does not imply it (int8 for nhot,
// fp32 for codebook). bytes() counts exactly these.
#ifndef LOWBIT_PACKED_TENSOR_H_
#define LOWBIT_PACKED_TENSOR_H_

#include <cstdint>
#include <vector>

#include "lowbit/format.h"
#include "lowbit/status.h"

namespace lowbit {

class PackedTensor {
 public:
  PackedTensor() = default;

  // Prunes (when prune_ratio > 0, keeping pruned values exactly zero), fits,
  // encodes and packs x, whose C-ordered shape is `shape` (rank >= 1).
  static Result<PackedTensor> Quantize(const float* x, const std::vector<int64_t>& shape,
                                       const FormatSpec& spec, FitOptions options,
                                       double prune_ratio = 0.0);
  // Packs codes (rows x cols, one per value) under already fitted parameters.
  static Result<PackedTensor> FromCodes(QuantParams params, const std::vector<int64_t>& shape,
                                        const uint32_t* codes);

  // Adopts already packed bytes (as a loader reads them) and validates them.
  static Result<PackedTensor> FromPacked(const std::vector<int64_t>& shape, QuantParams params,
                                         std::vector<uint8_t> data);

  const std::vector<int64_t>& shape() const { return shape_; }
  const QuantParams& params() const { return params_; }
  int bits() const { return params_.spec.bits; }
  int64_t rows() const { return params_.rows; }
  int64_t cols() const { return params_.cols; }
  int64_t numel() const { return params_.rows * params_.cols; }
  int64_t row_bytes() const { return PackedRowBytes(params_.cols, params_.spec.bits); }
  const uint8_t* row(int64_t r) const { return data_.data() + r * row_bytes(); }
  const std::vector<uint8_t>& data() const { return data_; }

  void UnpackRow(int64_t r, uint32_t* codes) const;
  // Decodes every value to fp32 (for references and error reports, never for
  // inference).
  void Dequantize(float* out) const;

  struct Bytes {
    int64_t codes = 0, scales = 0, zero_points = 0, levels = 0;
    int64_t total() const { return codes + scales + zero_points + levels; }
  };
  Bytes bytes() const;
  // Storage bits per value including every parameter.
  double bits_per_value() const;

  // Checks every invariant a loader must trust: sizes, bit width, level table
  // order, scale and zero-point ranges, codes below the level count, zero
  // padding bits. The error names the field and the values involved.
  Status Validate() const;

 private:
  std::vector<int64_t> shape_;
  QuantParams params_;
  std::vector<uint8_t> data_;
};

// rows x cols view of a shape: rows = dim 0 (1 for rank 1), cols = the rest.
Status ShapeAs2D(const std::vector<int64_t>& shape, int64_t* rows, int64_t* cols);

}  // namespace lowbit

#endif  // LOWBIT_PACKED_TENSOR_H_
