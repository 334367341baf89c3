// PackedConv's depthwise algorithms (runtime/ops/packed_conv.h): on fp32
// planes of small exact integers, and on the NHWC byte image
// (kernels/depthwise.h) where byte edges reach the layer.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "runtime/ops/byte_ops.h"
#include "runtime/ops/packed_conv.h"
#include "runtime/ops/planes.h"

namespace lowbit {
class PackedConv::DepthwisePlanesAlgorithm final : public ConvAlgorithm {
 public:
  DepthwisePlanesAlgorithm(std::vector<float> weight, std::vector<float> scale)
      : weight_(std::move(weight)), scale_(std::move(scale)) {}

  std::string name() const override { return "depthwise-planes"; }

  void RunImage(PackedConv& c, const ImageIO& io, const ExecContext& ctx, ImageScratch&) override {
    const int64_t isz = c.c_ * c.g_.in_size(), osz = c.g_.out_size();
    Depthwise(c, io.x + io.i * isz, io.a, io.bias, !io.late_residual, io.y + io.i * c.m_ * osz,
              ctx);
  }

 private:
  struct Scratch {
    std::vector<float> plane, acc;
  };

  // y[m] = scale[m] * xs * sum over taps of (T - offset[m]) * (a - z) + b[m],
  // on a plane of a - z (padding 0) in fp32 lanes: every product and sum is
  // an exact small integer (|acc| < 2^24 for windows up to 7x7x5).
  void Depthwise(const PackedConv& c, const float* x, const ActQuant& a, const float* bias,
                 bool activation, float* y, const ExecContext& ctx) {
    const auto& g = c.g_;
    const int64_t ph = PaddedRows(g), pw = PaddedCols(g);
    const int64_t pd = (g.out[0] - 1) * g.stride[0] + (g.k[0] - 1) * g.dilation[0] + 1;
    const int threads = ctx.pool->threads();
    if (static_cast<int>(scratch_.size()) < threads) scratch_.resize(threads);
    const float lo = activation && c.fused_.active ? c.fused_.lo : -INFINITY;
    const float hi = activation && c.fused_.active ? c.fused_.hi : INFINITY;
    const bool fast3x3 =
        g.k[0] == 1 && g.out[0] == 1 &&
        Depthwise3x3Applies(g.k[1], g.k[2], g.stride[1], g.stride[2], g.dilation[1], g.dilation[2]);
    ctx.pool->ParallelFor(threads, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) {
        Scratch& s = scratch_[t];
        s.plane.assign(pd * ph * pw, 0.0f);
        s.acc.resize(g.out_size());
        const int64_t m0 = c.m_ * t / threads, m1 = c.m_ * (t + 1) / threads;
        for (int64_t m = m0; m < m1; ++m) {
          const float* xc = x + (m / c.mg_) * g.in_size();
          for (int64_t d = 0; d < pd; ++d) {
            const int64_t id = d - g.pad_begin[0];
            if (id < 0 || id >= g.in[0]) continue;
            ForInputRows(g, ph, pw, [&](int64_t r, int64_t ih, int64_t c0, int64_t n) {
              QuantizeCentered(xc + (id * g.in[1] + ih) * g.in[2] + (c0 - g.pad_begin[2]), n,
                               1.0f / a.scale, static_cast<float>(a.zero),
                               s.plane.data() + (d * ph + r) * pw + c0);
            });
          }
          const float* wm = weight_.data() + m * c.taps_;
          const float scale = scale_[m] * a.scale, b = bias != nullptr ? bias[m] : 0.0f;
          if (fast3x3) {
            // Sum and epilogue in one pass.
            Depthwise3x3Avx512(s.plane.data(), pw, wm, g.stride[1], y + m * g.out_size(), g.out[1],
                               g.out[2], scale, b, lo, hi);
            continue;
          }
          if (g.k[0] == 1 && g.out[0] == 1) {
            DepthwisePlane(s.plane.data(), pw, wm, g.k[1], g.k[2], g.stride[1], g.stride[2],
                           g.dilation[1], g.dilation[2], s.acc.data(), g.out[1], g.out[2]);
          } else {
            std::fill(s.acc.begin(), s.acc.end(), 0.0f);
            for (int64_t od = 0; od < g.out[0]; ++od) {
              for (int64_t oh = 0; oh < g.out[1]; ++oh) {
                float* acc = s.acc.data() + (od * g.out[1] + oh) * g.out[2];
                for (int64_t kd = 0; kd < g.k[0]; ++kd) {
                  for (int64_t kh = 0; kh < g.k[1]; ++kh) {
                    const float* xr =
                        s.plane.data() + ((od * g.stride[0] + kd * g.dilation[0]) * ph +
                                          oh * g.stride[1] + kh * g.dilation[1]) *
                                             pw;
                    for (int64_t kw = 0; kw < g.k[2]; ++kw) {
                      AxpyRow(acc, xr + kw * g.dilation[2], wm[(kd * g.k[1] + kh) * g.k[2] + kw],
                              g.out[2], g.stride[2]);
                    }
                  }
                }
              }
            }
          }
          ScaleBiasClamp(s.acc.data(), g.out_size(), scale, b, lo, hi, y + m * g.out_size());
        }
      }
    });
  }

  std::vector<float> weight_, scale_;
  std::vector<Scratch> scratch_;  // per thread
};

class PackedConv::DepthwiseBytesAlgorithm final : public ConvAlgorithm {
 public:
  // The weights tap-major, their per-channel sums and tap pairs.
  DepthwiseBytesAlgorithm(const PackedConv& c, const std::vector<float>& weight,
                          std::vector<float> scale)
      : scale_(std::move(scale)) {
    const int64_t m_n = c.m_, taps = c.taps_;
    taps_w_.resize(taps * m_n);
    wsum_.assign(m_n, 0.0f);
    for (int64_t m = 0; m < m_n; ++m) {
      for (int64_t t = 0; t < taps; ++t) {
        taps_w_[t * m_n + m] = weight[m * taps + t];
        wsum_[m] += weight[m * taps + t];
      }
    }
    SetUpInPlace(c);
    pairs_ = DepthwisePairWeights(taps_w_.data(), taps, m_n);
    // The quad body computes 64 channels a pass: below 48 channels half its
    // lanes would be idle, and the pair body (32 a pass) ran 1.6x faster on
    // MobileNet-v2's 32-channel layer (bench/depthwise_bench).
    if (m_n >= 48) quads_ = DepthwiseQuadWeights(taps_w_.data(), taps, m_n);
  }

  std::string name() const override { return "depthwise-bytes"; }

  void RunImage(PackedConv& c, const ImageIO& io, const ExecContext& ctx,
                ImageScratch& s) override {
    const int64_t isz = c.c_ * c.g_.in_size(), osz = c.g_.out_size();
    const uint8_t* in_place = nullptr;
    if (io.xb != nullptr && !interior_.empty()) {
      in_place = io.xb + io.i * isz;
      CopyBorderBands(c, in_place, io.a, ctx, s);
    } else if (io.xb != nullptr) {
      c.CopyImage(io.xb + io.i * isz, io.a, ctx, s);
    } else {
      c.QuantizeImage(io.x + io.i * isz, io.a, ctx, s);
    }
    DepthwiseBytes(c, io.a, io.bias, io.bo, io.yb != nullptr ? io.yb + io.i * osz * c.m_ : nullptr,
                   io.y != nullptr ? io.y + io.i * c.m_ * osz : nullptr, in_place, ctx, s);
  }

 private:
  // 8-bit input pixels are read where they lie for output pixels whose
  // window is inside the input (interior_[p]); only the bands of the padded
  // image the other windows read are filled: the first and last band_ rows
  // and, in the rows between, the first and last band_ pixels (band_ = the
  // window's extent). 2-D windows only.
  void SetUpInPlace(const PackedConv& c) {
    const auto& g = c.g_;
    if (g.in[0] != 1 || g.k[0] != 1 || c.cs_ != c.c_) return;
    const int64_t h = g.in[1], w = g.in[2], osz = g.out_size();
    std::vector<uint8_t> interior(osz);
    bool any = false;
    for (int64_t p = 0; p < osz; ++p) {
      const int64_t oh = p / g.out[2], ow = p % g.out[2];
      const int64_t ih = oh * g.stride[1] - g.pad_begin[1], iw = ow * g.stride[2] - g.pad_begin[2];
      interior[p] = ih >= 0 && ih + (g.k[1] - 1) * g.dilation[1] < h && iw >= 0 &&
                    iw + (g.k[2] - 1) * g.dilation[2] < w;
      any = any || interior[p];
    }
    if (!any) return;
    interior_ = std::move(interior);
    in_pix_.resize(osz);
    for (int64_t p = 0; p < osz; ++p) {
      const int64_t oh = p / g.out[2], ow = p % g.out[2];
      in_pix_[p] = (oh * g.stride[1] - g.pad_begin[1]) * w + ow * g.stride[2] - g.pad_begin[2];
    }
    in_tap_.resize(c.taps_);
    for (int64_t t = 0; t < c.taps_; ++t) {
      in_tap_[t] = (t / g.k[2]) * g.dilation[1] * w + (t % g.k[2]) * g.dilation[2];
    }
    band_ = std::max(g.k[1], g.k[2]) * std::max(g.dilation[1], g.dilation[2]);
  }

  // The input rows and pixels the border windows read, into s.image (whose
  // padding holds the zero point).
  void CopyBorderBands(const PackedConv& c, const uint8_t* x, const ActQuant& a, const ExecContext& ctx,
                       ImageScratch& s) {
    c.SetBorders(a.zero, s);
    const int64_t h = c.g_.in[1], w = c.g_.in[2], ch = c.c_;
    const int64_t edge = std::min(band_, w);
    ctx.pool->ParallelFor(h, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const uint8_t* src = x + r * w * ch;
        uint8_t* dst = c.ImageRow(r, s);
        if (r < band_ || r >= h - band_ || 2 * edge >= w) {
          std::memcpy(dst, src, w * ch);
          continue;
        }
        std::memcpy(dst, src, edge * ch);
        std::memcpy(dst + (w - edge) * ch, src + (w - edge) * ch, edge * ch);
      }
    });
  }

  // Depthwise on the NHWC byte image (kernels/depthwise.h), writing bytes
  // (yb) or fp32 planes (yf); output rows split across threads.
  void DepthwiseBytes(const PackedConv& c, const ActQuant& a, const float* bias, ByteOutput bo,
                      uint8_t* yb, float* yf, const uint8_t* in_place, const ExecContext& ctx,
                      ImageScratch& s) {
    // Per image scratch: threads may run whole images at once.
    s.dw_scale.resize(c.m_);
    s.dw_bias.assign(c.m_, 0.0f);
    for (int64_t m = 0; m < c.m_; ++m) {
      s.dw_scale[m] = scale_[m] * a.scale;
      if (bias != nullptr) s.dw_bias[m] = bias[m];
    }
    DepthwiseNhwcArgs d;
    d.image = s.image.data();
    d.pix = c.row_pix_.data();
    d.tap = c.tap_pix_.data();
    d.taps = c.taps_;
    d.c = c.c_;
    d.w = taps_w_.data();
    d.wsum = wsum_.data();
    d.scale = s.dw_scale.data();
    d.bias = s.dw_bias.data();
    d.zero = a.zero;
    if (c.fused_.active) {
      d.lo = c.fused_.lo;
      d.hi = c.fused_.hi;
    }
    d.out_inv = bo.inv;
    d.out_zero = bo.zero;
    d.yb = yb;
    d.yf = yb == nullptr ? yf : nullptr;
    d.ldy = c.g_.out_size();
    const DepthwiseBody body = KernelPathBits(c.path_) == 512 ? DepthwiseBody::kAvx512
                               : Is256BitPath(c.path_)        ? DepthwiseBody::kAvx2
                                                              : DepthwiseBody::kPortable;
    d.w_pairs = pairs_.data();
    d.w_quads = quads_.empty() ? nullptr : quads_.data();
    if (in_place == nullptr) {
      ctx.pool->ParallelFor(c.g_.out_size(),
                            [&](int64_t p0, int64_t p1) { DepthwiseNhwc(d, p0, p1, body); });
      return;
    }
    DepthwiseNhwcArgs inner = d;  // interior pixels, read in place
    inner.image = in_place;
    inner.pix = in_pix_.data();
    inner.tap = in_tap_.data();
    ctx.pool->ParallelFor(c.g_.out_size(), [&](int64_t p0, int64_t p1) {
      // Runs of interior and border pixels.
      for (int64_t p = p0; p < p1;) {
        int64_t e = p + 1;
        while (e < p1 && interior_[e] == interior_[p]) ++e;
        DepthwiseNhwc(interior_[p] ? inner : d, p, e, body);
        p = e;
      }
    });
  }

  std::vector<float> scale_, taps_w_, wsum_;
  std::vector<int16_t> pairs_;  // DepthwisePairWeights of taps_w_
  std::vector<int8_t> quads_;   // DepthwiseQuadWeights of taps_w_ (empty: beyond int8)
  // SetUpInPlace: per output pixel whether its window lies inside the input
  // (empty: always copy the image), and the windows in the input itself.
  std::vector<uint8_t> interior_;
  std::vector<int64_t> in_pix_, in_tap_;
  int64_t band_ = 0;
};

Result<std::unique_ptr<PackedConv::ConvAlgorithm>> PackedConv::MakeDepthwise(
    const PackedConv& conv, const PackedTensor& w) {
  QLinearWeights q;
  LOWBIT_ASSIGN_OR_RETURN(q, conv.Layout(w));
  const int64_t m_n = conv.m_, taps = conv.taps_;
  std::vector<float> weight(m_n * taps);
  std::vector<uint32_t> codes(taps);
  for (int64_t m = 0; m < m_n; ++m) {
    w.UnpackRow(m, codes.data());
    // The plane layout's offset is relative to codes, i.e. to T - T[0].
    const int32_t offset =
        q.offset[m] + (q.layout == QLinearWeights::Layout::kPlanes ? q.table[0] : 0);
    for (int64_t t = 0; t < taps; ++t) {
      weight[m * taps + t] = static_cast<float>(q.table[codes[t]] - offset);
    }
  }
  if (conv.nhwc_dw_)
    return std::unique_ptr<ConvAlgorithm>(
        std::make_unique<DepthwiseBytesAlgorithm>(conv, weight, std::move(q.scale)));
  return std::unique_ptr<ConvAlgorithm>(
      std::make_unique<DepthwisePlanesAlgorithm>(std::move(weight), std::move(q.scale)));
}

}  // namespace lowbit
