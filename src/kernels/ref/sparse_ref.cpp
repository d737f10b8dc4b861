// Scalar transpose, gathered accumulation and scattered axpy (kernels.hpp). Both are the
// oracle and the Isa::scalar entry of the kernel table.
#include <cstdint>

#include "kernels/kernels.hpp"

namespace imgsim::kernels::ref {

void transpose(const float* a, int64_t lda, int64_t rows, int64_t cols, float* t, int64_t ldt) {
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) t[j * ldt + i] = a[i * lda + j];
}

void gather_acc(int64_t count, const float* g, const int64_t* off, const float* x,
                const int64_t* seg, int64_t nseg, int64_t n, float* acc) {
  for (int64_t s = 0; s < nseg; ++s) {
    for (int64_t c = 0; c < n; ++c) {
      float sum = 0.0f;
      for (int64_t i = 0; i < count; ++i) sum += g[i] * x[off[i] + seg[s] + c];
      acc[s * n + c] += sum;
    }
  }
}

void scatter_axpy(int64_t count, const float* g, const int64_t* off, const float* w,
                  const int64_t* seg, int64_t nseg, int64_t n, float* x) {
  for (int64_t i = 0; i < count; ++i)
    for (int64_t s = 0; s < nseg; ++s)
      for (int64_t c = 0; c < n; ++c) x[off[i] + seg[s] + c] += g[i] * w[s * n + c];
}

}  // namespace imgsim::kernels::ref
