// Batch normalisation, per channel of (C, H, W) samples or per feature of (D) samples.
//
// Shapes: x (N, C, H, W) or (N, D); y has the shape of x. gamma, beta, running_mean and
// running_var have C (or D) elements. For channel c the statistics run over the
// M = N * H * W values x[., c, ., .] (M = N for (D) input); below, sums over "j" are over those.
//
// Forward, training (batch statistics; mean and variance accumulated in double):
//   mu     = (1/M) sum_j x_j
//   var    = (1/M) sum_j (x_j - mu)^2                     (biased, used to normalise)
//   invstd = 1 / sqrt(var + eps)
//   xhat_j = (x_j - mu) * invstd
//   y_j    = gamma * xhat_j + beta
//   running_mean = (1 - m) running_mean + m mu
//   running_var  = (1 - m) running_var  + m var * M / (M - 1)   (unbiased, as PyTorch)
// M = 1 cannot be normalised (xhat would be 0/0 + eps): ShapeError, as PyTorch does.
//
// Forward, inference (running statistics, nothing updated):
//   y_j = gamma * (x_j - running_mean) * invstd_r + beta,   invstd_r = 1 / sqrt(running_var + eps)
//
// Backward, training. mu and var depend on every x_j, so with g_j = dL/dy_j:
//   dL/dbeta  = sum_j g_j
//   dL/dgamma = sum_j g_j xhat_j
//   dL/dx_i   = gamma invstd / M * (M g_i - sum_j g_j - xhat_i sum_j g_j xhat_j)
// (derived step by step in docs/layers-activations-norm.md).
//
// Backward, inference (frozen BN, an affine map per channel):
//   dL/dx_i = g_i gamma invstd_r,  dL/dgamma = sum_j g_j xhat_j (with the running stats),
//   dL/dbeta = sum_j g_j.
//
// Layout: with S = H * W (S = 1 for (D) input), element j = (n, s) of channel c is at
// (n * C + c) * S + s.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <vector>

#include "imgsim/error.hpp"
#include "imgsim/nn/layers.hpp"
#include "imgsim/nn/serialize.hpp"
#include "kernels/thread_pool.hpp"
#include "nn/layer_util.hpp"

namespace imgsim::nn {

namespace {

bool valid_momentum(float m) {
  return std::isfinite(m) && m >= 0.0f && m <= 1.0f;
}

}  // namespace

BatchNorm::BatchNorm(BatchNormOptions opt) : opt_(opt) {
  if (!valid_momentum(opt.momentum))
    throw InvalidArgument("BatchNorm: momentum must be in [0, 1], got " +
                          detail::format_float(opt.momentum));
  if (!detail::positive_finite(opt.eps))
    throw InvalidArgument("BatchNorm: eps must be positive, got " + detail::format_float(opt.eps));
  declared_input_ = opt.input_shape;
}

std::string BatchNorm::describe() const {
  return "BatchNorm(momentum " + detail::format_float(opt_.momentum) + ", eps " +
         detail::format_float(opt_.eps) + ")";
}

Shape BatchNorm::build(const Shape& in) {
  bool ok = in.rank() == 1 || in.rank() == 3;
  for (int64_t d : in) ok = ok && d > 0;
  if (!ok)
    throw ShapeError("BatchNorm " + name + ": expects input (channels, height, width) or " +
                     "(features), got " + in.str());
  const int64_t c = in[0];
  if (!gamma_.empty() && gamma_.numel() != c)
    throw ShapeError("BatchNorm " + name + ": has " + std::to_string(gamma_.numel()) +
                     " channels, does not fit input " + in.str());
  if (gamma_.empty()) {
    gamma_ = Tensor(Shape{c}, 1.0f);
    beta_ = Tensor(Shape{c});
    dgamma_ = Tensor(Shape{c});
    dbeta_ = Tensor(Shape{c});
    running_mean_ = Tensor(Shape{c});
    running_var_ = Tensor(Shape{c}, 1.0f);
  }
  mean_.assign(static_cast<std::size_t>(c), 0.0f);
  invstd_.assign(static_cast<std::size_t>(c), 1.0f);
  return finish_build(in, in);
}

// Fresh layer: gamma 1, beta 0, running mean 0, running variance 1 (as PyTorch's
// reset_parameters and Keras's initialisers). The Rng is not used.
void BatchNorm::init_params(Rng& /*rng*/) {
  gamma_.fill(1.0f);
  beta_.zero();
  running_mean_.zero();
  running_var_.fill(1.0f);
}

std::vector<Param> BatchNorm::params() {
  return {{"gamma", &gamma_, &dgamma_, false}, {"beta", &beta_, &dbeta_, false}};
}

std::vector<Tensor*> BatchNorm::state() {
  return {&running_mean_, &running_var_};
}

void BatchNorm::forward(const Tensor& x, Tensor& y, Phase phase) {
  const int64_t n = x.dim(0), c = in_shape_[0], s = in_shape_.numel() / c, m = n * s;
  const float* xs = x.data();
  float* ys = y.data();

  if (phase == Phase::infer) {
    last_train_ = false;
    std::vector<float> mus(static_cast<std::size_t>(c)), scales(mus.size()), shifts(mus.size());
    for (int64_t ch = 0; ch < c; ++ch) {
      const float invstd =
          static_cast<float>(1.0 / std::sqrt(static_cast<double>(running_var_[ch]) + opt_.eps));
      const auto k = static_cast<std::size_t>(ch);
      mus[k] = running_mean_[ch];
      scales[k] = gamma_[ch] * invstd;
      shifts[k] = beta_[ch];
    }
    // The n * c planes of s values, in parallel tasks of about kGrain values (element-wise, so
    // the result does not depend on the threads).
    constexpr int64_t kGrain = int64_t{1} << 15;
    const int64_t planes = n * c;
    const int64_t per_task = std::max<int64_t>(1, kGrain / std::max<int64_t>(s, 1));
    kernels::parallel_for((planes + per_task - 1) / per_task, [&](int64_t t) {
      const int64_t end = std::min(planes, (t + 1) * per_task);
      for (int64_t p = t * per_task; p < end; ++p) {
        const auto ch = static_cast<std::size_t>(p % c);
        const float mu = mus[ch], scale = scales[ch], b = shifts[ch];
        const float* xp = xs + p * s;
        float* yp = ys + p * s;
        for (int64_t k = 0; k < s; ++k) yp[k] = (xp[k] - mu) * scale + b;
      }
    });
    return;
  }

  if (m <= 1)
    throw ShapeError("BatchNorm " + name +
                     ": Expected more than 1 value per channel when training, got input " +
                     x.shape().str() + " (use a batch of at least 2, or Phase::infer)");
  const double momentum = opt_.momentum;
  for (int64_t ch = 0; ch < c; ++ch) {
    double sum = 0.0;
    for (int64_t i = 0; i < n; ++i) {
      const float* p = xs + (i * c + ch) * s;
      for (int64_t k = 0; k < s; ++k) sum += p[k];
    }
    const double mu = sum / static_cast<double>(m);
    double ss = 0.0;  // second pass: no cancellation as in E[x^2] - mu^2
    for (int64_t i = 0; i < n; ++i) {
      const float* p = xs + (i * c + ch) * s;
      for (int64_t k = 0; k < s; ++k) {
        const double dev = p[k] - mu;
        ss += dev * dev;
      }
    }
    const double var = ss / static_cast<double>(m);
    const double invstd = 1.0 / std::sqrt(var + opt_.eps);
    mean_[ch] = static_cast<float>(mu);
    invstd_[ch] = static_cast<float>(invstd);
    running_mean_[ch] = static_cast<float>((1.0 - momentum) * running_mean_[ch] + momentum * mu);
    running_var_[ch] = static_cast<float>((1.0 - momentum) * running_var_[ch] +
                                          momentum * ss / static_cast<double>(m - 1));

    const float muf = mean_[ch], scale = gamma_[ch] * invstd_[ch], b = beta_[ch];
    for (int64_t i = 0; i < n; ++i) {
      const int64_t off = (i * c + ch) * s;
      for (int64_t k = 0; k < s; ++k) ys[off + k] = (xs[off + k] - muf) * scale + b;
    }
  }
  last_train_ = true;
}

void BatchNorm::backward(const Tensor& x, const Tensor& /*y*/, const Tensor& dy, Tensor* dx) {
  const int64_t n = x.dim(0), c = in_shape_[0], s = in_shape_.numel() / c, m = n * s;
  const float* xs = x.data();
  const float* g = dy.data();
  for (int64_t ch = 0; ch < c; ++ch) {
    // The statistics the forward used: batch (training) or running (inference).
    float mu, invstd;
    if (last_train_) {
      mu = mean_[ch];
      invstd = invstd_[ch];
    } else {
      mu = running_mean_[ch];
      invstd =
          static_cast<float>(1.0 / std::sqrt(static_cast<double>(running_var_[ch]) + opt_.eps));
    }
    double sum_g = 0.0, sum_gx = 0.0;
    for (int64_t i = 0; i < n; ++i) {
      const int64_t off = (i * c + ch) * s;
      for (int64_t k = 0; k < s; ++k) {
        const float xhat = (xs[off + k] - mu) * invstd;
        sum_g += g[off + k];
        sum_gx += static_cast<double>(g[off + k]) * xhat;
      }
    }
    dgamma_[ch] += static_cast<float>(sum_gx);
    dbeta_[ch] += static_cast<float>(sum_g);
    if (!dx) continue;
    float* d = dx->data();
    const float k_scale = gamma_[ch] * invstd;
    if (!last_train_) {
      for (int64_t i = 0; i < n; ++i) {
        const int64_t off = (i * c + ch) * s;
        for (int64_t k = 0; k < s; ++k) d[off + k] += g[off + k] * k_scale;
      }
      continue;
    }
    const float mean_g = static_cast<float>(sum_g / static_cast<double>(m));
    const float mean_gx = static_cast<float>(sum_gx / static_cast<double>(m));
    for (int64_t i = 0; i < n; ++i) {
      const int64_t off = (i * c + ch) * s;
      for (int64_t k = 0; k < s; ++k) {
        const float xhat = (xs[off + k] - mu) * invstd;
        d[off + k] += k_scale * (g[off + k] - mean_g - xhat * mean_gx);
      }
    }
  }
}

// Record (version 1): momentum (f32), eps (f32). Shapes come from build; the running statistics
// are saved by the model through state().
void BatchNorm::save_config(ByteWriter& w) const {
  w.f32(opt_.momentum);
  w.f32(opt_.eps);
}

void BatchNorm::load_config(ByteReader& r, uint32_t version) {
  if (version != 1)
    r.fail("batch_norm layer record version " + std::to_string(version) + ", expected 1");
  const float momentum = r.f32("batch_norm.momentum");
  const float eps = r.f32("batch_norm.eps");
  if (!valid_momentum(momentum))
    r.fail("batch_norm.momentum " + detail::format_float(momentum) + " is not in [0, 1]");
  if (!detail::positive_finite(eps))
    r.fail("batch_norm.eps " + detail::format_float(eps) + " is not positive");
  opt_.momentum = momentum;
  opt_.eps = eps;
}

}  // namespace imgsim::nn
