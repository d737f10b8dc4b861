// Metric-learning losses (docs/metric-learning.md derives every gradient written here).
//
// Shapes: pred p (N, D), one embedding per row; target (N) or (N, 1) class labels (ignored by
// NT-Xent). Everything is accumulated in double from the float32 inputs.
//
// Gradients through pairwise distances. With d_ij = ||p_i - p_j||,
//   d(d_ij^2)/dp_i = 2 (p_i - p_j)          d(d_ij)/dp_i = (p_i - p_j) / d_ij   (0 at d_ij = 0)
// and the same with the opposite sign for p_j. The contrastive and triplet losses are sums of
// terms that depend on the batch only through distances, so their gradient has the form
//   dL/dp_i = sum_j c_ij (p_i - p_j),      c symmetric, c_ii = 0
// where c_ij collects dL/d(d_ij) / d_ij + 2 dL/d(d_ij^2) over every term that uses the pair
// {i, j} (in either order). Each loss fills c (planned N x N scratch), then add_pair_gradient()
// forms sum_j c_ij (p_i - p_j) = (sum_j c_ij) p_i - sum_j c_ij p_j in double and adds it to dpred.
//
// At d_ij = 0 the Euclidean distance has no derivative; taking 0 there (the minimum-norm
// subgradient of the cone d_ij) keeps the gradient finite: two identical embeddings get no push
// from a term in d_ij, and are separated by the other terms as soon as they differ.
//
// Conventions shared with loss.cpp: the value is a mean (the count is named in each section),
// dpred receives dL/dpred ADDED, already divided by that count; nothing is allocated once the
// scratch vectors have grown to the largest batch; strings are built only on the error paths.
#include "imgsim/nn/metric_loss.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <string>

#include "imgsim/error.hpp"

namespace imgsim::nn {

namespace {

std::string format_float(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

// pred must be (N, D) with N, D >= 1; target (N) or (N, 1). `expected` describes the target.
void check_embeddings(const char* loss, const Shape& pred, const Shape& target,
                      const char* expected) {
  if (pred.rank() != 2 || pred[0] <= 0 || pred[1] <= 0)
    throw ShapeError(std::string(loss) + ": expects embeddings (N, D), got " + pred.str() +
                     " (target " + target.str() + ")");
  const bool ok = (target.rank() == 1 && target[0] == pred[0]) ||
                  (target.rank() == 2 && target[0] == pred[0] && target[1] == 1);
  if (!ok)
    throw ShapeError(std::string(loss) + ": prediction " + pred.str() + " and target " +
                     target.str() + " do not fit (expected " + expected + ")");
}

void check_dpred(const char* loss, const Tensor& pred, const Tensor* dpred) {
  if (dpred && dpred->numel() != pred.numel())
    throw ShapeError(std::string(loss) + ": gradient buffer " + dpred->shape().str() +
                     " does not match prediction " + pred.shape().str());
}

// Labels must be finite integers (checked before anything is written).
void check_labels(const char* loss, const Tensor& target) {
  const float* t = target.data();
  for (int64_t r = 0; r < target.numel(); ++r) {
    if (!(std::isfinite(t[r]) && t[r] == std::floor(t[r])))
      throw InvalidArgument(std::string(loss) + ": target row " + std::to_string(r) + " is " +
                            format_float(t[r]) + ", expected a class label (an integer)");
  }
}

// ||p_i - p_j||^2 in double.
double squared_distance(const float* pi, const float* pj, int64_t d) {
  double s = 0.0;
  for (int64_t k = 0; k < d; ++k) {
    const double diff = static_cast<double>(pi[k]) - static_cast<double>(pj[k]);
    s += diff * diff;
  }
  return s;
}

// dpred_i += sum_j c_ij (p_i - p_j), with c symmetric (N, N); `grad` is (N, D) scratch.
void add_pair_gradient(const Tensor& pred, const double* c, double* grad, Tensor& dpred) {
  const int64_t n = pred.dim(0), d = pred.dim(1);
  const float* p = pred.data();
  std::fill(grad, grad + n * d, 0.0);
  for (int64_t i = 0; i < n; ++i) {
    double* gi = grad + i * d;
    double rowsum = 0.0;
    for (int64_t j = 0; j < n; ++j) {
      const double cij = c[i * n + j];
      if (cij == 0.0) continue;
      rowsum += cij;
      const float* pj = p + j * d;
      for (int64_t k = 0; k < d; ++k) gi[k] -= cij * pj[k];  // - sum_j c_ij p_j
    }
    const float* pi = p + i * d;
    for (int64_t k = 0; k < d; ++k) gi[k] += rowsum * pi[k];  // + (sum_j c_ij) p_i
  }
  float* g = dpred.data();
  for (int64_t i = 0; i < n * d; ++i) g[i] += static_cast<float>(grad[i]);
}

// Grows a scratch vector (never shrinks its capacity) and zero-fills the first `size` entries.
void plan(std::vector<double>& v, int64_t size) {
  if (static_cast<int64_t>(v.size()) < size) v.resize(static_cast<std::size_t>(size));
  std::fill(v.begin(), v.begin() + size, 0.0);
}

}  // namespace

// --- ContrastiveLoss --------------------------------------------------------------------------
//
// Over the P = N (N - 1) / 2 pairs i < j, y_ij = [label_i == label_j], d = d_ij:
//   l_ij = y_ij d^2 + (1 - y_ij) max(0, m - d)^2          L = (1/P) sum_{i<j} l_ij
// Hadsell et al. write (1/2) before each term; imgsim leaves it out (it only scales L).
// Derivatives of one pair, folded into c_ij (see the top of the file):
//   positive: dl/d(d^2) = 1                    c_ij = 2 / P
//   negative, d < m: dl/dd = -2 (m - d)        c_ij = -2 (m - d) / d / P     (0 at d = 0)
//   negative, d >= m: 0
// N = 1: no pair, L = 0 and nothing is added.

ContrastiveLoss::ContrastiveLoss(float margin) : margin_(margin) {
  if (!(std::isfinite(margin) && margin > 0.0f))
    throw InvalidArgument("ContrastiveLoss: margin must be positive and finite, got " +
                          format_float(margin));
}

void ContrastiveLoss::check(const Shape& pred, const Shape& target) const {
  check_embeddings("ContrastiveLoss", pred, target, "class labels (N) or (N, 1)");
}

double ContrastiveLoss::forward_backward(const Tensor& pred, const Tensor& target, Tensor* dpred) {
  check(pred.shape(), target.shape());
  check_dpred("ContrastiveLoss", pred, dpred);
  check_labels("ContrastiveLoss", target);
  const int64_t n = pred.dim(0), d = pred.dim(1);
  if (n < 2) return 0.0;
  const double m = margin_;
  const double inv_p = 2.0 / (static_cast<double>(n) * static_cast<double>(n - 1));  // 1 / P
  const float* p = pred.data();
  const float* t = target.data();
  if (dpred) plan(coef_, n * n);
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = i + 1; j < n; ++j) {
      const double sq = squared_distance(p + i * d, p + j * d, d);
      double c = 0.0;
      if (t[i] == t[j]) {
        sum += sq;        // d^2
        c = 2.0 * inv_p;  // 2 / P
      } else {
        const double dist = std::sqrt(sq);
        if (dist < m) {
          sum += (m - dist) * (m - dist);                        // max(0, m - d)^2
          if (dist > 0.0) c = -2.0 * (m - dist) / dist * inv_p;  // -2 (m - d) / d / P
        }
      }
      if (dpred)
        coef_[static_cast<std::size_t>(i * n + j)] = coef_[static_cast<std::size_t>(j * n + i)] = c;
    }
  }
  if (dpred) {
    plan(grad_, n * d);
    add_pair_gradient(pred, coef_.data(), grad_.data(), *dpred);
  }
  return sum * inv_p;
}

// --- TripletLoss ------------------------------------------------------------------------------
//
// D_ij = d_ij (Euclidean) or d_ij^2 (squared). A triplet (a, p, n) has label_p == label_a,
// p != a, label_n != label_a, and loss h = max(0, m + D_ap - D_an). While h > 0,
//   dh/dD_ap = 1,  dh/dD_an = -1
// so each selected triplet with h > 0 adds +1 to W_ap and -1 to W_an; with K the count of the
// mean, the pair coefficients are c_ij = (W_ij + W_ji) / K * f_ij, with f_ij = 1 / d_ij
// (Euclidean, 0 at d_ij = 0) or 2 (squared): dD_ij/dp_i = f_ij (p_i - p_j).
//
// Selection (ties: the lowest index wins):
//   batch_hard: per anchor a with at least one positive and one negative,
//     p* = argmax_p D_ap, n* = argmin_n D_an, one triplet (a, p*, n*); K = number of such anchors.
//     The argmax/argmin are piecewise constant, so the derivative flows to the selected pair only.
//   semi_hard: per (a, p) whose anchor has at least one negative, n* = argmin D_an over the
//     semi-hard negatives D_ap < D_an < D_ap + m, or over all negatives when there is none;
//     K = number of such (a, p) pairs (ordered: (a, p) and (p, a) both count).
//   all: every triplet; K = number of triplets with h > 0 (those with h = 0 add nothing and are
//     not counted; the count is piecewise constant and not differentiated).
// K = 0 (no label with two rows, a single label, or, for `all`, no triplet with h > 0): L = 0
// and nothing is added.

TripletLoss::TripletLoss(float margin, Mining mining, bool squared)
    : margin_(margin), mining_(mining), squared_(squared) {
  if (!(std::isfinite(margin) && margin >= 0.0f))
    throw InvalidArgument("TripletLoss: margin must be non-negative and finite, got " +
                          format_float(margin));
  if (mining != Mining::batch_hard && mining != Mining::semi_hard && mining != Mining::all)
    throw InvalidArgument("TripletLoss: unknown mining mode " +
                          std::to_string(static_cast<int>(mining)));
}

void TripletLoss::check(const Shape& pred, const Shape& target) const {
  check_embeddings("TripletLoss", pred, target, "class labels (N) or (N, 1)");
}

double TripletLoss::forward_backward(const Tensor& pred, const Tensor& target, Tensor* dpred) {
  check(pred.shape(), target.shape());
  check_dpred("TripletLoss", pred, dpred);
  check_labels("TripletLoss", target);
  const int64_t n = pred.dim(0), d = pred.dim(1);
  const double m = margin_;
  const float* p = pred.data();
  const float* t = target.data();

  // D_ij, symmetric, D_ii = 0.
  plan(dist_, n * n);
  plan(coef_, n * n);  // W, unscaled
  double* dist = dist_.data();
  double* w = coef_.data();
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = i + 1; j < n; ++j) {
      const double sq = squared_distance(p + i * d, p + j * d, d);
      dist[i * n + j] = dist[j * n + i] = squared_ ? sq : std::sqrt(sq);
    }
  }
  // One selected triplet: adds its hinge to the sum and its +1/-1 to W.
  double sum = 0.0;
  int64_t count = 0;
  auto triplet = [&](int64_t a, int64_t pos, int64_t neg) {
    const double h = m + dist[a * n + pos] - dist[a * n + neg];  // m + D_ap - D_an
    if (h <= 0.0) return false;
    sum += h;
    w[a * n + pos] += 1.0;
    w[a * n + neg] -= 1.0;
    return true;
  };

  for (int64_t a = 0; a < n; ++a) {
    const double* da = dist + a * n;
    switch (mining_) {
      case Mining::batch_hard: {
        int64_t hp = -1, hn = -1;  // farthest positive, closest negative
        for (int64_t j = 0; j < n; ++j) {
          if (j == a) continue;
          if (t[j] == t[a]) {
            if (hp < 0 || da[j] > da[hp]) hp = j;
          } else if (hn < 0 || da[j] < da[hn]) {
            hn = j;
          }
        }
        if (hp < 0 || hn < 0) break;
        ++count;
        triplet(a, hp, hn);
        break;
      }
      case Mining::semi_hard: {
        int64_t hn = -1;  // closest negative of all (the fallback)
        for (int64_t j = 0; j < n; ++j)
          if (t[j] != t[a] && (hn < 0 || da[j] < da[hn])) hn = j;
        if (hn < 0) break;
        for (int64_t pos = 0; pos < n; ++pos) {
          if (pos == a || t[pos] != t[a]) continue;
          ++count;
          const double dap = da[pos];
          int64_t sn = -1;  // closest semi-hard negative: D_ap < D_an < D_ap + m
          for (int64_t j = 0; j < n; ++j) {
            if (t[j] == t[a] || !(da[j] > dap && da[j] < dap + m)) continue;
            if (sn < 0 || da[j] < da[sn]) sn = j;
          }
          triplet(a, pos, sn >= 0 ? sn : hn);
        }
        break;
      }
      case Mining::all: {
        for (int64_t pos = 0; pos < n; ++pos) {
          if (pos == a || t[pos] != t[a]) continue;
          for (int64_t j = 0; j < n; ++j)
            if (t[j] != t[a] && triplet(a, pos, j)) ++count;
        }
        break;
      }
    }
  }
  if (count == 0) return 0.0;
  const double inv_k = 1.0 / static_cast<double>(count);

  if (dpred) {
    // c_ij = (W_ij + W_ji) / K * f_ij, written over dist (which is no longer needed).
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t j = i + 1; j < n; ++j) {
        const double wij = w[i * n + j] + w[j * n + i];
        double f = 2.0;  // squared: dD/dp_i = 2 (p_i - p_j)
        if (!squared_) {
          const double dij = dist[i * n + j];
          f = dij > 0.0 ? 1.0 / dij : 0.0;  // Euclidean: (p_i - p_j) / d_ij
        }
        dist[i * n + j] = dist[j * n + i] = wij * inv_k * f;
      }
      dist[i * n + i] = 0.0;
    }
    plan(grad_, n * d);
    add_pair_gradient(pred, dist, grad_.data(), *dpred);
  }
  return sum * inv_k;
}

// --- NTXentLoss -------------------------------------------------------------------------------
//
// N = 2M rows, k(i) = (i + M) mod 2M the other view of row i, tau the temperature:
//   u_i = p_i / max(||p_i||, eps),  eps = 1e-12           (as torch.nn.functional.normalize)
//   s_ij = <u_i, u_j> / tau
//   l_i = lse_i - s_{i,k(i)},  lse_i = mx_i + log sum_{j != i} exp(s_ij - mx_i),
//         mx_i = max_{j != i} s_ij  (every exponent <= 0, the largest term is 1)
//   L = (1/N) sum_i l_i
// Backward:
//   dl_i/ds_ij = q_ij - [j == k(i)],  q_ij = exp(s_ij - lse_i)  (j != i; softmax over j != i)
//   G_ij = dL/ds_ij = (q_ij - [j == k(i)]) / N,  G_ii = 0
//   dL/du_a = (1/tau) sum_j (G_aj + G_ja) u_j       (s_ij depends on u_a through i = a and j = a)
//   dL/dp_a = (g_a - u_a <u_a, g_a>) / ||p_a||      (the L2Normalize backward, g_a = dL/du_a)
//             g_a / eps                              (when ||p_a|| < eps)
// N = 2: each row has one other, its positive, so l_i = 0 and the gradient is 0.

// --- NT-Xent and supervised contrastive: softmax over cosine similarities --------------------

namespace {

constexpr double kNormEps = 1e-12;

void check_temperature(const char* loss, float temperature) {
  if (!(std::isfinite(temperature) && temperature > 0.0f))
    throw InvalidArgument(std::string(loss) + ": temperature must be positive and finite, got " +
                          format_float(temperature));
}

// u_i = p_i / max(||p_i||, eps) into unit (N, D), ||p_i|| into norm (N).
void normalise_rows(const float* p, int64_t n, int64_t d, std::vector<double>& unit,
                    std::vector<double>& norm) {
  plan(unit, n * d);
  plan(norm, n);
  double* u = unit.data();
  for (int64_t i = 0; i < n; ++i) {
    const float* pi = p + i * d;
    double ss = 0.0;
    for (int64_t k = 0; k < d; ++k) ss += static_cast<double>(pi[k]) * pi[k];
    norm[static_cast<std::size_t>(i)] = std::sqrt(ss);
    const double inv = 1.0 / std::max(std::sqrt(ss), kNormEps);
    for (int64_t k = 0; k < d; ++k) u[i * d + k] = pi[k] * inv;
  }
}

// s_ij = <u_i, u_j> / tau into sim (N, N); the diagonal is never read.
void cosine_logits(const double* u, int64_t n, int64_t d, double inv_tau,
                   std::vector<double>& sim) {
  plan(sim, n * n);
  double* s = sim.data();
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = i + 1; j < n; ++j) {
      double dot = 0.0;
      for (int64_t k = 0; k < d; ++k) dot += u[i * d + k] * u[j * d + k];
      s[i * n + j] = s[j * n + i] = dot * inv_tau;
    }
  }
}

// lse_i = log sum_{j != i} exp(s_ij) of row si, stably: mu + log sum exp(s_ij - mu) with
// mu = max_{j != i} s_ij, so every exponent is <= 0. Needs n >= 2.
double lse_except(const double* si, int64_t n, int64_t i) {
  double mx = -std::numeric_limits<double>::infinity();
  for (int64_t j = 0; j < n; ++j)
    if (j != i) mx = std::max(mx, si[j]);
  double se = 0.0;
  for (int64_t j = 0; j < n; ++j)
    if (j != i) se += std::exp(si[j] - mx);
  return mx + std::log(se);
}

// Given G = dL/ds (N, N, zero diagonal) in g_s: dL/du_a = (1/tau) sum_j (G_aj + G_ja) u_j, then
// through the normalisation, added to out (N, D). `grad` is (N, D) scratch.
void backprop_cosine_logits(const double* g_s, const std::vector<double>& unit,
                            const std::vector<double>& norm, int64_t n, int64_t d, double inv_tau,
                            std::vector<double>& grad, float* out) {
  const double* u = unit.data();
  plan(grad, n * d);
  double* g = grad.data();
  for (int64_t a = 0; a < n; ++a) {
    double* ga = g + a * d;
    for (int64_t j = 0; j < n; ++j) {
      const double c = (g_s[a * n + j] + g_s[j * n + a]) * inv_tau;
      if (c == 0.0) continue;
      const double* uj = u + j * d;
      for (int64_t k = 0; k < d; ++k) ga[k] += c * uj[k];
    }
  }
  for (int64_t a = 0; a < n; ++a) {
    const double* ga = g + a * d;
    const double* ua = u + a * d;
    const double nrm = norm[static_cast<std::size_t>(a)];
    if (nrm < kNormEps) {
      for (int64_t k = 0; k < d; ++k) out[a * d + k] += static_cast<float>(ga[k] / kNormEps);
      continue;
    }
    double dot = 0.0;
    for (int64_t k = 0; k < d; ++k) dot += ua[k] * ga[k];  // <u_a, g_a>
    for (int64_t k = 0; k < d; ++k)
      out[a * d + k] += static_cast<float>((ga[k] - ua[k] * dot) / nrm);
  }
}

}  // namespace

NTXentLoss::NTXentLoss(float temperature) : temperature_(temperature) {
  check_temperature("NTXentLoss", temperature);
}

void NTXentLoss::check(const Shape& pred, const Shape& target) const {
  check_embeddings("NTXentLoss", pred, target, "a target (N) or (N, 1); its values are ignored");
}

double NTXentLoss::forward_backward(const Tensor& pred, const Tensor& target, Tensor* dpred) {
  check(pred.shape(), target.shape());
  check_dpred("NTXentLoss", pred, dpred);
  const int64_t n = pred.dim(0), d = pred.dim(1);
  if (n % 2 != 0)
    throw ShapeError(
        "NTXentLoss: expects an even batch (two views of M images: rows i and "
        "i + M), got " +
        pred.shape().str());
  const int64_t half = n / 2;
  const double inv_tau = 1.0 / static_cast<double>(temperature_);
  const double inv_n = 1.0 / static_cast<double>(n);

  normalise_rows(pred.data(), n, d, unit_, norm_);
  cosine_logits(unit_.data(), n, d, inv_tau, sim_);
  double* s = sim_.data();

  double total = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    double* si = s + i * n;
    const int64_t k = (i + half) % n;
    const double lse = lse_except(si, n, i);
    total += lse - si[k];  // l_i
    if (dpred) {
      // Row i of s is read only here: overwrite it with G_i.
      for (int64_t j = 0; j < n; ++j)
        si[j] = j == i ? 0.0 : (std::exp(si[j] - lse) - (j == k ? 1.0 : 0.0)) * inv_n;
    }
  }
  if (dpred) backprop_cosine_logits(s, unit_, norm_, n, d, inv_tau, grad_, dpred->data());
  return total * inv_n;
}

// --- SupConLoss ---------------------------------------------------------------------------------

SupConLoss::SupConLoss(float temperature) : temperature_(temperature) {
  check_temperature("SupConLoss", temperature);
}

void SupConLoss::check(const Shape& pred, const Shape& target) const {
  check_embeddings("SupConLoss", pred, target, "class labels (N) or (N, 1)");
}

// l_i = lse_{j != i}(s_ij) - (1/|P(i)|) sum_{p in P(i)} s_ip over the anchors with a positive
// (A of them); L = (1/A) sum l_i. dL/ds_ij = (softmax_i(j) - [j in P(i)] / |P(i)|) / A, j != i.
double SupConLoss::forward_backward(const Tensor& pred, const Tensor& target, Tensor* dpred) {
  check(pred.shape(), target.shape());
  check_dpred("SupConLoss", pred, dpred);
  check_labels("SupConLoss", target);
  const int64_t n = pred.dim(0), d = pred.dim(1);
  const float* y = target.data();
  const double inv_tau = 1.0 / static_cast<double>(temperature_);

  // Anchors with at least one positive.
  int64_t anchors = 0;
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      if (j != i && y[j] == y[i]) {
        ++anchors;
        break;
      }
    }
  }
  if (anchors == 0) return 0.0;
  const double inv_a = 1.0 / static_cast<double>(anchors);

  normalise_rows(pred.data(), n, d, unit_, norm_);
  cosine_logits(unit_.data(), n, d, inv_tau, sim_);
  double* s = sim_.data();

  double total = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    double* si = s + i * n;
    int64_t positives = 0;
    double pos_sum = 0.0;
    for (int64_t j = 0; j < n; ++j) {
      if (j != i && y[j] == y[i]) {
        ++positives;
        pos_sum += si[j];
      }
    }
    if (positives == 0) {
      if (dpred)
        for (int64_t j = 0; j < n; ++j) si[j] = 0.0;
      continue;
    }
    const double lse = lse_except(si, n, i);
    const double inv_p = 1.0 / static_cast<double>(positives);
    total += lse - pos_sum * inv_p;  // l_i
    if (dpred) {
      // Row i of s is read only here: overwrite it with G_i.
      for (int64_t j = 0; j < n; ++j)
        si[j] = j == i ? 0.0 : (std::exp(si[j] - lse) - (y[j] == y[i] ? inv_p : 0.0)) * inv_a;
    }
  }
  if (dpred) backprop_cosine_logits(s, unit_, norm_, n, d, inv_tau, grad_, dpred->data());
  return total * inv_a;
}

}  // namespace imgsim::nn
