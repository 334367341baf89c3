// MaxPool, AveragePool (1-3 spatial dims, pads, auto_pad, ceil_mode,
// count_include_pad, dilations for MaxPool) and GlobalAveragePool.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "base/target.h"
#include "runtime/byte_edges.h"
#include "runtime/ops/conv_geometry.h"
#include "runtime/ops/planes.h"

namespace lowbit {
namespace {

// 2-D max pooling of one plane padded with -inf (no bounds checks, so the
// row loops vectorize): y[oh, ow] = max over the window of xp.
LOWBIT_VECTORIZE void MaxPlane(const float* __restrict xp, int64_t pw, int64_t kh_n, int64_t kw_n,
                               int64_t sh, int64_t sw, float* __restrict y, int64_t oh_n,
                               int64_t ow_n) {
  for (int64_t oh = 0; oh < oh_n; ++oh) {
    float* yr = y + oh * ow_n;
    for (int64_t ow = 0; ow < ow_n; ++ow) yr[ow] = -std::numeric_limits<float>::infinity();
    for (int64_t kh = 0; kh < kh_n; ++kh) {
      const float* xr = xp + (oh * sh + kh) * pw;
      for (int64_t kw = 0; kw < kw_n; ++kw) {
        const float* xs = xr + kw;
        if (sw == 1) {
          for (int64_t ow = 0; ow < ow_n; ++ow) yr[ow] = std::max(yr[ow], xs[ow]);
        } else if (sw == 2) {
          for (int64_t ow = 0; ow < ow_n; ++ow) yr[ow] = std::max(yr[ow], xs[2 * ow]);
        } else {
          for (int64_t ow = 0; ow < ow_n; ++ow) yr[ow] = std::max(yr[ow], xs[ow * sw]);
        }
      }
    }
  }
}

// 2x2 windows at stride 2 (LeNet-style pooling) on an unpadded plane of row
// length iw: a plain loop, since on planes of a few pixels the general one's
// set-up costs more than the maxima.
void MaxPlane2x2(const float* __restrict x, int64_t iw, float* __restrict y, int64_t oh_n,
                 int64_t ow_n) {
  for (int64_t oh = 0; oh < oh_n; ++oh) {
    const float* r0 = x + 2 * oh * iw;
    const float* r1 = r0 + iw;
    for (int64_t ow = 0; ow < ow_n; ++ow) {
      y[oh * ow_n + ow] =
          std::max(std::max(r0[2 * ow], r0[2 * ow + 1]), std::max(r1[2 * ow], r1[2 * ow + 1]));
    }
  }
}

// y[j] = max(y[j], x[j]).
LOWBIT_VECTORIZE void MaxBytes(uint8_t* __restrict y, const uint8_t* __restrict x, int64_t n) {
  for (int64_t j = 0; j < n; ++j) y[j] = std::max(y[j], x[j]);
}

// One output row of NHWC byte pixels from a row `t` of in_w pixels (the
// window rows' max): pixel ow is the max of pixels [ow * stride - pad,
// + k) that lie inside the row, c channels each.
LOWBIT_VECTORIZE void MaxRowWindows(const uint8_t* __restrict t, int64_t in_w, int64_t c, int64_t k,
                                    int64_t stride, int64_t pad, uint8_t* __restrict y,
                                    int64_t out_w) {
  for (int64_t ow = 0; ow < out_w; ++ow) {
    const int64_t w0 = std::max<int64_t>(0, ow * stride - pad);
    const int64_t w1 = std::min(in_w, ow * stride - pad + k);
    uint8_t* yp = y + ow * c;
    if (w0 >= w1) {
      for (int64_t j = 0; j < c; ++j) yp[j] = 0;
      continue;
    }
    const uint8_t* x = t + w0 * c;
    for (int64_t j = 0; j < c; ++j) yp[j] = x[j];
    for (int64_t iw = w0 + 1; iw < w1; ++iw) {
      x += c;
      for (int64_t j = 0; j < c; ++j) yp[j] = std::max(yp[j], x[j]);
    }
  }
}

class Pool final : public OpKernel {
 public:
  Pool(const Node& n, bool max) : OpKernel(n), max_(max) {}

  Status Prepare(const std::vector<TensorInfo>& in, std::vector<TensorInfo>* out) override {
    if (in.empty() || !in[0].present) return InvalidArgument(Where(), "missing input");
    // Byte edges (runtime/byte_edges.h): 8-bit NHWC pixels in and out.
    bytes_ = node_.GetInt(kByteInput, 0) != 0;
    if (bytes_ != node_.Has(kByteOutputAct) || (bytes_ && !max_)) {
      return InvalidArgument(Where(), "8-bit pixels must come in and go out of a MaxPool");
    }
    Shape x = in[0].shape;
    if (bytes_) {
      if (in[0].dtype != DType::kUint8 || x.size() != 4) {
        return InvalidArgument(Where(), "X ", DTypeName(in[0].dtype), " ", ShapeToString(x),
                               " must be uint8 pixels [N, H, W, C]");
      }
      x = {x[0], x[3], x[1], x[2]};
    } else {
      LOWBIT_RETURN_IF_ERROR(ExpectFloat(*this, in[0], "X"));
    }
    if (out->size() > 1) {
      return Unimplemented(Where(), "the Indices output is not supported");
    }
    if (x.size() < 3) return InvalidArgument(Where(), "input ", ShapeToString(x), " needs rank >= 3");
    if (!node_.Has("kernel_shape")) return InvalidArgument(Where(), "kernel_shape is required");
    if (!max_ && node_.Has("dilations")) {
      return Unimplemented(Where(), "AveragePool dilations (opset 19) are not supported");
    }
    LOWBIT_ASSIGN_OR_RETURN(
        g_, ComputeWindow(node_, Shape(x.begin() + 2, x.end()), node_.GetInts("kernel_shape"), true));
    count_pad_ = node_.GetInt("count_include_pad", 0) != 0;
    pad_end_ = node_.GetInts("pads", std::vector<int64_t>(2 * g_.spatial, 0));
    planes_ = x[0] * x[1];
    n_ = x[0];
    Shape y = g_.OutputShape(x[0], x[1]);
    (*out)[0] = bytes_ ? TensorInfo{true, DType::kUint8, {y[0], y[2], y[3], y[1]}, nullptr}
                       : TensorInfo{true, DType::kFloat32, y, nullptr};
    return OkStatus();
  }

  void Run(const std::vector<const Tensor*>& in, const std::vector<Tensor*>& out,
           const ExecContext& ctx) override {
    if (bytes_) {
      MaxPoolBytes(in[0]->data<uint8_t>(), out[0]->data<uint8_t>(), ctx);
      return;
    }
    const float* x = in[0]->data<float>();
    float* y = out[0]->data<float>();
    const auto& g = g_;
    if (max_ && g.in[0] == 1 && g.k[0] == 1 && g.dilation[1] == 1 && g.dilation[2] == 1) {
      MaxPool2D(x, y, ctx);
      return;
    }
    // With explicit pads, count_include_pad counts window cells inside the
    // padded extent; otherwise cells inside the input.
    std::array<int64_t, 3> padded_end{g.in[0], g.in[1], g.in[2]};
    if (node_.GetString("auto_pad", "NOTSET") == "NOTSET") {
      for (int i = 0; i < g.spatial; ++i) padded_end[3 - g.spatial + i] += pad_end_[g.spatial + i];
    }
    ctx.pool->ParallelFor(planes_, [&](int64_t s, int64_t e) {
      for (int64_t p = s; p < e; ++p) {
        const float* xp = x + p * g.in_size();
        float* yp = y + p * g.out_size();
        for (int64_t od = 0; od < g.out[0]; ++od) {
          for (int64_t oh = 0; oh < g.out[1]; ++oh) {
            for (int64_t ow = 0; ow < g.out[2]; ++ow) {
              const int64_t o[3] = {od, oh, ow};
              int64_t lo[3], hi[3], plo[3], phi[3];
              for (int d = 0; d < 3; ++d) {
                const int64_t start = o[d] * g.stride[d] - g.pad_begin[d];
                const int64_t span = (g.k[d] - 1) * g.dilation[d] + 1;
                lo[d] = start;
                hi[d] = start + span;  // exclusive
                plo[d] = std::max<int64_t>(start, -g.pad_begin[d]);
                phi[d] = std::min<int64_t>(start + span, padded_end[d]);
              }
              float acc = max_ ? -std::numeric_limits<float>::infinity() : 0.0f;
              int64_t count = 0;
              for (int64_t id = lo[0]; id < hi[0]; id += g.dilation[0]) {
                if (id < 0 || id >= g.in[0]) continue;
                for (int64_t ih = lo[1]; ih < hi[1]; ih += g.dilation[1]) {
                  if (ih < 0 || ih >= g.in[1]) continue;
                  const float* row = xp + (id * g.in[1] + ih) * g.in[2];
                  for (int64_t iw = lo[2]; iw < hi[2]; iw += g.dilation[2]) {
                    if (iw < 0 || iw >= g.in[2]) continue;
                    acc = max_ ? std::max(acc, row[iw]) : acc + row[iw];
                    ++count;
                  }
                }
              }
              if (!max_) {
                if (count_pad_) {
                  count = (phi[0] - plo[0]) * (phi[1] - plo[1]) * (phi[2] - plo[2]);
                }
                acc = count > 0 ? acc / static_cast<float>(count) : 0.0f;
              }
              yp[(od * g.out[1] + oh) * g.out[2] + ow] = acc;
            }
          }
        }
      }
    });
  }

  // Each thread copies a plane into a -inf padded scratch plane; windows
  // that all lie inside the input read the planes in place.
  void MaxPool2D(const float* x, float* y, const ExecContext& ctx) {
    const auto& g = g_;
    const int64_t ph = PaddedRows(g), pw = PaddedCols(g);
    if (g.pad_begin[1] == 0 && g.pad_begin[2] == 0 && ph <= g.in[1] && pw <= g.in[2]) {
      ctx.pool->ParallelFor(planes_, [&](int64_t p0, int64_t p1) {
        const bool k2s2 = g.k[1] == 2 && g.k[2] == 2 && g.stride[1] == 2 && g.stride[2] == 2;
        for (int64_t p = p0; p < p1; ++p) {
          if (k2s2) {
            MaxPlane2x2(x + p * g.in_size(), g.in[2], y + p * g.out_size(), g.out[1], g.out[2]);
          } else {
            MaxPlane(x + p * g.in_size(), g.in[2], g.k[1], g.k[2], g.stride[1], g.stride[2],
                     y + p * g.out_size(), g.out[1], g.out[2]);
          }
        }
      });
      return;
    }
    const int threads = ctx.pool->threads();
    if (static_cast<int>(scratch_.size()) < threads) scratch_.resize(threads);
    ctx.pool->ParallelFor(threads, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) {
        std::vector<float>& xp = scratch_[t];
        xp.assign(ph * pw, -std::numeric_limits<float>::infinity());
        for (int64_t p = planes_ * t / threads; p < planes_ * (t + 1) / threads; ++p) {
          const float* xc = x + p * g.in_size();
          ForInputRows(g, ph, pw, [&](int64_t r, int64_t ih, int64_t c0, int64_t n) {
            std::memcpy(xp.data() + r * pw + c0, xc + ih * g.in[2] + (c0 - g.pad_begin[2]),
                        sizeof(float) * n);
          });
          MaxPlane(xp.data(), pw, g.k[1], g.k[2], g.stride[1], g.stride[2], y + p * g.out_size(),
                   g.out[1], g.out[2]);
        }
      }
    });
  }

  // NHWC bytes: each output pixel is the channel-wise max of the window's
  // pixels inside the input (padding never wins a max). Separable: the max
  // of the window's input rows, then of each window along that row.
  void MaxPoolBytes(const uint8_t* x, uint8_t* y, const ExecContext& ctx) {
    const auto& g = g_;
    const int64_t c = planes_ / n_, rows = n_ * g.out[1], row_bytes = g.in[2] * c;
    const int threads = ctx.pool->threads();
    if (static_cast<int>(byte_rows_.size()) < threads) byte_rows_.resize(threads);
    auto pool_rows = [&](int64_t r0, int64_t r1, std::vector<uint8_t>& t) {
      t.resize(static_cast<size_t>(row_bytes));
      for (int64_t r = r0; r < r1; ++r) {
        const int64_t i = r / g.out[1], oh = r % g.out[1];
        const int64_t h0 = std::max<int64_t>(0, oh * g.stride[1] - g.pad_begin[1]);
        const int64_t h1 = std::min(g.in[1], oh * g.stride[1] - g.pad_begin[1] + g.k[1]);
        uint8_t* yr = y + r * g.out[2] * c;
        if (h0 >= h1) {
          std::memset(yr, 0, static_cast<size_t>(g.out[2] * c));
          continue;
        }
        const uint8_t* x0 = x + (i * g.in[1] + h0) * row_bytes;
        const uint8_t* src = x0;
        if (h1 - h0 > 1) {
          std::memcpy(t.data(), x0, static_cast<size_t>(row_bytes));
          for (int64_t ih = h0 + 1; ih < h1; ++ih)
            MaxBytes(t.data(), x0 + (ih - h0) * row_bytes, row_bytes);
          src = t.data();
        }
        MaxRowWindows(src, g.in[2], c, g.k[2], g.stride[2], g.pad_begin[2], yr, g.out[2]);
      }
    };
    if (WorthSplitting(rows * g.out[2] * c * g.k[1] * g.k[2]) && threads > 1) {  // window reads
      ctx.pool->ParallelFor(threads, [&](int64_t t0, int64_t t1) {
        for (int64_t t = t0; t < t1; ++t) {
          pool_rows(rows * t / threads, rows * (t + 1) / threads, byte_rows_[t]);
        }
      });
    } else {
      pool_rows(0, rows, byte_rows_[0]);
    }
  }

 private:
  std::vector<std::vector<float>> scratch_;
  std::vector<std::vector<uint8_t>> byte_rows_;  // per thread: one input row's window max
  bool max_, bytes_ = false;
  int64_t n_ = 1;
  bool count_pad_ = false;
  WindowGeometry g_;
  std::vector<int64_t> pad_end_;
  int64_t planes_ = 0;
};

class GlobalAveragePool final : public OpKernel {
 public:
  using OpKernel::OpKernel;
  Status Prepare(const std::vector<TensorInfo>& in, std::vector<TensorInfo>* out) override {
    LOWBIT_RETURN_IF_ERROR(ExpectFloat(*this, in[0], "X"));
    const Shape& x = in[0].shape;
    if (x.size() < 3) return InvalidArgument(Where(), "input ", ShapeToString(x), " needs rank >= 3");
    planes_ = x[0] * x[1];
    size_ = NumElements(Shape(x.begin() + 2, x.end()));
    Shape y(x.size(), 1);
    y[0] = x[0];
    y[1] = x[1];
    (*out)[0] = TensorInfo{true, DType::kFloat32, y, nullptr};
    return OkStatus();
  }
  void Run(const std::vector<const Tensor*>& in, const std::vector<Tensor*>& out,
           const ExecContext& ctx) override {
    const float* x = in[0]->data<float>();
    float* y = out[0]->data<float>();
    ctx.pool->ParallelFor(planes_, [&](int64_t s, int64_t e) {
      for (int64_t p = s; p < e; ++p) {
        double acc = 0;
        for (int64_t i = 0; i < size_; ++i) acc += x[p * size_ + i];
        y[p] = static_cast<float>(acc / static_cast<double>(size_));
      }
    });
  }

 private:
  int64_t planes_ = 0, size_ = 0;
};

}  // namespace

std::unique_ptr<OpKernel> MakeMaxPool(const Node& n) { return std::make_unique<Pool>(n, true); }
std::unique_ptr<OpKernel> MakeAveragePool(const Node& n) { return std::make_unique<Pool>(n, false); }
std::unique_ptr<OpKernel> MakeGlobalAveragePool(const Node& n) {
  return std::make_unique<GlobalAveragePool>(n);
}

}  // namespace lowbit
