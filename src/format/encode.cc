// Encode / Decode over whole tensors, and the QuantParams helpers.
#include "format/encode.h"

#include <cmath>
#include <cstring>

#include "base/check.h"
#include "base/half.h"

namespace lowbit {

bool IsIntGrid(const std::vector<float>& levels) {
  if (levels.empty() || levels.front() != std::floor(levels.front())) return false;
  for (size_t i = 1; i < levels.size(); ++i) {
    if (levels[i] != levels[0] + static_cast<float>(i)) return false;
  }
  return true;
}

int64_t QuantParams::groups_per_row() const {
  if (granularity.kind != Granularity::kGroup) return 1;
  return (cols + granularity.group_size - 1) / granularity.group_size;
}

int64_t QuantParams::num_granules() const {
  switch (granularity.kind) {
    case Granularity::kTensor: return 1;
    case Granularity::kChannel: return rows;
    case Granularity::kGroup: return rows * groups_per_row();
  }
  return 1;
}

int64_t QuantParams::num_codes() const {
  if (spec.family == Family::kFloat) return int64_t{1} << spec.bits;
  return static_cast<int64_t>(levels.size());
}

float QuantParams::Decode(uint32_t code, int64_t g) const {
  if (spec.family == Family::kFloat) {
    switch (spec.float_kind) {
      case FloatKind::kFp32: {
        float f;
        std::memcpy(&f, &code, 4);
        return f;
      }
      case FloatKind::kFp16: return HalfToFloat(static_cast<uint16_t>(code));
      case FloatKind::kBf16: return Bf16ToFloat(static_cast<uint16_t>(code));
    }
  }
  return scales[g] * (levels[code] - static_cast<float>(zero_point(g)));
}

namespace {

Status NonFinite(const QuantParams& p, int64_t r, int64_t c, float v) {
  return InvalidArgument("value at [", r, ", ", c, "] is ", v, ": ", FormatName(p.spec),
                         " cannot encode NaN or Inf");
}

uint32_t EncodeFloat(FloatKind kind, float x) {
  switch (kind) {
    case FloatKind::kFp32: {
      uint32_t u;
      std::memcpy(&u, &x, 4);
      return u;
    }
    case FloatKind::kFp16: return FloatToHalf(x);
    case FloatKind::kBf16: return FloatToBf16(x);
  }
  return 0;
}

// Calls fn(r, c0, c1, g) for every run of a row that lies in one granule.
template <typename Fn>
void ForEachRun(const QuantParams& p, Fn fn) {
  const int64_t step = p.granularity.kind == Granularity::kGroup ? p.granularity.group_size : p.cols;
  for (int64_t r = 0; r < p.rows; ++r) {
    for (int64_t c0 = 0; c0 < p.cols; c0 += step) {
      fn(r, c0, std::min(c0 + step, p.cols), p.granule_of(r, c0));
    }
  }
}

}  // namespace

Status Encode(const QuantParams& p, const float* x, uint32_t* codes) {
  const int64_t n = p.rows * p.cols;
  for (int64_t i = 0; i < n; ++i) {
    if (!std::isfinite(x[i])) return NonFinite(p, i / p.cols, i % p.cols, x[i]);
  }
  if (p.spec.family == Family::kFloat) {
    for (int64_t i = 0; i < n; ++i) codes[i] = EncodeFloat(p.spec.float_kind, x[i]);
    return OkStatus();
  }
  LOWBIT_CHECK(static_cast<int64_t>(p.scales.size()) == p.num_granules());
  const bool grid = IsIntGrid(p.levels);
  ForEachRun(p, [&](int64_t r, int64_t c0, int64_t c1, int64_t g) {
    const GranuleCoder coder(p.levels, grid, p.scales[g], p.zero_point(g));
    const int64_t base = r * p.cols;
    for (int64_t c = c0; c < c1; ++c) codes[base + c] = coder.EncodeOne(x[base + c]);
  });
  return OkStatus();
}

void Decode(const QuantParams& p, const uint32_t* codes, float* out) {
  if (p.spec.family == Family::kFloat) {
    for (int64_t i = 0; i < p.rows * p.cols; ++i) out[i] = p.Decode(codes[i], 0);
    return;
  }
  ForEachRun(p, [&](int64_t r, int64_t c0, int64_t c1, int64_t g) {
    const float s = p.scales[g], zp = static_cast<float>(p.zero_point(g));
    const int64_t base = r * p.cols;
    for (int64_t c = c0; c < c1; ++c) {
      const uint32_t code = codes[base + c];
      LOWBIT_CHECK(code < p.levels.size());
      out[base + c] = s * (p.levels[code] - zp);
    }
  });
}

}  // namespace lowbit
