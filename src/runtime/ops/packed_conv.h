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
// One algorithm object per way of computing an image (ConvAlgorithm below),
// chosen once per plan in ChooseAlgorithm: the GEMM (packed_conv_gemm.cc),
// exact Winograd (packed_conv_winograd.cc), depthwise on planes and on bytes
// (packed_conv_depthwise.cc). PackedConv itself prepares what they share
// (packed_conv.cc: geometry, kernel layouts, byte edges, the batch loop and
// late residuals; packed_conv_image.cc: the byte image, window sums,
// gathered rows).
#ifndef LOWBIT_RUNTIME_OPS_PACKED_CONV_H_
#define LOWBIT_RUNTIME_OPS_PACKED_CONV_H_

#include <array>
#include <climits>
#include <cstdint>
#include <cstring>
#include <memory>
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
    std::vector<float> dw_scale, dw_bias;  // the NHWC depthwise's per-channel epilogue
  };

  // What one image's computation reads and writes; Run fills it per image.
  // Pointers are to the whole batch (image i starts i images in).
  struct ImageIO {
    int64_t i = 0;                   // the image
    ActQuant a;                      // its activation quantization
    const float* x = nullptr;        // fp32 input, or null when X is bytes
    const uint8_t* xb = nullptr;     // 8-bit input pixels, or null
    const float* bias = nullptr;     // or null
    bool late_residual = false;      // the residual is added after the kernels, by Run
    bool write_bytes = false;        // the kernels write yb
    const float* res = nullptr;      // fp32 residual planes, or null
    const uint8_t* res_b = nullptr;  // 8-bit residual pixels, or null
    float* y = nullptr;              // fp32 output planes (when not write_bytes)
    uint8_t* yb = nullptr;           // 8-bit output pixels, or null
    ByteOutput bo;                   // their quantization
  };

  // The algorithms: one object each, chosen once per plan in Prepare
  // (the one place: ChooseAlgorithm), each in its own file, run per image.
  // A new algorithm is a subclass, a factory and a line in ChooseAlgorithm.
  class ConvAlgorithm {
   public:
    virtual ~ConvAlgorithm() = default;
    // "implicit-gemm", "winograd", "depthwise-planes", ... for profiles.
    virtual std::string name() const = 0;
    virtual void RunImage(PackedConv& conv, const ImageIO& io, const ExecContext& ctx,
                          ImageScratch& s) = 0;
  };
  class GemmAlgorithm;             // packed_conv_gemm.cc: direct, implicit or gathered GEMM
  class WinogradAlgorithm;         // packed_conv_winograd.cc: exact F(4x4, 3x3)
  class DepthwisePlanesAlgorithm;  // packed_conv_depthwise.cc: fp32 planes of small integers
  class DepthwiseBytesAlgorithm;   // packed_conv_depthwise.cc: on the NHWC byte image
  // After SetUpImage.
  static std::unique_ptr<ConvAlgorithm> MakeGemm(const PackedConv& conv);
  // Exact Winograd where it applies (conditions in packed_conv_winograd.cc),
  // else null; after the groups' layouts, before SetUpImage.
  static std::unique_ptr<ConvAlgorithm> MakeWinograd(const PackedConv& conv);
  // On planes, or on bytes (nhwc_dw_; after SetUpGeometry): the weights as
  // small integers T[code] - offset, one per tap ([M, taps]), and a scale
  // per channel, from the kernel layout of the whole [M, taps] weight.
  static Result<std::unique_ptr<ConvAlgorithm>> MakeDepthwise(const PackedConv& conv,
                                                              const PackedTensor& w);
  // Picks the algorithm for the prepared geometry and weights, and sets up
  // what the others share (the byte image); `w` is the packed weight.
  Status ChooseAlgorithm(const PackedParts& w);

  // The 8-bit image the GEMM and Winograd algorithms read: image io.i
  // quantized or copied into s.image, or the input itself (in_place_).
  const uint8_t* ImageFor(const ImageIO& io, const ExecContext& ctx, ImageScratch& s);

  // The same-shape residual of output pixels from p0 for a byte epilogue:
  // fp32 planes r (osz per channel) or 8-bit pixels rb (m per pixel, with
  // their scale and zero point), or none.
  static RowResidual ResidualRows(const float* r, const uint8_t* rb, int64_t p0, int64_t osz,
                                  int64_t m, float scale, int32_t zero) {
    RowResidual rr;
    if (r != nullptr) {
      rr.planes = r + p0;
      rr.ld = osz;
    } else if (rb != nullptr) {
      rr.bytes = rb + p0 * m;
      rr.ld = m;
      rr.scale = scale;
      rr.zero = zero;
    }
    return rr;
  }

  // The epilogue of one part (a group, or a format of filter-wise weights)
  // of image io.i: pixels [p0, p0 + n), outputs [j0, j1) of the part, from
  // their dot products. BeginPart sets it up (window sums, constants).
  struct PartEpilogue {
    const QLinearWeights* w;
    const ColumnEpilogue* c;
    const int32_t* sums;
    float* y;           // the part's fp32 output planes, or null
    const float* r;     // its fp32 residual planes, or null
    uint8_t* yb;        // its 8-bit output pixels, or null
    const uint8_t* rb;  // its 8-bit residual pixels, or null
    int64_t osz, m;     // output pixels; output channels (the pixel stride of yb, rb)
    ByteOutput bo;
    float res_scale;
    int32_t res_zero;
    void operator()(int64_t p0, int64_t n, const int32_t* dot, int64_t j0, int64_t j1) const {
      if (yb != nullptr) {
        const RowResidual rr = ResidualRows(r, rb, p0, osz, m, res_scale, res_zero);
        QLinearEpilogueRowsBytes(*w, *c, sums + p0, dot, n, rr, bo, yb + p0 * m, m, j0, j1);
      } else {
        QLinearEpilogueColumns(*w, *c, sums + p0, dot, n, r != nullptr ? r + p0 : nullptr, y + p0,
                               osz, j0, j1);
      }
    }
  };
  PartEpilogue BeginPart(const ImageIO& io, int64_t part, const ExecContext& ctx, ImageScratch& s);

 public:
  std::string Algorithm() const override;

  Status Prepare(const std::vector<TensorInfo>& in, std::vector<TensorInfo>* out) override;

  void Run(const std::vector<const Tensor*>& in, const std::vector<Tensor*>& out,
           const ExecContext& ctx) override;

 private:
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
  bool level_ = false;               // BuildGroups lays the groups out as level planes
  std::vector<bool> level_padding_;  // with these inputs padding (KernelPadding)
  std::array<int64_t, 3> padded_{1, 1, 1};
  std::vector<int64_t> row_pix_, tap_pix_;
  std::vector<int32_t> step_off_;
  bool use_integral_ = false;  // IntegralWindowSums
  bool in_place_ = false;      // the 8-bit input read without an image (SetUpImage)
  std::unique_ptr<ConvAlgorithm> algorithm_;
  bool winograd_ = false;  // algorithm_ is the Winograd one (SetUpImage reads it)
  // Per-image working memory (ImageScratch above).
  std::vector<ImageScratch> scratch_;
  ImageScratch no_scratch_;  // for the planes depthwise, which has its own
  ThreadPool serial_{1};     // runs ParallelFor inline
  bool nhwc_dw_ = false;     // depthwise on the NHWC byte image (with byte edges)
};

}  // namespace lowbit

#endif  // LOWBIT_RUNTIME_OPS_PACKED_CONV_H_
