#include "quant/quant_plan.h"

#include <fnmatch.h>

#include <nlohmann/json.hpp>

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
    if (r.weights) s.weights = *r.weights;
    if (r.granularity) s.granularity = *r.granularity;
    if (r.acts) s.acts = *r.acts;
  }
  return s;
}

Status ValidateSettings(const LayerSettings& s, const std::string& where) {
  if (s.weights != "float") {
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
                          std::optional<std::string>* acts, bool allow_layers) {
  if (!j.is_object()) return InvalidArgument(where, ": expected an object");
  for (const auto& [key, value] : j.items()) {
    std::optional<std::string>* dst = key == "weights"       ? weights
                                      : key == "granularity" ? gran
                                      : key == "acts"        ? acts
                                                             : nullptr;
    if (dst == nullptr) {
      if (allow_layers && key == "layers") continue;
      return InvalidArgument(where, ": unknown key '", key, "' (weights, granularity, acts",
                             allow_layers ? ", layers)" : ")");
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
  if (j.contains("layers")) {
    const auto& layers = j["layers"];
    if (!layers.is_object()) return InvalidArgument(source, ": 'layers' must be an object");
    for (const auto& [pattern, value] : layers.items()) {
      LayerRule r;
      r.pattern = pattern;
      const std::string where = source + ": layer '" + pattern + "'";
      LOWBIT_RETURN_IF_ERROR(ReadSettingsObject(value, where, &r.weights, &r.granularity, &r.acts, false));
      LayerSettings check = plan.defaults;
      if (r.weights) check.weights = *r.weights;
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
                     const std::vector<std::pair<std::string, LayerSettings>>& layers) {
  nlohmann::ordered_json j;
  j["weights"] = defaults.weights;
  j["granularity"] = defaults.granularity;
  j["acts"] = defaults.acts;
  nlohmann::ordered_json l = nlohmann::ordered_json::object();
  for (const auto& [name, s] : layers) {
    l[name] = {{"weights", s.weights}, {"granularity", s.granularity}, {"acts", s.acts}};
  }
  j["layers"] = l;
  return j.dump(2) + "\n";
}

}  // namespace lowbit
