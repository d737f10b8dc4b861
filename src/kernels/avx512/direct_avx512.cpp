// AVX-512 direct 3x3 convolution fused with 2x2 / stride 2 max pooling, for a first layer
// (kernels.hpp, conv3x3_pool), and its weight gradient (conv3x3_pool_grad).
//
// Forward. Per pooled row, the four input rows of each channel are split into even and odd
// columns (scratch), so that 16 pooling windows' conv outputs at even columns 2j read e[j], o[j],
// e[j + 1] for s = 0, 1, 2, and those at odd columns 2j + 1 read o[j], e[j + 1], o[j + 1]: four
// vectors per input row serve both. Two filters at a time keep their 2 rows x 2 parities of 16
// outputs in 8 accumulators (four made GCC spill them); each input vector is loaded once and
// multiplied by broadcast weights (c, r, s in order for every accumulator, from 0: the im2col
// GEMM's sums). The window's four values then get bias and activation and are pooled in registers
// (first maximum in window order, strict greater than, as maxpool2x2), and only the pooled value
// and its argmax are stored. While a row is computed, the next row's input lines are prefetched,
// and its output lines for writing: without that, the stores' misses (100 MB per seed batch, planes
// of 111 floats per row) held the loop up, and the layer ran at 62-66 % of the FMA peak instead of
// 80 %.
//
// Gradient. Each window's gradient g lands on one conv output, its argmax, so dW = sum of g times
// the 3x3 patch at the argmax: the patch is selected per lane with blends (by the argmax's column,
// then its row), 9 multiply-adds per 16 windows where the dense gradient takes 36. See
// grad_channel and grad_rows.
#include <cstdint>
#include <type_traits>

#include "kernels/kernels.hpp"

#if (defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512DQ__) && \
     defined(__AVX512VL__)) ||                                                 \
    defined(IMGSIM_EMULATE_AVX512)  // tests: avx512/emulate.hpp
#include <immintrin.h>
#define IMGSIM_HAVE_AVX512_DIRECT 1
#endif

namespace imgsim::kernels::avx512 {

#ifdef IMGSIM_HAVE_AVX512_DIRECT

namespace {

// An empty asm that keeps vectors in registers (GCC would fold their loads into each use);
// emulated (avx512/emulate.hpp) there are no ZMM registers to keep them in.
#ifdef IMGSIM_EMULATE_AVX512
#define IMGSIM_IN_REGISTERS(...) ((void)0)
#else
#define IMGSIM_IN_REGISTERS(...) __asm__("" : __VA_ARGS__)
#endif

// Lanes [0, n) set, n clamped to [0, 16].
inline __mmask16 lanes(int64_t n) {
  return n >= 16 ? static_cast<__mmask16>(0xFFFF)
                 : (n <= 0 ? static_cast<__mmask16>(0) : static_cast<__mmask16>((1u << n) - 1u));
}

#include "kernels/direct_common.inc"

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

// The conv outputs of KN filters from k0 at rows 2i, 2i + 1 (yo) and columns 2j, 2j + 1 (par) for
// the 16 j from j0, into acc[kk][yo][par]; e / o: even and odd columns of the 4 input rows 2i ..
// 2i + 3 of each channel, row (c, r) at e + (c 4 + r) L.
template <int KN>
__attribute__((always_inline)) inline void conv_pairs(const float* e, const float* o, int64_t L,
                                                      int64_t C, int64_t j0, const float* w,
                                                      int64_t k0, __m512 (&acc)[KN][2][2]) {
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
}

// KN filters from k0, 16 windows from column j0 of pooled row i, pooled.
template <int KN, int Act>
void block(const float* e, const float* o, int64_t L, int64_t C, int64_t j0, const float* w,
           int64_t k0, const float* bias, __m512 slope, int64_t i, int64_t Q, int64_t qp,
           __mmask16 m, float* y, int32_t* arg, int64_t ldy) {
  __m512 acc[KN][2][2];
  conv_pairs<KN>(e, o, L, C, j0, w, k0, acc);
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

// KN filters from k0, conv rows 2i and (if below P) 2i + 1, columns 2 j0 .. 2 j0 + 31 (those below
// Q), not pooled: bias, activation, and the even and odd columns interleaved back in order.
template <int KN, int Act>
void block_conv(const float* e, const float* o, int64_t L, int64_t C, int64_t j0, const float* w,
                int64_t k0, const float* bias, __m512 slope, int64_t i, int64_t P, int64_t Q,
                float* y, int64_t ldy) {
  __m512 acc[KN][2][2];
  conv_pairs<KN>(e, o, L, C, j0, w, k0, acc);
  const __m512i lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const __m512i hi = _mm512_add_epi32(lo, _mm512_set1_epi32(8));
  const __mmask16 m0 = lanes(Q - 2 * j0), m1 = lanes(Q - 2 * j0 - 16);
#pragma GCC unroll 4
  for (int kk = 0; kk < KN; ++kk) {
    const __m512 b = _mm512_set1_ps(bias ? bias[k0 + kk] : 0.0f);
#pragma GCC unroll 2
    for (int yo = 0; yo < 2; ++yo) {
      if (2 * i + yo >= P) break;
      const __m512 ve =
          activate<Act>(bias ? _mm512_add_ps(acc[kk][yo][0], b) : acc[kk][yo][0], slope);
      const __m512 vo =
          activate<Act>(bias ? _mm512_add_ps(acc[kk][yo][1], b) : acc[kk][yo][1], slope);
      float* row = y + (k0 + kk) * ldy + (2 * i + yo) * Q + 2 * j0;
      _mm512_mask_storeu_ps(row, m0, _mm512_permutex2var_ps(ve, lo, vo));
      _mm512_mask_storeu_ps(row + 16, m1, _mm512_permutex2var_ps(ve, hi, vo));
    }
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
      // (Row H, past the image, only for the unpooled conv of an odd number of rows: zeros.)
      const bool in = 2 * i + r < H;
      const float* src = x + (c * H + (in ? 2 * i + r : 0)) * W;
      float* er = e + (c * 4 + r) * L;
      float* orow = o + (c * 4 + r) * L;
      for (int64_t j = 0; j < L; j += 16) {  // 32 input floats, masked past W, per step
        const int64_t left = in ? W - 2 * j : 0;
        const __m512 a = _mm512_maskz_loadu_ps(lanes(left), src + 2 * j);
        const __m512 b = _mm512_maskz_loadu_ps(lanes(left - 16), src + 2 * j + 16);
        _mm512_storeu_ps(er + j, _mm512_permutex2var_ps(a, even, b));
        _mm512_storeu_ps(orow + j, _mm512_permutex2var_ps(a, odd, b));
      }
    }
}

// g = dy act'(y) of 16 outputs (0 where m is clear).
template <int Act>
__attribute__((always_inline)) inline __m512 conv_dz(const float* dy, const float* y, __mmask16 m,
                                                     __m512 slope) {
  __m512 g = _mm512_maskz_loadu_ps(m, dy);
  if constexpr (Act != 0) {
    const __mmask16 pos =
        _mm512_cmp_ps_mask(_mm512_maskz_loadu_ps(m, y), _mm512_setzero_ps(), _CMP_GT_OQ);
    g = Act == 1 ? _mm512_maskz_mov_ps(pos, g)
                 : _mm512_mask_blend_ps(pos, _mm512_mul_ps(slope, g), g);
  } else {
    (void)y;
    (void)slope;
  }
  return g;
}

// The gradients of 16 windows from column j0 of pooled row i of one filter (dy, y, arg at its
// plane): g = dy act'(y) (0 past qp) and the argmax's place in the window as dx + 2 dy (0..3),
// stored as two vectors at gd. Returns g.
template <int Act>
__attribute__((always_inline)) inline __m512 window_grads(const float* dy, const float* y,
                                                          const int32_t* arg, int64_t i, int64_t j0,
                                                          int64_t qp, int64_t Q, __m512 slope,
                                                          float* gd) {
  const __mmask16 m = lanes(qp - j0);
  const __m512i first = _mm512_add_epi32(
      _mm512_set1_epi32(static_cast<int32_t>(2 * i * Q + 2 * j0)),
      _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30));
  const int64_t at = i * qp + j0;
  const __m512 g = conv_dz<Act>(dy + at, y + at, m, slope);
  // code = 0, 1, Q or Q + 1: the place (0, 0), (0, 1), (1, 0) or (1, 1)
  const __m512i code = _mm512_sub_epi32(_mm512_maskz_loadu_epi32(m, arg + at), first);
  const auto q = static_cast<int32_t>(Q);
  const __mmask16 down = _mm512_mask_cmpge_epi32_mask(m, code, _mm512_set1_epi32(q));
  const __mmask16 right = _mm512_mask_cmpeq_epi32_mask(m, code, _mm512_set1_epi32(1)) |
                          _mm512_mask_cmpeq_epi32_mask(m, code, _mm512_set1_epi32(q + 1));
  const __m512i place = _mm512_or_si512(_mm512_maskz_mov_epi32(right, _mm512_set1_epi32(1)),
                                        _mm512_maskz_mov_epi32(down, _mm512_set1_epi32(2)));
  _mm512_storeu_ps(gd, g);
  _mm512_storeu_si512(gd + 16, place);
  return g;
}

// The next filter's (or the next band's first filter's) masked gradients, computed a block at a
// time inside the current filter's last channel loop: its dy, y and argmaxes then come from memory
// while the multiply-adds run, where a loop of their own waited on the misses (the layer's
// batch does not fit the caches).
struct NextGrads {
  const float* dy;  // the filter's planes
  const float* y;
  const int32_t* arg;
  int64_t b0, rows;  // its band
  float* gd;         // its blocks' g and place vectors
  float* bsum;       // its bias partial sums (16 lanes)
  const float* pdy;  // the filter after it in the same band (prefetched), or null
  const float* py;
  const int32_t* parg;
};

// One channel's 9 weight-gradient sums acc[3r + s] of one filter, over the blocks of 16 windows
// of a band: acc[3r + s] += g x[2i + dy + r][2j + dx + s] at the argmax's place (dy, dx) of each
// window. gd: the blocks' g and place vectors in turn; ec / oc: the channel's even and odd
// columns (4 rows of L per pooled row, the band's pooled rows 2 rows4 apart, nj blocks per row).
// Input row rin's four vectors (columns 2j + 0..3: e[j0], o[j0], e[j0 + 1], o[j0 + 1]) are
// blended by dx into the three columns 2j + dx + s, and two such rows by dy into the row
// 2i + dy + r: 21 blends (which Zen 4 runs beside the multiply-adds) and 9 multiply-adds per
// block, where the dense gradient (the four places with g masked) takes 36 multiply-adds.
template <int Act, bool Next>
__attribute__((always_inline)) inline void grad_channel(const float* ec, const float* oc, int64_t L,
                                                        int64_t rows4, int64_t nrows, int64_t nj,
                                                        int64_t qp, int64_t Q, __m512 slope,
                                                        const float* gd, float* acc,
                                                        const NextGrads& nx, LinePrefetch& pfx) {
  __m512 a[9];
#pragma GCC unroll 9
  for (int t = 0; t < 9; ++t) a[t] = _mm512_loadu_ps(acc + 16 * t);
  __m512 bsum = _mm512_setzero_ps();
  if constexpr (Next) bsum = _mm512_loadu_ps(nx.bsum);
  const __m512i one = _mm512_set1_epi32(1), two = _mm512_set1_epi32(2);
  for (int64_t i = 0; i < nrows; ++i) {
    const float* er = ec + i * 2 * rows4;
    const float* orow = oc + i * 2 * rows4;
    for (int64_t jb = 0; jb < nj; ++jb, gd += 32) {
      const __m512 g = _mm512_loadu_ps(gd);
      const __m512i place = _mm512_loadu_si512(gd + 16);
      const __mmask16 right = _mm512_test_epi32_mask(place, one);
      const __mmask16 down = _mm512_test_epi32_mask(place, two);
      const int64_t j0 = jb * 16;
      if constexpr (Next) {
        if (nx.pdy && i < nx.rows) {  // 64 bytes of each, a filter's time ahead
          const int64_t at = (nx.b0 + i) * qp + j0;
          _mm_prefetch(reinterpret_cast<const char*>(nx.pdy + at), _MM_HINT_T0);
          _mm_prefetch(reinterpret_cast<const char*>(nx.parg + at), _MM_HINT_T0);
          if constexpr (Act != 0)
            _mm_prefetch(reinterpret_cast<const char*>(nx.py + at), _MM_HINT_T0);
        }
        pfx.step();
        if (i < nx.rows)  // the next band has as many rows or fewer
          bsum = _mm512_add_ps(bsum, window_grads<Act>(nx.dy, nx.y, nx.arg, nx.b0 + i, j0, qp, Q,
                                                       slope, nx.gd + (i * nj + jb) * 32));
      }
      __m512 h[2][3];  // input rows rin - 1 and rin at columns 2j + dx + s
#pragma GCC unroll 4
      for (int rin = 0; rin < 4; ++rin) {
        __m512 v0 = _mm512_loadu_ps(er + rin * L + j0), v1 = _mm512_loadu_ps(orow + rin * L + j0),
               v2 = _mm512_loadu_ps(er + rin * L + j0 + 1),
               v3 = _mm512_loadu_ps(orow + rin * L + j0 + 1);
        // In registers: GCC otherwise folds each load into the two blends that use it, as
        // memory operands, and loads it twice (26 loads per block instead of 18).
        IMGSIM_IN_REGISTERS("+v"(v0), "+v"(v1), "+v"(v2), "+v"(v3));
        __m512(&cur)[3] = h[rin & 1];
        cur[0] = _mm512_mask_blend_ps(right, v0, v1);
        cur[1] = _mm512_mask_blend_ps(right, v1, v2);
        cur[2] = _mm512_mask_blend_ps(right, v2, v3);
        if (rin >= 1) {
          const __m512(&prev)[3] = h[(rin - 1) & 1];
#pragma GCC unroll 3
          for (int s = 0; s < 3; ++s)
            a[3 * (rin - 1) + s] = _mm512_fmadd_ps(g, _mm512_mask_blend_ps(down, prev[s], cur[s]),
                                                   a[3 * (rin - 1) + s]);
        }
      }
    }
  }
#pragma GCC unroll 9
  for (int t = 0; t < 9; ++t) _mm512_storeu_ps(acc + 16 * t, a[t]);
  if constexpr (Next) _mm512_storeu_ps(nx.bsum, bsum);
}

template <int Act>
void grad_rows(const float* x, int64_t C, int64_t H, int64_t W, const float* dy, const float* y,
               float slope_f, const int32_t* arg, int64_t ldg, int64_t K, int64_t i0, int64_t i1,
               float* acc, float* scratch) {
  const int64_t Q = W - 2, qp = Q / 2, L = (qp + 15) / 16 * 16 + 16, nw = 9 * C + 1;
  const int64_t nj = (qp + 15) / 16;
  // Bands of pooled rows (conv3x3_grad_band): the band's input rows split by column parity (4 per
  // pooled row, as conv3x3_pool splits them; 8 rows, 110 KB, for a 224 x 224 x 3 image), then
  // filter by filter, channel by channel, with the channel's 9 sums in registers over the whole
  // band and the filter's gradients and argmax places (gd, 2 vectors per 16 windows) read from a
  // buffer in L1. The next filter's gd is computed during the last channel. For every sum's lane
  // the products come in the reference's order (pooled row, window).
  const int64_t rows4 = C * 4 * L;
  const int64_t band = conv3x3_grad_band(C, W, i1 - i0);
  float* gbuf[2] = {scratch + band * 2 * rows4, scratch + band * 2 * rows4 + band * nj * 32};
  const __m512 slope = _mm512_set1_ps(slope_f);
  if (i0 >= i1) return;
  {  // the first filter's gd for the first band
    float* ab = acc + 9 * C * 16;
    __m512 bsum = _mm512_loadu_ps(ab);
    for (int64_t i = i0; i < i0 + band; ++i)
      for (int64_t jb = 0; jb < nj; ++jb)
        bsum = _mm512_add_ps(bsum, window_grads<Act>(dy, y, arg, i, jb * 16, qp, Q, slope,
                                                     gbuf[0] + ((i - i0) * nj + jb) * 32));
    _mm512_storeu_ps(ab, bsum);
  }
  int cur = 0;
  for (int64_t b0 = i0; b0 < i1; b0 += band) {
    const int64_t b1 = b0 + band < i1 ? b0 + band : i1;
    for (int64_t i = b0; i < b1; ++i) {
      float* e = scratch + (i - b0) * 2 * rows4;
      split_rows(x, C, H, W, i, L, e, e + rows4);
    }
    // The next band's input rows, a line per block of the filters' last channel.
    LinePrefetch pfx;
    if (b1 < i1) {
      const int64_t r0 = 2 * b1 + 2, r1 = 2 * (b1 + band) + 2 < H ? 2 * (b1 + band) + 2 : H;
      pfx.add_rows(x, C, H, W, r0, r1);
    }
    for (int64_t k = 0; k < K; ++k) {
      float* ak = acc + k * nw * 16;
      const int64_t kn = k + 1 < K ? k + 1 : 0, bn = k + 1 < K ? b0 : b1;
      const int64_t bnn = bn + band < i1 ? bn + band : i1;
      const NextGrads nx{dy + kn * ldg,
                         y + kn * ldg,
                         arg + kn * ldg,
                         bn,
                         bnn - bn,
                         gbuf[1 - cur],
                         acc + (kn * nw + 9 * C) * 16,
                         kn + 1 < K ? dy + (kn + 1) * ldg : nullptr,
                         kn + 1 < K ? y + (kn + 1) * ldg : nullptr,
                         kn + 1 < K ? arg + (kn + 1) * ldg : nullptr};
      for (int64_t c = 0; c < C; ++c) {
        const float* ec = scratch + c * 4 * L;
        if (c == C - 1 && bn < i1)  // the last channel computes the next gd too
          grad_channel<Act, true>(ec, ec + rows4, L, rows4, b1 - b0, nj, qp, Q, slope, gbuf[cur],
                                  ak + 9 * c * 16, nx, pfx);
        else
          grad_channel<Act, false>(ec, ec + rows4, L, rows4, b1 - b0, nj, qp, Q, slope, gbuf[cur],
                                   ak + 9 * c * 16, nx, pfx);
      }
      cur = 1 - cur;
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
    // The next pooled row's two new input rows of each channel, a line per block.
    LinePrefetch pfx;
    if (i + 1 < i1) pfx.add_rows(x, C, H, W, 2 * i + 4, 2 * i + 6);
    const bool ahead = i + 1 < i1;
    for (int64_t j0 = 0; j0 < qp; j0 += 16) {
      const __mmask16 m = lanes(qp - j0);
      int64_t k0 = 0;
      for (; k0 + 2 <= K; k0 += 2) {
        block<2, Act>(e, o, L, C, j0, w, k0, bias, slope, i, Q, qp, m, y, arg, ldy);
        pfx.step();
        if (ahead) {  // what the next row writes here, for writing (the stores then find it)
          const int64_t at = k0 * ldy + (i + 1) * qp + j0;
          _mm_prefetch(reinterpret_cast<const char*>(y + at), _MM_HINT_ET0);
          _mm_prefetch(reinterpret_cast<const char*>(arg + at), _MM_HINT_ET0);
          _mm_prefetch(reinterpret_cast<const char*>(y + at + ldy), _MM_HINT_ET0);
          _mm_prefetch(reinterpret_cast<const char*>(arg + at + ldy), _MM_HINT_ET0);
        }
      }
      if (k0 < K) block<1, Act>(e, o, L, C, j0, w, k0, bias, slope, i, Q, qp, m, y, arg, ldy);
    }
  }
}

// Conv row pairs [i0, i1), unpooled (kernels.hpp, conv3x3), prefetching as rows() does.
template <int Act>
void conv_rows(const float* x, int64_t C, int64_t H, int64_t W, const float* w, const float* bias,
               float slope_f, int64_t K, int64_t i0, int64_t i1, float* y, int64_t ldy,
               float* scratch) {
  const int64_t P = H - 2, Q = W - 2, qh = (Q + 1) / 2, L = (qh + 15) / 16 * 16 + 16;
  float* e = scratch;
  float* o = scratch + C * 4 * L;
  const __m512 slope = _mm512_set1_ps(slope_f);
  for (int64_t i = i0; i < i1; ++i) {
    split_rows(x, C, H, W, i, L, e, o);
    LinePrefetch pfx;
    // The next pair, both rows inside; rows of 64 floats or more (short rows stay in cache,
    // and at the bands' edges their lines are shared with the other thread's task: prefetched
    // for writing, Fashion-MNIST's 26-float rows left 2 threads no faster than 1).
    const bool ahead = Q >= 64 && i + 1 < i1 && 2 * i + 3 < P;
    if (ahead) pfx.add_rows(x, C, H, W, 2 * i + 4, 2 * i + 6);
    for (int64_t j0 = 0; j0 < qh; j0 += 16) {
      int64_t k0 = 0;
      for (; k0 + 2 <= K; k0 += 2) {
        block_conv<2, Act>(e, o, L, C, j0, w, k0, bias, slope, i, P, Q, y, ldy);
        pfx.step();
        if (ahead) {  // the next pair's output lines here (inside its rows), for writing
          const float* at = y + k0 * ldy + (2 * i + 2) * Q + 2 * j0;
          const int64_t second = 2 * j0 + 16 < Q ? 16 : 0;
          for (const float* r : {at, at + Q, at + ldy, at + ldy + Q})
            for (int64_t h : {int64_t{0}, second})
              _mm_prefetch(reinterpret_cast<const char*>(r + h), _MM_HINT_ET0);
        }
      }
      if (k0 < K) block_conv<1, Act>(e, o, L, C, j0, w, k0, bias, slope, i, P, Q, y, ldy);
    }
  }
}

// The unpooled weight gradient (kernels.hpp, conv3x3_grad). Bands of kConv3x3GradRows conv rows;
// per band, two filters at a time: their dz for the band into scratch (bias sums on the way),
// then channel by channel with the two filters' 9 sums each in registers (18), each input vector
// x[c][p + r][q0 + s] loaded once for both: 9 loads and 2 dz loads per 18 multiply-adds. The next
// pair's dy and y are prefetched meanwhile. Lanes past Q load zeros (masked), so nothing is read
// past the image.
template <int Act>
void conv_grad_rows(const float* x, int64_t C, int64_t H, int64_t W, const float* dy,
                    const float* y, float slope_f, int64_t ldy, int64_t K, int64_t p0, int64_t p1,
                    float* acc, float* scratch) {
  const int64_t Q = W - 2, nq = (Q + 15) / 16, nw = 9 * C + 1;
  const __m512 slope = _mm512_set1_ps(slope_f);
  for (int64_t b0 = p0; b0 < p1; b0 += kConv3x3GradRows) {
    const int64_t b1 = b0 + kConv3x3GradRows < p1 ? b0 + kConv3x3GradRows : p1;
    for (int64_t k0 = 0; k0 < K; k0 += 2) {
      const int kn = K - k0 >= 2 ? 2 : 1;
      // dz of the band, filter kk's at scratch + kk kConv3x3GradRows nq 16.
      for (int kk = 0; kk < kn; ++kk) {
        float* ab = acc + ((k0 + kk) * nw + 9 * C) * 16;
        __m512 bsum = _mm512_loadu_ps(ab);
        float* dz = scratch + kk * kConv3x3GradRows * nq * 16;
        for (int64_t p = b0; p < b1; ++p)
          for (int64_t qb = 0; qb < nq; ++qb, dz += 16) {
            const int64_t at = (k0 + kk) * ldy + p * Q + qb * 16;
            const __m512 g = conv_dz<Act>(dy + at, y + at, lanes(Q - qb * 16), slope);
            _mm512_storeu_ps(dz, g);
            bsum = _mm512_add_ps(bsum, g);
          }
        _mm512_storeu_ps(ab, bsum);
      }
      const bool ahead = k0 + 2 < K;
      for (int64_t c = 0; c < C; ++c) {
        __m512 a0[9], a1[9];
        float* acc0 = acc + (k0 * nw + 9 * c) * 16;
        float* acc1 = acc0 + nw * 16;
#pragma GCC unroll 9
        for (int t = 0; t < 9; ++t) {
          a0[t] = _mm512_loadu_ps(acc0 + 16 * t);
          a1[t] = kn == 2 ? _mm512_loadu_ps(acc1 + 16 * t) : _mm512_setzero_ps();
        }
        const float* dz0 = scratch;
        const float* dz1 = scratch + kConv3x3GradRows * nq * 16;
        for (int64_t p = b0; p < b1; ++p) {
          const float* xr = x + (c * H + p) * W;
          for (int64_t qb = 0; qb < nq; ++qb, dz0 += 16, dz1 += 16) {
            const int64_t q0 = qb * 16;
            if (ahead && c == 0) {  // the next pair's dy and y here
              const int64_t at = (k0 + 2) * ldy + p * Q + q0;
              _mm_prefetch(reinterpret_cast<const char*>(dy + at), _MM_HINT_T0);
              _mm_prefetch(reinterpret_cast<const char*>(dy + at + ldy), _MM_HINT_T0);
              if constexpr (Act != 0) {
                _mm_prefetch(reinterpret_cast<const char*>(y + at), _MM_HINT_T0);
                _mm_prefetch(reinterpret_cast<const char*>(y + at + ldy), _MM_HINT_T0);
              }
            }
            const __mmask16 m = lanes(Q - q0);
            const __m512 g0 = _mm512_loadu_ps(dz0), g1 = _mm512_loadu_ps(dz1);
#pragma GCC unroll 3
            for (int r = 0; r < 3; ++r)
#pragma GCC unroll 3
              for (int s = 0; s < 3; ++s) {
                __m512 v = _mm512_maskz_loadu_ps(m, xr + r * W + q0 + s);
                IMGSIM_IN_REGISTERS("+v"(v));  // loaded once for both filters (see grad_channel)
                a0[3 * r + s] = _mm512_fmadd_ps(g0, v, a0[3 * r + s]);
                a1[3 * r + s] = _mm512_fmadd_ps(g1, v, a1[3 * r + s]);
              }
          }
        }
#pragma GCC unroll 9
        for (int t = 0; t < 9; ++t) {
          _mm512_storeu_ps(acc0 + 16 * t, a0[t]);
          if (kn == 2) _mm512_storeu_ps(acc1 + 16 * t, a1[t]);
        }
      }
    }
  }
}

}  // namespace

void conv3x3_grad(const float* x, int64_t C, int64_t H, int64_t W, const float* dy, const float* y,
                  int act, float slope, int64_t ldy, int64_t K, int64_t p0, int64_t p1, float* acc,
                  float* scratch) {
  with_act(act, [&](auto a) {
    conv_grad_rows<decltype(a)::value>(x, C, H, W, dy, y, slope, ldy, K, p0, p1, acc, scratch);
  });
}

void conv3x3(const float* x, int64_t C, int64_t H, int64_t W, const float* w, const float* bias,
             int act, float slope, int64_t K, int64_t i0, int64_t i1, float* y, int64_t ldy,
             float* scratch) {
  with_act(act, [&](auto a) {
    conv_rows<decltype(a)::value>(x, C, H, W, w, bias, slope, K, i0, i1, y, ldy, scratch);
  });
}

void conv3x3_pool(const float* x, int64_t C, int64_t H, int64_t W, const float* w,
                  const float* bias, int act, float slope, int64_t K, int64_t i0, int64_t i1,
                  float* y, int32_t* arg, int64_t ldy, float* scratch) {
  with_act(act, [&](auto a) {
    rows<decltype(a)::value>(x, C, H, W, w, bias, slope, K, i0, i1, y, arg, ldy, scratch);
  });
}

void conv3x3_pool_grad(const float* x, int64_t C, int64_t H, int64_t W, const float* dy,
                       const float* y, int act, float slope, const int32_t* arg, int64_t ldg,
                       int64_t K, int64_t i0, int64_t i1, float* acc, float* scratch) {
  with_act(act, [&](auto a) {
    grad_rows<decltype(a)::value>(x, C, H, W, dy, y, slope, arg, ldg, K, i0, i1, acc, scratch);
  });
}

#else  // this build cannot compile AVX-512 code; the registry never selects it

void conv3x3_grad(const float* x, int64_t C, int64_t H, int64_t W, const float* dy, const float* y,
                  int act, float slope, int64_t ldy, int64_t K, int64_t p0, int64_t p1, float* acc,
                  float* scratch) {
  ref::conv3x3_grad(x, C, H, W, dy, y, act, slope, ldy, K, p0, p1, acc, scratch);
}

void conv3x3(const float* x, int64_t C, int64_t H, int64_t W, const float* w, const float* bias,
             int act, float slope, int64_t K, int64_t i0, int64_t i1, float* y, int64_t ldy,
             float* scratch) {
  ref::conv3x3(x, C, H, W, w, bias, act, slope, K, i0, i1, y, ldy, scratch);
}

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
