// Scalar transpose, gathered-row accumulation and scattered-row axpy (kernels.hpp). Both are the
// oracle and the Isa::scalar entry of the kernel table.
#include <cstdint>

#include "kernels/kernels.hpp"

namespace imgsim::kernels::ref {

void transpose(const float* a, int64_t lda, int64_t rows, int64_t cols, float* t, int64_t ldt) {
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) t[j * ldt + i] = a[i * lda + j];
}

void gather_rows_acc(int64_t count, const float* g, const int32_t* idx, int64_t idx0,
                     const float* rows, int64_t ldr, int64_t n, float* acc) {
  for (int64_t c = 0; c < n; ++c) {
    float s = 0.0f;
    for (int64_t i = 0; i < count; ++i) s += g[i] * rows[(idx[i] - idx0) * ldr + c];
    acc[c] += s;
  }
}

void scatter_rows_axpy(int64_t count, const float* g, const int32_t* idx, int64_t idx0,
                       const float* w, int64_t n, float* rows, int64_t ldr) {
  for (int64_t i = 0; i < count; ++i) {
    float* r = rows + (idx[i] - idx0) * ldr;
    for (int64_t c = 0; c < n; ++c) r[c] += g[i] * w[c];
  }
}

}  // namespace imgsim::kernels::ref
