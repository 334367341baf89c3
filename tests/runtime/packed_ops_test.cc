// Packed layers on hand-built graphs: the packed operators run them on the
// low-bit kernels, and their outputs equal the QDQ reference graph (the same
// integer semantics in fp32 operators) for every kernel path, conv shape and
// format; fused residuals equal unfused graphs; plans keep weights packed.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "tests/runtime/packed_graphs.h"

namespace lowbit {
namespace {

TEST(PackedOpsTest, ConvMatchesQdqReferenceOnOddShapes) {
  const uint64_t seed = testing::TestSeed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  Rng rng(seed);
  const ConvCase cases[] = {
      {1, 3, 9, 7, 5, 3, 1, 1, 1},     // odd everything
      {2, 16, 8, 8, 17, 3, 2, 1, 1},   // stride 2, tile + 1 outputs
      {1, 8, 6, 5, 16, 1, 1, 0, 1},    // pointwise
      {2, 32, 5, 3, 20, 1, 1, 0, 1},   // pointwise straight from the NHWC bytes
      {2, 12, 7, 7, 12, 3, 1, 1, 12},  // depthwise
      {1, 8, 7, 6, 8, 3, 2, 1, 8},     // depthwise, stride 2
      {1, 8, 5, 5, 6, 3, 1, 2, 2},     // grouped, pad 2
      {2, 3, 19, 17, 9, 7, 2, 3, 1},   // a ResNet stem: 7x7 at stride 2 (summed-area window sums)
      {3, 1, 10, 9, 16, 5, 1, 2, 1},   // a grey stem: kernel rows of 5 bytes in K steps of 8
      {1, 2, 6, 11, 18, 3, 2, 1, 1},   // 2 channels: rows of 6 bytes, 2 read past each window
      {1, 16, 5, 5, 130, 3, 1, 1, 1},  // few pixels, many outputs: threads split the outputs
      {1, 32, 4, 3, 128, 1, 1, 0, 1},  // the same, pointwise
  };
  for (const ConvCase& cc : cases) {
    for (const char* weights : {"int8", "int4", "int2", "int3", "uint4", "int4-asym", "nhot2-4",
                                "int1", "int6", "nhot2-6"}) {
      for (const char* acts : {"uint8", "int8"}) {
        for (bool dynamic : {false, true}) {
          SCOPED_TRACE(::testing::Message() << "conv c" << cc.c << " m" << cc.m << " k" << cc.k
                                            << " s" << cc.stride << " g" << cc.group << " " << weights
                                            << " " << acts << (dynamic ? " dynamic" : " static"));
          const Graph g = ConvGraph(cc, rng, true);
          Graph q = Quantize(g, weights, acts);
          if (!dynamic) SetStaticRange(&q, -0.8f, 1.1f);
          const Tensor x = Random({cc.n, cc.c, cc.h, cc.w}, rng);
          const Tensor fp32 = RunGraph(g, x);
          auto qdq = ToQdqGraph(q, nullptr, QdqOptions{.int32_bias = false});
          ASSERT_TRUE(qdq.ok()) << qdq.status().ToString();
          // Dynamic conv quantization is per image; the QDQ graph's
          // DynamicQuantizeLinear is per tensor, so compare one image at a time.
          for (const char* path : Paths()) {
            KernelEnv env(path);
            for (const char* lut : LutModes(weights))
              for (int threads : {1, 2}) {
                LutEnv lut_env(lut);
                const Tensor got = RunGraph(q, x, threads);
                // (DynamicQuantizeLinear is asymmetric: only uint8 matches.)
                if (!dynamic || (cc.n == 1 && std::string(acts) == "uint8")) {
                  const Tensor want = RunGraph(*qdq, x);
                  // Same integers; fp32 summation order differs.
                  EXPECT_LT(MaxRelDiff(got, want), 2e-5)
                      << path << " lut " << lut << " threads " << threads;
                }
                // Static ranges clip this input; dynamic ones see all of it.
                if (dynamic && std::string(weights) == "int8") {
                  EXPECT_GT(SqnrDb(fp32, got), 30) << path;
                }
              }
          }
        }
      }
    }
  }
}

TEST(PackedOpsTest, GemmAndMatMulMatchQdqReference) {
  Rng rng(testing::TestSeed() + 1);
  for (bool matmul : {false, true}) {
    for (int64_t k : {1, 31, 64, 129}) {
      for (const char* weights :
           {"int8", "int4", "int2", "int1", "int3", "pow2-3", "codebook-3", "int7", "nhot2-8"}) {
        SCOPED_TRACE(::testing::Message() << (matmul ? "MatMul" : "Gemm") << " k " << k << " " << weights);
        const Graph g = GemmGraph(k, 19, rng, matmul);
        Graph q = Quantize(g, weights);
        SetStaticRange(&q, -1.0f, 0.7f);
        auto qdq = ToQdqGraph(q, nullptr, QdqOptions{.int32_bias = false});
        ASSERT_TRUE(qdq.ok()) << qdq.status().ToString();
        const Tensor x = Random({3, k}, rng);
        const Tensor want = RunGraph(*qdq, x);
        for (const char* path : Paths()) {
          KernelEnv env(path);
          for (const char* lut : LutModes(weights)) {
            LutEnv lut_env(lut);
            EXPECT_LT(MaxRelDiff(RunGraph(q, x), want), 2e-5) << path << " lut " << lut;
          }
        }
        if (std::string(weights) == "int8") {  // dynamic ranges: no clipping
          EXPECT_GT(SqnrDb(RunGraph(g, x), RunGraph(Quantize(g, weights), x)), 30);
        }
      }
    }
  }
}

// Filter-wise formats (a format per output channel): each format's filters
// run as one kernel layout and write their own outputs; the result equals the
// QDQ reference (the int formats export exactly as one int8 tensor, the
// others as decoded fp32) on every path, with 1 and 2 threads, for convs
// (implicit GEMM, pointwise direct, stem, outputs split across threads) and
// Gemm/MatMul.
TEST(PackedOpsTest, FilterWiseFormatsMatchQdqReference) {
  const uint64_t seed = testing::TestSeed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  Rng rng(seed + 3);
  const ConvCase cases[] = {
      {1, 3, 9, 7, 5, 3, 1, 1, 1},     // odd everything
      {2, 16, 8, 8, 17, 3, 2, 1, 1},   // stride 2, tile + 1 outputs
      {2, 32, 5, 3, 20, 1, 1, 0, 1},   // pointwise straight from the NHWC bytes
      {2, 3, 19, 17, 9, 7, 2, 3, 1},   // a ResNet stem
      {1, 16, 5, 5, 130, 3, 1, 1, 1},  // few pixels, many outputs: threads split the outputs
  };
  const char* formats[] = {"int2/int4:0.3", "int4-asym/int8-asym:0.5", "int1/int3:0.5",
                           "pow2-3/int3:0.4"};
  auto check = [&](const Graph& g, const Graph& q, const Tensor& x) {
    int parts = 0;
    for (const Node& n : q.nodes) parts += IsPackedNode(n) && n.Has(kFilterParts);
    EXPECT_EQ(parts, 1);
    auto qdq = ToQdqGraph(q, nullptr, QdqOptions{.int32_bias = false});
    ASSERT_TRUE(qdq.ok()) << qdq.status().ToString();
    const Tensor want = RunGraph(*qdq, x);
    for (const char* path : Paths()) {
      KernelEnv env(path);
      for (int threads : {1, 2}) {
        EXPECT_LT(MaxRelDiff(RunGraph(q, x, threads), want), 2e-5)
            << path << " threads " << threads;
      }
    }
    (void)g;
  };
  for (const ConvCase& cc : cases) {
    for (const char* weights : formats) {
      for (const char* acts : {"uint8", "int8"}) {
        SCOPED_TRACE(::testing::Message() << "conv c" << cc.c << " m" << cc.m << " k" << cc.k << " "
                                          << weights << " " << acts);
        const Graph g = ConvGraph(cc, rng, true);
        Graph q = Quantize(g, weights, acts);
        SetStaticRange(&q, -0.8f, 1.1f);
        check(g, q, Random({cc.n, cc.c, cc.h, cc.w}, rng));
      }
    }
  }
  for (bool matmul : {false, true}) {
    for (const char* weights : formats) {
      SCOPED_TRACE(::testing::Message() << (matmul ? "MatMul " : "Gemm ") << weights);
      const Graph g = GemmGraph(45, 37, rng, matmul);
      Graph q = Quantize(g, weights);
      SetStaticRange(&q, -1.0f, 0.7f);
      check(g, q, Random({3, 45}, rng));
    }
  }
  // Three formats by an explicit assignment (a tuner's plan), every filter
  // where the plan puts it.
  const Graph g = ConvGraph({1, 8, 6, 6, 12, 3, 1, 1, 1}, rng, false);
  QuantizeOptions o;
  o.quiet = true;
  auto plan = ParsePlanJson(
      R"({"weights": "int8", "layers": {"conv": {"weights": "int2/int8/int4",
          "filters": [0, 1, 2, 2, 0, 0, 1, 0, 2, 0, 0, 0]}}})",
      "plan.json");
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  o.plan = *plan;
  auto r = QuantizeGraph(g, o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const Node& n = r->graph.nodes[0];
  EXPECT_EQ(n.GetString("format", ""), "int2/int8/int4");
  EXPECT_EQ(n.GetInts(kFilterParts), (std::vector<int64_t>{0, 1, 2, 2, 0, 0, 1, 0, 2, 0, 0, 0}));
  EXPECT_EQ(r->resolved[0].second.filters,
            (std::vector<int32_t>{0, 1, 2, 2, 0, 0, 1, 0, 2, 0, 0, 0}));
  auto parts =
      PackedPartsOf(n, r->graph.constants.at(n.input(1)), r->graph.constants.at(n.input(2)));
  ASSERT_TRUE(parts.ok()) << parts.status().ToString();
  ASSERT_EQ(parts->parts.size(), 3u);
  EXPECT_EQ(parts->parts[1].bits(), 8);
  EXPECT_EQ(parts->channels[2], (std::vector<int32_t>{2, 3, 8}));
  // 7 filters x 72 weights at 2 bits, 2 at 8, 3 at 4: the file holds the bits.
  EXPECT_EQ(r->graph.constants.at(n.input(1)).numel(), 7 * 18 + 2 * 72 + 3 * 36);
  Graph q = r->graph;
  SetStaticRange(&q, -1.0f, 1.0f);
  check(g, q, Random({1, 8, 6, 6}, rng));
}

// Weight-only layers (acts "float") equal fp32 layers on the decoded weights
// (the QDQ export): every bit width and family, group granularity, decoded
// tiles smaller than the layer, GEMV and GEMM batches.
TEST(PackedOpsTest, WeightOnlyLayersMatchDecodedReference) {
  const uint64_t seed = testing::TestSeed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  Rng rng(seed + 7);
  const ConvCase cases[] = {
      {1, 3, 9, 7, 5, 3, 1, 1, 1},      // odd everything
      {2, 16, 8, 8, 17, 3, 2, 1, 1},    // stride 2, two images
      {2, 8, 6, 5, 16, 1, 1, 0, 1},     // pointwise
      {2, 12, 7, 7, 12, 3, 1, 1, 12},   // depthwise
      {1, 8, 5, 5, 6, 3, 1, 2, 2},      // grouped, pad 2
      {1, 600, 4, 4, 40, 3, 1, 1, 1},   // 5400 inputs: 16-row tiles, three of them
  };
  const char* formats[] = {"int8", "int5", "int4", "int3", "int2", "int1", "uint4", "int4-asym",
                           "pow2-4", "nhot2-4", "codebook-3", "codebook-6"};
  for (const ConvCase& cc : cases) {
    for (const char* weights : formats) {
      for (const char* gran : {"channel", "tensor", "group:8"}) {
        SCOPED_TRACE(::testing::Message() << "conv c" << cc.c << " m" << cc.m << " g" << cc.group << " "
                                          << weights << " " << gran);
        const Graph g = ConvGraph(cc, rng, true);
        const Graph q = Quantize(g, weights, "float", gran);
        auto qdq = ToQdqGraph(q, nullptr, QdqOptions{.int32_bias = false});
        ASSERT_TRUE(qdq.ok()) << qdq.status().ToString();
        const Tensor x = Random({cc.n, cc.c, cc.h, cc.w}, rng);
        const Tensor want = RunGraph(*qdq, x);
        for (int threads : {1, 2}) EXPECT_LT(MaxRelDiff(RunGraph(q, x, threads), want), 2e-5) << threads;
      }
    }
  }
  for (int64_t batch : {1, 4, 7}) {
    for (int64_t k : {1, 31, 129}) {
      for (const char* weights : formats) {
        for (bool matmul : {false, true}) {
          SCOPED_TRACE(::testing::Message() << "fc batch " << batch << " k " << k << " " << weights);
          const Graph g = GemmGraph(k, 37, rng, matmul);
          const Graph q = Quantize(g, weights, "float", k % 8 == 1 && k > 1 ? "group:16" : "channel");
          auto qdq = ToQdqGraph(q, nullptr, QdqOptions{.int32_bias = false});
          ASSERT_TRUE(qdq.ok()) << qdq.status().ToString();
          const Tensor x = Random({batch, k}, rng);
          const Tensor want = RunGraph(*qdq, x);
          for (int threads : {1, 2}) EXPECT_LT(MaxRelDiff(RunGraph(q, x, threads), want), 2e-5) << threads;
        }
      }
    }
  }
  // Weight-only layers keep fp32 activations: no act_range.
  Graph q = Quantize(GemmGraph(8, 4, rng, false), "int4", "float");
  ASSERT_FALSE(q.nodes.empty());
  q.nodes[0].attrs["act_range"] = std::vector<float>{-1.0f, 1.0f};
  auto plan = Plan::Create(q, TestPlanOptions());
  ASSERT_FALSE(plan.ok());
  EXPECT_NE(plan.status().message().find("act_range"), std::string::npos) << plan.status().message();
}

TEST(PackedOpsTest, FusedResidualAddsMatchUnfusedGraphs) {
  const uint64_t seed = testing::TestSeed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  for (bool broadcast : {false, true}) {
    for (bool depthwise : {false, true}) {
      SCOPED_TRACE(::testing::Message() << (broadcast ? "broadcast" : "same shape")
                                        << (depthwise ? " depthwise" : ""));
      Rng rng(seed + 13), rng2(seed + 13);
      const Graph plain = ResidualGraph(20, broadcast, depthwise, rng, false);
      const Graph g = ResidualGraph(20, broadcast, depthwise, rng2, true);
      // conv b took the Add's place, with the residual as input 3 and the Relu.
      const Node& fused = g.nodes.back();
      ASSERT_EQ(fused.op_type, "Conv");
      EXPECT_EQ(fused.input(3), "a");
      EXPECT_EQ(fused.GetString("lowbit.activation", ""), "Relu");
      EXPECT_EQ(g.nodes.size(), 2u);
      Rng xr(seed);
      const Tensor x = Random({2, 20, 7, 6}, xr);
      EXPECT_LT(MaxRelDiff(RunGraph(g, x), RunGraph(plain, x)), 1e-6);
      for (const char* acts : {"uint8", "float"}) {
        Graph q = Quantize(g, "int4", acts);
        if (std::string(acts) != "float") SetStaticRange(&q, -1.0f, 1.0f);
        auto qdq = ToQdqGraph(q, nullptr, QdqOptions{.int32_bias = false});
        ASSERT_TRUE(qdq.ok()) << qdq.status().ToString();
        const Tensor want = RunGraph(*qdq, x);
        for (const char* path : Paths()) {
          KernelEnv env(path);
          for (int threads : {1, 2}) {
            EXPECT_LT(MaxRelDiff(RunGraph(q, x, threads), want), 2e-5) << acts << " " << path << " " << threads;
          }
        }
      }
    }
  }
  // Not fused: a constant operand (it would broadcast like a bias), and an
  // activation between the conv and the Add.
  Rng rng(seed);
  Graph g = ResidualGraph(8, false, false, rng, false);
  g.constants["k"] = Random({8, 1, 1}, rng);
  g.nodes[2].inputs[1] = "k";
  EXPECT_EQ(FuseResidualAdds(&g), 0);
  g = ResidualGraph(8, true, false, rng, false);  // the other operand: GlobalAveragePool
  std::swap(g.nodes[2].op_type, g.nodes[3].op_type);  // Conv -> Relu -> Add
  std::swap(g.nodes[2].inputs, g.nodes[3].inputs);
  g.nodes[2].inputs = {"b"};
  g.nodes[3].inputs = {"s", "a"};
  g.nodes[2].outputs = {"s"};
  EXPECT_EQ(FuseResidualAdds(&g), 0);
}

TEST(PackedOpsTest, PlansKeepWeightsPacked) {
  // A 2048 x 2048 layer: 16 MiB in fp32, 1 MiB at int2. A plan that widened
  // it to fp32 at load time (or, weight-only, at run time) would grow resident
  // memory by 16 MiB or more.
  for (const char* acts : {"uint8", "float"}) {
    SCOPED_TRACE(acts);
    Rng rng(11);
    Graph q;
    {
      const Graph g = GemmGraph(2048, 2048, rng, false);
      q = Quantize(g, "int2", acts);
    }
    malloc_trim(0);  // freed heap pages back to the system, so growth is real
    const int64_t before = ResidentBytes();
    PlanOptions po = TestPlanOptions();
    auto plan = Plan::Create(q, po);
    ASSERT_TRUE(plan.ok()) << plan.status().ToString();
    (*plan)->Run();
    const int64_t grown = ResidentBytes() - before;
    EXPECT_LT(grown, 8 << 20) << "plan creation grew resident memory by " << grown << " bytes";
  }
}

}  // namespace
}  // namespace lowbit
