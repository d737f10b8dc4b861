// Softmax over the features of (D) samples.
//
// Shapes: x (N, D), y (N, D).
//
// Forward, per row, with m = max_j x_j subtracted for stability (exp never overflows, and the
// largest term is exp(0) = 1, so the sum is >= 1 and never underflows to 0):
//   y_i = exp(x_i - m) / sum_j exp(x_j - m)
// The shift cancels between numerator and denominator, so it does not change y.
//
// Backward, Jacobian-vector product per row. dy_i/dx_k = y_i ([i == k] - y_k), so
//   dL/dx_k = sum_i dy_i y_i ([i == k] - y_k) = y_k (dy_k - sum_i dy_i y_i)
//   dx += y * (dy - <dy, y>)
// The sums are accumulated in double.
#include <cmath>

#include "imgsim/error.hpp"
#include "imgsim/nn/layers.hpp"
#include "imgsim/nn/serialize.hpp"

namespace imgsim::nn {

Shape Softmax::build(const Shape& in) {
  if (in.rank() != 1 || in[0] <= 0)
    throw ShapeError("Softmax " + name + ": expects input (features), got " + in.str() +
                     (in.rank() > 1 ? " (add a Flatten layer before it)" : ""));
  return finish_build(in, in);
}

void Softmax::forward(const Tensor& x, Tensor& y, Phase /*phase*/) {
  const int64_t n = x.dim(0), d = in_shape_[0];
  for (int64_t r = 0; r < n; ++r) {
    const float* xr = x.data() + r * d;
    float* yr = y.data() + r * d;
    float m = xr[0];
    for (int64_t i = 1; i < d; ++i) m = xr[i] > m ? xr[i] : m;
    double sum = 0.0;
    for (int64_t i = 0; i < d; ++i) {
      const float e = std::exp(xr[i] - m);
      yr[i] = e;
      sum += e;
    }
    const float inv = static_cast<float>(1.0 / sum);
    for (int64_t i = 0; i < d; ++i) yr[i] *= inv;
  }
}

void Softmax::backward(const Tensor& /*x*/, const Tensor& y, const Tensor& dy, Tensor* dx) {
  if (!dx) return;
  const int64_t n = y.dim(0), d = in_shape_[0];
  for (int64_t r = 0; r < n; ++r) {
    const float* yr = y.data() + r * d;
    const float* gr = dy.data() + r * d;
    float* dr = dx->data() + r * d;
    double dot = 0.0;
    for (int64_t i = 0; i < d; ++i) dot += static_cast<double>(gr[i]) * yr[i];
    const float s = static_cast<float>(dot);
    for (int64_t i = 0; i < d; ++i) dr[i] += yr[i] * (gr[i] - s);
  }
}

// Record (version 1): empty.
void Softmax::save_config(ByteWriter& /*w*/) const {}

void Softmax::load_config(ByteReader& r, uint32_t version) {
  if (version != 1)
    r.fail("softmax layer record version " + std::to_string(version) + ", expected 1");
}

}  // namespace imgsim::nn
