// Losses. forward_backward() returns the loss averaged over the batch and, when `dpred` is not
// null, ADDS dL/dpred into it (the same "backward adds" rule as layers). docs/losses.md derives
// each gradient.
#pragma once

#include <memory>
#include <string>

#include "imgsim/tensor.hpp"

namespace imgsim::nn {

class Loss {
 public:
  virtual ~Loss() = default;
  virtual const char* type() const = 0;
  // Throws ShapeError if `target` cannot go with `pred` (both with batch dimension).
  virtual void check(const Shape& pred, const Shape& target) const = 0;
  virtual double forward_backward(const Tensor& pred, const Tensor& target, Tensor* dpred) = 0;
};

// mean over all elements of (pred - target)^2, as Keras 'mean_squared_error' and
// torch.nn.MSELoss(reduction='mean').
class MeanSquaredError : public Loss {
 public:
  const char* type() const override { return "mean_squared_error"; }
  void check(const Shape& pred, const Shape& target) const override;
  double forward_backward(const Tensor& pred, const Tensor& target, Tensor* dpred) override;
};

// Softmax cross-entropy on logits (N, K), fused and stable (log-sum-exp). `target` is either
// class indices (N) or (N, 1) stored as floats, or probabilities / one-hot (N, K).
// Optional label smoothing as in torch.nn.CrossEntropyLoss(label_smoothing=...), and an optional
// target margin m (additive margin softmax, CosFace): the loss is taken on z - m t, where t is the
// one-hot target (or the given probabilities), i.e. the true class must win by m. With a
// CosineDense head of scale s, m = s x (the cosine margin).
class SoftmaxCrossEntropy : public Loss {
 public:
  explicit SoftmaxCrossEntropy(float label_smoothing = 0.0f, float target_margin = 0.0f);
  float label_smoothing() const { return smoothing_; }
  float target_margin() const { return margin_; }
  const char* type() const override { return "softmax_cross_entropy"; }
  void check(const Shape& pred, const Shape& target) const override;
  double forward_backward(const Tensor& pred, const Tensor& target, Tensor* dpred) override;

 private:
  float smoothing_;
  float margin_;
};

// Binary cross-entropy, mean over elements. With from_logits (default) pred is a logit and the
// loss is computed stably as max(z,0) - z*t + log(1 + exp(-|z|)) (torch BCEWithLogitsLoss);
// otherwise pred is a probability, clamped to [1e-7, 1 - 1e-7] (Keras).
class BinaryCrossEntropy : public Loss {
 public:
  explicit BinaryCrossEntropy(bool from_logits = true) : from_logits_(from_logits) {}
  const char* type() const override { return "binary_cross_entropy"; }
  void check(const Shape& pred, const Shape& target) const override;
  double forward_backward(const Tensor& pred, const Tensor& target, Tensor* dpred) override;
  bool from_logits() const { return from_logits_; }

 private:
  bool from_logits_;
};

// "mean_squared_error"/"mse", "categorical_crossentropy"/"sparse_categorical_crossentropy"/
// "cross_entropy"/"softmax_cross_entropy" (all on logits: the model must not end in Softmax),
// "binary_crossentropy"/"binary_cross_entropy" (on probabilities, as Keras); throws
// InvalidArgument naming the accepted names.
std::unique_ptr<Loss> make_loss(const std::string& name);

}  // namespace imgsim::nn
