// lowbit's IR as a trainable LibTorch computation: every node of an
// optimized fp32 graph (ir/passes.h: BatchNorm folded, activations and
// residual adds fused) runs as the torch operation that means the same, and
// every quantizable layer (quant/layers.h) holds its weight and bias as
// trainable tensors, with optional fake quantizers on its weight, its input
// and its fused residual. Internal to src/train: the only code that includes
// torch.
#ifndef LOWBIT_TRAIN_TORCH_GRAPH_H_
#define LOWBIT_TRAIN_TORCH_GRAPH_H_

#include <torch/torch.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "lowbit/status.h"
#include "quant/layers.h"
#include "train/fake_quant.h"
#include "train/learn_bits.h"

namespace lowbit::train {

// One quantizable layer: Conv weights as in ONNX ([M, C/group, kh, kw]),
// Gemm and MatMul weights as [N, K] (QuantLayer's rows-first view: y = x wᵀ).
struct TrainLayer {
  QuantLayer layer;  // name, op, input, shape, group (w and bias: the initial values)
  torch::Tensor w, b;  // trainable; b undefined when the layer has no bias
  std::shared_ptr<WeightQuantizer> wq;  // null: fp32 weights
  std::shared_ptr<BitWidthQuantizer> bq;  // while learning bit widths (instead of wq)
  std::shared_ptr<ActQuantizer> xq, rq;  // input and fused residual; null: fp32
};

class TorchGraph {
 public:
  // `graph` optimized fp32; refuses, naming the node, operators it cannot
  // train through (the list in torch_ops.cc) and non-float graph inputs.
  static Result<std::unique_ptr<TorchGraph>> Build(const Graph& graph);

  // The first graph output for the first graph input `x`; with `quantized`
  // the layers' fake quantizers apply, else everything runs in fp32.
  // Errors (a shape the model cannot take) come back as c10::Error, which
  // callers turn into a Status (TorchStatus).
  torch::Tensor Forward(const torch::Tensor& x, bool quantized);

  std::vector<TrainLayer>& layers() { return layers_; }
  const std::vector<TrainLayer>& layers() const { return layers_; }
  // Every trainable tensor: weights, biases, then the quantizers'.
  std::vector<torch::Tensor> Parameters() const;
  const Graph& graph() const { return graph_; }

  // `graph` with the trained weights and biases written back in the form
  // QuantLayers reads them (Gemm with transB = 1, alpha = beta = 1): the
  // fp32 model of the trained state.
  Graph TrainedGraph() const;

 private:
  Graph graph_;
  std::vector<TrainLayer> layers_;
  std::map<int, int> layer_of_node_;
  std::map<std::string, torch::Tensor> constants_;
};

// A torch exception as a Status, prefixed with `where`.
Status TorchStatus(const std::exception& e, const std::string& where);

}  // namespace lowbit::train

#endif  // LOWBIT_TRAIN_TORCH_GRAPH_H_
