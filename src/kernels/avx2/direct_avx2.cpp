// AVX2 direct 3x3 convolution fused with 2x2 / stride 2 max pooling, for a first layer
// (kernels.hpp, conv3x3_pool), and its weight gradient (conv3x3_pool_grad): the AVX-512 kernels'
// schemes (avx512/direct_avx512.cpp) on 8 lanes.
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
//
// Gradient: each window's g lands on its argmax, so dW gets one product per window, g times the
// 3x3 patch there, selected per lane with blends (grad_block); the even and odd blocks of 8
// windows are separate passes so that window j still goes to lane j % 16 of the caller's sums,
// as on AVX-512. Against the im2col path (transposed columns gathered at the argmaxes), one
// thread: seed conv1 + pool1 backward 58.3 -> 55.5 ms, Fashion-MNIST's 0.86 -> 0.66 ms.
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

#include "kernels/direct_common.inc"

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

// The gradients of 8 windows from column j0 of pooled row i of one filter (dy, y, arg at its
// plane; n of them inside the row): g = dy act'(y) (0 past n), and as lane masks whether the
// argmax lies in the window's right column and in its lower row, stored as three vectors at gd.
// Returns g.
template <int Act>
__attribute__((always_inline)) inline __m256 window_grads(const float* dy, const float* y,
                                                          const int32_t* arg, int64_t i, int64_t j0,
                                                          int64_t n, int64_t qp, int64_t Q,
                                                          __m256 slope, float* gd) {
  const __m256i m = lanes(n);
  const int64_t at = i * qp + j0;
  __m256 g = _mm256_maskload_ps(dy + at, m);
  if constexpr (Act != 0) {
    const __m256 pos =
        _mm256_cmp_ps(_mm256_maskload_ps(y + at, m), _mm256_setzero_ps(), _CMP_GT_OQ);
    g = Act == 1 ? _mm256_and_ps(pos, g) : _mm256_blendv_ps(_mm256_mul_ps(slope, g), g, pos);
  } else {
    (void)y;
    (void)slope;
  }
  // code = 0, 1, Q or Q + 1: the place (0, 0), (0, 1), (1, 0) or (1, 1)
  const __m256i first =
      _mm256_add_epi32(_mm256_set1_epi32(static_cast<int32_t>(2 * i * Q + 2 * j0)),
                       _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14));
  const __m256i code = _mm256_sub_epi32(_mm256_maskload_epi32(arg + at, m), first);
  const auto q = static_cast<int32_t>(Q);
  const __m256i down = _mm256_cmpgt_epi32(code, _mm256_set1_epi32(q - 1));
  const __m256i right = _mm256_or_si256(_mm256_cmpeq_epi32(code, _mm256_set1_epi32(1)),
                                        _mm256_cmpeq_epi32(code, _mm256_set1_epi32(q + 1)));
  _mm256_storeu_ps(gd, g);
  _mm256_storeu_ps(gd + 8, _mm256_castsi256_ps(right));
  _mm256_storeu_ps(gd + 16, _mm256_castsi256_ps(down));
  return g;
}

// One channel's 9 sums a[3r + s] += g x[2i + dy + r][2j + dx + s] for the 8 windows of a block at
// the argmax's place (dy, dx): per patch row r, the input rows r and r + 1 of the pooled row (e
// and o: even and odd columns, row rin at + rin L) blended by dy into the patch row's columns
// 2j + 0..3, and two neighbouring columns blended by dx into column s: 7 blends and 3
// multiply-adds per patch row, one product per window as the reference, with no more than 16
// vector registers live (9 sums, g, the two masks, two columns and a load). (Multiplying every
// input vector by each place's masked g instead, 36 multiply-adds and no blends, ran no faster:
// 1.58 against 1.56 ms per seed image on Zen 3.)
__attribute__((always_inline)) inline void grad_block(const float* er, const float* orow, int64_t L,
                                                      const float* gd, __m256 (&a)[9]) {
  const __m256 g = _mm256_loadu_ps(gd), right = _mm256_loadu_ps(gd + 8),
               down = _mm256_loadu_ps(gd + 16);
#pragma GCC unroll 3
  for (int r = 0; r < 3; ++r) {
    const float* e0 = er + r * L;
    const float* o0 = orow + r * L;
    const __m256 d0 = _mm256_blendv_ps(_mm256_loadu_ps(e0), _mm256_loadu_ps(e0 + L), down);
    const __m256 d1 = _mm256_blendv_ps(_mm256_loadu_ps(o0), _mm256_loadu_ps(o0 + L), down);
    a[3 * r] = _mm256_fmadd_ps(g, _mm256_blendv_ps(d0, d1, right), a[3 * r]);
    const __m256 d2 = _mm256_blendv_ps(_mm256_loadu_ps(e0 + 1), _mm256_loadu_ps(e0 + L + 1), down);
    a[3 * r + 1] = _mm256_fmadd_ps(g, _mm256_blendv_ps(d1, d2, right), a[3 * r + 1]);
    const __m256 d3 = _mm256_blendv_ps(_mm256_loadu_ps(o0 + 1), _mm256_loadu_ps(o0 + L + 1), down);
    a[3 * r + 2] = _mm256_fmadd_ps(g, _mm256_blendv_ps(d2, d3, right), a[3 * r + 2]);
  }
}

template <int Act>
void grad_rows(const float* x, int64_t C, int64_t H, int64_t W, const float* dy, const float* y,
               float slope_f, const int32_t* arg, int64_t ldg, int64_t K, int64_t i0, int64_t i1,
               float* acc, float* scratch) {
  const int64_t Q = W - 2, qp = Q / 2, L = (qp + 15) / 16 * 16 + 16, nw = 9 * C + 1;
  const int64_t nb = (qp + 7) / 8, rows4 = C * 4 * L;
  // Bands of pooled rows (conv3x3_grad_band, as the AVX-512 kernel): the band's input rows split
  // by column parity, then filter by filter: its window gradients and argmax places for the band
  // (gd, 3 vectors per 8 windows, in L1), then channel by channel with the channel's 9 sums in
  // registers over the band. A block of 8 windows at column 8 jb feeds lanes 8 (jb % 2) .. + 7 of
  // the caller's 16 (window j goes to lane j % 16), so the even blocks and the odd ones are two
  // passes, each lane's products in the reference's order (pooled row, window).
  const int64_t band = conv3x3_grad_band(C, W, i1 - i0);
  float* gd = scratch + band * 2 * rows4;
  const __m256 slope = _mm256_set1_ps(slope_f);
  for (int64_t b0 = i0; b0 < i1; b0 += band) {
    const int64_t b1 = b0 + band < i1 ? b0 + band : i1;
    for (int64_t i = b0; i < b1; ++i) {
      float* e = scratch + (i - b0) * 2 * rows4;
      split_rows(x, C, H, W, i, L, e, e + rows4);
    }
    for (int64_t k = 0; k < K; ++k) {
      float* ab = acc + (k * nw + 9 * C) * 16;
      __m256 bsum[2] = {_mm256_loadu_ps(ab), _mm256_loadu_ps(ab + 8)};
      for (int64_t i = b0; i < b1; ++i)
        for (int64_t jb = 0; jb < nb; ++jb) {
          const int64_t j0 = 8 * jb, n = qp - j0 < 8 ? qp - j0 : 8;
          const __m256 g = window_grads<Act>(dy + k * ldg, y + k * ldg, arg + k * ldg, i, j0, n, qp,
                                             Q, slope, gd + ((i - b0) * nb + jb) * 24);
          bsum[jb & 1] = _mm256_add_ps(bsum[jb & 1], g);
        }
      _mm256_storeu_ps(ab, bsum[0]);
      _mm256_storeu_ps(ab + 8, bsum[1]);
      for (int64_t c = 0; c < C; ++c)
        for (int64_t h = 0; h < 2; ++h) {
          float* ak = acc + (k * nw + 9 * c) * 16 + 8 * h;
          __m256 a[9];
#pragma GCC unroll 9
          for (int t = 0; t < 9; ++t) a[t] = _mm256_loadu_ps(ak + 16 * t);
          for (int64_t i = b0; i < b1; ++i) {
            const float* er = scratch + (i - b0) * 2 * rows4 + c * 4 * L;
            const float* gi = gd + (i - b0) * nb * 24;
            for (int64_t jb = h; jb < nb; jb += 2)
              grad_block(er + 8 * jb, er + rows4 + 8 * jb, L, gi + jb * 24, a);
          }
#pragma GCC unroll 9
          for (int t = 0; t < 9; ++t) _mm256_storeu_ps(ak + 16 * t, a[t]);
        }
    }
  }
}

}  // namespace

void conv3x3_pool_grad(const float* x, int64_t C, int64_t H, int64_t W, const float* dy,
                       const float* y, int act, float slope, const int32_t* arg, int64_t ldg,
                       int64_t K, int64_t i0, int64_t i1, float* acc, float* scratch) {
  with_act(act, [&](auto a) {
    grad_rows<decltype(a)::value>(x, C, H, W, dy, y, slope, arg, ldg, K, i0, i1, acc, scratch);
  });
}

void conv3x3_pool(const float* x, int64_t C, int64_t H, int64_t W, const float* w,
                  const float* bias, int act, float slope, int64_t K, int64_t i0, int64_t i1,
                  float* y, int32_t* arg, int64_t ldy, float* scratch) {
  with_act(act, [&](auto a) {
    rows<decltype(a)::value>(x, C, H, W, w, bias, slope, K, i0, i1, y, arg, ldy, scratch);
  });
}

#else  // this build cannot compile AVX2 code; the registry never selects it

void conv3x3_pool_grad(const float* x, int64_t C, int64_t H, int64_t W, const float* dy,
                       const float* y, int act, float slope, const int32_t* arg, int64_t ldg,
                       int64_t K, int64_t i0, int64_t i1, float* acc, float* scratch) {
  ref::conv3x3_pool_grad(x, C, H, W, dy, y, act, slope, arg, ldg, K, i0, i1, acc, scratch);
}

void conv3x3_pool(const float* x, int64_t C, int64_t H, int64_t W, const float* w,
                  const float* bias, int act, float slope, int64_t K, int64_t i0, int64_t i1,
                  float* y, int32_t* arg, int64_t ldy, float* scratch) {
  ref::conv3x3_pool(x, C, H, W, w, bias, act, slope, K, i0, i1, y, arg, ldy, scratch);
}

#endif

}  // namespace imgsim::kernels::avx2
