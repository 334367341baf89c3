#include "tune/report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <numeric>

namespace lowbit {
namespace {

std::string Fmt(const char* f, double v) {
  char b[64];
  std::snprintf(b, sizeof b, f, v);
  return b;
}

std::string Escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '<') o += "&lt;";
    else if (c == '>') o += "&gt;";
    else if (c == '&') o += "&amp;";
    else o += c;
  }
  return o;
}

std::vector<double> Ranks(const std::vector<double>& v) {
  std::vector<size_t> idx(v.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return v[a] < v[b]; });
  std::vector<double> r(v.size());
  for (size_t i = 0; i < idx.size();) {
    size_t j = i;
    while (j + 1 < idx.size() && v[idx[j + 1]] == v[idx[i]]) ++j;
    for (size_t k = i; k <= j; ++k) r[idx[k]] = 0.5 * static_cast<double>(i + j);  // ties: mean rank
    i = j + 1;
  }
  return r;
}

// The front, every point and the uniform ones as an SVG scatter plot.
std::string FrontSvg(const TuneResult& r) {
  const double W = 640, H = 400, L = 60, B = 40, T = 16, R = 16;
  double x0 = std::numeric_limits<double>::infinity(), x1 = -x0, y0 = x0, y1 = -x0;
  for (const TunePoint& p : r.points) {
    if (!std::isfinite(p.metric)) continue;
    x0 = std::min(x0, p.objective);
    x1 = std::max(x1, p.objective);
    y0 = std::min(y0, p.metric);
    y1 = std::max(y1, p.metric);
  }
  if (std::isfinite(r.bound)) {
    y0 = std::min(y0, r.bound);
    y1 = std::max(y1, r.bound);
  }
  if (!(x1 > x0)) x1 = x0 + 1;
  if (!(y1 > y0)) y1 = y0 + 1;
  auto X = [&](double v) { return L + (v - x0) / (x1 - x0) * (W - L - R); };
  auto Y = [&](double v) { return H - B - (v - y0) / (y1 - y0) * (H - B - T); };
  std::string s = "<svg xmlns='http://www.w3.org/2000/svg' width='" + Fmt("%.0f", W) + "' height='" +
                  Fmt("%.0f", H) + "' font-family='sans-serif' font-size='11'>\n";
  s += "<rect x='" + Fmt("%.0f", L) + "' y='" + Fmt("%.0f", T) + "' width='" + Fmt("%.0f", W - L - R) +
       "' height='" + Fmt("%.0f", H - B - T) + "' fill='none' stroke='#888'/>\n";
  for (int i = 0; i <= 4; ++i) {
    const double xv = x0 + (x1 - x0) * i / 4, yv = y0 + (y1 - y0) * i / 4;
    s += "<text x='" + Fmt("%.1f", X(xv)) + "' y='" + Fmt("%.0f", H - B + 14) +
         "' text-anchor='middle'>" + Fmt("%.3g", xv) + "</text>\n";
    s += "<text x='" + Fmt("%.0f", L - 4) + "' y='" + Fmt("%.1f", Y(yv) + 4) +
         "' text-anchor='end'>" + Fmt("%.3g", yv) + "</text>\n";
  }
  s += "<text x='" + Fmt("%.0f", (W + L) / 2) + "' y='" + Fmt("%.0f", H - 6) +
       "' text-anchor='middle'>objective (relative to fp32; lower is better)</text>\n";
  if (std::isfinite(r.bound)) {
    s += "<line x1='" + Fmt("%.0f", L) + "' x2='" + Fmt("%.0f", W - R) + "' y1='" + Fmt("%.1f", Y(r.bound)) +
         "' y2='" + Fmt("%.1f", Y(r.bound)) + "' stroke='#c00' stroke-dasharray='4 3'/>\n";
  }
  for (const TunePoint& p : r.points) {
    if (!std::isfinite(p.metric)) continue;
    const bool uniform = p.phase == "uniform";
    s += uniform ? "<rect x='" + Fmt("%.1f", X(p.objective) - 3) + "' y='" + Fmt("%.1f", Y(p.metric) - 3) +
                       "' width='6' height='6' fill='#e69f00'/>\n"
                 : "<circle cx='" + Fmt("%.1f", X(p.objective)) + "' cy='" + Fmt("%.1f", Y(p.metric)) +
                       "' r='2.5' fill='#999'/>\n";
  }
  std::string line;
  for (int i : r.front) {
    if (!std::isfinite(r.points[i].metric)) continue;
    line += Fmt("%.1f,", X(r.points[i].objective)) + Fmt("%.1f ", Y(r.points[i].metric));
  }
  s += "<polyline points='" + line + "' fill='none' stroke='#0072b2' stroke-width='1.5'/>\n";
  if (r.best >= 0) {
    const TunePoint& p = r.points[r.best];
    s += "<circle cx='" + Fmt("%.1f", X(p.objective)) + "' cy='" + Fmt("%.1f", Y(p.metric)) +
         "' r='5' fill='none' stroke='#d00' stroke-width='2'/>\n";
  }
  s += "</svg>\n";
  return s;
}

}  // namespace

nlohmann::ordered_json PointJson(const TuneResult& r, const TunePoint& p) {
  nlohmann::ordered_json j;
  j["objective"] = p.objective;
  j["bytes"] = p.bytes;
  j["bit_ops"] = p.bitops;
  j["latency_ms"] = p.latency_ms;
  if (p.e2e_ms > 0) j["end_to_end_ms"] = {{"plan", p.e2e_ms}, {"fp32", p.e2e_fp32_ms}};
  j["metric"] = std::isfinite(p.metric) ? nlohmann::ordered_json(p.metric) : nullptr;
  j["standard_error"] = p.se;
  j["feasible"] = p.feasible;
  j["phase"] = p.phase;
  nlohmann::ordered_json plan = nlohmann::ordered_json::object();
  for (const auto& [name, s] : r.Plan(p)) plan[name] = s.weights;
  j["plan"] = plan;
  return j;
}

nlohmann::ordered_json ParetoJson(const TuneResult& r) {
  nlohmann::ordered_json j;
  j["metric_bound"] = r.bound;
  j["margin_z"] = r.z;
  j["fp32"] = {{"metric", std::isfinite(r.fp32_metric) ? nlohmann::ordered_json(r.fp32_metric) : nullptr},
               {"bytes", r.fp32_bytes},
               {"bit_ops", r.fp32_bitops},
               {"latency_ms", r.fp32_ms}};
  j["front"] = nlohmann::ordered_json::array();
  for (int i : r.front) j["front"].push_back(PointJson(r, r.points[i]));
  j["points"] = nlohmann::ordered_json::array();
  for (const TunePoint& p : r.points) j["points"].push_back(PointJson(r, p));
  return j;
}

double RankCorrelation(const std::vector<double>& a, const std::vector<double>& b) {
  const size_t n = a.size();
  if (n < 3 || b.size() != n) return std::nan("");
  const std::vector<double> ra = Ranks(a), rb = Ranks(b);
  const double ma = std::accumulate(ra.begin(), ra.end(), 0.0) / n;
  const double mb = std::accumulate(rb.begin(), rb.end(), 0.0) / n;
  double sab = 0, saa = 0, sbb = 0;
  for (size_t i = 0; i < n; ++i) {
    sab += (ra[i] - ma) * (rb[i] - mb);
    saa += (ra[i] - ma) * (ra[i] - ma);
    sbb += (rb[i] - mb) * (rb[i] - mb);
  }
  if (saa == 0 || sbb == 0) return std::nan("");
  return sab / std::sqrt(saa * sbb);
}

std::string ReportHtml(const TuneResult& r, const ReportInfo& info) {
  std::string h = "<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>lowbit tune: " +
                  Escape(info.model) +
                  "</title>\n<style>body{font-family:sans-serif;margin:2em;max-width:1100px}"
                  "table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ccc;"
                  "padding:2px 6px;text-align:right}th{background:#eee}.l{text-align:left}"
                  "</style></head><body>\n";
  h += "<h1>lowbit tune: " + Escape(info.model) + "</h1>\n<p>Objective <b>" + Escape(info.objective) +
       "</b>, metric <b>" + Escape(info.metric) + "</b> on the validation data: fp32 " +
       Fmt("%.3f", r.fp32_metric) + ", bound " + Fmt("%.3f", r.bound) +
       (r.z > 0 ? " (met with a margin of " + Fmt("%.2f", r.z) + " standard errors of the difference to fp32)" : "") +
       ". ";
  if (r.best >= 0) {
    const TunePoint& p = r.points[r.best];
    h += std::string(r.feasible ? "Chosen point" : "No point met the bound; the most accurate") +
         ": metric " + Fmt("%.3f", p.metric) + ", objective " + Fmt("%.4g", p.objective) + ", " +
         Fmt("%.0f", static_cast<double>(p.bytes)) + " bytes of layers (fp32 " +
         Fmt("%.0f", static_cast<double>(r.fp32_bytes)) + ", " +
         Fmt("%.2f", static_cast<double>(r.fp32_bytes) / std::max<int64_t>(p.bytes, 1)) + "x smaller), " +
         Fmt("%.4g", p.bitops) + " bit-ops per sample.";
  }
  if (info.test_metric >= 0) {
    h += " Held-out test split: " + Fmt("%.2f", info.test_metric) + " (fp32 " +
         Fmt("%.2f", info.test_fp32) + ").";
  }
  if (info.out_bytes > 0) {
    h += " Model file " + Fmt("%.0f", static_cast<double>(info.out_bytes)) + " bytes (fp32 file " +
         Fmt("%.0f", static_cast<double>(info.fp32_file_bytes)) + ").";
  }
  h += "</p>\n<h2>Pareto front</h2>\n<p>Grey: every evaluated plan; orange squares: uniform plans (one "
       "setting everywhere); blue: the front; red ring: the chosen point; dashed: the bound.</p>\n";
  h += FrontSvg(r);
  h += "<h2>Chosen plan</h2>\n<table><tr><th class='l'>layer</th><th>MACs</th><th>params</th>"
       "<th class='l'>weights</th><th>bytes</th><th>isolated loss</th></tr>\n";
  if (r.best >= 0) {
    const TunePoint& p = r.points[r.best];
    for (size_t l = 0; l < r.layers.size(); ++l) {
      const TuneLayer& t = r.layers[l];
      const int s = p.choice[l];
      h += "<tr><td class='l'>" + Escape(t.name) + "</td><td>" + Fmt("%.0f", static_cast<double>(t.macs)) +
           "</td><td>" + Fmt("%.0f", static_cast<double>(t.params)) + "</td><td class='l'>" +
           Escape(r.space[s]) + "</td><td>" + Fmt("%.0f", static_cast<double>(t.bytes[s])) + "</td><td>" +
           Fmt("%.3g", t.loss[s]) + "</td></tr>\n";
    }
  }
  h += "</table>\n";
  // Per filter: one cell per output channel, coloured by its format.
  bool any_mixed = false;
  for (const auto& [name, st] : info.resolved) any_mixed = any_mixed || !st.filters.empty();
  if (any_mixed) {
    static const char* kColors[] = {"#56b4e9", "#e69f00", "#009e73", "#cc79a7"};
    h += "<h2>Per-filter formats</h2>\n<p>Layers with filter-wise formats: one cell per filter "
         "(output channel), its colour the format.</p>\n";
    for (const auto& [name, st] : info.resolved) {
      if (st.filters.empty()) continue;
      std::vector<std::string> names;
      size_t b = 0;
      for (size_t e; (e = st.weights.find('/', b)) != std::string::npos; b = e + 1)
        names.push_back(st.weights.substr(b, e - b));
      names.push_back(st.weights.substr(b));
      h += "<p>" + Escape(name) + ": ";
      for (size_t i = 0; i < names.size(); ++i) {
        int count = 0;
        for (int32_t f : st.filters) count += f == static_cast<int32_t>(i);
        h += std::string("<span style='color:") + kColors[i % 4] + "'>&#9632; " + Escape(names[i]) + " (" +
             std::to_string(count) + ")</span> ";
      }
      const int cell = 6, per_row = 128;
      const int rows = static_cast<int>((st.filters.size() + per_row - 1) / per_row);
      h += "<br><svg xmlns='http://www.w3.org/2000/svg' width='" + std::to_string(per_row * cell) +
           "' height='" + std::to_string(rows * cell) + "'>";
      for (size_t f = 0; f < st.filters.size(); ++f) {
        h += "<rect x='" + std::to_string((f % per_row) * cell) + "' y='" +
             std::to_string((f / per_row) * cell) + "' width='" + std::to_string(cell - 1) +
             "' height='" + std::to_string(cell - 1) + "' fill='" + kColors[st.filters[f] % 4] + "'/>";
      }
      h += "</svg></p>\n";
    }
  }
  h += "<h2>Isolated sensitivity</h2>\n<p>The metric's loss with only that layer quantized "
       "(the rest fp32), per setting; blank: the kernels do not run it there.</p>\n<table><tr><th "
       "class='l'>layer</th>";
  for (const std::string& s : r.space) h += "<th>" + Escape(s) + "</th>";
  h += "</tr>\n";
  for (const TuneLayer& t : r.layers) {
    h += "<tr><td class='l'>" + Escape(t.name) + "</td>";
    for (size_t s = 0; s < r.space.size(); ++s) {
      h += "<td>" + (t.valid[s] ? Fmt("%.3g", t.loss[s]) : std::string()) + "</td>";
    }
    h += "</tr>\n";
  }
  std::vector<double> bytes, bitops, ms;
  for (const TunePoint& p : r.points) {
    bytes.push_back(static_cast<double>(p.bytes));
    bitops.push_back(p.bitops);
    ms.push_back(p.latency_ms);
  }
  h += "</table>\n<h2>Do the costs agree?</h2>\n<p>Spearman rank correlation over the " +
       std::to_string(r.points.size()) + " evaluated plans: bytes vs bit-ops " +
       Fmt("%.3f", RankCorrelation(bytes, bitops));
  if (r.fp32_ms > 0) {
    h += ", bytes vs latency " + Fmt("%.3f", RankCorrelation(bytes, ms)) + ", bit-ops vs latency " +
         Fmt("%.3f", RankCorrelation(bitops, ms)) + " (latency: the sum of the layers' measured medians)";
  }
  // The plans confirmed end to end (latency objectives): does the table rank
  // them as whole runs do?
  std::vector<double> e2e, e_ms, e_bytes, e_bitops;
  for (const TunePoint& p : r.points) {
    if (!(p.e2e_ms > 0)) continue;
    e2e.push_back(p.e2e_ms);
    e_ms.push_back(p.latency_ms);
    e_bytes.push_back(static_cast<double>(p.bytes));
    e_bitops.push_back(p.bitops);
  }
  if (e2e.size() >= 3) {
    h += ". Over the " + std::to_string(e2e.size()) +
         " plans measured end to end, end-to-end time vs the layers' sum " +
         Fmt("%.3f", RankCorrelation(e2e, e_ms)) + ", vs bytes " + Fmt("%.3f", RankCorrelation(e2e, e_bytes)) +
         ", vs bit-ops " + Fmt("%.3f", RankCorrelation(e2e, e_bitops));
  }
  h += ".</p>\n<h2>Time</h2>\n<p>" + std::to_string(r.evaluations) + " plan evaluations (" +
       std::to_string(r.resumed) + " journal records reused), " + Fmt("%.1f", r.seconds) +
       " s in all, of which " + Fmt("%.1f", r.sensitivity_seconds) +
       " s for the per-layer sensitivities.</p>\n</body></html>\n";
  return h;
}

}  // namespace lowbit
