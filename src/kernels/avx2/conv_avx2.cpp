// Batch im2col / col2im tiles (conv_lowering.inc) and Winograd transforms (winograd.inc) for
// AVX2. The runs along a row of the image are short on small images (11 to 26 floats on
// Fashion-MNIST), so they are copied 8 floats at a time with a masked load for the tail and a
// store through a local (no masked stores: slow on AMD) instead of a scalar remainder loop.
#include <cstdint>
#include <type_traits>

#include "kernels/kernels.hpp"

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define IMGSIM_HAVE_AVX2_CONV 1
#endif

namespace imgsim::kernels::avx2 {

#ifdef IMGSIM_HAVE_AVX2_CONV

namespace {

// Lanes [0, n) set, n in [0, 8]: an unaligned 8-int window into 8 ones followed by 8 zeros.
inline __m256i run_mask(int64_t n) {
  alignas(32) static const int32_t kOnesThenZeros[16] = {-1, -1, -1, -1, -1, -1, -1, -1,
                                                         0,  0,  0,  0,  0,  0,  0,  0};
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kOnesThenZeros + 8 - n));
}

#include "kernels/avx2/store_head.inc"

// d[i] = v[i] for i < n, n in [0, 8] (store_head: no masked stores, slow on AMD).
inline void store_first(float* d, __m256 v, int64_t n) {
  store_head(d, v, n);
}

#define IMGSIM_CONV_HAS_RUNS 1
inline void copy_run(float* __restrict d, const float* __restrict s, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(d + i, _mm256_loadu_ps(s + i));
  if (i < n) {
    store_first(d + i, _mm256_maskload_ps(s + i, run_mask(n - i)), n - i);
  }
}
inline void zero_run(float* d, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(d + i, _mm256_setzero_ps());
  if (i < n) store_first(d + i, _mm256_setzero_ps(), n - i);
}
inline void add_run(float* __restrict d, const float* __restrict s, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(d + i, _mm256_add_ps(_mm256_loadu_ps(d + i), _mm256_loadu_ps(s + i)));
  if (i < n) {
    const __m256i m = run_mask(n - i);
    store_first(d + i, _mm256_add_ps(_mm256_maskload_ps(d + i, m), _mm256_maskload_ps(s + i, m)),
                n - i);
  }
}

// Whole rows: one (masked) vector per row when a run fits in 8 floats, the mask loaded once.
#define IMGSIM_CONV_HAS_ROWS 1
inline void copy_rows(float* __restrict d, int64_t ldd, const float* __restrict s, int64_t lds,
                      int64_t rows, int64_t n) {
  if (n > 8) {
    for (int64_t i = 0; i < rows; ++i) copy_run(d + i * ldd, s + i * lds, n);
    return;
  }
  const __m256i m = run_mask(n);
  for (int64_t i = 0; i < rows; ++i)
    store_first(d + i * ldd, _mm256_maskload_ps(s + i * lds, m), n);
}
inline void add_rows(float* __restrict d, int64_t ldd, const float* __restrict s, int64_t lds,
                     int64_t rows, int64_t n) {
  if (n > 8) {
    for (int64_t i = 0; i < rows; ++i) add_run(d + i * ldd, s + i * lds, n);
    return;
  }
  const __m256i m = run_mask(n);
  for (int64_t i = 0; i < rows; ++i)
    store_first(
        d + i * ldd,
        _mm256_add_ps(_mm256_maskload_ps(d + i * ldd, m), _mm256_maskload_ps(s + i * lds, m)), n);
}

// x[u] += d[s*ld + u - s] for s < S, where 0 <= u - s < n: 8 floats of x at a time, one masked
// load per s and a blend that keeps the lanes outside the run (nothing is added there, not even
// +0.0), one store.
#define IMGSIM_CONV_HAS_SHIFTED 1
inline void add_shifted(float* x, const float* d, int64_t ld, int64_t S, int64_t n) {
  const int64_t total = n + S - 1;
  const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  for (int64_t u0 = 0; u0 < total; u0 += 8) {
    const int64_t lanes = total - u0 < 8 ? total - u0 : 8;
    const __m256i mx = run_mask(lanes);
    __m256 acc = _mm256_maskload_ps(x + u0, mx);
    for (int64_t s = 0; s < S; ++s) {
      // Lanes l with lo <= l < hi, i.e. 0 <= u0 + l - s < n.
      const int64_t lo = s - u0 > 0 ? s - u0 : 0;
      const int64_t hi = n + s - u0 < lanes ? n + s - u0 : lanes;
      if (hi <= lo) continue;
      const __m256i m =
          _mm256_andnot_si256(_mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(lo)), iota),
                              _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(hi)), iota));
      const __m256 v = _mm256_maskload_ps(d + s * ld + u0 - s, m);
      acc = _mm256_blendv_ps(acc, _mm256_add_ps(acc, v), _mm256_castsi256_ps(m));
    }
    store_first(x + u0, acc, lanes);
  }
}

}  // namespace

// gemm_nt_small: 3 x 3 results, 9 ymm accumulators plus 4 for operands, of 16 registers.
#define IMGSIM_NT_LANES 8
#define IMGSIM_NT_BLOCK_M 3
#define IMGSIM_NT_BLOCK_N 3
#include "kernels/conv_lowering.inc"
#include "kernels/winograd.inc"

bool conv_compiled() {
  return true;
}

#else  // this build cannot compile AVX2 code; the registry never selects it

void im2col_tile(const Im2colGeometry& g, const float* x, int64_t j0, int64_t j1, float* col,
                 int64_t ldc) {
  ref::im2col_tile(g, x, j0, j1, col, ldc);
}
void col2im_tile_add(const Im2colGeometry& g, const float* col, int64_t ldc, int64_t j0, int64_t j1,
                     float* x) {
  ref::col2im_tile_add(g, col, ldc, j0, j1, x);
}
void wino_input(const WinoGeometry& g, const float* x, const float* y, int act, float slope,
                int64_t t0, int64_t t1, float* v, int64_t ldv) {
  ref::wino_input(g, x, y, act, slope, t0, t1, v, ldv);
}
void wino_output(const WinoGeometry& g, const float* m, int64_t ldm, int64_t t0, int64_t t1,
                 const float* bias, int act, float slope, bool accumulate, float* out) {
  ref::wino_output(g, m, ldm, t0, t1, bias, act, slope, accumulate, out);
}
void wino_grad(const WinoGeometry& g, const float* dy, const float* y, int act, float slope,
               int64_t t0, int64_t t1, float* z, int64_t ldz) {
  ref::wino_grad(g, dy, y, act, slope, t0, t1, z, ldz);
}
void wino_output_pool(const WinoGeometry& g, const float* m, int64_t ldm, int64_t t0, int64_t t1,
                      const float* bias, int act, float slope, float* yp, int32_t* arg) {
  ref::wino_output_pool(g, m, ldm, t0, t1, bias, act, slope, yp, arg);
}
void gemm_nt_small(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B,
                   int64_t ldb, float beta, float* C, int64_t ldc) {
  ref::sgemm(false, true, M, N, K, 1.0f, A, lda, B, ldb, beta, C, ldc);
}
bool conv_compiled() {
  return false;
}

#endif

}  // namespace imgsim::kernels::avx2
