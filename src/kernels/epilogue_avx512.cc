// AVX-512 epilogues of the packed kernels (fp32 outputs in NCHW planes,
// bytes in rows), the per-pixel activation sums and the NHWC activation
// quantizers: the int32 dot products of qlinear_avx512.cc turned into
// outputs. Compiled with those extensions for this file only, and without
// contracted multiply-adds (bit-identical to the portable loops).
#include <immintrin.h>

#include "kernels/avx512_lanes.h"
#include "kernels/qlinear.h"
#include "kernels/unaligned.h"

namespace lowbit {
namespace {

// In-register transpose of a 16 x 16 block of floats (r[i][j] -> r[j][i]).
inline void Transpose16(__m512 r[16]) {
  __m512 t[16], u[16], v[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  // u[4b + q]: column 4L + q of rows 4b..4b+3, in lane L.
  for (int b = 0; b < 4; ++b) {
    const __m512d t0 = _mm512_castps_pd(t[4 * b]), t1 = _mm512_castps_pd(t[4 * b + 1]);
    const __m512d t2 = _mm512_castps_pd(t[4 * b + 2]), t3 = _mm512_castps_pd(t[4 * b + 3]);
    u[4 * b + 0] = _mm512_castpd_ps(_mm512_unpacklo_pd(t0, t2));
    u[4 * b + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(t0, t2));
    u[4 * b + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(t1, t3));
    u[4 * b + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(t1, t3));
  }
  for (int q = 0; q < 4; ++q) {
    v[q] = _mm512_shuffle_f32x4(u[q], u[4 + q], 0x88);
    v[4 + q] = _mm512_shuffle_f32x4(u[q], u[4 + q], 0xdd);
    v[8 + q] = _mm512_shuffle_f32x4(u[8 + q], u[12 + q], 0x88);
    v[12 + q] = _mm512_shuffle_f32x4(u[8 + q], u[12 + q], 0xdd);
  }
  for (int q = 0; q < 4; ++q) {
    r[q] = _mm512_shuffle_f32x4(v[q], v[8 + q], 0x88);
    r[8 + q] = _mm512_shuffle_f32x4(v[q], v[8 + q], 0xdd);
    r[4 + q] = _mm512_shuffle_f32x4(v[4 + q], v[12 + q], 0x88);
    r[12 + q] = _mm512_shuffle_f32x4(v[4 + q], v[12 + q], 0xdd);
  }
}

// The per-output constants of 16 outputs [j0, j0 + 16) of an epilogue, and
// one row's value before residual and clamp: A * (dot + B - C * sum) + bias.
struct EpilogueLanes {
  int64_t n;  // outputs in use
  __mmask16 mask;
  __m512 a, bias;
  __m512i b, c;

  EpilogueLanes(const float* A, const int32_t* B, const int32_t* C, const float* bias_, int64_t n_all,
                int64_t j0)
      : n(std::min<int64_t>(16, n_all - j0)), mask(static_cast<__mmask16>((1u << n) - 1)) {
    a = _mm512_maskz_loadu_ps(mask, A + j0);
    b = _mm512_maskz_loadu_epi32(mask, B + j0);
    c = _mm512_maskz_loadu_epi32(mask, C + j0);
    bias = _mm512_maskz_loadu_ps(mask, bias_ + j0);
  }
  // dot: the row's 16 products (full lanes; rows are padded to 16).
  __m512 Value(const int32_t* dot, int32_t sum) const {
    return Value(_mm512_loadu_si512(dot), sum);
  }
  __m512 Value(__m512i d, int32_t sum) const {
    const __m512i t = _mm512_sub_epi32(_mm512_add_epi32(d, b), _mm512_mullo_epi32(c, _mm512_set1_epi32(sum)));
    return _mm512_fmadd_ps(_mm512_cvtepi32_ps(t), a, bias);
  }
};

}  // namespace

// Blocks of 16 pixels x 16 channels: the epilogue in pixel-major registers
// (one row of dot products per pixel), then a transpose, then contiguous
// stores into each channel's plane.
void EpilogueColumnsAvx512(const float* A, const int32_t* B, const int32_t* C, const float* bias,
                           int64_t n, const int32_t* sums, const int32_t* dot, int64_t ldd,
                           int64_t rows, const float* residual, float lo, float hi, float* y,
                           int64_t ldy, const int32_t* out) {
  const __m512 vlo = _mm512_set1_ps(lo), vhi = _mm512_set1_ps(hi);
  for (int64_t p0 = 0; p0 < rows; p0 += 16) {
    const int64_t m = std::min<int64_t>(16, rows - p0);
    const __mmask16 pmask = static_cast<__mmask16>((1u << m) - 1);
    for (int64_t j0 = 0; j0 < n; j0 += 16) {
      const EpilogueLanes lanes(A, B, C, bias, n, j0);
      const int64_t nj = lanes.n;
      __m512 r[16];
      for (int64_t p = 0; p < 16; ++p) {
        if (p >= m) {
          r[p] = _mm512_setzero_ps();
          continue;
        }
        r[p] = lanes.Value(dot + (p0 + p) * ldd + j0, sums[p0 + p]);  // ldd: multiple of 16
        if (residual == nullptr) r[p] = _mm512_min_ps(_mm512_max_ps(r[p], vlo), vhi);
      }
      Transpose16(r);
      // Output channel of row j0 + j (filter-wise formats scatter rows).
      auto plane = [&](int64_t j) { return (out != nullptr ? out[j0 + j] : j0 + j) * ldy + p0; };
      if (residual != nullptr) {  // added per output channel, then the clamp
        for (int64_t j = 0; j < nj; ++j) {
          const __m512 v = _mm512_maskz_loadu_ps(pmask, residual + plane(j));
          r[j] = _mm512_min_ps(_mm512_max_ps(_mm512_add_ps(r[j], v), vlo), vhi);
        }
      }
      for (int64_t j = 0; j < nj; ++j) _mm512_mask_storeu_ps(y + plane(j), pmask, r[j]);
    }
  }
}

namespace {

// The fp32 residual of outputs j0..j0 + nj (out[j] for filter-wise formats,
// null: in order) for pixels p0..p0 + 15, read from its NCHW planes and
// transposed: rp[p] holds pixel p0 + p's 16 outputs.
inline void ResidualPlanes(const RowResidual& res, const int32_t* out, int64_t j0, int64_t nj,
                           int64_t p0, __mmask16 pmask, __m512 rp[16]) {
  for (int64_t j = 0; j < 16; ++j) {
    const int64_t ch = out != nullptr && j < nj ? out[j0 + j] : j0 + j;
    rp[j] =
        j < nj ? _mm512_maskz_loadu_ps(pmask, res.planes + ch * res.ld + p0) : _mm512_setzero_ps();
  }
  Transpose16(rp);
}

// What both byte epilogues do to one row's 16 values: add a residual read as
// bytes, clamp to the activation, quantize to the output's bytes.
struct ByteLanes {
  ByteQuantizer q;
  __m512 rscale;
  __m512i rzero;
  ByteLanes(float lo, float hi, ByteOutput o, const RowResidual& r)
      : q(lo, hi, o.inv, o.zero),
        rscale(_mm512_set1_ps(r.scale)),
        rzero(_mm512_set1_epi32(r.zero)) {}
  __m512 AddResidual(__m512 v, __m128i bytes) const {
    const __m512i ri = _mm512_sub_epi32(_mm512_cvtepu8_epi32(bytes), rzero);
    return _mm512_add_ps(v, _mm512_mul_ps(rscale, _mm512_cvtepi32_ps(ri)));
  }
  __m512i Quantize(__m512 v) const { return q.Quantize(v); }
};

// Up to 64 contiguous outputs [j0, j0 + 64) of every row, T = ceil(outputs /
// 16) tiles: each pixel's sum broadcast once, its T tiles quantized, packed
// to bytes together (PackBytes64) and stored with one 64-byte store. Narrowing each tile on its own
// (vpmovdb, then a 16-byte store) costs several times as much on AMD cores.
template <int T>
void EpilogueRowsBytesChunk(const float* A, const int32_t* B, const int32_t* C, const float* bias,
                            int64_t n, int64_t j0, const int32_t* sums, const int32_t* dot,
                            int64_t ldd, int64_t rows, const RowResidual& res, const ByteLanes& b,
                            uint8_t* y, int64_t ldy) {
  const int64_t nj = std::min<int64_t>(64, n - j0);
  const __mmask64 bmask = nj == 64 ? ~__mmask64{0} : (__mmask64{1} << nj) - 1;
  __m512 a[T], bs[T];
  __m512i bb[T], cc[T];
  __mmask16 m[T];
  for (int i = 0; i < T; ++i) {
    m[i] = static_cast<__mmask16>((1u << std::min<int64_t>(16, nj - 16 * i)) - 1);
    a[i] = _mm512_maskz_loadu_ps(m[i], A + j0 + 16 * i);
    bb[i] = _mm512_maskz_loadu_epi32(m[i], B + j0 + 16 * i);
    cc[i] = _mm512_maskz_loadu_epi32(m[i], C + j0 + 16 * i);
    bs[i] = _mm512_maskz_loadu_ps(m[i], bias + j0 + 16 * i);
  }
  for (int64_t p = 0; p < rows; ++p) {
    const __m512i s = _mm512_set1_epi32(sums[p]);
    const int32_t* drow = dot + p * ldd + j0;
    const uint8_t* rrow = res.bytes != nullptr ? res.bytes + p * res.ld + j0 : nullptr;
    __m512i q[4];
    for (int i = 0; i < T; ++i) {
      const __m512i t = _mm512_sub_epi32(_mm512_add_epi32(_mm512_loadu_si512(drow + 16 * i), bb[i]),
                                         _mm512_mullo_epi32(cc[i], s));
      __m512 v = _mm512_fmadd_ps(_mm512_cvtepi32_ps(t), a[i], bs[i]);
      if (rrow != nullptr) v = b.AddResidual(v, _mm_maskz_loadu_epi8(m[i], rrow + 16 * i));
      q[i] = b.Quantize(v);
    }
    for (int i = T; i < 4; ++i) q[i] = _mm512_setzero_si512();
    const __m512i packed = PackBytes64(q[0], q[1], q[2], q[3]);
    uint8_t* yrow = y + p * ldy + j0;
    if (nj == 64) {
      _mm512_storeu_si512(yrow, packed);
    } else if (nj % 16 == 0) {  // whole tiles: plain stores (masked ones are slower)
      if (T >= 2)
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(yrow), _mm512_castsi512_si256(packed));
      if (T != 2) {
        _mm_storeu_si128(reinterpret_cast<__m128i*>(yrow + 16 * (T - 1)),
                         _mm512_extracti32x4_epi32(packed, T == 3 ? 2 : 0));
      }
    } else {
      _mm512_mask_storeu_epi8(yrow, bmask, packed);
    }
  }
}

}  // namespace

void EpilogueRowsBytesAvx512(const float* A, const int32_t* B, const int32_t* C, const float* bias,
                             int64_t n, const int32_t* sums, const int32_t* dot, int64_t ldd,
                             int64_t rows, const RowResidual& res, float lo, float hi, ByteOutput o,
                             uint8_t* y, int64_t ldy, const int32_t* out) {
  const ByteLanes b(lo, hi, o, res);
  if (out == nullptr && res.planes == nullptr) {
    for (int64_t j0 = 0; j0 < n; j0 += 64) {
      switch ((std::min<int64_t>(64, n - j0) + 15) / 16) {
        case 4:
          EpilogueRowsBytesChunk<4>(A, B, C, bias, n, j0, sums, dot, ldd, rows, res, b, y, ldy);
          break;
        case 3:
          EpilogueRowsBytesChunk<3>(A, B, C, bias, n, j0, sums, dot, ldd, rows, res, b, y, ldy);
          break;
        case 2:
          EpilogueRowsBytesChunk<2>(A, B, C, bias, n, j0, sums, dot, ldd, rows, res, b, y, ldy);
          break;
        default:
          EpilogueRowsBytesChunk<1>(A, B, C, bias, n, j0, sums, dot, ldd, rows, res, b, y, ldy);
          break;
      }
    }
    return;
  }
  for (int64_t p0 = 0; p0 < rows; p0 += 16) {
    const int64_t m = std::min<int64_t>(16, rows - p0);
    const __mmask16 pmask = static_cast<__mmask16>((1u << m) - 1);
    for (int64_t j0 = 0; j0 < n; j0 += 16) {
      const EpilogueLanes lanes(A, B, C, bias, n, j0);
      const int64_t nj = lanes.n;
      const __mmask16 jmask = lanes.mask;
      __m512 rp[16];
      if (res.planes != nullptr) ResidualPlanes(res, out, j0, nj, p0, pmask, rp);
      alignas(16) uint8_t scattered[16];
      for (int64_t p = 0; p < m; ++p) {
        __m512 v = lanes.Value(dot + (p0 + p) * ldd + j0, sums[p0 + p]);  // ldd: multiple of 16
        if (res.planes != nullptr) v = _mm512_add_ps(v, rp[p]);
        if (res.bytes != nullptr) {
          const uint8_t* rrow = res.bytes + (p0 + p) * res.ld;
          __m128i rb;
          if (out == nullptr) {
            rb = _mm_maskz_loadu_epi8(jmask, rrow + j0);
          } else {
            // Gathered in registers: a vector load of bytes just stored one by
            // one would wait for store forwarding, which cannot merge them.
            uint64_t half[2] = {0, 0};
            for (int64_t j = 0; j < nj; ++j)
              half[j >> 3] |= uint64_t{rrow[out[j0 + j]]} << (8 * (j & 7));
            rb = _mm_set_epi64x(static_cast<int64_t>(half[1]), static_cast<int64_t>(half[0]));
          }
          v = b.AddResidual(v, rb);
        }
        const __m512i q = b.Quantize(v);
        uint8_t* yrow = y + (p0 + p) * ldy;
        if (out == nullptr) {
          StoreLaneBytes(yrow + j0, jmask, q);
        } else {
          // A full (unmasked) store, which the byte loads can forward from.
          _mm_store_si128(reinterpret_cast<__m128i*>(scattered), _mm512_cvtepi32_epi8(q));
          for (int64_t j = 0; j < nj; ++j) yrow[out[j0 + j]] = scattered[j];
        }
      }
    }
  }
}

void EpilogueRowsBytesGatheredAvx512(const ColumnEpilogue& c, DotGather g, const int32_t* sums,
                                     const int32_t* dots, int64_t row0, int64_t rows,
                                     const RowResidual& res, ByteOutput o, uint8_t* y,
                                     int64_t ldy) {
  const int64_t n = static_cast<int64_t>(c.A.size());
  const ByteLanes b(c.lo, c.hi, o, res);
  for (int64_t p0 = 0; p0 < rows; p0 += 16) {
    const int64_t m = std::min<int64_t>(16, rows - p0);
    const __mmask16 pmask = static_cast<__mmask16>((1u << m) - 1);
    for (int64_t j0 = 0; j0 < n; j0 += 16) {
      const EpilogueLanes lanes(c.A.data(), c.B.data(), c.C.data(), c.bias.data(), n, j0);
      const int64_t nj = lanes.n;
      const __mmask16 jmask = lanes.mask;
      const __m512i step = _mm512_maskz_loadu_epi32(jmask, g.step + j0);
      // Lane j's dot index for the first row of this block, then + step per row.
      __m512i idx = _mm512_add_epi32(
          _mm512_maskz_loadu_epi32(jmask, g.idx + j0),
          _mm512_mullo_epi32(step, _mm512_set1_epi32(static_cast<int32_t>(row0 + p0))));
      __m512 rp[16];
      if (res.planes != nullptr) ResidualPlanes(res, nullptr, j0, nj, p0, pmask, rp);
      for (int64_t p = 0; p < m; ++p, idx = _mm512_add_epi32(idx, step)) {
        const __m512i d = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), jmask, idx, dots, 4);
        __m512 v = lanes.Value(d, sums[p0 + p]);
        if (res.planes != nullptr) v = _mm512_add_ps(v, rp[p]);
        if (res.bytes != nullptr)
          v = b.AddResidual(v, _mm_maskz_loadu_epi8(jmask, res.bytes + (p0 + p) * res.ld + j0));
        StoreLaneBytes(y + (p0 + p) * ldy + j0, jmask, b.Quantize(v));
      }
    }
  }
}

namespace {

// Between 16 pixels of c < 4 packed bytes and 16 pixels of 4 bytes. Packed,
// four pixels are c dwords, so a dword permute moves each four to a 128-bit
// lane (spread) or back (gather), and vpshufb within the lanes moves pixel
// i's bytes between ci and 4i (widen; zeros after) or back (narrow).
struct PixelTables {
  alignas(64) int32_t spread[16], gather[16];
  alignas(64) int8_t widen[64], narrow[64];
  constexpr explicit PixelTables(int c) : spread(), gather(), widen(), narrow() {
    for (int l = 0; l < 4; ++l) {
      for (int j = 0; j < 4; ++j) spread[4 * l + j] = l * c + (j < c ? j : c - 1);
      for (int i = 0; i < 16; ++i) {
        widen[16 * l + i] = static_cast<int8_t>(i % 4 < c ? i / 4 * c + i % 4 : -128);
        narrow[16 * l + i] = static_cast<int8_t>(i < 4 * c ? i / c * 4 + i % c : -128);
      }
    }
    for (int d = 0; d < 16; ++d) gather[d] = d < 4 * c ? d / c * 4 + d % c : 0;
  }
};
// Indexed by c (entry 0 unused).
constexpr PixelTables kPixelTables[4] = {PixelTables(1), PixelTables(1), PixelTables(2),
                                         PixelTables(3)};

struct PixelShuffles {
  __m512i spread, widen, narrow, gather;
  explicit PixelShuffles(int64_t c) {
    const PixelTables& t = kPixelTables[c];
    spread = _mm512_load_si512(t.spread);
    widen = _mm512_load_si512(t.widen);
    narrow = _mm512_load_si512(t.narrow);
    gather = _mm512_load_si512(t.gather);
  }
  static __mmask64 Bytes(int64_t pixels, int64_t c) {
    const int64_t n = pixels * c;
    return n >= 64 ? ~__mmask64{0} : (__mmask64{1} << n) - 1;
  }
};

}  // namespace

void PixelSumsAvx512(const uint8_t* x, int64_t n, int64_t stride, int64_t c, bool is_signed,
                     int32_t* out) {
  // vpdpbusd multiplies unsigned by signed bytes: the pixels on the side of
  // their type, ones on the other.
  const __m512i ones = _mm512_set1_epi8(1);
  auto dot = [&](__m512i acc, __m512i v) {
    return is_signed ? _mm512_dpbusd_epi32(acc, ones, v) : _mm512_dpbusd_epi32(acc, v, ones);
  };
  if (c == 4 && stride == 4) {  // 16 pixels per load
    for (int64_t p = 0; p < n; p += 16) {
      const int64_t m = std::min<int64_t>(16, n - p);
      const __mmask64 lm = m == 16 ? ~__mmask64{0} : (__mmask64{1} << (4 * m)) - 1;
      const __m512i s = dot(_mm512_setzero_si512(), _mm512_maskz_loadu_epi8(lm, x + 4 * p));
      _mm512_mask_storeu_epi32(out + p, static_cast<__mmask16>((1u << m) - 1), s);
    }
    return;
  }
  if (c < 4 && stride == c) {  // 16 packed pixels of 1-3 bytes, widened to 4 bytes
    const PixelShuffles ps(c);
    for (int64_t p = 0; p < n; p += 16) {
      const int64_t m = std::min<int64_t>(16, n - p);
      const __m512i v =
          _mm512_permutexvar_epi32(ps.spread, _mm512_maskz_loadu_epi8(ps.Bytes(m, c), x + p * c));
      // The filler bytes are 0, which adds nothing whatever the side.
      const __m512i s = dot(_mm512_setzero_si512(), _mm512_shuffle_epi8(v, ps.widen));
      _mm512_mask_storeu_epi32(out + p, static_cast<__mmask16>((1u << m) - 1), s);
    }
    return;
  }
  const __mmask64 tail = c % 64 == 0 ? ~__mmask64{0} : (__mmask64{1} << (c % 64)) - 1;
  for (int64_t p = 0; p < n; ++p) {
    const uint8_t* px = x + p * stride;
    __m512i acc = _mm512_setzero_si512();
    int64_t j = 0;
    for (; j + 64 <= c; j += 64) acc = dot(acc, _mm512_loadu_si512(px + j));
    if (j < c) acc = dot(acc, _mm512_maskz_loadu_epi8(tail, px + j));
    out[p] = _mm512_mask_reduce_add_epi32(0xFFFF, acc);
  }
}

void QuantizeNhwc4Avx512(const float* x, int64_t c, int64_t hw, float scale_inv, int32_t zero,
                         bool is_signed, int64_t p0, int64_t p1, uint8_t* dst, int64_t stride) {
  const __m512 inv = _mm512_set1_ps(scale_inv);
  const __m512i z = _mm512_set1_epi32(zero), bytes = _mm512_set1_epi32(0xFF);
  const __m512i lo = _mm512_set1_epi32(is_signed ? -128 : 0), hi = _mm512_set1_epi32(is_signed ? 127 : 255);
  // The padding channels' bytes, and the bits the real channels replace.
  uint32_t fill = 0;
  for (int64_t ch = c; ch < 4; ++ch) fill |= (static_cast<uint32_t>(zero) & 0xFF) << (8 * ch);
  const __m512i vfill = _mm512_set1_epi32(static_cast<int32_t>(fill));
  const PixelShuffles ps(stride < 4 ? stride : 1);  // (stride 4 stores px as it is)
  for (int64_t pb = p0; pb < p1; pb += 16) {
    const int64_t m = std::min<int64_t>(16, p1 - pb);
    const __mmask16 pmask = static_cast<__mmask16>((1u << m) - 1);
    __m512i px = vfill;
    for (int64_t ch = 0; ch < c; ++ch) {
      const __m512i q = QuantizeLanes(_mm512_maskz_loadu_ps(pmask, x + ch * hw + pb), inv, z, lo, hi);
      px = _mm512_or_si512(px, _mm512_slli_epi32(_mm512_and_si512(q, bytes), static_cast<unsigned>(8 * ch)));
    }
    if (stride == 4) {
      _mm512_mask_storeu_epi32(dst + 4 * (pb - p0), pmask, px);
      continue;
    }
    px = _mm512_permutexvar_epi32(ps.gather, _mm512_shuffle_epi8(px, ps.narrow));
    _mm512_mask_storeu_epi8(dst + (pb - p0) * stride, ps.Bytes(m, stride), px);
  }
}

void QuantizeNhwcAvx512(const float* x, int64_t c, int64_t hw, float scale_inv, int32_t zero,
                        bool is_signed, int64_t p0, int64_t p1, uint8_t* dst) {
  const __m512 inv = _mm512_set1_ps(scale_inv);
  const __m512i z = _mm512_set1_epi32(zero);
  const __m512i lo = _mm512_set1_epi32(is_signed ? -128 : 0), hi = _mm512_set1_epi32(is_signed ? 127 : 255);
  for (int64_t pb = p0; pb < p1; pb += 16) {
    const int64_t m = std::min<int64_t>(16, p1 - pb);
    const __mmask16 pmask = static_cast<__mmask16>((1u << m) - 1);
    for (int64_t c0 = 0; c0 < c; c0 += 16) {
      __m512 r[16];
      for (int j = 0; j < 16; ++j) r[j] = _mm512_maskz_loadu_ps(pmask, x + (c0 + j) * hw + pb);
      Transpose16(r);
      for (int64_t p = 0; p < m; ++p) {
        const __m512i q = QuantizeLanes(r[p], inv, z, lo, hi);
        _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + (pb - p0 + p) * c + c0), _mm512_cvtepi32_epi8(q));
      }
    }
  }
}

}  // namespace lowbit
