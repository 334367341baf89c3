#include "runtime/blas_setup.h"

#include <cblas.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

namespace lowbit {

const char* BlasCoreName() { return openblas_get_corename(); }

void EnsureFastBlas(char** argv) {
  if (std::getenv("OPENBLAS_CORETYPE") != nullptr) return;
#if defined(__x86_64__)
  if (!__builtin_cpu_supports("avx512f")) return;
  const char* core = openblas_get_corename();
  if (core == nullptr || std::strstr(core, "SkylakeX") != nullptr ||
      std::strstr(core, "Cooperlake") != nullptr || std::strstr(core, "SapphireRapids") != nullptr) {
    return;
  }
  setenv("OPENBLAS_CORETYPE", "SkylakeX", 1);
  execv("/proc/self/exe", argv);  // returns only on failure: carry on as we are
#else
  (void)argv;
#endif
}

}  // namespace lowbit
