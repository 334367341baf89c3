// PackedConv's byte image: quantized or copied in, window sums, gathered
// GEMM rows (runtime/ops/packed_conv.h).
#include <algorithm>
#include <climits>
#include <cmath>
#include <cstring>

#include "runtime/byte_edges.h"
#include "runtime/ops/byte_ops.h"
#include "runtime/ops/packed_conv.h"
#include "runtime/ops/planes.h"

namespace lowbit {

void PackedConv::QuantizeImage(const float* x, const ActQuant& a, const ExecContext& ctx,
                               ImageScratch& s) {
  const auto& g = g_;
  SetBorders(a.zero, s);
  const int64_t hw = g.in_size();
  const float inv = 1.0f / a.scale;
  const float lo = signed_ ? -128.0f : 0.0f, hi = signed_ ? 127.0f : 255.0f;
  const float zero = static_cast<float>(a.zero);
  const bool simd = c_ % 16 == 0 && KernelPathBits(path_) == 512;
  const bool simd4 = c_ <= 4 && cs_ <= 4 && KernelPathBits(path_) == 512;
  const int threads = ctx.pool->threads();
  if (static_cast<int>(s.block.size()) < threads) s.block.resize(threads);
  const int64_t rows = g.in[0] * g.in[1];
  ctx.pool->ParallelFor(threads, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      std::vector<uint8_t>& tmp = s.block[t];
      tmp.resize(static_cast<size_t>(c_) * 64);
      for (int64_t r = rows * t / threads; r < rows * (t + 1) / threads; ++r) {
        uint8_t* dst = ImageRow(r, s);
        const int64_t p0 = r * g.in[2];
        if (simd) {
          // Same rounding as QuantizeBytes (to nearest even), fused with the transpose.
          QuantizeNhwcAvx512(x, c_, hw, inv, a.zero, signed_, p0, p0 + g.in[2], dst);
          continue;
        }
        if (simd4) {
          QuantizeNhwc4Avx512(x, c_, hw, inv, a.zero, signed_, p0, p0 + g.in[2], dst, cs_);
          continue;
        }
        for (int64_t b = 0; b < g.in[2]; b += 64) {
          const int64_t np = std::min<int64_t>(64, g.in[2] - b);
          for (int64_t c = 0; c < c_; ++c) {
            QuantizeBytes(x + c * hw + p0 + b, np, inv, zero, lo, hi, tmp.data() + c * 64, signed_);
          }
          for (int64_t p = 0; p < np; ++p) {
            for (int64_t c = 0; c < c_; ++c) dst[(b + p) * cs_ + c] = tmp[c * 64 + p];
          }
        }
      }
    }
  });
}

void PackedConv::CopyImage(const uint8_t* x, const ActQuant& a, const ExecContext& ctx,
                           ImageScratch& s) {
  const auto& g = g_;
  SetBorders(a.zero, s);
  const uint8_t flip = signed_ ? 0x80 : 0;
  const int64_t rows = g.in[0] * g.in[1], w = g.in[2];
  ctx.pool->ParallelFor(rows, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) CopyPixels(x + r * w * c_, w, c_, cs_, flip, ImageRow(r, s));
  });
}

void PackedConv::WindowSums(int64_t grp, const ExecContext& ctx, ImageScratch& s) {
  const bool simd = KernelPathBits(path_) == 512;
  ctx.pool->ParallelFor(static_cast<int64_t>(s.pixel_sum.size()), [&](int64_t p0, int64_t p1) {
    const uint8_t* src = s.image.data() + p0 * cs_ + grp * cg_;
    if (simd) {
      PixelSumsAvx512(src, p1 - p0, cs_, ck_, signed_, s.pixel_sum.data() + p0);
      return;
    }
    for (int64_t p = p0; p < p1; ++p, src += cs_) {
      s.pixel_sum[p] =
          signed_ ? SumBytes(reinterpret_cast<const int8_t*>(src), ck_) : SumBytes(src, ck_);
    }
  });
  if (use_integral_) {
    IntegralWindowSums(ctx, s);
  } else {
    StridedWindowSums(ctx, s);
  }
  // Row segments: the epilogue takes K = kk_ inputs, so each padding
  // column counts as an input holding the zero point (a - z = 0).
  if (segment_ > 0) {
    const int32_t pad = static_cast<int32_t>(kk_ - taps_ * cg_) * s.image_zero;
    for (int32_t& v : s.sums) v += pad;
  }
}

void PackedConv::StridedWindowSums(const ExecContext& ctx, ImageScratch& s) {
  // Per output row: the row's windows start stride pixels apart, so each
  // tap adds a strided run of pixel sums.
  const int64_t ow_n = g_.out[2], sw = g_.stride[2];
  ctx.pool->ParallelFor(g_.out_size() / ow_n, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      int32_t* dst = s.sums.data() + r * ow_n;
      std::fill_n(dst, ow_n, 0);
      for (int64_t t = 0; t < taps_; ++t) {
        AddStrided(dst, s.pixel_sum.data() + row_pix_[r * ow_n] + tap_pix_[t], ow_n, sw);
      }
    }
  });
}

void PackedConv::IntegralWindowSums(const ExecContext& ctx, ImageScratch& s) {
  const int64_t ph = padded_[1], pw = padded_[2], ow_n = g_.out[2];
  uint32_t* sat = s.integral.data();  // (ph + 1) x (pw + 1), first row and column 0
  for (int64_t r = 0; r < ph; ++r) {
    uint32_t run = 0;
    const int32_t* ps = s.pixel_sum.data() + r * pw;
    uint32_t* above = sat + r * (pw + 1);
    uint32_t* row = above + (pw + 1);
    for (int64_t c = 0; c < pw; ++c) {
      run += static_cast<uint32_t>(ps[c]);
      row[c + 1] = above[c + 1] + run;
    }
  }
  const int64_t kh = g_.k[1], kw = g_.k[2], sh = g_.stride[1], sw = g_.stride[2];
  ctx.pool->ParallelFor(g_.out[1], [&](int64_t r0, int64_t r1) {
    for (int64_t oh = r0; oh < r1; ++oh) {
      const uint32_t* top = sat + oh * sh * (pw + 1);
      const uint32_t* bottom = top + kh * (pw + 1);
      int32_t* dst = s.sums.data() + oh * ow_n;
      for (int64_t ow = 0; ow < ow_n; ++ow) {
        const int64_t c0 = ow * sw, c1 = c0 + kw;
        dst[ow] = static_cast<int32_t>(bottom[c1] - bottom[c0] - top[c1] + top[c0]);
      }
    }
  });
}

void PackedConv::Gather(const QLinearWeights& w, int64_t grp, const ExecContext& ctx,
                        ImageScratch& s) {
  const WindowRuns runs = Runs();
  const int64_t k_pad = w.k_pad;
  ctx.pool->ParallelFor(g_.out_size(), [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      uint8_t* dst = s.u.data() + p * k_pad;
      for (int64_t t = 0; t < taps_; t += runs.taps, dst += runs.bytes) {
        std::memcpy(dst, s.image.data() + (row_pix_[p] + tap_pix_[t]) * cs_ + grp * cg_,
                    runs.bytes);
      }
      std::memset(dst, 0, k_pad - kk_);
    }
  });
}

}  // namespace lowbit
