#include "imgsim/tensor.hpp"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <new>
#include <sstream>

#include "core/memory.hpp"
#include "imgsim/error.hpp"

namespace imgsim {

Shape::Shape(std::initializer_list<int64_t> dims) {
  if (dims.size() > static_cast<std::size_t>(kMaxRank)) {
    throw ShapeError("Shape: rank " + std::to_string(dims.size()) + " exceeds the maximum " +
                     std::to_string(kMaxRank));
  }
  for (int64_t d : dims) dims_[rank_++] = d;
}

int64_t Shape::numel() const {
  int64_t n = 1;
  for (int i = 0; i < rank_; ++i) n *= dims_[i];
  return n;
}

int64_t Shape::sample_numel() const {
  int64_t n = 1;
  for (int i = 1; i < rank_; ++i) n *= dims_[i];
  return n;
}

Shape Shape::with_batch(int64_t n) const {
  if (rank_ + 1 > kMaxRank) throw ShapeError("Shape::with_batch: rank too large for " + str());
  Shape s;
  s.rank_ = rank_ + 1;
  s.dims_[0] = n;
  for (int i = 0; i < rank_; ++i) s.dims_[i + 1] = dims_[i];
  return s;
}

Shape Shape::without_batch() const {
  if (rank_ == 0) throw ShapeError("Shape::without_batch: shape has rank 0");
  Shape s;
  s.rank_ = rank_ - 1;
  for (int i = 1; i < rank_; ++i) s.dims_[i - 1] = dims_[i];
  return s;
}

std::string Shape::str() const {
  std::ostringstream os;
  os << '(';
  for (int i = 0; i < rank_; ++i) os << (i ? ", " : "") << dims_[i];
  os << ')';
  return os.str();
}

bool operator==(const Shape& a, const Shape& b) {
  if (a.rank_ != b.rank_) return false;
  for (int i = 0; i < a.rank_; ++i)
    if (a.dims_[i] != b.dims_[i]) return false;
  return true;
}

namespace {

std::atomic<int64_t> g_allocations{0};

int64_t checked_numel(const Shape& shape) {
  int64_t n = 1;
  for (int i = 0; i < shape.rank(); ++i) {
    if (shape[i] < 0) throw ShapeError("Tensor: negative dimension in shape " + shape.str());
    if (shape[i] != 0 && n > (int64_t{1} << 40) / shape[i])
      throw ShapeError("Tensor: shape " + shape.str() + " is too large");
    n *= shape[i];
  }
  return n;
}

float* allocate_floats(int64_t n) {
  if (n == 0) return nullptr;
  std::size_t bytes = static_cast<std::size_t>(n) * sizeof(float);
  bytes = (bytes + Tensor::kAlignment - 1) / Tensor::kAlignment * Tensor::kAlignment;
  static_assert(Tensor::kAlignment <= 64);
  void* p = detail::allocate_large(bytes);  // huge pages for large tensors (core/memory.hpp)
  if (!p) throw std::bad_alloc();
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  std::memset(p, 0, bytes);
  return static_cast<float*>(p);
}

}  // namespace

Tensor::Tensor(const Shape& shape) : shape_(shape), numel_(checked_numel(shape)) {
  data_ = allocate_floats(numel_);
  capacity_ = numel_;
  owns_ = true;
}

int64_t Tensor::allocation_count() {
  return g_allocations.load();
}

Tensor::Tensor(const Shape& shape, float value) : Tensor(shape) {
  fill(value);
}

Tensor Tensor::view(float* data, const Shape& shape) {
  Tensor t;
  t.shape_ = shape;
  t.numel_ = checked_numel(shape);
  t.capacity_ = t.numel_;
  t.data_ = data;
  t.owns_ = false;
  return t;
}

Tensor::Tensor(Tensor&& o) noexcept
    : shape_(o.shape_), data_(o.data_), numel_(o.numel_), capacity_(o.capacity_), owns_(o.owns_) {
  o.shape_ = Shape();
  o.data_ = nullptr;
  o.numel_ = o.capacity_ = 0;
  o.owns_ = false;
}

Tensor& Tensor::operator=(Tensor&& o) noexcept {
  if (this != &o) {
    release();
    shape_ = o.shape_;
    data_ = o.data_;
    numel_ = o.numel_;
    capacity_ = o.capacity_;
    owns_ = o.owns_;
    o.shape_ = Shape();
    o.data_ = nullptr;
    o.numel_ = o.capacity_ = 0;
    o.owns_ = false;
  }
  return *this;
}

Tensor::~Tensor() {
  release();
}

void Tensor::release() {
  if (owns_) std::free(data_);
  data_ = nullptr;
  owns_ = false;
}

Tensor Tensor::clone() const {
  Tensor t(shape_);
  if (numel_) std::memcpy(t.data_, data_, static_cast<std::size_t>(numel_) * sizeof(float));
  return t;
}

void Tensor::resize(const Shape& shape) {
  int64_t n = checked_numel(shape);
  if (n > capacity_) {
    if (!owns_ && data_ != nullptr)
      throw ShapeError("Tensor::resize: a view of " + std::to_string(capacity_) +
                       " floats cannot grow to " + shape.str());
    float* p = allocate_floats(n);
    release();
    data_ = p;
    capacity_ = n;
    owns_ = true;
  }
  shape_ = shape;
  numel_ = n;
}

void Tensor::reshape(const Shape& shape) {
  if (checked_numel(shape) != numel_)
    throw ShapeError("Tensor::reshape: cannot reshape " + shape_.str() + " to " + shape.str());
  shape_ = shape;
}

void Tensor::fill(float value) {
  std::fill(data_, data_ + numel_, value);
}

Tensor Tensor::slice(int64_t begin, int64_t end) {
  if (rank() == 0 || begin < 0 || end < begin || end > shape_[0])
    throw ShapeError("Tensor::slice: range [" + std::to_string(begin) + ", " + std::to_string(end) +
                     ") out of shape " + shape_.str());
  Shape s = shape_;
  s[0] = end - begin;
  return view(data_ + begin * shape_.sample_numel(), s);
}

void Tensor::copy_from(const Tensor& src) {
  if (src.numel() != numel_)
    throw ShapeError("Tensor::copy_from: " + src.shape().str() + " into " + shape_.str());
  shape_ = src.shape();
  if (numel_) std::memcpy(data_, src.data(), static_cast<std::size_t>(numel_) * sizeof(float));
}

}  // namespace imgsim
