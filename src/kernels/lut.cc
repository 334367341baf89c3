// The table kernel's weight layout, its scalar reference and the rule that
// picks it (see lut.h).
#include "kernels/lut.h"

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace lowbit {

bool LutEligible(const QLinearWeights& w) {
  return w.layout == QLinearWeights::Layout::kPlanes ? w.bits == 1 || w.bits == 2 : w.bits == 1;
}

LutMap LutMapOf(const QLinearWeights& w) {
  if (w.layout == QLinearWeights::Layout::kPlanes) return {};
  return {w.table[1] - w.table[0], w.table[0]};
}

void PrepareLut(QLinearWeights* w, int64_t max_rows) {
  w->lut.max_rows = max_rows;
  const int64_t blocks = LutBlocks(*w);
  w->lut.index.assign(static_cast<size_t>(w->n_pad / 16 * blocks * 64), 0);
  for (int64_t r = 0; r < w->n; ++r) {
    const uint8_t* row = w->codes.data() + r * w->row_bytes;
    const int64_t tile = r / 16, i = r % 16;
    for (int64_t c = 0; c < w->k; ++c) {
      const uint32_t code = CodeField(row, c * w->bits, w->bits);
      const int64_t g = c / 4, j = c % 4, q = g / 4, lane = g % 4;
      for (int p = 0; p < w->bits; ++p) {
        if (((code >> p) & 1) == 0) continue;
        const int64_t b = w->bits == 2 ? q : q / 2;
        const int shift = 4 * (w->bits == 2 ? p : static_cast<int>(q % 2));
        w->lut.index[(tile * blocks + b) * 64 + 16 * lane + i] |= static_cast<uint8_t>(1 << (j + shift));
      }
    }
  }
}

int64_t LutMaxRows(const QLinearWeights& w, KernelPath path, KernelRule rule) {
  if (!LutEligible(w) || LutRows(path) == 0 || rule == KernelRule::kOff) return 0;
  if (rule == KernelRule::kOn) return INT64_MAX;
  const int64_t min_outputs = KernelPathBits(path) == 512 ? 256 : 1024;
  return w.bits == 1 && w.n >= min_outputs ? LutRows(path) : 0;
}

uint8_t* LutScratch(int64_t bytes) {
  thread_local std::vector<uint8_t> tables;
  if (tables.size() < static_cast<size_t>(bytes)) tables.resize(static_cast<size_t>(bytes));
  return tables.data();
}

int32_t BuildLutTablesRef(const QLinearWeights& w, const uint8_t* x, const int32_t* step_off,
                          uint8_t* tables) {
  int32_t sum = 0;
  for (int64_t q = 0; q < LutQuads(w); ++q) {
    uint8_t* lo = tables + q * 128;
    uint8_t* hi = lo + 64;
    for (int lane = 0; lane < 4; ++lane) {
      const int64_t step = 4 * q + lane;
      const uint8_t* p = step < w.steps() ? x + step_off[step] : nullptr;
      int16_t t[16], a[4];
      for (int j = 0; j < 4; ++j) {
        a[j] = p == nullptr ? 0 : w.signed_acts() ? static_cast<int8_t>(p[j]) : p[j];
        sum += a[j];
      }
      t[0] = 0;
      for (int j = 0; j < 4; ++j) {
        for (int m = 0; m < (1 << j); ++m) t[(1 << j) + m] = static_cast<int16_t>(t[m] + a[j]);
      }
      for (int m = 0; m < 16; ++m) {
        lo[16 * lane + m] = static_cast<uint8_t>(t[m] & 0xFF);
        hi[16 * lane + m] = static_cast<uint8_t>((t[m] >> 8) & 0xFF);
      }
    }
  }
  return sum;
}

void LutSumTileRef(const QLinearWeights& w, const uint8_t* tables, int64_t t, int32_t* sums) {
  const int64_t blocks = LutBlocks(w);
  const uint8_t* tile = w.lut.index.data() + t * blocks * 64;
  for (int i = 0; i < 16; ++i) {
    int32_t acc = 0;
    for (int64_t b = 0; b < blocks; ++b) {
      for (int lane = 0; lane < 4; ++lane) {
        const uint8_t v = tile[b * 64 + 16 * lane + i];
        for (int h = 0; h < 2; ++h) {
          const int m = (v >> (4 * h)) & 0x0F;
          const int64_t q = w.bits == 2 ? b : 2 * b + h;
          const uint8_t* tq = tables + q * 128 + 16 * lane + m;
          const int16_t entry = static_cast<int16_t>(tq[0] | (tq[64] << 8));
          acc += (w.bits == 2 ? (1 << h) : 1) * entry;
        }
      }
    }
    sums[i] = acc;
  }
}

void LutDotRowsRef(const QLinearWeights& w, const uint8_t* const* rows, const int32_t* step_off,
                   int64_t nrows, int32_t* dot, int64_t t0, int64_t t1) {
  std::vector<uint8_t> tables(static_cast<size_t>(LutTableBytes(w)));
  const LutMap map = LutMapOf(w);
  for (int64_t r = 0; r < nrows; ++r) {
    const int32_t usum = BuildLutTablesRef(w, rows[r], step_off, tables.data());
    for (int64_t t = t0; t < t1; ++t) {
      int32_t* d = dot + r * w.n_pad + t * 16;
      LutSumTileRef(w, tables.data(), t, d);
      for (int i = 0; i < 16; ++i) d[i] = map.scale * d[i] + map.offset * usum;
    }
  }
}

}  // namespace lowbit
