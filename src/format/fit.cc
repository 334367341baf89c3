// Fit: choose a format's parameters for one tensor.
//
// 1. Each granule gets a range statistic: max |x| (minmax, mse), a percentile
//    of |x| (percentile), max x for unsigned grids, or [lo, hi] for grids with a
//    zero point.
// 2. The level table: fixed by the spec, or fitted (nhot, codebook) to the
//    pooled values of all granules divided by their statistic.
// 3. Each granule's scale is statistic * unit; with clip = mse, a search over
//    0.2..1.2 times that scale (coarse, then fine) keeps the one with the least
//    squared error, so clipping outliers is traded against resolution.
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <limits>

#include "format/encode.h"
#include "format/family.h"

namespace lowbit {
namespace {

// Scale search and level fitting look at this many values of a granule at most
// (an evenly strided sample); enough to place a scale to well under 1%.
constexpr int64_t kMaxSearchValues = 65536;
constexpr int64_t kMaxLevelFitValues = int64_t{1} << 20;

void GatherGranule(const QuantParams& p, const float* x, int64_t g, std::vector<float>* out) {
  out->clear();
  switch (p.granularity.kind) {
    case Granularity::kTensor: out->assign(x, x + p.rows * p.cols); return;
    case Granularity::kChannel: out->assign(x + g * p.cols, x + (g + 1) * p.cols); return;
    case Granularity::kGroup: {
      const int64_t gpr = p.groups_per_row(), r = g / gpr, gs = p.granularity.group_size;
      const int64_t c0 = (g % gpr) * gs, c1 = std::min(c0 + gs, p.cols);
      out->assign(x + r * p.cols + c0, x + r * p.cols + c1);
      return;
    }
  }
}

// The value at `pct` percent of the sorted values (nearest rank); scratch is
// reordered.
float Percentile(std::vector<float>& v, double pct) {
  const size_t k = static_cast<size_t>(std::floor(pct / 100.0 * static_cast<double>(v.size() - 1)));
  std::nth_element(v.begin(), v.begin() + static_cast<ptrdiff_t>(k), v.end());
  return v[k];
}

// Every `stride`-th value, starting in the middle of the first stride.
std::vector<float> Strided(const std::vector<float>& v, int64_t max_count) {
  const int64_t n = static_cast<int64_t>(v.size());
  if (n <= max_count) return v;
  std::vector<float> out;
  out.reserve(max_count);
  for (int64_t i = 0; i < max_count; ++i) out.push_back(v[(2 * i + 1) * n / (2 * max_count)]);
  return out;
}

float SafeScale(double s) {
  if (!(s >= FLT_MIN) || !std::isfinite(static_cast<float>(s))) return s > 0 ? FLT_MAX : FLT_MIN;
  return static_cast<float>(s);
}

// Searches scale = base * alpha for alpha in 0.2..1.2 (steps 0.02, then 0.002
// around the best); returns the best scale. alpha = 1 is always tried.
float SearchScale(const std::vector<float>& v, const std::vector<float>& levels, bool grid,
                  double base, int zero_point) {
  auto sse = [&](double alpha) {
    return GranuleCoder(levels, grid, SafeScale(base * alpha), zero_point)
        .Sse(v.data(), static_cast<int64_t>(v.size()));
  };
  double best_alpha = 1.0, best = sse(1.0);
  for (int i = 0; i <= 50; ++i) {
    const double a = (20 + 2 * i) / 100.0;
    const double e = sse(a);
    if (e < best) {
      best = e;
      best_alpha = a;
    }
  }
  const double center = best_alpha;
  for (int i = -10; i <= 10; ++i) {
    const double a = center + i * 0.002;
    if (a <= 0 || i == 0) continue;
    const double e = sse(a);
    if (e < best) {
      best = e;
      best_alpha = a;
    }
  }
  return SafeScale(base * best_alpha);
}

Status CheckFinite(const float* x, int64_t rows, int64_t cols, const FormatSpec& spec) {
  for (int64_t i = 0; i < rows * cols; ++i) {
    if (!std::isfinite(x[i])) {
      return InvalidArgument("value at [", i / cols, ", ", i % cols, "] is ", x[i], ": ",
                             FormatName(spec), " cannot encode NaN or Inf");
    }
  }
  return OkStatus();
}

}  // namespace

Result<QuantParams> Fit(const float* x, int64_t rows, int64_t cols, const FormatSpec& spec,
                        const FitOptions& opt) {
  LOWBIT_RETURN_IF_ERROR(ValidateSpec(spec));
  if (rows <= 0 || cols <= 0) {
    return InvalidArgument("cannot fit ", FormatName(spec), " to an empty tensor (", rows, " x ",
                           cols, ")");
  }
  if (opt.granularity.kind == Granularity::kGroup && opt.granularity.group_size < 1) {
    return InvalidArgument("granularity group size must be >= 1, got ", opt.granularity.group_size);
  }
  if (opt.clip == ClipMethod::kPercentile && !(opt.percentile > 0 && opt.percentile <= 100)) {
    return InvalidArgument("clip percentile must be in (0, 100], got ", opt.percentile);
  }
  LOWBIT_RETURN_IF_ERROR(CheckFinite(x, rows, cols, spec));

  QuantParams p;
  p.spec = spec;
  p.rows = rows;
  p.cols = cols;
  if (spec.family == Family::kFloat) return p;  // no parameters to fit
  p.granularity = opt.granularity;

  const FamilyOps& ops = OpsFor(spec.family);
  if (opt.require_zero && !ops.CanRepresentZero(spec)) {
    return InvalidArgument("format ", FormatName(spec),
                           " has no exact zero level, so it cannot hold pruned weights");
  }
  const bool asym = spec.family == Family::kInt && spec.asymmetric;
  const bool positive = spec.family == Family::kInt && !spec.is_signed && !asym;
  const bool pct = opt.clip == ClipMethod::kPercentile;
  const int64_t num_granules = p.num_granules();

  // 1. Range statistics.
  std::vector<double> stat(num_granules), lo(num_granules), hi(num_granules);
  std::vector<float> v, scratch;
  for (int64_t g = 0; g < num_granules; ++g) {
    GatherGranule(p, x, g, &v);
    if (asym) {
      scratch = v;
      lo[g] = std::min(0.0f, pct ? Percentile(scratch, 100.0 - opt.percentile)
                                 : *std::min_element(v.begin(), v.end()));
      hi[g] = std::max(0.0f, pct ? Percentile(scratch, opt.percentile)
                                 : *std::max_element(v.begin(), v.end()));
    } else if (positive) {
      scratch = v;
      stat[g] = std::max(0.0f, pct ? Percentile(scratch, opt.percentile)
                                   : *std::max_element(v.begin(), v.end()));
    } else {
      scratch.resize(v.size());
      for (size_t i = 0; i < v.size(); ++i) scratch[i] = std::fabs(v[i]);
      stat[g] = pct ? Percentile(scratch, opt.percentile)
                    : *std::max_element(scratch.begin(), scratch.end());
    }
  }

  // 2. The level table, from the pooled normalized values when the family
  // fits one to data.
  std::vector<float> pooled;
  if (spec.family == Family::kNHot || spec.family == Family::kCodebook) {
    const int64_t n = rows * cols;
    const int64_t stride = std::max<int64_t>(1, (n + kMaxLevelFitValues - 1) / kMaxLevelFitValues);
    pooled.reserve(n / stride + 1);
    for (int64_t i = 0; i < n; i += stride) {
      const double s = stat[p.granule_of(i / cols, i % cols)];
      pooled.push_back(s > 0 ? static_cast<float>(x[i] / s) : 0.0f);
    }
  }
  LevelFit fit;
  LOWBIT_ASSIGN_OR_RETURN(fit, ops.FitLevels(spec, std::move(pooled), opt));
  p.levels = std::move(fit.levels);
  const bool grid = IsIntGrid(p.levels);

  // 3. Scales (and zero points).
  p.scales.resize(num_granules);
  if (asym) p.zero_points.resize(num_granules);
  const double qmax = static_cast<double>((1 << spec.bits) - 1);
  for (int64_t g = 0; g < num_granules; ++g) {
    if (asym) {
      const double range = hi[g] - lo[g];
      if (!(range > 0)) {
        p.scales[g] = 1.0f;
        p.zero_points[g] = 0;
        continue;
      }
      const double base = range / qmax;
      int zp = static_cast<int>(std::clamp(std::nearbyint(-lo[g] / base), 0.0, qmax));
      float s = SafeScale(base);
      if (opt.clip == ClipMethod::kMse) {
        GatherGranule(p, x, g, &v);
        const std::vector<float> sample = Strided(v, kMaxSearchValues);
        // Shrinking [lo, hi] about zero keeps the zero point; then try its
        // neighbours at the chosen scale.
        s = SearchScale(sample, p.levels, grid, base, zp);
        double best = std::numeric_limits<double>::infinity();
        int best_zp = zp;
        for (int z = std::max(0, zp - 1); z <= std::min<int>(static_cast<int>(qmax), zp + 1); ++z) {
          const double e = GranuleCoder(p.levels, grid, s, z).Sse(sample.data(), sample.size());
          if (e < best) {
            best = e;
            best_zp = z;
          }
        }
        zp = best_zp;
      }
      p.scales[g] = s;
      p.zero_points[g] = zp;
      continue;
    }
    if (!(stat[g] > 0)) {
      p.scales[g] = 1.0f;  // an all-zero granule: any scale codes it exactly
      continue;
    }
    const double base = stat[g] * fit.unit;
    if (opt.clip == ClipMethod::kMse) {
      GatherGranule(p, x, g, &v);
      p.scales[g] = SearchScale(Strided(v, kMaxSearchValues), p.levels, grid, base, 0);
    } else {
      p.scales[g] = SafeScale(base);
    }
  }
  return p;
}

bool StoresLevels(const FormatSpec& spec) {
  return spec.family != Family::kFloat && OpsFor(spec.family).LevelTableBits(spec, 2) != 0;
}

Result<std::vector<float>> ImpliedLevels(const FormatSpec& spec) {
  LOWBIT_RETURN_IF_ERROR(ValidateSpec(spec));
  if (spec.family == Family::kFloat || StoresLevels(spec)) {
    return InvalidArgument(FormatName(spec), ": levels are not implied by the format");
  }
  LevelFit fit;
  LOWBIT_ASSIGN_OR_RETURN(fit, OpsFor(spec.family).FitLevels(spec, {}, FitOptions{}));
  return std::move(fit.levels);
}

}  // namespace lowbit
