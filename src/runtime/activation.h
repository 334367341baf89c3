// An activation fused into its producer (Conv, Gemm, MatMul) by the fusion
// pass, recorded on the node as attributes "lowbit.activation" ("Relu" or
// "Clip") and "lowbit.clip_min" / "lowbit.clip_max".
#ifndef LOWBIT_RUNTIME_ACTIVATION_H_
#define LOWBIT_RUNTIME_ACTIVATION_H_

#include <algorithm>
#include <cstdint>
#include <limits>

#include "ir/graph.h"

namespace lowbit {

struct FusedActivation {
  bool active = false;
  float lo = 0, hi = 0;

  static FusedActivation FromNode(const Node& n) {
    FusedActivation a;
    const std::string kind = n.GetString("lowbit.activation", "");
    if (kind == "Relu") {
      a = {true, 0.0f, std::numeric_limits<float>::infinity()};
    } else if (kind == "Clip") {
      a = {true, n.GetFloat("lowbit.clip_min", 0), n.GetFloat("lowbit.clip_max", 0)};
    }
    return a;
  }
  void Apply(float* y, int64_t n) const {
    if (!active) return;
    for (int64_t i = 0; i < n; ++i) y[i] = std::min(std::max(y[i], lo), hi);
  }
};

}  // namespace lowbit

#endif  // LOWBIT_RUNTIME_ACTIVATION_H_
