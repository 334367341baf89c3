// Output sizes and padding for sliding-window operators (Conv, pooling),
// shared so that every window op reads pads, auto_pad, strides and dilations
// the same way. Spatial ranks 1..3 are handled as 3-D with leading 1s.
#ifndef LOWBIT_RUNTIME_OPS_CONV_GEOMETRY_H_
#define LOWBIT_RUNTIME_OPS_CONV_GEOMETRY_H_

#include <array>
#include <string>

#include "runtime/op.h"

namespace lowbit {

struct WindowGeometry {
  int spatial = 0;                      // 1..3 spatial dims in the model
  std::array<int64_t, 3> in{1, 1, 1};   // input extent per dim (3-D padded)
  std::array<int64_t, 3> k{1, 1, 1};    // kernel extent
  std::array<int64_t, 3> stride{1, 1, 1};
  std::array<int64_t, 3> dilation{1, 1, 1};
  std::array<int64_t, 3> pad_begin{0, 0, 0};
  std::array<int64_t, 3> out{1, 1, 1};
  int64_t in_size() const { return in[0] * in[1] * in[2]; }
  int64_t out_size() const { return out[0] * out[1] * out[2]; }
  // [n, c, out...] with the model's spatial rank.
  Shape OutputShape(int64_t n, int64_t c) const {
    Shape y = {n, c};
    for (int i = 3 - spatial; i < 3; ++i) y.push_back(out[i]);
    return y;
  }
};

// Reads kernel_shape (or `kernel` from the weight), strides, dilations, pads,
// auto_pad and ceil_mode from `node` for an input of spatial extents `in`.
Result<WindowGeometry> ComputeWindow(const Node& node, const Shape& spatial_in,
                                     const Shape& kernel, bool allow_ceil_mode);

// A convolution's sizes from X [N, C, spatial...] and its weight shape
// [M, C/group, kernel...] (`wname` names the weight in errors: "W",
// "weight_shape"): checks ranks, group and kernel_shape, and computes the window.
struct ConvDims {
  int64_t n = 0, c = 0, m = 0, group = 1;
  WindowGeometry g;
};
Result<ConvDims> ComputeConvDims(const Node& node, const Shape& x, const Shape& w,
                                 const char* wname);

}  // namespace lowbit

#endif  // LOWBIT_RUNTIME_OPS_CONV_GEOMETRY_H_
