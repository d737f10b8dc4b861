// AVX-512 transpose, gathered accumulation and scattered axpy (kernels.hpp).
//
// transpose: 16 x 16 blocks transposed in registers (in-lane unpacks of floats, then of float
// pairs, then two rounds of 128-bit lane shuffles); the row and column tails of a block use
// masked loads (missing rows read as zero) and masked stores.
//
// gather_acc: per segment, 32 floats of the accumulator at a time (two zmm), four rows in flight
// with their own accumulators (eight zmm) so that the FMA latency is hidden; the row tail uses
// masked loads, which never touch the masked-off floats. Order of the sums: row i < 4 floor(count /
// 4) goes to accumulator i mod 4, the rest to accumulator 0; the four are added ((a0 + a1) + (a2 +
// a3)) and then to acc.
#include <cstdint>

#include "kernels/kernels.hpp"

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512DQ__) && defined(__AVX512VL__)
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
  for (int64_t sg = 0; sg < nseg; ++sg) {
    for (int64_t c0 = 0; c0 < n; c0 += 32) {
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
bool sparse_compiled() {
  return false;
}

#endif

}  // namespace imgsim::kernels::avx512
