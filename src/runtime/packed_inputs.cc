#include "runtime/packed_inputs.h"

#include "runtime/byte_edges.h"

namespace lowbit {

namespace {

Status CheckPackedX(const OpKernel& op, const TensorInfo& x) {
  if (op.node().GetInt(kByteInput, 0) != 0) {
    if (x.dtype != DType::kUint8 || x.shape.size() < 3) {
      return InvalidArgument(op.node().Describe(), ": X ", DTypeName(x.dtype), " ",
                             ShapeToString(x.shape), " must be uint8 pixels [N, spatial..., C] (",
                             kByteInput, ")");
    }
    return OkStatus();
  }
  return ExpectFloat(op, x, "X");
}

// Inputs X, codes and scales present, codes and scales constant, X the type
// the node's byte-edge attribute says.
Status CheckPackedInputs(const OpKernel& op, const std::vector<TensorInfo>& in) {
  const std::string where = op.node().Describe() + ": ";
  if (in.size() < 3 || !in[0].present || !in[1].present || !in[2].present) {
    return InvalidArgument(where, "expects inputs X, codes and scales");
  }
  if (in[1].constant == nullptr || in[2].constant == nullptr) {
    return Unimplemented(where, "codes and scales must be initializers");
  }
  return CheckPackedX(op, in[0]);
}

}  // namespace

Result<PackedParts> PreparePackedParts(const OpKernel& op, const std::vector<TensorInfo>& in) {
  const std::string where = op.node().Describe() + ": ";
  LOWBIT_RETURN_IF_ERROR(CheckPackedInputs(op, in));
  ActSpec act;
  LOWBIT_ASSIGN_OR_RETURN(act, ActSpecOf(op.node()));
  if (act.weight_only && op.node().Has(kFilterParts)) {
    return Unimplemented(where, "filter-wise formats (", op.node().GetString("format", ""),
                         ") need 8-bit activations (act int8 or uint8), not act float");
  }
  return PackedPartsOf(op.node(), *in[1].constant, *in[2].constant);
}

Result<PackedTensor> PreparePackedInputs(const OpKernel& op, const std::vector<TensorInfo>& in) {
  if (op.node().Has(kFilterParts)) {
    return Unimplemented(op.node().Describe(), ": filter-wise formats (",
                         op.node().GetString("format", ""),
                         ") need 8-bit activations and a kernel that runs them");
  }
  PackedParts w;
  LOWBIT_ASSIGN_OR_RETURN(w, PreparePackedParts(op, in));
  return std::move(w.parts[0]);
}

}  // namespace lowbit
