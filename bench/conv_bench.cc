// ResNet-18's convolutions, batch 1, as lowbit runs them: fp32 (im2col +
// OpenBLAS) and packed W8A8 / W4A8 / W2A8 (implicit GEMM on the VNNI plane
// kernels, static activation range). Reports GMAC/s; compare with
// vnni_ceiling's register-only rate (444 GMAC/s per core here).
//
// Args: channels, spatial size, stride, threads.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "base/rng.h"
#include "ir/passes.h"
#include "quant/quantize.h"
#include "model/packed_node.h"
#include "runtime/plan.h"

namespace lowbit {
namespace {

// An opset-13 graph with input "x" of `shape` and output "y", no nodes yet.
Graph BenchGraph(const char* source, Shape shape) {
  Graph g;
  g.source = source;
  g.opset = 13;
  g.inputs = {{"x", DType::kFloat32, std::move(shape)}};
  g.outputs = {{"y", DType::kFloat32, {}}};
  return g;
}

Node BenchNode(std::string name, std::string op, std::vector<std::string> in, std::string out) {
  Node n;
  n.name = std::move(name);
  n.op_type = std::move(op);
  n.opset = 13;
  n.inputs = std::move(in);
  n.outputs = {std::move(out)};
  return n;
}

// A 3x3 conv weight [c, c, 3, 3], normal with deviation 0.05.
Tensor ConvWeight(int64_t c, Rng& rng) {
  Tensor w(DType::kFloat32, {c, c, 3, 3});
  for (int64_t i = 0; i < w.numel(); ++i)
    w.data<float>()[i] = static_cast<float>(rng.Normal()) * 0.05f;
  return w;
}

Graph ConvGraph(int64_t c, int64_t hw, int64_t stride) {
  Rng rng(1);
  Graph g = BenchGraph("conv_bench", {1, c, hw * stride, hw * stride});
  g.constants["W"] = ConvWeight(c, rng);
  Node n = BenchNode("conv", "Conv", {"x", "W"}, "y");
  n.attrs["strides"] = std::vector<int64_t>{stride, stride};
  n.attrs["pads"] = std::vector<int64_t>{1, 1, 1, 1};
  g.nodes.push_back(n);
  return g;
}

// g quantized to `weights` ("fp32": left as is) with min/max weight ranges
// (fitting speed is not what is measured) and a static activation range on
// every packed layer (`range` of the node; null: dynamic), as a plan of
// `threads` with a random normal input; null after reporting the error to
// `state`. *code_bytes: the packed codes' size.
// The plans' kernel choices: the environment's (LOWBIT_KERNEL, LOWBIT_LUT,
// LOWBIT_WINOGRAD), as on the command line.
KernelOptions& BenchKernels() {
  static KernelOptions k = [] {
    KernelOptions o;
    const Status s = ApplyKernelEnvironment(&o);
    if (!s.ok()) std::fprintf(stderr, "%s\n", s.ToString().c_str()), std::exit(2);
    return o;
  }();
  return k;
}

std::unique_ptr<Plan> MakePlan(benchmark::State& state, Graph g, const std::string& weights,
                               int threads,
                               const std::function<std::vector<float>(const Node&)>& range,
                               int64_t* code_bytes = nullptr) {
  if (weights != "fp32") {
    QuantizeOptions o;
    o.plan.defaults.weights = weights;
    o.weight_fit.clip = ClipMethod::kMinMax;
    o.quiet = true;
    auto q = QuantizeGraph(g, o);
    if (!q.ok()) {
      state.SkipWithError(q.status().ToString().c_str());
      return nullptr;
    }
    g = std::move(q->graph);
    for (Node& n : g.nodes) {
      if (IsPackedNode(n) && range) n.attrs["act_range"] = range(n);
    }
    if (code_bytes != nullptr) {
      *code_bytes = 0;
      for (const auto& [name, t] : g.constants)
        *code_bytes += name.find(".codes") != std::string::npos ? t.numel() : 0;
    }
  }
  PlanOptions po;
  po.threads = threads;
  po.kernels = BenchKernels();
  auto plan = Plan::Create(g, po);
  if (!plan.ok()) {
    state.SkipWithError(plan.status().ToString().c_str());
    return nullptr;
  }
  Rng rng(2);
  Tensor& x = (*plan)->input(0);
  for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = static_cast<float>(rng.Normal());
  return std::move(plan).value();
}

// `winograd`: the Winograd rule while the plan is made ("0": the direct
// kernels only, "1": forced; null: as the plan chooses).
void BM_Conv(benchmark::State& state, const char* weights, const char* winograd = nullptr) {
  const int64_t c = state.range(0), hw = state.range(1), stride = state.range(2);
  const int threads = static_cast<int>(state.range(3));
  const KernelOptions saved = BenchKernels();
  if (winograd != nullptr) {
    BenchKernels().winograd = std::string(winograd) == "1" ? KernelRule::kOn : KernelRule::kOff;
  }
  std::unique_ptr<Plan> plan =
      MakePlan(state, ConvGraph(c, hw, stride), weights, threads, [](const Node&) {
        return std::vector<float>{-3.0f, 3.0f};
      });
  BenchKernels() = saved;
  if (plan == nullptr) return;
  for (auto _ : state) plan->Run();
  const double macs = static_cast<double>(c) * c * 9 * hw * hw;
  state.counters["GMAC/s"] = benchmark::Counter(macs * state.iterations() / 1e9,
                                                benchmark::Counter::kIsRate);
}

// ResNet-18's 3x3 stages (64 @ 56, 128 @ 28, 256 @ 14, 512 @ 7), 1 and 2 threads.
#define RESNET_SHAPES                                                                   \
  ->Args({64, 56, 1, 1})->Args({128, 28, 1, 1})->Args({256, 14, 1, 1})->Args({512, 7, 1, 1}) \
      ->Args({64, 56, 1, 2})->Args({128, 28, 1, 2})->Args({256, 14, 1, 2})              \
      ->Args({512, 7, 1, 2})->Unit(benchmark::kMicrosecond)->UseRealTime()

BENCHMARK_CAPTURE(BM_Conv, fp32, "fp32") RESNET_SHAPES;
BENCHMARK_CAPTURE(BM_Conv, int8, "int8") RESNET_SHAPES;
BENCHMARK_CAPTURE(BM_Conv, int4, "int4") RESNET_SHAPES;
BENCHMARK_CAPTURE(BM_Conv, int2, "int2") RESNET_SHAPES;
// The same without Winograd F(4x4, 3x3) (which the 56x56 and 28x28 layers take).
BENCHMARK_CAPTURE(BM_Conv, int2_direct, "int2", "0") RESNET_SHAPES;
// Filter-wise formats: a quarter of the filters at int4, the rest at int2.
BENCHMARK_CAPTURE(BM_Conv, int2_int4, "int2/int4:0.25") RESNET_SHAPES;

// Eight such convolutions in a chain (Conv -> Relu -> Conv ...), as layers run
// inside a quantized network: each writes its output as the next one's 8-bit
// NHWC input (byte edges), so only the first quantizes fp32 and only the last
// writes fp32. GMAC/s over the whole chain.
void BM_ConvChain(benchmark::State& state, const char* weights) {
  const int64_t c = state.range(0), hw = state.range(1), layers = 8;
  const int threads = static_cast<int>(state.range(2));
  Rng rng(4);
  Graph g = BenchGraph("conv_chain_bench", {1, c, hw, hw});
  std::string in = "x";
  for (int64_t l = 0; l < layers; ++l) {
    const std::string id = std::to_string(l);
    g.constants["W" + id] = ConvWeight(c, rng);
    Node n = BenchNode("conv" + id, "Conv", {in, "W" + id}, "c" + id);
    n.attrs["pads"] = std::vector<int64_t>{1, 1, 1, 1};
    g.nodes.push_back(n);
    in = l + 1 == layers ? std::string("y") : "r" + id;
    g.nodes.push_back(BenchNode("relu" + id, "Relu", {"c" + id}, in));
  }
  if (!OptimizeGraph(&g).ok()) {
    state.SkipWithError("OptimizeGraph failed");
    return;
  }
  // The first layer reads the fp32 input; the others read Relu outputs.
  std::unique_ptr<Plan> plan = MakePlan(state, g, weights, threads, [](const Node& n) {
    return std::vector<float>{n.inputs[0] == "x" ? -3.0f : 0.0f, 3.0f};
  });
  if (plan == nullptr) return;
  for (auto _ : state) plan->Run();
  const double macs = static_cast<double>(layers) * c * c * 9 * hw * hw;
  state.counters["GMAC/s"] =
      benchmark::Counter(macs * state.iterations() / 1e9, benchmark::Counter::kIsRate);
  state.counters["byte_edges"] = static_cast<double>(plan->num_byte_edges());
}
#define CHAIN_SHAPES                  \
  ->Args({64, 56, 1})                 \
      ->Args({128, 28, 1})            \
      ->Args({256, 14, 1})            \
      ->Args({512, 7, 1})             \
      ->Args({64, 56, 2})             \
      ->Args({128, 28, 2})            \
      ->Args({256, 14, 2})            \
      ->Args({512, 7, 2})             \
      ->Unit(benchmark::kMicrosecond) \
      ->UseRealTime()
BENCHMARK_CAPTURE(BM_ConvChain, int8, "int8") CHAIN_SHAPES;
BENCHMARK_CAPTURE(BM_ConvChain, int4, "int4") CHAIN_SHAPES;

// A 4096x4096 Gemm at batch 1 through a plan (memory-bound: the packed bytes
// set the time), uniform and filter-wise; dynamic per-row activations.
void BM_Gemv(benchmark::State& state, const char* weights) {
  const int64_t n = 4096, k = 4096;
  Rng rng(3);
  Graph g = BenchGraph("gemv_bench", {1, k});
  Tensor w(DType::kFloat32, {n, k});
  for (int64_t i = 0; i < w.numel(); ++i)
    w.data<float>()[i] = static_cast<float>(rng.Laplace(0.05));
  g.constants["W"] = w;
  Node node = BenchNode("fc", "Gemm", {"x", "W"}, "y");
  node.attrs["transB"] = int64_t{1};
  g.nodes.push_back(node);
  int64_t bytes = 0;
  std::unique_ptr<Plan> plan =
      MakePlan(state, g, weights, static_cast<int>(state.range(0)), nullptr, &bytes);
  if (plan == nullptr) return;
  for (auto _ : state) plan->Run();
  state.counters["code_bytes"] = static_cast<double>(bytes);
}
BENCHMARK_CAPTURE(BM_Gemv, int2, "int2")
    ->Arg(1)
    ->Arg(2)
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_Gemv, int4, "int4")
    ->Arg(1)
    ->Arg(2)
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_Gemv, int2_int4, "int2/int4:0.25")
    ->Arg(1)
    ->Arg(2)
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

}  // namespace
}  // namespace lowbit

BENCHMARK_MAIN();
