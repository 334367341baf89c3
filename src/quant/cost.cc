#include "quant/cost.h"

#include <algorithm>
#include <cmath>
#include <memory>

#include "model/packed_node.h"
#include "runtime/plan.h"

namespace lowbit {

Result<std::vector<LayerCost>> LayerCosts(const Graph& g) {
  PlanOptions po;
  std::vector<int> layer_nodes;
  for (int i = 0; i < static_cast<int>(g.nodes.size()); ++i) {
    const Node& n = g.nodes[i];
    const bool fp32_layer = n.domain.empty() && (n.op_type == "Conv" || n.op_type == "Gemm" ||
                                                 n.op_type == "MatMul") &&
                            g.IsConstant(n.input(1));
    if (!fp32_layer && !IsPackedNode(n)) continue;
    layer_nodes.push_back(i);
    po.keep.push_back(n.outputs[0]);
  }
  std::unique_ptr<Plan> plan;
  LOWBIT_ASSIGN_OR_RETURN(plan, Plan::Create(g, po));
  std::vector<LayerCost> rows;
  for (int i : layer_nodes) {
    const Node& n = g.nodes[i];
    LayerCost r;
    r.node = i;
    r.name = n.name;
    r.op = n.op_type;
    r.sqnr_db = std::nan("");
    const Tensor* y = plan->value(n.outputs[0]);
    const bool conv = n.op_type == "Conv" || n.op_type == kPackedConv;
    r.filters = y->rank() == 0 ? 1 : y->shape()[conv ? 1 : y->rank() - 1];
    if (IsPackedNode(n)) {
      PackedParts w;
      LOWBIT_ASSIGN_OR_RETURN(
          w, PackedPartsOf(n, g.constants.at(n.input(1)), g.constants.at(n.input(2))));
      r.format = w.format();
      r.granularity = GranularityName(w.parts[0].params().granularity);
      r.wbits = w.mean_bits();
      r.abits = n.GetString("act", "uint8") == "float" ? 32 : 8;
      r.params = w.numel();
      r.weight_bytes = w.bytes();
      if (n.Has("sqnr_db")) r.sqnr_db = n.GetFloat("sqnr_db", 0);
    } else {
      const Tensor& w = g.constants.at(n.input(1));
      r.params = w.numel();
      r.weight_bytes = static_cast<int64_t>(w.bytes());
    }
    const std::string& bias = IsPackedNode(n) ? n.input(3) : n.input(2);
    if (!bias.empty() && g.IsConstant(bias)) r.bias_bytes = g.constants.at(bias).bytes();
    r.macs = y->numel() * (r.params / std::max<int64_t>(r.filters, 1));
    rows.push_back(r);
  }
  return rows;
}

double FilterBitOps(int64_t macs_per_filter, const std::vector<int>& filter_bits, int act_bits) {
  double sum = 0;
  for (int b : filter_bits) sum += static_cast<double>(b);
  return static_cast<double>(macs_per_filter) * sum * act_bits;
}

}  // namespace lowbit
