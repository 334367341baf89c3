// Conv (1-3 spatial dims, groups, dilations, every auto_pad): im2col feeding
// OpenBLAS sgemm per image and group; depthwise convolution (one input channel
// per group) as a direct loop. Bias and a fused activation are applied in place.
//
// The same kernel runs weight-only PackedConv (act "float", runtime/
// packed_node.h): its weights stay packed and are decoded a tile of output
// channels at a time (kernels/weight_decode.h) just before that tile's GEMM.
#include <algorithm>
#include <cstring>

#include <cmath>

#include "base/target.h"
#include "kernels/weight_decode.h"
#include "runtime/activation.h"
#include "runtime/ops/conv_geometry.h"
#include "runtime/ops/planes.h"
#include "runtime/packed_inputs.h"
#include "runtime/sgemm.h"

namespace lowbit {
namespace {

// y[i] = clamp(y[i] + b, lo, hi).
LOWBIT_VECTORIZE void BiasClamp(float* __restrict y, int64_t n, float b, float lo, float hi) {
  for (int64_t i = 0; i < n; ++i) y[i] = std::min(std::max(y[i] + b, lo), hi);
}

// y[i] = clamp(y[i] + b + r[i], lo, hi): bias, a fused residual, activation.
LOWBIT_VECTORIZE void BiasResidualClamp(float* __restrict y, int64_t n, float b,
                                        const float* __restrict r, float lo, float hi) {
  for (int64_t i = 0; i < n; ++i) y[i] = std::min(std::max((y[i] + b) + r[i], lo), hi);
}

class Conv final : public OpKernel {
 public:
  Conv(const Node& n, bool packed) : OpKernel(n), packed_(packed) {}
  std::string Algorithm() const override { return packed_ ? "weight-only" : ""; }

  Status Prepare(const std::vector<TensorInfo>& in, std::vector<TensorInfo>* out) override {
    Shape wshape;
    if (packed_) {
      LOWBIT_ASSIGN_OR_RETURN(wshape, PreparePacked(in));
    } else {
      if (in.size() < 2 || !in[0].present || !in[1].present) {
        return InvalidArgument(Where(), "expects inputs X and W");
      }
      LOWBIT_RETURN_IF_ERROR(ExpectFloat(*this, in[1], "W"));
      wshape = in[1].shape;
    }
    LOWBIT_RETURN_IF_ERROR(ExpectFloat(*this, in[0], "X"));
    ConvDims d;
    LOWBIT_ASSIGN_OR_RETURN(d, ComputeConvDims(node_, in[0].shape, wshape, packed_ ? "weight_shape" : "W"));
    n_ = d.n;
    c_ = d.c;
    m_ = d.m;
    group_ = d.group;
    g_ = d.g;
    bias_in_ = packed_ ? 3 : 2;
    has_bias_ = static_cast<int>(in.size()) > bias_in_ && in[bias_in_].present;
    if (has_bias_) {
      LOWBIT_RETURN_IF_ERROR(ExpectFloat(*this, in[bias_in_], "B"));
      if (in[bias_in_].shape != Shape{m_}) {
        return InvalidArgument(Where(), "bias ", ShapeToString(in[bias_in_].shape), " must be [", m_, "]");
      }
    }
    cg_ = c_ / group_;
    mg_ = m_ / group_;
    kk_ = cg_ * g_.k[0] * g_.k[1] * g_.k[2];
    depthwise_ = cg_ == 1 && group_ > 1;
    // Pointwise: the image itself is the GEMM's column matrix, so its
    // extent must be the output's (an end pad alone would make it larger).
    pointwise_ = g_.k[0] * g_.k[1] * g_.k[2] == 1 && g_.stride == std::array<int64_t, 3>{1, 1, 1} &&
                 g_.pad_begin == std::array<int64_t, 3>{0, 0, 0} && g_.out == g_.in;
    // Images per GEMM: im2col rows span `chunk_` images, so late layers with
    // small outputs still give sgemm wide matrices; the column buffer stays
    // under ~32 MB.
    // The im2col buffer is sized by the model: checked against the memory
    // cap before it is allocated.
    LOWBIT_RETURN_IF_ERROR(
        CheckedBytes(DType::kFloat32, {kk_, g_.out_size()}, Where() + "the im2col buffer").status());
    const int64_t per_image = kk_ * g_.out_size();
    chunk_ = std::clamp<int64_t>((int64_t{8} << 20) / std::max<int64_t>(per_image, 1), 1, n_);
    if (depthwise_) chunk_ = 1;
    if (!depthwise_ && (!pointwise_ || chunk_ > 1)) col_.assign(per_image * chunk_, 0.0f);
    if (chunk_ > 1) {
      LOWBIT_RETURN_IF_ERROR(
          CheckedBytes(DType::kFloat32, {mg_, g_.out_size(), chunk_}, Where() + "the output buffer").status());
      out_.assign(mg_ * g_.out_size() * chunk_, 0.0f);
    }
    ComputeColumnRanges(&col_lo_, &col_hi_);
    act_ = FusedActivation::FromNode(node_);
    if (packed_) tile_rows_ = DecodeTileRows(mg_, kk_);
    out_shape_ = g_.OutputShape(n_, m_);
    LOWBIT_RETURN_IF_ERROR(residual_.Prepare(*this, in, bias_in_ + 1, out_shape_));
    (*out)[0] = TensorInfo{true, DType::kFloat32, out_shape_, nullptr};
    return OkStatus();
  }

  void Run(const std::vector<const Tensor*>& in, const std::vector<Tensor*>& out,
           const ExecContext& ctx) override {
    const float* x = in[0]->data<float>();
    const float* w = packed_ ? nullptr : in[1]->data<float>();
    if (packed_ && depthwise_) {
      // Depthwise weights are m x taps, a few KiB: decode them whole.
      float* dw = DecodeBuffer(m_ * kk_);
      decoder_.DecodeRows(0, m_, dw, kk_);
      w = dw;
    }
    const float* bias = has_bias_ ? in[bias_in_]->data<float>() : nullptr;
    float* y = out[0]->data<float>();
    const int64_t isz = g_.in_size(), osz = g_.out_size();
    for (int64_t n0 = 0; n0 < n_; n0 += chunk_) {
      const int64_t nb = std::min(chunk_, n_ - n0);
      if (depthwise_) {
        Depthwise(x + n0 * c_ * isz, w, y + n0 * m_ * osz, ctx);
      } else if (kk_ == 0) {
        // No input channel: every product is empty, the output its bias.
        std::fill_n(y + n0 * m_ * osz, nb * m_ * osz, 0.0f);
      } else {
        for (int64_t grp = 0; grp < group_; ++grp) {
          const float* wg = packed_ ? nullptr : w + grp * mg_ * kk_;
          if (nb == 1) {
            const float* xg = x + (n0 * c_ + grp * cg_) * isz;
            const float* col = xg;
            if (!pointwise_) {
              Im2Col(xg, col_.data(), osz, ctx);
              col = col_.data();
            }
            Gemm(grp, wg, col, osz, y + (n0 * m_ + grp * mg_) * osz, ctx);
            continue;
          }
          // Several images: col is [kk, nb * osz], image i in columns
          // [i * osz, (i + 1) * osz); the product is scattered back to NCHW.
          const int64_t ld = nb * osz;
          for (int64_t i = 0; i < nb; ++i) {
            const float* xg = x + ((n0 + i) * c_ + grp * cg_) * isz;
            if (pointwise_) {
              for (int64_t r = 0; r < kk_; ++r) {
                std::memcpy(col_.data() + r * ld + i * osz, xg + r * osz, sizeof(float) * osz);
              }
            } else {
              Im2Col(xg, col_.data() + i * osz, ld, ctx);
            }
          }
          Gemm(grp, wg, col_.data(), ld, out_.data(), ctx);
          for (int64_t i = 0; i < nb; ++i) {
            for (int64_t r = 0; r < mg_; ++r) {
              std::memcpy(y + ((n0 + i) * m_ + grp * mg_ + r) * osz, out_.data() + r * ld + i * osz,
                          sizeof(float) * osz);
            }
          }
        }
      }
      // Epilogue: bias, the residual when it has the output's shape, the
      // activation (after a broadcast residual, which is added below).
      const bool act_now = act_.active && (!residual_.present || residual_.same_shape);
      const float* res = residual_.same_shape ? in[bias_in_ + 1]->data<float>() + n0 * m_ * osz : nullptr;
      if (bias == nullptr && !act_now && res == nullptr) continue;  // no epilogue to apply
      float* yn = y + n0 * m_ * osz;
      const float lo = act_now ? act_.lo : -INFINITY;
      const float hi = act_now ? act_.hi : INFINITY;
      ctx.pool->ParallelFor(nb * m_, [&](int64_t s, int64_t e) {
        for (int64_t p = s; p < e; ++p) {
          const float b = bias != nullptr ? bias[p % m_] : 0.0f;
          if (res != nullptr) {
            BiasResidualClamp(yn + p * osz, osz, b, res + p * osz, lo, hi);
          } else {
            BiasClamp(yn + p * osz, osz, b, lo, hi);
          }
        }
      });
    }
    if (residual_.present && !residual_.same_shape) {
      residual_.AddTo(in[bias_in_ + 1]->data<float>(), y, out_shape_,
                      act_.active ? act_.lo : -INFINITY, act_.active ? act_.hi : INFINITY);
    }
  }

  // PackedConv with act "float": the packed weight, refusing formats that
  // have no levels to decode. Returns the weight's shape.
  Result<Shape> PreparePacked(const std::vector<TensorInfo>& in) {
    PackedTensor w;
    LOWBIT_ASSIGN_OR_RETURN(w, PreparePackedInputs(*this, in));
    Shape shape = w.shape();
    decoder_ = WeightDecoder(std::move(w));
    return shape;
  }

  // y[mg, ld] = W_grp[mg, kk] * col[kk, ld]: one sgemm on fp32 weights, or
  // per tile of decoded rows for packed weights.
  void Gemm(int64_t grp, const float* wg, const float* col, int64_t ld, float* y,
            const ExecContext& ctx) {
    if (!packed_) {
      Sgemm(ctx, false, false, mg_, ld, kk_, 1.0f, wg, kk_, col, ld, 0.0f, y, ld);
      return;
    }
    float* tile = DecodeBuffer(tile_rows_ * kk_);
    for (int64_t r0 = 0; r0 < mg_; r0 += tile_rows_) {
      const int64_t rows = std::min(tile_rows_, mg_ - r0), first = grp * mg_ + r0;
      ctx.pool->ParallelFor(rows, [&](int64_t s, int64_t e) {
        decoder_.DecodeRows(first + s, first + e, tile + s * kk_, kk_);
      });
      Sgemm(ctx, false, false, rows, ld, kk_, 1.0f, tile, kk_, col, ld, 0.0f, y + r0 * ld, ld);
    }
  }

  // col[(c, kd, kh, kw), (od, oh, ow)] = x[c, od*s - p + kd*d, ...] or 0.
  // Per kernel column kw the valid output columns [lo, hi) are fixed, so each
  // output row is a zero head, a copy (memcpy at stride 1) and a zero tail.
  void Im2Col(const float* x, float* col, int64_t ld, const ExecContext& ctx) {
    const auto& g = g_;
    ctx.pool->ParallelFor(kk_, [&](int64_t s, int64_t e) {
      for (int64_t row = s; row < e; ++row) {
        int64_t r = row;
        const int64_t kw = r % g.k[2]; r /= g.k[2];
        const int64_t kh = r % g.k[1]; r /= g.k[1];
        const int64_t kd = r % g.k[0]; r /= g.k[0];
        const float* xc = x + r * g.in_size();
        float* dst = col + row * ld;
        const int64_t lo = col_lo_[kw], hi = col_hi_[kw];
        const int64_t off = kw * g.dilation[2] - g.pad_begin[2];
        for (int64_t od = 0; od < g.out[0]; ++od) {
          const int64_t id = od * g.stride[0] - g.pad_begin[0] + kd * g.dilation[0];
          for (int64_t oh = 0; oh < g.out[1]; ++oh) {
            const int64_t ih = oh * g.stride[1] - g.pad_begin[1] + kh * g.dilation[1];
            float* d = dst + (od * g.out[1] + oh) * g.out[2];
            if (id < 0 || id >= g.in[0] || ih < 0 || ih >= g.in[1] || hi <= lo) {
              std::memset(d, 0, sizeof(float) * g.out[2]);
              continue;
            }
            const float* src = xc + (id * g.in[1] + ih) * g.in[2] + off;
            std::memset(d, 0, sizeof(float) * lo);
            if (g.stride[2] == 1) {
              std::memcpy(d + lo, src + lo, sizeof(float) * (hi - lo));
            } else {
              const int64_t st = g.stride[2];
              for (int64_t ow = lo; ow < hi; ++ow) d[ow] = src[ow * st];
            }
            std::memset(d + hi, 0, sizeof(float) * (g.out[2] - hi));
          }
        }
      }
    });
  }

  // For each kernel column kw, the output columns whose input column
  // ow * s - p + kw * d lies inside the row.
  void ComputeColumnRanges(std::vector<int64_t>* lo, std::vector<int64_t>* hi) const {
    const auto& g = g_;
    lo->assign(g.k[2], 0);
    hi->assign(g.k[2], 0);
    for (int64_t kw = 0; kw < g.k[2]; ++kw) {
      const int64_t off = kw * g.dilation[2] - g.pad_begin[2];
      // smallest ow with ow * s + off >= 0; largest with ow * s + off <= in - 1
      int64_t l = off >= 0 ? 0 : (-off + g.stride[2] - 1) / g.stride[2];
      int64_t h = g.in[2] - 1 - off < 0 ? 0 : (g.in[2] - 1 - off) / g.stride[2] + 1;
      (*lo)[kw] = std::clamp<int64_t>(l, 0, g.out[2]);
      (*hi)[kw] = std::clamp<int64_t>(h, (*lo)[kw], g.out[2]);
    }
  }

  // One input channel per group: output channel m reads input channel m / mg.
  // Tap-major: for each kernel tap, one pass adds w * x over the range of
  // output columns whose input column is inside the image, so the inner loop
  // has no bounds checks and vectorizes. Depth (3-D) runs the same per slice.
  void Depthwise(const float* x, const float* w, float* y, const ExecContext& ctx) {
    const auto& g = g_;
    if (g.k[0] == 1 && g.in[0] == 1 && g.out[0] == 1) {
      Depthwise2D(x, w, y, ctx);
      return;
    }
    const int64_t ksz = g.k[0] * g.k[1] * g.k[2];
    const std::vector<int64_t>& lo = col_lo_;
    const std::vector<int64_t>& hi = col_hi_;
    ctx.pool->ParallelFor(m_, [&](int64_t s, int64_t e) {
      for (int64_t m = s; m < e; ++m) {
        const float* xc = x + (m / mg_) * g.in_size();
        const float* wm = w + m * ksz;
        float* ym = y + m * g.out_size();
        std::fill_n(ym, g.out_size(), 0.0f);
        for (int64_t od = 0; od < g.out[0]; ++od) {
          for (int64_t kd = 0; kd < g.k[0]; ++kd) {
            const int64_t id = od * g.stride[0] - g.pad_begin[0] + kd * g.dilation[0];
            if (id < 0 || id >= g.in[0]) continue;
            for (int64_t oh = 0; oh < g.out[1]; ++oh) {
              float* yrow = ym + (od * g.out[1] + oh) * g.out[2];
              for (int64_t kh = 0; kh < g.k[1]; ++kh) {
                const int64_t ih = oh * g.stride[1] - g.pad_begin[1] + kh * g.dilation[1];
                if (ih < 0 || ih >= g.in[1]) continue;
                const float* xrow = xc + (id * g.in[1] + ih) * g.in[2];
                for (int64_t kw = 0; kw < g.k[2]; ++kw) {
                  const float wv = wm[(kd * g.k[1] + kh) * g.k[2] + kw];
                  const float* xs = xrow + kw * g.dilation[2] - g.pad_begin[2];
                  if (hi[kw] > lo[kw]) {
                    AxpyRow(yrow + lo[kw], xs + lo[kw] * g.stride[2], wv, hi[kw] - lo[kw],
                            g.stride[2]);
                  }
                }
              }
            }
          }
        }
      }
    });
  }

  // 2-D depthwise: each thread copies a channel into a zero-padded plane (its
  // own scratch, sized once) and runs DepthwisePlane on it.
  void Depthwise2D(const float* x, const float* w, float* y, const ExecContext& ctx) {
    const auto& g = g_;
    const int64_t ph = PaddedRows(g), pw = PaddedCols(g);
    const int64_t ksz = g.k[1] * g.k[2];
    const int threads = ctx.pool->threads();
    if (static_cast<int>(pad_scratch_.size()) < threads) pad_scratch_.resize(threads);
    ctx.pool->ParallelFor(threads, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) {
        std::vector<float>& xp = pad_scratch_[t];
        xp.assign(ph * pw, 0.0f);
        const int64_t m0 = m_ * t / threads, m1 = m_ * (t + 1) / threads;
        for (int64_t m = m0; m < m1; ++m) {
          const float* xc = x + (m / mg_) * g.in_size();
          // Copy the rows that land inside the padded plane; borders stay 0.
          ForInputRows(g, ph, pw, [&](int64_t r, int64_t ih, int64_t c0, int64_t n) {
            std::memcpy(xp.data() + r * pw + c0, xc + ih * g.in[2] + (c0 - g.pad_begin[2]),
                        sizeof(float) * n);
          });
          DepthwisePlane(xp.data(), pw, w + m * ksz, g.k[1], g.k[2], g.stride[1], g.stride[2],
                         g.dilation[1], g.dilation[2], y + m * g.out_size(), g.out[1], g.out[2]);
        }
      }
    });
  }

  const bool packed_;
  Residual residual_;
  Shape out_shape_;
  WeightDecoder decoder_;  // packed_
  int64_t tile_rows_ = 0;  // packed_: output channels decoded per GEMM
  int bias_in_ = 2;
  std::vector<std::vector<float>> pad_scratch_;
  WindowGeometry g_;
  int64_t n_ = 0, c_ = 0, m_ = 0, group_ = 1, cg_ = 0, mg_ = 0, kk_ = 0;
  bool has_bias_ = false, depthwise_ = false, pointwise_ = false;
  std::vector<float> col_, out_;
  int64_t chunk_ = 1;
  std::vector<int64_t> col_lo_, col_hi_;
  FusedActivation act_;
};

}  // namespace

std::unique_ptr<OpKernel> MakeConv(const Node& n) { return std::make_unique<Conv>(n, false); }
std::unique_ptr<OpKernel> MakeWeightOnlyConv(const Node& n) { return std::make_unique<Conv>(n, true); }

}  // namespace lowbit
