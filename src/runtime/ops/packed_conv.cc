// PackedConv: preparation, the choice of algorithm and the batch loop
// (runtime/ops/packed_conv.h).
#include "runtime/ops/packed_conv.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstring>

#include "runtime/byte_edges.h"
#include "runtime/ops/byte_ops.h"
#include "runtime/ops/planes.h"

namespace lowbit {

std::unique_ptr<OpKernel> MakeWeightOnlyConv(const Node& n);  // conv.cc

std::string PackedConv::Algorithm() const {
  std::string a = std::string(KernelPathName(path_)) + " " + algorithm_->name();
  if (!depthwise_) a += std::string(" ") + LayoutName(groups_[0]);
  if (mixed_) a += " filter-wise";
  return a;
}

Status PackedConv::Prepare(const std::vector<TensorInfo>& in, std::vector<TensorInfo>* out) {
  PackedParts w;
  LOWBIT_RETURN_IF_ERROR(PrepareCommon(in, &w));
  // Byte edges (runtime/byte_edges.h): X, R and Y may be 8-bit NHWC pixels.
  bytes_in_ = node_.GetInt(kByteInput, 0) != 0;
  if (bytes_in_ && !act_spec_.is_static) {
    return InvalidArgument(Where(), "8-bit input X needs a static act_range");
  }
  LOWBIT_ASSIGN_OR_RETURN(bytes_out_, ByteEdgeParams(node_, kByteOutputAct, kByteOutputRange, &out_q_));
  LOWBIT_ASSIGN_OR_RETURN(res_bytes_,
                          ByteEdgeParams(node_, kByteResidualAct, kByteResidualRange, &res_q_));
  LOWBIT_RETURN_IF_ERROR(ResidualRangeOf(node_).status());
  const Shape x_shape = bytes_in_ ? NchwOf(in[0].shape) : in[0].shape;
  ConvDims d;
  LOWBIT_ASSIGN_OR_RETURN(d, ComputeConvDims(node_, x_shape, w.shape, "weight_shape"));
  n_ = d.n;
  c_ = d.c;
  m_ = d.m;
  group_ = d.group;
  g_ = d.g;
  // The per-pixel tables and the padded input image the plan sets up are
  // sized by the declared shape: checked against the memory cap first.
  {
    Shape padded = {d.c};
    for (int i = 0; i < 3; ++i) {
      padded.push_back(std::max((d.g.out[i] - 1) * d.g.stride[i] + (d.g.k[i] - 1) * d.g.dilation[i] + 1,
                                d.g.pad_begin[i] + d.g.in[i]));
    }
    LOWBIT_RETURN_IF_ERROR(CheckedBytes(DType::kInt64, {d.g.out_size()}, Where() + "output pixel table").status());
    LOWBIT_RETURN_IF_ERROR(CheckedBytes(DType::kFloat32, padded, Where() + "padded input image").status());
  }
  cg_ = c_ / group_;
  mg_ = m_ / group_;
  taps_ = g_.k[0] * g_.k[1] * g_.k[2];
  depthwise_ = cg_ == 1 && group_ > 1;
  mixed_ = w.mixed();
  if (mixed_ && group_ != 1) {
    return Unimplemented(Where(), "filter-wise formats (", w.format(), ") need group 1, not group ",
                         group_);
  }
  nhwc_dw_ = depthwise_ && (bytes_in_ || bytes_out_);
  if (nhwc_dw_ && (mg_ != 1 || res_bytes_ || (in.size() > 4 && in[4].present))) {
    return InvalidArgument(Where(),
                           "8-bit pixels need a depthwise convolution with one output per "
                           "channel and no residual");
  }
  if (!depthwise_) {
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
    if (segment_ > 0 && std::any_of(groups_.begin(), groups_.end(), [](const QLinearWeights& q) {
          return q.layout == QLinearWeights::Layout::kTable;
        })) {
      SetKernelRows(false);  // table layouts give code 0 a weight
      LOWBIT_RETURN_IF_ERROR(BuildGroups(w));
    }
    LOWBIT_RETURN_IF_ERROR(CheckOneOperand(groups_, w));
    signed_ = groups_[0].signed_acts();
  }
  LOWBIT_RETURN_IF_ERROR(ChooseAlgorithm(w));
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
      return InvalidArgument(Where(), "attribute ", kByteResidualAct,
                             " needs an 8-bit residual input");
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

void PackedConv::Run(const std::vector<const Tensor*>& in, const std::vector<Tensor*>& out,
                     const ExecContext& ctx) {
  const float* x = bytes_in_ ? nullptr : in[0]->data<float>();
  const float* bias = Bias(in);
  const int64_t isz = c_ * g_.in_size();
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
  ImageIO common;
  common.x = x;
  common.xb = bytes_in_ ? in[0]->data<uint8_t>() : nullptr;
  common.bias = bias;
  common.late_residual = late_residual;
  common.write_bytes = write_bytes;
  common.res = res;
  common.res_b = res_b;
  common.y = y;
  common.yb = yb;
  common.bo = bo;
  auto run_image = [&](int64_t i, const ExecContext& ctx, ImageScratch& s) {
    ImageIO io = common;
    io.i = i;
    io.a = act_spec_.is_static ? act_
                               : DynamicActParams(x + i * isz, isz, act_spec_.symmetric, signed_);
    algorithm_->RunImage(*this, io, ctx, s);
  };
  // Batches of small images: each thread takes whole images with its own
  // scratch, instead of splitting every image's many short steps. (Not the
  // fp32-plane depthwise algorithm, whose scratch is per thread index.)
  const int threads = ctx.pool->threads();
  const int64_t image_macs = g_.out_size() * m_ * kk_;
  const bool by_images = (!depthwise_ || nhwc_dw_) && threads > 1 && n_ >= threads &&
                         image_macs < (int64_t{16} << 20);
  if (by_images) {
    while (static_cast<int>(scratch_.size()) < threads) {
      scratch_.emplace_back();
      SizeScratch(&scratch_.back());
    }
    const ExecContext one{&serial_, 1};
    ctx.pool->ParallelFor(threads, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) {
        for (int64_t i = n_ * t / threads; i < n_ * (t + 1) / threads; ++i)
          run_image(i, one, scratch_[t]);
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

Status PackedConv::ChooseAlgorithm(const PackedParts& w) {
  winograd_ = false;
  if (depthwise_) {
    signed_ = !nhwc_dw_;
    if (nhwc_dw_) {  // the NHWC byte image of DepthwiseNhwc
      cs_ = ck_ = c_;
      SetUpGeometry();
    }
    LOWBIT_ASSIGN_OR_RETURN(algorithm_, MakeDepthwise(*this, w.parts[0]));
    return OkStatus();
  }
  algorithm_ = MakeWinograd(*this);
  winograd_ = algorithm_ != nullptr;
  SetUpImage();
  if (algorithm_ == nullptr) algorithm_ = MakeGemm(*this);
  return OkStatus();
}

const uint8_t* PackedConv::ImageFor(const ImageIO& io, const ExecContext& ctx, ImageScratch& s) {
  const int64_t isz = c_ * g_.in_size();
  if (!bytes_in_) {
    QuantizeImage(io.x + io.i * isz, io.a, ctx, s);
  } else if (!in_place_) {
    CopyImage(io.xb + io.i * isz, io.a, ctx, s);
  }
  return in_place_ ? io.xb + io.i * isz : s.image.data();
}

PackedConv::PartEpilogue PackedConv::BeginPart(const ImageIO& io, int64_t part,
                                               const ExecContext& ctx, ImageScratch& s) {
  const QLinearWeights& w = groups_[part];
  // Input channels from group grp; outputs from og, or scattered to
  // part_out_ (filter-wise formats: every part reads the whole input).
  const int64_t grp = mixed_ ? 0 : part, og = mixed_ ? 0 : part * mg_;
  const int64_t osz = g_.out_size(), i = io.i;
  if (!LevelPlanes() && (!mixed_ || part == 0)) WindowSums(grp, ctx, s);
  Epilogue e = MakeEpilogue(fused_, io.bias != nullptr ? io.bias + og : nullptr);
  if (mixed_) e.out = part_out_[part].data();
  if (io.late_residual) e.clamp = false;
  PrepareColumnEpilogue(w, io.a, e, path_, &s.epilogue);
  PartEpilogue pe;
  pe.w = &w;
  pe.c = &s.epilogue;
  pe.sums = s.sums.data();
  pe.y = io.write_bytes ? nullptr : io.y + (i * m_ + og) * osz;
  pe.r = io.res != nullptr && !io.late_residual ? io.res + (i * m_ + og) * osz : nullptr;
  pe.yb = io.write_bytes ? io.yb + i * osz * m_ + og : nullptr;
  pe.rb = io.res_b != nullptr ? io.res_b + i * osz * m_ + og : nullptr;
  pe.osz = osz;
  pe.m = m_;
  pe.bo = io.bo;
  pe.res_scale = res_q_.scale;
  pe.res_zero = res_q_.zero;
  return pe;
}

void PackedConv::SizeDots(int64_t threads, ImageScratch& s) {
  if (static_cast<int64_t>(s.dot.size()) < threads) s.dot.resize(threads);
  for (int64_t t = 0; t < threads; ++t) {
    if (static_cast<int64_t>(s.dot[t].size()) != s.dot_size) s.dot[t].assign(s.dot_size, 0);
  }
}

Status PackedConv::BuildGroups(const PackedParts& parts) {
  groups_.clear();
  part_out_.clear();
  // AVX-512: symmetric grids run as level planes (kernels/qlinear.h): uint8
  // images as they are and no window sums, when every part can. Padded
  // inputs (KernelPadding) get the zero level's code.
  level_padding_.clear();
  const bool level =
      std::all_of(parts.parts.begin(), parts.parts.end(), [&](const PackedTensor& p) {
        return LevelPlanesPossible(p.params(), parts.mixed() ? p.rows() : mg_, path_,
                                   kernel_options_.lut);
      });
  if (level) level_padding_ = KernelPadding();
  level_ = level;
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
        gather_idx_[part_out_[i][r]] = static_cast<int32_t>(part_dot_[i] + static_cast<int64_t>(r));
        gather_step_[part_out_[i][r]] = static_cast<int32_t>(groups_[i].n_pad);
      }
    }
    return OkStatus();
  }
  for (int64_t grp = 0; grp < group_; ++grp)
    LOWBIT_RETURN_IF_ERROR(AddGroup(parts.parts[0], grp, mg_));
  return OkStatus();
}

std::vector<bool> PackedConv::KernelPadding() const {
  std::vector<bool> pad(kk_, true);
  for (int64_t t = 0; t < taps_; ++t) {
    const int64_t q = t / g_.k[2], kw = t % g_.k[2];
    for (int64_t c = 0; c < cg_; ++c)
      pad[segment_ > 0 ? q * segment_ + kw * cg_ + c : t * ck_ + c] = false;
  }
  return pad;
}

Status PackedConv::AddGroup(const PackedTensor& w, int64_t grp, int64_t mg) {
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
    if (level_) {
      Result<QLinearWeights> made = PrepareLevelPlaneCodes(gp, perm.data(), level_padding_);
      if (!made.ok()) return Status(made.status().code(), Where() + made.status().message());
      q = std::move(made).value();
    } else {
      LOWBIT_ASSIGN_OR_RETURN(q, LayoutCodes(gp, perm.data()));
    }
    groups_.push_back(std::move(q));
  }
  return OkStatus();
}

void PackedConv::SetKernelRows(bool segments) {
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

void PackedConv::SetUpImage() {
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
      step_off_[s] =
          static_cast<int32_t>(tap_pix_[4 * s / runs.bytes * runs.taps] * cs_ + 4 * s % runs.bytes);
    }
  }
  use_integral_ =
      taps_ > 9 && g.k[0] == 1 && padded_[0] == 1 && g.dilation[1] == 1 && g.dilation[2] == 1;
  // Level planes read uint8 pixels as they are: 1x1 windows without
  // padding over an 8-bit input whose pixels are the kernel's rows, and
  // Winograd (which takes its padding to be the zero point), read an 8-bit
  // input in place, with no image.
  in_place_ = (LevelPlanes() && bytes_in_ && !mixed_ && group_ == 1 && taps_ == 1 && cs_ == c_ &&
               (implicit_ || direct_) && g.pad_begin == std::array<int64_t, 3>{0, 0, 0} &&
               padded_ == g.in) ||
              (winograd_ && bytes_in_);
}

void PackedConv::SizeScratch(ImageScratch* s) const {
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

void PackedConv::SetUpGeometry() {
  const auto& g = g_;
  for (int d = 0; d < 3; ++d) {
    padded_[d] = std::max((g.out[d] - 1) * g.stride[d] + (g.k[d] - 1) * g.dilation[d] + 1,
                          g.pad_begin[d] + g.in[d]);
  }
  row_pix_.resize(g.out_size());
  for (int64_t p = 0; p < g.out_size(); ++p) {
    const int64_t ow = p % g.out[2], oh = (p / g.out[2]) % g.out[1], od = p / (g.out[2] * g.out[1]);
    row_pix_[p] =
        ((od * g.stride[0]) * padded_[1] + oh * g.stride[1]) * padded_[2] + ow * g.stride[2];
  }
  tap_pix_.resize(taps_);
  for (int64_t t = 0; t < taps_; ++t) {
    const int64_t kw = t % g.k[2], kh = (t / g.k[2]) % g.k[1], kd = t / (g.k[2] * g.k[1]);
    tap_pix_[t] =
        ((kd * g.dilation[0]) * padded_[1] + kh * g.dilation[1]) * padded_[2] + kw * g.dilation[2];
  }
}

// act "float" selects the weight-only kernel (conv.cc).
std::unique_ptr<OpKernel> MakePackedConv(const Node& n) {
  if (n.GetString("act", "") == "float") return MakeWeightOnlyConv(n);
  return std::make_unique<PackedConv>(n);
}

}  // namespace lowbit
