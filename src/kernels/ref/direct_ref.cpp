// Scalar direct 3x3 convolution fused with 2x2 / stride 2 max pooling (kernels.hpp): the oracle,
// with the fused multiply-adds of the fast versions (std::fma), so that they agree bit for bit.
#include <cmath>
#include <cstdint>

#include "kernels/kernels.hpp"

namespace imgsim::kernels::ref {

namespace {

// act(z) as maxpool2x2 applies it: 0 linear, 1 relu, 2 leaky_relu.
float act_value(float z, int act, float slope) {
  if (act == 1) return z > 0.0f ? z : 0.0f;
  if (act == 2) return z > 0.0f ? z : slope * z;
  return z;
}

// The conv output of filter k at (p, q): one fused multiply-add per c, r, s, in order, from 0.
float conv_at(const float* x, int64_t C, int64_t H, int64_t W, const float* w, int64_t k, int64_t p,
              int64_t q) {
  float z = 0.0f;
  for (int64_t c = 0; c < C; ++c)
    for (int64_t r = 0; r < 3; ++r)
      for (int64_t s = 0; s < 3; ++s)
        z = std::fma(w[((k * C + c) * 3 + r) * 3 + s], x[(c * H + p + r) * W + q + s], z);
  return z;
}

// acc[(9c + 3r + s) 16] += g x[c][p + r][q + s] (std::fma) and acc[9 C 16] += g: one position's
// products into one lane of a filter's partial sums.
void add_patch(const float* x, int64_t C, int64_t H, int64_t W, float g, int64_t p, int64_t q,
               float* a) {
  for (int64_t c = 0; c < C; ++c)
    for (int64_t r = 0; r < 3; ++r)
      for (int64_t s = 0; s < 3; ++s) {
        float& v = a[(9 * c + 3 * r + s) * 16];
        v = std::fma(g, x[(c * H + p + r) * W + q + s], v);
      }
  a[9 * C * 16] += g;
}

// dy act'(z) through the output y = act(z), as unpool2x2 takes it.
float act_grad(float dy, float y, int act, float slope) {
  if (act == 0 || y > 0.0f) return dy;
  return act == 2 ? slope * dy : 0.0f;
}

}  // namespace

void conv3x3_pool(const float* x, int64_t C, int64_t H, int64_t W, const float* w,
                  const float* bias, int act, float slope, int64_t K, int64_t i0, int64_t i1,
                  float* y, int32_t* arg, int64_t ldy, float* /*scratch*/) {
  const int64_t Q = W - 2, qp = Q / 2;
  for (int64_t k = 0; k < K; ++k)
    for (int64_t i = i0; i < i1; ++i)
      for (int64_t j = 0; j < qp; ++j) {
        float best = 0.0f;
        int32_t at = 0;
        for (int d = 0; d < 4; ++d) {  // window order: (0, 0), (0, 1), (1, 0), (1, 1)
          const int64_t p = 2 * i + d / 2, q = 2 * j + d % 2;
          const float z = conv_at(x, C, H, W, w, k, p, q);
          const float v = act_value(bias ? z + bias[k] : z, act, slope);
          if (d == 0 || v > best) {
            best = v;
            at = static_cast<int32_t>(p * Q + q);
          }
        }
        y[k * ldy + i * qp + j] = best;
        arg[k * ldy + i * qp + j] = at;
      }
}

void conv3x3_pool_grad(const float* x, int64_t C, int64_t H, int64_t W, const float* dy,
                       const float* y, int act, float slope, const int32_t* arg, int64_t ldg,
                       int64_t K, int64_t i0, int64_t i1, float* acc, float* /*scratch*/) {
  const int64_t Q = W - 2, qp = Q / 2, nw = 9 * C + 1;
  for (int64_t i = i0; i < i1; ++i)
    for (int64_t j = 0; j < qp; ++j) {
      const int64_t l = j % 16;
      for (int64_t k = 0; k < K; ++k) {
        const int64_t at = k * ldg + i * qp + j;
        const float g = act_grad(dy[at], y[at], act, slope);
        // at the argmax's conv position
        add_patch(x, C, H, W, g, arg[at] / Q, arg[at] % Q, acc + k * nw * 16 + l);
      }
    }
}

void conv3x3(const float* x, int64_t C, int64_t H, int64_t W, const float* w, const float* bias,
             int act, float slope, int64_t K, int64_t i0, int64_t i1, float* y, int64_t ldy,
             float* /*scratch*/) {
  const int64_t P = H - 2, Q = W - 2, p1 = 2 * i1 < P ? 2 * i1 : P;
  for (int64_t k = 0; k < K; ++k)
    for (int64_t p = 2 * i0; p < p1; ++p)
      for (int64_t q = 0; q < Q; ++q) {
        const float z = conv_at(x, C, H, W, w, k, p, q);
        y[k * ldy + p * Q + q] = act_value(bias ? z + bias[k] : z, act, slope);
      }
}

void conv3x3_grad(const float* x, int64_t C, int64_t H, int64_t W, const float* dy, const float* y,
                  int act, float slope, int64_t ldy, int64_t K, int64_t p0, int64_t p1, float* acc,
                  float* /*scratch*/) {
  const int64_t Q = W - 2, nw = 9 * C + 1;
  for (int64_t p = p0; p < p1; ++p)
    for (int64_t q = 0; q < Q; ++q)
      for (int64_t k = 0; k < K; ++k) {
        const int64_t at = k * ldy + p * Q + q;
        const float g = act_grad(dy[at], y[at], act, slope);
        add_patch(x, C, H, W, g, p, q, acc + k * nw * 16 + q % 16);
      }
}

}  // namespace imgsim::kernels::ref
