// Gradient check for piecewise-linear layers (fused ReLU / leaky ReLU, max pooling) with EXACT
// kink exclusion; a companion of gradcheck.hpp for the cases its kink heuristic cannot see.
//
// gradcheck.hpp detects a kink by comparing the central quotients for eps and eps/2. A kink
// crossed at a distance d much smaller than eps from the evaluation point slips through: with a
// slope jump c there, the two quotients are c/2 (1 - d/eps) and c/2 (1 - 2 d/eps), nearly equal,
// and both are compared with an analytic value that is right on one side of the kink. A correct
// layer then fails. With seeded random data this hits a few percent of ReLU convolutions (every
// output is a chance for a pre-activation within ~1e-3 of zero) and max-pooling windows holding
// two values closer than eps.
//
// A piecewise-linear layer is exactly linear on each piece, and the test knows what the pieces
// are: `piece(x)` returns a fingerprint of the piece the layer is on for input x at its current
// parameters (the sign pattern of the pre-activations, the winner of every pooling window). For
// each coordinate v the fingerprints at v - eps, v and v + eps decide the difference quotient:
// central when all three agree, forward or backward (one-sided, on the side that stays on v's
// piece) when a kink lies on the other side, and the coordinate is skipped only when both sides
// leave v's piece. On one piece the quotient equals the analytic derivative up to rounding and is
// compared with the usual tolerances. Set-up (seeded parameters perturbed away from their initial
// values, random input and projection) and the contract checks (backward ADDS into dx and into
// every parameter gradient) are those of check_layer_gradients.
#pragma once

#include <functional>
#include <vector>

#include "gradcheck.hpp"

namespace imgsim::testing {

using PieceFingerprint = std::function<std::vector<int64_t>(const Tensor& x)>;

inline GradCheckReport check_piecewise_linear_gradients(nn::Layer& layer, const Shape& in,
                                                        const PieceFingerprint& piece,
                                                        const GradCheckOptions& o = {}) {
  GradCheckReport rep;
  Rng rng(o.seed);
  Shape out = layer.build(in);
  layer.init_params(rng);
  for (auto& p : layer.params())
    for (int64_t i = 0; i < p.value->numel(); ++i) (*p.value)[i] += 0.1f * rng.normal();

  Tensor x(in.with_batch(o.batch));
  for (int64_t i = 0; i < x.numel(); ++i) x[i] = o.input_scale * rng.normal();
  Tensor y(out.with_batch(o.batch));
  std::vector<float> r(static_cast<std::size_t>(y.numel()));
  for (auto& v : r) v = rng.normal();

  // Analytic gradients, from pre-filled buffers (backward must add).
  detail::objective(layer, x, y, r, o);
  Tensor dy(y.shape());
  for (int64_t i = 0; i < dy.numel(); ++i) dy[i] = r[static_cast<std::size_t>(i)];
  Tensor dx(x.shape()), dx0(x.shape());
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
  auto check = [&](const char* what, float* v, int64_t n, const float* analytic) {
    for (int64_t i : detail::coords(n, o.max_coords)) {
      const float orig = v[i];
      const auto here = piece(x);
      const double l0 = detail::objective(layer, x, ywork, r, o);
      v[i] = orig + o.eps;
      const double lp = detail::objective(layer, x, ywork, r, o);
      const bool same_plus = piece(x) == here;
      v[i] = orig - o.eps;
      const double lm = detail::objective(layer, x, ywork, r, o);
      const bool same_minus = piece(x) == here;
      v[i] = orig;
      const double hp = static_cast<double>(orig + o.eps) - static_cast<double>(orig);
      const double hm = static_cast<double>(orig) - static_cast<double>(orig - o.eps);
      double num;
      if (same_plus && same_minus) {
        num = (lp - lm) / (hp + hm);
      } else if (same_plus) {  // a kink in [v - eps, v): the forward difference is exact
        num = (lp - l0) / hp;
      } else if (same_minus) {  // a kink in (v, v + eps]
        num = (l0 - lm) / hm;
      } else {  // kinks on both sides: v sits on a piece narrower than 2 eps
        ++rep.skipped;
        continue;
      }
      ++rep.checked;
      const double a = analytic[i];
      const double err = std::abs(a - num);
      const double big = std::max(std::abs(a), std::abs(num));
      rep.max_abs_err = std::max(rep.max_abs_err, err);
      if (err > o.atol) rep.max_rel_err = std::max(rep.max_rel_err, err / std::max(1e-6, big));
      if (err > o.atol + o.rtol * big && rep.ok) {
        rep.ok = false;
        char buf[256];
        std::snprintf(buf, sizeof buf, "%s[%lld]: analytic %.6g, numerical %.6g", what,
                      static_cast<long long>(i), a, num);
        rep.first_failure = buf;
      }
    }
  };
  if (o.check_input) check("dx", x.data(), x.numel(), dx.data());
  for (std::size_t k = 0; k < params.size(); ++k)
    check(params[k].name.c_str(), params[k].value->data(), params[k].value->numel(), g[k].data());
  const int64_t total = rep.checked + rep.skipped;
  if (total > 0 &&
      static_cast<double>(rep.skipped) > o.max_skip_fraction * static_cast<double>(total)) {
    rep.ok = false;
    if (rep.first_failure.empty())
      rep.first_failure =
          "too many kinks skipped: " + std::to_string(rep.skipped) + " of " + std::to_string(total);
  }
  return rep;
}

}  // namespace imgsim::testing
