#include "imgsim/data/dataset.hpp"

#include <cstring>

#include "imgsim/error.hpp"

namespace imgsim::data {

TensorDataset::TensorDataset(const Tensor& x, const Tensor& y) : x_(&x), y_(&y) {
  if (x.rank() < 1 || y.rank() < 1 || x.dim(0) != y.dim(0))
    throw ShapeError("TensorDataset: inputs " + x.shape().str() + " and targets " +
                     y.shape().str() + " must have the same first dimension");
}

int64_t TensorDataset::size() const {
  return x_->dim(0);
}
Shape TensorDataset::input_shape() const {
  return x_->shape().without_batch();
}
Shape TensorDataset::target_shape() const {
  return y_->shape().without_batch();
}

void TensorDataset::get(std::span<const int64_t> indices, Tensor& x, Tensor& y) {
  const auto n = static_cast<int64_t>(indices.size());
  x.resize(input_shape().with_batch(n));
  y.resize(target_shape().with_batch(n));
  const int64_t xs = x_->shape().sample_numel(), ys = y_->shape().sample_numel();
  for (int64_t i = 0; i < n; ++i) {
    const int64_t k = indices[static_cast<std::size_t>(i)];
    if (k < 0 || k >= size())
      throw InvalidArgument("TensorDataset::get: index " + std::to_string(k) + " out of [0, " +
                            std::to_string(size()) + ")");
    std::memcpy(x.data() + i * xs, x_->data() + k * xs,
                static_cast<std::size_t>(xs) * sizeof(float));
    std::memcpy(y.data() + i * ys, y_->data() + k * ys,
                static_cast<std::size_t>(ys) * sizeof(float));
  }
}

}  // namespace imgsim::data
