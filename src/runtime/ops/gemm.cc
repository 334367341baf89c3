// Gemm and MatMul on OpenBLAS's sgemm (the honest fp32 baseline).
#include <cstring>

#include "runtime/activation.h"
#include "runtime/op.h"
#include "runtime/sgemm.h"

namespace lowbit {
namespace {

// Y = alpha * op(A) * op(B) + beta * C, C broadcast to [M, N].
class Gemm final : public OpKernel {
 public:
  using OpKernel::OpKernel;

  Status Prepare(const std::vector<TensorInfo>& in, std::vector<TensorInfo>* out) override {
    if (in.size() < 2 || !in[0].present || !in[1].present) {
      return InvalidArgument(Where(), "expects inputs A and B");
    }
    LOWBIT_RETURN_IF_ERROR(ExpectFloat(*this, in[0], "A"));
    LOWBIT_RETURN_IF_ERROR(ExpectFloat(*this, in[1], "B"));
    if (in[0].shape.size() != 2 || in[1].shape.size() != 2) {
      return InvalidArgument(Where(), "A and B must be 2-D, got ", ShapeToString(in[0].shape),
                             " and ", ShapeToString(in[1].shape));
    }
    ta_ = node_.GetInt("transA", 0) != 0;
    tb_ = node_.GetInt("transB", 0) != 0;
    alpha_ = node_.GetFloat("alpha", 1.0f);
    beta_ = node_.GetFloat("beta", 1.0f);
    if (node_.opset < 7 && node_.Has("broadcast") && node_.GetInt("broadcast", 0) == 0) {
      return Unimplemented(Where(), "broadcast = 0 (opset < 7)");
    }
    m_ = ta_ ? in[0].shape[1] : in[0].shape[0];
    k_ = ta_ ? in[0].shape[0] : in[0].shape[1];
    const int64_t kb = tb_ ? in[1].shape[1] : in[1].shape[0];
    n_ = tb_ ? in[1].shape[0] : in[1].shape[1];
    if (kb != k_) {
      return InvalidArgument(Where(), "inner dimensions differ: A ", ShapeToString(in[0].shape),
                             (ta_ ? " (transposed)" : ""), ", B ", ShapeToString(in[1].shape),
                             (tb_ ? " (transposed)" : ""));
    }
    has_c_ = in.size() > 2 && in[2].present && beta_ != 0.0f;
    if (has_c_) {
      LOWBIT_RETURN_IF_ERROR(ExpectFloat(*this, in[2], "C"));
      Shape bc;
      LOWBIT_ASSIGN_OR_RETURN(bc, BroadcastShapes(in[2].shape, {m_, n_}, Where()));
      if (bc != Shape{m_, n_}) {
        return InvalidArgument(Where(), "C ", ShapeToString(in[2].shape), " does not broadcast to [",
                               m_, ", ", n_, "]");
      }
      c_shape_ = in[2].shape;
    }
    act_ = FusedActivation::FromNode(node_);
    (*out)[0] = TensorInfo{true, DType::kFloat32, {m_, n_}, nullptr};
    return OkStatus();
  }

  void Run(const std::vector<const Tensor*>& in, const std::vector<Tensor*>& out,
           const ExecContext& ctx) override {
    float* y = out[0]->data<float>();
    float beta = 0.0f;
    if (has_c_) {
      // Broadcast C into Y, then let sgemm accumulate onto it.
      const float* c = in[2]->data<float>();
      const size_t r = c_shape_.size();
      const int64_t cm = r == 2 ? c_shape_[0] : 1;
      const int64_t cn = r >= 1 ? c_shape_[r - 1] : 1;
      for (int64_t i = 0; i < m_; ++i) {
        for (int64_t j = 0; j < n_; ++j) {
          y[i * n_ + j] = beta_ * c[(cm == 1 ? 0 : i) * cn + (cn == 1 ? 0 : j)];
        }
      }
      beta = 1.0f;
    }
    if (m_ > 0 && n_ > 0) {
      if (k_ == 0) {
        if (!has_c_) std::memset(y, 0, sizeof(float) * m_ * n_);
      } else {
        Sgemm(ctx, ta_, tb_, m_, n_, k_, alpha_, in[0]->data<float>(), ta_ ? m_ : k_,
              in[1]->data<float>(), tb_ ? k_ : n_, beta, y, n_);
      }
    }
    act_.Apply(y, m_ * n_);
  }

 private:
  bool ta_ = false, tb_ = false, has_c_ = false;
  float alpha_ = 1, beta_ = 1;
  int64_t m_ = 0, n_ = 0, k_ = 0;
  Shape c_shape_;
  FusedActivation act_;
};

// numpy matmul: 1-D operands are promoted, leading dims broadcast.
class MatMul final : public OpKernel {
 public:
  using OpKernel::OpKernel;

  Status Prepare(const std::vector<TensorInfo>& in, std::vector<TensorInfo>* out) override {
    if (in.size() != 2 || !in[0].present || !in[1].present) {
      return InvalidArgument(Where(), "expects 2 inputs");
    }
    LOWBIT_RETURN_IF_ERROR(ExpectFloat(*this, in[0], "A"));
    LOWBIT_RETURN_IF_ERROR(ExpectFloat(*this, in[1], "B"));
    Shape a = in[0].shape, b = in[1].shape;
    if (a.empty() || b.empty()) return InvalidArgument(Where(), "scalar operands");
    const bool a1 = a.size() == 1, b1 = b.size() == 1;
    if (a1) a.insert(a.begin(), 1);
    if (b1) b.push_back(1);
    m_ = a[a.size() - 2];
    k_ = a.back();
    n_ = b.back();
    if (b[b.size() - 2] != k_) {
      return InvalidArgument(Where(), "inner dimensions differ: ", ShapeToString(in[0].shape),
                             " x ", ShapeToString(in[1].shape));
    }
    const Shape ba(a.begin(), a.end() - 2), bb(b.begin(), b.end() - 2);
    LOWBIT_ASSIGN_OR_RETURN(batch_, BroadcastShapes(ba, bb, Where()));
    // Per output batch index, the offsets into A and B.
    // An empty product (m or n zero) needs no offsets, however many batch
    // entries its shapes declare; otherwise nb <= the output's elements.
    const int64_t nb = m_ == 0 || n_ == 0 ? 0 : NumElements(batch_);
    a_off_.resize(nb);
    b_off_.resize(nb);
    for (int64_t i = 0; i < nb; ++i) {
      int64_t rem = i, oa = 0, ob = 0, sa = m_ * k_, sb = k_ * n_;
      for (size_t d = batch_.size(); d-- > 0;) {
        const int64_t idx = rem % batch_[d];
        rem /= batch_[d];
        const size_t da = d + ba.size() - batch_.size(), db = d + bb.size() - batch_.size();
        if (d >= batch_.size() - ba.size()) {
          if (ba[da] != 1) oa += idx * sa;
          sa *= ba[da];
        }
        if (d >= batch_.size() - bb.size()) {
          if (bb[db] != 1) ob += idx * sb;
          sb *= bb[db];
        }
      }
      a_off_[i] = oa;
      b_off_[i] = ob;
    }
    Shape y = batch_;
    if (!a1) y.push_back(m_);
    if (!b1) y.push_back(n_);
    act_ = FusedActivation::FromNode(node_);
    (*out)[0] = TensorInfo{true, DType::kFloat32, y, nullptr};
    return OkStatus();
  }

  void Run(const std::vector<const Tensor*>& in, const std::vector<Tensor*>& out,
           const ExecContext& ctx) override {
    const float* a = in[0]->data<float>();
    const float* b = in[1]->data<float>();
    float* y = out[0]->data<float>();
    const int64_t nb = static_cast<int64_t>(a_off_.size());
    for (int64_t i = 0; i < nb; ++i) {
      float* yi = y + i * m_ * n_;
      if (k_ == 0) {
        std::memset(yi, 0, sizeof(float) * m_ * n_);
        continue;
      }
      if (m_ == 0 || n_ == 0) continue;
      Sgemm(ctx, false, false, m_, n_, k_, 1.0f, a + a_off_[i], k_, b + b_off_[i], n_, 0.0f, yi, n_);
    }
    act_.Apply(y, out[0]->numel());
  }

 private:
  int64_t m_ = 0, n_ = 0, k_ = 0;
  Shape batch_;
  std::vector<int64_t> a_off_, b_off_;
  FusedActivation act_;
};

}  // namespace

std::unique_ptr<OpKernel> MakeGemm(const Node& n) { return std::make_unique<Gemm>(n); }
std::unique_ptr<OpKernel> MakeMatMul(const Node& n) { return std::make_unique<MatMul>(n); }

}  // namespace lowbit
