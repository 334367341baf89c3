// The public C++ API (include/lowbit/lowbit.h) over the internal libraries.
#include "lowbit/lowbit.h"

#include <algorithm>
#include <filesystem>
#include <mutex>
#include <new>

#include "api/load_model.h"
#include "base/npy.h"
#include "data/dataset.h"
#include "kernels/kernel_path.h"
#include "onnx/onnx_export.h"
#include "quant/cost.h"
#include "quant/quantize.h"
#include "runtime/plan.h"

namespace lowbit {
namespace {

// Runs f, turning any exception into a Status: none crosses the API.
template <typename F>
auto Guarded(F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const std::bad_alloc&) {
    return Status(StatusCode::kInternal, "out of memory");
  } catch (const std::exception& e) {
    return Status(StatusCode::kInternal, e.what());
  }
}

std::string ShapeKey(const std::vector<TensorRef>& inputs) {
  std::string key;
  for (const TensorRef& t : inputs) {
    for (int64_t d : t.shape) key += std::to_string(d) + ",";
    key += ";";
  }
  return key;
}

std::vector<LayerInfo> ToLayerInfo(const std::vector<LayerCost>& costs) {
  std::vector<LayerInfo> out;
  for (const LayerCost& c : costs) {
    LayerInfo l;
    l.name = c.name;
    l.op = c.op;
    l.format = c.format;
    l.granularity = c.granularity;
    l.weight_bits = c.wbits;
    l.act_bits = c.abits;
    l.params = c.params;
    l.bytes = c.bytes();
    l.macs = c.macs;
    l.bitops = c.bitops();
    out.push_back(l);
  }
  return out;
}

// Samples the caller holds in memory, as a dataset (no labels).
class ArrayDataset final : public Dataset {
 public:
  explicit ArrayDataset(const TensorRef& t) : data_(t.data) {
    spec_ = "memory[" + std::to_string(t.shape.empty() ? 0 : t.shape[0]) + " samples]";
    sample_shape_.assign(t.shape.begin() + (t.shape.empty() ? 0 : 1), t.shape.end());
    default_scale_ = 1.0;
    begin_ = 0;
    end_ = total_ = t.shape.empty() ? 0 : t.shape[0];
  }
  Status Read(int64_t index, int64_t n, float* x, int64_t* labels) override {
    if (index < 0 || n < 0 || index + n > size()) return InvalidArgument(spec_, ": read past the end");
    std::copy_n(data_ + index * sample_size(), n * sample_size(), x);
    return OkStatus();
  }

 private:
  const float* data_;
};

}  // namespace

struct Model::Impl {
  Graph graph;
  PlanOptions options;
  std::vector<TensorDesc> inputs, outputs;
  std::mutex mu;
  std::map<std::string, std::vector<std::unique_ptr<Plan>>> idle;  // by input shapes

  // A plan for these input shapes: an idle one, or a new one.
  Result<std::unique_ptr<Plan>> Take(const std::vector<TensorRef>& in) {
    const std::string key = ShapeKey(in);
    {
      std::lock_guard<std::mutex> lock(mu);
      auto& v = idle[key];
      if (!v.empty()) {
        std::unique_ptr<Plan> p = std::move(v.back());
        v.pop_back();
        return p;
      }
    }
    PlanOptions po = options;
    po.batch = in[0].shape.empty() ? 1 : in[0].shape[0];
    for (size_t i = 0; i < in.size(); ++i) po.input_shapes[inputs[i].name] = in[i].shape;
    return Plan::Create(graph, po);
  }
  void Give(const std::vector<TensorRef>& in, std::unique_ptr<Plan> p) {
    std::lock_guard<std::mutex> lock(mu);
    idle[ShapeKey(in)].push_back(std::move(p));
  }
  Status Check(const std::vector<TensorRef>& in) const {
    if (in.size() != inputs.size()) {
      return InvalidArgument(graph.source, ": the model takes ", inputs.size(), " inputs, got ", in.size());
    }
    for (size_t i = 0; i < in.size(); ++i) {
      const TensorDesc& want = inputs[i];
      const TensorRef& t = in[i];
      bool fits = t.data != nullptr && t.shape.size() == want.shape.size();
      for (size_t d = 0; fits && d < t.shape.size(); ++d) {
        fits = t.shape[d] > 0 && (want.shape[d] < 0 || want.shape[d] == t.shape[d] || d == 0);
      }
      if (!fits) {
        return InvalidArgument(graph.source, ": input '", want.name, "' ", ShapeToString(want.shape),
                               " cannot take a tensor of shape ", ShapeToString(t.shape),
                               t.data == nullptr ? " (no data)" : "");
      }
    }
    return OkStatus();
  }
  // Runs a plan on `in`; `sink(i, tensor)` receives each output.
  template <typename Sink>
  Status RunWith(const std::vector<TensorRef>& in, const Sink& sink) {
    LOWBIT_RETURN_IF_ERROR(Check(in));
    std::unique_ptr<Plan> plan;
    LOWBIT_ASSIGN_OR_RETURN(plan, Take(in));
    for (size_t i = 0; i < in.size(); ++i) {
      Tensor& x = plan->input(static_cast<int>(i));
      if (x.dtype() != DType::kFloat32 || x.numel() != NumElements(in[i].shape)) {
        return InvalidArgument(graph.source, ": input '", inputs[i].name, "' is not a float tensor of ",
                               NumElements(in[i].shape), " values here");
      }
      std::copy_n(in[i].data, x.numel(), x.data<float>());
    }
    plan->Run();
    Status st = OkStatus();
    for (int i = 0; i < plan->num_outputs() && st.ok(); ++i) st = sink(i, plan->output(i));
    Give(in, std::move(plan));
    return st;
  }
};

Model::Model(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Model::Model(Model&&) noexcept = default;
Model& Model::operator=(Model&&) noexcept = default;
Model::~Model() = default;

Result<Model> Model::Load(const std::string& path, const ModelOptions& options) {
  return Guarded([&]() -> Result<Model> {
    if (options.threads < 1) return InvalidArgument("threads must be >= 1, got ", options.threads);
    auto impl = std::make_unique<Impl>();
    LOWBIT_ASSIGN_OR_RETURN(impl->graph, LoadModel(path));
    impl->options.threads = options.threads;
    impl->options.byte_edges = options.byte_edges;
    if (!options.kernel.empty()) {
      std::optional<KernelPath> p = ParseKernelPath(options.kernel);
      if (!p) return InvalidArgument("kernel '", options.kernel, "' is not a kernel path");
      if (!KernelPathAvailable(*p)) return InvalidArgument("kernel '", options.kernel, "' does not run on this CPU");
      impl->options.kernels.path = p;
    }
    for (const ValueInfo& v : impl->graph.inputs) impl->inputs.push_back({v.name, v.shape});
    for (const ValueInfo& v : impl->graph.outputs) impl->outputs.push_back({v.name, v.shape});
    return Model(std::move(impl));
  });
}

const std::vector<TensorDesc>& Model::inputs() const { return impl_->inputs; }
const std::vector<TensorDesc>& Model::outputs() const { return impl_->outputs; }

Result<std::vector<Array>> Model::Run(const std::vector<TensorRef>& inputs) const {
  return Guarded([&]() -> Result<std::vector<Array>> {
    std::vector<Array> out(impl_->outputs.size());
    LOWBIT_RETURN_IF_ERROR(impl_->RunWith(inputs, [&](int i, const Tensor& t) -> Status {
      if (t.dtype() != DType::kFloat32) {
        return Unimplemented("output '", impl_->outputs[i].name, "' is ", DTypeName(t.dtype()), ", not float");
      }
      out[i].shape = t.shape();
      out[i].data.assign(t.data<float>(), t.data<float>() + t.numel());
      return OkStatus();
    }));
    return out;
  });
}

Result<std::vector<Array>> Model::Run(const std::map<std::string, TensorRef>& inputs) const {
  std::vector<TensorRef> ordered;
  for (const TensorDesc& info : impl_->inputs) {
    auto it = inputs.find(info.name);
    if (it == inputs.end()) return InvalidArgument(impl_->graph.source, ": no tensor for input '", info.name, "'");
    ordered.push_back(it->second);
  }
  if (inputs.size() != ordered.size()) {
    for (const auto& kv : inputs) {
      const std::string& name = kv.first;
      const bool known = std::any_of(impl_->inputs.begin(), impl_->inputs.end(),
                                     [&](const TensorDesc& i) { return i.name == name; });
      if (!known) return InvalidArgument(impl_->graph.source, ": the model has no input '", name, "'");
    }
  }
  return Run(ordered);
}

Status Model::RunInto(const std::vector<TensorRef>& inputs, std::vector<OutputRef>* outputs) const {
  return Guarded([&]() -> Status {
    if (outputs == nullptr || outputs->size() != impl_->outputs.size()) {
      return InvalidArgument("RunInto: ", impl_->outputs.size(), " output buffers needed");
    }
    return impl_->RunWith(inputs, [&](int i, const Tensor& t) -> Status {
      OutputRef& o = (*outputs)[i];
      if (t.dtype() != DType::kFloat32) return Unimplemented("output '", impl_->outputs[i].name, "' is not float");
      if (o.data == nullptr || o.size < t.numel()) {
        return InvalidArgument("RunInto: output '", impl_->outputs[i].name, "' needs ", t.numel(),
                               " floats, the buffer holds ", o.size);
      }
      o.shape = t.shape();
      std::copy_n(t.data<float>(), t.numel(), o.data);
      return OkStatus();
    });
  });
}

Result<std::vector<LayerInfo>> Model::Layers() const {
  return Guarded([&]() -> Result<std::vector<LayerInfo>> {
    std::vector<LayerCost> costs;
    LOWBIT_ASSIGN_OR_RETURN(costs, LayerCosts(impl_->graph));
    return ToLayerInfo(costs);
  });
}

Status Model::Save(const std::string& path) const {
  return Guarded([&]() -> Status { return ExportOnnx(impl_->graph, path); });
}

std::vector<std::pair<std::string, bool>> KernelPaths() {
  std::vector<std::pair<std::string, bool>> out;
  for (KernelPath p : AllKernelPaths()) out.emplace_back(KernelPathName(p), KernelPathAvailable(p));
  return out;
}

Result<QuantizeSummary> Quantize(const std::string& model_path, const std::string& out_path,
                                 const QuantizeConfig& config) {
  return Guarded([&]() -> Result<QuantizeSummary> {
    QuantizeOptions o;
    std::vector<std::string> rules;
    for (const auto& [pattern, weights] : config.layers) rules.push_back(pattern + "=" + weights);
    LOWBIT_ASSIGN_OR_RETURN(o.plan, PlanFromOptions(config.plan_file, config.weights, config.granularity,
                                                    config.acts, rules, "config"));
    LOWBIT_RETURN_IF_ERROR(ParseCalibOptions(config.act_calib, config.weight_clip, &o));
    o.weight_fit.seed = config.seed;
    o.prune = config.prune;
    LOWBIT_RETURN_IF_ERROR(ParseRounding(config.rounding, &o, o.plan.rounding));
    o.bias_correction = config.bias_correction;
    if (config.threads < 1) return InvalidArgument("threads must be >= 1, got ", config.threads);
    o.threads = config.threads;
    o.quiet = true;
    o.preprocess.scale = config.preprocess_scale;
    o.preprocess.mean = config.mean;
    o.preprocess.std = config.stddev;
    Graph g;  // older than opset 13: converted where it can be, as `lowbit quantize` does
    LOWBIT_ASSIGN_OR_RETURN(g, LoadModel(model_path, 13, nullptr));
    std::unique_ptr<Dataset> calib;
    if (!config.calib_spec.empty() && config.calib_samples.data != nullptr) {
      return InvalidArgument("give calib_spec or calib_samples, not both");
    }
    if (!config.calib_spec.empty()) {
      LOWBIT_ASSIGN_OR_RETURN(calib, Dataset::Open(config.calib_spec));
    } else if (config.calib_samples.data != nullptr) {
      if (config.calib_samples.shape.size() < 2 || NumElements(config.calib_samples.shape) <= 0) {
        return InvalidArgument("calib_samples: expected [n, ...] samples, got shape ",
                               ShapeToString(config.calib_samples.shape));
      }
      calib = std::make_unique<ArrayDataset>(config.calib_samples);
    }
    if (calib != nullptr) {
      if (calib->size() == 0) return InvalidArgument("calibration data '", calib->spec(), "' has no samples");
      o.calib = calib.get();
    }
    QuantizeResult r;
    LOWBIT_ASSIGN_OR_RETURN(r, QuantizeGraph(g, o));
    ExportOptions eo;
    eo.graph_name = std::filesystem::path(model_path).stem().string() + " (lowbit)";
    LOWBIT_RETURN_IF_ERROR(ExportOnnx(r.graph, out_path, eo));
    QuantizeSummary s;
    s.input_bytes = static_cast<int64_t>(std::filesystem::file_size(model_path));
    s.output_bytes = static_cast<int64_t>(std::filesystem::file_size(out_path));
    std::vector<LayerCost> costs;
    LOWBIT_ASSIGN_OR_RETURN(costs, LayerCosts(r.graph));
    s.layers = ToLayerInfo(costs);
    return s;
  });
}

}  // namespace lowbit
