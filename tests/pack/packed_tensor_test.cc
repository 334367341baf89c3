// The packed tensor: exact byte accounting, real compression, and a validator
// that refuses every kind of corruption a loader can meet.
#include <cmath>
#include <functional>

#include <gtest/gtest.h>

#include "lowbit/packed_tensor.h"
#include "tests/test_util.h"

namespace lowbit {
namespace {

using testing::Laplace;

TEST(PackedTensorTest, QuantizeMatchesFitEncodeDecode) {
  const std::vector<float> x = Laplace(6 * 5 * 3 * 3, testing::TestSeed());
  for (const char* f : {"int3", "nhot2-3", "codebook-3", "int5-asym", "bf16"}) {
    FitOptions o;
    o.granularity = {Granularity::kChannel, 0};
    Result<PackedTensor> t = PackedTensor::Quantize(x.data(), {6, 5, 3, 3}, *ParseFormat(f), o);
    ASSERT_TRUE(t.ok()) << t.status().ToString();
    EXPECT_EQ(t->rows(), 6);
    EXPECT_EQ(t->cols(), 45);
    EXPECT_TRUE(t->Validate().ok()) << t->Validate().ToString();
    QuantParams p = *Fit(x.data(), 6, 45, *ParseFormat(f), o);
    std::vector<uint32_t> codes(x.size());
    ASSERT_TRUE(Encode(p, x.data(), codes.data()).ok());
    std::vector<float> want(x.size()), got(x.size());
    Decode(p, codes.data(), want.data());
    t->Dequantize(got.data());
    EXPECT_EQ(got, want) << f;
    std::vector<uint32_t> row(45);
    t->UnpackRow(4, row.data());
    EXPECT_TRUE(std::equal(row.begin(), row.end(), codes.begin() + 4 * 45));
  }
}

TEST(PackedTensorTest, ByteAccountingIsExact) {
  const std::vector<float> x = Laplace(8 * 130, 3);
  FitOptions o;
  o.granularity = *ParseGranularity("group:64");
  PackedTensor t = *PackedTensor::Quantize(x.data(), {8, 130}, *ParseFormat("int3-asym"), o);
  // Rows of 130 3-bit codes: 390 bits -> 49 bytes; 3 groups per row.
  EXPECT_EQ(t.row_bytes(), 49);
  EXPECT_EQ(t.data().size(), 8u * 49);
  EXPECT_EQ(t.bytes().codes, 8 * 49);
  EXPECT_EQ(t.bytes().scales, 8 * 3 * 4);
  EXPECT_EQ(t.bytes().zero_points, 8 * 3);
  EXPECT_EQ(t.bytes().levels, 0);
  t = *PackedTensor::Quantize(x.data(), {8, 130}, *ParseFormat("codebook-4"), FitOptions());
  EXPECT_EQ(t.bytes().levels, 16 * 4);
  EXPECT_EQ(t.bytes().scales, 4);
  t = *PackedTensor::Quantize(x.data(), {8, 130}, *ParseFormat("nhot2-4"), FitOptions());
  EXPECT_EQ(t.bytes().levels, 16);
}

TEST(PackedTensorTest, TwoBitIsSixteenTimesSmallerThanFp32) {
  const int64_t rows = 512, cols = 1024;
  const std::vector<float> x = Laplace(rows * cols, 9);
  FitOptions o;
  o.granularity = {Granularity::kChannel, 0};
  o.clip = ClipMethod::kMinMax;
  PackedTensor t = *PackedTensor::Quantize(x.data(), {rows, cols}, *ParseFormat("int2"), o);
  EXPECT_EQ(t.bytes().codes, rows * cols / 4);
  const double ratio = static_cast<double>(rows * cols * 4) / static_cast<double>(t.bytes().total());
  EXPECT_GT(ratio, 15.7);  // 16x less one fp32 scale per 1024 weights
  EXPECT_LE(ratio, 16.0);
}

TEST(PackedTensorTest, ValidateRefusesCorruption) {
  const std::vector<float> x = Laplace(4 * 10, 5);
  const PackedTensor good = *PackedTensor::Quantize(x.data(), {4, 10}, *ParseFormat("pow2-3"),
                                                    FitOptions());
  ASSERT_TRUE(good.Validate().ok());
  // pow2-3 has 7 levels: code 7 is invalid and must be caught.
  std::vector<uint32_t> codes(40, 0);
  codes[13] = 7;
  EXPECT_FALSE(PackedTensor::FromCodes(good.params(), {4, 10}, codes.data()).ok());

  // Bad parameters are caught by Validate on a tensor built from them.
  struct Case {
    const char* what;
    std::function<void(QuantParams&)> mutate;
  };
  const std::vector<Case> cases = {
      {"scale", [](QuantParams& p) { p.scales[0] = -1.0f; }},
      {"scale", [](QuantParams& p) { p.scales[0] = NAN; }},
      {"scales", [](QuantParams& p) { p.scales.push_back(1.0f); }},
      {"level", [](QuantParams& p) { std::swap(p.levels[0], p.levels[1]); }},
      {"levels", [](QuantParams& p) { p.levels.resize(9, 100.0f); }},
      {"zero points", [](QuantParams& p) { p.zero_points = {1}; }},
  };
  for (const Case& c : cases) {
    QuantParams p = good.params();
    c.mutate(p);
    std::vector<uint32_t> zeros(40, 0);
    Result<PackedTensor> t = PackedTensor::FromCodes(p, {4, 10}, zeros.data());
    ASSERT_TRUE(t.ok());
    const Status s = t->Validate();
    EXPECT_FALSE(s.ok()) << c.what;
    EXPECT_NE(s.message().find(c.what), std::string::npos) << s.message();
  }
  // Corrupt bytes: a code beyond the 7 levels, non-zero padding, truncation.
  std::vector<uint8_t> bytes = good.data();
  ASSERT_EQ(good.row_bytes(), 4);  // 10 codes x 3 bits = 30 bits
  EXPECT_TRUE(PackedTensor::FromPacked({4, 10}, good.params(), bytes).ok());
  bytes[0] |= 0x07;  // code 0 of row 0 = 7
  Result<PackedTensor> bad = PackedTensor::FromPacked({4, 10}, good.params(), bytes);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("code 7 at [0, 0]"), std::string::npos)
      << bad.status().message();
  bytes = good.data();
  bytes[7] |= 0x80;  // a padding bit of row 1
  bad = PackedTensor::FromPacked({4, 10}, good.params(), bytes);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("padding"), std::string::npos);
  bytes = good.data();
  bytes.pop_back();
  bad = PackedTensor::FromPacked({4, 10}, good.params(), bytes);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("15 code bytes, expected 16"), std::string::npos)
      << bad.status().message();

  // A shape that does not match the parameters.
  std::vector<uint32_t> zeros(40, 0);
  EXPECT_FALSE(PackedTensor::FromCodes(good.params(), {5, 8}, zeros.data()).ok());
  EXPECT_FALSE(PackedTensor::FromCodes(good.params(), {}, zeros.data()).ok());
}

}  // namespace
}  // namespace lowbit
