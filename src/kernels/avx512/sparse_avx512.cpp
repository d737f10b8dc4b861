// AVX-512 transpose, gathered accumulation, scattered axpy and pooled scatter (kernels.hpp).
//
// transpose: 16 x 16 blocks transposed in registers (in-lane unpacks of floats, then of float
// pairs, then two rounds of 128-bit lane shuffles); the row and column tails of a block use
// masked loads (missing rows read as zero) and masked stores.
//
// gather_acc: with runs of a multiple of 16 floats, up to 3 runs x 8 vectors per pass over the
// positions (gather_runs: one accumulator per vector, every position in order, then added to
// acc), so that a channels-last patch (R runs of S C floats) costs one pass. Otherwise, and for
// what would leave fewer than 4 accumulators (the FMA latency): per run, 32 floats of the
// accumulator at a time (two zmm), four rows in flight with their own accumulators (eight zmm);
// the row tail uses masked loads, which never touch the masked-off floats. Order of those sums:
// row i < 4 floor(count / 4) goes to accumulator i mod 4, the rest to accumulator 0; the four are
// added ((a0 + a1) + (a2 + a3)) and then to acc.
//
// scatter_axpy: runs of a multiple of 16 floats, at most 3 x 128: all of w in registers and every
// position in order (scatter_runs); otherwise per run, 32 floats of w in registers.
//
// pool_scatter, 3x3 filters and a multiple of 16 channels: 16 channels, then 32 filters at a time,
// then the windows in order; a window's 4 x 4 pixels are summed in 16 registers over its filters
// (grouped by the argmax's place, each filter's 9 products added to the 9 pixels under it) and
// added to x once. That is 16 stores per window and group instead of 9 per filter: the scatter is
// bound by stores (a 64-byte store takes two cycles on Zen 4). Other shapes: every (window,
// filter) in order, a patch row 16 floats at a time.
#include <array>
#include <cstddef>
#include <cstdint>
#include <utility>

#include "kernels/kernels.hpp"

#if (defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512DQ__) && \
     defined(__AVX512VL__)) ||                                                 \
    defined(IMGSIM_EMULATE_AVX512)  // tests: avx512/emulate.hpp
// GCC 12's AVX-512 shuffle intrinsics pass _mm512_undefined_ps() as the unused merge source, which
// -Wuninitialized reports once they are inlined (GCC bug 105593, fixed in GCC 13).
#pragma GCC diagnostic ignored "-Wuninitialized"
#ifndef __clang__
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // (GCC only)
#endif
#include <immintrin.h>
#define IMGSIM_HAVE_AVX512_SPARSE 1
#endif

namespace imgsim::kernels::avx512 {

#ifdef IMGSIM_HAVE_AVX512_SPARSE

namespace {

// Lanes [0, n) set, n in [0, 16].
inline __mmask16 lanes(int64_t n) {
  return n >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << n) - 1u);
}

inline __m512 unpacklo_pd(__m512 a, __m512 b) {
  return _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(a), _mm512_castps_pd(b)));
}
inline __m512 unpackhi_pd(__m512 a, __m512 b) {
  return _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(a), _mm512_castps_pd(b)));
}

// r[0..16) rows in, columns out: r[j] lane i = old r[i] lane j.
inline void transpose16(__m512 r[16]) {
  __m512 t[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);      // a0 b0 a1 b1 per 128-bit lane
    t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);  // a2 b2 a3 b3
  }
  for (int i = 0; i < 16; i += 4) {
    r[i] = unpacklo_pd(t[i], t[i + 2]);          // a0 b0 c0 d0
    r[i + 1] = unpackhi_pd(t[i], t[i + 2]);      // a1 b1 c1 d1
    r[i + 2] = unpacklo_pd(t[i + 1], t[i + 3]);  // a2 b2 c2 d2
    r[i + 3] = unpackhi_pd(t[i + 1], t[i + 3]);  // a3 b3 c3 d3
  }
  // r[4q + m], lane L: rows 4q..4q+3 of column 4L + m. Group the rows by eights, then sixteens.
  for (int m = 0; m < 4; ++m) {
    t[m] = _mm512_shuffle_f32x4(r[m], r[4 + m], 0x88);      // columns m, 8+m of rows 0..7
    t[4 + m] = _mm512_shuffle_f32x4(r[m], r[4 + m], 0xDD);  // columns 4+m, 12+m
    t[8 + m] = _mm512_shuffle_f32x4(r[8 + m], r[12 + m], 0x88);
    t[12 + m] = _mm512_shuffle_f32x4(r[8 + m], r[12 + m], 0xDD);
  }
  for (int m = 0; m < 4; ++m) {
    r[m] = _mm512_shuffle_f32x4(t[m], t[8 + m], 0x88);            // column m
    r[8 + m] = _mm512_shuffle_f32x4(t[m], t[8 + m], 0xDD);        // column 8 + m
    r[4 + m] = _mm512_shuffle_f32x4(t[4 + m], t[12 + m], 0x88);   // column 4 + m
    r[12 + m] = _mm512_shuffle_f32x4(t[4 + m], t[12 + m], 0xDD);  // column 12 + m
  }
}

template <bool Two>
void gather_block(int64_t count, const float* g, const int64_t* off, const float* x, __mmask16 m0,
                  __mmask16 m1, float* acc) {
  __m512 a[4], b[4];
  for (int u = 0; u < 4; ++u) a[u] = b[u] = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 4 <= count; i += 4) {
    for (int u = 0; u < 4; ++u) {
      const float* p = x + off[i + u];
      const __m512 gv = _mm512_set1_ps(g[i + u]);
      a[u] = _mm512_fmadd_ps(gv, _mm512_maskz_loadu_ps(m0, p), a[u]);
      if constexpr (Two) b[u] = _mm512_fmadd_ps(gv, _mm512_maskz_loadu_ps(m1, p + 16), b[u]);
    }
  }
  // The last count % 4 rows into the first accumulators (a constant index: a variable one would
  // keep all eight in memory).
  for (; i < count; ++i) {
    const float* p = x + off[i];
    const __m512 gv = _mm512_set1_ps(g[i]);
    a[0] = _mm512_fmadd_ps(gv, _mm512_maskz_loadu_ps(m0, p), a[0]);
    if constexpr (Two) b[0] = _mm512_fmadd_ps(gv, _mm512_maskz_loadu_ps(m1, p + 16), b[0]);
  }
  const __m512 sa = _mm512_add_ps(_mm512_add_ps(a[0], a[1]), _mm512_add_ps(a[2], a[3]));
  _mm512_mask_storeu_ps(acc, m0, _mm512_add_ps(_mm512_maskz_loadu_ps(m0, acc), sa));
  if constexpr (Two) {
    const __m512 sb = _mm512_add_ps(_mm512_add_ps(b[0], b[1]), _mm512_add_ps(b[2], b[3]));
    _mm512_mask_storeu_ps(acc + 16, m1, _mm512_add_ps(_mm512_maskz_loadu_ps(m1, acc + 16), sb));
  }
}

// NS runs x CW vectors per position in registers (NS CW accumulators, one per 16 floats), every
// position in order into its own accumulator, which is added to acc at the end. For runs whose
// length is a multiple of 16: a channels-last patch row (S C floats) is one run, so that one pass
// over the positions covers several runs and the per-position work (offset, broadcast) is shared.
template <int NS, int CW>
void gather_runs(int64_t count, const float* g, const int64_t* off, const float* x,
                 const int64_t* seg, int64_t n, float* acc) {
  __m512 a[NS][CW];
  const float* xs[NS];
  for (int s = 0; s < NS; ++s) {
    xs[s] = x + seg[s];
    for (int c = 0; c < CW; ++c) a[s][c] = _mm512_setzero_ps();
  }
  for (int64_t i = 0; i < count; ++i) {
    const __m512 gv = _mm512_set1_ps(g[i]);
    const int64_t o = off[i];
    for (int s = 0; s < NS; ++s)
      for (int c = 0; c < CW; ++c)
        a[s][c] = _mm512_fmadd_ps(gv, _mm512_loadu_ps(xs[s] + o + 16 * c), a[s][c]);
  }
  for (int s = 0; s < NS; ++s)
    for (int c = 0; c < CW; ++c) {
      float* d = acc + s * n + 16 * c;
      _mm512_storeu_ps(d, _mm512_add_ps(_mm512_loadu_ps(d), a[s][c]));
    }
}

using GatherRunsFn = void (*)(int64_t, const float*, const int64_t*, const float*, const int64_t*,
                              int64_t, float*);

// gather_runs<NS, CW> for NS in [1, 3], CW in [1, 8] (index (NS - 1) * 8 + CW - 1).
template <int... I>
constexpr std::array<GatherRunsFn, sizeof...(I)> gather_runs_table(
    std::integer_sequence<int, I...>) {
  return {&gather_runs<I / 8 + 1, I % 8 + 1>...};
}
constexpr auto kGatherRuns = gather_runs_table(std::make_integer_sequence<int, 24>{});

// x[off[i] + seg[s] + 16 c ..] += g[i] w[s n + 16 c ..] for NS runs x CW vectors, w in
// registers, every position in order, each vector loaded, updated and stored in program order
// (so overlapping patches add up as in the reference).
template <int NS, int CW>
void scatter_runs(int64_t count, const float* g, const int64_t* off, const float* w,
                  const int64_t* seg, int64_t n, float* x) {
  __m512 wv[NS][CW];
  float* xs[NS];
  for (int s = 0; s < NS; ++s) {
    xs[s] = x + seg[s];
    for (int c = 0; c < CW; ++c) wv[s][c] = _mm512_loadu_ps(w + s * n + 16 * c);
  }
  for (int64_t i = 0; i < count; ++i) {
    const __m512 gv = _mm512_set1_ps(g[i]);
    const int64_t o = off[i];
    for (int s = 0; s < NS; ++s)
      for (int c = 0; c < CW; ++c) {
        float* r = xs[s] + o + 16 * c;
        _mm512_storeu_ps(r, _mm512_fmadd_ps(gv, wv[s][c], _mm512_loadu_ps(r)));
      }
  }
}

template <int... I>
constexpr std::array<GatherRunsFn, sizeof...(I)> scatter_runs_table(
    std::integer_sequence<int, I...>) {
  return {&scatter_runs<I / 8 + 1, I % 8 + 1>...};
}
constexpr auto kScatterRuns = scatter_runs_table(std::make_integer_sequence<int, 24>{});

// pool_scatter for a 3x3 filter, one block of 16 channels, filters [kb, kb + 32): the window's
// 4 x 4 pixels in a[16]; filter kb + t (bit t of m, its 9 x 16 weights at wk0 + 144 t) with its
// argmax DY rows down and DX columns right adds g w to the 3 x 3 of them there, the filters of
// each of the four places in order.
template <int DY, int DX>
__attribute__((always_inline)) inline void pool_fma(uint32_t m, const float* gj, const float* wk0,
                                                    __m512 (&a)[16]) {
  while (m) {
    const int t = __builtin_ctz(m);
    m &= m - 1;
    const __m512 gv = _mm512_set1_ps(gj[t]);
    const float* wk = wk0 + t * 144;
    for (int r = 0; r < 3; ++r)
      for (int s = 0; s < 3; ++s)
        a[(DY + r) * 4 + DX + s] =
            _mm512_fmadd_ps(gv, _mm512_loadu_ps(wk + (r * 3 + s) * 16), a[(DY + r) * 4 + DX + s]);
  }
}

}  // namespace

void transpose(const float* a, int64_t lda, int64_t rows, int64_t cols, float* t, int64_t ldt) {
  __m512 r[16];
  for (int64_t i0 = 0; i0 < rows; i0 += 16) {
    const int64_t rb = rows - i0 < 16 ? rows - i0 : 16;
    const __mmask16 mrow = lanes(rb);
    for (int64_t j0 = 0; j0 < cols; j0 += 16) {
      const int64_t cb = cols - j0 < 16 ? cols - j0 : 16;
      const __mmask16 mcol = lanes(cb);
      for (int64_t i = 0; i < 16; ++i)
        r[i] = i < rb ? _mm512_maskz_loadu_ps(mcol, a + (i0 + i) * lda + j0) : _mm512_setzero_ps();
      transpose16(r);
      for (int64_t j = 0; j < cb; ++j) _mm512_mask_storeu_ps(t + (j0 + j) * ldt + i0, mrow, r[j]);
    }
  }
}

void gather_acc(int64_t count, const float* g, const int64_t* off, const float* x,
                const int64_t* seg, int64_t nseg, int64_t n, float* acc) {
  // Whole vectors: up to 3 runs x 8 vectors per pass over the positions (at most 24
  // accumulators), when that makes at least 4 (the FMA latency); the rest as below.
  int64_t c_done = 0;
  if (n % 16 == 0 && count > 0) {
    const int64_t nv = n / 16;
    for (int64_t v0 = 0; v0 < nv; v0 += 8) {
      const int64_t cw = nv - v0 < 8 ? nv - v0 : 8;
      const int64_t ns_max = 24 / cw < 3 ? 24 / cw : 3;
      if (cw * (nseg < ns_max ? nseg : ns_max) < 4) break;
      for (int64_t s0 = 0; s0 < nseg; s0 += ns_max) {
        const int64_t ns = nseg - s0 < ns_max ? nseg - s0 : ns_max;
        if (ns * cw >= 4) {
          kGatherRuns[static_cast<std::size_t>((ns - 1) * 8 + cw - 1)](
              count, g, off, x + 16 * v0, seg + s0, n, acc + s0 * n + 16 * v0);
        } else {
          for (int64_t sg = s0; sg < s0 + ns; ++sg)
            for (int64_t c = 16 * v0; c < 16 * (v0 + cw); c += 32) {
              const int64_t nc = 16 * (v0 + cw) - c < 32 ? 16 * (v0 + cw) - c : 32;
              if (nc > 16)
                gather_block<true>(count, g, off, x + seg[sg] + c, lanes(16), lanes(nc - 16),
                                   acc + sg * n + c);
              else
                gather_block<false>(count, g, off, x + seg[sg] + c, lanes(nc), 0, acc + sg * n + c);
            }
        }
      }
      c_done = 16 * (v0 + cw);
    }
  }
  if (c_done == n) return;
  for (int64_t sg = 0; sg < nseg; ++sg) {
    for (int64_t c0 = c_done; c0 < n; c0 += 32) {
      const int64_t nc = n - c0 < 32 ? n - c0 : 32;
      const float* xs = x + seg[sg] + c0;
      float* as = acc + sg * n + c0;
      if (nc > 16)
        gather_block<true>(count, g, off, xs, lanes(16), lanes(nc - 16), as);
      else
        gather_block<false>(count, g, off, xs, lanes(nc), 0, as);
    }
  }
}

void scatter_axpy(int64_t count, const float* g, const int64_t* off, const float* w,
                  const int64_t* seg, int64_t nseg, int64_t n, float* x) {
  // Whole vectors of several runs per pass over the positions, as gather_acc.
  if (n % 16 == 0 && n <= 128 && nseg <= 3 && n / 16 * nseg >= 4) {
    kScatterRuns[static_cast<std::size_t>((nseg - 1) * 8 + n / 16 - 1)](count, g, off, w, seg, n,
                                                                        x);
    return;
  }
  // 32 floats of w in registers, every position in order.
  for (int64_t sg = 0; sg < nseg; ++sg) {
    for (int64_t c0 = 0; c0 < n; c0 += 32) {
      const int64_t nc = n - c0 < 32 ? n - c0 : 32;
      const __mmask16 m0 = lanes(nc), m1 = lanes(nc > 16 ? nc - 16 : 0);
      const float* ws = w + sg * n + c0;
      const __m512 w0 = _mm512_maskz_loadu_ps(m0, ws), w1 = _mm512_maskz_loadu_ps(m1, ws + 16);
      float* xs = x + seg[sg] + c0;
      // Whole vectors unmasked: a masked store does not forward to a later load of the same
      // floats (the next segment's pass reads what this one wrote), which costs a stall.
      if (nc == 32) {
        for (int64_t i = 0; i < count; ++i) {
          float* r = xs + off[i];
          const __m512 gv = _mm512_set1_ps(g[i]);
          _mm512_storeu_ps(r, _mm512_fmadd_ps(gv, w0, _mm512_loadu_ps(r)));
          _mm512_storeu_ps(r + 16, _mm512_fmadd_ps(gv, w1, _mm512_loadu_ps(r + 16)));
        }
      } else if (nc > 16) {
        for (int64_t i = 0; i < count; ++i) {
          float* r = xs + off[i];
          const __m512 gv = _mm512_set1_ps(g[i]);
          _mm512_storeu_ps(r, _mm512_fmadd_ps(gv, w0, _mm512_loadu_ps(r)));
          _mm512_mask_storeu_ps(r + 16, m1,
                                _mm512_fmadd_ps(gv, w1, _mm512_maskz_loadu_ps(m1, r + 16)));
        }
      } else if (nc == 16) {
        for (int64_t i = 0; i < count; ++i) {
          float* r = xs + off[i];
          _mm512_storeu_ps(r, _mm512_fmadd_ps(_mm512_set1_ps(g[i]), w0, _mm512_loadu_ps(r)));
        }
      } else {
        for (int64_t i = 0; i < count; ++i) {
          float* r = xs + off[i];
          const __m512 gv = _mm512_set1_ps(g[i]);
          _mm512_mask_storeu_ps(r, m0, _mm512_fmadd_ps(gv, w0, _mm512_maskz_loadu_ps(m0, r)));
        }
      }
    }
  }
}

void pool_scatter(int64_t nwin, int64_t K, const float* g, const uint8_t* sel, const int64_t* org,
                  const float* w, int64_t R, int64_t S, int64_t C, int64_t ldrow, float* x) {
  if (R == 3 && S == 3 && C % 16 == 0) {
    // A block of 16 channels, then 32 filters at a time (their 32 x 9 x 16 weights, contiguous,
    // stay in L1 while every window is visited), then the windows in order: the window's 4 x 4
    // pixels are summed in registers and added to x once per group of filters, rather than each
    // filter's 3 x 3 patch read and written back (the store rate bounds that).
    for (int64_t cb = 0; cb < C / 16; ++cb) {
      for (int64_t kb = 0; kb < K; kb += 32) {
        const __mmask16 mlo = lanes(K - kb), mhi = lanes(K - kb - 16 > 0 ? K - kb - 16 : 0);
        const float* wk0 = w + (cb * K + kb) * 144;
        for (int64_t j = 0; j < nwin; ++j) {
          const uint8_t* sj = sel + j * K + kb;
          const __m512i lo = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(mlo, sj));
          const __m512i hi = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(mhi, sj + 16));
          uint32_t m[4];
          for (int p = 0; p < 4; ++p) {
            const __m512i pv = _mm512_set1_epi32(p);
            m[p] = static_cast<uint32_t>(_mm512_mask_cmpeq_epi32_mask(mlo, lo, pv)) |
                   static_cast<uint32_t>(_mm512_mask_cmpeq_epi32_mask(mhi, hi, pv)) << 16;
          }
          __m512 a[16];
          for (int i = 0; i < 16; ++i) a[i] = _mm512_setzero_ps();
          const float* gj = g + j * K + kb;
          pool_fma<0, 0>(m[0], gj, wk0, a);
          pool_fma<0, 1>(m[1], gj, wk0, a);
          pool_fma<1, 0>(m[2], gj, wk0, a);
          pool_fma<1, 1>(m[3], gj, wk0, a);
          float* xo = x + org[j] + 16 * cb;
          for (int r = 0; r < 4; ++r)
            for (int s = 0; s < 4; ++s) {
              float* p = xo + r * ldrow + s * C;
              _mm512_storeu_ps(p, _mm512_add_ps(_mm512_loadu_ps(p), a[r * 4 + s]));
            }
        }
      }
    }
    return;
  }
  // Otherwise every (window, filter) in order, a pixel's channels 16 at a time.
  const int64_t RS = R * S;
  for (int64_t j = 0; j < nwin; ++j)
    for (int64_t k = 0; k < K; ++k) {
      const int64_t sl = sel[j * K + k];
      const __m512 gv = _mm512_set1_ps(g[j * K + k]);
      float* base = x + org[j] + (sl >> 1) * ldrow + (sl & 1) * C;
      for (int64_t r = 0; r < R; ++r)
        for (int64_t s = 0; s < S; ++s)
          for (int64_t e = 0; e < C; e += 16) {
            const __mmask16 m = lanes(C - e);
            const float* wv = w + ((e / 16 * K + k) * RS + r * S + s) * 16;
            float* p = base + r * ldrow + s * C + e;
            _mm512_mask_storeu_ps(
                p, m, _mm512_fmadd_ps(gv, _mm512_loadu_ps(wv), _mm512_maskz_loadu_ps(m, p)));
          }
    }
}

bool sparse_compiled() {
  return true;
}

#else  // this build cannot compile AVX-512 code; the registry never selects it

void transpose(const float* a, int64_t lda, int64_t rows, int64_t cols, float* t, int64_t ldt) {
  ref::transpose(a, lda, rows, cols, t, ldt);
}
void gather_acc(int64_t count, const float* g, const int64_t* off, const float* x,
                const int64_t* seg, int64_t nseg, int64_t n, float* acc) {
  ref::gather_acc(count, g, off, x, seg, nseg, n, acc);
}
void scatter_axpy(int64_t count, const float* g, const int64_t* off, const float* w,
                  const int64_t* seg, int64_t nseg, int64_t n, float* x) {
  ref::scatter_axpy(count, g, off, w, seg, nseg, n, x);
}
void pool_scatter(int64_t nwin, int64_t K, const float* g, const uint8_t* sel, const int64_t* org,
                  const float* w, int64_t R, int64_t S, int64_t C, int64_t ldrow, float* x) {
  ref::pool_scatter(nwin, K, g, sel, org, w, R, S, C, ldrow, x);
}
bool sparse_compiled() {
  return false;
}

#endif

}  // namespace imgsim::kernels::avx512
