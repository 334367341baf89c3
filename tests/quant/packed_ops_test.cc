// Quantized layers end to end on hand-built graphs: QuantizeGraph packs Conv /
// Gemm / MatMul, the packed operators run them on the low-bit kernels, and
// their outputs equal the QDQ reference graph (the same integer semantics in
// fp32 operators) for every kernel path, conv shape and format.
#include <gtest/gtest.h>
#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "base/npy.h"
#include "base/rng.h"
#include "data/dataset.h"
#include "ir/passes.h"
#include "kernels/depthwise.h"
#include "kernels/qlinear.h"
#include "quant/qdq_export.h"
#include "quant/quant_plan.h"
#include "quant/quantize.h"
#include "runtime/byte_edges.h"
#include "model/packed_node.h"
#include "runtime/plan.h"
#include "tests/test_util.h"

namespace lowbit {
namespace {

// The kernel choices of every plan this file makes (PlanOptions::kernels);
// the *Env classes below set them for a scope.
KernelOptions& TestKernels() {
  static KernelOptions k;
  return k;
}
class KernelScope {
 public:
  KernelScope() : saved_(TestKernels()) {}
  ~KernelScope() { TestKernels() = saved_; }

 private:
  KernelOptions saved_;
};
PlanOptions TestPlanOptions() {
  PlanOptions po;
  po.kernels = TestKernels();
  return po;
}

Tensor Random(Shape shape, Rng& rng, float lo = -1, float hi = 1) {
  return testing::RandomTensor(std::move(shape), rng, lo, hi);
}

// Runs g on x; *edges: how many values the plan passed as bytes.
Tensor RunEdges(const Graph& g, const Tensor& x, int threads, bool byte_edges, int* edges) {
  PlanOptions po = TestPlanOptions();
  po.batch = x.shape()[0];
  po.threads = threads;
  po.byte_edges = byte_edges;
  auto plan = Plan::Create(g, po);
  EXPECT_TRUE(plan.ok()) << plan.status().ToString();
  if (!plan.ok()) return Tensor();
  *edges = (*plan)->num_byte_edges();
  std::copy_n(x.data<float>(), x.numel(), (*plan)->input(0).data<float>());
  (*plan)->Run();
  return (*plan)->output(0).Clone();
}

Tensor RunGraph(const Graph& g, const Tensor& x, int threads = 1) {
  int edges = 0;
  return RunEdges(g, x, threads, true, &edges);
}

double SqnrDb(const Tensor& ref, const Tensor& got) {
  double s = 0, e = 0;
  for (int64_t i = 0; i < ref.numel(); ++i) {
    const double r = ref.data<float>()[i], d = r - got.data<float>()[i];
    s += r * r;
    e += d * d;
  }
  return e == 0 ? 999 : 10 * std::log10(s / e);
}

// Largest |a - b| relative to max |b|.
double MaxRelDiff(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.shape(), b.shape());
  double num = 0, den = 1e-30;
  for (int64_t i = 0; i < a.numel(); ++i) {
    num = std::max(num, static_cast<double>(std::fabs(a.data<float>()[i] - b.data<float>()[i])));
    den = std::max(den, static_cast<double>(std::fabs(b.data<float>()[i])));
  }
  return num / den;
}

struct ConvCase {
  int64_t n, c, h, w, m, k, stride, pad, group;
};

Graph ConvGraph(const ConvCase& cc, Rng& rng, bool relu) {
  Graph g;
  g.source = "test";
  g.opset = 13;
  g.inputs = {{"x", DType::kFloat32, {-1, cc.c, cc.h, cc.w}}};
  g.outputs = {{"y", DType::kFloat32, {}}};
  g.constants["W"] = Random({cc.m, cc.c / cc.group, cc.k, cc.k}, rng);
  g.constants["B"] = Random({cc.m}, rng);
  Node n;
  n.name = "conv";
  n.op_type = "Conv";
  n.opset = 13;
  n.inputs = {"x", "W", "B"};
  n.outputs = {relu ? "c" : "y"};
  n.attrs["strides"] = std::vector<int64_t>{cc.stride, cc.stride};
  n.attrs["pads"] = std::vector<int64_t>{cc.pad, cc.pad, cc.pad, cc.pad};
  n.attrs["group"] = cc.group;
  g.nodes.push_back(n);
  if (relu) {
    Node r;
    r.name = "relu";
    r.op_type = "Relu";
    r.opset = 13;
    r.inputs = {"c"};
    r.outputs = {"y"};
    g.nodes.push_back(r);
  }
  EXPECT_TRUE(OptimizeGraph(&g).ok());
  return g;
}

Graph GemmGraph(int64_t k, int64_t n, Rng& rng, bool matmul) {
  Graph g;
  g.source = "test";
  g.opset = 13;
  g.inputs = {{"x", DType::kFloat32, {-1, k}}};
  g.outputs = {{"y", DType::kFloat32, {}}};
  Node node;
  node.name = "fc";
  node.opset = 13;
  node.outputs = {"y"};
  if (matmul) {
    g.constants["W"] = Random({k, n}, rng);
    node.op_type = "MatMul";
    node.inputs = {"x", "W"};
  } else {
    g.constants["W"] = Random({n, k}, rng);
    g.constants["B"] = Random({n}, rng);
    node.op_type = "Gemm";
    node.inputs = {"x", "W", "B"};
    node.attrs["transB"] = int64_t{1};
    node.attrs["alpha"] = 0.5f;
  }
  g.nodes.push_back(node);
  return g;
}

// Static activation ranges without a dataset: set act_range on every packed node.
void SetStaticRange(Graph* g, float lo, float hi) {
  for (Node& n : g->nodes) {
    if (IsPackedNode(n)) n.attrs["act_range"] = std::vector<float>{lo, hi};
  }
}

Graph Quantize(const Graph& g, const std::string& weights, const std::string& acts = "uint8",
               const std::string& gran = "channel") {
  QuantizeOptions o;
  o.plan.defaults.weights = weights;
  o.plan.defaults.acts = acts;
  o.plan.defaults.granularity = gran;
  o.quiet = true;
  auto r = QuantizeGraph(g, o);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? r->graph : Graph();
}

// Sets the kernel path of the plans this file makes for a scope.
class KernelEnv : KernelScope {
 public:
  explicit KernelEnv(const char* path) { TestKernels().path = *ParseKernelPath(path); }
};

// Sets the table-kernel rule for a scope (the table kernel for 1- and 2-bit
// weights): "on" or "off".
class LutEnv : KernelScope {
 public:
  explicit LutEnv(const char* mode) {
    TestKernels().lut = std::string(mode) == "on" ? KernelRule::kOn : KernelRule::kOff;
  }
};

// "off", and "on" too for the formats the table kernel runs.
std::vector<const char*> LutModes(const std::string& weights) {
  if (weights == "int1" || weights == "int2" || weights == "uint2") return {"off", "on"};
  return {"off"};
}

// Every kernel path this CPU runs (kernels/kernel_paths.inc).
std::vector<const char*> Paths() {
  std::vector<const char*> p;
  for (KernelPath k : AvailableKernelPaths()) p.push_back(KernelPathName(k));
  return p;
}

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
          auto qdq = ToQdqGraph(q);
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
        auto qdq = ToQdqGraph(q);
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
    auto qdq = ToQdqGraph(q);
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
        auto qdq = ToQdqGraph(q);
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
          auto qdq = ToQdqGraph(q);
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

// Appends an opset-13 node named "OP_OUT" with one output.
Node* AddNode(Graph* g, const std::string& op, std::vector<std::string> in, const std::string& out) {
  Node n;
  n.name = op + "_" + out;
  n.op_type = op;
  n.opset = 13;
  n.inputs = std::move(in);
  n.outputs = {out};
  g->nodes.push_back(n);
  return &g->nodes.back();
}

// x -> conv a; x -> conv b; Add(b, a or GlobalAveragePool(x)) -> Relu: the
// residual adds FuseResidualAdds folds into conv b (same shape, or a [N, C,
// 1, 1] residual that broadcasts). `depthwise` makes conv b depthwise.
Graph ResidualGraph(int64_t c, bool broadcast, bool depthwise, Rng& rng, bool optimize) {
  Graph g;
  g.source = "test";
  g.opset = 13;
  g.inputs = {{"x", DType::kFloat32, {-1, c, 7, 6}}};
  g.outputs = {{"y", DType::kFloat32, {}}};
  auto conv = [&](const std::string& name, int64_t group, const std::string& out) {
    g.constants[name + ".W"] = Random({c, c / group, 3, 3}, rng);
    g.constants[name + ".B"] = Random({c}, rng);
    Node n;
    n.name = name;
    n.op_type = "Conv";
    n.opset = 13;
    n.inputs = {"x", name + ".W", name + ".B"};
    n.outputs = {out};
    n.attrs["pads"] = std::vector<int64_t>{1, 1, 1, 1};
    n.attrs["group"] = group;
    g.nodes.push_back(n);
  };
  auto node = [&](const std::string& op, std::vector<std::string> in, const std::string& out) {
    AddNode(&g, op, std::move(in), out);
  };
  if (broadcast) {
    node("GlobalAveragePool", {"x"}, "a");
  } else {
    conv("conv_a", 1, "a");
  }
  conv("conv_b", depthwise ? c : 1, "b");
  node("Add", {"b", "a"}, "s");
  node("Relu", {"s"}, "y");
  if (optimize) {
    EXPECT_TRUE(OptimizeGraph(&g).ok());
  }
  return g;
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
        auto qdq = ToQdqGraph(q);
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

// A small network in the shape of a ResNet stem and two blocks (residual =
// true; false drops the Adds): conv (Relu) -> MaxPool -> [conv, conv + skip]
// -> [strided conv, 1x1 conv + skip] -> two depthwise convs (strides 1, 2)
// -> two 1x1 convs -> GlobalAveragePool. Without the Adds the 1x1 conv after
// the strided one has stride 2 (a downsample reading 8-bit pixels). With
// `broadcast`, instead: a conv down to 1x1 pixels g, read by a conv as X and
// added, broadcast, to another conv's output. With `projection` (and
// residual), the second block's skip is a strided 1x1 conv sc that only the
// Add reads (a ResNet downsample): [strided conv c, conv d + sc].
Graph BlocksGraph(bool residual, bool broadcast, Rng& rng, bool projection = false) {
  Graph g;
  g.source = "test";
  g.opset = 13;
  g.inputs = {{"x", DType::kFloat32, {-1, 6, 11, 9}}};
  g.outputs = {{"y", DType::kFloat32, {}}};
  auto node = [&](const std::string& op, std::vector<std::string> in, const std::string& out) {
    return AddNode(&g, op, std::move(in), out);
  };
  auto conv = [&](const std::string& in, const std::string& out, int64_t cin, int64_t cout, int64_t k,
                  int64_t stride, int64_t pad, bool relu, int64_t group = 1) {
    g.constants[out + ".W"] = Random({cout, cin / group, k, k}, rng, -0.5f, 0.5f);
    g.constants[out + ".B"] = Random({cout}, rng, -0.2f, 0.2f);
    Node* n = node("Conv", {in, out + ".W", out + ".B"}, relu ? out + ".pre" : out);
    n->attrs["strides"] = std::vector<int64_t>{stride, stride};
    n->attrs["pads"] = std::vector<int64_t>{pad, pad, pad, pad};
    n->attrs["group"] = group;
    if (relu) node("Relu", {out + ".pre"}, out);
  };
  auto add_relu = [&](const std::string& a, const std::string& b, const std::string& out) {
    node("Add", {a, b}, out + ".sum");
    node("Relu", {out + ".sum"}, out);
  };
  if (broadcast) {
    conv("x", "g", 6, 8, 3, 4, 0, true);  // [N, 8, 3, 2] -> pooled below to 1x1
    conv("g", "g1", 8, 8, 1, 1, 0, false);
    Node* mp = node("MaxPool", {"g1"}, "gp");
    mp->attrs["kernel_shape"] = std::vector<int64_t>{3, 2};
    conv("gp", "q", 8, 8, 1, 1, 0, true);         // gp read as X ...
    conv("x", "r", 6, 8, 3, 1, 1, false);
    add_relu("r", "gp", "rs");                     // ... and as a broadcast residual
    conv("rs", "s", 8, 8, 3, 1, 1, true);
    node("GlobalAveragePool", {"s"}, "sp");
    node("Add", {"sp", "q"}, "y");
  } else {
    conv("x", "c0", 6, 16, 3, 1, 1, true);
    Node* mp = node("MaxPool", {"c0"}, "p");
    mp->attrs["kernel_shape"] = std::vector<int64_t>{3, 3};
    mp->attrs["strides"] = std::vector<int64_t>{2, 2};
    mp->attrs["pads"] = std::vector<int64_t>{1, 1, 1, 1};
    conv("p", "a", 16, 16, 3, 1, 1, true);
    conv("a", residual ? "b" : "r1", 16, 16, 3, 1, 1, !residual);
    if (residual) add_relu("b", "p", "r1");
    if (residual && projection) {
      conv("r1", "c", 16, 24, 3, 2, 1, true);
      conv("c", "d", 24, 24, 3, 1, 1, false);
      conv("r1", "sc", 16, 24, 1, 2, 0,
           false);  // a skip with negative values, read only by the Add
      add_relu("d", "sc", "r2");
    } else {
      conv("r1", "c", 16, 24, 3, 2, 1, false);  // a skip with negative values
      conv("c", residual ? "d" : "r2", 24, 24, 1, residual ? 1 : 2, 0, !residual);
      if (residual) add_relu("d", "c", "r2");
    }
    conv("r2", "dw1", 24, 24, 3, 1, 1, false, 24);  // depthwise, MobileNet style
    conv("dw1", "dw2", 24, 24, 3, 2, 1, true, 24);  // (reading negative values)
    conv("dw2", "wide", 24, 130, 1, 1, 0,
         true);  // 2x2 pixels (chain: 1): threads split the outputs
    conv("wide", "e", 130, 20, 1, 1, 0, false);
    node("GlobalAveragePool", {"e"}, "y");
  }
  EXPECT_TRUE(OptimizeGraph(&g).ok());
  return g;
}

// Every packed node's act_range, and residual_range where it has a residual:
// the min and max of the value it reads in the fp32 graph `f` on input x (as
// calibration gives: the same for all readers of a value).
void SetRangesPerValue(const Graph& f, const Tensor& x, Graph* q) {
  PlanOptions po = TestPlanOptions();
  po.batch = x.shape()[0];
  for (const Node& n : q->nodes) {
    if (!IsPackedNode(n)) continue;
    for (size_t i : {size_t{0}, size_t{4}}) {
      if (!n.input(i).empty() && !f.IsConstant(n.input(i))) po.keep.push_back(n.input(i));
    }
  }
  auto plan = Plan::Create(f, po);
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  std::copy_n(x.data<float>(), x.numel(), (*plan)->input(0).data<float>());
  (*plan)->Run();
  for (Node& n : q->nodes) {
    if (!IsPackedNode(n)) continue;
    for (size_t i : {size_t{0}, size_t{4}}) {
      if (n.input(i).empty()) continue;
      const Tensor* v = (*plan)->value(n.input(i));
      ASSERT_NE(v, nullptr) << n.input(i);
      const auto [lo, hi] = std::minmax_element(v->data<float>(), v->data<float>() + v->numel());
      n.attrs[i == 0 ? "act_range" : "residual_range"] = std::vector<float>{*lo, *hi};
    }
  }
}

// Byte edges (runtime/byte_edges.h) give the consumers exactly the bytes they
// would have quantized, so a network without residual adds computes the same
// output bit for bit; residuals read as bytes add their 8-bit quantization.
TEST(PackedOpsTest, ByteEdgesMatchFloatEdges) {
  const uint64_t seed = testing::TestSeed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  struct Case {
    bool residual, broadcast, projection, residual_range;
    int edges;  // values that travel as bytes
  };
  // Chain: c0, p, a, r1, c, r2, dw1, dw2, wide. Residual: the same (the
  // skips' readers write bytes). Broadcast: g, g1, gp, rs. Projection: the
  // chain and sc, by its reader's residual_range (and not without it).
  // (Filter-wise formats: byte outputs and residuals scattered per format.)
  for (const Case& k : {Case{false, false, false, true, 9}, Case{true, false, false, true, 9},
                        Case{false, true, false, true, 4}, Case{true, false, true, true, 10},
                        Case{true, false, true, false, 9}})
    for (const char* weights : {"int4", "int2/int4:0.5"}) {
      SCOPED_TRACE(::testing::Message()
                   << (k.broadcast    ? "broadcast"
                       : k.projection ? "projection"
                       : k.residual   ? "residual"
                                      : "chain")
                   << (k.residual_range ? "" : " without residual_range") << " " << weights);
      Rng rng(seed + 5);
      const Graph f = BlocksGraph(k.residual, k.broadcast, rng, k.projection);
      Graph q = Quantize(f, weights);
      Rng xr(seed);
      const Tensor x = Random({2, 6, 11, 9}, xr, 0.0f, 1.0f);
      SetRangesPerValue(f, x, &q);
      if (!k.residual_range) {
        for (Node& n : q.nodes) n.attrs.erase("residual_range");
      }
      // Batch 1 splits each image across threads (by pixels or, for "wide", by
      // outputs); batch 2 on 2 threads gives each thread whole images.
      Tensor x1(DType::kFloat32, {1, 6, 11, 9});
      std::copy_n(x.data<float>(), x1.numel(), x1.data<float>());
      for (const char* path : Paths()) {
        KernelEnv env(path);
        for (int run = 0; run < 4; ++run) {
          const int threads = 1 + run % 2;
          const Tensor& in = run < 2 ? x : x1;
          int with = 0, without = -1;
          const Tensor got = RunEdges(q, in, threads, true, &with);
          const Tensor want = RunEdges(q, in, threads, false, &without);
          EXPECT_EQ(with, k.edges) << path;
          EXPECT_EQ(without, 0);
          // (Without AVX-512 the fp32 depthwise epilogue rounds twice, the byte
          // one once: a last-bit difference can move a byte.)
          if (!k.residual && !k.broadcast && DepthwiseAvx512Available()) {
            ASSERT_EQ(got.numel(), want.numel());
            for (int64_t i = 0; i < got.numel(); ++i) {
              ASSERT_EQ(got.data<float>()[i], want.data<float>()[i]) << path << " element " << i;
            }
          } else {
            EXPECT_GT(SqnrDb(want, got), 30) << path << " threads " << threads;
          }
        }
      }
    }
}

// Sets LOWBIT_WINOGRAD for a scope.
class WinogradEnv : KernelScope {
 public:
  explicit WinogradEnv(const char* mode) {
    TestKernels().winograd = std::string(mode) == "1" ? KernelRule::kOn : KernelRule::kOff;
  }
};

// Two 3x3 convolutions (c -> c -> m): the second reads the first's bytes
// and ends in a Relu. With `residual` (m == c) the first has a Relu too and
// the second adds the input before its Relu; without, the first's bytes
// have a zero point inside their range. h x w need not be whole 4x4 tiles.
Graph TwoConvGraph(int64_t c, int64_t m, int64_t h, int64_t w, bool residual, Rng& rng) {
  Graph g;
  g.source = "test";
  g.opset = 13;
  g.inputs = {{"x", DType::kFloat32, {-1, c, h, w}}};
  g.outputs = {{"y", DType::kFloat32, {}}};
  const char* names[2][4] = {{"W1", "B1", "c1", "r1"}, {"W2", "B2", "c2", "y"}};
  std::string in = "x";
  for (int i = 0; i < 2; ++i) {
    const int64_t out = i == 0 ? c : m;
    g.constants[names[i][0]] = Random({out, c, 3, 3}, rng, -0.2f, 0.2f);
    g.constants[names[i][1]] = Random({out}, rng);
    Node n;
    n.name = std::string("conv") + std::to_string(i);
    n.op_type = "Conv";
    n.opset = 13;
    n.inputs = {in, names[i][0], names[i][1]};
    n.outputs = {names[i][2]};
    n.attrs["pads"] = std::vector<int64_t>{1, 1, 1, 1};
    g.nodes.push_back(n);
    std::string pre = names[i][2];
    if (!residual && i == 0) {  // no Relu: signed values between the convs
      in = pre;
      continue;
    }
    if (residual && i == 1) {
      Node add;
      add.name = "add";
      add.op_type = "Add";
      add.opset = 13;
      add.inputs = {pre, "x"};
      add.outputs = {"sum"};
      g.nodes.push_back(add);
      pre = "sum";
    }
    Node r;
    r.name = std::string("relu") + std::to_string(i);
    r.op_type = "Relu";
    r.opset = 13;
    r.inputs = {pre};
    r.outputs = {names[i][3]};
    g.nodes.push_back(r);
    in = names[i][3];
  }
  EXPECT_TRUE(OptimizeGraph(&g).ok());
  return g;
}

// Exact Winograd F(4x4, 3x3) (kernels/winograd.h) gives the direct kernels'
// outputs bit for bit -- partial tiles, byte edges, fused residuals, static
// and dynamic ranges, 1 and 2 threads -- and formats it cannot run exactly
// (int8 levels) fall back to the direct kernels.
TEST(PackedOpsTest, WinogradEqualsDirectConvolution) {
  if (!KernelPathAvailable(KernelPath::kAvx512Vnni)) GTEST_SKIP() << "no AVX-512 VNNI here";
  const uint64_t seed = testing::TestSeed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  Rng rng(seed + 21);
  struct Case {
    int64_t n, c, m, h, w;
    bool residual;
  };
  for (const Case& cc : {Case{1, 32, 40, 9, 14, false}, Case{2, 64, 64, 8, 8, true},
                         Case{1, 32, 16, 5, 23, false}, Case{1, 32, 32, 7, 10, true}}) {
    for (const char* weights : {"int2", "int4", "uint4", "int8"}) {
      SCOPED_TRACE(::testing::Message() << "c " << cc.c << " m " << cc.m << " " << cc.h << "x"
                                        << cc.w << (cc.residual ? " residual " : " ") << weights);
      const Graph g = TwoConvGraph(cc.c, cc.m, cc.h, cc.w, cc.residual, rng);
      const Tensor x = Random({cc.n, cc.c, cc.h, cc.w}, rng);  // (a zero point inside the range)
      // Static ranges (the second conv reads the first's bytes) and dynamic
      // ones (each image's own zero point in the padded borders).
      for (bool dynamic : {false, true}) {
        Graph q = Quantize(g, weights);
        if (!dynamic) SetRangesPerValue(g, x, &q);
        KernelEnv env("avx512vnni");
        for (int threads : {1, 2}) {
          int edges = 0;
          Tensor direct, wino;
          {
            WinogradEnv off("0");
            direct = RunEdges(q, x, threads, true, &edges);
          }
          {
            WinogradEnv on("1");
            wino = RunEdges(q, x, threads, true, &edges);
          }
          EXPECT_EQ(edges, dynamic ? 0 : 1);
          ASSERT_EQ(direct.numel(), wino.numel());
          for (int64_t i = 0; i < direct.numel(); ++i) {
            ASSERT_EQ(direct.data<float>()[i], wino.data<float>()[i])
                << (dynamic ? "dynamic" : "static") << " threads " << threads << " element " << i;
          }
        }
      }
    }
  }
}

// The byte-edge attributes belong to the plan: a model file that carries
// them (every packed node claiming 8-bit input) runs as if it did not.
TEST(PackedOpsTest, ModelFilesCannotSetByteEdges) {
  Rng rng(7);
  const Graph f = BlocksGraph(false, false, rng);
  Graph q = Quantize(f, "int4");
  Rng xr(8);
  const Tensor x = Random({1, 6, 11, 9}, xr, 0.0f, 1.0f);
  SetRangesPerValue(f, x, &q);
  Graph forged = q;
  for (Node& n : forged.nodes) {
    if (IsPackedNode(n)) n.attrs[kByteInput] = int64_t{1};
  }
  for (bool byte_edges : {true, false}) {
    int a = 0, b = 0;
    const Tensor want = RunEdges(q, x, 1, byte_edges, &a);
    const Tensor got = RunEdges(forged, x, 1, byte_edges, &b);
    EXPECT_EQ(a, b);
    EXPECT_EQ(MaxRelDiff(got, want), 0.0) << byte_edges;
  }
}

// Resident memory of this process in bytes.
int64_t ResidentBytes() {
  FILE* f = std::fopen("/proc/self/statm", "r");
  long size = 0, resident = 0;
  if (f != nullptr) {
    if (std::fscanf(f, "%ld %ld", &size, &resident) != 2) resident = 0;
    std::fclose(f);
  }
  return static_cast<int64_t>(resident) * sysconf(_SC_PAGESIZE);
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
