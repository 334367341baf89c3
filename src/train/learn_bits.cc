#include "train/learn_bits.h"

#include <algorithm>
#include <cmath>

namespace lowbit::train {

std::vector<int> KernelWidths(int min_bits, int max_bits) {
  std::vector<int> out;
  for (int b : {1, 2, 4, 8}) {
    if (b >= min_bits && b <= max_bits) out.push_back(b);
  }
  return out;
}

BitWidthQuantizer::BitWidthQuantizer(const std::vector<float>& scales, int init_bits, int min_bits,
                                     int max_bits)
    : min_bits_(min_bits), max_bits_(max_bits) {
  log_step_ = torch::log2(torch::tensor(scales, torch::kFloat32).clamp_min(1e-12)).requires_grad_(true);
  log_qmax_ = (log_step_.detach() + (init_bits - 1)).clone().requires_grad_(true);
}

torch::Tensor BitWidthQuantizer::Forward(const torch::Tensor& w) const {
  const int64_t rows = w.size(0);
  const torch::Tensor w2 = w.reshape({rows, -1});
  const torch::Tensor d = torch::exp2(log_step_).view({rows, 1});
  const torch::Tensor qm = torch::exp2(log_qmax_).view({rows, 1});
  const torch::Tensor c = torch::max(torch::min(w2, qm), -qm);
  const torch::Tensor v = c / d;
  const torch::Tensor r = v + (torch::round(v) - v).detach();  // straight-through rounding
  return (r * d).view(w.sizes());
}

torch::Tensor BitWidthQuantizer::Bits() const { return log_qmax_ - log_step_ + 1; }

void BitWidthQuantizer::Constrain() {
  torch::NoGradGuard no_grad;
  // b in [min, max]: log2 d in [log2 q_max - (max - 1), log2 q_max - (min - 1)].
  const torch::Tensor lo = log_qmax_ - (max_bits_ - 1);
  const torch::Tensor hi = log_qmax_ - (min_bits_ - 1);
  log_step_.copy_(torch::max(torch::min(log_step_, hi), lo));
}

std::vector<int> BitWidthQuantizer::SnappedBits() const {
  const torch::Tensor b = Bits().detach().contiguous();
  const std::vector<int> widths = KernelWidths(min_bits_, max_bits_);
  std::vector<int> out;
  for (int64_t r = 0; r < b.numel(); ++r) {
    const int want = static_cast<int>(std::lround(b.data_ptr<float>()[r]));
    int pick = widths.back();
    for (int w : widths) {
      if (w >= want) {
        pick = w;
        break;
      }
    }
    out.push_back(pick);
  }
  return out;
}

}  // namespace lowbit::train
