#include "quant/gptq.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "format/encode.h"
#include "lowbit/packed_tensor.h"
#include "runtime/ops/conv_geometry.h"

namespace lowbit {
namespace {

// Rows of patches are gathered this many at a time before one rank-k update.
constexpr int64_t kChunkRows = 1024;

// Adds p (n x k, row-major) to the upper triangle of g.
void AddRows(const std::vector<float>& p, int64_t n, int64_t k, std::vector<float>* tmp,
             InputGram* g) {
  if (n == 0) return;
  tmp->resize(k * k);  // (beta 0: ssyrk overwrites the upper triangle it reads)
  cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, static_cast<int>(k), static_cast<int>(n), 1.0f,
              p.data(), static_cast<int>(k), 0.0f, tmp->data(), static_cast<int>(k));
  for (int64_t i = 0; i < k; ++i) {
    for (int64_t j = i; j < k; ++j) g->h[i * k + j] += (*tmp)[i * k + j];
  }
  g->rows += n;
}

// LAPACK (OpenBLAS carries it): Cholesky factor and inverse from it.
extern "C" void dpotrf_(const char* uplo, const int* n, double* a, const int* lda, int* info);
extern "C" void dpotri_(const char* uplo, const int* n, double* a, const int* lda, int* info);

// a (n x n, row-major, upper triangle read) replaced by the upper Cholesky
// factor U of its inverse (a^-1 = U^T U) in the upper triangle. Row-major
// upper is column-major lower, LAPACK's 'L'. False when a is not positive
// definite.
bool InverseUpperFactor(std::vector<double>* a, int64_t n) {
  const int m = static_cast<int>(n);
  int info = 0;
  const char lower = 'L';
  dpotrf_(&lower, &m, a->data(), &m, &info);  // a = L L^T
  if (info != 0) return false;
  dpotri_(&lower, &m, a->data(), &m, &info);  // a^-1
  if (info != 0) return false;
  dpotrf_(&lower, &m, a->data(), &m, &info);  // a^-1 = L L^T = U^T U
  return info == 0;
}

}  // namespace

bool GramApplies(const Graph& graph, const QuantLayer& layer, int64_t max_cols) {
  if (max_cols <= 0 || layer.cols() <= 0 || layer.cols() > max_cols || layer.group != 1) return false;
  if (layer.op == "Conv") return graph.nodes[layer.node].GetString("auto_pad", "NOTSET") == "NOTSET";
  return layer.op == "Gemm" || layer.op == "MatMul";
}

Status AccumulateGram(const Graph& graph, const QuantLayer& layer, const Shape& shape,
                      const float* x, int64_t used, InputGram* g) {
  const int64_t k = layer.cols();
  if (g->cols == 0) {
    g->cols = k;
    g->h.assign(k * k, 0.0);
  }
  std::vector<float> p, tmp;
  p.reserve(kChunkRows * k);
  int64_t n = 0;
  auto flush = [&] {
    AddRows(p, n, k, &tmp, g);
    p.clear();
    n = 0;
  };
  if (layer.op != "Conv") {
    if (shape.empty() || shape.back() != k) {
      return InvalidArgument("layer '", layer.name, "': input ", ShapeToString(shape), " has not ",
                             k, " columns");
    }
    for (int64_t r = 0; r < used / k; ++r) {
      p.insert(p.end(), x + r * k, x + (r + 1) * k);
      if (++n == kChunkRows) flush();
    }
    flush();
    return OkStatus();
  }
  ConvDims d;
  LOWBIT_ASSIGN_OR_RETURN(d, ComputeConvDims(graph.nodes[layer.node], shape, layer.wshape, "W"));
  const WindowGeometry& w = d.g;
  const int64_t per_sample = d.c * w.in_size();
  const int64_t samples = used / per_sample;
  const int64_t positions = w.out_size();
  const int64_t step = std::max<int64_t>(1, positions / kGramMaxPositions);
  std::vector<float> row(k);
  for (int64_t s = 0; s < samples; ++s) {
    const float* xs = x + s * per_sample;
    for (int64_t pos = 0; pos < positions; pos += step) {
      const int64_t o2 = pos % w.out[2], o1 = pos / w.out[2] % w.out[1], o0 = pos / w.out[2] / w.out[1];
      int64_t col = 0;
      for (int64_t c = 0; c < d.c; ++c) {
        for (int64_t k0 = 0; k0 < w.k[0]; ++k0) {
          const int64_t i0 = o0 * w.stride[0] - w.pad_begin[0] + k0 * w.dilation[0];
          for (int64_t k1 = 0; k1 < w.k[1]; ++k1) {
            const int64_t i1 = o1 * w.stride[1] - w.pad_begin[1] + k1 * w.dilation[1];
            for (int64_t k2 = 0; k2 < w.k[2]; ++k2, ++col) {
              const int64_t i2 = o2 * w.stride[2] - w.pad_begin[2] + k2 * w.dilation[2];
              const bool in = i0 >= 0 && i0 < w.in[0] && i1 >= 0 && i1 < w.in[1] && i2 >= 0 &&
                              i2 < w.in[2];
              row[col] = in ? xs[((c * w.in[0] + i0) * w.in[1] + i1) * w.in[2] + i2] : 0.0f;
            }
          }
        }
      }
      p.insert(p.end(), row.begin(), row.end());
      if (++n == kChunkRows) flush();
    }
  }
  flush();
  return OkStatus();
}

Status PrepareGptq(const std::string& layer, InputGram* gram) {
  const int64_t k = gram->cols;
  // Columns in order of decreasing H diagonal (the most active inputs are
  // coded first, while the most columns remain to absorb their error).
  std::vector<int64_t>& order = gram->order;
  order.resize(k);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    return gram->h[a * k + a] > gram->h[b * k + b];
  });
  // H permuted, dampened by 1% of its mean diagonal; a column no input ever
  // reached gets the mean diagonal (its weight is then rounded to nearest).
  std::vector<double> h(k * k, 0.0);
  double mean_diag = 0;
  for (int64_t i = 0; i < k; ++i) mean_diag += gram->h[i * k + i];
  mean_diag = std::max(mean_diag / static_cast<double>(std::max<int64_t>(k, 1)), 1e-30);
  for (int64_t i = 0; i < k; ++i) {
    for (int64_t j = i; j < k; ++j) {
      const int64_t a = std::min(order[i], order[j]), b = std::max(order[i], order[j]);
      h[i * k + j] = gram->h[a * k + b];
    }
    if (!(h[i * k + i] > 0)) h[i * k + i] = mean_diag;
    h[i * k + i] += 0.01 * mean_diag;
  }
  gram->u = std::move(h);
  if (!InverseUpperFactor(&gram->u, k)) {
    gram->u.clear();
    return InvalidArgument("layer '", layer, "': its input Gram matrix is not positive definite");
  }
  return OkStatus();
}

Status GptqRound(const QuantLayer& layer, const InputGram& gram, PackedParts* parts) {
  const int64_t k = layer.cols();
  if (gram.cols != k || static_cast<int64_t>(gram.u.size()) != k * k ||
      static_cast<int64_t>(gram.order.size()) != k) {
    return InvalidArgument("layer '", layer.name, "': input Gram matrix of ", gram.cols,
                           " columns (", gram.u.empty() ? "unprepared" : "prepared",
                           ") for a weight of ", k);
  }
  const std::vector<int64_t>& order = gram.order;
  const std::vector<double>& u = gram.u;
  for (size_t pi = 0; pi < parts->parts.size(); ++pi) {
    const PackedTensor& t = parts->parts[pi];
    const QuantParams& qp = t.params();
    if (qp.spec.family == Family::kFloat || qp.cols != k) continue;
    const bool grid = IsIntGrid(qp.levels);
    const std::vector<int32_t>& rows = parts->channels[pi];
    std::vector<uint32_t> codes(qp.rows * k);
    std::vector<double> wr(k);
    for (int64_t r = 0; r < qp.rows; ++r) {
      const float* src = layer.w.data() + static_cast<int64_t>(rows[r]) * k;
      for (int64_t i = 0; i < k; ++i) wr[i] = src[order[i]];
      for (int64_t i = 0; i < k; ++i) {
        const int64_t c = order[i];
        const int64_t g = qp.granule_of(r, c);
        const GranuleCoder coder(qp.levels, grid, qp.scales[g], qp.zero_point(g));
        const uint32_t code = coder.EncodeOne(static_cast<float>(wr[i]));
        codes[r * k + c] = code;
        const double err = (wr[i] - coder.DecodeOne(code)) / u[i * k + i];
        const double* ui = u.data() + i * k;
        for (int64_t j = i + 1; j < k; ++j) wr[j] -= err * ui[j];
      }
    }
    Result<PackedTensor> re = PackedTensor::FromCodes(qp, t.shape(), codes.data());
    if (!re.ok()) return re.status();
    parts->parts[pi] = std::move(re).value();
  }
  return OkStatus();
}

}  // namespace lowbit
