// PackedGemm (model/packed_node.h): linear layers whose weights stay packed
// and run on the low-bit kernels (kernels/qlinear.h). Activations are
// quantized to 8 bits per row, statically from a calibrated range or
// dynamically; products accumulate in int32 and one fused epilogue applies
// scales, zero-point corrections, bias and the activation. With act "float",
// the weight-only kernel (WeightOnlyGemm) runs fp32 activations on any
// packed format.
#include <algorithm>
#include <cmath>

#include "base/target.h"
#include "kernels/weight_decode.h"
#include "runtime/ops/packed_kernel.h"
#include "runtime/sgemm.h"

namespace lowbit {
namespace {

class PackedGemm final : public PackedKernel {
 public:
  using PackedKernel::PackedKernel;

  std::string Algorithm() const override {
    const bool lut = !ws_.empty() && !ws_[0].lut.empty() && rows_ <= ws_[0].lut.max_rows;
    std::string a = std::string(KernelPathName(path_)) + (lut          ? " lut"
                                                          : rows_ == 1 ? " gemv"
                                                                       : " gemm");
    if (!ws_.empty()) a += std::string(" ") + LayoutName(ws_[0]);
    return a + (outs_.empty() ? "" : " filter-wise");
  }

  Status Prepare(const std::vector<TensorInfo>& in, std::vector<TensorInfo>* out) override {
    PackedParts w;
    LOWBIT_RETURN_IF_ERROR(PrepareCommon(in, &w));
    if (w.shape.size() != 2) {
      return InvalidArgument(Where(), "weight_shape ", ShapeToString(w.shape), " must be [N, K]");
    }
    const Shape& x = in[0].shape;
    if (x.empty() || x.back() != w.shape[1]) {
      return InvalidArgument(Where(), "X ", ShapeToString(x), " must end in K = ", w.shape[1]);
    }
    ws_.clear();
    for (const PackedTensor& p : w.parts) {
      ws_.emplace_back();
      LOWBIT_ASSIGN_OR_RETURN(ws_.back(), Layout(p));
    }
    LOWBIT_RETURN_IF_ERROR(CheckOneOperand(ws_, w));
    outs_ = w.mixed() ? w.channels : std::vector<std::vector<int32_t>>{};
    if (act_spec_.is_static) {
      act_ = StaticActParams(act_spec_.lo, act_spec_.hi, act_spec_.symmetric, ws_[0].signed_acts());
    }
    rows_ = NumElements(x) / w.shape[1];
    n_ = w.rows();
    Shape y = x;
    y.back() = n_;
    (*out)[0] = TensorInfo{true, DType::kFloat32, y, nullptr};
    return OkStatus();
  }

  void Run(const std::vector<const Tensor*>& in, const std::vector<Tensor*>& out,
           const ExecContext& ctx) override {
    // Filter-wise formats: one pass per format, each writing its outputs.
    for (size_t i = 0; i < ws_.size(); ++i) {
      Epilogue e = MakeEpilogue(fused_, Bias(in));
      if (!outs_.empty()) e.out = outs_[i].data();
      QLinearForward(ws_[i], path_, in[0]->data<float>(), rows_, e, &scratch_,
                     out[0]->data<float>(), ctx.pool, act_spec_.is_static ? &act_ : nullptr,
                     act_spec_.symmetric, n_);
    }
  }

 private:
  std::vector<QLinearWeights> ws_;          // one per format
  std::vector<std::vector<int32_t>> outs_;  // their outputs (filter-wise formats)
  ActQuant act_;
  int64_t rows_ = 0, n_ = 0;
  QLinearScratch scratch_;
};

LOWBIT_VECTORIZE void BiasClampRow(float* __restrict y, int64_t n, const float* __restrict bias,
                                   float lo, float hi) {
  if (bias != nullptr) {
    for (int64_t i = 0; i < n; ++i) y[i] = std::min(std::max(y[i] + bias[i], lo), hi);
  } else {
    for (int64_t i = 0; i < n; ++i) y[i] = std::min(std::max(y[i], lo), hi);
  }
}

// PackedGemm with act "float" (weight-only): fp32 activations and packed
// weights (kernels/weight_decode.h). A few input rows: GEMV per row, codes
// looked up and multiplied in registers. More rows: a shared tile of decoded
// rows feeds sgemm.
class WeightOnlyGemm final : public OpKernel {
 public:
  using OpKernel::OpKernel;

  std::string Algorithm() const override { return "weight-only"; }

  Status Prepare(const std::vector<TensorInfo>& in, std::vector<TensorInfo>* out) override {
    PackedTensor w;
    LOWBIT_ASSIGN_OR_RETURN(w, PreparePackedInputs(*this, in));
    if (w.shape().size() != 2) {
      return InvalidArgument(Where(), "weight_shape ", ShapeToString(w.shape()), " must be [N, K]");
    }
    const Shape& x = in[0].shape;
    if (x.empty() || x.back() != w.cols()) {
      return InvalidArgument(Where(), "X ", ShapeToString(x), " must end in K = ", w.cols());
    }
    has_bias_ = in.size() > 3 && in[3].present;
    if (has_bias_ && (in[3].dtype != DType::kFloat32 || in[3].shape != Shape{w.rows()})) {
      return InvalidArgument(Where(), "bias ", DTypeName(in[3].dtype), " ",
                             ShapeToString(in[3].shape), " must be float32 [", w.rows(), "]");
    }
    rows_ = NumElements(x) / w.cols();
    Shape y = x;
    y.back() = w.rows();
    decoder_ = WeightDecoder(std::move(w));
    tile_rows_ = DecodeTileRows(decoder_.rows(), decoder_.cols());
    fused_ = FusedActivation::FromNode(node_);
    (*out)[0] = TensorInfo{true, DType::kFloat32, y, nullptr};
    return OkStatus();
  }

  void Run(const std::vector<const Tensor*>& in, const std::vector<Tensor*>& out,
           const ExecContext& ctx) override {
    const int64_t n = decoder_.rows(), k = decoder_.cols();
    const float* x = in[0]->data<float>();
    const float* bias = has_bias_ ? in[3]->data<float>() : nullptr;
    float* y = out[0]->data<float>();
    if (rows_ <= 4) {
      // GEMV per input row: threads take blocks of 16 output rows.
      for (int64_t i = 0; i < rows_; ++i) {
        decoder_.PrepareGemv(x + i * k, &gemv_);
        ctx.pool->ParallelFor((n + 15) / 16, [&](int64_t b0, int64_t b1) {
          decoder_.Gemv(gemv_, b0 * 16, std::min(n, b1 * 16), y + i * n + b0 * 16);
        });
      }
    } else {
      float* tile = DecodeBuffer(tile_rows_ * k);
      for (int64_t r0 = 0; r0 < n; r0 += tile_rows_) {
        const int64_t rows = std::min(tile_rows_, n - r0);
        ctx.pool->ParallelFor(rows, [&](int64_t s, int64_t e) {
          decoder_.DecodeRows(r0 + s, r0 + e, tile + s * k, k);
        });
        Sgemm(ctx, false, true, rows_, rows, k, 1.0f, x, k, tile, k, 0.0f, y + r0, n);
      }
    }
    if (bias == nullptr && !fused_.active) return;
    const float lo = fused_.active ? fused_.lo : -INFINITY,
                hi = fused_.active ? fused_.hi : INFINITY;
    for (int64_t i = 0; i < rows_; ++i) BiasClampRow(y + i * n, n, bias, lo, hi);
  }

 private:
  WeightDecoder decoder_;
  WeightDecoder::GemvInput gemv_;
  int64_t rows_ = 0, tile_rows_ = 0;
  bool has_bias_ = false;
  FusedActivation fused_;
};

}  // namespace

// act "float" selects the weight-only kernel.
std::unique_ptr<OpKernel> MakePackedGemm(const Node& n) {
  if (n.GetString("act", "") == "float") return std::make_unique<WeightOnlyGemm>(n);
  return std::make_unique<PackedGemm>(n);
}

}  // namespace lowbit
