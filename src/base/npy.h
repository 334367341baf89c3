// NumPy .npy files: the exchange format for tensors on the command line
// (`--data X.npy`, `lowbit run --input/--output`).
#ifndef LOWBIT_BASE_NPY_H_
#define LOWBIT_BASE_NPY_H_

#include <cstdint>
#include <string>
#include <vector>

#include "lowbit/status.h"

namespace lowbit {

struct NpyArray {
  std::vector<int64_t> shape;  // C order; a 0-d array has an empty shape
  std::vector<float> data;     // converted to fp32, product(shape) values
};

// Reads a C-ordered .npy (versions 1-3) of dtype f2/f4/f8, i1/i2/i4/i8 or
// u1/u2/u4/u8, little-endian, converting to fp32. Errors name the file and the
// field that is wrong; a truncated file is refused, never zero-filled.
Result<NpyArray> ReadNpy(const std::string& path);
// Same, from bytes already in memory; `name` is used in error messages.
Result<NpyArray> ParseNpy(const std::string& bytes, const std::string& name);

// Writes an fp32 .npy atomically (temporary file, then rename).
Status WriteNpy(const std::string& path, const std::vector<int64_t>& shape, const float* data);

// Reads a whole file.
Result<std::string> ReadFile(const std::string& path);
// Writes `bytes` to `path` through a temporary file in the same directory and
// a rename, so an interrupted write never leaves a half-written file.
Status WriteFileAtomic(const std::string& path, const std::string& bytes);

}  // namespace lowbit

#endif  // LOWBIT_BASE_NPY_H_
