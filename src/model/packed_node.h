// The quantized model file's operators: ONNX nodes in the custom domain
// "com.lowbit" that carry packed weights (see docs/model-file.md). The
// contract between the quantizer (quant/), which writes them, the runtime
// (runtime/), which runs them, and the exporters, which read them.
//
//   PackedConv(X, codes, scales[, B[, R]]) -> Y  Conv semantics, NCHW, plus a
//                                               fused residual R (ir/passes.h)
//   PackedGemm(X, codes, scales[, B]) -> Y     Y[..., n] = sum_k W[n, k] X[..., k] + B[n]
//
// codes:  uint8 [rows, row_bytes], the packed tensor's bytes (bitpack.h)
// scales: float [granules]
// Attributes: format ("int4", ...), granularity ("channel", ...), weight_shape
// (Conv [M, C/group, kh, kw...], Gemm [N, K]), levels (floats, only formats
// that store them), zero_points (ints, asymmetric formats), act ("int8" or
// "uint8": 8-bit activations; "float": weight-only, fp32 activations and any
// packed format), act_range (floats [lo, hi]: static calibration of 8-bit
// activations; absent: dynamic per row / per image), the fused activation
// (runtime/activation.h) and, from calibration, sqnr_db of the layer output
// and (PackedConv with R) residual_range, R's range.
// PackedConv also keeps Conv's attributes (strides, pads, dilations, group,
// auto_pad, kernel_shape).
#ifndef LOWBIT_MODEL_PACKED_NODE_H_
#define LOWBIT_MODEL_PACKED_NODE_H_

#include <optional>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "lowbit/packed_tensor.h"

namespace lowbit {

inline constexpr const char* kLowbitDomain = "com.lowbit";
inline constexpr int kLowbitDomainVersion = 1;
inline constexpr const char* kPackedConv = "PackedConv";
inline constexpr const char* kPackedGemm = "PackedGemm";

inline bool IsPackedNode(const Node& n) {
  return n.domain == kLowbitDomain && (n.op_type == kPackedConv || n.op_type == kPackedGemm);
}

// Filter-wise mixed precision: the output channels (filters) of one layer in
// P >= 2 formats. The node's format is the formats joined by '/' ("int2/int4"),
// attribute filter_parts (ints, one per output channel) names each channel's
// format, and part p is one packed tensor holding that format's channels in
// ascending order. codes (uint8, 1-D), scales and zero_points are the parts'
// concatenated in part order; granularity applies to each part; formats
// with stored levels (nhot, codebook) are refused.
inline constexpr const char* kFilterParts = "filter_parts";
struct PackedParts {
  std::vector<int64_t> shape;                  // the whole weight's shape
  std::vector<PackedTensor> parts;             // one per format (a single one: uniform)
  std::vector<std::vector<int32_t>> channels;  // output channels of each part, ascending

  // One format for every output channel.
  static PackedParts Uniform(PackedTensor w);
  bool mixed() const { return parts.size() > 1; }
  int64_t rows() const { return shape.empty() ? 0 : shape[0]; }
  int64_t numel() const;
  int64_t bytes() const;       // packed codes and parameters of every part
  double mean_bits() const;    // code bits per weight
  std::string format() const;  // "int4", or "int2/int4"
  // Every weight decoded to fp32 in the whole tensor's row-major order (for
  // references and error reports, never for inference).
  void Dequantize(float* out) const;
  // The whole tensor as one packed tensor in the widest part's format, when
  // that is exact: every part int family of one signedness (symmetric or
  // asymmetric), granularity channel. Used by exports.
  std::optional<PackedTensor> Widened() const;
};
// Rebuilds and validates the packed weight of a node from its attributes and
// its codes and scales tensors (a uniform node gives one part of all
// channels); errors name the node and the mismatch.
Result<PackedParts> PackedPartsOf(const Node& node, const Tensor& codes, const Tensor& scales);

// Writes a packed weight into a node's attributes and returns the codes and
// scales tensors to store as its inputs 1 and 2: uniform weights as [rows,
// row_bytes] codes, filter-wise ones as 1-D codes with filter_parts.
void SetPackedParts(const PackedParts& w, Node* node, Tensor* codes, Tensor* scales);

// The activation quantization a node asks for.
struct ActSpec {
  bool symmetric = false;  // act "int8"; "uint8" is asymmetric
  bool weight_only = false;  // act "float"
  bool is_static = false;
  float lo = 0, hi = 0;
};
Result<ActSpec> ActSpecOf(const Node& node);

// A PackedConv's calibrated range of its fused residual R (attribute
// residual_range, floats [lo, hi]); absent: no range. With it a residual
// that only fused convolutions read can travel as bytes (byte_edges.h).
struct ResidualRange {
  bool present = false;
  float lo = 0, hi = 0;
};
Result<ResidualRange> ResidualRangeOf(const Node& node);

}  // namespace lowbit

#endif  // LOWBIT_MODEL_PACKED_NODE_H_
