// AVX2 direct 3x3 convolution fused with 2x2 / stride 2 max pooling, for a first layer
// (kernels.hpp, conv3x3_pool): the AVX-512 kernel's scheme (avx512/direct_avx512.cpp) on 8 lanes.
//
// Per pooled row, the four input rows of each channel are split into even and odd columns
// (scratch), so that 8 pooling windows' conv outputs at even columns 2j read e[j], o[j], e[j + 1]
// for s = 0, 1, 2, and those at odd columns 2j + 1 read o[j], e[j + 1], o[j + 1]: four vectors per
// input row serve both. One filter at a time keeps its 2 rows x 2 parities of 8 outputs in 4
// accumulators; each input vector is loaded once and multiplied by broadcast weights (c, r, s in
// order for every accumulator, from 0: the im2col GEMM's sums). The window's four values then get
// bias and activation and are pooled in registers (first maximum in window order, strict greater
// than, as maxpool2x2), and only the pooled value and its argmax are stored; a last block of
// fewer than 8 windows is stored through a local (masked stores are slow on AMD). The next row's
// input lines are prefetched while a row is computed, and its output lines for writing.
//
// Two filters at a time, as on AVX-512 (8 accumulators, 4 input vectors and 3 broadcasts: 15 of
// the 16 ymm registers), GCC spilled accumulators and the kernel ran slower (bench_kernels
// sparse/avx2/conv3x3_pool/seed_conv1 on Zen 3: 42-44 GFLOP/s against 40-48 with one filter;
// weights pre-broadcast as memory operands: 41). With 4 accumulators the 27-deep chains of
// multiply-adds bound the kernel at about half the FMA peak; it still beats the im2col path,
// whose column matrix and output go through memory (bench_layers, one thread: seed conv1 + pool1
// forward 55.7 -> 51.3 ms, Fashion-MNIST's 1.13 -> 0.77 ms).
#include <cstdint>
#include <type_traits>

#include "kernels/kernels.hpp"

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define IMGSIM_HAVE_AVX2_DIRECT 1
#endif

namespace imgsim::kernels::avx2 {

#ifdef IMGSIM_HAVE_AVX2_DIRECT

namespace {

// Lanes [0, n) set, n clamped to [0, 8].
inline __m256i lanes(int64_t n) {
  alignas(32) static const int32_t kOnesThenZeros[16] = {-1, -1, -1, -1, -1, -1, -1, -1,
                                                         0,  0,  0,  0,  0,  0,  0,  0};
  const int64_t k = n < 0 ? 0 : (n > 8 ? 8 : n);
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kOnesThenZeros + 8 - k));
}

template <int Act>
inline __m256 activate(__m256 z, __m256 slope) {
  if constexpr (Act == 1) {
    (void)slope;
    return _mm256_max_ps(z, _mm256_setzero_ps());  // z > 0 ? z : 0 (NaN gives 0)
  } else if constexpr (Act == 2) {
    return _mm256_blendv_ps(_mm256_mul_ps(slope, z), z,
                            _mm256_cmp_ps(z, _mm256_setzero_ps(), _CMP_GT_OQ));
  } else {
    (void)slope;
    return z;
  }
}

// One input row's four vectors into conv row YO of the pair with filter row R, KN filters.
template <int KN, int YO, int R>
__attribute__((always_inline)) inline void fma_row(__m256 v0, __m256 v1, __m256 v2, __m256 v3,
                                                   const float* wc, int64_t wstride,
                                                   __m256 (&acc)[KN][2][2]) {
#pragma GCC unroll 2
  for (int kk = 0; kk < KN; ++kk) {
    const float* wk = wc + kk * wstride + R * 3;
    const __m256 w0 = _mm256_broadcast_ss(wk), w1 = _mm256_broadcast_ss(wk + 1),
                 w2 = _mm256_broadcast_ss(wk + 2);
    acc[kk][YO][0] = _mm256_fmadd_ps(w0, v0, acc[kk][YO][0]);
    acc[kk][YO][1] = _mm256_fmadd_ps(w0, v1, acc[kk][YO][1]);
    acc[kk][YO][0] = _mm256_fmadd_ps(w1, v1, acc[kk][YO][0]);
    acc[kk][YO][1] = _mm256_fmadd_ps(w1, v2, acc[kk][YO][1]);
    acc[kk][YO][0] = _mm256_fmadd_ps(w2, v2, acc[kk][YO][0]);
    acc[kk][YO][1] = _mm256_fmadd_ps(w2, v3, acc[kk][YO][1]);
  }
}

// Input row RIN (of the 4) of a channel into the accumulators of the conv rows it reaches: row 0
// of the pair with filter row RIN, row 1 with filter row RIN - 1.
template <int KN, int RIN>
__attribute__((always_inline)) inline void row_fma(const float* er, const float* orow,
                                                   const float* wc, int64_t wstride,
                                                   __m256 (&acc)[KN][2][2]) {
  const __m256 v0 = _mm256_loadu_ps(er), v1 = _mm256_loadu_ps(orow);
  const __m256 v2 = _mm256_loadu_ps(er + 1), v3 = _mm256_loadu_ps(orow + 1);
  if constexpr (RIN <= 2) fma_row<KN, 0, RIN>(v0, v1, v2, v3, wc, wstride, acc);
  if constexpr (RIN >= 1) fma_row<KN, 1, RIN - 1>(v0, v1, v2, v3, wc, wstride, acc);
}

// KN filters from k0, 8 windows from column j0 of pooled row i, pooled; n = windows to store
// (at most 8). e / o: even and odd columns of the 4 input rows 2i .. 2i + 3 of each channel, row
// (c, r) at e + (c 4 + r) L.
template <int KN, int Act>
void block(const float* e, const float* o, int64_t L, int64_t C, int64_t j0, const float* w,
           int64_t k0, const float* bias, __m256 slope, int64_t i, int64_t Q, int64_t qp, int64_t n,
           float* y, int32_t* arg, int64_t ldy) {
  __m256 acc[KN][2][2];
#pragma GCC unroll 2
  for (int kk = 0; kk < KN; ++kk)
#pragma GCC unroll 2
    for (int yo = 0; yo < 2; ++yo) acc[kk][yo][0] = acc[kk][yo][1] = _mm256_setzero_ps();
  for (int64_t c = 0; c < C; ++c) {
    const float* ec = e + c * 4 * L + j0;
    const float* oc = o + c * 4 * L + j0;
    const float* wc = w + (k0 * C + c) * 9;
    row_fma<KN, 0>(ec, oc, wc, C * 9, acc);
    row_fma<KN, 1>(ec + L, oc + L, wc, C * 9, acc);
    row_fma<KN, 2>(ec + 2 * L, oc + 2 * L, wc, C * 9, acc);
    row_fma<KN, 3>(ec + 3 * L, oc + 3 * L, wc, C * 9, acc);
  }
  // Window (0, 0), (0, 1), (1, 0), (1, 1): conv index (2i + yo) Q + 2j + par.
  const __m256i base = _mm256_add_epi32(_mm256_set1_epi32(static_cast<int32_t>(2 * i * Q + 2 * j0)),
                                        _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14));
  const __m256 q1 = _mm256_castsi256_ps(_mm256_set1_epi32(1));
  const __m256 qq = _mm256_castsi256_ps(_mm256_set1_epi32(static_cast<int32_t>(Q)));
  const __m256 qq1 = _mm256_castsi256_ps(_mm256_set1_epi32(static_cast<int32_t>(Q + 1)));
#pragma GCC unroll 2
  for (int kk = 0; kk < KN; ++kk) {
    const __m256 b = _mm256_set1_ps(bias ? bias[k0 + kk] : 0.0f);
    const __m256 va = activate<Act>(bias ? _mm256_add_ps(acc[kk][0][0], b) : acc[kk][0][0], slope);
    const __m256 vb = activate<Act>(bias ? _mm256_add_ps(acc[kk][0][1], b) : acc[kk][0][1], slope);
    const __m256 vc = activate<Act>(bias ? _mm256_add_ps(acc[kk][1][0], b) : acc[kk][1][0], slope);
    const __m256 vd = activate<Act>(bias ? _mm256_add_ps(acc[kk][1][1], b) : acc[kk][1][1], slope);
    // max_ps(a, b) is a > b ? a : b: the later value only if strictly greater, NaN never.
    __m256 gt = _mm256_cmp_ps(vb, va, _CMP_GT_OQ);
    __m256 best = _mm256_max_ps(vb, va);
    __m256 off = _mm256_and_ps(gt, q1);
    gt = _mm256_cmp_ps(vc, best, _CMP_GT_OQ);
    best = _mm256_max_ps(vc, best);
    off = _mm256_blendv_ps(off, qq, gt);
    gt = _mm256_cmp_ps(vd, best, _CMP_GT_OQ);
    best = _mm256_max_ps(vd, best);
    off = _mm256_blendv_ps(off, qq1, gt);
    const __m256i a = _mm256_add_epi32(base, _mm256_castps_si256(off));
    const int64_t at = (k0 + kk) * ldy + i * qp + j0;
    if (n == 8) {
      _mm256_storeu_ps(y + at, best);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(arg + at), a);
    } else {
      alignas(32) float tv[8];
      alignas(32) int32_t ta[8];
      _mm256_store_ps(tv, best);
      _mm256_store_si256(reinterpret_cast<__m256i*>(ta), a);
      for (int64_t l = 0; l < n; ++l) {
        y[at + l] = tv[l];
        arg[at + l] = ta[l];
      }
    }
  }
}

// The four input rows 2i .. 2i + 3 of each channel split by column parity into e and o (row
// (c, r) at + (4c + r) L, L floats, a multiple of 8, zero past W).
void split_rows(const float* x, int64_t C, int64_t H, int64_t W, int64_t i, int64_t L, float* e,
                float* o) {
  for (int64_t c = 0; c < C; ++c)
    for (int64_t r = 0; r < 4; ++r) {
      const float* src = x + (c * H + 2 * i + r) * W;
      float* er = e + (c * 4 + r) * L;
      float* orow = o + (c * 4 + r) * L;
      for (int64_t j = 0; j < L; j += 8) {  // 16 input floats, masked past W, per step
        const int64_t left = W - 2 * j;
        const __m256 a =
            left >= 8 ? _mm256_loadu_ps(src + 2 * j) : _mm256_maskload_ps(src + 2 * j, lanes(left));
        const __m256 b = left >= 16 ? _mm256_loadu_ps(src + 2 * j + 8)
                                    : _mm256_maskload_ps(src + 2 * j + 8, lanes(left - 8));
        // (a0 a2 b0 b2 | a4 a6 b4 b6), then the middle quarters swapped: a0 a2 a4 a6 b0 b2 b4 b6.
        const __m256 ev = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0));
        const __m256 od = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1));
        _mm256_storeu_ps(er + j, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(ev),
                                                                        _MM_SHUFFLE(3, 1, 2, 0))));
        _mm256_storeu_ps(orow + j, _mm256_castpd_ps(_mm256_permute4x64_pd(
                                       _mm256_castps_pd(od), _MM_SHUFFLE(3, 1, 2, 0))));
      }
    }
}

#include "kernels/line_prefetch.inc"
int64_t bytes_[4] = {};
int n_ = 0, r_ = 0;
int64_t at_ = 0;
};

template <int Act>
void rows(const float* x, int64_t C, int64_t H, int64_t W, const float* w, const float* bias,
          float slope_f, int64_t K, int64_t i0, int64_t i1, float* y, int32_t* arg, int64_t ldy,
          float* scratch) {
  // L as the AVX-512 kernel's (conv3x3_pool_scratch): at least one vector past the last block.
  const int64_t Q = W - 2, qp = Q / 2, L = (qp + 15) / 16 * 16 + 16;
  float* e = scratch;
  float* o = scratch + C * 4 * L;
  const __m256 slope = _mm256_set1_ps(slope_f);
  for (int64_t i = i0; i < i1; ++i) {
    split_rows(x, C, H, W, i, L, e, o);
    LinePrefetch pfx;
    if (i + 1 < i1) pfx.add_rows(x, C, H, W, 2 * i + 4, 2 * i + 6);
    const bool ahead = i + 1 < i1;
    for (int64_t j0 = 0; j0 < qp; j0 += 8) {
      const int64_t n = qp - j0 < 8 ? qp - j0 : 8;
      for (int64_t k0 = 0; k0 < K; ++k0) {
        block<1, Act>(e, o, L, C, j0, w, k0, bias, slope, i, Q, qp, n, y, arg, ldy);
        if (k0 % 2) pfx.step();
        if (ahead) {  // what the next row writes here, for writing
          const int64_t at = k0 * ldy + (i + 1) * qp + j0;
          _mm_prefetch(reinterpret_cast<const char*>(y + at), _MM_HINT_ET0);
          _mm_prefetch(reinterpret_cast<const char*>(arg + at), _MM_HINT_ET0);
        }
      }
    }
  }
}

}  // namespace

void conv3x3_pool(const float* x, int64_t C, int64_t H, int64_t W, const float* w,
                  const float* bias, int act, float slope, int64_t K, int64_t i0, int64_t i1,
                  float* y, int32_t* arg, int64_t ldy, float* scratch) {
  if (act == 1)
    rows<1>(x, C, H, W, w, bias, slope, K, i0, i1, y, arg, ldy, scratch);
  else if (act == 2)
    rows<2>(x, C, H, W, w, bias, slope, K, i0, i1, y, arg, ldy, scratch);
  else
    rows<0>(x, C, H, W, w, bias, slope, K, i0, i1, y, arg, ldy, scratch);
}

#else  // this build cannot compile AVX2 code; the registry never selects it

void conv3x3_pool(const float* x, int64_t C, int64_t H, int64_t W, const float* w,
                  const float* bias, int act, float slope, int64_t K, int64_t i0, int64_t i1,
                  float* y, int32_t* arg, int64_t ldy, float* scratch) {
  ref::conv3x3_pool(x, C, H, W, w, bias, act, slope, K, i0, i1, y, arg, ldy, scratch);
}

#endif

}  // namespace imgsim::kernels::avx2
