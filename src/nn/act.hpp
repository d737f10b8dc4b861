// Element-wise activations shared by Conv2D, Dense and ActivationLayer (internal).
//
// Every derivative is written in terms of the OUTPUT y = f(z), so backward needs no copy of z:
//   relu:       f'(z) = [y > 0]
//   leaky_relu: f'(z) = 1 if y > 0 else slope      (slope > 0 keeps sign(y) = sign(z))
//   tanh:       f'(z) = 1 - y^2
//   sigmoid:    f'(z) = y (1 - y)
#pragma once

#include <cmath>
#include <cstdint>

#include "imgsim/nn/layer.hpp"

namespace imgsim::nn::detail {

// y[i] = f(y[i]) in place. The loops are written so that the compiler vectorises them (selects,
// no conditional loads); tanh and sigmoid call the scalar libm functions.
inline void apply_activation(Activation a, float slope, float* __restrict y, int64_t n) {
  switch (a) {
    case Activation::linear:
      return;
    case Activation::relu:
      for (int64_t i = 0; i < n; ++i) y[i] = y[i] > 0.0f ? y[i] : 0.0f;
      return;
    case Activation::leaky_relu:
      for (int64_t i = 0; i < n; ++i) {
        const float v = y[i];
        y[i] = v > 0.0f ? v : slope * v;
      }
      return;
    case Activation::tanh:
      for (int64_t i = 0; i < n; ++i) y[i] = std::tanh(y[i]);
      return;
    case Activation::sigmoid:
      for (int64_t i = 0; i < n; ++i) y[i] = 1.0f / (1.0f + std::exp(-y[i]));
      return;
  }
}

// dz[i] = dy[i] * f'(z[i]) expressed through y (overwrites dz; dz must not overlap y or dy).
// dy[i] is loaded unconditionally so that the select vectorises (a load under the condition
// compiles to a branch per element, which mispredicts on every other ReLU output).
inline void activation_backward(Activation a, float slope, const float* __restrict y,
                                const float* __restrict dy, float* __restrict dz, int64_t n) {
  switch (a) {
    case Activation::linear:
      for (int64_t i = 0; i < n; ++i) dz[i] = dy[i];
      return;
    case Activation::relu:
      for (int64_t i = 0; i < n; ++i) {
        const float g = dy[i];
        dz[i] = y[i] > 0.0f ? g : 0.0f;
      }
      return;
    case Activation::leaky_relu:
      for (int64_t i = 0; i < n; ++i) {
        const float g = dy[i];
        dz[i] = y[i] > 0.0f ? g : slope * g;
      }
      return;
    case Activation::tanh:
      for (int64_t i = 0; i < n; ++i) dz[i] = dy[i] * (1.0f - y[i] * y[i]);
      return;
    case Activation::sigmoid:
      for (int64_t i = 0; i < n; ++i) dz[i] = dy[i] * y[i] * (1.0f - y[i]);
      return;
  }
}

// Glorot/He uniform initialisation bound for a layer with the given fans: He (sqrt(6/fan_in))
// for relu-like activations, Glorot (sqrt(6/(fan_in+fan_out))) otherwise.
inline float init_bound(Activation a, int64_t fan_in, int64_t fan_out) {
  if (a == Activation::relu || a == Activation::leaky_relu)
    return std::sqrt(6.0f / static_cast<float>(fan_in));
  return std::sqrt(6.0f / static_cast<float>(fan_in + fan_out));
}

}  // namespace imgsim::nn::detail
