// Near-duplicate grouping: link every pair of vectors whose score reaches a threshold, found
// with the index's top-k search, and report the connected groups (docs/similarity.md,
// "Grouping").
//
//   imgsim::similarity::FlatIndex index(e.dim());
//   index.add(n, embeddings);
//   auto groups = find_duplicate_groups(index, {.threshold = e.threshold(), .k = 10});
//
// Each stored vector is searched for its k nearest others; a pair (a, b) with score >= threshold
// joins a and b (union-find), so groups are the connected components of that graph: linking is
// transitive (a ~ b and b ~ c puts a and c together even if their own score is lower; the member
// scores against the representative show how far a group spreads). A vector with more than k
// others above the threshold may miss some of its links but stays connected through them in
// practice; raise k for large groups of copies. Only groups of two or more are returned.
//
// Deterministic: for a given index and ISA the groups, their order and their contents do not
// depend on the thread count.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "imgsim/similarity/index.hpp"

namespace imgsim::similarity {

struct DedupOptions {
  float threshold = 0.9f;     // a pair is linked when its score is >= threshold
  int64_t k = 10;             // neighbours searched per vector (itself excluded), >= 1
  int64_t query_batch = 256;  // vectors searched per index call
  // Called after each batch of searches with (vectors searched, total); may be empty.
  std::function<void(int64_t done, int64_t total)> progress{};
};

struct ScoredPair {
  int64_t a = 0;  // a < b
  int64_t b = 0;
  float score = 0.0f;
};

struct DuplicateGroup {
  // The member with the largest sum of link scores (ties: the smallest id).
  int64_t representative = 0;
  // Representative first, then by score against it (highest first), ties by smaller id.
  std::vector<int64_t> members;
  // scores[i]: score of members[i] against the representative (inner product of the stored
  // vectors, i.e. cosine under Metric::cosine, accumulated in double); scores[0] is the
  // representative's own (1 under cosine, up to rounding).
  std::vector<float> scores;
  // The links found inside the group (score >= threshold), sorted by (a, b).
  std::vector<ScoredPair> pairs;
};

// Groups of near-duplicates among the vectors of `index`, largest group first, then by smallest
// member id. InvalidArgument for k < 1, query_batch < 1 or a non-finite threshold.
std::vector<DuplicateGroup> find_duplicate_groups(const Index& index,
                                                  const DedupOptions& options = {});

// The same for n vectors of dim floats (row-major) with the given ids (nullptr: 0 .. n-1), in an
// exact cosine index built for the call.
std::vector<DuplicateGroup> find_duplicate_groups(int64_t n, int64_t dim, const float* vectors,
                                                  const int64_t* ids = nullptr,
                                                  const DedupOptions& options = {});

}  // namespace imgsim::similarity
