#include "ir/passes.h"

#include <algorithm>
#include <cmath>
#include <set>

namespace lowbit {
namespace {

void ReplaceUses(Graph* g, const std::string& from, const std::string& to) {
  for (Node& n : g->nodes) {
    for (std::string& in : n.inputs) {
      if (in == from) in = to;
    }
  }
}

// The single node reading `value`, or -1 when zero or several do (or it is a
// graph output).
int SoleReader(const Graph& g, const std::string& value) {
  if (g.IsOutput(value)) return -1;
  int reader = -1;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    for (const std::string& in : g.nodes[i].inputs) {
      if (in != value) continue;
      if (reader >= 0 && reader != static_cast<int>(i)) return -1;
      reader = static_cast<int>(i);
    }
  }
  return reader;
}

const Tensor* ConstFloat(const Graph& g, const std::string& name) {
  auto it = g.constants.find(name);
  if (it == g.constants.end() || it->second.dtype() != DType::kFloat32) return nullptr;
  return &it->second;
}

}  // namespace

int RemoveIdentities(Graph* g) {
  int removed = 0;
  for (size_t i = 0; i < g->nodes.size();) {
    Node& n = g->nodes[i];
    const bool dropout = n.op_type == "Dropout" && n.domain.empty() &&
                         (n.outputs.size() < 2 || n.outputs[1].empty() || g->Uses(n.outputs[1]) == 0) &&
                         n.input(2).empty();
    const bool identity = n.op_type == "Identity" && n.domain.empty();
    if ((dropout || identity) && !n.inputs.empty() && !g->IsOutput(n.outputs[0])) {
      const std::string from = n.outputs[0], to = n.inputs[0];
      g->nodes.erase(g->nodes.begin() + i);
      ReplaceUses(g, from, to);
      ++removed;
      continue;
    }
    ++i;
  }
  return removed;
}

int FoldBatchNorms(Graph* g) {
  int folded = 0;
  for (size_t i = 0; i < g->nodes.size(); ++i) {
    Node& bn = g->nodes[i];
    if (bn.op_type != "BatchNormalization" || !bn.domain.empty() || bn.inputs.size() != 5 ||
        bn.outputs.size() != 1 || bn.GetInt("training_mode", 0) != 0) {
      continue;
    }
    const int p = g->Producer(bn.inputs[0]);
    if (p < 0 || SoleReader(*g, bn.inputs[0]) != static_cast<int>(i)) continue;
    Node& prod = g->nodes[p];
    const bool conv = prod.op_type == "Conv";
    const bool gemm = prod.op_type == "Gemm" && prod.GetInt("transB", 0) == 1 &&
                      prod.GetInt("transA", 0) == 0 && prod.GetFloat("alpha", 1) == 1.0f &&
                      prod.GetFloat("beta", 1) == 1.0f;
    if (!(conv || gemm) || !prod.domain.empty()) continue;
    const Tensor* w = ConstFloat(*g, prod.input(1));
    const Tensor* scale = ConstFloat(*g, bn.inputs[1]);
    const Tensor* beta = ConstFloat(*g, bn.inputs[2]);
    const Tensor* mean = ConstFloat(*g, bn.inputs[3]);
    const Tensor* var = ConstFloat(*g, bn.inputs[4]);
    const Tensor* bias = prod.input(2).empty() ? nullptr : ConstFloat(*g, prod.input(2));
    if (!w || !scale || !beta || !mean || !var || (!prod.input(2).empty() && !bias)) continue;
    const int64_t m = w->shape().empty() ? 0 : w->shape()[0];
    if (scale->numel() != m || beta->numel() != m || mean->numel() != m || var->numel() != m ||
        (bias && bias->numel() != m)) {
      continue;
    }
    const float eps = bn.GetFloat("epsilon", 1e-5f);
    Tensor nw = w->Clone();
    Tensor nb(DType::kFloat32, {m});
    const int64_t per = w->numel() / std::max<int64_t>(m, 1);
    for (int64_t c = 0; c < m; ++c) {
      const double a = scale->data<float>()[c] / std::sqrt(static_cast<double>(var->data<float>()[c]) + eps);
      for (int64_t j = 0; j < per; ++j) nw.data<float>()[c * per + j] *= static_cast<float>(a);
      const double b0 = bias ? bias->data<float>()[c] : 0.0;
      nb.data<float>()[c] = static_cast<float>((b0 - mean->data<float>()[c]) * a + beta->data<float>()[c]);
    }
    const std::string wname = prod.name + ".bnfold.W", bname = prod.name + ".bnfold.B";
    g->constants[wname] = std::move(nw);
    g->constants[bname] = std::move(nb);
    prod.inputs.resize(3);
    prod.inputs[1] = wname;
    prod.inputs[2] = bname;
    prod.outputs[0] = bn.outputs[0];
    g->nodes.erase(g->nodes.begin() + i);
    --i;
    ++folded;
  }
  return folded;
}

int FuseResidualAdds(Graph* g) {
  int fused = 0;
  for (size_t i = 0; i < g->nodes.size(); ++i) {
    const Node& add = g->nodes[i];
    if (!add.domain.empty() || add.op_type != "Add" || add.inputs.size() != 2) continue;
    for (int side = 0; side < 2; ++side) {
      const std::string& mine = add.inputs[side];
      const std::string& other = add.inputs[1 - side];
      const int p = g->Producer(mine);
      // The other operand must be computed (a constant would broadcast like
      // a bias) and not the conv's own output.
      if (p < 0 || other == mine || g->constants.count(other) || other.empty()) continue;
      if (SoleReader(*g, mine) != static_cast<int>(i)) continue;
      const Node& prod = g->nodes[p];
      if (!prod.domain.empty() || prod.op_type != "Conv" || prod.Has("lowbit.activation") ||
          prod.Has("lowbit.residual") || prod.outputs.size() != 1) {
        continue;
      }
      // The fused conv takes the Add's place: its own inputs come earlier
      // still, and so does the other operand.
      Node conv = prod;
      conv.inputs.resize(3);  // X, W, B ("" when absent)
      conv.inputs.push_back(other);
      conv.attrs["lowbit.residual"] = int64_t{1};
      conv.outputs[0] = add.outputs[0];
      g->nodes[i] = std::move(conv);
      g->nodes.erase(g->nodes.begin() + p);
      --i;
      ++fused;
      break;
    }
  }
  return fused;
}

bool ClipBounds(const Graph& g, const Node& clip, float* lo, float* hi) {
  *lo = -INFINITY;
  *hi = INFINITY;
  if (clip.opset < 11) {
    *lo = clip.GetFloat("min", *lo);
    *hi = clip.GetFloat("max", *hi);
    return true;
  }
  for (int i = 1; i < 3; ++i) {
    if (clip.input(i).empty()) continue;
    const Tensor* t = ConstFloat(g, clip.input(i));
    if (t == nullptr || t->numel() != 1) return false;
    (i == 1 ? *lo : *hi) = t->data<float>()[0];
  }
  return true;
}

std::string PreResidualName(const std::string& output) { return output + "/pre_residual"; }

Graph UnfuseResiduals(const Graph& g) {
  Graph out = g;
  out.nodes.clear();
  for (const Node& n : g.nodes) {
    if (!n.domain.empty() || n.op_type != "Conv" || n.GetInt("lowbit.residual", 0) == 0 ||
        n.inputs.size() < 4 || n.outputs.size() != 1) {
      out.nodes.push_back(n);
      continue;
    }
    Node conv = n;
    const std::string act = n.GetString("lowbit.activation", "");
    for (const char* k : {"lowbit.residual", "lowbit.activation", "lowbit.clip_min", "lowbit.clip_max"}) {
      conv.attrs.erase(k);
    }
    conv.inputs.resize(3);
    while (!conv.inputs.empty() && conv.inputs.back().empty()) conv.inputs.pop_back();
    conv.outputs = {PreResidualName(n.outputs[0])};
    Node add;
    add.name = n.name + "/residual_add";
    add.op_type = "Add";
    add.opset = n.opset;
    add.inputs = {conv.outputs[0], n.inputs[3]};
    add.outputs = {act.empty() ? n.outputs[0] : n.outputs[0] + "/pre_activation"};
    out.nodes.push_back(std::move(conv));
    out.nodes.push_back(add);
    if (act.empty()) continue;
    Node a;
    a.name = n.name + "/activation";
    a.op_type = act;
    a.opset = n.opset;
    a.inputs = {add.outputs[0]};
    a.outputs = n.outputs;
    if (act == "Clip") {
      const float lo = n.GetFloat("lowbit.clip_min", -INFINITY), hi = n.GetFloat("lowbit.clip_max", INFINITY);
      a.opset = std::max(n.opset, 11);
      const std::string lo_name = a.name + "/min", hi_name = a.name + "/max";
      out.constants[lo_name] = Tensor::FromFloats({}, {lo});
      out.constants[hi_name] = Tensor::FromFloats({}, {hi});
      a.inputs.push_back(lo_name);
      a.inputs.push_back(hi_name);
    }
    out.nodes.push_back(std::move(a));
  }
  return out;
}

int FuseActivations(Graph* g) {
  int fused = 0;
  for (size_t i = 0; i < g->nodes.size(); ++i) {
    Node& act = g->nodes[i];
    if (!act.domain.empty() || act.inputs.empty()) continue;
    float lo = 0, hi = INFINITY;
    if (act.op_type == "Clip") {
      if (!ClipBounds(*g, act, &lo, &hi)) continue;
    } else if (act.op_type != "Relu") {
      continue;
    }
    const int p = g->Producer(act.inputs[0]);
    if (p < 0 || SoleReader(*g, act.inputs[0]) != static_cast<int>(i)) continue;
    Node& prod = g->nodes[p];
    if (!prod.domain.empty() || prod.Has("lowbit.activation") ||
        (prod.op_type != "Conv" && prod.op_type != "Gemm" && prod.op_type != "MatMul")) {
      continue;
    }
    if (act.op_type == "Relu") {
      prod.attrs["lowbit.activation"] = std::string("Relu");
    } else {
      prod.attrs["lowbit.activation"] = std::string("Clip");
      prod.attrs["lowbit.clip_min"] = lo;
      prod.attrs["lowbit.clip_max"] = hi;
    }
    prod.outputs[0] = act.outputs[0];
    g->nodes.erase(g->nodes.begin() + i);
    --i;
    ++fused;
  }
  return fused;
}

int RemoveDeadNodes(Graph* g) {
  std::set<std::string> needed;
  for (const ValueInfo& o : g->outputs) needed.insert(o.name);
  std::vector<bool> keep(g->nodes.size(), false);
  for (size_t i = g->nodes.size(); i-- > 0;) {
    for (const std::string& out : g->nodes[i].outputs) {
      if (needed.count(out)) keep[i] = true;
    }
    if (!keep[i]) continue;
    for (const std::string& in : g->nodes[i].inputs) needed.insert(in);
  }
  int removed = 0;
  std::vector<Node> kept;
  for (size_t i = 0; i < g->nodes.size(); ++i) {
    if (keep[i]) kept.push_back(std::move(g->nodes[i]));
    else ++removed;
  }
  g->nodes = std::move(kept);
  for (auto it = g->constants.begin(); it != g->constants.end();) {
    it = needed.count(it->first) ? std::next(it) : g->constants.erase(it);
  }
  return removed;
}

Status OptimizeGraph(Graph* g) {
  RemoveIdentities(g);
  CancelTransposePairs(g);
  RewriteMinMaxAsClip(g);
  MergeClips(g);
  FuseHardSwish(g);
  FuseLayerNorms(g);
  FoldBatchNorms(g);
  FuseResidualAdds(g);
  FuseActivations(g);
  RemoveDeadNodes(g);
  return VerifyGraph(g);
}

}  // namespace lowbit
