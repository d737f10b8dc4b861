// P x K batch sampling for metric learning (include/imgsim/data/pk_sampler.hpp).
#include "imgsim/data/pk_sampler.hpp"

#include <algorithm>
#include <map>
#include <string>

#include "imgsim/error.hpp"

namespace imgsim::data {

PKSampledDataset::PKSampledDataset(Dataset& base, std::vector<int> labels, int64_t p, int64_t k,
                                   int64_t batches_per_epoch, uint64_t seed)
    : base_(&base), p_(p), k_(k), batches_(batches_per_epoch), rng_(seed) {
  if (p < 1 || k < 1 || batches_per_epoch < 1)
    throw InvalidArgument("PKSampledDataset: p, k and batches_per_epoch must be >= 1, got " +
                          std::to_string(p) + ", " + std::to_string(k) + ", " +
                          std::to_string(batches_per_epoch));
  if (static_cast<int64_t>(labels.size()) != base.size())
    throw InvalidArgument("PKSampledDataset: " + std::to_string(labels.size()) + " labels for " +
                          std::to_string(base.size()) + " samples");
  std::map<int, std::vector<int64_t>> by_class;  // ordered: deterministic class order
  for (std::size_t i = 0; i < labels.size(); ++i)
    by_class[labels[i]].push_back(static_cast<int64_t>(i));
  for (auto& [label, idx] : by_class)
    if (idx.size() >= 2) classes_.push_back(std::move(idx));
  if (classes_.empty()) throw InvalidArgument("PKSampledDataset: no class has two or more samples");
}

std::vector<int64_t> PKSampledDataset::sample(int64_t n) {
  std::vector<int64_t> out;
  out.reserve(static_cast<std::size_t>(std::max<int64_t>(n, 0)));
  const auto nc = static_cast<int64_t>(classes_.size());
  std::vector<int64_t> order;
  std::size_t next_class = 0;
  while (static_cast<int64_t>(out.size()) < n) {
    if (next_class == order.size()) {
      // A fresh permutation of the classes: without replacement until they run out.
      order.resize(static_cast<std::size_t>(nc));
      for (int64_t c = 0; c < nc; ++c) order[static_cast<std::size_t>(c)] = c;
      for (int64_t i = nc - 1; i > 0; --i)
        std::swap(order[static_cast<std::size_t>(i)],
                  order[rng_.below(static_cast<uint64_t>(i + 1))]);
      next_class = 0;
    }
    const std::vector<int64_t>& members = classes_[static_cast<std::size_t>(order[next_class++])];
    const auto m = static_cast<int64_t>(members.size());
    if (m >= k_) {
      // Partial Fisher-Yates on a copy of the positions: K distinct members.
      picked_.assign(members.begin(), members.end());
      for (int64_t i = 0; i < k_ && static_cast<int64_t>(out.size()) < n; ++i) {
        const int64_t j = i + static_cast<int64_t>(rng_.below(static_cast<uint64_t>(m - i)));
        std::swap(picked_[static_cast<std::size_t>(i)], picked_[static_cast<std::size_t>(j)]);
        out.push_back(picked_[static_cast<std::size_t>(i)]);
      }
    } else {
      for (int64_t i = 0; i < k_ && static_cast<int64_t>(out.size()) < n; ++i)
        out.push_back(members[rng_.below(static_cast<uint64_t>(m))]);
    }
  }
  return out;
}

void PKSampledDataset::get(std::span<const int64_t> indices, Tensor& x, Tensor& y) {
  const std::vector<int64_t> idx = sample(static_cast<int64_t>(indices.size()));
  base_->get(idx, x, y);
}

}  // namespace imgsim::data
