// One layer at a time: QuantizeLayer with shared calibration statistics,
// layer by layer, builds the same file as `lowbit quantize`, byte for byte;
// re-quantizing one layer touches no other.
#include "quant/quantize_layer.h"

#include <gtest/gtest.h>

#include "base/npy.h"
#include "onnx/onnx_export.h"
#include "quant/quantize.h"
#include "tests/model_files.h"

namespace lowbit {
namespace {

constexpr char kCalib[] = "fashion-mnist:train[0:256]";

TEST(QuantizeLayer, LayerByLayerGivesLowbitQuantizesBytes) {
  Graph g = testing::LoadBundled("fmnist_cnn.onnx");
  const std::vector<QuantLayer> layers = QuantLayers(g);
  ASSERT_EQ(layers.size(), 5u);
  // A mixed plan: filter-wise, pow2, int8, int2, and one layer kept fp32.
  const std::vector<std::string> formats = {"int4", "int2/int4:0.25", "pow2-4", "int2", "float"};
  testing::ScratchDir dir;
  QuantPlan plan;
  std::vector<LayerSettings> settings;
  for (size_t i = 0; i < layers.size(); ++i) {
    LayerRule r;
    r.pattern = layers[i].name;
    r.weights = formats[i];
    plan.rules.push_back(r);
    settings.push_back(plan.Resolve(layers[i].name));
  }
  ASSERT_TRUE(WriteFileAtomic(dir.File("plan.json"), PlanJson(plan.defaults, [&] {
                std::vector<std::pair<std::string, LayerSettings>> v;
                for (size_t i = 0; i < layers.size(); ++i) v.push_back({layers[i].name, settings[i]});
                return v;
              }())).ok());
  int rc = 0;
  const std::string cli_out = dir.File("cli.onnx");
  testing::RunCli("quantize " + testing::ModelPath("fmnist_cnn.onnx") + " -o " + cli_out +
                      " --plan " + dir.File("plan.json") + " --calib '" + kCalib + "' --quiet",
                  &rc);
  ASSERT_EQ(rc, 0);

  // Calibrate once, through a file (as a tuning run caches it).
  auto data = Dataset::Open(kCalib);
  ASSERT_TRUE(data.ok());
  CalibrateOptions co;
  co.quiet = true;
  auto stats = Calibrate(g, **data, co);
  ASSERT_TRUE(stats.ok()) << stats.status().ToString();
  ASSERT_TRUE(stats->Save(dir.File("calib.json")).ok());
  auto cached = CalibrationStats::Load(dir.File("calib.json"), ModelFingerprint(g),
                                       DataKey(**data, {}));
  ASSERT_TRUE(cached.ok()) << cached.status().ToString();

  LayerQuantOptions lo;
  lo.weight_clip_auto = true;  // the command's default
  std::vector<QuantizedLayer> q(layers.size());
  for (size_t i = 0; i < layers.size(); ++i) {
    // A first setting for layer 0 that is then replaced: only that layer is
    // redone, and the result does not depend on the discarded one.
    if (i == 0) {
      LayerSettings first = settings[0];
      first.weights = "int8";
      auto tmp = QuantizeLayer(g, layers[0], first, &*cached, lo);
      ASSERT_TRUE(tmp.ok()) << tmp.status().ToString();
      EXPECT_EQ(tmp->report.settings.weights, "int8");
    }
    auto r = QuantizeLayer(g, layers[i], settings[i], &*cached, lo);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    q[i] = std::move(r).value();
    EXPECT_EQ(q[i].report.quantized, formats[i] != "float");
  }
  std::vector<const QuantizedLayer*> all;
  for (const QuantizedLayer& l : q) all.push_back(&l);
  Graph out = AssembleGraph(g, all);
  std::vector<double> db;
  ASSERT_TRUE(MeasureOutputSqnr(g, **data, {}, 1, true, &out, &db).ok());
  ASSERT_EQ(db.size(), layers.size());
  ExportOptions eo;
  eo.graph_name = "fmnist_cnn (lowbit)";
  ASSERT_TRUE(ExportOnnx(out, dir.File("layers.onnx"), eo).ok());
  auto a = ReadFile(cli_out);
  auto b = ReadFile(dir.File("layers.onnx"));
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_GT(a->size(), 1000u);
  EXPECT_TRUE(*a == *b) << "layer-by-layer file differs from lowbit quantize's (" << a->size()
                        << " vs " << b->size() << " bytes)";

  // QuantizeGraph with the cached statistics gives the same graph again.
  QuantizeOptions o;
  static_cast<LayerQuantOptions&>(o) = lo;
  o.plan = plan;
  o.calib = data->get();
  o.stats = &*cached;
  o.quiet = true;
  auto whole = QuantizeGraph(g, o);
  ASSERT_TRUE(whole.ok()) << whole.status().ToString();
  auto c = ExportOnnxBytes(whole->graph, eo);
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(*c == *b);
}

TEST(QuantizeLayer, ErrorsNameTheLayer) {
  Graph g = testing::LoadBundled("fmnist_cnn.onnx");
  const std::vector<QuantLayer> layers = QuantLayers(g);
  ASSERT_FALSE(layers.empty());
  LayerSettings s;
  s.weights = "int2/int4";
  s.filters = {0, 1, 1};  // the layer has more filters
  auto r = QuantizeLayer(g, layers[0], s, nullptr, {});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find(layers[0].name), std::string::npos) << r.status().message();
}

}  // namespace
}  // namespace lowbit
