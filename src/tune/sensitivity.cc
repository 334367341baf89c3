#include "tune/sensitivity.h"

namespace lowbit {

Result<EvalResult> IsolatedLayerMetric(const Graph& graph, const QuantizedLayer& layer,
                                       Dataset& data, const EvalOptions& options) {
  return Evaluate(AssembleGraph(graph, {&layer}), data, options);
}

std::vector<double> FilterOutputErrors(const QuantLayer& c, const std::vector<float>& wq,
                                       const TensorStats& input) {
  const int64_t rows = c.rows(), cols = c.cols();
  const int64_t ch = static_cast<int64_t>(input.channel_sq.size());
  std::vector<double> moment(ch);
  for (int64_t i = 0; i < ch; ++i) moment[i] = input.per_channel > 0 ? input.SecondMoment(i) : 0.0;
  const bool conv = c.op == "Conv";
  const int64_t taps = conv ? cols / c.wshape[1] : 1;
  const int64_t cg = conv ? c.wshape[1] : cols;
  const int64_t mg = rows / c.group;
  std::vector<double> out(rows, 0.0);
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t c0 = conv ? (r / mg) * cg : 0;
    double e = 0;
    for (int64_t j = 0; j < cols; ++j) {
      const int64_t chan = c0 + j / taps;
      const double d = static_cast<double>(c.w[r * cols + j]) - wq[r * cols + j];
      if (chan < ch) e += d * d * moment[chan];
    }
    out[r] = e;
  }
  return out;
}

}  // namespace lowbit
