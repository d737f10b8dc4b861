// Datasets feed Sequential::fit and evaluate in batches. A dataset copies the samples named by
// `indices` into caller-provided tensors, which it resizes (no allocation once they are large
// enough), so data can live in memory, be decoded from files or be augmented on the fly.
#pragma once

#include <cstdint>
#include <span>

#include "imgsim/tensor.hpp"

namespace imgsim::data {

class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual int64_t size() const = 0;
  // Shape of one input sample and of one target (no batch dimension).
  virtual Shape input_shape() const = 0;
  virtual Shape target_shape() const = 0;
  // Fills x with (n, input...) and y with (n, target...) for n = indices.size().
  virtual void get(std::span<const int64_t> indices, Tensor& x, Tensor& y) = 0;
};

// Samples are the rows of two tensors (N, ...) and (N, ...), referenced, not copied.
class TensorDataset : public Dataset {
 public:
  // Throws ShapeError if the first dimensions differ.
  TensorDataset(const Tensor& x, const Tensor& y);
  int64_t size() const override;
  Shape input_shape() const override;
  Shape target_shape() const override;
  void get(std::span<const int64_t> indices, Tensor& x, Tensor& y) override;

 private:
  const Tensor* x_;
  const Tensor* y_;
};

}  // namespace imgsim::data
