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

// Whether every input of pass-through operator n carries data (else input 0).
bool AllInputsData(const Node& n) { return n.op_type == "Concat" || n.op_type == "Max" || n.op_type == "Min"; }

// The inputs of pass-through operator n that carry the data.
std::vector<size_t> DataInputs(const Node& n) {
  if (!AllInputsData(n)) return {0};
  std::vector<size_t> all(n.inputs.size());
  for (size_t i = 0; i < all.size(); ++i) all[i] = i;
  return all;
}

}  // namespace

void ClearByteEdges(std::vector<Node>* nodes) {
  for (Node& n : *nodes) {
    for (const char* key : {kByteInput, kByteOutputAct, kByteOutputRange, kByteResidualAct, kByteResidualRange}) {
      n.attrs.erase(key);
    }
  }
}

bool IsBytePassThrough(const Graph& g, const Node& n) {
  if (!n.domain.empty() || n.outputs.size() != 1 || n.inputs.empty()) return false;
  // Inputs past the data are constants (or absent).
  auto constant_from = [&](size_t i0) {
    for (size_t i = i0; i < n.inputs.size(); ++i) {
      if (!n.inputs[i].empty() && !g.IsConstant(n.inputs[i])) return false;
    }
    return true;
  };
  if (n.op_type == "MaxPool") return IsByteMaxPool(n);
  if (n.op_type == "Concat" || n.op_type == "Max" || n.op_type == "Min") return true;
  if (n.op_type == "Slice" || n.op_type == "Clip" || n.op_type == "Relu") return constant_from(1);
  if (n.op_type == "Resize" || n.op_type == "Upsample") {
    return n.GetString("mode", "nearest") == "nearest" && constant_from(1);
  }
  return false;
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
  std::vector<bool> pass(nodes->size());
  for (size_t i = 0; i < nodes->size(); ++i) {
    const Node& n = (*nodes)[i];
    pass[i] = IsBytePassThrough(g, n);
    for (size_t j = 0; j < n.inputs.size(); ++j) {
      if (!n.inputs[j].empty()) uses[n.inputs[j]].push_back({static_cast<int>(i), j});
    }
  }
  auto is_data = [&](int node, size_t input) { return AllInputsData((*nodes)[node]) || input == 0; };
  // Pass-through outputs that may not be bytes because one of their data
  // inputs cannot: found by checking each solution, until none is found.
  std::set<std::string> forbidden;
  std::map<std::string, Params> edges;
  for (;;) {
    edges.clear();
    // Readers come after their producers, so in reverse order every reader's
    // output is decided before the value it reads.
    for (int i = static_cast<int>(nodes->size()) - 1; i >= 0; --i) {
      const Node& p = (*nodes)[i];
      if (!IsBytePackedConv(p) && !pass[i]) continue;
      const std::string& value = p.outputs[0];
      if (g.IsOutput(value) || pinned.count(value) || forbidden.count(value) || !uses.count(value)) continue;
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
        } else if (pass[u.node] && is_data(u.node, u.input) && edges.count(c.outputs[0])) {
          want = edges.at(c.outputs[0]);  // the operator keeps the quantization
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
    // A pass-through operator writes bytes only when all its data inputs are
    // bytes; in node order, so a refusal reaches the operators after it.
    bool changed = false;
    for (size_t i = 0; i < nodes->size(); ++i) {
      const Node& n = (*nodes)[i];
      if (!pass[i] || !edges.count(n.outputs[0])) continue;
      for (size_t j : DataInputs(n)) {
        if (!edges.count(n.input(j))) {
          edges.erase(n.outputs[0]);
          forbidden.insert(n.outputs[0]);
          changed = true;
          break;
        }
      }
    }
    if (!changed) break;
  }
  for (size_t i = 0; i < nodes->size(); ++i) {
    Node& n = (*nodes)[i];
    const bool conv = IsBytePackedConv(n);
    if (!conv && !pass[i]) continue;
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

Result<bool> BytePassThroughInputs(const Node& n, const std::vector<TensorInfo>& in,
                                   const std::vector<size_t>& data) {
  const bool bytes = n.GetInt(kByteInput, 0) != 0;
  if (bytes != n.Has(kByteOutputAct)) {
    return InvalidArgument(n.Describe(), ": 8-bit pixels must come in and go out of a ", n.op_type);
  }
  if (!bytes) return false;
  for (size_t i : data) {
    if (i >= in.size() || !in[i].present || in[i].dtype != DType::kUint8 || in[i].shape.size() < 3) {
      return InvalidArgument(n.Describe(), ": input ", i, " must be uint8 pixels [N, spatial..., C] (",
                             kByteInput, ")");
    }
  }
  return true;
}

int NhwcAxis(int axis, int rank) { return axis == 0 ? 0 : axis == 1 ? rank - 1 : axis - 1; }

Result<bool> ByteEdgeParams(const Node& n, const char* act_key, const char* range_key, ActQuant* q) {
  const std::string act = n.GetString(act_key, "");
  if (act.empty()) return false;
  Node spec;
  spec.name = n.name;
  spec.op_type = n.op_type;
  spec.attrs["act"] = act;
  auto range = n.attrs.find(range_key);
  if (range != n.attrs.end()) spec.attrs["act_range"] = range->second;
  ActSpec a;
  LOWBIT_ASSIGN_OR_RETURN(a, ActSpecOf(spec));
  if (a.weight_only || !a.is_static) {
    return InvalidArgument(n.Describe(), ": attribute ", act_key, " '", act, "' needs 8 bits and a ",
                           range_key);
  }
  *q = StaticActParams(a.lo, a.hi, a.symmetric, false);
  return true;
}

Result<ByteOutput> ByteEdgeOutput(const Node& n) {
  ActQuant q;
  bool present = false;
  LOWBIT_ASSIGN_OR_RETURN(present, ByteEdgeParams(n, kByteOutputAct, kByteOutputRange, &q));
  if (!present) return InvalidArgument(n.Describe(), ": attribute ", kByteOutputAct, " is missing");
  return ByteOutput{1.0f / q.scale, q.zero};
}

}  // namespace lowbit
