#include "onnx/onnx_export.h"

#include <onnx/checker.h>
#include <onnx/onnx_pb.h>

#include <set>

#include "base/npy.h"
#include "onnx/checker_message.h"

namespace lowbit {
namespace {

int ToOnnxType(DType t) {
  switch (t) {
    case DType::kFloat32: return onnx::TensorProto::FLOAT;
    case DType::kInt64: return onnx::TensorProto::INT64;
    case DType::kInt32: return onnx::TensorProto::INT32;
    case DType::kUint8: return onnx::TensorProto::UINT8;
    case DType::kInt8: return onnx::TensorProto::INT8;
    case DType::kBool: return onnx::TensorProto::BOOL;
    case DType::kFloat64: return onnx::TensorProto::DOUBLE;
  }
  return onnx::TensorProto::UNDEFINED;
}

void ToTensorProto(const std::string& name, const Tensor& t, onnx::TensorProto* p) {
  p->set_name(name);
  p->set_data_type(ToOnnxType(t.dtype()));
  for (int64_t d : t.shape()) p->add_dims(d);
  p->set_raw_data(std::string(static_cast<const char*>(t.raw()), t.bytes()));
}

void ToValueInfo(const ValueInfo& v, onnx::ValueInfoProto* p) {
  p->set_name(v.name);
  auto* tt = p->mutable_type()->mutable_tensor_type();
  tt->set_elem_type(ToOnnxType(v.dtype));
  auto* shape = tt->mutable_shape();
  for (int64_t d : v.shape) {
    auto* dim = shape->add_dim();
    if (d >= 0) {
      dim->set_dim_value(d);
    } else {
      dim->set_dim_param("batch");
    }
  }
}

void ToAttribute(const std::string& name, const Attribute& a, onnx::AttributeProto* p) {
  p->set_name(name);
  if (const auto* i = std::get_if<int64_t>(&a)) {
    p->set_type(onnx::AttributeProto::INT);
    p->set_i(*i);
  } else if (const auto* f = std::get_if<float>(&a)) {
    p->set_type(onnx::AttributeProto::FLOAT);
    p->set_f(*f);
  } else if (const auto* s = std::get_if<std::string>(&a)) {
    p->set_type(onnx::AttributeProto::STRING);
    p->set_s(*s);
  } else if (const auto* is = std::get_if<std::vector<int64_t>>(&a)) {
    p->set_type(onnx::AttributeProto::INTS);
    for (int64_t v : *is) p->add_ints(v);
  } else if (const auto* fs = std::get_if<std::vector<float>>(&a)) {
    p->set_type(onnx::AttributeProto::FLOATS);
    for (float v : *fs) p->add_floats(v);
  } else if (const auto* t = std::get_if<Tensor>(&a)) {
    p->set_type(onnx::AttributeProto::TENSOR);
    ToTensorProto("", *t, p->mutable_t());
  } else if (const auto* ss = std::get_if<std::vector<std::string>>(&a)) {
    p->set_type(onnx::AttributeProto::STRINGS);
    for (const std::string& v : *ss) p->add_strings(v);
  }
}

// Operators the graph passes introduce (exporter_patterns.cc) written in the
// model's opset when it predates them: HardSwish (14) as HardSigmoid and
// Mul, LayerNormalization over the last axis (17) decomposed, Clip with
// bound inputs (11) with bound attributes. True when `n` was written so.
bool WriteLowered(const Graph& g, const Node& n, onnx::GraphProto* gp) {
  if (!n.domain.empty()) return false;
  auto node = [&](const char* op, std::vector<std::string> in, const std::string& out) {
    onnx::NodeProto* p = gp->add_node();
    p->set_name(n.name + "/" + op + std::to_string(gp->node_size()));
    p->set_op_type(op);
    for (const std::string& i : in) p->add_input(i);
    p->add_output(out);
    return p;
  };
  auto constant = [&](const std::string& suffix, float v) {
    const std::string name = n.name + "/" + suffix;
    ToTensorProto(name, Tensor::FromFloats({}, {v}), gp->add_initializer());
    return name;
  };
  const std::string x = n.inputs.empty() ? "" : n.inputs[0];
  if (n.op_type == "HardSwish" && g.opset < 14) {
    onnx::NodeProto* h = node("HardSigmoid", {x}, n.name + "/hardsigmoid");
    ToAttribute("alpha", Attribute(1.0f / 6.0f), h->add_attribute());
    ToAttribute("beta", Attribute(0.5f), h->add_attribute());
    node("Mul", {x, n.name + "/hardsigmoid"}, n.outputs[0]);
    return true;
  }
  if (n.op_type == "LayerNormalization" && g.opset < 17 && n.GetInt("axis", -1) == -1 && n.outputs.size() == 1) {
    auto mean = [&](const std::string& in, const std::string& out) {
      onnx::NodeProto* m = node("ReduceMean", {in}, out);
      ToAttribute("axes", Attribute(std::vector<int64_t>{-1}), m->add_attribute());
    };
    const std::string b = n.name + "/";
    mean(x, b + "mean");
    node("Sub", {x, b + "mean"}, b + "centered");
    node("Pow", {b + "centered", constant("two", 2.0f)}, b + "squared");
    mean(b + "squared", b + "variance");
    node("Add", {b + "variance", constant("epsilon", n.GetFloat("epsilon", 1e-5f))}, b + "variance_eps");
    node("Sqrt", {b + "variance_eps"}, b + "std");
    node("Div", {b + "centered", b + "std"}, b + "normalized");
    const bool bias = n.inputs.size() > 2 && !n.inputs[2].empty();
    node("Mul", {b + "normalized", n.inputs[1]}, bias ? b + "scaled" : n.outputs[0]);
    if (bias) node("Add", {b + "scaled", n.inputs[2]}, n.outputs[0]);
    return true;
  }
  if (n.op_type == "Clip" && g.opset < 11 && n.opset >= 11) {
    std::vector<std::pair<const char*, float>> bounds;
    for (int i = 1; i < 3; ++i) {
      if (n.input(i).empty()) continue;
      auto it = g.constants.find(n.input(i));
      if (it == g.constants.end() || it->second.numel() != 1 || it->second.dtype() != DType::kFloat32) return false;
      bounds.emplace_back(i == 1 ? "min" : "max", it->second.data<float>()[0]);
    }
    onnx::NodeProto* c = node("Clip", {x}, n.outputs[0]);
    for (const auto& [key, v] : bounds) ToAttribute(key, Attribute(v), c->add_attribute());
    return true;
  }
  return false;
}

constexpr const char* kActivationAttr = "lowbit.activation";
constexpr const char* kResidualAttr = "lowbit.residual";

}  // namespace

Result<std::string> ExportOnnxBytes(const Graph& g, const ExportOptions& options) {
  onnx::ModelProto model;
  model.set_ir_version(8);
  model.set_producer_name("lowbit");
  model.set_producer_version(options.producer_version);
  auto* opset = model.add_opset_import();
  opset->set_domain("");
  opset->set_version(g.opset);
  std::set<std::string> domains;
  for (const Node& n : g.nodes) {
    if (!n.domain.empty()) domains.insert(n.domain);
  }
  for (const std::string& d : domains) {
    auto* o = model.add_opset_import();
    o->set_domain(d);
    int version = 1;
    for (const Node& n : g.nodes) {
      if (n.domain == d) version = std::max(version, n.opset);
    }
    o->set_version(version);
  }
  onnx::GraphProto* gp = model.mutable_graph();
  gp->set_name(options.graph_name);
  for (const auto& [name, t] : g.constants) ToTensorProto(name, t, gp->add_initializer());
  for (const ValueInfo& v : g.inputs) ToValueInfo(v, gp->add_input());
  for (const ValueInfo& v : g.outputs) ToValueInfo(v, gp->add_output());
  for (const Node& n : g.nodes) {
    if (WriteLowered(g, n, gp)) continue;
    onnx::NodeProto* np = gp->add_node();
    np->set_name(n.name);
    np->set_op_type(n.op_type);
    if (!n.domain.empty()) np->set_domain(n.domain);
    // A fused residual and a fused activation on a standard node become
    // their own nodes again (Add, then Relu or Clip): the default domain has
    // no form for them. Custom nodes keep both.
    const bool residual = n.domain.empty() && n.Has(kResidualAttr) && n.inputs.size() > 3;
    const std::string act = n.GetString(kActivationAttr, "");
    const bool unfuse = n.domain.empty() && !act.empty();
    size_t inputs = residual ? 3 : n.inputs.size();
    while (residual && inputs > 0 && n.inputs[inputs - 1].empty()) --inputs;  // no trailing ""
    for (size_t i = 0; i < inputs; ++i) np->add_input(n.inputs[i]);
    const std::string preact = unfuse ? n.outputs[0] + "_preact" : n.outputs[0];
    for (size_t i = 0; i < n.outputs.size(); ++i) {
      np->add_output(i > 0 ? n.outputs[i] : residual ? n.outputs[0] + "_conv" : preact);
    }
    for (const auto& [key, value] : n.attrs) {
      if (n.domain.empty() && key.rfind("lowbit.", 0) == 0) continue;
      ToAttribute(key, value, np->add_attribute());
    }
    if (residual) {
      onnx::NodeProto* add = gp->add_node();
      add->set_name(n.name + "_residual");
      add->set_op_type("Add");
      add->add_input(n.outputs[0] + "_conv");
      add->add_input(n.inputs[3]);
      add->add_output(preact);
    }
    if (!unfuse) continue;
    onnx::NodeProto* an = gp->add_node();
    an->set_name(n.name + "_" + act);
    an->set_op_type(act == "Relu" ? "Relu" : "Clip");
    an->add_input(n.outputs[0] + "_preact");
    an->add_output(n.outputs[0]);
    if (act != "Relu") {
      const float lo = n.GetFloat("lowbit.clip_min", 0), hi = n.GetFloat("lowbit.clip_max", 0);
      if (g.opset >= 11) {
        for (const auto& [suffix, v] : {std::pair<const char*, float>{"_min", lo}, {"_max", hi}}) {
          const std::string name = n.name + "_clip" + suffix;
          ToTensorProto(name, Tensor::FromFloats({}, {v}), gp->add_initializer());
          an->add_input(name);
        }
      } else {
        ToAttribute("min", Attribute(lo), an->add_attribute());
        ToAttribute("max", Attribute(hi), an->add_attribute());
      }
    }
  }
  if (std::string msg = CheckerMessage(model); !msg.empty()) {
    return Internal("export produced a model the ONNX checker refuses: ", msg);
  }
  std::string bytes;
  if (!model.SerializeToString(&bytes)) {
    return Internal("export: protobuf serialization failed (model over 2 GiB?)");
  }
  return bytes;
}

Status ExportOnnx(const Graph& g, const std::string& path, const ExportOptions& options) {
  std::string bytes;
  LOWBIT_ASSIGN_OR_RETURN(bytes, ExportOnnxBytes(g, options));
  return WriteFileAtomic(path, bytes);
}

}  // namespace lowbit
