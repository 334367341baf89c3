// Resize (opset 10+) and Upsample (opset 7-9), nearest and n-linear, with
// the coordinate modes exporters use (half_pixel, pytorch_half_pixel,
// align_corners, asymmetric, tf_half_pixel_for_nn). Both are separable: each
// resized axis is one pass of 1-D taps (an index and a weight per output
// position), so n-linear is n passes of two taps.
#include <algorithm>
#include <cmath>

#include "runtime/byte_edges.h"
#include "runtime/ops/byte_ops.h"
#include "runtime/op.h"

namespace lowbit {
namespace {

struct Taps {
  std::vector<int64_t> i0, i1;
  std::vector<float> w1;  // weight of i1 (i0 takes 1 - w1)
};

class Resize final : public OpKernel {
 public:
  Resize(const Node& n, bool upsample) : OpKernel(n), upsample_(upsample) {}

  Status Prepare(const std::vector<TensorInfo>& in, std::vector<TensorInfo>* out) override {
    if (in.empty() || !in[0].present) return InvalidArgument(Where(), "missing input");
    // Byte edges (runtime/byte_edges.h): nearest resizing of 8-bit
    // [N, spatial..., C] pixels, the taps those of the NCHW shape.
    LOWBIT_ASSIGN_OR_RETURN(bytes_, BytePassThroughInputs(node_, in, {0}));
    if (!bytes_) LOWBIT_RETURN_IF_ERROR(ExpectFloat(*this, in[0], "X"));
    const Shape x = bytes_ ? NchwOf(in[0].shape) : in[0].shape;
    const int rank = static_cast<int>(x.size());
    std::vector<float> scales;
    std::vector<int64_t> sizes;
    auto floats = [&](const TensorInfo& t, const char* what) -> Status {
      if (t.constant == nullptr) return Unimplemented(Where(), what, " must be known when the plan is made");
      if (t.dtype != DType::kFloat32) return InvalidArgument(Where(), what, " must be float32");
      scales.assign(t.constant->data<float>(), t.constant->data<float>() + t.constant->numel());
      return OkStatus();
    };
    // Inputs by opset: Upsample-7 attribute scales; Upsample-9 and Resize-10
    // (X, scales); Resize-11+ (X, roi, scales, sizes).
    if (upsample_ && node_.opset < 9) {
      auto it = node_.attrs.find("scales");
      if (it == node_.attrs.end() || !std::holds_alternative<std::vector<float>>(it->second)) {
        return InvalidArgument(Where(), "attribute scales (floats) is missing");
      }
      scales = std::get<std::vector<float>>(it->second);
    } else if (upsample_ || node_.opset < 11) {
      if (in.size() < 2 || !in[1].present) return InvalidArgument(Where(), "missing scales");
      LOWBIT_RETURN_IF_ERROR(floats(in[1], "scales"));
    } else {
      if (in.size() > 2 && in[2].present && in[2].constant != nullptr && in[2].constant->numel() > 0) {
        LOWBIT_RETURN_IF_ERROR(floats(in[2], "scales"));
      } else if (in.size() > 2 && in[2].present && in[2].constant == nullptr) {
        return Unimplemented(Where(), "scales must be known when the plan is made");
      }
      if (in.size() > 3 && in[3].present) {
        if (in[3].constant == nullptr) return Unimplemented(Where(), "sizes must be known when the plan is made");
        sizes = in[3].constant->ToInt64();
      }
    }
    if (node_.Has("axes") || node_.GetInt("antialias", 0) != 0 ||
        node_.GetString("keep_aspect_ratio_policy", "stretch") != "stretch") {
      return Unimplemented(Where(), "axes, antialias and keep_aspect_ratio_policy are not supported");
    }
    if (scales.empty() == sizes.empty()) {
      return InvalidArgument(Where(), "give exactly one of scales and sizes");
    }
    const size_t n = scales.empty() ? sizes.size() : scales.size();
    if (static_cast<int>(n) != rank) {
      return InvalidArgument(Where(), n, " scales or sizes for an input of rank ", rank);
    }
    mode_ = node_.GetString("mode", "nearest");
    if (mode_ != "nearest" && mode_ != "linear" && !(upsample_ && mode_ == "bilinear")) {
      return Unimplemented(Where(), "mode '", mode_, "' (nearest and linear are supported)");
    }
    if (bytes_ && mode_ != "nearest") return InvalidArgument(Where(), "8-bit pixels resize only as nearest");
    const std::string coord = upsample_ || node_.opset < 11
                                  ? "asymmetric"
                                  : node_.GetString("coordinate_transformation_mode", "half_pixel");
    const std::string nearest = node_.GetString("nearest_mode", "round_prefer_floor");
    // Upsample and Resize-10 map coordinates asymmetrically and round
    // nearest down.
    Shape y(rank);
    taps_.assign(rank, Taps{});
    resized_.assign(rank, false);
    std::vector<float> dim_scale(rank);
    for (int d = 0; d < rank; ++d) {
      if (!sizes.empty()) {
        if (sizes[d] < 0 || sizes[d] > (int64_t{1} << 31)) return InvalidArgument(Where(), "size ", sizes[d]);
        y[d] = sizes[d];
        dim_scale[d] = x[d] > 0 ? static_cast<float>(y[d]) / static_cast<float>(x[d]) : 1.0f;
      } else {
        dim_scale[d] = scales[d];
        if (!(dim_scale[d] > 0) || !(dim_scale[d] < 65536)) return InvalidArgument(Where(), "scale ", dim_scale[d]);
        y[d] = static_cast<int64_t>(std::floor(static_cast<double>(x[d]) * dim_scale[d]));
      }
    }
    // The output is checked against the memory cap before the taps are
    // built: a tap per output position along each axis.
    LOWBIT_RETURN_IF_ERROR(CheckedBytes(DType::kFloat32, y, Where() + "output").status());
    (*out)[0] = bytes_ ? TensorInfo{true, DType::kUint8, NhwcOf(y), nullptr}
                       : TensorInfo{true, DType::kFloat32, y, nullptr};
    if (NumElements(y) == 0) return OkStatus();  // nothing to compute: no taps
    for (int d = 0; d < rank; ++d) {
      const float scale = dim_scale[d];
      if (y[d] == x[d] && scale == 1.0f) continue;
      if (x[d] == 0) return InvalidArgument(Where(), "cannot resize an empty axis");
      resized_[d] = true;
      Taps& t = taps_[d];
      for (int64_t j = 0; j < y[d]; ++j) {
        double c;
        if (coord == "half_pixel") {
          c = (j + 0.5) / scale - 0.5;
        } else if (coord == "pytorch_half_pixel") {
          c = y[d] > 1 ? (j + 0.5) / scale - 0.5 : 0.0;
        } else if (coord == "align_corners") {
          c = y[d] > 1 ? static_cast<double>(j) * (x[d] - 1) / (y[d] - 1) : 0.0;
        } else if (coord == "asymmetric") {
          c = j / static_cast<double>(scale);
        } else if (coord == "tf_half_pixel_for_nn") {
          c = (j + 0.5) / scale;
        } else {
          return Unimplemented(Where(), "coordinate_transformation_mode '", coord, "'");
        }
        const int64_t last = x[d] - 1;
        if (mode_ == "nearest") {
          double r;
          if (upsample_ || node_.opset < 11 || nearest == "floor") {
            r = std::floor(c);
          } else if (nearest == "ceil") {
            r = std::ceil(c);
          } else if (nearest == "round_prefer_ceil") {
            r = std::floor(c + 0.5);
          } else if (nearest == "round_prefer_floor") {
            r = std::ceil(c - 0.5);
          } else {
            return InvalidArgument(Where(), "nearest_mode '", nearest, "'");
          }
          const int64_t i = std::clamp<int64_t>(static_cast<int64_t>(r), 0, last);
          t.i0.push_back(i);
          t.i1.push_back(i);
          t.w1.push_back(0.0f);
        } else {
          const double cc = std::clamp(c, 0.0, static_cast<double>(last));
          const int64_t i0 = static_cast<int64_t>(std::floor(cc));
          t.i0.push_back(i0);
          t.i1.push_back(std::min(i0 + 1, last));
          t.w1.push_back(static_cast<float>(cc - i0));
        }
      }
    }
    return OkStatus();
  }

  void Run(const std::vector<const Tensor*>& in, const std::vector<Tensor*>& out, const ExecContext&) override {
    if (out[0]->numel() == 0) return;
    if (bytes_) {
      RunBytes(*in[0], out[0]);
      return;
    }
    Shape shape = in[0]->shape();
    std::vector<float> cur(in[0]->data<float>(), in[0]->data<float>() + in[0]->numel()), next;
    for (int d = 0; d < static_cast<int>(shape.size()); ++d) {
      if (!resized_[d]) continue;
      const Taps& t = taps_[d];
      const int64_t outer = NumElements(Shape(shape.begin(), shape.begin() + d));
      const int64_t inner = NumElements(Shape(shape.begin() + d + 1, shape.end()));
      const int64_t from = shape[d], to = static_cast<int64_t>(t.i0.size());
      next.assign(outer * to * inner, 0.0f);
      for (int64_t o = 0; o < outer; ++o) {
        for (int64_t j = 0; j < to; ++j) {
          const float* a = cur.data() + (o * from + t.i0[j]) * inner;
          const float* b = cur.data() + (o * from + t.i1[j]) * inner;
          float* dst = next.data() + (o * to + j) * inner;
          const float w = t.w1[j];
          for (int64_t i = 0; i < inner; ++i) dst[i] = w == 0.0f ? a[i] : a[i] + w * (b[i] - a[i]);
        }
      }
      shape[d] = to;
      cur.swap(next);
    }
    std::copy(cur.begin(), cur.end(), out[0]->data<float>());
  }

 private:
  // Nearest taps on [N, spatial..., C] bytes: NCHW axis d is axis
  // NhwcAxis(d) here.
  void RunBytes(const Tensor& x, Tensor* out) const {
    Shape shape = x.shape();
    const int rank = static_cast<int>(shape.size());
    std::vector<uint8_t> cur(x.data<uint8_t>(), x.data<uint8_t>() + x.numel()), next;
    for (int d = 0; d < rank; ++d) {
      if (!resized_[d]) continue;
      const int e = NhwcAxis(d, rank);
      const std::vector<int64_t>& src = taps_[d].i0;
      const int64_t outer = NumElements(Shape(shape.begin(), shape.begin() + e));
      const int64_t inner = NumElements(Shape(shape.begin() + e + 1, shape.end()));
      const int64_t from = shape[e], to = static_cast<int64_t>(src.size());
      next.resize(outer * to * inner);
      for (int64_t o = 0; o < outer; ++o) {
        for (int64_t j = 0; j < to; ++j) {
          std::copy_n(cur.data() + (o * from + src[j]) * inner, inner, next.data() + (o * to + j) * inner);
        }
      }
      shape[e] = to;
      cur.swap(next);
    }
    std::copy(cur.begin(), cur.end(), out->data<uint8_t>());
  }

  bool upsample_, bytes_ = false;
  std::string mode_;
  std::vector<Taps> taps_;
  std::vector<bool> resized_;
};

}  // namespace

std::unique_ptr<OpKernel> MakeResize(const Node& n) { return std::make_unique<Resize>(n, false); }
std::unique_ptr<OpKernel> MakeUpsample(const Node& n) { return std::make_unique<Resize>(n, true); }

}  // namespace lowbit
