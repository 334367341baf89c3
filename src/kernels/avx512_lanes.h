// Lane helpers shared by the AVX-512 kernel files (include only from files
// compiled with -mavx512f).
#ifndef LOWBIT_KERNELS_AVX512_LANES_H_
#define LOWBIT_KERNELS_AVX512_LANES_H_

#include <immintrin.h>

#include <cstdint>

namespace lowbit {

// 16 floats to 8-bit codes as the activation quantizers round them:
// clamp(round_to_nearest_even(v * inv) + zero, lo, hi), v * inv first clamped
// to +-1e6 so huge values cannot wrap in the conversion.
inline __m512i QuantizeLanes(__m512 v, __m512 inv, __m512i zero, __m512i lo, __m512i hi) {
  const __m512 f = _mm512_min_ps(_mm512_max_ps(_mm512_mul_ps(v, inv), _mm512_set1_ps(-1e6f)),
                                 _mm512_set1_ps(1e6f));
  const __m512i q = _mm512_add_epi32(_mm512_cvtps_epi32(f), zero);
  return _mm512_min_epi32(_mm512_max_epi32(q, lo), hi);
}

}  // namespace lowbit

#endif  // LOWBIT_KERNELS_AVX512_LANES_H_
