// 256-bit dot products for the plane layout (uniform grids at 1, 2, 4, 8
// bits) and for table layouts (w.avx2.nibbles at up to 4 bits, looked up by
// vpshufb; w.avx2.level_bytes at 5-8 bits), for CPUs without AVX-512. One body,
// compiled twice (see the including files):
//   qlinear_avx2.cc     -mavx2: vpmaddubsw (u8 x s8 pairs into int16) and
//                       vpmaddwd with ones (the pairs into one int32 per row);
//   qlinear_avxvnni.cc  -mavx2 -mavxvnni: vpdpbusd on ymm (AVX-VNNI, VEX
//                       encoded), four u8 x s8 products into int32 at once.
// The including file defines LOWBIT_AVX2_DOT_ROWS, the entry point's name.
//
// A tile's 64 bytes per group are two ymm (rows 0-7, rows 8-15; 4 bytes per
// row). Plane p is (v >> B*p) & mask: unsigned codes <= 15, so vpmaddubsw
// cannot saturate (2 * 15 * 128 < 2^15). Without VNNI, 8-bit codes are split
// into nibbles (lo + 16 * hi) for the same reason; vpdpbusd adds in int32 and
// takes them whole. Results equal the scalar reference exactly.
#include <immintrin.h>

#include <algorithm>
#include <cstdlib>
#include <type_traits>

#include "kernels/qlinear.h"
#include "kernels/unaligned.h"

#ifndef LOWBIT_AVX2_DOT_ROWS
#error "define LOWBIT_AVX2_DOT_ROWS before including qlinear_avx2_inl.h"
#endif

namespace lowbit {
namespace {

#if defined(__AVXVNNI__)
constexpr bool kVnni = true;
#else
constexpr bool kVnni = false;
#endif

// acc + the four-term dot products of unsigned bytes u and signed bytes s
// per int32 lane.
inline __m256i DotQuad(__m256i acc, __m256i u, __m256i s) {
#if defined(__AVXVNNI__)
  return _mm256_dpbusd_avx_epi32(acc, u, s);
#else
  return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)));
#endif
}

// Independent accumulator sets a tile of R rows alternates between, step by
// step: vpdpbusd adds into its accumulator (latency ~5 cycles), so a single
// row's two accumulators would leave it waiting; vpmaddubsw's partial
// products are added with 1-cycle vpaddd.
template <int R>
constexpr int kSets = kVnni&& R == 1 ? 2 : 1;

template <int S, int R>
inline void ZeroSets(__m256i (&acc)[S][R][2]) {
  for (auto& set : acc) {
    for (int r = 0; r < R; ++r) set[r][0] = set[r][1] = _mm256_setzero_si256();
  }
}

// Adds sets 1.. of acc into set 0.
template <int S, int R>
inline void MergeSets(__m256i (&acc)[S][R][2]) {
  for (int s = 1; s < S; ++s) {
    for (int r = 0; r < R; ++r) {
      acc[0][r][0] = _mm256_add_epi32(acc[0][r][0], acc[s][r][0]);
      acc[0][r][1] = _mm256_add_epi32(acc[0][r][1], acc[s][r][1]);
    }
  }
}

// The two ymm of a tile's 64 bytes at p: rows 0-7, then rows 8-15.
inline void LoadTileHalves(const void* p, __m256i* lo, __m256i* hi) {
  *lo = _mm256_loadu_si256(static_cast<const __m256i*>(p));
  *hi = _mm256_loadu_si256(static_cast<const __m256i*>(p) + 1);
}

// Tile t's 16 dot products of R rows (two ymm each), to rows of ldd.
template <int R>
inline void StoreTile(const __m256i (&acc)[R][2], int32_t* dot, int64_t ldd, int64_t t) {
  for (int r = 0; r < R; ++r) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dot + r * ldd + t * 16), acc[r][0]);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dot + r * ldd + t * 16 + 8), acc[r][1]);
  }
}

// R rows (pointers + per-step offsets) x one tile of 16 outputs.
template <int B, int R>
inline void PlanesTile(const QLinearWeights& w, const uint8_t* const* xr, const int32_t* off,
                       int32_t* dot, int64_t ldd, int64_t t) {
  constexpr int P = 8 / B;
  constexpr bool kSplit8 = B == 8 && !kVnni;
  const __m256i mask = _mm256_set1_epi8(static_cast<char>(B == 8 ? 0x0F : (1 << B) - 1));
  const int64_t groups = w.steps() / P;
  const uint8_t* base = w.tiles.data() + t * groups * 64;
  constexpr int S = kSets<R>;
  __m256i sets[S][R][2];
  ZeroSets(sets);
  for (int64_t g = 0; g < groups; ++g) {
    __m256i v0, v1;
    LoadTileHalves(base + g * 64, &v0, &v1);
    for (int p = 0; p < P; ++p) {
      __m256i(&acc)[R][2] = sets[(g * P + p) % S];
      __m256i w0, w1, h0 = _mm256_setzero_si256(), h1 = h0;
      if (B == 8 && kVnni) {
        w0 = v0;
        w1 = v1;
      } else if (kSplit8) {
        w0 = _mm256_and_si256(v0, mask);
        w1 = _mm256_and_si256(v1, mask);
        h0 = _mm256_and_si256(_mm256_srli_epi16(v0, 4), mask);
        h1 = _mm256_and_si256(_mm256_srli_epi16(v1, 4), mask);
      } else {
        w0 = _mm256_and_si256(p == 0 ? v0 : _mm256_srli_epi16(v0, B * p), mask);
        w1 = _mm256_and_si256(p == 0 ? v1 : _mm256_srli_epi16(v1, B * p), mask);
      }
      const int32_t o = off[g * P + p];
      for (int r = 0; r < R; ++r) {
        const __m256i x = _mm256_set1_epi32(LoadI32(xr[r] + o));
        acc[r][0] = DotQuad(acc[r][0], w0, x);
        acc[r][1] = DotQuad(acc[r][1], w1, x);
        if (kSplit8) {
          const __m256i zero = _mm256_setzero_si256();
          acc[r][0] = _mm256_add_epi32(acc[r][0], _mm256_slli_epi32(DotQuad(zero, h0, x), 4));
          acc[r][1] = _mm256_add_epi32(acc[r][1], _mm256_slli_epi32(DotQuad(zero, h1, x), 4));
        }
      }
    }
  }
  MergeSets(sets);
  StoreTile<R>(sets[0], dot, ldd, t);
}

// One step of 4 inputs for R rows: w0/w1 are the 64 int8 levels of the
// tile's rows 0-7 and 8-15, and vpmaddubsw multiplies the uint8 activations
// by them. Pairs sum to at most 2 * 255 * max|T|, which fits int16 when
// max|T| <= 64; otherwise (kSplit, never with VNNI) the activations go in as
// nibbles, lo + 16 * hi.
template <int R, bool kSplit>
inline void TableStep(__m256i (&acc)[R][2], __m256i w0, __m256i w1, const uint8_t* const* xr,
                      int32_t o) {
  const __m256i mask = _mm256_set1_epi8(0x0F);
  for (int r = 0; r < R; ++r) {
    const __m256i x = _mm256_set1_epi32(LoadI32(xr[r] + o));
    if (!kSplit) {
      acc[r][0] = DotQuad(acc[r][0], x, w0);
      acc[r][1] = DotQuad(acc[r][1], x, w1);
      continue;
    }
    const __m256i zero = _mm256_setzero_si256();
    const __m256i lo = _mm256_and_si256(x, mask),
                  hi = _mm256_and_si256(_mm256_srli_epi16(x, 4), mask);
    acc[r][0] =
        _mm256_add_epi32(DotQuad(acc[r][0], lo, w0), _mm256_slli_epi32(DotQuad(zero, hi, w0), 4));
    acc[r][1] =
        _mm256_add_epi32(DotQuad(acc[r][1], lo, w1), _mm256_slli_epi32(DotQuad(zero, hi, w1), 4));
  }
}

// Table layout at <= 4 bits (w.avx2.nibbles): vpshufb maps each step's 64 codes,
// one nibble per byte, to the int8 levels.
template <int R, bool kSplit>
inline void NibbleTile(const QLinearWeights& w, __m256i table, const uint8_t* const* xr,
                       const int32_t* off, int32_t* dot, int64_t ldd, int64_t t) {
  const __m256i mask = _mm256_set1_epi8(0x0F);
  const int64_t steps = w.steps(), groups = (steps + 1) / 2;
  const uint8_t* base = w.avx2.nibbles.data() + t * groups * 64;
  constexpr int S = kSets<R>;
  __m256i sets[S][R][2];
  ZeroSets(sets);
  for (int64_t g = 0; g < groups; ++g) {
    __m256i v0, v1;
    LoadTileHalves(base + g * 64, &v0, &v1);
    for (int p = 0; p < 2 && 2 * g + p < steps; ++p) {
      const __m256i w0 = _mm256_shuffle_epi8(
          table, _mm256_and_si256(p == 0 ? v0 : _mm256_srli_epi16(v0, 4), mask));
      const __m256i w1 = _mm256_shuffle_epi8(
          table, _mm256_and_si256(p == 0 ? v1 : _mm256_srli_epi16(v1, 4), mask));
      TableStep<R, kSplit>(sets[p % S], w0, w1, xr, off[2 * g + p]);
    }
  }
  MergeSets(sets);
  StoreTile<R>(sets[0], dot, ldd, t);
}

// Table layout at 5-8 bits (w.avx2.level_bytes): the levels are read as they are.
template <int R, bool kSplit>
inline void LevelTile(const QLinearWeights& w, const uint8_t* const* xr, const int32_t* off,
                      int32_t* dot, int64_t ldd, int64_t t) {
  const int64_t steps = w.steps();
  const int8_t* base = w.avx2.level_bytes.data() + t * steps * 64;
  constexpr int S = kSets<R>;
  __m256i sets[S][R][2];
  ZeroSets(sets);
  for (int64_t s = 0; s < steps; ++s) {
    __m256i w0, w1;
    LoadTileHalves(base + s * 64, &w0, &w1);
    TableStep<R, kSplit>(sets[s % S], w0, w1, xr, off[s]);
  }
  MergeSets(sets);
  StoreTile<R>(sets[0], dot, ldd, t);
}

template <bool kNibbles, bool kSplit>
void TableRows(const QLinearWeights& w, const uint8_t* const* xr, const int32_t* off, int64_t rows,
               int32_t* dot, int64_t t0, int64_t t1) {
  alignas(16) int8_t t16[16] = {};
  if (kNibbles) std::copy(w.table.begin(), w.table.end(), t16);
  const __m256i table =
      _mm256_broadcastsi128_si256(_mm_load_si128(reinterpret_cast<const __m128i*>(t16)));
  auto tile = [&](auto r_const, int64_t r, int64_t t) {
    constexpr int R = decltype(r_const)::value;
    if (kNibbles) {
      NibbleTile<R, kSplit>(w, table, xr + r, off, dot + r * w.n_pad, w.n_pad, t);
    } else {
      LevelTile<R, kSplit>(w, xr + r, off, dot + r * w.n_pad, w.n_pad, t);
    }
  };
  int64_t r = 0;
  for (; r + 4 <= rows; r += 4) {
    for (int64_t t = t0; t < t1; ++t) tile(std::integral_constant<int, 4>(), r, t);
  }
  for (; r < rows; ++r) {
    for (int64_t t = t0; t < t1; ++t) tile(std::integral_constant<int, 1>(), r, t);
  }
}

template <int B>
void PlanesRows(const QLinearWeights& w, const uint8_t* const* xr, const int32_t* off, int64_t rows,
                int32_t* dot, int64_t t0, int64_t t1) {
  const int64_t ldd = w.n_pad;
  int64_t r = 0;
  for (; r + 4 <= rows; r += 4) {
    for (int64_t t = t0; t < t1; ++t) PlanesTile<B, 4>(w, xr + r, off, dot + r * ldd, ldd, t);
  }
  for (; r < rows; ++r) {
    for (int64_t t = t0; t < t1; ++t) PlanesTile<B, 1>(w, xr + r, off, dot + r * ldd, ldd, t);
  }
}

}  // namespace

void LOWBIT_AVX2_DOT_ROWS(const QLinearWeights& w, const uint8_t* const* rows,
                          const int32_t* step_off, int64_t nrows, int32_t* dot, int64_t t0,
                          int64_t t1) {
  if (w.layout == QLinearWeights::Layout::kTable) {
    const bool nibbles = !w.avx2.nibbles.empty(), split = w.avx2.split && !kVnni;
    if (nibbles && !split) TableRows<true, false>(w, rows, step_off, nrows, dot, t0, t1);
    if (nibbles && split) TableRows<true, true>(w, rows, step_off, nrows, dot, t0, t1);
    if (!nibbles && !split) TableRows<false, false>(w, rows, step_off, nrows, dot, t0, t1);
    if (!nibbles && split) TableRows<false, true>(w, rows, step_off, nrows, dot, t0, t1);
    return;
  }
  switch (w.bits) {
    case 1:
      PlanesRows<1>(w, rows, step_off, nrows, dot, t0, t1);
      return;
    case 2:
      PlanesRows<2>(w, rows, step_off, nrows, dot, t0, t1);
      return;
    case 4:
      PlanesRows<4>(w, rows, step_off, nrows, dot, t0, t1);
      return;
    default:
      PlanesRows<8>(w, rows, step_off, nrows, dot, t0, t1);
      return;
  }
}

}  // namespace lowbit
