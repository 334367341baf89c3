// Data movement that exporters emit around the layers: Slice, Split, Expand,
// Tile, Range, ConstantOfShape, DepthToSpace and SpaceToDepth. They copy
// elements of any type, so shape arithmetic on int64 folds at plan time;
// sizes, starts and repeats must be known when the plan is made.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "runtime/byte_edges.h"
#include "runtime/op.h"

namespace lowbit {
namespace {

// Row-major strides of `s` (saturated like BroadcastStrides).
std::vector<int64_t> StridesOf(const Shape& s) {
  std::vector<int64_t> st(s.size(), 1);
  for (size_t i = s.size(); i-- > 1;) {
    if (__builtin_mul_overflow(st[i], s[i], &st[i - 1])) st[i - 1] = INT64_MAX;
  }
  return st;
}

// Copies every element of an output of shape `y` from the input element at
// sum_d (base[d] + idx[d] * step[d]) * stride_in[d] (bytes of `elem`); an
// index map with step 0 repeats (broadcast), idx % mod[d] wraps (tile).
struct IndexMap {
  std::vector<int64_t> base, step, mod, in_stride;
};
void Gather(const uint8_t* src, uint8_t* dst, const Shape& y_in, const IndexMap& m_in, size_t elem) {
  const int64_t n = NumElements(y_in);
  if (n == 0) return;
  // Axes of extent 1 only add a fixed offset: folded away, so [1, N, 1]
  // runs as one row of N.
  Shape y;
  IndexMap m;
  int64_t fixed = 0;
  for (size_t d = 0; d < y_in.size(); ++d) {
    if (y_in[d] == 1) {
      fixed += m_in.base[d] * m_in.in_stride[d];
      continue;
    }
    y.push_back(y_in[d]);
    m.base.push_back(m_in.base[d]);
    m.step.push_back(m_in.step[d]);
    m.mod.push_back(m_in.mod[d]);
    m.in_stride.push_back(m_in.in_stride[d]);
  }
  src += fixed * static_cast<int64_t>(elem);
  const int r = static_cast<int>(y.size());
  if (r == 0) {
    std::memcpy(dst, src, elem);
    return;
  }
  // Row by row over the last axis: the row's base offset from its index,
  // then the last axis alone (one memcpy when it is contiguous).
  const int64_t inner = y[r - 1];
  const int64_t step = m.step[r - 1], mod = m.mod[r - 1], stride = m.in_stride[r - 1];
  const bool contiguous = step == 1 && mod == 0 && stride == 1;
  std::vector<int64_t> idx(r, 0);
  for (int64_t o = 0; o < n; o += inner) {
    int64_t base = 0;
    for (int d = 0; d + 1 < r; ++d) {
      const int64_t i = m.mod[d] > 0 ? idx[d] % m.mod[d] : idx[d];
      base += (m.base[d] + i * m.step[d]) * m.in_stride[d];
    }
    base += m.base[r - 1] * stride;
    uint8_t* row = dst + o * static_cast<int64_t>(elem);
    if (contiguous) {
      std::memcpy(row, src + base * static_cast<int64_t>(elem), inner * elem);
    } else if (step == 0 || (mod == 1)) {
      // One value repeated along the row (Expand): doubling copies.
      std::memcpy(row, src + base * static_cast<int64_t>(elem), elem);
      for (int64_t done = 1; done < inner;) {
        const int64_t c = std::min(done, inner - done);
        std::memcpy(row + done * static_cast<int64_t>(elem), row, c * elem);
        done += c;
      }
    } else {
      for (int64_t j = 0; j < inner; ++j) {
        const int64_t i = mod > 0 ? j % mod : j;
        std::memcpy(row + j * static_cast<int64_t>(elem), src + (base + i * step * stride) * static_cast<int64_t>(elem),
                    elem);
      }
    }
    for (int d = r - 2; d >= 0; --d) {
      if (++idx[d] < y[d]) break;
      idx[d] = 0;
    }
  }
}

class Slice final : public OpKernel {
 public:
  using OpKernel::OpKernel;
  Status Prepare(const std::vector<TensorInfo>& in, std::vector<TensorInfo>* out) override {
    const Shape& x = in[0].shape;
    const int rank = static_cast<int>(x.size());
    std::vector<int64_t> starts, ends, axes, steps;
    if (node_.opset < 10) {
      starts = node_.GetInts("starts");
      ends = node_.GetInts("ends");
      axes = node_.GetInts("axes");
    } else {
      if (in.size() < 3) return InvalidArgument(Where(), "expects data, starts and ends");
      LOWBIT_ASSIGN_OR_RETURN(starts, ConstInts(*this, in[1], "starts"));
      LOWBIT_ASSIGN_OR_RETURN(ends, ConstInts(*this, in[2], "ends"));
      if (in.size() > 3 && in[3].present) {
        LOWBIT_ASSIGN_OR_RETURN(axes, ConstInts(*this, in[3], "axes"));
      }
      if (in.size() > 4 && in[4].present) {
        LOWBIT_ASSIGN_OR_RETURN(steps, ConstInts(*this, in[4], "steps"));
      }
    }
    if (axes.empty()) {
      for (size_t i = 0; i < starts.size(); ++i) axes.push_back(static_cast<int64_t>(i));
    }
    if (steps.empty()) steps.assign(starts.size(), 1);
    // Byte edges (runtime/byte_edges.h): 8-bit [N, spatial..., C] pixels in
    // and out, sliced on the axes matching the NCHW ones.
    bool bytes = false;
    LOWBIT_ASSIGN_OR_RETURN(bytes, BytePassThroughInputs(node_, in, {0}));
    if (bytes) {
      for (int64_t& a : axes) {
        int n;
        LOWBIT_ASSIGN_OR_RETURN(n, NormalizeAxis(a, rank, Where()));
        a = NhwcAxis(n, rank);
      }
    }
    if (starts.size() != ends.size() || axes.size() != starts.size() || steps.size() != starts.size()) {
      return InvalidArgument(Where(), "starts, ends, axes and steps have ", starts.size(), ", ", ends.size(),
                             ", ", axes.size(), " and ", steps.size(), " values");
    }
    map_ = IndexMap{std::vector<int64_t>(rank, 0), std::vector<int64_t>(rank, 1), std::vector<int64_t>(rank, 0),
                    StridesOf(x)};
    Shape y = x;
    std::vector<bool> seen(rank, false);
    for (size_t i = 0; i < axes.size(); ++i) {
      int a;
      LOWBIT_ASSIGN_OR_RETURN(a, NormalizeAxis(axes[i], rank, Where()));
      if (seen[a]) return InvalidArgument(Where(), "axis ", axes[i], " repeats");
      seen[a] = true;
      const int64_t dim = x[a], step = steps[i];
      if (step == 0) return InvalidArgument(Where(), "step 0 on axis ", axes[i]);
      auto clampi = [](int64_t v, int64_t lo, int64_t hi) { return std::min(std::max(v, lo), hi); };
      int64_t s = clampi(starts[i], -dim - 1, dim + 1), e = clampi(ends[i], -dim - 1, dim + 1);
      if (s < 0) s += dim;
      if (e < 0) e += dim;
      if (step > 0) {
        s = clampi(s, 0, dim);
        e = clampi(e, 0, dim);
      } else {
        s = clampi(s, 0, dim - 1);
        e = clampi(e, -1, dim - 1);
      }
      const int64_t len = step > 0 ? (e - s + step - 1) / step : (s - e + (-step) - 1) / (-step);
      y[a] = std::max<int64_t>(len, 0);
      map_.base[a] = s;
      map_.step[a] = step;
    }
    elem_ = DTypeSize(in[0].dtype);
    (*out)[0] = TensorInfo{true, in[0].dtype, y, nullptr};
    return OkStatus();
  }
  void Run(const std::vector<const Tensor*>& in, const std::vector<Tensor*>& out, const ExecContext&) override {
    Gather(static_cast<const uint8_t*>(in[0]->raw()), static_cast<uint8_t*>(out[0]->raw()), out[0]->shape(),
           map_, elem_);
  }

 private:
  IndexMap map_;
  size_t elem_ = 4;
};

class Split final : public OpKernel {
 public:
  using OpKernel::OpKernel;
  Status Prepare(const std::vector<TensorInfo>& in, std::vector<TensorInfo>* out) override {
    const Shape& x = in[0].shape;
    const int rank = static_cast<int>(x.size());
    LOWBIT_ASSIGN_OR_RETURN(axis_, NormalizeAxis(node_.GetInt("axis", 0), rank, Where()));
    const int64_t parts = static_cast<int64_t>(out->size());
    std::vector<int64_t> split;
    if (node_.opset < 13) {
      split = node_.GetInts("split");
    } else if (in.size() > 1 && in[1].present) {
      LOWBIT_ASSIGN_OR_RETURN(split, ConstInts(*this, in[1], "split"));
    }
    const int64_t dim = x[axis_];
    if (split.empty()) {
      // Equal parts; from opset 18 (num_outputs) the last may be smaller.
      const int64_t each = node_.opset >= 18 ? (dim + parts - 1) / parts : dim / std::max<int64_t>(parts, 1);
      if (node_.opset < 18 && each * parts != dim) {
        return InvalidArgument(Where(), "axis of size ", dim, " does not split into ", parts, " equal parts");
      }
      for (int64_t p = 0; p < parts; ++p) split.push_back(std::min(each, dim - p * each));
    }
    int64_t total = 0;
    for (int64_t s : split) {
      if (s < 0 || __builtin_add_overflow(total, s, &total)) return InvalidArgument(Where(), "negative split");
    }
    if (static_cast<int64_t>(split.size()) != parts || total != dim) {
      return InvalidArgument(Where(), "split of ", split.size(), " parts summing to ", total, " for ", parts,
                             " outputs of an axis of size ", dim);
    }
    split_ = split;
    for (int64_t p = 0; p < parts; ++p) {
      Shape y = x;
      y[axis_] = split[p];
      (*out)[p] = TensorInfo{true, in[0].dtype, y, nullptr};
    }
    elem_ = DTypeSize(in[0].dtype);
    return OkStatus();
  }
  void Run(const std::vector<const Tensor*>& in, const std::vector<Tensor*>& out, const ExecContext&) override {
    const Shape& x = in[0]->shape();
    const int64_t outer = NumElements(Shape(x.begin(), x.begin() + axis_));
    const int64_t inner = NumElements(Shape(x.begin() + axis_ + 1, x.end())) * static_cast<int64_t>(elem_);
    const uint8_t* src = static_cast<const uint8_t*>(in[0]->raw());
    int64_t at = 0;
    for (size_t p = 0; p < out.size(); ++p) {
      uint8_t* dst = static_cast<uint8_t*>(out[p]->raw());
      const int64_t chunk = split_[p] * inner;
      for (int64_t o = 0; o < outer; ++o) {
        std::memcpy(dst + o * chunk, src + (o * x[axis_]) * inner + at * inner, chunk);
      }
      at += split_[p];
    }
  }

 private:
  int axis_ = 0;
  std::vector<int64_t> split_;
  size_t elem_ = 4;
};

// Expand (broadcast to a shape) and Tile (repeat) as index maps.
class Repeat final : public OpKernel {
 public:
  Repeat(const Node& n, bool tile) : OpKernel(n), tile_(tile) {}
  Status Prepare(const std::vector<TensorInfo>& in, std::vector<TensorInfo>* out) override {
    if (in.size() != 2) return InvalidArgument(Where(), "expects 2 inputs");
    std::vector<int64_t> v;
    LOWBIT_ASSIGN_OR_RETURN(v, ConstInts(*this, in[1], tile_ ? "repeats" : "shape"));
    const Shape& x = in[0].shape;
    Shape y;
    if (tile_) {
      if (v.size() != x.size()) return InvalidArgument(Where(), v.size(), " repeats for rank ", x.size());
      for (size_t d = 0; d < x.size(); ++d) {
        int64_t yd = 0;
        if (v[d] < 0 || __builtin_mul_overflow(x[d], v[d], &yd)) {
          return InvalidArgument(Where(), "repeats ", v[d], " on axis ", d);
        }
        y.push_back(yd);
      }
    } else {
      for (int64_t d : v) {
        if (d < 0) return InvalidArgument(Where(), "shape ", ShapeToString(Shape(v.begin(), v.end())), " has a negative dim");
      }
      LOWBIT_ASSIGN_OR_RETURN(y, BroadcastShapes(x, Shape(v.begin(), v.end()), Where()));
    }
    LOWBIT_RETURN_IF_ERROR(CheckedBytes(in[0].dtype, y, Where() + "output").status());
    const int r = static_cast<int>(y.size());
    const std::vector<int64_t> st = StridesOf(x);
    map_ = IndexMap{std::vector<int64_t>(r, 0), std::vector<int64_t>(r, 1), std::vector<int64_t>(r, 0),
                    std::vector<int64_t>(r, 0)};
    for (int d = 0; d < r; ++d) {
      const int xd = d - (r - static_cast<int>(x.size()));
      if (xd < 0) {
        map_.step[d] = 0;
        continue;
      }
      map_.in_stride[d] = st[xd];
      if (tile_) map_.mod[d] = x[xd];
      else if (x[xd] == 1) map_.step[d] = 0;
    }
    elem_ = DTypeSize(in[0].dtype);
    (*out)[0] = TensorInfo{true, in[0].dtype, y, nullptr};
    return OkStatus();
  }
  void Run(const std::vector<const Tensor*>& in, const std::vector<Tensor*>& out, const ExecContext&) override {
    if (out[0]->numel() == 0) return;
    Gather(static_cast<const uint8_t*>(in[0]->raw()), static_cast<uint8_t*>(out[0]->raw()), out[0]->shape(),
           map_, elem_);
  }

 private:
  bool tile_;
  IndexMap map_;
  size_t elem_ = 4;
};

class Range final : public OpKernel {
 public:
  using OpKernel::OpKernel;
  Status Prepare(const std::vector<TensorInfo>& in, std::vector<TensorInfo>* out) override {
    if (in.size() != 3) return InvalidArgument(Where(), "expects start, limit and delta");
    for (const TensorInfo& t : in) {
      if (!t.present || t.constant == nullptr || t.constant->numel() != 1) {
        return Unimplemented(Where(), "start, limit and delta must be scalars known when the plan is made");
      }
      if (t.dtype != in[0].dtype) return InvalidArgument(Where(), "input types differ");
    }
    if (in[0].dtype != DType::kFloat32 && in[0].dtype != DType::kInt64 && in[0].dtype != DType::kInt32) {
      return Unimplemented(Where(), "element type ", DTypeName(in[0].dtype));
    }
    auto value = [](const Tensor& t) {
      return t.dtype() == DType::kFloat32 ? static_cast<double>(t.data<float>()[0])
                                          : static_cast<double>(t.ToInt64()[0]);
    };
    start_ = value(*in[0].constant);
    delta_ = value(*in[2].constant);
    const double count = std::ceil((value(*in[1].constant) - start_) / delta_);
    if (delta_ == 0 || !(count < 1e12)) return InvalidArgument(Where(), "delta ", delta_, " gives no finite range");
    if (!(std::fabs(start_) + std::max(count, 0.0) * std::fabs(delta_) < 4e18)) {
      return InvalidArgument(Where(), "start ", start_, " and delta ", delta_, " overflow int64");
    }
    (*out)[0] = TensorInfo{true, in[0].dtype, {std::max<int64_t>(0, static_cast<int64_t>(count))}, nullptr};
    return OkStatus();
  }
  void Run(const std::vector<const Tensor*>&, const std::vector<Tensor*>& out, const ExecContext&) override {
    Tensor* y = out[0];
    for (int64_t i = 0; i < y->numel(); ++i) {
      if (y->dtype() == DType::kFloat32) {
        y->data<float>()[i] = static_cast<float>(start_) + static_cast<float>(i) * static_cast<float>(delta_);
      } else if (y->dtype() == DType::kInt64) {
        y->data<int64_t>()[i] = static_cast<int64_t>(start_) + i * static_cast<int64_t>(delta_);
      } else {
        y->data<int32_t>()[i] = static_cast<int32_t>(static_cast<int64_t>(start_) + i * static_cast<int64_t>(delta_));
      }
    }
  }

 private:
  double start_ = 0, delta_ = 1;
};

class ConstantOfShape final : public OpKernel {
 public:
  using OpKernel::OpKernel;
  Status Prepare(const std::vector<TensorInfo>& in, std::vector<TensorInfo>* out) override {
    std::vector<int64_t> shape;
    LOWBIT_ASSIGN_OR_RETURN(shape, ConstInts(*this, in[0], "the shape"));
    value_ = Tensor::FromFloats({1}, {0.0f});
    auto it = node_.attrs.find("value");
    if (it != node_.attrs.end()) {
      const Tensor* t = std::get_if<Tensor>(&it->second);
      if (t == nullptr || t->numel() != 1) return InvalidArgument(Where(), "value must be a one-element tensor");
      value_ = *t;
    }
    Shape y(shape.begin(), shape.end());
    LOWBIT_RETURN_IF_ERROR(CheckedBytes(value_.dtype(), y, Where() + "output").status());
    (*out)[0] = TensorInfo{true, value_.dtype(), y, nullptr};
    return OkStatus();
  }
  void Run(const std::vector<const Tensor*>&, const std::vector<Tensor*>& out, const ExecContext&) override {
    const size_t elem = DTypeSize(value_.dtype());
    uint8_t* dst = static_cast<uint8_t*>(out[0]->raw());
    for (int64_t i = 0; i < out[0]->numel(); ++i) std::memcpy(dst + i * elem, value_.raw(), elem);
  }

 private:
  Tensor value_;
};

// DepthToSpace (DCR or CRD) and SpaceToDepth on NCHW, as index maps over a
// 6-D view.
class DepthSpace final : public OpKernel {
 public:
  DepthSpace(const Node& n, bool to_space) : OpKernel(n), to_space_(to_space) {}
  Status Prepare(const std::vector<TensorInfo>& in, std::vector<TensorInfo>* out) override {
    const Shape& x = in[0].shape;
    if (x.size() != 4) return InvalidArgument(Where(), "input must be 4-D NCHW, got ", ShapeToString(x));
    b_ = node_.GetInt("blocksize", 0);
    if (b_ < 1 || b_ > 1024) return InvalidArgument(Where(), "blocksize ", b_);
    const std::string mode = node_.GetString("mode", "DCR");
    if (mode != "DCR" && mode != "CRD") return InvalidArgument(Where(), "mode '", mode, "' (DCR or CRD)");
    crd_ = to_space_ && mode == "CRD";
    const int64_t n = x[0], c = x[1], h = x[2], w = x[3];
    Shape y;
    if (to_space_) {
      if (c % (b_ * b_) != 0) return InvalidArgument(Where(), c, " channels are not a multiple of ", b_ * b_);
      y = {n, c / (b_ * b_), h * b_, w * b_};
    } else {
      if (h % b_ != 0 || w % b_ != 0) return InvalidArgument(Where(), "H and W must be multiples of ", b_);
      y = {n, c * b_ * b_, h / b_, w / b_};
    }
    elem_ = DTypeSize(in[0].dtype);
    (*out)[0] = TensorInfo{true, in[0].dtype, y, nullptr};
    return OkStatus();
  }
  void Run(const std::vector<const Tensor*>& in, const std::vector<Tensor*>& out, const ExecContext&) override {
    const Shape& x = in[0]->shape();
    const Shape& y = out[0]->shape();
    const uint8_t* src = static_cast<const uint8_t*>(in[0]->raw());
    uint8_t* dst = static_cast<uint8_t*>(out[0]->raw());
    const int64_t b = b_;
    // Walk the space-side tensor [N, C', H*b, W*b]; its depth-side channel
    // is (bh*b + bw)*C' + c (DCR) or c*b*b + bh*b + bw (CRD, SpaceToDepth).
    const Shape& space = to_space_ ? y : x;
    const Shape& depth = to_space_ ? x : y;
    const int64_t cs = space[1], hs = space[2], ws = space[3];
    for (int64_t n = 0; n < space[0]; ++n) {
      for (int64_t c = 0; c < cs; ++c) {
        for (int64_t h = 0; h < hs; ++h) {
          for (int64_t w = 0; w < ws; ++w) {
            const int64_t bh = h % b, bw = w % b;
            const int64_t dc = crd_ ? c * b * b + bh * b + bw : (bh * b + bw) * cs + c;
            const int64_t s_off = ((n * cs + c) * hs + h) * ws + w;
            const int64_t d_off = ((n * depth[1] + dc) * depth[2] + h / b) * depth[3] + w / b;
            if (to_space_) {
              std::memcpy(dst + s_off * elem_, src + d_off * elem_, elem_);
            } else {
              std::memcpy(dst + d_off * elem_, src + s_off * elem_, elem_);
            }
          }
        }
      }
    }
  }

 private:
  bool to_space_;
  bool crd_ = false;
  int64_t b_ = 1;
  size_t elem_ = 4;
};

}  // namespace

std::unique_ptr<OpKernel> MakeSlice(const Node& n) { return std::make_unique<Slice>(n); }
std::unique_ptr<OpKernel> MakeSplit(const Node& n) { return std::make_unique<Split>(n); }
std::unique_ptr<OpKernel> MakeExpand(const Node& n) { return std::make_unique<Repeat>(n, false); }
std::unique_ptr<OpKernel> MakeTile(const Node& n) { return std::make_unique<Repeat>(n, true); }
std::unique_ptr<OpKernel> MakeRange(const Node& n) { return std::make_unique<Range>(n); }
std::unique_ptr<OpKernel> MakeConstantOfShape(const Node& n) { return std::make_unique<ConstantOfShape>(n); }
std::unique_ptr<OpKernel> MakeDepthToSpace(const Node& n) { return std::make_unique<DepthSpace>(n, true); }
std::unique_ptr<OpKernel> MakeSpaceToDepth(const Node& n) { return std::make_unique<DepthSpace>(n, false); }

}  // namespace lowbit
