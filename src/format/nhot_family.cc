// n-hot (seed 001): each level is a sum/difference of at most n powers of two,
// so multiplying by a weight is n shift-adds.
//
// Levels are integers k in [-127, 127] with k = sum of m <= n terms +-2^e,
// e in 0..6 (so every level is an int8 and kernels can use the int8 grid);
// the scale absorbs the rest. For B bits the format keeps the 2^B candidates
// that best fit the data: for each unit on a grid of 2^(1/8) steps over five
// octaves, an exact dynamic program picks the subset with the least squared
// error, and the best unit wins.
#include <algorithm>
#include <cmath>
#include <set>

#include "format/family.h"
#include "format/kmeans.h"

namespace lowbit {

// All integers in [-127, 127] that are a sum of at most n signed powers of two
// 2^0..2^6; ascending.
std::vector<int> NHotCandidates(int n) {
  std::set<int> reach = {0};
  for (int t = 0; t < n; ++t) {
    std::set<int> next = reach;
    for (int v : reach) {
      for (int e = 0; e <= 6; ++e) {
        for (int s : {-1, 1}) {
          const int w = v + s * (1 << e);
          if (w >= -127 && w <= 127) next.insert(w);
        }
      }
    }
    reach = std::move(next);
  }
  return {reach.begin(), reach.end()};
}

namespace {

class NHotFamily final : public FamilyOps {
 public:
  std::optional<Result<FormatSpec>> Parse(std::string_view name) const override {
    if (name.substr(0, 4) != "nhot") return std::nullopt;
    const size_t dash = name.find('-');
    FormatSpec spec;
    spec.family = Family::kNHot;
    if (dash == std::string_view::npos || dash == 4) {
      return Result<FormatSpec>(
          InvalidArgument("format '", name, "': expected nhotN-B (e.g. nhot2-4)"));
    }
    Result<int> hot = ParseBitsSuffix(name, name.substr(4, dash - 4));
    if (!hot.ok()) return Result<FormatSpec>(hot.status());
    Result<int> bits = ParseBitsSuffix(name, name.substr(dash + 1));
    if (!bits.ok()) return Result<FormatSpec>(bits.status());
    spec.hot = *hot;
    spec.bits = *bits;
    return Result<FormatSpec>(spec);
  }

  std::string Name(const FormatSpec& s) const override {
    return "nhot" + std::to_string(s.hot) + "-" + std::to_string(s.bits);
  }

  std::string Template(const FormatSpec& s) const override {
    return "nhot" + std::to_string(s.hot);
  }

  Status Validate(const FormatSpec& s) const override {
    if (s.bits < 1 || s.bits > 8) {
      return InvalidArgument("format '", Name(s), "': bits must be in 1..8, got ", s.bits);
    }
    if (s.hot < 1 || s.hot > 3) {
      return InvalidArgument("format '", Name(s), "': n (powers of two per level) must be in 1..3, got ",
                             s.hot);
    }
    return OkStatus();
  }

  MultiplyCost Cost(const FormatSpec& s) const override {
    return MultiplyCost{s.bits, s.hot, static_cast<double>(s.hot)};
  }

  // Levels persist as int8.
  int64_t LevelTableBits(const FormatSpec&, int64_t num_levels) const override {
    return 8 * num_levels;
  }

  bool CanRepresentZero(const FormatSpec&) const override { return true; }

  Result<LevelFit> FitLevels(const FormatSpec& s, std::vector<float> normalized,
                             const FitOptions& options) const override {
    const std::vector<int> cand = NHotCandidates(s.hot);
    const int k = 1 << s.bits;
    const SortedData data(std::move(normalized));
    LevelFit best;
    if (data.size() == 0) {
      best.levels = {0.0f};
      return best;
    }
    const double vmin = std::min<double>(data.values().front(), 0.0);
    const double vmax = std::max<double>(data.values().back(), 0.0);
    const double top = std::max(std::fabs(vmin), vmax);
    const int cmax = cand.back();
    double best_sse = std::numeric_limits<double>::infinity();
    for (int t = 0; t <= 40; ++t) {
      const double unit = top / cmax * std::exp2(t / 8.0);
      // Only candidates inside the data's range, plus the nearest one beyond
      // each end, can be useful.
      std::vector<double> levels;
      std::vector<int> ints;
      for (size_t i = 0; i < cand.size(); ++i) {
        const double v = cand[i] * unit;
        const bool below = v < vmin && (i + 1 == cand.size() || cand[i + 1] * unit < vmin);
        const bool above = v > vmax && (i == 0 || cand[i - 1] * unit > vmax);
        if (below || above) continue;
        levels.push_back(v);
        ints.push_back(cand[i]);
      }
      int forced = -1;
      if (options.require_zero) {
        forced = static_cast<int>(std::find(ints.begin(), ints.end(), 0) - ints.begin());
      }
      const Selection sel = SelectLevels(data, levels, k, forced);
      if (sel.sse < best_sse) {
        best_sse = sel.sse;
        best.unit = unit;
        best.levels.clear();
        for (int i : sel.chosen) best.levels.push_back(static_cast<float>(ints[i]));
      }
    }
    return best;
  }

  std::vector<FormatSpec> Variants(int bits) const override {
    if (bits < 1 || bits > 8) return {};
    std::vector<FormatSpec> out;
    for (int n = 1; n <= 3; ++n) {
      FormatSpec s;
      s.family = Family::kNHot;
      s.bits = bits;
      s.hot = n;
      out.push_back(s);
    }
    return out;
  }
};

}  // namespace

const FamilyOps& MakeNHotFamilyOps() {
  static const NHotFamily kOps;
  return kOps;
}

}  // namespace lowbit
