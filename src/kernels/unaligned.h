// Loads from byte addresses with no alignment promise: memcpy, which the
// compiler turns into one unaligned load (a cast-and-dereference of a
// misaligned pointer is undefined behaviour; UBSan reports it).
#ifndef LOWBIT_KERNELS_UNALIGNED_H_
#define LOWBIT_KERNELS_UNALIGNED_H_

#include <cstdint>
#include <cstring>

namespace lowbit {

inline int32_t LoadI32(const void* p) {
  int32_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

}  // namespace lowbit

#endif  // LOWBIT_KERNELS_UNALIGNED_H_
