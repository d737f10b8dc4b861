// Scalar im2col / col2im (see kernels/im2col.hpp for the layout).
//
// For a fixed kernel offset k (r or s), output index o reads input position o*st + k - pad,
// which is inside [0, In) exactly for o in [lo, hi):
//   lo = max(0, ceil((pad - k) / st)),   hi = min(Out, floor((In - 1 + pad - k) / st) + 1).
// Computing that range once per row keeps the inner loops free of bounds tests.
#include "kernels/im2col.hpp"

#include <algorithm>

namespace imgsim::kernels::ref {
namespace {

struct Range {
  int64_t lo, hi;
};

Range valid_range(int64_t in, int64_t out, int64_t stride, int64_t pad, int64_t k) {
  const int64_t first = pad - k;          // smallest o*st allowed
  const int64_t last = in - 1 + pad - k;  // largest o*st allowed
  if (last < 0) return {0, 0};
  const int64_t lo = first <= 0 ? 0 : (first + stride - 1) / stride;
  const int64_t hi = std::min(out, last / stride + 1);
  return {std::min(lo, hi), hi};
}

}  // namespace

void im2col(const Im2colGeometry& g, const float* x, float* col) {
  const int64_t H = g.height, W = g.width, R = g.kernel_h, S = g.kernel_w;
  const int64_t P = g.out_h, Q = g.out_w, sh = g.stride_h, sw = g.stride_w;
  for (int64_t c = 0; c < g.channels; ++c) {
    const float* xc = x + c * H * W;
    for (int64_t r = 0; r < R; ++r) {
      const Range pr = valid_range(H, P, sh, g.pad_top, r);
      for (int64_t s = 0; s < S; ++s) {
        const Range qr = valid_range(W, Q, sw, g.pad_left, s);
        float* row = col + ((c * R + r) * S + s) * P * Q;
        std::fill(row, row + pr.lo * Q, 0.0f);
        for (int64_t p = pr.lo; p < pr.hi; ++p) {
          const float* xrow = xc + (p * sh + r - g.pad_top) * W;
          float* dst = row + p * Q;
          std::fill(dst, dst + qr.lo, 0.0f);
          const int64_t w0 = qr.lo * sw + s - g.pad_left;  // input column of q = qr.lo
          if (sw == 1) {
            std::copy(xrow + w0, xrow + w0 + (qr.hi - qr.lo), dst + qr.lo);
          } else {
            for (int64_t q = qr.lo, w = w0; q < qr.hi; ++q, w += sw) dst[q] = xrow[w];
          }
          std::fill(dst + qr.hi, dst + Q, 0.0f);
        }
        std::fill(row + pr.hi * Q, row + P * Q, 0.0f);
      }
    }
  }
}

void col2im_add(const Im2colGeometry& g, const float* col, float* x) {
  const int64_t H = g.height, W = g.width, R = g.kernel_h, S = g.kernel_w;
  const int64_t P = g.out_h, Q = g.out_w, sh = g.stride_h, sw = g.stride_w;
  for (int64_t c = 0; c < g.channels; ++c) {
    float* xc = x + c * H * W;
    for (int64_t r = 0; r < R; ++r) {
      const Range pr = valid_range(H, P, sh, g.pad_top, r);
      for (int64_t s = 0; s < S; ++s) {
        const Range qr = valid_range(W, Q, sw, g.pad_left, s);
        const float* row = col + ((c * R + r) * S + s) * P * Q;
        for (int64_t p = pr.lo; p < pr.hi; ++p) {
          float* xrow = xc + (p * sh + r - g.pad_top) * W;
          const float* src = row + p * Q;
          const int64_t w0 = qr.lo * sw + s - g.pad_left;
          for (int64_t q = qr.lo, w = w0; q < qr.hi; ++q, w += sw) xrow[w] += src[q];
        }
      }
    }
  }
}

}  // namespace imgsim::kernels::ref

namespace imgsim::kernels::ref {

// Straight from the definition, one element at a time (no range arithmetic to get wrong).
void im2col_tile(const Im2colGeometry& g, const float* x, int64_t j0, int64_t j1, float* col,
                 int64_t ldc) {
  const int64_t R = g.kernel_h, S = g.kernel_w, PQ = g.out_h * g.out_w;
  const int64_t HW = g.height * g.width, CHW = g.channels * HW;
  for (int64_t c = 0; c < g.channels; ++c)
    for (int64_t r = 0; r < R; ++r)
      for (int64_t s = 0; s < S; ++s) {
        float* row = col + ((c * R + r) * S + s) * ldc;
        for (int64_t j = j0; j < j1; ++j) {
          const int64_t n = j / PQ, p = j % PQ / g.out_w, q = j % g.out_w;
          const int64_t h = p * g.stride_h + r - g.pad_top, w = q * g.stride_w + s - g.pad_left;
          const bool inside = h >= 0 && h < g.height && w >= 0 && w < g.width;
          row[j - j0] = inside ? x[n * CHW + c * HW + h * g.width + w] : 0.0f;
        }
      }
}

void col2im_tile_add(const Im2colGeometry& g, const float* col, int64_t ldc, int64_t j0, int64_t j1,
                     float* x) {
  const int64_t R = g.kernel_h, S = g.kernel_w, PQ = g.out_h * g.out_w;
  const int64_t HW = g.height * g.width, CHW = g.channels * HW;
  for (int64_t c = 0; c < g.channels; ++c)
    for (int64_t r = 0; r < R; ++r)
      for (int64_t s = 0; s < S; ++s) {
        const float* row = col + ((c * R + r) * S + s) * ldc;
        for (int64_t j = j0; j < j1; ++j) {
          const int64_t n = j / PQ, p = j % PQ / g.out_w, q = j % g.out_w;
          const int64_t h = p * g.stride_h + r - g.pad_top, w = q * g.stride_w + s - g.pad_left;
          if (h >= 0 && h < g.height && w >= 0 && w < g.width)
            x[n * CHW + c * HW + h * g.width + w] += row[j - j0];
        }
      }
}

}  // namespace imgsim::kernels::ref
