// AVX-512 VNNI + VBMI dot products on packed codes of any width 1..8. Compiled
// with those extensions enabled for this file only; called only after
// KernelPathAvailable(kAvx512Vnni) said yes.
//
// Per (tile of 16 rows, step of 4 inputs): load 8*b bytes, move each row
// pair's b bytes into its own qword (vpermb), cut the eight b-bit codes of the
// pair out of that qword (vpmultishiftqb, then a mask), map codes to int8
// levels through the table (vpermb / vpermi2b), and multiply-accumulate with
// the four activation bytes broadcast to every lane (vpdpbusd). Eight
// independent accumulators (4 tiles x 2 steps) cover vpdpbusd's latency.
#include <immintrin.h>

#include "kernels/avx512_lanes.h"
#include "kernels/qlinear.h"
#include "kernels/unaligned.h"

namespace lowbit {
namespace {

struct Unpacker {
  __m512i spread, shifts, mask;
  __m512i t0, t1, t2, t3;  // table, 64 entries each
  __mmask64 load_mask;
  int bits;

  explicit Unpacker(const QLinearWeights& w) : bits(w.bits) {
    alignas(64) uint8_t sp[64], sh[64], tb[256] = {};
    for (int d = 0; d < 64; ++d) {
      const int p = d / 8, q = d % 8;
      sp[d] = static_cast<uint8_t>(p * bits + (q < bits ? q : 0));
      sh[d] = static_cast<uint8_t>(q * bits);
    }
    for (size_t i = 0; i < w.table.size(); ++i) tb[i] = static_cast<uint8_t>(w.table[i]);
    spread = _mm512_load_si512(sp);
    shifts = _mm512_load_si512(sh);
    mask = _mm512_set1_epi8(static_cast<char>((1 << bits) - 1));
    t0 = _mm512_load_si512(tb);
    t1 = _mm512_load_si512(tb + 64);
    t2 = _mm512_load_si512(tb + 128);
    t3 = _mm512_load_si512(tb + 192);
    load_mask = bits == 8 ? ~__mmask64{0} : ((__mmask64{1} << (8 * bits)) - 1);
  }

  // The 64 int8 weights of one (tile, step).
  inline __m512i Load(const uint8_t* p) const {
    __m512i codes;
    if (bits == 8) {
      codes = _mm512_loadu_si512(p);
    } else {
      const __m512i raw = _mm512_maskz_loadu_epi8(load_mask, p);
      const __m512i spreaded = _mm512_permutexvar_epi8(spread, raw);
      codes = _mm512_and_si512(_mm512_multishift_epi64_epi8(shifts, spreaded), mask);
    }
    if (bits <= 6) return _mm512_permutexvar_epi8(codes, t0);
    if (bits == 7) return _mm512_permutex2var_epi8(t0, codes, t1);
    // 8 bits: the low 7 bits index a 128-entry half chosen by the top bit.
    const __m512i lo = _mm512_permutex2var_epi8(t0, codes, t1);
    const __m512i hi = _mm512_permutex2var_epi8(t2, codes, t3);
    return _mm512_mask_blend_epi8(_mm512_movepi8_mask(codes), lo, hi);
  }
};

// acc + the products of a plane's weights wv and the activations x: codes
// are vpdpbusd's unsigned operand and int8 activations the signed one, or
// (L, level planes) the unpacked levels the signed operand and uint8
// activations the unsigned one.
template <bool L>
inline __m512i PlaneDot(__m512i acc, __m512i wv, __m512i x) {
  return L ? _mm512_dpbusd_epi32(acc, x, wv) : _mm512_dpbusd_epi32(acc, wv, x);
}

// Plane layout: each 64-byte load per tile yields P = 8 / B steps of weights
// (PlaneCodes). L (kLevelPlanes): the same tiles hold the codes of levels
// T[code] = code + T[0] (PlaneDot's operands swapped).
template <int B, bool L>
void PlanesDot(const QLinearWeights& w, const uint8_t* xq, int32_t* dot, int64_t t0, int64_t t1) {
  constexpr int P = 8 / B;
  const __m512i mask = _mm512_set1_epi8(static_cast<char>((1 << B) - 1));
  const __m512i t0v = _mm512_set1_epi8(static_cast<char>(w.table[0]));
  const int64_t groups = w.steps() / P;
  const int64_t tiles = t1;
  const uint8_t* base = w.tiles.data();
  auto plane = [&](__m512i v, int p) {
    const __m512i c = PlaneCodes(v, B, p, mask);
    return L ? _mm512_add_epi8(c, t0v) : c;
  };
  int64_t t = t0;
  for (; t + 4 <= tiles; t += 4) {
    __m512i acc[4][2];
    for (auto& a : acc) a[0] = a[1] = _mm512_setzero_si512();
    for (int64_t g = 0; g < groups; ++g) {
      __m512i v[4];
      for (int i = 0; i < 4; ++i) v[i] = _mm512_loadu_si512(base + ((t + i) * groups + g) * 64);
      for (int p = 0; p < P; ++p) {
        const __m512i x = _mm512_set1_epi32(LoadI32(xq + 4 * (g * P + p)));
        for (int i = 0; i < 4; ++i) acc[i][p & 1] = PlaneDot<L>(acc[i][p & 1], plane(v[i], p), x);
      }
    }
    for (int i = 0; i < 4; ++i) {
      _mm512_storeu_si512(dot + (t + i) * 16, _mm512_add_epi32(acc[i][0], acc[i][1]));
    }
  }
  for (; t < tiles; ++t) {
    __m512i a0 = _mm512_setzero_si512(), a1 = a0;
    for (int64_t g = 0; g < groups; ++g) {
      const __m512i v = _mm512_loadu_si512(base + (t * groups + g) * 64);
      for (int p = 0; p < P; ++p) {
        const __m512i x = _mm512_set1_epi32(LoadI32(xq + 4 * (g * P + p)));
        if (p & 1)
          a1 = PlaneDot<L>(a1, plane(v, p), x);
        else
          a0 = PlaneDot<L>(a0, plane(v, p), x);
      }
    }
    _mm512_storeu_si512(dot + t * 16, _mm512_add_epi32(a0, a1));
  }
}

// GEMV on 1- and 2-bit planes without shifting codes down: plane p's
// codes masked in place are code * 2^(B p), so each plane keeps its own
// accumulators and their sums are shifted down once at the end (exact: every
// product is a multiple of 2^(B p)). One vpandd per 64 weights instead of a
// shift and a mask (and, for level planes, an add). Level planes
// (L) make the codes vpdpbusd's signed operand, so the top plane, whose
// in-place codes pass 127, is shifted down (scale 1) and the levels' T[0] is
// added once per output as T[0] * sum(u) -- padded inputs hold the zero
// level's code -T[0], whose two terms cancel whatever byte they meet.
// Lanes stay inside int32 for up to kMaskedGemvMaxSteps steps of 4 inputs
// (4 * 255 * 128 per step); PlanesDotBits takes longer rows to PlanesDot.
constexpr int64_t kMaskedGemvMaxSteps = 16384;

template <int B, int NT, bool L>
inline void MaskedPlanesTiles(const uint8_t* base, int64_t groups, const uint8_t* xq, int32_t usum_t0,
                              int32_t* dot) {
  constexpr int P = 8 / B;
  __m512i acc[NT][P];
  for (auto& a : acc) {
    for (auto& c : a) c = _mm512_setzero_si512();
  }
  const uint8_t* tile[NT];
  for (int i = 0; i < NT; ++i) tile[i] = base + i * groups * 64;
  for (int64_t g = 0; g < groups; ++g) {
    __m512i v[NT];
    for (int i = 0; i < NT; ++i) v[i] = _mm512_loadu_si512(tile[i] + g * 64);
    for (int p = 0; p < P; ++p) {
      const __m512i x = _mm512_set1_epi32(LoadI32(xq + 4 * (g * P + p)));
      const bool down = L && p == P - 1;
      const __m512i m = _mm512_set1_epi8(static_cast<char>(((1 << B) - 1) << (down ? 0 : B * p)));
      for (int i = 0; i < NT; ++i) {
        const __m512i c = _mm512_and_si512(down ? _mm512_srli_epi16(v[i], B * p) : v[i], m);
        if (L) {
          DpbusdInPlace(acc[i][p], x, c);
        } else {
          DpbusdInPlace(acc[i][p], c, x);
        }
      }
    }
  }
  for (int i = 0; i < NT; ++i) {
    __m512i sum = _mm512_set1_epi32(usum_t0);
    for (int p = 0; p < P; ++p) {
      const bool down = L && p == P - 1;
      sum = _mm512_add_epi32(sum, _mm512_srai_epi32(acc[i][p], down ? 0 : B * p));
    }
    _mm512_storeu_si512(dot + i * 16, sum);
  }
}

template <int B, bool L>
void MaskedPlanesDot(const QLinearWeights& w, const uint8_t* xq, int32_t* dot, int64_t t0, int64_t t1) {
  constexpr int P = 8 / B;
  constexpr int NT = P == 8 ? 2 : 4;  // NT x P = 16 accumulators
  const int64_t groups = w.steps() / P;
  int32_t usum_t0 = 0;
  if (L) {
    int32_t usum = 0;
    for (int64_t i = 0; i < groups * P * 4; ++i) usum += xq[i];
    usum_t0 = usum * w.table[0];
  }
  const uint8_t* base = w.tiles.data();
  int64_t t = t0;
  for (; t + NT <= t1; t += NT) {
    MaskedPlanesTiles<B, NT, L>(base + t * groups * 64, groups, xq, usum_t0, dot + t * 16);
  }
  for (; t < t1; ++t) MaskedPlanesTiles<B, 1, L>(base + t * groups * 64, groups, xq, usum_t0, dot + t * 16);
}

template <bool L>
void PlanesDotBits(const QLinearWeights& w, const uint8_t* u, int32_t* dot, int64_t t0,
                   int64_t t1) {
  const bool masked = w.steps() <= kMaskedGemvMaxSteps;
  switch (w.bits) {
    case 1:
      return masked ? MaskedPlanesDot<1, L>(w, u, dot, t0, t1) : PlanesDot<1, L>(w, u, dot, t0, t1);
    case 2:
      return masked ? MaskedPlanesDot<2, L>(w, u, dot, t0, t1) : PlanesDot<2, L>(w, u, dot, t0, t1);
    case 4:  // masked, int4 ran 0.8x the shifting kernel (two planes: one shift saved per 128 weights)
      return PlanesDot<4, L>(w, u, dot, t0, t1);
    default:
      return PlanesDot<8, L>(w, u, dot, t0, t1);
  }
}

// R activation rows at once (GEMM): each unpacked weight vector feeds R
// vpdpbusd; NT tiles x R rows of accumulators stay in registers (the counts
// are compile-time so nothing spills).
// Rows come as R pointers plus per-step byte offsets (off[s] for inputs
// 4s..4s+3): dense rows (off[s] = 4s) and convolution windows read straight
// from an NHWC image (implicit GEMM) take the same path.
// L: level planes, as in PlanesDot.
template <int B, int R, int NT, bool L>
inline void PlanesDotBlock(const QLinearWeights& w, const uint8_t* const* xr, const int32_t* off,
                           int32_t* dot, int64_t ldd, int64_t t) {
  constexpr int P = 8 / B;
  const __m512i mask = _mm512_set1_epi8(static_cast<char>((1 << B) - 1));
  const __m512i t0v = _mm512_set1_epi8(static_cast<char>(w.table[0]));
  const int64_t groups = w.steps() / P;
  const uint8_t* base = w.tiles.data();
  __m512i acc[NT][R];
  for (int i = 0; i < NT; ++i) {
    for (int r = 0; r < R; ++r) acc[i][r] = _mm512_setzero_si512();
  }
  for (int64_t g = 0; g < groups; ++g) {
    __m512i v[NT];
    for (int i = 0; i < NT; ++i) v[i] = _mm512_loadu_si512(base + ((t + i) * groups + g) * 64);
    for (int p = 0; p < P; ++p) {
      __m512i wv[NT];
      for (int i = 0; i < NT; ++i) {
        wv[i] = PlaneCodes(v[i], B, p, mask);
        if (L) wv[i] = _mm512_add_epi8(wv[i], t0v);
      }
      const int32_t o = off[g * P + p];
      for (int r = 0; r < R; ++r) {
        const __m512i x = _mm512_set1_epi32(LoadI32(xr[r] + o));
        for (int i = 0; i < NT; ++i) acc[i][r] = PlaneDot<L>(acc[i][r], wv[i], x);
      }
    }
  }
  for (int i = 0; i < NT; ++i) {
    for (int r = 0; r < R; ++r) _mm512_storeu_si512(dot + r * ldd + (t + i) * 16, acc[i][r]);
  }
}

// The last 1-3 tiles in one block: each broadcast activation still feeds
// every tile (a filter-wise format's few tiles, 130 outputs, ...). Kept out
// of line: inlined, it costs the main loop's code quality (measured 15%).
template <int B, int R, bool L>
__attribute__((noinline)) void PlanesDotTail(const QLinearWeights& w, const uint8_t* const* xr,
                                             const int32_t* off, int32_t* dot, int64_t ldd,
                                             int64_t t, int64_t n) {
  switch (n) {
    case 3:
      PlanesDotBlock<B, R, 3, L>(w, xr, off, dot, ldd, t);
      break;
    case 2:
      PlanesDotBlock<B, R, 2, L>(w, xr, off, dot, ldd, t);
      break;
    default:
      PlanesDotBlock<B, R, 1, L>(w, xr, off, dot, ldd, t);
      break;
  }
}

template <int B, int R, bool L>
void PlanesDotRows(const QLinearWeights& w, const uint8_t* const* xr, const int32_t* off,
                   int32_t* dot, int64_t ldd, int64_t t0, int64_t t1) {
  int64_t t = t0;
  for (; t + 4 <= t1; t += 4) PlanesDotBlock<B, R, 4, L>(w, xr, off, dot, ldd, t);
  if (t < t1) PlanesDotTail<B, R, L>(w, xr, off, dot, ldd, t, t1 - t);
}

// Layers of one or two output tiles, where 4-row blocks would leave too few
// accumulator chains to hide vpdpbusd's latency: NT tiles x R rows per block,
// then blocks of H rows, then single rows.
// - One tile (16 outputs: a small layer, or a filter-wise format's few
//   filters): R = 8, H = 4 (8 chains; 4 rows x 1 tile would leave 4).
// - Two tiles (17-32 outputs: MobileNet's 24- and 32-channel projections):
//   R = 6, H = 2 (12 chains; each unpacked weight vector feeds 6 vpdpbusd).
template <int B, int NT, int R, int H, bool L>
__attribute__((noinline)) void PlanesDotFewTiles(const QLinearWeights& w, const uint8_t* const* xr,
                                                 const int32_t* off, int64_t rows, int32_t* dot,
                                                 int64_t t) {
  const int64_t ldd = w.n_pad;
  int64_t r = 0;
  for (; r + R <= rows; r += R) PlanesDotBlock<B, R, NT, L>(w, xr + r, off, dot + r * ldd, ldd, t);
  for (; r + H <= rows; r += H) PlanesDotBlock<B, H, NT, L>(w, xr + r, off, dot + r * ldd, ldd, t);
  for (; r < rows; ++r) PlanesDotBlock<B, 1, NT, L>(w, xr + r, off, dot + r * ldd, ldd, t);
}

template <int B, bool L>
void PlanesDotBatch(const QLinearWeights& w, const uint8_t* const* xr, const int32_t* off,
                    int64_t rows, int32_t* dot, int64_t t0, int64_t t1) {
  if (t1 - t0 == 1) {
    PlanesDotFewTiles<B, 1, 8, 4, L>(w, xr, off, rows, dot, t0);
    return;
  }
  if (t1 - t0 == 2) {
    PlanesDotFewTiles<B, 2, 6, 2, L>(w, xr, off, rows, dot, t0);
    return;
  }
  const int64_t ldd = w.n_pad;
  int64_t r = 0;
  for (; r + 4 <= rows; r += 4) PlanesDotRows<B, 4, L>(w, xr + r, off, dot + r * ldd, ldd, t0, t1);
  for (; r + 2 <= rows; r += 2) PlanesDotRows<B, 2, L>(w, xr + r, off, dot + r * ldd, ldd, t0, t1);
  if (r < rows) PlanesDotRows<B, 1, L>(w, xr + r, off, dot + r * ldd, ldd, t0, t1);
}

// PlanesDotBatch and PlanesDot for w's width.
template <bool L>
void PlanesDotBatchBits(const QLinearWeights& w, const uint8_t* const* xr, const int32_t* off,
                        int64_t rows, int32_t* dot, int64_t t0, int64_t t1) {
  switch (w.bits) {
    case 1:
      return PlanesDotBatch<1, L>(w, xr, off, rows, dot, t0, t1);
    case 2:
      return PlanesDotBatch<2, L>(w, xr, off, rows, dot, t0, t1);
    case 4:
      return PlanesDotBatch<4, L>(w, xr, off, rows, dot, t0, t1);
    default:
      return PlanesDotBatch<8, L>(w, xr, off, rows, dot, t0, t1);
  }
}

template <int R, int NT>
inline void TableDotBlock(const QLinearWeights& w, const Unpacker& up, const uint8_t* const* xr,
                          const int32_t* off, int32_t* dot, int64_t ldd, int64_t t) {
  const int64_t steps = w.steps(), tb = w.tile_bytes();
  const uint8_t* base = w.tiles.data();
  __m512i acc[NT][R];
  for (int i = 0; i < NT; ++i) {
    for (int r = 0; r < R; ++r) acc[i][r] = _mm512_setzero_si512();
  }
  for (int64_t s = 0; s < steps; ++s) {
    __m512i wv[NT];
    for (int i = 0; i < NT; ++i) wv[i] = up.Load(base + ((t + i) * steps + s) * tb);
    for (int r = 0; r < R; ++r) {
      const __m512i x = _mm512_set1_epi32(LoadI32(xr[r] + off[s]));
      for (int i = 0; i < NT; ++i) acc[i][r] = _mm512_dpbusd_epi32(acc[i][r], x, wv[i]);
    }
  }
  for (int i = 0; i < NT; ++i) {
    for (int r = 0; r < R; ++r) _mm512_storeu_si512(dot + r * ldd + (t + i) * 16, acc[i][r]);
  }
}

template <int R>
void TableDotRows(const QLinearWeights& w, const Unpacker& up, const uint8_t* const* xr,
                  const int32_t* off, int32_t* dot, int64_t ldd, int64_t t0, int64_t t1) {
  int64_t t = t0;
  for (; t + 4 <= t1; t += 4) TableDotBlock<R, 4>(w, up, xr, off, dot, ldd, t);
  for (; t < t1; ++t) TableDotBlock<R, 1>(w, up, xr, off, dot, ldd, t);
}

}  // namespace

void QLinearDotRowsAvx512Vnni(const QLinearWeights& w, const uint8_t* const* rows,
                              const int32_t* step_off, int64_t nrows, int32_t* dot, int64_t t0,
                              int64_t t1) {
  if (w.layout == QLinearWeights::Layout::kPlanes) {
    PlanesDotBatchBits<false>(w, rows, step_off, nrows, dot, t0, t1);
    return;
  }
  if (w.layout == QLinearWeights::Layout::kLevelPlanes) {
    PlanesDotBatchBits<true>(w, rows, step_off, nrows, dot, t0, t1);
    return;
  }
  const Unpacker up(w);
  const int64_t ldd = w.n_pad;
  int64_t r = 0;
  for (; r + 4 <= nrows; r += 4) TableDotRows<4>(w, up, rows + r, step_off, dot + r * ldd, ldd, t0, t1);
  for (; r < nrows; ++r) TableDotRows<1>(w, up, rows + r, step_off, dot + r * ldd, ldd, t0, t1);
}

void QLinearDotAvx512Vnni(const QLinearWeights& w, const uint8_t* u, int32_t* dot, int64_t t0,
                          int64_t t1) {
  if (w.layout == QLinearWeights::Layout::kPlanes) {
    PlanesDotBits<false>(w, u, dot, t0, t1);
    return;
  }
  if (w.layout == QLinearWeights::Layout::kLevelPlanes) {
    PlanesDotBits<true>(w, u, dot, t0, t1);
    return;
  }
  const Unpacker up(w);
  const int64_t steps = w.steps();
  const int64_t tb = w.tile_bytes();
  const int64_t tiles = t1;
  const uint8_t* base = w.tiles.data();
  int64_t t = t0;
  for (; t + 4 <= tiles; t += 4) {
    __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
    __m512i b0 = a0, b1 = a0, b2 = a0, b3 = a0;
    const uint8_t* p0 = base + (t + 0) * steps * tb;
    const uint8_t* p1 = base + (t + 1) * steps * tb;
    const uint8_t* p2 = base + (t + 2) * steps * tb;
    const uint8_t* p3 = base + (t + 3) * steps * tb;
    int64_t s = 0;
    for (; s + 2 <= steps; s += 2) {
      const __m512i x0 = _mm512_set1_epi32(LoadI32(u + 4 * s));
      const __m512i x1 = _mm512_set1_epi32(LoadI32(u + 4 * s + 4));
      a0 = _mm512_dpbusd_epi32(a0, x0, up.Load(p0 + s * tb));
      a1 = _mm512_dpbusd_epi32(a1, x0, up.Load(p1 + s * tb));
      a2 = _mm512_dpbusd_epi32(a2, x0, up.Load(p2 + s * tb));
      a3 = _mm512_dpbusd_epi32(a3, x0, up.Load(p3 + s * tb));
      b0 = _mm512_dpbusd_epi32(b0, x1, up.Load(p0 + (s + 1) * tb));
      b1 = _mm512_dpbusd_epi32(b1, x1, up.Load(p1 + (s + 1) * tb));
      b2 = _mm512_dpbusd_epi32(b2, x1, up.Load(p2 + (s + 1) * tb));
      b3 = _mm512_dpbusd_epi32(b3, x1, up.Load(p3 + (s + 1) * tb));
    }
    if (s < steps) {
      const __m512i x0 = _mm512_set1_epi32(LoadI32(u + 4 * s));
      a0 = _mm512_dpbusd_epi32(a0, x0, up.Load(p0 + s * tb));
      a1 = _mm512_dpbusd_epi32(a1, x0, up.Load(p1 + s * tb));
      a2 = _mm512_dpbusd_epi32(a2, x0, up.Load(p2 + s * tb));
      a3 = _mm512_dpbusd_epi32(a3, x0, up.Load(p3 + s * tb));
    }
    _mm512_storeu_si512(dot + (t + 0) * 16, _mm512_add_epi32(a0, b0));
    _mm512_storeu_si512(dot + (t + 1) * 16, _mm512_add_epi32(a1, b1));
    _mm512_storeu_si512(dot + (t + 2) * 16, _mm512_add_epi32(a2, b2));
    _mm512_storeu_si512(dot + (t + 3) * 16, _mm512_add_epi32(a3, b3));
  }
  for (; t < tiles; ++t) {
    __m512i a = _mm512_setzero_si512(), b = a;
    const uint8_t* p = base + t * steps * tb;
    int64_t s = 0;
    for (; s + 2 <= steps; s += 2) {
      a = _mm512_dpbusd_epi32(a, _mm512_set1_epi32(LoadI32(u + 4 * s)),
                              up.Load(p + s * tb));
      b = _mm512_dpbusd_epi32(b, _mm512_set1_epi32(LoadI32(u + 4 * s + 4)),
                              up.Load(p + (s + 1) * tb));
    }
    if (s < steps) {
      a = _mm512_dpbusd_epi32(a, _mm512_set1_epi32(LoadI32(u + 4 * s)),
                              up.Load(p + s * tb));
    }
    _mm512_storeu_si512(dot + t * 16, _mm512_add_epi32(a, b));
  }
}

}  // namespace lowbit
