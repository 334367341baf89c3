// The Winograd F(4x4, 3x3) specification (scalar) and the exactness test.
#include "kernels/winograd.h"

#include <algorithm>
#include <cstdlib>
#include <vector>

#include "lowbit/bitpack.h"

namespace lowbit {

namespace {

constexpr int64_t kTaps = 9;

// The int8 level of output n, input k (0 past w.n).
int32_t Level(const QLinearWeights& w, int64_t n, int64_t k) {
  if (n >= w.n) return 0;
  return w.table[CodeField(w.codes.data() + n * w.row_bytes, k * w.bits, w.bits)];
}

// y = B^T x (6 -> 6), strides in elements.
template <typename T>
void InputTransform(const T* x, int64_t sx, T* y, int64_t sy) {
  const T x0 = x[0], x1 = x[sx], x2 = x[2 * sx], x3 = x[3 * sx], x4 = x[4 * sx], x5 = x[5 * sx];
  y[0] = 4 * x0 - 5 * x2 + x4;
  y[sy] = -4 * x1 - 4 * x2 + x3 + x4;
  y[2 * sy] = 4 * x1 - 4 * x2 - x3 + x4;
  y[3 * sy] = -2 * x1 - x2 + 2 * x3 + x4;
  y[4 * sy] = 2 * x1 - x2 - 2 * x3 + x4;
  y[5 * sy] = 4 * x1 - 5 * x3 + x5;
}

// y = G' x (3 -> 6), G' = 24 G.
void WeightTransform(const int32_t* x, int64_t sx, int32_t* y, int64_t sy) {
  const int32_t x0 = x[0], x1 = x[sx], x2 = x[2 * sx];
  y[0] = 6 * x0;
  y[sy] = -4 * (x0 + x1 + x2);
  y[2 * sy] = -4 * (x0 - x1 + x2);
  y[3 * sy] = x0 + 2 * x1 + 4 * x2;
  y[4 * sy] = x0 - 2 * x1 + 4 * x2;
  y[5 * sy] = 24 * x2;
}

// y = A^T x (6 -> 4), modulo 2^32.
void OutputTransform(const uint32_t* x, int64_t sx, uint32_t* y, int64_t sy) {
  const uint32_t x0 = x[0], x1 = x[sx], x2 = x[2 * sx], x3 = x[3 * sx], x4 = x[4 * sx],
                 x5 = x[5 * sx];
  y[0] = x0 + x1 + x2 + x3 + x4;
  y[sy] = x1 - x2 + 2 * (x3 - x4);
  y[2 * sy] = x1 + x2 + 4 * (x3 + x4);
  y[3 * sy] = x1 - x2 + 8 * (x3 - x4) + x5;
}

}  // namespace

bool WinogradExact(const QLinearWeights& w, int64_t c) {
  if (w.layout != QLinearWeights::Layout::kLevelPlanes || c <= 0 || c % 32 != 0 ||
      w.k != kTaps * c) {
    return false;
  }
  int32_t max_level = 0;
  for (int8_t t : w.table) max_level = std::max(max_level, std::abs(static_cast<int32_t>(t)));
  if (576 * max_level > 32767) return false;
  std::vector<uint32_t> codes(w.k);
  for (int64_t n = 0; n < w.n; ++n) {
    UnpackCodes(w.codes.data() + n * w.row_bytes, w.k, w.bits, codes.data());
    int64_t sum = 0;
    for (uint32_t code : codes) sum += std::abs(static_cast<int32_t>(w.table[code]));
    if (576 * 255 * sum >= (int64_t{1} << 31)) return false;
  }
  return true;
}

void WinogradWeightsRef(const QLinearWeights& w, int64_t c, int64_t t0, int64_t t1, int16_t* u) {
  for (int64_t t = t0; t < t1; ++t) {
    for (int64_t i = 0; i < 16; ++i) {
      for (int64_t ch = 0; ch < c; ++ch) {
        int32_t g[9], tmp[18], out[36];
        for (int64_t tap = 0; tap < kTaps; ++tap) g[tap] = Level(w, 16 * t + i, tap * c + ch);
        for (int x = 0; x < 3; ++x) WeightTransform(g + x, 3, tmp + x, 3);            // columns
        for (int r = 0; r < 6; ++r) WeightTransform(tmp + 3 * r, 1, out + 6 * r, 1);  // rows
        for (int xi = 0; xi < 36; ++xi) {
          u[WinogradU(w.n_pad, c, t, xi, ch / 2) + 2 * i + ch % 2] = static_cast<int16_t>(out[xi]);
        }
      }
    }
  }
}

void WinogradInputRef(const WinogradImage& im, int64_t ty, int64_t x0, int64_t x1, int16_t* v) {
  const int64_t c = im.c;
  for (int64_t x = x0; x < x1; ++x) {
    for (int64_t ch = 0; ch < c; ++ch) {
      int32_t d[36], tmp[36], out[36];
      for (int a = 0; a < 6; ++a) {
        for (int b = 0; b < 6; ++b) {
          const int64_t iy = 4 * ty + a - 1, ix = 4 * x + b - 1;
          d[6 * a + b] = iy >= 0 && iy < im.h && ix >= 0 && ix < im.w
                             ? im.data[(iy * im.ws + ix) * c + ch]
                             : im.zero;
        }
      }
      for (int b = 0; b < 6; ++b) InputTransform(d + b, 6, tmp + b, 6);
      for (int a = 0; a < 6; ++a) InputTransform(tmp + 6 * a, 1, out + 6 * a, 1);
      for (int xi = 0; xi < 36; ++xi) {
        v[((x - x0) * 36 + xi) * c + ch] = static_cast<int16_t>(out[xi]);
      }
    }
  }
}

void WinogradDotsRef(const int16_t* v, int64_t tiles, int64_t tpr, const int16_t* u, int64_t c,
                     int64_t n_pad, int64_t t0, int64_t t1, int32_t* dot) {
  for (int64_t t = t0; t < t1; ++t) {
    for (int64_t i = 0; i < 16; ++i) {
      for (int64_t x = 0; x < tiles; ++x) {
        uint32_t m[36], tmp[24], y[16];
        for (int xi = 0; xi < 36; ++xi) {
          uint32_t s = 0;
          for (int64_t ch = 0; ch < c; ++ch) {
            const int32_t uv = u[WinogradU(n_pad, c, t, xi, ch / 2) + 2 * i + ch % 2];
            s += static_cast<uint32_t>(uv * static_cast<int32_t>(v[(x * 36 + xi) * c + ch]));
          }
          m[xi] = s;
        }
        for (int b = 0; b < 6; ++b) OutputTransform(m + b, 6, tmp + b, 6);
        for (int r = 0; r < 4; ++r) OutputTransform(tmp + 6 * r, 1, y + 4 * r, 1);
        for (int r = 0; r < 4; ++r) {
          for (int q = 0; q < 4; ++q) {
            // 576 Y is exact in int32: Y = (576 Y >> 6) * 9^-1 modulo 2^32.
            const int32_t y576 = static_cast<int32_t>(y[4 * r + q]);
            const uint32_t y64 = static_cast<uint32_t>(y576 >> 6);
            dot[((x / tpr * 4 + r) * 4 * tpr + 4 * (x % tpr) + q) * n_pad + 16 * t + i] =
                static_cast<int32_t>(y64 * 0x38E38E39u);
          }
        }
      }
    }
  }
}

int64_t WinogradScratchInts() { return 36 * 6 * 64; }

}  // namespace lowbit
