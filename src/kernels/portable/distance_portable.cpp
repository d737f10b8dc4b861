// Portable inner products for CPUs without AVX2+FMA (Isa::scalar), compiled with the baseline
// flags. Eight lanes of partial sums in plain arrays (GCC vectorises them to SSE2), summed with the
// 8-lane tree of distance.hpp, so tiles and single dots agree bit for bit.
#include <cstddef>
#include <cstdint>

#include "kernels/distance.hpp"

namespace imgsim::kernels::portable {
namespace {

constexpr int64_t kV = 8;

inline float reduce8(const float* l) {
  const float b0 = (l[0] + l[2]) + (l[1] + l[3]);
  const float b1 = (l[4] + l[6]) + (l[5] + l[7]);
  return b0 + b1;
}

// R dot products of a against b[0..R): shares the loads of a.
template <int R>
inline void dots(const float* a, const float* const* b, int64_t d, float* out) {
  float acc[R][kV] = {};
  int64_t t = 0;
  for (; t + kV <= d; t += kV)
    for (int r = 0; r < R; ++r)
      for (int64_t l = 0; l < kV; ++l) acc[r][l] += a[t + l] * b[r][t + l];
  for (int r = 0; r < R; ++r)
    for (int64_t l = 0; t + l < d; ++l) acc[r][l] += a[t + l] * b[r][t + l];
  for (int r = 0; r < R; ++r) out[r] = reduce8(acc[r]);
}

}  // namespace

float dot(const float* a, const float* b, int64_t d) {
  float r;
  dots<1>(a, &b, d, &r);
  return r;
}

float neg_dot_void(const void* a, const void* b, const void* param) {
  const auto d = static_cast<int64_t>(*static_cast<const std::size_t*>(param));
  return -dot(static_cast<const float*>(a), static_cast<const float*>(b), d);
}

void ip_tile(const float* q, int64_t nq, int64_t ldq, const float* x, int64_t nx, int64_t ldx,
             int64_t d, float* out, int64_t ldo) {
  for (int64_t j0 = 0; j0 < nx; j0 += 4) {
    const int64_t nj = nx - j0 < 4 ? nx - j0 : 4;
    const float* rows[4];
    for (int64_t j = 0; j < 4; ++j) rows[j] = x + (j0 + (j < nj ? j : nj - 1)) * ldx;
    for (int64_t i = 0; i < nq; ++i) {
      float r[4];
      dots<4>(q + i * ldq, rows, d, r);
      for (int64_t j = 0; j < nj; ++j) out[i * ldo + j0 + j] = r[j];
    }
  }
}

void ip_f16(const float* q, const uint16_t* x, int64_t nx, int64_t ldx, int64_t d, float* out) {
  float row[256];
  for (int64_t j = 0; j < nx; ++j) {
    float acc[kV] = {};
    for (int64_t t0 = 0; t0 < d; t0 += 256) {  // convert a slice, then multiply it
      const int64_t m = d - t0 < 256 ? d - t0 : 256;
      for (int64_t t = 0; t < m; ++t) row[t] = f16_to_f32(x[j * ldx + t0 + t]);
      int64_t t = 0;
      for (; t + kV <= m; t += kV)
        for (int64_t l = 0; l < kV; ++l) acc[l] += q[t0 + t + l] * row[t + l];
      for (int64_t l = 0; t + l < m; ++l) acc[l] += q[t0 + t + l] * row[t + l];
    }
    out[j] = reduce8(acc);
  }
}

bool distance_compiled() {
  return true;
}

}  // namespace imgsim::kernels::portable
