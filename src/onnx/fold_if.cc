#include "onnx/fold_if.h"

#include <map>
#include <optional>
#include <string>

namespace lowbit {
namespace {

// The value of a one-element bool/int tensor, if it is one.
std::optional<bool> ScalarTruth(const onnx::TensorProto& t) {
  for (int64_t d : t.dims()) {
    if (d != 1) return std::nullopt;  // one element: every dim 1 (no product to overflow)
  }
  if (t.data_type() == onnx::TensorProto::BOOL || t.data_type() == onnx::TensorProto::INT32 ||
      t.data_type() == onnx::TensorProto::UINT8) {
    if (t.int32_data_size() == 1) return t.int32_data(0) != 0;
    if (t.has_raw_data() && t.raw_data().size() >= 1) return t.raw_data()[0] != 0;
  }
  if (t.data_type() == onnx::TensorProto::INT64) {
    if (t.int64_data_size() == 1) return t.int64_data(0) != 0;
  }
  return std::nullopt;
}

std::optional<bool> ConstantCondition(const onnx::GraphProto& g, const std::string& name) {
  for (const auto& init : g.initializer()) {
    if (init.name() == name) return ScalarTruth(init);
  }
  for (const auto& n : g.node()) {
    if (n.op_type() != "Constant" || n.output_size() != 1 || n.output(0) != name) continue;
    for (const auto& a : n.attribute()) {
      if (a.name() == "value" && a.has_t()) return ScalarTruth(a.t());
    }
  }
  return std::nullopt;
}

}  // namespace

int FoldConstantIfs(onnx::GraphProto* graph) {
  int folded = 0;
  for (int round = 0; round < 16; ++round) {  // nested Ifs surface one level per round
    bool changed = false;
    onnx::GraphProto out = *graph;
    out.clear_node();
    for (const onnx::NodeProto& n : graph->node()) {
      std::optional<bool> cond;
      if (n.op_type() == "If" && (n.domain().empty() || n.domain() == "ai.onnx") && n.input_size() == 1) {
        cond = ConstantCondition(*graph, n.input(0));
      }
      const onnx::GraphProto* branch = nullptr;
      if (cond) {
        for (const auto& a : n.attribute()) {
          if (a.name() == (*cond ? "then_branch" : "else_branch") && a.has_g()) branch = &a.g();
        }
      }
      if (branch == nullptr || branch->output_size() != n.output_size()) {
        *out.add_node() = n;
        continue;
      }
      // The branch's initializers and nodes, its outputs renamed to the If's
      // through Identity nodes.
      for (const auto& init : branch->initializer()) *out.add_initializer() = init;
      for (const auto& b : branch->node()) *out.add_node() = b;
      for (int i = 0; i < n.output_size(); ++i) {
        onnx::NodeProto* id = out.add_node();
        id->set_op_type("Identity");
        id->set_name(n.name() + "/" + (*cond ? "then" : "else") + "/output_" + std::to_string(i));
        id->add_input(branch->output(i).name());
        id->add_output(n.output(i));
      }
      changed = true;
      ++folded;
    }
    *graph = std::move(out);
    if (!changed) break;
  }
  return folded;
}

}  // namespace lowbit
