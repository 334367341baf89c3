// The cost of one tuning candidate on the bundled Fashion-MNIST CNN with
// cached statistics: re-quantize one layer (QuantizeLayer) and evaluate the
// assembled graph in memory on the 10,000 test images (Evaluate), against
// the same through files (`lowbit quantize` + `lowbit eval`).
//
//   build/bench/candidate_bench [--threads N] [--rounds R] [--cli build/tools/lowbit/lowbit]
//
// Prints per-step medians over R rounds of every layer x format.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "eval/evaluate.h"
#include "quant/calibrate.h"
#include "quant/quantize_layer.h"
#include "runtime/profile.h"
#include "tools/lowbit/model_util.h"

namespace lowbit {
namespace {

using Clock = std::chrono::steady_clock;
double Since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

int Main(int argc, char** argv) {
  int threads = 2, rounds = 3;
  std::string cli, models = LOWBIT_SOURCE_DIR "/models";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--threads") threads = std::atoi(argv[i + 1]);
    else if (a == "--rounds") rounds = std::atoi(argv[i + 1]);
    else if (a == "--cli") cli = argv[i + 1];
  }
  const std::string model = models + "/fmnist_cnn.onnx";
  auto g = LoadModel(model);
  if (!g.ok()) return std::fprintf(stderr, "%s\n", g.status().ToString().c_str()), 1;
  auto calib = Dataset::Open("fashion-mnist:train[0:1000]");
  auto test_file = Dataset::Open("fashion-mnist:test");
  if (!calib.ok() || !test_file.ok()) return std::fprintf(stderr, "no Fashion-MNIST\n"), 1;
  auto t0 = Clock::now();
  CalibrateOptions co;
  co.quiet = true;
  co.threads = threads;
  auto stats = Calibrate(*g, **calib, co);
  if (!stats.ok()) return std::fprintf(stderr, "%s\n", stats.status().ToString().c_str()), 1;
  const double calib_s = Since(t0);
  t0 = Clock::now();
  auto test = LoadIntoMemory(**test_file);
  if (!test.ok()) return 1;
  const double load_s = Since(t0);
  EvalOptions eo;
  eo.batch = 100;
  eo.threads = threads;
  ReferenceOutputs ref;
  t0 = Clock::now();
  auto fp32 = Evaluate(*g, **test, eo, &ref);
  if (!fp32.ok()) return 1;
  const double ref_s = Since(t0);
  eo.reference = &ref;
  std::printf("calibrate 1000 images (once): %.3f s; test set into memory (once): %.3f s; "
              "fp32 reference outputs (once): %.3f s, top-1 %.2f%%\n",
              calib_s, load_s, ref_s, fp32->top1);

  // A starting point: every layer int4.
  const std::vector<QuantLayer> layers = QuantLayers(*g);
  LayerQuantOptions lo;
  lo.weight_clip_auto = true;
  std::vector<QuantizedLayer> current;
  for (const QuantLayer& l : layers) {
    LayerSettings s;
    s.weights = "int4";
    current.push_back(QuantizeLayer(*g, l, s, &*stats, lo).value());
  }
  const std::vector<std::string> formats = {"int2", "int3", "pow2-4", "int2/int4:0.25"};
  std::vector<double> quant_s, assemble_s, eval_s, total_s;
  for (int r = 0; r < rounds; ++r) {
    for (size_t li = 0; li < layers.size(); ++li) {
      for (const std::string& f : formats) {
        const auto start = Clock::now();
        LayerSettings s;
        s.weights = f;
        auto q = QuantizeLayer(*g, layers[li], s, &*stats, lo);
        if (!q.ok()) return std::fprintf(stderr, "%s\n", q.status().ToString().c_str()), 1;
        quant_s.push_back(Since(start));
        auto t1 = Clock::now();
        std::vector<const QuantizedLayer*> parts;
        for (size_t k = 0; k < layers.size(); ++k) parts.push_back(k == li ? &*q : &current[k]);
        Graph cand = AssembleGraph(*g, parts);
        assemble_s.push_back(Since(t1));
        t1 = Clock::now();
        auto m = Evaluate(cand, **test, eo);
        if (!m.ok()) return std::fprintf(stderr, "%s\n", m.status().ToString().c_str()), 1;
        eval_s.push_back(Since(t1));
        total_s.push_back(Since(start));
      }
    }
  }
  std::printf("one candidate (%zu = %d rounds x %zu layers x %zu formats), %d thread%s, medians: "
              "QuantizeLayer %.4f s, AssembleGraph %.4f s, Evaluate on 10,000 images %.4f s; "
              "total %.4f s (min %.4f, max %.4f)\n",
              total_s.size(), rounds, layers.size(), formats.size(), threads, threads > 1 ? "s" : "",
              Median(quant_s), Median(assemble_s), Median(eval_s), Median(total_s),
              *std::min_element(total_s.begin(), total_s.end()),
              *std::max_element(total_s.begin(), total_s.end()));
  if (!cli.empty()) {
    // Through files: quantize with calibration, then eval.
    std::vector<double> file_s;
    for (int r = 0; r < rounds; ++r) {
      const auto start = Clock::now();
      const std::string cmd = cli + " quantize " + model +
                              " -o /tmp/candidate_bench.onnx --weights int4 --calib "
                              "'fashion-mnist:train[0:1000]' --quiet --threads " +
                              std::to_string(threads) + " > /dev/null && " + cli +
                              " eval /tmp/candidate_bench.onnx --data fashion-mnist:test --batch 100 "
                              "--quiet --threads " + std::to_string(threads) + " > /dev/null";
      if (std::system(cmd.c_str()) != 0) return 1;
      file_s.push_back(Since(start));
    }
    std::remove("/tmp/candidate_bench.onnx");
    std::printf("through files (lowbit quantize --calib + lowbit eval), median of %d: %.3f s\n",
                rounds, Median(file_s));
  }
  return 0;
}

}  // namespace
}  // namespace lowbit

int main(int argc, char** argv) { return lowbit::Main(argc, argv); }
