// Kernel paths (instruction sets) and the kernel choices a plan makes once:
// which path, whether the bit-serial table kernel (LUT) and exact Winograd
// run. The paths come from one list, kernels/kernel_paths.inc. The choices
// are PlanOptions::kernels; the environment (LOWBIT_KERNEL, LOWBIT_LUT,
// LOWBIT_WINOGRAD) is read only by the command line, as overrides.
#ifndef LOWBIT_KERNELS_KERNEL_PATH_H_
#define LOWBIT_KERNELS_KERNEL_PATH_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "lowbit/status.h"

namespace lowbit {

enum class KernelPath {
#define LOWBIT_KERNEL_PATH(id, name, ...) id,
#include "kernels/kernel_paths.inc"
#undef LOWBIT_KERNEL_PATH
};

// Every path in the list's order (available or not).
const std::vector<KernelPath>& AllKernelPaths();
const char* KernelPathName(KernelPath p);
// The vector width of the path's bodies: 0 for the portable reference.
int KernelPathBits(KernelPath p);
bool KernelPathAvailable(KernelPath p);
// The most activation rows per call the bit-serial table kernel takes on
// this path (kernels/lut.h, LutMaxRows); 0: no table kernel.
int64_t KernelPathLutRows(KernelPath p);
// The paths this CPU runs, in the list's order.
std::vector<KernelPath> AvailableKernelPaths();
std::optional<KernelPath> ParseKernelPath(const std::string& name);

// The 256-bit paths, which read PrepareAvx2Table's forms of table layouts.
inline bool Is256BitPath(KernelPath p) { return KernelPathBits(p) == 256; }

enum class KernelRule { kAuto, kOn, kOff };

struct KernelOptions {
  std::optional<KernelPath> path;  // unset: the best this CPU runs (last available)
  // The bit-serial table kernel for 1-bit weights in wide layers at small
  // batches (LutMaxRows): by its rule, always where eligible, or never.
  KernelRule lut = KernelRule::kAuto;
  // Exact Winograd F(4x4, 3x3) for eligible 3x3 convolutions: by its tile
  // rule, at any tile count, or never.
  KernelRule winograd = KernelRule::kAuto;
};

// The path `options` selects; refuses one this CPU cannot run.
Result<KernelPath> ResolveKernelPath(const KernelOptions& options);

// Applies the environment's overrides to `options`: LOWBIT_KERNEL (a path
// name), LOWBIT_LUT (on, off, auto), LOWBIT_WINOGRAD (0, 1). Errors name the
// variable and its value.
Status ApplyKernelEnvironment(KernelOptions* options);

}  // namespace lowbit

#endif  // LOWBIT_KERNELS_KERNEL_PATH_H_
