// AVX2 direct 3x3 convolution fused with 2x2 / stride 2 max pooling, for a first layer
// (kernels.hpp, conv3x3_pool), and its weight gradient (conv3x3_pool_grad): the AVX-512 kernels'
// ideas (avx512/direct_avx512.cpp) on 8 lanes and 16 registers, the forward reshaped for them.
//
// Per pooled row, the four input rows of each channel are split into even and odd columns
// (scratch), so that 8 pooling windows' conv outputs at even columns 2j read e[j], o[j], e[j + 1]
// for s = 0, 1, 2, and those at odd columns 2j + 1 read o[j], e[j + 1], o[j + 1]: four vectors per
// input row serve both. The forward pass stores e[j + 1] and o[j + 1] too, and interleaves all
// four in blocks of 8 columns (split_rows), so that every load is aligned and at a fixed offset
// from one pointer. One filter and 16 windows at a time keep 2 blocks x 2 rows x 2 parities of 8
// outputs in 8 accumulators: 8 independent chains of multiply-adds, as many as the two FMA pipes
// with their 4-cycle latency need. Per channel the loop goes by input row: each of a row's four
// vectors is loaded once and feeds both conv rows that read it, with the broadcast weights of
// two filter rows in registers (c, r, s in order for every accumulator all the same, from 0: the
// im2col GEMM's sums). The window's four values then get bias and activation and are pooled in
// registers (first maximum in window order, strict greater than, as maxpool2x2), and only the
// pooled value and its argmax are stored; a last block of fewer than 8 windows is stored by 4, 2
// and 1 floats (store_head: masked stores are slow on AMD). The next row's input lines are
// prefetched while a row is computed, and its output lines for writing.
//
// History on Zen 3 (bench_kernels sparse/avx2/conv3x3_pool/seed_conv1, GFLOP/s of a 102 peak):
// one filter and 8 windows, 4 accumulators (27-deep chains: latency-bound at half the peak),
// 40-52; two filters and 8 windows, 8 accumulators with 4 input vectors and 3 broadcasts live,
// spilled by GCC: 42-46; one filter and 16 windows on separate even / odd planes with unaligned
// loads at j + 1 (a quarter of them crossing a cache line, and one address register per row and
// plane, which GCC spilled): 55-62; the interleaved aligned blocks: 70-72. At the layer, seed
// conv1 + pool1 forward, one thread: 37.9-38.5 ms in 3 rounds alternated with the 4-accumulator
// code (55.3-68.8), 70 % of the peak. That loop went by filter row, and GCC folded most input
// loads into the multiply-adds: 84 loads a channel for 72 multiply-adds, more than the core's
// two vector loads a cycle allow beside its two FMAs; by input row, 41 needed and about 57 left
// by GCC: 1.13 -> 1.08 ms per seed image, with IMGSIM_SCHED_PRESSURE 1.06 (77-79 GFLOP/s); seed
// conv1 + pool1 forward 37.1 -> 34.4 ms (77 % of the peak; best of 3 alternated rounds).
//
// Gradient: each window's g lands on its argmax, so dW gets one product per window, g times the
// 3x3 patch there. The even and odd blocks of 8 windows are separate passes so that window j
// still goes to lane j % 16 of the caller's sums, as on AVX-512. History (one thread, Zen 3):
// against the im2col path, patches selected with blends (7 blends and 3 multiply-adds per patch
// row): seed conv1 + pool1 backward 58.3 -> 55.5 ms, Fashion-MNIST's 0.86 -> 0.66 ms; with bands
// that fit L1 and plain loads of the window gradients, 46.6-47.9 ms. Zen 3 runs blends on the
// two FMA pipes and only two 32-byte loads a cycle, one more for a load that crosses a cache line:
// that form needed 30 FMA-pipe operations and 33 load slots per block and channel. Now each
// band's input rows are first turned into per-block vectors v0, v1, v2 and the XORs of
// neighbours (block_rows, once for all filters), so that a patch column is picked by the argmax's
// column with an AND and an XOR (the other two pipes) and every load is aligned; the argmax's row
// goes into two masked g's (grad_block: 24 aligned loads, 12 picks, 18 FMAs). The band is 3 rows
// for the seed, which keeps a pass's vectors in L1 (4 rows, spilling it, ran 10 % slower), and
// groups of up to 32 filters read them there (groups of 4, 8, 16: 44.3, 39.9, 38.1 ms in the
// layer); where dy, y and arg come from memory, those of the filter two ahead and the next
// band's input rows are prefetched. Kernel alone (bench_kernels, one seed image in cache)
// 1.28 -> 1.10 ms; seed conv1 + pool1 backward 47.6 -> 37.8 ms per batch of 32, 71 % of the
// peak, Fashion-MNIST's 0.68 -> 0.53 ms (bench_layers, best of 3 alternated rounds).
#include <algorithm>
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

#include "kernels/avx2/store_head.inc"
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

// Input row r (0..3) of channel c into conv rows 0 and 1, NH blocks of 8 windows: with filter
// row r (weights cur, for conv row 0, r < 3) and filter row r - 1 (prev, for conv row 1, r > 0).
// Each of the row's four vectors is loaded once and feeds every multiply-add that needs it (2, 4,
// 4, 2 of them for an inner row): 8 accumulators, 6 weights and one input vector in 16 registers.
// Every accumulator still gets its terms in (c, r, s) order. t: the channel's first block in
// split_rows' layout.
template <int NH, int r>
__attribute__((always_inline)) inline void input_row(const float* t, const __m256 (&cur)[3],
                                                     const __m256 (&prev)[3],
                                                     __m256 (&acc)[NH][2][2]) {
  constexpr bool up = (r < 3), down = (r > 0);  // conv row 0: filter row r; conv row 1: r - 1
#pragma GCC unroll 4
  for (int h = 0; h < NH; ++h) {
#pragma GCC unroll 4
    for (int u = 0; u < 4; ++u) {  // column 2j + u: s = u of the even windows, u - 1 of the odd
      const __m256 x = _mm256_load_ps(t + h * 128 + r * 32 + 8 * u);
#pragma GCC unroll 2
      for (int yo = 0; yo < 2; ++yo) {
        if (!(yo == 0 ? up : down)) continue;
        const __m256(&w)[3] = yo == 0 ? cur : prev;
        if (u <= 2) acc[h][yo][0] = _mm256_fmadd_ps(w[u], x, acc[h][yo][0]);
        if (u >= 1) acc[h][yo][1] = _mm256_fmadd_ps(w[u - 1], x, acc[h][yo][1]);
      }
    }
  }
}

// The 3 broadcast weights of filter row R of a channel's 3x3.
template <int R>
__attribute__((always_inline)) inline void row_weights(const float* wc, __m256 (&w)[3]) {
  w[0] = _mm256_broadcast_ss(wc + R * 3);
  w[1] = _mm256_broadcast_ss(wc + R * 3 + 1);
  w[2] = _mm256_broadcast_ss(wc + R * 3 + 2);
}

// GCC allocates the 15-16 live vectors of the forward's channel loop and of grad_block with
// spills and register rotations; scheduling before allocation, register pressure in mind, gives
// loops with fewer of them (forward 1.08 -> 1.06 ms per seed image, gradient 1.19 -> 1.15).
#if defined(__GNUC__) && !defined(__clang__)
#define IMGSIM_SCHED_PRESSURE __attribute__((optimize("schedule-insns", "sched-pressure")))
#else
#define IMGSIM_SCHED_PRESSURE
#endif

// Filter k at NH blocks of 8 windows from column j0 of pooled row i, pooled; n = windows to store
// (at most 8 NH). t: split_rows' layout with nb blocks a channel.
template <int NH, int Act>
IMGSIM_SCHED_PRESSURE void block(const float* t, int64_t nb, int64_t C, int64_t j0, const float* w,
                                 int64_t k, const float* bias, __m256 slope, int64_t i, int64_t Q,
                                 int64_t qp, int64_t n, float* y, int32_t* arg, int64_t ldy) {
  __m256 acc[NH][2][2];
#pragma GCC unroll 4
  for (int h = 0; h < NH; ++h)
#pragma GCC unroll 2
    for (int yo = 0; yo < 2; ++yo) acc[h][yo][0] = acc[h][yo][1] = _mm256_setzero_ps();
  for (int64_t c = 0; c < C; ++c) {
    const float* tc = t + (c * nb + j0 / 8) * 128;
    const float* wc = w + (k * C + c) * 9;
    __m256 wa[3], wb[3] = {};  // wb: filter row 1, unused before
    row_weights<0>(wc, wa);
    input_row<NH, 0>(tc, wa, wb, acc);
    row_weights<1>(wc, wb);
    input_row<NH, 1>(tc, wb, wa, acc);
    row_weights<2>(wc, wa);
    input_row<NH, 2>(tc, wa, wb, acc);
    input_row<NH, 3>(tc, wb, wa, acc);
  }
  const __m256 q1 = _mm256_castsi256_ps(_mm256_set1_epi32(1));
  const __m256 qq = _mm256_castsi256_ps(_mm256_set1_epi32(static_cast<int32_t>(Q)));
  const __m256 qq1 = _mm256_castsi256_ps(_mm256_set1_epi32(static_cast<int32_t>(Q + 1)));
  const __m256 b = _mm256_set1_ps(bias ? bias[k] : 0.0f);
#pragma GCC unroll 4
  for (int h = 0; h < NH; ++h) {
    const int64_t jh = j0 + 8 * h, nh = n - 8 * h;
    if (nh <= 0) break;
    // Window (0, 0), (0, 1), (1, 0), (1, 1): conv index (2i + yo) Q + 2j + par.
    const __m256i base =
        _mm256_add_epi32(_mm256_set1_epi32(static_cast<int32_t>(2 * i * Q + 2 * jh)),
                         _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14));
    const __m256 va = activate<Act>(bias ? _mm256_add_ps(acc[h][0][0], b) : acc[h][0][0], slope);
    const __m256 vb = activate<Act>(bias ? _mm256_add_ps(acc[h][0][1], b) : acc[h][0][1], slope);
    const __m256 vc = activate<Act>(bias ? _mm256_add_ps(acc[h][1][0], b) : acc[h][1][0], slope);
    const __m256 vd = activate<Act>(bias ? _mm256_add_ps(acc[h][1][1], b) : acc[h][1][1], slope);
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
    const int64_t at = k * ldy + i * qp + jh;
    if (nh >= 8) {
      _mm256_storeu_ps(y + at, best);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(arg + at), a);
    } else {
      store_head(y + at, best, nh);
      store_head(arg + at, a, nh);
    }
  }
}

// The 16 floats of a line from src: a = src[0..8), b = src[8..16), zero at and past left (the
// floats left in the line), read with masked loads there.
__attribute__((always_inline)) inline void load16(const float* src, int64_t left, __m256& a,
                                                  __m256& b) {
  a = left >= 8 ? _mm256_loadu_ps(src) : _mm256_maskload_ps(src, lanes(left));
  b = left >= 16 ? _mm256_loadu_ps(src + 8) : _mm256_maskload_ps(src + 8, lanes(left - 8));
}

// 16 consecutive floats a, b split into their even and odd elements.
__attribute__((always_inline)) inline void split16(__m256 a, __m256 b, __m256& ev, __m256& od) {
  // (a0 a2 b0 b2 | a4 a6 b4 b6), then the middle quarters swapped: a0 a2 a4 a6 b0 b2 b4 b6.
  const __m256 e = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0));
  const __m256 o = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1));
  ev = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(e), _MM_SHUFFLE(3, 1, 2, 0)));
  od = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(o), _MM_SHUFFLE(3, 1, 2, 0)));
}

// The four input rows 2i .. 2i + 3 of each channel, split by column parity and interleaved in
// blocks of 8 columns: for channel c, block jb (pooled columns 8 jb .. 8 jb + 7), input row r,
// at t + ((c nb + jb) 4 + r) 32 + 8 p: p = 0 the even columns 2j, 1 the odd ones 2j + 1, 2 and 3
// the same one column to the right (2j + 2, 2j + 3), zero past W; nb blocks a channel. All that
// a block of windows reads then sits at fixed offsets from one pointer, 32-byte aligned: an
// unaligned load that crosses a cache line takes two of the core's load slots, and separate
// planes cost the compiler one register per row and plane.
inline void split_rows(const float* x, int64_t C, int64_t H, int64_t W, int64_t i, int64_t nb,
                       float* t) {
  for (int64_t c = 0; c < C; ++c)
    for (int64_t r = 0; r < 4; ++r) {
      const float* src = x + (c * H + 2 * i + r) * W;
      float* dst = t + (c * nb * 4 + r) * 32;
      for (int64_t jb = 0; jb < nb; ++jb, dst += 128) {
#pragma GCC unroll 2
        for (int sh = 0; sh < 2; ++sh) {  // 16 input floats from column 16 jb + 2 sh, masked
          const int64_t col = 16 * jb + 2 * sh;
          __m256 a, b, ev, od;
          load16(src + col, W - col, a, b);
          split16(a, b, ev, od);
          _mm256_store_ps(dst + 16 * sh, ev);
          _mm256_store_ps(dst + 16 * sh + 8, od);
        }
      }
    }
}

// The scratch at 64 bytes (split_rows' aligned blocks need it; the caller's is float-aligned).
inline float* align64(float* p) {
  return reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(p) + 63) & ~uintptr_t{63});
}

template <int Act>
IMGSIM_SCHED_PRESSURE void rows(const float* x, int64_t C, int64_t H, int64_t W, const float* w,
                                const float* bias, float slope_f, int64_t K, int64_t i0, int64_t i1,
                                float* y, int32_t* arg, int64_t ldy, float* scratch) {
  // nb blocks of 8 columns a row, whole pairs (C nb 128 floats fit conv3x3_pool_scratch(C, W)
  // after aligning).
  const int64_t Q = W - 2, qp = Q / 2, nb = (qp + 15) / 16 * 2;
  scratch = align64(scratch);
  const __m256 slope = _mm256_set1_ps(slope_f);
  for (int64_t i = i0; i < i1; ++i) {
    split_rows(x, C, H, W, i, nb, scratch);
    LinePrefetch pfx;
    if (i + 1 < i1) pfx.add_rows(x, C, H, W, 2 * i + 4, 2 * i + 6);
    const bool ahead = i + 1 < i1;
    for (int64_t j0 = 0; j0 < qp; j0 += 16) {
      const int64_t n = qp - j0 < 16 ? qp - j0 : 16;
      for (int64_t k0 = 0; k0 < K; ++k0) {
        block<2, Act>(scratch, nb, C, j0, w, k0, bias, slope, i, Q, qp, n, y, arg, ldy);
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
// plane; n of them inside the row): g = dy act'(y) (0 past n), split by the argmax's row into
// gu (upper row) and gl (lower row), and as a lane mask whether the argmax lies in the window's
// right column: three vectors at gd. Returns g.
template <int Act>
__attribute__((always_inline)) inline __m256 window_grads(const float* dy, const float* y,
                                                          const int32_t* arg, int64_t i, int64_t j0,
                                                          int64_t n, int64_t qp, int64_t Q,
                                                          __m256 slope, float* gd) {
  const __m256i m = lanes(n);
  const int64_t at = i * qp + j0;
  const bool full = n == 8;  // plain loads (masked ones are slow on AMD) unless past the row
  __m256 g = full ? _mm256_loadu_ps(dy + at) : _mm256_maskload_ps(dy + at, m);
  if constexpr (Act != 0) {
    const __m256 yv = full ? _mm256_loadu_ps(y + at) : _mm256_maskload_ps(y + at, m);
    const __m256 pos = _mm256_cmp_ps(yv, _mm256_setzero_ps(), _CMP_GT_OQ);
    g = Act == 1 ? _mm256_and_ps(pos, g) : _mm256_blendv_ps(_mm256_mul_ps(slope, g), g, pos);
  } else {
    (void)y;
    (void)slope;
  }
  // code = 0, 1, Q or Q + 1: the place (0, 0), (0, 1), (1, 0) or (1, 1)
  const __m256i first =
      _mm256_add_epi32(_mm256_set1_epi32(static_cast<int32_t>(2 * i * Q + 2 * j0)),
                       _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14));
  const __m256i av = full ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(arg + at))
                          : _mm256_maskload_epi32(arg + at, m);
  const __m256i code = _mm256_sub_epi32(av, first);
  const auto q = static_cast<int32_t>(Q);
  const __m256 down = _mm256_castsi256_ps(_mm256_cmpgt_epi32(code, _mm256_set1_epi32(q - 1)));
  const __m256i right = _mm256_or_si256(_mm256_cmpeq_epi32(code, _mm256_set1_epi32(1)),
                                        _mm256_cmpeq_epi32(code, _mm256_set1_epi32(q + 1)));
  _mm256_storeu_ps(gd, _mm256_andnot_ps(down, g));
  _mm256_storeu_ps(gd + 8, _mm256_and_ps(down, g));
  _mm256_storeu_ps(gd + 16, _mm256_castsi256_ps(right));
  return g;
}

// Per block of 8 windows and input row R (0..3) of a pooled row, 6 vectors: with v0 .. v3 the
// row's columns 2j, 2j + 1, 2j + 2, 2j + 3 (j the block's windows), v0, v1, v2 and v0 ^ v1,
// v1 ^ v2, v2 ^ v3 (bitwise), so that a window's patch column s is v_s ^ ((v_s ^ v_s+1) & right)
// with no blend and no unaligned load. They depend on the image only, so a band's are made once
// for all filters (channel c, band row ib, block jb, row R at + (((c band + ib) nb + jb) 4 + R)
// 48). row: 2 L floats of scratch for one input row's even and odd columns (L a multiple of 8,
// at least 8 nb + 8; zero past W). Pooled row i reads input rows 2i .. 2i + 3, the previous one
// 2i - 2 .. 2i + 1: rows R = 0, 1 are then copied from its rows 2, 3 (band row prev, which may be
// ib itself with bands of one row), and only rows 2, 3 are made.
inline void block_rows(const float* x, int64_t C, int64_t H, int64_t W, int64_t i, int64_t ib,
                       int64_t prev, int64_t band, int64_t nb, int64_t L, float* row, float* xb) {
  for (int64_t c = 0; c < C; ++c) {
    if (prev >= 0) {
      const float* from = xb + (c * band + prev) * nb * 192 + 96;
      float* to = xb + (c * band + ib) * nb * 192;
      for (int64_t jb = 0; jb < nb; ++jb, from += 192, to += 192)
#pragma GCC unroll 12
        for (int k = 0; k < 96; k += 8) _mm256_store_ps(to + k, _mm256_load_ps(from + k));
    }
    for (int64_t r = prev >= 0 ? 2 : 0; r < 4; ++r) {
      const float* src = x + (c * H + 2 * i + r) * W;
      for (int64_t j = 0; j < L; j += 8) {  // 16 input floats, masked past W, per step
        __m256 a, b, ev, od;
        load16(src + 2 * j, W - 2 * j, a, b);
        split16(a, b, ev, od);
        _mm256_store_ps(row + j, ev);
        _mm256_store_ps(row + L + j, od);
      }
      float* dst = xb + ((c * band + ib) * nb * 4 + r) * 48;
      for (int64_t jb = 0; jb < nb; ++jb, dst += 192) {
        const __m256 v0 = _mm256_load_ps(row + 8 * jb), v1 = _mm256_load_ps(row + L + 8 * jb),
                     v2 = _mm256_loadu_ps(row + 8 * jb + 1),
                     v3 = _mm256_loadu_ps(row + L + 8 * jb + 1);
        _mm256_store_ps(dst, v0);
        _mm256_store_ps(dst + 8, v1);
        _mm256_store_ps(dst + 16, v2);
        _mm256_store_ps(dst + 24, _mm256_xor_ps(v0, v1));
        _mm256_store_ps(dst + 32, _mm256_xor_ps(v1, v2));
        _mm256_store_ps(dst + 40, _mm256_xor_ps(v2, v3));
      }
    }
  }
}

// One channel's 9 sums a[3r + s] += g x[2i + dy + r][2j + dx + s] for the 8 windows of a block at
// the argmax's place (dy, dx). Per input row R of the window's four, the patch columns s = 0, 1,
// 2 are picked by dx with two logic ops each from block_rows' vectors (and, xor: on Zen 3 these
// run on the two vector pipes that the multiply-adds leave free, where blends share the FMA
// pipes), and go to patch row R times gu (the argmax in the upper row) and to patch row R - 1
// times gl (the lower row): 18 multiply-adds, of which a window's lane gets one non-zero product
// per sum, the reference's (x finite: the zero factors add exact zeros). 24 aligned loads, 12
// picks, 18 FMAs, 14 registers.
__attribute__((always_inline)) inline void grad_block(const float* xb, const float* gd,
                                                      __m256 (&a)[9]) {
  const __m256 gu = _mm256_loadu_ps(gd), gl = _mm256_loadu_ps(gd + 8),
               rt = _mm256_loadu_ps(gd + 16);
#pragma GCC unroll 4
  for (int R = 0; R < 4; ++R) {
    const float* p = xb + R * 48;
#pragma GCC unroll 3
    for (int s = 0; s < 3; ++s) {
      const __m256 c = _mm256_xor_ps(_mm256_load_ps(p + 8 * s),
                                     _mm256_and_ps(_mm256_load_ps(p + 24 + 8 * s), rt));
      if (R <= 2) a[3 * R + s] = _mm256_fmadd_ps(gu, c, a[3 * R + s]);
      if (R >= 1) a[3 * R - 3 + s] = _mm256_fmadd_ps(gl, c, a[3 * R - 3 + s]);
    }
  }
}

template <int Act, bool Far>
IMGSIM_SCHED_PRESSURE void grad_rows(const float* x, int64_t C, int64_t H, int64_t W,
                                     const float* dy, const float* y, float slope_f,
                                     const int32_t* arg, int64_t ldg, int64_t K, int64_t i0,
                                     int64_t i1, float* acc, float* scratch) {
  const int64_t Q = W - 2, qp = Q / 2, nw = 9 * C + 1, nb = (qp + 7) / 8;
  const int64_t L = nb * 8 + 8;
  // Bands of pooled rows (conv3x3_grad_band_avx2): the band's block_rows for every channel,
  // then groups of up to kGradGroup filters: their window gradients (gd: filter, band row, block,
  // 24 floats), then channel by channel and even / odd blocks (a block of 8 windows at column
  // 8 jb feeds lanes 8 (jb % 2) .. + 7 of the caller's 16, window j lane j % 16, each lane's
  // products in the reference's order: pooled row, window), filter by filter with the
  // channel's 9 sums in registers over the band. The band is as many rows as keep one channel's
  // half of the blocks and a filter's gd within about 24 KiB of L1, which the group's filters
  // then read from there (the group's gd, up to 129 KiB for the seed, stays in L2).
  const int64_t band = conv3x3_grad_band_avx2(W, i1 - i0);
  scratch = align64(scratch);
  float* xb = scratch;
  float* gd = xb + band * C * nb * 192;
  float* row = gd + kGradGroup * band * nb * 24;
  const __m256 slope = _mm256_set1_ps(slope_f);
  for (int64_t b0 = i0; b0 < i1; b0 += band) {
    const int64_t b1 = b0 + band < i1 ? b0 + band : i1;
    for (int64_t i = b0; i < b1; ++i)  // the call's first row whole, then two new rows each
      block_rows(x, C, H, W, i, i - b0, i == i0 ? -1 : (i > b0 ? i - b0 - 1 : band - 1), band, nb,
                 L, row, xb);
    // The next band's new input rows (it reads 2 b1 .. 2 b2 + 1; 2 b1 and 2 b1 + 1 were read
    // here), a line or two per pass of products.
    LinePrefetch pfx;
    if (Far && b1 < i1) pfx.add_rows(x, C, H, W, 2 * b1 + 2, 2 * std::min(b1 + band, i1) + 2);
    for (int64_t k0 = 0; k0 < K; k0 += kGradGroup) {
      const int64_t k1 = k0 + kGradGroup < K ? k0 + kGradGroup : K;
      for (int64_t k = k0; k < k1; ++k) {
        float* ab = acc + (k * nw + 9 * C) * 16;
        __m256 bsum[2] = {_mm256_loadu_ps(ab), _mm256_loadu_ps(ab + 8)};
        float* gk = gd + (k - k0) * band * nb * 24;
        // Far (the image's dy, y and arg outgrow L2, so come from memory): the filter two ahead
        // (past K: the next band's), a line of dy, y and arg per 16 windows. Each filter's rows
        // are a short run of their own, which the hardware prefetcher picks up only after its
        // first misses. Seed conv1 + pool1 backward 45.3 -> 41.0 ms per batch; Fashion-MNIST's
        // (in cache) ran 5 % slower with the prefetch code in the loop, so it has a loop without.
        const int64_t kp = k + 2 < K ? k + 2 : k + 2 - K, shift = k + 2 < K ? 0 : band * qp;
        for (int64_t i = b0; i < b1; ++i)
          for (int64_t jb = 0; jb < nb; jb += 2) {  // an even block, then an odd one if any
            if (Far && (k + 2 < K || i + band < i1)) {
              const int64_t at = kp * ldg + i * qp + 8 * jb + shift;
              _mm_prefetch(reinterpret_cast<const char*>(dy + at), _MM_HINT_T0);
              _mm_prefetch(reinterpret_cast<const char*>(arg + at), _MM_HINT_T0);
              if (Act != 0) _mm_prefetch(reinterpret_cast<const char*>(y + at), _MM_HINT_T0);
            }
#pragma GCC unroll 2
            for (int64_t h = 0; h < 2; ++h) {
              const int64_t j0 = 8 * (jb + h), n = qp - j0 < 8 ? qp - j0 : 8;
              if (n <= 0) break;
              const __m256 g = window_grads<Act>(dy + k * ldg, y + k * ldg, arg + k * ldg, i, j0, n,
                                                 qp, Q, slope, gk + ((i - b0) * nb + jb + h) * 24);
              bsum[h] = _mm256_add_ps(bsum[h], g);
            }
          }
        _mm256_storeu_ps(ab, bsum[0]);
        _mm256_storeu_ps(ab + 8, bsum[1]);
      }
      for (int64_t c = 0; c < C; ++c)
        for (int64_t h = 0; h < 2; ++h)
          for (int64_t k = k0; k < k1; ++k) {
            float* ak = acc + (k * nw + 9 * c) * 16 + 8 * h;
            const float* gk = gd + (k - k0) * band * nb * 24;
            __m256 a[9];
#pragma GCC unroll 9
            for (int t = 0; t < 9; ++t) a[t] = _mm256_loadu_ps(ak + 16 * t);
            for (int64_t i = b0; i < b1; ++i) {
              const float* xr = xb + (c * band + i - b0) * nb * 192;
              const float* gi = gk + (i - b0) * nb * 24;
              for (int64_t jb = h; jb < nb; jb += 2) grad_block(xr + jb * 192, gi + jb * 24, a);
            }
#pragma GCC unroll 9
            for (int t = 0; t < 9; ++t) _mm256_storeu_ps(ak + 16 * t, a[t]);
            if (Far) {
              pfx.step();
              pfx.step();
            }
          }
    }
  }
}

}  // namespace

void conv3x3_pool_grad(const float* x, int64_t C, int64_t H, int64_t W, const float* dy,
                       const float* y, int act, float slope, const int32_t* arg, int64_t ldg,
                       int64_t K, int64_t i0, int64_t i1, float* acc, float* scratch) {
  const bool far = K * ldg * 12 > 512 * 1024;  // dy, y and arg of all filters, bytes
  with_act(act, [&](auto a) {
    constexpr int A = decltype(a)::value;
    if (far)
      grad_rows<A, true>(x, C, H, W, dy, y, slope, arg, ldg, K, i0, i1, acc, scratch);
    else
      grad_rows<A, false>(x, C, H, W, dy, y, slope, arg, ldg, K, i0, i1, acc, scratch);
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
