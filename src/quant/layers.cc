#include "quant/layers.h"

#include <optional>

namespace lowbit {
namespace {

const Tensor* ConstantF32(const Graph& g, const std::string& name) {
  auto it = g.constants.find(name);
  if (it == g.constants.end() || it->second.dtype() != DType::kFloat32) return nullptr;
  return &it->second;
}

std::optional<QuantLayer> Extract(const Graph& g, int i) {
  const Node& n = g.nodes[i];
  if (!n.domain.empty()) return std::nullopt;
  QuantLayer c;
  c.node = i;
  c.name = n.name;
  c.op = n.op_type;
  c.x = n.input(0);
  if (c.x.empty() || g.IsConstant(c.x)) return std::nullopt;
  if (n.op_type == "Conv") {
    const Tensor* w = ConstantF32(g, n.input(1));
    if (w == nullptr || w->rank() < 3) return std::nullopt;
    c.wshape = w->shape();
    c.w.assign(w->data<float>(), w->data<float>() + w->numel());
    if (!n.input(2).empty()) {
      const Tensor* b = ConstantF32(g, n.input(2));
      if (b == nullptr || b->numel() != c.wshape[0]) return std::nullopt;
      c.bias.assign(b->data<float>(), b->data<float>() + b->numel());
    }
    c.group = n.GetInt("group", 1);
    return c;
  }
  if (n.op_type == "Gemm" || n.op_type == "MatMul") {
    const Tensor* b = ConstantF32(g, n.input(1));
    if (b == nullptr || b->rank() != 2) return std::nullopt;
    const bool gemm = n.op_type == "Gemm";
    if (gemm && n.GetInt("transA", 0) != 0) return std::nullopt;
    const bool trans_b = gemm && n.GetInt("transB", 0) != 0;
    const float alpha = gemm ? n.GetFloat("alpha", 1.0f) : 1.0f;
    const int64_t k = trans_b ? b->shape()[1] : b->shape()[0];
    const int64_t nn = trans_b ? b->shape()[0] : b->shape()[1];
    c.wshape = {nn, k};
    c.w.resize(nn * k);
    const float* src = b->data<float>();
    for (int64_t r = 0; r < nn; ++r) {
      for (int64_t j = 0; j < k; ++j) {
        c.w[r * k + j] = alpha * (trans_b ? src[r * k + j] : src[j * nn + r]);
      }
    }
    if (gemm && !n.input(2).empty()) {
      const Tensor* bias = ConstantF32(g, n.input(2));
      if (bias == nullptr || (bias->numel() != nn && bias->numel() != 1)) return std::nullopt;
      const float beta = n.GetFloat("beta", 1.0f);
      c.bias.resize(nn);
      for (int64_t r = 0; r < nn; ++r) {
        c.bias[r] = beta * bias->data<float>()[bias->numel() == 1 ? 0 : r];
      }
    }
    c.channel_axis = -1;
    return c;
  }
  return std::nullopt;
}

}  // namespace

std::vector<QuantLayer> QuantLayers(const Graph& g) {
  std::vector<QuantLayer> out;
  for (int i = 0; i < static_cast<int>(g.nodes.size()); ++i) {
    if (auto c = Extract(g, i)) out.push_back(std::move(*c));
  }
  return out;
}

}  // namespace lowbit
