// ConvTranspose (fp32, 1-3 spatial dims, groups, dilations, output_padding,
// output_shape and auto_pad): per image and group, one GEMM W^T X gives each
// input pixel's contribution to a kernel window, which col2im adds into the
// output.
#include <algorithm>
#include <cstring>

#include "runtime/op.h"
#include "runtime/sgemm.h"

namespace lowbit {
namespace {

class ConvTranspose final : public OpKernel {
 public:
  using OpKernel::OpKernel;

  Status Prepare(const std::vector<TensorInfo>& in, std::vector<TensorInfo>* out) override {
    if (in.size() < 2 || !in[0].present || !in[1].present) return InvalidArgument(Where(), "expects X and W");
    for (const TensorInfo& t : in) {
      if (t.present) LOWBIT_RETURN_IF_ERROR(ExpectFloat(*this, t, "input"));
    }
    const Shape& x = in[0].shape;
    const Shape& w = in[1].shape;
    const int s = static_cast<int>(x.size()) - 2;
    if (s < 1 || s > 3 || w.size() != x.size()) {
      return InvalidArgument(Where(), "X ", ShapeToString(x), " and W ", ShapeToString(w),
                             " must be [N, C, spatial...] and [C, M/group, kernel...] with 1-3 spatial dims");
    }
    group_ = node_.GetInt("group", 1);
    if (group_ < 1 || x[1] % group_ != 0 || w[0] != x[1]) {
      return InvalidArgument(Where(), "W ", ShapeToString(w), " and group ", group_, " do not fit ", x[1],
                             " input channels");
    }
    auto ints = [&](const char* key, int64_t def, int n) {
      std::vector<int64_t> v = node_.GetInts(key);
      if (v.empty()) v.assign(n, def);
      return v;
    };
    const std::vector<int64_t> stride = ints("strides", 1, s), dil = ints("dilations", 1, s),
                               outpad = ints("output_padding", 0, s);
    std::vector<int64_t> out_shape = node_.GetInts("output_shape");
    if (out_shape.size() == static_cast<size_t>(s) + 2) out_shape.erase(out_shape.begin(), out_shape.begin() + 2);
    std::vector<int64_t> pads = ints("pads", 0, 2 * s);
    if (stride.size() != static_cast<size_t>(s) || dil.size() != static_cast<size_t>(s) ||
        outpad.size() != static_cast<size_t>(s) || pads.size() != static_cast<size_t>(2 * s) ||
        (!out_shape.empty() && out_shape.size() != static_cast<size_t>(s))) {
      return InvalidArgument(Where(), "strides, dilations, output_padding, pads or output_shape have the wrong length");
    }
    const std::string auto_pad = node_.GetString("auto_pad", "NOTSET");
    Shape y = {x[0], w[1] * group_};
    in_.assign(3, 1);
    out_.assign(3, 1);
    k_.assign(3, 1);
    st_.assign(3, 1);
    dl_.assign(3, 1);
    pb_.assign(3, 0);
    for (int i = 0; i < s; ++i) {
      const int d = 3 - s + i;
      if (stride[i] < 1 || stride[i] > 4096 || dil[i] < 1 || dil[i] > 4096 || w[2 + i] < 1 || outpad[i] < 0 ||
          x[2 + i] > (int64_t{1} << 31) || w[2 + i] > 4096) {
        return InvalidArgument(Where(), "strides, dilations, kernel or output_padding out of range");
      }
      const int64_t span = (w[2 + i] - 1) * dil[i] + 1;
      const int64_t full = stride[i] * (x[2 + i] - 1) + outpad[i] + span;
      int64_t o;
      if (!out_shape.empty() || auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
        o = !out_shape.empty() ? out_shape[i] : x[2 + i] * stride[i];
        const int64_t total = std::max<int64_t>(0, full - o);
        const bool upper = auto_pad == "SAME_UPPER";  // else the begin side takes the odd one
        pb_[d] = upper ? total / 2 : total - total / 2;
      } else if (auto_pad == "NOTSET" || auto_pad == "VALID") {
        const int64_t b = auto_pad == "VALID" ? 0 : pads[i], e = auto_pad == "VALID" ? 0 : pads[i + s];
        if (b < 0 || e < 0) return InvalidArgument(Where(), "negative pads");
        pb_[d] = b;
        o = full - b - e;
      } else {
        return InvalidArgument(Where(), "auto_pad '", auto_pad, "'");
      }
      if (o < 1) return InvalidArgument(Where(), "output size ", o, " on spatial axis ", i);
      in_[d] = x[2 + i];
      out_[d] = o;
      k_[d] = w[2 + i];
      st_[d] = stride[i];
      dl_[d] = dil[i];
      y.push_back(o);
    }
    if (in.size() > 2 && in[2].present && in[2].shape != Shape{y[1]}) {
      return InvalidArgument(Where(), "B ", ShapeToString(in[2].shape), " must be [", y[1], "]");
    }
    LOWBIT_RETURN_IF_ERROR(CheckedBytes(DType::kFloat32, y, Where() + "output").status());
    const int64_t cols = in_[0] * in_[1] * in_[2];
    LOWBIT_RETURN_IF_ERROR(CheckedBytes(DType::kFloat32, {w[1] * k_[0] * k_[1] * k_[2], cols}, Where() + "columns").status());
    (*out)[0] = TensorInfo{true, DType::kFloat32, y, nullptr};
    return OkStatus();
  }

  void Run(const std::vector<const Tensor*>& in, const std::vector<Tensor*>& out, const ExecContext& ctx) override {
    const Shape& x = in[0]->shape();
    const Shape& w = in[1]->shape();
    const int64_t n = x[0], c = x[1], cg = c / group_, mg = w[1];
    const int64_t kk = k_[0] * k_[1] * k_[2], pixels = in_[0] * in_[1] * in_[2], opix = out_[0] * out_[1] * out_[2];
    std::vector<float> col(mg * kk * pixels);
    float* y = out[0]->data<float>();
    std::fill(y, y + out[0]->numel(), 0.0f);
    for (int64_t b = 0; b < n; ++b) {
      for (int64_t g = 0; g < group_; ++g) {
        // col[mg*kk, pixels] = W_g^T [cg, mg*kk]^T x X_g [cg, pixels]
        const float* wg = in[1]->data<float>() + g * cg * mg * kk;
        const float* xg = in[0]->data<float>() + (b * c + g * cg) * pixels;
        Sgemm(ctx, true, false, mg * kk, pixels, cg, 1.0f, wg, mg * kk, xg, pixels, 0.0f, col.data(), pixels);
        for (int64_t m = 0; m < mg; ++m) {
          float* ym = y + (b * group_ * mg + g * mg + m) * opix;
          for (int64_t k = 0; k < kk; ++k) {
            const int64_t k0 = k / (k_[1] * k_[2]), k1 = (k / k_[2]) % k_[1], k2 = k % k_[2];
            const float* src = col.data() + (m * kk + k) * pixels;
            for (int64_t p = 0; p < pixels; ++p) {
              const int64_t i0 = p / (in_[1] * in_[2]), i1 = (p / in_[2]) % in_[1], i2 = p % in_[2];
              const int64_t o0 = i0 * st_[0] - pb_[0] + k0 * dl_[0];
              const int64_t o1 = i1 * st_[1] - pb_[1] + k1 * dl_[1];
              const int64_t o2 = i2 * st_[2] - pb_[2] + k2 * dl_[2];
              if (o0 < 0 || o0 >= out_[0] || o1 < 0 || o1 >= out_[1] || o2 < 0 || o2 >= out_[2]) continue;
              ym[(o0 * out_[1] + o1) * out_[2] + o2] += src[p];
            }
          }
        }
      }
    }
    if (in.size() > 2 && in[2] != nullptr) {
      const float* bias = in[2]->data<float>();
      const int64_t m_all = out[0]->shape()[1];
      for (int64_t b = 0; b < n; ++b) {
        for (int64_t m = 0; m < m_all; ++m) {
          float* ym = y + (b * m_all + m) * opix;
          for (int64_t p = 0; p < opix; ++p) ym[p] += bias[m];
        }
      }
    }
  }

 private:
  int64_t group_ = 1;
  std::vector<int64_t> in_, out_, k_, st_, dl_, pb_;  // per 3-D-padded spatial dim
};

}  // namespace

std::unique_ptr<OpKernel> MakeConvTranspose(const Node& n) { return std::make_unique<ConvTranspose>(n); }

}  // namespace lowbit
