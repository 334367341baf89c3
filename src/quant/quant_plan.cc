#include "quant/quant_plan.h"

#include <fnmatch.h>

#include <cstdlib>
#include <nlohmann/json.hpp>

#include "base/npy.h"
#include "lowbit/format.h"

namespace lowbit {

bool GlobMatch(const std::string& pattern, const std::string& name) {
  return fnmatch(pattern.c_str(), name.c_str(), 0) == 0;
}

bool HasGlob(const std::string& pattern) {
  return pattern.find_first_of("*?[") != std::string::npos;
}

LayerSettings QuantPlan::Resolve(const std::string& layer) const {
  LayerSettings s = defaults;
  for (const LayerRule& r : rules) {
    if (!GlobMatch(r.pattern, layer)) continue;
    if (r.weights) {
      s.weights = *r.weights;
      s.filters.clear();  // an assignment belongs to its formats
    }
    if (r.filters) s.filters = *r.filters;
    if (r.granularity) s.granularity = *r.granularity;
    if (r.acts) s.acts = *r.acts;
  }
  return s;
}

bool IsFilterWise(const std::string& weights) { return weights.find('/') != std::string::npos; }

Result<FilterFormats> ParseFilterFormats(const std::string& weights) {
  FilterFormats f;
  std::string list = weights;
  const size_t colon = weights.rfind(':');
  if (colon != std::string::npos) {
    list = weights.substr(0, colon);
    const std::string frac = weights.substr(colon + 1);
    char* end = nullptr;
    f.fraction = std::strtod(frac.c_str(), &end);
    if (frac.empty() || *end != '\0' || !(f.fraction >= 0 && f.fraction <= 1)) {
      return InvalidArgument(
          "'", weights, "': the fraction after ':' must be a number in [0, 1], got '", frac, "'");
    }
  }
  size_t b = 0;
  for (size_t e; (e = list.find('/', b)) != std::string::npos; b = e + 1)
    f.names.push_back(list.substr(b, e - b));
  f.names.push_back(list.substr(b));
  if (f.names.size() < 2)
    return InvalidArgument("'", weights, "': filter-wise formats need at least two");
  if (f.fraction >= 0 && f.names.size() != 2) {
    return InvalidArgument("'", weights,
                           "': a fraction splits filters between exactly two formats");
  }
  for (const std::string& n : f.names) {
    Result<FormatSpec> spec = ParseFormat(n);
    if (!spec.ok()) return InvalidArgument("'", weights, "': ", spec.status().message());
    if (spec->family == Family::kFloat || StoresLevels(spec.value())) {
      return InvalidArgument("'", weights, "': ", n,
                             " cannot be a filter-wise format (int, uint, int-asym and pow2 can)");
    }
  }
  return f;
}

Status ValidateSettings(const LayerSettings& s, const std::string& where) {
  if (IsFilterWise(s.weights)) {
    Result<FilterFormats> f = ParseFilterFormats(s.weights);
    if (!f.ok()) return InvalidArgument(where, ": weights ", f.status().message());
    if (f->fraction < 0 && s.filters.empty()) {
      return InvalidArgument(where, ": weights '", s.weights,
                             "' need a fraction (e.g. 'int2/int4:0.25') or a 'filters' list");
    }
    for (int32_t i : s.filters) {
      if (i < 0 || i >= static_cast<int32_t>(f->names.size())) {
        return InvalidArgument(where, ": filters: index ", i, " is not one of the ",
                               f->names.size(), " formats of '", s.weights, "'");
      }
    }
    if (s.acts == "float") {
      return InvalidArgument(where, ": filter-wise weights '", s.weights,
                             "' need 8-bit acts (int8 or uint8)");
    }
  } else if (!s.filters.empty()) {
    return InvalidArgument(where, ": 'filters' needs filter-wise weights (e.g. 'int2/int4'), not '",
                           s.weights, "'");
  }
  if (s.weights != "float" && !IsFilterWise(s.weights)) {
    Result<FormatSpec> f = ParseFormat(s.weights);
    if (!f.ok()) return InvalidArgument(where, ": weights: ", f.status().message());
    if (f->family == Family::kFloat) {
      return InvalidArgument(where, ": weights '", s.weights,
                             "': float formats are not packed; use \"float\" to keep a layer in fp32");
    }
  }
  Result<GranularitySpec> g = ParseGranularity(s.granularity);
  if (!g.ok()) return InvalidArgument(where, ": granularity: ", g.status().message());
  if (s.acts != "uint8" && s.acts != "int8" && s.acts != "float") {
    return InvalidArgument(where, ": acts '", s.acts, "' (uint8, int8 or float)");
  }
  return OkStatus();
}

namespace {

Status ReadSettingsObject(const nlohmann::ordered_json& j, const std::string& where,
                          std::optional<std::string>* weights, std::optional<std::string>* gran,
                          std::optional<std::string>* acts, bool allow_layers,
                          std::optional<std::vector<int32_t>>* filters = nullptr) {
  if (!j.is_object()) return InvalidArgument(where, ": expected an object");
  for (const auto& [key, value] : j.items()) {
    if (key == "filters" && filters != nullptr) {
      if (!value.is_array())
        return InvalidArgument(where, ": 'filters' must be an array of integers");
      filters->emplace();
      for (const auto& v : value) {
        if (!v.is_number_integer())
          return InvalidArgument(where, ": 'filters' must be an array of integers");
        (*filters)->push_back(v.get<int32_t>());
      }
      continue;
    }
    std::optional<std::string>* dst = key == "weights"       ? weights
                                      : key == "granularity" ? gran
                                      : key == "acts"        ? acts
                                                             : nullptr;
    if (dst == nullptr) {
      if (allow_layers && (key == "layers" || key == "rounding")) continue;
      return InvalidArgument(where, ": unknown key '", key, "' (weights, granularity, acts",
                             allow_layers ? ", rounding, layers)" : ", filters)");
    }
    if (!value.is_string()) return InvalidArgument(where, ": '", key, "' must be a string");
    *dst = value.get<std::string>();
  }
  return OkStatus();
}

}  // namespace

Result<QuantPlan> ParsePlanJson(const std::string& text, const std::string& source) {
  nlohmann::ordered_json j;
  try {
    j = nlohmann::ordered_json::parse(text);
  } catch (const std::exception& e) {
    return InvalidArgument(source, ": not valid JSON: ", e.what());
  }
  QuantPlan plan;
  std::optional<std::string> w, g, a;
  LOWBIT_RETURN_IF_ERROR(ReadSettingsObject(j, source, &w, &g, &a, true));
  if (w) plan.defaults.weights = *w;
  if (g) plan.defaults.granularity = *g;
  if (a) plan.defaults.acts = *a;
  LOWBIT_RETURN_IF_ERROR(ValidateSettings(plan.defaults, source));
  if (j.contains("rounding")) {
    const auto& r = j["rounding"];
    if (!r.is_string() || (r.get<std::string>() != "nearest" && r.get<std::string>() != "gptq")) {
      return InvalidArgument(source, ": 'rounding' must be \"nearest\" or \"gptq\", got ", r.dump());
    }
    plan.rounding = r.get<std::string>();
  }
  if (j.contains("layers")) {
    const auto& layers = j["layers"];
    if (!layers.is_object()) return InvalidArgument(source, ": 'layers' must be an object");
    for (const auto& [pattern, value] : layers.items()) {
      LayerRule r;
      r.pattern = pattern;
      const std::string where = source + ": layer '" + pattern + "'";
      LOWBIT_RETURN_IF_ERROR(
          ReadSettingsObject(value, where, &r.weights, &r.granularity, &r.acts, false, &r.filters));
      LayerSettings check = plan.defaults;
      if (r.weights) check.weights = *r.weights;
      if (r.filters) check.filters = *r.filters;
      if (r.granularity) check.granularity = *r.granularity;
      if (r.acts) check.acts = *r.acts;
      LOWBIT_RETURN_IF_ERROR(ValidateSettings(check, where));
      plan.rules.push_back(std::move(r));
    }
  }
  return plan;
}

Result<LayerRule> ParseLayerOption(const std::string& text) {
  const size_t eq = text.rfind('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == text.size()) {
    return InvalidArgument("--layer '", text, "': expected PATTERN=FORMAT (e.g. 'conv1=int8')");
  }
  LayerRule r;
  r.pattern = text.substr(0, eq);
  r.weights = text.substr(eq + 1);
  LayerSettings check;
  check.weights = *r.weights;
  LOWBIT_RETURN_IF_ERROR(ValidateSettings(check, "--layer '" + text + "'"));
  return r;
}

std::string PlanJson(const LayerSettings& defaults,
                     const std::vector<std::pair<std::string, LayerSettings>>& layers,
                     const std::string& rounding) {
  nlohmann::ordered_json j;
  j["weights"] = defaults.weights;
  j["granularity"] = defaults.granularity;
  j["acts"] = defaults.acts;
  if (!rounding.empty()) j["rounding"] = rounding;
  nlohmann::ordered_json l = nlohmann::ordered_json::object();
  for (const auto& [name, s] : layers) {
    l[name] = {{"weights", s.weights}, {"granularity", s.granularity}, {"acts", s.acts}};
    if (!s.filters.empty()) l[name]["filters"] = s.filters;
  }
  j["layers"] = l;
  return j.dump(2) + "\n";
}

Result<QuantPlan> PlanFromOptions(const std::string& plan_file, const std::string& weights,
                                  const std::string& granularity, const std::string& acts,
                                  const std::vector<std::string>& layer_rules,
                                  const std::string& where) {
  QuantPlan plan;
  if (!plan_file.empty()) {
    std::string text;
    LOWBIT_ASSIGN_OR_RETURN(text, ReadFile(plan_file));
    LOWBIT_ASSIGN_OR_RETURN(plan, ParsePlanJson(text, plan_file));
  }
  if (!weights.empty()) plan.defaults.weights = weights;
  if (!granularity.empty()) plan.defaults.granularity = granularity;
  if (!acts.empty()) plan.defaults.acts = acts;
  LOWBIT_RETURN_IF_ERROR(ValidateSettings(plan.defaults, where));
  for (const std::string& text : layer_rules) {
    LayerRule r;
    LOWBIT_ASSIGN_OR_RETURN(r, ParseLayerOption(text));
    plan.rules.push_back(std::move(r));
  }
  return plan;
}

}  // namespace lowbit
