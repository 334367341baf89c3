#include <immintrin.h>

#include "kernels/weight_decode.h"

namespace lowbit {
namespace {

// 16 bytes of codes (lanes past `mask` zero) times the inputs of their
// columns: byte i holds columns i * P + j, phase j of x holds those inputs at
// index i (zero past the last column, so padding codes add nothing).
template <int kBits>
inline void Chunk(const uint8_t* codes, const float* phase, int64_t bytes, int64_t i, __mmask16 m,
                  __m512 table, __m512* acc) {
  constexpr int kPerByte = 8 / kBits;
  const __m512i v = _mm512_maskz_cvtepu8_epi32(m, _mm_maskz_loadu_epi8(m, codes + i));
  const __m512i mask = _mm512_set1_epi32((1 << kBits) - 1);
  for (int j = 0; j < kPerByte; ++j) {
    const __m512i c = _mm512_and_si512(_mm512_maskz_srli_epi32(0xFFFF, v, j * kBits), mask);
    acc[j] = _mm512_fmadd_ps(_mm512_maskz_permutexvar_ps(0xFFFF, c, table),
                             _mm512_maskz_loadu_ps(m, phase + j * bytes + i), acc[j]);
  }
}

template <int kBits>
float LevelDot(const uint8_t* codes, const float* levels16, const float* phase, int64_t bytes) {
  constexpr int kPerByte = 8 / kBits;
  const __m512 table = _mm512_loadu_ps(levels16);  // 2^bits <= 16 levels, the rest unused
  __m512 acc[kPerByte];
  for (int j = 0; j < kPerByte; ++j) acc[j] = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= bytes; i += 16) Chunk<kBits>(codes, phase, bytes, i, 0xFFFF, table, acc);
  if (i < bytes) Chunk<kBits>(codes, phase, bytes, i, static_cast<__mmask16>((1u << (bytes - i)) - 1), table, acc);
  for (int j = 1; j < kPerByte; ++j) acc[0] = _mm512_add_ps(acc[0], acc[j]);
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, acc[0]);
  float s = 0;
  for (float v : lanes) s += v;
  return s;
}

}  // namespace

bool WeightGemvAvx512Available() {
  static const bool ok = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                         __builtin_cpu_supports("avx512vl");
  return ok;
}

float LevelDotAvx512(const uint8_t* codes, int bits, const float* levels16, const float* phase,
                     int64_t bytes) {
  switch (bits) {
    case 1: return LevelDot<1>(codes, levels16, phase, bytes);
    case 2: return LevelDot<2>(codes, levels16, phase, bytes);
    default: return LevelDot<4>(codes, levels16, phase, bytes);
  }
}

}  // namespace lowbit
