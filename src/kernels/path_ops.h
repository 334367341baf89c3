// The dot-product bodies each kernel path dispatches to, from the list
// (kernels/kernel_paths.inc): QLinearDotRows and QLinearDots call them.
#ifndef LOWBIT_KERNELS_PATH_OPS_H_
#define LOWBIT_KERNELS_PATH_OPS_H_

#include <cstdint>

#include "kernels/kernel_path.h"
#include "kernels/qlinear_weights.h"

namespace lowbit {

// Rows given as pointers with per-step byte offsets; output tiles [t0, t1).
using DotRowsFn = void (*)(const QLinearWeights& w, const uint8_t* const* rows,
                           const int32_t* step_off, int64_t nrows, int32_t* dot, int64_t t0,
                           int64_t t1);
// One dense row u (k_pad bytes); output tiles [t0, t1).
using GemvFn = void (*)(const QLinearWeights& w, const uint8_t* u, int32_t* dot, int64_t t0,
                        int64_t t1);

struct PathOps {
  DotRowsFn dot_rows = nullptr;      // product kernel; null: the reference path
  DotRowsFn lut_dot_rows = nullptr;  // bit-serial table kernel; null: none
  GemvFn gemv = nullptr;             // single-row kernel; null: dot_rows on one row
};

const PathOps& OpsOf(KernelPath p);

}  // namespace lowbit

#endif  // LOWBIT_KERNELS_PATH_OPS_H_
