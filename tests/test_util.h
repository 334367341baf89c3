// Helpers shared by the tests: seeded data and seed reporting.
#ifndef LOWBIT_TESTS_TEST_UTIL_H_
#define LOWBIT_TESTS_TEST_UTIL_H_

#include <cstdint>
#include <cstdlib>
#include <vector>

#include "base/rng.h"
#include "ir/tensor.h"

namespace lowbit::testing {

// The seed for random test data: LOWBIT_TEST_SEED when set (to replay a
// failure), else a fixed default so CI is reproducible. Tests print it.
inline uint64_t TestSeed() {
  const char* s = std::getenv("LOWBIT_TEST_SEED");
  return s != nullptr ? std::strtoull(s, nullptr, 10) : 20261123;
}

inline std::vector<float> Laplace(int64_t n, uint64_t seed, double b = 1.0) {
  Rng rng(seed);
  std::vector<float> v(n);
  for (float& x : v) x = static_cast<float>(rng.Laplace(b));
  return v;
}

// A float32 tensor of uniform values in [lo, hi).
inline Tensor RandomTensor(Shape shape, Rng& rng, float lo = -1, float hi = 1) {
  Tensor t(DType::kFloat32, std::move(shape));
  for (int64_t i = 0; i < t.numel(); ++i) {
    t.data<float>()[i] = lo + (hi - lo) * static_cast<float>(rng.Uniform());
  }
  return t;
}

}  // namespace lowbit::testing

#endif  // LOWBIT_TESTS_TEST_UTIL_H_
