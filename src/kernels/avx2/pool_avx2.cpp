// AVX2 2x2 / stride 2 max pooling of one plane (kernels.hpp): 8 outputs per step. Even and
// odd columns are separated with shuffle + cross-lane permute, the bias and activation (if any)
// applied to each; the first maximum in window order
// is kept with ordered greater-than compares (false for NaN, like the scalar '>') and blends,
// which also select the argmax offset. The row tail (fewer than 8 outputs) is one more such step
// on masked loads, stored by 4, 2 and 1 floats (store_head).
// unpool2x2 (its backward) is a plain loop over windows, left to the compiler.
#include <cstdint>

#include "kernels/kernels.hpp"

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define IMGSIM_HAVE_AVX2_POOL 1
#endif

namespace imgsim::kernels::avx2 {

#ifdef IMGSIM_HAVE_AVX2_POOL

namespace {

#include "kernels/avx2/store_head.inc"

// Even (imm 0x88) or odd (0xDD) floats of (lo, hi), in order.
template <int Imm>
inline __m256 deinterleave(__m256 lo, __m256 hi) {
  const __m256 t = _mm256_shuffle_ps(lo, hi, Imm);
  return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(t), 0xD8));
}
// The same of s[0..16).
template <int Imm>
inline __m256 deinterleave(const float* s) {
  return deinterleave<Imm>(_mm256_loadu_ps(s), _mm256_loadu_ps(s + 8));
}

// Lanes [0, n) set (all bits of a lane), n in [0, 8].
inline __m256i lanes(int64_t n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)),
                            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// act(z + bias) (Bias) or act(z), as the scalar reference (relu: z > 0 ? z : 0; leaky_relu:
// z > 0 ? z : slope z; ordered compares, so NaN takes the second branch).
template <int Act, bool Bias>
inline __m256 pre(__m256 z, __m256 bias, __m256 slope) {
  if constexpr (Bias) z = _mm256_add_ps(z, bias);
  if constexpr (Act == 1) {
    return _mm256_and_ps(_mm256_cmp_ps(z, _mm256_setzero_ps(), _CMP_GT_OQ), z);
  } else if constexpr (Act == 2) {
    const __m256 pos = _mm256_cmp_ps(z, _mm256_setzero_ps(), _CMP_GT_OQ);
    return _mm256_blendv_ps(_mm256_mul_ps(slope, z), z, pos);
  } else {
    (void)bias;
    (void)slope;
    return z;
  }
}

inline void take_if_greater(__m256 v, __m256i code, __m256& best, __m256i& off) {
  const __m256 m = _mm256_cmp_ps(v, best, _CMP_GT_OQ);
  best = _mm256_blendv_ps(best, v, m);
  off =
      _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(off), _mm256_castsi256_ps(code), m));
}

template <int Act, bool Bias>
void pool_plane(const float* x, int64_t w, int64_t p_out, int64_t q_out, float bias, float slope,
                float* y, int32_t* arg) {
  const __m256 bv = _mm256_set1_ps(bias), sv = _mm256_set1_ps(slope);
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
      __m256 best = pre<Act, Bias>(deinterleave<0x88>(r0 + 2 * q), bv, sv);
      __m256i off = _mm256_setzero_si256();
      take_if_greater(pre<Act, Bias>(deinterleave<0xDD>(r0 + 2 * q), bv, sv), one, best, off);
      take_if_greater(pre<Act, Bias>(deinterleave<0x88>(r1 + 2 * q), bv, sv), wv, best, off);
      take_if_greater(pre<Act, Bias>(deinterleave<0xDD>(r1 + 2 * q), bv, sv), w1, best, off);
      const __m256i at = _mm256_add_epi32(
          _mm256_add_epi32(_mm256_set1_epi32(base + static_cast<int32_t>(2 * q)), two_lane), off);
      _mm256_storeu_ps(yr + q, best);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(ar + q), at);
    }
    if (q < q_out) {
      // The last q_out - q < 8 windows the same way, their 2 (q_out - q) floats of each row read
      // with masked loads (the other lanes read 0 and are not stored); the results go out by 4,
      // 2 and 1 floats (store_head: a masked store, vmaskmovps to memory, is slow on AMD).
      const int64_t rem = q_out - q, nf = 2 * rem;
      const __m256i mlo = lanes(nf < 8 ? nf : 8), mhi = lanes(nf > 8 ? nf - 8 : 0);
      auto row = [&](const float* r, __m256& e, __m256& o) {
        const __m256 lo = _mm256_maskload_ps(r + 2 * q, mlo);
        const __m256 hi = _mm256_maskload_ps(r + 2 * q + 8, mhi);
        e = pre<Act, Bias>(deinterleave<0x88>(lo, hi), bv, sv);
        o = pre<Act, Bias>(deinterleave<0xDD>(lo, hi), bv, sv);
      };
      __m256 e0, o0, e1, o1;
      row(r0, e0, o0);
      row(r1, e1, o1);
      __m256 best = e0;
      __m256i off = _mm256_setzero_si256();
      take_if_greater(o0, one, best, off);
      take_if_greater(e1, wv, best, off);
      take_if_greater(o1, w1, best, off);
      const __m256i at = _mm256_add_epi32(
          _mm256_add_epi32(_mm256_set1_epi32(base + static_cast<int32_t>(2 * q)), two_lane), off);
      store_head(yr + q, best, rem);
      store_head(ar + q, at, rem);
    }
  }
}

template <int Act>
void pool_plane_act(const float* x, int64_t w, int64_t p_out, int64_t q_out, const float* bias,
                    float slope, float* y, int32_t* arg) {
  if (bias)
    pool_plane<Act, true>(x, w, p_out, q_out, *bias, slope, y, arg);
  else
    pool_plane<Act, false>(x, w, p_out, q_out, 0.0f, slope, y, arg);
}

template <int Act>
void unpool_plane(const float* dy, const float* y, float slope, const int32_t* arg, int64_t arg0,
                  int64_t w, int64_t p_out, int64_t q_out, float* g_out, float* dz) {
  for (int64_t p = 0; p < p_out; ++p) {
    const int64_t o = p * q_out;
    float* __restrict d0 = dz + 2 * p * w;
    float* __restrict d1 = d0 + w;
    for (int64_t q = 0; q < q_out; ++q) {
      float g = dy[o + q];
      if constexpr (Act == 1) g = y[o + q] > 0.0f ? g : 0.0f;
      if constexpr (Act == 2) g = y[o + q] > 0.0f ? g : slope * g;
      if (g_out) g_out[o + q] = g;
      // The argmax relative to its window's top-left corner: 0, 1, w or w + 1.
      const int64_t code = arg[o + q] - arg0 - 2 * p * w - 2 * q;
      d0[2 * q] = code == 0 ? g : 0.0f;
      d0[2 * q + 1] = code == 1 ? g : 0.0f;
      d1[2 * q] = code == w ? g : 0.0f;
      d1[2 * q + 1] = code == w + 1 ? g : 0.0f;
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
  if (act == 1)
    pool_plane_act<1>(x, w, p_out, q_out, bias, slope, y, arg);
  else if (act == 2)
    pool_plane_act<2>(x, w, p_out, q_out, bias, slope, y, arg);
  else
    pool_plane_act<0>(x, w, p_out, q_out, bias, slope, y, arg);
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

}  // namespace imgsim::kernels::avx2
