// AVX2 transpose, gathered accumulation, scattered axpy and pooled scatter (kernels.hpp).
//
// transpose: 8 x 8 blocks transposed in registers (in-lane unpacks and shuffles, then 128-bit
// lane permutes); the column tail of a block uses masked loads (missing rows read as zero), the
// row tail a copy through a local (no masked stores: vmaskmovps to memory is slow on AMD).
//
// gather_acc: per segment, 16 floats of the accumulator at a time (two ymm), two rows in flight
// with their own accumulators (four ymm); the row tail uses masked loads, which never touch the
// masked-off floats. Order of the sums: position i goes to accumulator i mod 2 (the last of an
// odd count to 0), then (a0 + a1) to acc. scatter_axpy: per segment, 8 floats of w in a register.
// pool_scatter: for a 3x3 filter and C a multiple of 16, a window's filters summed in registers
// (half a window at a time); otherwise filter by filter, as scatter_axpy over the windows.
#include <cstdint>

#include "kernels/kernels.hpp"

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define IMGSIM_HAVE_AVX2_SPARSE 1
#endif

namespace imgsim::kernels::avx2 {

#ifdef IMGSIM_HAVE_AVX2_SPARSE

namespace {

// Lanes [0, n) set (all bits of a lane), n in [0, 8].
inline __m256i lanes(int64_t n) {
  const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), iota);
}

// r[0..8) rows in, columns out.
inline void transpose8(__m256 r[8]) {
  __m256 t[8];
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);      // a0 b0 a1 b1 per 128-bit lane
    t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);  // a2 b2 a3 b3
  }
  for (int i = 0; i < 8; i += 4) {
    r[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);          // a0 b0 c0 d0
    r[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);      // a1 b1 c1 d1
    r[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);  // a2 b2 c2 d2
    r[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);  // a3 b3 c3 d3
  }
  for (int m = 0; m < 4; ++m) {
    t[m] = _mm256_permute2f128_ps(r[m], r[4 + m], 0x20);      // column m
    t[4 + m] = _mm256_permute2f128_ps(r[m], r[4 + m], 0x31);  // column 4 + m
  }
  for (int i = 0; i < 8; ++i) r[i] = t[i];
}

// d[i] += v[i] for the lanes set in m (a prefix): unmasked when all are, otherwise through a
// local (no masked stores: vmaskmovps to memory is slow on AMD).
inline void add_lanes(float* d, __m256 v, __m256i m) {
  const int mm = _mm256_movemask_ps(_mm256_castsi256_ps(m));
  if (mm == 0xFF) {
    _mm256_storeu_ps(d, _mm256_add_ps(_mm256_loadu_ps(d), v));
    return;
  }
  alignas(32) float part[8];
  _mm256_store_ps(part, v);
  for (int i = 0; i < 8 && (mm >> i & 1); ++i) d[i] += part[i];
}

template <bool Two>
void gather_block(int64_t count, const float* g, const int64_t* off, const float* x, __m256i m0,
                  __m256i m1, float* acc) {
  __m256 a[2], b[2];
  for (int u = 0; u < 2; ++u) a[u] = b[u] = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 2 <= count; i += 2) {
    for (int u = 0; u < 2; ++u) {
      const float* p = x + off[i + u];
      const __m256 gv = _mm256_set1_ps(g[i + u]);
      a[u] = _mm256_fmadd_ps(gv, _mm256_maskload_ps(p, m0), a[u]);
      if constexpr (Two) b[u] = _mm256_fmadd_ps(gv, _mm256_maskload_ps(p + 8, m1), b[u]);
    }
  }
  if (i < count) {
    const float* p = x + off[i];
    const __m256 gv = _mm256_set1_ps(g[i]);
    a[0] = _mm256_fmadd_ps(gv, _mm256_maskload_ps(p, m0), a[0]);
    if constexpr (Two) b[0] = _mm256_fmadd_ps(gv, _mm256_maskload_ps(p + 8, m1), b[0]);
  }
  add_lanes(acc, _mm256_add_ps(a[0], a[1]), m0);
  if constexpr (Two) add_lanes(acc + 8, _mm256_add_ps(b[0], b[1]), m1);
}

// pool_scatter for a 3x3 filter, 8 channels of a block of 16, filters [kb, kb + 32): half H of the
// window's 4 x 4 pixels (rows 2H, 2H + 1) in a[8]; filter kb + t (bit t of m, its 9 taps of 16
// channels 144 floats apart per filter from wk0) with its argmax DY rows down and DX columns right
// adds g w to those of its 3 x 3 pixels that lie in the half, the filters of each of the four
// places in order.
template <int DY, int DX, int H>
__attribute__((always_inline)) inline void pool_fma8(uint32_t m, const float* gj, const float* wk0,
                                                     __m256 (&a)[8]) {
  while (m) {
    const int t = __builtin_ctz(m);
    m &= m - 1;
    const __m256 gv = _mm256_set1_ps(gj[t]);
    const float* wk = wk0 + t * 144;
#pragma GCC unroll 3
    for (int r = 0; r < 3; ++r) {
      const int rr = DY + r - 2 * H;  // the pixel row within the half
      if (rr < 0 || rr > 1) continue;
#pragma GCC unroll 3
      for (int s = 0; s < 3; ++s)
        a[rr * 4 + DX + s] =
            _mm256_fmadd_ps(gv, _mm256_loadu_ps(wk + (r * 3 + s) * 16), a[rr * 4 + DX + s]);
    }
  }
}

// Half H of a window (pixel rows 2H, 2H + 1 of its 4 x 4, 8 channels at xo) for filters whose
// argmax places are the bits of m[0..3]: summed in 8 accumulators, then added to x.
template <int H>
__attribute__((always_inline)) inline void pool_half(const uint32_t (&m)[4], const float* gj,
                                                     const float* wh, float* xo, int64_t ldrow,
                                                     int64_t C) {
  __m256 a[8];
#pragma GCC unroll 8
  for (int i = 0; i < 8; ++i) a[i] = _mm256_setzero_ps();
  pool_fma8<0, 0, H>(m[0], gj, wh, a);
  pool_fma8<0, 1, H>(m[1], gj, wh, a);
  pool_fma8<1, 0, H>(m[2], gj, wh, a);
  pool_fma8<1, 1, H>(m[3], gj, wh, a);
#pragma GCC unroll 8
  for (int i = 0; i < 8; ++i) {
    float* p = xo + (2 * H + i / 4) * ldrow + (i % 4) * C;
    _mm256_storeu_ps(p, _mm256_add_ps(_mm256_loadu_ps(p), a[i]));
  }
}

}  // namespace

void transpose(const float* a, int64_t lda, int64_t rows, int64_t cols, float* t, int64_t ldt) {
  __m256 r[8];
  alignas(32) float part[8];
  for (int64_t i0 = 0; i0 < rows; i0 += 8) {
    const int64_t rb = rows - i0 < 8 ? rows - i0 : 8;
    for (int64_t j0 = 0; j0 < cols; j0 += 8) {
      const int64_t cb = cols - j0 < 8 ? cols - j0 : 8;
      const __m256i mcol = lanes(cb);
      for (int64_t i = 0; i < 8; ++i)
        r[i] = i >= rb   ? _mm256_setzero_ps()
               : cb == 8 ? _mm256_loadu_ps(a + (i0 + i) * lda + j0)
                         : _mm256_maskload_ps(a + (i0 + i) * lda + j0, mcol);
      transpose8(r);
      // A masked store (vmaskmovps) is slow on some CPUs (AMD); the row tail is copied instead.
      for (int64_t j = 0; j < cb; ++j) {
        float* d = t + (j0 + j) * ldt + i0;
        if (rb == 8) {
          _mm256_storeu_ps(d, r[j]);
        } else {
          _mm256_store_ps(part, r[j]);
          for (int64_t i = 0; i < rb; ++i) d[i] = part[i];
        }
      }
    }
  }
}

void gather_acc(int64_t count, const float* g, const int64_t* off, const float* x,
                const int64_t* seg, int64_t nseg, int64_t n, float* acc) {
  for (int64_t sg = 0; sg < nseg; ++sg) {
    for (int64_t c0 = 0; c0 < n; c0 += 16) {
      const int64_t nc = n - c0 < 16 ? n - c0 : 16;
      const float* xs = x + seg[sg] + c0;
      float* as = acc + sg * n + c0;
      if (nc > 8)
        gather_block<true>(count, g, off, xs, lanes(8), lanes(nc - 8), as);
      else
        gather_block<false>(count, g, off, xs, lanes(nc), lanes(0), as);
    }
  }
}

void scatter_axpy(int64_t count, const float* g, const int64_t* off, const float* w,
                  const int64_t* seg, int64_t nseg, int64_t n, float* x) {
  // 8 floats of w in a register, every position in order, unmasked (a masked store is slow on
  // some CPUs); the last n % 8 floats of each run one at a time.
  const int64_t full = n / 8 * 8;
  for (int64_t sg = 0; sg < nseg; ++sg) {
    float* xs = x + seg[sg];
    const float* ws = w + sg * n;
    for (int64_t c0 = 0; c0 < full; c0 += 8) {
      const __m256 w0 = _mm256_loadu_ps(ws + c0);
      for (int64_t i = 0; i < count; ++i) {
        float* r = xs + off[i] + c0;
        _mm256_storeu_ps(r, _mm256_fmadd_ps(_mm256_set1_ps(g[i]), w0, _mm256_loadu_ps(r)));
      }
    }
    if (full < n)
      for (int64_t i = 0; i < count; ++i) {
        float* r = xs + off[i];
        for (int64_t c = full; c < n; ++c) r[c] += g[i] * ws[c];
      }
  }
}

void pool_scatter(int64_t nwin, int64_t K, const float* g, const uint8_t* sel, const int64_t* org,
                  const float* w, int64_t R, int64_t S, int64_t C, int64_t ldrow, float* x) {
  if (R == 3 && S == 3 && C % 16 == 0) {
    // As AVX-512 does, a window's filters summed in registers and its 4 x 4 pixels added to x once
    // per group of 32 filters, rather than each filter's 3 x 3 patch read and written back (the
    // store rate bounds that: Fashion-MNIST's conv2 + pool backward spent 58 % of its time in
    // the filter-by-filter loop below). The 16 pixels of 8 channels would take all 16 ymm
    // registers, so each half of the window (two pixel rows, 8 accumulators) is summed in turn,
    // every filter visited once per half. A block of 16 channels (the packed weights of 32
    // filters, 18 KB, stay in L1 while every window is visited), then 32 filters, then the
    // windows in order; per window its filters grouped by argmax place, in filter order.
    for (int64_t cb = 0; cb < C / 16; ++cb)
      for (int64_t kb = 0; kb < K; kb += 32) {
        const int64_t nk = K - kb < 32 ? K - kb : 32;
        const float* wk0 = w + (cb * K + kb) * 144;
        for (int64_t j = 0; j < nwin; ++j) {
          const uint8_t* sj = sel + j * K + kb;
          uint32_t m[4] = {0, 0, 0, 0};
          for (int64_t t = 0; t < nk; ++t) m[sj[t] & 3] |= uint32_t{1} << t;
          const float* gj = g + j * K + kb;
          float* xo = x + org[j] + 16 * cb;
          for (int64_t eh = 0; eh < 16; eh += 8) {
            const float* wh = wk0 + eh;
            pool_half<0>(m, gj, wh, xo + eh, ldrow, C);
            pool_half<1>(m, gj, wh, xo + eh, ldrow, C);
          }
        }
      }
    return;
  }
  // Otherwise as scatter_axpy, filter by filter (the reference's order), up to 64 windows at a
  // time with their patch offsets and g first gathered: 8 channels of a filter tap in a
  // register, every window in order; a block's last C % 8 channels one at a time.
  const int64_t RS = R * S;
  int64_t off[64];
  float gk[64];
  for (int64_t k = 0; k < K; ++k)
    for (int64_t j0 = 0; j0 < nwin; j0 += 64) {
      const int64_t nj = nwin - j0 < 64 ? nwin - j0 : 64;
      for (int64_t j = 0; j < nj; ++j) {
        const int64_t sl = sel[(j0 + j) * K + k];
        off[j] = org[j0 + j] + (sl >> 1) * ldrow + (sl & 1) * C;
        gk[j] = g[(j0 + j) * K + k];
      }
      for (int64_t r = 0; r < R; ++r)
        for (int64_t s = 0; s < S; ++s) {
          float* xp = x + r * ldrow + s * C;
          for (int64_t e = 0; e < C; e += 8) {
            const float* wv = w + ((e / 16 * K + k) * RS + r * S + s) * 16 + e % 16;
            if (C - e >= 8) {
              const __m256 wr = _mm256_loadu_ps(wv);
              for (int64_t j = 0; j < nj; ++j) {
                float* p = xp + off[j] + e;
                _mm256_storeu_ps(p, _mm256_fmadd_ps(_mm256_set1_ps(gk[j]), wr, _mm256_loadu_ps(p)));
              }
            } else {
              for (int64_t j = 0; j < nj; ++j)
                for (int64_t l = 0; l < C - e; ++l) xp[off[j] + e + l] += gk[j] * wv[l];
            }
          }
        }
    }
}

bool sparse_compiled() {
  return true;
}

#else  // this build cannot compile AVX2 code; the registry never selects it

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

}  // namespace imgsim::kernels::avx2
