// Throughput of the format layer: packing, unpacking, encoding and fitting.
// These run once per model at quantization time (kernels read packed codes
// directly), so the goal is "fast enough to fit a large model in seconds".
#include <benchmark/benchmark.h>

#include "base/rng.h"
#include "lowbit/bitpack.h"
#include "lowbit/format.h"

namespace lowbit {
namespace {

constexpr int64_t kN = 1 << 20;

std::vector<float> LaplaceData() {
  Rng rng(1);
  std::vector<float> x(kN);
  for (float& v : x) v = static_cast<float>(rng.Laplace(1.0));
  return x;
}

void BM_Pack(benchmark::State& state) {
  const int bits = static_cast<int>(state.range(0));
  std::vector<uint32_t> codes(kN);
  Rng rng(2);
  for (uint32_t& c : codes) c = static_cast<uint32_t>(rng.Below(uint64_t{1} << bits));
  std::vector<uint8_t> out(PackedRowBytes(kN, bits));
  for (auto _ : state) {
    PackCodes(codes.data(), kN, bits, out.data());
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations() * kN);
}
BENCHMARK(BM_Pack)->DenseRange(1, 8);

void BM_Unpack(benchmark::State& state) {
  const int bits = static_cast<int>(state.range(0));
  std::vector<uint8_t> in(PackedRowBytes(kN, bits), 0x5a);
  std::vector<uint32_t> codes(kN);
  for (auto _ : state) {
    UnpackCodes(in.data(), kN, bits, codes.data());
    benchmark::DoNotOptimize(codes.data());
  }
  state.SetItemsProcessed(state.iterations() * kN);
}
BENCHMARK(BM_Unpack)->DenseRange(1, 8);

void BM_Encode(benchmark::State& state, const char* format) {
  const std::vector<float> x = LaplaceData();
  FitOptions o;
  o.granularity = {Granularity::kChannel, 0};
  const QuantParams p = *Fit(x.data(), 1024, kN / 1024, *ParseFormat(format), o);
  std::vector<uint32_t> codes(kN);
  for (auto _ : state) {
    benchmark::DoNotOptimize(Encode(p, x.data(), codes.data()).ok());
  }
  state.SetItemsProcessed(state.iterations() * kN);
}
BENCHMARK_CAPTURE(BM_Encode, int4, "int4");
BENCHMARK_CAPTURE(BM_Encode, nhot2_4, "nhot2-4");
BENCHMARK_CAPTURE(BM_Encode, codebook_4, "codebook-4");

void BM_Fit(benchmark::State& state, const char* format) {
  const std::vector<float> x = LaplaceData();
  FitOptions o;
  o.granularity = {Granularity::kChannel, 0};
  for (auto _ : state) {
    benchmark::DoNotOptimize(Fit(x.data(), 1024, kN / 1024, *ParseFormat(format), o).ok());
  }
  state.SetItemsProcessed(state.iterations() * kN);
}
BENCHMARK_CAPTURE(BM_Fit, int4, "int4")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Fit, nhot2_4, "nhot2-4")->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Fit, codebook_4, "codebook-4")->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace lowbit

BENCHMARK_MAIN();
