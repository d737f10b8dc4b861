// Scalar transpose, gathered accumulation, scattered axpy and pooled scatter (kernels.hpp): the
// oracles, and the Isa::scalar entries of the kernel table but gather_acc's.
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

void pool_scatter(int64_t nwin, int64_t K, const float* g, const uint8_t* sel, const int64_t* org,
                  const float* w, int64_t R, int64_t S, int64_t C, int64_t ldrow, float* x) {
  for (int64_t k = 0; k < K; ++k)
    for (int64_t j = 0; j < nwin; ++j) {
      const int64_t sl = sel[j * K + k];
      const float gk = g[j * K + k];
      float* base = x + org[j] + (sl >> 1) * ldrow + (sl & 1) * C;
      for (int64_t r = 0; r < R; ++r)
        for (int64_t s = 0; s < S; ++s)
          for (int64_t e = 0; e < C; ++e)
            base[r * ldrow + s * C + e] +=
                gk * w[((e / 16 * K + k) * R * S + r * S + s) * 16 + e % 16];
    }
}

}  // namespace imgsim::kernels::ref

namespace imgsim::kernels {

void pool_scatter_pack(const float* w, int64_t K, int64_t C, int64_t RS, float* wb) {
  for (int64_t cb = 0; cb < (C + 15) / 16; ++cb)
    for (int64_t k = 0; k < K; ++k)
      for (int64_t rs = 0; rs < RS; ++rs)
        for (int64_t l = 0; l < 16; ++l) {
          const int64_t c = 16 * cb + l;
          wb[((cb * K + k) * RS + rs) * 16 + l] = c < C ? w[(k * C + c) * RS + rs] : 0.0f;
        }
}

}  // namespace imgsim::kernels
