#include "kernels/qlinear.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "base/check.h"
#include "base/target.h"
#include "kernels/lut.h"
#include "lowbit/bitpack.h"

namespace lowbit {
namespace {

// The int8 grid of a level table: integers T and a power-of-two `unit` with
// level = T * unit, or false when the levels are not such a grid in int8.
bool IntegerGrid(const std::vector<float>& levels, std::vector<int8_t>* t, float* unit) {
  for (int e = 0; e <= 7; ++e) {
    const float mul = std::ldexp(1.0f, e);
    bool ok = true;
    std::vector<int8_t> out;
    for (float l : levels) {
      const float v = l * mul;
      if (v != std::nearbyint(v) || v < -128 || v > 127) {
        ok = false;
        break;
      }
      out.push_back(static_cast<int8_t>(v));
    }
    if (ok) {
      *t = std::move(out);
      *unit = 1.0f / mul;
      return true;
    }
  }
  return false;
}

// The forms a plan on `path` reads besides the layout (PrepareQLinearFor).
Result<QLinearWeights> AddPathForms(Result<QLinearWeights> w, KernelPath path, KernelRule lut) {
  if (!w.ok()) return w;
  if (Is256BitPath(path)) PrepareAvx2Table(&w.value());
  const int64_t lut_rows = LutMaxRows(*w, path, lut);
  if (lut_rows > 0) PrepareLut(&w.value(), lut_rows);
  return w;
}

}  // namespace

Result<QLinearWeights> PrepareQLinearFor(const PackedTensor& t, KernelPath path, KernelRule lut) {
  return AddPathForms(PrepareQLinear(t), path, lut);
}

Result<QLinearWeights> PrepareQLinearCodesFor(const QuantParams& p, const uint32_t* codes,
                                              KernelPath path, KernelRule lut) {
  return AddPathForms(PrepareQLinearCodes(p, codes), path, lut);
}

void PrepareAvx2Table(QLinearWeights* w) {
  if (w->layout != QLinearWeights::Layout::kTable || !w->avx2.nibbles.empty() ||
      !w->avx2.level_bytes.empty()) {
    return;
  }
  int max_level = 0;
  for (int8_t v : w->table) max_level = std::max(max_level, std::abs(static_cast<int>(v)));
  w->avx2.split = max_level > 64;
  if (w->bits > 4) {
    // Padded rows and inputs hold level 0: no product at all.
    w->avx2.level_bytes.assign(static_cast<size_t>(w->n_pad / 16 * w->steps() * 64), 0);
    for (int64_t r = 0; r < w->n; ++r) {
      const uint8_t* row = w->codes.data() + r * w->row_bytes;
      for (int64_t c = 0; c < w->k; ++c) {
        const int64_t tile = r / 16, i = r % 16, step = c / 4, j = c % 4;
        w->avx2.level_bytes[(tile * w->steps() + step) * 64 + 4 * i + j] =
            w->table[CodeField(row, c * w->bits, w->bits)];
      }
    }
    return;
  }
  const int64_t groups = (w->steps() + 1) / 2;
  w->avx2.nibbles.assign(static_cast<size_t>(w->n_pad / 16 * groups * 64), 0);
  for (int64_t r = 0; r < w->n; ++r) {
    const uint8_t* row = w->codes.data() + r * w->row_bytes;
    for (int64_t c = 0; c < w->k; ++c) {
      const int64_t tile = r / 16, i = r % 16, step = c / 4, j = c % 4;
      w->avx2.nibbles[(tile * groups + step / 2) * 64 + 4 * i + j] |=
          static_cast<uint8_t>(CodeField(row, c * w->bits, w->bits) << (4 * (step % 2)));
    }
  }
}

namespace {

// Row r's first `k` codes into the plane layout's tiles, step by step: the
// code of row r, input c sits in byte (tile * steps / P + step / P) * 64 +
// 4 * (r % 16) + c % 4 of w->tiles (tile = r / 16, step = c / 4), at bit
// shift bits * (step % P). OR'ed into zeroed tiles, or (kOverwrite)
// replacing the bits there.
template <bool kOverwrite>
void PutPlaneRow(QLinearWeights* w, int64_t r, const uint32_t* codes, int64_t k) {
  const int P = w->planes_per_byte(), bits = w->bits;
  const int64_t tile = r / 16, i = r % 16, groups = w->steps() / P;
  uint8_t* row = w->tiles.data() + tile * groups * 64 + 4 * i;
  const uint32_t mask = (1u << bits) - 1;
  for (int64_t step = 0; 4 * step < k; ++step) {
    uint8_t* b = row + (step / P) * 64;
    const int shift = bits * static_cast<int>(step % P);
    const int64_t n = std::min<int64_t>(4, k - 4 * step);
    for (int64_t j = 0; j < n; ++j) {
      const uint32_t code = codes[4 * step + j];
      if (kOverwrite) {
        b[j] = static_cast<uint8_t>((b[j] & ~(mask << shift)) | (code << shift));
      } else {
        b[j] |= static_cast<uint8_t>(code << shift);
      }
    }
  }
}

}  // namespace

namespace {

// The layout, table, scales and offsets of PrepareQLinear, and zeroed tiles;
// the codes come row by row through PutRow.
Result<QLinearWeights> QLinearHeader(const QuantParams& p) {
  const std::string name = FormatName(p.spec);
  if (p.spec.family == Family::kFloat) {
    return Unimplemented("packed linear: ", name, " weights are not low-bit codes");
  }
  if (p.granularity.kind == Granularity::kGroup) {
    return Unimplemented("packed linear: ", name, " with group granularity is not supported yet "
                         "(tensor or channel scales)");
  }
  QLinearWeights w;
  w.bits = p.spec.bits;
  w.n = p.rows;
  w.k = p.cols;
  w.n_pad = (w.n + 15) / 16 * 16;
  w.k_pad = (w.k + 3) / 4 * 4;
  // The table: levels on an int8 grid, with the asymmetric zero point folded
  // into a per-row offset. Unsigned 8-bit grids (0..255) are shifted by 128 to
  // fit int8, and the offset shifts with them.
  std::vector<float> levels = p.levels;
  int32_t shift = 0;
  if (!levels.empty() && levels.back() > 127 && levels.front() >= 0) {
    shift = 128;
    for (float& l : levels) l -= 128;
  }
  std::vector<int8_t> t8;
  float unit = 1.0f;
  if (!IntegerGrid(levels, &t8, &unit)) {
    return Unimplemented("packed linear: the levels of ", name,
                         " do not lie on an int8 grid (a float-table kernel is needed)");
  }
  w.table.assign(int64_t{1} << w.bits, 0);
  std::copy(t8.begin(), t8.end(), w.table.begin());
  w.scale.resize(w.n);
  w.offset.resize(w.n);
  for (int64_t r = 0; r < w.n; ++r) {
    const int64_t g = p.granule_of(r, 0);
    w.scale[r] = p.scales[g] * unit;
    w.offset[r] = static_cast<int32_t>(std::lround((p.zero_point(g) - shift) / unit));
  }
  // Uniform grids at 1, 2, 4, 8 bits use the plane layout (codes are the
  // unsigned operand; no table lookup).
  bool affine = t8.size() == (size_t{1} << w.bits);
  for (size_t c = 0; affine && c < t8.size(); ++c) affine = t8[c] == t8[0] + static_cast<int>(c);
  if (affine && (w.bits == 1 || w.bits == 2 || w.bits == 4 || w.bits == 8)) {
    w.layout = QLinearWeights::Layout::kPlanes;
    const int64_t group = 4 * w.planes_per_byte();
    w.k_pad = (w.k + group - 1) / group * group;
    for (int64_t r = 0; r < w.n; ++r) w.offset[r] -= t8[0];
  }
  // The tiles, filled by PutRow.
  const bool planes = w.layout == QLinearWeights::Layout::kPlanes;
  const int64_t groups = planes ? w.steps() / w.planes_per_byte() : 0;
  w.tiles.assign(static_cast<size_t>(planes ? w.n_pad / 16 * groups * 64
                                            : w.n_pad / 16 * w.steps() * w.tile_bytes()),
                 0);
  w.rowsum.assign(w.n, 0);
  w.row_bytes = (w.k * w.bits + 7) / 8;
  return w;
}

// Row r's k codes into the tiles and its row sum.
void PutRow(QLinearWeights* wp, int64_t r, const uint32_t* row) {
  QLinearWeights& w = *wp;
  const bool planes = w.layout == QLinearWeights::Layout::kPlanes;
  const int8_t t0 = w.table[0];
  {
    int32_t sum = 0;
    for (int64_t c = 0; c < w.k; ++c) sum += w.table[row[c]];
    if (planes) PutPlaneRow<false>(&w, r, row, w.k);
    for (int64_t c = 0; c < w.k && !planes; ++c) {
      // Position in the tile layout.
      const int64_t tile = r / 16, i = r % 16, pair = i / 2, half = i % 2;
      const int64_t step = c / 4, j = c % 4;
      uint8_t* base = w.tiles.data() + (tile * w.steps() + step) * w.tile_bytes() + pair * w.bits;
      const int64_t bit = (half * 4 + j) * w.bits;
      for (int b = 0; b < w.bits; ++b) {
        if ((row[c] >> b) & 1) base[(bit + b) >> 3] |= static_cast<uint8_t>(1u << ((bit + b) & 7));
      }
    }
    // The plane layout's dot products multiply codes (T - T[0]).
    w.rowsum[r] = planes ? sum - static_cast<int32_t>(w.k) * t0 : sum;
  }
}

}  // namespace

Result<QLinearWeights> PrepareQLinear(const PackedTensor& t) {
  Result<QLinearWeights> w = QLinearHeader(t.params());
  if (!w.ok()) return w;
  w->codes = t.data();  // row-major codes, the file layout
  std::vector<uint32_t> row(w->k);
  for (int64_t r = 0; r < w->n; ++r) {
    t.UnpackRow(r, row.data());
    PutRow(&w.value(), r, row.data());
  }
  return w;
}

Result<QLinearWeights> PrepareQLinearCodes(const QuantParams& p, const uint32_t* codes) {
  Result<QLinearWeights> w = QLinearHeader(p);
  if (!w.ok()) return w;
  w->codes.assign(static_cast<size_t>(w->n * w->row_bytes), 0);
  for (int64_t r = 0; r < w->n; ++r) {
    PackCodes(codes + r * w->k, w->k, w->bits, w->codes.data() + r * w->row_bytes);
    PutRow(&w.value(), r, codes + r * w->k);
  }
  return w;
}

namespace {

// ToLevelPlanes's conditions on the header: the plane layout of a grid with
// a zero level, every row's offset that level's code.
bool LevelPlanesFit(const QLinearWeights& w) {
  if (w.layout != QLinearWeights::Layout::kPlanes) return false;
  const int32_t zero_code = -w.table[0];
  if (zero_code < 0 || zero_code >= (1 << w.bits)) return false;
  for (int32_t o : w.offset) {
    if (o != zero_code) return false;
  }
  return true;
}

}  // namespace

bool LevelPlanesPossible(const QuantParams& p, int64_t rows, KernelPath path, KernelRule lut) {
  if (KernelPathBits(path) != 512) return false;  // the AVX-512 kernels run level planes
  Result<QLinearWeights> w = QLinearHeader(p);
  if (!w.ok() || !LevelPlanesFit(*w)) return false;
  w->n = rows;  // the table kernel's rule counts a layout's rows
  return LutMaxRows(*w, path, lut) == 0;
}

Result<QLinearWeights> PrepareLevelPlaneCodes(const QuantParams& p, const uint32_t* codes,
                                              const std::vector<bool>& padding) {
  Result<QLinearWeights> w = QLinearHeader(p);
  if (!w.ok()) return w;
  if (!LevelPlanesFit(*w)) {
    return Internal("PrepareLevelPlaneCodes: ", FormatName(p.spec), " weights have no level planes");
  }
  const uint32_t zero_code = static_cast<uint32_t>(-w->table[0]);
  const int P = w->planes_per_byte();
  uint8_t fill = 0;
  for (int q = 0; q < P; ++q) fill |= static_cast<uint8_t>(zero_code << (w->bits * q));
  std::fill(w->tiles.begin(), w->tiles.end(), fill);
  w->codes.assign(static_cast<size_t>(w->n * w->row_bytes), 0);
  std::vector<uint32_t> row(w->k);
  for (int64_t r = 0; r < w->n; ++r) {
    int32_t sum = 0;
    for (int64_t c = 0; c < w->k; ++c) {
      row[c] = !padding.empty() && padding[c] ? zero_code : codes[r * w->k + c];
      sum += w->table[row[c]];
    }
    PackCodes(row.data(), w->k, w->bits, w->codes.data() + r * w->row_bytes);
    PutPlaneRow<true>(&w.value(), r, row.data(), w->k);
    w->rowsum[r] = sum;
    w->offset[r] = 0;
  }
  w->layout = QLinearWeights::Layout::kLevelPlanes;
  return w;
}

bool ToLevelPlanes(QLinearWeights* w, const std::vector<bool>& padding) {
  // Planes: T[c] = c + T[0] and offset = zero point - T[0]; symmetric grids
  // have zero point 0, and the zero level's code is -T[0].
  if (!w->lut.empty() || !LevelPlanesFit(*w)) return false;
  const int32_t zero_code = -w->table[0];
  const int P = w->planes_per_byte(), bits = w->bits;
  uint8_t fill = 0;
  for (int p = 0; p < P; ++p) fill |= static_cast<uint8_t>(zero_code << (bits * p));
  std::fill(w->tiles.begin(), w->tiles.end(), fill);
  std::vector<uint32_t> codes(w->k);
  for (int64_t r = 0; r < w->n; ++r) {
    uint8_t* row = w->codes.data() + r * w->row_bytes;
    UnpackCodes(row, w->k, bits, codes.data());
    int32_t sum = 0;
    for (int64_t c = 0; c < w->k; ++c) {
      if (!padding.empty() && padding[c]) codes[c] = static_cast<uint32_t>(zero_code);
      sum += w->table[codes[c]];
    }
    PutPlaneRow<true>(w, r, codes.data(), w->k);
    if (!padding.empty()) PackCodes(codes.data(), w->k, bits, row);
    w->rowsum[r] = sum;
    w->offset[r] = 0;
  }
  w->layout = QLinearWeights::Layout::kLevelPlanes;
  return true;
}

ActQuant StaticActParams(float lo, float hi, bool symmetric, bool signed_operand) {
  lo = std::min(lo, 0.0f);
  hi = std::max(hi, 0.0f);
  ActQuant a;
  if (symmetric) {
    const float amax = std::max(-lo, hi);
    a.scale = amax > 0 ? amax / 127.0f : 1.0f;
    a.zero = 128;
  } else {
    a.scale = hi > lo ? (hi - lo) / 255.0f : 1.0f;
    a.zero = static_cast<int32_t>(std::clamp(std::nearbyint(-lo / a.scale), 0.0f, 255.0f));
  }
  if (signed_operand) a.zero -= 128;
  return a;
}

ActQuant DynamicActParams(const float* x, int64_t k, bool symmetric, bool signed_operand) {
  float lo = 0.0f, hi = 0.0f;
  for (int64_t i = 0; i < k; ++i) {
    lo = std::min(lo, x[i]);
    hi = std::max(hi, x[i]);
  }
  return StaticActParams(lo, hi, symmetric, signed_operand);
}

namespace {

// The loops of QuantizeRowWith, compiled per instruction set so nearbyint
// becomes one rounding instruction and the loop vectorizes.
LOWBIT_VECTORIZE int32_t QuantizeSigned(const float* __restrict x, int64_t k, float inv, float zero,
                                        int8_t* __restrict xq) {
  int32_t sum = 0;
  for (int64_t i = 0; i < k; ++i) {
    // max(bound, v) puts a NaN at the bound (no undefined conversion).
    const float q = std::min(127.0f, std::max(-128.0f, std::nearbyint(x[i] * inv) + zero));
    xq[i] = static_cast<int8_t>(q);
    sum += static_cast<int32_t>(q);
  }
  return sum;
}
LOWBIT_VECTORIZE int32_t QuantizeUnsigned(const float* __restrict x, int64_t k, float inv, float zero,
                                          uint8_t* __restrict u) {
  int32_t sum = 0;
  for (int64_t i = 0; i < k; ++i) {
    const float q = std::min(255.0f, std::max(0.0f, std::nearbyint(x[i] * inv) + zero));
    u[i] = static_cast<uint8_t>(q);
    sum += static_cast<int32_t>(q);
  }
  return sum;
}

}  // namespace

ActQuant QuantizeRowWith(const float* x, int64_t k, int64_t k_pad, ActQuant a, bool signed_operand,
                         uint8_t* u) {
  const float inv = 1.0f / a.scale;
  const float zero = static_cast<float>(a.zero);
  a.sum = signed_operand ? QuantizeSigned(x, k, inv, zero, reinterpret_cast<int8_t*>(u))
                         : QuantizeUnsigned(x, k, inv, zero, u);
  for (int64_t i = k; i < k_pad; ++i) u[i] = 0;
  return a;
}

void QLinearDotRef(const QLinearWeights& w, const uint8_t* u, int32_t* dot) {
  if (w.layout == QLinearWeights::Layout::kPlanes) {
    const int8_t* xq = reinterpret_cast<const int8_t*>(u);
    for (int64_t r = 0; r < w.n; ++r) {
      const uint8_t* row = w.codes.data() + r * w.row_bytes;
      int32_t acc = 0;
      for (int64_t c = 0; c < w.k; ++c) {
        acc += static_cast<int32_t>(CodeField(row, c * w.bits, w.bits)) * xq[c];
      }
      dot[r] = acc;
    }
    return;
  }
  for (int64_t r = 0; r < w.n; ++r) {
    const uint8_t* row = w.codes.data() + r * w.row_bytes;
    int32_t acc = 0;
    for (int64_t c = 0; c < w.k; ++c) {
      acc += static_cast<int32_t>(w.table[CodeField(row, c * w.bits, w.bits)]) * u[c];
    }
    dot[r] = acc;
  }
}

namespace {

// The body of QLinearEpilogue. The integer terms are summed modulo 2^32:
// exact, since the true sum, sum_k (T - offset) * (u - z), fits an int32
// (|.| <= K * 255 * 255).
struct RowTerms {
  uint32_t z, sum, kz;
  RowTerms(ActQuant a, int64_t k)
      : z(static_cast<uint32_t>(a.zero)),
        sum(static_cast<uint32_t>(a.sum)),
        kz(static_cast<uint32_t>(k) * z) {}
  // dot - z * rowsum - offset * usum + K * offset * z.
  int32_t Acc(int32_t dot, int32_t rowsum, int32_t offset) const {
    const uint32_t off = static_cast<uint32_t>(offset);
    return static_cast<int32_t>(static_cast<uint32_t>(dot) - z * static_cast<uint32_t>(rowsum) -
                                off * sum + kz * off);
  }
};

LOWBIT_VECTORIZE void EpilogueRow(const int32_t* __restrict dot, const int32_t* __restrict rowsum,
                                  const int32_t* __restrict offset, const float* __restrict scale,
                                  const float* __restrict bias, int64_t n, int64_t k, ActQuant a,
                                  float lo, float hi, float* __restrict y) {
  const RowTerms t(a, k);
  for (int64_t r = 0; r < n; ++r) {
    float v = scale[r] * a.scale * static_cast<float>(t.Acc(dot[r], rowsum[r], offset[r]));
    if (bias != nullptr) v += bias[r];
    y[r] = std::min(std::max(v, lo), hi);
  }
}

// The same for filter-wise formats: row r writes output out[r] (and reads
// its bias there). Same expression, same compilation: the same values.
LOWBIT_VECTORIZE void EpilogueRowMapped(const int32_t* __restrict dot,
                                        const int32_t* __restrict rowsum,
                                        const int32_t* __restrict offset,
                                        const float* __restrict scale, const float* __restrict bias,
                                        const int32_t* __restrict out, int64_t n, int64_t k,
                                        ActQuant a, float lo, float hi, float* __restrict y) {
  const RowTerms t(a, k);
  for (int64_t r = 0; r < n; ++r) {
    float v = scale[r] * a.scale * static_cast<float>(t.Acc(dot[r], rowsum[r], offset[r]));
    if (bias != nullptr) v += bias[out[r]];
    y[out[r]] = std::min(std::max(v, lo), hi);
  }
}

}  // namespace

void QLinearEpilogue(const QLinearWeights& w, const ActQuant& a, const int32_t* dot,
                     const Epilogue& e, float* y) {
  if (e.out != nullptr) {
    EpilogueRowMapped(dot, w.rowsum.data(), w.offset.data(), w.scale.data(), e.bias, e.out, w.n,
                      w.k, a, e.clamp ? e.lo : -INFINITY, e.clamp ? e.hi : INFINITY, y);
    return;
  }
  EpilogueRow(dot, w.rowsum.data(), w.offset.data(), w.scale.data(), e.bias, w.n, w.k, a,
              e.clamp ? e.lo : -INFINITY, e.clamp ? e.hi : INFINITY, y);
}

namespace {

// One 16-row block: y[n * ldy + p] = A[n] * (dot[p][n] + B[n] - C[n] * sum[p]) + bias[n].
LOWBIT_VECTORIZE void EpilogueBlock(const float* __restrict A, const int32_t* __restrict B,
                                    const int32_t* __restrict C, const float* __restrict bias,
                                    int64_t n, const int32_t* __restrict sums,
                                    const int32_t* __restrict dot, int64_t ldd, int64_t rows,
                                    const float* __restrict residual, float lo, float hi,
                                    float* __restrict y, int64_t ldy, const int32_t* out) {
  float col[16];
  for (int64_t j = 0; j < n; ++j) {
    const int64_t o = out != nullptr ? out[j] : j;
    for (int64_t p = 0; p < rows; ++p) {
      col[p] = std::fma(static_cast<float>(dot[p * ldd + j] + B[j] - C[j] * sums[p]), A[j], bias[j]);
    }
    if (residual != nullptr) {
      for (int64_t p = 0; p < rows; ++p) col[p] += residual[o * ldy + p];
    }
    float* yj = y + o * ldy;
    for (int64_t p = 0; p < rows; ++p) yj[p] = std::min(std::max(col[p], lo), hi);
  }
}

}  // namespace

void PrepareColumnEpilogue(const QLinearWeights& w, const ActQuant& a, const Epilogue& e,
                           KernelPath path, ColumnEpilogue* c) {
  // Per output constants (int32 is enough: |dot| < K * 128 * 255).
  c->A.resize(w.n);
  c->bias.assign(w.n, 0.0f);
  c->B.resize(w.n);
  c->C.resize(w.n);
  for (int64_t r = 0; r < w.n; ++r) {
    c->A[r] = w.scale[r] * a.scale;
    c->B[r] = -a.zero * w.rowsum[r] + static_cast<int32_t>(w.k) * w.offset[r] * a.zero;
    c->C[r] = w.offset[r];
    if (e.bias != nullptr) c->bias[r] = e.bias[e.out != nullptr ? e.out[r] : r];
  }
  if (e.out != nullptr) {
    c->out.assign(e.out, e.out + w.n);
  } else {
    c->out.clear();
  }
  c->lo = e.clamp ? e.lo : -INFINITY;
  c->hi = e.clamp ? e.hi : INFINITY;
  c->avx512 = KernelPathBits(path) == 512 && KernelPathAvailable(path);
  c->avx2 = Is256BitPath(path) && KernelPathAvailable(path) && EpilogueAvx2Available();
}

namespace {

// The per-output constants of outputs [j0, j1) (j1 < 0: to w.n).
// Also the slice's dot products and, for filter-wise formats, its outputs
// (out: null when rows write outputs j0.. in order).
struct EpilogueSlice {
  int64_t n;
  const float *A, *bias;
  const int32_t *B, *C, *dot, *out;
  EpilogueSlice(const QLinearWeights& w, const ColumnEpilogue& c, const int32_t* dot_, int64_t j0,
                int64_t j1)
      : n((j1 < 0 ? w.n : j1) - j0),
        A(c.A.data() + j0),
        bias(c.bias.data() + j0),
        B(c.B.data() + j0),
        C(c.C.data() + j0),
        dot(dot_ + j0),
        out(c.out.empty() ? nullptr : c.out.data() + j0) {}
};

}  // namespace

void QLinearEpilogueColumns(const QLinearWeights& w, const ColumnEpilogue& c, const int32_t* sums,
                            const int32_t* dot, int64_t rows, const float* residual, float* y,
                            int64_t ldy, int64_t j0, int64_t j1) {
  const EpilogueSlice e(w, c, dot, j0, j1);
  const int64_t n = e.n;
  const float *A = e.A, *bias = e.bias;
  const int32_t *B = e.B, *C = e.C, *out = e.out;
  dot = e.dot;
  if (out == nullptr) {
    y += j0 * ldy;
    if (residual != nullptr) residual += j0 * ldy;
  }
  if (c.avx512) {
    EpilogueColumnsAvx512(A, B, C, bias, n, sums, dot, w.n_pad, rows, residual, c.lo, c.hi, y, ldy,
                          out);
    return;
  }
  if (c.avx2) {
    EpilogueColumnsAvx2(A, B, C, bias, n, sums, dot, w.n_pad, rows, residual, c.lo, c.hi, y, ldy,
                        out);
    return;
  }
  for (int64_t p0 = 0; p0 < rows; p0 += 16) {
    const int64_t m = std::min<int64_t>(16, rows - p0);
    EpilogueBlock(A, B, C, bias, n, sums + p0, dot + p0 * w.n_pad, w.n_pad, m,
                  residual != nullptr ? residual + p0 : nullptr, c.lo, c.hi, y + p0, ldy, out);
  }
}

namespace {

// One 16-row block of QLinearEpilogueRowsBytes.
void EpilogueRowsBytesBlock(const float* A, const int32_t* B, const int32_t* C, const float* bias,
                            int64_t n, const int32_t* sums, const int32_t* dot, int64_t ldd,
                            int64_t rows, const RowResidual& r, int64_t p0, float lo, float hi,
                            ByteOutput o, uint8_t* y, int64_t ldy, const int32_t* out) {
  for (int64_t p = 0; p < rows; ++p) {
    const int32_t* d = dot + p * ldd;
    uint8_t* yp = y + p * ldy;
    for (int64_t j = 0; j < n; ++j) {
      const int64_t oj = out != nullptr ? out[j] : j;
      float v = std::fma(static_cast<float>(d[j] + B[j] - C[j] * sums[p]), A[j], bias[j]);
      if (r.planes != nullptr) v += r.planes[oj * r.ld + p0 + p];
      if (r.bytes != nullptr)
        v += r.scale * static_cast<float>(r.bytes[(p0 + p) * r.ld + oj] - r.zero);
      yp[oj] = ToByte(std::min(std::max(v, lo), hi), o);
    }
  }
}

}  // namespace

void QLinearEpilogueRowsBytes(const QLinearWeights& w, const ColumnEpilogue& c, const int32_t* sums,
                              const int32_t* dot, int64_t rows, const RowResidual& res, ByteOutput o,
                              uint8_t* y, int64_t ldy, int64_t j0, int64_t j1) {
  const EpilogueSlice e(w, c, dot, j0, j1);
  const int64_t n = e.n;
  const float *A = e.A, *bias = e.bias;
  const int32_t *B = e.B, *C = e.C, *out = e.out;
  dot = e.dot;
  RowResidual r = res;
  if (out == nullptr) {
    y += j0;
    if (r.planes != nullptr) r.planes += j0 * r.ld;
    if (r.bytes != nullptr) r.bytes += j0;
  }
  if (c.avx512) {
    EpilogueRowsBytesAvx512(A, B, C, bias, n, sums, dot, w.n_pad, rows, r, c.lo, c.hi, o, y, ldy,
                            out);
    return;
  }
  if (c.avx2 && out == nullptr && (r.planes == nullptr || r.ld < (int64_t{1} << 27))) {
    EpilogueRowsBytesAvx2(A, B, C, bias, n, sums, dot, w.n_pad, rows, r, c.lo, c.hi, o, y, ldy);
    return;
  }
  for (int64_t p0 = 0; p0 < rows; p0 += 16) {
    const int64_t m = std::min<int64_t>(16, rows - p0);
    EpilogueRowsBytesBlock(A, B, C, bias, n, sums + p0, dot + p0 * w.n_pad, w.n_pad, m, r, p0, c.lo,
                           c.hi, o, y + p0 * ldy, ldy, out);
  }
}

void MergeColumnEpilogues(const std::vector<ColumnEpilogue>& parts, int64_t n, ColumnEpilogue* m) {
  m->A.assign(n, 0.0f);
  m->bias.assign(n, 0.0f);
  m->B.assign(n, 0);
  m->C.assign(n, 0);
  m->out.clear();
  for (const ColumnEpilogue& p : parts) {
    for (size_t i = 0; i < p.out.size(); ++i) {
      const int32_t j = p.out[i];
      m->A[j] = p.A[i];
      m->bias[j] = p.bias[i];
      m->B[j] = p.B[i];
      m->C[j] = p.C[i];
    }
  }
  m->lo = parts[0].lo;
  m->hi = parts[0].hi;
  m->avx512 = parts[0].avx512;
  m->avx2 = parts[0].avx2;
}

void QLinearEpilogueRowsBytesGathered(const ColumnEpilogue& c, DotGather g, const int32_t* sums,
                                      const int32_t* dots, int64_t row0, int64_t rows,
                                      const RowResidual& r, ByteOutput o, uint8_t* y, int64_t ldy) {
  if (c.avx512) {
    EpilogueRowsBytesGatheredAvx512(c, g, sums, dots, row0, rows, r, o, y, ldy);
    return;
  }
  const int64_t n = static_cast<int64_t>(c.A.size());
  for (int64_t p = 0; p < rows; ++p) {
    const int64_t row = row0 + p;
    uint8_t* yp = y + p * ldy;
    for (int64_t j = 0; j < n; ++j) {
      const int32_t d = dots[g.idx[j] + row * g.step[j]];
      float v = std::fma(static_cast<float>(d + c.B[j] - c.C[j] * sums[p]), c.A[j], c.bias[j]);
      if (r.planes != nullptr) v += r.planes[j * r.ld + p];
      if (r.bytes != nullptr) v += r.scale * static_cast<float>(r.bytes[p * r.ld + j] - r.zero);
      yp[j] = ToByte(std::min(std::max(v, c.lo), c.hi), o);
    }
  }
}

}  // namespace lowbit
