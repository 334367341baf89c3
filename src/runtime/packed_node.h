// The quantized model file's operators: ONNX nodes in the custom domain
// "com.lowbit" that carry packed weights (see docs/model-file.md).
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
// (runtime/activation.h) and, from calibration, sqnr_db of the layer output.
// PackedConv also keeps Conv's attributes (strides, pads, dilations, group,
// auto_pad, kernel_shape).
#ifndef LOWBIT_RUNTIME_PACKED_NODE_H_
#define LOWBIT_RUNTIME_PACKED_NODE_H_

#include <string>

#include "ir/graph.h"
#include "lowbit/packed_tensor.h"
#include "runtime/op.h"

namespace lowbit {

inline constexpr const char* kLowbitDomain = "com.lowbit";
inline constexpr int kLowbitDomainVersion = 1;
inline constexpr const char* kPackedConv = "PackedConv";
inline constexpr const char* kPackedGemm = "PackedGemm";

inline bool IsPackedNode(const Node& n) {
  return n.domain == kLowbitDomain && (n.op_type == kPackedConv || n.op_type == kPackedGemm);
}

// Rebuilds and validates the packed weight of a node from its attributes and
// its codes and scales tensors; errors name the node and the mismatch.
Result<PackedTensor> PackedWeightOf(const Node& node, const Tensor& codes, const Tensor& scales);

// The packed weight of a PackedConv/PackedGemm kernel from its inputs X,
// codes, scales (constants), with X float32 and the node's act valid; errors
// name the node. Float formats are refused (nothing to decode).
Result<PackedTensor> PreparePackedInputs(const OpKernel& op, const std::vector<TensorInfo>& in);

// Writes a packed weight into a node's attributes and returns the codes and
// scales tensors to store as its inputs 1 and 2.
void SetPackedWeight(const PackedTensor& w, Node* node, Tensor* codes, Tensor* scales);

// The activation quantization a node asks for.
struct ActSpec {
  bool symmetric = false;  // act "int8"; "uint8" is asymmetric
  bool weight_only = false;  // act "float"
  bool is_static = false;
  float lo = 0, hi = 0;
};
Result<ActSpec> ActSpecOf(const Node& node);

}  // namespace lowbit

#endif  // LOWBIT_RUNTIME_PACKED_NODE_H_
