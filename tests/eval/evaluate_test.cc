// Evaluation in memory: the numbers `lowbit eval` prints, exactly; agreement
// and SQNR against cached reference outputs; data held in memory reads as the
// file does.
#include "eval/evaluate.h"

#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "quant/quantize.h"
#include "tests/model_files.h"

namespace lowbit {
namespace {

constexpr char kTest[] = "fashion-mnist:test[0:1000]";

std::unique_ptr<Dataset> Open(const std::string& spec) {
  auto ds = Dataset::Open(spec);
  EXPECT_TRUE(ds.ok()) << ds.status().ToString();
  return ds.ok() ? std::move(ds).value() : nullptr;
}

TEST(Evaluate, EqualsLowbitEval) {
  for (const std::string model : {"fmnist_cnn.onnx", "fmnist_mlp.onnx"}) {
    Graph g = testing::LoadBundled(model);
    auto ds = Open(kTest);
    EvalOptions o;
    o.batch = 50;
    auto r = Evaluate(g, *ds, o);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    int rc = 0;
    const std::string out = testing::RunCli(
        "eval " + testing::ModelPath(model) + " --data '" + kTest + "' --batch 50 --json", &rc);
    ASSERT_EQ(rc, 0) << out;
    const nlohmann::json j = nlohmann::json::parse(out);
    EXPECT_EQ(j["samples"].get<int64_t>(), r->samples);
    EXPECT_EQ(j["correct_top1"].get<int64_t>(), r->correct_top1);
    EXPECT_EQ(j["top1"].get<double>(), r->top1);
    EXPECT_EQ(j["top5"].get<double>(), r->top5);
    ASSERT_EQ(j["per_class"].size(), r->class_samples.size());
    int64_t total = 0, correct = 0;
    for (size_t c = 0; c < r->class_samples.size(); ++c) {
      EXPECT_EQ(j["per_class"][c]["samples"].get<int64_t>(), r->class_samples[c]);
      EXPECT_EQ(j["per_class"][c]["correct"].get<int64_t>(), r->class_correct[c]);
      total += r->class_samples[c];
      correct += r->class_correct[c];
    }
    EXPECT_EQ(total, r->samples);
    EXPECT_EQ(correct, r->correct_top1);
    EXPECT_GT(r->top1, 80.0) << model;  // the bundled models score ~89-91%
    EXPECT_TRUE(std::isnan(r->agreement));
  }
}

TEST(Evaluate, AgreementAndSqnrAgainstAReference) {
  Graph g = testing::LoadBundled("fmnist_cnn.onnx");
  auto ds = Open(kTest);
  auto mem = LoadIntoMemory(*ds);
  ASSERT_TRUE(mem.ok()) << mem.status().ToString();
  EXPECT_EQ((*mem)->spec(), ds->spec());
  EXPECT_EQ((*mem)->size(), ds->size());
  EvalOptions o;
  ReferenceOutputs ref;
  auto fp32 = Evaluate(g, **mem, o, &ref);
  ASSERT_TRUE(fp32.ok()) << fp32.status().ToString();
  EXPECT_EQ(ref.samples, 1000);
  EXPECT_EQ(ref.classes, 10);
  EXPECT_EQ(ref.scores.size(), 10000u);
  // The same numbers from the file as from memory.
  auto streamed = Evaluate(g, *ds, o);
  ASSERT_TRUE(streamed.ok());
  EXPECT_EQ(streamed->correct_top1, fp32->correct_top1);
  EXPECT_EQ(streamed->correct_top5, fp32->correct_top5);
  // Against itself: full agreement, no noise.
  o.reference = &ref;
  auto self = Evaluate(g, **mem, o);
  ASSERT_TRUE(self.ok());
  EXPECT_EQ(self->agreement, 100.0);
  EXPECT_TRUE(std::isinf(self->sqnr_db));
  // A 2-bit model: agreement and SQNR computed by hand from its outputs.
  QuantizeOptions qo;
  qo.plan.defaults.weights = "int2";
  qo.quiet = true;
  auto q = QuantizeGraph(g, qo);
  ASSERT_TRUE(q.ok()) << q.status().ToString();
  ReferenceOutputs qout;
  auto qr = Evaluate(q->graph, **mem, o, &qout);
  ASSERT_TRUE(qr.ok()) << qr.status().ToString();
  int64_t agree = 0;
  double s = 0, e = 0;
  for (int64_t i = 0; i < 1000; ++i) agree += qout.top1[i] == ref.top1[i];
  for (size_t i = 0; i < ref.scores.size(); ++i) {
    s += static_cast<double>(ref.scores[i]) * ref.scores[i];
    e += (static_cast<double>(ref.scores[i]) - qout.scores[i]) *
         (static_cast<double>(ref.scores[i]) - qout.scores[i]);
  }
  EXPECT_DOUBLE_EQ(qr->agreement, agree / 10.0);
  EXPECT_NEAR(qr->sqnr_db, 10 * std::log10(s / e), 1e-9);
  EXPECT_LT(qr->agreement, 100.0);
  EXPECT_GT(qr->agreement, 50.0);
  // Without labels: the reference metrics only.
  EvalOptions unlabelled = o;
  unlabelled.labels = false;
  auto u = Evaluate(q->graph, **mem, unlabelled);
  ASSERT_TRUE(u.ok());
  EXPECT_TRUE(std::isnan(u->top1));
  EXPECT_EQ(u->agreement, qr->agreement);
  // A reference of another size is refused.
  o.limit = 10;
  auto bad = Evaluate(g, **mem, o);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("1000"), std::string::npos) << bad.status().message();
}

}  // namespace
}  // namespace lowbit
