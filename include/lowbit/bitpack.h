// Dense bit packing of codes.
//
// Layout (persisted, so it never depends on the machine that wrote it): a row
// of n codes of b bits is a little-endian bit stream. Code i occupies stream
// bits [i*b, (i+1)*b), least significant bit first; stream bit j is bit (j % 8)
// of byte j / 8. A row takes ceil(n*b / 8) bytes; the unused high bits of its
// last byte are zero. 2-bit codes sit four to a byte (code 0 in bits 0-1);
// 3-bit codes cross byte boundaries. Rows start on byte boundaries.
#ifndef LOWBIT_BITPACK_H_
#define LOWBIT_BITPACK_H_

#include <cstdint>

namespace lowbit {

// Writes exactly ceil(n*bits/8) bytes to dst. bits in 1..32; every code must be
// below 2^bits (checked).
void PackCodes(const uint32_t* codes, int64_t n, int bits, uint8_t* dst);

// Reads n codes from ceil(n*bits/8) bytes of src.
void UnpackCodes(const uint8_t* src, int64_t n, int bits, uint32_t* codes);

}  // namespace lowbit

#endif  // LOWBIT_BITPACK_H_
