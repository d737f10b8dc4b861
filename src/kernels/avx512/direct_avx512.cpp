// AVX-512 direct 3x3 convolution fused with 2x2 / stride 2 max pooling, for a first layer
// (kernels.hpp, conv3x3_pool).
//
// Per pooled row, the four input rows of each channel are split into even and odd columns
// (scratch), so that 16 pooling windows' conv outputs at even columns 2j read e[j], o[j], e[j + 1]
// for s = 0, 1, 2, and those at odd columns 2j + 1 read o[j], e[j + 1], o[j + 1]: four vectors per
// input row serve both. Four filters at a time keep their 2 rows x 2 parities of 16 outputs in 16
// accumulators; each input vector is loaded once and multiplied by broadcast weights (c, r, s in
// order for every accumulator, from 0: the im2col GEMM's sums). The window's four values then get
// bias and activation and are pooled in registers (first maximum in window order, strict greater
// than, as maxpool2x2), and only the pooled value and its argmax are stored.
#include <cstdint>

#include "kernels/kernels.hpp"

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512DQ__) && defined(__AVX512VL__)
#include <immintrin.h>
#define IMGSIM_HAVE_AVX512_DIRECT 1
#endif

namespace imgsim::kernels::avx512 {

#ifdef IMGSIM_HAVE_AVX512_DIRECT

namespace {

// Lanes [0, n) set, n clamped to [0, 16].
inline __mmask16 lanes(int64_t n) {
  return n >= 16 ? static_cast<__mmask16>(0xFFFF)
                 : (n <= 0 ? static_cast<__mmask16>(0) : static_cast<__mmask16>((1u << n) - 1u));
}

template <int Act>
inline __m512 activate(__m512 z, __m512 slope) {
  if constexpr (Act == 1) {
    return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(z, _mm512_setzero_ps(), _CMP_GT_OQ), z);
  } else if constexpr (Act == 2) {
    const __mmask16 pos = _mm512_cmp_ps_mask(z, _mm512_setzero_ps(), _CMP_GT_OQ);
    return _mm512_mask_blend_ps(pos, _mm512_mul_ps(slope, z), z);
  } else {
    (void)slope;
    return z;
  }
}

// One input row's four vectors into conv row YO of the pair with filter row R, KN filters.
template <int KN, int YO, int R>
__attribute__((always_inline)) inline void fma_row(__m512 v0, __m512 v1, __m512 v2, __m512 v3,
                                                   const float* wc, int64_t wstride,
                                                   __m512 (&acc)[KN][2][2]) {
#pragma GCC unroll 4
  for (int kk = 0; kk < KN; ++kk) {
    const float* wk = wc + kk * wstride + R * 3;
    const __m512 w0 = _mm512_set1_ps(wk[0]), w1 = _mm512_set1_ps(wk[1]), w2 = _mm512_set1_ps(wk[2]);
    acc[kk][YO][0] = _mm512_fmadd_ps(w0, v0, acc[kk][YO][0]);
    acc[kk][YO][1] = _mm512_fmadd_ps(w0, v1, acc[kk][YO][1]);
    acc[kk][YO][0] = _mm512_fmadd_ps(w1, v1, acc[kk][YO][0]);
    acc[kk][YO][1] = _mm512_fmadd_ps(w1, v2, acc[kk][YO][1]);
    acc[kk][YO][0] = _mm512_fmadd_ps(w2, v2, acc[kk][YO][0]);
    acc[kk][YO][1] = _mm512_fmadd_ps(w2, v3, acc[kk][YO][1]);
  }
}

// Input row RIN (of the 4) of a channel into the accumulators of the conv rows it reaches: row 0
// of the pair with filter row RIN, row 1 with filter row RIN - 1.
template <int KN, int RIN>
__attribute__((always_inline)) inline void row_fma(const float* er, const float* orow,
                                                   const float* wc, int64_t wstride,
                                                   __m512 (&acc)[KN][2][2]) {
  const __m512 v0 = _mm512_loadu_ps(er), v1 = _mm512_loadu_ps(orow);
  const __m512 v2 = _mm512_loadu_ps(er + 1), v3 = _mm512_loadu_ps(orow + 1);
  if constexpr (RIN <= 2) fma_row<KN, 0, RIN>(v0, v1, v2, v3, wc, wstride, acc);
  if constexpr (RIN >= 1) fma_row<KN, 1, RIN - 1>(v0, v1, v2, v3, wc, wstride, acc);
}

// KN filters from k0, 16 windows from column j0 of pooled row i; e / o: even and odd columns of
// the 4 input rows of each channel, row (c, r) at e + (c 4 + r) L.
template <int KN, int Act>
void block(const float* e, const float* o, int64_t L, int64_t C, int64_t j0, const float* w,
           int64_t k0, const float* bias, __m512 slope, int64_t i, int64_t Q, int64_t qp,
           __mmask16 m, float* y, int32_t* arg, int64_t ldy) {
  __m512 acc[KN][2][2];
#pragma GCC unroll 4
  for (int kk = 0; kk < KN; ++kk)
#pragma GCC unroll 2
    for (int yo = 0; yo < 2; ++yo) acc[kk][yo][0] = acc[kk][yo][1] = _mm512_setzero_ps();
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
  const __m512i two_j = _mm512_add_epi32(
      _mm512_set1_epi32(static_cast<int32_t>(2 * j0)),
      _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30));
  const __m512i base = _mm512_add_epi32(two_j, _mm512_set1_epi32(static_cast<int32_t>(2 * i * Q)));
  const __m512i q1 = _mm512_set1_epi32(1), qq = _mm512_set1_epi32(static_cast<int32_t>(Q)),
                qq1 = _mm512_set1_epi32(static_cast<int32_t>(Q + 1));
  // (Unrolled, as every loop over acc: an index the compiler cannot resolve keeps acc in memory.)
#pragma GCC unroll 4
  for (int kk = 0; kk < KN; ++kk) {
    const __m512 b = _mm512_set1_ps(bias ? bias[k0 + kk] : 0.0f);
    const __m512 va = activate<Act>(bias ? _mm512_add_ps(acc[kk][0][0], b) : acc[kk][0][0], slope);
    const __m512 vb = activate<Act>(bias ? _mm512_add_ps(acc[kk][0][1], b) : acc[kk][0][1], slope);
    const __m512 vc = activate<Act>(bias ? _mm512_add_ps(acc[kk][1][0], b) : acc[kk][1][0], slope);
    const __m512 vd = activate<Act>(bias ? _mm512_add_ps(acc[kk][1][1], b) : acc[kk][1][1], slope);
    __m512 best = va;
    __m512i off = _mm512_setzero_si512();
    __mmask16 gt = _mm512_cmp_ps_mask(vb, best, _CMP_GT_OQ);
    best = _mm512_mask_blend_ps(gt, best, vb);
    off = _mm512_mask_blend_epi32(gt, off, q1);
    gt = _mm512_cmp_ps_mask(vc, best, _CMP_GT_OQ);
    best = _mm512_mask_blend_ps(gt, best, vc);
    off = _mm512_mask_blend_epi32(gt, off, qq);
    gt = _mm512_cmp_ps_mask(vd, best, _CMP_GT_OQ);
    best = _mm512_mask_blend_ps(gt, best, vd);
    off = _mm512_mask_blend_epi32(gt, off, qq1);
    const int64_t at = (k0 + kk) * ldy + i * qp + j0;
    _mm512_mask_storeu_ps(y + at, m, best);
    _mm512_mask_storeu_epi32(arg + at, m, _mm512_add_epi32(base, off));
  }
}

// The four input rows 2i .. 2i + 3 of each channel split by column parity into e and o (row
// (c, r) at + (4c + r) L, L floats, zero past W).
void split_rows(const float* x, int64_t C, int64_t H, int64_t W, int64_t i, int64_t L, float* e,
                float* o) {
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
  for (int64_t c = 0; c < C; ++c)
    for (int64_t r = 0; r < 4; ++r) {
      const float* src = x + (c * H + 2 * i + r) * W;
      float* er = e + (c * 4 + r) * L;
      float* orow = o + (c * 4 + r) * L;
      for (int64_t j = 0; j < L; j += 16) {  // 32 input floats, masked past W, per step
        const int64_t left = W - 2 * j;
        const __m512 a = _mm512_maskz_loadu_ps(lanes(left), src + 2 * j);
        const __m512 b = _mm512_maskz_loadu_ps(lanes(left - 16), src + 2 * j + 16);
        _mm512_storeu_ps(er + j, _mm512_permutex2var_ps(a, even, b));
        _mm512_storeu_ps(orow + j, _mm512_permutex2var_ps(a, odd, b));
      }
    }
}

// One channel's 9 weight-gradient vectors of one filter over 16 windows: acc[3r + s] +=
// gd[d] x at place d = (dy, dx) of the window, for the four places in order; V(rin, t) is input
// row rin's t-th vector (e[j0], o[j0], e[j0 + 1], o[j0 + 1]).
__attribute__((always_inline)) inline void grad_channel(const float* ec, const float* oc, int64_t L,
                                                        const __m512 (&gd)[4], float* acc) {
  __m512 v[4][4];
#pragma GCC unroll 4
  for (int rin = 0; rin < 4; ++rin) {
    v[rin][0] = _mm512_loadu_ps(ec + rin * L);
    v[rin][1] = _mm512_loadu_ps(oc + rin * L);
    v[rin][2] = _mm512_loadu_ps(ec + rin * L + 1);
    v[rin][3] = _mm512_loadu_ps(oc + rin * L + 1);
  }
#pragma GCC unroll 3
  for (int r = 0; r < 3; ++r)
#pragma GCC unroll 3
    for (int s = 0; s < 3; ++s) {
      float* a = acc + (3 * r + s) * 16;
      __m512 t = _mm512_loadu_ps(a);
      t = _mm512_fmadd_ps(gd[0], v[r][s], t);
      t = _mm512_fmadd_ps(gd[1], v[r][s + 1], t);
      t = _mm512_fmadd_ps(gd[2], v[r + 1][s], t);
      t = _mm512_fmadd_ps(gd[3], v[r + 1][s + 1], t);
      _mm512_storeu_ps(a, t);
    }
}

template <int Act>
void grad_rows(const float* x, int64_t C, int64_t H, int64_t W, const float* dy, const float* y,
               float slope_f, const int32_t* arg, int64_t ldg, int64_t K, int64_t i0, int64_t i1,
               float* acc, float* scratch) {
  const int64_t Q = W - 2, qp = Q / 2, L = (qp + 15) / 16 * 16 + 16, nw = 9 * C + 1;
  // All the rows first (4 per pooled row, as conv3x3_pool splits them; about 700 KB for a
  // 224 x 224 x 3 image, in L2), then filter by filter: each filter's dy, y and argmaxes are then
  // read in order, one stream each, where the filters' planes taken in turn per window block
  // were 3 K streams that the prefetchers could not follow (2.5x slower).
  const int64_t rows4 = C * 4 * L;
  for (int64_t i = i0; i < i1; ++i) {
    float* e = scratch + (i - i0) * 2 * rows4;
    split_rows(x, C, H, W, i, L, e, e + rows4);
  }
  const __m512 slope = _mm512_set1_ps(slope_f);
  const __m512i two_lane =
      _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i one = _mm512_set1_epi32(1), qq = _mm512_set1_epi32(static_cast<int32_t>(Q)),
                qq1 = _mm512_set1_epi32(static_cast<int32_t>(Q + 1));
  for (int64_t k = 0; k < K; ++k) {
    float* ak = acc + k * nw * 16;
    for (int64_t i = i0; i < i1; ++i) {
      const float* e = scratch + (i - i0) * 2 * rows4;
      const float* o = e + rows4;
      for (int64_t j0 = 0; j0 < qp; j0 += 16) {
        const __mmask16 m = lanes(qp - j0);
        const __m512i first =
            _mm512_add_epi32(_mm512_set1_epi32(static_cast<int32_t>(2 * i * Q + 2 * j0)), two_lane);
        const int64_t at = k * ldg + i * qp + j0;
        __m512 g = _mm512_maskz_loadu_ps(m, dy + at);
        if constexpr (Act != 0) {
          const __mmask16 pos =
              _mm512_cmp_ps_mask(_mm512_maskz_loadu_ps(m, y + at), _mm512_setzero_ps(), _CMP_GT_OQ);
          g = Act == 1 ? _mm512_maskz_mov_ps(pos, g)
                       : _mm512_mask_blend_ps(pos, _mm512_mul_ps(slope, g), g);
        } else {
          (void)slope;
        }
        const __m512i code = _mm512_sub_epi32(_mm512_maskz_loadu_epi32(m, arg + at), first);
        const __m512 gd[4] = {
            _mm512_maskz_mov_ps(_mm512_mask_cmpeq_epi32_mask(m, code, _mm512_setzero_si512()), g),
            _mm512_maskz_mov_ps(_mm512_mask_cmpeq_epi32_mask(m, code, one), g),
            _mm512_maskz_mov_ps(_mm512_mask_cmpeq_epi32_mask(m, code, qq), g),
            _mm512_maskz_mov_ps(_mm512_mask_cmpeq_epi32_mask(m, code, qq1), g)};
        for (int64_t c = 0; c < C; ++c)
          grad_channel(e + c * 4 * L + j0, o + c * 4 * L + j0, L, gd, ak + 9 * c * 16);
        float* ab = ak + 9 * C * 16;
        _mm512_storeu_ps(ab, _mm512_add_ps(_mm512_loadu_ps(ab), g));
      }
    }
  }
}

template <int Act>
void rows(const float* x, int64_t C, int64_t H, int64_t W, const float* w, const float* bias,
          float slope_f, int64_t K, int64_t i0, int64_t i1, float* y, int32_t* arg, int64_t ldy,
          float* scratch) {
  const int64_t Q = W - 2, qp = Q / 2, L = (qp + 15) / 16 * 16 + 16;
  float* e = scratch;
  float* o = scratch + C * 4 * L;
  const __m512 slope = _mm512_set1_ps(slope_f);
  for (int64_t i = i0; i < i1; ++i) {
    split_rows(x, C, H, W, i, L, e, o);
    for (int64_t j0 = 0; j0 < qp; j0 += 16) {
      const int64_t nj = qp - j0 < 16 ? qp - j0 : 16;
      const auto m = static_cast<__mmask16>(nj == 16 ? 0xFFFFu : (1u << nj) - 1u);
      int64_t k0 = 0;
      for (; k0 + 2 <= K; k0 += 2)
        block<2, Act>(e, o, L, C, j0, w, k0, bias, slope, i, Q, qp, m, y, arg, ldy);
      if (k0 < K) block<1, Act>(e, o, L, C, j0, w, k0, bias, slope, i, Q, qp, m, y, arg, ldy);
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

void conv3x3_pool_grad(const float* x, int64_t C, int64_t H, int64_t W, const float* dy,
                       const float* y, int act, float slope, const int32_t* arg, int64_t ldg,
                       int64_t K, int64_t i0, int64_t i1, float* acc, float* scratch) {
  if (act == 1)
    grad_rows<1>(x, C, H, W, dy, y, slope, arg, ldg, K, i0, i1, acc, scratch);
  else if (act == 2)
    grad_rows<2>(x, C, H, W, dy, y, slope, arg, ldg, K, i0, i1, acc, scratch);
  else
    grad_rows<0>(x, C, H, W, dy, y, slope, arg, ldg, K, i0, i1, acc, scratch);
}

#else  // this build cannot compile AVX-512 code; the registry never selects it

void conv3x3_pool(const float* x, int64_t C, int64_t H, int64_t W, const float* w,
                  const float* bias, int act, float slope, int64_t K, int64_t i0, int64_t i1,
                  float* y, int32_t* arg, int64_t ldy, float* scratch) {
  ref::conv3x3_pool(x, C, H, W, w, bias, act, slope, K, i0, i1, y, arg, ldy, scratch);
}

void conv3x3_pool_grad(const float* x, int64_t C, int64_t H, int64_t W, const float* dy,
                       const float* y, int act, float slope, const int32_t* arg, int64_t ldg,
                       int64_t K, int64_t i0, int64_t i1, float* acc, float* scratch) {
  ref::conv3x3_pool_grad(x, C, H, W, dy, y, act, slope, arg, ldg, K, i0, i1, acc, scratch);
}

#endif

}  // namespace imgsim::kernels::avx512
