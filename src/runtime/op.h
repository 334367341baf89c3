// Operator kernels of the fp32 reference runtime. One kernel object per node
// per plan: Prepare() runs once with static shapes (and constant values where
// known), validates attributes and sizes scratch; Run() computes.
//
// To add an operator: write its file under ops/, add one line to ops/ops.inc.
#ifndef LOWBIT_RUNTIME_OP_H_
#define LOWBIT_RUNTIME_OP_H_

#include <memory>
#include <string>
#include <vector>

#include "base/thread_pool.h"
#include "ir/graph.h"
#include "kernels/kernel_path.h"

namespace lowbit {

// What a plan knows about a value before running.
struct TensorInfo {
  bool present = false;  // false for an omitted optional input
  DType dtype = DType::kFloat32;
  Shape shape;
  const Tensor* constant = nullptr;  // the value, when known at plan time
};

struct ExecContext {
  ThreadPool* pool = nullptr;
  int threads = 1;
};

class OpKernel {
 public:
  explicit OpKernel(const Node& node) : node_(node) {}
  virtual ~OpKernel() = default;

  // Checks attributes and input types/shapes (errors name the node and the
  // values involved) and fills `outputs` (sized to the node's outputs).
  virtual Status Prepare(const std::vector<TensorInfo>& inputs,
                         std::vector<TensorInfo>* outputs) = 0;
  // Computes the outputs, preallocated with the prepared shapes. Absent
  // optional inputs are null.
  virtual void Run(const std::vector<const Tensor*>& inputs, const std::vector<Tensor*>& outputs,
                   const ExecContext& ctx) = 0;
  // True when output 0 is input 0 with another shape (Reshape, Flatten, ...):
  // the plan then shares the buffer and never calls Run.
  virtual bool IsAlias() const { return false; }
  // What the prepared kernel runs, for profiles and the tuner's latency
  // tables: the kernel path and algorithm ("avx512vnni winograd", "ref lut",
  // "weight-only"); "" for the fp32 operators.
  virtual std::string Algorithm() const { return ""; }

  const Node& node() const { return node_; }
  // The plan's kernel choices (PlanOptions::kernels), set before Prepare.
  void set_kernel_options(const KernelOptions& o) { kernel_options_ = o; }

 protected:
  // "Conv 'conv1': " for error messages.
  std::string Where() const { return node_.Describe() + ": "; }
  Node node_;
  KernelOptions kernel_options_;
};

using KernelFactory = std::unique_ptr<OpKernel> (*)(const Node& node);

struct OpRegistration {
  const char* op_type;
  int min_opset;  // first opset whose semantics the kernel implements
  KernelFactory make;
};

// The registration for an op of the default domain or of "com.lowbit" at
// `opset`, or null.
const OpRegistration* FindOp(const std::string& domain, const std::string& op_type, int opset);
// All registrations, in ops.inc order.
const std::vector<OpRegistration>& AllOps();

// Refuses a graph with any operator the runtime lacks, listing every one with
// its node name and opset in one message.
Status CheckSupported(const Graph& graph);

// Helpers shared by kernels.
Status ExpectFloat(const OpKernel& k, const TensorInfo& t, const char* what);
// Multidirectional (numpy) broadcast of two shapes.
Result<Shape> BroadcastShapes(const Shape& a, const Shape& b, const std::string& where);
// An int64 list from an input the plan knows (axes, shape, pads, starts...);
// `what` names it in the error when it is absent or computed at run time.
Result<std::vector<int64_t>> ConstInts(const OpKernel& k, const TensorInfo& t, const char* what);
// Strides (in elements) of shape `s` broadcast to `out` (s right-aligned),
// zero on broadcast dims. Saturated at INT64_MAX: a tensor with a zero dim
// may declare others whose product overflows; its strides are never used.
std::vector<int64_t> BroadcastStrides(const Shape& s, const Shape& out);
// Normalizes a possibly negative axis against `rank`.
Result<int> NormalizeAxis(int64_t axis, int rank, const std::string& where);

}  // namespace lowbit

#endif  // LOWBIT_RUNTIME_OP_H_
