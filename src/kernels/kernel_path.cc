#include "kernels/kernel_path.h"

#include <cstdlib>

#if defined(__x86_64__)
#include <cpuid.h>
#endif

namespace lowbit {

#if defined(__x86_64__)
#define LOWBIT_CPU_HAS(feature) __builtin_cpu_supports(feature)
// AVX-VNNI from CPUID (leaf 7, subleaf 1, EAX bit 4): clang 15 does not know
// the feature name, and GCC 12's answer depends on its own CPU tables.
bool CpuHasAvxVnni() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  return __get_cpuid_count(7, 1, &a, &b, &c, &d) != 0 && ((a >> 4) & 1) != 0;
}
#define LOWBIT_CPU_HAS_AVXVNNI() CpuHasAvxVnni()
#else
#define LOWBIT_CPU_HAS(feature) false
#define LOWBIT_CPU_HAS_AVXVNNI() false
#endif

const std::vector<KernelPath>& AllKernelPaths() {
  static const std::vector<KernelPath> paths = {
#define LOWBIT_KERNEL_PATH(id, name, bits, check, ...) KernelPath::id,
#include "kernels/kernel_paths.inc"
#undef LOWBIT_KERNEL_PATH
  };
  return paths;
}

const char* KernelPathName(KernelPath p) {
  switch (p) {
#define LOWBIT_KERNEL_PATH(id, name, bits, check, ...) \
  case KernelPath::id:                            \
    return name;
#include "kernels/kernel_paths.inc"
#undef LOWBIT_KERNEL_PATH
  }
  return "?";
}

int KernelPathBits(KernelPath p) {
  switch (p) {
#define LOWBIT_KERNEL_PATH(id, name, bits, check, ...) \
  case KernelPath::id:                            \
    return bits;
#include "kernels/kernel_paths.inc"
#undef LOWBIT_KERNEL_PATH
  }
  return 0;
}

bool KernelPathAvailable(KernelPath p) {
  switch (p) {
#define LOWBIT_KERNEL_PATH(id, name, bits, check, ...) \
  case KernelPath::id:                            \
    return (check);
#include "kernels/kernel_paths.inc"
#undef LOWBIT_KERNEL_PATH
  }
  return false;
}

int64_t KernelPathLutRows(KernelPath p) {
  switch (p) {
#define LOWBIT_KERNEL_PATH(id, name, bits, check, lut_rows, ...) \
  case KernelPath::id:                                         \
    return lut_rows;
#include "kernels/kernel_paths.inc"
#undef LOWBIT_KERNEL_PATH
  }
  return 0;
}

std::vector<KernelPath> AvailableKernelPaths() {
  std::vector<KernelPath> out;
  for (KernelPath p : AllKernelPaths()) {
    if (KernelPathAvailable(p)) out.push_back(p);
  }
  return out;
}

std::optional<KernelPath> ParseKernelPath(const std::string& name) {
  for (KernelPath p : AllKernelPaths()) {
    if (name == KernelPathName(p)) return p;
  }
  return std::nullopt;
}

Result<KernelPath> ResolveKernelPath(const KernelOptions& o) {
  if (o.path) {
    if (!KernelPathAvailable(*o.path)) {
      return Unimplemented("kernel path ", KernelPathName(*o.path),
                           ": this CPU cannot run that kernel path");
    }
    return *o.path;
  }
  return AvailableKernelPaths().back();  // the reference path is always there
}

Status ApplyKernelEnvironment(KernelOptions* o) {
  if (const char* env = std::getenv("LOWBIT_KERNEL"); env != nullptr && *env != '\0') {
    const std::optional<KernelPath> p = ParseKernelPath(env);
    if (!p) {
      std::string names;
      for (KernelPath q : AllKernelPaths()) names += (names.empty() ? "" : ", ") + std::string(KernelPathName(q));
      return InvalidArgument("LOWBIT_KERNEL=", env, ": unknown kernel path (", names, ")");
    }
    if (!KernelPathAvailable(*p)) {
      return Unimplemented("LOWBIT_KERNEL=", env, ": this CPU cannot run that kernel path");
    }
    o->path = p;
  }
  if (const char* env = std::getenv("LOWBIT_LUT"); env != nullptr && *env != '\0') {
    const std::string mode = env;
    if (mode == "on") {
      o->lut = KernelRule::kOn;
    } else if (mode == "off") {
      o->lut = KernelRule::kOff;
    } else if (mode == "auto") {
      o->lut = KernelRule::kAuto;
    } else {
      return InvalidArgument("LOWBIT_LUT=", mode, ": expected on, off or auto");
    }
  }
  if (const char* env = std::getenv("LOWBIT_WINOGRAD"); env != nullptr && *env != '\0') {
    const std::string mode = env;
    if (mode == "0") {
      o->winograd = KernelRule::kOff;
    } else if (mode == "1") {
      o->winograd = KernelRule::kOn;
    } else {
      return InvalidArgument("LOWBIT_WINOGRAD=", mode, ": expected 0 (off) or 1 (on)");
    }
  }
  return OkStatus();
}

}  // namespace lowbit
