// Format names, validation, costs and the option parsers shared by commands.
#include <cmath>

#include "base/strings.h"
#include "format/family.h"

namespace lowbit {

Result<int> ParseBitsSuffix(std::string_view name, std::string_view digits) {
  if (digits.empty() || digits.size() > 2 ||
      digits.find_first_not_of("0123456789") != std::string_view::npos) {
    return InvalidArgument("format '", name, "': expected a bit width, got '", digits, "'");
  }
  return std::stoi(std::string(digits));
}

Result<FormatSpec> ParseFormat(std::string_view name) {
  for (int f = 0; f < kNumFamilies; ++f) {
    std::optional<Result<FormatSpec>> parsed = OpsFor(static_cast<Family>(f)).Parse(name);
    if (!parsed.has_value()) continue;
    if (!parsed->ok()) return parsed->status();
    LOWBIT_RETURN_IF_ERROR(ValidateSpec(parsed->value()));
    return std::move(*parsed);
  }
  return InvalidArgument("unknown format '", name,
                         "' (expected intB, uintB, intB-asym, pow2-B, nhotN-B, codebook-B with "
                         "B in 1..8 and N in 1..3, or fp32, fp16, bf16)");
}

std::string FormatName(const FormatSpec& spec) { return OpsFor(spec.family).Name(spec); }

Status ValidateSpec(const FormatSpec& spec) {
  if (static_cast<int>(spec.family) < 0 || static_cast<int>(spec.family) >= kNumFamilies) {
    return InvalidArgument("unknown format family ", static_cast<int>(spec.family));
  }
  return OpsFor(spec.family).Validate(spec);
}

std::string FormatTemplate(const FormatSpec& spec) { return OpsFor(spec.family).Template(spec); }

std::vector<FormatSpec> AllVariants(int bits) {
  std::vector<FormatSpec> out;
  for (int f = 0; f < kNumFamilies; ++f) {
    for (const FormatSpec& s : OpsFor(static_cast<Family>(f)).Variants(bits)) out.push_back(s);
  }
  return out;
}

MultiplyCost CostOf(const FormatSpec& spec) { return OpsFor(spec.family).Cost(spec); }

Result<GranularitySpec> ParseGranularity(std::string_view text) {
  if (text == "tensor") return GranularitySpec{Granularity::kTensor, 0};
  if (text == "channel") return GranularitySpec{Granularity::kChannel, 0};
  if (text.substr(0, 6) == "group:") {
    int64_t g;
    LOWBIT_ASSIGN_OR_RETURN(g, ParseInt(text.substr(6), "granularity group size"));
    if (g < 1) return InvalidArgument("granularity '", text, "': group size must be >= 1");
    return GranularitySpec{Granularity::kGroup, g};
  }
  return InvalidArgument("unknown granularity '", text,
                         "' (expected tensor, channel or group:G)");
}

std::string GranularityName(const GranularitySpec& g) {
  switch (g.kind) {
    case Granularity::kTensor: return "tensor";
    case Granularity::kChannel: return "channel";
    case Granularity::kGroup: return "group:" + std::to_string(g.group_size);
  }
  return "?";
}

Status ParseClip(std::string_view text, FitOptions* options) {
  if (text == "minmax") {
    options->clip = ClipMethod::kMinMax;
  } else if (text == "mse") {
    options->clip = ClipMethod::kMse;
  } else if (text.substr(0, 11) == "percentile:") {
    double p;
    LOWBIT_ASSIGN_OR_RETURN(p, ParseDouble(text.substr(11), "clip percentile"));
    if (!(p > 0 && p <= 100)) {
      return InvalidArgument("clip '", text, "': percentile must be in (0, 100]");
    }
    options->clip = ClipMethod::kPercentile;
    options->percentile = p;
  } else {
    return InvalidArgument("unknown clip method '", text,
                           "' (expected minmax, mse or percentile:P)");
  }
  return OkStatus();
}

Result<CodebookInit> ParseCodebookInit(std::string_view text) {
  if (text == "dp") return CodebookInit::kDp;
  if (text == "kmeans++") return CodebookInit::kKMeansPP;
  if (text == "pso") return CodebookInit::kPso;
  return InvalidArgument("unknown codebook init '", text, "' (expected dp, kmeans++ or pso)");
}

}  // namespace lowbit
