// Recall@1 and MAP@R over a labelled set with an exact index (docs/similarity.md).
#include "imgsim/similarity/retrieval.hpp"

#include <algorithm>
#include <string>
#include <unordered_map>
#include <vector>

#include "imgsim/error.hpp"
#include "imgsim/similarity/index.hpp"

namespace imgsim::similarity {

RetrievalMetrics evaluate_retrieval(int64_t n, int64_t dim, const float* embeddings,
                                    std::span<const int> labels, const RetrievalOptions& options) {
  if (n < 2 || dim < 1 || !embeddings)
    throw InvalidArgument("evaluate_retrieval: need at least 2 embeddings of dim >= 1");
  if (static_cast<int64_t>(labels.size()) != n)
    throw InvalidArgument("evaluate_retrieval: " + std::to_string(labels.size()) + " labels for " +
                          std::to_string(n) + " embeddings");
  if (options.query_batch < 1)
    throw InvalidArgument("evaluate_retrieval: query_batch must be >= 1");
  std::unordered_map<int, int64_t> count;
  for (int l : labels) ++count[l];
  int64_t max_r = 0;
  for (const auto& [l, c] : count) max_r = std::max(max_r, c - 1);

  FlatIndex index(dim, Metric::cosine);
  index.add(n, embeddings);  // ids 0 .. n-1
  RetrievalMetrics m;
  if (max_r == 0) {
    m.skipped_queries = n;
    return m;
  }
  const int64_t k = std::min(n, max_r + 1);
  double sum_r1 = 0.0, sum_ap = 0.0;
  for (int64_t q0 = 0; q0 < n; q0 += options.query_batch) {
    const int64_t q1 = std::min(n, q0 + options.query_batch);
    const SearchResult r = index.search(q1 - q0, embeddings + q0 * dim, k);
    for (int64_t q = q0; q < q1; ++q) {
      const int label = labels[static_cast<std::size_t>(q)];
      const int64_t R = count[label] - 1;
      if (R == 0) {
        ++m.skipped_queries;
        continue;
      }
      int64_t rank = 0, hits = 0;
      double ap = 0.0;
      for (int64_t j = 0; j < k && rank < R; ++j) {
        const int64_t id = r.id(q - q0, j);
        if (id < 0 || id == q) continue;
        ++rank;
        if (labels[static_cast<std::size_t>(id)] == label) {
          ++hits;
          ap += static_cast<double>(hits) / static_cast<double>(rank);
          if (rank == 1) sum_r1 += 1.0;
        }
      }
      sum_ap += ap / static_cast<double>(R);
      ++m.queries;
    }
    if (options.progress) options.progress(q1, n);
  }
  if (m.queries > 0) {
    m.recall_at_1 = sum_r1 / static_cast<double>(m.queries);
    m.map_at_r = sum_ap / static_cast<double>(m.queries);
  }
  return m;
}

}  // namespace imgsim::similarity
