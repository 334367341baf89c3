// BatchNormalization (inference), Softmax and LogSoftmax.
#include <cmath>

#include "runtime/op.h"

namespace lowbit {
namespace {

class BatchNorm final : public OpKernel {
 public:
  using OpKernel::OpKernel;
  Status Prepare(const std::vector<TensorInfo>& in, std::vector<TensorInfo>* out) override {
    if (in.size() != 5) return InvalidArgument(Where(), "expects X, scale, B, mean, var");
    for (const TensorInfo& t : in) LOWBIT_RETURN_IF_ERROR(ExpectFloat(*this, t, "input"));
    if (node_.GetInt("training_mode", 0) != 0 || out->size() > 1) {
      return Unimplemented(Where(), "training mode (running statistics outputs) is not supported");
    }
    if (node_.opset < 7 && node_.Has("spatial") && node_.GetInt("spatial", 1) == 0) {
      return Unimplemented(Where(), "spatial = 0");
    }
    const Shape& x = in[0].shape;
    if (x.size() < 2) return InvalidArgument(Where(), "input ", ShapeToString(x), " needs rank >= 2");
    c_ = x[1];
    for (int i = 1; i < 5; ++i) {
      if (in[i].shape != Shape{c_}) {
        return InvalidArgument(Where(), "input ", i, " ", ShapeToString(in[i].shape), " must be [",
                               c_, "]");
      }
    }
    n_ = x[0];
    size_ = NumElements(Shape(x.begin() + 2, x.end()));
    eps_ = node_.GetFloat("epsilon", 1e-5f);
    (*out)[0] = TensorInfo{true, DType::kFloat32, x, nullptr};
    return OkStatus();
  }
  void Run(const std::vector<const Tensor*>& in, const std::vector<Tensor*>& out,
           const ExecContext& ctx) override {
    const float* x = in[0]->data<float>();
    const float* scale = in[1]->data<float>();
    const float* b = in[2]->data<float>();
    const float* mean = in[3]->data<float>();
    const float* var = in[4]->data<float>();
    float* y = out[0]->data<float>();
    ctx.pool->ParallelFor(n_ * c_, [&](int64_t s, int64_t e) {
      for (int64_t p = s; p < e; ++p) {
        const int64_t c = p % c_;
        const float a = scale[c] / std::sqrt(var[c] + eps_);
        const float sh = b[c] - mean[c] * a;
        for (int64_t i = 0; i < size_; ++i) y[p * size_ + i] = x[p * size_ + i] * a + sh;
      }
    });
  }

 private:
  int64_t n_ = 0, c_ = 0, size_ = 0;
  float eps_ = 1e-5f;
};

// Before opset 13 the input is coerced to 2-D at `axis` (default 1) and the
// softmax spans everything after it; from 13 it runs along one axis (default -1).
class Softmax final : public OpKernel {
 public:
  Softmax(const Node& n, bool log) : OpKernel(n), log_(log) {}
  Status Prepare(const std::vector<TensorInfo>& in, std::vector<TensorInfo>* out) override {
    LOWBIT_RETURN_IF_ERROR(ExpectFloat(*this, in[0], "input"));
    const Shape& x = in[0].shape;
    const int rank = static_cast<int>(x.size());
    const bool legacy = node_.opset < 13;
    int axis;
    LOWBIT_ASSIGN_OR_RETURN(axis, NormalizeAxis(node_.GetInt("axis", legacy ? 1 : -1), rank, Where()));
    outer_ = NumElements(Shape(x.begin(), x.begin() + axis));
    if (legacy) {
      len_ = NumElements(Shape(x.begin() + axis, x.end()));
      inner_ = 1;
    } else {
      len_ = rank ? x[axis] : 1;
      inner_ = NumElements(Shape(x.begin() + axis + 1, x.end()));
    }
    (*out)[0] = TensorInfo{true, DType::kFloat32, x, nullptr};
    return OkStatus();
  }
  void Run(const std::vector<const Tensor*>& in, const std::vector<Tensor*>& out,
           const ExecContext& ctx) override {
    const float* x = in[0]->data<float>();
    float* y = out[0]->data<float>();
    ctx.pool->ParallelFor(outer_ * inner_, [&](int64_t s, int64_t e) {
      for (int64_t r = s; r < e; ++r) {
        const int64_t base = (r / inner_) * len_ * inner_ + r % inner_;
        float mx = -INFINITY;
        for (int64_t i = 0; i < len_; ++i) mx = std::max(mx, x[base + i * inner_]);
        double sum = 0;
        for (int64_t i = 0; i < len_; ++i) sum += std::exp(x[base + i * inner_] - mx);
        const float lsum = static_cast<float>(std::log(sum));
        for (int64_t i = 0; i < len_; ++i) {
          const float v = x[base + i * inner_] - mx;
          y[base + i * inner_] = log_ ? v - lsum : static_cast<float>(std::exp(v) / sum);
        }
      }
    });
  }

 private:
  bool log_;
  int64_t outer_ = 1, len_ = 1, inner_ = 1;
};

}  // namespace

std::unique_ptr<OpKernel> MakeBatchNormalization(const Node& n) {
  return std::make_unique<BatchNorm>(n);
}
std::unique_ptr<OpKernel> MakeSoftmax(const Node& n) { return std::make_unique<Softmax>(n, false); }
std::unique_ptr<OpKernel> MakeLogSoftmax(const Node& n) { return std::make_unique<Softmax>(n, true); }

}  // namespace lowbit
