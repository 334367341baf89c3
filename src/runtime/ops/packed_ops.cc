// PackedGemm and PackedConv (model/packed_node.h): layers whose weights stay
// packed and run on the low-bit kernels (kernels/qlinear.h). Activations are
// quantized to 8 bits per row (Gemm) or per image (Conv), statically from a
// calibrated range or dynamically; products accumulate in int32 and one fused
// epilogue applies scales, zero-point corrections, bias and the activation.
//
// Convolution: each image is quantized once into an NHWC byte image padded
// with the zero point (x = 0), so no window needs a bounds check. The weight's
// columns are permuted to (kd, kh, kw, c) when the kernel layout is built, and
// the GEMM is output pixels x output channels, with each pixel's window read
// in place (implicit GEMM: a row pointer per pixel, a byte offset per input
// step), straight from the image (1x1, stride 1), or gathered into rows when
// the kernel needs that (table layout with padded inputs, the reference path).
// Depthwise convolution (one input channel per group) has its own kernel on
// small exact integers held in fp32 lanes.
#include <algorithm>
#include <climits>
#include <cmath>
#include <cstring>

#include "base/target.h"
#include "kernels/depthwise.h"
#include "kernels/qlinear.h"
#include "kernels/weight_decode.h"
#include "kernels/winograd.h"
#include "runtime/activation.h"
#include "runtime/byte_edges.h"
#include "runtime/ops/conv_geometry.h"
#include "runtime/ops/planes.h"
#include "runtime/packed_inputs.h"
#include "runtime/sgemm.h"

namespace lowbit {

std::unique_ptr<OpKernel> MakeWeightOnlyConv(const Node& n);  // conv.cc

namespace {

Epilogue MakeEpilogue(const FusedActivation& act, const float* bias) {
  Epilogue e;
  e.bias = bias;
  e.clamp = act.active;
  e.lo = act.lo;
  e.hi = act.hi;
  return e;
}

// What PackedGemm and PackedConv share: inputs (X, codes, scales, B?), the
// packed weight, the kernel path, activation settings, the fused activation.
class PackedKernel : public OpKernel {
 public:
  using OpKernel::OpKernel;

 protected:
  Status PrepareCommon(const std::vector<TensorInfo>& in, PackedParts* w) {
    LOWBIT_ASSIGN_OR_RETURN(*w, PreparePackedParts(*this, in));
    has_bias_ = in.size() > 3 && in[3].present;
    if (has_bias_ && (in[3].dtype != DType::kFloat32 || in[3].shape != Shape{w->rows()})) {
      return InvalidArgument(Where(), "bias ", DTypeName(in[3].dtype), " ",
                             ShapeToString(in[3].shape), " must be float32 [", w->rows(), "]");
    }
    Result<KernelPath> path = ResolveKernelPath(kernel_options_);
    if (!path.ok()) return Status(path.status().code(), Where() + path.status().message());
    path_ = path.value();
    LOWBIT_ASSIGN_OR_RETURN(act_spec_, ActSpecOf(node_));
    fused_ = FusedActivation::FromNode(node_);
    return OkStatus();
  }

  // The kernel layout of a packed weight, errors naming this node.
  Result<QLinearWeights> Layout(const PackedTensor& w) const {
    Result<QLinearWeights> q = PrepareQLinearFor(w, path_, kernel_options_.lut);
    if (!q.ok()) return Status(q.status().code(), Where() + q.status().message());
    return q;
  }

  // The same for codes given unpacked ([p.rows, p.cols]).
  Result<QLinearWeights> LayoutCodes(const QuantParams& p, const uint32_t* codes) const {
    Result<QLinearWeights> q = PrepareQLinearCodesFor(p, codes, path_, kernel_options_.lut);
    if (!q.ok()) return Status(q.status().code(), Where() + q.status().message());
    return q;
  }

  // Filter-wise formats: every part's layout must read the same activation
  // operand (signed for the plane layout, unsigned for the table layout).
  Status CheckOneOperand(const std::vector<QLinearWeights>& parts, const PackedParts& w) const {
    for (const QLinearWeights& q : parts) {
      if (q.signed_acts() != parts[0].signed_acts()) {
        return Unimplemented(
            Where(), "filter-wise formats ", w.format(),
            " mix kernel layouts (1, 2, 4 and 8-bit uniform grids read int8 activations, "
            "other formats uint8): pick formats from one of the two sets");
      }
    }
    return OkStatus();
  }

  const float* Bias(const std::vector<const Tensor*>& in) const {
    return has_bias_ ? in[3]->data<float>() : nullptr;
  }

  KernelPath path_ = KernelPath::kRef;
  bool has_bias_ = false;
  ActSpec act_spec_;
  FusedActivation fused_;
};

class PackedGemm final : public PackedKernel {
 public:
  using PackedKernel::PackedKernel;

  std::string Algorithm() const override {
    const bool lut = !ws_.empty() && !ws_[0].lut.empty() && rows_ <= ws_[0].lut_max_rows;
    return std::string(KernelPathName(path_)) + (lut ? " lut" : rows_ == 1 ? " gemv" : " gemm") +
           (outs_.empty() ? "" : " filter-wise");
  }

  Status Prepare(const std::vector<TensorInfo>& in, std::vector<TensorInfo>* out) override {
    PackedParts w;
    LOWBIT_RETURN_IF_ERROR(PrepareCommon(in, &w));
    if (w.shape.size() != 2) {
      return InvalidArgument(Where(), "weight_shape ", ShapeToString(w.shape), " must be [N, K]");
    }
    const Shape& x = in[0].shape;
    if (x.empty() || x.back() != w.shape[1]) {
      return InvalidArgument(Where(), "X ", ShapeToString(x), " must end in K = ", w.shape[1]);
    }
    ws_.clear();
    for (const PackedTensor& p : w.parts) {
      ws_.emplace_back();
      LOWBIT_ASSIGN_OR_RETURN(ws_.back(), Layout(p));
    }
    LOWBIT_RETURN_IF_ERROR(CheckOneOperand(ws_, w));
    outs_ = w.mixed() ? w.channels : std::vector<std::vector<int32_t>>{};
    if (act_spec_.is_static) {
      act_ = StaticActParams(act_spec_.lo, act_spec_.hi, act_spec_.symmetric, ws_[0].signed_acts());
    }
    rows_ = NumElements(x) / w.shape[1];
    n_ = w.rows();
    Shape y = x;
    y.back() = n_;
    (*out)[0] = TensorInfo{true, DType::kFloat32, y, nullptr};
    return OkStatus();
  }

  void Run(const std::vector<const Tensor*>& in, const std::vector<Tensor*>& out,
           const ExecContext& ctx) override {
    // Filter-wise formats: one pass per format, each writing its outputs.
    for (size_t i = 0; i < ws_.size(); ++i) {
      Epilogue e = MakeEpilogue(fused_, Bias(in));
      if (!outs_.empty()) e.out = outs_[i].data();
      QLinearForward(ws_[i], path_, in[0]->data<float>(), rows_, e, &scratch_,
                     out[0]->data<float>(), ctx.pool, act_spec_.is_static ? &act_ : nullptr,
                     act_spec_.symmetric, n_);
    }
  }

 private:
  std::vector<QLinearWeights> ws_;          // one per format
  std::vector<std::vector<int32_t>> outs_;  // their outputs (filter-wise formats)
  ActQuant act_;
  int64_t rows_ = 0, n_ = 0;
  QLinearScratch scratch_;
};

LOWBIT_VECTORIZE void BiasClampRow(float* __restrict y, int64_t n, const float* __restrict bias,
                                   float lo, float hi) {
  if (bias != nullptr) {
    for (int64_t i = 0; i < n; ++i) y[i] = std::min(std::max(y[i] + bias[i], lo), hi);
  } else {
    for (int64_t i = 0; i < n; ++i) y[i] = std::min(std::max(y[i], lo), hi);
  }
}

// PackedGemm with act "float" (weight-only): fp32 activations and packed
// weights (kernels/weight_decode.h). A few input rows: GEMV per row, codes
// looked up and multiplied in registers. More rows: a shared tile of decoded
// rows feeds sgemm.
class WeightOnlyGemm final : public OpKernel {
 public:
  using OpKernel::OpKernel;

  std::string Algorithm() const override { return "weight-only"; }

  Status Prepare(const std::vector<TensorInfo>& in, std::vector<TensorInfo>* out) override {
    PackedTensor w;
    LOWBIT_ASSIGN_OR_RETURN(w, PreparePackedInputs(*this, in));
    if (w.shape().size() != 2) {
      return InvalidArgument(Where(), "weight_shape ", ShapeToString(w.shape()), " must be [N, K]");
    }
    const Shape& x = in[0].shape;
    if (x.empty() || x.back() != w.cols()) {
      return InvalidArgument(Where(), "X ", ShapeToString(x), " must end in K = ", w.cols());
    }
    has_bias_ = in.size() > 3 && in[3].present;
    if (has_bias_ && (in[3].dtype != DType::kFloat32 || in[3].shape != Shape{w.rows()})) {
      return InvalidArgument(Where(), "bias ", DTypeName(in[3].dtype), " ", ShapeToString(in[3].shape),
                             " must be float32 [", w.rows(), "]");
    }
    rows_ = NumElements(x) / w.cols();
    Shape y = x;
    y.back() = w.rows();
    decoder_ = WeightDecoder(std::move(w));
    tile_rows_ = DecodeTileRows(decoder_.rows(), decoder_.cols());
    fused_ = FusedActivation::FromNode(node_);
    (*out)[0] = TensorInfo{true, DType::kFloat32, y, nullptr};
    return OkStatus();
  }

  void Run(const std::vector<const Tensor*>& in, const std::vector<Tensor*>& out,
           const ExecContext& ctx) override {
    const int64_t n = decoder_.rows(), k = decoder_.cols();
    const float* x = in[0]->data<float>();
    const float* bias = has_bias_ ? in[3]->data<float>() : nullptr;
    float* y = out[0]->data<float>();
    if (rows_ <= 4) {
      // GEMV per input row: threads take blocks of 16 output rows.
      for (int64_t i = 0; i < rows_; ++i) {
        decoder_.PrepareGemv(x + i * k, &gemv_);
        ctx.pool->ParallelFor((n + 15) / 16, [&](int64_t b0, int64_t b1) {
          decoder_.Gemv(gemv_, b0 * 16, std::min(n, b1 * 16), y + i * n + b0 * 16);
        });
      }
    } else {
      float* tile = DecodeBuffer(tile_rows_ * k);
      for (int64_t r0 = 0; r0 < n; r0 += tile_rows_) {
        const int64_t rows = std::min(tile_rows_, n - r0);
        ctx.pool->ParallelFor(rows, [&](int64_t s, int64_t e) {
          decoder_.DecodeRows(r0 + s, r0 + e, tile + s * k, k);
        });
        Sgemm(ctx, false, true, rows_, rows, k, 1.0f, x, k, tile, k, 0.0f, y + r0, n);
      }
    }
    if (bias == nullptr && !fused_.active) return;
    const float lo = fused_.active ? fused_.lo : -INFINITY, hi = fused_.active ? fused_.hi : INFINITY;
    for (int64_t i = 0; i < rows_; ++i) BiasClampRow(y + i * n, n, bias, lo, hi);
  }

 private:
  WeightDecoder decoder_;
  WeightDecoder::GemvInput gemv_;
  int64_t rows_ = 0, tile_rows_ = 0;
  bool has_bias_ = false;
  FusedActivation fused_;
};

// Quantizes n values with fixed parameters into bytes (int8 or uint8).
LOWBIT_VECTORIZE void QuantizeBytes(const float* __restrict x, int64_t n, float inv, float zero,
                                    float lo, float hi, uint8_t* __restrict q, bool is_signed) {
  if (is_signed) {
    int8_t* s = reinterpret_cast<int8_t*>(q);
    for (int64_t i = 0; i < n; ++i) {
      s[i] = static_cast<int8_t>(std::min(std::max(std::nearbyint(x[i] * inv) + zero, lo), hi));
    }
  } else {
    for (int64_t i = 0; i < n; ++i) {
      q[i] = static_cast<uint8_t>(std::min(std::max(std::nearbyint(x[i] * inv) + zero, lo), hi));
    }
  }
}

// dst[i] = q - zero with q = x[i] quantized to int8 (zero point `zero`):
// the centered integer, as a float.
LOWBIT_VECTORIZE void QuantizeCentered(const float* __restrict x, int64_t n, float inv, float zero,
                                       float* __restrict dst) {
  for (int64_t i = 0; i < n; ++i) {
    dst[i] = std::min(std::max(std::nearbyint(x[i] * inv) + zero, -128.0f), 127.0f) - zero;
  }
}

LOWBIT_VECTORIZE void ScaleBiasClamp(const float* __restrict acc, int64_t n, float scale, float b,
                                     float lo, float hi, float* __restrict y) {
  for (int64_t i = 0; i < n; ++i) y[i] = std::min(std::max(acc[i] * scale + b, lo), hi);
}

// y[i] += x[i * stride].
LOWBIT_VECTORIZE void AddStrided(int32_t* __restrict y, const int32_t* __restrict x, int64_t n,
                                 int64_t stride) {
  if (stride == 1) {
    for (int64_t i = 0; i < n; ++i) y[i] += x[i];
  } else {
    for (int64_t i = 0; i < n; ++i) y[i] += x[i * stride];
  }
}

LOWBIT_VECTORIZE int32_t SumBytes(const uint8_t* __restrict p, int64_t n) {
  int32_t s = 0;
  for (int64_t i = 0; i < n; ++i) s += p[i];
  return s;
}
LOWBIT_VECTORIZE int32_t SumBytes(const int8_t* __restrict p, int64_t n) {
  int32_t s = 0;
  for (int64_t i = 0; i < n; ++i) s += p[i];
  return s;
}

// [N, C, spatial...] <-> [N, spatial..., C].
Shape NhwcOf(const Shape& nchw) {
  Shape s = {nchw[0]};
  s.insert(s.end(), nchw.begin() + 2, nchw.end());
  s.push_back(nchw[1]);
  return s;
}
Shape NchwOf(const Shape& nhwc) {
  Shape s = {nhwc[0], nhwc.back()};
  s.insert(s.end(), nhwc.begin() + 1, nhwc.end() - 1);
  return s;
}

// n pixels of c bytes into pixels of cs bytes (cs >= c; the rest untouched),
// each byte xor `flip`.
LOWBIT_VECTORIZE void CopyPixels(const uint8_t* __restrict x, int64_t n, int64_t c, int64_t cs,
                                 uint8_t flip, uint8_t* __restrict dst) {
  if (cs == c) {
    for (int64_t i = 0; i < n * c; ++i) dst[i] = x[i] ^ flip;
    return;
  }
  for (int64_t p = 0; p < n; ++p) {
    for (int64_t j = 0; j < c; ++j) dst[p * cs + j] = x[p * c + j] ^ flip;
  }
}

// Canonical 8-bit NHWC pixels of logical NCHW shape `shape` to fp32 planes,
// and back (the rounding of ByteOutput).
void BytesToPlanes(const uint8_t* q, const Shape& shape, const ActQuant& a, float* y) {
  const int64_t n = shape[0], c = shape[1], hw = NumElements(shape) / (n * c);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t p = 0; p < hw; ++p) {
      for (int64_t j = 0; j < c; ++j) {
        y[(i * c + j) * hw + p] = a.scale * static_cast<float>(q[(i * hw + p) * c + j] - a.zero);
      }
    }
  }
}
void PlanesToBytes(const float* y, const Shape& shape, ByteOutput o, uint8_t* q) {
  const int64_t n = shape[0], c = shape[1], hw = NumElements(shape) / (n * c);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t p = 0; p < hw; ++p) {
      for (int64_t j = 0; j < c; ++j) {
        q[(i * hw + p) * c + j] = ToByte(y[(i * c + j) * hw + p], o);
      }
    }
  }
}

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
    std::vector<uint8_t> image, u;  // the padded NHWC image; gathered rows
    int32_t image_zero = INT_MIN;   // the zero point the image's borders hold
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
  std::string Algorithm() const override {
    std::string a = KernelPathName(path_);
    if (depthwise_) return a + (nhwc_dw_ ? " depthwise-bytes" : " depthwise-planes");
    a += winograd_ ? " winograd" : direct_ ? " direct" : implicit_ ? " implicit-gemm" : " im2col";
    if (LevelPlanes()) a += " level-planes";
    if (mixed_) a += " filter-wise";
    return a;
  }

  Status Prepare(const std::vector<TensorInfo>& in, std::vector<TensorInfo>* out) override {
    PackedParts w;
    LOWBIT_RETURN_IF_ERROR(PrepareCommon(in, &w));
    // Byte edges (runtime/byte_edges.h): X, R and Y may be 8-bit NHWC pixels.
    bytes_in_ = node_.GetInt(kByteInput, 0) != 0;
    if (bytes_in_ && !act_spec_.is_static) {
      return InvalidArgument(Where(), "8-bit input X needs a static act_range");
    }
    LOWBIT_ASSIGN_OR_RETURN(bytes_out_, ByteEdgeParams(kByteOutputAct, kByteOutputRange, &out_q_));
    LOWBIT_ASSIGN_OR_RETURN(res_bytes_, ByteEdgeParams(kByteResidualAct, kByteResidualRange, &res_q_));
    LOWBIT_RETURN_IF_ERROR(ResidualRangeOf(node_).status());
    const Shape x_shape = bytes_in_ ? NchwOf(in[0].shape) : in[0].shape;
    ConvDims d;
    LOWBIT_ASSIGN_OR_RETURN(d, ComputeConvDims(node_, x_shape, w.shape, "weight_shape"));
    n_ = d.n;
    c_ = d.c;
    m_ = d.m;
    group_ = d.group;
    g_ = d.g;
    cg_ = c_ / group_;
    mg_ = m_ / group_;
    taps_ = g_.k[0] * g_.k[1] * g_.k[2];
    depthwise_ = cg_ == 1 && group_ > 1;
    mixed_ = w.mixed();
    if (mixed_ && group_ != 1) {
      return Unimplemented(Where(), "filter-wise formats (", w.format(),
                           ") need group 1, not group ", group_);
    }
    nhwc_dw_ = depthwise_ && (bytes_in_ || bytes_out_);
    if (nhwc_dw_ && (mg_ != 1 || res_bytes_ || (in.size() > 4 && in[4].present))) {
      return InvalidArgument(Where(), "8-bit pixels need a depthwise convolution with one output per "
                                      "channel and no residual");
    }
    if (depthwise_) {
      LOWBIT_RETURN_IF_ERROR(BuildDepthwise(w.parts[0]));
      signed_ = !nhwc_dw_;
      if (nhwc_dw_) {
        // The NHWC byte image and tap-major weights of DepthwiseNhwc.
        cs_ = ck_ = c_;
        SetUpGeometry();
        dw_taps_.resize(taps_ * m_);
        dw_wsum_.assign(m_, 0.0f);
        for (int64_t m = 0; m < m_; ++m) {
          for (int64_t t = 0; t < taps_; ++t) {
            dw_taps_[t * m_ + m] = dw_weight_[m * taps_ + t];
            dw_wsum_[m] += dw_weight_[m * taps_ + t];
          }
        }
        dw_a_scale_.resize(m_);
        dw_bias_.assign(m_, 0.0f);
        dw_pairs_ = DepthwisePairWeights(dw_taps_.data(), taps_, m_);
      }
    } else {
      // Images with a channel count that is not a multiple of 4 (an RGB or
      // grey stem) get one of two forms that keep every input step of 4
      // inside one run of contiguous bytes, so the implicit GEMM applies:
      // - row segments (SetKernelRows): packed pixels, and K runs over each
      //   kernel row's kw * c bytes, padded to a multiple of 4 with weights
      //   of code 0, so the bytes read past the row's window never count;
      // - else padding channels holding the zero point (x = 0): a - z = 0
      //   there, so their weights never contribute.
      SetKernelRows(true);
      LOWBIT_RETURN_IF_ERROR(BuildGroups(w));
      if (segment_ > 0 && !std::all_of(groups_.begin(), groups_.end(), [](const QLinearWeights& q) {
            return q.layout == QLinearWeights::Layout::kPlanes;
          })) {
        SetKernelRows(false);  // table layouts give code 0 a weight
        LOWBIT_RETURN_IF_ERROR(BuildGroups(w));
      }
      // AVX-512: symmetric grids run as level planes (kernels/qlinear.h):
      // uint8 images as they are and no window sums, when every part can.
      if (path_ == KernelPath::kAvx512Vnni) {
        std::vector<QLinearWeights> level = groups_;
        const std::vector<bool> padding = KernelPadding();
        if (std::all_of(level.begin(), level.end(),
                        [&](QLinearWeights& q) { return ToLevelPlanes(&q, padding); })) {
          groups_ = std::move(level);
        }
      }
      LOWBIT_RETURN_IF_ERROR(CheckOneOperand(groups_, w));
      signed_ = groups_[0].signed_acts();
      SetUpWinograd();
      SetUpImage();
    }
    scratch_.clear();
    if (!depthwise_ || nhwc_dw_) {
      scratch_.emplace_back();
      SizeScratch(&scratch_.back());
    }
    if (act_spec_.is_static) {
      act_ = StaticActParams(act_spec_.lo, act_spec_.hi, act_spec_.symmetric, signed_);
    }
    out_shape_ = g_.OutputShape(n_, m_);
    std::vector<TensorInfo> res_in = in;
    if (res_bytes_) {
      if (in.size() <= 4 || !in[4].present || in[4].dtype != DType::kUint8) {
        return InvalidArgument(Where(), "attribute ", kByteResidualAct, " needs an 8-bit residual input");
      }
      res_in[4].dtype = DType::kFloat32;
      res_in[4].shape = NchwOf(in[4].shape);
    }
    LOWBIT_RETURN_IF_ERROR(residual_.Prepare(*this, res_in, 4, out_shape_));
    const bool late = residual_.present && !residual_.same_shape;
    res_planes_.assign(res_bytes_ && late ? NumElements(residual_.shape) : 0, 0.0f);
    y_planes_.assign(bytes_out_ && late ? NumElements(out_shape_) : 0, 0.0f);
    (*out)[0] = bytes_out_ ? TensorInfo{true, DType::kUint8, NhwcOf(out_shape_), nullptr}
                           : TensorInfo{true, DType::kFloat32, out_shape_, nullptr};
    return OkStatus();
  }

  void Run(const std::vector<const Tensor*>& in, const std::vector<Tensor*>& out,
           const ExecContext& ctx) override {
    const float* x = bytes_in_ ? nullptr : in[0]->data<float>();
    const float* bias = Bias(in);
    const int64_t isz = c_ * g_.in_size(), osz = g_.out_size();
    // A fused residual of the output's shape is added in the epilogue before
    // the activation; otherwise (broadcast, depthwise) after it, and the
    // activation with it. Late residuals and outputs work on fp32 planes.
    const bool late_residual = residual_.present && (!residual_.same_shape || depthwise_);
    const float* res = nullptr;
    const uint8_t* res_b = nullptr;
    if (residual_.present && !res_bytes_) {
      res = in[4]->data<float>();
    } else if (residual_.present && late_residual) {
      BytesToPlanes(in[4]->data<uint8_t>(), residual_.shape, res_q_, res_planes_.data());
      res = res_planes_.data();
    } else if (residual_.present) {
      res_b = in[4]->data<uint8_t>();
    }
    const bool write_bytes = bytes_out_ && !late_residual;
    float* y = bytes_out_ ? y_planes_.data() : out[0]->data<float>();
    uint8_t* yb = bytes_out_ ? out[0]->data<uint8_t>() : nullptr;
    const ByteOutput bo{1.0f / out_q_.scale, out_q_.zero};
    auto run_image = [&](int64_t i, const ExecContext& ctx, ImageScratch& s) {
      const ActQuant a = act_spec_.is_static
                             ? act_
                             : DynamicActParams(x + i * isz, isz, act_spec_.symmetric, signed_);
      if (nhwc_dw_) {
        if (bytes_in_) {
          CopyImage(in[0]->data<uint8_t>() + i * isz, a, ctx, s);
        } else {
          QuantizeImage(x + i * isz, a, ctx, s);
        }
        DepthwiseBytes(a, bias, bo, yb != nullptr ? yb + i * osz * m_ : nullptr,
                       y != nullptr ? y + i * m_ * osz : nullptr, ctx, s);
        return;
      }
      if (depthwise_) {
        Depthwise(x + i * isz, a, bias, !late_residual, y + i * m_ * osz, ctx);
        return;
      }
      if (!bytes_in_) {
        QuantizeImage(x + i * isz, a, ctx, s);
      } else if (!in_place_) {
        CopyImage(in[0]->data<uint8_t>() + i * isz, a, ctx, s);
      }
      const uint8_t* image = in_place_ ? in[0]->data<uint8_t>() + i * isz : s.image.data();
      const int64_t threads = ctx.pool->threads();
      if (mixed_ && write_bytes && (implicit_ || direct_)) {
        MixedBytes(a, bias, res != nullptr && !late_residual ? res + i * m_ * osz : nullptr,
                   res_b != nullptr ? res_b + i * osz * m_ : nullptr, bo, yb + i * osz * m_, ctx,
                   s);
        return;
      }
      for (int64_t part = 0; part < static_cast<int64_t>(groups_.size()); ++part) {
        const QLinearWeights& w = groups_[part];
        // Input channels from group grp; outputs from og, or scattered to
        // part_out_ (filter-wise formats: every part reads the whole input).
        const int64_t grp = mixed_ ? 0 : part, og = mixed_ ? 0 : part * mg_;
        // Few pixels and many output tiles (the late, 7x7 and 14x14 layers):
        // threads split the output channels, so each streams only its share
        // of the weights and the work divides evenly.
        const bool by_channels = threads > 1 && (implicit_ || rows_for_direct_) &&
                                 osz < 128 * threads && w.n_pad / 16 >= 4 * threads;
        if (!LevelPlanes() && (!mixed_ || part == 0)) WindowSums(grp, ctx, s);
        Epilogue e = MakeEpilogue(fused_, bias != nullptr ? bias + og : nullptr);
        if (mixed_) e.out = part_out_[part].data();
        if (late_residual) e.clamp = false;
        PrepareColumnEpilogue(w, a, e, path_, &s.epilogue);
        float* yg = write_bytes ? nullptr : y + (i * m_ + og) * osz;
        const float* rg = res != nullptr && !late_residual ? res + (i * m_ + og) * osz : nullptr;
        uint8_t* ybg = write_bytes ? yb + i * osz * m_ + og : nullptr;
        const uint8_t* rbg = res_b != nullptr ? res_b + i * osz * m_ + og : nullptr;
        // The epilogue of pixels [p0, p0 + n), outputs [j0, j1).
        auto epilogue = [&](int64_t p0, int64_t n, const int32_t* dot, int64_t j0, int64_t j1) {
          if (ybg != nullptr) {
            const RowResidual r = ResidualRows(rg, rbg, p0);
            QLinearEpilogueRowsBytes(w, s.epilogue, s.sums.data() + p0, dot, n, r, bo, ybg + p0 * m_, m_,
                                     j0, j1);
          } else {
            QLinearEpilogueColumns(w, s.epilogue, s.sums.data() + p0, dot, n,
                                   rg != nullptr ? rg + p0 : nullptr, yg + p0, osz, j0, j1);
          }
        };
        if (winograd_) {
          // The image's pixels, from the input bytes or the padded image's interior.
          const WinogradImage im{
              in_place_ ? image : ImageRow(0, s), g_.in[1], g_.in[2],
              in_place_ ? g_.in[2] : padded_[2],  c_,       static_cast<uint8_t>(a.zero)};
          WinogradRun(im, ctx, s, epilogue);
          continue;
        }
        // The GEMM rows: window pointers into the image, or gathered windows.
        if (implicit_ || by_channels) {
          for (int64_t p = 0; p < osz; ++p) s.row_ptr[p] = image + row_pix_[p] * cs_ + grp * cg_;
        } else if (!direct_) {
          Gather(w, grp, ctx, s);
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
                QLinearDotRows(w, path_, s.row_ptr.data() + p0, step_off_.data(), n, dot, a0, a1);
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
          if (direct_) {
            QLinearDots(w, path_, image + p0 * cs_, n, dot, nullptr);
          } else if (implicit_) {
            QLinearDotsRows(w, path_, s.row_ptr.data() + p0, step_off_.data(), n, dot, nullptr);
          } else {
            QLinearDots(w, path_, s.u.data() + p0 * w.k_pad, n, dot, nullptr);
          }
          epilogue(p0, n, dot, 0, -1);
        });
      }
    };
    // Batches of small images: each thread takes whole images with its own
    // scratch, instead of splitting every image's many short steps.
    const int threads = ctx.pool->threads();
    const int64_t image_macs = g_.out_size() * m_ * kk_;
    const bool by_images = !depthwise_ && threads > 1 && n_ >= threads && image_macs < (int64_t{16} << 20);
    if (by_images) {
      while (static_cast<int>(scratch_.size()) < threads) {
        scratch_.emplace_back();
        SizeScratch(&scratch_.back());
      }
      const ExecContext one{&serial_, 1};
      ctx.pool->ParallelFor(threads, [&](int64_t t0, int64_t t1) {
        for (int64_t t = t0; t < t1; ++t) {
          for (int64_t i = n_ * t / threads; i < n_ * (t + 1) / threads; ++i) run_image(i, one, scratch_[t]);
        }
      });
    } else {
      // Small images run on this thread alone: each takes four parallel
      // steps, so it needs four times the work a single split does.
      const bool tiny = !depthwise_ && !WorthSplitting(image_macs / 4);
      const ExecContext one{&serial_, 1};
      for (int64_t i = 0; i < n_; ++i) {
        run_image(i, tiny ? one : ctx, scratch_.empty() ? no_scratch_ : scratch_[0]);
      }
    }
    if (late_residual) {
      residual_.AddTo(res, y, out_shape_, fused_.active ? fused_.lo : -INFINITY,
                      fused_.active ? fused_.hi : INFINITY);
      if (bytes_out_) PlanesToBytes(y, out_shape_, bo, yb);
    }
  }

 private:
  // The same-shape residual of output pixels from p0 for a byte epilogue:
  // fp32 planes or 8-bit pixels (one image's, from its first pixel), or none.
  RowResidual ResidualRows(const float* planes, const uint8_t* bytes, int64_t p0) const {
    RowResidual r;
    if (planes != nullptr) {
      r.planes = planes + p0;
      r.ld = g_.out_size();
    } else if (bytes != nullptr) {
      r.bytes = bytes + p0 * m_;
      r.ld = m_;
      r.scale = res_q_.scale;
      r.zero = res_q_.zero;
    }
    return r;
  }

  // Filter-wise formats writing bytes: per block of pixels, every format's
  // dot products (each in its own region of the block buffer), then one
  // epilogue pass in output-channel order that gathers them, so each pixel's
  // bytes are stored contiguously rather than scattered format by format.
  void MixedBytes(const ActQuant& a, const float* bias, const float* res, const uint8_t* res_b,
                  ByteOutput bo, uint8_t* yb, const ExecContext& ctx, ImageScratch& s) {
    const int64_t osz = g_.out_size(), threads = ctx.pool->threads();
    if (!LevelPlanes()) WindowSums(0, ctx, s);
    if (implicit_) {
      for (int64_t p = 0; p < osz; ++p) s.row_ptr[p] = s.image.data() + row_pix_[p] * cs_;
    }
    s.parts.resize(groups_.size());
    for (size_t part = 0; part < groups_.size(); ++part) {
      Epilogue e = MakeEpilogue(fused_, bias);
      e.out = part_out_[part].data();
      PrepareColumnEpilogue(groups_[part], a, e, path_, &s.parts[part]);
    }
    MergeColumnEpilogues(s.parts, m_, &s.epilogue);
    SizeDots(threads, s);
    ForBlocks(osz, threads, ctx, [&](int64_t t, int64_t p0, int64_t n) {
      for (size_t part = 0; part < groups_.size(); ++part) {
        const QLinearWeights& w = groups_[part];
        int32_t* dot = s.dot[t].data() + part_dot_[part];
        if (direct_) {
          QLinearDots(w, path_, s.image.data() + p0 * cs_, n, dot, nullptr);
        } else {
          QLinearDotsRows(w, path_, s.row_ptr.data() + p0, step_off_.data(), n, dot, nullptr);
        }
      }
      const RowResidual r = ResidualRows(res, res_b, p0);
      QLinearEpilogueRowsBytesGathered(
          s.epilogue, DotGather{gather_idx_.data(), gather_step_.data()}, s.sums.data() + p0,
          s.dot[t].data(), 0, n, r, bo, yb + p0 * m_, m_);
    });
  }

  // Whether this convolution runs as exact Winograd F(4x4, 3x3)
  // (kernels/winograd.h): AVX-512 level planes of one format, a 2D 3x3
  // window at stride 1 with padding 1 and the input's size, channels in
  // multiples of 32, weights WinogradExact accepts, and enough tiles per
  // image (32: ResNet's 56x56 and 28x28 layers, not 14x14 or 7x7, whose
  // partial tiles and few products per transformed weight lose) -- or any
  // count with KernelOptions::winograd on (LOWBIT_WINOGRAD=1); off
  // (LOWBIT_WINOGRAD=0) turns it off. Keeps the
  // transformed weights (36 * outputs * channels int16s).
  void SetUpWinograd() {
    winograd_ = false;
    wino_u_.clear();
    const auto& g = g_;
    const KernelRule rule = kernel_options_.winograd;
    if (rule == KernelRule::kOff || path_ != KernelPath::kAvx512Vnni || !LevelPlanes() || mixed_ ||
        group_ != 1 || segment_ > 0 || c_ % 32 != 0 || cs_ != c_ ||
        g.k != std::array<int64_t, 3>{1, 3, 3} || g.stride != std::array<int64_t, 3>{1, 1, 1} ||
        g.dilation != std::array<int64_t, 3>{1, 1, 1} ||
        g.pad_begin != std::array<int64_t, 3>{0, 1, 1} || g.out != g.in) {
      return;
    }
    wino_bands_ = (g.out[1] + 3) / 4;
    wino_tpr_ = (g.out[2] + 3) / 4;
    if ((rule != KernelRule::kOn && wino_bands_ * wino_tpr_ < 32) || !WinogradExact(groups_[0], c_)) return;
    winograd_ = true;
    // Units of whole bands, at least 28 tiles (measured on 56x56 and 28x28
    // layers of 64 and 128 channels): blocks of 5-6 tiles, V and the dots in L2.
    wino_unit_ = (28 + wino_tpr_ - 1) / wino_tpr_;
    const QLinearWeights& w = groups_[0];
    wino_u_.assign(36 * w.n_pad * c_, 0);
    WinogradWeightsAvx512(w, c_, 0, w.n_pad / 16, wino_u_.data());
  }

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
  static void SizeDots(int64_t threads, ImageScratch& s) {
    if (static_cast<int64_t>(s.dot.size()) < threads) s.dot.resize(threads);
    for (int64_t t = 0; t < threads; ++t) {
      if (static_cast<int64_t>(s.dot[t].size()) != s.dot_size) s.dot[t].assign(s.dot_size, 0);
    }
  }

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
  Status BuildGroups(const PackedParts& parts) {
    groups_.clear();
    part_out_.clear();
    if (parts.parts[0].params().granularity.kind == Granularity::kGroup) {
      return Unimplemented(Where(), "group granularity is not supported by the conv kernels");
    }
    if (parts.mixed()) {
      for (size_t i = 0; i < parts.parts.size(); ++i) {
        const PackedTensor& w = parts.parts[i];
        LOWBIT_RETURN_IF_ERROR(AddGroup(w, 0, w.rows()));
        part_out_.push_back(parts.channels[i]);
      }
      // Where MixedBytes finds each output's dot products: format i's region
      // of a block buffer starts at part_dot_[i] (kBlockRows x n_pad of the
      // formats before).
      part_dot_.assign(groups_.size(), 0);
      gather_idx_.assign(m_, 0);
      gather_step_.assign(m_, 0);
      for (size_t i = 0; i < groups_.size(); ++i) {
        if (i > 0) part_dot_[i] = part_dot_[i - 1] + kBlockRows * groups_[i - 1].n_pad;
        for (size_t r = 0; r < part_out_[i].size(); ++r) {
          gather_idx_[part_out_[i][r]] =
              static_cast<int32_t>(part_dot_[i] + static_cast<int64_t>(r));
          gather_step_[part_out_[i][r]] = static_cast<int32_t>(groups_[i].n_pad);
        }
      }
      return OkStatus();
    }
    for (int64_t grp = 0; grp < group_; ++grp)
      LOWBIT_RETURN_IF_ERROR(AddGroup(parts.parts[0], grp, mg_));
    return OkStatus();
  }

  // Whether Prepare gave the weights the level-plane layout: no per-pixel
  // sums (their offsets are 0).
  bool LevelPlanes() const {
    return !groups_.empty() && groups_[0].layout == QLinearWeights::Layout::kLevelPlanes;
  }

  // Which of the kernel rows' kk_ inputs are padding (AddGroup's code 0):
  // the gaps of row segments and the channels past cg_.
  std::vector<bool> KernelPadding() const {
    std::vector<bool> pad(kk_, true);
    for (int64_t t = 0; t < taps_; ++t) {
      const int64_t q = t / g_.k[2], kw = t % g_.k[2];
      for (int64_t c = 0; c < cg_; ++c)
        pad[segment_ > 0 ? q * segment_ + kw * cg_ + c : t * ck_ + c] = false;
    }
    return pad;
  }

  // The kernel layout of rows [grp * mg, (grp + 1) * mg) of w.
  Status AddGroup(const PackedTensor& w, int64_t grp, int64_t mg) {
    const QuantParams& p = w.params();
    std::vector<uint32_t> row(w.cols()), perm(mg * kk_);
    {
      QuantParams gp = p;
      gp.rows = mg;
      gp.cols = kk_;
      if (p.granularity.kind == Granularity::kChannel) {
        gp.scales.assign(p.scales.begin() + grp * mg, p.scales.begin() + (grp + 1) * mg);
        if (!p.zero_points.empty()) {
          gp.zero_points.assign(p.zero_points.begin() + grp * mg,
                                p.zero_points.begin() + (grp + 1) * mg);
        }
      }
      for (int64_t r = 0; r < mg; ++r) {
        w.UnpackRow(grp * mg + r, row.data());
        uint32_t* dst = perm.data() + r * kk_;
        if (segment_ > 0) {  // kernel row q's taps, pixel after pixel, then code 0
          std::fill_n(dst, kk_, 0u);
          for (int64_t t = 0; t < taps_; ++t) {
            const int64_t q = t / g_.k[2], kw = t % g_.k[2];
            for (int64_t c = 0; c < cg_; ++c) dst[q * segment_ + kw * cg_ + c] = row[c * taps_ + t];
          }
          continue;
        }
        for (int64_t c = 0; c < ck_; ++c) {
          for (int64_t t = 0; t < taps_; ++t) dst[t * ck_ + c] = c < cg_ ? row[c * taps_ + t] : 0;
        }
      }
      QLinearWeights q;
      LOWBIT_ASSIGN_OR_RETURN(q, LayoutCodes(gp, perm.data()));
      groups_.push_back(std::move(q));
    }
    return OkStatus();
  }

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
  void SetKernelRows(bool segments) {
    cs_ = c_;
    ck_ = cg_;
    segment_ = 0;
    kk_ = ck_ * taps_;
    if (group_ != 1 || c_ % 4 == 0) return;
    const int64_t seg = (g_.k[2] * c_ + 3) / 4 * 4, rows = taps_ / g_.k[2];
    const int64_t padded_channels = (c_ + 3) / 4 * 4;
    if (segments && g_.k[2] > 1 && g_.dilation[2] == 1 && rows * seg < taps_ * padded_channels) {
      segment_ = seg;
      kk_ = rows * seg;
      return;
    }
    cs_ = ck_ = padded_channels;
    kk_ = ck_ * taps_;
  }

  // Depthwise weights as small integers T[code] - offset (one per tap) and a
  // scale per channel, from the kernel layout of the whole [M, taps] tensor.
  Status BuildDepthwise(const PackedTensor& w) {
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

  // The zero-point padded NHWC image every non-depthwise path reads: big
  // enough for every window and for the whole input; each output pixel's
  // window starts at row_pix_[p] and tap t adds tap_pix_[t] (in pixels).
  void SetUpImage() {
    SetUpGeometry();
    const auto& g = g_;
    const QLinearWeights& w0 = groups_[0];
    int64_t k_pad = 0;  // the longest of the parts' (filter-wise formats)
    bool k_pad_cs = true, k_pad_kk = true;
    for (const QLinearWeights& q : groups_) {
      k_pad = std::max(k_pad, q.k_pad);
      k_pad_cs = k_pad_cs && q.k_pad == cs_;
      k_pad_kk = k_pad_kk && q.k_pad == kk_;
    }
    // 1x1, stride 1, no padding, rows exactly the kernel's input length: the
    // image's pixels are the GEMM rows.
    direct_ = group_ == 1 && taps_ == 1 && k_pad_cs && g.out == g.in &&
              g.stride == std::array<int64_t, 3>{1, 1, 1} &&
              g.pad_begin == std::array<int64_t, 3>{0, 0, 0};
    // Implicit GEMM: every input step of 4 lies in one tap's channels; the
    // plane layouts' padded inputs have code 0 (planes) or the zero level's
    // code (level planes), a zero product whatever the byte, so there the
    // padding steps may read any window byte, while the table layout needs
    // k_pad == K.
    implicit_ = !direct_ && RowKernelAvailable(w0, path_) && (ck_ % 4 == 0 || segment_ > 0) &&
                (k_pad_kk || w0.layout != QLinearWeights::Layout::kTable);
    // Direct convolutions also get the row-pointer form (a pixel's bytes in
    // steps of 4) for the split by output channels.
    rows_for_direct_ = direct_ && RowKernelAvailable(w0, path_) && ck_ % 4 == 0;
    if (implicit_ || rows_for_direct_) {
      step_off_.assign(k_pad / 4, 0);
      const WindowRuns runs = Runs();
      for (int64_t s = 0; s < kk_ / 4; ++s) {
        step_off_[s] = static_cast<int32_t>(tap_pix_[4 * s / runs.bytes * runs.taps] * cs_ +
                                            4 * s % runs.bytes);
      }
    }
    use_integral_ = taps_ > 9 && g.k[0] == 1 && padded_[0] == 1 && g.dilation[1] == 1 &&
                    g.dilation[2] == 1;
    // Level planes read uint8 pixels as they are: 1x1 windows without
    // padding over an 8-bit input whose pixels are the kernel's rows, and
    // Winograd (which takes its padding to be the zero point), read an 8-bit
    // input in place, with no image.
    in_place_ = (LevelPlanes() && bytes_in_ && !mixed_ && group_ == 1 && taps_ == 1 && cs_ == c_ &&
                 (implicit_ || direct_) && g.pad_begin == std::array<int64_t, 3>{0, 0, 0} &&
                 padded_ == g.in) ||
                (winograd_ && bytes_in_);
  }

  // Sizes one set of per-image working memory (after SetUpImage, or
  // SetUpGeometry for the NHWC depthwise).
  void SizeScratch(ImageScratch* s) const {
    const int64_t padded_px = padded_[0] * padded_[1] * padded_[2], osz = g_.out_size();
    // (+ 4: a row segment's last step may read 3 bytes past the image; none
    // when the input is read in place.)
    s->image.assign(in_place_ ? 0 : static_cast<size_t>(padded_px * cs_ + 4), 0);
    s->image_zero = INT_MIN;
    if (depthwise_) return;
    int64_t k_pad = 0, n_pad = 0;
    for (const QLinearWeights& q : groups_) {
      k_pad = std::max(k_pad, q.k_pad);
      n_pad = std::max(n_pad, q.n_pad);
    }
    if (!LevelPlanes()) s->pixel_sum.resize(padded_px);  // (level planes: no window sums)
    // GEMM rows: window pointers or gathered windows (none for Winograd,
    // which reads tiles).
    if ((implicit_ && !winograd_) || rows_for_direct_) {
      s->row_ptr.resize(osz);
    } else if (!direct_ && !implicit_) {
      s->u.assign(static_cast<size_t>(osz * k_pad), 0);
    }
    if (mixed_) {  // every format's region (MixedBytes)
      n_pad = 0;
      for (const QLinearWeights& q : groups_) n_pad += q.n_pad;
    }
    s->dot.clear();
    s->dot_size = kBlockRows * n_pad;
    s->sums.resize(osz);  // (level planes: all 0)
    if (use_integral_ && !LevelPlanes()) s->integral.assign((padded_[1] + 1) * (padded_[2] + 1), 0);
  }

  // The padded image and the window maps.
  void SetUpGeometry() {
    const auto& g = g_;
    for (int d = 0; d < 3; ++d) {
      padded_[d] = std::max((g.out[d] - 1) * g.stride[d] + (g.k[d] - 1) * g.dilation[d] + 1,
                            g.pad_begin[d] + g.in[d]);
    }
    row_pix_.resize(g.out_size());
    for (int64_t p = 0; p < g.out_size(); ++p) {
      const int64_t ow = p % g.out[2], oh = (p / g.out[2]) % g.out[1], od = p / (g.out[2] * g.out[1]);
      row_pix_[p] = ((od * g.stride[0]) * padded_[1] + oh * g.stride[1]) * padded_[2] + ow * g.stride[2];
    }
    tap_pix_.resize(taps_);
    for (int64_t t = 0; t < taps_; ++t) {
      const int64_t kw = t % g.k[2], kh = (t / g.k[2]) % g.k[1], kd = t / (g.k[2] * g.k[1]);
      tap_pix_[t] = ((kd * g.dilation[0]) * padded_[1] + kh * g.dilation[1]) * padded_[2] +
                    kw * g.dilation[2];
    }
  }

  // One image into the interior of s.image, row by row; the borders (and any
  // padding channels) hold the zero point, refreshed when it changes.
  void QuantizeImage(const float* x, const ActQuant& a, const ExecContext& ctx, ImageScratch& s) {
    const auto& g = g_;
    SetBorders(a.zero, s);
    const int64_t hw = g.in_size();
    const float inv = 1.0f / a.scale;
    const float lo = signed_ ? -128.0f : 0.0f, hi = signed_ ? 127.0f : 255.0f;
    const float zero = static_cast<float>(a.zero);
    const bool simd = c_ % 16 == 0 && path_ == KernelPath::kAvx512Vnni;
    const bool simd4 = c_ <= 4 && cs_ <= 4 && path_ == KernelPath::kAvx512Vnni;
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

  // Whether the node has the byte-edge attributes act_key (the activation
  // type) and range_key, and their canonical parameters.
  Result<bool> ByteEdgeParams(const char* act_key, const char* range_key, ActQuant* q) const {
    const std::string act = node_.GetString(act_key, "");
    if (act.empty()) return false;
    Node spec;
    spec.name = node_.name;
    spec.op_type = node_.op_type;
    spec.attrs["act"] = act;
    auto range = node_.attrs.find(range_key);
    if (range != node_.attrs.end()) spec.attrs["act_range"] = range->second;
    ActSpec a;
    LOWBIT_ASSIGN_OR_RETURN(a, ActSpecOf(spec));
    if (a.weight_only || !a.is_static) {
      return InvalidArgument(Where(), "attribute ", act_key, " '", act, "' needs 8 bits and a ", range_key);
    }
    *q = StaticActParams(a.lo, a.hi, a.symmetric, false);
    return true;
  }

  // One image of canonical 8-bit NHWC pixels (quantized with this node's own
  // static parameters, see byte_edges.h) into the interior of s.image; the
  // plane layout's int8 operand is the byte with its top bit flipped.
  void CopyImage(const uint8_t* x, const ActQuant& a, const ExecContext& ctx, ImageScratch& s) {
    const auto& g = g_;
    SetBorders(a.zero, s);
    const uint8_t flip = signed_ ? 0x80 : 0;
    const int64_t rows = g.in[0] * g.in[1], w = g.in[2];
    ctx.pool->ParallelFor(rows, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) CopyPixels(x + r * w * c_, w, c_, cs_, flip, ImageRow(r, s));
    });
  }

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
    return s.image.data() +
           (((d + g.pad_begin[0]) * padded_[1] + h + g.pad_begin[1]) * padded_[2] + g.pad_begin[2]) * cs_;
  }

  // sums_[p]: the sum of output pixel p's window bytes in the group's
  // channels, from per-pixel sums over the padded image (taps adds, not K);
  // with row segments, plus the zero point once per padding column of K.
  void WindowSums(int64_t grp, const ExecContext& ctx, ImageScratch& s) {
    const bool simd = path_ == KernelPath::kAvx512Vnni;
    ctx.pool->ParallelFor(static_cast<int64_t>(s.pixel_sum.size()), [&](int64_t p0, int64_t p1) {
      const uint8_t* src = s.image.data() + p0 * cs_ + grp * cg_;
      if (simd) {
        PixelSumsAvx512(src, p1 - p0, cs_, ck_, signed_, s.pixel_sum.data() + p0);
        return;
      }
      for (int64_t p = p0; p < p1; ++p, src += cs_) {
        s.pixel_sum[p] = signed_ ? SumBytes(reinterpret_cast<const int8_t*>(src), ck_) : SumBytes(src, ck_);
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

  // The window sums one tap at a time (small windows).
  void StridedWindowSums(const ExecContext& ctx, ImageScratch& s) {
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

  // Large 2-D windows (conv1 of a ResNet: 7x7 at stride 2): sums_ from a
  // summed-area table of the pixel sums, four reads per window instead of
  // one add per tap. Arithmetic modulo 2^32 is exact here, since every true
  // window sum fits in an int32.
  void IntegralWindowSums(const ExecContext& ctx, ImageScratch& s) {
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

  // Rows of the GEMM for kernels that need them contiguous: output pixel p's
  // window bytes in group grp's channels, (kd, kh, kw, c) order, then zeros
  // up to w's k_pad.
  void Gather(const QLinearWeights& w, int64_t grp, const ExecContext& ctx, ImageScratch& s) {
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

  // Depthwise on the NHWC byte image (kernels/depthwise.h), writing bytes
  // (yb) or fp32 planes (yf); output rows split across threads.
  void DepthwiseBytes(const ActQuant& a, const float* bias, ByteOutput bo, uint8_t* yb, float* yf,
                      const ExecContext& ctx, ImageScratch& s) {
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

  // y[m] = scale[m] * xs * sum over taps of (T - offset[m]) * (a - z) + b[m],
  // on a plane of a - z (padding 0) in fp32 lanes: every product and sum is
  // an exact small integer (|acc| < 2^24 for windows up to 7x7x5).
  void Depthwise(const float* x, const ActQuant& a, const float* bias, bool activation, float* y,
                 const ExecContext& ctx) {
    const auto& g = g_;
    const int64_t ph = PaddedRows(g), pw = PaddedCols(g);
    const int64_t pd = (g.out[0] - 1) * g.stride[0] + (g.k[0] - 1) * g.dilation[0] + 1;
    const int threads = ctx.pool->threads();
    if (static_cast<int>(dw_scratch_.size()) < threads) dw_scratch_.resize(threads);
    const float lo = activation && fused_.active ? fused_.lo : -INFINITY;
    const float hi = activation && fused_.active ? fused_.hi : INFINITY;
    const bool fast3x3 = g.k[0] == 1 && g.out[0] == 1 &&
                         Depthwise3x3Applies(g.k[1], g.k[2], g.stride[1], g.stride[2], g.dilation[1],
                                             g.dilation[2]);
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
                    const float* xr = s.plane.data() +
                                      ((od * g.stride[0] + kd * g.dilation[0]) * ph +
                                       oh * g.stride[1] + kh * g.dilation[1]) * pw;
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

  struct Scratch {
    std::vector<float> plane, acc;
  };
  WindowGeometry g_;
  Shape out_shape_;
  Residual residual_;  // input 4
  int64_t n_ = 0, c_ = 0, m_ = 0, group_ = 1, cg_ = 0, mg_ = 0, taps_ = 0, kk_ = 0;
  int64_t cs_ = 0, ck_ = 0;  // pixel stride of the image; channels per group the kernel sees
  int64_t segment_ = 0;      // SetKernelRows
  bool depthwise_ = false, signed_ = false, direct_ = false, implicit_ = false, rows_for_direct_ = false;
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
  bool in_place_ = false;  // the 8-bit input read without an image (SetUpImage)
  // Winograd F(4x4, 3x3) (SetUpWinograd): bands of 4 output rows, tiles per
  // band, bands per unit of the products, and the transformed weights.
  bool winograd_ = false;
  int64_t wino_bands_ = 0, wino_tpr_ = 0, wino_unit_ = 1;
  std::vector<int16_t> wino_u_;
  // Per-image working memory (ImageScratch above).
  std::vector<ImageScratch> scratch_;
  ImageScratch no_scratch_;  // for the planes depthwise, which has its own
  ThreadPool serial_{1};      // runs ParallelFor inline
  // Depthwise; with byte edges on the NHWC image (nhwc_dw_), with the weights
  // tap-major, their per-channel sums, and per-image scales and biases.
  std::vector<float> dw_weight_, dw_scale_;
  bool nhwc_dw_ = false;
  std::vector<float> dw_taps_, dw_wsum_, dw_a_scale_, dw_bias_;
  std::vector<int16_t> dw_pairs_;  // DepthwisePairWeights of dw_taps_
  std::vector<Scratch> dw_scratch_;
};

}  // namespace

// act "float" selects the weight-only kernels.
std::unique_ptr<OpKernel> MakePackedGemm(const Node& n) {
  if (n.GetString("act", "") == "float") return std::make_unique<WeightOnlyGemm>(n);
  return std::make_unique<PackedGemm>(n);
}
std::unique_ptr<OpKernel> MakePackedConv(const Node& n) {
  if (n.GetString("act", "") == "float") return MakeWeightOnlyConv(n);
  return std::make_unique<PackedConv>(n);
}

}  // namespace lowbit
