// Hand-built graphs and helpers for the tests of packed layers: conv, Gemm,
// residual and block graphs, quantizing them, running them on a chosen
// kernel path (PlanOptions::kernels, set for a scope), and comparisons.
#ifndef LOWBIT_TESTS_RUNTIME_PACKED_GRAPHS_H_
#define LOWBIT_TESTS_RUNTIME_PACKED_GRAPHS_H_

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
#include "model/packed_node.h"
#include "quant/qdq_export.h"
#include "quant/quant_plan.h"
#include "quant/quantize.h"
#include "runtime/byte_edges.h"
#include "runtime/packed_inputs.h"
#include "runtime/plan.h"
#include "tests/test_util.h"

namespace lowbit {

// The kernel choices of every plan this file makes (PlanOptions::kernels);
// the *Env classes below set them for a scope.
inline KernelOptions& TestKernels() {
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

inline PlanOptions TestPlanOptions() {
  PlanOptions po;
  po.kernels = TestKernels();
  return po;
}

inline Tensor Random(Shape shape, Rng& rng, float lo = -1, float hi = 1) {
  return testing::RandomTensor(std::move(shape), rng, lo, hi);
}

// Runs g on x; *edges: how many values the plan passed as bytes.
inline Tensor RunEdges(const Graph& g, const Tensor& x, int threads, bool byte_edges, int* edges) {
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

inline Tensor RunGraph(const Graph& g, const Tensor& x, int threads = 1) {
  int edges = 0;
  return RunEdges(g, x, threads, true, &edges);
}

inline double SqnrDb(const Tensor& ref, const Tensor& got) {
  double s = 0, e = 0;
  for (int64_t i = 0; i < ref.numel(); ++i) {
    const double r = ref.data<float>()[i], d = r - got.data<float>()[i];
    s += r * r;
    e += d * d;
  }
  return e == 0 ? 999 : 10 * std::log10(s / e);
}

// Largest |a - b| relative to max |b|.
inline double MaxRelDiff(const Tensor& a, const Tensor& b) {
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

inline Graph ConvGraph(const ConvCase& cc, Rng& rng, bool relu) {
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

inline Graph GemmGraph(int64_t k, int64_t n, Rng& rng, bool matmul) {
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
inline void SetStaticRange(Graph* g, float lo, float hi) {
  for (Node& n : g->nodes) {
    if (IsPackedNode(n)) n.attrs["act_range"] = std::vector<float>{lo, hi};
  }
}

inline Graph Quantize(const Graph& g, const std::string& weights, const std::string& acts = "uint8",
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
inline std::vector<const char*> LutModes(const std::string& weights) {
  if (weights == "int1" || weights == "int2" || weights == "uint2") return {"off", "on"};
  return {"off"};
}

// Every kernel path this CPU runs (kernels/kernel_paths.inc).
inline std::vector<const char*> Paths() {
  std::vector<const char*> p;
  for (KernelPath k : AvailableKernelPaths()) p.push_back(KernelPathName(k));
  return p;
}

// An empty opset-13 graph "test" with input x of `x_shape` and output y.
inline Graph TestGraph(Shape x_shape) {
  Graph g;
  g.source = "test";
  g.opset = 13;
  g.inputs = {{"x", DType::kFloat32, std::move(x_shape)}};
  g.outputs = {{"y", DType::kFloat32, {}}};
  return g;
}

// Appends an opset-13 node named "OP_OUT" with one output.
inline Node* AddNode(Graph* g, const std::string& op, std::vector<std::string> in,
                     const std::string& out) {
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
inline Graph ResidualGraph(int64_t c, bool broadcast, bool depthwise, Rng& rng, bool optimize) {
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

// A small network in the shape of a ResNet stem and two blocks (residual =
// true; false drops the Adds): conv (Relu) -> MaxPool -> [conv, conv + skip]
// -> [strided conv, 1x1 conv + skip] -> two depthwise convs (strides 1, 2)
// -> two 1x1 convs -> GlobalAveragePool. Without the Adds the 1x1 conv after
// the strided one has stride 2 (a downsample reading 8-bit pixels). With
// `broadcast`, instead: a conv down to 1x1 pixels g, read by a conv as X and
// added, broadcast, to another conv's output. With `projection` (and
// residual), the second block's skip is a strided 1x1 conv sc that only the
// Add reads (a ResNet downsample): [strided conv c, conv d + sc].
inline Graph BlocksGraph(bool residual, bool broadcast, Rng& rng, bool projection = false) {
  Graph g = TestGraph({-1, 6, 11, 9});
  auto node = [&](const std::string& op, std::vector<std::string> in, const std::string& out) {
    return AddNode(&g, op, std::move(in), out);
  };
  auto conv = [&](const std::string& in, const std::string& out, int64_t cin, int64_t cout,
                  int64_t k, int64_t stride, int64_t pad, bool relu, int64_t group = 1) {
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
    conv("gp", "q", 8, 8, 1, 1, 0, true);  // gp read as X ...
    conv("x", "r", 6, 8, 3, 1, 1, false);
    add_relu("r", "gp", "rs");  // ... and as a broadcast residual
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
inline void SetRangesPerValue(const Graph& f, const Tensor& x, Graph* q) {
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
inline Graph TwoConvGraph(int64_t c, int64_t m, int64_t h, int64_t w, bool residual, Rng& rng) {
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

// Resident memory of this process in bytes.
inline int64_t ResidentBytes() {
  FILE* f = std::fopen("/proc/self/statm", "r");
  long size = 0, resident = 0;
  if (f != nullptr) {
    if (std::fscanf(f, "%ld %ld", &size, &resident) != 2) resident = 0;
    std::fclose(f);
  }
  return static_cast<int64_t>(resident) * sysconf(_SC_PAGESIZE);
}

}  // namespace lowbit

#endif  // LOWBIT_TESTS_RUNTIME_PACKED_GRAPHS_H_
