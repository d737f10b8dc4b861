// Scalar 2x2 / stride 2 max pooling of one plane (kernels.hpp). It is both the oracle and
// the Isa::scalar entry of the kernel table.
#include <cstdint>

#include "kernels/kernels.hpp"

namespace imgsim::kernels::ref {

void maxpool2x2(const float* x, int64_t w, int64_t p_out, int64_t q_out, float* y, int32_t* arg) {
  for (int64_t p = 0; p < p_out; ++p) {
    const float* r0 = x + 2 * p * w;
    const float* r1 = r0 + w;
    for (int64_t q = 0; q < q_out; ++q) {
      // Row-major window order; a later value wins only if strictly greater (NaN never does).
      const float v[4] = {r0[2 * q], r0[2 * q + 1], r1[2 * q], r1[2 * q + 1]};
      const int64_t off[4] = {0, 1, w, w + 1};
      int best = 0;
      for (int i = 1; i < 4; ++i)
        if (v[i] > v[best]) best = i;
      y[p * q_out + q] = v[best];
      arg[p * q_out + q] = static_cast<int32_t>(2 * p * w + 2 * q + off[best]);
    }
  }
}

}  // namespace imgsim::kernels::ref
