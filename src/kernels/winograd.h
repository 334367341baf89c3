// Exact integer Winograd F(4x4, 3x3) for 3x3, stride-1 convolutions of
// uint8 NHWC images with level-plane weights (qlinear.h): the same int32
// dot products as the direct kernels, from 36 multiplies per 4x4 output tile
// and input/output channel pair instead of 144.
//
// Arithmetic (Lavin and Gray's F(4, 3), with G scaled by 24 so that every
// transform is an integer matrix):
//   V = B^T d B     d: a 6x6 window of image bytes (0..255), |V| <= 20400
//   U = G' g G'^T   g: a filter's 3x3 levels, G' = 24 G, |U| <= 576 max|T|
//   576 Y = A^T (sum over channels of U (.) V) A
// The products and sums run in int32 and may wrap: the result is exact
// modulo 2^32, and 576 Y itself fits int32 whenever 576 * 255 * sum |T| over
// a filter stays below 2^31 (WinogradExact), so the wrapped value is the
// true one and Y = 576 Y / 576 exactly. V and U are int16 (VNNI's vpdpwssd
// multiplies int16 pairs at the rate vpdpbusd multiplies int8 quads: 32
// multiplies an instruction instead of 64, for 4x fewer multiplies).
//
// Layouts (all int16 but the dots):
//   U: blocks of 4 output tiles (64 outputs; the last block 1-4), each
//      [36][c / 2][tiles of the block][16 outputs][2 channels] (position
//      xi = 6 i + j of the 6x6 transform): one contiguous stream per block,
//      as the products read it. 36 * n_pad * c values (WinogradU).
//   V: [tiles][36][c] for a run of tiles (each tile's values contiguous):
//      whole bands (4 output rows) of tpr tiles each, row-major.
//   dot: tile x (band x / tpr, tile x % tpr in it), row r (0..3) and
//        column q of the tile at
//        dot[((x / tpr * 4 + r) * 4 * tpr + 4 * (x % tpr) + q) * n_pad + n]:
//        each output row is 4 * tpr consecutive pixels, as the epilogues
//        read them.
// The image (WinogradImage) is NHWC bytes with one pixel of padding that
// holds the zero point: band ty's tile x reads rows 4 ty - 1 .. 4 ty + 4 and
// columns 4 x - 1 .. 4 x + 4, the zero point wherever they fall outside.
// Each entry point has a scalar *Ref twin, the specification.
#ifndef LOWBIT_KERNELS_WINOGRAD_H_
#define LOWBIT_KERNELS_WINOGRAD_H_

#include <algorithm>
#include <cstdint>

#include "kernels/qlinear.h"

namespace lowbit {

// Whether w -- level planes of a 3x3 convolution with c input channels, K in
// (tap, channel) order, c a multiple of 32 -- gives exact results: U fits
// int16 and 576 * 255 * sum |T| of every filter stays below 2^31.
bool WinogradExact(const QLinearWeights& w, int64_t c);

// Where U's 32 values of output tile t (of n_pad / 16), position xi and
// channel pair q start.
inline int64_t WinogradU(int64_t n_pad, int64_t c, int64_t t, int64_t xi, int64_t q) {
  const int64_t tiles = n_pad / 16, block = t / 4, nt = std::min<int64_t>(4, tiles - 4 * block);
  return ((block * 4 * 36 * (c / 2)) + (xi * (c / 2) + q) * nt + t % 4) * 32;
}

// U for output tiles [t0, t1) (16 outputs each).
void WinogradWeightsRef(const QLinearWeights& w, int64_t c, int64_t t0, int64_t t1, int16_t* u);
void WinogradWeightsAvx512(const QLinearWeights& w, int64_t c, int64_t t0, int64_t t1, int16_t* u);

// An h x w image of c channels (a multiple of 32): pixel (y, x) at
// data + (y * ws + x) * c, rows ws >= w pixels apart.
struct WinogradImage {
  const uint8_t* data = nullptr;
  int64_t h = 0, w = 0, ws = 0, c = 0;
  uint8_t zero = 0;
};

// V of tiles [x0, x1) of band ty, tile x0's first.
void WinogradInputRef(const WinogradImage& im, int64_t ty, int64_t x0, int64_t x1, int16_t* v);
void WinogradInputAvx512(const WinogradImage& im, int64_t ty, int64_t x0, int64_t x1, int16_t* v);

// The dots of V's `tiles` tiles (whole bands of tpr) for output tiles
// [t0, t1) (t0 a multiple of 4). `scratch`: WinogradScratchInts() int32s.
void WinogradDotsRef(const int16_t* v, int64_t tiles, int64_t tpr, const int16_t* u, int64_t c,
                     int64_t n_pad, int64_t t0, int64_t t1, int32_t* dot);
void WinogradDotsAvx512(const int16_t* v, int64_t tiles, int64_t tpr, const int16_t* u, int64_t c,
                        int64_t n_pad, int64_t t0, int64_t t1, int32_t* scratch, int32_t* dot);
int64_t WinogradScratchInts();

}  // namespace lowbit

#endif  // LOWBIT_KERNELS_WINOGRAD_H_
