#include "ir/tensor.h"

#include <sys/mman.h>
#include <unistd.h>

#include <limits>

#include <cstdlib>
#include <cmath>
#include <cstring>

#include "base/check.h"

#if defined(__SANITIZE_ADDRESS__)
#define LOWBIT_ADDRESS_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LOWBIT_ADDRESS_SANITIZER 1
#endif
#endif
#ifndef LOWBIT_ADDRESS_SANITIZER
#define LOWBIT_ADDRESS_SANITIZER 0
#endif

namespace lowbit {

const char* DTypeName(DType t) {
  switch (t) {
    case DType::kFloat32: return "float32";
    case DType::kInt64: return "int64";
    case DType::kInt32: return "int32";
    case DType::kUint8: return "uint8";
    case DType::kInt8: return "int8";
    case DType::kBool: return "bool";
    case DType::kFloat64: return "float64";
  }
  return "?";
}

size_t DTypeSize(DType t) {
  switch (t) {
    case DType::kFloat32: case DType::kInt32: return 4;
    case DType::kInt64: case DType::kFloat64: return 8;
    case DType::kUint8: case DType::kInt8: case DType::kBool: return 1;
  }
  return 1;
}

int64_t NumElements(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

namespace {
int64_t& CapSetting() {
  static int64_t cap = 0;
  return cap;
}
}  // namespace

int64_t MemoryCap() {
  if (CapSetting() > 0) return CapSetting();
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  if (pages <= 0 || page <= 0) return int64_t{1} << 34;
  return static_cast<int64_t>(pages) / 4 * 3 * page;
}

void SetMemoryCap(int64_t bytes) { CapSetting() = bytes; }

Result<int64_t> CheckedBytes(DType dtype, const Shape& shape, const std::string& what, bool capped) {
  if (shape.size() > static_cast<size_t>(kMaxRank)) {
    return InvalidArgument(what, ": rank ", shape.size(), " is over the ", kMaxRank, " dimensions lowbit handles");
  }
  // Zero dims do not excuse the others: strides and partial products (an
  // outer count, a Flatten) multiply them all, so their product must fit too.
  int64_t nonzero = 1;
  bool empty = false;
  for (int64_t d : shape) {
    if (d < 0) return InvalidArgument(what, ": negative dimension in shape ", ShapeToString(shape));
    if (d == 0) {
      empty = true;
      continue;
    }
    if (nonzero > std::numeric_limits<int64_t>::max() / 8 / d) {
      return InvalidArgument(what, ": shape ", ShapeToString(shape), " has more elements than memory can hold");
    }
    nonzero *= d;
  }
  const int64_t bytes = empty ? 0 : nonzero * static_cast<int64_t>(DTypeSize(dtype));
  if (capped && bytes > MemoryCap()) {
    return InvalidArgument(what, ": shape ", ShapeToString(shape), " of ", DTypeName(dtype), " needs ", bytes,
                           " bytes, over the memory cap of ", MemoryCap(), " bytes");
  }
  return bytes;
}

std::string ShapeToString(const Shape& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

Tensor::Tensor(DType dtype, Shape shape) : dtype_(dtype), shape_(std::move(shape)) {
  for (int64_t d : shape_) LOWBIT_CHECK(d >= 0);
  // Round up to whole cache lines and keep at least one, so data() is never
  // null and SIMD loads may read to the end of the last line.
  const size_t size = (bytes() + 63) / 64 * 64 + 64;
  capacity_ = size - 64;
#if !LOWBIT_ADDRESS_SANITIZER
  // Large tensors map zero pages, touched only when written: a plan's buffers
  // cost nothing until it runs (inspect plans a model without running it).
  // Not under ASan, which checks heap bounds only.
  if (size >= (size_t{1} << 20)) {
    void* m = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    LOWBIT_CHECK(m != MAP_FAILED);
    storage_ = std::shared_ptr<uint8_t>(static_cast<uint8_t*>(m), [size](uint8_t* q) { munmap(q, size); });
    return;
  }
#endif
  void* p = std::aligned_alloc(64, size);
  LOWBIT_CHECK(p != nullptr);
  std::memset(p, 0, size);
  storage_ = std::shared_ptr<uint8_t>(static_cast<uint8_t*>(p), [](uint8_t* q) { std::free(q); });
}

Tensor Tensor::View(DType dtype, Shape shape) const {
  Tensor t = *this;
  t.dtype_ = dtype;
  t.shape_ = std::move(shape);
  LOWBIT_CHECK(t.bytes() <= capacity_);
  return t;
}

Tensor Tensor::Reshaped(Shape shape) const {
  LOWBIT_CHECK(NumElements(shape) == numel());
  Tensor t = *this;
  t.shape_ = std::move(shape);
  return t;
}

Tensor Tensor::Clone() const {
  Tensor t(dtype_, shape_);
  if (bytes() > 0) std::memcpy(t.raw(), raw(), bytes());
  return t;
}

namespace {
// Float to int64 without undefined behaviour: saturated at the int64 range;
// NaN gives INT64_MIN, which every shape, axis or index check refuses.
int64_t SaturatingInt64(double v) {
  return std::isnan(v) ? std::numeric_limits<int64_t>::min() : SaturateCast<int64_t>(v);
}
}  // namespace

std::vector<int64_t> Tensor::ToInt64() const {
  std::vector<int64_t> out(numel());
  for (int64_t i = 0; i < numel(); ++i) {
    switch (dtype_) {
      case DType::kInt64: out[i] = data<int64_t>()[i]; break;
      case DType::kInt32: out[i] = data<int32_t>()[i]; break;
      case DType::kFloat32: out[i] = SaturatingInt64(data<float>()[i]); break;
      case DType::kFloat64: out[i] = SaturatingInt64(data<double>()[i]); break;
      case DType::kUint8: case DType::kBool: out[i] = data<uint8_t>()[i]; break;
      case DType::kInt8: out[i] = data<int8_t>()[i]; break;
    }
  }
  return out;
}

Tensor Tensor::FromFloats(Shape shape, const std::vector<float>& v) {
  Tensor t(DType::kFloat32, std::move(shape));
  LOWBIT_CHECK(static_cast<int64_t>(v.size()) == t.numel());
  if (!v.empty()) std::memcpy(t.raw(), v.data(), v.size() * 4);
  return t;
}

Tensor Tensor::FromInt64s(Shape shape, const std::vector<int64_t>& v) {
  Tensor t(DType::kInt64, std::move(shape));
  LOWBIT_CHECK(static_cast<int64_t>(v.size()) == t.numel());
  if (!v.empty()) std::memcpy(t.raw(), v.data(), v.size() * 8);
  return t;
}

}  // namespace lowbit
