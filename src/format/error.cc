// Quantization error and storage accounting.
#include <cmath>
#include <limits>

#include "format/family.h"

namespace lowbit {

ErrorStats MeasureError(const float* x, const float* xhat, int64_t n) {
  ErrorStats e;
  double signal = 0, noise = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double d = static_cast<double>(x[i]) - xhat[i];
    signal += static_cast<double>(x[i]) * x[i];
    noise += d * d;
    e.max_abs = std::max(e.max_abs, std::fabs(d));
  }
  e.mse = n > 0 ? noise / static_cast<double>(n) : 0.0;
  e.sqnr_db = noise > 0 ? 10.0 * std::log10(signal / noise)
                        : std::numeric_limits<double>::infinity();
  return e;
}

StorageBits StorageOf(const QuantParams& p) {
  StorageBits s;
  s.codes = 8 * p.rows * PackedRowBytes(p.cols, p.spec.bits);
  s.scales = 32 * static_cast<int64_t>(p.scales.size());
  s.zero_points = 8 * static_cast<int64_t>(p.zero_points.size());
  s.levels = OpsFor(p.spec.family).LevelTableBits(p.spec, static_cast<int64_t>(p.levels.size()));
  return s;
}

}  // namespace lowbit
