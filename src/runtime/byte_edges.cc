#include "runtime/byte_edges.h"

#include <map>
#include <optional>

#include "model/packed_node.h"

namespace lowbit {
namespace {

// A packed conv with 8-bit activations; depthwise (one input channel per
// group) only with one output per group and no fused residual.
bool IsBytePackedConv(const Node& n) {
  if (n.domain != kLowbitDomain || n.op_type != kPackedConv) return false;
  Result<ActSpec> a = ActSpecOf(n);
  if (!a.ok() || a->weight_only) return false;
  const std::vector<int64_t> ws = n.GetInts("weight_shape");
  const int64_t group = n.GetInt("group", 1);
  const bool depthwise = ws.size() >= 2 && ws[1] == 1 && group > 1;
  return !depthwise || (ws[0] == group && n.input(4).empty());
}

// A 2-D MaxPool without the Indices output or dilations: it pools 8-bit
// pixels as they are (quantization is monotonic).
bool IsByteMaxPool(const Node& n) {
  if (!n.domain.empty() || n.op_type != "MaxPool" || n.outputs.size() != 1) return false;
  const std::vector<int64_t> d = n.GetInts("dilations", {1, 1});
  return n.GetInts("kernel_shape").size() == 2 && d == std::vector<int64_t>{1, 1} &&
         n.GetInt("storage_order", 0) == 0;
}

}  // namespace

void ClearByteEdges(std::vector<Node>* nodes) {
  for (Node& n : *nodes) {
    for (const char* key : {kByteInput, kByteOutputAct, kByteOutputRange, kByteResidualAct, kByteResidualRange}) {
      n.attrs.erase(key);
    }
  }
}

int MarkByteEdges(const Graph& g, const std::set<std::string>& pinned, std::vector<Node>* nodes) {
  struct Use {
    int node;
    size_t input;
  };
  struct Params {
    std::string act;
    std::vector<float> range;
    bool operator==(const Params&) const = default;
  };
  std::map<std::string, std::vector<Use>> uses;
  for (size_t i = 0; i < nodes->size(); ++i) {
    const Node& n = (*nodes)[i];
    for (size_t j = 0; j < n.inputs.size(); ++j) {
      if (!n.inputs[j].empty()) uses[n.inputs[j]].push_back({static_cast<int>(i), j});
    }
  }
  // Readers come after their producers, so in reverse order every reader's
  // output is decided before the value it reads.
  std::map<std::string, Params> edges;
  for (int i = static_cast<int>(nodes->size()) - 1; i >= 0; --i) {
    const Node& p = (*nodes)[i];
    if (!IsBytePackedConv(p) && !IsByteMaxPool(p)) continue;
    const std::string& value = p.outputs[0];
    if (g.IsOutput(value) || pinned.count(value) || !uses.count(value)) continue;
    std::optional<Params> params, residual;  // residual: the readers' residual_range
    bool ok = true, one_range = true;        // every residual reader has the same range
    for (const Use& u : uses[value]) {
      const Node& c = (*nodes)[u.node];
      Params want;
      if (IsBytePackedConv(c) && ActSpecOf(c)->is_static && u.input == 0) {
        want = {c.GetString("act", "uint8"), std::get<std::vector<float>>(c.attrs.at("act_range"))};
      } else if (IsBytePackedConv(c) && u.input == 4) {
        // The residual is added while writing bytes, with the X readers'
        // parameters or else the residual readers' common calibrated range.
        ok = edges.count(c.outputs[0]) > 0;
        if (!ok) break;
        const Result<ResidualRange> r = ResidualRangeOf(c);
        if (!r.ok() || !r->present) {
          one_range = false;
          continue;
        }
        const Params mine{"uint8", {r->lo, r->hi}};
        one_range = one_range && (!residual || *residual == mine);
        residual = mine;
        continue;
      } else if (IsByteMaxPool(c) && u.input == 0 && edges.count(c.outputs[0])) {
        want = edges.at(c.outputs[0]);  // max pooling keeps the quantization
      } else {
        ok = false;
      }
      if (!ok || (params && !(*params == want))) {
        ok = false;
        break;
      }
      params = want;
    }
    if (ok && !params && residual && one_range) params = residual;
    if (ok && params) edges[value] = *params;
  }
  // A max pool writes bytes only when it reads them.
  for (const Node& n : *nodes) {
    if (IsByteMaxPool(n) && edges.count(n.outputs[0]) && !edges.count(n.inputs[0])) {
      edges.erase(n.outputs[0]);
    }
  }
  for (Node& n : *nodes) {
    const bool conv = IsBytePackedConv(n);
    if (!conv && !IsByteMaxPool(n)) continue;
    auto out = edges.find(n.outputs[0]);
    if (out != edges.end()) {
      n.attrs[kByteOutputAct] = out->second.act;
      n.attrs[kByteOutputRange] = out->second.range;
    }
    if (edges.count(n.inputs[0])) n.attrs[kByteInput] = int64_t{1};
    auto res = conv ? edges.find(n.input(4)) : edges.end();
    if (res != edges.end()) {
      n.attrs[kByteResidualAct] = res->second.act;
      n.attrs[kByteResidualRange] = res->second.range;
    }
  }
  return static_cast<int>(edges.size());
}

}  // namespace lowbit
