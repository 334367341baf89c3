// Rewrites of what exporters other than PyTorch's write (tf2onnx,
// paddle2onnx) into the forms the fusions and kernels know: Max/Min with a
// constant as Clip, back-to-back Clips merged, x * HardSigmoid(x) as
// HardSwish, Transpose pairs that cancel removed, and the decomposed layer
// norm as LayerNormalization.
#include <algorithm>
#include <cmath>
#include <limits>

#include "ir/passes.h"

namespace lowbit {
namespace {

const Tensor* ScalarFloat(const Graph& g, const std::string& name) {
  auto it = g.constants.find(name);
  if (it == g.constants.end() || it->second.dtype() != DType::kFloat32 || it->second.numel() != 1) {
    return nullptr;
  }
  return &it->second;
}

// A Clip node (opset >= 11 form: bounds as inputs) named `name`.
Node MakeClip(Graph* g, const Node& like, const std::string& name, const std::string& x, const std::string& y,
              float lo, float hi) {
  Node c;
  c.name = name;
  c.op_type = "Clip";
  c.opset = std::max(like.opset, 11);
  const std::string lo_name = name + "/min", hi_name = name + "/max";
  g->constants[lo_name] = Tensor::FromFloats({}, {lo});
  g->constants[hi_name] = Tensor::FromFloats({}, {hi});
  c.inputs = {x, lo_name, hi_name};
  c.outputs = {y};
  return c;
}

}  // namespace

int RewriteMinMaxAsClip(Graph* g) {
  int rewritten = 0;
  for (Node& n : g->nodes) {
    if (!n.domain.empty() || (n.op_type != "Max" && n.op_type != "Min") || n.inputs.size() != 2 ||
        n.outputs.size() != 1) {
      continue;
    }
    for (int side = 0; side < 2; ++side) {
      const Tensor* c = ScalarFloat(*g, n.inputs[side]);
      if (c == nullptr || g->IsConstant(n.inputs[1 - side])) continue;
      const float v = c->data<float>()[0];
      if (std::isnan(v)) continue;
      const float inf = std::numeric_limits<float>::infinity();
      const bool max = n.op_type == "Max";
      n = MakeClip(g, n, n.name + "/as_clip", n.inputs[1 - side], n.outputs[0], max ? v : -inf, max ? inf : v);
      ++rewritten;
      break;
    }
  }
  return rewritten;
}

int MergeClips(Graph* g) {
  int merged = 0;
  for (size_t i = 0; i < g->nodes.size(); ++i) {
    const Node& outer = g->nodes[i];
    if (!outer.domain.empty() || outer.op_type != "Clip" || outer.inputs.empty()) continue;
    const int p = g->Producer(outer.inputs[0]);
    if (p < 0 || g->Uses(outer.inputs[0]) != 1) continue;
    const Node& inner = g->nodes[p];
    if (!inner.domain.empty() || inner.op_type != "Clip") continue;
    float a, b, c, d;
    if (!ClipBounds(*g, inner, &a, &b) || !ClipBounds(*g, outer, &c, &d)) continue;
    const float lo = std::max(a, c), hi = std::min(b, d);
    if (!(lo <= hi)) continue;  // disjoint: the result is a constant; leave it
    Node m = MakeClip(g, outer, outer.name + "/merged", inner.inputs[0], outer.outputs[0], lo, hi);
    g->nodes[i] = std::move(m);
    g->nodes.erase(g->nodes.begin() + p);
    --i;
    ++merged;
  }
  return merged;
}

int FuseHardSwish(Graph* g) {
  int fused = 0;
  for (size_t i = 0; i < g->nodes.size(); ++i) {
    const Node& mul = g->nodes[i];
    if (!mul.domain.empty() || mul.op_type != "Mul" || mul.inputs.size() != 2) continue;
    for (int side = 0; side < 2; ++side) {
      const int p = g->Producer(mul.inputs[side]);
      if (p < 0 || g->Uses(mul.inputs[side]) != 1) continue;
      const Node& hs = g->nodes[p];
      if (!hs.domain.empty() || hs.op_type != "HardSigmoid" || hs.inputs.empty() ||
          hs.inputs[0] != mul.inputs[1 - side]) {
        continue;
      }
      const float alpha = hs.GetFloat("alpha", 0.2f), beta = hs.GetFloat("beta", 0.5f);
      if (std::fabs(alpha - 1.0f / 6.0f) > 1e-6f || std::fabs(beta - 0.5f) > 1e-6f) continue;
      Node h;
      h.name = mul.name + "/hardswish";
      h.op_type = "HardSwish";
      h.opset = std::max(mul.opset, 14);
      h.inputs = {hs.inputs[0]};
      h.outputs = mul.outputs;
      g->nodes[i] = std::move(h);
      g->nodes.erase(g->nodes.begin() + p);
      --i;
      ++fused;
      break;
    }
  }
  return fused;
}

int CancelTransposePairs(Graph* g) {
  int cancelled = 0;
  for (size_t i = 0; i < g->nodes.size(); ++i) {
    const Node& second = g->nodes[i];
    if (!second.domain.empty() || second.op_type != "Transpose" || second.inputs.empty()) continue;
    const int p = g->Producer(second.inputs[0]);
    if (p < 0 || g->Uses(second.inputs[0]) != 1) continue;
    const Node& first = g->nodes[p];
    if (!first.domain.empty() || first.op_type != "Transpose") continue;
    const std::vector<int64_t> a = first.GetInts("perm"), b = second.GetInts("perm");
    if (a.empty() || a.size() != b.size()) continue;  // default perms reverse: cancel too, but rare
    bool identity = true;
    for (size_t k = 0; k < b.size(); ++k) {
      identity = identity && b[k] >= 0 && b[k] < static_cast<int64_t>(a.size()) && a[b[k]] == static_cast<int64_t>(k);
    }
    if (!identity || g->IsOutput(second.outputs[0])) continue;
    // Readers of the second output read the first's input.
    const std::string from = second.outputs[0], to = first.inputs[0];
    for (Node& n : g->nodes) {
      for (std::string& in : n.inputs) {
        if (in == from) in = to;
      }
    }
    const size_t hi = std::max<size_t>(i, p), lo = std::min<size_t>(i, p);
    g->nodes.erase(g->nodes.begin() + hi);
    g->nodes.erase(g->nodes.begin() + lo);
    i = lo == 0 ? 0 : lo - 1;
    ++cancelled;
  }
  return cancelled;
}

// mean = ReduceMean(x, [-1]); d = Sub(x, mean); v = ReduceMean(Pow(d, 2), [-1]);
// y = Div(d, Sqrt(Add(v, eps))) [* scale] [+ bias]  ->  LayerNormalization.
int FuseLayerNorms(Graph* g) {
  int fused = 0;
  auto producer = [&](const std::string& v, const char* op) -> const Node* {
    const int p = g->Producer(v);
    if (p < 0 || g->nodes[p].op_type != op || !g->nodes[p].domain.empty()) return nullptr;
    return &g->nodes[p];
  };
  auto last_axis_mean = [&](const Node* n) {
    if (n == nullptr || n->GetInt("keepdims", 1) != 1) return false;
    std::vector<int64_t> axes = n->GetInts("axes");
    if (n->inputs.size() > 1 && g->IsConstant(n->inputs[1])) axes = g->constants.at(n->inputs[1]).ToInt64();
    return axes.size() == 1 && axes[0] == -1;
  };
  for (size_t i = 0; i < g->nodes.size(); ++i) {
    const Node& div = g->nodes[i];
    if (!div.domain.empty() || div.op_type != "Div" || div.inputs.size() != 2) continue;
    const Node* sub = producer(div.inputs[0], "Sub");
    const Node* sq = producer(div.inputs[1], "Sqrt");
    if (sub == nullptr || sq == nullptr || sub->inputs.size() != 2) continue;
    const Node* mean = producer(sub->inputs[1], "ReduceMean");
    if (!last_axis_mean(mean) || mean->inputs[0] != sub->inputs[0]) continue;
    const Node* add = producer(sq->inputs[0], "Add");
    if (add == nullptr || add->inputs.size() != 2) continue;
    const Tensor* eps = ScalarFloat(*g, add->inputs[1]);
    const Node* var = producer(add->inputs[0], "ReduceMean");
    if (eps == nullptr || !last_axis_mean(var)) continue;
    const Node* pow = producer(var->inputs[0], "Pow");
    if (pow == nullptr || pow->inputs.size() != 2 || pow->inputs[0] != sub->outputs[0]) continue;
    const Tensor* two = ScalarFloat(*g, pow->inputs[1]);
    if (two == nullptr || two->data<float>()[0] != 2.0f) continue;
    // Intermediates read only inside the pattern (d twice: Pow and Div).
    if (g->Uses(sub->outputs[0]) != 2 || g->Uses(mean->outputs[0]) != 1 || g->Uses(pow->outputs[0]) != 1 ||
        g->Uses(var->outputs[0]) != 1 || g->Uses(add->outputs[0]) != 1 || g->Uses(sq->outputs[0]) != 1) {
      continue;
    }
    // Optional Mul by a constant scale, then Add of a constant bias.
    std::string y = div.outputs[0], scale, bias;
    auto next_const = [&](const std::string& v, const char* op, std::string* c) -> int {
      if (g->Uses(v) != 1 || g->IsOutput(v)) return -1;
      for (size_t k = 0; k < g->nodes.size(); ++k) {
        const Node& n = g->nodes[k];
        if (n.op_type != op || !n.domain.empty() || n.inputs.size() != 2) continue;
        for (int s = 0; s < 2; ++s) {
          if (n.inputs[s] == v && g->IsConstant(n.inputs[1 - s]) &&
              g->constants.at(n.inputs[1 - s]).dtype() == DType::kFloat32) {
            *c = n.inputs[1 - s];
            return static_cast<int>(k);
          }
        }
      }
      return -1;
    };
    std::vector<int> extra;
    if (int k = next_const(y, "Mul", &scale); k >= 0) {
      extra.push_back(k);
      y = g->nodes[k].outputs[0];
    }
    if (int k = next_const(y, "Add", &bias); k >= 0) {
      extra.push_back(k);
      y = g->nodes[k].outputs[0];
    }
    // Scale and bias must span the last axis (or be scalars): LayerNorm
    // broadcasts them over the normalized axes only.
    bool ok = true;
    for (const std::string* c : {&scale, &bias}) {
      if (!c->empty() && g->constants.at(*c).rank() > 1) ok = false;
    }
    if (!ok) continue;
    Node ln;
    ln.name = div.name + "/layernorm";
    ln.op_type = "LayerNormalization";
    ln.opset = std::max(div.opset, 17);
    ln.attrs["axis"] = int64_t{-1};
    ln.attrs["epsilon"] = eps->data<float>()[0];
    if (scale.empty()) {
      scale = ln.name + "/scale";
      g->constants[scale] = Tensor::FromFloats({}, {1.0f});
    }
    ln.inputs = {mean->inputs[0], scale};
    if (!bias.empty()) ln.inputs.push_back(bias);
    ln.outputs = {y};
    // Replace the last node of the pattern; drop the others.
    std::vector<int> drop = {g->Producer(sub->outputs[0]), g->Producer(mean->outputs[0]),
                             g->Producer(pow->outputs[0]), g->Producer(var->outputs[0]),
                             g->Producer(add->outputs[0]), g->Producer(sq->outputs[0]), static_cast<int>(i)};
    drop.insert(drop.end(), extra.begin(), extra.end());
    const int end = *std::max_element(drop.begin(), drop.end());
    g->nodes[end] = std::move(ln);
    std::sort(drop.begin(), drop.end(), std::greater<int>());
    for (int k : drop) {
      if (k != end) g->nodes.erase(g->nodes.begin() + k);
    }
    i = static_cast<size_t>(-1);  // indices moved: start over
    ++fused;
  }
  return fused;
}

}  // namespace lowbit
