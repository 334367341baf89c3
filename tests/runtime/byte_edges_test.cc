// Byte edges between packed convolutions (runtime/byte_edges.h) and the
// exact Winograd path that reads them, against fp32 edges and the direct
// kernels.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "kernels/depthwise.h"
#include "tests/runtime/packed_graphs.h"

namespace lowbit {
namespace {

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

// q run with and without byte edges on every kernel path, 1 and 2 threads:
// `edges` values as bytes, and (when `exact`) the same output bit for bit.
void ExpectSameAsFloatEdges(const Graph& q, const Tensor& x, int edges, bool exact) {
  for (const char* path : Paths()) {
    KernelEnv env(path);
    for (int threads : {1, 2}) {
      int with = 0, without = -1;
      const Tensor got = RunEdges(q, x, threads, true, &with);
      const Tensor want = RunEdges(q, x, threads, false, &without);
      EXPECT_EQ(with, edges) << path;
      EXPECT_EQ(without, 0);
      ASSERT_EQ(got.numel(), want.numel());
      if (!exact) continue;
      for (int64_t i = 0; i < got.numel(); ++i) {
        ASSERT_EQ(got.data<float>()[i], want.data<float>()[i]) << path << " threads " << threads << " element " << i;
      }
    }
  }
}

// Concat, Slice, nearest Resize, Clip, Relu and Max between packed
// convolutions carry the bytes through (runtime/byte_edges.h
// IsBytePassThrough): x -> [conv a (Relu), Max(conv b0, conv b1)] -> Concat on C -> Slice (C, and W by step 2) ->
// Resize x2 nearest -> Clip -> [conv c, 1x1 conv d] -> Concat on W -> Relu
// -> conv e; and conv f -> Concat with the fp32 input x -> conv g, which
// stays fp32 (one data input is not bytes). Without residuals, the bytes
// are exactly the ones the readers would have quantized: bit-identical
// outputs, on every kernel path, 1 and 2 threads.
TEST(PackedOpsTest, PassThroughOperatorsCarryBytes) {
  const uint64_t seed = testing::TestSeed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  Rng rng(seed + 11);
  Graph g = TestGraph({-1, 6, 11, 9});
  auto node = [&](const std::string& op, std::vector<std::string> in, const std::string& out) {
    return AddNode(&g, op, std::move(in), out);
  };
  auto conv = [&](const std::string& in, const std::string& out, int64_t cin, int64_t cout, int64_t k,
                  int64_t stride, bool relu) {
    g.constants[out + ".W"] = Random({cout, cin, k, k}, rng, -0.5f, 0.5f);
    g.constants[out + ".B"] = Random({cout}, rng, -0.2f, 0.2f);
    Node* n = node("Conv", {in, out + ".W", out + ".B"}, relu ? out + ".pre" : out);
    n->attrs["strides"] = std::vector<int64_t>{stride, stride};
    const int64_t pad = k / 2;
    n->attrs["pads"] = std::vector<int64_t>{pad, pad, pad, pad};
    if (relu) node("Relu", {out + ".pre"}, out);
  };
  auto ints = [&](const std::string& name, std::vector<int64_t> v) {
    g.constants[name] = Tensor::FromInt64s({static_cast<int64_t>(v.size())}, v);
    return name;
  };
  auto scalar = [&](const std::string& name, float v) {
    g.constants[name] = Tensor::FromFloats({}, {v});
    return name;
  };
  conv("x", "a", 6, 8, 3, 1, true);
  conv("x", "b0", 6, 8, 3, 1, false);
  conv("x", "b1", 6, 8, 3, 1, false);
  node("Max", {"b0", "b1"}, "b");
  node("Concat", {"a", "b"}, "cat")->attrs["axis"] = int64_t{1};
  node("Slice", {"cat", ints("s.starts", {1, 1}), ints("s.ends", {15, 9}), ints("s.axes", {1, -1}),
                 ints("s.steps", {1, 2})},
       "sl");  // [N, 14, 11, 4]
  g.constants["up.scales"] = Tensor::FromFloats({4}, {1, 1, 2, 2});
  node("Resize", {"sl", "", "up.scales"}, "up")->attrs["mode"] = std::string("nearest");
  node("Clip", {"up", scalar("cl.min", -0.1f), scalar("cl.max", 0.6f)}, "cl");
  conv("cl", "c", 14, 10, 3, 2, false);
  conv("cl", "d", 14, 10, 1, 2, false);
  node("Concat", {"c", "d"}, "cw")->attrs["axis"] = int64_t{-1};
  node("Relu", {"cw"}, "r");
  conv("r", "e", 10, 12, 3, 1, false);
  node("GlobalAveragePool", {"e"}, "ge");
  conv("x", "f", 6, 4, 3, 1, true);
  node("Concat", {"f", "x"}, "fx")->attrs["axis"] = int64_t{1};
  conv("fx", "gg", 10, 12, 3, 1, false);
  node("GlobalAveragePool", {"gg"}, "gf");
  node("Add", {"ge", "gf"}, "y");
  ASSERT_TRUE(OptimizeGraph(&g).ok());
  Graph q = Quantize(g, "int4");
  Rng xr(seed);
  const Tensor x = Random({2, 6, 11, 9}, xr, -1.0f, 1.0f);
  SetRangesPerValue(g, x, &q);
  // Ranges wider than the Clip's and the Relu's outputs, so that clamping
  // the bytes matters.
  for (Node& n : q.nodes) {
    if (!IsPackedNode(n)) continue;
    auto& range = std::get<std::vector<float>>(n.attrs.at("act_range"));
    if (n.input(0) == "cl") range = {-1.0f, 1.5f};
    if (n.input(0) == "r") range[0] = -0.5f;
  }
  // a, b0, b1, b, cat, sl, up, cl, c, d, cw, r; not f (fx reads fp32 x too).
  ExpectSameAsFloatEdges(q, x, 12, true);
}

// A depthwise convolution reading bytes reads the windows inside its input
// in place and copies only the border bands of the padded image: the same
// outputs as reading fp32 (which quantizes the whole padded image), for
// strides 1 and 2, 5x5, dilation 2, asymmetric pads, the quad (48
// channels) and pair (20) bodies, batch 2 (the bands refilled per image)
// and 1-2 threads.
TEST(PackedOpsTest, DepthwiseReadsBytesInPlace) {
  const uint64_t seed = testing::TestSeed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  struct Geometry {
    int64_t k, stride, dilation;
    std::vector<int64_t> pads;
  };
  for (int64_t c : {48, 20}) {
    for (const Geometry& geo : {Geometry{3, 1, 1, {1, 1, 1, 1}}, Geometry{3, 2, 1, {1, 1, 1, 1}},
                                Geometry{5, 1, 1, {2, 2, 2, 2}}, Geometry{3, 1, 2, {2, 2, 2, 2}},
                                Geometry{3, 1, 1, {0, 1, 1, 0}}}) {
      SCOPED_TRACE(::testing::Message() << "c " << c << " k " << geo.k << " stride " << geo.stride
                                        << " dilation " << geo.dilation << " pads " << geo.pads[0]);
      Rng rng(seed + 13);
      Graph g = TestGraph({-1, 3, 13, 17});
      g.constants["a.W"] = Random({c, 3, 1, 1}, rng, -0.5f, 0.5f);
      g.constants["a.B"] = Random({c}, rng, -0.2f, 0.2f);
      AddNode(&g, "Conv", {"x", "a.W", "a.B"}, "a");
      g.constants["dw.W"] = Random({c, 1, geo.k, geo.k}, rng, -0.5f, 0.5f);
      g.constants["dw.B"] = Random({c}, rng, -0.2f, 0.2f);
      Node* dw = AddNode(&g, "Conv", {"a", "dw.W", "dw.B"}, "dw");
      dw->attrs["group"] = c;
      dw->attrs["strides"] = std::vector<int64_t>{geo.stride, geo.stride};
      dw->attrs["dilations"] = std::vector<int64_t>{geo.dilation, geo.dilation};
      dw->attrs["pads"] = geo.pads;
      g.constants["e.W"] = Random({8, c, 1, 1}, rng, -0.5f, 0.5f);
      AddNode(&g, "Conv", {"dw", "e.W"}, "e");
      AddNode(&g, "GlobalAveragePool", {"e"}, "y");
      ASSERT_TRUE(OptimizeGraph(&g).ok());
      Graph q = Quantize(g, "int4");
      Rng xr(seed);
      const Tensor x = Random({2, 3, 13, 17}, xr, -1.0f, 1.0f);
      SetRangesPerValue(g, x, &q);
      // a and dw. (Without AVX-512 the fp32 depthwise epilogue rounds twice.)
      ExpectSameAsFloatEdges(q, x, 2, DepthwiseAvx512Available());
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

}  // namespace
}  // namespace lowbit
