// The AVX-512 intrinsics that the AVX-512 kernels use, in portable C++ on GCC's vector types: for
// testing those kernels on a CPU without AVX-512 (CMake option IMGSIM_EMULATE_AVX512, tests only).
//
// With the option, src/kernels/avx512/*.cpp are compiled with the AVX2 flags and this header
// included first (-include); each intrinsic name below becomes a macro for a function here with
// the semantics of Intel's reference (lane by lane, masked lanes neither read nor written, fused
// multiply-adds rounded once), and cpu_features reports AVX-512 wherever AVX2 and FMA run. The
// kernels then run under every IMGSIM_MAX_ISA and every test, against the same references and
// tolerances as on the hardware; their speed means nothing. The emulation itself is checked only
// through those tests (it has not been compared with an AVX-512 CPU). Only GCC compiles this header
// (its vector extensions and -Wno-psabi: 64-byte vectors passed without AVX-512 change the ABI,
// which does not matter inside one library).
#ifndef IMGSIM_KERNELS_AVX512_EMULATE_HPP
#define IMGSIM_KERNELS_AVX512_EMULATE_HPP

#include <immintrin.h>

#include <cmath>
#include <cstdint>
#include <cstring>

namespace imgsim::kernels::emu512 {

using v16si = int32_t __attribute__((vector_size(64)));
using v16su = uint32_t __attribute__((vector_size(64)));
using v16sf = float __attribute__((vector_size(64)));

// Vector casts between vectors of one size keep the bits.
inline v16sf f(__m512 a) {
  return (v16sf)a;
}
inline v16si i32(__m512i a) {
  return (v16si)a;
}
inline __m512 ps(v16sf a) {
  return (__m512)a;
}
inline __m512i si(v16si a) {
  return (__m512i)a;
}
inline bool on(unsigned k, int i) {
  return (k >> i) & 1u;
}
// The vector of value(i) for the 16 lanes; the mask of the lanes i where test(i).
template <class V, class F>
inline V each(F value) {
  V r;
  for (int i = 0; i < 16; ++i) r[i] = value(i);
  return r;
}
template <class F>
inline __mmask16 where(F test) {
  unsigned k = 0;
  for (int i = 0; i < 16; ++i) k |= unsigned{test(i)} << i;
  return static_cast<__mmask16>(k);
}

// --- set, load, store -------------------------------------------------------------------------
inline __m512 setzero_ps() {
  return ps(v16sf{});
}
inline __m512i setzero_si512() {
  return si(v16si{});
}
inline __m512 undefined_ps() {
  return setzero_ps();
}
inline __m512 set1_ps(float a) {
  return ps(each<v16sf>([&](int) { return a; }));
}
inline __m512i set1_epi32(int a) {
  return si(each<v16si>([&](int) { return a; }));
}
inline __m512i setr_epi32(int e0, int e1, int e2, int e3, int e4, int e5, int e6, int e7, int e8,
                          int e9, int e10, int e11, int e12, int e13, int e14, int e15) {
  return si(v16si{e0, e1, e2, e3, e4, e5, e6, e7, e8, e9, e10, e11, e12, e13, e14, e15});
}
inline __m512 loadu_ps(const void* p) {
  __m512 r;
  std::memcpy(&r, p, 64);
  return r;
}
inline __m512i loadu_si512(const void* p) {
  __m512i r;
  std::memcpy(&r, p, 64);
  return r;
}
inline void storeu_ps(void* p, __m512 a) {
  std::memcpy(p, &a, 64);
}
inline void store_ps(void* p, __m512 a) {
  std::memcpy(p, &a, 64);
}
inline void storeu_si512(void* p, __m512i a) {
  std::memcpy(p, &a, 64);
}
// 16 lanes of T at p, masked lanes neither read nor written.
template <class V, class T>
inline V masked_load(__mmask16 k, const void* p) {
  static_assert(sizeof(V) == 16 * sizeof(T));
  T r[16] = {};
  const auto* s = static_cast<const T*>(p);
  for (int i = 0; i < 16; ++i)
    if (on(k, i)) r[i] = s[i];
  V v;
  std::memcpy(&v, r, sizeof v);
  return v;
}
template <class T, class V>
inline void masked_store(void* p, __mmask16 k, V a) {
  static_assert(sizeof(V) == 16 * sizeof(T));
  T v[16];
  std::memcpy(v, &a, sizeof v);
  auto* d = static_cast<T*>(p);
  for (int i = 0; i < 16; ++i)
    if (on(k, i)) d[i] = v[i];
}
inline __m512 maskz_loadu_ps(__mmask16 k, const void* p) {
  return masked_load<__m512, float>(k, p);
}
inline __m512i maskz_loadu_epi32(__mmask16 k, const void* p) {
  return masked_load<__m512i, int32_t>(k, p);
}
inline void mask_storeu_ps(void* p, __mmask16 k, __m512 a) {
  masked_store<float>(p, k, a);
}
inline void mask_storeu_epi32(void* p, __mmask16 k, __m512i a) {
  masked_store<int32_t>(p, k, a);
}
// 16 half floats and 16 bytes (AVX512BW + VL).
inline __m256i maskz_loadu_epi16(__mmask16 k, const void* p) {
  return masked_load<__m256i, uint16_t>(k, p);
}
inline __m128i maskz_loadu_epi8(__mmask16 k, const void* p) {
  return masked_load<__m128i, uint8_t>(k, p);
}

// --- arithmetic and logic ---------------------------------------------------------------------
inline __m512 add_ps(__m512 a, __m512 b) {
  return ps(f(a) + f(b));
}
inline __m512 mul_ps(__m512 a, __m512 b) {
  return ps(f(a) * f(b));
}
inline __m512 fmadd_ps(__m512 a, __m512 b, __m512 c) {
  const v16sf x = f(a), y = f(b), z = f(c);
  return ps(each<v16sf>([&](int i) { return std::fma(x[i], y[i], z[i]); }));
}
inline __m512 mask_add_ps(__m512 src, __mmask16 k, __m512 a, __m512 b) {
  const v16sf s = f(src), x = f(a), y = f(b);
  return ps(each<v16sf>([&](int i) { return on(k, i) ? x[i] + y[i] : s[i]; }));
}
inline __m512i add_epi32(__m512i a, __m512i b) {
  return si(v16si(v16su(i32(a)) + v16su(i32(b))));  // wraps, as the instruction does
}
inline __m512i sub_epi32(__m512i a, __m512i b) {
  return si(v16si(v16su(i32(a)) - v16su(i32(b))));
}
inline __m512i or_si512(__m512i a, __m512i b) {
  return si(i32(a) | i32(b));
}

// --- compares to masks, blends ----------------------------------------------------------------
// The predicates the kernels use; any other is a programming error here.
inline __mmask16 cmp_ps_mask(__m512 a, __m512 b, int pred) {
  const v16sf x = f(a), y = f(b);  // ordered, quiet: false where either is NaN
  switch (pred) {
    case _CMP_GT_OQ:
      return where([&](int i) { return x[i] > y[i]; });
    case _CMP_GE_OQ:
      return where([&](int i) { return x[i] >= y[i]; });
    case _CMP_LT_OQ:
      return where([&](int i) { return x[i] < y[i]; });
    case _CMP_LE_OQ:
      return where([&](int i) { return x[i] <= y[i]; });
    case _CMP_EQ_OQ:
      return where([&](int i) { return x[i] == y[i]; });
    default:
      __builtin_trap();
  }
}
inline __mmask16 mask_cmpeq_epi32_mask(__mmask16 m, __m512i a, __m512i b) {
  const v16si x = i32(a), y = i32(b);
  return where([&](int i) { return on(m, i) && x[i] == y[i]; });
}
inline __mmask16 cmpeq_epi32_mask(__m512i a, __m512i b) {
  return mask_cmpeq_epi32_mask(0xFFFF, a, b);
}
inline __mmask16 mask_cmpge_epi32_mask(__mmask16 m, __m512i a, __m512i b) {
  const v16si x = i32(a), y = i32(b);
  return where([&](int i) { return on(m, i) && x[i] >= y[i]; });
}
inline __mmask16 test_epi32_mask(__m512i a, __m512i b) {
  const v16si x = i32(a), y = i32(b);
  return where([&](int i) { return (x[i] & y[i]) != 0; });
}
inline __m512 mask_blend_ps(__mmask16 k, __m512 a, __m512 b) {
  const v16sf x = f(a), y = f(b);
  return ps(each<v16sf>([&](int i) { return on(k, i) ? y[i] : x[i]; }));
}
inline __m512i mask_blend_epi32(__mmask16 k, __m512i a, __m512i b) {
  const v16si x = i32(a), y = i32(b);
  return si(each<v16si>([&](int i) { return on(k, i) ? y[i] : x[i]; }));
}
inline __m512 maskz_mov_ps(__mmask16 k, __m512 a) {
  return mask_blend_ps(k, setzero_ps(), a);
}
inline __m512i maskz_mov_epi32(__mmask16 k, __m512i a) {
  return mask_blend_epi32(k, setzero_si512(), a);
}

// --- shuffles ---------------------------------------------------------------------------------
// Within each 128-bit lane: r[j] = a[imm >> 2j & 3].
inline __m512 permute_ps(__m512 a, int imm) {
  const v16sf x = f(a);
  v16sf r;
  for (int l = 0; l < 16; l += 4)
    for (int j = 0; j < 4; ++j) r[l + j] = x[l + ((imm >> (2 * j)) & 3)];
  return ps(r);
}
// Within each 128-bit lane: a[imm & 3], a[imm >> 2 & 3], b[imm >> 4 & 3], b[imm >> 6 & 3].
inline __m512 shuffle_ps(__m512 a, __m512 b, int imm) {
  const v16sf x = f(a), y = f(b);
  v16sf r;
  for (int l = 0; l < 16; l += 4) {
    r[l] = x[l + (imm & 3)];
    r[l + 1] = x[l + ((imm >> 2) & 3)];
    r[l + 2] = y[l + ((imm >> 4) & 3)];
    r[l + 3] = y[l + ((imm >> 6) & 3)];
  }
  return ps(r);
}
// 128-bit lanes: a's (imm & 3) and (imm >> 2 & 3), then b's (imm >> 4 & 3) and (imm >> 6 & 3).
inline __m512 shuffle_f32x4(__m512 a, __m512 b, int imm) {
  const v16sf x = f(a), y = f(b);
  v16sf r;
  for (int q = 0; q < 4; ++q) {
    const v16sf& s = q < 2 ? x : y;
    const int from = (imm >> (2 * q)) & 3;
    for (int j = 0; j < 4; ++j) r[4 * q + j] = s[4 * from + j];
  }
  return ps(r);
}
// Per 128-bit lane: lo = a0 b0 a1 b1, hi = a2 b2 a3 b3.
inline __m512 unpack_ps(__m512 a, __m512 b, int half) {
  const v16sf x = f(a), y = f(b);
  v16sf r;
  for (int l = 0; l < 16; l += 4) {
    r[l] = x[l + 2 * half];
    r[l + 1] = y[l + 2 * half];
    r[l + 2] = x[l + 2 * half + 1];
    r[l + 3] = y[l + 2 * half + 1];
  }
  return ps(r);
}
inline __m512 unpacklo_ps(__m512 a, __m512 b) {
  return unpack_ps(a, b, 0);
}
inline __m512 unpackhi_ps(__m512 a, __m512 b) {
  return unpack_ps(a, b, 1);
}
// Per 128-bit lane of two doubles: lo = a0 b0, hi = a1 b1 (moved as 64-bit pairs of floats).
inline __m512d unpack_pd(__m512d a, __m512d b, int half) {
  int64_t x[8], y[8], r[8];
  std::memcpy(x, &a, 64);
  std::memcpy(y, &b, 64);
  for (int l = 0; l < 8; l += 2) {
    r[l] = x[l + half];
    r[l + 1] = y[l + half];
  }
  __m512d v;
  std::memcpy(&v, r, 64);
  return v;
}
inline __m512d unpacklo_pd(__m512d a, __m512d b) {
  return unpack_pd(a, b, 0);
}
inline __m512d unpackhi_pd(__m512d a, __m512d b) {
  return unpack_pd(a, b, 1);
}
// r[i] = (idx[i] & 16 ? b : a)[idx[i] & 15].
inline __m512 permutex2var_ps(__m512 a, __m512i idx, __m512 b) {
  const v16sf x = f(a), y = f(b);
  const v16si s = i32(idx);
  return ps(each<v16sf>([&](int i) { return (s[i] & 16) ? y[s[i] & 15] : x[s[i] & 15]; }));
}

// --- casts, extracts, conversions -------------------------------------------------------------
inline __m512 castpd_ps(__m512d a) {
  return (__m512)a;
}
inline __m512d castps_pd(__m512 a) {
  return (__m512d)a;
}
inline __m128 castps512_ps128(__m512 a) {
  __m128 r;
  std::memcpy(&r, &a, 16);
  return r;
}
inline __m256 castps512_ps256(__m512 a) {
  __m256 r;
  std::memcpy(&r, &a, 32);
  return r;
}
inline __m128 extractf32x4_ps(__m512 a, int imm) {
  __m128 r;
  std::memcpy(&r, reinterpret_cast<const char*>(&a) + 16 * (imm & 3), 16);
  return r;
}
inline __m256 extractf32x8_ps(__m512 a, int imm) {
  __m256 r;
  std::memcpy(&r, reinterpret_cast<const char*>(&a) + 32 * (imm & 1), 32);
  return r;
}
inline float cvtss_f32(__m512 a) {
  return f(a)[0];
}
inline __m512i cvtepu8_epi32(__m128i a) {
  uint8_t b[16];
  std::memcpy(b, &a, 16);
  return si(each<v16si>([&](int i) { return int32_t{b[i]}; }));
}
// Half to single precision is exact: the host's F16C (the AVX2 flags include -mf16c).
inline __m512 cvtph_ps(__m256i a) {
  __m128i h[2];
  std::memcpy(h, &a, 32);
  const __m256 lo = _mm256_cvtph_ps(h[0]), hi = _mm256_cvtph_ps(h[1]);
  __m512 r;
  std::memcpy(&r, &lo, 32);
  std::memcpy(reinterpret_cast<char*>(&r) + 32, &hi, 32);
  return r;
}

}  // namespace imgsim::kernels::emu512

// Intrinsic names to the functions above (GCC defines some of them as macros itself).
#undef _mm512_setzero_ps
#define _mm512_setzero_ps ::imgsim::kernels::emu512::setzero_ps
#undef _mm512_setzero_si512
#define _mm512_setzero_si512 ::imgsim::kernels::emu512::setzero_si512
#undef _mm512_undefined_ps
#define _mm512_undefined_ps ::imgsim::kernels::emu512::undefined_ps
#undef _mm512_set1_ps
#define _mm512_set1_ps ::imgsim::kernels::emu512::set1_ps
#undef _mm512_set1_epi32
#define _mm512_set1_epi32 ::imgsim::kernels::emu512::set1_epi32
#undef _mm512_setr_epi32
#define _mm512_setr_epi32 ::imgsim::kernels::emu512::setr_epi32
#undef _mm512_loadu_ps
#define _mm512_loadu_ps ::imgsim::kernels::emu512::loadu_ps
#undef _mm512_loadu_si512
#define _mm512_loadu_si512 ::imgsim::kernels::emu512::loadu_si512
#undef _mm512_storeu_ps
#define _mm512_storeu_ps ::imgsim::kernels::emu512::storeu_ps
#undef _mm512_store_ps
#define _mm512_store_ps ::imgsim::kernels::emu512::store_ps
#undef _mm512_storeu_si512
#define _mm512_storeu_si512 ::imgsim::kernels::emu512::storeu_si512
#undef _mm512_maskz_loadu_ps
#define _mm512_maskz_loadu_ps ::imgsim::kernels::emu512::maskz_loadu_ps
#undef _mm512_maskz_loadu_epi32
#define _mm512_maskz_loadu_epi32 ::imgsim::kernels::emu512::maskz_loadu_epi32
#undef _mm512_mask_storeu_ps
#define _mm512_mask_storeu_ps ::imgsim::kernels::emu512::mask_storeu_ps
#undef _mm512_mask_storeu_epi32
#define _mm512_mask_storeu_epi32 ::imgsim::kernels::emu512::mask_storeu_epi32
#undef _mm256_maskz_loadu_epi16
#define _mm256_maskz_loadu_epi16 ::imgsim::kernels::emu512::maskz_loadu_epi16
#undef _mm_maskz_loadu_epi8
#define _mm_maskz_loadu_epi8 ::imgsim::kernels::emu512::maskz_loadu_epi8
#undef _mm512_add_ps
#define _mm512_add_ps ::imgsim::kernels::emu512::add_ps
#undef _mm512_mul_ps
#define _mm512_mul_ps ::imgsim::kernels::emu512::mul_ps
#undef _mm512_fmadd_ps
#define _mm512_fmadd_ps ::imgsim::kernels::emu512::fmadd_ps
#undef _mm512_mask_add_ps
#define _mm512_mask_add_ps ::imgsim::kernels::emu512::mask_add_ps
#undef _mm512_add_epi32
#define _mm512_add_epi32 ::imgsim::kernels::emu512::add_epi32
#undef _mm512_sub_epi32
#define _mm512_sub_epi32 ::imgsim::kernels::emu512::sub_epi32
#undef _mm512_or_si512
#define _mm512_or_si512 ::imgsim::kernels::emu512::or_si512
#undef _mm512_cmp_ps_mask
#define _mm512_cmp_ps_mask ::imgsim::kernels::emu512::cmp_ps_mask
#undef _mm512_cmpeq_epi32_mask
#define _mm512_cmpeq_epi32_mask ::imgsim::kernels::emu512::cmpeq_epi32_mask
#undef _mm512_mask_cmpeq_epi32_mask
#define _mm512_mask_cmpeq_epi32_mask ::imgsim::kernels::emu512::mask_cmpeq_epi32_mask
#undef _mm512_mask_cmpge_epi32_mask
#define _mm512_mask_cmpge_epi32_mask ::imgsim::kernels::emu512::mask_cmpge_epi32_mask
#undef _mm512_test_epi32_mask
#define _mm512_test_epi32_mask ::imgsim::kernels::emu512::test_epi32_mask
#undef _mm512_mask_blend_ps
#define _mm512_mask_blend_ps ::imgsim::kernels::emu512::mask_blend_ps
#undef _mm512_mask_blend_epi32
#define _mm512_mask_blend_epi32 ::imgsim::kernels::emu512::mask_blend_epi32
#undef _mm512_maskz_mov_ps
#define _mm512_maskz_mov_ps ::imgsim::kernels::emu512::maskz_mov_ps
#undef _mm512_maskz_mov_epi32
#define _mm512_maskz_mov_epi32 ::imgsim::kernels::emu512::maskz_mov_epi32
#undef _mm512_permute_ps
#define _mm512_permute_ps ::imgsim::kernels::emu512::permute_ps
#undef _mm512_shuffle_ps
#define _mm512_shuffle_ps ::imgsim::kernels::emu512::shuffle_ps
#undef _mm512_shuffle_f32x4
#define _mm512_shuffle_f32x4 ::imgsim::kernels::emu512::shuffle_f32x4
#undef _mm512_unpacklo_ps
#define _mm512_unpacklo_ps ::imgsim::kernels::emu512::unpacklo_ps
#undef _mm512_unpackhi_ps
#define _mm512_unpackhi_ps ::imgsim::kernels::emu512::unpackhi_ps
#undef _mm512_unpacklo_pd
#define _mm512_unpacklo_pd ::imgsim::kernels::emu512::unpacklo_pd
#undef _mm512_unpackhi_pd
#define _mm512_unpackhi_pd ::imgsim::kernels::emu512::unpackhi_pd
#undef _mm512_permutex2var_ps
#define _mm512_permutex2var_ps ::imgsim::kernels::emu512::permutex2var_ps
#undef _mm512_castpd_ps
#define _mm512_castpd_ps ::imgsim::kernels::emu512::castpd_ps
#undef _mm512_castps_pd
#define _mm512_castps_pd ::imgsim::kernels::emu512::castps_pd
#undef _mm512_castps512_ps128
#define _mm512_castps512_ps128 ::imgsim::kernels::emu512::castps512_ps128
#undef _mm512_castps512_ps256
#define _mm512_castps512_ps256 ::imgsim::kernels::emu512::castps512_ps256
#undef _mm512_extractf32x4_ps
#define _mm512_extractf32x4_ps ::imgsim::kernels::emu512::extractf32x4_ps
#undef _mm512_extractf32x8_ps
#define _mm512_extractf32x8_ps ::imgsim::kernels::emu512::extractf32x8_ps
#undef _mm512_cvtss_f32
#define _mm512_cvtss_f32 ::imgsim::kernels::emu512::cvtss_f32
#undef _mm512_cvtepu8_epi32
#define _mm512_cvtepu8_epi32 ::imgsim::kernels::emu512::cvtepu8_epi32
#undef _mm512_cvtph_ps
#define _mm512_cvtph_ps ::imgsim::kernels::emu512::cvtph_ps

#endif  // IMGSIM_KERNELS_AVX512_EMULATE_HPP
