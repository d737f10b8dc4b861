// AVX2 2x2 / stride 2 max pooling of one plane (kernels.hpp): 8 outputs per step. Even and
// odd columns are separated with shuffle + cross-lane permute; the first maximum in window order
// is kept with ordered greater-than compares (false for NaN, like the scalar '>') and blends,
// which also select the argmax offset. The row tail (fewer than 8 outputs) is scalar.
#include <cstdint>

#include "kernels/kernels.hpp"

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define IMGSIM_HAVE_AVX2_POOL 1
#endif

namespace imgsim::kernels::avx2 {

#ifdef IMGSIM_HAVE_AVX2_POOL

namespace {

// Even (imm 0x88) or odd (0xDD) floats of s[0..16), in order.
template <int Imm>
inline __m256 deinterleave(const float* s) {
  const __m256 t = _mm256_shuffle_ps(_mm256_loadu_ps(s), _mm256_loadu_ps(s + 8), Imm);
  return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(t), 0xD8));
}

inline void take_if_greater(__m256 v, __m256i code, __m256& best, __m256i& off) {
  const __m256 m = _mm256_cmp_ps(v, best, _CMP_GT_OQ);
  best = _mm256_blendv_ps(best, v, m);
  off =
      _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(off), _mm256_castsi256_ps(code), m));
}

}  // namespace

void maxpool2x2(const float* x, int64_t w, int64_t p_out, int64_t q_out, float* y, int32_t* arg) {
  const __m256i two_lane = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14);
  const __m256i one = _mm256_set1_epi32(1), wv = _mm256_set1_epi32(static_cast<int32_t>(w)),
                w1 = _mm256_set1_epi32(static_cast<int32_t>(w + 1));
  for (int64_t p = 0; p < p_out; ++p) {
    const float* r0 = x + 2 * p * w;
    const float* r1 = r0 + w;
    float* yr = y + p * q_out;
    int32_t* ar = arg + p * q_out;
    const auto base = static_cast<int32_t>(2 * p * w);
    int64_t q = 0;
    for (; q + 8 <= q_out; q += 8) {
      __m256 best = deinterleave<0x88>(r0 + 2 * q);
      __m256i off = _mm256_setzero_si256();
      take_if_greater(deinterleave<0xDD>(r0 + 2 * q), one, best, off);
      take_if_greater(deinterleave<0x88>(r1 + 2 * q), wv, best, off);
      take_if_greater(deinterleave<0xDD>(r1 + 2 * q), w1, best, off);
      const __m256i at = _mm256_add_epi32(
          _mm256_add_epi32(_mm256_set1_epi32(base + static_cast<int32_t>(2 * q)), two_lane), off);
      _mm256_storeu_ps(yr + q, best);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(ar + q), at);
    }
    for (; q < q_out; ++q) {
      const float v[4] = {r0[2 * q], r0[2 * q + 1], r1[2 * q], r1[2 * q + 1]};
      const int64_t offs[4] = {0, 1, w, w + 1};
      int b = 0;
      for (int i = 1; i < 4; ++i)
        if (v[i] > v[b]) b = i;
      yr[q] = v[b];
      ar[q] = static_cast<int32_t>(2 * p * w + 2 * q + offs[b]);
    }
  }
}

bool pool_compiled() {
  return true;
}

#else

void maxpool2x2(const float* x, int64_t w, int64_t p_out, int64_t q_out, float* y, int32_t* arg) {
  ref::maxpool2x2(x, w, p_out, q_out, y, arg);
}
bool pool_compiled() {
  return false;
}

#endif

}  // namespace imgsim::kernels::avx2
