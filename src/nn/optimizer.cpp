// Optimizers, gradient clipping and learning-rate schedules (docs/optimizers.md).
//
// Every update rule follows the single-tensor code path of PyTorch 2.x, operation by operation,
// so that parity tests can compare step by step: scalar coefficients (bias corrections, step
// sizes) in double, element-wise work in float32 like torch's float tensors.
//
// Weight decay applies only to parameters whose Param::decay flag is set (layers clear it for
// biases and normalisation parameters). torch.optim decays every parameter of a param group;
// a parity test against torch either sets every decay flag to true, or puts the no-decay
// parameters in a torch param group with weight_decay=0.
//
// step(), with g the gradient of each parameter w:
//   1. the first call (or the first after reset()) records the count and shapes of the
//      parameters and calls init_state() (the only allocation); later calls must pass the same
//      list, else StateError.
//   2. last_norm_ = ||g||_2 over all parameters (double), before any clipping.
//   3. clip.max_value > 0:  g <- clamp(g, -max_value, max_value)           (clip_grad_value_)
//   4. clip.max_norm > 0:   c = max_norm / (||g||_2 + 1e-6); if c < 1: g <- c g  (clip_grad_norm_)
//      (||g|| recomputed if step 3 changed the gradients). Clipping rewrites the grads in place.
//   5. ++t_, then update(): update sees t_ = 1 on the first step.
#include "imgsim/nn/optimizer.hpp"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "imgsim/error.hpp"
#include "imgsim/nn/serialize.hpp"
#include "imgsim/runtime/cpu.hpp"
#include "kernels/thread_pool.hpp"

namespace imgsim::nn {

namespace {

// Sum of squares in double with 8 independent accumulators (the compiler vectorises them; one
// dependent chain would cost 4 cycles per element, 12 ms per step on an 11M-parameter model).
double grad_sq_norm(const std::vector<Param>& params) {
  double sq = 0.0;
  for (const Param& p : params) {
    const float* g = p.grad->data();
    const int64_t n = p.grad->numel();
    double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
      for (int l = 0; l < 8; ++l) acc[l] += static_cast<double>(g[i + l]) * g[i + l];
    for (; i < n; ++i) sq += static_cast<double>(g[i]) * g[i];
    sq += ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
  }
  return sq;
}

// Runs fn(begin, end) over [0, n): element-wise updates of large tensors are split over the
// thread pool (each element is computed the same way by any thread, so the result does not
// depend on the thread count); small ones run inline. (From 2 chunks of 32768 on: the
// Fashion-MNIST model's 204800 dense weights, whose Adam step had stayed on one thread, took
// 3 % of a 2-thread training step.)
template <class F>
void for_elements(int64_t n, F&& fn) {
  constexpr int64_t kChunk = int64_t{1} << 15;
  if (n < 2 * kChunk || num_threads() == 1) {
    fn(int64_t{0}, n);
    return;
  }
  kernels::parallel_for((n + kChunk - 1) / kChunk, [&](int64_t c) {
    const int64_t b = c * kChunk;
    fn(b, b + kChunk < n ? b + kChunk : n);
  });
}

void check_range(const char* opt, const char* what, double v, double lo, double hi, bool hi_open) {
  if (!(v >= lo && (hi_open ? v < hi : v <= hi)))
    throw InvalidArgument(std::string(opt) + ": " + what + " = " + std::to_string(v) +
                          " is out of range");
}

constexpr double kInf = 1e300;

}  // namespace

// --- checkpoint state --------------------------------------------------------------------------
//
// Record: str type, i64 step count, u32 parameter count (0: no state yet), then, when it is not
// 0, u32 state tensor count and each tensor (shape checked against what init_state() makes for
// `params`).

std::vector<Tensor*> Optimizer::mutable_state_tensors() {
  std::vector<Tensor*> out;
  for (const Tensor* t : state_tensors()) out.push_back(const_cast<Tensor*>(t));
  return out;
}

void Optimizer::save_state(ByteWriter& w) const {
  w.str(type());
  w.i64(t_);
  w.u32(static_cast<uint32_t>(n_params_));
  if (n_params_ == 0) return;
  const auto st = state_tensors();
  w.u32(static_cast<uint32_t>(st.size()));
  for (const Tensor* t : st) w.tensor(*t);
}

void Optimizer::load_state(ByteReader& r, const std::vector<Param>& params) {
  reset();
  const std::string ty = r.str("optimizer type");
  if (ty != type()) r.fail("optimizer state is for '" + ty + "', this model uses '" + type() + "'");
  const int64_t t = r.i64("optimizer step count");
  const uint32_t n = r.u32("optimizer parameter count");
  if (t < 0) r.fail("optimizer step count " + std::to_string(t) + " is negative");
  if (n == 0) {
    if (t != 0) r.fail("optimizer step count " + std::to_string(t) + " without state");
    return;
  }
  if (n != params.size())
    r.fail("optimizer state for " + std::to_string(n) + " parameters, this model has " +
           std::to_string(params.size()));
  shapes_.clear();
  for (const Param& p : params) shapes_.push_back(p.value->shape());
  init_state(params);
  try {
    const auto st = mutable_state_tensors();
    const uint32_t ns = r.u32("optimizer state count");
    if (ns != st.size())
      r.fail("optimizer state has " + std::to_string(ns) + " tensors, expected " +
             std::to_string(st.size()));
    for (Tensor* x : st) r.tensor_into(*x, "optimizer state");
  } catch (...) {
    reset();
    throw;
  }
  n_params_ = params.size();
  t_ = t;
}

// --- Optimizer::step --------------------------------------------------------------------------

void Optimizer::step(const std::vector<Param>& params) {
  for (std::size_t k = 0; k < params.size(); ++k) {
    const Param& p = params[k];
    if (p.grad->shape() != p.value->shape())
      throw ShapeError(std::string(type()) + ": parameter " + std::to_string(k) + " '" + p.name +
                       "' has value " + p.value->shape().str() + " but gradient " +
                       p.grad->shape().str());
  }
  if (n_params_ == 0) {
    shapes_.clear();
    for (const Param& p : params) shapes_.push_back(p.value->shape());
    n_params_ = params.size();
    init_state(params);
  } else {
    if (params.size() != n_params_)
      throw StateError(std::string(type()) + ": step() got " + std::to_string(params.size()) +
                       " parameters, but the optimizer state was created for " +
                       std::to_string(n_params_));
    for (std::size_t k = 0; k < params.size(); ++k)
      if (params[k].value->shape() != shapes_[k])
        throw StateError(std::string(type()) + ": parameter " + std::to_string(k) + " '" +
                         params[k].name + "' is " + params[k].value->shape().str() +
                         ", but the optimizer state was created for " + shapes_[k].str());
  }

  const double sq = grad_sq_norm(params);
  last_norm_ = std::sqrt(sq);

  if (clip.max_value > 0.0f) {
    const float c = clip.max_value;
    for (const Param& p : params) {
      float* g = p.grad->data();
      for (int64_t i = 0; i < p.grad->numel(); ++i) g[i] = std::clamp(g[i], -c, c);
    }
  }
  if (clip.max_norm > 0.0f) {
    const double norm = clip.max_value > 0.0f ? std::sqrt(grad_sq_norm(params)) : last_norm_;
    const double scale = static_cast<double>(clip.max_norm) / (norm + 1e-6);
    if (scale < 1.0) {
      const float s = static_cast<float>(scale);
      for (const Param& p : params) {
        float* g = p.grad->data();
        for (int64_t i = 0; i < p.grad->numel(); ++i) g[i] *= s;
      }
    }
  }

  ++t_;
  update(params);
}

// --- SGD --------------------------------------------------------------------------------------
//
// torch.optim.SGD with dampening 0, per element:
//   g <- g + wd w                      (only if decay)
//   b <- g on the first step, else b <- mu b + g      (only if mu != 0)
//   d  = g + mu b  (nesterov)  |  b  (momentum)  |  g  (mu = 0)
//   w <- w - lr d

SGD::SGD(SGDOptions opt) : Optimizer(opt.lr), opt_(opt) {
  check_range("SGD", "lr", opt.lr, 0.0, kInf, false);
  check_range("SGD", "momentum", opt.momentum, 0.0, kInf, false);
  check_range("SGD", "weight_decay", opt.weight_decay, 0.0, kInf, false);
  if (opt.nesterov && opt.momentum <= 0.0)
    throw InvalidArgument("SGD: nesterov requires momentum > 0");
}

void SGD::init_state(const std::vector<Param>& params) {
  velocity_.clear();
  if (opt_.momentum == 0.0) return;
  velocity_.reserve(params.size());
  for (const Param& p : params) velocity_.emplace_back(p.value->shape());
}

std::vector<const Tensor*> SGD::state_tensors() const {
  std::vector<const Tensor*> out;
  for (const Tensor& t : velocity_) out.push_back(&t);
  return out;
}

void SGD::update(const std::vector<Param>& params) {
  const float lr = static_cast<float>(lr_);
  const float mu = static_cast<float>(opt_.momentum);
  const bool first = t_ == 1;
  for (std::size_t k = 0; k < params.size(); ++k) {
    float* w = params[k].value->data();
    const float* grad = params[k].grad->data();
    const int64_t n = params[k].value->numel();
    const float wd = params[k].decay ? static_cast<float>(opt_.weight_decay) : 0.0f;
    if (mu == 0.0f) {
      for_elements(n, [&](int64_t i0, int64_t i1) {
        for (int64_t i = i0; i < i1; ++i) {
          float g = grad[i];
          if (wd != 0.0f) g += wd * w[i];  // g + wd w
          w[i] -= lr * g;                  // w - lr g
        }
      });
      continue;
    }
    float* b = velocity_[k].data();
    const bool nesterov = opt_.nesterov;
    for_elements(n, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) {
        float g = grad[i];
        if (wd != 0.0f) g += wd * w[i];    // g + wd w
        b[i] = first ? g : mu * b[i] + g;  // b = mu b + g  (b = g first)
        const float d = nesterov ? g + mu * b[i] : b[i];
        w[i] -= lr * d;  // w - lr d
      }
    });
  }
}

// --- Adam / AdamW -----------------------------------------------------------------------------
//
// torch.optim.Adam / AdamW (amsgrad off), at step t, per element:
//   AdamW:  w <- w (1 - lr wd)              (decoupled, only if decay)
//   Adam:   g <- g + wd w                   (L2 in the gradient, only if decay)
//   m <- m + (1 - b1)(g - m)                (= b1 m + (1 - b1) g, torch's lerp)
//   v <- b2 v + (1 - b2) g^2
//   w <- w - (lr / (1 - b1^t)) m / (sqrt(v) / sqrt(1 - b2^t) + eps)

namespace {

struct AdamCoefs {
  float l2, one_m_b1, b2, one_m_b2, bc2s, eps, step_size;
};

// One Adam step on n elements. Distinct tensors (restrict) and no test inside the loop (two
// instantiations, with and without the L2 term), so that it vectorises; optimizer.cpp is
// compiled with -fno-math-errno for std::sqrt, which gives the same correctly rounded results.
template <bool L2>
void adam_range(float* __restrict w, const float* __restrict grad, float* __restrict m,
                float* __restrict v, int64_t n, const AdamCoefs& c) {
  const float l2 = c.l2, one_m_b1 = c.one_m_b1, b2 = c.b2, one_m_b2 = c.one_m_b2, bc2s = c.bc2s,
              eps = c.eps, step_size = c.step_size;
  for (int64_t i = 0; i < n; ++i) {
    float g = grad[i];
    if constexpr (L2) g += l2 * w[i];                  // g + wd w
    m[i] += one_m_b1 * (g - m[i]);                     // m + (1 - b1)(g - m)
    v[i] = v[i] * b2 + one_m_b2 * g * g;               // b2 v + (1 - b2) g^2
    const float denom = std::sqrt(v[i]) / bc2s + eps;  // sqrt(v / (1 - b2^t)) + eps
    w[i] -= step_size * (m[i] / denom);                // w - lr/(1 - b1^t) m / denom
  }
}

}  // namespace

Adam::Adam(AdamOptions opt) : Optimizer(opt.lr), opt_(opt) {
  check_range("Adam", "lr", opt.lr, 0.0, kInf, false);
  check_range("Adam", "beta1", opt.beta1, 0.0, 1.0, true);
  check_range("Adam", "beta2", opt.beta2, 0.0, 1.0, true);
  check_range("Adam", "eps", opt.eps, 0.0, kInf, false);
  check_range("Adam", "weight_decay", opt.weight_decay, 0.0, kInf, false);
}

void Adam::init_state(const std::vector<Param>& params) {
  m_.clear();
  v_.clear();
  m_.reserve(params.size());
  v_.reserve(params.size());
  for (const Param& p : params) {
    m_.emplace_back(p.value->shape());
    v_.emplace_back(p.value->shape());
  }
}

std::vector<const Tensor*> Adam::state_tensors() const {
  std::vector<const Tensor*> out;
  for (const Tensor& t : m_) out.push_back(&t);
  for (const Tensor& t : v_) out.push_back(&t);
  return out;
}

void Adam::update(const std::vector<Param>& params) {
  const double t = static_cast<double>(t_);
  const double bc1 = 1.0 - std::pow(opt_.beta1, t);                  // 1 - b1^t
  const double bc2_sqrt = std::sqrt(1.0 - std::pow(opt_.beta2, t));  // sqrt(1 - b2^t)
  const float step_size = static_cast<float>(lr_ / bc1);             // lr / (1 - b1^t)
  const float bc2s = static_cast<float>(bc2_sqrt);
  const float one_m_b1 = static_cast<float>(1.0 - opt_.beta1);
  const float b2 = static_cast<float>(opt_.beta2);
  const float one_m_b2 = static_cast<float>(1.0 - opt_.beta2);
  const float eps = static_cast<float>(opt_.eps);
  for (std::size_t k = 0; k < params.size(); ++k) {
    float* w = params[k].value->data();
    const float* grad = params[k].grad->data();
    float* m = m_[k].data();
    float* v = v_[k].data();
    const int64_t n = params[k].value->numel();
    const double wd = params[k].decay ? opt_.weight_decay : 0.0;
    const float l2 = decoupled_ ? 0.0f : static_cast<float>(wd);
    const float shrink = static_cast<float>(1.0 - lr_ * wd);  // 1 - lr wd
    const bool decay_w = decoupled_ && wd != 0.0;
    // One pass per element range (the same operations, in the same order, as one loop per step
    // of torch's single-tensor Adam).
    const AdamCoefs co{l2, one_m_b1, b2, one_m_b2, bc2s, eps, step_size};
    for_elements(n, [&](int64_t i0, int64_t i1) {
      if (decay_w)
        for (int64_t i = i0; i < i1; ++i) w[i] *= shrink;
      if (l2 != 0.0f)
        adam_range<true>(w + i0, grad + i0, m + i0, v + i0, i1 - i0, co);
      else
        adam_range<false>(w + i0, grad + i0, m + i0, v + i0, i1 - i0, co);
    });
  }
}

AdamW::AdamW(AdamOptions opt) : Adam(opt) {
  decoupled_ = true;
}

std::unique_ptr<Optimizer> make_optimizer(const std::string& name) {
  if (name == "sgd") return std::make_unique<SGD>();
  if (name == "adam") return std::make_unique<Adam>();
  if (name == "adamw") return std::make_unique<AdamW>();
  throw InvalidArgument("unknown optimizer '" + name + "'; accepted: sgd, adam, adamw");
}

// --- Schedules --------------------------------------------------------------------------------

// lr = base gamma^floor(epoch / step)
double StepLr::lr(double base_lr, double epoch) const {
  if (!(step_ > 0.0)) throw InvalidArgument("StepLr: step_epochs must be positive");
  if (!(epoch >= 0.0)) throw InvalidArgument("StepLr: epoch must be >= 0");
  return base_lr * std::pow(gamma_, std::floor(epoch / step_));
}

// epoch < W:   lr = base epoch / W                                  (linear warm-up from 0)
// W <= epoch:  lr = min + (base - min)(1 + cos(pi (epoch - W) / (T - W))) / 2, min from T on
double CosineLr::lr(double base_lr, double epoch) const {
  if (!(total_ > 0.0)) throw InvalidArgument("CosineLr: total_epochs must be positive");
  if (!(warmup_ >= 0.0 && warmup_ <= total_))
    throw InvalidArgument("CosineLr: warmup_epochs must be in [0, total_epochs]");
  if (!(epoch >= 0.0)) throw InvalidArgument("CosineLr: epoch must be >= 0");
  if (epoch < warmup_) return base_lr * epoch / warmup_;
  if (epoch >= total_) return min_;
  const double progress = (epoch - warmup_) / (total_ - warmup_);
  return min_ + (base_lr - min_) * 0.5 * (1.0 + std::cos(std::numbers::pi * progress));
}

}  // namespace imgsim::nn
