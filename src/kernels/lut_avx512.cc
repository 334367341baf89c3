// The table kernel on AVX-512 (BW, VBMI, VNNI): 64 lookups per vpshufb, four
// groups' tables side by side, one per 128-bit lane (lut.h). Compiled with
// AVX-512 flags for this file only.
//
// Per block of 64 index bytes: two nibble masks, and for each nibble two
// vpshufb (the entries' low and high bytes) and two vpunpck{l,h}bw giving
// int16 entries for rows 0-7 and 8-15 of each lane, added into int16
// accumulators, which are widened into int32 every kFlush blocks. At 2 bits
// (int8 activations, |entry| <= 512) the widened sum is nibble 0 + 2 *
// nibble 1, at most 3 * 512 * 16; at 1 bit (entries <= 1020 with uint8
// activations) nibble 0 + nibble 1, at most 2 * 1020 * 16 = 32640; both
// below 2^15.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "kernels/lut.h"

namespace lowbit {
namespace {

constexpr int64_t kFlush = 16;

// One row's tables (lut.h). Group L's 16 entries are one vpdpbusd of its 4
// activations (broadcast) with the constant whose dword m holds the bits of m
// as bytes 0/1; vpackssdw (exact: |T| <= 1020) and vpermt2b then gather the
// entries' low and high bytes. kSigned: int8 activations (plane layout, the
// bits are the unsigned operand); otherwise uint8 (table layout, the bits
// the signed one), whose sum the entries 15 give (returned; 0 for kSigned).
struct TableIndices {
  alignas(64) uint32_t bits[16];   // dword m: byte j = bit j of m
  alignas(64) uint8_t sel[2][64];  // [low or high bytes][output byte]
  TableIndices() {
    for (int m = 0; m < 16; ++m) {
      bits[m] = 0;
      for (int j = 0; j < 4; ++j) bits[m] |= static_cast<uint32_t>((m >> j) & 1) << (8 * j);
    }
    // vpackssdw(D0, D1) puts group 0's entry m at word 8 * (m / 4) + m % 4
    // and group 1's 4 words later; E1 = vpackssdw(D2, D3) is bytes 64-127.
    for (int o = 0; o < 64; ++o) {
      const int lane = o / 16, m = o % 16;
      const int word = 8 * (m / 4) + 4 * (lane % 2) + m % 4;
      const int byte = (lane < 2 ? 0 : 64) + 2 * word;
      sel[0][o] = static_cast<uint8_t>(byte);
      sel[1][o] = static_cast<uint8_t>(byte + 1);
    }
  }
};

template <bool kSigned>
int32_t BuildTables(const QLinearWeights& w, const uint8_t* x, const int32_t* off, uint8_t* tab) {
  static const TableIndices ti;
  const __m512i bits = _mm512_load_si512(ti.bits);
  const __m512i sel_lo = _mm512_load_si512(ti.sel[0]), sel_hi = _mm512_load_si512(ti.sel[1]);
  const __m512i zero = _mm512_setzero_si512();
  __m512i sum = zero;
  const int64_t steps = w.steps(), quads = LutQuads(w);
  for (int64_t q = 0; q < quads; ++q) {
    __m512i d[4];
    for (int lane = 0; lane < 4; ++lane) {
      const int64_t s = 4 * q + lane;
      int32_t a = 0;
      if (s < steps) std::memcpy(&a, x + off[s], 4);
      const __m512i xa = _mm512_set1_epi32(a);
      d[lane] = kSigned ? _mm512_dpbusd_epi32(zero, bits, xa) : _mm512_dpbusd_epi32(zero, xa, bits);
      if (!kSigned) sum = _mm512_add_epi32(sum, d[lane]);
    }
    const __m512i e0 = _mm512_packs_epi32(d[0], d[1]), e1 = _mm512_packs_epi32(d[2], d[3]);
    _mm512_storeu_si512(tab + q * 128, _mm512_permutex2var_epi8(e0, sel_lo, e1));
    _mm512_storeu_si512(tab + q * 128 + 64, _mm512_permutex2var_epi8(e0, sel_hi, e1));
  }
  // Entry 15 of each group's table is the sum of its 4 activations.
  return kSigned ? 0 : _mm_extract_epi32(_mm512_extracti32x4_epi32(sum, 3), 3);
}

// acc32 += the int16 lanes of s, widened (both 256-bit halves into the same
// 16 int32: element j holds row j % 8 of the half).
inline __m512i Widen(__m512i acc32, __m512i s) {
  acc32 = _mm512_add_epi32(acc32, _mm512_cvtepi16_epi32(_mm512_castsi512_si256(s)));
  return _mm512_add_epi32(acc32, _mm512_cvtepi16_epi32(_mm512_extracti64x4_epi64(s, 1)));
}

// Tile t's 16 dot products: map.scale * S + bias (lut.h).
template <int B>
void TileDot(const uint8_t* wt, int64_t blocks, const uint8_t* tab, LutMap map, int32_t bias,
             int32_t* dot) {
  const __m512i mask = _mm512_set1_epi8(0x0F);
  __m512i acc32[2] = {_mm512_setzero_si512(), _mm512_setzero_si512()};
  for (int64_t b0 = 0; b0 < blocks; b0 += kFlush) {
    __m512i a[2][2];  // [nibble][rows 0-7, rows 8-15]
    for (auto& n : a) n[0] = n[1] = _mm512_setzero_si512();
    const int64_t b1 = std::min(blocks, b0 + kFlush);
    for (int64_t b = b0; b < b1; ++b) {
      const __m512i v = _mm512_loadu_si512(wt + b * 64);
      const __m512i i[2] = {_mm512_and_si512(v, mask),
                            _mm512_and_si512(_mm512_srli_epi16(v, 4), mask)};
      for (int h = 0; h < 2; ++h) {
        const uint8_t* t = tab + 128 * (B == 2 ? b : 2 * b + h);
        const __m512i lo = _mm512_shuffle_epi8(_mm512_loadu_si512(t), i[h]);
        const __m512i hi = _mm512_shuffle_epi8(_mm512_loadu_si512(t + 64), i[h]);
        a[h][0] = _mm512_add_epi16(a[h][0], _mm512_unpacklo_epi8(lo, hi));
        a[h][1] = _mm512_add_epi16(a[h][1], _mm512_unpackhi_epi8(lo, hi));
      }
    }
    for (int half = 0; half < 2; ++half) {
      const __m512i s =
          _mm512_add_epi16(a[0][half], B == 2 ? _mm512_slli_epi16(a[1][half], 1) : a[1][half]);
      acc32[half] = Widen(acc32[half], s);
    }
  }
  const __m256i scale = _mm256_set1_epi32(map.scale), add = _mm256_set1_epi32(bias);
  for (int half = 0; half < 2; ++half) {
    const __m256i r = _mm256_add_epi32(_mm512_castsi512_si256(acc32[half]),
                                       _mm512_extracti64x4_epi64(acc32[half], 1));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dot + 8 * half),
                        _mm256_add_epi32(_mm256_mullo_epi32(r, scale), add));
  }
}

}  // namespace

void LutDotRowsAvx512(const QLinearWeights& w, const uint8_t* const* rows, const int32_t* step_off,
                      int64_t nrows, int32_t* dot, int64_t t0, int64_t t1) {
  const bool is_signed = w.signed_acts();
  LutDotRowsWith(
      w, rows, nrows, dot, t0, t1,
      [&](const uint8_t* x, uint8_t* tables) {
        return is_signed ? BuildTables<true>(w, x, step_off, tables)
                         : BuildTables<false>(w, x, step_off, tables);
      },
      [](auto bits, auto... args) { TileDot<decltype(bits)::value>(args...); });
}

}  // namespace lowbit
