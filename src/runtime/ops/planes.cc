#include "runtime/ops/planes.h"

#include "base/target.h"
#include "kernels/depthwise.h"

namespace lowbit {

Status Residual::Prepare(const OpKernel& op, const std::vector<TensorInfo>& in, size_t index,
                         const Shape& out) {
  present = in.size() > index && in[index].present;
  if (!present) return OkStatus();
  LOWBIT_RETURN_IF_ERROR(ExpectFloat(op, in[index], "residual"));
  shape = in[index].shape;
  same_shape = shape == out;
  bool ok = shape.size() <= out.size();
  for (size_t i = 0; ok && i < shape.size(); ++i) {
    const int64_t d = shape[shape.size() - 1 - i], o = out[out.size() - 1 - i];
    ok = d == o || d == 1;
  }
  if (!ok) {
    return InvalidArgument(op.node().Describe(), ": residual ", ShapeToString(shape),
                           " does not broadcast to the output ", ShapeToString(out));
  }
  return OkStatus();
}

void Residual::AddTo(const float* r, float* y, const Shape& out, float lo, float hi) const {
  const int rank = static_cast<int>(out.size());
  // Strides of r over the output's dimensions (0 where r broadcasts).
  std::vector<int64_t> stride(rank, 0);
  int64_t s = 1;
  for (int i = static_cast<int>(shape.size()) - 1, j = rank - 1; i >= 0; --i, --j) {
    stride[j] = shape[i] == 1 ? 0 : s;
    s *= shape[i];
  }
  const int64_t n = NumElements(out);
  std::vector<int64_t> idx(rank, 0);
  int64_t off = 0;
  for (int64_t e = 0; e < n; ++e) {
    y[e] = std::min(std::max(y[e] + r[off], lo), hi);
    for (int d = rank - 1; d >= 0; --d) {  // next index, r's offset with it
      off += stride[d];
      if (++idx[d] < out[d]) break;
      off -= stride[d] * out[d];
      idx[d] = 0;
    }
  }
}

LOWBIT_VECTORIZE void AxpyRow(float* __restrict y, const float* __restrict x, float w, int64_t n,
                              int64_t stride) {
  if (stride == 1) {
    for (int64_t i = 0; i < n; ++i) y[i] += w * x[i];
  } else if (stride == 2) {
    for (int64_t i = 0; i < n; ++i) y[i] += w * x[2 * i];
  } else {
    for (int64_t i = 0; i < n; ++i) y[i] += w * x[i * stride];
  }
}

void DepthwisePlane(const float* __restrict xp, int64_t pw,
                                     const float* __restrict w, int64_t kh_n, int64_t kw_n,
                                     int64_t sh, int64_t sw, int64_t dh, int64_t dw,
                                     float* __restrict y, int64_t oh_n, int64_t ow_n) {
  if (Depthwise3x3Applies(kh_n, kw_n, sh, sw, dh, dw)) {
    Depthwise3x3Avx512(xp, pw, w, sh, y, oh_n, ow_n);
    return;
  }
  DepthwisePlaneRef(xp, pw, w, kh_n, kw_n, sh, sw, dh, dw, y, oh_n, ow_n);
}

void DepthwisePlaneRef(const float* __restrict xp, int64_t pw,
                                        const float* __restrict w, int64_t kh_n, int64_t kw_n,
                                        int64_t sh, int64_t sw, int64_t dh, int64_t dw,
                                        float* __restrict y, int64_t oh_n, int64_t ow_n) {
  for (int64_t oh = 0; oh < oh_n; ++oh) {
    float* yr = y + oh * ow_n;
    for (int64_t ow = 0; ow < ow_n; ++ow) yr[ow] = 0.0f;
    for (int64_t kh = 0; kh < kh_n; ++kh) {
      const float* xr = xp + (oh * sh + kh * dh) * pw;
      for (int64_t kw = 0; kw < kw_n; ++kw) {
        AxpyRow(yr, xr + kw * dw, w[kh * kw_n + kw], ow_n, sw);
      }
    }
  }
}

}  // namespace lowbit
