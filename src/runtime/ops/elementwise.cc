// Elementwise operators: Add, Sub, Mul, Div with numpy broadcasting (float32,
// and int64 for shape arithmetic), and the unary activations.
#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>

#include "runtime/byte_edges.h"
#include "runtime/op.h"

namespace lowbit {
namespace {

enum class BinOp { kAdd, kSub, kMul, kDiv };

template <typename T>
T Apply(BinOp op, T a, T b) {
  if constexpr (std::is_integral_v<T>) {
    // Shape arithmetic from a file: overflow wraps (two's complement, as
    // ONNX Runtime's does) instead of being undefined.
    using U = std::make_unsigned_t<T>;
    switch (op) {
      case BinOp::kAdd: return static_cast<T>(static_cast<U>(a) + static_cast<U>(b));
      case BinOp::kSub: return static_cast<T>(static_cast<U>(a) - static_cast<U>(b));
      case BinOp::kMul: return static_cast<T>(static_cast<U>(a) * static_cast<U>(b));
      case BinOp::kDiv:
        if (b == 0) return 0;
        if (b == -1) return static_cast<T>(U{0} - static_cast<U>(a));
        return a / b;
    }
    return a;
  } else {
    switch (op) {
      case BinOp::kAdd: return a + b;
      case BinOp::kSub: return a - b;
      case BinOp::kMul: return a * b;
      case BinOp::kDiv: return a / b;
    }
    return a;
  }
}

class Binary final : public OpKernel {
 public:
  Binary(const Node& n, BinOp op) : OpKernel(n), op_(op) {}

  Status Prepare(const std::vector<TensorInfo>& in, std::vector<TensorInfo>* out) override {
    if (in.size() != 2 || !in[0].present || !in[1].present) {
      return InvalidArgument(Where(), "expects 2 inputs");
    }
    if (in[0].dtype != in[1].dtype) {
      return InvalidArgument(Where(), "input types differ (", DTypeName(in[0].dtype), " and ",
                             DTypeName(in[1].dtype), ")");
    }
    if (in[0].dtype != DType::kFloat32 && in[0].dtype != DType::kInt64) {
      return Unimplemented(Where(), "element type ", DTypeName(in[0].dtype),
                           " is not supported (float32, int64)");
    }
    Shape b = in[1].shape;
    if (node_.opset < 7) {
      // Legacy broadcasting: B broadcasts onto A only when broadcast = 1, and
      // `axis` says where B's dims start within A's.
      if (node_.GetInt("broadcast", 0) == 0) {
        if (in[0].shape != b) {
          return InvalidArgument(Where(), "shapes ", ShapeToString(in[0].shape), " and ",
                                 ShapeToString(b), " differ and broadcast = 0");
        }
      } else if (node_.Has("axis")) {
        const int64_t rank = static_cast<int64_t>(in[0].shape.size());
        int64_t axis = node_.GetInt("axis", 0);
        if (axis < 0) axis += rank;
        if (axis < 0 || axis + static_cast<int64_t>(b.size()) > rank) {
          return InvalidArgument(Where(), "axis ", node_.GetInt("axis", 0), " does not place ",
                                 ShapeToString(b), " within ", ShapeToString(in[0].shape));
        }
        b.resize(static_cast<size_t>(rank - axis), 1);
      }
    }
    Shape shape;
    LOWBIT_ASSIGN_OR_RETURN(shape, BroadcastShapes(in[0].shape, b, Where()));
    if (node_.opset < 7 && shape != in[0].shape) {
      return InvalidArgument(Where(), "legacy broadcast cannot grow A ", ShapeToString(in[0].shape));
    }
    (*out)[0] = TensorInfo{true, in[0].dtype, shape, nullptr};
    sa_ = BroadcastStrides(in[0].shape, shape);
    sb_ = BroadcastStrides(b, shape);
    same_ = in[0].shape == b;
    return OkStatus();
  }

  void Run(const std::vector<const Tensor*>& in, const std::vector<Tensor*>& out,
           const ExecContext& ctx) override {
    if (in[0]->dtype() == DType::kFloat32) {
      RunTyped<float>(*in[0], *in[1], out[0], ctx);
    } else {
      RunTyped<int64_t>(*in[0], *in[1], out[0], ctx);
    }
  }

 private:
  template <typename T>
  void RunTyped(const Tensor& a, const Tensor& b, Tensor* y, const ExecContext& ctx) {
    const T* pa = a.data<T>();
    const T* pb = b.data<T>();
    T* py = y->data<T>();
    const int64_t n = y->numel();
    if (same_) {
      ctx.pool->ParallelFor(n, [&](int64_t s, int64_t e) {
        for (int64_t i = s; i < e; ++i) py[i] = Apply(op_, pa[i], pb[i]);
      });
      return;
    }
    const Shape& shape = y->shape();
    const int r = static_cast<int>(shape.size());
    const int64_t inner = r ? shape[r - 1] : 1;
    const int64_t ia = r ? sa_[r - 1] : 0, ib = r ? sb_[r - 1] : 0;
    const int64_t rows = inner ? n / inner : 0;
    ctx.pool->ParallelFor(rows, [&](int64_t s, int64_t e) {
      for (int64_t row = s; row < e; ++row) {
        // Offsets of this row in a and b from its multi-index.
        int64_t rem = row, oa = 0, ob = 0;
        for (int d = r - 2; d >= 0; --d) {
          const int64_t idx = rem % shape[d];
          rem /= shape[d];
          oa += idx * sa_[d];
          ob += idx * sb_[d];
        }
        T* dst = py + row * inner;
        for (int64_t i = 0; i < inner; ++i) dst[i] = Apply(op_, pa[oa + i * ia], pb[ob + i * ib]);
      }
    });
  }

  BinOp op_;
  std::vector<int64_t> sa_, sb_;
  bool same_ = false;
};

enum class UnOp { kRelu, kSigmoid, kTanh, kLeakyRelu, kClip, kIdentity };

class Unary final : public OpKernel {
 public:
  Unary(const Node& n, UnOp op) : OpKernel(n), op_(op) {}

  Status Prepare(const std::vector<TensorInfo>& in, std::vector<TensorInfo>* out) override {
    if (in.empty() || !in[0].present) return InvalidArgument(Where(), "missing input");
    if (op_ == UnOp::kClip || op_ == UnOp::kRelu) {
      LOWBIT_ASSIGN_OR_RETURN(bytes_, BytePassThroughInputs(node_, in, {0}));
      if (bytes_) return PrepareBytes(in, out);
    }
    if (op_ != UnOp::kIdentity) LOWBIT_RETURN_IF_ERROR(ExpectFloat(*this, in[0], "input"));
    if (op_ == UnOp::kLeakyRelu) alpha_ = node_.GetFloat("alpha", 0.01f);
    if (op_ == UnOp::kClip) {
      lo_ = -std::numeric_limits<float>::infinity();
      hi_ = std::numeric_limits<float>::infinity();
      if (node_.opset < 11) {
        lo_ = node_.GetFloat("min", lo_);
        hi_ = node_.GetFloat("max", hi_);
      } else {
        // min / max are scalar inputs, read when the kernel runs.
        for (size_t i = 1; i < 3 && i < in.size(); ++i) {
          if (!in[i].present) continue;
          if (NumElements(in[i].shape) != 1 || in[i].dtype != DType::kFloat32) {
            return InvalidArgument(Where(), "min/max must be float32 scalars, got ",
                                   DTypeName(in[i].dtype), " ", ShapeToString(in[i].shape));
          }
        }
      }
    }
    (*out)[0] = TensorInfo{true, in[0].dtype, in[0].shape, nullptr};
    for (size_t i = 1; i < out->size(); ++i) {
      // Dropout's optional mask: all true at inference.
      (*out)[i] = TensorInfo{true, DType::kBool, in[0].shape, nullptr};
    }
    return OkStatus();
  }

  void Run(const std::vector<const Tensor*>& in, const std::vector<Tensor*>& out,
           const ExecContext& ctx) override {
    if (op_ == UnOp::kIdentity) {
      std::copy_n(static_cast<const uint8_t*>(in[0]->raw()), in[0]->bytes(),
                  static_cast<uint8_t*>(out[0]->raw()));
      for (size_t i = 1; i < out.size(); ++i) {
        std::fill_n(out[i]->data<uint8_t>(), out[i]->numel(), uint8_t{1});
      }
      return;
    }
    if (bytes_) {
      const uint8_t* x = in[0]->data<uint8_t>();
      uint8_t* y = out[0]->data<uint8_t>();
      ctx.pool->ParallelFor(in[0]->numel(), [&](int64_t s, int64_t e) {
        for (int64_t i = s; i < e; ++i) y[i] = std::min(std::max(x[i], byte_lo_), byte_hi_);
      });
      return;
    }
    const float* x = in[0]->data<float>();
    float* y = out[0]->data<float>();
    if (op_ == UnOp::kClip && node_.opset >= 11) {
      lo_ = in.size() > 1 && in[1] != nullptr ? in[1]->data<float>()[0] : -INFINITY;
      hi_ = in.size() > 2 && in[2] != nullptr ? in[2]->data<float>()[0] : INFINITY;
    }
    ctx.pool->ParallelFor(in[0]->numel(), [&](int64_t s, int64_t e) {
      switch (op_) {
        case UnOp::kRelu:
          for (int64_t i = s; i < e; ++i) y[i] = x[i] > 0 ? x[i] : 0.0f;
          break;
        case UnOp::kSigmoid:
          for (int64_t i = s; i < e; ++i) y[i] = 1.0f / (1.0f + std::exp(-x[i]));
          break;
        case UnOp::kTanh:
          for (int64_t i = s; i < e; ++i) y[i] = std::tanh(x[i]);
          break;
        case UnOp::kLeakyRelu:
          for (int64_t i = s; i < e; ++i) y[i] = x[i] >= 0 ? x[i] : alpha_ * x[i];
          break;
        case UnOp::kClip:
          for (int64_t i = s; i < e; ++i) y[i] = std::min(std::max(x[i], lo_), hi_);
          break;
        case UnOp::kIdentity: break;
      }
    });
  }

 private:
  // Byte edges (runtime/byte_edges.h): Clip and Relu on 8-bit pixels clamp
  // them to the quantized bounds, which equals quantizing the clamped value
  // (quantization is monotonic).
  Status PrepareBytes(const std::vector<TensorInfo>& in, std::vector<TensorInfo>* out) {
    float lo = op_ == UnOp::kRelu ? 0.0f : -INFINITY, hi = INFINITY;
    if (op_ == UnOp::kClip && node_.opset < 11) {
      lo = node_.GetFloat("min", lo);
      hi = node_.GetFloat("max", hi);
    } else if (op_ == UnOp::kClip) {
      for (size_t i = 1; i < 3 && i < in.size(); ++i) {
        if (!in[i].present) continue;
        if (in[i].constant == nullptr || in[i].dtype != DType::kFloat32 || in[i].constant->numel() != 1) {
          return InvalidArgument(Where(), "min/max of 8-bit pixels must be float32 scalar constants");
        }
        (i == 1 ? lo : hi) = in[i].constant->data<float>()[0];
      }
    }
    // A NaN bound clamps nothing in fp32 (std::max(x, NaN) is x).
    if (std::isnan(lo)) lo = -INFINITY;
    if (std::isnan(hi)) hi = INFINITY;
    ByteOutput o;
    LOWBIT_ASSIGN_OR_RETURN(o, ByteEdgeOutput(node_));
    byte_lo_ = lo == -INFINITY ? 0 : ToByte(lo, o);
    byte_hi_ = hi == INFINITY ? 255 : ToByte(hi, o);
    (*out)[0] = TensorInfo{true, DType::kUint8, in[0].shape, nullptr};
    for (size_t i = 1; i < out->size(); ++i) (*out)[i] = TensorInfo{true, DType::kBool, in[0].shape, nullptr};
    return OkStatus();
  }

  UnOp op_;
  float alpha_ = 0, lo_ = 0, hi_ = 0;
  bool bytes_ = false;
  uint8_t byte_lo_ = 0, byte_hi_ = 255;
};

class Dropout final : public OpKernel {
 public:
  using OpKernel::OpKernel;
  Status Prepare(const std::vector<TensorInfo>& in, std::vector<TensorInfo>* out) override {
    if (node_.GetInt("is_test", 1) == 0 && node_.opset < 7) {
      return Unimplemented(Where(), "training mode");
    }
    if (in.size() > 2 && in[2].present &&
        (in[2].constant == nullptr || in[2].constant->ToInt64().at(0) != 0)) {
      return Unimplemented(Where(), "training_mode must be a constant false at inference");
    }
    inner_ = std::make_unique<Unary>(node_, UnOp::kIdentity);
    return inner_->Prepare({in[0]}, out);
  }
  void Run(const std::vector<const Tensor*>& in, const std::vector<Tensor*>& out,
           const ExecContext& ctx) override {
    inner_->Run(in, out, ctx);
  }

 private:
  std::unique_ptr<Unary> inner_;
};

}  // namespace

std::unique_ptr<OpKernel> MakeAdd(const Node& n) { return std::make_unique<Binary>(n, BinOp::kAdd); }
std::unique_ptr<OpKernel> MakeSub(const Node& n) { return std::make_unique<Binary>(n, BinOp::kSub); }
std::unique_ptr<OpKernel> MakeMul(const Node& n) { return std::make_unique<Binary>(n, BinOp::kMul); }
std::unique_ptr<OpKernel> MakeDiv(const Node& n) { return std::make_unique<Binary>(n, BinOp::kDiv); }
std::unique_ptr<OpKernel> MakeRelu(const Node& n) { return std::make_unique<Unary>(n, UnOp::kRelu); }
std::unique_ptr<OpKernel> MakeSigmoid(const Node& n) {
  return std::make_unique<Unary>(n, UnOp::kSigmoid);
}
std::unique_ptr<OpKernel> MakeTanh(const Node& n) { return std::make_unique<Unary>(n, UnOp::kTanh); }
std::unique_ptr<OpKernel> MakeLeakyRelu(const Node& n) {
  return std::make_unique<Unary>(n, UnOp::kLeakyRelu);
}
std::unique_ptr<OpKernel> MakeClip(const Node& n) { return std::make_unique<Unary>(n, UnOp::kClip); }
std::unique_ptr<OpKernel> MakeIdentity(const Node& n) {
  return std::make_unique<Unary>(n, UnOp::kIdentity);
}
std::unique_ptr<OpKernel> MakeDropout(const Node& n) { return std::make_unique<Dropout>(n); }

}  // namespace lowbit
