// Flatten: (C, H, W) -> (C*H*W), or any (d1, ..., dk) -> (d1*...*dk).
//
// NCHW memory is already in the flattened order, so
//   forward:  y[n, (c*H + h)*W + w] = x[n, c, h, w]     (a copy: y is a separate tensor)
//   backward: dx[n, c, h, w] += dy[n, (c*H + h)*W + w]
#include <algorithm>

#include "imgsim/error.hpp"
#include "imgsim/nn/layers.hpp"
#include "imgsim/nn/serialize.hpp"

namespace imgsim::nn {

Flatten::Flatten(Options opt) {
  declared_input_ = opt.input_shape;
}

std::string Flatten::describe() const {
  return "Flatten()";
}

Shape Flatten::build(const Shape& in) {
  bool positive = in.rank() >= 1;
  for (int64_t d : in) positive = positive && d > 0;
  if (!positive)
    throw ShapeError((name.empty() ? std::string("Flatten") : "Flatten " + name) +
                     ": expects a non-empty input such as (channels, height, width), got " +
                     in.str());
  return finish_build(in, Shape{in.numel()});
}

void Flatten::forward(const Tensor& x, Tensor& y, Phase /*phase*/) {
  std::copy(x.data(), x.data() + x.numel(), y.data());
}

void Flatten::backward(const Tensor& /*x*/, const Tensor& /*y*/, const Tensor& dy, Tensor* dx) {
  if (!dx) return;
  float* d = dx->data();
  const float* g = dy.data();
  for (int64_t i = 0; i < dy.numel(); ++i) d[i] += g[i];
}

void Flatten::backward_into(const Tensor& /*x*/, const Tensor& /*y*/, const Tensor& dy,
                            Tensor& dx) {
  std::copy(dy.data(), dy.data() + dy.numel(), dx.data());
}

void Flatten::save_config(ByteWriter& /*w*/) const {}

void Flatten::load_config(ByteReader& r, uint32_t version) {
  if (version != 1)
    r.fail("flatten layer record version " + std::to_string(version) + ", expected 1");
}

}  // namespace imgsim::nn
