// Training (src/train): the torch form of a graph computes what lowbit's fp32
// runtime computes; fake quantizers give exactly the encoder's and the
// runtime's values, with the straight-through / LSQ gradients; a short
// fine-tune beats post-training quantization and its packed file agrees with
// the training-side evaluation.
#include <gtest/gtest.h>

#include <cmath>

#include "eval/evaluate.h"
#include "kernels/qlinear.h"
#include "lowbit/packed_tensor.h"
#include "quant/quantize.h"
#include "tests/model_files.h"
#include "tests/runtime/packed_graphs.h"
#include "tests/test_util.h"
#include "train/fake_quant.h"
#include "train/finetune.h"
#include "train/torch_graph.h"

namespace lowbit {
namespace {

using train::ActQuantizer;
using train::TorchGraph;
using train::WeightQuantizer;

torch::Tensor ToTorch(const Tensor& t) {
  return torch::from_blob(const_cast<void*>(t.raw()), t.shape(), torch::kFloat32).clone();
}

// Relative error of the torch forward against lowbit's fp32 runtime.
double ForwardError(const Graph& g, const Tensor& x) {
  const Tensor ref = RunGraph(g, x, 1);
  Result<std::unique_ptr<TorchGraph>> tg = TorchGraph::Build(g);
  EXPECT_TRUE(tg.ok()) << tg.status().ToString();
  if (!tg.ok()) return 1e9;
  torch::NoGradGuard no_grad;
  const torch::Tensor y = (*tg)->Forward(ToTorch(x), false).contiguous();
  EXPECT_EQ(y.numel(), ref.numel());
  double num = 0, den = 1e-30;
  for (int64_t i = 0; i < ref.numel(); ++i) {
    num = std::max(num, std::fabs(static_cast<double>(y.data_ptr<float>()[i]) - ref.data<float>()[i]));
    den = std::max(den, std::fabs(static_cast<double>(ref.data<float>()[i])));
  }
  return num / den;
}

TEST(TorchGraphTest, Fp32ForwardEqualsRuntimeOnBundledModels) {
  Rng rng(testing::TestSeed());
  for (const char* name : {"fmnist_cnn.onnx", "fmnist_mlp.onnx", "digits_mlp.onnx"}) {
    const Graph g = testing::LoadBundled(name);
    Shape shape = g.inputs[0].shape;
    shape[0] = 5;
    EXPECT_LE(ForwardError(g, Random(shape, rng, 0, 1)), 1e-5) << name;
  }
}

TEST(TorchGraphTest, Fp32ForwardEqualsRuntimeOnResidualDepthwiseBlocks) {
  Rng rng(testing::TestSeed());
  for (bool residual : {false, true}) {
    for (bool broadcast : {false, true}) {
      const Graph g = BlocksGraph(residual, broadcast, rng, residual && !broadcast);
      EXPECT_LE(ForwardError(g, Random({3, 6, 11, 9}, rng)), 1e-5)
          << "residual " << residual << " broadcast " << broadcast;
    }
  }
}

// MobileNet's ReLU6: Clip with constant bounds, fused into the conv.
TEST(TorchGraphTest, Fp32ForwardEqualsRuntimeWithFusedClip) {
  Rng rng(testing::TestSeed());
  Graph g = ConvGraph({2, 4, 9, 7, 6, 3, 2, 1, 1}, rng, false);
  g.nodes[0].outputs = {"c"};
  g.constants["lo"] = Tensor::FromFloats({}, {0.0f});
  g.constants["hi"] = Tensor::FromFloats({}, {0.5f});
  AddNode(&g, "Clip", {"c", "lo", "hi"}, "y");
  ASSERT_TRUE(OptimizeGraph(&g).ok());
  ASSERT_EQ(g.nodes.size(), 1u);  // fused
  EXPECT_EQ(g.nodes[0].GetString("lowbit.activation", ""), "Clip");
  EXPECT_LE(ForwardError(g, Random({2, 4, 9, 7}, rng)), 1e-5);
}

TEST(TorchGraphTest, RefusesOperatorsItCannotTrainThrough) {
  Rng rng(testing::TestSeed());
  Graph g = ConvGraph({1, 2, 5, 5, 3, 3, 1, 1, 1}, rng, false);
  g.nodes[0].op_type = "Einsum";
  Result<std::unique_ptr<TorchGraph>> tg = TorchGraph::Build(g);
  ASSERT_FALSE(tg.ok());
  EXPECT_NE(tg.status().message().find("Einsum"), std::string::npos) << tg.status().message();
}

// Weights at every level's midpoint (ties), at and beyond the end levels,
// and random ones, for each format: the fake-quantized value is Decode's of
// the encoder's codes, bit for bit, and packing gives PTQ's codes.
TEST(FakeQuantTest, WeightValuesAreTheEncodersExactly) {
  for (const char* fmt : {"int1", "int2", "int3", "int4", "int8", "uint4", "int3-asym", "pow2-3",
                          "nhot2-3", "codebook-3"}) {
    FormatSpec spec = ParseFormat(fmt).value();
    const int64_t rows = 6, cols = 40;
    std::vector<float> w = testing::Laplace(rows * cols, testing::TestSeed() + spec.bits, 0.3);
    FitOptions fo;
    fo.granularity.kind = Granularity::kChannel;
    PackedTensor pt = PackedTensor::Quantize(w.data(), {rows, cols}, spec, fo).value();
    const QuantParams& p = pt.params();
    // Overwrite the first half of each row with ties and ends.
    for (int64_t r = 0; r < rows; ++r) {
      const float s = p.scales[r], z = static_cast<float>(p.zero_point(r));
      int64_t c = 0;
      for (size_t i = 0; i + 1 < p.levels.size() && c < cols / 2; ++i) {
        w[r * cols + c++] = s * (((p.levels[i] - z) + (p.levels[i + 1] - z)) / 2);
      }
      if (c + 4 <= cols / 2) {
        w[r * cols + c++] = s * (p.levels.front() - z);
        w[r * cols + c++] = s * (p.levels.back() - z);
        w[r * cols + c++] = s * (p.levels.front() - z) * 1.5f - 1;
        w[r * cols + c++] = s * (p.levels.back() - z) * 1.5f + 1;
      }
    }
    auto wq = WeightQuantizer::FromParts(PackedParts::Uniform(pt), false, true).value();
    const torch::Tensor wt = torch::tensor(w).view({rows, cols});
    const torch::Tensor got = wq->Forward(wt).contiguous();
    // The reference: lowbit's Encode then Decode under the same parameters.
    std::vector<uint32_t> codes(w.size());
    ASSERT_TRUE(Encode(p, w.data(), codes.data()).ok());
    std::vector<float> ref(w.size());
    Decode(p, codes.data(), ref.data());
    ASSERT_EQ(0, std::memcmp(got.data_ptr<float>(), ref.data(), ref.size() * sizeof(float))) << fmt;
    PackedParts packed = wq->Pack(wt).value();
    PackedTensor expect = PackedTensor::FromCodes(p, {rows, cols}, codes.data()).value();
    EXPECT_EQ(packed.parts[0].data(), expect.data()) << fmt;
    EXPECT_EQ(packed.parts[0].params().scales, p.scales) << fmt;
  }
}

TEST(FakeQuantTest, FilterWiseWeightsTakeEachPartsFormat) {
  const int64_t rows = 8, cols = 18;
  std::vector<float> w = testing::Laplace(rows * cols, testing::TestSeed(), 0.2);
  std::vector<int32_t> assign = {0, 1, 1, 0, 0, 1, 0, 1};
  QuantLayer layer;
  layer.name = "fc";
  layer.op = "Gemm";
  layer.wshape = {rows, cols};
  layer.w = w;
  Graph g;
  g.nodes.resize(1);
  g.nodes[0].name = "fc";
  g.nodes[0].op_type = "Gemm";
  layer.node = 0;
  LayerSettings s;
  s.weights = "int2/int4";
  s.filters = assign;
  s.acts = "float";
  QuantizedLayer ql = QuantizeLayer(g, layer, s, nullptr, {}).value();
  PackedParts parts = PackedPartsOf(ql.packed, ql.constants.at("fc.codes"), ql.constants.at("fc.scales")).value();
  auto wq = WeightQuantizer::FromParts(parts, false, true).value();
  const torch::Tensor got = wq->Forward(torch::tensor(w).view({rows, cols})).contiguous();
  ASSERT_EQ(0, std::memcmp(got.data_ptr<float>(), ql.wq.data(), ql.wq.size() * sizeof(float)));
  EXPECT_EQ(wq->format(), "int2/int4");
}

// Activations at ties of the grid, at lo and hi and beyond: the value is
// scale * (u - zero) for the runtime's bytes u (QuantizeRowWith).
TEST(FakeQuantTest, ActivationValuesAreTheRuntimesBytes) {
  for (bool symmetric : {false, true}) {
    const float lo = symmetric ? -1.7f : -0.37f, hi = 2.9f;
    ActQuantizer aq(lo, hi, symmetric);
    const auto [qlo, qhi] = aq.Range();
    const ActQuant a = StaticActParams(qlo, qhi, symmetric, false);
    std::vector<float> x;
    for (int k = -140; k <= 270; ++k) {
      x.push_back((static_cast<float>(k) + 0.5f) * a.scale);
      x.push_back(static_cast<float>(k) * a.scale);
    }
    x.insert(x.end(), {qlo, qhi, qlo - 1, qhi + 1, 0.0f, -0.0f});
    std::vector<uint8_t> u(x.size());
    QuantizeRowWith(x.data(), static_cast<int64_t>(x.size()), static_cast<int64_t>(x.size()), a, false,
                    u.data());
    const torch::Tensor got = aq.Forward(torch::tensor(x).view({1, -1})).contiguous();
    for (size_t i = 0; i < x.size(); ++i) {
      const float want = (static_cast<float>(u[i]) - static_cast<float>(a.zero)) * a.scale;
      ASSERT_EQ(got.data_ptr<float>()[i], want) << "x " << x[i] << " symmetric " << symmetric;
    }
  }
}

// LSQ: dL/dw = dL/dwq inside the range, 0 outside; dL/ds (per channel) =
// g * sum dL/dwq * (level - u) inside, level outside, g = 1/sqrt(cols * Qp).
TEST(FakeQuantTest, LearnedStepSizeGradients) {
  const int64_t rows = 3, cols = 16;
  std::vector<float> w = testing::Laplace(rows * cols, testing::TestSeed(), 0.5);
  FitOptions fo;
  fo.granularity.kind = Granularity::kChannel;
  fo.clip = ClipMethod::kMse;  // clipped: some weights lie outside
  PackedTensor pt = PackedTensor::Quantize(w.data(), {rows, cols}, ParseFormat("int3").value(), fo).value();
  const QuantParams& p = pt.params();
  auto wq = WeightQuantizer::FromParts(PackedParts::Uniform(pt), false, true).value();
  torch::Tensor wt = torch::tensor(w).view({rows, cols}).requires_grad_(true);
  const torch::Tensor c = torch::linspace(-1, 1, rows * cols).view({rows, cols});
  (wq->Forward(wt) * c).sum().backward();
  const torch::Tensor scales = wq->Parameters()[0];
  float qp = 1;
  for (float l : p.levels) qp = std::max(qp, std::fabs(l));
  const double g = 1.0 / std::sqrt(cols * qp);
  int outside = 0;
  for (int64_t r = 0; r < rows; ++r) {
    double ds = 0;
    for (int64_t j = 0; j < cols; ++j) {
      const float u = w[r * cols + j] / p.scales[r];
      uint32_t code = 0;
      QuantParams one = p;
      one.rows = 1;
      one.cols = 1;
      one.scales = {p.scales[r]};
      ASSERT_TRUE(Encode(one, &w[r * cols + j], &code).ok());
      const float level = p.levels[code];
      const bool inside = u > p.levels.front() && u < p.levels.back();
      outside += inside ? 0 : 1;
      const double cj = c[r][j].item<double>();
      EXPECT_NEAR(wt.grad()[r][j].item<double>(), inside ? cj : 0.0, 1e-6);
      ds += cj * (inside ? level - u : level);
    }
    EXPECT_NEAR(scales.grad()[r].item<double>(), g * ds, 1e-4 * std::max(1.0, std::fabs(g * ds)));
  }
  EXPECT_GT(outside, 0);  // the clipped branch was exercised
}

TEST(FakeQuantTest, ActivationStepSizeGradient) {
  ActQuantizer aq(0.0f, 1.0f, false);
  const torch::Tensor x = torch::linspace(-0.2, 1.3, 64).view({1, 64}).requires_grad_(true);
  (aq.Forward(x) * 2).sum().backward();
  const ActQuant a = StaticActParams(0.0f, 1.0f, false, false);
  double ds = 0;
  for (int i = 0; i < 64; ++i) {
    const float xi = x[0][i].item<float>();
    const float t = std::nearbyint(xi * (1.0f / a.scale)) + a.zero;
    const bool inside = t >= 0 && t <= 255;
    const float q = std::clamp(t, 0.0f, 255.0f);
    ds += 2 * ((q - a.zero) - (inside ? xi / a.scale : 0.0f));
    EXPECT_NEAR(x.grad()[0][i].item<double>(), inside ? 2.0 : 0.0, 1e-7);
  }
  const double g = 1.0 / std::sqrt(64 * 255.0);
  // s = (hi - lo) / 255: dL/dhi = g * ds / 255.
  EXPECT_NEAR(aq.Parameters()[1].grad().item<double>(), g * ds / 255.0, 1e-6);
}

// A short fine-tune on 3,000 images: int2 everywhere wins back most of what
// post-training quantization loses, and the written model, run on lowbit's
// kernels, predicts what the training side predicted.
TEST(FinetuneTest, BeatsPostTrainingQuantizationAndTheFileAgrees) {
  const Graph g = testing::LoadBundled("fmnist_cnn.onnx");
  auto train = Dataset::Open("fashion-mnist:train[0:3000]").value();
  auto val = Dataset::Open("fashion-mnist:test[0:1000]").value();
  FinetuneOptions o;
  o.plan.defaults.weights = "int2";
  o.quant.weight_clip_auto = true;
  o.epochs = 1;
  o.threads = 2;
  o.quiet = true;
  o.calib_samples = 1000;
  Result<FinetuneResult> r = Finetune(g, *train, *val, o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->stages.size(), 1u);
  const double ptq = r->stages[0].start_val_top1, qat = r->stages[0].epochs.back().val_top1;
  EXPECT_GT(qat, ptq + 5) << "PTQ " << ptq << " QAT " << qat;
  EXPECT_GT(qat, r->fp32_val_top1 - 5);
  // The packed file on lowbit's kernels against the training side.
  EvalOptions eo;
  eo.batch = 50;
  ReferenceOutputs rec;
  EvalResult got = Evaluate(r->graph, *val, eo, &rec).value();
  ASSERT_EQ(rec.top1.size(), r->val_classes.size());
  int64_t same = 0;
  for (size_t i = 0; i < rec.top1.size(); ++i) same += rec.top1[i] == r->val_classes[i];
  EXPECT_GE(static_cast<double>(same), 0.999 * static_cast<double>(rec.top1.size()));
  EXPECT_NEAR(got.top1, qat, 0.15);
  for (const LayerReport& l : r->layers) EXPECT_EQ(l.settings.weights, "int2") << l.name;
}

}  // namespace
}  // namespace lowbit
