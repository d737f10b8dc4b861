// Metric-learning losses on a batch of embeddings pred (N, D), normally L2-normalised (end the
// model with L2Normalize). docs/metric-learning.md gives every formula, gradient, mining rule and
// degenerate case.
//
// They follow the Loss contract of loss.hpp: forward_backward returns the loss (a mean, see each
// class) and, when dpred is not null, ADDS dL/dpred into it. Scratch buffers are members that
// grow to the largest batch seen, so forward_backward does not allocate once a batch of that size
// has been processed. A batch without a single valid pair or triplet gives loss 0 and adds a zero
// gradient.
//
// Targets of ContrastiveLoss and TripletLoss are class labels (N) or (N, 1) stored as floats;
// they must be finite integers (any sign), otherwise forward_backward throws InvalidArgument
// naming the row and value before touching dpred. Two rows are a positive pair when their labels
// are equal, a negative pair otherwise.
#pragma once

#include <vector>

#include "imgsim/nn/loss.hpp"

namespace imgsim::nn {

// Contrastive loss (Hadsell, Chopra and LeCun 2006, without their factor 1/2), over all
// P = N (N - 1) / 2 unordered pairs i < j of the batch, with d_ij = ||p_i - p_j||_2:
//   L = (1/P) sum_{i<j} ( same_ij ? d_ij^2 : max(0, margin - d_ij)^2 )
// The derivative of d_ij at d_ij = 0 is taken as 0. N = 1 has no pair: L = 0.
class ContrastiveLoss : public Loss {
 public:
  // margin > 0 and finite, else InvalidArgument.
  explicit ContrastiveLoss(float margin = 1.0f);
  const char* type() const override { return "contrastive"; }
  void check(const Shape& pred, const Shape& target) const override;
  double forward_backward(const Tensor& pred, const Tensor& target, Tensor* dpred) override;
  float margin() const { return margin_; }

 private:
  float margin_;
  std::vector<double> coef_;  // planned (N, N): dL/d(d_ij) folded into a factor of (p_i - p_j)
  std::vector<double> grad_;  // planned (N, D)
};

// How TripletLoss picks its triplets (anchor a, positive p with the same label, p != a, negative
// n with another label), with D the distance and hinge(x) = max(0, x):
//   batch_hard (Hermans, Beyer and Leibe 2017): per anchor the farthest positive and the closest
//     negative, loss hinge(margin + D_ap* - D_an*), mean over the anchors that have at least one
//     positive and one negative;
//   semi_hard (Schroff, Kalenichenko and Philbin 2015, FaceNet): per (anchor, positive) pair the
//     closest negative with D_ap < D_an < D_ap + margin, or the closest negative of all when no
//     negative is semi-hard, loss hinge(margin + D_ap - D_an), mean over the (anchor, positive)
//     pairs whose anchor has at least one negative;
//   all ("batch all"): every triplet, loss hinge(margin + D_ap - D_an), mean over the triplets
//     whose loss is > 0.
enum class Mining { batch_hard, semi_hard, all };

// Triplet loss on Euclidean distances D_ij = ||p_i - p_j||_2 or, with `squared`, D_ij = d_ij^2
// (FaceNet's choice). The derivative of d_ij at d_ij = 0 is taken as 0.
class TripletLoss : public Loss {
 public:
  // margin >= 0 and finite, else InvalidArgument.
  explicit TripletLoss(float margin = 0.2f, Mining mining = Mining::batch_hard,
                       bool squared = false);
  const char* type() const override { return "triplet"; }
  void check(const Shape& pred, const Shape& target) const override;
  double forward_backward(const Tensor& pred, const Tensor& target, Tensor* dpred) override;
  float margin() const { return margin_; }
  Mining mining() const { return mining_; }
  bool squared() const { return squared_; }

 private:
  float margin_;
  Mining mining_;
  bool squared_;
  std::vector<double> dist_;  // planned (N, N): D_ij
  std::vector<double> coef_;  // planned (N, N): dL/dD_ij, symmetrised
  std::vector<double> grad_;  // planned (N, D)
};

// NT-Xent, the normalised temperature-scaled cross-entropy of SimCLR (Chen et al. 2020). pred
// holds 2M rows in which rows i and i + M are two views of the same image; the target's values
// are ignored (its shape must still be (N) or (N, 1), e.g. all zero). With
// u_i = p_i / max(||p_i||, 1e-12) and s_ij = <u_i, u_j> / temperature,
//   l_i = -log( exp(s_{i,k}) / sum_{j != i} exp(s_ij) ),   k = (i + M) mod 2M
//   L   = (1/2M) sum_i l_i
// computed with a stable log-sum-exp. An odd batch throws ShapeError; 2M = 2 gives L = 0.
class NTXentLoss : public Loss {
 public:
  // temperature > 0 and finite, else InvalidArgument.
  explicit NTXentLoss(float temperature = 0.5f);
  const char* type() const override { return "ntxent"; }
  void check(const Shape& pred, const Shape& target) const override;
  double forward_backward(const Tensor& pred, const Tensor& target, Tensor* dpred) override;
  float temperature() const { return temperature_; }

 private:
  float temperature_;
  std::vector<double> unit_;  // planned (N, D): u
  std::vector<double> norm_;  // planned (N): max(||p_i||, eps)
  std::vector<double> sim_;   // planned (N, N): s, then dL/ds
  std::vector<double> grad_;  // planned (N, D): dL/du
};

// Supervised contrastive loss (Khosla et al. 2020, L_out): NT-Xent with labels, every other row
// of the same class a positive. With u and s as for NTXentLoss and P(i) = { p != i : y_p = y_i },
//   l_i = -(1/|P(i)|) sum_{p in P(i)} log( exp(s_ip) / sum_{j != i} exp(s_ij) )
//   L   = (1/A) sum_{i : P(i) nonempty} l_i,   A = the number of such anchors
// Rows without a positive are still negatives of the others. No anchor with a positive: L = 0.
// Targets are class labels as for TripletLoss.
class SupConLoss : public Loss {
 public:
  // temperature > 0 and finite, else InvalidArgument.
  explicit SupConLoss(float temperature = 0.1f);
  const char* type() const override { return "supcon"; }
  void check(const Shape& pred, const Shape& target) const override;
  double forward_backward(const Tensor& pred, const Tensor& target, Tensor* dpred) override;
  float temperature() const { return temperature_; }

 private:
  float temperature_;
  std::vector<double> unit_;  // planned (N, D): u
  std::vector<double> norm_;  // planned (N): ||p_i||
  std::vector<double> sim_;   // planned (N, N): s, then dL/ds
  std::vector<double> grad_;  // planned (N, D): dL/du
};

}  // namespace imgsim::nn
