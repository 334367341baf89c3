// The tuner on the bundled digits MLP: a feasible point within the bound,
// a Pareto front, determinism, and a resumed run that equals an
// uninterrupted one; the journal's refusals and torn lines.
#include "tune/tuner.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "base/npy.h"
#include "tests/model_files.h"
#include "tune/journal.h"
#include "tune/report.h"

namespace lowbit {
namespace {

struct DigitsRun {
  Graph g = testing::LoadBundled("digits_mlp.onnx");
  std::unique_ptr<Dataset> calib = Dataset::Open("digits[0:500]").value();
  std::unique_ptr<Dataset> val = Dataset::Open("digits[500:1400]").value();

  TuneOptions Options(int64_t max_evals, const std::string& journal = "") {
    TuneOptions o;
    o.objective = ParseObjective("size").value();
    SpaceOptions so;
    o.space = SearchSpace(so).value();
    o.max_loss = 1.0;
    o.max_evals = max_evals;
    o.journal = journal;
    o.quiet = true;
    o.calib.quiet = true;
    o.layer.weight_clip_auto = true;
    o.eval.batch = 50;
    return o;
  }
  Result<TuneResult> Run(const TuneOptions& o) { return Tune(g, *calib, *val, o); }
};

TEST(Tuner, FindsAFeasiblePointAndAParetoFront) {
  DigitsRun d;
  auto r = d.Run(d.Options(40));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_TRUE(r->feasible);
  ASSERT_GE(r->best, 0);
  const TunePoint& best = r->points[r->best];
  EXPECT_GE(best.metric - r->z * best.se, r->bound);
  EXPECT_NEAR(r->z, 1.2816, 0.001);  // the 90% one-sided margin
  EXPECT_EQ(r->bound, r->fp32_metric - 1.0);
  EXPECT_EQ(r->evaluations, 40);
  // The chosen point is the cheapest feasible one evaluated, and no uniform
  // plan that met the bound is cheaper.
  int uniform = 0;
  for (const TunePoint& p : r->points) {
    if (p.feasible) {
      EXPECT_GE(p.objective, best.objective);
    }
    EXPECT_EQ(p.feasible, p.metric - r->z * p.se >= r->bound);
    EXPECT_GE(p.se, 0.0);
    uniform += p.phase == "uniform";
    int64_t bytes = 0;
    for (size_t l = 0; l < r->layers.size(); ++l) bytes += r->layers[l].bytes[p.choice[l]];
    EXPECT_EQ(bytes, p.bytes);
  }
  EXPECT_GT(uniform, 5);
  EXPECT_LT(best.objective, 1.0 / 8);  // smaller than uniform int4 would be
  // The front: objective rising, metric rising, each point undominated.
  ASSERT_GE(r->front.size(), 2u);
  for (size_t i = 1; i < r->front.size(); ++i) {
    EXPECT_GE(r->points[r->front[i]].objective, r->points[r->front[i - 1]].objective);
    EXPECT_GT(r->points[r->front[i]].metric, r->points[r->front[i - 1]].metric);
  }
  for (int i : r->front) {
    for (const TunePoint& p : r->points) {
      EXPECT_FALSE(p.objective < r->points[i].objective && p.metric > r->points[i].metric)
          << "a front point is dominated";
    }
  }
  ReportInfo info;
  info.model = "digits_mlp.onnx";
  info.objective = "size";
  info.metric = "top1";
  LayerSettings mixed;
  mixed.weights = "int2/int4";
  mixed.filters = {0, 1, 1, 0};
  info.resolved = {{"/0/Gemm", mixed}};
  const std::string html = ReportHtml(*r, info);
  EXPECT_NE(html.find("Per-filter formats"), std::string::npos);
  EXPECT_NE(html.find("int4 (2)"), std::string::npos);
  EXPECT_NE(html.find("<svg"), std::string::npos);
  EXPECT_NE(html.find("/0/Gemm"), std::string::npos);
  EXPECT_EQ(ParetoJson(*r)["front"].size(), r->front.size());
}

std::vector<std::pair<std::vector<int>, double>> Trace(const TuneResult& r) {
  std::vector<std::pair<std::vector<int>, double>> t;
  for (const TunePoint& p : r.points) t.push_back({p.choice, p.metric});
  return t;
}

TEST(Tuner, IsDeterministicAndResumesWhereItStopped) {
  DigitsRun d;
  testing::ScratchDir dir;
  auto a = d.Run(d.Options(30));
  auto b = d.Run(d.Options(30));
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(Trace(*a), Trace(*b));
  // Interrupted after 12 evaluations, then run again with the same journal.
  const std::string j = dir.File("j.jsonl");
  auto part = d.Run(d.Options(12, j));
  ASSERT_TRUE(part.ok()) << part.status().ToString();
  EXPECT_EQ(part->evaluations, 12);
  auto resumed = d.Run(d.Options(30, j));
  ASSERT_TRUE(resumed.ok()) << resumed.status().ToString();
  EXPECT_GT(resumed->resumed, 12);  // the layer measurements and 12 plans
  EXPECT_EQ(Trace(*resumed), Trace(*a));
  EXPECT_EQ(resumed->best, a->best);
  // Another bound reuses the measurements: nothing is evaluated again until
  // the search leaves the recorded plans.
  TuneOptions looser = d.Options(30, j);
  looser.max_loss = 2.0;
  auto reused = d.Run(looser);
  ASSERT_TRUE(reused.ok()) << reused.status().ToString();
  EXPECT_GE(reused->resumed, resumed->resumed);
  // Options that change the measurements are another run: refused.
  TuneOptions other = d.Options(30, j);
  other.metric = TuneMetric::kAgreement;
  auto refused = d.Run(other);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("another tuning run"), std::string::npos)
      << refused.status().message();
}

// Left to converge, the tuner also searches above the bound: at half the
// allowed loss its cheapest plan is no dearer than the cheapest uniform one
// there, and the chosen point is still the cheapest feasible. GPTQ rounding
// and a journal that resumes it.
TEST(Tuner, SearchesTheFrontAboveTheBound) {
  DigitsRun d;
  testing::ScratchDir dir;
  TuneOptions o = d.Options(0, dir.File("j.jsonl"));
  o.layer.gptq = true;
  o.calib.gram_max_cols = kGptqMaxCols;
  auto r = d.Run(o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_TRUE(r->feasible);
  EXPECT_EQ(r->stats.grams.size(), 2u);
  const double level = r->bound + 0.5 * (r->fp32_metric - r->bound);
  double searched = 1e9, uniform = 1e9, feasible = 1e9;
  int front = 0;
  for (const TunePoint& p : r->points) {
    front += p.phase == "front";
    if (p.feasible) feasible = std::min(feasible, p.objective);
    if (p.metric - r->z * p.se < level) continue;
    searched = std::min(searched, p.objective);
    if (p.phase == "uniform") uniform = std::min(uniform, p.objective);
  }
  EXPECT_GT(front, 0);
  EXPECT_LE(searched, uniform);
  EXPECT_EQ(r->points[r->best].objective, feasible);
  // The calibration cache beside the journal keeps the Gram matrices: a
  // second run reads it and reaches the same plans.
  auto again = d.Run(o);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->stats.grams, r->stats.grams);
  EXPECT_EQ(Trace(*again), Trace(*r));
  // Nearest rounding is another run for the journal.
  TuneOptions nearest = o;
  nearest.layer.gptq = false;
  EXPECT_FALSE(d.Run(nearest).ok());
}

// A budget the per-layer measurements spend entirely still evaluates one
// plan, the uniform one the isolated losses say is most accurate (not fp32).
TEST(Tuner, AnExhaustedBudgetStillWritesTheMostAccurateUniformPlan) {
  DigitsRun d;
  TuneOptions o = d.Options(0);
  o.budget_seconds = 1e-6;
  auto r = d.Run(o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->evaluations, 1);
  const TunePoint& p = r->points[0];
  EXPECT_EQ(p.phase, "uniform");
  const std::string setting = r->space[p.choice[0]];
  EXPECT_NE(setting, "float");
  double loss = 0;
  for (size_t l = 0; l < r->layers.size(); ++l) loss += std::max(0.0, r->layers[l].loss[p.choice[l]]);
  for (size_t s = 0; s < r->space.size(); ++s) {
    if (r->space[s] == "float" || !r->layers[0].valid[s] || !r->layers[1].valid[s]) continue;
    double other = 0;
    for (size_t l = 0; l < r->layers.size(); ++l) other += std::max(0.0, r->layers[l].loss[s]);
    EXPECT_LE(loss, other) << setting << " vs " << r->space[s];
  }
  EXPECT_TRUE(r->feasible) << setting;
}

// An SQNR run's all-fp32 plan has an infinite SQNR, which the journal
// writes as JSON null: a resumed run reads it back as infinity.
TEST(Tuner, ResumesAnSqnrRunWithAnExactPlan) {
  DigitsRun d;
  testing::ScratchDir dir;
  TuneOptions o = d.Options(20, dir.File("j.jsonl"));
  o.space = {"int2", "int4", "float"};
  o.metric = TuneMetric::kSqnr;
  o.min_sqnr = 20;
  auto a = d.Run(o);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  bool exact = false;
  for (const TunePoint& p : a->points) exact = exact || std::isinf(p.metric);
  EXPECT_TRUE(exact);
  auto b = d.Run(o);
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_EQ(Trace(*b), Trace(*a));
}

// A latency objective confirms its candidates end to end: the cheapest
// feasible plans and every feasible uniform plan carry end-to-end times,
// and the chosen point is one of them.
TEST(Tuner, LatencyObjectiveConfirmsEndToEnd) {
  DigitsRun d;
  TuneOptions o = d.Options(30);
  o.objective = ParseObjective("latency").value();
  auto r = d.Run(o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_TRUE(r->feasible);
  EXPECT_GT(r->points[r->best].e2e_ms, 0);
  EXPECT_GT(r->points[r->best].e2e_fp32_ms, 0);
  int confirmed = 0;
  for (const TunePoint& p : r->points) {
    if (p.feasible && p.phase == "uniform") {
      EXPECT_GT(p.e2e_ms, 0);
    }
    if (!p.feasible) {
      EXPECT_EQ(p.e2e_ms, 0);
    }
    confirmed += p.e2e_ms > 0;
  }
  ReportInfo info;
  info.model = "digits_mlp.onnx";
  info.objective = "latency";
  info.metric = "top1";
  const std::string html = ReportHtml(*r, info);
  EXPECT_EQ(html.find("measured end to end") != std::string::npos, confirmed >= 3) << confirmed;
}

TEST(Journal, DropsATornLastLineAndRefusesOtherKeys) {
  testing::ScratchDir dir;
  const std::string path = dir.File("j.jsonl");
  {
    auto j = Journal::Open(path, "k1");
    ASSERT_TRUE(j.ok()) << j.status().ToString();
    ASSERT_TRUE((*j)->Append("a", {{"metric", 1.5}}).ok());
    ASSERT_TRUE((*j)->Append("b", {{"metric", 2.5}}).ok());
  }
  {  // a kill during the third write
    std::ofstream f(path, std::ios::app | std::ios::binary);
    f << R"({"name": "c", "value": {"met)";
  }
  auto j = Journal::Open(path, "k1");
  ASSERT_TRUE(j.ok()) << j.status().ToString();
  EXPECT_EQ((*j)->resumed(), 2);
  ASSERT_NE((*j)->Find("b"), nullptr);
  EXPECT_EQ((*(*j)->Find("b"))["metric"], 2.5);
  EXPECT_EQ((*j)->Find("c"), nullptr);
  ASSERT_TRUE((*j)->Append("c", {{"metric", 3.5}}).ok());
  j->reset();
  auto again = Journal::Open(path, "k1");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ((*again)->resumed(), 3);
  auto other = Journal::Open(path, "k2");
  ASSERT_FALSE(other.ok());
  EXPECT_NE(other.status().message().find("k1"), std::string::npos);
  EXPECT_NE(other.status().message().find("k2"), std::string::npos);
  ASSERT_TRUE(WriteFileAtomic(path, "not json\nat all\n").ok());
  EXPECT_FALSE(Journal::Open(path, "k1").ok());
}

TEST(TuneSpace, ParsesObjectivesFormatsAndBits) {
  auto o = ParseObjective("size+0.3*latency");
  ASSERT_TRUE(o.ok());
  EXPECT_EQ(o->size, 1.0);
  EXPECT_DOUBLE_EQ(o->latency, 0.3);
  EXPECT_FALSE(ParseObjective("speed").ok());
  EXPECT_FALSE(ParseObjective("-1*size").ok());
  SpaceOptions so;
  ASSERT_TRUE(ParseFormatsOption("int,pow2", &so).ok());
  ASSERT_TRUE(ParseBitsOption("2..4", &so).ok());
  so.filter_wise = false;
  auto space = SearchSpace(so);
  ASSERT_TRUE(space.ok());
  EXPECT_EQ(*space, (std::vector<std::string>{"int2", "int3", "int4", "pow2-2", "pow2-3", "pow2-4",
                                              "float"}));
  ASSERT_TRUE(ParseBitsOption("4,2,8", &so).ok());
  so.filter_wise = true;
  EXPECT_EQ(*SearchSpace(so), (std::vector<std::string>{"int2", "int4", "int8", "pow2-2", "pow2-4",
                                                         "int2/int4:0.125", "int2/int4:0.25",
                                                         "int2/int4:0.5", "int4/int8:0.125",
                                                         "int4/int8:0.25", "int4/int8:0.5", "float"}));
  EXPECT_FALSE(ParseFormatsOption("int,fp8", &so).ok());
  EXPECT_FALSE(ParseBitsOption("0..9", &so).ok());
  EXPECT_FALSE(ParseBitsOption("3,x", &so).ok());
}

}  // namespace
}  // namespace lowbit
