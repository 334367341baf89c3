// The AVX-512 Winograd F(4x4, 3x3) kernels (winograd.h): transforms on 32
// int16 lanes, products with VNNI's vpdpwssd. Bit-identical to the *Ref
// twins in winograd.cc.
#include <immintrin.h>

#include <algorithm>

#include "kernels/avx512_lanes.h"
#include "kernels/winograd.h"
#include "kernels/unaligned.h"

namespace lowbit {

namespace {

// y = B^T x on int16 vectors (|y| <= 20400 for bytes, winograd.h).
inline void InputTransform(const __m512i* x, int sx, __m512i* y, int sy) {
  const __m512i x0 = x[0], x1 = x[sx], x2 = x[2 * sx], x3 = x[3 * sx], x4 = x[4 * sx],
                x5 = x[5 * sx];
  const __m512i a = _mm512_sub_epi16(x4, _mm512_slli_epi16(x2, 2));
  const __m512i b = _mm512_sub_epi16(x3, _mm512_slli_epi16(x1, 2));
  const __m512i c = _mm512_sub_epi16(x4, x2);
  const __m512i e = _mm512_slli_epi16(_mm512_sub_epi16(x3, x1), 1);
  y[0] = _mm512_add_epi16(_mm512_slli_epi16(_mm512_sub_epi16(x0, x2), 2), c);
  y[sy] = _mm512_add_epi16(a, b);
  y[2 * sy] = _mm512_sub_epi16(a, b);
  y[3 * sy] = _mm512_add_epi16(c, e);
  y[4 * sy] = _mm512_sub_epi16(c, e);
  y[5 * sy] =
      _mm512_add_epi16(_mm512_slli_epi16(_mm512_sub_epi16(x1, x3), 2), _mm512_sub_epi16(x5, x3));
}

// y = G' x on int16 vectors, G' = 24 G.
inline void WeightTransform(const __m512i* x, int sx, __m512i* y, int sy) {
  const __m512i x0 = x[0], x1 = x[sx], x2 = x[2 * sx];
  const __m512i s = _mm512_add_epi16(x0, x2), zero = _mm512_setzero_si512();
  const __m512i f = _mm512_add_epi16(x0, _mm512_slli_epi16(x2, 2));
  const __m512i t = _mm512_slli_epi16(x1, 1);
  y[0] = _mm512_add_epi16(_mm512_slli_epi16(x0, 2), _mm512_slli_epi16(x0, 1));
  y[sy] = _mm512_sub_epi16(zero, _mm512_slli_epi16(_mm512_add_epi16(s, x1), 2));
  y[2 * sy] = _mm512_sub_epi16(zero, _mm512_slli_epi16(_mm512_sub_epi16(s, x1), 2));
  y[3 * sy] = _mm512_add_epi16(f, t);
  y[4 * sy] = _mm512_sub_epi16(f, t);
  y[5 * sy] = _mm512_add_epi16(_mm512_slli_epi16(x2, 4), _mm512_slli_epi16(x2, 3));
}

// y = A^T x on int32 vectors, modulo 2^32.
inline void OutputTransform(const __m512i* x, int sx, __m512i* y, int sy) {
  const __m512i x0 = x[0], x5 = x[5 * sx];
  const __m512i s12 = _mm512_add_epi32(x[sx], x[2 * sx]), d12 = _mm512_sub_epi32(x[sx], x[2 * sx]);
  const __m512i s34 = _mm512_add_epi32(x[3 * sx], x[4 * sx]);
  const __m512i d34 = _mm512_sub_epi32(x[3 * sx], x[4 * sx]);
  y[0] = _mm512_add_epi32(_mm512_add_epi32(x0, s12), s34);
  y[sy] = _mm512_add_epi32(d12, _mm512_slli_epi32(d34, 1));
  y[2 * sy] = _mm512_add_epi32(s12, _mm512_slli_epi32(s34, 2));
  y[3 * sy] = _mm512_add_epi32(_mm512_add_epi32(d12, _mm512_slli_epi32(d34, 3)), x5);
}

// acc[r][j] over c channels (pairs) for R tiles of V (stride c) and the NT
// output tiles of U (a block's position: NT vectors per pair), stored to
// m[(r * NT + j) * 16].
template <int R, int NT>
inline void Products(const int16_t* v, int64_t vstride, const int16_t* u, int64_t c, int32_t* m) {
  __m512i acc[R][NT];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 4
    for (int j = 0; j < NT; ++j) acc[r][j] = _mm512_setzero_si512();
  }
  for (int64_t q = 0; q < c / 2; ++q) {
    __m512i b[NT];
#pragma GCC unroll 4
    for (int j = 0; j < NT; ++j) b[j] = _mm512_loadu_si512(u + (q * NT + j) * 32);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const __m512i a =
          _mm512_set1_epi32(LoadI32(v + r * vstride + 2 * q));
#pragma GCC unroll 4
      for (int j = 0; j < NT; ++j) acc[r][j] = _mm512_dpwssd_epi32(acc[r][j], a, b[j]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 4
    for (int j = 0; j < NT; ++j) _mm512_storeu_si512(m + (r * NT + j) * 16, acc[r][j]);
  }
}

// R tiles from x and NT output tiles from t: the 36 positions' products into
// m (in L1), then A^T M A and the division by 576 into the dot rows (tpr
// tiles to a band). U streams in per block (one contiguous run, WinogradU).
template <int R, int NT>
__attribute__((noinline)) void TileBlock(const int16_t* v, int64_t tpr, int64_t x, const int16_t* u,
                                         int64_t c, int64_t n_pad, int64_t t, int32_t* m,
                                         int32_t* dot) {
  constexpr int kM = R * NT * 16;
  for (int xi = 0; xi < 36; ++xi) {
    Products<R, NT>(v + (x * 36 + xi) * c, 36 * c, u + WinogradU(n_pad, c, t, xi, 0), c,
                    m + xi * kM);
  }
  const __m512i inv9 = _mm512_set1_epi32(static_cast<int32_t>(0x38E38E39u));
  for (int r = 0; r < R; ++r) {
    const int64_t band = (x + r) / tpr, col = (x + r) % tpr;
    int32_t* out = dot + (band * 4 * 4 * tpr + 4 * col) * n_pad + t * 16;
    for (int j = 0; j < NT; ++j) {
      // Columns first (each from its six products), then rows, each row's
      // four outputs divided and stored as they come.
      const int32_t* mj = m + (r * NT + j) * 16;
      __m512i tmp[24];
      for (int b = 0; b < 6; ++b) {
        __m512i col[6], t[4];
        for (int i = 0; i < 6; ++i) col[i] = _mm512_loadu_si512(mj + (6 * i + b) * kM);
        OutputTransform(col, 1, t, 1);
        for (int a = 0; a < 4; ++a) tmp[6 * a + b] = t[a];
      }
      for (int a = 0; a < 4; ++a) {
        __m512i y[4];
        OutputTransform(tmp + 6 * a, 1, y, 1);
        for (int q = 0; q < 4; ++q) {
          const __m512i yq = _mm512_mullo_epi32(_mm512_srai_epi32(y[q], 6), inv9);
          _mm512_storeu_si512(out + (a * 4 * tpr + q) * n_pad + j * 16, yq);
        }
      }
    }
  }
}

// Blocks of at most 6 tiles, as even as they come (14 tiles: 5, 5, 4), so
// no block is left with too few accumulators to hide vpdpwssd's latency.
template <int NT>
void DotsByBlock(const int16_t* v, int64_t tiles, int64_t tpr, const int16_t* u, int64_t c,
                 int64_t n_pad, int64_t t, int32_t* m, int32_t* dot) {
  using Block = void (*)(const int16_t*, int64_t, int64_t, const int16_t*, int64_t, int64_t,
                         int64_t, int32_t*, int32_t*);
  static constexpr Block kBlock[] = {nullptr,          TileBlock<1, NT>, TileBlock<2, NT>,
                                     TileBlock<3, NT>, TileBlock<4, NT>, TileBlock<5, NT>,
                                     TileBlock<6, NT>};
  const int64_t blocks = (tiles + 5) / 6;
  for (int64_t b = 0, x = 0; b < blocks; ++b) {
    const int64_t r = tiles / blocks + (b < tiles % blocks ? 1 : 0);
    kBlock[r](v, tpr, x, u, c, n_pad, t, m, dot);
    x += r;
  }
}

}  // namespace

void WinogradWeightsAvx512(const QLinearWeights& w, int64_t c, int64_t t0, int64_t t1, int16_t* u) {
  const int bits = w.bits, P = 8 / bits;
  const int64_t groups = w.steps() / P;
  const __m512i mask = _mm512_set1_epi8(static_cast<char>((1 << bits) - 1));
  const __m512i t0v = _mm512_set1_epi8(static_cast<char>(w.table[0]));
  // Lane 2 i + e of pair q: output i, channel 2 q + e, from the halves'
  // lanes 4 (i mod 8) + 2 q + e (outputs 0-7 in the first, 8-15 in the second).
  alignas(64) int16_t idx[2][32];
  for (int q = 0; q < 2; ++q) {
    for (int i = 0; i < 16; ++i) {
      for (int e = 0; e < 2; ++e)
        idx[q][2 * i + e] = static_cast<int16_t>((i / 8) * 32 + 4 * (i % 8) + 2 * q + e);
    }
  }
  const __m512i idx0 = _mm512_load_si512(idx[0]), idx1 = _mm512_load_si512(idx[1]);
  for (int64_t t = t0; t < t1; ++t) {
    for (int64_t c4 = 0; c4 < c / 4; ++c4) {
      // The nine taps' levels: byte 4 i + j for output i, channel 4 c4 + j.
      __m512i g[9];
      for (int tap = 0; tap < 9; ++tap) {
        const int64_t s = tap * c / 4 + c4;
        const __m512i raw = _mm512_loadu_si512(w.tiles.data() + (t * groups + s / P) * 64);
        g[tap] = _mm512_add_epi8(PlaneCodes(raw, bits, static_cast<int>(s % P), mask), t0v);
      }
      __m512i out[2][36];
      for (int h = 0; h < 2; ++h) {
        __m512i x[9], tmp[18];
        for (int tap = 0; tap < 9; ++tap) {
          x[tap] = _mm512_cvtepi8_epi16(h == 0 ? _mm512_castsi512_si256(g[tap])
                                               : _mm512_extracti64x4_epi64(g[tap], 1));
        }
        for (int k = 0; k < 3; ++k) WeightTransform(x + k, 3, tmp + k, 3);
        for (int r = 0; r < 6; ++r) WeightTransform(tmp + 3 * r, 1, out[h] + 6 * r, 1);
      }
      for (int xi = 0; xi < 36; ++xi) {
        _mm512_storeu_si512(u + WinogradU(w.n_pad, c, t, xi, 2 * c4),
                            _mm512_permutex2var_epi16(out[0][xi], idx0, out[1][xi]));
        _mm512_storeu_si512(u + WinogradU(w.n_pad, c, t, xi, 2 * c4 + 1),
                            _mm512_permutex2var_epi16(out[0][xi], idx1, out[1][xi]));
      }
    }
  }
}

void WinogradInputAvx512(const WinogradImage& im, int64_t ty, int64_t x0, int64_t x1, int16_t* v) {
  const int64_t c = im.c, y0 = 4 * ty - 1;
  const __m512i zero = _mm512_set1_epi16(im.zero);
  const bool rows_inside = y0 >= 0 && y0 + 6 <= im.h;
  for (int64_t x = x0; x < x1; ++x) {
    // Tiles inside the image load their pixels straight; border tiles check
    // each one.
    const int64_t xs = 4 * x - 1;
    const bool inside = rows_inside && xs >= 0 && xs + 6 <= im.w;
    for (int64_t c0 = 0; c0 < c; c0 += 32) {
      // Columns first (each straight from its six pixels), then rows, each
      // row's six values stored as they come.
      __m512i tmp[36];
      for (int b = 0; b < 6; ++b) {
        __m512i col[6], t[6];
        for (int a = 0; a < 6; ++a) {
          if (inside || (y0 + a >= 0 && y0 + a < im.h && xs + b >= 0 && xs + b < im.w)) {
            const uint8_t* px = im.data + ((y0 + a) * im.ws + xs + b) * c + c0;
            col[a] = _mm512_cvtepu8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(px)));
          } else {
            col[a] = zero;
          }
        }
        InputTransform(col, 1, t, 1);
        for (int i = 0; i < 6; ++i) tmp[6 * i + b] = t[i];
      }
      int16_t* dst = v + (x - x0) * 36 * c + c0;
      for (int i = 0; i < 6; ++i) {
        __m512i y[6];
        InputTransform(tmp + 6 * i, 1, y, 1);
        for (int j = 0; j < 6; ++j) _mm512_storeu_si512(dst + (6 * i + j) * c, y[j]);
      }
    }
  }
}

void WinogradDotsAvx512(const int16_t* v, int64_t tiles, int64_t tpr, const int16_t* u, int64_t c,
                        int64_t n_pad, int64_t t0, int64_t t1, int32_t* scratch, int32_t* dot) {
  using Outputs = void (*)(const int16_t*, int64_t, int64_t, const int16_t*, int64_t, int64_t,
                           int64_t, int32_t*, int32_t*);
  static constexpr Outputs kOutputs[] = {nullptr, DotsByBlock<1>, DotsByBlock<2>, DotsByBlock<3>,
                                         DotsByBlock<4>};
  for (int64_t t = t0; t < t1; t += 4) {
    kOutputs[std::min<int64_t>(4, t1 - t)](v, tiles, tpr, u, c, n_pad, t, scratch, dot);
  }
}

}  // namespace lowbit
