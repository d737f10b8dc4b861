// AVX2+FMA inner products: register tiles of 8 accumulators (2 queries x 4 rows, 1 x 8), each one
// ymm of 8 partial sums over d, reduced together by a 3-step transpose-and-add tree into one ymm
// holding the 8 dot products (f32_ip_2x4__avx2). 8 accumulators + 4 rows + 1 query = 13 of the
// 16 ymm registers. Numerics: distance.hpp (one fixed order whatever the tile).
#include <cstddef>
#include <cstdint>

#include "kernels/distance.hpp"

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define IMGSIM_HAVE_AVX2_IP 1
#endif

namespace imgsim::kernels::avx2 {

#ifdef IMGSIM_HAVE_AVX2_IP

namespace {

constexpr int64_t kV = 8;

// Lanes [0, n) set, n in [0, 8]: an unaligned window into 8 ones followed by 8 zeros.
inline __m256i lane_mask(int64_t n) {
  alignas(32) static const int32_t kOnesThenZeros[16] = {-1, -1, -1, -1, -1, -1, -1, -1,
                                                         0,  0,  0,  0,  0,  0,  0,  0};
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kOnesThenZeros + 8 - n));
}

// Lane p of the result = sum of the 8 lanes of v[p], by the tree of distance.hpp.
inline __m256 reduce8(const __m256* v) {
  __m256 s[4];
#pragma GCC unroll 4
  for (int m = 0; m < 4; ++m)
    s[m] = _mm256_add_ps(_mm256_unpacklo_ps(v[2 * m], v[2 * m + 1]),
                         _mm256_unpackhi_ps(v[2 * m], v[2 * m + 1]));
  const __m256 u0 =
      _mm256_add_ps(_mm256_shuffle_ps(s[0], s[1], 0x44), _mm256_shuffle_ps(s[0], s[1], 0xEE));
  const __m256 u1 =
      _mm256_add_ps(_mm256_shuffle_ps(s[2], s[3], 0x44), _mm256_shuffle_ps(s[2], s[3], 0xEE));
  return _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
}

inline float reduce1(__m256 v) {
  __m256 t = _mm256_add_ps(v, _mm256_permute_ps(v, _MM_SHUFFLE(1, 0, 3, 2)));
  t = _mm256_add_ps(t, _mm256_permute_ps(t, _MM_SHUFFLE(2, 3, 0, 1)));
  return _mm_cvtss_f32(_mm_add_ss(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1)));
}

// Lane i * RX + j of the result = <qp[i], xp[j]>.
template <int RQ, int RX>
inline __m256 tile(const float* const* qp, const float* const* xp, int64_t d) {
  static_assert(RQ * RX == 8, "8 accumulators");
  __m256 acc[8];
#pragma GCC unroll 8
  for (int p = 0; p < 8; ++p) acc[p] = _mm256_setzero_ps();
  int64_t t = 0;
  for (; t + kV <= d; t += kV) {
    __m256 xv[RX];
#pragma GCC unroll 8
    for (int j = 0; j < RX; ++j) xv[j] = _mm256_loadu_ps(xp[j] + t);
#pragma GCC unroll 2
    for (int i = 0; i < RQ; ++i) {
      const __m256 qv = _mm256_loadu_ps(qp[i] + t);
#pragma GCC unroll 8
      for (int j = 0; j < RX; ++j) acc[i * RX + j] = _mm256_fmadd_ps(qv, xv[j], acc[i * RX + j]);
    }
  }
  if (t < d) {
    const __m256i m = lane_mask(d - t);
    __m256 xv[RX];
#pragma GCC unroll 8
    for (int j = 0; j < RX; ++j) xv[j] = _mm256_maskload_ps(xp[j] + t, m);
#pragma GCC unroll 2
    for (int i = 0; i < RQ; ++i) {
      const __m256 qv = _mm256_maskload_ps(qp[i] + t, m);
#pragma GCC unroll 8
      for (int j = 0; j < RX; ++j) acc[i * RX + j] = _mm256_fmadd_ps(qv, xv[j], acc[i * RX + j]);
    }
  }
  return reduce8(acc);
}

template <int RQ, int RX>
inline void store(__m256 r, float* out, int64_t ldo, int64_t nqv, int64_t nxv) {
  if (nqv == RQ && nxv == RX) {
    if constexpr (RX == 8) {
      _mm256_storeu_ps(out, r);
    } else {
      _mm_storeu_ps(out, _mm256_castps256_ps128(r));
      _mm_storeu_ps(out + ldo, _mm256_extractf128_ps(r, 1));
    }
    return;
  }
  alignas(32) float tmp[8];
  _mm256_store_ps(tmp, r);
  for (int64_t i = 0; i < nqv; ++i)
    for (int64_t j = 0; j < nxv; ++j) out[i * ldo + j] = tmp[i * RX + j];
}

}  // namespace

void ip_tile(const float* q, int64_t nq, int64_t ldq, const float* x, int64_t nx, int64_t ldx,
             int64_t d, float* out, int64_t ldo) {
  if (nq <= 0 || nx <= 0) return;
  const int64_t nq2 = nq / 2 * 2;
  for (int64_t j0 = 0; j0 < nx && nq2 > 0; j0 += 4) {
    const int64_t nj = nx - j0 < 4 ? nx - j0 : 4;
    const float* xp[4];
    for (int64_t j = 0; j < 4; ++j) xp[j] = x + (j0 + (j < nj ? j : nj - 1)) * ldx;
    for (int64_t i0 = 0; i0 < nq2; i0 += 2) {
      const float* qp[2] = {q + i0 * ldq, q + (i0 + 1) * ldq};
      store<2, 4>(tile<2, 4>(qp, xp, d), out + i0 * ldo + j0, ldo, 2, nj);
    }
  }
  if (nq2 < nq) {  // one query left: 8 rows at a time
    const float* qp[1] = {q + nq2 * ldq};
    for (int64_t j0 = 0; j0 < nx; j0 += 8) {
      const int64_t nj = nx - j0 < 8 ? nx - j0 : 8;
      const float* xp[8];
      for (int64_t j = 0; j < 8; ++j) xp[j] = x + (j0 + (j < nj ? j : nj - 1)) * ldx;
      store<1, 8>(tile<1, 8>(qp, xp, d), out + nq2 * ldo + j0, ldo, 1, nj);
    }
  }
}

float dot(const float* a, const float* b, int64_t d) {
  __m256 acc = _mm256_setzero_ps();
  int64_t t = 0;
  for (; t + kV <= d; t += kV)
    acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + t), _mm256_loadu_ps(b + t), acc);
  if (t < d) {
    const __m256i m = lane_mask(d - t);
    acc = _mm256_fmadd_ps(_mm256_maskload_ps(a + t, m), _mm256_maskload_ps(b + t, m), acc);
  }
  return reduce1(acc);
}

float neg_dot_void(const void* a, const void* b, const void* param) {
  const auto d = static_cast<int64_t>(*static_cast<const std::size_t*>(param));
  return -dot(static_cast<const float*>(a), static_cast<const float*>(b), d);
}

// One query against 8 binary16 rows at a time (F16C conversion in registers).
void ip_f16(const float* q, const uint16_t* x, int64_t nx, int64_t ldx, int64_t d, float* out) {
  const int64_t dv = d / kV * kV;
  alignas(16) uint16_t tail[8][8];  // zero-padded last chunk of each row (no 16-bit maskload)
  alignas(32) float qtail[8] = {};
  for (int64_t t = dv; t < d; ++t) qtail[t - dv] = q[t];
  for (int64_t j0 = 0; j0 < nx; j0 += 8) {
    const int64_t nj = nx - j0 < 8 ? nx - j0 : 8;
    const uint16_t* xp[8];
    for (int64_t j = 0; j < 8; ++j) xp[j] = x + (j0 + (j < nj ? j : nj - 1)) * ldx;
    __m256 acc[8];
#pragma GCC unroll 8
    for (int p = 0; p < 8; ++p) acc[p] = _mm256_setzero_ps();
    for (int64_t t = 0; t < dv; t += kV) {
      const __m256 qv = _mm256_loadu_ps(q + t);
#pragma GCC unroll 8
      for (int j = 0; j < 8; ++j)
        acc[j] = _mm256_fmadd_ps(
            qv, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(xp[j] + t))),
            acc[j]);
    }
    if (dv < d) {
      const __m256 qv = _mm256_load_ps(qtail);
      for (int j = 0; j < 8; ++j) {
        for (int64_t t = 0; t < 8; ++t) tail[j][t] = dv + t < d ? xp[j][dv + t] : uint16_t{0};
        acc[j] = _mm256_fmadd_ps(
            qv, _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(tail[j]))), acc[j]);
      }
    }
    const __m256 r = reduce8(acc);
    if (nj == 8)
      _mm256_storeu_ps(out + j0, r);
    else
      _mm256_maskstore_ps(out + j0, lane_mask(nj), r);
  }
}

bool distance_compiled() {
  return true;
}

#else

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

}  // namespace imgsim::kernels::avx2
