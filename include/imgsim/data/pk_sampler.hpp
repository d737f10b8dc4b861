// PKSampledDataset: batches of P classes x K samples of each, for metric learning with in-batch
// mining (batch-hard triplets need every anchor to have positives and negatives in its batch;
// Hermans, Beyer and Leibe 2017 use P x K batches).
//
// It wraps a labelled Dataset and ignores the index VALUES it is asked for: get() with n indices
// returns n samples made of ceil(n / K) classes drawn without replacement (with replacement
// only when the batch needs more classes than there are), K samples of each drawn without
// replacement (with replacement for a class smaller than K), truncated to n. So with
// Sequential::fit or a hand-written loop, a batch size of P * K gives P x K batches; size() is
// batches_per_epoch * P * K. Classes with a single sample are never drawn (they have no
// positive). The draws come from a seeded Rng: the same seed and calls give the same batches.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "imgsim/data/dataset.hpp"
#include "imgsim/rng.hpp"

namespace imgsim::data {

class PKSampledDataset : public Dataset {
 public:
  // `labels[i]` is the class of base sample i (labels.size() == base.size()). The base dataset
  // must outlive this one. InvalidArgument for p < 1, k < 1, batches_per_epoch < 1, a label
  // count that differs from base.size() or no class with two samples.
  PKSampledDataset(Dataset& base, std::vector<int> labels, int64_t p, int64_t k,
                   int64_t batches_per_epoch, uint64_t seed = 0);

  int64_t size() const override { return batches_ * p_ * k_; }
  Shape input_shape() const override { return base_->input_shape(); }
  Shape target_shape() const override { return base_->target_shape(); }
  void get(std::span<const int64_t> indices, Tensor& x, Tensor& y) override;

  // The base indices of the next batch of n samples (what get() fetches).
  std::vector<int64_t> sample(int64_t n);
  int64_t p() const { return p_; }
  int64_t k() const { return k_; }
  // Classes that can be drawn (two or more samples).
  int64_t usable_classes() const { return static_cast<int64_t>(classes_.size()); }
  // The generator of the draws, to save and restore its state (training checkpoints).
  Rng& rng() { return rng_; }

 private:
  Dataset* base_;
  int64_t p_, k_, batches_;
  Rng rng_;
  std::vector<std::vector<int64_t>> classes_;  // base indices per usable class
  std::vector<int64_t> picked_;
};

}  // namespace imgsim::data
