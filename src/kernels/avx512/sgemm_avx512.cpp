// AVX-512 SGEMM: micro-kernel f32_gemm_8x48__avx512 and the blocked driver (gemm_driver.inc).
//
// Register tile: 8 rows of C x 48 columns = 8 x 3 zmm accumulators (24 of 32 registers); per k
// the kernel loads 3 vectors of packed B (along N) and broadcasts 8 scalars of packed A, for 24
// FMAs. Vectors run along N because the conv shapes have small M (32 output channels) and huge N
// (output pixels): 8 divides every channel count, and the N tail costs at most one narrower tile.
// Row tails use an exact-height instantiation (1..8 rows), column tails the narrowest of 16 / 32
// / 48 that covers them, plus a store mask.
#include <cstdint>
#include <cstdlib>

#include "kernels/kernels.hpp"
#include "kernels/thread_pool.hpp"

#if (defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512DQ__) && \
     defined(__AVX512VL__) && defined(__FMA__)) ||                             \
    defined(IMGSIM_EMULATE_AVX512)  // tests: avx512/emulate.hpp
#include <immintrin.h>
#define IMGSIM_HAVE_AVX512_GEMM 1
#endif

namespace imgsim::kernels::avx512 {

#ifdef IMGSIM_HAVE_AVX512_GEMM

namespace {

constexpr int64_t kMR = 8, kNR = 48, kVec = 16;
constexpr int64_t kMC = 128, kKC = 256, kNC = 48 * 64;

// C[R x nr] = alpha * sum_k a[k][0..R) (x) b[k][0..16*NV) + beta * C, nr in (16*(NV-1), 16*NV].
template <int R, int NV, bool PF>
void tile(int64_t kc, const float* __restrict a, const float* __restrict b, int64_t ldbp,
          float* __restrict c, int64_t ldc, float alpha, float beta, int64_t nr, const float* pf,
          int64_t pf_ld) {
  __m512 acc[R][NV];
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i) {
#pragma GCC unroll 3
    for (int j = 0; j < NV; ++j) acc[i][j] = _mm512_setzero_ps();
  }
  // The C tile is needed only after the k loop: fetch it now (every cache line it touches).
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i) {
#pragma GCC unroll 3
    for (int j = 0; j < NV; ++j)
      _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + 16 * j), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + 16 * NV - 1), _MM_HINT_T0);
  }
#pragma GCC unroll 4
  for (int64_t k = 0; k < kc; ++k) {
    __m512 bv[NV];
#pragma GCC unroll 3
    for (int j = 0; j < NV; ++j) bv[j] = _mm512_loadu_ps(b + 16 * j);
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i) {
      const __m512 av = _mm512_set1_ps(a[i]);
#pragma GCC unroll 3
      for (int j = 0; j < NV; ++j) acc[i][j] = _mm512_fmadd_ps(av, bv[j], acc[i][j]);
    }
    if constexpr (PF) {  // next B sliver's source row k: kNR floats, 3 or 4 cache lines
#pragma GCC unroll 3
      for (int j = 0; j < 3; ++j)
        _mm_prefetch(reinterpret_cast<const char*>(pf + 16 * j), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(pf + kNR - 1), _MM_HINT_T0);
      pf += pf_ld;
    }
    a += kMR;
    b += ldbp;
  }
  const int64_t last_n = nr - 16 * (NV - 1);
  const __mmask16 last = last_n >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << last_n) - 1u);
  const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i) {
    float* ci = c + i * ldc;
#pragma GCC unroll 3
    for (int j = 0; j < NV; ++j) {
      const __mmask16 m = j == NV - 1 ? last : __mmask16(0xFFFF);
      __m512 r = alpha == 1.0f ? acc[i][j] : _mm512_mul_ps(va, acc[i][j]);
      if (beta != 0.0f) {
        const __m512 old = _mm512_maskz_loadu_ps(m, ci + 16 * j);
        r = beta == 1.0f ? _mm512_add_ps(r, old) : _mm512_fmadd_ps(vb, old, r);
      }
      _mm512_mask_storeu_ps(ci + 16 * j, m, r);
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

// Untransposed A panel (gemm_driver.inc): d[k * 8 + i] = s[i * lda + k] for i < mr, zero for
// mr <= i < 8. A full panel is 8x8 blocks through transpose8.
#define IMGSIM_GEMM_HAS_PACK_A_ROWS 1
void pack_a_rows(const float* s, int64_t lda, int64_t kc, int64_t mr, float* d) {
  int64_t k0 = 0;
  if (mr == kMR) {
    for (; k0 + 8 <= kc; k0 += 8) {
      __m256 r[8];
      for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(s + i * lda + k0);
      transpose8(r);
      for (int i = 0; i < 8; ++i) _mm256_storeu_ps(d + (k0 + i) * kMR, r[i]);
    }
  }
  for (int64_t k = k0; k < kc; ++k)
    for (int64_t i = 0; i < kMR; ++i) d[k * kMR + i] = i < mr ? s[i * lda + k] : 0.0f;
}

using TileFn = void (*)(int64_t, const float*, const float*, int64_t, float*, int64_t, float, float,
                        int64_t, const float*, int64_t);
#define IMGSIM_TILE_ROW(R) \
  { &tile<R, 1, false>, &tile<R, 2, false>, &tile<R, 3, false> }
constexpr TileFn kTiles[kMR][3] = {IMGSIM_TILE_ROW(1), IMGSIM_TILE_ROW(2), IMGSIM_TILE_ROW(3),
                                   IMGSIM_TILE_ROW(4), IMGSIM_TILE_ROW(5), IMGSIM_TILE_ROW(6),
                                   IMGSIM_TILE_ROW(7), IMGSIM_TILE_ROW(8)};
#undef IMGSIM_TILE_ROW
// With prefetch (only asked for on full-width slivers).
constexpr TileFn kTilesPf[kMR] = {&tile<1, 3, true>, &tile<2, 3, true>, &tile<3, 3, true>,
                                  &tile<4, 3, true>, &tile<5, 3, true>, &tile<6, 3, true>,
                                  &tile<7, 3, true>, &tile<8, 3, true>};

inline void micro_tile(int64_t kc, const float* ap, const float* bp, int64_t ldbp, float* c,
                       int64_t ldc, float alpha, float beta, int64_t mr, int64_t nr,
                       const float* pf, int64_t pf_ld) {
  const TileFn fn = pf && nr == kNR ? kTilesPf[mr - 1] : kTiles[mr - 1][(nr + 15) / 16 - 1];
  fn(kc, ap, bp, ldbp, c, ldc, alpha, beta, nr, pf, pf_ld);
}

}  // namespace

#include "kernels/gemm_driver.inc"

bool compiled() {
  return true;
}

#else  // this build cannot compile AVX-512 code; the registry never selects it

#include "kernels/gemm_fallback.inc"

#endif

const char* sgemm_name() {
  return "f32_gemm_8x48__avx512";
}

}  // namespace imgsim::kernels::avx512
