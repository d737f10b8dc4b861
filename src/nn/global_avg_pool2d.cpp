// GlobalAvgPool2D: (C, H, W) -> (C), the mean of each channel's plane.
//
//   forward:  y[n, c] = (1 / (H W)) sum_{h, w} x[n, c, h, w]
//   backward: every input of the plane has the same weight 1 / (H W) in y[n, c], so
//             dL/dx[n, c, h, w] = dL/dy[n, c] / (H W)       (added to dx; written by
//             backward_into)
//
// The sum runs in double per plane, so the mean does not depend on the plane's size.
#include "imgsim/error.hpp"
#include "imgsim/nn/layers.hpp"
#include "imgsim/nn/serialize.hpp"

namespace imgsim::nn {

GlobalAvgPool2D::GlobalAvgPool2D(Options opt) {
  declared_input_ = opt.input_shape;
}

std::string GlobalAvgPool2D::describe() const {
  return "GlobalAvgPool2D()";
}

Shape GlobalAvgPool2D::build(const Shape& in) {
  if (in.rank() != 3 || in[0] <= 0 || in[1] <= 0 || in[2] <= 0)
    throw ShapeError((name.empty() ? std::string("GlobalAvgPool2D") : "GlobalAvgPool2D " + name) +
                     ": expects an input of shape (channels, height, width), got " + in.str());
  return finish_build(in, Shape{in[0]});
}

void GlobalAvgPool2D::forward(const Tensor& x, Tensor& y, Phase /*phase*/) {
  const int64_t planes = y.numel();
  const int64_t hw = x.numel() / planes;
  const double inv = 1.0 / static_cast<double>(hw);
  const float* p = x.data();
  float* out = y.data();
  for (int64_t i = 0; i < planes; ++i, p += hw) {
    double s = 0.0;
    for (int64_t k = 0; k < hw; ++k) s += p[k];
    out[i] = static_cast<float>(s * inv);
  }
}

void GlobalAvgPool2D::backward(const Tensor& x, const Tensor& /*y*/, const Tensor& dy, Tensor* dx) {
  if (!dx) return;
  const int64_t planes = dy.numel();
  const int64_t hw = x.numel() / planes;
  const float inv = static_cast<float>(1.0 / static_cast<double>(hw));
  float* d = dx->data();
  for (int64_t i = 0; i < planes; ++i, d += hw) {
    const float g = dy.data()[i] * inv;
    for (int64_t k = 0; k < hw; ++k) d[k] += g;
  }
}

void GlobalAvgPool2D::backward_into(const Tensor& x, const Tensor& /*y*/, const Tensor& dy,
                                    Tensor& dx) {
  const int64_t planes = dy.numel();
  const int64_t hw = x.numel() / planes;
  const float inv = static_cast<float>(1.0 / static_cast<double>(hw));
  float* d = dx.data();
  for (int64_t i = 0; i < planes; ++i, d += hw) {
    const float g = dy.data()[i] * inv;
    for (int64_t k = 0; k < hw; ++k) d[k] = g;
  }
}

void GlobalAvgPool2D::save_config(ByteWriter& /*w*/) const {}

void GlobalAvgPool2D::load_config(ByteReader& r, uint32_t version) {
  if (version != 1)
    r.fail("global_avg_pool2d layer record version " + std::to_string(version) + ", expected 1");
}

}  // namespace imgsim::nn
