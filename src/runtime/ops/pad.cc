// Pad: constant, reflect and edge modes over any rank; negative pads crop.
#include <cstring>

#include "runtime/op.h"

namespace lowbit {
namespace {

class Pad final : public OpKernel {
 public:
  using OpKernel::OpKernel;
  Status Prepare(const std::vector<TensorInfo>& in, std::vector<TensorInfo>* out) override {
    if (in[0].dtype != DType::kFloat32 && in[0].dtype != DType::kInt64) {
      return Unimplemented(Where(), "element type ", DTypeName(in[0].dtype));
    }
    mode_ = node_.GetString("mode", "constant");
    if (mode_ != "constant" && mode_ != "reflect" && mode_ != "edge") {
      return Unimplemented(Where(), "mode '", mode_, "'");
    }
    const int rank = static_cast<int>(in[0].shape.size());
    if (node_.opset < 11) {
      pads_ = node_.GetInts(node_.opset < 2 ? "paddings" : "pads");
      value_ = node_.GetFloat("value", 0.0f);
    } else {
      if (in.size() < 2 || !in[1].present || in[1].constant == nullptr) {
        return Unimplemented(Where(), "pads must be a constant");
      }
      pads_ = in[1].constant->ToInt64();
      if (in.size() > 2 && in[2].present) {
        if (NumElements(in[2].shape) != 1 || in[2].dtype != in[0].dtype) {
          return InvalidArgument(Where(), "constant_value must be a scalar of the input's type");
        }
        value_input_ = true;  // read when the kernel runs
      }
      if (in.size() > 3 && in[3].present) return Unimplemented(Where(), "the axes input (opset 18)");
    }
    if (static_cast<int>(pads_.size()) != 2 * rank) {
      return InvalidArgument(Where(), "pads has ", pads_.size(), " values for rank ", rank);
    }
    Shape y(rank);
    for (int d = 0; d < rank; ++d) {
      if (__builtin_add_overflow(in[0].shape[d], pads_[d], &y[d]) ||
          __builtin_add_overflow(y[d], pads_[d + rank], &y[d])) {
        return InvalidArgument(Where(), "pads ", pads_[d], " and ", pads_[d + rank], " overflow axis ", d,
                               " of size ", in[0].shape[d]);
      }
      if (y[d] < 0) return InvalidArgument(Where(), "pads crop axis ", d, " below zero");
      if (mode_ != "constant" && y[d] > 0 && in[0].shape[d] == 0) {
        return InvalidArgument(Where(), mode_, " padding of an empty axis");
      }
      if (mode_ == "reflect" && (pads_[d] >= in[0].shape[d] || pads_[d + rank] >= in[0].shape[d]) &&
          (pads_[d] > 0 || pads_[d + rank] > 0)) {
        return InvalidArgument(Where(), "reflect pads must be smaller than axis ", d, " of size ",
                               in[0].shape[d]);
      }
    }
    (*out)[0] = TensorInfo{true, in[0].dtype, y, nullptr};
    return OkStatus();
  }

  void Run(const std::vector<const Tensor*>& in, const std::vector<Tensor*>& out,
           const ExecContext&) override {
    if (value_input_) {
      value_ = in[0]->dtype() == DType::kFloat32 ? in[2]->data<float>()[0]
                                                 : static_cast<float>(in[2]->data<int64_t>()[0]);
    }
    if (in[0]->dtype() == DType::kFloat32) {
      RunTyped<float>(*in[0], out[0], value_);
    } else {
      RunTyped<int64_t>(*in[0], out[0], static_cast<int64_t>(value_));
    }
  }

 private:
  template <typename T>
  void RunTyped(const Tensor& x, Tensor* y, T fill) {
    const Shape& xs = x.shape();
    const Shape& ys = y->shape();
    const int rank = static_cast<int>(xs.size());
    std::vector<int64_t> strides(rank, 1), idx(rank, 0);
    for (int d = rank - 2; d >= 0; --d) strides[d] = strides[d + 1] * xs[d + 1];
    const T* src = x.data<T>();
    T* dst = y->data<T>();
    const int64_t n = y->numel();
    for (int64_t o = 0; o < n; ++o) {
      int64_t off = 0;
      bool inside = true;
      for (int d = 0; d < rank; ++d) {
        int64_t i = idx[d] - pads_[d];
        if (i < 0 || i >= xs[d]) {
          if (mode_ == "constant") {
            inside = false;
            break;
          }
          if (mode_ == "edge") {
            i = i < 0 ? 0 : xs[d] - 1;
          } else {
            i = i < 0 ? -i : 2 * (xs[d] - 1) - i;
          }
        }
        off += i * strides[d];
      }
      dst[o] = inside ? src[off] : fill;
      for (int d = rank - 1; d >= 0; --d) {
        if (++idx[d] < ys[d]) break;
        idx[d] = 0;
      }
    }
  }

  std::string mode_;
  std::vector<int64_t> pads_;
  float value_ = 0;
  bool value_input_ = false;
};

}  // namespace

std::unique_ptr<OpKernel> MakePad(const Node& n) { return std::make_unique<Pad>(n); }

}  // namespace lowbit
