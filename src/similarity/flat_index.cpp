// FlatIndex: exact top-k by inner product.
//
// Search plan (do_search). The queries are cut into super-blocks of `sb` queries and the database
// into `n_chunks` chunks of rows; every (super-block, chunk) pair is one task on the thread pool,
// with its own bounded heap of k candidates per query. Inside a task:
//
//   for each database block of bb rows (~64 KiB: stays in L2)
//     for each query block of qb queries (~8 KiB: stays in L1)
//       ip_tile: scores[qb x bb] with the SIMD register tiles (kernels/distance.hpp)
//       per query: 8 scores at a time against the heap's threshold; the few that pass go into
//       the heap
//
// so each database row is read from memory once per super-block, and a batch of queries costs
// far less per query than one query alone (which is bound by memory bandwidth). At the end the
// per-chunk heaps of each query are merged. The order is total: higher score first, equal scores
// by smaller id. Scores do not depend on the blocking (distance.hpp), so neither the plan, the
// thread count nor the batching changes a result.
//
// Half-size prefilter (search_half, up to kHalfMaxQueries queries: memory-bound). Row j is also
// stored as h_j = binary16(x_j) with a bound b_j such that for every query q
//   |s_j - a_j| <= |q| b_j,   s_j = the float kernel's <q, x_j>,  a_j = the f16 kernel's <q, h_j>
// namely b_j = |x_j - h_j| + gamma (|x_j| + |h_j|), with gamma = (2d + 8) 2^-24 covering the
// rounding of both sums (any order: |fl(sum) - sum| <= d u sum|terms|) and of the bound arithmetic,
// rounded up. A row is a candidate if a_j + |q| b_j >= tau, where tau is the k-th largest lower
// bound a_i - |q| b_i seen in its chunk; the k rows achieving tau have s_i >= tau, so no row
// outside the candidates can be in the top k. Candidates are rescored with dot(), which equals
// ip_tile bit for bit, so the result is the one search_exact gives. Rows whose binary16 copy
// would overflow (|x| > 65504) get b_j = +inf: always candidates.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <new>
#include <string>
#include <utility>

#include "imgsim/error.hpp"
#include "imgsim/runtime/cpu.hpp"
#include "imgsim/similarity/index.hpp"
#include "kernels/distance.hpp"
#include "kernels/thread_pool.hpp"
#include "similarity/topk.hpp"

namespace imgsim::similarity {

namespace {

constexpr int64_t kHalfMaxQueries = 4;

void* aligned(std::size_t bytes) {
  bytes = (bytes + 63) / 64 * 64;
  if (bytes == 0) bytes = 64;
  void* p = std::aligned_alloc(64, bytes);
  if (!p) throw std::bad_alloc();
  return p;
}

// The smallest float >= v (v >= 0, finite or +inf).
float round_up(double v) {
  float f = static_cast<float>(v);
  if (static_cast<double>(f) < v) f = std::nextafter(f, std::numeric_limits<float>::infinity());
  return f;
}

// Converts one row to binary16 and returns its error bound (see the top of the file).
float half_row(const float* x, int64_t d, uint16_t* h) {
  double e2 = 0.0, x2 = 0.0, h2 = 0.0;
  bool finite = true;
  for (int64_t t = 0; t < d; ++t) {
    h[t] = kernels::f32_to_f16(x[t]);
    const double hv = kernels::f16_to_f32(h[t]);
    if (!std::isfinite(hv)) finite = false;
    e2 += (x[t] - hv) * (x[t] - hv);
    x2 += static_cast<double>(x[t]) * x[t];
    h2 += hv * hv;
  }
  if (!finite) {
    std::fill(h, h + d, uint16_t{0});
    return std::numeric_limits<float>::infinity();
  }
  const double gamma = static_cast<double>(2 * d + 8) * 0x1p-24;
  return round_up((std::sqrt(e2) + gamma * (std::sqrt(x2) + std::sqrt(h2))) * (1.0 + 0x1p-20));
}

// A min-heap of the k largest floats seen: its top is the k-th largest.
class KthLargest {
 public:
  explicit KthLargest(int64_t k) : k_(static_cast<std::size_t>(k)) { v_.reserve(k_); }
  float value() const {
    return v_.size() < k_ || v_.empty() ? -std::numeric_limits<float>::infinity() : v_.front();
  }
  void push(float x) {
    if (k_ == 0) return;
    if (v_.size() < k_) {
      v_.push_back(x);
      std::push_heap(v_.begin(), v_.end(), std::greater<float>());
    } else if (x > v_.front()) {
      std::pop_heap(v_.begin(), v_.end(), std::greater<float>());
      v_.back() = x;
      std::push_heap(v_.begin(), v_.end(), std::greater<float>());
    }
  }

 private:
  std::size_t k_;
  std::vector<float> v_;
};

}  // namespace

FlatIndex::FlatIndex(int64_t dim, Metric metric, bool half_prefilter)
    : Index(dim, metric), half_prefilter_(half_prefilter) {}

void FlatIndex::release() noexcept {
  std::free(data_);
  std::free(half_);
  std::free(bound_);
  data_ = nullptr;
  half_ = nullptr;
  bound_ = nullptr;
  capacity_ = 0;
}

FlatIndex::~FlatIndex() {
  release();
}

FlatIndex::FlatIndex(FlatIndex&& o) noexcept
    : Index(std::move(o)),
      half_prefilter_(o.half_prefilter_),
      data_(std::exchange(o.data_, nullptr)),
      half_(std::exchange(o.half_, nullptr)),
      bound_(std::exchange(o.bound_, nullptr)),
      capacity_(std::exchange(o.capacity_, 0)),
      ids_(std::move(o.ids_)),
      row_of_(std::move(o.row_of_)) {}

FlatIndex& FlatIndex::operator=(FlatIndex&& o) noexcept {
  if (this != &o) {
    Index::operator=(std::move(o));
    release();
    half_prefilter_ = o.half_prefilter_;
    data_ = std::exchange(o.data_, nullptr);
    half_ = std::exchange(o.half_, nullptr);
    bound_ = std::exchange(o.bound_, nullptr);
    capacity_ = std::exchange(o.capacity_, 0);
    ids_ = std::move(o.ids_);
    row_of_ = std::move(o.row_of_);
  }
  return *this;
}

void FlatIndex::replace_with(Index&& other) noexcept {
  *this = std::move(static_cast<FlatIndex&>(other));
}

void FlatIndex::grow(int64_t rows) {
  if (rows <= capacity_) return;
  int64_t cap = capacity_ + capacity_ / 2;
  if (cap < rows) cap = rows;
  if (cap < 64) cap = 64;
  const auto d = static_cast<std::size_t>(dim());
  const auto ucap = static_cast<std::size_t>(cap), used = static_cast<std::size_t>(size());
  auto* p = static_cast<float*>(aligned(ucap * d * sizeof(float)));
  uint16_t* h = nullptr;
  float* b = nullptr;
  if (half_prefilter_) {
    try {
      h = static_cast<uint16_t*>(aligned(ucap * d * sizeof(uint16_t)));
      b = static_cast<float*>(aligned(ucap * sizeof(float)));
    } catch (...) {
      std::free(p);
      std::free(h);
      throw;
    }
  }
  if (used > 0) {
    std::memcpy(p, data_, used * d * sizeof(float));
    if (half_prefilter_) {
      std::memcpy(h, half_, used * d * sizeof(uint16_t));
      std::memcpy(b, bound_, used * sizeof(float));
    }
  }
  release();
  data_ = p;
  half_ = h;
  bound_ = b;
  capacity_ = cap;
}

void FlatIndex::do_add(int64_t n, const float* vectors, const int64_t* ids) {
  const int64_t old = size(), d = dim();
  // Allocation first: an exception leaves the index as it was (a larger buffer is harmless).
  ids_.reserve(static_cast<std::size_t>(old + n));
  row_of_.reserve(static_cast<std::size_t>(old + n));
  grow(old + n);
  try {
    for (int64_t i = 0; i < n; ++i) row_of_.emplace(ids[i], old + i);  // nodes may throw
  } catch (...) {
    for (int64_t i = 0; i < n; ++i) {
      const auto it = row_of_.find(ids[i]);
      if (it != row_of_.end() && it->second >= old) row_of_.erase(it);
    }
    throw;
  }
  std::memcpy(data_ + old * d, vectors, static_cast<std::size_t>(n * d) * sizeof(float));
  if (half_prefilter_) {
    kernels::parallel_for((n + 1023) / 1024, [&](int64_t b) {
      for (int64_t i = b * 1024; i < std::min(n, (b + 1) * 1024); ++i)
        bound_[old + i] = half_row(vectors + i * d, d, half_ + (old + i) * d);
    });
  }
  ids_.insert(ids_.end(), ids, ids + n);
}

void FlatIndex::do_remove(int64_t n, const int64_t* ids) {
  const int64_t d = dim();
  for (int64_t i = 0; i < n; ++i) {
    const auto it = row_of_.find(ids[i]);
    const int64_t row = it->second, last = size() - 1;
    if (row != last) {
      std::memcpy(data_ + row * d, data_ + last * d, static_cast<std::size_t>(d) * sizeof(float));
      if (half_prefilter_) {
        std::memcpy(half_ + row * d, half_ + last * d,
                    static_cast<std::size_t>(d) * sizeof(uint16_t));
        bound_[row] = bound_[last];
      }
      ids_[static_cast<std::size_t>(row)] = ids_[static_cast<std::size_t>(last)];
      row_of_[ids_[static_cast<std::size_t>(row)]] = row;
    }
    ids_.pop_back();
    row_of_.erase(it);
  }
}

std::vector<float> FlatIndex::reconstruct(int64_t id) const {
  const auto it = row_of_.find(id);
  if (it == row_of_.end())
    throw InvalidArgument("reconstruct: id " + std::to_string(id) + " is not in the index");
  const float* r = data_ + it->second * dim();
  return std::vector<float>(r, r + dim());
}

void FlatIndex::do_search(int64_t nq, const float* queries, int64_t k, float* out_scores,
                          int64_t* out_ids) const {
  if (size() == 0) {
    detail::pad(nq * k, out_scores, out_ids);
    return;
  }
  // Without F16C (Isa::scalar) converting binary16 in software costs more than it saves.
  if (half_prefilter_ && nq <= kHalfMaxQueries && kernels::distance_kernels().isa != Isa::scalar) {
    // |q| rounded up; a zero query (inner-product metric) has no useful bound: exact path.
    std::vector<float> qnorm(static_cast<std::size_t>(nq));
    bool usable = true;
    for (int64_t i = 0; i < nq; ++i) {
      double s = 0.0;
      for (int64_t t = 0; t < dim(); ++t)
        s += static_cast<double>(queries[i * dim() + t]) * queries[i * dim() + t];
      qnorm[static_cast<std::size_t>(i)] = round_up(std::sqrt(s) * (1.0 + 0x1p-20));
      usable = usable && s > 0.0 && std::isfinite(qnorm[static_cast<std::size_t>(i)]);
    }
    if (usable) {
      search_half(nq, queries, qnorm.data(), k, out_scores, out_ids);
      return;
    }
  }
  search_exact(nq, queries, k, out_scores, out_ids);
}

void FlatIndex::search_exact(int64_t nq, const float* queries, int64_t k, float* out_scores,
                             int64_t* out_ids) const {
  const int64_t n = size(), d = dim();
  const kernels::DistanceKernels& kern = kernels::distance_kernels();
  const detail::SearchPlan plan = detail::plan_search(nq, n, d, k, num_threads());
  const int64_t kk = std::min(k, n);  // heap capacity of one (query, chunk)
  const int64_t items = plan.n_super * plan.n_chunks;

  // Candidates: for item (s, c), query i of super-block s: kk slots + a count.
  std::vector<detail::Candidate> cands(static_cast<std::size_t>(plan.n_chunks * nq * kk));
  std::vector<int64_t> counts(static_cast<std::size_t>(plan.n_chunks * nq));
  auto slot = [&](int64_t c, int64_t q) { return static_cast<std::size_t>(c * nq + q); };

  kernels::parallel_for(items, [&](int64_t item) {
    const int64_t s = item / plan.n_chunks, c = item % plan.n_chunks;
    const int64_t q_begin = s * plan.sb, q_end = std::min(nq, q_begin + plan.sb);
    const int64_t r_begin = n * c / plan.n_chunks, r_end = n * (c + 1) / plan.n_chunks;
    std::vector<float> buf(static_cast<std::size_t>(plan.qb * plan.bb));
    std::vector<detail::TopK> heaps;
    heaps.reserve(static_cast<std::size_t>(q_end - q_begin));
    for (int64_t q = q_begin; q < q_end; ++q)
      heaps.emplace_back(&cands[slot(c, q) * static_cast<std::size_t>(kk)], kk);
    for (int64_t r0 = r_begin; r0 < r_end; r0 += plan.bb) {
      const int64_t nb = std::min(plan.bb, r_end - r0);
      for (int64_t q0 = q_begin; q0 < q_end; q0 += plan.qb) {
        const int64_t nqb = std::min(plan.qb, q_end - q0);
        kern.ip_tile(queries + q0 * d, nqb, d, data_ + r0 * d, nb, d, d, buf.data(), plan.bb);
        for (int64_t i = 0; i < nqb; ++i)
          heaps[static_cast<std::size_t>(q0 - q_begin + i)].scan(buf.data() + i * plan.bb, nb,
                                                                 ids_.data() + r0);
      }
    }
    for (int64_t q = q_begin; q < q_end; ++q)
      counts[slot(c, q)] = heaps[static_cast<std::size_t>(q - q_begin)].size();
  });
  detail::merge_chunks(nq, k, kk, plan.n_chunks, cands, counts, out_scores, out_ids);
}

void FlatIndex::search_half(int64_t nq, const float* queries, const float* qnorm, int64_t k,
                            float* out_scores, int64_t* out_ids) const {
  const int64_t n = size(), d = dim();
  const kernels::DistanceKernels& kern = kernels::distance_kernels();
  const detail::SearchPlan plan = detail::plan_search(nq, n, d, k, num_threads());
  const int64_t bb = plan.bb, kk = std::min(k, n);
  std::vector<detail::Candidate> cands(static_cast<std::size_t>(plan.n_chunks * nq * kk));
  std::vector<int64_t> counts(static_cast<std::size_t>(plan.n_chunks * nq));
  auto slot = [&](int64_t c, int64_t q) { return static_cast<std::size_t>(c * nq + q); };

  // One task per (query, chunk): pass 1 over the binary16 rows, pass 2 rescores the candidates.
  kernels::parallel_for(nq * plan.n_chunks, [&](int64_t item) {
    const int64_t q = item / plan.n_chunks, c = item % plan.n_chunks;
    const int64_t r_begin = n * c / plan.n_chunks, r_end = n * (c + 1) / plan.n_chunks;
    const float* qv = queries + q * d;
    const float w = qnorm[q];
    std::vector<float> a(static_cast<std::size_t>(bb)), lo(a.size()), hi(a.size());
    KthLargest tau(std::min(kk, r_end - r_begin));
    std::vector<std::pair<float, int64_t>> cand;  // (upper bound, row)
    for (int64_t r0 = r_begin; r0 < r_end; r0 += bb) {
      const int64_t nb = std::min(bb, r_end - r0);
      kern.ip_f16(qv, half_ + r0 * d, nb, d, d, a.data());
      const float* b = bound_ + r0;
      for (int64_t j = 0; j < nb; ++j) {  // vectorised
        const float wb = w * b[j];
        lo[static_cast<std::size_t>(j)] = a[static_cast<std::size_t>(j)] - wb;
        hi[static_cast<std::size_t>(j)] = a[static_cast<std::size_t>(j)] + wb;
      }
      float t = tau.value();
      for (int64_t j = 0; j < nb; ++j)
        if (lo[static_cast<std::size_t>(j)] > t) {
          tau.push(lo[static_cast<std::size_t>(j)]);
          t = tau.value();
        }
      for (int64_t j0 = 0; j0 < nb; j0 += 8) {
        const int64_t m = std::min<int64_t>(8, nb - j0);
        bool any = false;
        for (int64_t j = 0; j < m; ++j) any |= hi[static_cast<std::size_t>(j0 + j)] >= t;
        if (!any) continue;
        for (int64_t j = 0; j < m; ++j)
          if (hi[static_cast<std::size_t>(j0 + j)] >= t)
            cand.emplace_back(hi[static_cast<std::size_t>(j0 + j)], r0 + j0 + j);
      }
    }
    const float t = tau.value();
    detail::TopK heap(&cands[slot(c, q) * static_cast<std::size_t>(kk)], kk);
    for (const auto& [upper, row] : cand)
      if (upper >= t)
        heap.push(kern.dot(qv, data_ + row * d, d), ids_[static_cast<std::size_t>(row)]);
    counts[slot(c, q)] = heap.size();
  });
  detail::merge_chunks(nq, k, kk, plan.n_chunks, cands, counts, out_scores, out_ids);
}

}  // namespace imgsim::similarity

namespace imgsim::similarity::detail {

void merge_chunks(int64_t nq, int64_t k, int64_t kk, int64_t n_chunks,
                  std::vector<Candidate>& cands, const std::vector<int64_t>& counts, float* scores,
                  int64_t* ids) {
  kernels::parallel_for(nq, [&](int64_t q) {
    std::vector<Candidate> all;
    all.reserve(static_cast<std::size_t>(n_chunks * kk));
    for (int64_t c = 0; c < n_chunks; ++c) {
      const auto s = static_cast<std::size_t>(c * nq + q);
      const Candidate* b = &cands[s * static_cast<std::size_t>(kk)];
      all.insert(all.end(), b, b + counts[s]);
    }
    write_best(all, k, scores + q * k, ids + q * k);
  });
}

}  // namespace imgsim::similarity::detail
