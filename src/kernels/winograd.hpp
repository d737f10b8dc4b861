// Winograd F(2x2, 3x3) and F(4x4, 3x3) transforms for 3x3, stride-1 convolutions (internal;
// nn/conv2d.cpp).
//
// Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks" (2016). A 2x2 block of
// outputs of a 3x3 correlation is
//   Y = A^T [ (G g G^T) (.) (B^T d B) ] A
// with d the 4x4 input patch under it, g the 3x3 filter, (.) the element-wise product and
//   B^T = [1  0 -1  0]    G = [ 1    0    0 ]    A^T = [1  1  1  0]
//         [0  1  1  0]        [1/2  1/2  1/2]          [0  1 -1 -1]
//         [0 -1  1  0]        [1/2 -1/2  1/2]
//         [0  1  0 -1]        [ 0    0    1 ]
// Summed over input channels, the 16 element-wise products become 16 matrix products
//   M[xi] (K x T) = U[xi] (K x C) * V[xi] (C x T),  xi = 4i + j,
// over T tiles, 16 multiply-adds per 4 outputs and channel pair instead of 36 (2.25x fewer).
// The backward passes are the same algebra: dL/dx is a forward Winograd convolution of dz (padded
// by 2 - pad) with the filters rotated by 180 degrees and transposed (C x K), and
//   dL/dg = G^T [ sum_t (A dz_t A^T) (.) (B^T d_t B) ] G,
// i.e. dU[xi] (K x C) = Z[xi] (K x T) * V[xi]^T with Z = A dz A^T per 2x2 tile of dz.
//
// Tiles: the outputs (P x Q) are covered by th = ceil(P/2) x tw = ceil(Q/2) tiles of 2x2; over a
// batch, tile t = n*th*tw + ty*tw + tx, and a call handles tiles [t0, t1). Matrices are stored
// per xi, row by row: V[xi*(C*ld + kWinoXiPad) + c*ld + (t - t0)], likewise M and Z (K rows).
// The pad of one cache line between the matrices matters: C*ld is often a multiple of 1024
// floats, so without it the 16 or 36 values of a tile, one per matrix, would share one L1 set
// (4 KiB apart) and the transforms, which read or write them together, would miss on each.
//
// Activation codes (nn::Activation order): 0 linear, 1 relu, 2 leaky_relu (slope), 3 tanh,
// 4 sigmoid. act'(z) is written through the output y as in nn/act.hpp (tanh: (1 - y)(1 + y)).
//
// F(4x4, 3x3) (g.tile == 4; the same entry points): 6x6 patches d, 4x4 output tiles, 36
// products per tile (xi = 6i + j), 2.25 multiply-adds per output and channel pair instead of 4
// (F(2x2)) or 9 (direct). B^T, G, A^T (winograd4_formulas.inc; interpolation points 0, +-1, +-2):
//   G = [ 1/4    0     0  ]
//       [-1/6  -1/6  -1/6 ]
//       [-1/6   1/6  -1/6 ]
//       [1/24  1/12   1/6 ]
//       [1/24 -1/12   1/6 ]
//       [  0     0     1  ]
// The transformed values are sums with coefficients up to 5 (B^T) and 8 (A^T), so the rounding
// error is several times that of F(2x2) (bounded in tests/test_kernels_conv.cpp the same way,
// with the absolute values of these matrices). Z[xi = 7] (= (A dz A^T)[1][1]) is the tile's sum.
//
// Free functions over raw pointers: no allocation, no exceptions, single-threaded. Scalar
// references in ref/ (the oracle); the dispatched versions come from winograd.inc, compiled once
// per ISA with the same operations in the same order, so they agree with the references exactly.
#pragma once

#include <cstdint>

namespace imgsim::kernels {

// Floats between the end of V[xi] (or M[xi], Z[xi]) and the start of the next: matrix xi starts at
// xi * (rows * ld + kWinoXiPad).
constexpr int64_t kWinoXiPad = 16;

struct WinoGeometry {
  int64_t channels = 0, height = 0, width = 0;  // the input of the transform: C, H, W
  int64_t pad_top = 0, pad_left = 0;            // input row of output row 0 is -pad_top
  int64_t out_h = 0, out_w = 0;                 // P, Q: the outputs covered by the tiles
  int64_t tile = 2;  // m of F(m x m, 3x3): 2, or 4 (below); n = m + 2 is the patch side
  int64_t tiles_h() const { return (out_h + tile - 1) / tile; }
  int64_t tiles_w() const { return (out_w + tile - 1) / tile; }
  int64_t patch() const { return tile + 2; }
};

// Input transform: V[xi*(C*ldv + kWinoXiPad) + c*ldv + t - t0] = (B^T d B)[xi] for the patch d of
// channel c under tile t (rows m ty - pt .. + n - 1, columns m tx - pl .. + n - 1 with m = g.tile,
// n = m + 2; zero outside the image). x is the batch (N, C, H, W). If y is not null the input is dz
// = x * act'(y) (x is dy, y the layer output, both (N, C, H, W)); otherwise act is ignored.
using WinoInputFn = void (*)(const WinoGeometry& g, const float* x, const float* y, int act,
                             float slope, int64_t t0, int64_t t1, float* v, int64_t ldv);

// Output transform: for the m x m outputs (i, j) of tile t inside the P x Q output of channel k
// (K = g.channels here; height/width/pad unused),
//   z = (A^T M A)[i][j] (+ bias[k] if bias),  out = act(z)   (act 0, 1 or 2 only)
// stored to out[n, k, m ty + i, m tx + j] (out is (N, K, P, Q)), or added to it if accumulate.
using WinoOutputFn = void (*)(const WinoGeometry& g, const float* m, int64_t ldm, int64_t t0,
                              int64_t t1, const float* bias, int act, float slope, bool accumulate,
                              float* out);

// Output transform and a 2x2 / stride 2 max pooling in one (m = 4 only): for tiles [t0, t1) of the
// P x Q output (P = g.out_h even, Q = g.out_w; pp = P / 2, qp = Q / 2 pooled), each conv output
// z = (A^T M A)[i][j] (+ bias[k] if bias) and act(z) (act 0, 1 or 2) as the output transform
// computes it, then each 2x2 window of them pooled as maxpool2x2 does (row-major window order, a
// later value wins only if strictly greater):
//   yp[(n K + k) pp qp + py qp + px] = the maximum,
//   arg[same] = its conv position in the plane, (2 py + r) Q + 2 px + s.
// A last odd conv column is computed and dropped. The conv output is never stored.
using WinoOutputPoolFn = void (*)(const WinoGeometry& g, const float* m, int64_t ldm, int64_t t0,
                                  int64_t t1, const float* bias, int act, float slope, float* yp,
                                  int32_t* arg);

// Gradient-tile transform: Z[xi*(K*ldz + kWinoXiPad) + k*ldz + t - t0] = (A dz A^T)[xi] for the m x
// m tile of dz = dy * act'(y) at outputs (m ty.., m tx..) (zero outside P x Q); K = g.channels, dy
// and y are (N, K, P, Q). For m = 2, Z[xi = 5] is (dz00 + dz10) + (dz01 + dz11), the tile's sum:
// the bias gradient; for m = 4 the sum is Z[7].
using WinoGradFn = void (*)(const WinoGeometry& g, const float* dy, const float* y, int act,
                            float slope, int64_t t0, int64_t t1, float* z, int64_t ldz);

namespace ref {
void wino_input(const WinoGeometry& g, const float* x, const float* y, int act, float slope,
                int64_t t0, int64_t t1, float* v, int64_t ldv);
void wino_output(const WinoGeometry& g, const float* m, int64_t ldm, int64_t t0, int64_t t1,
                 const float* bias, int act, float slope, bool accumulate, float* out);
void wino_grad(const WinoGeometry& g, const float* dy, const float* y, int act, float slope,
               int64_t t0, int64_t t1, float* z, int64_t ldz);
void wino_output_pool(const WinoGeometry& g, const float* m, int64_t ldm, int64_t t0, int64_t t1,
                      const float* bias, int act, float slope, float* yp, int32_t* arg);
}  // namespace ref

}  // namespace imgsim::kernels
