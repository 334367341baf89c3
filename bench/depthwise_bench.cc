// The NHWC byte depthwise 3x3 kernel (kernels/depthwise.h) on MobileNet-v2's
// depthwise shapes, batch 1, one thread: the int16 tap-pair body against the
// VNNI int8 tap-quad body, on the same image, weights (int4 levels) and byte
// epilogue. Reports GMAC/s.
//
// Args: channels, output size, stride, body (0 pairs, 1 quads).
#include <benchmark/benchmark.h>

#include <vector>

#include "base/rng.h"
#include "kernels/depthwise.h"

namespace lowbit {
namespace {

void BM_DepthwiseNhwc(benchmark::State& state) {
  const int64_t c = state.range(0), out = state.range(1), stride = state.range(2);
  const bool quads = state.range(3) != 0;
  if (quads && !DepthwiseVnniAvailable()) {
    state.SkipWithError("no AVX512-VNNI on this CPU");
    return;
  }
  if (!DepthwiseAvx512Available()) {
    state.SkipWithError("no AVX-512 on this CPU");
    return;
  }
  const int64_t in = (out - 1) * stride + 3;  // padded input size
  Rng rng(1);
  std::vector<uint8_t> image(in * in * c), y(out * out * c);
  for (auto& v : image) v = static_cast<uint8_t>(rng.Below(256));
  std::vector<int64_t> pix(out * out), tap(9);
  for (int64_t i = 0; i < out; ++i) {
    for (int64_t j = 0; j < out; ++j) pix[i * out + j] = i * stride * in + j * stride;
  }
  for (int64_t t = 0; t < 9; ++t) tap[t] = (t / 3) * in + t % 3;
  std::vector<float> w(9 * c), wsum(c, 0.0f), scale(c, 0.01f), bias(c, 0.5f);
  for (int64_t i = 0; i < 9 * c; ++i) {
    w[i] = static_cast<float>(static_cast<int>(rng.Below(16)) - 8);
    wsum[i % c] += w[i];
  }
  const std::vector<int16_t> pairs = DepthwisePairWeights(w.data(), 9, c);
  const std::vector<int8_t> quad_w = DepthwiseQuadWeights(w.data(), 9, c);
  DepthwiseNhwcArgs a;
  a.image = image.data();
  a.pix = pix.data();
  a.tap = tap.data();
  a.taps = 9;
  a.c = c;
  a.w = w.data();
  a.wsum = wsum.data();
  a.scale = scale.data();
  a.bias = bias.data();
  a.zero = 3;
  a.lo = 0.0f;
  a.hi = 6.0f;
  a.out_inv = 40.0f;
  a.yb = y.data();
  a.w_pairs = pairs.data();
  a.w_quads = quads ? quad_w.data() : nullptr;
  for (auto _ : state) {
    DepthwiseNhwc(a, 0, out * out, DepthwiseBody::kAvx512);
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["GMAC/s"] = benchmark::Counter(static_cast<double>(9 * c * out * out),
                                                 benchmark::Counter::kIsIterationInvariantRate,
                                                 benchmark::Counter::kIs1000);
  state.SetLabel(quads ? "quads" : "pairs");
}

// MobileNet-v2's depthwise layers (channels, output size, stride).
#define MOBILENET_DW                                                                         \
  ->ArgsProduct({{32}, {112}, {1}, {0, 1}})                                                  \
      ->ArgsProduct({{96}, {56}, {2}, {0, 1}})                                               \
      ->ArgsProduct({{144}, {56}, {1}, {0, 1}})                                              \
      ->ArgsProduct({{144}, {28}, {2}, {0, 1}})                                              \
      ->ArgsProduct({{192}, {28}, {1}, {0, 1}})                                              \
      ->ArgsProduct({{384}, {14}, {1}, {0, 1}})                                              \
      ->ArgsProduct({{576}, {14}, {1}, {0, 1}})                                              \
      ->ArgsProduct({{960}, {7}, {1}, {0, 1}})
BENCHMARK(BM_DepthwiseNhwc) MOBILENET_DW;

}  // namespace
}  // namespace lowbit

BENCHMARK_MAIN();
