// im2col / col2im: the lowering that turns a 2-D convolution into one GEMM (internal).
//
// For one image x (C, H, W), a kernel R x S, strides (sh, sw) and top/left padding (pt, pl),
// the column matrix has C*R*S rows and P*Q columns:
//
//   col[(c*R + r)*S + s, p*Q + q] = x[c, p*sh + r - pt, q*sw + s - pl]   (0 outside the image)
//
// so that  y(K x PQ) = W(K x CRS) * col(CRS x PQ)  is the cross-correlation of the layer.
// col2im is the adjoint (transpose) of im2col: it ADDS every column entry back into the image
// position it was read from; entries that came from padding are dropped.
//
// Batch tiles: the layers lower a whole batch of N images at once, as one column matrix with
// N*P*Q columns, column j = n*P*Q + p*Q + q (image n, output pixel (p, q)), and work on ranges of
// columns [j0, j1) that fit in cache (nn/conv2d.cpp). The tile functions read or write those
// columns of the batch matrix into a buffer with row stride ldc:
//
//   im2col_tile:      col[row * ldc + (j - j0)] = batch col[row, j]      (fully overwritten)
//   col2im_tile_add:  x_batch += adjoint of im2col_tile applied to col  (columns [j0, j1) only)
//
// with x the batch (N, C, H, W) contiguous. Scalar references are in ref/ (the oracle); the
// dispatched versions (kernels.hpp: KernelTable::im2col_tile, col2im_tile_add) come from
// conv_lowering.inc, compiled once per ISA.
//
// Free functions over raw pointers: no allocation, no exceptions, single-threaded.
#pragma once

#include <cstdint>

namespace imgsim::kernels {

// Geometry of one im2col lowering. Bottom/right padding is implied by P and Q.
struct Im2colGeometry {
  int64_t channels = 0, height = 0, width = 0;  // C, H, W of the image
  int64_t kernel_h = 0, kernel_w = 0;           // R, S
  int64_t stride_h = 1, stride_w = 1;           // sh, sw (>= 1)
  int64_t pad_top = 0, pad_left = 0;            // pt, pl (>= 0)
  int64_t out_h = 0, out_w = 0;                 // P, Q
};

namespace ref {

// col (C*R*S x P*Q, row-major, fully overwritten) from image x (C x H x W).
void im2col(const Im2colGeometry& g, const float* x, float* col);

// x (C x H x W) += the adjoint of im2col applied to col (C*R*S x P*Q).
void col2im_add(const Im2colGeometry& g, const float* col, float* x);

// Columns [j0, j1) of the batch column matrix (see above), element by element: the oracle for
// the dispatched tile kernels.
void im2col_tile(const Im2colGeometry& g, const float* x, int64_t j0, int64_t j1, float* col,
                 int64_t ldc);
void col2im_tile_add(const Im2colGeometry& g, const float* col, int64_t ldc, int64_t j0, int64_t j1,
                     float* x);

}  // namespace ref
}  // namespace imgsim::kernels
