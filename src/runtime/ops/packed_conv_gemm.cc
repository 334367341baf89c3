// PackedConv's GEMM algorithm (runtime/ops/packed_conv.h): output pixels x
// output channels, each pixel's window read in place (implicit GEMM: a row
// pointer per pixel, a byte offset per input step), straight from the image
// (direct: 1x1, stride 1), or gathered into rows (the table layout with
// padded inputs, the reference path).
#include <algorithm>

#include "runtime/ops/packed_conv.h"

namespace lowbit {

class PackedConv::GemmAlgorithm final : public ConvAlgorithm {
 public:
  explicit GemmAlgorithm(const PackedConv& c)
      : name_(c.direct_     ? "direct"
              : c.implicit_ ? "implicit-gemm"
                            : "im2col") {}

  std::string name() const override { return name_; }

  void RunImage(PackedConv& c, const ImageIO& io, const ExecContext& ctx,
                ImageScratch& s) override {
    const uint8_t* image = c.ImageFor(io, ctx, s);
    if (c.mixed_ && io.write_bytes && (c.implicit_ || c.direct_)) {
      MixedBytes(c, io, ctx, s);
      return;
    }
    const int64_t threads = ctx.pool->threads(), osz = c.g_.out_size();
    for (int64_t part = 0; part < static_cast<int64_t>(c.groups_.size()); ++part) {
      const QLinearWeights& w = c.groups_[part];
      const int64_t grp = c.mixed_ ? 0 : part;
      // Few pixels and many output tiles (the late, 7x7 and 14x14 layers):
      // threads split the output channels, so each streams only its share
      // of the weights and the work divides evenly.
      const bool by_channels = threads > 1 && (c.implicit_ || c.rows_for_direct_) &&
                               osz < 128 * threads && w.n_pad / 16 >= 4 * threads;
      const PartEpilogue epilogue = c.BeginPart(io, part, ctx, s);
      // The GEMM rows: window pointers into the image, or gathered windows.
      if (c.implicit_ || by_channels) {
        for (int64_t p = 0; p < osz; ++p) {
          s.row_ptr[p] = image + c.row_pix_[p] * c.cs_ + grp * c.cg_;
        }
      } else if (!c.direct_) {
        c.Gather(w, grp, ctx, s);
      }
      SizeDots(threads, s);
      if (by_channels) {
        const int64_t tiles = w.n_pad / 16;
        ctx.pool->ParallelFor(threads, [&](int64_t t0, int64_t t1) {
          for (int64_t t = t0; t < t1; ++t) {
            const int64_t a0 = tiles * t / threads, a1 = tiles * (t + 1) / threads;
            int32_t* dot = s.dot[t].data();
            for (int64_t p0 = 0; p0 < osz; p0 += kBlockRows) {
              const int64_t n = std::min<int64_t>(kBlockRows, osz - p0);
              QLinearDotRows(w, c.path_, s.row_ptr.data() + p0, c.step_off_.data(), n, dot, a0, a1);
              epilogue(p0, n, dot, a0 * 16, std::min(w.n, a1 * 16));
            }
          }
        });
        continue;  // the next group
      }
      // Blocks of at most kBlockRows pixels (multiples of 4, the kernels'
      // row block), as many per thread and of near equal size.
      ForBlocks(osz, threads, ctx, [&](int64_t t, int64_t p0, int64_t n) {
        int32_t* dot = s.dot[t].data();
        if (c.direct_) {
          QLinearDots(w, c.path_, image + p0 * c.cs_, n, dot, nullptr);
        } else if (c.implicit_) {
          QLinearDotsRows(w, c.path_, s.row_ptr.data() + p0, c.step_off_.data(), n, dot, nullptr);
        } else {
          QLinearDots(w, c.path_, s.u.data() + p0 * w.k_pad, n, dot, nullptr);
        }
        epilogue(p0, n, dot, 0, -1);
      });
    }
  }

 private:
  // Filter-wise formats writing bytes: per block of pixels, every format's
  // dot products (each in its own region of the block buffer), then one
  // epilogue pass in output-channel order that gathers them, so each pixel's
  // bytes are stored contiguously rather than scattered format by format.
  static void MixedBytes(PackedConv& c, const ImageIO& io, const ExecContext& ctx,
                         ImageScratch& s) {
    const int64_t osz = c.g_.out_size(), threads = ctx.pool->threads(), m = c.m_;
    const float* res = io.res != nullptr && !io.late_residual ? io.res + io.i * m * osz : nullptr;
    const uint8_t* res_b = io.res_b != nullptr ? io.res_b + io.i * osz * m : nullptr;
    uint8_t* yb = io.yb + io.i * osz * m;
    if (!c.LevelPlanes()) c.WindowSums(0, ctx, s);
    if (c.implicit_) {
      for (int64_t p = 0; p < osz; ++p) s.row_ptr[p] = s.image.data() + c.row_pix_[p] * c.cs_;
    }
    s.parts.resize(c.groups_.size());
    for (size_t part = 0; part < c.groups_.size(); ++part) {
      Epilogue e = MakeEpilogue(c.fused_, io.bias);
      e.out = c.part_out_[part].data();
      PrepareColumnEpilogue(c.groups_[part], io.a, e, c.path_, &s.parts[part]);
    }
    MergeColumnEpilogues(s.parts, m, &s.epilogue);
    SizeDots(threads, s);
    ForBlocks(osz, threads, ctx, [&](int64_t t, int64_t p0, int64_t n) {
      for (size_t part = 0; part < c.groups_.size(); ++part) {
        const QLinearWeights& w = c.groups_[part];
        int32_t* dot = s.dot[t].data() + c.part_dot_[part];
        if (c.direct_) {
          QLinearDots(w, c.path_, s.image.data() + p0 * c.cs_, n, dot, nullptr);
        } else {
          QLinearDotsRows(w, c.path_, s.row_ptr.data() + p0, c.step_off_.data(), n, dot, nullptr);
        }
      }
      const RowResidual r = ResidualRows(res, res_b, p0, osz, m, c.res_q_.scale, c.res_q_.zero);
      QLinearEpilogueRowsBytesGathered(
          s.epilogue, DotGather{c.gather_idx_.data(), c.gather_step_.data()}, s.sums.data() + p0,
          s.dot[t].data(), 0, n, r, io.bo, yb + p0 * m, m);
    });
  }

  std::string name_;
};

std::unique_ptr<PackedConv::ConvAlgorithm> PackedConv::MakeGemm(const PackedConv& conv) {
  return std::make_unique<GemmAlgorithm>(conv);
}

}  // namespace lowbit
