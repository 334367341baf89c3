// Dense tensors: element type, static shape, 64-byte-aligned shared storage.
#ifndef LOWBIT_IR_TENSOR_H_
#define LOWBIT_IR_TENSOR_H_

#include <cmath>
#include <limits>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "lowbit/status.h"

namespace lowbit {

// Element types the runtime computes in (float32; int64 for shapes and
// indices) plus the ones it can hold as constants.
enum class DType { kFloat32, kInt64, kInt32, kUint8, kInt8, kBool, kFloat64 };

const char* DTypeName(DType t);

// A double as integer type T without undefined behaviour: saturated at T's
// range, NaN as 0 (ONNX leaves both undefined; C++ makes them UB).
template <typename T>
T SaturateCast(double v) {
  if (std::isnan(v)) return 0;
  if (v <= static_cast<double>(std::numeric_limits<T>::min())) return std::numeric_limits<T>::min();
  if (v >= static_cast<double>(std::numeric_limits<T>::max())) return std::numeric_limits<T>::max();
  return static_cast<T>(v);
}
size_t DTypeSize(DType t);

using Shape = std::vector<int64_t>;
int64_t NumElements(const Shape& s);
std::string ShapeToString(const Shape& s);

// Allocations a file or an option can size: the bytes of a tensor of this
// shape, or an error naming `what` when a dimension is negative, the size
// overflows, or it exceeds the memory cap. Nothing a user supplies is
// allocated before this check.
// `capped` false: only overflow is checked (data already held elsewhere).
Result<int64_t> CheckedBytes(DType dtype, const Shape& shape, const std::string& what, bool capped = true);
// The most dimensions a tensor may have (CheckedBytes refuses more): real
// models use up to 8, and every per-element index walk is linear in rank.
inline constexpr int kMaxRank = 64;
// The most bytes lowbit allocates for one model's tensors: 3/4 of physical
// memory unless set (SetMemoryCap, 0 restores the default).
int64_t MemoryCap();
void SetMemoryCap(int64_t bytes);

class Tensor {
 public:
  Tensor() = default;
  // Allocates zero-initialized storage for the shape.
  Tensor(DType dtype, Shape shape);

  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  int rank() const { return static_cast<int>(shape_.size()); }
  int64_t numel() const { return NumElements(shape_); }
  size_t bytes() const { return static_cast<size_t>(numel()) * DTypeSize(dtype_); }
  bool empty() const { return storage_ == nullptr; }

  template <typename T>
  T* data() { return reinterpret_cast<T*>(storage_.get()); }
  template <typename T>
  const T* data() const { return reinterpret_cast<const T*>(storage_.get()); }
  void* raw() { return storage_.get(); }
  const void* raw() const { return storage_.get(); }

  // Same storage, another shape of equal element count.
  Tensor Reshaped(Shape shape) const;
  // Same storage viewed as `dtype` x `shape`; the storage must hold it.
  Tensor View(DType dtype, Shape shape) const;
  // Bytes of storage (at least bytes()).
  size_t capacity() const { return capacity_; }
  // A deep copy.
  Tensor Clone() const;
  // Values as int64 (float32 truncates); for shape arithmetic.
  std::vector<int64_t> ToInt64() const;

  static Tensor FromFloats(Shape shape, const std::vector<float>& v);
  static Tensor FromInt64s(Shape shape, const std::vector<int64_t>& v);

 private:
  DType dtype_ = DType::kFloat32;
  Shape shape_;
  std::shared_ptr<uint8_t> storage_;
  size_t capacity_ = 0;
};

}  // namespace lowbit

#endif  // LOWBIT_IR_TENSOR_H_
