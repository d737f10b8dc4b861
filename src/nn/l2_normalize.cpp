// L2Normalize: per-sample L2 normalisation over the features of (D) samples.
//
// Shapes: x (N, D), y (N, D).
//
// Forward, per row, with the norm accumulated in double and bounded below by eps (as
// torch.nn.functional.normalize, default eps 1e-12, so a zero row gives a zero output):
//   n = max(||x||_2, eps)
//   y = x / n
//
// Backward, Jacobian-vector product per row.
//   ||x|| >= eps: n = ||x||, dn/dx_k = x_k / n = y_k, so dy_i/dx_k = ([i == k] - y_i y_k) / n and
//     dL/dx_k = sum_i dy_i ([i == k] - y_i y_k) / n = (dy_k - y_k <y, dy>) / n
//     dx += (dy - y <y, dy>) / ||x||
//   ||x|| < eps: n = eps is a constant, y = x / eps
//     dx += dy / eps
// The projection removes the radial part of dy: moving x along itself does not change y.
// The norm is recomputed from x in backward (no cache), the dot product accumulated in double.
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "imgsim/error.hpp"
#include "imgsim/nn/layers.hpp"
#include "imgsim/nn/serialize.hpp"
#include "nn/layer_util.hpp"

namespace imgsim::nn {

L2Normalize::L2Normalize(L2NormalizeOptions opt) : opt_(opt) {
  if (!detail::positive_finite(opt.eps))
    throw InvalidArgument("L2Normalize: eps must be positive and finite, got " +
                          detail::format_float(opt.eps));
  declared_input_ = opt.input_shape;
}

std::string L2Normalize::describe() const {
  return "L2Normalize(eps " + detail::format_float(opt_.eps) + ")";
}

Shape L2Normalize::build(const Shape& in) {
  if (in.rank() != 1 || in[0] <= 0)
    throw ShapeError("L2Normalize " + name + ": expects input (features), got " + in.str() +
                     (in.rank() > 1 ? " (add a Flatten layer before it)" : ""));
  return finish_build(in, in);
}

void L2Normalize::forward(const Tensor& x, Tensor& y, Phase /*phase*/) {
  const int64_t n = x.dim(0), d = in_shape_[0];
  for (int64_t r = 0; r < n; ++r) {
    const float* xr = x.data() + r * d;
    float* yr = y.data() + r * d;
    const double inv = 1.0 / std::max(detail::row_l2_norm(xr, d), static_cast<double>(opt_.eps));
    for (int64_t i = 0; i < d; ++i) yr[i] = static_cast<float>(xr[i] * inv);
  }
}

void L2Normalize::backward(const Tensor& x, const Tensor& y, const Tensor& dy, Tensor* dx) {
  if (!dx) return;
  const int64_t n = x.dim(0), d = in_shape_[0];
  for (int64_t r = 0; r < n; ++r) {
    const float* xr = x.data() + r * d;
    const float* yr = y.data() + r * d;
    const float* gr = dy.data() + r * d;
    float* dr = dx->data() + r * d;
    const double norm = detail::row_l2_norm(xr, d);
    if (norm < static_cast<double>(opt_.eps)) {
      // Clamped (including x = 0): y = x / eps. At ||x|| = eps the unclamped one-sided
      // derivative is used, as torch's clamp_min.
      const double inv_eps = 1.0 / static_cast<double>(opt_.eps);
      for (int64_t i = 0; i < d; ++i) dr[i] += static_cast<float>(gr[i] * inv_eps);  // dy / eps
      continue;
    }
    const double inv = 1.0 / norm;
    double dot = 0.0;
    for (int64_t i = 0; i < d; ++i) dot += static_cast<double>(gr[i]) * yr[i];  // <y, dy>
    for (int64_t i = 0; i < d; ++i)
      dr[i] += static_cast<float>((gr[i] - yr[i] * dot) * inv);  // (dy - y <y, dy>) / ||x||
  }
}

// Record (version 1): f32 eps.
void L2Normalize::save_config(ByteWriter& w) const {
  w.f32(opt_.eps);
}

void L2Normalize::load_config(ByteReader& r, uint32_t version) {
  if (version != 1)
    r.fail("l2_normalize layer record version " + std::to_string(version) + ", expected 1");
  opt_.eps = r.f32("l2_normalize.eps");
  if (!detail::positive_finite(opt_.eps))
    r.fail("l2_normalize.eps " + detail::format_float(opt_.eps) + " is not positive and finite");
}

}  // namespace imgsim::nn
