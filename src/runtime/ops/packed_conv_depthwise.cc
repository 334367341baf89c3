// PackedConv's depthwise paths: on fp32 planes of small exact integers, and
// on the NHWC byte image (runtime/ops/packed_conv.h).
#include <algorithm>
#include <climits>
#include <cmath>
#include <cstring>

#include "runtime/byte_edges.h"
#include "runtime/ops/byte_ops.h"
#include "runtime/ops/packed_conv.h"
#include "runtime/ops/planes.h"

namespace lowbit {

Status PackedConv::BuildDepthwise(const PackedTensor& w) {
  QLinearWeights q;
  LOWBIT_ASSIGN_OR_RETURN(q, Layout(w));
  dw_weight_.resize(m_ * taps_);
  std::vector<uint32_t> codes(taps_);
  for (int64_t m = 0; m < m_; ++m) {
    w.UnpackRow(m, codes.data());
    // The plane layout's offset is relative to codes, i.e. to T - T[0].
    const int32_t offset =
        q.offset[m] + (q.layout == QLinearWeights::Layout::kPlanes ? q.table[0] : 0);
    for (int64_t t = 0; t < taps_; ++t) {
      dw_weight_[m * taps_ + t] = static_cast<float>(q.table[codes[t]] - offset);
    }
  }
  dw_scale_ = q.scale;
  return OkStatus();
}

void PackedConv::DepthwiseBytes(const ActQuant& a, const float* bias, ByteOutput bo, uint8_t* yb,
                                float* yf, const ExecContext& ctx, ImageScratch& s) {
  for (int64_t m = 0; m < m_; ++m) {
    dw_a_scale_[m] = dw_scale_[m] * a.scale;
    if (bias != nullptr) dw_bias_[m] = bias[m];
  }
  DepthwiseNhwcArgs d;
  d.image = s.image.data();
  d.pix = row_pix_.data();
  d.tap = tap_pix_.data();
  d.taps = taps_;
  d.c = c_;
  d.w = dw_taps_.data();
  d.wsum = dw_wsum_.data();
  d.scale = dw_a_scale_.data();
  d.bias = dw_bias_.data();
  d.zero = a.zero;
  if (fused_.active) {
    d.lo = fused_.lo;
    d.hi = fused_.hi;
  }
  d.out_inv = bo.inv;
  d.out_zero = bo.zero;
  d.yb = yb;
  d.yf = yb == nullptr ? yf : nullptr;
  d.ldy = g_.out_size();
  const DepthwiseBody body = path_ == KernelPath::kAvx512Vnni ? DepthwiseBody::kAvx512
                             : Is256BitPath(path_)            ? DepthwiseBody::kAvx2
                                                              : DepthwiseBody::kPortable;
  d.w_pairs = dw_pairs_.data();
  ctx.pool->ParallelFor(g_.out_size(),
                        [&](int64_t p0, int64_t p1) { DepthwiseNhwc(d, p0, p1, body); });
}

void PackedConv::Depthwise(const float* x, const ActQuant& a, const float* bias, bool activation,
                           float* y, const ExecContext& ctx) {
  const auto& g = g_;
  const int64_t ph = PaddedRows(g), pw = PaddedCols(g);
  const int64_t pd = (g.out[0] - 1) * g.stride[0] + (g.k[0] - 1) * g.dilation[0] + 1;
  const int threads = ctx.pool->threads();
  if (static_cast<int>(dw_scratch_.size()) < threads) dw_scratch_.resize(threads);
  const float lo = activation && fused_.active ? fused_.lo : -INFINITY;
  const float hi = activation && fused_.active ? fused_.hi : INFINITY;
  const bool fast3x3 =
      g.k[0] == 1 && g.out[0] == 1 &&
      Depthwise3x3Applies(g.k[1], g.k[2], g.stride[1], g.stride[2], g.dilation[1], g.dilation[2]);
  ctx.pool->ParallelFor(threads, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      Scratch& s = dw_scratch_[t];
      s.plane.assign(pd * ph * pw, 0.0f);
      s.acc.resize(g.out_size());
      const int64_t m0 = m_ * t / threads, m1 = m_ * (t + 1) / threads;
      for (int64_t m = m0; m < m1; ++m) {
        const float* xc = x + (m / mg_) * g.in_size();
        for (int64_t d = 0; d < pd; ++d) {
          const int64_t id = d - g.pad_begin[0];
          if (id < 0 || id >= g.in[0]) continue;
          ForInputRows(g, ph, pw, [&](int64_t r, int64_t ih, int64_t c0, int64_t n) {
            QuantizeCentered(xc + (id * g.in[1] + ih) * g.in[2] + (c0 - g.pad_begin[2]), n,
                             1.0f / a.scale, static_cast<float>(a.zero),
                             s.plane.data() + (d * ph + r) * pw + c0);
          });
        }
        const float* wm = dw_weight_.data() + m * taps_;
        const float scale = dw_scale_[m] * a.scale, b = bias != nullptr ? bias[m] : 0.0f;
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
                  const float* xr = s.plane.data() + ((od * g.stride[0] + kd * g.dilation[0]) * ph +
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

}  // namespace lowbit
