// Fake quantization for training: the forward value is exactly what lowbit's
// encoder and runtime compute, the backward pass a straight-through
// estimator with learned step sizes (LSQ, Esser et al. 2020).
//
// Weights: codes come from lowbit's own Encode (format/encode.cc) under the
// current scales, and the value is Decode's, scale * (level - zero point),
// bit for bit. Gradients: the weight gets 1 where u = w / scale lies strictly
// between the end levels (0 beyond, where the encoder clamps); the scale gets
// (level - u) inside and the end level outside, times LSQ's gradient scale
// 1 / sqrt(cols * max |level|); asymmetric zero points are learned as reals
// rounded in the forward pass (their gradient is -scale where clamped);
// codebook levels, when learned, get the sum of their weights' gradients.
//
// Activations: 8-bit, per tensor, as the runtime quantizes a layer's input
// with act_range [lo, hi] (kernels/qlinear.h StaticActParams and
// QuantizeRowWith): q = clamp(round(x / s) + z, 0, 255), x̂ = s (q - z).
// lo and hi are trained through s (LSQ), z held for the step.
#ifndef LOWBIT_TRAIN_FAKE_QUANT_H_
#define LOWBIT_TRAIN_FAKE_QUANT_H_

#include <torch/torch.h>

#include <memory>
#include <utility>
#include <vector>

#include "lowbit/format.h"
#include "lowbit/status.h"
#include "model/packed_node.h"

namespace lowbit::train {

class WeightQuantizer {
 public:
  // From a packed weight (formats, channel assignment, fitted levels,
  // scales and zero points), which gives the starting point. Channel or
  // tensor granularity. `learn_levels`: codebook levels are trained (and
  // kept on the int8 grid the integer kernels need unless `weight_only`).
  // `mask` (optional, the weight's shape): 0 marks pruned weights, held at
  // exactly zero.
  static Result<std::shared_ptr<WeightQuantizer>> FromParts(const PackedParts& parts,
                                                            bool learn_levels, bool weight_only,
                                                            torch::Tensor mask = {});

  // w: the layer's weight ([rows, ...]); returns the fake-quantized weight.
  torch::Tensor Forward(const torch::Tensor& w);
  // The packed weight of w under the current parameters (what Forward's
  // value decodes from).
  Result<PackedParts> Pack(const torch::Tensor& w) const;
  std::vector<torch::Tensor> Parameters() const;
  // Everything a checkpoint restores (parameters and fitted level tables),
  // in a fixed order; set_data on each restores it.
  std::vector<torch::Tensor> State() const;
  // Keeps parameters valid after an optimizer step: scales > 0, levels
  // ascending, zero points in range.
  void Constrain();
  std::string format() const;

 private:
  struct Part {
    QuantParams params;         // levels, zero points and scales as of the last Sync
    std::vector<int64_t> rows;  // of the whole weight
    torch::Tensor row_index;    // rows as a tensor (undefined: every row, in order)
    torch::Tensor scales;       // trainable, [granules]
    torch::Tensor zero;         // trainable (asymmetric), [granules]
    torch::Tensor levels;       // trainable (learned codebook) or fixed
    // For snapped learned levels, as of the last Sync: the index of the raw
    // level each of params.levels came from (undefined otherwise).
    torch::Tensor level_from;
    double grad_scale = 1;
  };
  // Copies the trainable values into params (what Encode reads).
  void Sync(Part& p) const;
  torch::Tensor PartForward(Part& p, const torch::Tensor& w2d);
  Result<PackedTensor> PackPart(Part& p, const torch::Tensor& w2d) const;

  std::vector<int64_t> shape_;
  std::vector<Part> parts_;
  torch::Tensor mask_;
  bool learn_levels_ = false, snap_levels_ = false;
};

class ActQuantizer {
 public:
  ActQuantizer(float lo, float hi, bool symmetric);
  torch::Tensor Forward(const torch::Tensor& x);
  // [lo, hi] as the packed node's act_range.
  std::pair<float, float> Range() const;
  std::vector<torch::Tensor> Parameters() const { return {lo_, hi_}; }
  void Constrain();  // lo <= 0 <= hi (symmetric: lo = -hi)

 private:
  torch::Tensor lo_, hi_;  // trainable scalars
  bool symmetric_;
};

}  // namespace lowbit::train

#endif  // LOWBIT_TRAIN_FAKE_QUANT_H_
