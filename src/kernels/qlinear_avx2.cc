// The 256-bit dot products on vpmaddubsw + vpmaddwd (plain AVX2). Compiled
// with -mavx2 for this file only.
#define LOWBIT_AVX2_DOT_ROWS QLinearDotRowsAvx2
#include "kernels/qlinear_avx2_inl.h"
