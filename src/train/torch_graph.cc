#include "train/torch_graph.h"

#include <c10/util/Exception.h>

#include <stdexcept>

#include "quant/quantize_layer.h"
#include "train/torch_ops.h"

namespace lowbit::train {
namespace {

torch::Tensor FromIr(const Tensor& t) {
  std::vector<int64_t> shape = t.shape();
  switch (t.dtype()) {
    case DType::kFloat32:
      return torch::from_blob(const_cast<void*>(t.raw()), shape, torch::kFloat32).clone();
    case DType::kInt64:
      return torch::from_blob(const_cast<void*>(t.raw()), shape, torch::kLong).clone();
    case DType::kInt32:
      return torch::from_blob(const_cast<void*>(t.raw()), shape, torch::kInt32).to(torch::kLong);
    case DType::kFloat64:
      return torch::from_blob(const_cast<void*>(t.raw()), shape, torch::kFloat64).to(torch::kFloat32);
    case DType::kBool:
      return torch::from_blob(const_cast<void*>(t.raw()), shape, torch::kBool).clone();
    case DType::kUint8:
      return torch::from_blob(const_cast<void*>(t.raw()), shape, torch::kUInt8).clone();
    case DType::kInt8:
      return torch::from_blob(const_cast<void*>(t.raw()), shape, torch::kInt8).clone();
  }
  return {};
}

Tensor ToIr(const torch::Tensor& t) {
  const torch::Tensor c = t.detach().to(torch::kFloat32).contiguous();
  std::vector<float> v(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
  return Tensor::FromFloats(Shape(c.sizes().begin(), c.sizes().end()), v);
}

std::string SupportedList() {
  return "Conv, Gemm, MatMul, Add, Sub, Mul, Div, Relu, Clip, Sigmoid, Tanh, LeakyRelu, Identity, "
         "Dropout, MaxPool, AveragePool, GlobalAveragePool, BatchNormalization, Softmax, "
         "LogSoftmax, Flatten, Reshape, Transpose, Concat, Squeeze, Unsqueeze, Pad, Shape, Gather";
}

}  // namespace

Status TorchStatus(const std::exception& e, const std::string& where) {
  std::string what;
  if (const auto* c = dynamic_cast<const c10::Error*>(&e)) {
    what = c->what_without_backtrace();
  } else {
    what = e.what();
  }
  const size_t nl = what.find('\n');
  if (nl != std::string::npos) what = what.substr(0, nl);
  return InvalidArgument(where, ": ", what);
}

Result<std::unique_ptr<TorchGraph>> TorchGraph::Build(const Graph& graph) {
  auto tg = std::make_unique<TorchGraph>();
  tg->graph_ = graph;
  if (graph.inputs.empty() || graph.outputs.empty()) {
    return InvalidArgument(graph.source, ": training needs a graph input and an output");
  }
  if (graph.inputs[0].dtype != DType::kFloat32) {
    return InvalidArgument(graph.source, ": training needs a float input; '", graph.inputs[0].name,
                           "' is ", DTypeName(graph.inputs[0].dtype));
  }
  for (const Node& n : graph.nodes) {
    if (!n.domain.empty() || FindTorchOp(n.op_type) == nullptr) {
      return Unimplemented(graph.source, ": ", n.Describe(),
                           " cannot be trained through; training runs ", SupportedList());
    }
  }
  for (const auto& [name, t] : graph.constants) tg->constants_[name] = FromIr(t);
  for (QuantLayer& l : QuantLayers(graph)) {
    TrainLayer tl;
    tl.w = torch::tensor(l.w, torch::kFloat32).view(l.wshape).clone().requires_grad_(true);
    if (!l.bias.empty()) tl.b = torch::tensor(l.bias, torch::kFloat32).clone().requires_grad_(true);
    tl.layer = std::move(l);
    tg->layer_of_node_[tl.layer.node] = static_cast<int>(tg->layers_.size());
    tg->layers_.push_back(std::move(tl));
  }
  return tg;
}

torch::Tensor TorchGraph::Forward(const torch::Tensor& x, bool quantized) {
  std::map<std::string, torch::Tensor> values;
  values[graph_.inputs[0].name] = x;
  auto get = [&](const std::string& name) -> torch::Tensor {
    if (name.empty()) return {};
    auto v = values.find(name);
    if (v != values.end()) return v->second;
    auto c = constants_.find(name);
    if (c != constants_.end()) return c->second;
    throw std::runtime_error("value '" + name + "' is not defined");
  };
  for (int i = 0; i < static_cast<int>(graph_.nodes.size()); ++i) {
    const Node& n = graph_.nodes[i];
    auto li = layer_of_node_.find(i);
    if (li != layer_of_node_.end()) {
      TrainLayer& l = layers_[li->second];
      torch::Tensor xin = get(n.input(0));
      if (quantized && l.xq) xin = l.xq->Forward(xin);
      torch::Tensor w = l.w;
      if (quantized && l.bq) {
        w = l.bq->Forward(l.w);
      } else if (quantized && l.wq) {
        w = l.wq->Forward(l.w);
      }
      torch::Tensor y;
      if (l.layer.op == "Conv") {
        y = TorchConv(n, xin, w, l.b);
        if (n.GetInt("lowbit.residual", 0) != 0) {
          torch::Tensor r = get(n.input(3));
          if (quantized && l.rq) r = l.rq->Forward(r);
          y = y + r;
        }
      } else {
        y = torch::matmul(xin, w.t());
        if (l.b.defined()) y = y + l.b;
      }
      values[n.outputs[0]] = ApplyFusedActivation(n, y);
      continue;
    }
    std::vector<torch::Tensor> in;
    for (const std::string& name : n.inputs) in.push_back(get(name));
    std::vector<torch::Tensor> out = FindTorchOp(n.op_type)(n, in);
    for (size_t k = 0; k < out.size() && k < n.outputs.size(); ++k) {
      if (!n.outputs[k].empty()) values[n.outputs[k]] = out[k];
    }
  }
  return get(graph_.outputs[0].name);
}

std::vector<torch::Tensor> TorchGraph::Parameters() const {
  std::vector<torch::Tensor> out;
  for (const TrainLayer& l : layers_) {
    out.push_back(l.w);
    if (l.b.defined()) out.push_back(l.b);
  }
  for (const TrainLayer& l : layers_) {
    if (l.wq) for (const torch::Tensor& t : l.wq->Parameters()) out.push_back(t);
    if (l.bq) for (const torch::Tensor& t : l.bq->Parameters()) out.push_back(t);
    if (l.xq) for (const torch::Tensor& t : l.xq->Parameters()) out.push_back(t);
    if (l.rq) for (const torch::Tensor& t : l.rq->Parameters()) out.push_back(t);
  }
  return out;
}

Graph TorchGraph::TrainedGraph() const {
  Graph g = graph_;
  for (const TrainLayer& l : layers_) {
    Node& n = g.nodes[l.layer.node];
    const std::string w = n.name + ".trained_w", b = n.name + ".trained_b";
    if (l.layer.op == "MatMul") {
      g.constants[w] = ToIr(l.w.t());
      n.inputs[1] = w;
      continue;
    }
    g.constants[w] = ToIr(l.w);
    n.inputs[1] = w;
    if (n.inputs.size() < 3) n.inputs.resize(3);
    n.inputs[2] = l.b.defined() ? b : "";
    if (l.b.defined()) g.constants[b] = ToIr(l.b);
    if (l.layer.op == "Gemm") {
      n.attrs["transB"] = int64_t{1};
      n.attrs["alpha"] = 1.0f;
      n.attrs["beta"] = 1.0f;
    }
  }
  DropUnusedConstants(&g);
  return g;
}

}  // namespace lowbit::train
