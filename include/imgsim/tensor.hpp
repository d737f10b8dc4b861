// Shape and Tensor: dense float32 arrays, row-major, NCHW for images.
//
// A Tensor either owns 64-byte aligned storage or is a non-owning view of someone else's.
// Tensors are move-only; clone() makes a deep copy. resize() keeps the storage when it is large
// enough, so buffers planned once for the largest batch are reused for smaller ones without
// allocating (see docs/design.md, "Memory").
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>

namespace imgsim {

class Shape {
 public:
  static constexpr int kMaxRank = 6;

  Shape() = default;
  Shape(std::initializer_list<int64_t> dims);

  int rank() const { return rank_; }
  int64_t operator[](int i) const { return dims_[i]; }
  int64_t& operator[](int i) { return dims_[i]; }
  const int64_t* begin() const { return dims_; }
  const int64_t* end() const { return dims_ + rank_; }
  // Product of all dimensions (1 for rank 0).
  int64_t numel() const;
  // Product of all dimensions but the first: the size of one sample of a batch.
  int64_t sample_numel() const;
  // (n, dims...): this shape with a leading batch dimension.
  Shape with_batch(int64_t n) const;
  // This shape without its leading dimension.
  Shape without_batch() const;
  // "(32, 3, 224, 224)"
  std::string str() const;

  friend bool operator==(const Shape& a, const Shape& b);
  friend bool operator!=(const Shape& a, const Shape& b) { return !(a == b); }

 private:
  int rank_ = 0;
  int64_t dims_[kMaxRank] = {};
};

class Tensor {
 public:
  static constexpr std::size_t kAlignment = 64;

  Tensor() = default;
  // Owning tensor, zero-filled. Throws ShapeError on negative dimensions.
  explicit Tensor(const Shape& shape);
  Tensor(const Shape& shape, float fill);
  // Non-owning view of `numel` floats at `data`. The caller keeps the storage alive.
  static Tensor view(float* data, const Shape& shape);

  Tensor(const Tensor&) = delete;
  Tensor& operator=(const Tensor&) = delete;
  Tensor(Tensor&& other) noexcept;
  Tensor& operator=(Tensor&& other) noexcept;
  ~Tensor();

  Tensor clone() const;

  const Shape& shape() const { return shape_; }
  int rank() const { return shape_.rank(); }
  int64_t dim(int i) const { return shape_[i]; }
  int64_t numel() const { return numel_; }
  bool empty() const { return numel_ == 0; }
  bool owns_data() const { return owns_; }
  // Number of floats the storage can hold without reallocating.
  int64_t capacity() const { return capacity_; }

  float* data() { return data_; }
  const float* data() const { return data_; }
  float& operator[](int64_t i) { return data_[i]; }
  float operator[](int64_t i) const { return data_[i]; }
  // Element (n, c, h, w) of a rank-4 tensor; no bounds check.
  float& at(int64_t n, int64_t c, int64_t h, int64_t w) {
    return data_[((n * shape_[1] + c) * shape_[2] + h) * shape_[3] + w];
  }
  float at(int64_t n, int64_t c, int64_t h, int64_t w) const {
    return data_[((n * shape_[1] + c) * shape_[2] + h) * shape_[3] + w];
  }

  // Changes the shape. Keeps the storage if it holds enough floats, otherwise allocates
  // (contents are then zero). A view cannot grow: throws ShapeError.
  void resize(const Shape& shape);
  // Changes the shape keeping the element count; throws ShapeError if it differs.
  void reshape(const Shape& shape);
  void fill(float value);
  void zero() { fill(0.0f); }
  // View of samples [begin, end) along the first dimension.
  Tensor slice(int64_t begin, int64_t end);
  // Copies `src` into this tensor (same element count required; shape taken from src).
  void copy_from(const Tensor& src);

  // Number of storage allocations made by all tensors of this process so far. Tests use it to
  // check that training steps do not allocate once buffers are planned.
  static int64_t allocation_count();

 private:
  void release();

  Shape shape_;
  float* data_ = nullptr;
  int64_t numel_ = 0;
  int64_t capacity_ = 0;
  bool owns_ = false;
};

}  // namespace imgsim
