// What the packed operators' kernels (PackedGemm, PackedConv; model/
// packed_node.h) share: inputs (X, codes, scales, B?), the packed weight, the
// kernel path, activation settings, the fused activation, and the epilogue.
#ifndef LOWBIT_RUNTIME_OPS_PACKED_KERNEL_H_
#define LOWBIT_RUNTIME_OPS_PACKED_KERNEL_H_

#include <vector>

#include "kernels/qlinear.h"
#include "runtime/activation.h"
#include "runtime/op.h"
#include "runtime/packed_inputs.h"

namespace lowbit {

// The kernel layout's name for profiles: "table", "planes", "level-planes".
inline const char* LayoutName(const QLinearWeights& w) {
  switch (w.layout) {
    case QLinearWeights::Layout::kTable:
      return "table";
    case QLinearWeights::Layout::kPlanes:
      return "planes";
    case QLinearWeights::Layout::kLevelPlanes:
      return "level-planes";
  }
  return "?";
}

inline Epilogue MakeEpilogue(const FusedActivation& act, const float* bias) {
  Epilogue e;
  e.bias = bias;
  e.clamp = act.active;
  e.lo = act.lo;
  e.hi = act.hi;
  return e;
}

class PackedKernel : public OpKernel {
 public:
  using OpKernel::OpKernel;

 protected:
  Status PrepareCommon(const std::vector<TensorInfo>& in, PackedParts* w) {
    LOWBIT_ASSIGN_OR_RETURN(*w, PreparePackedParts(*this, in));
    has_bias_ = in.size() > 3 && in[3].present;
    if (has_bias_ && (in[3].dtype != DType::kFloat32 || in[3].shape != Shape{w->rows()})) {
      return InvalidArgument(Where(), "bias ", DTypeName(in[3].dtype), " ",
                             ShapeToString(in[3].shape), " must be float32 [", w->rows(), "]");
    }
    Result<KernelPath> path = ResolveKernelPath(kernel_options_);
    if (!path.ok()) return Status(path.status().code(), Where() + path.status().message());
    path_ = path.value();
    LOWBIT_ASSIGN_OR_RETURN(act_spec_, ActSpecOf(node_));
    fused_ = FusedActivation::FromNode(node_);
    return OkStatus();
  }

  // The kernel layout of a packed weight, errors naming this node.
  Result<QLinearWeights> Layout(const PackedTensor& w) const {
    Result<QLinearWeights> q = PrepareQLinearFor(w, path_, kernel_options_.lut);
    if (!q.ok()) return Status(q.status().code(), Where() + q.status().message());
    return q;
  }

  // The same for codes given unpacked ([p.rows, p.cols]).
  Result<QLinearWeights> LayoutCodes(const QuantParams& p, const uint32_t* codes) const {
    Result<QLinearWeights> q = PrepareQLinearCodesFor(p, codes, path_, kernel_options_.lut);
    if (!q.ok()) return Status(q.status().code(), Where() + q.status().message());
    return q;
  }

  // Filter-wise formats: every part's layout must read the same activation
  // operand (signed for the plane layout, unsigned for the table layout).
  Status CheckOneOperand(const std::vector<QLinearWeights>& parts, const PackedParts& w) const {
    for (const QLinearWeights& q : parts) {
      if (q.signed_acts() != parts[0].signed_acts()) {
        return Unimplemented(
            Where(), "filter-wise formats ", w.format(),
            " mix kernel layouts (1, 2, 4 and 8-bit uniform grids read int8 activations, "
            "other formats uint8): pick formats from one of the two sets");
      }
    }
    return OkStatus();
  }

  const float* Bias(const std::vector<const Tensor*>& in) const {
    return has_bias_ ? in[3]->data<float>() : nullptr;
  }

  KernelPath path_ = KernelPath::kRef;
  bool has_bias_ = false;
  ActSpec act_spec_;
  FusedActivation fused_;
};

}  // namespace lowbit

#endif  // LOWBIT_RUNTIME_OPS_PACKED_KERNEL_H_
