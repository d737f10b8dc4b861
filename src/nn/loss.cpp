// Losses (docs/losses.md derives every gradient written here).
//
// Conventions shared by all losses:
//   * forward_backward returns the mean loss, accumulated in double;
//   * when dpred is not null it ADDS dL/dpred, already divided by the count of the mean
//     (elements for MSE and BCE, rows for cross-entropy);
//   * nothing is allocated; strings are built only on the error paths.
//
// Mean squared error, over the M elements of pred p and target t:
//   L = (1/M) sum_i (p_i - t_i)^2                 dL/dp_i = 2 (p_i - t_i) / M
//
// Softmax cross-entropy, logits z (N, K), target distribution q per row:
//   lse = m + log sum_k exp(z_k - m),  m = max_k z_k       (never overflows: every exp <= 1)
//   L_row = sum_k q_k (lse - z_k)                          (= -sum_k q_k log softmax(z)_k)
//   dL_row/dz_j = p_j S - q_j,  p_j = exp(z_j - lse),  S = sum_k q_k   (S = 1 for a distribution)
//   L = (1/N) sum_rows L_row
// with q = one_hot(y) for index targets, q = t for probability targets, and label smoothing e
// (torch CrossEntropyLoss(label_smoothing=e)): q <- (1 - e) q + e / K.
//
// Binary cross-entropy, mean over the M elements:
//   from logits:  L_i = max(z,0) - z t + log1p(exp(-|z|))  dL_i/dz = sigmoid(z) - t
//   from probabilities p clamped to [lo, hi] (Keras, float32 bounds lo = 1e-7f, hi = 1 - 1e-7f):
//                 L_i = -(t log p + (1 - t) log(1 - p))    dL_i/dp = (p - t) / (p (1 - p))
//                 and 0 where the clamp is active (p outside [lo, hi]).
#include "imgsim/nn/loss.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "imgsim/error.hpp"
#include "imgsim/nn/metric_loss.hpp"

namespace imgsim::nn {

namespace {

// True if a and b have the same leading (batch) dimension and the same remaining dimensions once
// dimensions of size 1 are ignored: (N) fits (N, 1), (N, 3) fits (N, 3, 1), (N, 2, 3) does not
// fit (N, 6).
bool same_squeezed(const Shape& a, const Shape& b) {
  if (a.rank() == 0 || b.rank() == 0) return a.rank() == b.rank();
  if (a[0] != b[0]) return false;
  int i = 1, j = 1;
  for (;;) {
    while (i < a.rank() && a[i] == 1) ++i;
    while (j < b.rank() && b[j] == 1) ++j;
    if (i == a.rank() || j == b.rank()) return i == a.rank() && j == b.rank();
    if (a[i] != b[j]) return false;
    ++i;
    ++j;
  }
}

[[noreturn]] void shape_mismatch(const char* loss, const Shape& pred, const Shape& target,
                                 const char* expected) {
  throw ShapeError(std::string(loss) + ": prediction " + pred.str() + " and target " +
                   target.str() + " do not fit (" + expected + ")");
}

void check_elementwise(const char* loss, const Shape& pred, const Shape& target) {
  if (pred.rank() == 0 || pred.numel() == 0)
    throw ShapeError(std::string(loss) + ": empty prediction " + pred.str());
  if (!same_squeezed(pred, target))
    shape_mismatch(loss, pred, target, "expected the same shape, up to dimensions of size 1");
}

void check_dpred(const char* loss, const Tensor& pred, const Tensor* dpred) {
  if (dpred && dpred->numel() != pred.numel())
    throw ShapeError(std::string(loss) + ": gradient buffer " + dpred->shape().str() +
                     " does not match prediction " + pred.shape().str());
}

// The two probability bounds of Keras' binary_crossentropy, which clamps float32 values:
// 1 - 1e-7 rounds to 1 - 2^-23 (0.99999988) in float32.
constexpr float kProbLo = 1e-7f;
constexpr float kProbHi = 1.0f - 1e-7f;

}  // namespace

// --- MeanSquaredError -------------------------------------------------------------------------

void MeanSquaredError::check(const Shape& pred, const Shape& target) const {
  check_elementwise("MeanSquaredError", pred, target);
}

double MeanSquaredError::forward_backward(const Tensor& pred, const Tensor& target, Tensor* dpred) {
  check(pred.shape(), target.shape());
  check_dpred("MeanSquaredError", pred, dpred);
  const int64_t m = pred.numel();
  const double inv_m = 1.0 / static_cast<double>(m);
  const float* p = pred.data();
  const float* t = target.data();
  double sum = 0.0;
  for (int64_t i = 0; i < m; ++i) {
    const double d = static_cast<double>(p[i]) - static_cast<double>(t[i]);
    sum += d * d;  // (p - t)^2
  }
  if (dpred) {
    float* g = dpred->data();
    for (int64_t i = 0; i < m; ++i) {
      const double d = static_cast<double>(p[i]) - static_cast<double>(t[i]);
      g[i] += static_cast<float>(2.0 * d * inv_m);  // 2 (p - t) / M
    }
  }
  return sum * inv_m;
}

// --- SoftmaxCrossEntropy ----------------------------------------------------------------------

SoftmaxCrossEntropy::SoftmaxCrossEntropy(float label_smoothing, float target_margin)
    : smoothing_(label_smoothing), margin_(target_margin) {
  if (!(label_smoothing >= 0.0f && label_smoothing <= 1.0f))
    throw InvalidArgument("SoftmaxCrossEntropy: label_smoothing must be in [0, 1], got " +
                          std::to_string(label_smoothing));
  if (!(std::isfinite(target_margin) && target_margin >= 0.0f))
    throw InvalidArgument("SoftmaxCrossEntropy: target_margin must be >= 0 and finite, got " +
                          std::to_string(target_margin));
}

void SoftmaxCrossEntropy::check(const Shape& pred, const Shape& target) const {
  if (pred.rank() != 2 || pred[0] <= 0 || pred[1] <= 0)
    throw ShapeError("SoftmaxCrossEntropy: expects logits (N, K), got " + pred.str() + " (target " +
                     target.str() + ")");
  const bool indices = (target.rank() == 1 && target[0] == pred[0]) ||
                       (target.rank() == 2 && target[0] == pred[0] && target[1] == 1);
  const bool probs = target == pred;
  if (!indices && !probs)
    shape_mismatch("SoftmaxCrossEntropy", pred, target,
                   "expected class indices (N) or (N, 1), or probabilities (N, K)");
}

double SoftmaxCrossEntropy::forward_backward(const Tensor& pred, const Tensor& target,
                                             Tensor* dpred) {
  check(pred.shape(), target.shape());
  check_dpred("SoftmaxCrossEntropy", pred, dpred);
  const int64_t n = pred.dim(0), k = pred.dim(1);
  // (N, 1) is read as indices even when K == 1 (a single class: the only valid index is 0).
  const bool indices = target.numel() == n;
  const float* t = target.data();
  if (indices) {
    // Validate every row before touching dpred, so a bad target leaves it unchanged.
    for (int64_t r = 0; r < n; ++r) {
      const float v = t[r];
      if (!(std::isfinite(v) && v == std::floor(v) && v >= 0.0f && v < static_cast<float>(k))) {
        char buf[160];
        std::snprintf(buf, sizeof buf,
                      "SoftmaxCrossEntropy: target row %lld is %.9g, expected a class index "
                      "(an integer in [0, %lld))",
                      static_cast<long long>(r), static_cast<double>(v), static_cast<long long>(k));
        throw InvalidArgument(buf);
      }
    }
  }

  const double e = smoothing_;
  const double uniform = e / static_cast<double>(k);  // e / K, the smoothing mass per class
  const double inv_n = 1.0 / static_cast<double>(n);
  double total = 0.0;
  for (int64_t r = 0; r < n; ++r) {
    const float* zr = pred.data() + r * k;
    // raw_j: the target before smoothing (one-hot or the given probabilities).
    const int64_t y = indices ? static_cast<int64_t>(t[r]) : -1;
    auto raw = [&](int64_t j) {
      return indices ? (j == y ? 1.0 : 0.0) : static_cast<double>(t[r * k + j]);
    };
    // z_j: the logits with the target margin taken off (z_j = pred_j - margin raw_j); the margin
    // is a constant shift, so dL/dpred = dL/dz.
    auto z = [&](int64_t j) { return static_cast<double>(zr[j]) - margin_ * raw(j); };
    // lse = m + log sum_k exp(z_k - m)
    double m = z(0);
    for (int64_t j = 1; j < k; ++j) m = std::max(m, z(j));
    double s = 0.0;
    for (int64_t j = 0; j < k; ++j) s += std::exp(z(j) - m);
    const double lse = m + std::log(s);

    // q_j: the smoothed target distribution; qsum = S = sum_j q_j.
    auto q = [&](int64_t j) { return (1.0 - e) * raw(j) + uniform; };
    double row = 0.0, qsum = 0.0;
    for (int64_t j = 0; j < k; ++j) {
      const double qj = q(j);
      row += qj * (lse - z(j));  // q_j (lse - z_j) = -q_j log p_j
      qsum += qj;
    }
    total += row;

    if (dpred) {
      float* g = dpred->data() + r * k;
      for (int64_t j = 0; j < k; ++j) {
        const double pj = std::exp(z(j) - lse);
        g[j] += static_cast<float>((pj * qsum - q(j)) * inv_n);  // (p_j S - q_j) / N
      }
    }
  }
  return total * inv_n;
}

// --- BinaryCrossEntropy -----------------------------------------------------------------------

void BinaryCrossEntropy::check(const Shape& pred, const Shape& target) const {
  check_elementwise("BinaryCrossEntropy", pred, target);
}

double BinaryCrossEntropy::forward_backward(const Tensor& pred, const Tensor& target,
                                            Tensor* dpred) {
  check(pred.shape(), target.shape());
  check_dpred("BinaryCrossEntropy", pred, dpred);
  const int64_t m = pred.numel();
  const double inv_m = 1.0 / static_cast<double>(m);
  const float* x = pred.data();
  const float* t = target.data();
  float* g = dpred ? dpred->data() : nullptr;
  double sum = 0.0;
  if (from_logits_) {
    for (int64_t i = 0; i < m; ++i) {
      const double z = x[i], ti = t[i];
      // max(z, 0) - z t + log1p(exp(-|z|)): exp's argument is <= 0, so it cannot overflow.
      sum += std::max(z, 0.0) - z * ti + std::log1p(std::exp(-std::abs(z)));
      if (g) {
        // sigmoid(z), from the side where exp does not overflow.
        const double sig =
            z >= 0.0 ? 1.0 / (1.0 + std::exp(-z)) : std::exp(z) / (1.0 + std::exp(z));
        g[i] += static_cast<float>((sig - ti) * inv_m);  // (sigmoid(z) - t) / M
      }
    }
  } else {
    for (int64_t i = 0; i < m; ++i) {
      const double p = std::clamp(x[i], kProbLo, kProbHi), ti = t[i];
      // -(t log p + (1 - t) log(1 - p))
      sum -= ti * std::log(p) + (1.0 - ti) * std::log(1.0 - p);
      if (g && x[i] >= kProbLo && x[i] <= kProbHi)
        g[i] += static_cast<float>((p - ti) / (p * (1.0 - p)) * inv_m);  // (p - t)/(p(1-p)) / M
    }
  }
  return sum * inv_m;
}

// --- make_loss --------------------------------------------------------------------------------

std::unique_ptr<Loss> make_loss(const std::string& name) {
  if (name == "mean_squared_error" || name == "mse") return std::make_unique<MeanSquaredError>();
  // Keras' categorical losses take probabilities by default; imgsim's take logits (there is no
  // softmax activation: the softmax is fused into the loss). Both target forms are accepted.
  if (name == "categorical_crossentropy" || name == "sparse_categorical_crossentropy" ||
      name == "cross_entropy" || name == "softmax_cross_entropy")
    return std::make_unique<SoftmaxCrossEntropy>();
  // Keras' string means probabilities (a sigmoid output layer).
  if (name == "binary_crossentropy" || name == "binary_cross_entropy")
    return std::make_unique<BinaryCrossEntropy>(false);
  // Metric learning (metric_loss.hpp), with their default parameters.
  if (name == "contrastive") return std::make_unique<ContrastiveLoss>();
  if (name == "triplet") return std::make_unique<TripletLoss>();
  if (name == "ntxent") return std::make_unique<NTXentLoss>();
  if (name == "supcon") return std::make_unique<SupConLoss>();
  throw InvalidArgument(
      "unknown loss '" + name +
      "'; accepted: mean_squared_error, mse, categorical_crossentropy, "
      "sparse_categorical_crossentropy, cross_entropy, softmax_cross_entropy, "
      "binary_crossentropy, binary_cross_entropy, contrastive, triplet, ntxent, supcon");
}

}  // namespace imgsim::nn
