// Reductions over axes: ReduceMean, ReduceMax, ReduceMin, ReduceSum,
// ReduceL2 (axes as an attribute, or as an input from ReduceSum-13 and the
// others' opset 18), ArgMax; and the normalizations that reduce per group:
// LayerNormalization (opset 17) and InstanceNormalization.
#include <algorithm>
#include <cmath>
#include <limits>

#include "runtime/op.h"

namespace lowbit {
namespace {

enum class Red { kMean, kMax, kMin, kSum, kL2 };

// The axes to reduce (sorted, normalized) from the attribute or input form;
// empty `axes` reduces every axis unless noop_with_empty_axes.
Result<std::vector<bool>> ReducedAxes(const OpKernel& k, const std::vector<TensorInfo>& in, int rank,
                                      bool input_form, bool* noop) {
  const Node& n = k.node();
  const std::string where = n.Describe() + ": ";
  std::vector<int64_t> axes;
  if (input_form) {
    if (in.size() > 1 && in[1].present) {
      LOWBIT_ASSIGN_OR_RETURN(axes, ConstInts(k, in[1], "axes"));
    }
  } else {
    axes = n.GetInts("axes");
  }
  *noop = axes.empty() && n.GetInt("noop_with_empty_axes", 0) != 0;
  std::vector<bool> reduce(rank, axes.empty());
  for (int64_t a : axes) {
    int d;
    LOWBIT_ASSIGN_OR_RETURN(d, NormalizeAxis(a, rank, where));
    if (reduce[d]) return InvalidArgument(where, "axis ", a, " repeats");
    reduce[d] = true;
  }
  return reduce;
}

class Reduce final : public OpKernel {
 public:
  Reduce(const Node& n, Red op) : OpKernel(n), op_(op) {}
  Status Prepare(const std::vector<TensorInfo>& in, std::vector<TensorInfo>* out) override {
    if (in.empty() || !in[0].present) return InvalidArgument(Where(), "missing input");
    const bool int_ok = op_ == Red::kMax || op_ == Red::kMin || op_ == Red::kSum;
    if (in[0].dtype != DType::kFloat32 && !(int_ok && in[0].dtype == DType::kInt64)) {
      return Unimplemented(Where(), "element type ", DTypeName(in[0].dtype));
    }
    const Shape& x = in[0].shape;
    const int rank = static_cast<int>(x.size());
    const bool input_form = op_ == Red::kSum ? node_.opset >= 13 : node_.opset >= 18;
    bool noop = false;
    LOWBIT_ASSIGN_OR_RETURN(reduce_, ReducedAxes(*this, in, rank, input_form, &noop));
    if (noop) reduce_.assign(rank, false);
    const bool keep = node_.GetInt("keepdims", 1) != 0;
    Shape y;
    for (int d = 0; d < rank; ++d) {
      if (!reduce_[d]) y.push_back(x[d]);
      else if (keep) y.push_back(1);
    }
    if (NumElements(x) == 0 && (op_ == Red::kMax || op_ == Red::kMin)) {
      return InvalidArgument(Where(), "cannot take the max or min of an empty tensor");
    }
    (*out)[0] = TensorInfo{true, in[0].dtype, y, nullptr};
    return OkStatus();
  }
  void Run(const std::vector<const Tensor*>& in, const std::vector<Tensor*>& out, const ExecContext&) override {
    const Tensor& xt = *in[0];
    const Shape& x = xt.shape();
    const int rank = static_cast<int>(x.size());
    // Output strides over the input's dims (0 on reduced ones).
    std::vector<int64_t> ost(rank, 0);
    int64_t acc = 1;
    for (int d = rank - 1; d >= 0; --d) {
      if (!reduce_[d]) {
        ost[d] = acc;
        acc *= x[d];
      }
    }
    const int64_t ny = out[0]->numel();
    std::vector<double> a(ny, op_ == Red::kMax ? -INFINITY : op_ == Red::kMin ? INFINITY : 0.0);
    const int64_t n = xt.numel();
    const bool f32 = xt.dtype() == DType::kFloat32;
    std::vector<int64_t> idx(rank, 0);
    int64_t o = 0;
    for (int64_t i = 0; i < n; ++i) {
      const double v = f32 ? xt.data<float>()[i] : static_cast<double>(xt.data<int64_t>()[i]);
      switch (op_) {
        case Red::kMax: a[o] = std::isnan(v) ? v : std::max(a[o], v); break;
        case Red::kMin: a[o] = std::isnan(v) ? v : std::min(a[o], v); break;
        case Red::kL2: a[o] += v * v; break;
        default: a[o] += v; break;
      }
      for (int d = rank - 1; d >= 0; --d) {
        o += ost[d];
        if (++idx[d] < x[d]) break;
        o -= ost[d] * x[d];
        idx[d] = 0;
      }
    }
    const double count = static_cast<double>(n) / std::max<double>(1.0, static_cast<double>(ny));
    for (int64_t j = 0; j < ny; ++j) {
      double v = a[j];
      if (op_ == Red::kMean) v /= count;
      if (op_ == Red::kL2) v = std::sqrt(v);
      if (f32) out[0]->data<float>()[j] = static_cast<float>(v);
      else out[0]->data<int64_t>()[j] = SaturateCast<int64_t>(v);
    }
  }

 private:
  Red op_;
  std::vector<bool> reduce_;
};

class ArgMax final : public OpKernel {
 public:
  using OpKernel::OpKernel;
  Status Prepare(const std::vector<TensorInfo>& in, std::vector<TensorInfo>* out) override {
    LOWBIT_RETURN_IF_ERROR(ExpectFloat(*this, in[0], "input"));
    const Shape& x = in[0].shape;
    LOWBIT_ASSIGN_OR_RETURN(axis_, NormalizeAxis(node_.GetInt("axis", 0), static_cast<int>(x.size()), Where()));
    if (x[axis_] == 0) return InvalidArgument(Where(), "axis ", axis_, " is empty");
    last_ = node_.GetInt("select_last_index", 0) != 0;
    Shape y = x;
    if (node_.GetInt("keepdims", 1) != 0) y[axis_] = 1;
    else y.erase(y.begin() + axis_);
    (*out)[0] = TensorInfo{true, DType::kInt64, y, nullptr};
    return OkStatus();
  }
  void Run(const std::vector<const Tensor*>& in, const std::vector<Tensor*>& out, const ExecContext&) override {
    const Shape& x = in[0]->shape();
    const int64_t outer = NumElements(Shape(x.begin(), x.begin() + axis_));
    const int64_t inner = NumElements(Shape(x.begin() + axis_ + 1, x.end()));
    const int64_t n = x[axis_];
    const float* p = in[0]->data<float>();
    int64_t* y = out[0]->data<int64_t>();
    for (int64_t o = 0; o < outer; ++o) {
      for (int64_t i = 0; i < inner; ++i) {
        int64_t best = 0;
        float bv = p[o * n * inner + i];
        for (int64_t k = 1; k < n; ++k) {
          const float v = p[(o * n + k) * inner + i];
          if (v > bv || (last_ && v == bv)) {
            bv = v;
            best = k;
          }
        }
        y[o * inner + i] = best;
      }
    }
  }

 private:
  int axis_ = 0;
  bool last_ = false;
};

// LayerNormalization: normalize over axes [axis, rank) and apply scale and
// bias (broadcast over those axes). InstanceNormalization: per (n, c) over
// the spatial axes, scale and bias per channel.
class Norm final : public OpKernel {
 public:
  Norm(const Node& n, bool instance) : OpKernel(n), instance_(instance) {}
  Status Prepare(const std::vector<TensorInfo>& in, std::vector<TensorInfo>* out) override {
    if (in.size() < (instance_ ? 3u : 2u) || !in[1].present || (instance_ && !in[2].present)) {
      return InvalidArgument(Where(), instance_ ? "expects input, scale and B" : "expects X and Scale");
    }
    for (const TensorInfo& t : in) {
      if (t.present) LOWBIT_RETURN_IF_ERROR(ExpectFloat(*this, t, "input"));
    }
    const Shape& x = in[0].shape;
    const int rank = static_cast<int>(x.size());
    eps_ = node_.GetFloat("epsilon", 1e-5f);
    if (instance_) {
      if (rank < 3) return InvalidArgument(Where(), "input ", ShapeToString(x), " needs rank >= 3");
      if (in[1].shape != Shape{x[1]} || in[2].shape != Shape{x[1]}) {
        return InvalidArgument(Where(), "scale and B must be [", x[1], "]");
      }
      outer_ = x[0] * x[1];
      inner_ = NumElements(Shape(x.begin() + 2, x.end()));
    } else {
      int axis;
      LOWBIT_ASSIGN_OR_RETURN(axis, NormalizeAxis(node_.GetInt("axis", -1), rank, Where()));
      if (node_.GetInt("stash_type", 1) != 1) return Unimplemented(Where(), "stash_type other than float");
      const Shape norm(x.begin() + axis, x.end());
      inner_ = NumElements(norm);
      outer_ = NumElements(Shape(x.begin(), x.begin() + axis));
      for (int i = 1; i < 3 && i < static_cast<int>(in.size()); ++i) {
        if (!in[i].present) continue;
        Shape b;
        LOWBIT_ASSIGN_OR_RETURN(b, BroadcastShapes(norm, in[i].shape, Where()));
        if (b != norm) return InvalidArgument(Where(), "scale/B ", ShapeToString(in[i].shape), " do not broadcast to ", ShapeToString(norm));
        if (NumElements(in[i].shape) != inner_ && NumElements(in[i].shape) != 1) {
          return Unimplemented(Where(), "scale/B ", ShapeToString(in[i].shape), " broadcast partially over ", ShapeToString(norm));
        }
      }
      // Optional Mean and InvStdDev: x's shape with the normalized axes 1.
      Shape stat = x;
      for (int d = axis; d < rank; ++d) stat[d] = 1;
      for (size_t i = 1; i < out->size() && i < 3; ++i) (*out)[i] = TensorInfo{true, DType::kFloat32, stat, nullptr};
    }
    (*out)[0] = TensorInfo{true, DType::kFloat32, x, nullptr};
    return OkStatus();
  }
  void Run(const std::vector<const Tensor*>& in, const std::vector<Tensor*>& out, const ExecContext& ctx) override {
    const float* x = in[0]->data<float>();
    float* y = out[0]->data<float>();
    const Tensor* scale = in[1];
    const Tensor* bias = in.size() > 2 ? in[2] : nullptr;
    const int64_t inner = inner_, channels = instance_ ? in[0]->shape()[1] : 1;
    ctx.pool->ParallelFor(outer_, [&](int64_t s, int64_t e) {
      for (int64_t o = s; o < e; ++o) {
        const float* row = x + o * inner;
        double mean = 0, var = 0;
        for (int64_t i = 0; i < inner; ++i) mean += row[i];
        mean /= static_cast<double>(std::max<int64_t>(inner, 1));
        for (int64_t i = 0; i < inner; ++i) var += (row[i] - mean) * (row[i] - mean);
        var /= static_cast<double>(std::max<int64_t>(inner, 1));
        const float inv = static_cast<float>(1.0 / std::sqrt(var + eps_));
        if (!instance_ && out.size() > 1 && out[1] != nullptr) out[1]->data<float>()[o] = static_cast<float>(mean);
        if (!instance_ && out.size() > 2 && out[2] != nullptr) out[2]->data<float>()[o] = inv;
        for (int64_t i = 0; i < inner; ++i) {
          const int64_t si = instance_ ? o % channels : (scale->numel() == 1 ? 0 : i);
          const float g = scale->data<float>()[si];
          const float b = bias == nullptr ? 0.0f
                                          : bias->data<float>()[instance_ ? si : (bias->numel() == 1 ? 0 : i)];
          y[o * inner + i] = (row[i] - static_cast<float>(mean)) * inv * g + b;
        }
      }
    });
  }

 private:
  bool instance_;
  float eps_ = 1e-5f;
  int64_t outer_ = 0, inner_ = 0;
};

}  // namespace

std::unique_ptr<OpKernel> MakeReduceMean(const Node& n) { return std::make_unique<Reduce>(n, Red::kMean); }
std::unique_ptr<OpKernel> MakeReduceMax(const Node& n) { return std::make_unique<Reduce>(n, Red::kMax); }
std::unique_ptr<OpKernel> MakeReduceMin(const Node& n) { return std::make_unique<Reduce>(n, Red::kMin); }
std::unique_ptr<OpKernel> MakeReduceSum(const Node& n) { return std::make_unique<Reduce>(n, Red::kSum); }
std::unique_ptr<OpKernel> MakeReduceL2(const Node& n) { return std::make_unique<Reduce>(n, Red::kL2); }
std::unique_ptr<OpKernel> MakeArgMax(const Node& n) { return std::make_unique<ArgMax>(n); }
std::unique_ptr<OpKernel> MakeLayerNormalization(const Node& n) { return std::make_unique<Norm>(n, false); }
std::unique_ptr<OpKernel> MakeInstanceNormalization(const Node& n) { return std::make_unique<Norm>(n, true); }

}  // namespace lowbit
