// The 256-bit dot products on AVX-VNNI's vpdpbusd (ymm, VEX encoded: CPUs with
// AVX-VNNI but no AVX-512, and any CPU with both). Compiled with -mavx2
// -mavxvnni for this file only.
#define LOWBIT_AVX2_DOT_ROWS QLinearDotRowsAvxVnni
#include "kernels/qlinear_avx2_inl.h"
