// The operators a TorchGraph runs, one torch function per ONNX operator
// (the list in torch_ops.cc; the same operators as runtime/ops/ops.inc less
// the quantization operators). Internal to src/train.
#ifndef LOWBIT_TRAIN_TORCH_OPS_H_
#define LOWBIT_TRAIN_TORCH_OPS_H_

#include <torch/torch.h>

#include <vector>

#include "ir/graph.h"

namespace lowbit::train {

using TorchOpFn = std::vector<torch::Tensor> (*)(const Node& node,
                                                 const std::vector<torch::Tensor>& inputs);

// The function for a default-domain operator, or null. Functions throw
// std::runtime_error naming the node for attributes they do not take.
TorchOpFn FindTorchOp(const std::string& op_type);

// Conv's geometry and the fused epilogue, shared with the trainable layers.
torch::Tensor TorchConv(const Node& node, const torch::Tensor& x, const torch::Tensor& w,
                        const torch::Tensor& b);
// Relu or Clip fused by ir/passes.h (attributes lowbit.activation, ...).
torch::Tensor ApplyFusedActivation(const Node& node, torch::Tensor y);

}  // namespace lowbit::train

#endif  // LOWBIT_TRAIN_TORCH_OPS_H_
