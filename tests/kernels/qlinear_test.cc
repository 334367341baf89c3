// Packed linear kernels: the SIMD int32 accumulators equal the scalar
// reference exactly, on every width, every integer-grid family and shapes
// around the tile sizes; the fused epilogue equals a float computation on the
// dequantized weights and activations within a derived rounding bound.
#include "kernels/qlinear.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "kernels/lut.h"
#include "tests/test_util.h"

namespace lowbit {
namespace {

// Paths from the list (kernels/kernel_paths.inc): those of one vector width,
// and every SIMD one.
std::vector<KernelPath> PathsOfWidth(int bits) {
  std::vector<KernelPath> out;
  for (KernelPath p : AllKernelPaths()) {
    if (KernelPathBits(p) == bits) out.push_back(p);
  }
  return out;
}
std::vector<KernelPath> SimdPaths() {
  std::vector<KernelPath> out;
  for (KernelPath p : AllKernelPaths()) {
    if (KernelPathBits(p) > 0) out.push_back(p);
  }
  return out;
}

std::vector<std::string> Formats() {
  std::vector<std::string> out;
  for (int b = 1; b <= 8; ++b) {
    const std::string s = std::to_string(b);
    out.push_back("int" + s);
    out.push_back("uint" + s);
    if (b >= 2) out.push_back("int" + s + "-asym");
    out.push_back("pow2-" + s);
    out.push_back("nhot2-" + s);
  }
  out.push_back("nhot3-4");
  return out;
}

// Formats whose levels are not all on an int8 grid are refused clearly.
bool OnGrid(const std::string& f) {
  // pow2 with 5+ bits has levels down to 2^-14 and beyond.
  return !(f.rfind("pow2-", 0) == 0 && std::stoi(f.substr(5)) >= 5);
}

TEST(QLinearTest, SimdDotEqualsReferenceExactly) {
  const uint64_t seed = testing::TestSeed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  if (!KernelPathAvailable(KernelPath::kAvx512Vnni)) GTEST_SKIP() << "no AVX-512 VNNI/VBMI here";
  Rng rng(seed);
  const int64_t ns[] = {1, 15, 16, 17, 63, 64, 65, 80};
  const int64_t ks[] = {1, 3, 4, 5, 7, 8, 9, 63, 64, 65, 513};
  int checked = 0;
  for (const std::string& f : Formats()) {
    if (!OnGrid(f)) continue;
    for (int64_t n : ns) {
      for (int64_t k : ks) {
        if ((n * k) % 3 != 0 && n > 16 && k > 9 && k != 513) continue;  // keep the sweep quick
        const std::vector<float> wf = testing::Laplace(n * k, seed + n * 1000 + k);
        FitOptions o;
        o.granularity = {Granularity::kChannel, 0};
        o.clip = ClipMethod::kMinMax;  // the kernel is under test, not the fit
        Result<PackedTensor> t = PackedTensor::Quantize(wf.data(), {n, k}, *ParseFormat(f), o);
        ASSERT_TRUE(t.ok()) << f << ": " << t.status().ToString();
        Result<QLinearWeights> w = PrepareQLinear(*t);
        ASSERT_TRUE(w.ok()) << f << ": " << w.status().ToString();
        std::vector<uint8_t> u(w->k_pad);
        for (int64_t i = 0; i < k; ++i) u[i] = static_cast<uint8_t>(rng.Below(256));
        if (rng.Below(4) == 0) std::fill(u.begin(), u.begin() + k, 255);  // extremes
        std::vector<int32_t> ref(w->n_pad, -1), simd(w->n_pad, -2);
        QLinearDotRef(*w, u.data(), ref.data());
        QLinearDotAvx512Vnni(*w, u.data(), simd.data(), 0, w->n_pad / 16);
        for (int64_t r = 0; r < n; ++r) {
          ASSERT_EQ(simd[r], ref[r]) << f << " n " << n << " k " << k << " row " << r;
        }
        ++checked;
      }
    }
  }
  EXPECT_GT(checked, 500);
}

TEST(QLinearTest, BatchedSimdDotEqualsReferenceExactly) {
  const uint64_t seed = testing::TestSeed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  if (!KernelPathAvailable(KernelPath::kAvx512Vnni)) GTEST_SKIP() << "no AVX-512 VNNI/VBMI here";
  Rng rng(seed + 11);
  // Table layouts the AVX2 kernel ran; with levels beyond +-64; at 5-8 bits.
  int avx2_tables = 0, split = 0, level_bytes = 0;
  for (const char* f :
       {"int1", "int2", "int3", "int4", "int8", "uint2", "int4-asym", "nhot2-4", "pow2-3",
        "nhot1-4", "int3-asym", "int5", "int6-asym", "int7", "nhot2-6", "nhot2-8"}) {
    for (int64_t n : {16, 17, 50, 80}) {
      for (int64_t k : {4, 13, 64, 100}) {
        for (int64_t rows : {1, 2, 3, 4, 5, 7, 9}) {
          const std::vector<float> wf = testing::Laplace(n * k, seed + n + k);
          FitOptions o;
          o.clip = ClipMethod::kMinMax;
          const PackedTensor t = *PackedTensor::Quantize(wf.data(), {n, k}, *ParseFormat(f), o);
          QLinearWeights w = *PrepareQLinear(t);
          PrepareAvx2Table(&w);
          if (w.layout == QLinearWeights::Layout::kTable) {
            ASSERT_TRUE(RowKernelAvailable(w, KernelPath::kAvx2)) << f;
            ++avx2_tables;
            int max_level = 0;
            for (int8_t v : w.table) max_level = std::max(max_level, std::abs(static_cast<int>(v)));
            split += max_level > 64;
            level_bytes += !w.avx2.level_bytes.empty();
            ASSERT_EQ(w.avx2.split, max_level > 64) << f;
          }
          std::vector<uint8_t> u(rows * w.k_pad, 0);
          for (int64_t r = 0; r < rows; ++r) {
            for (int64_t c = 0; c < k; ++c) u[r * w.k_pad + c] = static_cast<uint8_t>(rng.Below(256));
          }
          std::vector<int32_t> ref(rows * w.n_pad), simd(rows * w.n_pad);
          for (int64_t r = 0; r < rows; ++r) QLinearDotRef(w, u.data() + r * w.k_pad, ref.data() + r * w.n_pad);
          QLinearDotBatchAvx512Vnni(w, u.data(), rows, simd.data(), 0, w.n_pad / 16);
          for (int64_t r = 0; r < rows; ++r) {
            for (int64_t j = 0; j < n; ++j) {
              ASSERT_EQ(simd[r * w.n_pad + j], ref[r * w.n_pad + j])
                  << f << " n " << n << " k " << k << " rows " << rows << " at " << r << "," << j;
            }
          }
          // The 256-bit kernels through QLinearDots (dense rows, 2 threads).
          for (KernelPath path : PathsOfWidth(256)) {
            if (!KernelPathAvailable(path) || !RowKernelAvailable(w, path)) continue;
            std::vector<int32_t> avx2(rows * w.n_pad);
            ThreadPool pool(2);
            QLinearDots(w, path, u.data(), rows, avx2.data(), &pool);
            for (int64_t r = 0; r < rows; ++r) {
              for (int64_t j = 0; j < n; ++j) {
                ASSERT_EQ(avx2[r * w.n_pad + j], ref[r * w.n_pad + j])
                    << KernelPathName(path) << " " << f << " n " << n << " k " << k << " rows "
                    << rows << " at " << r << "," << j;
              }
            }
          }
        }
      }
    }
  }
  if (KernelPathAvailable(KernelPath::kAvx2)) {
    EXPECT_GT(avx2_tables, 0);
    EXPECT_GT(split, 0);  // both vpmaddubsw forms ran
    EXPECT_LT(split, avx2_tables);
    EXPECT_GT(level_bytes, 0);
    EXPECT_LT(level_bytes, avx2_tables);
    // Extremes for vpmaddubsw's int16 pairs: every weight at the largest
    // level (rows alternate in sign), every activation 255.
    for (const char* f :
         {"nhot2-4", "nhot1-4", "pow2-3", "int3", "int1", "int7", "nhot2-6", "nhot2-8"}) {
      const int64_t n = 32, k = 36;
      std::vector<float> wf(n * k);
      for (int64_t i = 0; i < n * k; ++i) wf[i] = (i / k) % 2 ? -1.0f : 1.0f;
      QLinearWeights w = *PrepareQLinear(
          *PackedTensor::Quantize(wf.data(), {n, k}, *ParseFormat(f), FitOptions()));
      PrepareAvx2Table(&w);
      if (!RowKernelAvailable(w, KernelPath::kAvx2)) continue;
      std::vector<uint8_t> u(3 * w.k_pad, 0);
      for (int64_t r = 0; r < 3; ++r) std::fill_n(u.begin() + r * w.k_pad, k, 255);
      std::vector<int32_t> ref(3 * w.n_pad), avx2(3 * w.n_pad);
      for (int64_t r = 0; r < 3; ++r)
        QLinearDotRef(w, u.data() + r * w.k_pad, ref.data() + r * w.n_pad);
      for (KernelPath path : PathsOfWidth(256)) {
        if (!KernelPathAvailable(path)) continue;
        QLinearDots(w, path, u.data(), 3, avx2.data(), nullptr);
        EXPECT_EQ(avx2, ref) << KernelPathName(path) << " " << f;
      }
    }
  }
}

// The bit-serial table kernel (lut.h): its scalar reference, AVX2 and
// AVX-512 bodies give QLinearDotRef's int32 dot products exactly, at 1 and 2
// bits, on shapes around the tile (16 rows), the quad (16 inputs) and the
// int16 accumulators' flush interval (16 and 8 blocks), with rows read
// through permuted step offsets, and on the extremes (every code at its
// largest, every activation -128 or 255).
TEST(QLinearTest, LookupTableDotEqualsReferenceExactly) {
  const uint64_t seed = testing::TestSeed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  Rng rng(seed + 21);
  int checked = 0;
  for (const char* f : {"int1", "int2", "uint2", "int2-asym", "uint1"}) {
    for (int64_t n : {1, 15, 16, 17, 50}) {
      for (int64_t k : {1, 5, 16, 17, 33, 100, 513, 1100}) {
        for (bool extreme : {false, true}) {
          if (extreme && (n != 17 || k < 513)) continue;
          SCOPED_TRACE(::testing::Message()
                       << f << " n " << n << " k " << k << (extreme ? " extreme" : ""));
          std::vector<float> wf = testing::Laplace(n * k, seed + n * 7 + k);
          if (extreme) std::fill(wf.begin(), wf.end(), 1.0f);
          FitOptions o;
          o.clip = ClipMethod::kMinMax;
          const PackedTensor t = *PackedTensor::Quantize(wf.data(), {n, k}, *ParseFormat(f), o);
          QLinearWeights w = *PrepareQLinear(t);
          ASSERT_TRUE(LutEligible(w));
          PrepareLut(&w);
          // Rows of `stride` bytes, steps stored in reverse order.
          const int64_t rows = 3, stride = w.k_pad + 12;
          std::vector<uint8_t> buf(rows * stride), dense(rows * w.k_pad, 0);
          std::vector<int32_t> off(w.steps());
          for (int64_t s = 0; s < w.steps(); ++s)
            off[s] = static_cast<int32_t>(4 * (w.steps() - 1 - s));
          std::vector<const uint8_t*> ptr(rows);
          for (int64_t r = 0; r < rows; ++r) {
            ptr[r] = buf.data() + r * stride;
            for (int64_t c = 0; c < w.k_pad; ++c) {
              const uint8_t v = c >= k    ? 0
                                : extreme ? (w.signed_acts() ? 0x80 : 0xFF)
                                          : static_cast<uint8_t>(rng.Below(256));
              dense[r * w.k_pad + c] = v;
              buf[r * stride + off[c / 4] + c % 4] = v;
            }
          }
          std::vector<int32_t> ref(rows * w.n_pad);
          for (int64_t r = 0; r < rows; ++r) {
            QLinearDotRef(w, dense.data() + r * w.k_pad, ref.data() + r * w.n_pad);
          }
          auto expect_equal = [&](const std::vector<int32_t>& got, const char* what) {
            for (int64_t r = 0; r < rows; ++r) {
              for (int64_t j = 0; j < n; ++j) {
                ASSERT_EQ(got[r * w.n_pad + j], ref[r * w.n_pad + j])
                    << what << " row " << r << " out " << j;
              }
            }
          };
          const int64_t tiles = w.n_pad / 16;
          std::vector<int32_t> got(rows * w.n_pad, -7);
          LutDotRowsRef(w, ptr.data(), off.data(), rows, got.data(), 0, tiles);
          expect_equal(got, "ref");
          if (KernelPathAvailable(KernelPath::kAvx2)) {
            std::fill(got.begin(), got.end(), -7);
            LutDotRowsAvx2(w, ptr.data(), off.data(), rows, got.data(), 0, tiles);
            expect_equal(got, "avx2");
          }
          if (KernelPathAvailable(KernelPath::kAvx512Vnni)) {
            std::fill(got.begin(), got.end(), -7);
            LutDotRowsAvx512(w, ptr.data(), off.data(), rows, got.data(), 0, tiles);
            expect_equal(got, "avx512");
          }
          // Through the dispatcher: dense rows, 2 threads, every SIMD path.
          for (KernelPath path : SimdPaths()) {
            if (!KernelPathAvailable(path)) continue;
            ThreadPool pool(2);
            for (int64_t nr : {int64_t{1}, rows}) {
              std::fill(got.begin(), got.end(), -7);
              QLinearDots(w, path, dense.data(), nr, got.data(), &pool);
              for (int64_t r = 0; r < nr; ++r) {
                for (int64_t j = 0; j < n; ++j) {
                  ASSERT_EQ(got[r * w.n_pad + j], ref[r * w.n_pad + j])
                      << KernelPathName(path) << " rows " << nr << " row " << r << " out " << j;
                }
              }
            }
          }
          ++checked;
        }
      }
    }
  }
  EXPECT_GT(checked, 200);
}

// KernelOptions::lut (LOWBIT_LUT) picks the table kernel; the environment's
// value is refused when unknown;
// unset, the rule gives it to wide 1-bit layers only, and the dispatcher
// runs it for few rows only.
TEST(QLinearTest, LookupTableChoice) {
  auto prepare = [](const char* f, int64_t n) {
    const std::vector<float> wf = testing::Laplace(n * 64, 5);
    return *PrepareQLinear(
        *PackedTensor::Quantize(wf.data(), {n, 64}, *ParseFormat(f), FitOptions()));
  };
  const QLinearWeights w1 = prepare("int1", 1024), w1_narrow = prepare("int1", 64),
                       w2 = prepare("int2", 1024), w4 = prepare("int4", 1024);
  EXPECT_FALSE(LutEligible(w4));
  EXPECT_EQ(LutMaxRows(w1, KernelPath::kAvx2), 8);
  EXPECT_EQ(LutMaxRows(w1, KernelPath::kAvx512Vnni), 8);
  EXPECT_EQ(LutMaxRows(w1, KernelPath::kAvxVnni), 2);
  EXPECT_EQ(LutMaxRows(w1_narrow, KernelPath::kAvx512Vnni), 0);
  EXPECT_EQ(LutMaxRows(w2, KernelPath::kAvx512Vnni), 0);
  EXPECT_EQ(LutMaxRows(w1, KernelPath::kRef), 0);
  // LOWBIT_LUT reaches the rule through the command line's kernel options.
  KernelOptions on, off, fast;
  setenv("LOWBIT_LUT", "on", 1);
  ASSERT_TRUE(ApplyKernelEnvironment(&on).ok());
  EXPECT_GT(LutMaxRows(w2, KernelPath::kAvx512Vnni, on.lut), 1 << 20);
  EXPECT_GT(LutMaxRows(w1_narrow, KernelPath::kAvx2, on.lut), 1 << 20);
  EXPECT_EQ(LutMaxRows(w2, KernelPath::kRef, on.lut), 0);
  EXPECT_EQ(LutMaxRows(w4, KernelPath::kAvx2, on.lut), 0);
  setenv("LOWBIT_LUT", "off", 1);
  ASSERT_TRUE(ApplyKernelEnvironment(&off).ok());
  EXPECT_EQ(LutMaxRows(w1, KernelPath::kAvx2, off.lut), 0);
  setenv("LOWBIT_LUT", "fast", 1);
  const Status bad = ApplyKernelEnvironment(&fast);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.message().find("LOWBIT_LUT=fast"), std::string::npos) << bad.ToString();
  unsetenv("LOWBIT_LUT");
  // Above w.lut.max_rows rows the product kernels run: a table form that is
  // deliberately wrong changes the result of 1 row only.
  if (!KernelPathAvailable(KernelPath::kAvx2)) return;
  QLinearWeights w = w1;
  PrepareAvx2Table(&w);
  PrepareLut(&w, 2);
  std::fill(w.lut.index.begin(), w.lut.index.end(), 0);  // every weight's bits cleared
  const int64_t rows = 3;
  std::vector<uint8_t> u(rows * w.k_pad, 200);
  std::vector<int32_t> ref(w.n_pad), got(rows * w.n_pad);
  QLinearDotRef(w, u.data(), ref.data());
  QLinearDots(w, KernelPath::kAvx2, u.data(), rows, got.data(), nullptr);
  EXPECT_EQ(got[0], ref[0]);
  QLinearDots(w, KernelPath::kAvx2, u.data(), 1, got.data(), nullptr);
  EXPECT_NE(got[0], ref[0]);
}

TEST(QLinearTest, ForwardMatchesDequantizedFloatWithinBound) {
  const uint64_t seed = testing::TestSeed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  Rng rng(seed + 7);
  const int64_t n = 37, k = 101, rows = 3;
  for (const char* f : {"int2", "int4", "int8", "uint4", "int3-asym", "int8-asym", "nhot2-4", "pow2-3"}) {
    SCOPED_TRACE(f);
    const std::vector<float> wf = testing::Laplace(n * k, seed + 3);
    FitOptions o;
    o.granularity = {Granularity::kChannel, 0};
    PackedTensor t = *PackedTensor::Quantize(wf.data(), {n, k}, *ParseFormat(f), o);
    const QLinearWeights w = *PrepareQLinear(t);
    std::vector<float> wd(n * k);
    t.Dequantize(wd.data());
    std::vector<float> x(rows * k), bias(n);
    for (float& v : x) v = static_cast<float>(rng.Normal());
    for (float& v : bias) v = static_cast<float>(rng.Normal());
    for (int mode = 0; mode < 3; ++mode)
      for (KernelPath path : AllKernelPaths()) {
        if (!KernelPathAvailable(path)) continue;
        // mode 0: dynamic asymmetric, 1: dynamic symmetric, 2: static range.
        const bool symmetric = mode == 1;
        const ActQuant fixed = StaticActParams(-1.5f, 2.5f, false, w.signed_acts());
        std::vector<float> y(rows * n);
        QLinearScratch scratch;
        Epilogue e;
        e.bias = bias.data();
        ThreadPool pool(2);
        QLinearForward(w, path, x.data(), rows, e, &scratch, y.data(), &pool,
                       mode == 2 ? &fixed : nullptr, symmetric);
        for (int64_t r = 0; r < rows; ++r) {
          SCOPED_TRACE(::testing::Message() << "mode " << mode);
          // The activations exactly as the kernel quantizes them (int8 operand
          // for the plane layout, uint8 for the table layout).
          std::vector<double> xq(w.k_pad);
          std::vector<uint8_t> q(w.k_pad);
          const ActQuant p =
              mode == 2 ? fixed : DynamicActParams(x.data() + r * k, k, symmetric, w.signed_acts());
          const ActQuant a =
              QuantizeRowWith(x.data() + r * k, k, w.k_pad, p, w.signed_acts(), q.data());
          for (int64_t c = 0; c < k; ++c) {
            xq[c] = w.signed_acts() ? static_cast<int8_t>(q[c]) : q[c];
          }
          for (int64_t j = 0; j < n; ++j) {
            // The same products in double: dequantized weight times dequantized input.
            double want = bias[j], mag = std::fabs(bias[j]);
            for (int64_t c = 0; c < k; ++c) {
              const double xv = a.scale * (xq[c] - a.zero);
              want += static_cast<double>(wd[j * k + c]) * xv;
              mag += std::fabs(static_cast<double>(wd[j * k + c]) * xv);
            }
            // fp32 rounding of the epilogue (a few ulps of the magnitude) and of
            // the decoded weights (one ulp each).
            const double bound = 1e-5 * mag + 1e-6;
            ASSERT_NEAR(y[r * n + j], want, bound)
                << KernelPathName(path) << " row " << r << " out " << j;
          }
        }
      }
  }
}

// Two threads give the one-thread result bit for bit (QLinearForward splits
// the rows' quantization and epilogues and, by rows or by output tiles, the
// dot products), on layers large enough to be split.
TEST(QLinearTest, ForwardWithTwoThreadsEqualsOneThread) {
  const uint64_t seed = testing::TestSeed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  Rng rng(seed + 5);
  struct Shape {
    int64_t rows, n, k;
  };
  // Rows split (small weights), tiles split (batch 8), GEMV.
  for (const Shape sh : {Shape{40, 64, 600}, Shape{8, 300, 600}, Shape{1, 2000, 700}}) {
    ASSERT_TRUE(WorthSplitting(sh.rows * sh.n * sh.k));
    for (const char* f : {"int4", "int3", "int1"}) {
      SCOPED_TRACE(::testing::Message()
                   << f << " rows " << sh.rows << " n " << sh.n << " k " << sh.k);
      const std::vector<float> wf = testing::Laplace(sh.n * sh.k, seed + sh.n);
      QLinearWeights w = *PrepareQLinear(
          *PackedTensor::Quantize(wf.data(), {sh.n, sh.k}, *ParseFormat(f), FitOptions()));
      PrepareAvx2Table(&w);
      std::vector<float> x(sh.rows * sh.k), bias(sh.n);
      for (float& v : x) v = static_cast<float>(rng.Normal());
      for (float& v : bias) v = static_cast<float>(rng.Normal());
      Epilogue e;
      e.bias = bias.data();
      for (KernelPath path : {KernelPath::kRef, KernelPath::kAvx2, KernelPath::kAvx512Vnni}) {
        if (!KernelPathAvailable(path)) continue;
        std::vector<float> one(sh.rows * sh.n), two(sh.rows * sh.n);
        QLinearScratch s1, s2;
        ThreadPool pool1(1), pool2(2);
        QLinearForward(w, path, x.data(), sh.rows, e, &s1, one.data(), &pool1);
        QLinearForward(w, path, x.data(), sh.rows, e, &s2, two.data(), &pool2);
        ASSERT_EQ(one, two) << KernelPathName(path);
      }
    }
  }
}

// The byte epilogue: each byte equals the fp32 column epilogue's value put
// through an activation quantizer (round to nearest even, clamp), with no
// residual, fp32 residual planes or 8-bit residual pixels; the AVX2 and
// AVX-512 bodies equal the portable loops bit for bit (bytes and fp32 planes).
TEST(QLinearTest, ByteEpilogueEqualsQuantizedFloatEpilogue) {
  const uint64_t seed = testing::TestSeed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  Rng rng(seed);
  auto uniform = [&](float lo, float hi) { return lo + (hi - lo) * static_cast<float>(rng.Uniform()); };
  for (int64_t n : {1, 16, 37, 64, 100, 130}) {
    for (int64_t rows : {1, 15, 16, 17, 50}) {
      for (int residual = 0; residual < 3; ++residual) {
        SCOPED_TRACE(::testing::Message() << "n " << n << " rows " << rows << " residual " << residual);
        const int64_t k = 29;
        const std::vector<float> wf = testing::Laplace(n * k, seed + n * 100 + rows);
        Result<PackedTensor> t = PackedTensor::Quantize(wf.data(), {n, k}, *ParseFormat("int4"), FitOptions());
        ASSERT_TRUE(t.ok());
        Result<QLinearWeights> w = PrepareQLinear(*t);
        ASSERT_TRUE(w.ok());
        // Real dot products and sums of random activation rows.
        std::vector<int32_t> dot(rows * w->n_pad), sums(rows);
        std::vector<uint8_t> u(w->k_pad, 0);
        for (int64_t p = 0; p < rows; ++p) {
          sums[p] = 0;
          for (int64_t i = 0; i < k; ++i) {
            u[i] = static_cast<uint8_t>(rng.Below(256));
            sums[p] += w->signed_acts() ? static_cast<int8_t>(u[i]) : u[i];
          }
          QLinearDotRef(*w, u.data(), dot.data() + p * w->n_pad);
        }
        std::vector<float> bias(n);
        for (auto& b : bias) b = uniform(-1, 1);
        const ActQuant a = StaticActParams(-2.0f, 3.0f, false, w->signed_acts());
        Epilogue e;
        e.bias = bias.data();
        e.clamp = true;
        e.lo = -40.0f;
        e.hi = 30.0f;
        // Residuals: fp32 planes (n x rows) and 8-bit pixels (rows x n).
        std::vector<float> planes(n * rows);
        std::vector<uint8_t> pix(rows * n);
        for (auto& v : pix) v = static_cast<uint8_t>(rng.Below(256));
        const ActQuant rq = StaticActParams(-0.5f, 2.0f, false, false);
        for (int64_t p = 0; p < rows; ++p) {
          for (int64_t j = 0; j < n; ++j) {
            planes[j * rows + p] = residual == 1 ? uniform(-2, 2)
                                   : residual == 2 ? rq.scale * static_cast<float>(pix[p * n + j] - rq.zero)
                                                   : 0.0f;
          }
        }
        RowResidual r;
        if (residual == 1) r = {planes.data(), nullptr, rows, 1.0f, 0};
        if (residual == 2) r = {nullptr, pix.data(), n, rq.scale, rq.zero};
        std::vector<float> y(n * rows);
        ColumnEpilogue c;
        PrepareColumnEpilogue(*w, a, e, KernelPath::kRef, &c);
        QLinearEpilogueColumns(*w, c, sums.data(), dot.data(), rows, residual ? planes.data() : nullptr,
                               y.data(), rows);
        // An output range that clips the extremes.
        const auto [ylo, yhi] = std::minmax_element(y.begin(), y.end());
        const ActQuant oq = StaticActParams(0.8f * *ylo, 0.8f * *yhi, false, false);
        const ByteOutput o{1.0f / oq.scale, oq.zero};
        std::vector<uint8_t> got(rows * n, 7);
        QLinearEpilogueRowsBytes(*w, c, sums.data(), dot.data(), rows, r, o, got.data(), n);
        int clipped = 0;
        for (int64_t p = 0; p < rows; ++p) {
          for (int64_t j = 0; j < n; ++j) {
            const float q = std::nearbyint(y[j * rows + p] * o.inv) + static_cast<float>(o.zero);
            const int want = static_cast<int>(std::min(std::max(q, 0.0f), 255.0f));
            clipped += want == 0 || want == 255;
            ASSERT_EQ(got[p * n + j], want) << "row " << p << " out " << j;
          }
        }
        EXPECT_LT(clipped, (rows * n + 1) / 2 + 1);  // mostly inside the range
        if (rows * n >= 16) {
          EXPECT_GT(clipped, 0);
        }
        for (KernelPath path : {KernelPath::kAvx2, KernelPath::kAvxVnni, KernelPath::kAvx512Vnni}) {
          if (!KernelPathAvailable(path)) continue;
          SCOPED_TRACE(KernelPathName(path));
          PrepareColumnEpilogue(*w, a, e, path, &c);
          EXPECT_EQ(c.avx512 || c.avx2, true);
          std::vector<float> simd_y(n * rows, 5.0f);
          QLinearEpilogueColumns(*w, c, sums.data(), dot.data(), rows,
                                 residual ? planes.data() : nullptr, simd_y.data(), rows);
          EXPECT_EQ(simd_y, y);
          std::vector<uint8_t> simd(rows * n, 9);
          QLinearEpilogueRowsBytes(*w, c, sums.data(), dot.data(), rows, r, o, simd.data(), n);
          EXPECT_EQ(simd, got);
          // Output ranges beyond the activation's clamp [-40, 30] on either
          // side: every byte 0, then every byte 255, on both paths.
          for (const ByteOutput far : {ByteOutput{1.0f, -100}, ByteOutput{1.0f, 300}}) {
            std::vector<uint8_t> ref_far(rows * n, 1), simd_far(rows * n, 2);
            PrepareColumnEpilogue(*w, a, e, KernelPath::kRef, &c);
            QLinearEpilogueRowsBytes(*w, c, sums.data(), dot.data(), rows, r, far, ref_far.data(),
                                     n);
            PrepareColumnEpilogue(*w, a, e, path, &c);
            QLinearEpilogueRowsBytes(*w, c, sums.data(), dot.data(), rows, r, far, simd_far.data(),
                                     n);
            EXPECT_EQ(simd_far, ref_far);
            EXPECT_EQ(ref_far, std::vector<uint8_t>(rows * n, far.zero < 0 ? 0 : 255));
          }
        }
      }
    }
  }
}

// The byte epilogue's residual add rounds the product and the sum apart on
// every path (a fused multiply-add would round once and, about once in 10^5
// values, move a byte). A million outputs with an 8-bit residual of nonzero
// zero point give such values; every SIMD body must match the portable loop.
TEST(QLinearTest, ByteResidualAddRoundsLikeThePortableLoop) {
  const uint64_t seed = testing::TestSeed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  Rng rng(seed + 21);
  const int64_t n = 256, k = 64, rows = 4096;
  const std::vector<float> wf = testing::Laplace(n * k, seed);
  const QLinearWeights w = *PrepareQLinear(
      *PackedTensor::Quantize(wf.data(), {n, k}, *ParseFormat("int4"), FitOptions()));
  std::vector<int32_t> dot(rows * w.n_pad), sums(rows);
  for (auto& d : dot) d = static_cast<int32_t>(rng.Below(20001)) - 10000;
  for (auto& v : sums) v = static_cast<int32_t>(rng.Below(2001)) - 1000;
  std::vector<uint8_t> res(rows * n);
  for (auto& b : res) b = static_cast<uint8_t>(rng.Below(256));
  const ActQuant a = StaticActParams(-1.0f, 1.0f, false, w.signed_acts());
  const ActQuant rq = StaticActParams(-3.7f, 3.1f, false, false);
  const RowResidual r{nullptr, res.data(), n, rq.scale, rq.zero};
  std::vector<float> bias(n);
  for (auto& b : bias) b = static_cast<float>(rng.Uniform()) - 0.5f;
  Epilogue e;
  e.bias = bias.data();
  const ActQuant oq = StaticActParams(-4.0f, 4.0f, false, false);
  const ByteOutput o{1.0f / oq.scale, oq.zero};
  ColumnEpilogue c;
  PrepareColumnEpilogue(w, a, e, KernelPath::kRef, &c);
  std::vector<uint8_t> want(rows * n);
  QLinearEpilogueRowsBytes(w, c, sums.data(), dot.data(), rows, r, o, want.data(), n);
  for (KernelPath path : {KernelPath::kAvx2, KernelPath::kAvxVnni, KernelPath::kAvx512Vnni}) {
    if (!KernelPathAvailable(path)) continue;
    PrepareColumnEpilogue(w, a, e, path, &c);
    std::vector<uint8_t> got(rows * n);
    QLinearEpilogueRowsBytes(w, c, sums.data(), dot.data(), rows, r, o, got.data(), n);
    int64_t differ = 0;
    for (int64_t i = 0; i < rows * n; ++i) differ += got[i] != want[i];
    EXPECT_EQ(differ, 0) << KernelPathName(path);
  }
}

// Filter-wise formats: with Epilogue::out, row j of a weight writes output
// out[j] of a wider layer (and reads its residual and bias there); the values
// equal the unmapped epilogue's row j bit for bit, on every epilogue, every
// path, and for output slices.
TEST(QLinearTest, MappedEpiloguesScatterRows) {
  const uint64_t seed = testing::TestSeed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  Rng rng(seed + 11);
  auto uniform = [&](float lo, float hi) {
    return lo + (hi - lo) * static_cast<float>(rng.Uniform());
  };
  for (int64_t n : {5, 16, 37}) {
    const int64_t total = 2 * n + 3, k = 21, rows = 19;
    SCOPED_TRACE(::testing::Message() << "n " << n);
    const std::vector<float> wf = testing::Laplace(n * k, seed + n);
    PackedTensor t = *PackedTensor::Quantize(wf.data(), {n, k}, *ParseFormat("int2"), FitOptions());
    const QLinearWeights w = *PrepareQLinear(t);
    // Rows go to distinct, shuffled outputs of the wider layer.
    std::vector<int32_t> out(total);
    for (int64_t i = 0; i < total; ++i) out[i] = static_cast<int32_t>(i);
    for (int64_t i = total - 1; i > 0; --i)
      std::swap(out[i], out[rng.Below(static_cast<uint64_t>(i + 1))]);
    out.resize(n);
    std::vector<int32_t> dot(rows * w.n_pad), sums(rows);
    std::vector<uint8_t> u(w.k_pad, 0);
    for (int64_t p = 0; p < rows; ++p) {
      sums[p] = 0;
      for (int64_t i = 0; i < k; ++i) {
        u[i] = static_cast<uint8_t>(rng.Below(256));
        sums[p] += static_cast<int8_t>(u[i]);
      }
      QLinearDotRef(w, u.data(), dot.data() + p * w.n_pad);
    }
    std::vector<float> bias(total), res_planes(total * rows);
    std::vector<uint8_t> res_pix(rows * total);
    for (auto& b : bias) b = uniform(-1, 1);
    for (auto& v : res_planes) v = uniform(-2, 2);
    for (auto& v : res_pix) v = static_cast<uint8_t>(rng.Below(256));
    // The unmapped references read the mapped rows' bias and residuals.
    std::vector<float> bias_n(n), planes_n(n * rows);
    std::vector<uint8_t> pix_n(rows * n);
    for (int64_t j = 0; j < n; ++j) {
      bias_n[j] = bias[out[j]];
      for (int64_t p = 0; p < rows; ++p) {
        planes_n[j * rows + p] = res_planes[out[j] * rows + p];
        pix_n[p * n + j] = res_pix[p * total + out[j]];
      }
    }
    const ActQuant a = StaticActParams(-2.0f, 3.0f, true, w.signed_acts());
    Epilogue e;
    e.clamp = true;
    e.lo = -3.0f;
    e.hi = 4.0f;
    const ActQuant rq = StaticActParams(-0.5f, 2.0f, false, false);
    const ByteOutput o{1.0f / 0.03f, 100};
    std::vector<KernelPath> paths = {KernelPath::kRef};
    for (KernelPath p : {KernelPath::kAvx2, KernelPath::kAvxVnni, KernelPath::kAvx512Vnni}) {
      if (KernelPathAvailable(p)) paths.push_back(p);
    }
    for (KernelPath path : paths) {
      SCOPED_TRACE(KernelPathName(path));
      ColumnEpilogue plain, mapped;
      e.bias = bias_n.data();
      e.out = nullptr;
      PrepareColumnEpilogue(w, a, e, path, &plain);
      e.bias = bias.data();
      e.out = out.data();
      PrepareColumnEpilogue(w, a, e, path, &mapped);
      for (int64_t j0 : {int64_t{0}, int64_t{16}}) {
        if (j0 >= n) continue;
        for (int residual = 0; residual < 3; ++residual) {
          SCOPED_TRACE(::testing::Message() << "j0 " << j0 << " residual " << residual);
          // fp32 planes.
          std::vector<float> want(n * rows, -7.0f), got(total * rows, -7.0f);
          QLinearEpilogueColumns(w, plain, sums.data(), dot.data(), rows,
                                 residual == 1 ? planes_n.data() : nullptr, want.data(), rows, j0);
          QLinearEpilogueColumns(w, mapped, sums.data(), dot.data(), rows,
                                 residual == 1 ? res_planes.data() : nullptr, got.data(), rows, j0);
          for (int64_t j = 0; j < n; ++j) {
            for (int64_t p = 0; p < rows; ++p) {
              ASSERT_EQ(got[out[j] * rows + p], want[j * rows + p])
                  << "row " << j << " pixel " << p;
            }
          }
          int64_t untouched = 0;
          for (float v : got) untouched += v == -7.0f;
          EXPECT_EQ(untouched, (total - n + j0) * rows);
          // Bytes per pixel.
          RowResidual rn, rm;
          if (residual == 1) {
            rn = {planes_n.data(), nullptr, rows, 1.0f, 0};
            rm = {res_planes.data(), nullptr, rows, 1.0f, 0};
          } else if (residual == 2) {
            rn = {nullptr, pix_n.data(), n, rq.scale, rq.zero};
            rm = {nullptr, res_pix.data(), total, rq.scale, rq.zero};
          }
          std::vector<uint8_t> want_b(rows * n, 1), got_b(rows * total, 1);
          QLinearEpilogueRowsBytes(w, plain, sums.data(), dot.data(), rows, rn, o, want_b.data(), n,
                                   j0);
          QLinearEpilogueRowsBytes(w, mapped, sums.data(), dot.data(), rows, rm, o, got_b.data(),
                                   total, j0);
          for (int64_t p = 0; p < rows; ++p) {
            for (int64_t j = j0; j < n; ++j) {
              ASSERT_EQ(got_b[p * total + out[j]], want_b[p * n + j])
                  << "row " << j << " pixel " << p;
            }
          }
        }
      }
    }
    // The GEMV epilogue.
    Epilogue ge;
    ge.bias = bias_n.data();
    std::vector<float> want(n), got(total, -7.0f);
    QLinearEpilogue(w, a, dot.data(), ge, want.data());
    ge.bias = bias.data();
    ge.out = out.data();
    QLinearEpilogue(w, a, dot.data(), ge, got.data());
    for (int64_t j = 0; j < n; ++j) EXPECT_EQ(got[out[j]], want[j]) << "row " << j;
  }
}

TEST(QLinearTest, UniformGridsUseThePlaneLayout) {
  const std::vector<float> wf = testing::Laplace(16 * 64, 2);
  for (const char* f : {"int1", "int2", "int4", "int8", "uint4", "int4-asym", "int3", "nhot2-4"}) {
    PackedTensor t = *PackedTensor::Quantize(wf.data(), {16, 64}, *ParseFormat(f), FitOptions());
    const QLinearWeights w = *PrepareQLinear(t);
    const bool planes = std::string(f) != "int1" && std::string(f) != "int3" && std::string(f) != "nhot2-4";
    EXPECT_EQ(w.layout == QLinearWeights::Layout::kPlanes, planes) << f;
  }
}

// Level planes (ToLevelPlanes): symmetric grids with a zero level convert,
// others do not; the AVX-512 kernels (rows and GEMV) equal the reference
// exactly, whatever bytes the padded inputs hold; and the epilogue's values
// equal the plane layout's bit for bit on the same real activations.
TEST(QLinearTest, LevelPlanesEqualThePlaneLayout) {
  const uint64_t seed = testing::TestSeed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  Rng rng(seed + 3);
  int converted = 0;
  for (const char* f : {"int2", "int4", "int8", "uint2", "uint4", "int4-asym", "int1", "int3"}) {
    for (int64_t n : {16, 17, 50, 80}) {
      for (int64_t k : {4, 13, 64, 100}) {
        SCOPED_TRACE(::testing::Message() << f << " n " << n << " k " << k);
        const std::vector<float> wf = testing::Laplace(n * k, seed + n + k);
        FitOptions o;
        o.clip = ClipMethod::kMinMax;
        const PackedTensor t = *PackedTensor::Quantize(wf.data(), {n, k}, *ParseFormat(f), o);
        const QLinearWeights planes = *PrepareQLinear(t);
        QLinearWeights w = planes;
        std::vector<bool> padding(k);
        for (int64_t c = 0; c < k; ++c) padding[c] = rng.Below(5) == 0;
        const bool eligible = planes.layout == QLinearWeights::Layout::kPlanes &&
                              std::string(f).find("asym") == std::string::npos;
        ASSERT_EQ(ToLevelPlanes(&w, padding), eligible);
        EXPECT_EQ(LevelPlanesPossible(t.params(), n, KernelPath::kAvx512Vnni, KernelRule::kOff),
                  eligible);
        if (!eligible) {
          EXPECT_EQ(w.layout, planes.layout);
          continue;
        }
        ++converted;
        {  // Laid out straight from unpacked codes: the same weights.
          std::vector<uint32_t> codes(n * k);
          for (int64_t r = 0; r < n; ++r) t.UnpackRow(r, codes.data() + r * k);
          const QLinearWeights direct = *PrepareLevelPlaneCodes(t.params(), codes.data(), padding);
          EXPECT_EQ(direct.layout, w.layout);
          EXPECT_EQ(direct.tiles, w.tiles);
          EXPECT_EQ(direct.codes, w.codes);
          EXPECT_EQ(direct.rowsum, w.rowsum);
          EXPECT_EQ(direct.offset, w.offset);
          EXPECT_EQ(direct.scale, w.scale);
        }
        EXPECT_EQ(w.layout, QLinearWeights::Layout::kLevelPlanes);
        EXPECT_FALSE(w.signed_acts());
        const int64_t rows = 1 + static_cast<int64_t>(rng.Below(9));
        std::vector<uint8_t> u(rows * w.k_pad);
        for (auto& b : u) b = static_cast<uint8_t>(rng.Below(256));
        std::vector<int32_t> ref(rows * w.n_pad);
        for (int64_t r = 0; r < rows; ++r)
          QLinearDotRef(w, u.data() + r * w.k_pad, ref.data() + r * w.n_pad);
        // The reference: padded inputs add nothing, other rows T[code] * u.
        for (int64_t j = 0; j < n; ++j) {
          int32_t want = 0;
          for (int64_t c = 0; c < k; ++c) {
            if (padding[c]) continue;
            want += planes.table[CodeField(planes.codes.data() + j * planes.row_bytes, c * w.bits,
                                           w.bits)] *
                    u[c];
          }
          ASSERT_EQ(ref[j], want) << "output " << j;
        }
        if (KernelPathAvailable(KernelPath::kAvx512Vnni)) {
          std::vector<int32_t> simd(rows * w.n_pad), gemv(w.n_pad);
          QLinearDotBatchAvx512Vnni(w, u.data(), rows, simd.data(), 0, w.n_pad / 16);
          QLinearDotAvx512Vnni(w, u.data(), gemv.data(), 0, w.n_pad / 16);
          for (int64_t r = 0; r < rows; ++r) {
            for (int64_t j = 0; j < n; ++j) {
              ASSERT_EQ(simd[r * w.n_pad + j], ref[r * w.n_pad + j]) << "row " << r << " out " << j;
            }
          }
          for (int64_t j = 0; j < n; ++j) ASSERT_EQ(gemv[j], ref[j]) << "gemv out " << j;
        }
        // The same real activations through both layouts' epilogues, no padding.
        QLinearWeights w2 = planes;
        ASSERT_TRUE(ToLevelPlanes(&w2, {}));
        std::vector<uint8_t> ub(w.k_pad, 0), xb(planes.k_pad, 0);
        const ActQuant au = StaticActParams(-1.5f, 2.5f, false, false);
        const ActQuant as = StaticActParams(-1.5f, 2.5f, false, true);
        int32_t xsum = 0;
        for (int64_t c = 0; c < k; ++c) {
          ub[c] = static_cast<uint8_t>(rng.Below(256));
          xb[c] = static_cast<uint8_t>(ub[c] ^ 0x80);
          xsum += static_cast<int8_t>(xb[c]);
        }
        std::vector<int32_t> dl(w2.n_pad), dp(planes.n_pad);
        QLinearDotRef(w2, ub.data(), dl.data());
        QLinearDotRef(planes, xb.data(), dp.data());
        std::vector<float> bias(n);
        for (auto& b : bias) b = static_cast<float>(rng.Uniform()) - 0.5f;
        Epilogue e;
        e.bias = bias.data();
        ColumnEpilogue cl, cp;
        PrepareColumnEpilogue(w2, au, e, KernelPath::kRef, &cl);
        PrepareColumnEpilogue(planes, as, e, KernelPath::kRef, &cp);
        std::vector<float> yl(n), yp(n);
        const int32_t usum = 0;  // unused: the level layout's offsets are 0
        QLinearEpilogueColumns(w2, cl, &usum, dl.data(), 1, nullptr, yl.data(), 1);
        QLinearEpilogueColumns(planes, cp, &xsum, dp.data(), 1, nullptr, yp.data(), 1);
        EXPECT_EQ(yl, yp);
      }
    }
  }
  EXPECT_EQ(converted, 5 * 16);
}

// The AVX-512 GEMV keeps each plane's products scaled by 2^(bits * plane)
// in their own int32 lanes up to 16384 steps of 4 inputs; longer rows take
// the shifting kernel. At both sides of that bound, with the largest codes
// and the largest activations (the worst case for the lanes), and with
// random ones, every width and both plane layouts equal the reference.
TEST(QLinearTest, GemvAtTheLaneBoundEqualsReference) {
  if (!KernelPathAvailable(KernelPath::kAvx512Vnni)) GTEST_SKIP() << "no AVX-512 VNNI/VBMI here";
  const uint64_t seed = testing::TestSeed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  Rng rng(seed + 11);
  const int64_t n = 20;
  for (const char* f : {"int1", "uint1", "int2", "uint2", "int4", "uint4"}) {
    for (int64_t k : {int64_t{65536}, int64_t{65536 + 64}}) {
      const std::vector<float> wf = testing::Laplace(n * k, seed + k);
      FitOptions o;
      o.clip = ClipMethod::kMinMax;
      const PackedTensor t = *PackedTensor::Quantize(wf.data(), {n, k}, *ParseFormat(f), o);
      const int bits = t.params().spec.bits;
      for (bool extreme : {true, false}) {
        SCOPED_TRACE(::testing::Message() << f << " k " << k << (extreme ? " extreme" : " random"));
        std::vector<uint32_t> codes(n * k);
        for (auto& c : codes) c = extreme ? (1u << bits) - 1 : static_cast<uint32_t>(rng.Below(1u << bits));
        QLinearWeights w = *PrepareQLinearCodes(t.params(), codes.data());
        if (w.layout != QLinearWeights::Layout::kPlanes) continue;  // int1 {-1, +1}: the table layout
        std::vector<QLinearWeights> layouts = {w};
        if (ToLevelPlanes(&w, {})) layouts.push_back(w);
        for (const QLinearWeights& lw : layouts) {
          std::vector<uint8_t> u(lw.k_pad);
          for (auto& b : u) b = extreme ? (lw.signed_acts() ? 0x80 : 255) : static_cast<uint8_t>(rng.Below(256));
          std::vector<int32_t> ref(lw.n_pad), simd(lw.n_pad);
          QLinearDotRef(lw, u.data(), ref.data());
          QLinearDotAvx512Vnni(lw, u.data(), simd.data(), 0, lw.n_pad / 16);
          for (int64_t j = 0; j < n; ++j) ASSERT_EQ(simd[j], ref[j]) << "out " << j;
        }
      }
    }
  }
}

TEST(QLinearTest, RefusesWhatItCannotRun) {
  const std::vector<float> wf = testing::Laplace(64, 1);
  PackedTensor cb = *PackedTensor::Quantize(wf.data(), {4, 16}, *ParseFormat("codebook-3"), FitOptions());
  Result<QLinearWeights> r = PrepareQLinear(cb);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("codebook-3"), std::string::npos);
  FitOptions g;
  g.granularity = {Granularity::kGroup, 8};
  PackedTensor grouped = *PackedTensor::Quantize(wf.data(), {4, 16}, *ParseFormat("int4"), g);
  EXPECT_FALSE(PrepareQLinear(grouped).ok());
  PackedTensor fp = *PackedTensor::Quantize(wf.data(), {4, 16}, *ParseFormat("fp16"), FitOptions());
  EXPECT_FALSE(PrepareQLinear(fp).ok());
}

}  // namespace
}  // namespace lowbit
