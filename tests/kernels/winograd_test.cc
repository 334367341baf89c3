// Winograd F(4x4, 3x3): the integer transforms give exactly the direct
// convolution's int32 dot products (random and worst-case bytes and levels),
// the exactness test refuses weights that could overflow, and the AVX-512
// kernels equal their scalar twins bit for bit on odd tile and output counts.
#include "kernels/winograd.h"

#include <gtest/gtest.h>

#include "lowbit/bitpack.h"
#include "tests/test_util.h"

namespace lowbit {
namespace {

// Level-plane weights of a 3x3 convolution, m outputs, c channels, K in
// (tap, channel) order, from fp32 values wf (m x 9c); with `lowest`, every
// weight the grid's lowest level instead.
QLinearWeights LevelWeights(const std::vector<float>& wf, int64_t m, int64_t c, const char* f,
                            bool lowest = false) {
  FitOptions o;
  o.granularity = {Granularity::kChannel, 0};
  o.clip = ClipMethod::kMinMax;
  const PackedTensor t = *PackedTensor::Quantize(wf.data(), {m, 9 * c}, *ParseFormat(f), o);
  QLinearWeights w = *PrepareQLinear(t);
  if (lowest) {  // code 0: the plane layout's T[0]
    const std::vector<uint32_t> zeros(w.k, 0);
    for (int64_t n = 0; n < w.n; ++n)
      PackCodes(zeros.data(), w.k, w.bits, w.codes.data() + n * w.row_bytes);
  }
  EXPECT_TRUE(ToLevelPlanes(&w, {})) << f;
  return w;
}

int32_t LevelOf(const QLinearWeights& w, int64_t n, int64_t k) {
  return w.table[CodeField(w.codes.data() + n * w.row_bytes, k * w.bits, w.bits)];
}

// The direct convolution (padding 1 holding the zero point) of tiles
// [x0, x0 + tpr) of bands [0, bands): dot rows as winograd.h lays them out.
std::vector<int32_t> DirectDots(const QLinearWeights& w, const WinogradImage& im, int64_t bands,
                                int64_t x0, int64_t tpr) {
  const int64_t c = im.c;
  std::vector<int32_t> dot(bands * 4 * 4 * tpr * w.n_pad, 0);
  for (int64_t row = 0; row < 4 * bands; ++row) {
    for (int64_t col = 0; col < 4 * tpr; ++col) {
      const int64_t ox = 4 * x0 + col;
      for (int64_t n = 0; n < w.n; ++n) {
        int32_t s = 0;
        for (int64_t tap = 0; tap < 9; ++tap) {
          const int64_t iy = row + tap / 3 - 1, ix = ox + tap % 3 - 1;
          const bool in = iy >= 0 && iy < im.h && ix >= 0 && ix < im.w;
          for (int64_t ch = 0; ch < c; ++ch) {
            s += LevelOf(w, n, tap * c + ch) * (in ? im.data[(iy * im.ws + ix) * c + ch] : im.zero);
          }
        }
        dot[(row * 4 * tpr + col) * w.n_pad + n] = s;
      }
    }
  }
  return dot;
}

// Those tiles through the reference and (where available) the AVX-512
// kernels, both against the direct convolution.
void CheckBands(const QLinearWeights& w, const WinogradImage& im, int64_t bands, int64_t x0,
                int64_t tpr) {
  const int64_t c = im.c, tiles = bands * tpr, tn = w.n_pad / 16;
  const std::vector<int32_t> want = DirectDots(w, im, bands, x0, tpr);
  std::vector<int16_t> u(36 * w.n_pad * c), v(36 * tiles * c);
  std::vector<int32_t> dot(want.size(), 0);
  WinogradWeightsRef(w, c, 0, tn, u.data());
  for (int64_t ty = 0; ty < bands; ++ty)
    WinogradInputRef(im, ty, x0, x0 + tpr, v.data() + ty * tpr * 36 * c);
  WinogradDotsRef(v.data(), tiles, tpr, u.data(), c, w.n_pad, 0, tn, dot.data());
  for (size_t i = 0; i < want.size(); ++i) {
    if (static_cast<int64_t>(i) % w.n_pad >= w.n) continue;
    ASSERT_EQ(dot[i], want[i]) << "reference, dot " << i;
  }
  if (!KernelPathAvailable(KernelPath::kAvx512Vnni)) return;
  std::vector<int16_t> u2(u.size(), 0), v2(v.size(), 0);
  std::vector<int32_t> dot2(want.size(), 0), scratch(WinogradScratchInts());
  // Output tiles in two calls, as threads split them.
  WinogradWeightsAvx512(w, c, 0, tn / 2, u2.data());
  WinogradWeightsAvx512(w, c, tn / 2, tn, u2.data());
  ASSERT_EQ(u2, u);
  for (int64_t ty = 0; ty < bands; ++ty)
    WinogradInputAvx512(im, ty, x0, x0 + tpr, v2.data() + ty * tpr * 36 * c);
  ASSERT_EQ(v2, v);
  const int64_t split = tn / 2 / 4 * 4;  // (a multiple of 4)
  WinogradDotsAvx512(v2.data(), tiles, tpr, u2.data(), c, w.n_pad, 0, split, scratch.data(),
                     dot2.data());
  WinogradDotsAvx512(v2.data(), tiles, tpr, u2.data(), c, w.n_pad, split, tn, scratch.data(),
                     dot2.data());
  for (size_t i = 0; i < want.size(); ++i) {
    if (static_cast<int64_t>(i) % w.n_pad >= w.n) continue;
    ASSERT_EQ(dot2[i], want[i]) << "avx512, dot " << i;
  }
}

TEST(WinogradTest, EqualsTheDirectConvolution) {
  const uint64_t seed = testing::TestSeed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  Rng rng(seed + 11);
  struct Case {
    const char* format;
    int64_t c, m, tiles;
  };
  const Case cases[] = {{"int2", 32, 16, 1},  {"int2", 64, 40, 7},  {"int4", 32, 64, 13},
                        {"int2", 96, 80, 5},  {"uint2", 32, 17, 6}, {"int4", 64, 150, 8},
                        {"uint4", 32, 48, 2}, {"int2", 128, 64, 3}};
  for (const Case& cc : cases) {
    SCOPED_TRACE(::testing::Message()
                 << cc.format << " c " << cc.c << " m " << cc.m << " tiles " << cc.tiles);
    const QLinearWeights w =
        LevelWeights(testing::Laplace(cc.m * 9 * cc.c, seed + cc.m + cc.c), cc.m, cc.c, cc.format);
    ASSERT_TRUE(WinogradExact(w, cc.c));
    // Two bands over an image of 7 rows (the second band partly outside) and
    // 4 * tiles + 1 columns, stored in rows of a wider buffer: tiles
    // [0, tiles) (the left border) and [1, tiles + 1) (the last one mostly
    // outside).
    const int64_t h = 7, wi = 4 * cc.tiles + 1, ws = wi + 3;
    std::vector<uint8_t> bytes(h * ws * cc.c);
    for (auto& b : bytes) b = rng.Below(4) == 0 ? 255 : static_cast<uint8_t>(rng.Below(256));
    const WinogradImage im{bytes.data(), h, wi, ws, cc.c, static_cast<uint8_t>(rng.Below(256))};
    CheckBands(w, im, 2, 0, cc.tiles);
    CheckBands(w, im, 2, 1, cc.tiles);
  }
}

// The largest sums an exact layer allows: every byte 255 and every level the
// grid's most negative (int2 at 512 channels: 576 * 255 * 9216 = 1.35e9);
// int4 at the same width could reach 5.4e9 and is refused.
TEST(WinogradTest, WorstCaseSumsStayExactAndOverflowingWeightsAreRefused) {
  const int64_t c = 512, m = 16;
  const QLinearWeights w2 = LevelWeights(testing::Laplace(m * 9 * c, 3), m, c, "int2", true);
  for (int64_t k = 0; k < 9 * c; ++k) ASSERT_EQ(LevelOf(w2, 0, k), -2);
  ASSERT_TRUE(WinogradExact(w2, c));
  const std::vector<uint8_t> image(4 * 4 * c, 255);
  CheckBands(w2, WinogradImage{image.data(), 4, 4, 4, c, 255}, 1, 0, 1);

  const QLinearWeights w4 = LevelWeights(testing::Laplace(m * 9 * c, 4), m, c, "int4", true);
  EXPECT_FALSE(WinogradExact(w4, c));
  // Few channels: the same levels are exact.
  const QLinearWeights w4s = LevelWeights(testing::Laplace(m * 9 * 32, 4), m, 32, "int4", true);
  EXPECT_TRUE(WinogradExact(w4s, 32));
  // int8 levels (|T| = 128) overflow U's int16; channel counts off 32 are refused.
  const QLinearWeights w8 = LevelWeights(testing::Laplace(m * 9 * 32, 5), m, 32, "int8");
  EXPECT_FALSE(WinogradExact(w8, 32));
  const QLinearWeights w16 = LevelWeights(testing::Laplace(m * 9 * 16, 6), m, 16, "int2");
  EXPECT_FALSE(WinogradExact(w16, 16));
}

}  // namespace
}  // namespace lowbit
