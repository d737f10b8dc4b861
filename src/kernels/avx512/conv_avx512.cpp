// Batch im2col / col2im tiles (conv_lowering.inc) and Winograd transforms (winograd.inc) for
// AVX-512. The runs along a row of the image are short on small images (11 to 26 floats on
// Fashion-MNIST): 16 floats at a time and one masked load / store for the tail, instead of a
// scalar remainder loop.
#include <cstdint>
#include <type_traits>

#include "kernels/kernels.hpp"

#if (defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512DQ__) && \
     defined(__AVX512VL__)) ||                                                 \
    defined(IMGSIM_EMULATE_AVX512)  // tests: avx512/emulate.hpp
#include <immintrin.h>
#define IMGSIM_HAVE_AVX512_CONV 1
#endif

namespace imgsim::kernels::avx512 {

#ifdef IMGSIM_HAVE_AVX512_CONV

namespace {

// Lanes [0, n) set, n in [0, 16).
inline __mmask16 run_mask(int64_t n) {
  return static_cast<__mmask16>((1u << n) - 1u);
}

#define IMGSIM_CONV_HAS_RUNS 1
inline void copy_run(float* __restrict d, const float* __restrict s, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(d + i, _mm512_loadu_ps(s + i));
  if (i < n) {
    const __mmask16 m = run_mask(n - i);
    _mm512_mask_storeu_ps(d + i, m, _mm512_maskz_loadu_ps(m, s + i));
  }
}
inline void zero_run(float* d, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(d + i, _mm512_setzero_ps());
  if (i < n) _mm512_mask_storeu_ps(d + i, run_mask(n - i), _mm512_setzero_ps());
}
inline void add_run(float* __restrict d, const float* __restrict s, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm512_storeu_ps(d + i, _mm512_add_ps(_mm512_loadu_ps(d + i), _mm512_loadu_ps(s + i)));
  if (i < n) {
    const __mmask16 m = run_mask(n - i);
    _mm512_mask_storeu_ps(
        d + i, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, d + i), _mm512_maskz_loadu_ps(m, s + i)));
  }
}

// Whole rows: one (masked) vector per row when a run fits in 16 floats, the mask computed once.
#define IMGSIM_CONV_HAS_ROWS 1
inline void copy_rows(float* __restrict d, int64_t ldd, const float* __restrict s, int64_t lds,
                      int64_t rows, int64_t n) {
  if (n > 16) {
    for (int64_t i = 0; i < rows; ++i) copy_run(d + i * ldd, s + i * lds, n);
    return;
  }
  const __mmask16 m = n == 16 ? static_cast<__mmask16>(0xFFFF) : run_mask(n);
  for (int64_t i = 0; i < rows; ++i)
    _mm512_mask_storeu_ps(d + i * ldd, m, _mm512_maskz_loadu_ps(m, s + i * lds));
}
inline void add_rows(float* __restrict d, int64_t ldd, const float* __restrict s, int64_t lds,
                     int64_t rows, int64_t n) {
  if (n > 16) {
    for (int64_t i = 0; i < rows; ++i) add_run(d + i * ldd, s + i * lds, n);
    return;
  }
  const __mmask16 m = n == 16 ? static_cast<__mmask16>(0xFFFF) : run_mask(n);
  for (int64_t i = 0; i < rows; ++i)
    _mm512_mask_storeu_ps(d + i * ldd, m,
                          _mm512_add_ps(_mm512_maskz_loadu_ps(m, d + i * ldd),
                                        _mm512_maskz_loadu_ps(m, s + i * lds)));
}

// x[u] += d[s*ld + u - s] for s < S, where 0 <= u - s < n: 16 floats of x at a time, one
// masked load and masked add per s (lanes outside a run keep their value, so nothing is added
// there, not even +0.0), one store.
#define IMGSIM_CONV_HAS_SHIFTED 1
inline void add_shifted(float* x, const float* d, int64_t ld, int64_t S, int64_t n) {
  const int64_t total = n + S - 1;
  for (int64_t u0 = 0; u0 < total; u0 += 16) {
    const int64_t lanes = total - u0 < 16 ? total - u0 : 16;
    const __mmask16 mx = lanes == 16 ? static_cast<__mmask16>(0xFFFF) : run_mask(lanes);
    __m512 acc = _mm512_maskz_loadu_ps(mx, x + u0);
    for (int64_t s = 0; s < S; ++s) {
      // Lanes l with 0 <= u0 + l - s < n.
      const int64_t lo = s - u0 > 0 ? s - u0 : 0;
      const int64_t hi = n + s - u0 < lanes ? n + s - u0 : lanes;
      if (hi <= lo) continue;
      const auto m =
          static_cast<__mmask16>((hi == 16 ? 0xFFFFu : (1u << hi) - 1u) & ~((1u << lo) - 1u));
      acc = _mm512_mask_add_ps(acc, m, acc, _mm512_maskz_loadu_ps(m, d + s * ld + u0 - s));
    }
    _mm512_mask_storeu_ps(x + u0, mx, acc);
  }
}

}  // namespace

// gemm_nt_small: 4 x 4 results, 16 zmm accumulators plus 5 for operands, of 32 registers.
#define IMGSIM_NT_LANES 16
#define IMGSIM_NT_BLOCK_M 4
#define IMGSIM_NT_BLOCK_N 4
#include "kernels/conv_lowering.inc"
#include "kernels/winograd.inc"

bool conv_compiled() {
  return true;
}

#else  // this build cannot compile AVX-512 code; the registry never selects it

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

}  // namespace imgsim::kernels::avx512
