#include "runtime/sgemm.h"

#include <cblas.h>

#include <algorithm>

namespace lowbit {

void Sgemm(const ExecContext& ctx, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
           float alpha, const float* a, int64_t lda, const float* b, int64_t ldb, float beta,
           float* c, int64_t ldc) {
  if (m <= 0 || n <= 0) return;
  // Split N when each thread still gets a worthwhile block (>= 64 columns and
  // enough work); column blocks are multiples of 16 to keep kernels aligned.
  const int threads = ctx.pool != nullptr ? ctx.pool->threads() : 1;
  const int64_t work = m * n * k;
  const int64_t parts = (threads > 1 && n >= 64 * threads && work >= (int64_t{1} << 18)) ? threads : 1;
  auto call = [&](int64_t n0, int64_t n1) {
    if (n1 <= n0) return;
    // One row and a weight far out of cache (>= 4 MiB): sgemv, which OpenBLAS
    // runs at memory speed where its sgemm is 4x slower (4096x4096: 2.6 vs
    // 7.5 ms); on cache-resident weights sgemm is the faster of the two.
    if (m == 1 && (n1 - n0) * k >= (int64_t{1} << 20)) {
      const int64_t inc = trans_a ? lda : 1;
      if (trans_b) {  // B is [n, k]
        cblas_sgemv(CblasRowMajor, CblasNoTrans, n1 - n0, k, alpha, b + n0 * ldb, ldb, a, inc, beta,
                    c + n0, 1);
      } else {  // B is [k, n]
        cblas_sgemv(CblasRowMajor, CblasTrans, k, n1 - n0, alpha, b + n0, ldb, a, inc, beta, c + n0, 1);
      }
      return;
    }
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, m, n1 - n0, k, alpha, a, lda,
                trans_b ? b + n0 * ldb : b + n0, ldb, beta, c + n0, ldc);
  };
  if (parts == 1) {
    call(0, n);
    return;
  }
  const int64_t block = ((n + parts - 1) / parts + 15) / 16 * 16;
  ctx.pool->ParallelFor(parts, [&](int64_t s, int64_t e) {
    for (int64_t p = s; p < e; ++p) call(std::min(n, p * block), std::min(n, (p + 1) * block));
  });
}

}  // namespace lowbit
