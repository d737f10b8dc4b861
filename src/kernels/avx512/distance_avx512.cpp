// AVX-512 inner products: register tiles of 16 accumulators (4 queries x 4 rows, 2 x 8, 1 x 16),
// each accumulator one zmm of 16 partial sums over d, reduced together by a 4-step
// transpose-and-add tree into one zmm holding the 16 dot products (f32_ip_4x4__avx512).
//
// Per 16 floats of d the 4x4 tile does 4 row loads + 4 query loads for 16 FMAs; the queries stay
// in L1 (the caller blocks them), the 4 database rows are reused by every query group. The tree
// costs 30 shuffles + 15 adds per 16 dot products, about a quarter of the FMAs at d = 128.
// Numerics: distance.hpp (one fixed order whatever the tile), so tiles and dot() agree exactly.
#include <cstddef>
#include <cstdint>

#include "kernels/distance.hpp"

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
#define IMGSIM_HAVE_AVX512_IP 1
#endif

namespace imgsim::kernels::avx512 {

#ifdef IMGSIM_HAVE_AVX512_IP

namespace {

constexpr int64_t kV = 16;

inline __mmask16 tail_mask(int64_t r) {
  return static_cast<__mmask16>((1u << r) - 1u);
}

// Lane p of the result = sum of the 16 lanes of v[p], by the tree of distance.hpp.
inline __m512 reduce16(const __m512* v) {
  __m512 s[8];
#pragma GCC unroll 8
  for (int m = 0; m < 8; ++m)  // per 128-bit block: a0+a2, b0+b2, a1+a3, b1+b3
    s[m] = _mm512_add_ps(_mm512_unpacklo_ps(v[2 * m], v[2 * m + 1]),
                         _mm512_unpackhi_ps(v[2 * m], v[2 * m + 1]));
  __m512 u[4];
#pragma GCC unroll 4
  for (int m = 0; m < 4; ++m)  // block k of u[m]: B_k of v[4m .. 4m+3]
    u[m] = _mm512_add_ps(_mm512_shuffle_ps(s[2 * m], s[2 * m + 1], 0x44),
                         _mm512_shuffle_ps(s[2 * m], s[2 * m + 1], 0xEE));
  // y0 blocks: B0+B1 and B2+B3 of v[0..3], then of v[4..7]; y1 likewise for v[8..15].
  const __m512 y0 =
      _mm512_add_ps(_mm512_shuffle_f32x4(u[0], u[1], 0x88), _mm512_shuffle_f32x4(u[0], u[1], 0xDD));
  const __m512 y1 =
      _mm512_add_ps(_mm512_shuffle_f32x4(u[2], u[3], 0x88), _mm512_shuffle_f32x4(u[2], u[3], 0xDD));
  return _mm512_add_ps(_mm512_shuffle_f32x4(y0, y1, 0x88), _mm512_shuffle_f32x4(y0, y1, 0xDD));
}

// The same tree for one accumulator.
inline float reduce1(__m512 v) {
  __m512 t = _mm512_add_ps(v, _mm512_permute_ps(v, _MM_SHUFFLE(1, 0, 3, 2)));
  t = _mm512_add_ps(t, _mm512_permute_ps(t, _MM_SHUFFLE(2, 3, 0, 1)));
  t = _mm512_add_ps(t, _mm512_shuffle_f32x4(t, t, _MM_SHUFFLE(2, 3, 0, 1)));
  t = _mm512_add_ps(t, _mm512_shuffle_f32x4(t, t, _MM_SHUFFLE(1, 0, 3, 2)));
  return _mm512_cvtss_f32(t);
}

// Lane i * RX + j of the result = <qp[i], xp[j]>.
template <int RQ, int RX>
inline __m512 tile(const float* const* qp, const float* const* xp, int64_t d) {
  static_assert(RQ * RX == 16, "16 accumulators");
  __m512 acc[16];
#pragma GCC unroll 16
  for (int p = 0; p < 16; ++p) acc[p] = _mm512_setzero_ps();
  int64_t t = 0;
  for (; t + kV <= d; t += kV) {
    __m512 xv[RX];
#pragma GCC unroll 16
    for (int j = 0; j < RX; ++j) xv[j] = _mm512_loadu_ps(xp[j] + t);
#pragma GCC unroll 4
    for (int i = 0; i < RQ; ++i) {
      const __m512 qv = _mm512_loadu_ps(qp[i] + t);
#pragma GCC unroll 16
      for (int j = 0; j < RX; ++j) acc[i * RX + j] = _mm512_fmadd_ps(qv, xv[j], acc[i * RX + j]);
    }
  }
  if (t < d) {  // zero-filled last chunk
    const __mmask16 m = tail_mask(d - t);
    __m512 xv[RX];
#pragma GCC unroll 16
    for (int j = 0; j < RX; ++j) xv[j] = _mm512_maskz_loadu_ps(m, xp[j] + t);
#pragma GCC unroll 4
    for (int i = 0; i < RQ; ++i) {
      const __m512 qv = _mm512_maskz_loadu_ps(m, qp[i] + t);
#pragma GCC unroll 16
      for (int j = 0; j < RX; ++j) acc[i * RX + j] = _mm512_fmadd_ps(qv, xv[j], acc[i * RX + j]);
    }
  }
  return reduce16(acc);
}

// Writes the valid nqv x nxv corner of an RQ x RX result tile.
template <int RQ, int RX>
inline void store(__m512 r, float* out, int64_t ldo, int64_t nqv, int64_t nxv) {
  if (nqv == RQ && nxv == RX) {
    if constexpr (RX == 16) {
      _mm512_storeu_ps(out, r);
    } else if constexpr (RX == 8) {
      _mm256_storeu_ps(out, _mm512_castps512_ps256(r));
      _mm256_storeu_ps(out + ldo, _mm512_extractf32x8_ps(r, 1));
    } else {
      _mm_storeu_ps(out, _mm512_castps512_ps128(r));
      _mm_storeu_ps(out + ldo, _mm512_extractf32x4_ps(r, 1));
      _mm_storeu_ps(out + 2 * ldo, _mm512_extractf32x4_ps(r, 2));
      _mm_storeu_ps(out + 3 * ldo, _mm512_extractf32x4_ps(r, 3));
    }
    return;
  }
  alignas(64) float tmp[16];
  _mm512_store_ps(tmp, r);
  for (int64_t i = 0; i < nqv; ++i)
    for (int64_t j = 0; j < nxv; ++j) out[i * ldo + j] = tmp[i * RX + j];
}

// Queries [i0, i0 + RQ) (all valid) against every row of x, RX rows at a time; a short last
// group of rows repeats its last row and stores only the valid results.
template <int RQ, int RX>
void sweep(const float* q, int64_t i0, int64_t ldq, const float* x, int64_t nx, int64_t ldx,
           int64_t d, float* out, int64_t ldo) {
  const float* qp[RQ];
  for (int i = 0; i < RQ; ++i) qp[i] = q + (i0 + i) * ldq;
  for (int64_t j0 = 0; j0 < nx; j0 += RX) {
    const int64_t nj = nx - j0 < RX ? nx - j0 : RX;
    const float* xp[RX];
    for (int64_t j = 0; j < RX; ++j) xp[j] = x + (j0 + (j < nj ? j : nj - 1)) * ldx;
    store<RQ, RX>(tile<RQ, RX>(qp, xp, d), out + i0 * ldo + j0, ldo, RQ, nj);
  }
}

}  // namespace

void ip_tile(const float* q, int64_t nq, int64_t ldq, const float* x, int64_t nx, int64_t ldx,
             int64_t d, float* out, int64_t ldo) {
  if (nq <= 0 || nx <= 0) return;
  const int64_t nq4 = nq / 4 * 4;
  // Row groups outside, query groups inside: 4 rows are loaded from memory once and reused by
  // every query group from L1.
  for (int64_t j0 = 0; j0 < nx && nq4 > 0; j0 += 4) {
    const int64_t nj = nx - j0 < 4 ? nx - j0 : 4;
    const float* xp[4];
    for (int64_t j = 0; j < 4; ++j) xp[j] = x + (j0 + (j < nj ? j : nj - 1)) * ldx;
    for (int64_t i0 = 0; i0 < nq4; i0 += 4) {
      const float* qp[4] = {q + i0 * ldq, q + (i0 + 1) * ldq, q + (i0 + 2) * ldq,
                            q + (i0 + 3) * ldq};
      store<4, 4>(tile<4, 4>(qp, xp, d), out + i0 * ldo + j0, ldo, 4, nj);
    }
  }
  int64_t i0 = nq4;
  if (nq - i0 >= 2) {
    sweep<2, 8>(q, i0, ldq, x, nx, ldx, d, out, ldo);
    i0 += 2;
  }
  if (nq - i0 == 1) sweep<1, 16>(q, i0, ldq, x, nx, ldx, d, out, ldo);
}

float dot(const float* a, const float* b, int64_t d) {
  __m512 acc = _mm512_setzero_ps();
  int64_t t = 0;
  for (; t + kV <= d; t += kV)
    acc = _mm512_fmadd_ps(_mm512_loadu_ps(a + t), _mm512_loadu_ps(b + t), acc);
  if (t < d) {
    const __mmask16 m = tail_mask(d - t);
    acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + t), _mm512_maskz_loadu_ps(m, b + t), acc);
  }
  return reduce1(acc);
}

float neg_dot_void(const void* a, const void* b, const void* param) {
  const auto d = static_cast<int64_t>(*static_cast<const std::size_t*>(param));
  return -dot(static_cast<const float*>(a), static_cast<const float*>(b), d);
}

// One query against 16 binary16 rows at a time: 16 row loads of 16 halves (32 bytes each),
// converted in registers; half the memory traffic of the float rows.
void ip_f16(const float* q, const uint16_t* x, int64_t nx, int64_t ldx, int64_t d, float* out) {
  for (int64_t j0 = 0; j0 < nx; j0 += 16) {
    const int64_t nj = nx - j0 < 16 ? nx - j0 : 16;
    const uint16_t* xp[16];
    for (int64_t j = 0; j < 16; ++j) xp[j] = x + (j0 + (j < nj ? j : nj - 1)) * ldx;
    __m512 acc[16];
#pragma GCC unroll 16
    for (int p = 0; p < 16; ++p) acc[p] = _mm512_setzero_ps();
    int64_t t = 0;
    for (; t + kV <= d; t += kV) {
      const __m512 qv = _mm512_loadu_ps(q + t);
#pragma GCC unroll 16
      for (int j = 0; j < 16; ++j)
        acc[j] = _mm512_fmadd_ps(
            qv, _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(xp[j] + t))),
            acc[j]);
    }
    if (t < d) {
      const __mmask16 m = tail_mask(d - t);
      const __m512 qv = _mm512_maskz_loadu_ps(m, q + t);
#pragma GCC unroll 16
      for (int j = 0; j < 16; ++j)
        acc[j] =
            _mm512_fmadd_ps(qv, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, xp[j] + t)), acc[j]);
    }
    const __m512 r = reduce16(acc);
    if (nj == 16)
      _mm512_storeu_ps(out + j0, r);
    else
      _mm512_mask_storeu_ps(out + j0, tail_mask(nj), r);
  }
}

bool distance_compiled() {
  return true;
}

#else  // the build could not compile AVX-512 code: never selected (distance_compiled() false)

void ip_tile(const float*, int64_t, int64_t, const float*, int64_t, int64_t, int64_t, float*,
             int64_t) {}
float dot(const float*, const float*, int64_t) {
  return 0.0f;
}
float neg_dot_void(const void*, const void*, const void*) {
  return 0.0f;
}
void ip_f16(const float*, const uint16_t*, int64_t, int64_t, int64_t, float*) {}
bool distance_compiled() {
  return false;
}

#endif

}  // namespace imgsim::kernels::avx512
