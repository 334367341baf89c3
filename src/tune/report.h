// What the tuner writes besides the model: the Pareto front as JSON, and a
// self-contained HTML report (the front as an SVG plot with the uniform
// points marked, the chosen plan per layer, every layer's isolated
// sensitivity per setting, how bytes, bit-ops and latency rank-correlate
// across the evaluated points, and the time spent).
#ifndef LOWBIT_TUNE_REPORT_H_
#define LOWBIT_TUNE_REPORT_H_

#include <string>

#include <nlohmann/json.hpp>

#include "tune/tuner.h"

namespace lowbit {

// One point as JSON: objective, bytes, bit-ops, latency, metric, feasible,
// phase and its plan (layer -> weights).
nlohmann::ordered_json PointJson(const TuneResult& r, const TunePoint& p);

// {"metric_bound", "fp32", "front": [points], "points": [...]}.
nlohmann::ordered_json ParetoJson(const TuneResult& r);

// Spearman's rank correlation of two series (NaN with fewer than 3 points or
// a constant series).
double RankCorrelation(const std::vector<double>& a, const std::vector<double>& b);

struct ReportInfo {
  std::string model, objective, metric;
  // The chosen plan as quantized (filter-wise layers with their filters'
  // format indices), for the per-filter map; empty: none.
  std::vector<std::pair<std::string, LayerSettings>> resolved;
  double test_metric = -1, test_fp32 = -1;  // < 0: no --test
  int64_t out_bytes = 0, fp32_file_bytes = 0;
};
std::string ReportHtml(const TuneResult& r, const ReportInfo& info);

}  // namespace lowbit

#endif  // LOWBIT_TUNE_REPORT_H_
