// CosineDense: scaled cosine similarity between each sample and each unit's weight vector, the
// classifier head of NormFace (Wang et al. 2017) and, with SoftmaxCrossEntropy's target margin,
// of CosFace / AM-softmax (Wang et al. 2018).
//
// Shapes: x (N, D), weight W (U, D) as Dense (torch.nn.Linear), no bias, y (N, U), scale s > 0.
//
// Forward, with the norms bounded below by eps (as torch.nn.functional.normalize):
//   a_n = max(||x_n||, eps),  b_j = max(||W_j||, eps),  xh_n = x_n / a_n,  wh_j = W_j / b_j
//   c[n,j] = <xh_n, wh_j>                           (the cosine, in [-1, 1])
//   y[n,j] = s c[n,j]
//
// Backward, with g = s dy (N, U). The derivative of a normalisation v -> v / max(||v||, eps)
// applied to an upstream gradient h is (h - vh <vh, h>) / ||v|| when ||v|| >= eps (the radial
// part removed, as L2Normalize) and h / eps below it. Here
//   dL/dxh_n = sum_j g[n,j] wh_j,   <xh_n, dL/dxh_n> = sum_j g[n,j] c[n,j]
//   dL/dwh_j = sum_n g[n,j] xh_n,   <wh_j, dL/dwh_j> = sum_n g[n,j] c[n,j]
// so, with g'[n,j] = g[n,j] / a_n (folds xh_n = x_n / a_n into the products):
//   dx_n += sum_j g'[n,j] wh_j - (sum_j g'[n,j] c[n,j]) xh_n        dx += g' Wh - diag(.) Xh
//   dW_j += (sum_n g'[n,j] x_n - (sum_n g[n,j] c[n,j]) wh_j) / b_j  dW += (g'^T X - diag(.) Wh) / B
// and without the projection terms for rows whose norm is below eps. c is recomputed from y as
// y / s. The norms are recomputed from x and W in backward (no cache across calls), in double.
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "imgsim/error.hpp"
#include "imgsim/nn/layers.hpp"
#include "imgsim/nn/serialize.hpp"
#include "kernels/kernels.hpp"
#include "nn/layer_util.hpp"

namespace imgsim::nn {

CosineDense::CosineDense(int64_t units, CosineDenseOptions opt) : units_(units), opt_(opt) {
  if (units <= 0)
    throw InvalidArgument("CosineDense: units must be positive, got " + std::to_string(units));
  if (!detail::positive_finite(opt.scale))
    throw InvalidArgument("CosineDense: scale must be positive and finite, got " +
                          detail::format_float(opt.scale));
  if (!detail::positive_finite(opt.eps))
    throw InvalidArgument("CosineDense: eps must be positive and finite, got " +
                          detail::format_float(opt.eps));
  declared_input_ = opt.input_shape;
}

std::string CosineDense::describe() const {
  return "CosineDense(" + std::to_string(units_) + ", scale " + detail::format_float(opt_.scale) +
         ")";
}

Shape CosineDense::build(const Shape& in) {
  if (in.rank() != 1 || in[0] <= 0)
    throw ShapeError("CosineDense " + name + ": expects input (features), got " + in.str() +
                     (in.rank() > 1 ? " (add a Flatten layer before it)" : ""));
  const int64_t d = in[0];
  if (!weight_.empty() && weight_.shape() != Shape{units_, d})
    throw ShapeError("CosineDense " + name + ": weight " + weight_.shape().str() +
                     " does not fit input " + in.str());
  if (weight_.empty()) {
    weight_ = Tensor({units_, d});
    dweight_ = Tensor({units_, d});
  }
  what_ = Tensor({units_, d});
  gw_ = Tensor({units_, d});
  wnorm_.assign(static_cast<std::size_t>(units_), 0.0);
  return finish_build(in, Shape{units_});
}

void CosineDense::init_params(Rng& rng) {
  // Only the directions matter; the Dense (Glorot uniform) bound keeps the first steps of Adam
  // comparable to Dense.
  const float bound = std::sqrt(6.0f / static_cast<float>(in_shape_[0] + units_));
  for (int64_t i = 0; i < weight_.numel(); ++i) weight_[i] = rng.uniform(-bound, bound);
}

std::vector<Param> CosineDense::params() {
  return {{"weight", &weight_, &dweight_, true}};
}

// wnorm_ = ||W_j|| (unclamped, so that backward knows which rows are clamped), what_ = W / b.
void CosineDense::normalise_weight() {
  const int64_t d = in_shape_[0];
  for (int64_t j = 0; j < units_; ++j) {
    const float* w = weight_.data() + j * d;
    float* wh = what_.data() + j * d;
    const double norm = detail::row_l2_norm(w, d);
    wnorm_[static_cast<std::size_t>(j)] = norm;
    const double inv = 1.0 / std::max(norm, static_cast<double>(opt_.eps));
    for (int64_t i = 0; i < d; ++i) wh[i] = static_cast<float>(w[i] * inv);
  }
}

void CosineDense::forward(const Tensor& x, Tensor& y, Phase /*phase*/) {
  const int64_t n = x.dim(0), d = in_shape_[0], u = units_;
  normalise_weight();
  // y = X Wh^T, then row n times s / a_n.
  kernels::sgemm(false, true, n, u, d, 1.0f, x.data(), d, what_.data(), d, 0.0f, y.data(), u);
  for (int64_t r = 0; r < n; ++r) {
    const double a =
        std::max(detail::row_l2_norm(x.data() + r * d, d), static_cast<double>(opt_.eps));
    const double f = static_cast<double>(opt_.scale) / a;
    float* yr = y.data() + r * u;
    for (int64_t j = 0; j < u; ++j) yr[j] = static_cast<float>(yr[j] * f);
  }
}

void CosineDense::backward(const Tensor& x, const Tensor& y, const Tensor& dy, Tensor* dx) {
  const int64_t n = x.dim(0), d = in_shape_[0], u = units_;
  const double s = opt_.scale, eps = opt_.eps;
  normalise_weight();
  g_.resize(Shape{n, u});  // g' = s dy / a
  xdot_.resize(Shape{n});  // per sample: sum_j g'[n,j] c[n,j] / a_n (coefficient of x_n)
  wdot_.assign(static_cast<std::size_t>(u), 0.0);  // per unit: sum_n g[n,j] c[n,j]
  for (int64_t r = 0; r < n; ++r) {
    const double a_raw = detail::row_l2_norm(x.data() + r * d, d);
    const double a = std::max(a_raw, eps);
    const float* dyr = dy.data() + r * u;
    const float* yr = y.data() + r * u;
    float* gr = g_.data() + r * u;
    double dot = 0.0;
    for (int64_t j = 0; j < u; ++j) {
      const double g = s * dyr[j];
      const double c = yr[j] / s;
      gr[j] = static_cast<float>(g / a);
      dot += g * c;
      wdot_[static_cast<std::size_t>(j)] += g * c;
    }
    // xh_n = x_n / a_n, so the projection term (sum_j g' c) xh_n is (dot / a^2) x_n.
    xdot_[r] = a_raw >= eps ? static_cast<float>(dot / (a * a)) : 0.0f;
  }
  // dW_j += (g'^T X)_j / b_j - (sum_n g c) wh_j / b_j
  kernels::sgemm(true, false, u, d, n, 1.0f, g_.data(), u, x.data(), d, 0.0f, gw_.data(), d);
  for (int64_t j = 0; j < u; ++j) {
    const double norm = wnorm_[static_cast<std::size_t>(j)];
    const double inv = 1.0 / std::max(norm, eps);
    const double proj = norm < eps ? 0.0 : wdot_[static_cast<std::size_t>(j)];  // clamped: none
    const float* gwj = gw_.data() + j * d;
    const float* whj = what_.data() + j * d;
    float* dwj = dweight_.data() + j * d;
    for (int64_t i = 0; i < d; ++i) dwj[i] += static_cast<float>((gwj[i] - proj * whj[i]) * inv);
  }
  if (!dx) return;
  // dx += g' Wh - xdot x
  kernels::sgemm(false, false, n, d, u, 1.0f, g_.data(), u, what_.data(), d, 1.0f, dx->data(), d);
  for (int64_t r = 0; r < n; ++r) {
    const float k = xdot_[r];
    const float* xr = x.data() + r * d;
    float* dr = dx->data() + r * d;
    for (int64_t i = 0; i < d; ++i) dr[i] -= k * xr[i];
  }
}

// Record (version 1): i64 units, f32 scale, f32 eps.
void CosineDense::save_config(ByteWriter& w) const {
  w.i64(units_);
  w.f32(opt_.scale);
  w.f32(opt_.eps);
}

void CosineDense::load_config(ByteReader& r, uint32_t version) {
  if (version != 1)
    r.fail("cosine_dense layer record version " + std::to_string(version) + ", expected 1");
  units_ = r.i64("cosine_dense.units");
  opt_.scale = r.f32("cosine_dense.scale");
  opt_.eps = r.f32("cosine_dense.eps");
  if (units_ <= 0 || units_ > (int64_t{1} << 24))
    r.fail("cosine_dense.units " + std::to_string(units_) + " out of range");
  if (!detail::positive_finite(opt_.scale))
    r.fail("cosine_dense.scale " + detail::format_float(opt_.scale) +
           " is not positive and finite");
  if (!detail::positive_finite(opt_.eps))
    r.fail("cosine_dense.eps " + detail::format_float(opt_.eps) + " is not positive and finite");
}

}  // namespace imgsim::nn
