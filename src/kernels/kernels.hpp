// Internal kernel interface: free functions over raw pointers, no allocation on the hot path, no
// exceptions. Each entry has a scalar reference in ref/ (the oracle) and per-ISA versions chosen
// at run time (registry.cpp): a portable blocked version (baseline flags, Isa::scalar), AVX2+FMA
// and AVX-512. docs/kernels.md describes dispatch, naming, blocking and tolerances.
#pragma once

#include <cstdint>

#include "imgsim/runtime/cpu.hpp"
#include "kernels/im2col.hpp"
#include "kernels/winograd.hpp"

namespace imgsim::kernels {

// Row-major C[M x N] = alpha * op(A)[M x K] * op(B)[K x N] + beta * C.
// op(A) = A (lda >= K) or A^T (A stored K x M, lda >= M); likewise B. beta == 0 ignores C's
// previous contents (NaN-safe). The fast versions may split the work over the thread pool
// (thread_pool.hpp) when the problem is large; the result does not depend on the thread count.
using SgemmFn = void (*)(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                         const float* A, int64_t lda, const float* B, int64_t ldb, float beta,
                         float* C, int64_t ldc);

// A GEMM operand used many times (Winograd's transformed filters: one A per xi for every chunk
// of tiles) packed once: pack_gemm_a writes A (M x K, row-major, lda >= K, untransposed) in
// packed_a_floats(M, K) floats at Ap, in the layout the ISA's blocked GEMM packs A into for each
// call (so it belongs to that ISA's table); sgemm_packed_a is then sgemm(false, false, ...) with
// that A, the same sums in the same order, without packing it again.
using PackedAFloatsFn = int64_t (*)(int64_t M, int64_t K);
using PackGemmAFn = void (*)(int64_t M, int64_t K, const float* A, int64_t lda, float* Ap);
using SgemmPackedAFn = void (*)(int64_t M, int64_t N, int64_t K, float alpha, const float* Ap,
                                const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

// Batch im2col / col2im over columns [j0, j1) (kernels/im2col.hpp; oracle: ref::im2col_tile,
// ref::col2im_tile_add).
using Im2colTileFn = void (*)(const Im2colGeometry& g, const float* x, int64_t j0, int64_t j1,
                              float* col, int64_t ldc);
using Col2imTileFn = void (*)(const Im2colGeometry& g, const float* col, int64_t ldc, int64_t j0,
                              int64_t j1, float* x);

// One channel plane of 2x2 / stride 2 max pooling without padding: for p < p_out, q < q_out
// (2 p_out, 2 q_out within the plane; row stride w),
//   y[p*q_out + q]   = max of v(2p, 2q), v(2p, 2q+1), v(2p+1, 2q), v(2p+1, 2q+1)
//   arg[p*q_out + q] = flat index (row * w + column) of the first maximum in that order, a later
//                      value winning only if strictly greater (so NaN wins only in first place),
// with v(r, c) = act(x[r][c] + *bias) (no addition if bias is null): act 0 linear, 1 relu
// (z > 0 ? z : 0), 2 leaky_relu (z > 0 ? z : slope z), as nn/act.hpp computes them, so that a
// convolution's raw output is pooled as the two layers would pool its activation. MaxPool2D
// passes no bias and act 0: v = x.
// Oracle and Isa::scalar entry: ref::maxpool2x2.
using MaxPool2x2Fn = void (*)(const float* x, int64_t w, int64_t p_out, int64_t q_out,
                              const float* bias, int act, float slope, float* y, int32_t* arg);

// Backward of maxpool2x2 (with the activation before it) for one plane: with
//   g[p*q_out + q] = dy[.] * act'(y[.])   (act 0: dy; 1 relu: y > 0 ? dy : 0; 2 leaky_relu:
//                                          y > 0 ? dy : slope dy, as nn/act.hpp; y may be null
//                                          for act 0),
// writes every element of rows [0, 2 p_out) x columns [0, w) of dz (row stride w): g of the
// window (p, q) at its argmax, arg[p*q_out + q] - arg0, and 0 everywhere else (columns from
// 2 q_out on included). Each argmax must lie in its window (maxpool2x2's do). If g_out is not
// null it receives g. Oracle and Isa::scalar entry: ref::unpool2x2 (clear, then scatter).
using Unpool2x2Fn = void (*)(const float* dy, const float* y, int act, float slope,
                             const int32_t* arg, int64_t arg0, int64_t w, int64_t p_out,
                             int64_t q_out, float* g_out, float* dz);

// C[M x N] = A[M x K] * B[N x K]^T + beta * C (beta 0 or 1; 0 ignores C), rows of A and B
// contiguous along K: for small M * N and long K (dW of a layer with few input channels), where
// packing for the blocked GEMM would cost as much as the arithmetic. Oracle: ref::sgemm with
// trans_b. Single-threaded; the order of the sums depends only on K.
using GemmNtSmallFn = void (*)(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda,
                               const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

// t[j * ldt + i] = a[i * lda + j] for i < rows, j < cols (a and t do not overlap; nothing else of
// t is written). Oracle and Isa::scalar entry: ref::transpose.
using TransposeFn = void (*)(const float* a, int64_t lda, int64_t rows, int64_t cols, float* t,
                             int64_t ldt);

// acc[s * n + c] += sum_{i < count} g[i] * x[off[i] + seg[s] + c] for s < nseg, c < n: the weight
// gradient of a convolution followed by max pooling, whose output gradient g is nonzero only at
// the pooling's argmaxes; off[i] locates argmax i's input patch, made of nseg runs of n floats
// at offsets seg[] (one run: an im2col column transposed into a row; R x S runs of C channels:
// a channels-last image). Each ISA sums in its own fixed order, which depends only on count and
// n. Oracle and Isa::scalar entry: ref::gather_acc.
using GatherAccFn = void (*)(int64_t count, const float* g, const int64_t* off, const float* x,
                             const int64_t* seg, int64_t nseg, int64_t n, float* acc);

// x[off[i] + seg[s] + c] += g[i] * w[s * n + c] for s < nseg, c < n, i < count in order (patches
// may overlap): the adjoint of gather_acc, the data gradient of the same pair. The fast versions
// fuse the multiply-add. Oracle and Isa::scalar entry: ref::scatter_axpy.
using ScatterAxpyFn = void (*)(int64_t count, const float* g, const int64_t* off, const float* w,
                               const int64_t* seg, int64_t nseg, int64_t n, float* x);

// x[org[j] + (dy + r) * ldrow + (dx + s) * C + e] += g[j * K + k] * w(k, r, s, e)
// for j < nwin, k < K, r < R, s < S, e < C, with (dy, dx) = (sel[j * K + k] >> 1, sel[j * K + k]
// & 1) and sel < 4: the data gradient of a stride-1 R x S convolution followed by 2x2 / stride 2
// max pooling, on a channels-last image x (pixels C floats apart, rows ldrow floats apart). Window
// j covers the conv outputs whose patches start at org[j] and one pixel right and / or down of it;
// sel says at which of the four filter k's argmax lies, g is dz there. The filters come in blocks
// of 16 channels (pool_scatter_pack): w(k, r, s, e) = w[((e / 16 * K + k) * R * S + r * S + s) *
// 16 + e % 16], so that a block of filters' 16 channels is contiguous. The same sums as
// scatter_axpy with one position per (j, k), grouped by window so that a fast version can add up
// a window's filters in registers and store its (R + 1) x (S + 1) pixels once per group of
// filters. Oracle and Isa::scalar entry: ref::pool_scatter (k, then j, in order).
using PoolScatterFn = void (*)(int64_t nwin, int64_t K, const float* g, const uint8_t* sel,
                               const int64_t* org, const float* w, int64_t R, int64_t S, int64_t C,
                               int64_t ldrow, float* x);

// A first layer's 3x3 stride-1 convolution without padding fused with 2x2 / stride 2 max
// pooling, directly from the image (no im2col): for one image x (C planes of H x W) and pooled
// rows [i0, i1) of every filter k < K, with Q = W - 2 conv columns and qp = Q / 2 pooled ones,
//   z(k, p, q) = sum over c, r, s (in that order) of w[((k C + c) 3 + r) 3 + s] x[c][p + r][q + s]
// and y[k ldy + i qp + j], arg[.] = maxpool2x2 of act(z + bias[k]) over the window's four conv
// outputs (rows 2i, 2i + 1, columns 2j, 2j + 1; act and the argmax rule as maxpool2x2), the
// argmax as the conv plane index p Q + q. scratch: conv3x3_pool_scratch(C, W) floats. The sums
// are those of the im2col GEMM (one product per c, r, s, in order, from 0), so the pair's output
// equals the unfused layers' bit for bit where the GEMM sums that way. Oracle: ref::conv3x3_pool;
// null in the ISAs that have no fast version (the layer then uses im2col).
using ConvPool3x3Fn = void (*)(const float* x, int64_t C, int64_t H, int64_t W, const float* w,
                               const float* bias, int act, float slope, int64_t K, int64_t i0,
                               int64_t i1, float* y, int32_t* arg, int64_t ldy, float* scratch);
// The floats of a row's input lines split by column parity: 2 planes (even, odd) of 4 rows per
// channel. The scratch has room for two such sets (the AVX2 kernels add the planes shifted by one
// column, so that no load crosses a cache line).
inline int64_t conv3x3_split_floats(int64_t C, int64_t W) {
  return C * 8 * ((W / 2 + 15) / 16 * 16 + 32);
}
inline int64_t conv3x3_pool_scratch(int64_t C, int64_t W) {
  return 2 * conv3x3_split_floats(C, W);
}

// The same direct convolution without the pooling (a first layer followed by another
// convolution): conv rows 2 i0 .. min(2 i1, P) - 1 of every filter, P = H - 2, all Q = W - 2
// columns, y[k ldy + p Q + q] = act(z(k, p, q) + bias[k]) with z summed as above (the im2col
// GEMM's sums, then bias, then activation: the unfused layer's output bit for bit). scratch:
// conv3x3_pool_scratch(C, W) floats. Oracle: ref::conv3x3; null in the ISAs that have no fast
// version (all but AVX-512).
using Conv3x3Fn = void (*)(const float* x, int64_t C, int64_t H, int64_t W, const float* w,
                           const float* bias, int act, float slope, int64_t K, int64_t i0,
                           int64_t i1, float* y, int64_t ldy, float* scratch);

// Its weight and bias gradients (a first layer: no data gradient): with dz = dy act'(y) at every
// conv output (dy, y: planes of P x Q per filter, k-th at + k ldy),
//   acc[(k (9 C + 1) + 9c + 3r + s) 16 + l] += dz(k, p, q) x[c][p + r][q + s],
//   acc[(k (9 C + 1) + 9C) 16 + l] += dz(k, p, q)
// over conv rows [p0, p1) and columns q = l (mod 16), one fused multiply-add each, in order of p
// then q: 16 lanes of partial sums per weight, which the caller reduces. scratch:
// conv3x3_grad_scratch(W) floats. Oracle: ref::conv3x3_grad (std::fma); null where conv3x3 is.
using Conv3x3GradFn = void (*)(const float* x, int64_t C, int64_t H, int64_t W, const float* dy,
                               const float* y, int act, float slope, int64_t ldy, int64_t K,
                               int64_t p0, int64_t p1, float* acc, float* scratch);
constexpr int64_t kConv3x3GradRows = 8;  // the fast versions' band of conv rows
inline int64_t conv3x3_grad_scratch(int64_t W) {
  return 2 * kConv3x3GradRows * ((W - 2 + 15) / 16) * 16;
}

// Its weight and bias gradients, for a first layer (no data gradient), also straight from the
// image: with g = dy * act'(y) of each pooled output (act and act' as maxpool2x2 / unpool2x2)
// and (p, q) = the conv position of its argmax arg[.] (a plane index p Q + q, in its window),
//   acc[(k (9 C + 1) + 9c + 3r + s) 16 + l] += g x[c][p + r][q + s],  acc[(k (9C + 1) + 9C) 16 + l]
//   += g
// over pooled rows [i0, i1) and columns j with j = l (mod 16): one vector of 16 partial sums per
// weight, one fused multiply-add per window, in a fixed order per lane (pooled row, then window),
// which the caller reduces. (The dense gradient of the unfused layers also adds the products of
// the three other places of each window, with g = 0.) dy, y and arg: planes of pp x qp per filter,
// k-th at + k ldg. scratch: conv3x3_pool_grad_scratch(C, W, i1 - i0) floats. Oracle:
// ref::conv3x3_pool_grad (with std::fma); null where conv3x3_pool is. The fast versions work in
// bands of pooled rows: conv3x3_grad_band, as many as split into about 96 KiB (a part of L2), at
// least 8, at most rows, which the scratch is sized for; AVX2 has a layout and bands of its own
// (below). The AVX2 version also multiplies each patch value at the argmax's other row by a zero
// g: with finite inputs the sums are the same bits.
inline int64_t conv3x3_grad_band(int64_t C, int64_t W, int64_t rows) {
  const int64_t fit = 24 * 1024 / conv3x3_split_floats(C, W), band = fit > 8 ? fit : 8;
  return rows < band ? rows : band;
}
// AVX2 (avx2/direct_avx2.cpp, grad_rows): per band row, 6 vectors per input row and block of 8
// windows (nb blocks) for every channel, and the window gradients (3 vectors a block) of a group
// of kGradGroup filters (up to 32: the larger the group, the fewer times a band's vectors come
// back from L2); its band is as many rows as keep one channel's half of the blocks and one
// filter's window gradients within 24 KiB of L1.
constexpr int64_t kGradGroup = 32;
inline int64_t conv3x3_grad_band_avx2(int64_t W, int64_t rows) {
  const int64_t nb = ((W - 2) / 2 + 7) / 8, per_row = (nb + 1) / 2 * 192 + nb * 24;
  const int64_t fit = 6144 / per_row, band = fit > 1 ? fit : 1;
  return rows < band ? rows : band;
}
inline int64_t conv3x3_pool_grad_scratch_avx2(int64_t C, int64_t W, int64_t rows) {
  const int64_t nb = ((W - 2) / 2 + 7) / 8, band = conv3x3_grad_band_avx2(W, rows);
  return 16 + band * (C * nb * 192 + kGradGroup * nb * 24) + 2 * (8 * nb + 8);
}
inline int64_t conv3x3_pool_grad_scratch(int64_t C, int64_t W, int64_t rows) {
  const int64_t wide = conv3x3_grad_band(C, W, rows) *
                       (conv3x3_split_floats(C, W) + 2 * ((W / 2 + 15) / 16 * 32)),
                avx2 = conv3x3_pool_grad_scratch_avx2(C, W, rows);
  return wide > avx2 ? wide : avx2;
}
using ConvPool3x3GradFn = void (*)(const float* x, int64_t C, int64_t H, int64_t W, const float* dy,
                                   const float* y, int act, float slope, const int32_t* arg,
                                   int64_t ldg, int64_t K, int64_t i0, int64_t i1, float* acc,
                                   float* scratch);

struct KernelTable {
  Isa isa;
  SgemmFn sgemm;
  const char* sgemm_name;  // microkernel name, f32_gemm_<MR>x<NR>__<isa> (docs/kernels.md)
  PackedAFloatsFn packed_a_floats;
  PackGemmAFn pack_gemm_a;
  SgemmPackedAFn sgemm_packed_a;
  Im2colTileFn im2col_tile;
  Col2imTileFn col2im_tile_add;
  MaxPool2x2Fn maxpool2x2;
  Unpool2x2Fn unpool2x2;
  // Winograd F(2x2, 3x3) transforms (kernels/winograd.hpp; oracles in ref::).
  WinoInputFn wino_input;
  WinoOutputFn wino_output;
  WinoGradFn wino_grad;
  WinoOutputPoolFn wino_output_pool;  // F(4x4) output transform with 2x2 max pooling
  GemmNtSmallFn gemm_nt_small;
  TransposeFn transpose;
  GatherAccFn gather_acc;
  ScatterAxpyFn scatter_axpy;
  PoolScatterFn pool_scatter;
  ConvPool3x3Fn conv3x3_pool;           // null: no fast version (see above)
  ConvPool3x3GradFn conv3x3_pool_grad;  // likewise
  Conv3x3Fn conv3x3;                    // likewise
  Conv3x3GradFn conv3x3_grad;           // likewise
};

// The table for active_isa(); follows set_max_isa() (tables are static, one per ISA).
const KernelTable& table();
// The table for a given ISA; throws InvalidArgument if isa > detected_isa(). For tests and
// benchmarks.
const KernelTable& table_for(Isa isa);

namespace ref {
// Naive triple loop: the oracle the fast GEMMs are tested against. Single-threaded.
void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
           int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);
void maxpool2x2(const float* x, int64_t w, int64_t p_out, int64_t q_out, const float* bias, int act,
                float slope, float* y, int32_t* arg);
void unpool2x2(const float* dy, const float* y, int act, float slope, const int32_t* arg,
               int64_t arg0, int64_t w, int64_t p_out, int64_t q_out, float* g_out, float* dz);
void transpose(const float* a, int64_t lda, int64_t rows, int64_t cols, float* t, int64_t ldt);
void gather_acc(int64_t count, const float* g, const int64_t* off, const float* x,
                const int64_t* seg, int64_t nseg, int64_t n, float* acc);
void scatter_axpy(int64_t count, const float* g, const int64_t* off, const float* w,
                  const int64_t* seg, int64_t nseg, int64_t n, float* x);
void pool_scatter(int64_t nwin, int64_t K, const float* g, const uint8_t* sel, const int64_t* org,
                  const float* w, int64_t R, int64_t S, int64_t C, int64_t ldrow, float* x);
#include "kernels/direct_kernels.inc"
}  // namespace ref

// pool_scatter's filter layout from a convolution's (K, C, R, S) weights: wb[((cb * K + k) * R * S
// + rs) * 16 + l] = w[(k * C + 16 cb + l) * R * S + rs], 0 past C; pool_scatter_floats(K, C, R * S)
// floats.
inline int64_t pool_scatter_floats(int64_t K, int64_t C, int64_t RS) {
  return (C + 15) / 16 * K * RS * 16;
}
void pool_scatter_pack(const float* w, int64_t K, int64_t C, int64_t RS, float* wb);

// Blocked GEMMs and batch im2col / col2im tiles, one namespace per instruction set
// (portable/, avx2/, avx512/: sgemm_*.cpp and conv_*.cpp).
// compiled() is false when the build could not compile that ISA's code (e.g. IMGSIM_NATIVE on an
// older CPU); the registry then never selects it.
namespace portable {
void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
           int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);
int64_t packed_a_floats(int64_t M, int64_t K);
void pack_gemm_a(int64_t M, int64_t K, const float* A, int64_t lda, float* Ap);
void sgemm_packed_a(int64_t M, int64_t N, int64_t K, float alpha, const float* Ap, const float* B,
                    int64_t ldb, float beta, float* C, int64_t ldc);
bool compiled();
const char* sgemm_name();
void im2col_tile(const Im2colGeometry& g, const float* x, int64_t j0, int64_t j1, float* col,
                 int64_t ldc);
void col2im_tile_add(const Im2colGeometry& g, const float* col, int64_t ldc, int64_t j0, int64_t j1,
                     float* x);
void wino_input(const WinoGeometry& g, const float* x, const float* y, int act, float slope,
                int64_t t0, int64_t t1, float* v, int64_t ldv);
void wino_output(const WinoGeometry& g, const float* m, int64_t ldm, int64_t t0, int64_t t1,
                 const float* bias, int act, float slope, bool accumulate, float* out);
void wino_grad(const WinoGeometry& g, const float* dy, const float* y, int act, float slope,
               int64_t t0, int64_t t1, float* z, int64_t ldz);
void wino_output_pool(const WinoGeometry& g, const float* m, int64_t ldm, int64_t t0, int64_t t1,
                      const float* bias, int act, float slope, float* yp, int32_t* arg);
void gemm_nt_small(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B,
                   int64_t ldb, float beta, float* C, int64_t ldc);
void gather_acc(int64_t count, const float* g, const int64_t* off, const float* x,
                const int64_t* seg, int64_t nseg, int64_t n, float* acc);
}  // namespace portable
namespace avx2 {
#include "kernels/isa_kernels.inc"
// The direct first-layer pooled forward and gradient (avx2/direct_avx2.cpp; conv3x3 and
// conv3x3_grad, the unpooled ones, are null on AVX2).
void conv3x3_pool(const float* x, int64_t C, int64_t H, int64_t W, const float* w,
                  const float* bias, int act, float slope, int64_t K, int64_t i0, int64_t i1,
                  float* y, int32_t* arg, int64_t ldy, float* scratch);
void conv3x3_pool_grad(const float* x, int64_t C, int64_t H, int64_t W, const float* dy,
                       const float* y, int act, float slope, const int32_t* arg, int64_t ldg,
                       int64_t K, int64_t i0, int64_t i1, float* acc, float* scratch);
}  // namespace avx2
namespace avx512 {
#include "kernels/direct_kernels.inc"
#include "kernels/isa_kernels.inc"
}  // namespace avx512

// Convenience wrapper over table().sgemm.
inline void sgemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                  int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  table().sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

}  // namespace imgsim::kernels
