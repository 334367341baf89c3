// Elementwise math beyond the four arithmetic operators: unary functions and
// activations (Sqrt ... Gelu, float32), n-ary broadcasting operators (Pow,
// Max, Min, PRelu, Where, comparisons, Not) and Cast. Comparisons, Max, Min,
// Where and Cast take int64 too, so exporters' shape arithmetic folds at
// plan time.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "runtime/byte_edges.h"
#include "runtime/op.h"

namespace lowbit {
namespace {

// ---- Unary functions and activations (float32) ----

enum class Fn {
  kSqrt, kExp, kLog, kAbs, kNeg, kReciprocal, kErf, kFloor, kCeil, kRound, kSoftplus,
  kHardSigmoid, kHardSwish, kElu, kSelu, kMish, kGelu, kGeluTanh
};

class UnaryMath final : public OpKernel {
 public:
  UnaryMath(const Node& n, Fn fn) : OpKernel(n), fn_(fn) {}

  Status Prepare(const std::vector<TensorInfo>& in, std::vector<TensorInfo>* out) override {
    if (in.empty() || !in[0].present) return InvalidArgument(Where(), "missing input");
    LOWBIT_RETURN_IF_ERROR(ExpectFloat(*this, in[0], "input"));
    switch (fn_) {
      case Fn::kHardSigmoid:
        a_ = node_.GetFloat("alpha", 0.2f);
        b_ = node_.GetFloat("beta", 0.5f);
        break;
      case Fn::kElu: a_ = node_.GetFloat("alpha", 1.0f); break;
      case Fn::kSelu:
        a_ = node_.GetFloat("alpha", 1.67326319217681884765625f);
        b_ = node_.GetFloat("gamma", 1.05070102214813232421875f);
        break;
      case Fn::kGelu: {
        const std::string approx = node_.GetString("approximate", "none");
        if (approx == "tanh") {
          fn_ = Fn::kGeluTanh;
        } else if (approx != "none") {
          return InvalidArgument(Where(), "approximate '", approx, "' (none or tanh)");
        }
        break;
      }
      default: break;
    }
    (*out)[0] = TensorInfo{true, DType::kFloat32, in[0].shape, nullptr};
    return OkStatus();
  }

  void Run(const std::vector<const Tensor*>& in, const std::vector<Tensor*>& out,
           const ExecContext& ctx) override {
    const float* x = in[0]->data<float>();
    float* y = out[0]->data<float>();
    const Fn fn = fn_;
    const float a = a_, b = b_;
    ctx.pool->ParallelFor(in[0]->numel(), [&](int64_t s, int64_t e) {
      for (int64_t i = s; i < e; ++i) y[i] = Apply(fn, x[i], a, b);
    });
  }

 private:
  static float Softplus(float v) {
    // log(1 + e^v) without overflow for large v.
    return v > 20.0f ? v : std::log1p(std::exp(v));
  }
  static float Apply(Fn fn, float v, float a, float b) {
    switch (fn) {
      case Fn::kSqrt: return std::sqrt(v);
      case Fn::kExp: return std::exp(v);
      case Fn::kLog: return std::log(v);
      case Fn::kAbs: return std::fabs(v);
      case Fn::kNeg: return -v;
      case Fn::kReciprocal: return 1.0f / v;
      case Fn::kErf: return std::erf(v);
      case Fn::kFloor: return std::floor(v);
      case Fn::kCeil: return std::ceil(v);
      case Fn::kRound: return std::nearbyint(v);  // halves to even (default rounding mode)
      case Fn::kSoftplus: return Softplus(v);
      case Fn::kHardSigmoid: return std::max(0.0f, std::min(1.0f, a * v + b));
      case Fn::kHardSwish: return v * std::max(0.0f, std::min(1.0f, v / 6.0f + 0.5f));
      case Fn::kElu: return v < 0 ? a * (std::exp(v) - 1.0f) : v;
      case Fn::kSelu: return v > 0 ? b * v : b * (a * std::exp(v) - a);
      case Fn::kMish: return v * std::tanh(Softplus(v));
      case Fn::kGelu: return 0.5f * v * (1.0f + std::erf(v * 0.70710678118654752f));
      case Fn::kGeluTanh: {
        const float k = 0.79788456080286536f;  // sqrt(2 / pi)
        return 0.5f * v * (1.0f + std::tanh(k * (v + 0.044715f * v * v * v)));
      }
    }
    return v;
  }

  Fn fn_;
  float a_ = 0, b_ = 0;
};

// ---- Broadcasting n-ary operators ----

enum class Nary { kPow, kMax, kMin, kPRelu, kWhere, kEqual, kLess, kGreater, kLessOrEqual, kGreaterOrEqual, kNot };

bool IsNumeric(DType t) { return t != DType::kBool; }

double Load(const Tensor& t, int64_t i) {
  switch (t.dtype()) {
    case DType::kFloat32: return t.data<float>()[i];
    case DType::kInt64: return static_cast<double>(t.data<int64_t>()[i]);
    case DType::kInt32: return t.data<int32_t>()[i];
    case DType::kBool: case DType::kUint8: return t.data<uint8_t>()[i];
    case DType::kInt8: return t.data<int8_t>()[i];
    case DType::kFloat64: return t.data<double>()[i];
  }
  return 0;
}

class NaryOp final : public OpKernel {
 public:
  NaryOp(const Node& n, Nary op) : OpKernel(n), op_(op) {}

  Status Prepare(const std::vector<TensorInfo>& in, std::vector<TensorInfo>* out) override {
    const size_t want = op_ == Nary::kNot ? 1 : op_ == Nary::kWhere ? 3 : 2;
    const bool variadic = op_ == Nary::kMax || op_ == Nary::kMin;
    if ((variadic && in.empty()) || (!variadic && in.size() != want)) {
      return InvalidArgument(Where(), "expects ", variadic ? "1 or more" : std::to_string(want), " inputs, got ",
                             in.size());
    }
    for (const TensorInfo& t : in) {
      if (!t.present) return InvalidArgument(Where(), "an input is missing");
    }
    if (variadic) {
      // Byte edges (runtime/byte_edges.h): Max/Min of 8-bit [N, spatial...,
      // C] pixels that share their quantization is the quantized Max/Min.
      // Inputs of one rank broadcast the same way in either axis order.
      std::vector<size_t> all(in.size());
      for (size_t i = 0; i < all.size(); ++i) all[i] = i;
      bool bytes = false;
      LOWBIT_ASSIGN_OR_RETURN(bytes, BytePassThroughInputs(node_, in, all));
      for (const TensorInfo& t : in) {
        if (bytes && t.shape.size() != in[0].shape.size()) {
          return InvalidArgument(Where(), "8-bit pixel inputs of ranks ", in[0].shape.size(), " and ",
                                 t.shape.size());
        }
      }
    }
    // Element types: the data inputs numeric and alike (Pow's exponent may
    // differ), Where's condition and Not's input bool.
    const size_t first_data = op_ == Nary::kWhere ? 1 : 0;
    if (op_ == Nary::kWhere && in[0].dtype != DType::kBool) {
      return InvalidArgument(Where(), "condition must be bool, got ", DTypeName(in[0].dtype));
    }
    if (op_ == Nary::kNot) {
      if (in[0].dtype != DType::kBool) return InvalidArgument(Where(), "input must be bool, got ", DTypeName(in[0].dtype));
    } else {
      data_type_ = in[first_data].dtype;
      const bool bool_equal = op_ == Nary::kEqual && data_type_ == DType::kBool;
      if (!IsNumeric(data_type_) && !bool_equal) {
        return Unimplemented(Where(), "element type ", DTypeName(data_type_), " (numeric types)");
      }
      for (size_t i = first_data + 1; i < in.size(); ++i) {
        const bool exponent = op_ == Nary::kPow;
        if (in[i].dtype != data_type_ && !(exponent && IsNumeric(in[i].dtype))) {
          return InvalidArgument(Where(), "input types differ (", DTypeName(data_type_), " and ",
                                 DTypeName(in[i].dtype), ")");
        }
      }
      if (op_ == Nary::kPRelu && data_type_ != DType::kFloat32) {
        return Unimplemented(Where(), "element type ", DTypeName(data_type_), " (float32)");
      }
    }
    Shape shape = in[0].shape;
    for (size_t i = 1; i < in.size(); ++i) {
      LOWBIT_ASSIGN_OR_RETURN(shape, BroadcastShapes(shape, in[i].shape, Where()));
    }
    if (op_ == Nary::kPRelu && shape != in[0].shape) {
      return InvalidArgument(Where(), "slope ", ShapeToString(in[1].shape), " does not broadcast to X ",
                             ShapeToString(in[0].shape));
    }
    strides_.clear();
    for (const TensorInfo& t : in) strides_.push_back(BroadcastStrides(t.shape, shape));
    const bool compare = op_ >= Nary::kEqual;
    const DType y = compare ? DType::kBool : data_type_;
    (*out)[0] = TensorInfo{true, y, shape, nullptr};
    return OkStatus();
  }

  void Run(const std::vector<const Tensor*>& in, const std::vector<Tensor*>& out,
           const ExecContext& ctx) override {
    Tensor* y = out[0];
    const Shape& shape = y->shape();
    const int r = static_cast<int>(shape.size());
    const int64_t n = y->numel();
    const int64_t inner = r ? shape[r - 1] : 1;
    const int64_t rows = inner ? n / inner : 0;
    const size_t k = in.size();
    const bool float2 = k == 2 && op_ != Nary::kWhere && op_ != Nary::kNot &&
                        in[0]->dtype() == DType::kFloat32 && in[1]->dtype() == DType::kFloat32;
    ctx.pool->ParallelFor(rows, [&](int64_t s, int64_t e) {
      std::vector<int64_t> off(k), step(k);
      std::vector<double> v(k);
      for (size_t j = 0; j < k; ++j) step[j] = r ? strides_[j][r - 1] : 0;
      for (int64_t row = s; row < e; ++row) {
        int64_t rem = row;
        std::fill(off.begin(), off.end(), 0);
        for (int d = r - 2; d >= 0; --d) {
          const int64_t idx = rem % shape[d];
          rem /= shape[d];
          for (size_t j = 0; j < k; ++j) off[j] += idx * strides_[j][d];
        }
        if (float2) {
          // Two float32 inputs (Max, Min, Pow, PRelu, comparisons): typed
          // loads, the operator chosen once per row.
          const float* a = in[0]->data<float>() + off[0];
          const float* b = in[1]->data<float>() + off[1];
          const int64_t sa = step[0], sb = step[1], o = row * inner;
          switch (op_) {
            case Nary::kMax: Row(inner, sa, sb, a, b, y, o, [](float p, float q) { return std::isnan(p) || std::isnan(q) ? NAN : std::max(p, q); }); break;
            case Nary::kMin: Row(inner, sa, sb, a, b, y, o, [](float p, float q) { return std::isnan(p) || std::isnan(q) ? NAN : std::min(p, q); }); break;
            case Nary::kPow: Row(inner, sa, sb, a, b, y, o, [](float p, float q) { return std::pow(p, q); }); break;
            case Nary::kPRelu: Row(inner, sa, sb, a, b, y, o, [](float p, float q) { return p < 0 ? q * p : p; }); break;
            case Nary::kEqual: RowBool(inner, sa, sb, a, b, y, o, [](float p, float q) { return p == q; }); break;
            case Nary::kLess: RowBool(inner, sa, sb, a, b, y, o, [](float p, float q) { return p < q; }); break;
            case Nary::kGreater: RowBool(inner, sa, sb, a, b, y, o, [](float p, float q) { return p > q; }); break;
            case Nary::kLessOrEqual: RowBool(inner, sa, sb, a, b, y, o, [](float p, float q) { return p <= q; }); break;
            case Nary::kGreaterOrEqual: RowBool(inner, sa, sb, a, b, y, o, [](float p, float q) { return p >= q; }); break;
            default: break;
          }
          continue;
        }
        for (int64_t i = 0; i < inner; ++i) {
          for (size_t j = 0; j < k; ++j) v[j] = Load(*in[j], off[j] + i * step[j]);
          Store(y, row * inner + i, Compute(v));
        }
      }
    });
  }

 private:
  template <typename F>
  static void Row(int64_t n, int64_t sa, int64_t sb, const float* a, const float* b, Tensor* y, int64_t o, F f) {
    float* dst = y->data<float>() + o;
    for (int64_t i = 0; i < n; ++i) dst[i] = f(a[i * sa], b[i * sb]);
  }
  template <typename F>
  static void RowBool(int64_t n, int64_t sa, int64_t sb, const float* a, const float* b, Tensor* y, int64_t o,
                      F f) {
    uint8_t* dst = y->data<uint8_t>() + o;
    for (int64_t i = 0; i < n; ++i) dst[i] = f(a[i * sa], b[i * sb]);
  }

  double Compute(const std::vector<double>& v) const {
    switch (op_) {
      case Nary::kPow:
        return data_type_ == DType::kFloat32 ? std::pow(static_cast<float>(v[0]), static_cast<float>(v[1]))
                                             : std::pow(v[0], v[1]);
      case Nary::kMax: {
        double m = v[0];
        for (double x : v) m = std::isnan(x) || std::isnan(m) ? NAN : std::max(m, x);
        return m;
      }
      case Nary::kMin: {
        double m = v[0];
        for (double x : v) m = std::isnan(x) || std::isnan(m) ? NAN : std::min(m, x);
        return m;
      }
      case Nary::kPRelu: return v[0] < 0 ? v[1] * v[0] : v[0];
      case Nary::kWhere: return v[0] != 0 ? v[1] : v[2];
      case Nary::kEqual: return v[0] == v[1];
      case Nary::kLess: return v[0] < v[1];
      case Nary::kGreater: return v[0] > v[1];
      case Nary::kLessOrEqual: return v[0] <= v[1];
      case Nary::kGreaterOrEqual: return v[0] >= v[1];
      case Nary::kNot: return v[0] == 0;
    }
    return 0;
  }

  static void Store(Tensor* y, int64_t i, double v) {
    switch (y->dtype()) {
      case DType::kFloat32: y->data<float>()[i] = static_cast<float>(v); break;
      case DType::kInt64: y->data<int64_t>()[i] = SaturateCast<int64_t>(v); break;
      case DType::kBool: y->data<uint8_t>()[i] = v != 0; break;
      case DType::kInt32: y->data<int32_t>()[i] = SaturateCast<int32_t>(v); break;
      case DType::kInt8: y->data<int8_t>()[i] = SaturateCast<int8_t>(v); break;
      case DType::kUint8: y->data<uint8_t>()[i] = SaturateCast<uint8_t>(v); break;
      case DType::kFloat64: y->data<double>()[i] = v; break;
    }
  }

  Nary op_;
  DType data_type_ = DType::kFloat32;
  std::vector<std::vector<int64_t>> strides_;
};

// ---- Cast ----

// ONNX TensorProto element types lowbit holds.
bool DTypeFromOnnx(int64_t to, DType* t) {
  switch (to) {
    case 1: *t = DType::kFloat32; return true;
    case 2: *t = DType::kUint8; return true;
    case 3: *t = DType::kInt8; return true;
    case 6: *t = DType::kInt32; return true;
    case 7: *t = DType::kInt64; return true;
    case 9: *t = DType::kBool; return true;
    case 11: *t = DType::kFloat64; return true;
    default: return false;
  }
}

class Cast final : public OpKernel {
 public:
  using OpKernel::OpKernel;
  Status Prepare(const std::vector<TensorInfo>& in, std::vector<TensorInfo>* out) override {
    if (in.empty() || !in[0].present) return InvalidArgument(Where(), "missing input");
    const int64_t to = node_.GetInt("to", 0);
    if (!DTypeFromOnnx(to, &to_)) {
      return Unimplemented(Where(), "cast to ONNX element type ", to,
                           " (float, double, int64, int32, int8, uint8 and bool are supported)");
    }
    (*out)[0] = TensorInfo{true, to_, in[0].shape, nullptr};
    return OkStatus();
  }
  void Run(const std::vector<const Tensor*>& in, const std::vector<Tensor*>& out,
           const ExecContext&) override {
    const Tensor& x = *in[0];
    Tensor* y = out[0];
    for (int64_t i = 0; i < x.numel(); ++i) {
      const double v = Load(x, i);
      switch (to_) {
        case DType::kFloat32: y->data<float>()[i] = static_cast<float>(v); break;
        case DType::kFloat64: y->data<double>()[i] = v; break;
        case DType::kBool: y->data<uint8_t>()[i] = v != 0; break;
        // Out-of-range and NaN values: saturated (ONNX leaves them undefined).
        case DType::kInt64: y->data<int64_t>()[i] = SaturateCast<int64_t>(v); break;
        case DType::kInt32: y->data<int32_t>()[i] = SaturateCast<int32_t>(v); break;
        case DType::kInt8: y->data<int8_t>()[i] = SaturateCast<int8_t>(v); break;
        case DType::kUint8: y->data<uint8_t>()[i] = SaturateCast<uint8_t>(v); break;
      }
    }
  }

 private:
  DType to_ = DType::kFloat32;
};

}  // namespace

#define LOWBIT_UNARY(Name, fn) \
  std::unique_ptr<OpKernel> Make##Name(const Node& n) { return std::make_unique<UnaryMath>(n, Fn::fn); }
LOWBIT_UNARY(Sqrt, kSqrt)
LOWBIT_UNARY(Exp, kExp)
LOWBIT_UNARY(Log, kLog)
LOWBIT_UNARY(Abs, kAbs)
LOWBIT_UNARY(Neg, kNeg)
LOWBIT_UNARY(Reciprocal, kReciprocal)
LOWBIT_UNARY(Erf, kErf)
LOWBIT_UNARY(Floor, kFloor)
LOWBIT_UNARY(Ceil, kCeil)
LOWBIT_UNARY(Round, kRound)
LOWBIT_UNARY(Softplus, kSoftplus)
LOWBIT_UNARY(HardSigmoid, kHardSigmoid)
LOWBIT_UNARY(HardSwish, kHardSwish)
LOWBIT_UNARY(Elu, kElu)
LOWBIT_UNARY(Selu, kSelu)
LOWBIT_UNARY(Mish, kMish)
LOWBIT_UNARY(Gelu, kGelu)
#undef LOWBIT_UNARY

#define LOWBIT_NARY(Name, op) \
  std::unique_ptr<OpKernel> Make##Name(const Node& n) { return std::make_unique<NaryOp>(n, Nary::op); }
LOWBIT_NARY(Pow, kPow)
LOWBIT_NARY(Max, kMax)
LOWBIT_NARY(Min, kMin)
LOWBIT_NARY(PRelu, kPRelu)
LOWBIT_NARY(Where, kWhere)
LOWBIT_NARY(Equal, kEqual)
LOWBIT_NARY(Less, kLess)
LOWBIT_NARY(Greater, kGreater)
LOWBIT_NARY(LessOrEqual, kLessOrEqual)
LOWBIT_NARY(GreaterOrEqual, kGreaterOrEqual)
LOWBIT_NARY(Not, kNot)
#undef LOWBIT_NARY

std::unique_ptr<OpKernel> MakeCast(const Node& n) { return std::make_unique<Cast>(n); }

}  // namespace lowbit
