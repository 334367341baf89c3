#include "lowbit/bitpack.h"

#include "base/check.h"

namespace lowbit {

namespace {

// Widths that divide a byte: whole bytes of 8 / kBits codes, then a
// partial one.
template <int kBits>
void PackByteAligned(const uint32_t* codes, int64_t n, uint8_t* dst) {
  constexpr int kPer = 8 / kBits;
  uint32_t over = 0;  // any bit above the width
  const int64_t full = n / kPer;
  for (int64_t b = 0; b < full; ++b) {
    uint32_t v = 0;
    for (int j = 0; j < kPer; ++j) {
      v |= codes[b * kPer + j] << (j * kBits);
      over |= codes[b * kPer + j];
    }
    dst[b] = static_cast<uint8_t>(v);
  }
  if (full * kPer < n) {
    uint32_t v = 0;
    for (int64_t i = full * kPer; i < n; ++i) {
      v |= codes[i] << ((i - full * kPer) * kBits);
      over |= codes[i];
    }
    dst[full] = static_cast<uint8_t>(v);
  }
  LOWBIT_CHECK((over >> kBits) == 0);
}

template <int kBits>
void UnpackByteAligned(const uint8_t* src, int64_t n, uint32_t* codes) {
  constexpr int kPer = 8 / kBits;
  constexpr uint32_t kMask = (1u << kBits) - 1;
  const int64_t full = n / kPer;
  for (int64_t b = 0; b < full; ++b) {
    const uint32_t v = src[b];
    for (int j = 0; j < kPer; ++j) codes[b * kPer + j] = (v >> (j * kBits)) & kMask;
  }
  for (int64_t i = full * kPer; i < n; ++i) codes[i] = (src[full] >> ((i - full * kPer) * kBits)) & kMask;
}

}  // namespace

void PackCodes(const uint32_t* codes, int64_t n, int bits, uint8_t* dst) {
  LOWBIT_CHECK(bits >= 1 && bits <= 32);
  switch (bits) {
    case 1: return PackByteAligned<1>(codes, n, dst);
    case 2: return PackByteAligned<2>(codes, n, dst);
    case 4: return PackByteAligned<4>(codes, n, dst);
    case 8: return PackByteAligned<8>(codes, n, dst);
  }
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
  switch (bits) {
    case 1: return UnpackByteAligned<1>(src, n, codes);
    case 2: return UnpackByteAligned<2>(src, n, codes);
    case 4: return UnpackByteAligned<4>(src, n, codes);
    case 8: return UnpackByteAligned<8>(src, n, codes);
  }
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
