#include "kernels/path_ops.h"

#include "kernels/lut.h"
#include "kernels/qlinear.h"

namespace lowbit {

const PathOps& OpsOf(KernelPath p) {
  static const PathOps table[] = {
#define LOWBIT_KERNEL_PATH(id, name, bits, check, lut_rows, dot_rows, lut_dot_rows, gemv) \
  PathOps{dot_rows, lut_dot_rows, gemv},
#include "kernels/kernel_paths.inc"
#undef LOWBIT_KERNEL_PATH
  };
  return table[static_cast<int>(p)];
}

}  // namespace lowbit
