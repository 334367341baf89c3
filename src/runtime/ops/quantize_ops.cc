// QuantizeLinear, DequantizeLinear (per tensor or per axis, int8/uint8) and
// DynamicQuantizeLinear: enough to run the QDQ models `lowbit export` writes
// (the fake-quant reference that ONNX Runtime's output is checked against).
#include <algorithm>
#include <cmath>

#include "runtime/op.h"

namespace lowbit {
namespace {

// Scale (and zero point) index of element i for a per-axis parameter.
struct AxisMap {
  int64_t inner = 1, dim = 1;  // elements after the axis, extent of the axis
  bool per_axis = false;
  int64_t operator()(int64_t i) const { return per_axis ? (i / inner) % dim : 0; }
};

Result<AxisMap> MakeAxisMap(const OpKernel& k, const Shape& x, const TensorInfo& scale, int64_t axis) {
  AxisMap m;
  if (scale.shape.empty() || NumElements(scale.shape) == 1) return m;
  if (scale.shape.size() != 1) {
    return InvalidArgument(k.node().Describe(), ": scale ", ShapeToString(scale.shape),
                           " must be a scalar or 1-D");
  }
  int a;
  LOWBIT_ASSIGN_OR_RETURN(a, NormalizeAxis(axis, static_cast<int>(x.size()), k.node().Describe() + ": "));
  if (x[a] != scale.shape[0]) {
    return InvalidArgument(k.node().Describe(), ": scale has ", scale.shape[0], " values for axis ",
                           a, " of extent ", x[a]);
  }
  m.per_axis = true;
  m.dim = x[a];
  for (size_t d = a + 1; d < x.size(); ++d) m.inner *= x[d];
  return m;
}

class QuantizeLinear final : public OpKernel {
 public:
  using OpKernel::OpKernel;
  Status Prepare(const std::vector<TensorInfo>& in, std::vector<TensorInfo>* out) override {
    if (in.size() < 2 || !in[0].present || !in[1].present) {
      return InvalidArgument(Where(), "expects inputs x and y_scale");
    }
    LOWBIT_RETURN_IF_ERROR(ExpectFloat(*this, in[0], "x"));
    LOWBIT_RETURN_IF_ERROR(ExpectFloat(*this, in[1], "y_scale"));
    dtype_ = DType::kUint8;
    if (in.size() > 2 && in[2].present) {
      dtype_ = in[2].dtype;
      if (dtype_ != DType::kUint8 && dtype_ != DType::kInt8) {
        return Unimplemented(Where(), "zero point of type ", DTypeName(dtype_), " (uint8, int8)");
      }
      if (in[2].shape != in[1].shape) {
        return InvalidArgument(Where(), "zero point ", ShapeToString(in[2].shape), " and scale ",
                               ShapeToString(in[1].shape), " differ");
      }
    }
    LOWBIT_ASSIGN_OR_RETURN(map_, MakeAxisMap(*this, in[0].shape, in[1], node_.GetInt("axis", 1)));
    (*out)[0] = TensorInfo{true, dtype_, in[0].shape, nullptr};
    return OkStatus();
  }
  void Run(const std::vector<const Tensor*>& in, const std::vector<Tensor*>& out,
           const ExecContext&) override {
    const float* x = in[0]->data<float>();
    const float* s = in[1]->data<float>();
    const bool has_zp = in.size() > 2 && in[2] != nullptr;
    const int64_t n = in[0]->numel();
    const float lo = dtype_ == DType::kUint8 ? 0.0f : -128.0f;
    const float hi = dtype_ == DType::kUint8 ? 255.0f : 127.0f;
    for (int64_t i = 0; i < n; ++i) {
      const int64_t c = map_(i);
      float zp = 0;
      if (has_zp) {
        zp = dtype_ == DType::kUint8 ? in[2]->data<uint8_t>()[c] : in[2]->data<int8_t>()[c];
      }
      float q = std::clamp(std::nearbyint(x[i] / s[c]) + zp, lo, hi);
      if (std::isnan(q)) q = std::clamp(zp, lo, hi);  // NaN input or 0/0: the zero point
      if (dtype_ == DType::kUint8) {
        out[0]->data<uint8_t>()[i] = static_cast<uint8_t>(q);
      } else {
        out[0]->data<int8_t>()[i] = static_cast<int8_t>(q);
      }
    }
  }

 private:
  DType dtype_ = DType::kUint8;
  AxisMap map_;
};

class DequantizeLinear final : public OpKernel {
 public:
  using OpKernel::OpKernel;
  Status Prepare(const std::vector<TensorInfo>& in, std::vector<TensorInfo>* out) override {
    if (in.size() < 2 || !in[0].present || !in[1].present) {
      return InvalidArgument(Where(), "expects inputs x and x_scale");
    }
    dtype_ = in[0].dtype;
    if (dtype_ != DType::kUint8 && dtype_ != DType::kInt8 && dtype_ != DType::kInt32) {
      return Unimplemented(Where(), "x of type ", DTypeName(dtype_), " (uint8, int8, int32)");
    }
    LOWBIT_RETURN_IF_ERROR(ExpectFloat(*this, in[1], "x_scale"));
    if (in.size() > 2 && in[2].present && (in[2].dtype != dtype_ || in[2].shape != in[1].shape)) {
      return InvalidArgument(Where(), "zero point ", DTypeName(in[2].dtype), " ",
                             ShapeToString(in[2].shape), " must match x's type and the scale's shape");
    }
    LOWBIT_ASSIGN_OR_RETURN(map_, MakeAxisMap(*this, in[0].shape, in[1], node_.GetInt("axis", 1)));
    (*out)[0] = TensorInfo{true, DType::kFloat32, in[0].shape, nullptr};
    return OkStatus();
  }
  void Run(const std::vector<const Tensor*>& in, const std::vector<Tensor*>& out,
           const ExecContext&) override {
    const float* s = in[1]->data<float>();
    const Tensor* zp = in.size() > 2 ? in[2] : nullptr;
    float* y = out[0]->data<float>();
    const int64_t n = in[0]->numel();
    auto value = [&](const Tensor* t, int64_t i) -> int32_t {
      switch (dtype_) {
        case DType::kUint8: return t->data<uint8_t>()[i];
        case DType::kInt8: return t->data<int8_t>()[i];
        default: return t->data<int32_t>()[i];
      }
    };
    for (int64_t i = 0; i < n; ++i) {
      const int64_t c = map_(i);
      const int32_t z = zp != nullptr ? value(zp, c) : 0;
      y[i] = static_cast<float>(value(in[0], i) - z) * s[c];
    }
  }

 private:
  DType dtype_ = DType::kUint8;
  AxisMap map_;
};

class DynamicQuantizeLinear final : public OpKernel {
 public:
  using OpKernel::OpKernel;
  Status Prepare(const std::vector<TensorInfo>& in, std::vector<TensorInfo>* out) override {
    if (in.empty() || !in[0].present) return InvalidArgument(Where(), "expects input x");
    LOWBIT_RETURN_IF_ERROR(ExpectFloat(*this, in[0], "x"));
    (*out)[0] = TensorInfo{true, DType::kUint8, in[0].shape, nullptr};
    if (out->size() > 1) (*out)[1] = TensorInfo{true, DType::kFloat32, {}, nullptr};
    if (out->size() > 2) (*out)[2] = TensorInfo{true, DType::kUint8, {}, nullptr};
    return OkStatus();
  }
  void Run(const std::vector<const Tensor*>& in, const std::vector<Tensor*>& out,
           const ExecContext&) override {
    const float* x = in[0]->data<float>();
    const int64_t n = in[0]->numel();
    float lo = 0, hi = 0;
    for (int64_t i = 0; i < n; ++i) {
      lo = std::min(lo, x[i]);
      hi = std::max(hi, x[i]);
    }
    const float scale = (hi - lo) / 255.0f;
    float zp = scale > 0 ? std::clamp(std::nearbyint(-lo / scale), 0.0f, 255.0f) : 0.0f;
    if (std::isnan(zp)) zp = 0;  // an infinite range
    uint8_t* y = out[0]->data<uint8_t>();
    for (int64_t i = 0; i < n; ++i) {
      // max(0, v) puts a NaN at 0 (no undefined conversion).
      y[i] = scale > 0 ? static_cast<uint8_t>(std::min(255.0f, std::max(0.0f, std::nearbyint(x[i] / scale) + zp)))
                       : static_cast<uint8_t>(zp);
    }
    if (out.size() > 1 && out[1] != nullptr) out[1]->data<float>()[0] = scale;
    if (out.size() > 2 && out[2] != nullptr) out[2]->data<uint8_t>()[0] = static_cast<uint8_t>(zp);
  }
};

}  // namespace

std::unique_ptr<OpKernel> MakeQuantizeLinear(const Node& n) { return std::make_unique<QuantizeLinear>(n); }
std::unique_ptr<OpKernel> MakeDequantizeLinear(const Node& n) {
  return std::make_unique<DequantizeLinear>(n);
}
std::unique_ptr<OpKernel> MakeDynamicQuantizeLinear(const Node& n) {
  return std::make_unique<DynamicQuantizeLinear>(n);
}

}  // namespace lowbit
