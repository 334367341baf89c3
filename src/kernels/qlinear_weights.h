// The kernel layouts of packed low-bit weights for linear layers, y = W x +
// b with W stored as b-bit codes (1..8 bits, any format whose levels lie on
// an integer grid), x quantized to uint8 per row, int32 accumulation, and one
// fused fp32 epilogue (kernels/qlinear.h); the table kernel (kernels/lut.h)
// reads them too.
//
// Arithmetic contract (exact; every kernel produces the same int32 `dot`):
//   weight (n, k) = scale[n] * (T[code(n, k)] - offset[n])     T: int8 table
//   input  k      = xs * (u[k] - xz)                            u: uint8
//   dot[n]  = sum_k T[code(n, k)] * u[k]                         (int32)
//   y[n]    = scale[n] * xs * (dot[n] - xz * rowsum[n] - offset[n] * usum
//                               + K * offset[n] * xz) + bias[n], then Relu/Clip
// where rowsum[n] = sum_k T[code(n, k)] and usum = sum_k u[k].
//
// Kernel layout (repacked at load time from the portable row-major file
// layout; see bitpack.h): output rows in tiles of 16, inputs in steps of 4.
// One (tile, step) holds 64 codes in exactly 8*b bytes: row pair p of the tile
// owns bytes [p*b, (p+1)*b), whose bits, LSB first, are the codes of rows
// 2p and 2p+1 for inputs k..k+3 in the order (row 2p: k..k+3, row 2p+1:
// k..k+3). Tiles are stored step-major: tile t, step s at byte
// (t * steps + s) * 8 * b. Rows are padded to a multiple of 16 and inputs to
// a multiple of 4 with code 0; padded inputs are multiplied by u = 0.
//
// Plane layout (uniform grids -- int, uint, int-asym -- at 1, 2, 4 or 8 bits,
// where T[c] = c + T[0]): the codes themselves are the unsigned operand and the
// activations are symmetric int8 (xz = 0), so no table lookup is needed:
//   dot[n] = sum_k code(n, k) * xq[k],   y[n] = scale[n] * xs * (dot[n] -
//            offset[n] * xsum) + bias[n],   offset[n] = zero point - T[0].
// A tile (16 rows) covers P = 8 / b steps of 4 inputs in 64 bytes: byte
// 4*i + j holds, in bits [b*p, b*(p+1)), the code of row i and input
// 4*(s0 + p) + j; one load, a shift and a mask give each step's 64 weights.
// Inputs are padded to a multiple of 4 * P.
//
// Level-plane layout (ToLevelPlanes; the AVX-512 path): plane tiles whose
// codes give int8 levels T[c] = c + T[0] (one vpaddb after the mask), the
// signed operand, against uint8 activations, the unsigned one -- the table
// layout's arithmetic, with offset 0. Only grids with a zero level and no
// per-row zero point: the zero-point correction is then per output
// (xz * rowsum), with no per-row activation sums; padded inputs hold the zero
// level's code, so whatever bytes they meet add nothing.
#ifndef LOWBIT_KERNELS_QLINEAR_WEIGHTS_H_
#define LOWBIT_KERNELS_QLINEAR_WEIGHTS_H_

#include <cstdint>
#include <vector>

namespace lowbit {

// The AVX2 forms of table-layout weights (PrepareAvx2Table; empty
// otherwise). At most 4 bits: codes as nibbles in the plane layout's 4-bit
// arrangement (a tile covers two steps of 4 inputs in 64 bytes; an odd last
// step is read alone), which vpshufb maps to the int8 levels. 5-8 bits (AVX2
// has no 32-256-entry byte lookup): the levels T[code] themselves, one int8
// per weight, 64 bytes per (tile, step), byte 4*i + j for row i and input j
// -- 8 bits per weight in memory instead of 5-7.
struct Avx2TableForm {
  std::vector<uint8_t> nibbles;
  std::vector<int8_t> level_bytes;
  // Whether some |T| exceeds 64, so vpmaddubsw's int16 pairs (2 * 255 * |T|)
  // could saturate and the AVX2 kernel splits activations into nibbles.
  bool split = false;
};

// The bit-serial table kernel's form (PrepareLut in lut.h; empty unless a
// plan picked that kernel for the weight): the index bytes, and the most
// activation rows per call it runs (more rows take the product kernels).
struct LutForm {
  std::vector<uint8_t> index;
  int64_t max_rows = 0;
  bool empty() const { return index.empty(); }
};

// A packed weight in a kernel layout: the per-row constants and the
// row-major codes every layout shares (the reference reads those), the
// tiles of one of the three layouts above (`layout` says which), and the
// forms some plans add.
struct QLinearWeights {
  // kLevelPlanes (ToLevelPlanes, AVX-512 only): the plane layout's tiles, read
  // with the table layout's arithmetic (below).
  enum class Layout { kTable, kPlanes, kLevelPlanes };
  Layout layout = Layout::kTable;
  int bits = 0;
  int64_t n = 0, k = 0;          // output rows, inputs
  int64_t n_pad = 0, k_pad = 0;  // multiples of 16 and 4
  std::vector<int8_t> table;     // T, one entry per code (2^bits, unused codes 0)
  std::vector<float> scale;      // per output row
  std::vector<int32_t> offset;   // per output row
  std::vector<int32_t> rowsum;   // per output row: sum_k T[code] (planes: sum_k code)
  std::vector<uint8_t> tiles;    // kernel layout, 64-byte aligned start not required
  std::vector<uint8_t> codes;    // row-major codes as the file stores them (for the reference)
  int64_t row_bytes = 0;         // of `codes`
  // Forms that some plans add (each its own type, empty unless added).
  Avx2TableForm avx2;
  LutForm lut;

  int64_t steps() const { return k_pad / 4; }
  // Bytes per (tile, step) in the table layout; per (tile, group of P steps),
  // always 64, in the plane layout.
  int64_t tile_bytes() const { return 8 * static_cast<int64_t>(bits); }
  int planes_per_byte() const { return 8 / bits; }
  bool signed_acts() const { return layout == Layout::kPlanes; }
};

// The `bits`-bit field at bit offset `bit` of the packed little-endian
// stream `p` (a code of QLinearWeights::codes).
inline uint32_t CodeField(const uint8_t* p, int64_t bit, int bits) {
  uint32_t v = 0;
  for (int b = 0; b < bits; ++b) {
    const int64_t i = bit + b;
    v |= static_cast<uint32_t>((p[i >> 3] >> (i & 7)) & 1) << b;
  }
  return v;
}

}  // namespace lowbit

#endif  // LOWBIT_KERNELS_QLINEAR_WEIGHTS_H_
