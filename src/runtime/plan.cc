#include "runtime/plan.h"

#include <cblas.h>

#include <chrono>
#include <cstdlib>
#include <set>

#include "base/check.h"
#include "runtime/byte_edges.h"

extern "C" void openblas_set_num_threads(int);

namespace lowbit {
namespace {

Result<Shape> BindInputShape(const ValueInfo& v, const PlanOptions& o, const std::string& source) {
  auto it = o.input_shapes.find(v.name);
  if (it != o.input_shapes.end()) {
    const Shape& s = it->second;
    if (!v.shape.empty() && s.size() != v.shape.size()) {
      return InvalidArgument(source, ": input '", v.name, "' has rank ", v.shape.size(),
                             ", got shape ", ShapeToString(s));
    }
    for (size_t i = 0; i < v.shape.size(); ++i) {
      if (v.shape[i] >= 0 && v.shape[i] != s[i]) {
        return InvalidArgument(source, ": input '", v.name, "' is ", ShapeToString(v.shape),
                               ", got shape ", ShapeToString(s));
      }
    }
    return s;
  }
  Shape s = v.shape;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] >= 0) continue;
    if (i != 0) {
      return InvalidArgument(source, ": input '", v.name, "' ", ShapeToString(v.shape),
                             " has a dynamic dimension ", i, " besides the batch");
    }
    s[i] = o.batch;
  }
  return s;
}

}  // namespace

Result<std::unique_ptr<Plan>> Plan::Create(const Graph& graph, const PlanOptions& options) {
  LOWBIT_RETURN_IF_ERROR(CheckSupported(graph));
  if (options.batch < 1) return InvalidArgument("batch must be >= 1, got ", options.batch);
  if (options.threads < 1) return InvalidArgument("threads must be >= 1, got ", options.threads);
  auto plan = std::unique_ptr<Plan>(new Plan());
  plan->threads_ = options.threads;
  plan->pool_ = std::make_unique<ThreadPool>(options.threads);
  ThreadPool fold_pool(1);
  const ExecContext fold_ctx{&fold_pool, 1};

  // Every buffer the plan allocates is sized by the model's shapes: checked
  // for overflow and, in total, against the memory cap before allocation.
  int64_t reserved = 0;
  auto reserve = [&](DType dtype, const Shape& shape, const std::string& what) -> Status {
    int64_t bytes = 0;
    LOWBIT_ASSIGN_OR_RETURN(bytes, CheckedBytes(dtype, shape, graph.source + ": " + what));
    reserved += bytes;
    if (reserved > MemoryCap()) {
      return InvalidArgument(graph.source, ": ", what, ": the plan needs more than ", reserved,
                             " bytes of tensors, over the memory cap of ", MemoryCap(), " bytes");
    }
    return OkStatus();
  };
  std::map<std::string, TensorInfo> info;
  std::set<std::string> constant;
  for (const auto& [name, t] : graph.constants) {
    plan->values_[name] = t;
    constant.insert(name);
  }
  for (const ValueInfo& v : graph.inputs) {
    auto frozen = options.constant_inputs.find(v.name);
    if (frozen != options.constant_inputs.end()) {
      plan->values_[v.name] = frozen->second;
      constant.insert(v.name);
      continue;
    }
    ValueInfo bound = v;
    LOWBIT_ASSIGN_OR_RETURN(bound.shape, BindInputShape(v, options, graph.source));
    if (bound.dtype == DType::kBool || bound.dtype == DType::kFloat64) {
      return Unimplemented(graph.source, ": input '", v.name, "' has element type ",
                           DTypeName(v.dtype), " (float32, int64, int32, uint8 and int8 are supported)");
    }
    info[v.name] = TensorInfo{true, bound.dtype, bound.shape, nullptr};
    LOWBIT_RETURN_IF_ERROR(reserve(bound.dtype, bound.shape, "input '" + v.name + "'"));
    plan->values_[v.name] = Tensor(bound.dtype, bound.shape);
    plan->inputs_.push_back(bound);
  }
  auto lookup = [&](const std::string& name) {
    TensorInfo t;
    if (name.empty()) return t;
    if (constant.count(name)) {
      const Tensor& c = plan->values_.at(name);
      return TensorInfo{true, c.dtype(), c.shape(), &c};
    }
    return info.at(name);
  };

  std::vector<Node> nodes = graph.nodes;
  ClearByteEdges(&nodes);
  if (options.byte_edges) {
    const std::set<std::string> kept(options.keep.begin(), options.keep.end());
    plan->byte_edges_ = MarkByteEdges(graph, kept, &nodes);
  }

  // Prepare every node; run those whose inputs are all known now.
  for (const Node& node : nodes) {
    const OpRegistration* reg = FindOp(node.domain, node.op_type, node.opset);
    // Every operator the runtime registers reads a first input; kernels may
    // rely on it (later inputs they check themselves).
    if (node.inputs.empty() || node.inputs[0].empty()) {
      return InvalidArgument(graph.source, ": ", node.Describe(), ": input 0 is missing");
    }
    Step step;
    step.kernel = reg->make(node);
    step.kernel->set_kernel_options(options.kernels);
    std::vector<TensorInfo> ins;
    bool all_const = true;
    for (const std::string& name : node.inputs) {
      ins.push_back(lookup(name));
      if (!name.empty() && !constant.count(name)) all_const = false;
    }
    std::vector<TensorInfo> outs(node.outputs.size());
    const Status s = step.kernel->Prepare(ins, &outs);
    if (!s.ok()) return Status(s.code(), graph.source + ": " + s.message());
    // Every later Prepare multiplies these dims: none negative, and no
    // element count past int64 (the memory cap is checked when allocated).
    // A view (Reshape, Flatten, ...) keeps the element count.
    if (step.kernel->IsAlias() && !outs.empty() && !ins.empty() &&
        NumElements(outs[0].shape) != NumElements(ins[0].shape)) {
      return InvalidArgument(graph.source, ": ", node.Describe(), ": output ", ShapeToString(outs[0].shape),
                             " does not hold the ", NumElements(ins[0].shape), " elements of input ",
                             ShapeToString(ins[0].shape));
    }
    // CheckedBytes also bounds the product of the non-zero dims: zero dims do
    // not excuse the others, which strides multiply.
    for (const TensorInfo& o : outs) {
      if (!o.present) continue;
      const Result<int64_t> bytes = CheckedBytes(o.dtype, o.shape, node.Describe() + " output", false);
      if (!bytes.ok()) return Status(bytes.status().code(), graph.source + ": " + bytes.status().message());
    }
    bool any_element = false;
    for (const TensorInfo& o : outs) any_element = any_element || (o.present && NumElements(o.shape) != 0);
    step.computes = any_element && !step.kernel->IsAlias();
    bool outs_known = true;
    for (const TensorInfo& o : outs) outs_known = outs_known && o.constant != nullptr;
    if (outs_known || all_const) {
      // Inputs are only read when the node runs now (all of them constant); a
      // node whose outputs its kernel already knows (Shape) reads none.
      std::vector<const Tensor*> in_ptr;
      if (!outs_known) {
        for (const std::string& name : node.inputs) {
          in_ptr.push_back(name.empty() ? nullptr : &plan->values_.at(name));
        }
      }
      std::vector<Tensor> results;
      for (const TensorInfo& o : outs) {
        if (o.constant == nullptr) LOWBIT_RETURN_IF_ERROR(reserve(o.dtype, o.shape, node.Describe()));
        results.push_back(o.constant != nullptr ? o.constant->Clone() : Tensor(o.dtype, o.shape));
      }
      if (!outs_known) {
        if (step.kernel->IsAlias()) {
          results[0] = in_ptr[0]->Reshaped(outs[0].shape);
        } else if (step.computes) {
          std::vector<Tensor*> out_ptr;
          for (Tensor& r : results) out_ptr.push_back(&r);
          step.kernel->Run(in_ptr, out_ptr, fold_ctx);
        }
      }
      for (size_t i = 0; i < node.outputs.size(); ++i) {
        if (node.outputs[i].empty()) continue;
        plan->values_[node.outputs[i]] = std::move(results[i]);
        constant.insert(node.outputs[i]);
      }
      continue;
    }
    for (size_t i = 0; i < node.outputs.size(); ++i) {
      if (!node.outputs[i].empty()) info[node.outputs[i]] = outs[i];
    }
    step.in = node.inputs;
    step.out = node.outputs;
    step.name = !node.name.empty() || node.outputs.empty() ? node.name : node.outputs[0];
    step.op = node.op_type;
    plan->steps_.push_back(std::move(step));
  }
  for (const ValueInfo& o : graph.outputs) plan->outputs_.push_back(o.name);

  // Buffers: values that alias (reshapes) share a group; a group's buffer is
  // free after the last step reading any of its values, unless it holds a
  // graph input or output.
  std::map<std::string, std::string> group;  // value -> root value
  auto root = [&](const std::string& v) { return group.count(v) ? group[v] : v; };
  for (const Step& st : plan->steps_) {
    if (st.kernel->IsAlias()) group[st.out[0]] = root(st.in[0]);
  }
  std::map<std::string, int> last_use;
  std::set<std::string> pinned;
  for (const ValueInfo& v : plan->inputs_) pinned.insert(v.name);
  for (const std::string& o : plan->outputs_) pinned.insert(root(o));
  for (const std::string& k : options.keep) {
    if (!plan->values_.count(k) && !info.count(k)) {
      return InvalidArgument(graph.source, ": value '", k, "' to keep is not in the graph");
    }
    pinned.insert(root(k));
  }
  for (size_t i = 0; i < plan->steps_.size(); ++i) {
    for (const std::string& v : plan->steps_[i].in) {
      if (!v.empty() && !constant.count(v)) last_use[root(v)] = static_cast<int>(i);
    }
  }
  std::multimap<size_t, Tensor> free_buffers;  // capacity -> storage
  for (size_t i = 0; i < plan->steps_.size(); ++i) {
    Step& st = plan->steps_[i];
    for (size_t j = 0; j < st.out.size(); ++j) {
      const std::string& v = st.out[j];
      if (v.empty()) continue;
      const TensorInfo& ti = info.at(v);
      if (st.kernel->IsAlias()) {
        const Tensor& base = plan->values_.at(st.in[0]);
        if (base.numel() != NumElements(ti.shape)) {
          return InvalidArgument(graph.source, ": ", st.kernel->node().Describe(), ": value '", st.in[0],
                                 "' holds ", base.numel(), " elements, not the ", NumElements(ti.shape),
                                 " of a view ", ShapeToString(ti.shape));
        }
        plan->values_[v] = base.Reshaped(ti.shape);
        continue;
      }
      const size_t need = static_cast<size_t>(NumElements(ti.shape)) * DTypeSize(ti.dtype);
      auto it = free_buffers.lower_bound(need);
      if (it != free_buffers.end()) {
        plan->values_[v] = it->second.View(ti.dtype, ti.shape);
        free_buffers.erase(it);
      } else {
        LOWBIT_RETURN_IF_ERROR(reserve(ti.dtype, ti.shape, "value '" + v + "'"));
        plan->values_[v] = Tensor(ti.dtype, ti.shape);
        plan->buffer_bytes_ += plan->values_[v].capacity();
      }
    }
    // Release groups whose last reader was this step.
    std::set<std::string> released;
    for (const std::string& v : st.in) {
      if (v.empty() || constant.count(v)) continue;
      const std::string r = root(v);
      if (pinned.count(r) || last_use[r] != static_cast<int>(i) || !released.insert(r).second) continue;
      const Tensor& t = plan->values_.at(r);
      free_buffers.emplace(t.capacity(), t);
    }
    // Outputs nobody reads (e.g. an unused Dropout mask) are released at once.
    for (const std::string& v : st.out) {
      if (v.empty() || st.kernel->IsAlias()) continue;
      if (!last_use.count(v) && !pinned.count(v)) {
        const Tensor& t = plan->values_.at(v);
        free_buffers.emplace(t.capacity(), t);
      }
    }
  }
  for (Step& st : plan->steps_) {
    for (const std::string& v : st.in) st.in_ptr.push_back(v.empty() ? nullptr : &plan->values_.at(v));
    for (const std::string& v : st.out) {
      st.out_ptr.push_back(v.empty() ? nullptr : &plan->values_.at(v));
    }
  }
  for (const std::string& o : plan->outputs_) {
    if (!plan->values_.count(o)) {
      return InvalidArgument(graph.source, ": output '", o, "' was not computed");
    }
  }
  return plan;
}

ExecContext Plan::BeginRun() {
  // Our pool parallelises GEMMs itself (see sgemm.h); OpenBLAS's own threads
  // would compete with it for the same cores.
  openblas_set_num_threads(1);
  return ExecContext{pool_.get(), threads_};
}

void Plan::Run(const Observer& observe) {
  const ExecContext ctx = BeginRun();
  if (observe) {
    for (const ValueInfo& v : inputs_) observe(v.name, values_.at(v.name));
  }
  for (Step& st : steps_) {
    if (st.computes) st.kernel->Run(st.in_ptr, st.out_ptr, ctx);
    if (!observe) continue;
    for (size_t i = 0; i < st.out.size(); ++i) {
      if (st.out_ptr[i] != nullptr) observe(st.out[i], *st.out_ptr[i]);
    }
  }
}

void Plan::Run() { Run(Observer()); }

void Plan::RunTimed(std::vector<double>* step_seconds) {
  const ExecContext ctx = BeginRun();
  step_seconds->assign(steps_.size(), 0.0);
  for (size_t i = 0; i < steps_.size(); ++i) {
    Step& st = steps_[i];
    if (!st.computes) continue;
    const auto t0 = std::chrono::steady_clock::now();
    st.kernel->Run(st.in_ptr, st.out_ptr, ctx);
    (*step_seconds)[i] =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
}

}  // namespace lowbit
