// fp32 GEMM for the reference runtime: OpenBLAS sgemm, parallelised by our own
// pool over column blocks of C with OpenBLAS itself single-threaded, so that
// two thread pools never compete for the same cores.
#ifndef LOWBIT_RUNTIME_SGEMM_H_
#define LOWBIT_RUNTIME_SGEMM_H_

#include <cstdint>

#include "runtime/op.h"

namespace lowbit {

// Row-major C[M, N] = alpha * op(A)[M, K] * op(B)[K, N] + beta * C.
void Sgemm(const ExecContext& ctx, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
           float alpha, const float* a, int64_t lda, const float* b, int64_t ldb, float beta,
           float* c, int64_t ldc);

}  // namespace lowbit

#endif  // LOWBIT_RUNTIME_SGEMM_H_
