// Linear layers on packed low-bit weights: y = W x + b with W stored as b-bit
// codes (1..8 bits, any format whose levels lie on an integer grid), x
// quantized to 8 bits per row, int32 accumulation, and one fused fp32
// epilogue. The arithmetic contract and the kernel layouts are documented
// with QLinearWeights (kernels/qlinear_weights.h).
#ifndef LOWBIT_KERNELS_QLINEAR_H_
#define LOWBIT_KERNELS_QLINEAR_H_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "base/thread_pool.h"
#include "kernels/kernel_path.h"
#include "kernels/qlinear_weights.h"
#include "lowbit/packed_tensor.h"
#include "lowbit/status.h"

namespace lowbit {

// Turns plane-layout weights of a grid with a zero level and no per-row zero
// point into the level-plane layout, giving the inputs `padding` marks (one
// flag per input k, or empty: none) the zero level's code, as well as the
// padding past k. Returns false, changing nothing, for other weights (or a
// table kernel's form). The AVX-512 kernels run it; the reference too.
bool ToLevelPlanes(QLinearWeights* w, const std::vector<bool>& padding);


// Prepares a packed weight [n, k] for the kernels. Refuses, naming the format,
// tensors whose levels are not on an int8 grid (a codebook with arbitrary
// levels), group granularity, and fp formats.
Result<QLinearWeights> PrepareQLinear(const PackedTensor& w);
// Adds the AVX2 form of a table layout (w->avx2.nibbles at <= 4 bits: int1, int3,
// pow2, nhot, codebooks of up to 16 levels; w->avx2.level_bytes at 5-8 bits); a
// no-op for the plane layout. Only plans that run the AVX2 path pay its
// memory.
void PrepareAvx2Table(QLinearWeights* w);

// Quantization parameters of one activation row (see below) and the sum of
// its quantized values.
struct ActQuant {
  float scale = 1.0f;
  int32_t zero = 0;
  int32_t sum = 0;  // sum of u over the row
};

// Activation quantization, one formulation for both layouts: an 8-bit
// integer a in [0, 255] with zero point z, x = xs * (a - z). Symmetric
// ("int8") ranges use z = 128 and xs = max(|lo|, |hi|) / 127; asymmetric
// ("uint8") ranges xs = (hi - lo) / 255, z = round(-lo / xs), with lo <= 0 <=
// hi after widening. The table layout reads a as uint8 (zero = z); the plane
// layout reads a - 128 as int8 (zero = z - 128), since there the codes are
// vpdpbusd's unsigned operand.
ActQuant StaticActParams(float lo, float hi, bool symmetric, bool signed_operand);
// The dynamic range of one row (its min and max), as StaticActParams.
ActQuant DynamicActParams(const float* x, int64_t k, bool symmetric, bool signed_operand);
// Quantizes one row with fixed parameters (clamping to the operand's range),
// padding to k_pad with 0; returns `a` with the row's sum.
ActQuant QuantizeRowWith(const float* x, int64_t k, int64_t k_pad, ActQuant a, bool signed_operand,
                         uint8_t* u);

// The int32 dot products dot[0..n) for one quantized row u (k_pad values).
// `Ref` reads the row-major codes (the specification); the SIMD kernels read
// the tiles and must match it exactly.
void QLinearDotRef(const QLinearWeights& w, const uint8_t* u, int32_t* dot);

// The fused epilogue for one row (see the contract above).
struct Epilogue {
  const float* bias = nullptr;  // one per output, or null
  bool clamp = false;
  float lo = 0, hi = 0;
  // Filter-wise formats (one QLinearWeights per format): the output each row
  // of w writes (y[out[r]], bias[out[r]]); null: row r writes output r.
  const int32_t* out = nullptr;
};
void QLinearEpilogue(const QLinearWeights& w, const ActQuant& a, const int32_t* dot,
                     const Epilogue& e, float* y);

// The AVX-512 body of QLinearEpilogueColumns (same float operations, same
// order: bit-identical to the portable loop).
void EpilogueColumnsAvx512(const float* A, const int32_t* B, const int32_t* C, const float* bias,
                           int64_t n, const int32_t* sums, const int32_t* dot, int64_t ldd,
                           int64_t rows, const float* residual, float lo, float hi, float* y,
                           int64_t ldy, const int32_t* out);

// Quantizes C planes of hw floats (C a multiple of 16) into NHWC bytes for
// pixels [p0, p1), pixel p at dst + (p - p0) * C:
// q = clamp(round(x * scale_inv) + zero) to int8 or uint8.
void QuantizeNhwcAvx512(const float* x, int64_t c, int64_t hw, float scale_inv, int32_t zero,
                        bool is_signed, int64_t p0, int64_t p1, uint8_t* dst);

// out[p] = the sum of the c bytes at x + p * stride, read as int8 when
// is_signed, for p in [0, n): the activation sums of a convolution's pixels.
void PixelSumsAvx512(const uint8_t* x, int64_t n, int64_t stride, int64_t c, bool is_signed,
                     int32_t* out);

// The same for images of c <= 4 channels (a stem's RGB input) stored as
// pixels of `stride` bytes, c <= stride <= 4: the bytes past c hold `zero`
// (the padding channels).
void QuantizeNhwc4Avx512(const float* x, int64_t c, int64_t hw, float scale_inv, int32_t zero,
                         bool is_signed, int64_t p0, int64_t p1, uint8_t* dst, int64_t stride);

// Kernel paths: kernels/kernel_path.h (the list: kernels/kernel_paths.inc).
// The avx2 and avxvnni paths (256-bit; vpmaddubsw or AVX-VNNI's vpdpbusd)
// cover the plane layout and, with PrepareAvx2Table, every table layout.
// PrepareQLinear plus the forms a plan on `path` reads: the AVX2 form of a
// table layout on the 256-bit paths (PrepareAvx2Table) and the table
// kernel's form where its rule picks it (LutMaxRows, PrepareLut in lut.h).
Result<QLinearWeights> PrepareQLinearFor(const PackedTensor& w, KernelPath path,
                                         KernelRule lut = KernelRule::kAuto);
// The same from codes given unpacked (p.rows x p.cols, row-major, each below
// 2^bits), as the conv kernels make them when they permute a weight's
// columns: the codes are packed once, into the layout, with no packed
// tensor in between.
Result<QLinearWeights> PrepareQLinearCodes(const QuantParams& p, const uint32_t* codes);
Result<QLinearWeights> PrepareQLinearCodesFor(const QuantParams& p, const uint32_t* codes,
                                              KernelPath path, KernelRule lut = KernelRule::kAuto);
// Whether weights with parameters p, laid out in layouts of `rows` rows each
// (a group's), take the level-plane layout on `path` with this table-kernel
// rule: ToLevelPlanes's conditions, checked before any code is laid out.
bool LevelPlanesPossible(const QuantParams& p, int64_t rows, KernelPath path, KernelRule lut);
// The level-plane layout straight from unpacked codes (LevelPlanesPossible
// must hold), as ToLevelPlanes(PrepareQLinearCodes(p, codes), padding)
// gives it, codes laid out once.
Result<QLinearWeights> PrepareLevelPlaneCodes(const QuantParams& p, const uint32_t* codes,
                                              const std::vector<bool>& padding);

// The epilogue for rows that share one activation scale and zero point (a
// convolution's pixels of one image) and differ in their sums, written
// transposed: y[r' * ldy + p] for output r' and row p (NCHW planes). Works in
// blocks of 16 rows so the dot products it reads stay in L1 and each output
// channel gets contiguous stores. The per-output constants are prepared once
// per activation quantization; the AVX-512 body runs on the kAvx512Vnni path,
// the AVX2+FMA one on the kAvx2 and kAvxVnni paths.
struct ColumnEpilogue {
  std::vector<float> A, bias;
  std::vector<int32_t> B, C;
  std::vector<int32_t> out;  // Epilogue::out (empty: identity)
  float lo = 0, hi = 0;
  bool avx512 = false;
  bool avx2 = false;  // the 256-bit bodies (kAvx2 and kAvxVnni paths)
};
void PrepareColumnEpilogue(const QLinearWeights& w, const ActQuant& a, const Epilogue& e,
                           KernelPath path, ColumnEpilogue* c);
// residual: added before the clamp, laid out like y, or null. Outputs [j0,
// j1) only (j1 < 0: to w.n; j0 a multiple of 16), with y, residual and dot
// still addressed from output 0. With c.out, row j writes output c.out[j]
// (y and residual hold every output; dot holds w's rows).
void QLinearEpilogueColumns(const QLinearWeights& w, const ColumnEpilogue& c, const int32_t* sums,
                            const int32_t* dot, int64_t rows, const float* residual, float* y,
                            int64_t ldy, int64_t j0 = 0, int64_t j1 = -1);

// Requantized 8-bit output for the next quantized layer: q = clamp(round(y *
// inv) + zero, 0, 255), with y the value the fp32 epilogue would write and the
// rounding of the activation quantizers (to nearest even), so a consumer that
// copies q gets exactly the bytes it would have quantized from y. Bytes are in
// the canonical unsigned form (StaticActParams(..., signed_operand = false)).
struct ByteOutput {
  float inv = 1.0f;
  int32_t zero = 0;
};
inline uint8_t ToByte(float y, ByteOutput o) {
  const float t = std::min(std::max(y * o.inv, -1e6f), 1e6f);
  return static_cast<uint8_t>(std::clamp(static_cast<int32_t>(std::nearbyint(t)) + o.zero, 0, 255));
}
// The residual the row epilogue adds before the clamp: fp32 planes (r[j * ld +
// p], the NCHW output layout) or canonical 8-bit pixels, scale * (q[p * ld + j]
// - zero).
struct RowResidual {
  const float* planes = nullptr;
  const uint8_t* bytes = nullptr;
  int64_t ld = 0;
  float scale = 1.0f;
  int32_t zero = 0;
};
// The ColumnEpilogue's values written as bytes per row (NHWC pixels): row p's
// n outputs at y + p * ldy. Outputs [j0, j1) as for QLinearEpilogueColumns.
void QLinearEpilogueRowsBytes(const QLinearWeights& w, const ColumnEpilogue& c, const int32_t* sums,
                              const int32_t* dot, int64_t rows, const RowResidual& r, ByteOutput o,
                              uint8_t* y, int64_t ldy, int64_t j0 = 0, int64_t j1 = -1);
// Filter-wise formats in one pass, in output order: c holds every output's
// constants (MergeColumnEpilogues), and output j's dot for row p (rows row0
// .. row0 + rows) is dots[g.idx[j] + p * g.step[j]], each format's dots
// sitting in their own region. Row p's outputs at y + (p - row0) * ldy; the
// residual as for QLinearEpilogueRowsBytes, from row row0.
struct DotGather {
  const int32_t* idx = nullptr;
  const int32_t* step = nullptr;
};
void MergeColumnEpilogues(const std::vector<ColumnEpilogue>& parts, int64_t n,
                          ColumnEpilogue* merged);
void QLinearEpilogueRowsBytesGathered(const ColumnEpilogue& c, DotGather g, const int32_t* sums,
                                      const int32_t* dots, int64_t row0, int64_t rows,
                                      const RowResidual& r, ByteOutput o, uint8_t* y, int64_t ldy);
// The AVX-512 bodies (bit-identical to the portable loops).
void EpilogueRowsBytesGatheredAvx512(const ColumnEpilogue& c, DotGather g, const int32_t* sums,
                                     const int32_t* dots, int64_t row0, int64_t rows,
                                     const RowResidual& r, ByteOutput o, uint8_t* y, int64_t ldy);
void EpilogueRowsBytesAvx512(const float* A, const int32_t* B, const int32_t* C, const float* bias,
                             int64_t n, const int32_t* sums, const int32_t* dot, int64_t ldd,
                             int64_t rows, const RowResidual& r, float lo, float hi, ByteOutput o,
                             uint8_t* y, int64_t ldy, const int32_t* out);
// The 256-bit bodies (AVX2 + FMA; bit-identical to the portable loops). The
// byte one takes outputs in order (no Epilogue::out) and fp32 residual planes
// with ld < 2^27.
bool EpilogueAvx2Available();
void EpilogueColumnsAvx2(const float* A, const int32_t* B, const int32_t* C, const float* bias,
                         int64_t n, const int32_t* sums, const int32_t* dot, int64_t ldd,
                         int64_t rows, const float* residual, float lo, float hi, float* y,
                         int64_t ldy, const int32_t* out);
void EpilogueRowsBytesAvx2(const float* A, const int32_t* B, const int32_t* C, const float* bias,
                           int64_t n, const int32_t* sums, const int32_t* dot, int64_t ldd,
                           int64_t rows, const RowResidual& r, float lo, float hi, ByteOutput o,
                           uint8_t* y, int64_t ldy);


// y = W x + b for `rows` input rows (x: rows x k, y: rows x n), dispatching the
// dot products to `path`. Scratch grows to the largest `rows` seen, once.
struct QLinearScratch {
  std::vector<uint8_t> u;
  std::vector<int32_t> dot;
  std::vector<ActQuant> acts;
};
// With a pool, output tiles are split across its threads. With `act` set
// (static calibration), rows are quantized with those parameters; otherwise
// each row gets its own dynamic range (asymmetric unless `symmetric`). Row r
// of y starts at y + r * ldy (ldy < 0: w.n).
void QLinearForward(const QLinearWeights& w, KernelPath path, const float* x, int64_t rows,
                    const Epilogue& e, QLinearScratch* scratch, float* y,
                    ThreadPool* pool = nullptr, const ActQuant* act = nullptr,
                    bool symmetric = false, int64_t ldy = -1);

// The dot products of `rows` already quantized rows (stride k_pad):
// dot is rows x n_pad. Splits output tiles (or, for many rows, row blocks)
// across the pool.
void QLinearDots(const QLinearWeights& w, KernelPath path, const uint8_t* u, int64_t rows,
                 int32_t* dot, ThreadPool* pool);
// The same for rows in the row-pointer form (QLinearDotRows below);
// RowKernelAvailable(w, path) must hold.
void QLinearDotsRows(const QLinearWeights& w, KernelPath path, const uint8_t* const* rows,
                     const int32_t* step_off, int64_t nrows, int32_t* dot, ThreadPool* pool);

// The AVX-512 VNNI + VBMI dot products (available when KernelPathAvailable).
// For the plane layout `u` holds int8 activations.
// Computes the outputs of row tiles [t0, t1) (16 rows each).
void QLinearDotAvx512Vnni(const QLinearWeights& w, const uint8_t* u, int32_t* dot, int64_t t0,
                          int64_t t1);
// `rows` activation rows (stride k_pad) at once, register-blocked so unpacked
// weights are reused across rows; dot is rows x n_pad.
void QLinearDotBatchAvx512Vnni(const QLinearWeights& w, const uint8_t* u, int64_t rows,
                               int32_t* dot, int64_t t0, int64_t t1);
// AVX2 and AVX-VNNI (plane layout, or a table layout's AVX2 form): the
// general row-pointer form below.
void QLinearDotRowsAvx2(const QLinearWeights& w, const uint8_t* const* rows,
                        const int32_t* step_off, int64_t nrows, int32_t* dot, int64_t t0,
                        int64_t t1);
void QLinearDotRowsAvxVnni(const QLinearWeights& w, const uint8_t* const* rows,
                           const int32_t* step_off, int64_t nrows, int32_t* dot, int64_t t0,
                           int64_t t1);
// Whether `path` runs w with SIMD through the row-pointer entry points.
inline bool RowKernelAvailable(const QLinearWeights& w, KernelPath path) {
  return KernelPathBits(path) == 512 ||
         (Is256BitPath(path) && (w.layout == QLinearWeights::Layout::kPlanes ||
                                 !w.avx2.nibbles.empty() || !w.avx2.level_bytes.empty()));
}
// Dispatches the row-pointer form to `path` (RowKernelAvailable must hold).
void QLinearDotRows(const QLinearWeights& w, KernelPath path, const uint8_t* const* rows,
                    const int32_t* step_off, int64_t nrows, int32_t* dot, int64_t t0, int64_t t1);

// The general form: row r's inputs 4s..4s+3 are the four bytes at
// rows[r] + step_off[s] (implicit GEMM: a convolution window read in place
// from a padded NHWC image). dot is nrows x n_pad.
void QLinearDotRowsAvx512Vnni(const QLinearWeights& w, const uint8_t* const* rows,
                              const int32_t* step_off, int64_t nrows, int32_t* dot, int64_t t0,
                              int64_t t1);

}  // namespace lowbit

#endif  // LOWBIT_KERNELS_QLINEAR_H_
