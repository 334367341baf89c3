// The int8 compute ceiling of this core: a register-only vpdpbusd loop (16
// independent zmm accumulators, no memory traffic). Reported as GMAC/s (one
// MAC = one u8 x s8 multiply-add; a zmm vpdpbusd does 64). The packed kernels'
// conv and GEMM rates are compared against it.
#include <immintrin.h>

#include <benchmark/benchmark.h>

namespace {

// 16 vpdpbusd per iteration into zmm16..zmm31 (independent chains), written
// in assembly so the compiler can neither drop nor reorder them.
__attribute__((target("avx512f,avx512vnni"))) void DpbusdLoop(int64_t iters) {
  asm volatile(
      "vpxord %%zmm16, %%zmm16, %%zmm16\n"
      "vpternlogd $0xff, %%zmm0, %%zmm0, %%zmm0\n"
      "vpternlogd $0xff, %%zmm1, %%zmm1, %%zmm1\n"
      "1:\n"
      "vpdpbusd %%zmm0, %%zmm1, %%zmm16\n vpdpbusd %%zmm0, %%zmm1, %%zmm17\n"
      "vpdpbusd %%zmm0, %%zmm1, %%zmm18\n vpdpbusd %%zmm0, %%zmm1, %%zmm19\n"
      "vpdpbusd %%zmm0, %%zmm1, %%zmm20\n vpdpbusd %%zmm0, %%zmm1, %%zmm21\n"
      "vpdpbusd %%zmm0, %%zmm1, %%zmm22\n vpdpbusd %%zmm0, %%zmm1, %%zmm23\n"
      "vpdpbusd %%zmm0, %%zmm1, %%zmm24\n vpdpbusd %%zmm0, %%zmm1, %%zmm25\n"
      "vpdpbusd %%zmm0, %%zmm1, %%zmm26\n vpdpbusd %%zmm0, %%zmm1, %%zmm27\n"
      "vpdpbusd %%zmm0, %%zmm1, %%zmm28\n vpdpbusd %%zmm0, %%zmm1, %%zmm29\n"
      "vpdpbusd %%zmm0, %%zmm1, %%zmm30\n vpdpbusd %%zmm0, %%zmm1, %%zmm31\n"
      "dec %0\n"
      "jnz 1b\n"
      : "+r"(iters)
      :
      : "xmm0", "xmm1", "xmm16", "xmm17", "xmm18", "xmm19", "xmm20", "xmm21", "xmm22", "xmm23",
        "xmm24", "xmm25", "xmm26", "xmm27", "xmm28", "xmm29", "xmm30", "xmm31", "cc");
}

void BM_VnniCeiling(benchmark::State& state) {
  if (!__builtin_cpu_supports("avx512vnni")) {
    state.SkipWithError("no AVX-512 VNNI");
    return;
  }
  const int64_t iters = 1 << 20;
  for (auto _ : state) DpbusdLoop(iters);
  const double macs = static_cast<double>(iters) * 16 * 64;
  state.counters["GMAC/s"] = benchmark::Counter(macs * state.iterations() / 1e9,
                                                benchmark::Counter::kIsRate);
}
BENCHMARK(BM_VnniCeiling)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
