// Scalar 2x2 / stride 2 max pooling of one plane (kernels.hpp). It is both the oracle and
// the Isa::scalar entry of the kernel table.
#include <cstdint>

#include "kernels/kernels.hpp"

namespace imgsim::kernels::ref {

void maxpool2x2(const float* x, int64_t w, int64_t p_out, int64_t q_out, const float* bias, int act,
                float slope, float* y, int32_t* arg) {
  auto pre = [&](float z) {
    if (bias) z = z + *bias;
    if (act == 1) return z > 0.0f ? z : 0.0f;
    if (act == 2) return z > 0.0f ? z : slope * z;
    return z;
  };
  for (int64_t p = 0; p < p_out; ++p) {
    const float* r0 = x + 2 * p * w;
    const float* r1 = r0 + w;
    for (int64_t q = 0; q < q_out; ++q) {
      // Row-major window order; a later value wins only if strictly greater (NaN never does).
      const float v[4] = {pre(r0[2 * q]), pre(r0[2 * q + 1]), pre(r1[2 * q]), pre(r1[2 * q + 1])};
      const int64_t off[4] = {0, 1, w, w + 1};
      int best = 0;
      for (int i = 1; i < 4; ++i)
        if (v[i] > v[best]) best = i;
      y[p * q_out + q] = v[best];
      arg[p * q_out + q] = static_cast<int32_t>(2 * p * w + 2 * q + off[best]);
    }
  }
}

void unpool2x2(const float* dy, const float* y, int act, float slope, const int32_t* arg,
               int64_t arg0, int64_t w, int64_t p_out, int64_t q_out, float* g_out, float* dz) {
  for (int64_t i = 0; i < 2 * p_out * w; ++i) dz[i] = 0.0f;
  for (int64_t i = 0; i < p_out * q_out; ++i) {
    float g = dy[i];
    if (act == 1) g = y[i] > 0.0f ? g : 0.0f;
    if (act == 2) g = y[i] > 0.0f ? g : slope * g;
    if (g_out) g_out[i] = g;
    dz[arg[i] - arg0] = g;
  }
}

}  // namespace imgsim::kernels::ref
