// Portable SGEMM for CPUs without AVX2+FMA (Isa::scalar): micro-kernel f32_gemm_6x8__portable
// and the same blocked driver as the SIMD versions (gemm_driver.inc), in C++ with the GCC / Clang
// vector extension (no intrinsics), compiled with the baseline flags: SSE2 on x86-64, whatever
// the target has elsewhere.
//
// Why not Eigen here: the shared driver gives the fallback the same packing, tail handling,
// threading and no-allocation behaviour as the fast paths (so the tests cover one design), and it
// keeps ref::sgemm, the naive loop, as an independent oracle. See docs/kernels.md.
#include <cstdint>
#include <cstdlib>

#include "kernels/kernels.hpp"
#include "kernels/thread_pool.hpp"

namespace imgsim::kernels::portable {
namespace {

constexpr int64_t kMR = 6, kNR = 8, kVec = 8;
constexpr int64_t kMC = 120, kKC = 256, kNC = 8 * 256;

// Four floats in an SSE register: GCC / Clang vector extension, which compiles to SSE2 with the
// baseline flags (plain arrays get vectorised too, but with shuffles and spills).
typedef float V4 __attribute__((vector_size(16)));

inline V4 load4(const float* p) {
  V4 v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}
inline void store4(float* p, V4 v) {
  __builtin_memcpy(p, &v, sizeof v);
}

// C[R x nr] = alpha * sum_k a[k][0..R) (x) b[k][0..8) + beta * C, nr in [1, 8].
template <int R>
void tile(int64_t kc, const float* __restrict a, const float* __restrict b, int64_t ldbp,
          float* __restrict c, int64_t ldc, float alpha, float beta, int64_t nr) {
  V4 acc[R][2];
#pragma GCC unroll 6
  for (int i = 0; i < R; ++i) acc[i][0] = acc[i][1] = V4{0.0f, 0.0f, 0.0f, 0.0f};
  for (int64_t k = 0; k < kc; ++k) {
    const V4 b0 = load4(b), b1 = load4(b + 4);
#pragma GCC unroll 6
    for (int i = 0; i < R; ++i) {
      const V4 ai = V4{a[i], a[i], a[i], a[i]};
      acc[i][0] += ai * b0;
      acc[i][1] += ai * b1;
    }
    a += kMR;
    b += ldbp;
  }
  for (int i = 0; i < R; ++i) {
    float* ci = c + i * ldc;
    if (nr == kNR) {
      for (int h = 0; h < 2; ++h) {
        V4 r = alpha * acc[i][h];
        if (beta != 0.0f) r += beta * load4(ci + 4 * h);
        store4(ci + 4 * h, r);
      }
    } else {
      float t[kNR];
      store4(t, acc[i][0]);
      store4(t + 4, acc[i][1]);
      for (int64_t j = 0; j < nr; ++j)
        ci[j] = beta == 0.0f ? alpha * t[j] : alpha * t[j] + beta * ci[j];
    }
  }
}

using TileFn = void (*)(int64_t, const float*, const float*, int64_t, float*, int64_t, float, float,
                        int64_t);
constexpr TileFn kTiles[kMR] = {&tile<1>, &tile<2>, &tile<3>, &tile<4>, &tile<5>, &tile<6>};

// The prefetch hint is ignored (no portable prefetch instruction).
inline void micro_tile(int64_t kc, const float* ap, const float* bp, int64_t ldbp, float* c,
                       int64_t ldc, float alpha, float beta, int64_t mr, int64_t nr,
                       const float* /*pf*/, int64_t /*pf_ld*/) {
  kTiles[mr - 1](kc, ap, bp, ldbp, c, ldc, alpha, beta, nr);
}

}  // namespace

#include "kernels/gemm_driver.inc"

bool compiled() {
  return true;
}
const char* sgemm_name() {
  return "f32_gemm_6x8__portable";
}

}  // namespace imgsim::kernels::portable
