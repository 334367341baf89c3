// A plan: one model bound to static input shapes, ready to run repeatedly.
//
// Creating it checks every operator, infers every shape, folds everything
// computable from constants (so Shape/Gather/Concat chains that PyTorch emits
// for flattening vanish), allocates every buffer once with reuse by liveness,
// and makes reshaping operators zero-copy views. Run() then only computes.
#ifndef LOWBIT_RUNTIME_PLAN_H_
#define LOWBIT_RUNTIME_PLAN_H_

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/thread_pool.h"
#include "ir/graph.h"
#include "runtime/op.h"

namespace lowbit {

struct PlanOptions {
  int64_t batch = 1;  // the size of every input's dynamic first dimension
  int threads = 1;
  // Full shapes for named inputs, overriding the model's declared shapes.
  std::map<std::string, Shape> input_shapes;
  // Inputs frozen to these values: they become constants, so the shapes they
  // determine (a Reshape's shape, Squeeze axes, Pad pads) are known.
  std::map<std::string, Tensor> constant_inputs;
  // Intermediate values kept readable after Run() through value() (their
  // buffers are not reused), for calibration and per-layer error reports.
  std::vector<std::string> keep;
  // Values between packed convolutions travel as 8-bit pixels
  // (runtime/byte_edges.h); false to compare (LOWBIT_BYTE_EDGES=0 on the
  // command line).
  bool byte_edges = true;
  // Kernel path, table-kernel and Winograd choices for packed layers
  // (kernels/kernel_path.h; LOWBIT_KERNEL, LOWBIT_LUT, LOWBIT_WINOGRAD on the
  // command line).
  KernelOptions kernels;
};

class Plan {
 public:
  static Result<std::unique_ptr<Plan>> Create(const Graph& graph, const PlanOptions& options);

  int num_inputs() const { return static_cast<int>(inputs_.size()); }
  const ValueInfo& input_info(int i) const { return inputs_[i]; }
  // The buffer to fill before Run(), with the bound shape.
  Tensor& input(int i) { return values_.at(inputs_[i].name); }
  int num_outputs() const { return static_cast<int>(outputs_.size()); }
  const std::string& output_name(int i) const { return outputs_[i]; }
  // Valid after Run() until the next Run().
  const Tensor& output(int i) const { return values_.at(outputs_[i]); }

  void Run();
  // Runs and calls observe(name, value) for every graph input and every value
  // a step produces, right after it is produced (before its buffer can be
  // reused): calibration statistics without keeping every intermediate.
  // Byte edges are values too (uint8 pixels): plans made to observe fp32
  // layer outputs turn them off (PlanOptions::byte_edges).
  using Observer = std::function<void(const std::string& name, const Tensor& value)>;
  void Run(const Observer& observe);
  // Runs and stores each step's wall time in seconds (size num_steps()),
  // for per-node profiles (`lowbit bench --profile`).
  void RunTimed(std::vector<double>* step_seconds);
  // The node a step runs: its name (or its first output's, when unnamed) and
  // operator type.
  const std::string& step_name(int i) const { return steps_[i].name; }
  const std::string& step_op(int i) const { return steps_[i].op; }
  // The kernel path and algorithm the step runs (OpKernel::Algorithm).
  std::string step_algorithm(int i) const { return steps_[i].kernel->Algorithm(); }

  // A value named in PlanOptions::keep (or any graph input, output or
  // constant), valid after Run(); null when the plan has no such value.
  const Tensor* value(const std::string& name) const {
    auto it = values_.find(name);
    return it == values_.end() ? nullptr : &it->second;
  }

  // Bytes of activation buffers the plan holds (after reuse).
  size_t buffer_bytes() const { return buffer_bytes_; }
  int num_steps() const { return static_cast<int>(steps_.size()); }
  // Values passed as 8-bit pixels (PlanOptions::byte_edges).
  int num_byte_edges() const { return byte_edges_; }

 private:
  struct Step {
    std::unique_ptr<OpKernel> kernel;
    std::vector<std::string> in, out;
    std::string name, op;
    // False for views (Reshape, ...) and for steps whose outputs hold no
    // element: their kernels are not run (a zero-element tensor's other dims
    // may still be huge, and loops over them would do nothing for long).
    bool computes = true;
    std::vector<const Tensor*> in_ptr;
    std::vector<Tensor*> out_ptr;
  };

  // The context every run executes its steps with.
  ExecContext BeginRun();

  std::vector<ValueInfo> inputs_;
  std::vector<std::string> outputs_;
  std::map<std::string, Tensor> values_;
  std::vector<Step> steps_;
  std::unique_ptr<ThreadPool> pool_;
  int threads_ = 1;
  size_t buffer_bytes_ = 0;
  int byte_edges_ = 0;
};

}  // namespace lowbit

#endif  // LOWBIT_RUNTIME_PLAN_H_
