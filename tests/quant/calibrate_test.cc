// Calibration as data: statistics gathered once equal what the streamed
// passes see, survive a round trip through a file exactly, and refuse to be
// applied to another model or data set.
#include "quant/calibrate.h"

#include <gtest/gtest.h>

#include <cmath>

#include "base/npy.h"
#include "quant/layers.h"
#include "tests/model_files.h"

namespace lowbit {
namespace {

struct Calibrated {
  Graph graph;
  std::unique_ptr<Dataset> data;
  CalibrationStats stats;
};

Calibrated CalibrateCnn(const std::string& spec, bool histograms = true) {
  Calibrated c;
  c.graph = testing::LoadBundled("fmnist_cnn.onnx");
  auto ds = Dataset::Open(spec);
  EXPECT_TRUE(ds.ok()) << ds.status().ToString();
  c.data = std::move(ds).value();
  CalibrateOptions o;
  o.quiet = true;
  o.histograms = histograms;
  auto s = Calibrate(c.graph, *c.data, o);
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  if (s.ok()) c.stats = std::move(s).value();
  return c;
}

TEST(Calibrate, ObservesEveryLayerInputWithConsistentMoments) {
  Calibrated c = CalibrateCnn("fashion-mnist:train[0:200]");
  EXPECT_EQ(c.stats.samples, 200);
  const std::vector<QuantLayer> layers = QuantLayers(c.graph);
  ASSERT_FALSE(layers.empty());
  for (const QuantLayer& l : layers) {
    const TensorStats* s = c.stats.Find(l.x);
    ASSERT_NE(s, nullptr) << l.x;
    EXPECT_GT(s->count, 0);
    ASSERT_FALSE(s->channel_sum.empty());
    EXPECT_EQ(s->per_channel * static_cast<int64_t>(s->channel_sum.size()), s->count);
    double hist_total = 0;
    for (double h : s->hist) hist_total += h;
    EXPECT_EQ(hist_total, static_cast<double>(s->count)) << l.x;
    for (size_t ch = 0; ch < s->channel_sum.size(); ++ch) {
      const double mean = s->Mean(static_cast<int64_t>(ch));
      EXPECT_GE(mean, s->lo - 1e-6);
      EXPECT_LE(mean, s->hi + 1e-6);
      // E[x^2] >= E[x]^2, and |x| <= max(|lo|, |hi|).
      EXPECT_GE(s->SecondMoment(static_cast<int64_t>(ch)) + 1e-9, mean * mean);
      const double amax = std::max(std::fabs(s->lo), std::fabs(s->hi));
      EXPECT_LE(s->SecondMoment(static_cast<int64_t>(ch)), amax * amax + 1e-6);
    }
  }
  // The first layer reads the image: Fashion-MNIST pixels / 255 in [0, 1].
  const TensorStats* in = c.stats.Find(layers[0].x);
  EXPECT_GE(in->lo, 0.0f);
  EXPECT_LE(in->hi, 1.0f);
  EXPECT_GT(in->hi, 0.9f);
}

TEST(Calibrate, FileRoundTripIsExact) {
  Calibrated c = CalibrateCnn("fashion-mnist:train[0:64]");
  testing::ScratchDir dir;
  const std::string path = dir.File("calib.json");
  ASSERT_TRUE(c.stats.Save(path).ok());
  auto back = CalibrationStats::Load(path, ModelFingerprint(c.graph), DataKey(*c.data, {}));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->ToJson(), c.stats.ToJson());
  ASSERT_EQ(back->tensors.size(), c.stats.tensors.size());
  for (const auto& [name, s] : c.stats.tensors) {
    const TensorStats& b = back->tensors.at(name);
    EXPECT_EQ(b.lo, s.lo);
    EXPECT_EQ(b.hi, s.hi);
    EXPECT_EQ(b.channel_sum, s.channel_sum);
    EXPECT_EQ(b.channel_sq, s.channel_sq);
    EXPECT_EQ(b.hist, s.hist);
    for (bool sym : {false, true}) {
      for (ActCalib m : {ActCalib::kMinMax, ActCalib::kMse, ActCalib::kPercentile}) {
        EXPECT_EQ(ChooseRange(b, {m, 99.9}, sym), ChooseRange(s, {m, 99.9}, sym));
      }
    }
  }
}

TEST(Calibrate, RefusesAnotherModelOrDataAndCorruptFiles) {
  Calibrated c = CalibrateCnn("fashion-mnist:train[0:32]", false);
  testing::ScratchDir dir;
  const std::string path = dir.File("calib.json");
  ASSERT_TRUE(c.stats.Save(path).ok());
  Graph other = testing::LoadBundled("fmnist_mlp.onnx");
  EXPECT_NE(ModelFingerprint(other), ModelFingerprint(c.graph));
  auto wrong_model = CalibrationStats::Load(path, ModelFingerprint(other));
  ASSERT_FALSE(wrong_model.ok());
  EXPECT_NE(wrong_model.status().message().find("another model"), std::string::npos)
      << wrong_model.status().message();
  auto wrong_data = CalibrationStats::Load(path, "", "fashion-mnist:test scale=1");
  ASSERT_FALSE(wrong_data.ok());
  EXPECT_NE(wrong_data.status().message().find("fashion-mnist:train[0:32]"), std::string::npos)
      << wrong_data.status().message();
  // Another slice or preprocessing is another key.
  Preprocess p;
  p.mean = {0.5f};
  EXPECT_NE(DataKey(*c.data, p), DataKey(*c.data, {}));
  // Corrupt files: one clear error each.
  for (const std::string& text :
       {std::string("{"), std::string("[]"), std::string("{\"lowbit_calibration\": 7}"),
        c.stats.ToJson().substr(0, c.stats.ToJson().size() / 2)}) {
    ASSERT_TRUE(WriteFileAtomic(path, text).ok());
    auto bad = CalibrationStats::Load(path);
    ASSERT_FALSE(bad.ok());
    EXPECT_NE(bad.status().message().find(path), std::string::npos) << bad.status().message();
  }
}

TEST(Calibrate, RefusesSamplesOfAnotherShape) {
  Graph g = testing::LoadBundled("fmnist_cnn.onnx");
  auto ds = Dataset::Open("digits[0:10]");
  ASSERT_TRUE(ds.ok());
  CalibrateOptions o;
  o.quiet = true;
  auto s = Calibrate(g, **ds, o);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("digits[0:10]"), std::string::npos) << s.status().message();
}

}  // namespace
}  // namespace lowbit
