// Uniform integer grids, 1-8 bits.
//   intB       signed: the integers -2^(B-1) .. 2^(B-1)-1 (full two's-complement
//              range, so int2 has 4 levels); int1 is binary {-1, +1}
//   uintB      unsigned: 0 .. 2^B-1 (for non-negative data)
//   intB-asym  0 .. 2^B-1 with a per-granule integer zero point, so any range
//              [lo, hi] containing 0 maps onto the grid with 0 exact
#include "format/family.h"

namespace lowbit {
namespace {

class IntFamily final : public FamilyOps {
 public:
  std::optional<Result<FormatSpec>> Parse(std::string_view name) const override {
    FormatSpec spec;
    spec.family = Family::kInt;
    std::string_view rest;
    if (name.substr(0, 4) == "uint") {
      spec.is_signed = false;
      rest = name.substr(4);
    } else if (name.substr(0, 3) == "int") {
      rest = name.substr(3);
    } else {
      return std::nullopt;
    }
    if (rest.size() > 5 && rest.substr(rest.size() - 5) == "-asym") {
      if (!spec.is_signed) {
        return Result<FormatSpec>(
            InvalidArgument("format '", name, "': use intB-asym for a grid with a zero point"));
      }
      spec.asymmetric = true;
      spec.is_signed = false;
      rest = rest.substr(0, rest.size() - 5);
    }
    Result<int> bits = ParseBitsSuffix(name, rest);
    if (!bits.ok()) return Result<FormatSpec>(bits.status());
    spec.bits = *bits;
    return Result<FormatSpec>(spec);
  }

  std::string Name(const FormatSpec& s) const override {
    if (s.asymmetric) return "int" + std::to_string(s.bits) + "-asym";
    return (s.is_signed ? "int" : "uint") + std::to_string(s.bits);
  }

  std::string Template(const FormatSpec& s) const override {
    return s.asymmetric ? "int-asym" : (s.is_signed ? "int" : "uint");
  }

  Status Validate(const FormatSpec& s) const override {
    if (s.bits < 1 || s.bits > 8) {
      return InvalidArgument("format '", Name(s), "': bits must be in 1..8, got ", s.bits);
    }
    if (s.asymmetric && s.is_signed) {
      return InvalidArgument("format int", s.bits, ": asymmetric grids are unsigned");
    }
    return OkStatus();
  }

  MultiplyCost Cost(const FormatSpec& s) const override {
    return MultiplyCost{s.bits, 0, static_cast<double>(s.bits)};
  }

  int64_t LevelTableBits(const FormatSpec&, int64_t) const override { return 0; }

  bool CanRepresentZero(const FormatSpec& s) const override {
    return !(s.is_signed && s.bits == 1);
  }

  Result<LevelFit> FitLevels(const FormatSpec& s, std::vector<float>,
                             const FitOptions&) const override {
    LevelFit fit;
    if (s.is_signed && s.bits == 1) {
      fit.levels = {-1.0f, 1.0f};
      fit.unit = 1.0;
      return fit;
    }
    const int n = 1 << s.bits;
    const int lo = s.is_signed ? -(n / 2) : 0;
    for (int i = 0; i < n; ++i) fit.levels.push_back(static_cast<float>(lo + i));
    // The largest positive level maps to the range statistic.
    const int top = s.is_signed ? n / 2 - 1 : n - 1;
    fit.unit = 1.0 / top;
    return fit;
  }

  std::vector<FormatSpec> Variants(int bits) const override {
    if (bits < 1 || bits > 8) return {};
    FormatSpec s{Family::kInt, bits, true, false};
    FormatSpec u{Family::kInt, bits, false, false};
    FormatSpec a{Family::kInt, bits, false, true};
    return {s, u, a};
  }
};

}  // namespace

const FamilyOps& MakeIntFamilyOps() {
  static const IntFamily kOps;
  return kOps;
}

}  // namespace lowbit
