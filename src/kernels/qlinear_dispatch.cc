// Dispatch of the dot products to a kernel path's bodies (kernels/path_ops.h)
// and their split across threads; QLinearForward (kernels/qlinear.h).
#include <algorithm>
#include <vector>

#include "base/check.h"
#include "kernels/path_ops.h"
#include "kernels/qlinear.h"

namespace lowbit {

void QLinearDotRows(const QLinearWeights& w, KernelPath path, const uint8_t* const* rows,
                    const int32_t* step_off, int64_t nrows, int32_t* dot, int64_t t0, int64_t t1) {
  const PathOps& ops = OpsOf(path);
  if (!w.lut.empty() && nrows <= w.lut.max_rows) {
    ops.lut_dot_rows(w, rows, step_off, nrows, dot, t0, t1);
  } else {
    ops.dot_rows(w, rows, step_off, nrows, dot, t0, t1);
  }
}

namespace {

// Dense rows in the row-pointer form: row r at u + r * k_pad, step s at 4s.
struct DenseRows {
  std::vector<const uint8_t*> ptr;
  std::vector<int32_t> off;
  DenseRows(const QLinearWeights& w, const uint8_t* u, int64_t rows) : ptr(rows), off(w.steps()) {
    for (int64_t r = 0; r < rows; ++r) ptr[r] = u + r * w.k_pad;
    for (int64_t s = 0; s < w.steps(); ++s) off[s] = static_cast<int32_t>(4 * s);
  }
};

// Weights up to this size stay in a core's L2 (1 MiB here), so threads can
// each stream all of them over their own rows.
constexpr int64_t kRowSplitWeightBytes = int64_t{512} << 10;

// Splits run(r0, r1, t0, t1) across the pool: many rows over cache-resident
// weights (a convolution's pixels) in blocks of 4 rows per thread, so each
// thread streams all the weights over its own rows; otherwise output tiles
// in multiples of 4 (the kernels' register block), so each thread streams its
// share of larger weights.
template <typename Run>
void SplitDots(int64_t rows, int64_t tiles, int64_t weight_bytes, ThreadPool* pool, Run run) {
  const int parts = pool != nullptr ? pool->threads() : 1;
  const bool by_rows =
      rows >= 16 * parts && (weight_bytes <= kRowSplitWeightBytes || tiles < 8 * parts);
  if (parts > 1 && by_rows) {
    const int64_t per = ((rows + parts - 1) / parts + 3) / 4 * 4;
    pool->ParallelFor(parts, [&](int64_t a, int64_t b) {
      for (int64_t p = a; p < b; ++p) {
        const int64_t r0 = std::min(rows, p * per), r1 = std::min(rows, (p + 1) * per);
        if (r1 > r0) run(r0, r1, 0, tiles);
      }
    });
  } else if (parts > 1 && tiles >= 2 * parts) {
    const int64_t per = ((tiles + parts - 1) / parts + 3) / 4 * 4;
    pool->ParallelFor(parts, [&](int64_t a, int64_t b) {
      for (int64_t p = a; p < b; ++p)
        run(0, rows, std::min(tiles, p * per), std::min(tiles, (p + 1) * per));
    });
  } else {
    run(0, rows, 0, tiles);
  }
}

}  // namespace

void QLinearDotBatchAvx512Vnni(const QLinearWeights& w, const uint8_t* u, int64_t rows,
                               int32_t* dot, int64_t t0, int64_t t1) {
  const DenseRows d(w, u, rows);
  QLinearDotRowsAvx512Vnni(w, d.ptr.data(), d.off.data(), rows, dot, t0, t1);
}

void QLinearDotsRows(const QLinearWeights& w, KernelPath path, const uint8_t* const* rows,
                     const int32_t* step_off, int64_t nrows, int32_t* dot, ThreadPool* pool) {
  SplitDots(nrows, w.n_pad / 16, static_cast<int64_t>(w.tiles.size()), pool,
            [&](int64_t r0, int64_t r1, int64_t t0, int64_t t1) {
              QLinearDotRows(w, path, rows + r0, step_off, r1 - r0, dot + r0 * w.n_pad, t0, t1);
            });
}

void QLinearDots(const QLinearWeights& w, KernelPath path, const uint8_t* u, int64_t rows,
                 int32_t* dot, ThreadPool* pool) {
  if (!RowKernelAvailable(w, path)) {
    auto ref = [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) QLinearDotRef(w, u + r * w.k_pad, dot + r * w.n_pad);
    };
    if (pool != nullptr && rows > 1) {
      pool->ParallelFor(rows, ref);
    } else {
      ref(0, rows);
    }
    return;
  }
  // GEMV: the single-row kernel (unless the table kernel takes the row).
  const PathOps& ops = OpsOf(path);
  if (rows == 1 && ops.gemv != nullptr && w.lut.empty()) {
    SplitDots(1, w.n_pad / 16, static_cast<int64_t>(w.tiles.size()), pool,
              [&](int64_t, int64_t, int64_t t0, int64_t t1) { ops.gemv(w, u, dot, t0, t1); });
    return;
  }
  const DenseRows d(w, u, rows);
  QLinearDotsRows(w, path, d.ptr.data(), d.off.data(), rows, dot, pool);
}

void QLinearForward(const QLinearWeights& w, KernelPath path, const float* x, int64_t rows,
                    const Epilogue& e, QLinearScratch* s, float* y, ThreadPool* pool,
                    const ActQuant* act, bool symmetric, int64_t ldy) {
  if (ldy < 0) ldy = w.n;
  s->u.resize(static_cast<size_t>(rows * w.k_pad));
  s->dot.resize(static_cast<size_t>(rows * w.n_pad));
  std::vector<ActQuant>& acts = s->acts;
  acts.resize(rows);
  // Below about a million products a layer takes a few microseconds, about
  // what waking and joining another thread costs.
  if (!WorthSplitting(rows * w.n_pad * w.k_pad)) pool = nullptr;
  // Several rows: each thread also quantizes and finishes its share of them
  // (otherwise 5-10% of a batch-8 layer would stay on one thread).
  auto for_rows = [&](auto fn) {
    if (pool != nullptr && rows > 1) {
      pool->ParallelFor(rows, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) fn(r);
      });
    } else {
      for (int64_t r = 0; r < rows; ++r) fn(r);
    }
  };
  for_rows([&](int64_t r) {
    uint8_t* u = s->u.data() + r * w.k_pad;
    const float* xr = x + r * w.k;
    const ActQuant p =
        act != nullptr ? *act : DynamicActParams(xr, w.k, symmetric, w.signed_acts());
    acts[r] = QuantizeRowWith(xr, w.k, w.k_pad, p, w.signed_acts(), u);
  });
  QLinearDots(w, path, s->u.data(), rows, s->dot.data(), pool);
  for_rows(
      [&](int64_t r) { QLinearEpilogue(w, acts[r], s->dot.data() + r * w.n_pad, e, y + r * ldy); });
}

}  // namespace lowbit
