// The quantization plan: which weight format, granularity and activation
// quantization each layer gets. It is the contract between `lowbit quantize`
// (--layer, --plan, --write-plan) and the tuner, as JSON:
//
//   {"weights": "int4", "granularity": "channel", "acts": "uint8",
//    "rounding": "gptq",
//    "layers": {"conv1": {"weights": "int8"},
//               "fc*":   {"weights": "int4", "granularity": "group:64"}}}
//
// Top-level fields are the defaults; "layers" maps node names or glob
// patterns (*, ?, [..]) to overrides, applied in order (a later match wins).
// Weights "float" keeps a layer in fp32.
//
// Filter-wise formats (a format per output channel, model/packed_node.h):
// weights "int2/int4:0.25" gives the second format to that fraction of the
// filters, those the first format fits worst (relative squared error); or
// "int2/int4" (any number of formats) with "filters": [0, 1, 1, 0, ...], one
// index into the list per output channel (the form a tuner writes, and
// --write-plan records). Grouped and depthwise convolutions take the widest
// of the formats under a fraction and refuse an assignment. Acts: "uint8" (asymmetric 8-bit),
// "int8" (symmetric 8-bit), "float" (weight-only: fp32 activations; any
// weight format, codebooks keep their fitted levels).
#ifndef LOWBIT_QUANT_QUANT_PLAN_H_
#define LOWBIT_QUANT_QUANT_PLAN_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "lowbit/status.h"

namespace lowbit {

struct LayerSettings {
  std::string weights = "int8";
  std::string granularity = "channel";
  std::string acts = "uint8";
  std::vector<int32_t> filters;  // filter-wise formats: an index per output channel
  bool operator==(const LayerSettings&) const = default;
};

struct LayerRule {
  std::string pattern;
  std::optional<std::string> weights, granularity, acts;
  std::optional<std::vector<int32_t>> filters;
};

// A weights setting with several formats ("int2/int4:0.25", "int2/int4").
struct FilterFormats {
  std::vector<std::string> names;
  double fraction = -1;  // of filters in names[1]; < 0: given by "filters"
};
bool IsFilterWise(const std::string& weights);
Result<FilterFormats> ParseFilterFormats(const std::string& weights);

struct QuantPlan {
  LayerSettings defaults;
  std::vector<LayerRule> rules;
  // Weight rounding the plan was made with ("nearest", "gptq"; "": unsaid),
  // the top-level "rounding" key, so that a tuner's plan reproduces its model.
  std::string rounding;

  // Settings for a layer: defaults, then every matching rule in order.
  LayerSettings Resolve(const std::string& layer) const;
};

// Checks one layer's settings (format names, granularity, acts); the error
// names `where`.
Status ValidateSettings(const LayerSettings& s, const std::string& where);

Result<QuantPlan> ParsePlanJson(const std::string& text, const std::string& source);
// "PATTERN=FORMAT" (--layer).
Result<LayerRule> ParseLayerOption(const std::string& text);
// The plan a command or API call asks for: `plan_file`'s (none: defaults),
// its defaults' weights, granularity and acts replaced by the non-empty ones
// given, then each "PATTERN=FORMAT" rule (--layer) appended. The defaults are
// validated; errors name `where` (the options), the file or the rule.
Result<QuantPlan> PlanFromOptions(const std::string& plan_file, const std::string& weights,
                                  const std::string& granularity, const std::string& acts,
                                  const std::vector<std::string>& layer_rules,
                                  const std::string& where);
// A plan listing every layer by exact name with all of its settings (and
// `rounding` when not empty).
std::string PlanJson(const LayerSettings& defaults,
                     const std::vector<std::pair<std::string, LayerSettings>>& layers,
                     const std::string& rounding = "");

// fnmatch-style glob: *, ? and [...] character classes.
bool GlobMatch(const std::string& pattern, const std::string& name);
bool HasGlob(const std::string& pattern);

}  // namespace lowbit

#endif  // LOWBIT_QUANT_QUANT_PLAN_H_
