// Lane helpers shared by the 256-bit kernel files (include only from files
// compiled with -mavx2 -mfma).
#ifndef LOWBIT_KERNELS_AVX2_LANES_H_
#define LOWBIT_KERNELS_AVX2_LANES_H_

#include <immintrin.h>

#include <cstdint>

namespace lowbit {

// Lanes [0, n) of 8 set (n <= 0: none), as vpmaskmovd's mask.
inline __m256i LaneMask(int64_t n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int32_t>(n < 0   ? 0
                                                                   : n > 8 ? 8
                                                                           : n)),
                            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// ByteQuantizer (avx512_lanes.h) on 8 lanes: ToByte(min(max(v, lo), hi)) of
// kernels/qlinear.h, the two clamps merged into one pair of bounds.
struct ByteQuantizer256 {
  __m256 inv, t_lo, t_hi;
  __m256i zero;
  ByteQuantizer256(float lo, float hi, float inv_, int32_t zero_)
      : inv(_mm256_set1_ps(inv_)), zero(_mm256_set1_epi32(zero_)) {
    const float q_lo = static_cast<float>(-zero_), q_hi = static_cast<float>(255 - zero_);
    const float a = lo * inv_, b = hi * inv_;
    t_lo = _mm256_set1_ps(a > q_hi ? q_hi : a < q_lo ? q_lo : a);
    t_hi = _mm256_set1_ps(b < q_lo ? q_lo : b > q_hi ? q_hi : b);
  }
  __m256i Quantize(__m256 v) const {
    const __m256 t = _mm256_min_ps(_mm256_max_ps(_mm256_mul_ps(v, inv), t_lo), t_hi);
    return _mm256_add_epi32(_mm256_cvtps_epi32(t), zero);
  }
};

// Two registers of 8 values in [0, 255] as 16 bytes in order: vpackssdw and
// vpackuswb interleave them by 128-bit lane (dwords q0[0-3], q1[0-3] in the
// low lane, q0[4-7], q1[4-7] in the high), and a dword permute undoes that.
inline __m128i PackBytes16(__m256i q0, __m256i q1) {
  const __m256i w = _mm256_packs_epi32(q0, q1);
  const __m256i b = _mm256_packus_epi16(w, w);
  return _mm256_castsi256_si128(
      _mm256_permutevar8x32_epi32(b, _mm256_setr_epi32(0, 4, 1, 5, 0, 0, 0, 0)));
}

}  // namespace lowbit

#endif  // LOWBIT_KERNELS_AVX2_LANES_H_
