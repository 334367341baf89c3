// Run-time dispatch for plain C++ loops: LOWBIT_VECTORIZE compiles a function
// for AVX-512, AVX2 and baseline x86-64 and picks one when the program loads
// (GCC target_clones / ifunc), so one binary runs everywhere and uses the
// widest vectors the CPU has. Hand-written SIMD kernels dispatch on their own.
#ifndef LOWBIT_BASE_TARGET_H_
#define LOWBIT_BASE_TARGET_H_

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define LOWBIT_VECTORIZE __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define LOWBIT_VECTORIZE
#endif

#endif  // LOWBIT_BASE_TARGET_H_
