// The bit-serial table-lookup kernel (T-MAC style) for 1- and 2-bit weights:
// instead of multiplying, each group of 4 activations gets a table of its 16
// partial sums, and every weight bit plane picks entries with vpshufb. Its
// cost is one lookup per bit plane, so it falls with every bit removed, while
// the vpdpbusd kernels cost the same at 1, 2, 4 and 8 bits.
//
// It runs the plane layout at 1 and 2 bits (int8 activations xq) and the
// table layout at 1 bit (uint8 activations u; int1's levels -1 and +1): any
// two levels are an affine map of the code, T[c] = T[0] + c * (T[1] - T[0]).
//
// Arithmetic (exact; equals QLinearDotRef's int32 dot products):
//   code(n, k) = sum_p 2^p * bit_p(n, k)            (p < bits, unsigned codes)
//   S[n]       = sum_p 2^p * sum_g T_g[m_p(n, g)]
//   T_g[m]     = sum_{j < 4, bit j of m} a[4g + j]   (a = xq or u: |T| <= 1020)
//   m_p(n, g)  = sum_j bit_p(n, 4g + j) << j          (a 4-bit index)
//   dot[n]     = S[n]                                  (plane layout)
//              = (T[1] - T[0]) * S[n] + T[0] * usum    (table layout, usum = sum u)
//
// Weight layout (w.lut.index, made at load time from the row-major codes): output
// rows in tiles of 16, inputs in quads of 16 (4 groups). One block of 64 bytes
// per (tile, block), blocks tile-major: tile t, block b at (t * LutBlocks + b)
// * 64. Byte 16 * L + i holds two indices for row i of the tile and group
// 4q + L (L = 0..3, one 128-bit lane each):
//   2 bits: block b = quad q; low nibble m_0, high nibble m_1;
//   1 bit:  block b = quads 2b (low nibble) and 2b + 1 (high nibble).
// Inputs are padded with code 0 (no bit set) to a whole number of blocks
// (LutQuads); steps past w.steps() read as activations 0.
//
// Tables (per activation row, built by the kernels into scratch): per quad q,
// 128 bytes: the low bytes of the 64 int16 entries (lane L = T_{4q+L}[0..15]),
// then their high bytes. vpshufb on a lane looks up its own group's table.
#ifndef LOWBIT_KERNELS_LUT_H_
#define LOWBIT_KERNELS_LUT_H_

#include <cstdint>
#include <type_traits>

#include "kernels/kernel_path.h"
#include "kernels/qlinear_weights.h"

namespace lowbit {

// Whether w can run the table kernel: the plane layout at 1 or 2 bits, the
// table layout at 1 bit.
bool LutEligible(const QLinearWeights& w);
// Fills w->lut and sets w->lut.max_rows (LutEligible must hold).
void PrepareLut(QLinearWeights* w, int64_t max_rows = INT64_MAX);

// The rule (bench/lut_bench; BENCHMARKS.md, "Bit-serial table kernel"): the
// table kernel's tables are built per activation row and only pay off over
// many output tiles, while the product kernels reuse each unpacked weight
// across 4 rows. So it runs 1-bit weights with at least 256 outputs
// (AVX-512) or 1024 (256-bit paths), for calls of at most LutRows(path) rows
// (on AVX-VNNI, whose ymm vpdpbusd product kernel is the strongest relative
// to the lookups, 2), and never 2-bit weights (the vpdpbusd kernels are
// 1.6x faster there).
inline int64_t LutRows(KernelPath path) { return KernelPathLutRows(path); }
// How many rows per call a plan on `path` gives w the table kernel for (0:
// never). KernelRule::kOn (LOWBIT_LUT=on): every eligible weight on a SIMD
// path, for any number of rows; kOff: never; kAuto: the rule.
int64_t LutMaxRows(const QLinearWeights& w, KernelPath path, KernelRule rule = KernelRule::kAuto);

// Quads of 16 inputs the layout covers (an even number at 1 bit), blocks of
// 64 index bytes per tile, and bytes of table scratch for one activation row.
inline int64_t LutQuads(const QLinearWeights& w) {
  const int64_t quads = (w.steps() + 3) / 4;
  return w.bits == 1 ? (quads + 1) / 2 * 2 : quads;
}
inline int64_t LutBlocks(const QLinearWeights& w) {
  return w.bits == 2 ? LutQuads(w) : LutQuads(w) / 2;
}
inline int64_t LutTableBytes(const QLinearWeights& w) { return LutQuads(w) * 128; }

// dot = scale * S + offset * usum (the arithmetic above).
struct LutMap {
  int32_t scale = 1, offset = 0;
};
LutMap LutMapOf(const QLinearWeights& w);

// Builds one row's tables (LutTableBytes) from its activations (int8 for the
// plane layout, uint8 for the table layout), read in the row-pointer form
// (inputs 4s..4s+3 at x + step_off[s]); returns their sum.
int32_t BuildLutTablesRef(const QLinearWeights& w, const uint8_t* x, const int32_t* step_off,
                          uint8_t* tables);
// The scalar reference of the lookups: tile t's 16 sums S from tables.
void LutSumTileRef(const QLinearWeights& w, const uint8_t* tables, int64_t t, int32_t* sums);

// The row-pointer form of QLinearDotRows on w.lut.index (dot is nrows x n_pad,
// tiles [t0, t1)).
void LutDotRowsRef(const QLinearWeights& w, const uint8_t* const* rows, const int32_t* step_off,
                   int64_t nrows, int32_t* dot, int64_t t0, int64_t t1);
// This thread's table scratch of at least `bytes` bytes (kept and reused).
// Defined in lut.cc, so the SIMD files instantiate no std::vector code of
// their own: the linker keeps one copy of such inline functions, possibly
// one compiled for AVX-512.
uint8_t* LutScratch(int64_t bytes);

// The driver both SIMD bodies share: for each row, build(x, tables) builds
// its tables and returns the activations' sum; tile<B>(weights, blocks,
// tables, map, bias, dot) computes one tile's 16 dot products (B = 1, 2
// given as std::integral_constant).
template <typename Build, typename Tile>
void LutDotRowsWith(const QLinearWeights& w, const uint8_t* const* rows, int64_t nrows,
                    int32_t* dot, int64_t t0, int64_t t1, Build build, Tile tile) {
  uint8_t* const tables = LutScratch(LutTableBytes(w));
  const int64_t blocks = LutBlocks(w);
  const LutMap map = LutMapOf(w);
  for (int64_t r = 0; r < nrows; ++r) {
    const int32_t bias = map.offset * build(rows[r], tables);
    for (int64_t t = t0; t < t1; ++t) {
      const uint8_t* wt = w.lut.index.data() + t * blocks * 64;
      int32_t* d = dot + r * w.n_pad + t * 16;
      if (w.bits == 2) {
        tile(std::integral_constant<int, 2>(), wt, blocks, tables, map, bias, d);
      } else {
        tile(std::integral_constant<int, 1>(), wt, blocks, tables, map, bias, d);
      }
    }
  }
}

void LutDotRowsAvx2(const QLinearWeights& w, const uint8_t* const* rows, const int32_t* step_off,
                    int64_t nrows, int32_t* dot, int64_t t0, int64_t t1);
void LutDotRowsAvx512(const QLinearWeights& w, const uint8_t* const* rows, const int32_t* step_off,
                      int64_t nrows, int32_t* dot, int64_t t0, int64_t t1);

}  // namespace lowbit

#endif  // LOWBIT_KERNELS_LUT_H_
