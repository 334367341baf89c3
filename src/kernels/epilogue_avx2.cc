// The byte and fp32 column epilogues on 256-bit lanes (AVX2 + FMA), for the
// kAvx2 and kAvxVnni paths: bit-identical to the portable loops in
// qlinear.cc, as the AVX-512 bodies are.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "kernels/avx2_lanes.h"
#include "kernels/qlinear.h"

namespace lowbit {

bool EpilogueAvx2Available() {  // the file is compiled for AVX2 and FMA
  static const bool ok = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return ok;
}

// Chunks of 16 outputs (one 16-row tile of the dot products, so the loads
// stay inside the padded rows): per pixel, both halves' values quantized and
// packed into one 16-byte store. A partial last chunk goes through a small
// buffer (AVX2 has no byte-masked load or store). An fp32 residual (NCHW
// planes) is gathered, 8 outputs' planes per load; the caller checks that
// 8 * ld fits the gather's 32-bit indices.
void EpilogueRowsBytesAvx2(const float* A, const int32_t* B, const int32_t* C, const float* bias,
                           int64_t n, const int32_t* sums, const int32_t* dot, int64_t ldd,
                           int64_t rows, const RowResidual& res, float lo, float hi, ByteOutput o,
                           uint8_t* y, int64_t ldy) {
  const ByteQuantizer256 bq(lo, hi, o.inv, o.zero);
  const __m256 rscale = _mm256_set1_ps(res.scale);
  const __m256i rzero = _mm256_set1_epi32(res.zero);
  const __m256i ld_lanes = _mm256_mullo_epi32(_mm256_set1_epi32(static_cast<int32_t>(res.ld)),
                                              _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  for (int64_t j0 = 0; j0 < n; j0 += 16) {
    const int64_t nj = std::min<int64_t>(16, n - j0);
    __m256 a[2], bs[2];
    __m256i bb[2], cc[2], lanes[2];
    for (int h = 0; h < 2; ++h) {
      const __m256i m = lanes[h] = LaneMask(nj - 8 * h);
      a[h] = _mm256_maskload_ps(A + j0 + 8 * h, m);
      bs[h] = _mm256_maskload_ps(bias + j0 + 8 * h, m);
      bb[h] = _mm256_maskload_epi32(B + j0 + 8 * h, m);
      cc[h] = _mm256_maskload_epi32(C + j0 + 8 * h, m);
    }
    for (int64_t p = 0; p < rows; ++p) {
      const __m256i s = _mm256_set1_epi32(sums[p]);
      const int32_t* drow = dot + p * ldd + j0;
      __m128i rb = _mm_setzero_si128();
      if (res.bytes != nullptr) {
        const uint8_t* rrow = res.bytes + p * res.ld + j0;
        if (nj == 16) {
          rb = _mm_loadu_si128(reinterpret_cast<const __m128i*>(rrow));
        } else {
          alignas(16) uint8_t tmp[16] = {};
          std::memcpy(tmp, rrow, static_cast<size_t>(nj));
          rb = _mm_load_si128(reinterpret_cast<const __m128i*>(tmp));
        }
      }
      __m256i q[2];
      for (int h = 0; h < 2; ++h) {
        const __m256i d = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(drow + 8 * h));
        const __m256i t =
            _mm256_sub_epi32(_mm256_add_epi32(d, bb[h]), _mm256_mullo_epi32(cc[h], s));
        __m256 v = _mm256_fmadd_ps(_mm256_cvtepi32_ps(t), a[h], bs[h]);
        if (res.planes != nullptr) {  // output j of pixel p at planes[j * ld + p]
          v = _mm256_add_ps(v, _mm256_mask_i32gather_ps(
                                   _mm256_setzero_ps(), res.planes + (j0 + 8 * h) * res.ld + p,
                                   ld_lanes, _mm256_castsi256_ps(lanes[h]), 4));
        }
        if (res.bytes != nullptr) {
          const __m256i r8 = _mm256_cvtepu8_epi32(h == 0 ? rb : _mm_srli_si128(rb, 8));
          v = _mm256_add_ps(v,
                            _mm256_mul_ps(rscale, _mm256_cvtepi32_ps(_mm256_sub_epi32(r8, rzero))));
        }
        q[h] = bq.Quantize(v);
      }
      const __m128i packed = PackBytes16(q[0], q[1]);
      uint8_t* yrow = y + p * ldy + j0;
      if (nj == 16) {
        _mm_storeu_si128(reinterpret_cast<__m128i*>(yrow), packed);
      } else {
        alignas(16) uint8_t tmp[16];
        _mm_store_si128(reinterpret_cast<__m128i*>(tmp), packed);
        std::memcpy(yrow, tmp, static_cast<size_t>(nj));
      }
    }
  }
}

namespace {

// r[p] (pixel p's 8 outputs) to r[j] (output j's 8 pixels).
inline void Transpose8(__m256 r[8]) {
  __m256 t[8], u[8];
  for (int i = 0; i < 4; ++i) {
    t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 2; ++i) {
    for (int h = 0; h < 2; ++h) {
      u[4 * i + 2 * h] = _mm256_shuffle_ps(t[4 * i + h], t[4 * i + 2 + h], 0x44);
      u[4 * i + 2 * h + 1] = _mm256_shuffle_ps(t[4 * i + h], t[4 * i + 2 + h], 0xEE);
    }
  }
  for (int i = 0; i < 4; ++i) {
    r[i] = _mm256_permute2f128_ps(u[i], u[4 + i], 0x20);
    r[4 + i] = _mm256_permute2f128_ps(u[i], u[4 + i], 0x31);
  }
}

}  // namespace

// Blocks of 8 pixels x 8 outputs: values in pixel-major registers, a
// transpose, then per output channel the residual, the clamp and one store of
// 8 pixels.
void EpilogueColumnsAvx2(const float* A, const int32_t* B, const int32_t* C, const float* bias,
                         int64_t n, const int32_t* sums, const int32_t* dot, int64_t ldd,
                         int64_t rows, const float* residual, float lo, float hi, float* y,
                         int64_t ldy, const int32_t* out) {
  const __m256 vlo = _mm256_set1_ps(lo), vhi = _mm256_set1_ps(hi);
  for (int64_t p0 = 0; p0 < rows; p0 += 8) {
    const int64_t m = std::min<int64_t>(8, rows - p0);
    const __m256i pmask = LaneMask(m);
    for (int64_t j0 = 0; j0 < n; j0 += 8) {
      const int64_t nj = std::min<int64_t>(8, n - j0);
      const __m256i jm = LaneMask(nj);
      const __m256 a = _mm256_maskload_ps(A + j0, jm), bs = _mm256_maskload_ps(bias + j0, jm);
      const __m256i bb = _mm256_maskload_epi32(B + j0, jm), cc = _mm256_maskload_epi32(C + j0, jm);
      __m256 r[8];
      for (int64_t p = 0; p < 8; ++p) {
        if (p >= m) {
          r[p] = _mm256_setzero_ps();
          continue;
        }
        const __m256i d =
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(dot + (p0 + p) * ldd + j0));
        const __m256i t = _mm256_sub_epi32(_mm256_add_epi32(d, bb),
                                           _mm256_mullo_epi32(cc, _mm256_set1_epi32(sums[p0 + p])));
        r[p] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(t), a, bs);
      }
      Transpose8(r);
      for (int64_t j = 0; j < nj; ++j) {
        float* yj = y + (out != nullptr ? out[j0 + j] : j0 + j) * ldy + p0;
        __m256 v = r[j];
        if (residual != nullptr) {
          const float* rj = residual + (out != nullptr ? out[j0 + j] : j0 + j) * ldy + p0;
          v = _mm256_add_ps(v, _mm256_maskload_ps(rj, pmask));
        }
        v = _mm256_min_ps(_mm256_max_ps(v, vlo), vhi);
        if (m == 8) {
          _mm256_storeu_ps(yj, v);
        } else {
          _mm256_maskstore_ps(yj, pmask, v);
        }
      }
    }
  }
}

}  // namespace lowbit
