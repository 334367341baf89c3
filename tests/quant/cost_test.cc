// Costs per layer: MACs from the geometry, bytes from the packer, bit-ops.
#include "quant/cost.h"

#include <gtest/gtest.h>

#include "quant/quantize.h"
#include "tests/model_files.h"

namespace lowbit {
namespace {

TEST(Cost, MacsBytesAndBitOpsOfTheBundledCnn) {
  Graph g = testing::LoadBundled("fmnist_cnn.onnx");
  auto fp32 = LayerCosts(g);
  ASSERT_TRUE(fp32.ok());
  QuantizeOptions qo;
  qo.plan.defaults.weights = "int4";
  qo.quiet = true;
  auto q = QuantizeGraph(g, qo);
  ASSERT_TRUE(q.ok());
  auto packed = LayerCosts(q->graph);
  ASSERT_TRUE(packed.ok());
  ASSERT_EQ(fp32->size(), packed->size());
  for (size_t i = 0; i < fp32->size(); ++i) {
    const LayerCost& a = (*fp32)[i];
    const LayerCost& b = (*packed)[i];
    EXPECT_EQ(a.macs, b.macs);
    EXPECT_EQ(a.params, b.params);
    EXPECT_EQ(a.weight_bytes, a.params * 4);
    EXPECT_EQ(b.weight_bytes, q->layers[i].bytes);  // the packer's count
    EXPECT_EQ(b.wbits, 4);
    EXPECT_EQ(b.abits, 8);
    EXPECT_DOUBLE_EQ(b.bitops(), static_cast<double>(b.macs) * 32);
    EXPECT_DOUBLE_EQ(FilterBitOps(b.macs_per_filter(), std::vector<int>(b.filters, 4), 8),
                     b.bitops());
  }
  // The first conv: 16 filters of 5x5 over 1 channel, padded to 28x28 outputs.
  const LayerCost& c0 = (*fp32)[0];
  EXPECT_EQ(c0.op, "Conv");
  EXPECT_EQ(c0.params, 16 * 25);
  EXPECT_EQ(c0.macs, 16 * 28 * 28 * 25);
}

}  // namespace
}  // namespace lowbit
