// AVX2+FMA SGEMM: micro-kernel f32_gemm_6x16__avx2 and the blocked driver (gemm_driver.inc).
//
// Register tile: 6 rows of C x 16 columns = 6 x 2 ymm accumulators (12 of 16 registers); per k
// the kernel loads 2 vectors of packed B (along N) and broadcasts 6 scalars of packed A, for 12
// FMAs. Row tails use an exact-height instantiation (1..6 rows), column tails the 8- or 16-wide
// version plus a maskload / maskstore.
#include <cstdint>
#include <cstdlib>

#include "kernels/kernels.hpp"
#include "kernels/thread_pool.hpp"

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define IMGSIM_HAVE_AVX2_GEMM 1
#endif

namespace imgsim::kernels::avx2 {

#ifdef IMGSIM_HAVE_AVX2_GEMM

namespace {

constexpr int64_t kMR = 6, kNR = 16, kVec = 8;
constexpr int64_t kMC = 120, kKC = 256, kNC = 16 * 192;

// Lanes [0, n) set, n in [0, 8]: an unaligned 8-int window into 8 ones followed by 8 zeros.
inline __m256i lane_mask(int64_t n) {
  alignas(32) static const int32_t kOnesThenZeros[16] = {-1, -1, -1, -1, -1, -1, -1, -1,
                                                         0,  0,  0,  0,  0,  0,  0,  0};
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kOnesThenZeros + 8 - n));
}

// C[R x nr] = alpha * sum_k a[k][0..R) (x) b[k][0..8*NV) + beta * C, nr in (8*(NV-1), 8*NV].
template <int R, int NV, bool PF>
void tile(int64_t kc, const float* __restrict a, const float* __restrict b, int64_t ldbp,
          float* __restrict c, int64_t ldc, float alpha, float beta, int64_t nr, const float* pf,
          int64_t pf_ld) {
  __m256 acc[R][NV];
#pragma GCC unroll 6
  for (int i = 0; i < R; ++i) {
#pragma GCC unroll 2
    for (int j = 0; j < NV; ++j) acc[i][j] = _mm256_setzero_ps();
  }
  // The C tile is needed only after the k loop: fetch it now (every cache line it touches).
  for (int i = 0; i < R; ++i) {
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + 8 * NV - 1), _MM_HINT_T0);
  }
#pragma GCC unroll 4
  for (int64_t k = 0; k < kc; ++k) {
    __m256 bv[NV];
#pragma GCC unroll 2
    for (int j = 0; j < NV; ++j) bv[j] = _mm256_loadu_ps(b + 8 * j);
#pragma GCC unroll 6
    for (int i = 0; i < R; ++i) {
      const __m256 av = _mm256_broadcast_ss(a + i);
#pragma GCC unroll 2
      for (int j = 0; j < NV; ++j) acc[i][j] = _mm256_fmadd_ps(av, bv[j], acc[i][j]);
    }
    if constexpr (PF) {  // next B sliver's source row k: kNR floats, 1 or 2 cache lines
      _mm_prefetch(reinterpret_cast<const char*>(pf), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(pf + kNR - 1), _MM_HINT_T0);
      pf += pf_ld;
    }
    a += kMR;
    b += ldbp;
  }
  const int64_t last_n = nr - 8 * (NV - 1);
  const bool full = last_n >= 8;
  const __m256i last = lane_mask(full ? 8 : last_n);
  const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
#pragma GCC unroll 6
  for (int i = 0; i < R; ++i) {
    float* ci = c + i * ldc;
#pragma GCC unroll 2
    for (int j = 0; j < NV; ++j) {
      __m256 r = alpha == 1.0f ? acc[i][j] : _mm256_mul_ps(va, acc[i][j]);
      if (j < NV - 1 || full) {
        if (beta != 0.0f) {
          const __m256 old = _mm256_loadu_ps(ci + 8 * j);
          r = beta == 1.0f ? _mm256_add_ps(r, old) : _mm256_fmadd_ps(vb, old, r);
        }
        _mm256_storeu_ps(ci + 8 * j, r);
      } else {
        if (beta != 0.0f) {
          const __m256 old = _mm256_maskload_ps(ci + 8 * j, last);
          r = beta == 1.0f ? _mm256_add_ps(r, old) : _mm256_fmadd_ps(vb, old, r);
        }
        _mm256_maskstore_ps(ci + 8 * j, last, r);
      }
    }
  }
}

// In-register 8x8 transpose: r[i] holds row i on entry, column i on exit.
inline void transpose8(__m256 r[8]) {
  const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
  const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
  const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
  const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
  const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
  const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
  const __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
  const __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  r[0] = _mm256_permute2f128_ps(u0, u4, 0x20);
  r[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
  r[2] = _mm256_permute2f128_ps(u2, u6, 0x20);
  r[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
  r[4] = _mm256_permute2f128_ps(u0, u4, 0x31);
  r[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
  r[6] = _mm256_permute2f128_ps(u2, u6, 0x31);
  r[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}

// Transposed B sliver (gemm_driver.inc): d[k * w + j] = s[j * ldb + k] for j < nr, k < kc, zero
// for nr <= j < w; 8x8 blocks through transpose8, scalar edges.
#define IMGSIM_GEMM_HAS_PACK_B_TRANS 1
void pack_b_trans_sliver(const float* s, int64_t ldb, int64_t kc, int64_t nr, int64_t w, float* d) {
  const int64_t j8 = nr / 8 * 8, k8 = kc / 8 * 8;
  for (int64_t j0 = 0; j0 < j8; j0 += 8) {
    for (int64_t k0 = 0; k0 < k8; k0 += 8) {
      __m256 r[8];
      for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(s + (j0 + i) * ldb + k0);
      transpose8(r);
      for (int i = 0; i < 8; ++i) _mm256_storeu_ps(d + (k0 + i) * w + j0, r[i]);
    }
    for (int64_t k = k8; k < kc; ++k)
      for (int64_t i = 0; i < 8; ++i) d[k * w + j0 + i] = s[(j0 + i) * ldb + k];
  }
  for (int64_t j = j8; j < nr; ++j)
    for (int64_t k = 0; k < kc; ++k) d[k * w + j] = s[j * ldb + k];
  for (int64_t j = nr; j < w; ++j)
    for (int64_t k = 0; k < kc; ++k) d[k * w + j] = 0.0f;
}

// Untransposed A panel (gemm_driver.inc): d[k * 6 + i] = s[i * lda + k] for i < mr, zero for
// mr <= i < 6. 8 columns at a time through transpose8 (rows mr .. 7 zero), each column's 6 floats
// stored as 4 + 2; scalar past the last whole 8. (The generic loops cost a quarter of the time of
// a Winograd chunk's GEMMs, 64 x 96 x 32, which pack A for every call.)
#define IMGSIM_GEMM_HAS_PACK_A_ROWS 1
void pack_a_rows(const float* s, int64_t lda, int64_t kc, int64_t mr, float* d) {
  int64_t k0 = 0;
  for (; k0 + 8 <= kc; k0 += 8) {
    __m256 r[8];
    for (int i = 0; i < 8; ++i)
      r[i] = i < mr ? _mm256_loadu_ps(s + i * lda + k0) : _mm256_setzero_ps();
    transpose8(r);
    for (int i = 0; i < 8; ++i) {
      float* dk = d + (k0 + i) * kMR;
      _mm_storeu_ps(dk, _mm256_castps256_ps128(r[i]));
      _mm_storel_pi(reinterpret_cast<__m64*>(dk + 4), _mm256_extractf128_ps(r[i], 1));
    }
  }
  for (int64_t k = k0; k < kc; ++k)
    for (int64_t i = 0; i < kMR; ++i) d[k * kMR + i] = i < mr ? s[i * lda + k] : 0.0f;
}

using TileFn = void (*)(int64_t, const float*, const float*, int64_t, float*, int64_t, float, float,
                        int64_t, const float*, int64_t);
#define IMGSIM_TILE_ROW(R) \
  { &tile<R, 1, false>, &tile<R, 2, false> }
constexpr TileFn kTiles[kMR][2] = {IMGSIM_TILE_ROW(1), IMGSIM_TILE_ROW(2), IMGSIM_TILE_ROW(3),
                                   IMGSIM_TILE_ROW(4), IMGSIM_TILE_ROW(5), IMGSIM_TILE_ROW(6)};
#undef IMGSIM_TILE_ROW
// With prefetch (only asked for on full-width slivers).
constexpr TileFn kTilesPf[kMR] = {&tile<1, 2, true>, &tile<2, 2, true>, &tile<3, 2, true>,
                                  &tile<4, 2, true>, &tile<5, 2, true>, &tile<6, 2, true>};

inline void micro_tile(int64_t kc, const float* ap, const float* bp, int64_t ldbp, float* c,
                       int64_t ldc, float alpha, float beta, int64_t mr, int64_t nr,
                       const float* pf, int64_t pf_ld) {
  const TileFn fn = pf && nr == kNR ? kTilesPf[mr - 1] : kTiles[mr - 1][(nr + 7) / 8 - 1];
  fn(kc, ap, bp, ldbp, c, ldc, alpha, beta, nr, pf, pf_ld);
}

}  // namespace

#include "kernels/gemm_driver.inc"

bool compiled() {
  return true;
}

#else  // this build cannot compile AVX2 code; the registry never selects it

#include "kernels/gemm_fallback.inc"

#endif

const char* sgemm_name() {
  return "f32_gemm_6x16__avx2";
}

}  // namespace imgsim::kernels::avx2
