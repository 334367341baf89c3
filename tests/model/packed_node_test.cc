// The packed-node contract (model/packed_node.h): inconsistent nodes are
// refused with the node and the mismatch named.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "tests/runtime/packed_graphs.h"

namespace lowbit {
namespace {

TEST(PackedOpsTest, LoadingRefusesInconsistentPackedNodes) {
  Rng rng(5);
  Graph q = Quantize(GemmGraph(32, 8, rng, false), "int4");
  ASSERT_FALSE(q.nodes.empty());
  const Node& n = q.nodes[0];
  const Tensor& codes = q.constants.at(n.input(1));
  const Tensor& scales = q.constants.at(n.input(2));
  ASSERT_TRUE(PackedPartsOf(n, codes, scales).ok());
  Tensor short_codes = codes.View(DType::kUint8, {codes.numel() - 1});
  EXPECT_FALSE(PackedPartsOf(n, short_codes, scales).ok());
  Tensor few_scales = scales.View(DType::kFloat32, {scales.numel() - 1});
  EXPECT_FALSE(PackedPartsOf(n, codes, few_scales).ok());
  Node bad = n;
  bad.attrs["format"] = std::string("int5x");
  EXPECT_FALSE(PackedPartsOf(bad, codes, scales).ok());
  bad = n;
  bad.attrs["weight_shape"] = std::vector<int64_t>{8, 33};
  EXPECT_FALSE(PackedPartsOf(bad, codes, scales).ok());

  // Filter-wise formats: every inconsistency is named.
  Graph m = Quantize(GemmGraph(32, 8, rng, false), "int2/int4:0.5");
  const Node& mn = m.nodes[0];
  const Tensor& mc = m.constants.at(mn.input(1));
  const Tensor& ms = m.constants.at(mn.input(2));
  ASSERT_TRUE(PackedPartsOf(mn, mc, ms).ok());
  {  // kernels that run one format (weight-only) refuse them
    Graph wo = m;
    wo.nodes[0].attrs["act"] = std::string("float");
    auto plan = Plan::Create(wo, TestPlanOptions());
    ASSERT_FALSE(plan.ok());
    EXPECT_NE(plan.status().message().find("filter-wise formats"), std::string::npos)
        << plan.status().message();
  }
  auto refused = [&](const Node& node, const Tensor& c, const Tensor& s, const std::string& words) {
    auto r = PackedPartsOf(node, c, s);
    ASSERT_FALSE(r.ok()) << words;
    EXPECT_NE(r.status().message().find(words), std::string::npos) << r.status().message();
  };
  refused(mn, mc.View(DType::kUint8, {mc.numel() - 1}), ms, "uint8 bytes");
  refused(mn, mc, ms.View(DType::kFloat32, {ms.numel() - 1}), "scales");
  bad = mn;
  bad.attrs[kFilterParts] = std::vector<int64_t>{0, 1, 0};
  refused(bad, mc, ms, "3 entries for 8");
  bad.attrs[kFilterParts] = std::vector<int64_t>{0, 1, 0, 1, 0, 1, 0, 2};
  refused(bad, mc, ms, "= 2 is not a format index");
  bad.attrs[kFilterParts] = std::vector<int64_t>(8, 0);
  refused(bad, mc, ms, "int4 of int2/int4 has no output channel");
  bad = mn;
  bad.attrs.erase(kFilterParts);
  refused(bad, mc, ms, "without attribute filter_parts");
  bad = n;
  bad.attrs[kFilterParts] = std::vector<int64_t>(8, 0);
  refused(bad, codes, scales, "needs attribute filter_parts");
  bad = mn;
  bad.attrs["format"] = std::string("int2/nhot2-4");
  refused(bad, mc, ms, "stores levels");

  // residual_range: a range, and only on a PackedConv with a residual.
  auto range_refused = [](const Node& node, const std::string& words) {
    auto r = ResidualRangeOf(node);
    ASSERT_FALSE(r.ok()) << words;
    EXPECT_NE(r.status().message().find(words), std::string::npos) << r.status().message();
  };
  Node conv;
  conv.name = "c";
  conv.op_type = kPackedConv;
  conv.domain = kLowbitDomain;
  conv.inputs = {"x", "codes", "scales", "", "r"};
  ASSERT_TRUE(ResidualRangeOf(conv).ok());
  EXPECT_FALSE(ResidualRangeOf(conv)->present);
  conv.attrs["residual_range"] = std::vector<float>{-1.5f, 2.0f};
  ASSERT_TRUE(ResidualRangeOf(conv).ok());
  EXPECT_TRUE(ResidualRangeOf(conv)->present);
  EXPECT_EQ(ResidualRangeOf(conv)->lo, -1.5f);
  EXPECT_EQ(ResidualRangeOf(conv)->hi, 2.0f);
  bad = conv;
  bad.attrs["residual_range"] = std::vector<float>{2.0f, -1.5f};
  range_refused(bad, "residual_range must be two finite floats lo <= hi");
  bad.attrs["residual_range"] = std::vector<float>{0.0f, INFINITY};
  range_refused(bad, "residual_range must be two finite floats lo <= hi");
  bad = conv;
  bad.attrs["act"] = std::string("float");
  range_refused(bad, "residual_range is for 8-bit activations");
  bad = conv;
  bad.inputs.resize(4);
  range_refused(bad, "needs a PackedConv with a residual input R");
}

}  // namespace
}  // namespace lowbit
