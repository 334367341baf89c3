// 2-D plane helpers shared by the window operators (fp32 and packed
// depthwise convolution, max pooling): a plane copied into a padded scratch
// plane once, so the per-tap loops need no bounds checks and vectorize.
#ifndef LOWBIT_RUNTIME_OPS_PLANES_H_
#define LOWBIT_RUNTIME_OPS_PLANES_H_

#include <algorithm>
#include <cstdint>

#include "runtime/ops/conv_geometry.h"
#include "runtime/op.h"

namespace lowbit {

// A fused residual (ir/passes.h FuseResidualAdds): input `index` of a conv
// node, added to its output before the fused activation. Same shape as the
// output (added in the epilogue) or broadcastable to it (added afterwards).
struct Residual {
  bool present = false;
  bool same_shape = false;
  Shape shape;

  // Checks the input against the output shape; errors name the node.
  Status Prepare(const OpKernel& op, const std::vector<TensorInfo>& in, size_t index,
                 const Shape& out);
  // y = clamp(y + r, lo, hi) over the whole output, r broadcast.
  void AddTo(const float* r, float* y, const Shape& out, float lo, float hi) const;
};

// The padded plane a 2-D window op reads: rows and columns for every output,
// the input placed at (pad_begin[1], pad_begin[2]).
inline int64_t PaddedRows(const WindowGeometry& g) {
  return (g.out[1] - 1) * g.stride[1] + (g.k[1] - 1) * g.dilation[1] + 1;
}
inline int64_t PaddedCols(const WindowGeometry& g) {
  return (g.out[2] - 1) * g.stride[2] + (g.k[2] - 1) * g.dilation[2] + 1;
}

// Calls copy(padded_row, input_row, first_col, cols) for each padded row that
// holds input: the padded plane's columns [first_col, first_col + cols) take
// the input row's columns [first_col - pad_begin[2], ...). Rows and columns
// outside the input are left as the caller filled them.
template <typename F>
void ForInputRows(const WindowGeometry& g, int64_t ph, int64_t pw, F copy) {
  const int64_t c0 = std::max<int64_t>(0, g.pad_begin[2]);
  const int64_t c1 = std::min<int64_t>(pw, g.pad_begin[2] + g.in[2]);
  if (c1 <= c0) return;
  for (int64_t r = 0; r < ph; ++r) {
    const int64_t ih = r - g.pad_begin[1];
    if (ih < 0 || ih >= g.in[1]) continue;
    copy(r, ih, c0, c1 - c0);
  }
}

// y[i] += w * x[i * stride] for i in [0, n).
void AxpyRow(float* y, const float* x, float w, int64_t n, int64_t stride);

// y[oh, ow] = sum over taps of w[kh, kw] * xp[oh*sh + kh*dh, ow*sw + kw*dw]
// on a padded plane of row length pw. 3x3 kernels at stride 1 or 2 run on
// kernels/depthwise.h where the CPU has AVX-512.
void DepthwisePlane(const float* xp, int64_t pw, const float* w, int64_t kh_n, int64_t kw_n,
                    int64_t sh, int64_t sw, int64_t dh, int64_t dw, float* y, int64_t oh_n,
                    int64_t ow_n);
// The portable loop, every shape.
void DepthwisePlaneRef(const float* xp, int64_t pw, const float* w, int64_t kh_n, int64_t kw_n,
                       int64_t sh, int64_t sw, int64_t dh, int64_t dw, float* y, int64_t oh_n,
                       int64_t ow_n);

}  // namespace lowbit

#endif  // LOWBIT_RUNTIME_OPS_PLANES_H_
