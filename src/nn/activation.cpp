// ActivationLayer: element-wise ReLU, LeakyReLU, Tanh, Sigmoid (and linear) as a layer.
//
// Shapes: any per-sample shape; y has the shape of x.
//
// Forward:   y = f(x) element-wise, with
//   relu        f(x) = max(x, 0)
//   leaky_relu  f(x) = x if x > 0 else slope * x          (slope >= 0)
//   tanh        f(x) = tanh(x)
//   sigmoid     f(x) = 1 / (1 + exp(-x))
//   linear      f(x) = x
//
// Backward:  dL/dx = dL/dy * f'(x), with f' written through the output y (see act.hpp):
//   relu [y > 0], leaky_relu (1 if y > 0 else slope), tanh 1 - y^2, sigmoid y (1 - y), linear 1.
// Writing f' through y needs sign(y) = sign(x) for leaky_relu, hence slope >= 0 (checked in
// build and load_config).
//
// backward ADDS into dx: act.hpp's activation_backward overwrites its output, so it is applied to
// a fixed-size block on the stack and the block is added to dx (no allocation).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>

#include "imgsim/error.hpp"
#include "imgsim/nn/layers.hpp"
#include "imgsim/nn/serialize.hpp"
#include "kernels/thread_pool.hpp"
#include "nn/act.hpp"
#include "nn/layer_util.hpp"

namespace imgsim::nn {

namespace {

bool valid_slope(float s) {
  return std::isfinite(s) && s >= 0.0f;
}

}  // namespace

const char* ActivationLayer::type() const {
  return to_string(act_);
}

std::string ActivationLayer::describe() const {
  switch (act_) {
    case Activation::linear:
      return "Linear()";
    case Activation::relu:
      return "ReLU()";
    case Activation::leaky_relu:
      return "LeakyReLU(" + detail::format_float(slope_) + ")";
    case Activation::tanh:
      return "Tanh()";
    case Activation::sigmoid:
      return "Sigmoid()";
  }
  return "Activation(?)";
}

Shape ActivationLayer::build(const Shape& in) {
  if (in.rank() < 1 || in.numel() <= 0)
    throw ShapeError(std::string(type()) + " " + name + ": expects a non-empty sample shape, got " +
                     in.str());
  if (act_ == Activation::leaky_relu && !valid_slope(slope_))
    throw InvalidArgument("LeakyReLU " + name + ": slope must be finite and >= 0, got " +
                          detail::format_float(slope_));
  return finish_build(in, in);
}

void ActivationLayer::forward(const Tensor& x, Tensor& y, Phase /*phase*/) {
  const int64_t n = x.numel();
  const float* xs = x.data();
  float* ys = y.data();
  // Element-wise, in parallel blocks (the result does not depend on the threads).
  constexpr int64_t kBlock = int64_t{1} << 15;
  kernels::parallel_for((n + kBlock - 1) / kBlock, [&](int64_t b) {
    const int64_t first = b * kBlock, len = std::min(kBlock, n - first);
    if (ys != xs)
      for (int64_t i = first; i < first + len; ++i) ys[i] = xs[i];
    detail::apply_activation(act_, slope_, ys + first, len);
  });
}

void ActivationLayer::backward(const Tensor& /*x*/, const Tensor& y, const Tensor& dy, Tensor* dx) {
  if (!dx) return;  // no parameters: nothing else to compute
  constexpr int64_t kBlock = 256;
  float dz[kBlock];
  const int64_t n = y.numel();
  float* d = dx->data();
  for (int64_t b = 0; b < n; b += kBlock) {
    const int64_t len = n - b < kBlock ? n - b : kBlock;
    detail::activation_backward(act_, slope_, y.data() + b, dy.data() + b, dz, len);
    for (int64_t i = 0; i < len; ++i) d[b + i] += dz[i];
  }
}

void ActivationLayer::backward_into(const Tensor& /*x*/, const Tensor& y, const Tensor& dy,
                                    Tensor& dx) {
  detail::activation_backward(act_, slope_, y.data(), dy.data(), dx.data(), y.numel());
}

// Record (version 1): leaky_relu writes its slope (f32); the other activations write nothing,
// their type name says everything.
void ActivationLayer::save_config(ByteWriter& w) const {
  if (act_ == Activation::leaky_relu) w.f32(slope_);
}

void ActivationLayer::load_config(ByteReader& r, uint32_t version) {
  if (version != 1)
    r.fail(std::string(type()) + " layer record version " + std::to_string(version) +
           ", expected 1");
  if (act_ == Activation::leaky_relu) {
    const float s = r.f32("leaky_relu.slope");
    if (!valid_slope(s))
      r.fail("leaky_relu.slope " + detail::format_float(s) +
             " is invalid (must be finite and >= 0)");
    slope_ = s;
  }
}

}  // namespace imgsim::nn
