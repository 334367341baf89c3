// Is a T-MAC-style bit-serial lookup kernel faster than vpdpbusd on this CPU?
// Two L1-resident inner loops doing the same useful work (dot products of
// 16 output rows against the same activations), weights streamed from a 4 KiB
// buffer:
//   vnni:   int8 weights, one vpdpbusd = 64 MACs;
//   lut1:   1-bit weight planes, 4-bit indices into per-lane tables of the 16
//           partial sums of 4 activations (int16 as lo/hi bytes): two vpshufb
//           + two unpacks + two adds = 256 one-bit MACs (one bit plane).
// A b-bit weight needs b planes, so the LUT rate per b-bit MAC is lut1 / b.
#include <immintrin.h>

#include <cstdint>
#include <vector>

#include <benchmark/benchmark.h>

namespace {

constexpr int kBytes = 4096;

__attribute__((target("avx512f,avx512bw,avx512vnni"))) int32_t VnniLoop(const uint8_t* w, int64_t reps) {
  __m512i acc[8];
  for (auto& a : acc) a = _mm512_setzero_si512();
  const __m512i x = _mm512_set1_epi32(0x01020304);
  for (int64_t r = 0; r < reps; ++r) {
    for (int i = 0; i < kBytes; i += 512) {
      for (int j = 0; j < 8; ++j) {
        acc[j] = _mm512_dpbusd_epi32(acc[j], x, _mm512_loadu_si512(w + i + 64 * j));
      }
    }
  }
  __m512i s = acc[0];
  for (int j = 1; j < 8; ++j) s = _mm512_add_epi32(s, acc[j]);
  return _mm512_reduce_add_epi32(s);
}

__attribute__((target("avx512f,avx512bw"))) int32_t LutLoop(const uint8_t* w, int64_t reps) {
  __m512i acc[8];
  for (auto& a : acc) a = _mm512_setzero_si512();
  const __m512i tlo = _mm512_set1_epi64(0x0706050403020100LL), thi = _mm512_set1_epi64(0x0101010100000000LL);
  const __m512i mask = _mm512_set1_epi8(0x0F);
  for (int64_t r = 0; r < reps; ++r) {
    for (int i = 0; i < kBytes; i += 256) {
      for (int j = 0; j < 4; ++j) {
        // One load carries two nibbles per byte: two planes' worth of indices.
        const __m512i v = _mm512_loadu_si512(w + i + 64 * j);
        for (int h = 0; h < 2; ++h) {
          const __m512i idx = _mm512_and_si512(h == 0 ? v : _mm512_srli_epi16(v, 4), mask);
          const __m512i lo = _mm512_shuffle_epi8(tlo, idx), hi = _mm512_shuffle_epi8(thi, idx);
          acc[2 * j] = _mm512_add_epi16(acc[2 * j], _mm512_unpacklo_epi8(lo, hi));
          acc[2 * j + 1] = _mm512_add_epi16(acc[2 * j + 1], _mm512_unpackhi_epi8(lo, hi));
        }
      }
    }
  }
  __m512i s = acc[0];
  for (int j = 1; j < 8; ++j) s = _mm512_add_epi16(s, acc[j]);
  return _mm512_reduce_add_epi32(s);
}

void BM_Vnni(benchmark::State& state) {
  std::vector<uint8_t> w(kBytes, 3);
  const int64_t reps = 4096;
  for (auto _ : state) benchmark::DoNotOptimize(VnniLoop(w.data(), reps));
  // Each weight byte is one int8 weight: 1 MAC per byte.
  state.counters["GMAC/s"] = benchmark::Counter(static_cast<double>(kBytes) * reps * state.iterations() / 1e9,
                                                benchmark::Counter::kIsRate);
}

void BM_Lut1(benchmark::State& state) {
  std::vector<uint8_t> w(kBytes, 0x35);
  const int64_t reps = 4096;
  for (auto _ : state) benchmark::DoNotOptimize(LutLoop(w.data(), reps));
  // Each weight byte holds two 4-bit indices, each covering 4 one-bit MACs.
  state.counters["G 1-bit MAC/s"] = benchmark::Counter(
      static_cast<double>(kBytes) * 8 * reps * state.iterations() / 1e9, benchmark::Counter::kIsRate);
}

BENCHMARK(BM_Vnni)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Lut1)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
