#include "lowbit/bitpack.h"

#include "base/check.h"

namespace lowbit {

void PackCodes(const uint32_t* codes, int64_t n, int bits, uint8_t* dst) {
  LOWBIT_CHECK(bits >= 1 && bits <= 32);
  const uint64_t limit = uint64_t{1} << bits;
  uint64_t acc = 0;  // pending bits, LSB first
  int pending = 0;
  for (int64_t i = 0; i < n; ++i) {
    LOWBIT_CHECK(codes[i] < limit);
    acc |= static_cast<uint64_t>(codes[i]) << pending;
    pending += bits;
    while (pending >= 8) {
      *dst++ = static_cast<uint8_t>(acc);
      acc >>= 8;
      pending -= 8;
    }
  }
  if (pending > 0) *dst = static_cast<uint8_t>(acc);
}

void UnpackCodes(const uint8_t* src, int64_t n, int bits, uint32_t* codes) {
  LOWBIT_CHECK(bits >= 1 && bits <= 32);
  const uint64_t mask = (uint64_t{1} << bits) - 1;
  uint64_t acc = 0;
  int avail = 0;
  for (int64_t i = 0; i < n; ++i) {
    while (avail < bits) {
      acc |= static_cast<uint64_t>(*src++) << avail;
      avail += 8;
    }
    codes[i] = static_cast<uint32_t>(acc & mask);
    acc >>= bits;
    avail -= bits;
  }
}

}  // namespace lowbit
