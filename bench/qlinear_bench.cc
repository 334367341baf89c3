// Packed GEMV against OpenBLAS sgemv, in one binary so both run under the same
// conditions. Counters: GOP/s (2 ops per weight), weight bytes read per second
// (packed codes for lowbit, fp32 for sgemv). BM_ReadBandwidth is a STREAM-like
// read of a buffer the size of each weight matrix: the time needed just to
// read those bytes once.
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "base/rng.h"
#include "base/target.h"
#include "kernels/qlinear.h"
#include "kernels/weight_decode.h"

namespace lowbit {
namespace {

std::vector<float> Weights(int64_t n, int64_t k) {
  Rng rng(1);
  std::vector<float> w(n * k);
  for (float& v : w) v = static_cast<float>(rng.Laplace(0.05));
  return w;
}

// The benchmark weight n x k packed in `format`, per-channel scales.
PackedTensor PackedWeights(int64_t n, int64_t k, const char* format) {
  const std::vector<float> wf = Weights(n, k);
  FitOptions o;
  o.granularity = {Granularity::kChannel, 0};
  o.clip = ClipMethod::kMinMax;  // fitting speed is not what is measured
  return *PackedTensor::Quantize(wf.data(), {n, k}, *ParseFormat(format), o);
}

// The path the environment names (LOWBIT_KERNEL), else the best available.
KernelPath BenchPath() {
  KernelOptions o;
  const Status s = ApplyKernelEnvironment(&o);
  if (!s.ok()) std::fprintf(stderr, "%s\n", s.ToString().c_str()), std::exit(2);
  return *ResolveKernelPath(o);
}

// The bytes a GEMV kernel reads for `w` (the table kernel's index, else the
// tiles) and the label naming its path.
size_t KernelBytes(const QLinearWeights& w) { return w.lut.empty() ? w.tiles.size() : w.lut.index.size(); }
std::string KernelLabel(KernelPath path, const QLinearWeights& w) {
  return std::string(KernelPathName(path)) + (w.lut.empty() ? "" : " table kernel");
}

void BM_PackedGemv(benchmark::State& state, const char* format) {
  const int64_t n = state.range(0), k = state.range(1);
  ThreadPool pool(static_cast<int>(state.range(2)));
  const PackedTensor t = PackedWeights(n, k, format);
  const KernelPath path = BenchPath();
  const QLinearWeights w = *PrepareQLinearFor(t, path);  // as a plan lays it out
  std::vector<float> x(k), y(n);
  Rng rng(2);
  for (float& v : x) v = static_cast<float>(rng.Normal());
  QLinearScratch scratch;
  for (auto _ : state) {
    QLinearForward(w, path, x.data(), 1, Epilogue(), &scratch, y.data(), &pool);
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["GOPs"] = benchmark::Counter(2.0 * n * k, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["weight_GBs"] =
      benchmark::Counter(static_cast<double>(KernelBytes(w)), benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(KernelLabel(path, w));
}

// The same GEMV with its weights streamed from DRAM: enough copies of the
// laid-out weight to fill kStreamBytes (several times L3), one copy per call
// in turn, so no call finds its weight in cache. Compare weight_GBs with
// BM_ReadBandwidth at kStreamBytes, run in the same binary.
constexpr int64_t kStreamBytes = int64_t{192} << 20;

void BM_PackedGemvStreamed(benchmark::State& state, const char* format) {
  const int64_t n = state.range(0), k = state.range(1);
  ThreadPool pool(static_cast<int>(state.range(2)));
  const PackedTensor t = PackedWeights(n, k, format);
  const KernelPath path = BenchPath();
  const QLinearWeights w = *PrepareQLinearFor(t, path);
  const int64_t bytes = static_cast<int64_t>(KernelBytes(w));
  std::vector<QLinearWeights> copies(std::max<int64_t>(2, kStreamBytes / bytes), w);
  std::vector<float> x(k), y(n);
  Rng rng(2);
  for (float& v : x) v = static_cast<float>(rng.Normal());
  QLinearScratch scratch;
  size_t i = 0;
  for (auto _ : state) {
    QLinearForward(copies[i], path, x.data(), 1, Epilogue(), &scratch, y.data(), &pool);
    benchmark::DoNotOptimize(y.data());
    i = (i + 1) % copies.size();
  }
  state.counters["weight_GBs"] =
      benchmark::Counter(static_cast<double>(bytes), benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(KernelLabel(path, w));
}

void BM_Sgemv(benchmark::State& state) {
  const int64_t n = state.range(0), k = state.range(1);
  openblas_set_num_threads(static_cast<int>(state.range(2)));
  const std::vector<float> w = Weights(n, k);
  std::vector<float> x(k, 0.5f), y(n);
  for (auto _ : state) {
    cblas_sgemv(CblasRowMajor, CblasNoTrans, n, k, 1.0f, w.data(), k, x.data(), 1, 0.0f, y.data(), 1);
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["GOPs"] = benchmark::Counter(2.0 * n * k, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["weight_GBs"] = benchmark::Counter(4.0 * n * k, benchmark::Counter::kIsIterationInvariantRate);
}

void BM_PackedGemm(benchmark::State& state, const char* format) {
  const int64_t m = state.range(0), n = 4096, k = 4096;
  ThreadPool pool(static_cast<int>(state.range(1)));
  const PackedTensor t = PackedWeights(n, k, format);
  const KernelPath path = BenchPath();
  const QLinearWeights w = *PrepareQLinearFor(t, path);  // as a plan lays it out
  std::vector<float> x(m * k), y(m * n);
  Rng rng(3);
  for (float& v : x) v = static_cast<float>(rng.Normal());
  QLinearScratch scratch;
  for (auto _ : state) {
    QLinearForward(w, path, x.data(), m, Epilogue(), &scratch, y.data(), &pool);
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["GOPs"] = benchmark::Counter(2.0 * m * n * k, benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(KernelPathName(path));
}

void BM_Sgemm(benchmark::State& state) {
  const int64_t m = state.range(0), n = 4096, k = 4096;
  openblas_set_num_threads(static_cast<int>(state.range(1)));
  const std::vector<float> w = Weights(n, k);
  std::vector<float> x(m * k, 0.5f), y(m * n);
  for (auto _ : state) {
    // y[m, n] = x[m, k] * W[n, k]^T, as a linear layer computes.
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, x.data(), k, w.data(), k,
                0.0f, y.data(), n);
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["GOPs"] = benchmark::Counter(2.0 * m * n * k, benchmark::Counter::kIsIterationInvariantRate);
}

// Args: batch, threads.
#define GEMM_SHAPES ->ArgsProduct({{8, 64}, {1, 2}})->Unit(benchmark::kMicrosecond)
BENCHMARK(BM_Sgemm) GEMM_SHAPES;
BENCHMARK_CAPTURE(BM_PackedGemm, int8, "int8") GEMM_SHAPES;
BENCHMARK_CAPTURE(BM_PackedGemm, int4, "int4") GEMM_SHAPES;
BENCHMARK_CAPTURE(BM_PackedGemm, int2, "int2") GEMM_SHAPES;

// Sums a buffer of `bytes` bytes: the floor for any kernel that reads that
// many bytes once.
LOWBIT_VECTORIZE uint64_t SumWords(const uint64_t* p, int64_t n) {
  uint64_t s = 0;
  for (int64_t i = 0; i < n; ++i) s += p[i];  // vectorized: full-width loads
  return s;
}

void BM_ReadBandwidth(benchmark::State& state) {
  const int64_t bytes = state.range(0);
  std::vector<uint64_t> buf(bytes / 8, 1);
  for (auto _ : state) {
    benchmark::DoNotOptimize(SumWords(buf.data(), static_cast<int64_t>(buf.size())));
  }
  state.counters["GBs"] = benchmark::Counter(static_cast<double>(bytes), benchmark::Counter::kIsIterationInvariantRate);
}

// Weight-only GEMV: fp32 x, packed weights looked up in registers
// (kernels/weight_decode.h), threads over blocks of 16 rows.
void BM_WeightOnlyGemv(benchmark::State& state, const char* format) {
  const int64_t n = state.range(0), k = state.range(1);
  ThreadPool pool(static_cast<int>(state.range(2)));
  const WeightDecoder d(PackedWeights(n, k, format));
  std::vector<float> x(k), y(n);
  Rng rng(2);
  for (float& v : x) v = static_cast<float>(rng.Normal());
  WeightDecoder::GemvInput in;
  for (auto _ : state) {
    d.PrepareGemv(x.data(), &in);
    pool.ParallelFor((n + 15) / 16, [&](int64_t b0, int64_t b1) {
      d.Gemv(in, b0 * 16, std::min(n, b1 * 16), y.data() + b0 * 16);
    });
    benchmark::DoNotOptimize(y.data());
  }
}

// Args: rows, inputs, threads.
#define SHAPES ->ArgsProduct({{4096, 16384}, {4096}, {1, 2}})->Unit(benchmark::kMicrosecond)
BENCHMARK(BM_Sgemv) SHAPES;
BENCHMARK_CAPTURE(BM_PackedGemv, int8, "int8") SHAPES;
BENCHMARK_CAPTURE(BM_PackedGemv, int4, "int4") SHAPES;
BENCHMARK_CAPTURE(BM_PackedGemv, int3, "int3") SHAPES;
BENCHMARK_CAPTURE(BM_PackedGemv, int2, "int2") SHAPES;
BENCHMARK_CAPTURE(BM_PackedGemv, int1, "int1") SHAPES;
BENCHMARK_CAPTURE(BM_PackedGemv, nhot2_4, "nhot2-4") SHAPES;
BENCHMARK_CAPTURE(BM_WeightOnlyGemv, int4, "int4") SHAPES;
BENCHMARK_CAPTURE(BM_WeightOnlyGemv, int2, "int2") SHAPES;
#define STREAMED ->Args({4096, 4096, 1})->Unit(benchmark::kMicrosecond)
BENCHMARK_CAPTURE(BM_PackedGemvStreamed, int8, "int8") STREAMED;
BENCHMARK_CAPTURE(BM_PackedGemvStreamed, int4, "int4") STREAMED;
BENCHMARK_CAPTURE(BM_PackedGemvStreamed, int2, "int2") STREAMED;
BENCHMARK_CAPTURE(BM_PackedGemvStreamed, int1, "int1") STREAMED;
// Packed bytes of a 4096 x 4096 matrix at 2, 4, 8 bits, and fp32 (4096^2 * 4);
// kStreamBytes: DRAM.
BENCHMARK(BM_ReadBandwidth)->Arg(4 << 20)->Arg(8 << 20)->Arg(16 << 20)->Arg(64 << 20)->Arg(kStreamBytes)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace lowbit

BENCHMARK_MAIN();
