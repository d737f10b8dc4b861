// Dropout (inverted): zeroes each input with probability `rate` in training and scales the rest
// by 1 / (1 - rate), so the expected output equals the input and inference needs no rescaling.
//
// Shapes: any per-sample shape; y has the shape of x.
//
// Forward, training: draw m_i ~ Bernoulli(1 - rate) from the layer's Rng (u_i uniform in [0, 1),
// m_i = [u_i >= rate]), store s_i = m_i / (1 - rate) in the mask, and
//   y_i = s_i x_i
// Forward, inference (and rate = 0): y = x.
//
// Backward: y is linear in x with the (fixed, drawn) diagonal Jacobian diag(s), so
//   dL/dx_i = s_i dL/dy_i          dx += s * dy     (after a training forward)
//   dL/dx_i = dL/dy_i              dx += dy         (after an inference forward)
//
// The mask buffer is planned for the largest x seen and only grows; a new mask is drawn in every
// training forward. set_seed() restarts the Rng, so the same seed gives the same masks.
#include <cmath>
#include <cstdio>

#include "imgsim/error.hpp"
#include "imgsim/nn/layers.hpp"
#include "imgsim/nn/serialize.hpp"
#include "nn/layer_util.hpp"

namespace imgsim::nn {

namespace {

bool valid_rate(float r) {
  return std::isfinite(r) && r >= 0.0f && r < 1.0f;
}

}  // namespace

Dropout::Dropout(float rate) : rate_(rate) {
  if (!valid_rate(rate))
    throw InvalidArgument("Dropout: rate must be in [0, 1), got " + detail::format_float(rate));
}

std::string Dropout::describe() const {
  return "Dropout(" + detail::format_float(rate_) + ")";
}

Shape Dropout::build(const Shape& in) {
  if (in.rank() < 1 || in.numel() <= 0)
    throw ShapeError("Dropout " + name + ": expects a non-empty sample shape, got " + in.str());
  return finish_build(in, in);
}

void Dropout::forward(const Tensor& x, Tensor& y, Phase phase) {
  const int64_t n = x.numel();
  const float* xs = x.data();
  float* ys = y.data();
  if (phase == Phase::infer || rate_ == 0.0f) {
    last_train_ = false;
    if (ys != xs)
      for (int64_t i = 0; i < n; ++i) ys[i] = xs[i];
    return;
  }
  if (static_cast<int64_t>(mask_.size()) < n) mask_.resize(static_cast<std::size_t>(n));
  const float scale = 1.0f / (1.0f - rate_);
  float* m = mask_.data();
  for (int64_t i = 0; i < n; ++i) {
    m[i] = rng_.uniform() >= rate_ ? scale : 0.0f;
    ys[i] = xs[i] * m[i];
  }
  last_train_ = true;
}

void Dropout::backward(const Tensor& x, const Tensor& /*y*/, const Tensor& dy, Tensor* dx) {
  if (!dx) return;
  const int64_t n = x.numel();
  const float* g = dy.data();
  float* d = dx->data();
  if (!last_train_) {
    for (int64_t i = 0; i < n; ++i) d[i] += g[i];
    return;
  }
  if (static_cast<int64_t>(mask_.size()) < n)
    throw StateError("Dropout " + name + ": backward on " + x.shape().str() +
                     " does not match the last training forward");
  const float* m = mask_.data();
  for (int64_t i = 0; i < n; ++i) d[i] += m[i] * g[i];
}

// Record (version 1): rate (f32).
void Dropout::save_config(ByteWriter& w) const {
  w.f32(rate_);
}

void Dropout::load_config(ByteReader& r, uint32_t version) {
  if (version != 1)
    r.fail("dropout layer record version " + std::to_string(version) + ", expected 1");
  const float rate = r.f32("dropout.rate");
  if (!valid_rate(rate)) r.fail("dropout.rate " + detail::format_float(rate) + " is not in [0, 1)");
  rate_ = rate;
}

}  // namespace imgsim::nn
