#include <algorithm>

#include "runtime/op.h"
#include "model/packed_node.h"

namespace lowbit {

#define X(op, since, factory) std::unique_ptr<OpKernel> factory(const Node& node);
#include "runtime/ops/ops.inc"
#include "runtime/ops/lowbit_ops.inc"
#undef X

const std::vector<OpRegistration>& AllOps() {
  static const std::vector<OpRegistration> kOps = {
#define X(op, since, factory) {op, since, &factory},
#include "runtime/ops/ops.inc"
#undef X
  };
  return kOps;
}

const std::vector<OpRegistration>& LowbitOps() {
  static const std::vector<OpRegistration> kOps = {
#define X(op, since, factory) {op, since, &factory},
#include "runtime/ops/lowbit_ops.inc"
#undef X
  };
  return kOps;
}

const OpRegistration* FindOp(const std::string& domain, const std::string& op_type, int opset) {
  if (domain == kLowbitDomain) {
    for (const OpRegistration& r : LowbitOps()) {
      if (op_type == r.op_type && opset >= r.min_opset) return &r;
    }
    return nullptr;
  }
  if (!domain.empty()) return nullptr;
  for (const OpRegistration& r : AllOps()) {
    if (op_type == r.op_type && opset >= r.min_opset) return &r;
  }
  return nullptr;
}

Status CheckSupported(const Graph& graph) {
  std::string missing;
  int count = 0;
  for (const Node& n : graph.nodes) {
    if (FindOp(n.domain, n.op_type, n.opset) != nullptr) continue;
    missing += (count++ ? ", " : "") + (n.domain.empty() ? "" : n.domain + ".") + n.op_type +
               " '" + n.name + "' (opset " + std::to_string(n.opset) + ")";
  }
  if (count == 0) return OkStatus();
  return Unimplemented(graph.source, ": ", count, " unsupported operator", count > 1 ? "s" : "",
                       ": ", missing);
}

Status ExpectFloat(const OpKernel& k, const TensorInfo& t, const char* what) {
  if (t.dtype != DType::kFloat32) {
    return Unimplemented(k.node().Describe(), ": ", what, " has element type ", DTypeName(t.dtype),
                         "; only float32 is supported");
  }
  return OkStatus();
}

Result<Shape> BroadcastShapes(const Shape& a, const Shape& b, const std::string& where) {
  const size_t r = std::max(a.size(), b.size());
  Shape out(r);
  for (size_t i = 0; i < r; ++i) {
    const int64_t da = i < r - a.size() ? 1 : a[i - (r - a.size())];
    const int64_t db = i < r - b.size() ? 1 : b[i - (r - b.size())];
    if (da != db && da != 1 && db != 1) {
      return InvalidArgument(where, "shapes ", ShapeToString(a), " and ", ShapeToString(b),
                             " do not broadcast");
    }
    out[i] = da == 1 ? db : da;
  }
  return out;
}

Result<std::vector<int64_t>> ConstInts(const OpKernel& k, const TensorInfo& t, const char* what) {
  if (!t.present || t.constant == nullptr) {
    return Unimplemented(k.node().Describe(), ": ", what,
                         " must be known when the plan is made (a constant or shape arithmetic)");
  }
  return t.constant->ToInt64();
}

std::vector<int64_t> BroadcastStrides(const Shape& s, const Shape& out) {
  const size_t r = out.size();
  std::vector<int64_t> st(r, 0);
  int64_t acc = 1;
  for (size_t i = s.size(); i-- > 0;) {
    const size_t o = i + (r - s.size());
    if (o < r) st[o] = s[i] == 1 ? 0 : acc;
    if (__builtin_mul_overflow(acc, s[i], &acc)) acc = INT64_MAX;
  }
  return st;
}

Result<int> NormalizeAxis(int64_t axis, int rank, const std::string& where) {
  // A scalar has no axis: every caller indexes the shape with the result.
  if (axis < -rank || axis >= rank) {
    return InvalidArgument(where, "axis ", axis, " is out of range for rank ", rank);
  }
  return static_cast<int>(axis < 0 ? axis + rank : axis);
}

}  // namespace lowbit
