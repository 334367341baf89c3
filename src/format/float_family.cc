// Float passthrough: fp32, or fp16/bf16 storage. No levels and no scales;
// codes are the bit patterns (see Encode/Decode).
#include "format/family.h"

namespace lowbit {
namespace {

class FloatFamily final : public FamilyOps {
 public:
  std::optional<Result<FormatSpec>> Parse(std::string_view name) const override {
    FormatSpec spec;
    spec.family = Family::kFloat;
    if (name == "fp32" || name == "float" || name == "float32") {
      spec.bits = 32;
      spec.float_kind = FloatKind::kFp32;
    } else if (name == "fp16" || name == "float16") {
      spec.bits = 16;
      spec.float_kind = FloatKind::kFp16;
    } else if (name == "bf16" || name == "bfloat16") {
      spec.bits = 16;
      spec.float_kind = FloatKind::kBf16;
    } else {
      return std::nullopt;
    }
    return Result<FormatSpec>(spec);
  }

  std::string Name(const FormatSpec& s) const override {
    switch (s.float_kind) {
      case FloatKind::kFp32: return "fp32";
      case FloatKind::kFp16: return "fp16";
      case FloatKind::kBf16: return "bf16";
    }
    return "float?";
  }

  std::string Template(const FormatSpec& s) const override { return Name(s); }

  Status Validate(const FormatSpec& s) const override {
    const int want = s.float_kind == FloatKind::kFp32 ? 32 : 16;
    if (s.bits != want) {
      return InvalidArgument("format '", Name(s), "': bits must be ", want, ", got ", s.bits);
    }
    return OkStatus();
  }

  MultiplyCost Cost(const FormatSpec& s) const override {
    return MultiplyCost{s.bits, 0, static_cast<double>(s.bits)};
  }

  int64_t LevelTableBits(const FormatSpec&, int64_t) const override { return 0; }
  bool CanRepresentZero(const FormatSpec&) const override { return true; }

  Result<LevelFit> FitLevels(const FormatSpec&, std::vector<float>,
                             const FitOptions&) const override {
    return LevelFit{};
  }

  std::vector<FormatSpec> Variants(int bits) const override {
    FormatSpec s;
    s.family = Family::kFloat;
    s.bits = bits;
    if (bits == 32) return {s};
    if (bits != 16) return {};
    FormatSpec h = s, b = s;
    h.float_kind = FloatKind::kFp16;
    b.float_kind = FloatKind::kBf16;
    return {h, b};
  }
};

}  // namespace

const FamilyOps& MakeFloatFamilyOps() {
  static const FloatFamily kOps;
  return kOps;
}

}  // namespace lowbit
