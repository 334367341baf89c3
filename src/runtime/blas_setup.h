// Making sure the fp32 baseline is honest: Debian's OpenBLAS 0.3.21 does not
// recognise recent AMD CPUs and picks its AVX2 kernels even where AVX-512 is
// available, running sgemm at about half speed.
#ifndef LOWBIT_RUNTIME_BLAS_SETUP_H_
#define LOWBIT_RUNTIME_BLAS_SETUP_H_

namespace lowbit {

// When OPENBLAS_CORETYPE is unset, the CPU has AVX-512 and OpenBLAS chose a
// core without it, re-executes the program (argv) with
// OPENBLAS_CORETYPE=SkylakeX; OpenBLAS reads it only when it loads. Returns
// (without re-executing) in every other case, or if exec fails.
void EnsureFastBlas(char** argv);

// OpenBLAS's kernel family ("SkylakeX", "Zen", ...).
const char* BlasCoreName();

}  // namespace lowbit

#endif  // LOWBIT_RUNTIME_BLAS_SETUP_H_
