// Scalar reference inner products: the oracle the SIMD kernels are tested against.
#include <cmath>
#include <cstring>

#include "kernels/distance.hpp"

namespace imgsim::kernels {

uint16_t f32_to_f16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const auto sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  const uint32_t ax = x & 0x7fffffffu;
  if (ax >= 0x7f800000u)  // infinity, NaN (quiet)
    return static_cast<uint16_t>(sign | (ax > 0x7f800000u ? 0x7e00u : 0x7c00u));
  if (ax >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // >= 65520: infinity
  if (ax < 0x38800000u) {  // below 2^-14: a binary16 subnormal (or zero), units of 2^-24
    float v;
    std::memcpy(&v, &ax, 4);
    return static_cast<uint16_t>(sign | static_cast<uint32_t>(std::nearbyint(v * 16777216.0f)));
  }
  // Normal: drop 13 mantissa bits rounding to nearest even (a carry may bump the exponent),
  // then rebias the exponent from 127 to 15.
  const uint32_t r = (ax + 0xfffu + ((ax >> 13) & 1u)) >> 13;
  return static_cast<uint16_t>(sign | (r - (112u << 10)));
}

float f16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
  uint32_t bits;
  if (e == 0) {
    const float v = static_cast<float>(m) * 5.9604644775390625e-8f;  // m * 2^-24, exact
    std::memcpy(&bits, &v, 4);
    bits |= sign;
  } else if (e == 31) {
    bits = sign | 0x7f800000u | (m << 13);
  } else {
    bits = sign | ((e + 112u) << 23) | (m << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

}  // namespace imgsim::kernels

namespace imgsim::kernels::ref {

float dot(const float* a, const float* b, int64_t d) {
  double s = 0.0;
  for (int64_t t = 0; t < d; ++t) s += static_cast<double>(a[t]) * static_cast<double>(b[t]);
  return static_cast<float>(s);
}

void ip_tile(const float* q, int64_t nq, int64_t ldq, const float* x, int64_t nx, int64_t ldx,
             int64_t d, float* out, int64_t ldo) {
  for (int64_t i = 0; i < nq; ++i)
    for (int64_t j = 0; j < nx; ++j) out[i * ldo + j] = dot(q + i * ldq, x + j * ldx, d);
}

void ip_f16(const float* q, const uint16_t* x, int64_t nx, int64_t ldx, int64_t d, float* out) {
  for (int64_t j = 0; j < nx; ++j) {
    double s = 0.0;
    for (int64_t t = 0; t < d; ++t)
      s += static_cast<double>(q[t]) * static_cast<double>(f16_to_f32(x[j * ldx + t]));
    out[j] = static_cast<float>(s);
  }
}

}  // namespace imgsim::kernels::ref
