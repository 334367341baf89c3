// PackedConv's exact Winograd F(4x4, 3x3) algorithm (runtime/ops/packed_conv.h,
// kernels/winograd.h).
#include <algorithm>

#include "runtime/ops/packed_conv.h"

namespace lowbit {

class PackedConv::WinogradAlgorithm final : public ConvAlgorithm {
 public:
  std::string name() const override { return "winograd"; }

  // Whether `c` runs as exact Winograd: AVX-512 level planes of one format,
  // a 2D 3x3 window at stride 1 with padding 1 and the input's size,
  // channels in multiples of 32, weights WinogradExact accepts, and enough
  // tiles per image (32: ResNet's 56x56 and 28x28 layers, not 14x14 or 7x7,
  // whose partial tiles and few products per transformed weight lose) -- or
  // any count with KernelOptions::winograd on (LOWBIT_WINOGRAD=1); off
  // (LOWBIT_WINOGRAD=0) turns it off. Keeps the transformed weights (36 *
  // outputs * channels int16s).
  static std::unique_ptr<WinogradAlgorithm> TryMake(const PackedConv& c) {
    const auto& g = c.g_;
    const KernelRule rule = c.kernel_options_.winograd;
    if (rule == KernelRule::kOff || KernelPathBits(c.path_) != 512 || !c.LevelPlanes() ||
        c.mixed_ || c.group_ != 1 || c.segment_ > 0 || c.c_ % 32 != 0 || c.cs_ != c.c_ ||
        g.k != std::array<int64_t, 3>{1, 3, 3} || g.stride != std::array<int64_t, 3>{1, 1, 1} ||
        g.dilation != std::array<int64_t, 3>{1, 1, 1} ||
        g.pad_begin != std::array<int64_t, 3>{0, 1, 1} || g.out != g.in) {
      return nullptr;
    }
    auto a = std::make_unique<WinogradAlgorithm>();
    a->bands_ = (g.out[1] + 3) / 4;
    a->tpr_ = (g.out[2] + 3) / 4;
    if ((rule != KernelRule::kOn && a->bands_ * a->tpr_ < 32) ||
        !WinogradExact(c.groups_[0], c.c_)) {
      return nullptr;
    }
    // Units of whole bands, at least 28 tiles (measured on 56x56 and 28x28
    // layers of 64 and 128 channels): blocks of 5-6 tiles, V and the dots in L2.
    a->unit_ = (28 + a->tpr_ - 1) / a->tpr_;
    const QLinearWeights& w = c.groups_[0];
    a->u_.assign(36 * w.n_pad * c.c_, 0);
    WinogradWeightsAvx512(w, c.c_, 0, w.n_pad / 16, a->u_.data());
    return a;
  }

  void RunImage(PackedConv& c, const ImageIO& io, const ExecContext& ctx,
                ImageScratch& s) override {
    const uint8_t* image = c.ImageFor(io, ctx, s);
    const PartEpilogue epilogue = c.BeginPart(io, 0, ctx, s);
    // The image's pixels, from the input bytes or the padded image's interior.
    const WinogradImage im{
        c.in_place_ ? image : c.ImageRow(0, s),  c.g_.in[1], c.g_.in[2],
        c.in_place_ ? c.g_.in[2] : c.padded_[2], c.c_,       static_cast<uint8_t>(io.a.zero)};
    Run(c, im, ctx, s, epilogue);
  }

 private:
  // Units of whole bands: their tiles transformed, through the products and
  // into `epilogue`. Threads take bands when they divide evenly, else blocks
  // of output tiles (each transforming every unit).
  void Run(const PackedConv& c, const WinogradImage& im, const ExecContext& ctx, ImageScratch& s,
           const PartEpilogue& epilogue) const {
    const QLinearWeights& w = c.groups_[0];
    const int64_t threads = ctx.pool->threads(), tn = w.n_pad / 16, ch = c.c_;
    const int64_t unit_tiles = unit_ * tpr_, row = 4 * tpr_ * w.n_pad;
    if (static_cast<int64_t>(s.wino_dot.size()) < threads) {
      s.wino_v.resize(threads);
      s.wino_dot.resize(threads);
      s.wino_m.resize(threads);
    }
    // (Output tiles split in U's blocks of 4.)
    const int64_t blocks = (tn + 3) / 4;
    const bool by_bands = bands_ % threads == 0 || blocks < threads;
    ctx.pool->ParallelFor(threads, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t b0 = by_bands ? bands_ * t / threads : 0;
        const int64_t b1 = by_bands ? bands_ * (t + 1) / threads : bands_;
        const int64_t n0 = by_bands ? 0 : 4 * (blocks * t / threads);
        const int64_t n1 = by_bands ? tn : std::min(tn, 4 * (blocks * (t + 1) / threads));
        std::vector<int16_t>& v = s.wino_v[t];
        std::vector<int32_t>& dot = s.wino_dot[t];
        v.resize(36 * unit_tiles * ch);
        dot.resize(unit_ * 4 * row);
        s.wino_m[t].resize(WinogradScratchInts());
        for (int64_t b = b0; b < b1; b += unit_) {
          const int64_t nb = std::min(unit_, b1 - b), tiles = nb * tpr_;
          for (int64_t i = 0; i < nb; ++i) {
            WinogradInputAvx512(im, b + i, 0, tpr_, v.data() + i * tpr_ * 36 * ch);
          }
          WinogradDotsAvx512(v.data(), tiles, tpr_, u_.data(), ch, w.n_pad, n0, n1,
                             s.wino_m[t].data(), dot.data());
          for (int64_t r = 4 * b; r < std::min(4 * (b + nb), c.g_.out[1]); ++r) {
            epilogue(r * c.g_.out[2], c.g_.out[2], dot.data() + (r - 4 * b) * row, n0 * 16,
                     std::min(w.n, n1 * 16));
          }
        }
      }
    });
  }

  // Bands of 4 output rows, tiles per band, bands per unit of the products,
  // and the transformed weights.
  int64_t bands_ = 0, tpr_ = 0, unit_ = 1;
  std::vector<int16_t> u_;
};

std::unique_ptr<PackedConv::ConvAlgorithm> PackedConv::MakeWinograd(const PackedConv& conv) {
  return WinogradAlgorithm::TryMake(conv);
}

}  // namespace lowbit
