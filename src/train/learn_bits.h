// Learned per-filter bit widths (Uhlich et al., "Mixed Precision DNNs: All
// you need is a good parametrization", 2020; the filter-wise paper's
// allocation by training): each filter of a layer is quantized on a uniform
// grid with a trainable step d and a trainable maximum q_max, so its width
//     b = log2(q_max / d) + 1    (intB spans -2^(B-1) d .. (2^(B-1) - 1) d)
// is differentiable in both (kept as log2 d and log2 q_max, so that an
// optimizer's step moves widths at the same rate whatever the layer's
// scale; train/finetune.cc gives them a larger learning rate); a penalty on Σ MACs × b pulls widths down
// against the task loss. Widths are then snapped to those the kernels run in
// one layer (1, 2, 4 and 8-bit grids mix; train/finetune.cc). Internal to src/train.
#ifndef LOWBIT_TRAIN_LEARN_BITS_H_
#define LOWBIT_TRAIN_LEARN_BITS_H_

#include <torch/torch.h>

#include <vector>

namespace lowbit::train {

class BitWidthQuantizer {
 public:
  // Starts every filter at `init_bits` with steps `scales` (one per filter,
  // e.g. PTQ's int-init_bits fit); widths are kept in [min_bits, max_bits].
  BitWidthQuantizer(const std::vector<float>& scales, int init_bits, int min_bits, int max_bits);

  // w [rows, ...]: clip to [-q_max, q_max] per filter, round to the step (STE).
  torch::Tensor Forward(const torch::Tensor& w) const;
  // Each filter's real-valued width, differentiable ([rows]).
  torch::Tensor Bits() const;
  std::vector<torch::Tensor> Parameters() const { return {log_step_, log_qmax_}; }
  void Constrain();
  // The widths to run: each filter's width rounded to the nearest integer,
  // then up to the next of 1, 2, 4, 8 within [min_bits, max_bits].
  std::vector<int> SnappedBits() const;

 private:
  torch::Tensor log_step_, log_qmax_;  // log2 d, log2 q_max: [rows]
  int min_bits_, max_bits_;
};

// The kernel widths (1, 2, 4, 8) within [min_bits, max_bits], ascending.
std::vector<int> KernelWidths(int min_bits, int max_bits);

}  // namespace lowbit::train

#endif  // LOWBIT_TRAIN_LEARN_BITS_H_
