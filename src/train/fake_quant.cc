#include "train/fake_quant.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "kernels/qlinear.h"
#include "lowbit/packed_tensor.h"
#include "quant/quantize_layer.h"

namespace lowbit::train {
namespace {

torch::Tensor FloatTensor(const std::vector<float>& v) {
  return torch::tensor(v, torch::dtype(torch::kFloat32));
}

std::vector<float> ToFloats(const torch::Tensor& t) {
  const torch::Tensor c = t.detach().contiguous();
  return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}

}  // namespace

Result<std::shared_ptr<WeightQuantizer>> WeightQuantizer::FromParts(const PackedParts& parts,
                                                                    bool learn_levels,
                                                                    bool weight_only,
                                                                    torch::Tensor mask) {
  auto q = std::make_shared<WeightQuantizer>();
  q->shape_ = parts.shape;
  q->mask_ = mask;
  for (size_t i = 0; i < parts.parts.size(); ++i) {
    const QuantParams& p = parts.parts[i].params();
    if (p.spec.family == Family::kFloat) return InvalidArgument("float weights need no quantizer");
    if (p.granularity.kind == Granularity::kGroup) {
      return Unimplemented("training takes channel or tensor granularity, not ",
                           GranularityName(p.granularity));
    }
    Part part;
    part.params = p;
    if (parts.mixed()) {
      part.rows.assign(parts.channels[i].begin(), parts.channels[i].end());
      part.row_index = torch::tensor(part.rows, torch::dtype(torch::kLong));
    }
    part.scales = FloatTensor(p.scales).requires_grad_(true);
    if (p.spec.asymmetric) {
      std::vector<float> z(p.zero_points.begin(), p.zero_points.end());
      part.zero = FloatTensor(z).requires_grad_(true);
    }
    const bool learn = learn_levels && p.spec.family == Family::kCodebook;
    part.levels = FloatTensor(p.levels).requires_grad_(learn);
    float qp = 1;
    for (float l : p.levels) qp = std::max(qp, std::fabs(l));
    part.grad_scale = 1.0 / std::sqrt(static_cast<double>(p.cols) * qp);
    q->parts_.push_back(std::move(part));
  }
  q->learn_levels_ = learn_levels;
  q->snap_levels_ = !weight_only;
  return q;
}

void WeightQuantizer::Sync(Part& p) const {
  p.params.scales = ToFloats(p.scales);
  if (p.zero.defined()) {
    const std::vector<float> z = ToFloats(p.zero);
    for (size_t g = 0; g < z.size(); ++g) p.params.zero_points[g] = static_cast<int32_t>(std::nearbyint(z[g]));
  }
  std::vector<float> raw = ToFloats(p.levels);
  if (p.levels.requires_grad() && snap_levels_) {
    std::vector<int64_t> from;
    p.params.levels = SnapLevelsToInt8(raw, &from);
    p.level_from = torch::tensor(from, torch::dtype(torch::kLong));
  } else {
    p.params.levels = raw;
    p.level_from = torch::Tensor();
  }
}

torch::Tensor WeightQuantizer::PartForward(Part& p, const torch::Tensor& w2d) {
  Sync(p);
  const torch::Tensor wc = w2d.detach().contiguous();
  const int64_t rows = wc.size(0), cols = wc.size(1);
  QuantParams params = p.params;
  params.rows = rows;
  params.cols = cols;
  torch::Tensor codes = torch::empty({rows, cols}, torch::dtype(torch::kInt32));
  const Status st = Encode(params, wc.data_ptr<float>(), reinterpret_cast<uint32_t*>(codes.data_ptr<int32_t>()));
  if (!st.ok()) throw std::runtime_error(st.message());
  codes = codes.to(torch::kLong).view({-1});
  const int64_t granules = static_cast<int64_t>(params.scales.size());
  torch::Tensor lev_eff = FloatTensor(params.levels);
  const torch::Tensor lev_param =
      p.level_from.defined() ? p.levels.index_select(0, p.level_from) : p.levels;
  const torch::Tensor s = p.scales.view({granules, 1});
  torch::Tensor zrow = torch::zeros({granules, 1});
  if (p.zero.defined()) {
    std::vector<float> z(params.zero_points.begin(), params.zero_points.end());
    zrow = FloatTensor(z).view({granules, 1});
  }
  const torch::Tensor lc = lev_eff.index_select(0, codes).view({rows, cols}) - zrow;
  // Decode's value, bit for bit: scale * (level - zero point).
  torch::Tensor out = lc * s.detach();
  const torch::Tensor u = wc / s.detach();
  const torch::Tensor lmin = lev_eff.min() - zrow, lmax = lev_eff.max() - zrow;
  const torch::Tensor m = ((u > lmin) & (u < lmax)).to(torch::kFloat32);
  const torch::Tensor wm = w2d * m;
  out = out + (wm - wm.detach());
  const torch::Tensor sg = s * p.grad_scale;
  out = out + (sg - sg.detach()) * (lc - u * m).detach();
  if (p.zero.defined()) {
    const torch::Tensor zg = p.zero.view({granules, 1}) * p.grad_scale;
    out = out + (zg - zg.detach()) * (-s.detach() * (1 - m));
  }
  if (p.levels.requires_grad()) {
    const torch::Tensor sel = lev_param.index_select(0, codes).view({rows, cols});
    out = out + (sel - sel.detach()) * s.detach();
  }
  return out;
}

torch::Tensor WeightQuantizer::Forward(const torch::Tensor& w) {
  const torch::Tensor we = mask_.defined() ? w * mask_ : w;
  const torch::Tensor w2 = we.reshape({shape_[0], -1});
  if (parts_.size() == 1) return PartForward(parts_[0], w2).view(shape_);
  torch::Tensor out = torch::zeros_like(w2);
  for (Part& p : parts_) {
    out = out.index_copy(0, p.row_index, PartForward(p, w2.index_select(0, p.row_index)));
  }
  return out.view(shape_);
}

Result<PackedTensor> WeightQuantizer::PackPart(Part& p, const torch::Tensor& w2d) const {
  Sync(p);
  const torch::Tensor wc = w2d.detach().contiguous();
  QuantParams params = p.params;
  std::vector<int64_t> shape = shape_;
  shape[0] = wc.size(0);
  std::vector<uint32_t> codes(static_cast<size_t>(wc.numel()));
  LOWBIT_RETURN_IF_ERROR(Encode(params, wc.data_ptr<float>(), codes.data()));
  return PackedTensor::FromCodes(std::move(params), shape, codes.data());
}

Result<PackedParts> WeightQuantizer::Pack(const torch::Tensor& w) const {
  torch::NoGradGuard no_grad;
  const torch::Tensor we = mask_.defined() ? w * mask_ : w;
  const torch::Tensor w2 = we.reshape({shape_[0], -1});
  auto& parts = const_cast<std::vector<Part>&>(parts_);
  if (parts.size() == 1) {
    PackedTensor t;
    LOWBIT_ASSIGN_OR_RETURN(t, PackPart(parts[0], w2));
    return PackedParts::Uniform(std::move(t));
  }
  PackedParts out;
  out.shape = shape_;
  for (Part& p : parts) {
    PackedTensor t;
    LOWBIT_ASSIGN_OR_RETURN(t, PackPart(p, w2.index_select(0, p.row_index)));
    out.parts.push_back(std::move(t));
    out.channels.emplace_back(p.rows.begin(), p.rows.end());
  }
  return out;
}

std::vector<torch::Tensor> WeightQuantizer::State() const {
  std::vector<torch::Tensor> out;
  for (const Part& p : parts_) {
    out.push_back(p.scales);
    out.push_back(p.zero.defined() ? p.zero : torch::zeros({0}));
    out.push_back(p.levels);
  }
  return out;
}

std::vector<torch::Tensor> WeightQuantizer::Parameters() const {
  std::vector<torch::Tensor> out;
  for (const Part& p : parts_) {
    out.push_back(p.scales);
    if (p.zero.defined()) out.push_back(p.zero);
    if (p.levels.requires_grad()) out.push_back(p.levels);
  }
  return out;
}

void WeightQuantizer::Constrain() {
  torch::NoGradGuard no_grad;
  for (Part& p : parts_) {
    p.scales.clamp_min_(1e-12);
    if (p.zero.defined()) {
      const float hi = p.params.levels.back(), lo = p.params.levels.front();
      p.zero.clamp_(lo, hi);
    }
    if (p.levels.requires_grad()) p.levels.copy_(std::get<0>(p.levels.sort()));
  }
}

std::string WeightQuantizer::format() const {
  std::string out;
  for (const Part& p : parts_) {
    if (!out.empty()) out += '/';
    out += FormatName(p.params.spec);
  }
  return out;
}

ActQuantizer::ActQuantizer(float lo, float hi, bool symmetric) : symmetric_(symmetric) {
  if (symmetric) {
    const float amax = std::max(-lo, hi);
    lo = -amax;
    hi = amax;
  }
  lo_ = torch::tensor(std::min(lo, 0.0f)).requires_grad_(true);
  hi_ = torch::tensor(std::max(hi, 0.0f)).requires_grad_(true);
}

std::pair<float, float> ActQuantizer::Range() const { return {lo_.item<float>(), hi_.item<float>()}; }

torch::Tensor ActQuantizer::Forward(const torch::Tensor& x) {
  const auto [lo, hi] = Range();
  const ActQuant a = StaticActParams(lo, hi, symmetric_, false);
  const float inv = 1.0f / a.scale;
  const float z = static_cast<float>(a.zero);
  const torch::Tensor xd = x.detach();
  const torch::Tensor t = torch::round(xd * inv) + z;
  const torch::Tensor q = t.clamp(0.0, 255.0);
  torch::Tensor out = (q - z) * a.scale;
  const torch::Tensor m = ((t >= 0) & (t <= 255)).to(torch::kFloat32);
  const torch::Tensor xm = x * m;
  out = out + (xm - xm.detach());
  const double n = static_cast<double>(x.numel() / std::max<int64_t>(1, x.size(0)));
  const double g = 1.0 / std::sqrt(n * 255.0);
  const torch::Tensor s = symmetric_ ? hi_ / 127.0 : (hi_ - lo_) / 255.0;
  const torch::Tensor sg = s * g;
  out = out + (sg - sg.detach()) * ((q - z) - xd * inv * m);
  return out;
}

void ActQuantizer::Constrain() {
  torch::NoGradGuard no_grad;
  if (symmetric_) {
    hi_.clamp_min_(1e-8);
    lo_.copy_(-hi_);
    return;
  }
  lo_.clamp_max_(0.0);
  hi_.clamp_min_(0.0);
  if (hi_.item<float>() - lo_.item<float>() < 1e-8f) hi_.copy_(lo_ + 1e-8);
}

}  // namespace lowbit::train
