// The bit-serial table kernel (kernels/lut.h) against the product kernels on
// the same shapes, in one binary: the dot products of `rows` quantized
// activation rows with an n x k packed weight, one thread, for every dispatch
// path this CPU has. Shapes: GEMV 4096 x 4096 and 16384 x 4096 (batch 1 and
// 8), smaller linear layers around LutMaxRows's rule, and ResNet-18's 3x3
// convolutions as the GEMM their implicit form runs
// (pixels x (9 * c) x c). Formats: int8 and int2 (plane layout, vpdpbusd or
// vpmaddubsw), int1 (+-1, table layout), each product kernel and, for int2
// and int1, the table kernel. Names: BM_Dots/<path>/<format>[_lut]/rows/n/k.
#include <benchmark/benchmark.h>

#include <map>
#include <string>
#include <vector>

#include "base/rng.h"
#include "kernels/lut.h"
#include "kernels/qlinear.h"

namespace lowbit {
namespace {

// The weight n x k in `format`, prepared for `path` (and the table kernel),
// made once per benchmark: Google Benchmark calls BM_Dots again for every
// repetition.
const QLinearWeights& Weights(KernelPath path, const char* format, bool lut, int64_t n, int64_t k) {
  static std::map<std::string, QLinearWeights> cache;
  const std::string key = std::string(KernelPathName(path)) + format + (lut ? "+lut" : "") + "/" +
                          std::to_string(n) + "/" + std::to_string(k);
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  cache.clear();  // one weight at a time (16384 x 4096 int8 is 64 MB)
  Rng rng(1);
  std::vector<float> wf(n * k);
  for (float& v : wf) v = static_cast<float>(rng.Laplace(0.05));
  FitOptions o;
  o.clip = ClipMethod::kMinMax;
  QLinearWeights w =
      *PrepareQLinear(*PackedTensor::Quantize(wf.data(), {n, k}, *ParseFormat(format), o));
  if (Is256BitPath(path)) PrepareAvx2Table(&w);
  if (lut) PrepareLut(&w);
  return cache.emplace(key, std::move(w)).first->second;
}

void BM_Dots(benchmark::State& state, KernelPath path, const char* format, bool lut) {
  const int64_t rows = state.range(0), n = state.range(1), k = state.range(2);
  const QLinearWeights& w = Weights(path, format, lut, n, k);
  Rng rng(2);
  std::vector<uint8_t> u(rows * w.k_pad, 0);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < k; ++c) u[r * w.k_pad + c] = static_cast<uint8_t>(rng.Below(256));
  }
  std::vector<int32_t> dot(rows * w.n_pad);
  for (auto _ : state) {
    QLinearDots(w, path, u.data(), rows, dot.data(), nullptr);
    benchmark::DoNotOptimize(dot.data());
  }
  state.counters["GMACs"] = benchmark::Counter(static_cast<double>(rows * n * k) / 1e9,
                                               benchmark::Counter::kIsIterationInvariantRate);
}

void Register() {
  const std::vector<std::vector<int64_t>> shapes = {
      {1, 4096, 4096}, {1, 16384, 4096}, {8, 4096, 4096},                    // GEMV, small GEMM
      {1, 256, 4096},  {1, 1024, 1024},  {1, 1024, 4096},  {4, 1024, 1024},  // the rule's edge
      {3136, 64, 576}, {784, 128, 1152}, {196, 256, 2304}, {49, 512, 4608},  // ResNet-18 3x3
  };
  struct Variant {
    const char* format;
    bool lut;
  };
  const Variant variants[] = {
      {"int8", false}, {"int2", false}, {"int2", true}, {"int1", false}, {"int1", true}};
  for (KernelPath path : {KernelPath::kAvx512Vnni, KernelPath::kAvxVnni, KernelPath::kAvx2}) {
    if (!KernelPathAvailable(path)) continue;
    for (const Variant& v : variants) {
      const std::string name =
          std::string("BM_Dots/") + KernelPathName(path) + "/" + v.format + (v.lut ? "_lut" : "");
      auto* b = benchmark::RegisterBenchmark(name.c_str(), BM_Dots, path, v.format, v.lut);
      for (const auto& s : shapes) b->Args(s);
      b->Unit(benchmark::kMicrosecond);
    }
  }
}

}  // namespace
}  // namespace lowbit

int main(int argc, char** argv) {
  lowbit::Register();
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
