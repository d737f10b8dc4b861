// Top-k helpers shared by the indexes: the total order of results, a bounded heap, the search
// plan of FlatIndex. Internal (src/), used by tests.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

namespace imgsim::similarity::detail {

struct Candidate {
  float score;
  int64_t id;
};

// The result order: higher score first, equal scores by smaller id.
inline bool better(float s1, int64_t id1, float s2, int64_t id2) {
  return s1 > s2 || (s1 == s2 && id1 < id2);
}
inline bool better(const Candidate& a, const Candidate& b) {
  return better(a.score, a.id, b.score, b.id);
}

// The k best candidates seen so far, in caller memory: a binary heap with the worst on top.
class TopK {
 public:
  TopK(Candidate* slots, int64_t cap) : h_(slots), cap_(cap) {}
  int64_t size() const { return n_; }
  // Scores below this cannot enter (equal ones may, by id); -inf while not full.
  float threshold() const {
    return n_ < cap_ ? -std::numeric_limits<float>::infinity() : h_[0].score;
  }
  void push(float s, int64_t id) {
    if (n_ < cap_) {
      int64_t i = n_++;
      while (i > 0) {  // sift up: the worse one rises
        const int64_t p = (i - 1) / 2;
        if (!better(h_[p].score, h_[p].id, s, id)) break;
        h_[i] = h_[p];
        i = p;
      }
      h_[i] = {s, id};
    } else if (better(s, id, h_[0].score, h_[0].id)) {
      int64_t i = 0;
      for (;;) {  // sift down from the root
        const int64_t l = 2 * i + 1;
        if (l >= n_) break;
        int64_t w = l;  // the worse child
        if (l + 1 < n_ && better(h_[l], h_[l + 1])) w = l + 1;
        if (!better(s, id, h_[w].score, h_[w].id)) break;
        h_[i] = h_[w];
        i = w;
      }
      h_[i] = {s, id};
    }
  }
  // Offers n scores with their ids. NaN never passes (comparisons with NaN are false). Eight at a
  // time are tested against the threshold with no branch in between (vectorised), so the common
  // case, nothing passes, costs about one compare per score.
  void scan(const float* s, int64_t n, const int64_t* ids) {
    float thr = threshold();
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) {
      const float* p = s + j;
      const bool any = (p[0] >= thr) | (p[1] >= thr) | (p[2] >= thr) | (p[3] >= thr) |
                       (p[4] >= thr) | (p[5] >= thr) | (p[6] >= thr) | (p[7] >= thr);
      if (!any) continue;
      for (int64_t l = 0; l < 8; ++l)
        if (p[l] >= thr) {
          push(p[l], ids[j + l]);
          thr = threshold();
        }
    }
    for (; j < n; ++j)
      if (s[j] >= thr) {
        push(s[j], ids[j]);
        thr = threshold();
      }
  }

 private:
  Candidate* h_;
  int64_t cap_;
  int64_t n_ = 0;
};

// Pads nk results with id -1, score -inf.
inline void pad(int64_t nk, float* scores, int64_t* ids) {
  for (int64_t i = 0; i < nk; ++i) {
    scores[i] = -std::numeric_limits<float>::infinity();
    ids[i] = -1;
  }
}

// Sorts `all` by the result order and writes the first k, padded.
inline void write_best(std::vector<Candidate>& all, int64_t k, float* scores, int64_t* ids) {
  const auto m = std::min<int64_t>(k, static_cast<int64_t>(all.size()));
  std::partial_sort(all.begin(), all.begin() + m, all.end(),
                    [](const Candidate& a, const Candidate& b) { return better(a, b); });
  for (int64_t j = 0; j < m; ++j) {
    scores[j] = all[static_cast<std::size_t>(j)].score;
    ids[j] = all[static_cast<std::size_t>(j)].id;
  }
  pad(k - m, scores + m, ids + m);
}

// Merges, for each of nq queries, the candidates of n_chunks chunks (slot (c, q) holds
// counts[c * nq + q] candidates at cands[(c * nq + q) * kk]) and writes the best k, padded.
void merge_chunks(int64_t nq, int64_t k, int64_t kk, int64_t n_chunks,
                  std::vector<Candidate>& cands, const std::vector<int64_t>& counts, float* scores,
                  int64_t* ids);

// How FlatIndex cuts a search (flat_index.cpp): qb queries x bb rows per kernel call, sb queries
// per super-block, n_super x n_chunks tasks.
struct SearchPlan {
  int64_t qb, bb, sb, n_super, n_chunks;
};

inline SearchPlan plan_search(int64_t nq, int64_t n, int64_t d, int64_t k, int threads) {
  const int64_t row_bytes = d * static_cast<int64_t>(sizeof(float));
  auto clamp = [](int64_t v, int64_t lo, int64_t hi) { return std::max(lo, std::min(v, hi)); };
  SearchPlan p{};
  p.qb = clamp(8192 / row_bytes, 1, 64);
  if (p.qb >= 4) p.qb = p.qb / 4 * 4;
  p.qb = std::min(p.qb, nq);
  p.bb = clamp(65536 / row_bytes, 16, 4096) / 16 * 16;
  p.sb = clamp(262144 / row_bytes, p.qb, 4096) / p.qb * p.qb;
  p.sb = std::min(p.sb, (nq + p.qb - 1) / p.qb * p.qb);
  p.n_super = (nq + p.sb - 1) / p.sb;
  // Enough tasks to balance 4 per thread (the machine may be shared), none smaller than 4 blocks,
  // and no more than 16M candidate slots in all.
  const int64_t want = (4 * static_cast<int64_t>(threads) + p.n_super - 1) / p.n_super;
  const int64_t max_chunks = std::max<int64_t>(1, n / (4 * p.bb));
  const int64_t kk = std::min(k, n);
  const int64_t mem_chunks =
      std::max<int64_t>(1, (int64_t{1} << 24) / std::max<int64_t>(1, nq * kk));
  p.n_chunks = clamp(want, 1, std::min(max_chunks, mem_chunks));
  return p;
}

}  // namespace imgsim::similarity::detail
