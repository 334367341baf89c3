// Codebook: 2^B arbitrary levels shared by the tensor, learned by 1-D k-means
// on the data normalized per granule (seed 002: optionally seeded by particle
// swarm optimisation). With pruning, one level is reserved for exact zero and
// k-means runs on the surviving weights.
#include <algorithm>
#include <cmath>

#include "format/family.h"
#include "format/kmeans.h"

namespace lowbit {
namespace {

class CodebookFamily final : public FamilyOps {
 public:
  std::optional<Result<FormatSpec>> Parse(std::string_view name) const override {
    if (name.substr(0, 9) != "codebook-") return std::nullopt;
    Result<int> bits = ParseBitsSuffix(name, name.substr(9));
    if (!bits.ok()) return Result<FormatSpec>(bits.status());
    FormatSpec spec;
    spec.family = Family::kCodebook;
    spec.bits = *bits;
    return Result<FormatSpec>(spec);
  }

  std::string Name(const FormatSpec& s) const override {
    return "codebook-" + std::to_string(s.bits);
  }

  std::string Template(const FormatSpec&) const override { return "codebook"; }

  Status Validate(const FormatSpec& s) const override {
    if (s.bits < 1 || s.bits > 8) {
      return InvalidArgument("format '", Name(s), "': bits must be in 1..8, got ", s.bits);
    }
    return OkStatus();
  }

  MultiplyCost Cost(const FormatSpec& s) const override {
    return MultiplyCost{s.bits, 0, static_cast<double>(s.bits)};
  }

  // Levels persist as fp32.
  int64_t LevelTableBits(const FormatSpec&, int64_t num_levels) const override {
    return 32 * num_levels;
  }

  bool CanRepresentZero(const FormatSpec&) const override { return true; }

  Result<LevelFit> FitLevels(const FormatSpec& s, std::vector<float> normalized,
                             const FitOptions& options) const override {
    int k = 1 << s.bits;
    if (options.require_zero) {
      normalized.erase(std::remove(normalized.begin(), normalized.end(), 0.0f), normalized.end());
      --k;
    }
    const SortedData data(std::move(normalized));
    std::vector<double> centroids;
    if (k > 0 && data.size() > 0) {
      centroids = KMeans1D(data, k, options.codebook_init, options.seed).centroids;
    }
    if (options.require_zero || centroids.empty()) centroids.push_back(0.0);
    std::sort(centroids.begin(), centroids.end());
    // Merge levels too close to tell apart after scaling (a decode/encode round
    // trip must return the same code); an exact zero wins a merge.
    double top = 0;
    for (double c : centroids) top = std::max(top, std::fabs(c));
    const double tol = 1e-5 * top;
    LevelFit fit;
    for (double c : centroids) {
      const float f = static_cast<float>(c);
      if (!fit.levels.empty() && f - fit.levels.back() <= tol) {
        if (f == 0.0f) fit.levels.back() = 0.0f;
        continue;
      }
      fit.levels.push_back(f);
    }
    return fit;
  }

  std::vector<FormatSpec> Variants(int bits) const override {
    if (bits < 1 || bits > 8) return {};
    FormatSpec s;
    s.family = Family::kCodebook;
    s.bits = bits;
    return {s};
  }
};

}  // namespace

const FamilyOps& MakeCodebookFamilyOps() {
  static const CodebookFamily kOps;
  return kOps;
}

}  // namespace lowbit
