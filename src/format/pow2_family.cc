// Powers of two: sign and exponent. Levels 0 and +-2^-k for k = 0..2^(B-1)-2
// (2^B - 1 levels: a multiply is one shift); pow2-1 is {-1, +1}.
#include <cmath>

#include "format/family.h"

namespace lowbit {
namespace {

class Pow2Family final : public FamilyOps {
 public:
  std::optional<Result<FormatSpec>> Parse(std::string_view name) const override {
    if (name.substr(0, 5) != "pow2-") return std::nullopt;
    Result<int> bits = ParseBitsSuffix(name, name.substr(5));
    if (!bits.ok()) return Result<FormatSpec>(bits.status());
    FormatSpec spec;
    spec.family = Family::kPow2;
    spec.bits = *bits;
    return Result<FormatSpec>(spec);
  }

  std::string Name(const FormatSpec& s) const override { return "pow2-" + std::to_string(s.bits); }

  std::string Template(const FormatSpec&) const override { return "pow2"; }

  Status Validate(const FormatSpec& s) const override {
    if (s.bits < 1 || s.bits > 8) {
      return InvalidArgument("format '", Name(s), "': bits must be in 1..8, got ", s.bits);
    }
    return OkStatus();
  }

  MultiplyCost Cost(const FormatSpec& s) const override { return MultiplyCost{s.bits, 1, 1.0}; }

  int64_t LevelTableBits(const FormatSpec&, int64_t) const override { return 0; }

  bool CanRepresentZero(const FormatSpec& s) const override { return s.bits >= 2; }

  Result<LevelFit> FitLevels(const FormatSpec& s, std::vector<float>,
                             const FitOptions&) const override {
    LevelFit fit;
    if (s.bits == 1) {
      fit.levels = {-1.0f, 1.0f};
      return fit;
    }
    const int kmax = (1 << (s.bits - 1)) - 2;
    for (int k = 0; k <= kmax; ++k) fit.levels.push_back(-std::ldexp(1.0f, -k));
    fit.levels.push_back(0.0f);
    for (int k = kmax; k >= 0; --k) fit.levels.push_back(std::ldexp(1.0f, -k));
    return fit;
  }

  std::vector<FormatSpec> Variants(int bits) const override {
    if (bits < 1 || bits > 8) return {};
    FormatSpec s;
    s.family = Family::kPow2;
    s.bits = bits;
    return {s};
  }
};

}  // namespace

const FamilyOps& MakePow2FamilyOps() {
  static const Pow2Family kOps;
  return kOps;
}

}  // namespace lowbit
