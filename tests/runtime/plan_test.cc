// The graph passes and the planner on hand-built graphs: folding and fusion
// keep the numbers, shape subgraphs fold away, buffers are reused.
#include "runtime/plan.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <tuple>
#include <utility>

#include "base/rng.h"
#include "ir/passes.h"
#include "kernels/depthwise.h"
#include "runtime/ops/planes.h"
#include "runtime/sgemm.h"
#include "tests/test_util.h"

namespace lowbit {
namespace {

Tensor Random(Shape shape, Rng& rng, float lo = -1, float hi = 1) {
  return testing::RandomTensor(std::move(shape), rng, lo, hi);
}

Node MakeNode(std::string op, std::vector<std::string> in, std::vector<std::string> out, int opset = 13) {
  Node n;
  n.name = op + "_" + out[0];
  n.op_type = std::move(op);
  n.opset = opset;
  n.inputs = std::move(in);
  n.outputs = std::move(out);
  return n;
}

// Runs `g` at batch 2 on x and returns output 0.
// An empty opset-13 graph with float input "x" of `shape` and output `out`.
Graph TestGraph(Shape shape, const std::string& out = "y") {
  Graph g;
  g.source = "test";
  g.opset = 13;
  g.inputs = {{"x", DType::kFloat32, std::move(shape)}};
  g.outputs = {{out, DType::kFloat32, {}}};
  return g;
}

Tensor RunGraph(const Graph& g, const Tensor& x) {
  PlanOptions po;
  po.batch = x.shape()[0];
  auto plan = Plan::Create(g, po);
  EXPECT_TRUE(plan.ok()) << plan.status().ToString();
  std::copy_n(x.data<float>(), x.numel(), (*plan)->input(0).data<float>());
  (*plan)->Run();
  return (*plan)->output(0).Clone();
}

float MaxRelDiff(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.shape(), b.shape());
  float num = 0, den = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    num = std::max(num, std::fabs(a.data<float>()[i] - b.data<float>()[i]));
    den = std::max(den, std::fabs(b.data<float>()[i]));
  }
  return num / den;
}

TEST(PassesTest, BatchNormFoldsIntoConvAndReluFuses) {
  Rng rng(testing::TestSeed());
  Graph g = TestGraph({-1, 3, 9, 7});
  g.constants["W"] = Random({5, 3, 3, 3}, rng);
  g.constants["B"] = Random({5}, rng);
  g.constants["scale"] = Random({5}, rng, 0.5, 2);
  g.constants["beta"] = Random({5}, rng);
  g.constants["mean"] = Random({5}, rng);
  g.constants["var"] = Random({5}, rng, 0.1, 3);
  Node conv = MakeNode("Conv", {"x", "W", "B"}, {"c"});
  conv.attrs["pads"] = std::vector<int64_t>{1, 1, 1, 1};
  conv.attrs["strides"] = std::vector<int64_t>{2, 1};
  g.nodes = {conv, MakeNode("BatchNormalization", {"c", "scale", "beta", "mean", "var"}, {"bn"}),
             MakeNode("Dropout", {"bn"}, {"d"}), MakeNode("Relu", {"d"}, {"y"}),
             MakeNode("Identity", {"x"}, {"unused"})};
  ASSERT_TRUE(VerifyGraph(&g).ok());
  const Tensor x = Random({2, 3, 9, 7}, rng);
  const Tensor want = RunGraph(g, x);

  Graph opt = g;
  ASSERT_TRUE(OptimizeGraph(&opt).ok());
  ASSERT_EQ(opt.nodes.size(), 1u);
  EXPECT_EQ(opt.nodes[0].op_type, "Conv");
  EXPECT_EQ(opt.nodes[0].GetString("lowbit.activation", ""), "Relu");
  EXPECT_EQ(opt.nodes[0].outputs[0], "y");
  EXPECT_FALSE(opt.constants.count("scale"));  // folded constants are dropped
  const Tensor got = RunGraph(opt, x);
  EXPECT_LT(MaxRelDiff(got, want), 1e-5f);
  for (int64_t i = 0; i < got.numel(); ++i) ASSERT_GE(got.data<float>()[i], 0.0f);
}

TEST(PassesTest, ClipFusesIntoGemmWithItsBounds) {
  Rng rng(testing::TestSeed() + 1);
  Graph g = TestGraph({-1, 6});
  g.constants["W"] = Random({4, 6}, rng, -3, 3);
  g.constants["B"] = Random({4}, rng);
  g.constants["lo"] = Tensor::FromFloats({}, {-0.5f});
  g.constants["hi"] = Tensor::FromFloats({}, {0.75f});
  Node gemm = MakeNode("Gemm", {"x", "W", "B"}, {"h"});
  gemm.attrs["transB"] = int64_t{1};
  g.nodes = {gemm, MakeNode("Clip", {"h", "lo", "hi"}, {"y"})};
  const Tensor x = Random({3, 6}, rng, -2, 2);
  const Tensor want = RunGraph(g, x);
  Graph opt = g;
  ASSERT_TRUE(OptimizeGraph(&opt).ok());
  ASSERT_EQ(opt.nodes.size(), 1u);
  EXPECT_EQ(opt.nodes[0].GetString("lowbit.activation", ""), "Clip");
  const Tensor got = RunGraph(opt, x);
  EXPECT_LT(MaxRelDiff(got, want), 1e-6f);
}

// tf2onnx idioms: a Transpose pair that cancels, ReLU6 as Max(x, 0) then
// Min(x, 6) (one Clip, fused into the conv), x * HardSigmoid(x) (HardSwish),
// and a decomposed LayerNorm (LayerNormalization); the numbers are kept.
TEST(PassesTest, ExporterIdiomsBecomeKnownOperators) {
  Rng rng(testing::TestSeed() + 2);
  Graph g = TestGraph({-1, 3, 6, 6});
  g.constants["W"] = Random({4, 3, 3, 3}, rng);
  g.constants["W2"] = Random({4, 4, 1, 1}, rng);
  g.constants["zero"] = Tensor::FromFloats({}, {0.0f});
  g.constants["six"] = Tensor::FromFloats({}, {0.5f});
  g.constants["two"] = Tensor::FromFloats({}, {2.0f});
  g.constants["eps"] = Tensor::FromFloats({}, {1e-5f});
  g.constants["gamma"] = Random({6}, rng, 0.5, 1.5);
  g.constants["beta"] = Random({6}, rng);
  Node conv = MakeNode("Conv", {"x", "W"}, {"c"});
  conv.attrs["pads"] = std::vector<int64_t>{1, 1, 1, 1};
  Node t1 = MakeNode("Transpose", {"r6"}, {"t1"});
  t1.attrs["perm"] = std::vector<int64_t>{0, 2, 3, 1};
  Node t2 = MakeNode("Transpose", {"t1"}, {"t2"});
  t2.attrs["perm"] = std::vector<int64_t>{0, 3, 1, 2};
  Node hs = MakeNode("HardSigmoid", {"c2"}, {"hsig"});
  hs.attrs["alpha"] = 1.0f / 6.0f;
  hs.attrs["beta"] = 0.5f;
  auto mean = [&](const std::string& in, const std::string& out) {
    Node m = MakeNode("ReduceMean", {in}, {out});
    m.attrs["axes"] = std::vector<int64_t>{-1};
    return m;
  };
  g.nodes = {conv,
             MakeNode("Max", {"c", "zero"}, {"r"}),
             MakeNode("Min", {"r", "six"}, {"r6"}),
             t1,
             t2,
             MakeNode("Conv", {"t2", "W2"}, {"c2"}),
             hs,
             MakeNode("Mul", {"c2", "hsig"}, {"h"}),
             mean("h", "mu"),
             MakeNode("Sub", {"h", "mu"}, {"d"}),
             MakeNode("Pow", {"d", "two"}, {"d2"}),
             mean("d2", "var"),
             MakeNode("Add", {"var", "eps"}, {"ve"}),
             MakeNode("Sqrt", {"ve"}, {"sd"}),
             MakeNode("Div", {"d", "sd"}, {"n"}),
             MakeNode("Mul", {"n", "gamma"}, {"s"}),
             MakeNode("Add", {"s", "beta"}, {"y"})};
  ASSERT_TRUE(VerifyGraph(&g).ok());
  const Tensor x = Random({2, 3, 6, 6}, rng, -2, 2);
  const Tensor want = RunGraph(g, x);
  Graph opt = g;
  ASSERT_TRUE(OptimizeGraph(&opt).ok());
  std::vector<std::string> ops;
  for (const Node& n : opt.nodes) ops.push_back(n.op_type);
  EXPECT_EQ(ops, (std::vector<std::string>{"Conv", "Conv", "HardSwish", "LayerNormalization"}));
  EXPECT_EQ(opt.nodes[0].GetString("lowbit.activation", ""), "Clip");
  EXPECT_EQ(opt.nodes[0].GetFloat("lowbit.clip_min", -1), 0.0f);
  EXPECT_EQ(opt.nodes[0].GetFloat("lowbit.clip_max", -1), 0.5f);
  EXPECT_LT(MaxRelDiff(RunGraph(opt, x), want), 1e-5f);
}

// A 1x1 convolution padded only at the end has an output larger than its
// input: it is not the pointwise GEMM on the image (which read past the
// input). It must equal the same convolution after an explicit Pad, at one
// image and at several (the multi-image column buffer).
TEST(PlanTest, OneByOneConvWithEndPadsMatchesExplicitPad) {
  Rng rng(testing::TestSeed() + 7);
  for (int64_t batch : {1, 3}) {
    Graph g = TestGraph({-1, 5, 4, 3});
    g.constants["W"] = Random({6, 5, 1, 1}, rng);
    g.constants["B"] = Random({6}, rng);
    Node conv = MakeNode("Conv", {"x", "W", "B"}, {"y"});
    conv.attrs["pads"] = std::vector<int64_t>{0, 0, 2, 1};
    g.nodes = {conv};
    Graph padded = TestGraph({-1, 5, 4, 3});
    padded.constants = g.constants;
    padded.constants["pads"] = Tensor::FromInt64s({8}, {0, 0, 0, 0, 0, 0, 2, 1});
    padded.nodes = {MakeNode("Pad", {"x", "pads"}, {"xp"}), MakeNode("Conv", {"xp", "W", "B"}, {"y"})};
    const Tensor x = Random({batch, 5, 4, 3}, rng);
    const Tensor got = RunGraph(g, x);
    ASSERT_EQ(got.shape(), (Shape{batch, 6, 6, 4}));
    EXPECT_LT(MaxRelDiff(got, RunGraph(padded, x)), 1e-6f) << "batch " << batch;
  }
}

// A tensor with a zero dimension holds nothing however large its other
// dims: steps producing only such tensors are not run (a softmax over
// [2, 2^31, 7, 0] once looped over 3e10 empty rows for minutes).
TEST(PlanTest, StepsWithEmptyOutputsAreNotRun) {
  Graph g = TestGraph({2, int64_t{1} << 31, 7, 0});
  Node sm = MakeNode("Softmax", {"x"}, {"s"});
  sm.attrs["axis"] = int64_t{-1};
  g.nodes = {sm, MakeNode("Relu", {"s"}, {"y"})};
  auto plan = Plan::Create(g, PlanOptions());
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  (*plan)->Run();
  EXPECT_EQ((*plan)->output(0).numel(), 0);
  EXPECT_EQ((*plan)->output(0).shape(), (Shape{2, int64_t{1} << 31, 7, 0}));
}

// A convolution over zero input channels: every product is empty and the
// output is its bias (fuzz_model found the column buffer, empty, indexed).
TEST(PlanTest, ConvWithoutInputChannelsGivesItsBias) {
  for (int64_t batch : {1, 3}) {
    Graph g = TestGraph({batch, 0, 5});
    g.constants["W"] = Tensor(DType::kFloat32, {2, 0, 3});
    g.constants["B"] = Tensor::FromFloats({2}, {0.5f, -2.0f});
    g.nodes = {MakeNode("Conv", {"x", "W", "B"}, {"y"})};
    auto plan = Plan::Create(g, PlanOptions());
    ASSERT_TRUE(plan.ok()) << plan.status().ToString();
    (*plan)->Run();
    const Tensor& y = (*plan)->output(0);
    ASSERT_EQ(y.shape(), (Shape{batch, 2, 3}));
    for (int64_t i = 0; i < y.numel(); ++i) EXPECT_EQ(y.data<float>()[i], i / 3 % 2 == 0 ? 0.5f : -2.0f);
  }
}

// Two fuzz_model findings: a MatMul whose empty product declares 2^40
// batch entries (it once sized an offset table by them: 8 TB), and a node
// with no output (the passes read output 0).
TEST(PlanTest, EmptyBatchedProductAndOutputlessNodes) {
  Graph g = TestGraph({int64_t{1} << 40, 0, 3});
  g.constants["B"] = Tensor::FromFloats({3, 2}, {1, 2, 3, 4, 5, 6});
  g.nodes = {MakeNode("MatMul", {"x", "B"}, {"y"})};
  auto plan = Plan::Create(g, PlanOptions());
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  (*plan)->Run();
  EXPECT_EQ((*plan)->output(0).shape(), (Shape{int64_t{1} << 40, 0, 2}));
  Graph h = TestGraph({2, 3});
  h.nodes = {MakeNode("Relu", {"x"}, {"y"}), MakeNode("Identity", {"y"}, {"z"})};
  h.nodes[1].outputs.clear();
  const Status s = VerifyGraph(&h);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("Identity_z': output 0 is missing"), std::string::npos) << s.message();
}

// Per-element index walks are linear in rank: a mutant whose ConstantOfShape
// made a tensor of rank 100,000 took 15 s in one broadcast Add. Ranks past
// kMaxRank are refused; kMaxRank itself plans.
TEST(PlanTest, RanksPastTheLimitAreRefused) {
  for (int rank : {kMaxRank, kMaxRank + 1}) {
    Graph g = TestGraph(Shape(rank, 1));
    g.nodes = {MakeNode("Relu", {"x"}, {"y"})};
    auto plan = Plan::Create(g, PlanOptions());
    if (rank == kMaxRank) {
      EXPECT_TRUE(plan.ok()) << plan.status().ToString();
      continue;
    }
    ASSERT_FALSE(plan.ok());
    EXPECT_NE(plan.status().message().find("rank 65 is over the 64 dimensions"), std::string::npos)
        << plan.status().message();
  }
}

// Two more fuzz_model findings (UBSan): an empty input [0, 2^40, 2^40]
// whose other dims overflow when a Flatten multiplies them, and Pad amounts
// near INT64_MIN. Both are refused with the values named.
TEST(PlanTest, OverflowingShapesAndPadsAreRefused) {
  Graph g = TestGraph({0, int64_t{1} << 40, int64_t{1} << 40});
  g.nodes = {MakeNode("Flatten", {"x"}, {"y"})};
  auto plan = Plan::Create(g, PlanOptions());
  ASSERT_FALSE(plan.ok());
  EXPECT_NE(plan.status().message().find("has more elements than memory can hold"), std::string::npos)
      << plan.status().message();
  Graph p = TestGraph({2, 3});
  const int64_t lo = std::numeric_limits<int64_t>::min();
  p.constants["pads"] = Tensor::FromInt64s({4}, {0, lo + 1, 0, lo});
  p.nodes = {MakeNode("Pad", {"x", "pads"}, {"y"})};
  plan = Plan::Create(p, PlanOptions());
  ASSERT_FALSE(plan.ok());
  EXPECT_NE(plan.status().message().find("overflow axis 1 of size 3"), std::string::npos)
      << plan.status().message();
}

TEST(PlanTest, ShapeArithmeticFoldsAndReshapeIsAView) {
  // PyTorch's x.view(x.size(0), -1): Shape -> Gather -> Unsqueeze -> Concat -> Reshape.
  Graph g = TestGraph({-1, 2, 3, 4});
  g.constants["zero"] = Tensor::FromInt64s({}, {0});
  g.constants["axes"] = Tensor::FromInt64s({1}, {0});
  g.constants["minus1"] = Tensor::FromInt64s({1}, {-1});
  Node concat = MakeNode("Concat", {"n1", "minus1"}, {"shape"});
  concat.attrs["axis"] = int64_t{0};
  g.nodes = {MakeNode("Relu", {"x"}, {"r"}), MakeNode("Shape", {"r"}, {"s"}),
             MakeNode("Gather", {"s", "zero"}, {"n"}), MakeNode("Unsqueeze", {"n", "axes"}, {"n1"}),
             concat, MakeNode("Reshape", {"r", "shape"}, {"y"})};
  PlanOptions po;
  po.batch = 5;
  auto plan = Plan::Create(g, po);
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  EXPECT_EQ((*plan)->num_steps(), 2);  // Relu and the Reshape view; the rest folded
  Rng rng(3);
  Tensor& x = (*plan)->input(0);
  for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = static_cast<float>(rng.Normal());
  (*plan)->Run();
  const Tensor& y = (*plan)->output(0);
  EXPECT_EQ(y.shape(), (Shape{5, 24}));
  for (int64_t i = 0; i < y.numel(); ++i) {
    ASSERT_EQ(y.data<float>()[i], std::max(0.0f, x.data<float>()[i]));
  }
}

TEST(PlanTest, BuffersAreReusedAlongAChain) {
  Graph g = TestGraph({-1, 1000}, "v5");
  std::string prev = "x";
  for (int i = 1; i <= 5; ++i) {
    const std::string out = "v" + std::to_string(i);
    g.nodes.push_back(MakeNode(i % 2 ? "Sigmoid" : "Tanh", {prev}, {out}));
    prev = out;
  }
  PlanOptions po;
  po.batch = 4;
  auto plan = Plan::Create(g, po);
  ASSERT_TRUE(plan.ok());
  // Five activations of 16,000 bytes, but never more than two alive at once.
  EXPECT_LE((*plan)->buffer_bytes(), 2u * (16000 + 64));
  Tensor& x = (*plan)->input(0);
  for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = 0.001f * static_cast<float>(i % 997);
  (*plan)->Run();
  const Tensor& y = (*plan)->output(0);
  for (int64_t i = 0; i < y.numel(); i += 37) {
    const float v = x.data<float>()[i];
    const float want = 1 / (1 + std::exp(-std::tanh(1 / (1 + std::exp(-std::tanh(1 / (1 + std::exp(-v))))))));
    ASSERT_NEAR(y.data<float>()[i], want, 1e-6f);
  }
}

// RunTimed (lowbit bench --profile): one time per step, named after its
// node, and the same outputs as Run().
TEST(PlanTest, TimedRunNamesEveryStepAndComputesTheSame) {
  Rng rng(testing::TestSeed() + 5);
  Graph g = TestGraph({-1, 64});
  g.constants["W"] = Random({64, 300}, rng);
  g.nodes.push_back(MakeNode("MatMul", {"x", "W"}, {"h"}));
  g.nodes.push_back(MakeNode("Tanh", {"h"}, {"y"}));
  PlanOptions po;
  po.batch = 3;
  auto plan = Plan::Create(g, po);
  ASSERT_TRUE(plan.ok());
  Plan& p = **plan;
  Tensor& x = p.input(0);
  for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = static_cast<float>(rng.Normal());
  p.Run();
  const Tensor want = p.output(0).Clone();
  std::vector<double> s;
  p.RunTimed(&s);
  ASSERT_EQ(static_cast<int>(s.size()), p.num_steps());
  ASSERT_EQ(p.num_steps(), 2);
  EXPECT_EQ(p.step_name(0), "MatMul_h");
  EXPECT_EQ(p.step_op(0), "MatMul");
  EXPECT_EQ(p.step_name(1), "Tanh_y");
  for (double t : s) EXPECT_GT(t, 0.0);
  EXPECT_EQ(MaxRelDiff(p.output(0), want), 0.0f);
}

TEST(PlanTest, BadBindingsAreRefusedByName) {
  Graph g;
  g.source = "m.onnx";
  g.opset = 13;
  g.inputs = {{"x", DType::kFloat32, {-1, 3, -1}}};
  g.outputs = {{"y", DType::kFloat32, {}}};
  g.nodes = {MakeNode("Relu", {"x"}, {"y"})};
  auto plan = Plan::Create(g, PlanOptions());
  ASSERT_FALSE(plan.ok());
  EXPECT_NE(plan.status().message().find("m.onnx: input 'x' [-1, 3, -1] has a dynamic dimension 2"),
            std::string::npos)
      << plan.status().message();
  PlanOptions po;
  po.input_shapes["x"] = {2, 4, 5};
  plan = Plan::Create(g, po);
  ASSERT_FALSE(plan.ok());
  EXPECT_NE(plan.status().message().find("got shape [2, 4, 5]"), std::string::npos);
  g.nodes[0].op_type = "Frobnicate";
  plan = Plan::Create(g, PlanOptions());
  ASSERT_FALSE(plan.ok());
  EXPECT_NE(plan.status().message().find("Frobnicate 'Relu_y' (opset 13)"), std::string::npos)
      << plan.status().message();
}

// The AVX-512 3x3 depthwise kernel against the portable loop: small-integer
// planes (exact sums in any order), strides 1 and 2, every row length up to
// 40 (whole registers, partial ones, both), and its fused epilogue.
TEST(DepthwiseTest, Avx512KernelMatchesPortableLoop) {
  if (!DepthwiseAvx512Available()) GTEST_SKIP() << "no AVX-512 on this CPU";
  const uint64_t seed = testing::TestSeed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  Rng rng(seed);
  auto small = [&] { return static_cast<float>(static_cast<int>(rng.Next() % 255) - 127); };
  for (int64_t stride : {1, 2}) {
    for (int64_t ow_n = 1; ow_n <= 40; ++ow_n) {
      const int64_t oh_n = 1 + ow_n % 5, pw = (ow_n - 1) * stride + 3, ph = (oh_n - 1) * stride + 3;
      std::vector<float> xp(ph * pw), w(9), want(oh_n * ow_n), got(oh_n * ow_n, -1.0f);
      for (float& v : xp) v = small();
      for (float& v : w) v = small();
      DepthwisePlaneRef(xp.data(), pw, w.data(), 3, 3, stride, stride, 1, 1, want.data(), oh_n, ow_n);
      Depthwise3x3Avx512(xp.data(), pw, w.data(), stride, got.data(), oh_n, ow_n);
      EXPECT_EQ(got, want) << "stride " << stride << " ow " << ow_n;
      const float scale = 0.01f, bias = 0.5f, lo = -20.0f, hi = 30.0f;
      Depthwise3x3Avx512(xp.data(), pw, w.data(), stride, got.data(), oh_n, ow_n, scale, bias, lo, hi);
      for (size_t i = 0; i < want.size(); ++i) {
        const float e = std::min(std::max(std::fma(want[i], scale, bias), lo), hi);
        ASSERT_EQ(got[i], e) << "stride " << stride << " ow " << ow_n << " at " << i;
      }
    }
  }
}

// The NHWC byte depthwise kernel: the AVX2 and AVX-512 bodies (integer tap
// pairs, and on VNNI CPUs int8 tap quads) equal the portable loop, bytes out
// and fp32 planes out, for weights beyond int8 (no quads) and at its ends,
// tap counts that fill the last quad or not, channel counts that are not
// multiples of 32 or 64, a pixel count with a 3-pixel tail, and output ranges
// inside, across and wholly beyond the clamp.
TEST(DepthwiseTest, NhwcSimdBodiesMatchPortableLoop) {
  // (body, whether it is given the quads)
  std::vector<std::pair<DepthwiseBody, bool>> bodies;
  if (DepthwiseAvx2Available()) bodies.push_back({DepthwiseBody::kAvx2, false});
  if (DepthwiseAvx512Available()) bodies.push_back({DepthwiseBody::kAvx512, false});
  if (DepthwiseVnniAvailable()) bodies.push_back({DepthwiseBody::kAvx512, true});
  if (bodies.empty()) GTEST_SKIP() << "no AVX2 or AVX-512 on this CPU";
  const uint64_t seed = testing::TestSeed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  Rng rng(seed + 3);
  for (auto [c, taps, wide] : {std::tuple<int64_t, int64_t, bool>{5, 9, true}, {16, 9, false},
                               {24, 9, true}, {37, 8, false}, {96, 9, false}, {96, 9, true},
                               {144, 9, false}, {144, 7, true}, {200, 4, false}}) {
    const int64_t ih = 6, iw = 7, oh = 3, ow = 5, px = oh * ow;  // 3x3, stride 1: 15 pixels
    std::vector<uint8_t> image(ih * iw * c);
    for (auto& v : image) v = static_cast<uint8_t>(rng.Below(256));
    std::vector<int64_t> pix(px), tap(taps);
    for (int64_t y = 0; y < oh; ++y) {
      for (int64_t x = 0; x < ow; ++x) pix[y * ow + x] = y * iw + x;
    }
    for (int64_t t = 0; t < taps; ++t) tap[t] = (t / 3) * iw + t % 3;
    std::vector<float> w(taps * c), wsum(c, 0.0f), scale(c), bias(c);
    for (int64_t ch = 0; ch < c; ++ch) {
      for (int64_t t = 0; t < taps; ++t) {
        // wide: beyond int8; else int8, its ends on the first channels.
        const int v = wide ? static_cast<int>(rng.Below(401)) - 200
                      : ch < 2 ? (ch == 0 ? -128 : 127)
                               : static_cast<int>(rng.Below(256)) - 128;
        w[t * c + ch] = static_cast<float>(v);
        wsum[ch] += w[t * c + ch];
      }
      scale[ch] = 0.001f * static_cast<float>(1 + rng.Below(20));
      bias[ch] = static_cast<float>(rng.Uniform()) - 0.5f;
    }
    for (auto [inv, zero] :
         {std::pair<float, int32_t>{20.0f, 100}, {200.0f, 30}, {1.0f, -100}, {1.0f, 300}}) {
      SCOPED_TRACE(::testing::Message() << "c " << c << " taps " << taps << " wide " << wide << " inv "
                                        << inv << " zero " << zero);
      DepthwiseNhwcArgs a;
      a.image = image.data();
      a.pix = pix.data();
      a.tap = tap.data();
      a.taps = taps;
      a.c = c;
      a.w = w.data();
      a.wsum = wsum.data();
      a.scale = scale.data();
      a.bias = bias.data();
      a.zero = 120;
      a.lo = -2.0f;
      a.hi = 1.5f;
      a.out_inv = inv;
      a.out_zero = zero;
      std::vector<uint8_t> want(px * c, 1), got(px * c, 2);
      const std::vector<int16_t> pairs = DepthwisePairWeights(w.data(), taps, c);
      const std::vector<int8_t> quads = DepthwiseQuadWeights(w.data(), taps, c);
      ASSERT_EQ(quads.empty(), wide);
      a.w_pairs = pairs.data();
      a.yb = want.data();
      DepthwiseNhwc(a, 0, px, DepthwiseBody::kPortable);
      for (auto [body, with_quads] : bodies) {
        if (with_quads && wide) continue;
        a.w_quads = with_quads ? quads.data() : nullptr;
        std::fill(got.begin(), got.end(), 2);
        a.yb = got.data();
        DepthwiseNhwc(a, 0, px, body);
        ASSERT_EQ(got, want) << "body " << static_cast<int>(body) << " quads " << with_quads;
      }
      a.w_quads = nullptr;
      int inside = 0;
      for (uint8_t v : want) inside += v != 0 && v != 255;
      if (zero == 100) {
        EXPECT_GT(inside, 0);
      } else if (zero < 0) {
        EXPECT_EQ(want, std::vector<uint8_t>(px * c, 0));
      } else if (zero > 255) {
        EXPECT_EQ(want, std::vector<uint8_t>(px * c, 255));
      }
      std::vector<float> fwant(c * px, 1.0f), fgot(c * px, 2.0f);
      a.yb = nullptr;
      a.ldy = px;
      a.yf = fwant.data();
      DepthwiseNhwc(a, 0, px, DepthwiseBody::kPortable);
      for (auto [body, with_quads] : bodies) {
        if (with_quads && wide) continue;
        a.w_quads = with_quads ? quads.data() : nullptr;
        std::fill(fgot.begin(), fgot.end(), 2.0f);
        a.yf = fgot.data();
        DepthwiseNhwc(a, 0, px, body);
        ASSERT_EQ(fgot, fwant) << "body " << static_cast<int>(body) << " quads " << with_quads;
      }
      a.w_quads = nullptr;
    }
  }
}

// One row against a weight large enough for the sgemv path, B stored [n, k]
// and [k, n], x strided (trans_a) or not, against a plain double loop.
TEST(SgemmTest, OneRowMatchesReference) {
  Rng rng(testing::TestSeed());
  const int64_t n = 1031, k = 1025;  // n * k >= 2^20
  std::vector<float> a(2 * k), b(n * k), c(n, 1.0f);
  for (float& v : a) v = static_cast<float>(rng.Normal());
  for (float& v : b) v = static_cast<float>(rng.Normal());
  const ExecContext ctx{nullptr, 1};
  for (bool trans_a : {false, true}) {
    for (bool trans_b : {false, true}) {
      std::fill(c.begin(), c.end(), 1.0f);
      Sgemm(ctx, trans_a, trans_b, 1, n, k, 0.5f, a.data(), trans_a ? 2 : k, b.data(), trans_b ? k : n,
            2.0f, c.data(), n);
      for (int64_t j = 0; j < n; ++j) {
        double want = 2.0;
        for (int64_t i = 0; i < k; ++i) {
          want += 0.5 * a[trans_a ? i * 2 : i] * (trans_b ? b[j * k + i] : b[i * n + j]);
        }
        ASSERT_NEAR(c[j], want, 1e-3 * (1 + std::fabs(want))) << trans_a << trans_b << " at " << j;
      }
    }
  }
}

}  // namespace
}  // namespace lowbit
