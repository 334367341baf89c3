// Sensitivity: per-filter output errors from second moments against a direct
// computation, and isolated layer metrics against an assembled graph.
#include "tune/sensitivity.h"

#include <gtest/gtest.h>

#include <cmath>

#include "base/rng.h"
#include "quant/cost.h"
#include "quant/quantize.h"
#include "tests/model_files.h"
#include "tests/test_util.h"

namespace lowbit {
namespace {

TEST(Sensitivity, FilterErrorsEqualTheDirectSumForIndependentChannels) {
  // A grouped conv layer: 4 filters, 2 groups, 3 input channels per group,
  // 2x2 taps.
  QuantLayer l;
  l.op = "Conv";
  l.wshape = {4, 3, 2, 2};
  l.group = 2;
  Rng rng(testing::TestSeed());
  l.w.resize(48);
  std::vector<float> wq(48);
  for (int i = 0; i < 48; ++i) {
    l.w[i] = static_cast<float>(rng.Normal());
    wq[i] = l.w[i] + static_cast<float>(0.1 * rng.Normal());
  }
  TensorStats in;
  in.per_channel = 10;
  in.channel_sum.assign(6, 0.0);
  in.channel_sq.resize(6);
  for (int c = 0; c < 6; ++c) in.channel_sq[c] = 10.0 * (c + 1);  // E[x_c^2] = c + 1
  const std::vector<double> e = FilterOutputErrors(l, wq, in);
  ASSERT_EQ(e.size(), 4u);
  for (int r = 0; r < 4; ++r) {
    double want = 0;
    for (int ci = 0; ci < 3; ++ci) {
      const int chan = (r / 2) * 3 + ci;
      for (int t = 0; t < 4; ++t) {
        const double d = static_cast<double>(l.w[r * 12 + ci * 4 + t]) - wq[r * 12 + ci * 4 + t];
        want += d * d * (chan + 1);
      }
    }
    EXPECT_NEAR(e[r], want, 1e-9 * want) << "filter " << r;
  }
}

TEST(Sensitivity, IsolatedLayerMetricQuantizesOnlyThatLayer) {
  Graph g = testing::LoadBundled("fmnist_cnn.onnx");
  auto ds = Dataset::Open("fashion-mnist:test[0:300]");
  ASSERT_TRUE(ds.ok());
  const std::vector<QuantLayer> layers = QuantLayers(g);
  EvalOptions o;
  ReferenceOutputs ref;
  ASSERT_TRUE(Evaluate(g, **ds, o, &ref).ok());
  o.reference = &ref;
  LayerSettings s;
  s.weights = "int2";
  std::vector<double> sqnr;
  for (const QuantLayer& l : layers) {
    auto q = QuantizeLayer(g, l, s, nullptr, {});
    ASSERT_TRUE(q.ok()) << q.status().ToString();
    auto m = IsolatedLayerMetric(g, *q, **ds, o);
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    EXPECT_TRUE(std::isfinite(m->sqnr_db)) << l.name;
    sqnr.push_back(m->sqnr_db);
    // The candidate has exactly one packed layer.
    auto costs = LayerCosts(AssembleGraph(g, {&*q}));
    ASSERT_TRUE(costs.ok());
    int packed = 0;
    for (const LayerCost& c : *costs) packed += c.format != "fp32";
    EXPECT_EQ(packed, 1);
  }
  // Every layer alone at int2 costs less SQNR than all of them together.
  QuantizeOptions qo;
  qo.plan.defaults.weights = "int2";
  qo.quiet = true;
  auto all = QuantizeGraph(g, qo);
  ASSERT_TRUE(all.ok());
  auto m = Evaluate(all->graph, **ds, o);
  ASSERT_TRUE(m.ok());
  for (double db : sqnr) EXPECT_GT(db, m->sqnr_db);
}

}  // namespace
}  // namespace lowbit
