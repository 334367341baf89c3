// Lane helpers shared by the AVX-512 kernel files (include only from files
// compiled with -mavx512f).
#ifndef LOWBIT_KERNELS_AVX512_LANES_H_
#define LOWBIT_KERNELS_AVX512_LANES_H_

#include <immintrin.h>

#include <cstdint>

namespace lowbit {

// A mask of the first n of 16 lanes (none for n <= 0, all for n >= 16).
inline __mmask16 FirstLanes(int64_t n) {
  return n >= 16 ? __mmask16(0xFFFF) : n <= 0 ? __mmask16(0) : __mmask16((1u << n) - 1);
}

// Plane p of a plane-layout tile's 64 bytes (kernels/qlinear.h): each byte's
// `bits`-bit code (v >> bits * p) & mask -- a 16-bit shift is enough, the
// mask drops the bits that cross bytes. Level planes add T[0] to these.
inline __m512i PlaneCodes(__m512i v, int bits, int p, __m512i mask) {
  if (bits == 8) return v;
  return _mm512_and_si512(p == 0 ? v : _mm512_srli_epi16(v, bits * p), mask);
}

// acc += u . s (vpdpbusd, u unsigned, s signed bytes) in acc's own register
// (the CPU must have AVX512-VNNI).
// With the intrinsic, GCC 12 copies loop-carried accumulators through other
// registers around each vpdpbusd (16 moves per 8 products in the GEMV loop);
// the tied asm operand keeps each accumulator in place.
inline void DpbusdInPlace(__m512i& acc, __m512i u, __m512i s) {
  asm("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(u), "v"(s));
}

// 16 floats to 8-bit codes as the activation quantizers round them:
// clamp(round_to_nearest_even(v * inv) + zero, lo, hi), v * inv first clamped
// to +-1e6 so huge values cannot wrap in the conversion.
inline __m512i QuantizeLanes(__m512 v, __m512 inv, __m512i zero, __m512i lo, __m512i hi) {
  const __m512 f = _mm512_min_ps(_mm512_max_ps(_mm512_mul_ps(v, inv), _mm512_set1_ps(-1e6f)),
                                 _mm512_set1_ps(1e6f));
  const __m512i q = _mm512_add_epi32(_mm512_cvtps_epi32(f), zero);
  return _mm512_min_epi32(_mm512_max_epi32(q, lo), hi);
}

// The byte a fused epilogue writes: ToByte(min(max(v, lo), hi)) of
// kernels/qlinear.h in five operations. Multiplying by inv > 0 is monotonic
// in fp32 too, so clamping v to [lo, hi] and then multiplying equals clamping
// v * inv to [lo * inv, hi * inv]; and for integer bounds clamp(rint(t) + z,
// 0, 255) = rint(clamp(t, -z, 255 - z)) + z. Both clamps merge into one pair
// of bounds (ToByte's +-1e6 guard lies outside them), and the result needs no
// integer clamp.
struct ByteQuantizer {
  __m512 inv, t_lo, t_hi;
  __m512i zero;
  ByteQuantizer(float lo, float hi, float inv_, int32_t zero_)
      : inv(_mm512_set1_ps(inv_)), zero(_mm512_set1_epi32(zero_)) {
    const float q_lo = static_cast<float>(-zero_), q_hi = static_cast<float>(255 - zero_);
    const float a = lo * inv_, b = hi * inv_;
    t_lo = _mm512_set1_ps(a > q_hi ? q_hi : a < q_lo ? q_lo : a);
    t_hi = _mm512_set1_ps(b < q_lo ? q_lo : b > q_hi ? q_hi : b);
  }
  __m512i Quantize(__m512 v) const {
    const __m512 t = _mm512_min_ps(_mm512_max_ps(_mm512_mul_ps(v, inv), t_lo), t_hi);
    return _mm512_add_epi32(_mm512_cvtps_epi32(t), zero);
  }
};

// Four registers of 16 values in [0, 255] as 64 bytes in order (q0's 16,
// then q1's, ...): vpackssdw and vpackuswb interleave them by 128-bit lane
// (dword 4L + i holds q_i's values 4L..4L+3), and a dword permute undoes that.
inline __m512i PackBytes64(__m512i q0, __m512i q1, __m512i q2, __m512i q3) {
  const __m512i order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
  return _mm512_permutexvar_epi32(
      order, _mm512_packus_epi16(_mm512_packs_epi32(q0, q1), _mm512_packs_epi32(q2, q3)));
}

// The low bytes of q's lanes in `mask` to dst. Narrowed in a register, then
// stored: vpmovdb straight to memory is several times slower on AMD cores.
inline void StoreLaneBytes(uint8_t* dst, __mmask16 mask, __m512i q) {
  const __m128i b = _mm512_cvtepi32_epi8(q);
  if (mask == 0xFFFF) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst), b);
  } else {
    _mm_mask_storeu_epi8(dst, mask, b);
  }
}

}  // namespace lowbit

#endif  // LOWBIT_KERNELS_AVX512_LANES_H_
