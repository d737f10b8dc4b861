// The generic gradient checker every layer and loss passes (docs/testing.md).
//
// For a layer, the scalar objective is L(x, params) = sum_i r_i * y_i with a fixed random
// projection r. The checker compares backward's dL/dx and dL/dparam with central differences
//   (L(v + eps) - L(v - eps)) / (2 eps)
// accumulated in double. It also checks the contract of backward:
//   * it ADDS: dx and every param grad are pre-filled with random values, which must survive;
//   * kinks (ReLU at 0, max-pool ties) are detected by comparing the central quotients for
//     eps and eps/2 and the two one-sided quotients for eps/2, and such coordinates are
//     skipped (at most `max_skip_fraction` of them).
// Layers that draw random numbers in forward (Dropout) are re-seeded before every forward.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "imgsim/nn/layer.hpp"
#include "imgsim/nn/loss.hpp"
#include "imgsim/rng.hpp"
#include "imgsim/tensor.hpp"

namespace imgsim::testing {

struct GradCheckOptions {
  int64_t batch = 2;
  uint64_t seed = 7;
  float eps = 4e-3f;
  double rtol = 2e-2;
  double atol = 2e-3;
  // Coordinates checked per tensor at most (spread over the tensor); 0 = all.
  int64_t max_coords = 300;
  double max_skip_fraction = 0.1;
  nn::Phase phase = nn::Phase::train;
  float input_scale = 1.0f;
  bool check_input = true;
  // Called once after build, init_params and the parameter perturbation, before the first
  // forward; e.g. to run training forwards so that BatchNorm's running statistics are not
  // trivial when checking Phase::infer.
  std::function<void(nn::Layer&)> prepare{};
};

struct GradCheckReport {
  bool ok = true;
  int64_t checked = 0;
  int64_t skipped = 0;
  double max_abs_err = 0.0;
  double max_rel_err = 0.0;
  std::string first_failure;
};

namespace detail {

inline double objective(nn::Layer& layer, const Tensor& x, Tensor& y, const std::vector<float>& r,
                        const GradCheckOptions& o) {
  layer.set_seed(o.seed + 1000);
  layer.forward(x, y, o.phase);
  double s = 0.0;
  for (int64_t i = 0; i < y.numel(); ++i) s += static_cast<double>(r[i]) * y[i];
  return s;
}

inline std::vector<int64_t> coords(int64_t n, int64_t max_coords) {
  std::vector<int64_t> c;
  if (max_coords <= 0 || n <= max_coords) {
    for (int64_t i = 0; i < n; ++i) c.push_back(i);
  } else {
    // Always include the first and last elements (tails), spread the rest.
    for (int64_t k = 0; k < max_coords; ++k) c.push_back(k * (n - 1) / (max_coords - 1));
  }
  return c;
}

// Checks analytic[i] against numerical derivatives of f with respect to v[i].
template <class F>
void check_tensor(const char* what, float* v, int64_t n, const float* analytic, F&& f,
                  const GradCheckOptions& o, GradCheckReport& rep) {
  for (int64_t i : coords(n, o.max_coords)) {
    const float orig = v[i];
    const double f0 = f();
    double fwd = 0.0, bwd = 0.0;  // one-sided quotients of the last (smallest) step
    auto quotient = [&](float eps) {
      v[i] = orig + eps;
      double lp = f();
      v[i] = orig - eps;
      double lm = f();
      v[i] = orig;
      // Use the actually representable steps.
      const double hp = static_cast<double>(orig + eps) - orig;
      const double hm = orig - static_cast<double>(orig - eps);
      fwd = (lp - f0) / hp;
      bwd = (f0 - lm) / hm;
      return (lp - lm) / (hp + hm);
    };
    double g1 = quotient(o.eps);
    double g2 = quotient(o.eps * 0.5f);
    double a = analytic[i];
    double tol1 = o.atol + o.rtol * std::max(std::abs(g1), std::abs(g2));
    // Non-smooth here: a kink between the two steps changes the central quotient, and a kink
    // closer than the step (a pre-activation within eps of 0, a near-tie in a pooling window)
    // makes the forward and backward one-sided quotients disagree by the jump in slope.
    if (std::abs(g1 - g2) > tol1 || std::abs(fwd - bwd) > 3.0 * tol1) {
      ++rep.skipped;
      continue;
    }
    ++rep.checked;
    double err = std::abs(a - g2);
    double rel = err / std::max(1e-6, std::max(std::abs(a), std::abs(g2)));
    rep.max_abs_err = std::max(rep.max_abs_err, err);
    if (err > o.atol) rep.max_rel_err = std::max(rep.max_rel_err, rel);
    if (err > o.atol + o.rtol * std::max(std::abs(a), std::abs(g2)) && rep.ok) {
      rep.ok = false;
      char buf[256];
      std::snprintf(buf, sizeof buf, "%s[%lld]: analytic %.6g, numerical %.6g", what,
                    static_cast<long long>(i), a, g2);
      rep.first_failure = buf;
    }
  }
}

}  // namespace detail

// Checks `layer` (not yet built) on a random input of per-sample shape `in`.
inline GradCheckReport check_layer_gradients(nn::Layer& layer, const Shape& in,
                                             const GradCheckOptions& o = {}) {
  GradCheckReport rep;
  Rng rng(o.seed);
  Shape out = layer.build(in);
  layer.init_params(rng);
  // Perturb parameters away from their initial values (biases start at 0, gamma at 1).
  for (auto& p : layer.params())
    for (int64_t i = 0; i < p.value->numel(); ++i) (*p.value)[i] += 0.1f * rng.normal();
  if (o.prepare) o.prepare(layer);

  Tensor x(in.with_batch(o.batch));
  for (int64_t i = 0; i < x.numel(); ++i) x[i] = o.input_scale * rng.normal();
  Tensor y(out.with_batch(o.batch));
  std::vector<float> r(static_cast<std::size_t>(y.numel()));
  for (auto& v : r) v = rng.normal();

  // Analytic gradients, with pre-filled buffers to check that backward adds.
  detail::objective(layer, x, y, r, o);
  Tensor dy(y.shape());
  for (int64_t i = 0; i < dy.numel(); ++i) dy[i] = r[static_cast<std::size_t>(i)];
  Tensor dx(x.shape());
  Tensor dx0(x.shape());
  for (int64_t i = 0; i < dx.numel(); ++i) dx0[i] = dx[i] = rng.normal();
  auto params = layer.params();
  std::vector<Tensor> g0;
  for (auto& p : params) {
    Tensor t(p.grad->shape());
    for (int64_t i = 0; i < t.numel(); ++i) (*p.grad)[i] = t[i] = rng.normal();
    g0.push_back(std::move(t));
  }
  layer.backward(x, y, dy, o.check_input ? &dx : nullptr);
  for (int64_t i = 0; i < dx.numel(); ++i) dx[i] -= dx0[i];
  std::vector<Tensor> g;
  for (std::size_t k = 0; k < params.size(); ++k) {
    Tensor t(params[k].grad->shape());
    for (int64_t i = 0; i < t.numel(); ++i) t[i] = (*params[k].grad)[i] - g0[k][i];
    g.push_back(std::move(t));
  }

  Tensor ywork(y.shape());
  auto f = [&] { return detail::objective(layer, x, ywork, r, o); };
  if (o.check_input) detail::check_tensor("dx", x.data(), x.numel(), dx.data(), f, o, rep);
  for (std::size_t k = 0; k < params.size(); ++k)
    detail::check_tensor(params[k].name.c_str(), params[k].value->data(), params[k].value->numel(),
                         g[k].data(), f, o, rep);
  if (rep.checked + rep.skipped > 0 &&
      static_cast<double>(rep.skipped) >
          o.max_skip_fraction * static_cast<double>(rep.checked + rep.skipped)) {
    rep.ok = false;
    if (rep.first_failure.empty())
      rep.first_failure = "too many kinks skipped: " + std::to_string(rep.skipped) + " of " +
                          std::to_string(rep.checked + rep.skipped);
  }
  return rep;
}

// Checks a loss's dL/dpred on prediction `pred` and target `target`.
inline GradCheckReport check_loss_gradients(nn::Loss& loss, Tensor& pred, const Tensor& target,
                                            const GradCheckOptions& o = {}) {
  GradCheckReport rep;
  Rng rng(o.seed);
  Tensor d(pred.shape());
  Tensor d0(pred.shape());
  for (int64_t i = 0; i < d.numel(); ++i) d0[i] = d[i] = rng.normal();
  loss.forward_backward(pred, target, &d);
  for (int64_t i = 0; i < d.numel(); ++i) d[i] -= d0[i];
  auto f = [&] { return loss.forward_backward(pred, target, nullptr); };
  detail::check_tensor("dpred", pred.data(), pred.numel(), d.data(), f, o, rep);
  if (static_cast<double>(rep.skipped) >
      o.max_skip_fraction * static_cast<double>(rep.checked + rep.skipped)) {
    rep.ok = false;
    rep.first_failure = "too many kinks skipped";
  }
  return rep;
}

}  // namespace imgsim::testing

// Catch2 helper: REQUIRE_GRADIENTS_OK(report) prints the report on failure.
#define REQUIRE_GRADIENTS_OK(rep)                                                   \
  do {                                                                              \
    const auto& r_ = (rep);                                                         \
    INFO("checked " << r_.checked << ", skipped " << r_.skipped << ", max abs err " \
                    << r_.max_abs_err << ", max rel err " << r_.max_rel_err << "; " \
                    << r_.first_failure);                                           \
    REQUIRE(r_.ok);                                                                 \
    REQUIRE(r_.checked > 0);                                                        \
  } while (0)
