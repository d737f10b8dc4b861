// AVX-512 2x2 / stride 2 max pooling of one plane (kernels.hpp): 16 outputs per step. The
// even and odd columns of the two input rows are separated with two-source permutes, the first
// maximum in window order is kept with ordered greater-than compares (false for NaN, like the
// scalar '>') and blends, which also select the argmax offset. The row tail uses masked loads
// and stores.
#include <cstdint>

#include "kernels/kernels.hpp"

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512DQ__) && defined(__AVX512VL__)
#include <immintrin.h>
#define IMGSIM_HAVE_AVX512_POOL 1
#endif

namespace imgsim::kernels::avx512 {

#ifdef IMGSIM_HAVE_AVX512_POOL

namespace {

struct PoolConsts {
  __m512i even, odd, two_lane, one, w, w1;
};

// y and arg of 16 windows whose rows start at r0 and r1, masked loads and stores.
inline void pool16(const float* r0, const float* r1, __mmask16 mlo, __mmask16 mhi, __mmask16 mout,
                   int32_t first, const PoolConsts& k, float* y, int32_t* arg) {
  const __m512 a0 = _mm512_maskz_loadu_ps(mlo, r0), a1 = _mm512_maskz_loadu_ps(mhi, r0 + 16);
  const __m512 b0 = _mm512_maskz_loadu_ps(mlo, r1), b1 = _mm512_maskz_loadu_ps(mhi, r1 + 16);
  const __m512 va = _mm512_permutex2var_ps(a0, k.even, a1);
  const __m512 vb = _mm512_permutex2var_ps(a0, k.odd, a1);
  const __m512 vc = _mm512_permutex2var_ps(b0, k.even, b1);
  const __m512 vd = _mm512_permutex2var_ps(b0, k.odd, b1);
  __m512 best = va;
  __m512i off = _mm512_setzero_si512();
  __mmask16 m = _mm512_cmp_ps_mask(vb, best, _CMP_GT_OQ);
  best = _mm512_mask_blend_ps(m, best, vb);
  off = _mm512_mask_blend_epi32(m, off, k.one);
  m = _mm512_cmp_ps_mask(vc, best, _CMP_GT_OQ);
  best = _mm512_mask_blend_ps(m, best, vc);
  off = _mm512_mask_blend_epi32(m, off, k.w);
  m = _mm512_cmp_ps_mask(vd, best, _CMP_GT_OQ);
  best = _mm512_mask_blend_ps(m, best, vd);
  off = _mm512_mask_blend_epi32(m, off, k.w1);
  const __m512i at = _mm512_add_epi32(_mm512_add_epi32(_mm512_set1_epi32(first), k.two_lane), off);
  _mm512_mask_storeu_ps(y, mout, best);
  _mm512_mask_storeu_epi32(arg, mout, at);
}

}  // namespace

void maxpool2x2(const float* x, int64_t w, int64_t p_out, int64_t q_out, float* y, int32_t* arg) {
  PoolConsts k;
  k.even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  k.odd = _mm512_add_epi32(k.even, _mm512_set1_epi32(1));
  k.two_lane = k.even;
  k.one = _mm512_set1_epi32(1);
  k.w = _mm512_set1_epi32(static_cast<int32_t>(w));
  k.w1 = _mm512_set1_epi32(static_cast<int32_t>(w + 1));
  const __mmask16 all = 0xFFFF;
  for (int64_t p = 0; p < p_out; ++p) {
    const float* r0 = x + 2 * p * w;
    const float* r1 = r0 + w;
    float* yr = y + p * q_out;
    int32_t* ar = arg + p * q_out;
    const auto base = static_cast<int32_t>(2 * p * w);
    int64_t q = 0;
    for (; q + 16 <= q_out; q += 16)
      pool16(r0 + 2 * q, r1 + 2 * q, all, all, all, base + static_cast<int32_t>(2 * q), k, yr + q,
             ar + q);
    if (q < q_out) {
      const int64_t rem = q_out - q, f = 2 * rem;  // outputs, input floats per row
      const auto mlo = static_cast<__mmask16>(f >= 16 ? 0xFFFFu : (1u << f) - 1u);
      const auto mhi = static_cast<__mmask16>(f > 16 ? (1u << (f - 16)) - 1u : 0u);
      const auto mout = static_cast<__mmask16>((1u << rem) - 1u);
      pool16(r0 + 2 * q, r1 + 2 * q, mlo, mhi, mout, base + static_cast<int32_t>(2 * q), k, yr + q,
             ar + q);
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

}  // namespace imgsim::kernels::avx512
