// PackedGemm and PackedConv (runtime/packed_node.h): layers whose weights stay
// packed and run on the low-bit kernels (kernels/qlinear.h). Activations are
// quantized to 8 bits per row (Gemm) or per image (Conv), statically from a
// calibrated range or dynamically; products accumulate in int32 and one fused
// epilogue applies scales, zero-point corrections, bias and the activation.
//
// Convolution: the input image is quantized once into an NHWC byte plane, and
// each output pixel's window is gathered into one row of (kd, kh, kw, c)
// bytes (contiguous runs of C bytes); the weight's columns are permuted to the
// same order when the kernel layout is built, so the GEMM is pixels x
// channels. Depthwise convolution (one input channel per group) has its own
// integer kernel over a zero-padded int8 plane.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "base/target.h"
#include "kernels/qlinear.h"
#include "runtime/activation.h"
#include "runtime/ops/conv_geometry.h"
#include "runtime/ops/planes.h"
#include "runtime/packed_node.h"

namespace lowbit {
namespace {

Status LoadWeight(const Node& node, const std::vector<TensorInfo>& in, PackedTensor* w) {
  if (in.size() < 3 || !in[0].present || !in[1].present || !in[2].present) {
    return InvalidArgument(node.Describe(), ": expects inputs X, codes and scales");
  }
  if (in[1].constant == nullptr || in[2].constant == nullptr) {
    return Unimplemented(node.Describe(), ": codes and scales must be initializers");
  }
  LOWBIT_ASSIGN_OR_RETURN(*w, PackedWeightOf(node, *in[1].constant, *in[2].constant));
  return OkStatus();
}

Status CheckBias(const Node& node, const std::vector<TensorInfo>& in, int64_t n, bool* has) {
  *has = in.size() > 3 && in[3].present;
  if (!*has) return OkStatus();
  if (in[3].dtype != DType::kFloat32 || in[3].shape != Shape{n}) {
    return InvalidArgument(node.Describe(), ": bias ", DTypeName(in[3].dtype), " ",
                           ShapeToString(in[3].shape), " must be float32 [", n, "]");
  }
  return OkStatus();
}

Epilogue MakeEpilogue(const FusedActivation& act, const float* bias) {
  Epilogue e;
  e.bias = bias;
  e.clamp = act.active;
  e.lo = act.lo;
  e.hi = act.hi;
  return e;
}

class PackedGemm final : public OpKernel {
 public:
  using OpKernel::OpKernel;

  Status Prepare(const std::vector<TensorInfo>& in, std::vector<TensorInfo>* out) override {
    PackedTensor w;
    LOWBIT_RETURN_IF_ERROR(LoadWeight(node_, in, &w));
    LOWBIT_RETURN_IF_ERROR(ExpectFloat(*this, in[0], "X"));
    if (w.shape().size() != 2) {
      return InvalidArgument(Where(), "weight_shape ", ShapeToString(w.shape()), " must be [N, K]");
    }
    const Shape& x = in[0].shape;
    if (x.empty() || x.back() != w.cols()) {
      return InvalidArgument(Where(), "X ", ShapeToString(x), " must end in K = ", w.cols());
    }
    LOWBIT_RETURN_IF_ERROR(CheckBias(node_, in, w.rows(), &has_bias_));
    Result<QLinearWeights> q = PrepareQLinear(w);
    if (!q.ok()) return Status(q.status().code(), Where() + q.status().message());
    w_ = std::move(q).value();
    Result<KernelPath> path = SelectKernelPath();
    if (!path.ok()) return Status(path.status().code(), Where() + path.status().message());
    path_ = path.value();
    ActSpec act;
    LOWBIT_ASSIGN_OR_RETURN(act, ActSpecOf(node_));
    symmetric_ = act.symmetric;
    if (act.is_static) {
      static_act_ = true;
      act_ = StaticActParams(act.lo, act.hi, act.symmetric, w_.signed_acts());
    }
    rows_ = NumElements(x) / w.cols();
    fused_ = FusedActivation::FromNode(node_);
    Shape y = x;
    y.back() = w.rows();
    (*out)[0] = TensorInfo{true, DType::kFloat32, y, nullptr};
    return OkStatus();
  }

  void Run(const std::vector<const Tensor*>& in, const std::vector<Tensor*>& out,
           const ExecContext& ctx) override {
    const Epilogue e = MakeEpilogue(fused_, has_bias_ ? in[3]->data<float>() : nullptr);
    QLinearForward(w_, path_, in[0]->data<float>(), rows_, e, &scratch_, out[0]->data<float>(),
                   ctx.pool, static_act_ ? &act_ : nullptr, symmetric_);
  }

 private:
  QLinearWeights w_;
  KernelPath path_ = KernelPath::kRef;
  bool has_bias_ = false, static_act_ = false, symmetric_ = false;
  ActQuant act_;
  int64_t rows_ = 0;
  FusedActivation fused_;
  QLinearScratch scratch_;
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

// acc[ow] += w * x[ow * stride]. The depthwise kernel's operands are small
// integers held in fp32 (weights T - offset, activations a - z), so every
// product and sum is exact (|acc| < 2^24 for windows up to 7x7x5) and the
// result equals int32 accumulation.
LOWBIT_VECTORIZE void MacRow(float* __restrict acc, const float* __restrict x, float w, int64_t n,
                             int64_t stride) {
  if (stride == 1) {
    for (int64_t i = 0; i < n; ++i) acc[i] += w * x[i];
  } else if (stride == 2) {
    for (int64_t i = 0; i < n; ++i) acc[i] += w * x[2 * i];
  } else {
    for (int64_t i = 0; i < n; ++i) acc[i] += w * x[i * stride];
  }
}

// dst[i] = src[i] - zero, as floats.
LOWBIT_VECTORIZE void Centered(const int8_t* __restrict src, int64_t n, float zero,
                               float* __restrict dst) {
  for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<float>(src[i]) - zero;
}

LOWBIT_VECTORIZE void ScaleBiasClamp(const float* __restrict acc, int64_t n, float scale, float b,
                                     float lo, float hi, float* __restrict y) {
  for (int64_t i = 0; i < n; ++i) y[i] = std::min(std::max(acc[i] * scale + b, lo), hi);
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

// y[o] = sum over k taps of x[o * stride + t * dilation].
LOWBIT_VECTORIZE void BoxRow(const int32_t* __restrict x, int64_t taps, int64_t stride,
                             int64_t dilation, int64_t n, int32_t* __restrict y) {
  for (int64_t o = 0; o < n; ++o) y[o] = 0;
  for (int64_t t = 0; t < taps; ++t) {
    const int32_t* xt = x + t * dilation;
    if (stride == 1) {
      for (int64_t o = 0; o < n; ++o) y[o] += xt[o];
    } else {
      for (int64_t o = 0; o < n; ++o) y[o] += xt[o * stride];
    }
  }
}

LOWBIT_VECTORIZE void AddRow(const int32_t* __restrict x, int64_t n, int32_t* __restrict y) {
  for (int64_t i = 0; i < n; ++i) y[i] += x[i];
}

class PackedConv final : public OpKernel {
 public:
  using OpKernel::OpKernel;

  Status Prepare(const std::vector<TensorInfo>& in, std::vector<TensorInfo>* out) override {
    PackedTensor w;
    LOWBIT_RETURN_IF_ERROR(LoadWeight(node_, in, &w));
    LOWBIT_RETURN_IF_ERROR(ExpectFloat(*this, in[0], "X"));
    ConvDims d;
    LOWBIT_ASSIGN_OR_RETURN(d, ComputeConvDims(node_, in[0].shape, w.shape(), "weight_shape"));
    n_ = d.n;
    c_ = d.c;
    m_ = d.m;
    group_ = d.group;
    g_ = d.g;
    LOWBIT_RETURN_IF_ERROR(CheckBias(node_, in, m_, &has_bias_));
    cg_ = c_ / group_;
    mg_ = m_ / group_;
    taps_ = g_.k[0] * g_.k[1] * g_.k[2];
    
    depthwise_ = cg_ == 1 && group_ > 1;
    // Images with fewer than 4 channels (or not a multiple of 4) get padding
    // channels holding the zero point (x = 0), so every input step of 4 lies in
    // one tap and the implicit GEMM applies; their weights are never read as
    // non-zero products since a - z = 0 there.
    cs_ = c_;
    ck_ = cg_;
    if (group_ == 1 && !depthwise_ && c_ % 4 != 0) cs_ = ck_ = (c_ + 3) / 4 * 4;
    kk_ = ck_ * taps_;
    Result<KernelPath> path = SelectKernelPath();
    if (!path.ok()) return Status(path.status().code(), Where() + path.status().message());
    path_ = path.value();
    LOWBIT_RETURN_IF_ERROR(BuildGroups(w));
    signed_ = depthwise_ || groups_[0].signed_acts();
    ActSpec act;
    LOWBIT_ASSIGN_OR_RETURN(act, ActSpecOf(node_));
    static_act_ = act.is_static;
    symmetric_ = act.symmetric;
    if (static_act_) act_ = StaticActParams(act.lo, act.hi, symmetric_, signed_);
    fused_ = FusedActivation::FromNode(node_);
    xq_.assign(static_cast<size_t>(cs_ * g_.in_size()), 0);
    // Implicit GEMM: windows read in place from a zero-point padded NHWC
    // image, when every input step of 4 lies inside one tap's channels and
    // the kernel needs no input padding.
    // The plane layout's padded inputs have code 0 (a zero product whatever
    // the activation byte), so there the padding steps may read any window
    // byte; the table layout needs k_pad == K.
    implicit_ = !depthwise_ && RowKernelAvailable(groups_[0], path_) && ck_ % 4 == 0 &&
                (groups_[0].k_pad == kk_ || groups_[0].layout == QLinearWeights::Layout::kPlanes);
    direct_ = !depthwise_ && group_ == 1 && taps_ == 1 && groups_[0].k_pad == cs_ &&
              g_.stride == std::array<int64_t, 3>{1, 1, 1} &&
              g_.pad_begin == std::array<int64_t, 3>{0, 0, 0} && g_.out == g_.in;
    if (direct_) implicit_ = false;
    if (implicit_) SetUpImplicit();
    if (!depthwise_) {
      if (!direct_ && !implicit_) u_.assign(static_cast<size_t>(g_.out_size() * groups_[0].k_pad), 0);
      dot_.assign(static_cast<size_t>(g_.out_size() * groups_[0].n_pad), 0);
      sums_.resize(g_.out_size());
    }
    Shape y = {n_, m_};
    for (int i = 3 - g_.spatial; i < 3; ++i) y.push_back(g_.out[i]);
    (*out)[0] = TensorInfo{true, DType::kFloat32, y, nullptr};
    return OkStatus();
  }

  void Run(const std::vector<const Tensor*>& in, const std::vector<Tensor*>& out,
           const ExecContext& ctx) override {
    const float* x = in[0]->data<float>();
    const float* bias = has_bias_ ? in[3]->data<float>() : nullptr;
    float* y = out[0]->data<float>();
    const int64_t isz = c_ * g_.in_size(), osz = g_.out_size();
    for (int64_t i = 0; i < n_; ++i) {
      const ActQuant a =
          static_act_ ? act_ : DynamicActParams(x + i * isz, isz, symmetric_, signed_);
      if (depthwise_) {
        QuantizePlanar(x + i * isz, a, ctx);
        Depthwise(a, bias, y + i * m_ * osz, ctx);
        continue;
      }
      QuantizeNhwc(x + i * isz, a, ctx);
      for (int64_t grp = 0; grp < group_; ++grp) {
        const QLinearWeights& w = groups_[grp];
        const uint8_t* rows = u_.data();
        if (direct_) {
          // 1x1, stride 1, no padding, C a multiple of the kernel's input
          // step: the NHWC bytes are the GEMM rows; sums are pixel sums.
          PixelSums(grp, ctx);
          std::copy(pixel_sum_.begin(), pixel_sum_.end(), sums_.begin());
          rows = xq_.data();
        } else if (implicit_) {
          if (g_.k[0] == 1 && g_.in[0] == 1) {
            WindowSums2D(grp, a, ctx);
          } else {
            Gather(grp, a, ctx, /*copy=*/false);
          }
          if (grp == 0) PadImage(a, ctx);
          ImplicitDots(grp, ctx);
        } else {
          Gather(grp, a, ctx);
        }
        if (!implicit_) QLinearDots(w, path_, rows, osz, dot_.data(), ctx.pool);
        const Epilogue e = MakeEpilogue(fused_, bias != nullptr ? bias + grp * mg_ : nullptr);
        float* yg = y + (i * m_ + grp * mg_) * osz;
        // Blocks of 64 pixels per task; the epilogue writes NCHW planes.
        ctx.pool->ParallelFor((osz + 63) / 64, [&](int64_t b0, int64_t b1) {
          const int64_t p0 = b0 * 64, p1 = std::min(osz, b1 * 64);
          QLinearEpilogueColumns(w, a, sums_.data() + p0, dot_.data() + p0 * w.n_pad, p1 - p0, e,
                                 yg + p0, osz);
        });
      }
    }
  }

 private:
  // One QLinearWeights per group; columns permuted from (c, kd, kh, kw) to
  // (kd, kh, kw, c) to match the gathered rows (depthwise keeps its order).
  Status BuildGroups(const PackedTensor& w) {
    const QuantParams& p = w.params();
    std::vector<uint32_t> row(kk_), perm(mg_ * kk_);
    for (int64_t grp = 0; grp < group_; ++grp) {
      QuantParams gp = p;
      gp.rows = mg_;
      gp.cols = kk_;
      if (p.granularity.kind == Granularity::kChannel) {
        gp.scales.assign(p.scales.begin() + grp * mg_, p.scales.begin() + (grp + 1) * mg_);
        if (!p.zero_points.empty()) {
          gp.zero_points.assign(p.zero_points.begin() + grp * mg_,
                                p.zero_points.begin() + (grp + 1) * mg_);
        }
      } else if (p.granularity.kind == Granularity::kGroup) {
        return Unimplemented(Where(), "group granularity is not supported by the conv kernels");
      }
      for (int64_t r = 0; r < mg_; ++r) {
        w.UnpackRow(grp * mg_ + r, row.data());
        uint32_t* dst = perm.data() + r * kk_;
        if (depthwise_) {
          std::copy(row.begin(), row.end(), dst);
          continue;
        }
        for (int64_t c = 0; c < ck_; ++c) {
          for (int64_t t = 0; t < taps_; ++t) dst[t * ck_ + c] = c < cg_ ? row[c * taps_ + t] : 0;
        }
      }
      PackedTensor sub;
      LOWBIT_ASSIGN_OR_RETURN(sub, PackedTensor::FromCodes(gp, {mg_, kk_}, perm.data()));
      Result<QLinearWeights> q = PrepareQLinear(sub);
      if (!q.ok()) return Status(q.status().code(), Where() + q.status().message());
      groups_.push_back(std::move(q).value());
    }
    if (depthwise_) {
      // Depthwise: the kernel reads one int8 value per tap (the level on the
      // integer grid); 9 bytes per channel.
      dw_eff_.assign(m_ * taps_, 0.0f);
      for (int64_t grp = 0; grp < group_; ++grp) {
        const QLinearWeights& q = groups_[grp];
        for (int64_t r = 0; r < mg_; ++r) {
          for (int64_t t = 0; t < taps_; ++t) {
            const int64_t bit = t * q.bits;
            const uint8_t* rowp = q.codes.data() + r * q.row_bytes;
            uint32_t code = 0;
            for (int b = 0; b < q.bits; ++b) {
              code |= static_cast<uint32_t>((rowp[(bit + b) >> 3] >> ((bit + b) & 7)) & 1) << b;
            }
            // The level minus the row's offset (the plane layout's offset is
            // relative to codes, i.e. to T - T[0]).
            const int32_t offset =
                q.offset[r] + (q.layout == QLinearWeights::Layout::kPlanes ? q.table[0] : 0);
            dw_eff_[(grp * mg_ + r) * taps_ + t] = static_cast<float>(q.table[code] - offset);
          }
        }
      }
    }
    return OkStatus();
  }

  // x (C planes) -> xq_ as NHWC bytes, in blocks of 64 pixels: each block's
  // channels are quantized from contiguous reads into a small buffer, then
  // written out pixel-major.
  void QuantizeNhwc(const float* x, const ActQuant& a, const ExecContext& ctx) {
    const int64_t hw = g_.in_size();
    const float inv = 1.0f / a.scale;
    const float lo = signed_ ? -128.0f : 0.0f, hi = signed_ ? 127.0f : 255.0f;
    const float zero = static_cast<float>(a.zero);
    const int threads = ctx.pool->threads();
    if (c_ % 16 == 0 && path_ == KernelPath::kAvx512Vnni) {
      // Same rounding as QuantizeBytes (to nearest even), fused with the transpose.
      ctx.pool->ParallelFor((hw + 15) / 16, [&](int64_t b0, int64_t b1) {
        QuantizeNhwcAvx512(x, c_, hw, inv, a.zero, signed_, b0 * 16, std::min(hw, b1 * 16), xq_.data());
      });
      return;
    }
    if (static_cast<int>(block_.size()) < threads) block_.resize(threads);
    ctx.pool->ParallelFor(threads, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) {
        std::vector<uint8_t>& tmp = block_[t];
        tmp.resize(static_cast<size_t>(c_) * 64);
        const int64_t blocks = (hw + 63) / 64;
        for (int64_t blk = blocks * t / threads; blk < blocks * (t + 1) / threads; ++blk) {
          const int64_t p0 = blk * 64, np = std::min<int64_t>(64, hw - p0);
          for (int64_t c = 0; c < c_; ++c) {
            QuantizeBytes(x + c * hw + p0, np, inv, zero, lo, hi, tmp.data() + c * 64, signed_);
          }
          uint8_t* dst = xq_.data() + p0 * cs_;
          for (int64_t p = 0; p < np; ++p) {
            for (int64_t c = 0; c < c_; ++c) dst[p * cs_ + c] = tmp[c * 64 + p];
            for (int64_t c = c_; c < cs_; ++c) dst[p * cs_ + c] = static_cast<uint8_t>(a.zero);
          }
        }
      }
    });
  }

  void SetUpImplicit() {
    const auto& g = g_;
    for (int d = 0; d < 3; ++d) {
      padded_[d] = std::max((g.out[d] - 1) * g.stride[d] + (g.k[d] - 1) * g.dilation[d] + 1,
                            g.pad_begin[d] + 1);
    }
    xp_.assign(static_cast<size_t>(padded_[0] * padded_[1] * padded_[2] * cs_), 0);
    row_start_.resize(g.out_size());
    for (int64_t p = 0; p < g.out_size(); ++p) {
      const int64_t ow = p % g.out[2], oh = (p / g.out[2]) % g.out[1], od = p / (g.out[2] * g.out[1]);
      row_start_[p] = (((od * g.stride[0]) * padded_[1] + oh * g.stride[1]) * padded_[2] +
                       ow * g.stride[2]) * cs_;
    }
    step_off_.assign(groups_[0].k_pad / 4, 0);  // padding steps read the window's first bytes
    for (int64_t s = 0; s < kk_ / 4; ++s) {
      const int64_t k = 4 * s, t = k / ck_, c = k % ck_;
      const int64_t kw = t % g.k[2], kh = (t / g.k[2]) % g.k[1], kd = t / (g.k[2] * g.k[1]);
      step_off_[s] = static_cast<int32_t>(
          (((kd * g.dilation[0]) * padded_[1] + kh * g.dilation[1]) * padded_[2] +
           kw * g.dilation[2]) * cs_ + c);
    }
    row_ptr_.resize(g.out_size());
  }

  // xq_ (NHWC) into the interior of xp_, borders set to the zero point.
  void PadImage(const ActQuant& a, const ExecContext& ctx) {
    const auto& g = g_;
    const int64_t rows = padded_[0] * padded_[1];
    const int64_t row_bytes = padded_[2] * cs_;
    ctx.pool->ParallelFor(rows, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        uint8_t* dst = xp_.data() + r * row_bytes;
        const int64_t id = r / padded_[1] - g.pad_begin[0], ih = r % padded_[1] - g.pad_begin[1];
        if (id < 0 || id >= g.in[0] || ih < 0 || ih >= g.in[1]) {
          std::memset(dst, static_cast<uint8_t>(a.zero), row_bytes);
          continue;
        }
        const int64_t c0 = std::min(g.pad_begin[2], padded_[2]);
        const int64_t c1 = std::min(g.pad_begin[2] + g.in[2], padded_[2]);
        std::memset(dst, static_cast<uint8_t>(a.zero), c0 * cs_);
        std::memcpy(dst + c0 * cs_, xq_.data() + ((id * g.in[1] + ih) * g.in[2]) * cs_, (c1 - c0) * cs_);
        std::memset(dst + c1 * cs_, static_cast<uint8_t>(a.zero), (padded_[2] - c1) * cs_);
      }
    });
  }

  // The GEMM with rows read in place: pixel blocks split across threads.
  void ImplicitDots(int64_t grp, const ExecContext& ctx) {
    const QLinearWeights& w = groups_[grp];
    const int64_t osz = g_.out_size();
    for (int64_t p = 0; p < osz; ++p) row_ptr_[p] = xp_.data() + row_start_[p] + grp * cg_;
    QLinearDotsRows(w, path_, row_ptr_.data(), step_off_.data(), osz, dot_.data(), ctx.pool);
  }

  // sums_ for a 2-D convolution as a separable box sum over a padded image of
  // pixel sums (padding pixels count the zero point), no bounds checks.
  void WindowSums2D(int64_t grp, const ActQuant& a, const ExecContext& ctx) {
    const auto& g = g_;
    PixelSums(grp, ctx);
    const int64_t hp = padded_[1], wp = padded_[2];
    const uint8_t pad = static_cast<uint8_t>(a.zero);
    const int32_t pad_sum = static_cast<int32_t>(ck_) * (signed_ ? static_cast<int8_t>(pad) : pad);
    padded_sum_.assign(hp * wp, pad_sum);
    for (int64_t ih = 0; ih < g.in[1] && ih + g.pad_begin[1] < hp; ++ih) {
      const int64_t c1 = std::min(g.in[2], wp - g.pad_begin[2]);
      std::copy_n(pixel_sum_.data() + ih * g.in[2], std::max<int64_t>(c1, 0),
                  padded_sum_.data() + (ih + g.pad_begin[1]) * wp + g.pad_begin[2]);
    }
    row_sum_.assign(hp * g.out[2], 0);
    for (int64_t h = 0; h < hp; ++h) {
      BoxRow(padded_sum_.data() + h * wp, g.k[2], g.stride[2], g.dilation[2], g.out[2],
             row_sum_.data() + h * g.out[2]);
    }
    for (int64_t oh = 0; oh < g.out[1]; ++oh) {
      int32_t* dst = sums_.data() + oh * g.out[2];
      std::fill_n(dst, g.out[2], 0);
      for (int64_t kh = 0; kh < g.k[1]; ++kh) {
        AddRow(row_sum_.data() + (oh * g.stride[1] + kh * g.dilation[1]) * g.out[2], g.out[2], dst);
      }
    }
  }

  // pixel_sum_[p]: the sum of pixel p's bytes in the group's channels.
  void PixelSums(int64_t grp, const ExecContext& ctx) {
    const int64_t in_px = g_.in_size();
    pixel_sum_.resize(in_px);
    ctx.pool->ParallelFor(in_px, [&](int64_t p0, int64_t p1) {
      for (int64_t p = p0; p < p1; ++p) {
        const uint8_t* src = xq_.data() + p * cs_ + grp * cg_;
        pixel_sum_[p] = signed_ ? SumBytes(reinterpret_cast<const int8_t*>(src), ck_) : SumBytes(src, ck_);
      }
    });
  }

  // Rows of the GEMM: for output pixel p, the window's bytes in (kd, kh, kw,
  // c) order; out-of-image taps take the zero point. Row sums for the
  // epilogue come from per-pixel channel sums (taps adds, not K).
  // With copy == false only the sums are computed (the implicit GEMM reads
  // the windows in place).
  void Gather(int64_t grp, const ActQuant& a, const ExecContext& ctx, bool copy = true) {
    const QLinearWeights& w = groups_[grp];
    const auto& g = g_;
    const uint8_t pad = static_cast<uint8_t>(a.zero);
    const int32_t pad_sum = static_cast<int32_t>(ck_) * (signed_ ? static_cast<int8_t>(pad) : pad);
    PixelSums(grp, ctx);
    ctx.pool->ParallelFor(g.out_size(), [&](int64_t p0, int64_t p1) {
      for (int64_t p = p0; p < p1; ++p) {
        const int64_t ow = p % g.out[2], oh = (p / g.out[2]) % g.out[1], od = p / (g.out[2] * g.out[1]);
        uint8_t* dst = copy ? u_.data() + p * w.k_pad : nullptr;
        int32_t sum = 0;
        for (int64_t kd = 0; kd < g.k[0]; ++kd) {
          const int64_t id = od * g.stride[0] - g.pad_begin[0] + kd * g.dilation[0];
          for (int64_t kh = 0; kh < g.k[1]; ++kh) {
            const int64_t ih = oh * g.stride[1] - g.pad_begin[1] + kh * g.dilation[1];
            for (int64_t kw = 0; kw < g.k[2]; ++kw, dst += ck_) {
              const int64_t iw = ow * g.stride[2] - g.pad_begin[2] + kw * g.dilation[2];
              if (id < 0 || id >= g.in[0] || ih < 0 || ih >= g.in[1] || iw < 0 || iw >= g.in[2]) {
                if (copy) std::memset(dst, pad, ck_);
                sum += pad_sum;
                continue;
              }
              const int64_t pix = (id * g.in[1] + ih) * g.in[2] + iw;
              sum += pixel_sum_[pix];
              if (!copy) continue;
              const uint8_t* src = xq_.data() + pix * cs_ + grp * cg_;
              if (ck_ < 16) {
                for (int64_t i = 0; i < ck_; ++i) dst[i] = src[i];
              } else {
                std::memcpy(dst, src, ck_);
              }
            }
          }
        }
        if (copy && w.k_pad > kk_) std::memset(dst, 0, w.k_pad - kk_);
        sums_[p] = sum;
      }
    });
  }

  // Depthwise input: channel planes of int8 (zero point a.zero).
  void QuantizePlanar(const float* x, const ActQuant& a, const ExecContext& ctx) {
    const int64_t n = c_ * g_.in_size();
    ctx.pool->ParallelFor(n, [&](int64_t s, int64_t e) {
      QuantizeBytes(x + s, e - s, 1.0f / a.scale, static_cast<float>(a.zero), -128.0f, 127.0f,
                    xq_.data() + s, true);
    });
  }

  // With z the activation zero point (padding holds z, i.e. x = 0):
  // y[m] = scale[m] * xs * (sum T*xq - z * sum T - offset[m] * (sum xq - taps * z)) + b[m].
  void Depthwise(const ActQuant& a, const float* bias, float* y, const ExecContext& ctx) {
    const auto& g = g_;
    const int64_t ph = PaddedRows(g), pw = PaddedCols(g);
    const int64_t pd = (g.out[0] - 1) * g.stride[0] + (g.k[0] - 1) * g.dilation[0] + 1;
    const int threads = ctx.pool->threads();
    if (static_cast<int>(dw_scratch_.size()) < threads) dw_scratch_.resize(threads);
    const float lo = fused_.active ? fused_.lo : -INFINITY;
    const float hi = fused_.active ? fused_.hi : INFINITY;
    ctx.pool->ParallelFor(threads, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) {
        Scratch& s = dw_scratch_[t];
        s.plane.assign(pd * ph * pw, 0.0f);  // padding is x = 0: a - z = 0
        s.acc.resize(g.out_size());
        const int64_t m0 = m_ * t / threads, m1 = m_ * (t + 1) / threads;
        for (int64_t m = m0; m < m1; ++m) {
          const int8_t* xc = reinterpret_cast<const int8_t*>(xq_.data()) + (m / mg_) * g.in_size();
          for (int64_t d = 0; d < pd; ++d) {
            const int64_t id = d - g.pad_begin[0];
            if (id < 0 || id >= g.in[0]) continue;
            ForInputRows(g, ph, pw, [&](int64_t r, int64_t ih, int64_t c0, int64_t n) {
              Centered(xc + (id * g.in[1] + ih) * g.in[2] + (c0 - g.pad_begin[2]), n,
                       static_cast<float>(a.zero), s.plane.data() + (d * ph + r) * pw + c0);
            });
          }
          const float* wm = dw_eff_.data() + m * taps_;
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
                      MacRow(acc, xr + kw * g.dilation[2], wm[(kd * g.k[1] + kh) * g.k[2] + kw],
                             g.out[2], g.stride[2]);
                    }
                  }
                }
              }
            }
          }
          const QLinearWeights& q = groups_[m / mg_];
          ScaleBiasClamp(s.acc.data(), g.out_size(), q.scale[m % mg_] * a.scale,
                         bias != nullptr ? bias[m] : 0.0f, lo, hi, y + m * g.out_size());
        }
      }
    });
  }

  struct Scratch {
    std::vector<float> plane, acc;
  };
  WindowGeometry g_;
  int64_t n_ = 0, c_ = 0, m_ = 0, group_ = 1, cg_ = 0, mg_ = 0, taps_ = 0, kk_ = 0;
  int64_t cs_ = 0, ck_ = 0;  // pixel stride of the NHWC images; channels per group the kernel sees
  bool has_bias_ = false, depthwise_ = false, static_act_ = false, signed_ = false;
  bool symmetric_ = false, direct_ = false, implicit_ = false;
  // Implicit GEMM: the padded image's extents, per-pixel window starts, and
  // per-step byte offsets within a window.
  std::array<int64_t, 3> padded_{1, 1, 1};
  std::vector<uint8_t> xp_;
  std::vector<int64_t> row_start_;
  std::vector<int32_t> step_off_;
  std::vector<const uint8_t*> row_ptr_;
  std::vector<int32_t> padded_sum_, row_sum_;
  KernelPath path_ = KernelPath::kRef;
  std::vector<QLinearWeights> groups_;
  std::vector<float> dw_eff_;
  ActQuant act_;
  FusedActivation fused_;
  std::vector<uint8_t> xq_, u_;
  std::vector<std::vector<uint8_t>> block_;
  std::vector<int32_t> dot_;
  std::vector<int32_t> sums_, pixel_sum_;
  std::vector<Scratch> dw_scratch_;
};

}  // namespace

std::unique_ptr<OpKernel> MakePackedGemm(const Node& n) { return std::make_unique<PackedGemm>(n); }
std::unique_ptr<OpKernel> MakePackedConv(const Node& n) { return std::make_unique<PackedConv>(n); }

}  // namespace lowbit
