// The public C++ API (include/lowbit/lowbit.h): results equal the internal
// runtime's and the command's files, several threads may Run one Model, and
// bad input is a Status, never an exception or a crash.
#include "lowbit/lowbit.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <iterator>
#include <thread>

#include "data/dataset.h"
#include "tests/model_files.h"
#include "tests/test_util.h"

namespace lowbit {
namespace {

std::string Bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

std::vector<float> Images(int64_t n, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> x(static_cast<size_t>(n * 28 * 28));
  for (float& v : x) v = static_cast<float>(rng.Uniform());
  return x;
}

TEST(ApiTest, RunMatchesTheRuntimeAndRunIntoMatchesRun) {
  Result<Model> m = Model::Load(testing::ModelPath("fmnist_cnn.onnx"));
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  ASSERT_EQ(m->inputs().size(), 1u);
  EXPECT_EQ(m->inputs()[0].shape, (std::vector<int64_t>{-1, 1, 28, 28}));
  const std::vector<float> x = Images(3, 7);
  Result<std::vector<Array>> y = m->Run({{x.data(), {3, 1, 28, 28}}});
  ASSERT_TRUE(y.ok()) << y.status().ToString();
  ASSERT_EQ((*y)[0].shape, (std::vector<int64_t>{3, 10}));
  // The internal runtime on the same input.
  const Graph g = testing::LoadBundled("fmnist_cnn.onnx");
  PlanOptions po;
  po.batch = 3;
  auto plan = Plan::Create(g, po).value();
  std::copy(x.begin(), x.end(), plan->input(0).data<float>());
  plan->Run();
  for (int i = 0; i < 30; ++i) EXPECT_EQ((*y)[0].data[i], plan->output(0).data<float>()[i]);
  std::vector<float> buf(30);
  std::vector<OutputRef> out = {{buf.data(), 30, {}}};
  ASSERT_TRUE(m->RunInto({{x.data(), {3, 1, 28, 28}}}, &out).ok());
  EXPECT_EQ(out[0].shape, (std::vector<int64_t>{3, 10}));
  EXPECT_EQ(buf, (*y)[0].data);
  // By name.
  Result<std::vector<Array>> by_name = m->Run(std::map<std::string, TensorRef>{{"input", {x.data(), {3, 1, 28, 28}}}});
  ASSERT_TRUE(by_name.ok());
  EXPECT_EQ((*by_name)[0].data, (*y)[0].data);
}

TEST(ApiTest, ConcurrentRunsOnOneModelGiveTheSerialResults) {
  ASSERT_TRUE(Quantize(testing::ModelPath("fmnist_cnn.onnx"), "/tmp/lowbit_api_int4.onnx",
                       [] {
                         QuantizeConfig c;
                         c.weights = "int4";
                         c.calib_spec = "fashion-mnist:train[0:128]";
                         return c;
                       }())
                  .ok());
  for (const char* path : {"/tmp/lowbit_api_int4.onnx"}) {
    Result<Model> m = Model::Load(path, {2, "", true});
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    std::vector<std::vector<float>> xs;
    std::vector<std::vector<float>> want;
    for (int t = 0; t < 4; ++t) {
      xs.push_back(Images(1 + t, 100 + t));
      want.push_back(m->Run({{xs[t].data(), {1 + t, 1, 28, 28}}}).value()[0].data);
    }
    std::vector<int> mismatches(4, 0);
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&, t] {
        for (int r = 0; r < 25; ++r) {
          Result<std::vector<Array>> y = m->Run({{xs[t].data(), {1 + t, 1, 28, 28}}});
          if (!y.ok() || (*y)[0].data != want[t]) ++mismatches[t];
        }
      });
    }
    for (std::thread& th : threads) th.join();
    EXPECT_EQ(mismatches, std::vector<int>(4, 0));
  }
  std::remove("/tmp/lowbit_api_int4.onnx");
}

TEST(ApiTest, QuantizeFromArraysEqualsQuantizeFromTheSpec) {
  testing::ScratchDir dir;
  QuantizeConfig c;
  c.weights = "int2/int4:0.25";
  c.calib_spec = "fashion-mnist:train[0:200]";
  Result<QuantizeSummary> a = Quantize(testing::ModelPath("fmnist_cnn.onnx"), dir.File("a.onnx"), c);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  // The same samples in memory, preprocessed as the spec's default (1/255).
  auto data = Dataset::Open("fashion-mnist:train[0:200]").value();
  std::vector<float> x(200 * 784);
  ASSERT_TRUE(data->Read(0, 200, x.data(), nullptr).ok());
  const float scale = static_cast<float>(1.0 / 255);  // as ApplyPreprocess
  for (float& v : x) v *= scale;
  c.calib_spec.clear();
  c.calib_samples = {x.data(), {200, 1, 28, 28}};
  Result<QuantizeSummary> b = Quantize(testing::ModelPath("fmnist_cnn.onnx"), dir.File("b.onnx"), c);
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_TRUE(Bytes(dir.File("a.onnx")) == Bytes(dir.File("b.onnx")));
  EXPECT_EQ(a->output_bytes, static_cast<int64_t>(Bytes(dir.File("a.onnx")).size()));
  ASSERT_EQ(a->layers.size(), 5u);
  EXPECT_EQ(a->layers[0].format, "int2/int4");
  // The command gives the same file.
  int rc = 0;
  testing::RunCli("quantize " + testing::ModelPath("fmnist_cnn.onnx") + " -o " + dir.File("c.onnx") +
                      " --weights int2/int4:0.25 --calib 'fashion-mnist:train[0:200]' --quiet",
                  &rc);
  ASSERT_EQ(rc, 0);
  EXPECT_TRUE(Bytes(dir.File("a.onnx")) == Bytes(dir.File("c.onnx")));
}

TEST(ApiTest, BadInputIsAStatus) {
  EXPECT_EQ(Model::Load("/nonexistent/model.onnx").status().code(), StatusCode::kNotFound);
  EXPECT_FALSE(Model::Load(testing::ModelPath("fmnist_cnn.onnx"), {0, "", true}).ok());
  Result<Model> bad_kernel = Model::Load(testing::ModelPath("fmnist_cnn.onnx"), {1, "sse9", true});
  ASSERT_FALSE(bad_kernel.ok());
  EXPECT_NE(bad_kernel.status().message().find("sse9"), std::string::npos);
  Model m = Model::Load(testing::ModelPath("fmnist_cnn.onnx")).value();
  const std::vector<float> x = Images(2, 1);
  Result<std::vector<Array>> wrong = m.Run({{x.data(), {2, 1, 27, 29}}});
  ASSERT_FALSE(wrong.ok());
  EXPECT_NE(wrong.status().message().find("[2, 1, 27, 29]"), std::string::npos) << wrong.status().message();
  EXPECT_FALSE(m.Run(std::vector<TensorRef>{}).ok());
  EXPECT_FALSE(m.Run({{nullptr, {2, 1, 28, 28}}}).ok());
  EXPECT_FALSE(m.Run(std::map<std::string, TensorRef>{{"image", {x.data(), {2, 1, 28, 28}}}}).ok());
  std::vector<float> small(5);
  std::vector<OutputRef> out = {{small.data(), 5, {}}};
  Status s = m.RunInto({{x.data(), {2, 1, 28, 28}}}, &out);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("needs 20 floats"), std::string::npos) << s.message();
  QuantizeConfig c;
  c.weights = "int9";
  EXPECT_FALSE(Quantize(testing::ModelPath("fmnist_cnn.onnx"), "/tmp/never.onnx", c).ok());
  c.weights = "int4";
  c.calib_samples = {x.data(), {2, 1, 27, 29}};
  EXPECT_FALSE(Quantize(testing::ModelPath("fmnist_cnn.onnx"), "/tmp/never.onnx", c).ok());
  EXPECT_FALSE(std::ifstream("/tmp/never.onnx").good());
}

}  // namespace
}  // namespace lowbit
