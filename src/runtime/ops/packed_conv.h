// PackedConv (model/packed_node.h): convolutions whose weights stay packed
// and run on the low-bit kernels (kernels/qlinear.h). Each image is
// quantized once into an NHWC byte image padded with the zero point (x = 0),
// so no window needs a bounds check. The weight's columns are permuted to
// (kd, kh, kw, c) when the kernel layout is built, and the GEMM is output
// pixels x output channels, with each pixel's window read in place
// (implicit GEMM: a row pointer per pixel, a byte offset per input step),
// straight from the image (1x1, stride 1), or gathered into rows when the
// kernel needs that (table layout with padded inputs, the reference path);
// 3x3 stride-1 layers may run exact Winograd F(4x4, 3x3). Depthwise
// convolution (one input channel per group) has its own kernels: on small
// exact integers held in fp32 lanes (planes), or on the NHWC bytes.
//
// The class is split by subject: packed_conv.cc (preparation, the GEMM
// paths, Run), packed_conv_image.cc (the byte image: quantization, copies,
// window sums, gathered rows), packed_conv_depthwise.cc and
// packed_conv_winograd.cc.
#ifndef LOWBIT_RUNTIME_OPS_PACKED_CONV_H_
#define LOWBIT_RUNTIME_OPS_PACKED_CONV_H_

#include <array>
#include <climits>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/depthwise.h"
#include "kernels/qlinear.h"
#include "kernels/winograd.h"
#include "runtime/ops/conv_geometry.h"
#include "runtime/ops/packed_kernel.h"
#include "runtime/ops/planes.h"

namespace lowbit {

class PackedConv final : public PackedKernel {
 public:
  using PackedKernel::PackedKernel;

 private:
  // Output pixels per block: a block's dot products go through the epilogue
  // while still in cache.
  static constexpr int64_t kBlockRows = 64;

  // Per-image working memory: [0] for images split across the pool, one per
  // thread when threads take whole images (allocated on first use).
  struct ImageScratch {
    std::vector<uint8_t> image, u;            // the padded NHWC image; gathered rows
    int32_t image_zero = INT_MIN;             // the zero point the image's borders hold
    std::vector<std::vector<uint8_t>> block;  // QuantizeImage, per thread
    // Per thread: one block's dot products, kBlockRows x n_pad (MixedBytes:
    // every format's region), reused block after block so they stay in L1/L2
    // (a buffer for the whole image was 800 KB per 64 @ 56 layer).
    std::vector<std::vector<int32_t>> dot;
    int64_t dot_size = 0;
    std::vector<int32_t> sums, pixel_sum;
    std::vector<uint32_t> integral;
    std::vector<const uint8_t*> row_ptr;
    // Winograd (WinogradRun), per thread: a unit's transformed tiles, dot
    // rows and products.
    std::vector<std::vector<int16_t>> wino_v;
    std::vector<std::vector<int32_t>> wino_dot, wino_m;
    ColumnEpilogue epilogue;
    std::vector<ColumnEpilogue> parts;  // per format (MixedBytes)
  };

 public:
  std::string Algorithm() const override;

  Status Prepare(const std::vector<TensorInfo>& in, std::vector<TensorInfo>* out) override;

  void Run(const std::vector<const Tensor*>& in, const std::vector<Tensor*>& out,
           const ExecContext& ctx) override;

 private:
  // The same-shape residual of output pixels from p0 for a byte epilogue:
  // fp32 planes or 8-bit pixels (one image's, from its first pixel), or none.
  RowResidual ResidualRows(const float* planes, const uint8_t* bytes, int64_t p0) const;

  // Filter-wise formats writing bytes: per block of pixels, every format's
  // dot products (each in its own region of the block buffer), then one
  // epilogue pass in output-channel order that gathers them, so each pixel's
  // bytes are stored contiguously rather than scattered format by format.
  void MixedBytes(const ActQuant& a, const float* bias, const float* res, const uint8_t* res_b,
                  ByteOutput bo, uint8_t* yb, const ExecContext& ctx, ImageScratch& s);

  // Whether this convolution runs as exact Winograd F(4x4, 3x3)
  // (kernels/winograd.h): AVX-512 level planes of one format, a 2D 3x3
  // window at stride 1 with padding 1 and the input's size, channels in
  // multiples of 32, weights WinogradExact accepts, and enough tiles per
  // image (32: ResNet's 56x56 and 28x28 layers, not 14x14 or 7x7, whose
  // partial tiles and few products per transformed weight lose) -- or any
  // count with KernelOptions::winograd on (LOWBIT_WINOGRAD=1); off
  // (LOWBIT_WINOGRAD=0) turns it off. Keeps the
  // transformed weights (36 * outputs * channels int16s).
  void SetUpWinograd();

  // Units of whole bands: their tiles transformed, through the products and
  // into `epilogue` (p0, n, dot, j0, j1). Threads take bands when they divide
  // evenly, else blocks of output tiles (each transforming every unit).
  template <typename Epilogue>
  void WinogradRun(const WinogradImage& im, const ExecContext& ctx, ImageScratch& s,
                   Epilogue epilogue) {
    const QLinearWeights& w = groups_[0];
    const int64_t threads = ctx.pool->threads(), tn = w.n_pad / 16;
    const int64_t unit_tiles = wino_unit_ * wino_tpr_, row = 4 * wino_tpr_ * w.n_pad;
    if (static_cast<int64_t>(s.wino_dot.size()) < threads) {
      s.wino_v.resize(threads);
      s.wino_dot.resize(threads);
      s.wino_m.resize(threads);
    }
    // (Output tiles split in U's blocks of 4.)
    const int64_t blocks = (tn + 3) / 4;
    const bool by_bands = wino_bands_ % threads == 0 || blocks < threads;
    ctx.pool->ParallelFor(threads, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t b0 = by_bands ? wino_bands_ * t / threads : 0;
        const int64_t b1 = by_bands ? wino_bands_ * (t + 1) / threads : wino_bands_;
        const int64_t n0 = by_bands ? 0 : 4 * (blocks * t / threads);
        const int64_t n1 = by_bands ? tn : std::min(tn, 4 * (blocks * (t + 1) / threads));
        std::vector<int16_t>& v = s.wino_v[t];
        std::vector<int32_t>& dot = s.wino_dot[t];
        v.resize(36 * unit_tiles * c_);
        dot.resize(wino_unit_ * 4 * row);
        s.wino_m[t].resize(WinogradScratchInts());
        for (int64_t b = b0; b < b1; b += wino_unit_) {
          const int64_t nb = std::min(wino_unit_, b1 - b), tiles = nb * wino_tpr_;
          for (int64_t i = 0; i < nb; ++i) {
            WinogradInputAvx512(im, b + i, 0, wino_tpr_, v.data() + i * wino_tpr_ * 36 * c_);
          }
          WinogradDotsAvx512(v.data(), tiles, wino_tpr_, wino_u_.data(), c_, w.n_pad, n0, n1,
                             s.wino_m[t].data(), dot.data());
          for (int64_t r = 4 * b; r < std::min(4 * (b + nb), g_.out[1]); ++r) {
            epilogue(r * g_.out[2], g_.out[2], dot.data() + (r - 4 * b) * row, n0 * 16,
                     std::min(w.n, n1 * 16));
          }
        }
      }
    });
  }

  // One block buffer per thread (allocated on first use, then kept).
  static void SizeDots(int64_t threads, ImageScratch& s);

  // Calls run(t, p0, n) for blocks of n <= kBlockRows pixels from p0 (n a
  // multiple of 4 but the last), covering [0, osz) in near-equal blocks,
  // thread t taking a contiguous run of them.
  template <typename Run>
  static void ForBlocks(int64_t osz, int64_t threads, const ExecContext& ctx, Run run) {
    const int64_t nblk = threads * ((osz + threads * kBlockRows - 1) / (threads * kBlockRows));
    const int64_t blk = ((osz + nblk - 1) / nblk + 3) / 4 * 4, blocks = (osz + blk - 1) / blk;
    ctx.pool->ParallelFor(threads, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) {
        for (int64_t b = blocks * t / threads; b < blocks * (t + 1) / threads; ++b) {
          run(t, b * blk, std::min(osz, (b + 1) * blk) - b * blk);
        }
      }
    });
  }

  // One QLinearWeights per group, or per format (filter-wise formats, group
  // 1); columns permuted from (c, kd, kh, kw) to (kd, kh, kw, c) to match
  // the image's windows, padding channels included.
  Status BuildGroups(const PackedParts& parts);

  // Whether Prepare gave the weights the level-plane layout: no per-pixel
  // sums (their offsets are 0).
  bool LevelPlanes() const {
    return !groups_.empty() && groups_[0].layout == QLinearWeights::Layout::kLevelPlanes;
  }

  // Which of the kernel rows' kk_ inputs are padding (AddGroup's code 0):
  // the gaps of row segments and the channels past cg_.
  std::vector<bool> KernelPadding() const;

  // The kernel layout of rows [grp * mg, (grp + 1) * mg) of w.
  Status AddGroup(const PackedTensor& w, int64_t grp, int64_t mg);

  // How K walks a window: runs of `bytes` contiguous image bytes, each
  // starting at every `taps`-th tap (one tap's channels, or a row segment).
  struct WindowRuns {
    int64_t bytes, taps;
  };
  WindowRuns Runs() const {
    return segment_ > 0 ? WindowRuns{segment_, g_.k[2]} : WindowRuns{ck_, 1};
  }

  // The kernel's input columns: cs_ (pixel stride in the image), ck_
  // (channels per tap), kk_ (K) and, for row segments, segment_ (bytes per
  // kernel row in K; 0 otherwise). Row segments only where they shorten K
  // and `segments` allows them.
  void SetKernelRows(bool segments);

  // Depthwise weights as small integers T[code] - offset (one per tap) and a
  // scale per channel, from the kernel layout of the whole [M, taps] tensor.
  Status BuildDepthwise(const PackedTensor& w);

  // The zero-point padded NHWC image every non-depthwise path reads: big
  // enough for every window and for the whole input; each output pixel's
  // window starts at row_pix_[p] and tap t adds tap_pix_[t] (in pixels).
  void SetUpImage();

  // Sizes one set of per-image working memory (after SetUpImage, or
  // SetUpGeometry for the NHWC depthwise).
  void SizeScratch(ImageScratch* s) const;

  // The padded image and the window maps.
  void SetUpGeometry();

  // One image into the interior of s.image, row by row; the borders (and any
  // padding channels) hold the zero point, refreshed when it changes.
  void QuantizeImage(const float* x, const ActQuant& a, const ExecContext& ctx, ImageScratch& s);

  // Whether the node has the byte-edge attributes act_key (the activation
  // type) and range_key, and their canonical parameters.
  Result<bool> ByteEdgeParams(const char* act_key, const char* range_key, ActQuant* q) const;

  // One image of canonical 8-bit NHWC pixels (quantized with this node's own
  // static parameters, see byte_edges.h) into the interior of s.image; the
  // plane layout's int8 operand is the byte with its top bit flipped.
  void CopyImage(const uint8_t* x, const ActQuant& a, const ExecContext& ctx, ImageScratch& s);

  // The image's borders (and padding channels) hold the zero point: refilled
  // when it changes.
  void SetBorders(int32_t zero, ImageScratch& s) const {
    if (zero == s.image_zero) return;
    std::memset(s.image.data(), static_cast<uint8_t>(zero), s.image.size());
    s.image_zero = zero;
  }

  // Where input row r (of depth x height rows) starts inside the padded image.
  uint8_t* ImageRow(int64_t r, ImageScratch& s) const {
    const auto& g = g_;
    const int64_t d = r / g.in[1], h = r % g.in[1];
    return s.image.data() + (((d + g.pad_begin[0]) * padded_[1] + h + g.pad_begin[1]) * padded_[2] +
                             g.pad_begin[2]) *
                                cs_;
  }

  // sums_[p]: the sum of output pixel p's window bytes in the group's
  // channels, from per-pixel sums over the padded image (taps adds, not K);
  // with row segments, plus the zero point once per padding column of K.
  void WindowSums(int64_t grp, const ExecContext& ctx, ImageScratch& s);

  // The window sums one tap at a time (small windows).
  void StridedWindowSums(const ExecContext& ctx, ImageScratch& s);

  // Large 2-D windows (conv1 of a ResNet: 7x7 at stride 2): sums_ from a
  // summed-area table of the pixel sums, four reads per window instead of
  // one add per tap. Arithmetic modulo 2^32 is exact here, since every true
  // window sum fits in an int32.
  void IntegralWindowSums(const ExecContext& ctx, ImageScratch& s);

  // Rows of the GEMM for kernels that need them contiguous: output pixel p's
  // window bytes in group grp's channels, (kd, kh, kw, c) order, then zeros
  // up to w's k_pad.
  void Gather(const QLinearWeights& w, int64_t grp, const ExecContext& ctx, ImageScratch& s);

  // Depthwise on the NHWC byte image (kernels/depthwise.h), writing bytes
  // (yb) or fp32 planes (yf); output rows split across threads.
  void DepthwiseBytes(const ActQuant& a, const float* bias, ByteOutput bo, uint8_t* yb, float* yf,
                      const ExecContext& ctx, ImageScratch& s);

  // y[m] = scale[m] * xs * sum over taps of (T - offset[m]) * (a - z) + b[m],
  // on a plane of a - z (padding 0) in fp32 lanes: every product and sum is
  // an exact small integer (|acc| < 2^24 for windows up to 7x7x5).
  void Depthwise(const float* x, const ActQuant& a, const float* bias, bool activation, float* y,
                 const ExecContext& ctx);

  struct Scratch {
    std::vector<float> plane, acc;
  };
  WindowGeometry g_;
  Shape out_shape_;
  Residual residual_;  // input 4
  int64_t n_ = 0, c_ = 0, m_ = 0, group_ = 1, cg_ = 0, mg_ = 0, taps_ = 0, kk_ = 0;
  int64_t cs_ = 0, ck_ = 0;  // pixel stride of the image; channels per group the kernel sees
  int64_t segment_ = 0;      // SetKernelRows
  bool depthwise_ = false, signed_ = false, direct_ = false, implicit_ = false,
       rows_for_direct_ = false;
  // Filter-wise formats: groups_ holds one layout per format, and part i
  // writes output channels part_out_[i].
  bool mixed_ = false;
  std::vector<std::vector<int32_t>> part_out_;
  std::vector<int64_t> part_dot_;                  // MixedBytes: each format's region of dot
  std::vector<int32_t> gather_idx_, gather_step_;  // and each output's place in it
  ActQuant act_;
  // Byte edges: canonical parameters of the output and residual bytes; fp32
  // planes for a broadcast residual that arrives as bytes or an output that
  // leaves as bytes.
  bool bytes_in_ = false, bytes_out_ = false, res_bytes_ = false;
  ActQuant out_q_, res_q_;
  std::vector<float> res_planes_, y_planes_;
  // Non-depthwise: kernel layouts per group, the padded image, window maps.
  std::vector<QLinearWeights> groups_;
  std::array<int64_t, 3> padded_{1, 1, 1};
  std::vector<int64_t> row_pix_, tap_pix_;
  std::vector<int32_t> step_off_;
  bool use_integral_ = false;  // IntegralWindowSums
  bool in_place_ = false;      // the 8-bit input read without an image (SetUpImage)
  // Winograd F(4x4, 3x3) (SetUpWinograd): bands of 4 output rows, tiles per
  // band, bands per unit of the products, and the transformed weights.
  bool winograd_ = false;
  int64_t wino_bands_ = 0, wino_tpr_ = 0, wino_unit_ = 1;
  std::vector<int16_t> wino_u_;
  // Per-image working memory (ImageScratch above).
  std::vector<ImageScratch> scratch_;
  ImageScratch no_scratch_;  // for the planes depthwise, which has its own
  ThreadPool serial_{1};     // runs ParallelFor inline
  // Depthwise; with byte edges on the NHWC image (nhwc_dw_), with the weights
  // tap-major, their per-channel sums, and per-image scales and biases.
  std::vector<float> dw_weight_, dw_scale_;
  bool nhwc_dw_ = false;
  std::vector<float> dw_taps_, dw_wsum_, dw_a_scale_, dw_bias_;
  std::vector<int16_t> dw_pairs_;  // DepthwisePairWeights of dw_taps_
  std::vector<Scratch> dw_scratch_;
};

}  // namespace lowbit

#endif  // LOWBIT_RUNTIME_OPS_PACKED_CONV_H_
