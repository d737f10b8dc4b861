// Retrieval metrics on a labelled set: every item queried against all the others, as in
// Musgrave, Belongie and Lim, "A Metric Learning Reality Check" (ECCV 2020). Definitions in
// docs/similarity.md, "Retrieval metrics".
//
// For a query q with label y, let R = the number of OTHER items labelled y, and rank the other
// n - 1 items by cosine score, highest first (ties: smaller index first); rel(i) = 1 if the
// i-th of them has label y.
//   recall@1 (= precision@1): the mean over queries of rel(1);
//   MAP@R: the mean over queries of (1/R) sum_{i=1..R} P(i) rel(i), with P(i) the precision of
//          the first i results.
// Queries whose label occurs only once (R = 0) are left out of both means and counted.
#pragma once

#include <cstdint>
#include <functional>
#include <span>

namespace imgsim::similarity {

struct RetrievalMetrics {
  double recall_at_1 = 0.0;
  double map_at_r = 0.0;
  int64_t queries = 0;          // queries with R >= 1
  int64_t skipped_queries = 0;  // queries with R = 0
};

struct RetrievalOptions {
  int64_t query_batch = 256;
  // Called after each batch of queries with (done, total); may be empty.
  std::function<void(int64_t done, int64_t total)> progress{};
};

// n embeddings of dim floats (row-major; normalised for the cosine score, zero rows rejected
// with InvalidArgument) with one label each. Exact search (FlatIndex). InvalidArgument for a
// label count other than n, n < 2 or dim < 1.
RetrievalMetrics evaluate_retrieval(int64_t n, int64_t dim, const float* embeddings,
                                    std::span<const int> labels,
                                    const RetrievalOptions& options = {});

}  // namespace imgsim::similarity
