// AVX-512 2x2 / stride 2 max pooling of one plane (kernels.hpp): 16 outputs per step. The
// even and odd columns of the two input rows are separated with two-source permutes, the bias and
// activation (if any) applied to each, the first maximum in window order is kept with ordered
// greater-than compares (false for NaN, like the scalar '>') and blends, which also select the
// argmax offset. The row tail uses masked loads and stores. unpool2x2 (its backward) writes
// both dz rows of 16 windows with four compares of the argmax's place and two permutes per row.
#include <cstdint>

#include "kernels/kernels.hpp"

#if (defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512DQ__) && \
     defined(__AVX512VL__)) ||                                                 \
    defined(IMGSIM_EMULATE_AVX512)  // tests: avx512/emulate.hpp
#include <immintrin.h>
#define IMGSIM_HAVE_AVX512_POOL 1
#endif

namespace imgsim::kernels::avx512 {

#ifdef IMGSIM_HAVE_AVX512_POOL

namespace {

struct PoolConsts {
  __m512i even, odd, two_lane, one, w, w1;
  __m512 bias, slope;
};

// act(z + bias) (Bias) or act(z), as the scalar reference: relu keeps z only if z > 0 (NaN and
// -0 give +0), leaky_relu takes slope z unless z > 0.
template <int Act, bool Bias>
inline __m512 pre(__m512 z, const PoolConsts& k) {
  if constexpr (Bias) z = _mm512_add_ps(z, k.bias);
  if constexpr (Act == 1) {
    return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(z, _mm512_setzero_ps(), _CMP_GT_OQ), z);
  } else if constexpr (Act == 2) {
    const __mmask16 pos = _mm512_cmp_ps_mask(z, _mm512_setzero_ps(), _CMP_GT_OQ);
    return _mm512_mask_blend_ps(pos, _mm512_mul_ps(k.slope, z), z);
  } else {
    return z;
  }
}

// y and arg of 16 windows whose rows start at r0 and r1, masked loads and stores.
template <int Act, bool Bias>
inline void pool16(const float* r0, const float* r1, __mmask16 mlo, __mmask16 mhi, __mmask16 mout,
                   int32_t first, const PoolConsts& k, float* y, int32_t* arg) {
  const __m512 a0 = _mm512_maskz_loadu_ps(mlo, r0), a1 = _mm512_maskz_loadu_ps(mhi, r0 + 16);
  const __m512 b0 = _mm512_maskz_loadu_ps(mlo, r1), b1 = _mm512_maskz_loadu_ps(mhi, r1 + 16);
  const __m512 va = pre<Act, Bias>(_mm512_permutex2var_ps(a0, k.even, a1), k);
  const __m512 vb = pre<Act, Bias>(_mm512_permutex2var_ps(a0, k.odd, a1), k);
  const __m512 vc = pre<Act, Bias>(_mm512_permutex2var_ps(b0, k.even, b1), k);
  const __m512 vd = pre<Act, Bias>(_mm512_permutex2var_ps(b0, k.odd, b1), k);
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

template <int Act, bool Bias>
void pool_plane(const float* x, int64_t w, int64_t p_out, int64_t q_out, const PoolConsts& k,
                float* y, int32_t* arg) {
  const __mmask16 all = 0xFFFF;
  for (int64_t p = 0; p < p_out; ++p) {
    const float* r0 = x + 2 * p * w;
    const float* r1 = r0 + w;
    float* yr = y + p * q_out;
    int32_t* ar = arg + p * q_out;
    const auto base = static_cast<int32_t>(2 * p * w);
    int64_t q = 0;
    for (; q + 16 <= q_out; q += 16)
      pool16<Act, Bias>(r0 + 2 * q, r1 + 2 * q, all, all, all, base + static_cast<int32_t>(2 * q),
                        k, yr + q, ar + q);
    if (q < q_out) {
      const int64_t rem = q_out - q, f = 2 * rem;  // outputs, input floats per row
      const auto mlo = static_cast<__mmask16>(f >= 16 ? 0xFFFFu : (1u << f) - 1u);
      const auto mhi = static_cast<__mmask16>(f > 16 ? (1u << (f - 16)) - 1u : 0u);
      const auto mout = static_cast<__mmask16>((1u << rem) - 1u);
      pool16<Act, Bias>(r0 + 2 * q, r1 + 2 * q, mlo, mhi, mout, base + static_cast<int32_t>(2 * q),
                        k, yr + q, ar + q);
    }
  }
}

template <int Act>
void pool_plane_act(const float* x, int64_t w, int64_t p_out, int64_t q_out, bool bias,
                    const PoolConsts& k, float* y, int32_t* arg) {
  if (bias)
    pool_plane<Act, true>(x, w, p_out, q_out, k, y, arg);
  else
    pool_plane<Act, false>(x, w, p_out, q_out, k, y, arg);
}

// g = dy * act'(y) of 16 pooled outputs (masked loads), as the scalar reference.
template <int Act>
inline __m512 grad16(const float* dy, const float* y, __mmask16 m, __m512 slope) {
  const __m512 d = _mm512_maskz_loadu_ps(m, dy);
  if constexpr (Act == 0) {
    (void)y;
    (void)slope;
    return d;
  } else {
    const __mmask16 pos =
        _mm512_cmp_ps_mask(_mm512_maskz_loadu_ps(m, y), _mm512_setzero_ps(), _CMP_GT_OQ);
    if constexpr (Act == 1) {
      (void)slope;
      return _mm512_maskz_mov_ps(pos, d);
    } else {
      return _mm512_mask_blend_ps(pos, _mm512_mul_ps(slope, d), d);
    }
  }
}

// The two dz rows of pooled row p: for 16 windows at a time, the argmax's place in its window
// (0, 1, w, w + 1) selects which of the four positions gets g; even and odd columns are then
// interleaved with two-source permutes and stored, 32 floats per row (masked at the tail).
template <int Act>
void unpool_plane(const float* dy, const float* y, float slope, const int32_t* arg, int64_t arg0,
                  int64_t w, int64_t p_out, int64_t q_out, float* g_out, float* dz) {
  const __m512i two_lane =
      _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i ilo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const __m512i ihi =
      _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
  const __m512i one = _mm512_set1_epi32(1), wv = _mm512_set1_epi32(static_cast<int32_t>(w)),
                w1 = _mm512_set1_epi32(static_cast<int32_t>(w + 1));
  const __m512 sv = _mm512_set1_ps(slope);
  for (int64_t p = 0; p < p_out; ++p) {
    const int64_t o = p * q_out;
    float* d0 = dz + 2 * p * w;
    float* d1 = d0 + w;
    for (int64_t q = 0; q < q_out; q += 16) {
      const int64_t rem = q_out - q < 16 ? q_out - q : 16, f = 2 * rem;
      const auto m = static_cast<__mmask16>(rem == 16 ? 0xFFFFu : (1u << rem) - 1u);
      const auto mlo = static_cast<__mmask16>(f >= 16 ? 0xFFFFu : (1u << f) - 1u);
      const auto mhi =
          static_cast<__mmask16>(f > 16 ? (f == 32 ? 0xFFFFu : (1u << (f - 16)) - 1u) : 0u);
      const __m512 g = grad16<Act>(dy + o + q, y ? y + o + q : nullptr, m, sv);
      if (g_out) _mm512_mask_storeu_ps(g_out + o + q, m, g);
      // The argmax relative to its window's top-left corner.
      const __m512i first = _mm512_set1_epi32(static_cast<int32_t>(arg0 + 2 * p * w + 2 * q));
      const __m512i code = _mm512_sub_epi32(
          _mm512_sub_epi32(_mm512_maskz_loadu_epi32(m, arg + o + q), first), two_lane);
      const __m512 e0 =
          _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(code, _mm512_setzero_si512()), g);
      const __m512 o0 = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(code, one), g);
      const __m512 e1 = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(code, wv), g);
      const __m512 o1 = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(code, w1), g);
      _mm512_mask_storeu_ps(d0 + 2 * q, mlo, _mm512_permutex2var_ps(e0, ilo, o0));
      _mm512_mask_storeu_ps(d0 + 2 * q + 16, mhi, _mm512_permutex2var_ps(e0, ihi, o0));
      _mm512_mask_storeu_ps(d1 + 2 * q, mlo, _mm512_permutex2var_ps(e1, ilo, o1));
      _mm512_mask_storeu_ps(d1 + 2 * q + 16, mhi, _mm512_permutex2var_ps(e1, ihi, o1));
    }
    for (int64_t c = 2 * q_out; c < w; ++c) d0[c] = d1[c] = 0.0f;
  }
}

}  // namespace

void unpool2x2(const float* dy, const float* y, int act, float slope, const int32_t* arg,
               int64_t arg0, int64_t w, int64_t p_out, int64_t q_out, float* g_out, float* dz) {
  if (act == 1)
    unpool_plane<1>(dy, y, slope, arg, arg0, w, p_out, q_out, g_out, dz);
  else if (act == 2)
    unpool_plane<2>(dy, y, slope, arg, arg0, w, p_out, q_out, g_out, dz);
  else
    unpool_plane<0>(dy, y, slope, arg, arg0, w, p_out, q_out, g_out, dz);
}

void maxpool2x2(const float* x, int64_t w, int64_t p_out, int64_t q_out, const float* bias, int act,
                float slope, float* y, int32_t* arg) {
  PoolConsts k;
  k.even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  k.odd = _mm512_add_epi32(k.even, _mm512_set1_epi32(1));
  k.two_lane = k.even;
  k.one = _mm512_set1_epi32(1);
  k.w = _mm512_set1_epi32(static_cast<int32_t>(w));
  k.w1 = _mm512_set1_epi32(static_cast<int32_t>(w + 1));
  k.bias = _mm512_set1_ps(bias ? *bias : 0.0f);
  k.slope = _mm512_set1_ps(slope);
  if (act == 1)
    pool_plane_act<1>(x, w, p_out, q_out, bias != nullptr, k, y, arg);
  else if (act == 2)
    pool_plane_act<2>(x, w, p_out, q_out, bias != nullptr, k, y, arg);
  else
    pool_plane_act<0>(x, w, p_out, q_out, bias != nullptr, k, y, arg);
}

bool pool_compiled() {
  return true;
}

#else

void maxpool2x2(const float* x, int64_t w, int64_t p_out, int64_t q_out, const float* bias, int act,
                float slope, float* y, int32_t* arg) {
  ref::maxpool2x2(x, w, p_out, q_out, bias, act, slope, y, arg);
}
void unpool2x2(const float* dy, const float* y, int act, float slope, const int32_t* arg,
               int64_t arg0, int64_t w, int64_t p_out, int64_t q_out, float* g_out, float* dz) {
  ref::unpool2x2(dy, y, act, slope, arg, arg0, w, p_out, q_out, g_out, dz);
}
bool pool_compiled() {
  return false;
}

#endif

}  // namespace imgsim::kernels::avx512
