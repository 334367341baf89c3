// QuantizeGraph on hand-built graphs: filter-wise fractions, calibration of
// what the model input takes and of residual ranges, plan files.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "tests/runtime/packed_graphs.h"

namespace lowbit {
namespace {

// The fraction rule gives the second format to the filters the first fits
// worst; fractions 0 and 1 give a uniform layer; grouped layers take the
// widest format; what cannot run is refused with the layer's name.
TEST(PackedOpsTest, FilterWiseFractionPicksTheWorstFitFilters) {
  Rng rng(21);
  Graph g = GemmGraph(64, 40, rng, false);
  // Filters 0..9 get one outlier each: int2 fits them worst.
  Tensor& w = g.constants.at("W");
  for (int64_t r = 0; r < 10; ++r) w.data<float>()[r * 64 + 5] = 6.0f;
  Graph q = Quantize(g, "int2/int8:0.25");
  const std::vector<int64_t> parts = q.nodes[0].GetInts(kFilterParts);
  ASSERT_EQ(parts.size(), 40u);
  for (int64_t r = 0; r < 40; ++r) EXPECT_EQ(parts[r], r < 10 ? 1 : 0) << "filter " << r;
  EXPECT_EQ(Quantize(g, "int2/int8:0").nodes[0].GetString("format", ""), "int2");
  EXPECT_FALSE(Quantize(g, "int2/int8:1").nodes[0].Has(kFilterParts));
  // Depthwise: the widest format.
  const Graph dw = ConvGraph({1, 8, 6, 6, 8, 3, 1, 1, 8}, rng, false);
  EXPECT_EQ(Quantize(dw, "int2/int4:0.5").nodes[0].GetString("format", ""), "int4");
  auto refused = [&](const std::string& json, const std::string& words) {
    QuantizeOptions o;
    o.quiet = true;
    auto plan = ParsePlanJson(json, "plan.json");
    Status st = plan.status();
    if (plan.ok()) {
      o.plan = *plan;
      st = QuantizeGraph(g, o).status();
    }
    ASSERT_FALSE(st.ok()) << json;
    EXPECT_NE(st.message().find(words), std::string::npos) << st.message();
  };
  refused(R"({"weights": "int2/int4"})", "need a fraction");
  refused(R"({"weights": "int2/int4:1.5"})", "in [0, 1]");
  refused(R"({"weights": "int2/int4/int8:0.5"})", "exactly two");
  refused(R"({"weights": "int2/nhot2-4:0.5"})", "nhot2-4");
  refused(R"({"weights": "int2/int4:0.5", "acts": "float"})", "8-bit acts");
  refused(R"({"weights": "int4", "layers": {"fc": {"filters": [0]}}})", "filter-wise weights");
  refused(R"({"layers": {"fc": {"weights": "int2/int4", "filters": [0, 1, 2]}}})", "index 2");
  refused(R"({"layers": {"fc": {"weights": "int2/int4", "filters": [0, 1]}}})", "40 filters");
  refused(R"({"weights": "int2/int3:0.5"})", "kernel layouts");
}

// A model whose input fixes the batch (here 1) calibrates at that batch,
// whatever calib_batch asks: every pass reads as many samples as the plan's
// input holds (reading calib_batch of them overflowed it). Samples that do
// not fit the input are refused.
TEST(PackedOpsTest, CalibrationReadsWhatTheModelInputTakes) {
  Rng rng(testing::TestSeed());
  const ConvCase cc{1, 3, 9, 7, 5, 3, 1, 1, 1};
  Graph g = ConvGraph(cc, rng, true);
  g.inputs[0].shape = {1, cc.c, cc.h, cc.w};
  const int64_t samples = 20;
  const Tensor x = Random({samples, cc.c, cc.h, cc.w}, rng);
  const std::string path = ::testing::TempDir() + "/lowbit_fixed_batch_calib.npy";
  ASSERT_TRUE(WriteNpy(path, x.shape(), x.data<float>()).ok());
  auto ds = Dataset::Open("npy:" + path);
  ASSERT_TRUE(ds.ok()) << ds.status().ToString();
  QuantizeOptions o;
  o.plan.defaults.weights = "int8";
  o.quiet = true;
  o.calib = ds->get();
  ASSERT_EQ(o.calib_batch, 32);
  auto r = QuantizeGraph(g, o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->calib_samples, samples);
  ASSERT_EQ(r->layers.size(), 1u);
  EXPECT_GT(r->layers[0].output_sqnr_db, 30.0);
  // Samples of another size are refused, naming both shapes.
  const Tensor bad = Random({4, cc.c + 1, cc.h, cc.w}, rng);
  ASSERT_TRUE(WriteNpy(path, bad.shape(), bad.data<float>()).ok());
  auto ds2 = Dataset::Open("npy:" + path);
  ASSERT_TRUE(ds2.ok());
  o.calib = ds2->get();
  auto r2 = QuantizeGraph(g, o);
  ASSERT_FALSE(r2.ok());
  EXPECT_NE(r2.status().message().find("[1, 3, 9, 7]"), std::string::npos) << r2.status().message();
  // So are NHWC images for this NCHW input (the same number of values), while
  // flat samples of that size are taken as they are.
  for (bool nhwc : {true, false}) {
    const Tensor t =
        nhwc ? Random({4, cc.h, cc.w, cc.c}, rng) : Random({4, cc.c * cc.h * cc.w}, rng);
    ASSERT_TRUE(WriteNpy(path, t.shape(), t.data<float>()).ok());
    auto ds3 = Dataset::Open("npy:" + path);
    ASSERT_TRUE(ds3.ok());
    o.calib = ds3->get();
    auto r3 = QuantizeGraph(g, o);
    EXPECT_EQ(r3.ok(), !nhwc) << r3.status().ToString();
    if (nhwc) {
      EXPECT_NE(r3.status().message().find("[9, 7, 3]"), std::string::npos)
          << r3.status().message();
    }
  }
  std::remove(path.c_str());
}

// Calibration records the range of every fused residual (residual_range),
// so a projection shortcut that only the Add reads travels as bytes too.
TEST(PackedOpsTest, CalibrationRecordsResidualRanges) {
  Rng rng(testing::TestSeed());
  const Graph f = BlocksGraph(true, false, rng, true);
  const Tensor x = Random({6, 6, 11, 9}, rng, 0.0f, 1.0f);
  const std::string path = ::testing::TempDir() + "/lowbit_residual_calib.npy";
  ASSERT_TRUE(WriteNpy(path, x.shape(), x.data<float>()).ok());
  auto ds = Dataset::Open("npy:" + path);
  ASSERT_TRUE(ds.ok()) << ds.status().ToString();
  QuantizeOptions o;
  o.plan.defaults.weights = "int8";
  o.act_calib = ActCalib::kMinMax;
  o.quiet = true;
  o.calib = ds->get();
  auto r = QuantizeGraph(f, o);
  std::remove(path.c_str());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  // The fp32 values the residuals take on the calibration samples.
  PlanOptions po = TestPlanOptions();
  po.batch = x.shape()[0];
  int residuals = 0;
  for (const Node& n : r->graph.nodes) {
    if (IsPackedNode(n) && !n.input(4).empty()) po.keep.push_back(n.input(4));
  }
  auto plan = Plan::Create(f, po);
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  std::copy_n(x.data<float>(), x.numel(), (*plan)->input(0).data<float>());
  (*plan)->Run();
  for (const Node& n : r->graph.nodes) {
    if (!IsPackedNode(n) || n.input(4).empty()) continue;
    ++residuals;
    const Result<ResidualRange> got = ResidualRangeOf(n);
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    ASSERT_TRUE(got->present) << n.name;
    const Tensor* v = (*plan)->value(n.input(4));
    ASSERT_NE(v, nullptr);
    const auto [lo, hi] = std::minmax_element(v->data<float>(), v->data<float>() + v->numel());
    EXPECT_EQ(got->lo, std::min(*lo, 0.0f)) << n.name;
    EXPECT_EQ(got->hi, std::max(*hi, 0.0f)) << n.name;
  }
  EXPECT_EQ(residuals, 2);
  // Both skips and the chain travel as bytes; the output stays close to fp32.
  int edges = 0;
  const Tensor got = RunEdges(r->graph, x, 1, true, &edges);
  EXPECT_EQ(edges, 10);
  EXPECT_GT(SqnrDb(RunGraph(f, x), got), 25);
}

TEST(PackedOpsTest, PlanFileSettingsApplyPerLayer) {
  QuantPlan plan;
  auto parsed = ParsePlanJson(
      R"({"weights": "int4", "layers": {"conv*": {"weights": "int8"}, "fc": {"granularity": "tensor"}}})",
      "plan.json");
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(parsed->Resolve("conv1").weights, "int8");
  EXPECT_EQ(parsed->Resolve("fc").weights, "int4");
  EXPECT_EQ(parsed->Resolve("fc").granularity, "tensor");
  EXPECT_FALSE(ParsePlanJson(R"({"weights": "int9"})", "p").ok());
  EXPECT_FALSE(ParsePlanJson(R"({"layers": {"a": {"bits": 3}}})", "p").ok());
  EXPECT_FALSE(ParseLayerOption("conv1").ok());
  // A pattern naming no layer is refused with the layer names.
  Rng rng(3);
  QuantizeOptions o;
  o.quiet = true;
  o.plan.rules.push_back(*ParseLayerOption("nosuch=int4"));
  auto r = QuantizeGraph(GemmGraph(8, 4, rng, false), o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("fc"), std::string::npos) << r.status().message();
}

}  // namespace
}  // namespace lowbit
