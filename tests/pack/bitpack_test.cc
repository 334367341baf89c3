// Bit packing: every width, every length 0..67, codes over the full range, a
// canary byte after the buffer, and the documented layout.
#include <gtest/gtest.h>

#include "lowbit/bitpack.h"
#include "lowbit/format.h"
#include "tests/test_util.h"

namespace lowbit {
namespace {

TEST(BitpackTest, RoundTripEveryWidthAndLengthWithCanary) {
  const uint64_t seed = testing::TestSeed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  Rng rng(seed);
  std::vector<int> widths = {1, 2, 3, 4, 5, 6, 7, 8, 16, 32};
  for (int bits : widths) {
    for (int64_t n = 0; n <= 67; ++n) {
      const uint64_t range = uint64_t{1} << bits;
      std::vector<uint32_t> codes(n);
      for (int64_t i = 0; i < n; ++i) {
        // Mix the extremes in with uniform draws over the full range.
        const uint64_t r = rng.Below(8);
        codes[i] = static_cast<uint32_t>(r == 0 ? 0 : r == 1 ? range - 1 : rng.Below(range));
      }
      const int64_t bytes = PackedRowBytes(n, bits);
      ASSERT_EQ(bytes, (n * bits + 7) / 8);
      std::vector<uint8_t> buf(bytes + 1, 0xA5);
      PackCodes(codes.data(), n, bits, buf.data());
      ASSERT_EQ(buf[bytes], 0xA5) << "wrote past the end: bits " << bits << " n " << n;
      if ((n * bits) % 8 != 0) {
        ASSERT_EQ(buf[bytes - 1] >> ((n * bits) % 8), 0) << "padding bits not zero";
      }
      std::vector<uint32_t> back(n + 1, 0xDEADBEEF);
      UnpackCodes(buf.data(), n, bits, back.data());
      ASSERT_EQ(back[n], 0xDEADBEEFu);
      back.pop_back();
      ASSERT_EQ(back, codes) << "bits " << bits << " n " << n;
    }
  }
}

TEST(BitpackTest, DocumentedLayout) {
  // 2-bit: four to a byte, code 0 in bits 0-1.
  const uint32_t two[] = {0, 1, 2, 3, 3};
  uint8_t b2[2];
  PackCodes(two, 5, 2, b2);
  EXPECT_EQ(b2[0], 0xE4);  // 11 10 01 00
  EXPECT_EQ(b2[1], 0x03);
  // 3-bit codes cross byte boundaries: 1,2,3 -> 001 | 010<<3 | 011<<6.
  const uint32_t three[] = {1, 2, 3};
  uint8_t b3[2];
  PackCodes(three, 3, 3, b3);
  EXPECT_EQ(b3[0], static_cast<uint8_t>(1 | (2 << 3) | (3 << 6)));
  EXPECT_EQ(b3[1], 3 >> 2);
  // 4-bit: low nibble first.
  const uint32_t four[] = {0xA, 0x5};
  uint8_t b4;
  PackCodes(four, 2, 4, &b4);
  EXPECT_EQ(b4, 0x5A);
}

}  // namespace
}  // namespace lowbit
