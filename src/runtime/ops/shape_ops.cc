// Operators that move or reshape data without arithmetic: Flatten, Reshape,
// Squeeze, Unsqueeze (zero-copy aliases), Transpose, Concat, Shape, Gather.
// They work on any element type (they copy bytes), so shape arithmetic in
// int64 folds away at plan time.
#include <algorithm>
#include <cstring>
#include <numeric>

#include "runtime/byte_edges.h"
#include "runtime/op.h"

namespace lowbit {
namespace {

class Alias : public OpKernel {
 public:
  using OpKernel::OpKernel;
  bool IsAlias() const override { return true; }
  void Run(const std::vector<const Tensor*>&, const std::vector<Tensor*>&,
           const ExecContext&) override {}
};

class Flatten final : public Alias {
 public:
  using Alias::Alias;
  Status Prepare(const std::vector<TensorInfo>& in, std::vector<TensorInfo>* out) override {
    const Shape& x = in[0].shape;
    const int rank = static_cast<int>(x.size());
    int64_t axis = node_.GetInt("axis", 1);
    if (axis < -rank || axis > rank) {
      return InvalidArgument(Where(), "axis ", axis, " is out of range for rank ", rank);
    }
    if (axis < 0) axis += rank;
    const int64_t outer = NumElements(Shape(x.begin(), x.begin() + axis));
    (*out)[0] = TensorInfo{true, in[0].dtype, {outer, NumElements(x) / std::max<int64_t>(outer, 1)}, nullptr};
    if (outer == 0) (*out)[0].shape[1] = NumElements(Shape(x.begin() + axis, x.end()));
    return OkStatus();
  }
};

class Reshape final : public Alias {
 public:
  using Alias::Alias;
  Status Prepare(const std::vector<TensorInfo>& in, std::vector<TensorInfo>* out) override {
    std::vector<int64_t> spec;
    if (node_.opset < 5) {
      spec = node_.GetInts("shape");
    } else {
      if (in.size() < 2 || !in[1].present) return InvalidArgument(Where(), "missing shape input");
      LOWBIT_ASSIGN_OR_RETURN(spec, ConstInts(*this, in[1], "the shape"));
    }
    const bool allow_zero = node_.GetInt("allowzero", 0) != 0;
    const Shape& x = in[0].shape;
    Shape y(spec.size());
    int infer = -1;
    int64_t known = 1;
    for (size_t i = 0; i < spec.size(); ++i) {
      if (spec[i] == -1) {
        if (infer >= 0) return InvalidArgument(Where(), "more than one -1 in shape");
        infer = static_cast<int>(i);
        continue;
      }
      if (spec[i] == 0 && !allow_zero) {
        if (i >= x.size()) return InvalidArgument(Where(), "0 in shape copies a missing dim");
        y[i] = x[i];
      } else if (spec[i] < 0) {
        return InvalidArgument(Where(), "invalid dim ", spec[i]);
      } else {
        y[i] = spec[i];
      }
      if (__builtin_mul_overflow(known, y[i], &known)) {
        return InvalidArgument(Where(), "shape ", ShapeToString(Shape(spec.begin(), spec.end())),
                               " has more elements than an int64 holds");
      }
    }
    const int64_t total = NumElements(x);
    if (infer >= 0) {
      if (known == 0 || total % known != 0) {
        return InvalidArgument(Where(), "cannot reshape ", ShapeToString(x), " to ",
                               ShapeToString(Shape(spec.begin(), spec.end())));
      }
      y[infer] = total / known;
    }
    int64_t count = 1;
    for (int64_t d : y) {
      if (__builtin_mul_overflow(count, d, &count)) count = -1;
    }
    if (count != total) {
      return InvalidArgument(Where(), "cannot reshape ", ShapeToString(x), " (", total,
                             " elements) to ", ShapeToString(y));
    }
    (*out)[0] = TensorInfo{true, in[0].dtype, y, nullptr};
    return OkStatus();
  }
};

class SqueezeLike final : public Alias {
 public:
  SqueezeLike(const Node& n, bool squeeze) : Alias(n), squeeze_(squeeze) {}
  Status Prepare(const std::vector<TensorInfo>& in, std::vector<TensorInfo>* out) override {
    std::vector<int64_t> axes;
    if (node_.opset >= 13) {
      if (in.size() > 1 && in[1].present) {
        LOWBIT_ASSIGN_OR_RETURN(axes, ConstInts(*this, in[1], "axes"));
      }
    } else {
      axes = node_.GetInts("axes");
    }
    const Shape& x = in[0].shape;
    // Each axis once: more axes than the output can have is an error (and
    // would be a long loop over a list the file declares).
    if (axes.size() > (squeeze_ ? x.size() : size_t{64})) {
      return InvalidArgument(Where(), axes.size(), " axes for an input of rank ", x.size());
    }
    Shape y;
    if (squeeze_) {
      const int rank = static_cast<int>(x.size());
      std::vector<bool> drop(rank, axes.empty());
      for (int64_t a : axes) {
        int ax;
        LOWBIT_ASSIGN_OR_RETURN(ax, NormalizeAxis(a, rank, Where()));
        if (x[ax] != 1) {
          return InvalidArgument(Where(), "cannot squeeze axis ", a, " of size ", x[ax]);
        }
        drop[ax] = true;
      }
      for (int i = 0; i < rank; ++i) {
        if (!(drop[i] && x[i] == 1)) y.push_back(x[i]);
      }
    } else {
      if (axes.empty()) return InvalidArgument(Where(), "axes are required");
      const int rank = static_cast<int>(x.size() + axes.size());
      std::vector<bool> ins(rank, false);
      for (int64_t a : axes) {
        int ax;
        LOWBIT_ASSIGN_OR_RETURN(ax, NormalizeAxis(a, rank, Where()));
        if (ins[ax]) return InvalidArgument(Where(), "repeated axis ", a);
        ins[ax] = true;
      }
      size_t j = 0;
      for (int i = 0; i < rank; ++i) y.push_back(ins[i] ? 1 : x[j++]);
    }
    (*out)[0] = TensorInfo{true, in[0].dtype, y, nullptr};
    return OkStatus();
  }

 private:
  bool squeeze_;
};

class Transpose final : public OpKernel {
 public:
  using OpKernel::OpKernel;
  Status Prepare(const std::vector<TensorInfo>& in, std::vector<TensorInfo>* out) override {
    const Shape& x = in[0].shape;
    const int rank = static_cast<int>(x.size());
    std::vector<int64_t> def(rank);
    for (int i = 0; i < rank; ++i) def[i] = rank - 1 - i;
    perm_ = node_.GetInts("perm", def);
    std::vector<int64_t> sorted = perm_;
    std::sort(sorted.begin(), sorted.end());
    std::vector<int64_t> iota(rank);
    std::iota(iota.begin(), iota.end(), 0);
    if (sorted != iota) return InvalidArgument(Where(), "perm is not a permutation of 0..", rank - 1);
    Shape y(rank);
    for (int i = 0; i < rank; ++i) y[i] = x[perm_[i]];
    in_shape_ = x;
    elem_ = DTypeSize(in[0].dtype);
    (*out)[0] = TensorInfo{true, in[0].dtype, y, nullptr};
    return OkStatus();
  }
  void Run(const std::vector<const Tensor*>& in, const std::vector<Tensor*>& out,
           const ExecContext&) override {
    const int rank = static_cast<int>(perm_.size());
    std::vector<int64_t> in_strides(rank, 1);
    for (int i = rank - 2; i >= 0; --i) in_strides[i] = in_strides[i + 1] * in_shape_[i + 1];
    const Shape& y = out[0]->shape();
    const uint8_t* src = static_cast<const uint8_t*>(in[0]->raw());
    uint8_t* dst = static_cast<uint8_t*>(out[0]->raw());
    std::vector<int64_t> idx(rank, 0);
    const int64_t n = out[0]->numel();
    for (int64_t o = 0; o < n; ++o) {
      int64_t off = 0;
      for (int d = 0; d < rank; ++d) off += idx[d] * in_strides[perm_[d]];
      std::memcpy(dst + o * elem_, src + off * elem_, elem_);
      for (int d = rank - 1; d >= 0; --d) {
        if (++idx[d] < y[d]) break;
        idx[d] = 0;
      }
    }
  }

 private:
  std::vector<int64_t> perm_;
  Shape in_shape_;
  size_t elem_ = 4;
};

class Concat final : public OpKernel {
 public:
  using OpKernel::OpKernel;
  Status Prepare(const std::vector<TensorInfo>& in, std::vector<TensorInfo>* out) override {
    if (in.empty()) return InvalidArgument(Where(), "no inputs");
    const int rank = static_cast<int>(in[0].shape.size());
    LOWBIT_ASSIGN_OR_RETURN(axis_, NormalizeAxis(node_.GetInt("axis", node_.opset < 4 ? 1 : 0), rank, Where()));
    // Byte edges (runtime/byte_edges.h): 8-bit [N, spatial..., C] pixels
    // in and out, the same bytes concatenated on the matching axis.
    std::vector<size_t> all(in.size());
    for (size_t i = 0; i < all.size(); ++i) all[i] = i;
    bool bytes = false;
    LOWBIT_ASSIGN_OR_RETURN(bytes, BytePassThroughInputs(node_, in, all));
    if (bytes) axis_ = NhwcAxis(axis_, rank);
    Shape y = in[0].shape;
    y[axis_] = 0;
    for (const TensorInfo& t : in) {
      if (t.dtype != in[0].dtype || static_cast<int>(t.shape.size()) != rank) {
        return InvalidArgument(Where(), "inputs differ in type or rank");
      }
      for (int d = 0; d < rank; ++d) {
        if (d != axis_ && t.shape[d] != in[0].shape[d]) {
          return InvalidArgument(Where(), "input ", ShapeToString(t.shape), " does not match ",
                                 ShapeToString(in[0].shape), " off axis ", axis_);
        }
      }
      y[axis_] += t.shape[axis_];
    }
    elem_ = DTypeSize(in[0].dtype);
    (*out)[0] = TensorInfo{true, in[0].dtype, y, nullptr};
    return OkStatus();
  }
  void Run(const std::vector<const Tensor*>& in, const std::vector<Tensor*>& out,
           const ExecContext&) override {
    const Shape& y = out[0]->shape();
    const int64_t outer = NumElements(Shape(y.begin(), y.begin() + axis_));
    const int64_t inner = NumElements(Shape(y.begin() + axis_ + 1, y.end())) * elem_;
    uint8_t* dst = static_cast<uint8_t*>(out[0]->raw());
    const int64_t row = y[axis_] * inner;
    int64_t offset = 0;
    for (const Tensor* t : in) {
      const int64_t chunk = t->shape()[axis_] * inner;
      const uint8_t* src = static_cast<const uint8_t*>(t->raw());
      for (int64_t o = 0; o < outer; ++o) std::memcpy(dst + o * row + offset, src + o * chunk, chunk);
      offset += chunk;
    }
  }

 private:
  int axis_ = 0;
  size_t elem_ = 4;
};

// Shape's value is known once shapes are static: computed in Prepare and
// exposed as a constant so the planner folds everything downstream of it.
class ShapeOp final : public OpKernel {
 public:
  using OpKernel::OpKernel;
  Status Prepare(const std::vector<TensorInfo>& in, std::vector<TensorInfo>* out) override {
    const Shape& x = in[0].shape;
    const int64_t rank = static_cast<int64_t>(x.size());
    int64_t start = node_.GetInt("start", 0), end = node_.GetInt("end", rank);
    if (start < 0) start += rank;
    if (end < 0) end += rank;
    start = std::clamp<int64_t>(start, 0, rank);
    end = std::clamp<int64_t>(end, start, rank);
    value_ = Tensor::FromInt64s({end - start}, std::vector<int64_t>(x.begin() + start, x.begin() + end));
    (*out)[0] = TensorInfo{true, DType::kInt64, value_.shape(), &value_};
    return OkStatus();
  }
  void Run(const std::vector<const Tensor*>&, const std::vector<Tensor*>& out,
           const ExecContext&) override {
    std::memcpy(out[0]->raw(), value_.raw(), value_.bytes());
  }

 private:
  Tensor value_;
};

class Gather final : public OpKernel {
 public:
  using OpKernel::OpKernel;
  Status Prepare(const std::vector<TensorInfo>& in, std::vector<TensorInfo>* out) override {
    if (in.size() != 2) return InvalidArgument(Where(), "expects data and indices");
    if (in[1].dtype != DType::kInt64 && in[1].dtype != DType::kInt32) {
      return Unimplemented(Where(), "indices of type ", DTypeName(in[1].dtype));
    }
    const Shape& x = in[0].shape;
    const int rank = static_cast<int>(x.size());
    if (rank == 0) return InvalidArgument(Where(), "data must have rank >= 1 (a scalar has no axis to gather on)");
    LOWBIT_ASSIGN_OR_RETURN(axis_, NormalizeAxis(node_.GetInt("axis", 0), rank, Where()));
    Shape y(x.begin(), x.begin() + axis_);
    y.insert(y.end(), in[1].shape.begin(), in[1].shape.end());
    y.insert(y.end(), x.begin() + axis_ + 1, x.end());
    elem_ = DTypeSize(in[0].dtype);
    if (in[1].constant != nullptr) {
      for (int64_t i : in[1].constant->ToInt64()) {
        if (i < -x[axis_] || i >= x[axis_]) {
          return InvalidArgument(Where(), "index ", i, " is out of range for axis of size ", x[axis_]);
        }
      }
    }
    (*out)[0] = TensorInfo{true, in[0].dtype, y, nullptr};
    return OkStatus();
  }
  void Run(const std::vector<const Tensor*>& in, const std::vector<Tensor*>& out,
           const ExecContext&) override {
    const Shape& x = in[0]->shape();
    const int64_t outer = NumElements(Shape(x.begin(), x.begin() + axis_));
    const int64_t inner = NumElements(Shape(x.begin() + axis_ + 1, x.end())) * elem_;
    const std::vector<int64_t> idx = in[1]->ToInt64();
    const int64_t n = x[axis_];
    const uint8_t* src = static_cast<const uint8_t*>(in[0]->raw());
    uint8_t* dst = static_cast<uint8_t*>(out[0]->raw());
    for (int64_t o = 0; o < outer; ++o) {
      for (size_t j = 0; j < idx.size(); ++j) {
        int64_t i = idx[j] < 0 ? idx[j] + n : idx[j];
        i = std::clamp<int64_t>(i, 0, n - 1);  // out-of-range indices are refused in Prepare when constant
        std::memcpy(dst + (o * idx.size() + j) * inner, src + (o * n + i) * inner, inner);
      }
    }
  }

 private:
  int axis_ = 0;
  size_t elem_ = 4;
};

}  // namespace

std::unique_ptr<OpKernel> MakeFlatten(const Node& n) { return std::make_unique<Flatten>(n); }
std::unique_ptr<OpKernel> MakeReshape(const Node& n) { return std::make_unique<Reshape>(n); }
std::unique_ptr<OpKernel> MakeSqueeze(const Node& n) { return std::make_unique<SqueezeLike>(n, true); }
std::unique_ptr<OpKernel> MakeUnsqueeze(const Node& n) {
  return std::make_unique<SqueezeLike>(n, false);
}
std::unique_ptr<OpKernel> MakeTranspose(const Node& n) { return std::make_unique<Transpose>(n); }
std::unique_ptr<OpKernel> MakeConcat(const Node& n) { return std::make_unique<Concat>(n); }
std::unique_ptr<OpKernel> MakeShape(const Node& n) { return std::make_unique<ShapeOp>(n); }
std::unique_ptr<OpKernel> MakeGather(const Node& n) { return std::make_unique<Gather>(n); }

}  // namespace lowbit
