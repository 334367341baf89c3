// PackedConv's choice of exact Winograd F(4x4, 3x3) (runtime/ops/packed_conv.h;
// WinogradRun, which runs it, is a template there).
#include <algorithm>
#include <climits>
#include <cmath>
#include <cstring>

#include "runtime/byte_edges.h"
#include "runtime/ops/byte_ops.h"
#include "runtime/ops/packed_conv.h"
#include "runtime/ops/planes.h"

namespace lowbit {

void PackedConv::SetUpWinograd() {
  winograd_ = false;
  wino_u_.clear();
  const auto& g = g_;
  const KernelRule rule = kernel_options_.winograd;
  if (rule == KernelRule::kOff || path_ != KernelPath::kAvx512Vnni || !LevelPlanes() || mixed_ ||
      group_ != 1 || segment_ > 0 || c_ % 32 != 0 || cs_ != c_ ||
      g.k != std::array<int64_t, 3>{1, 3, 3} || g.stride != std::array<int64_t, 3>{1, 1, 1} ||
      g.dilation != std::array<int64_t, 3>{1, 1, 1} ||
      g.pad_begin != std::array<int64_t, 3>{0, 1, 1} || g.out != g.in) {
    return;
  }
  wino_bands_ = (g.out[1] + 3) / 4;
  wino_tpr_ = (g.out[2] + 3) / 4;
  if ((rule != KernelRule::kOn && wino_bands_ * wino_tpr_ < 32) || !WinogradExact(groups_[0], c_))
    return;
  winograd_ = true;
  // Units of whole bands, at least 28 tiles (measured on 56x56 and 28x28
  // layers of 64 and 128 channels): blocks of 5-6 tiles, V and the dots in L2.
  wino_unit_ = (28 + wino_tpr_ - 1) / wino_tpr_;
  const QLinearWeights& w = groups_[0];
  wino_u_.assign(36 * w.n_pad * c_, 0);
  WinogradWeightsAvx512(w, c_, 0, w.n_pad / 16, wino_u_.data());
}

}  // namespace lowbit
