#include "ir/graph.h"

#include <set>

namespace lowbit {

int64_t Node::GetInt(const std::string& key, int64_t def) const {
  auto it = attrs.find(key);
  if (it == attrs.end()) return def;
  if (auto* v = std::get_if<int64_t>(&it->second)) return *v;
  return def;
}

float Node::GetFloat(const std::string& key, float def) const {
  auto it = attrs.find(key);
  if (it == attrs.end()) return def;
  if (auto* v = std::get_if<float>(&it->second)) return *v;
  if (auto* v = std::get_if<int64_t>(&it->second)) return static_cast<float>(*v);
  return def;
}

std::string Node::GetString(const std::string& key, const std::string& def) const {
  auto it = attrs.find(key);
  if (it == attrs.end()) return def;
  if (auto* v = std::get_if<std::string>(&it->second)) return *v;
  return def;
}

std::vector<int64_t> Node::GetInts(const std::string& key, std::vector<int64_t> def) const {
  auto it = attrs.find(key);
  if (it == attrs.end()) return def;
  if (auto* v = std::get_if<std::vector<int64_t>>(&it->second)) return *v;
  if (auto* v = std::get_if<int64_t>(&it->second)) return {*v};
  return def;
}

const std::string& Node::input(size_t i) const {
  static const std::string kEmpty;
  return i < inputs.size() ? inputs[i] : kEmpty;
}

std::string Node::Describe() const { return op_type + " '" + name + "'"; }

int Graph::Uses(const std::string& name) const {
  int n = IsOutput(name) ? 1 : 0;
  for (const Node& node : nodes) {
    for (const std::string& in : node.inputs) n += in == name;
  }
  return n;
}

bool Graph::IsOutput(const std::string& name) const {
  for (const ValueInfo& v : outputs) {
    if (v.name == name) return true;
  }
  return false;
}

int Graph::Producer(const std::string& name) const {
  for (size_t i = 0; i < nodes.size(); ++i) {
    for (const std::string& out : nodes[i].outputs) {
      if (out == name) return static_cast<int>(i);
    }
  }
  return -1;
}

Status VerifyGraph(Graph* g) {
  std::set<std::string> defined;
  for (const ValueInfo& v : g->inputs) defined.insert(v.name);
  for (const auto& [name, t] : g->constants) defined.insert(name);
  std::set<std::string> produced;
  for (const Node& n : g->nodes) {
    // Every operator lowbit knows has a required output 0; the passes read it.
    if (n.outputs.empty() || n.outputs[0].empty()) {
      return InvalidArgument(g->source, ": ", n.Describe(), ": output 0 is missing");
    }
    for (const std::string& out : n.outputs) {
      if (out.empty()) continue;
      if (!produced.insert(out).second || defined.count(out)) {
        return InvalidArgument(g->source, ": value '", out, "' is produced twice (", n.Describe(),
                               ")");
      }
    }
  }
  // Kahn-style ordering: repeatedly take nodes whose inputs are all defined.
  std::vector<Node> ordered;
  std::vector<bool> done(g->nodes.size(), false);
  bool progress = true;
  while (ordered.size() < g->nodes.size() && progress) {
    progress = false;
    for (size_t i = 0; i < g->nodes.size(); ++i) {
      if (done[i]) continue;
      bool ready = true;
      for (const std::string& in : g->nodes[i].inputs) {
        if (!in.empty() && !defined.count(in)) ready = false;
      }
      if (!ready) continue;
      done[i] = true;
      progress = true;
      for (const std::string& out : g->nodes[i].outputs) {
        if (!out.empty()) defined.insert(out);
      }
      ordered.push_back(std::move(g->nodes[i]));
    }
  }
  if (ordered.size() < g->nodes.size()) {
    for (size_t i = 0; i < g->nodes.size(); ++i) {
      if (done[i]) continue;
      for (const std::string& in : g->nodes[i].inputs) {
        if (!in.empty() && !defined.count(in)) {
          return InvalidArgument(g->source, ": ", g->nodes[i].Describe(), " reads '", in,
                                 "', which no input, initializer or node defines (or a cycle)");
        }
      }
    }
  }
  g->nodes = std::move(ordered);
  for (const ValueInfo& out : g->outputs) {
    if (!defined.count(out.name)) {
      return InvalidArgument(g->source, ": graph output '", out.name, "' is never produced");
    }
  }
  return OkStatus();
}

}  // namespace lowbit
