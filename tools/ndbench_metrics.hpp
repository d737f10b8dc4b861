// Near-duplicate benchmark metrics (docs/ndbench.md, "Metrics"), header-only so the unit test
// (tests/test_ndbench_metrics.cpp), the scorer (tools/ndbench_score.cpp) and `imgsim eval --bench`
// (src/cli/cmd_eval.cpp) share them.
//
// Input: scored (query, database item) pairs and, for each query, its true database item or
// none. As in the 2021 Image Similarity Challenge (ISC) every pair of every query goes into one
// global list ranked by score:
//
// * micro average precision: the area under that list's precision-recall curve,
//   sum over thresholds t of (R(t) - R(t_prev)) * P(t), where P(t) and R(t) count the pairs
//   scoring >= t, and recall's denominator is the number of queries that have a true match
//   (pairs never scored count as never found). Pairs with equal scores form one step: the result
//   does not depend on the order of ties (scikit-learn's average_precision_score does the same).
// * recall at 90% precision: the highest R(t) over thresholds t with P(t) >= 0.9 (0 if none).
// * recall@1: over queries with a match, the fraction whose best-scored item is the match; when
//   k items tie for the best score and the match is one of them it counts 1/k (the expected
//   value of a random tie-break).
//
// A (query, item) pair listed more than once keeps its highest score.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <unordered_map>
#include <vector>

namespace imgsim::ndbench {

struct ScoredPair {
  int64_t query = 0;  // 0 .. queries - 1
  int64_t item = 0;   // 0 .. database size - 1
  double score = 0.0;
};

struct Metrics {
  int64_t queries = 0;    // queries evaluated
  int64_t positives = 0;  // of them, queries with a match in the database
  int64_t pairs = 0;      // distinct scored pairs of those queries
  double micro_ap = std::numeric_limits<double>::quiet_NaN();  // NaN when positives == 0
  double recall_at_1 = std::numeric_limits<double>::quiet_NaN();
  double recall_at_p90 = std::numeric_limits<double>::quiet_NaN();
  // Score threshold reaching recall_at_p90 (NaN if precision never reaches 0.9).
  double threshold_at_p90 = std::numeric_limits<double>::quiet_NaN();
};

// `match[q]`: the true item of query q, or -1. `selected`: the queries to evaluate (empty: all).
// Pairs of other queries are ignored. Throws std::invalid_argument for a query or item index out
// of range (items: 0 .. items - 1) or a non-finite score.
inline Metrics evaluate(const std::vector<ScoredPair>& pairs, const std::vector<int64_t>& match,
                        int64_t items, const std::vector<int64_t>& selected = {}) {
  const int64_t nq = static_cast<int64_t>(match.size());
  std::vector<char> in(static_cast<std::size_t>(nq), selected.empty() ? 1 : 0);
  for (const int64_t q : selected) {
    if (q < 0 || q >= nq) throw std::invalid_argument("evaluate: selected query out of range");
    in[static_cast<std::size_t>(q)] = 1;
  }
  Metrics m;
  for (int64_t q = 0; q < nq; ++q) {
    if (!in[static_cast<std::size_t>(q)]) continue;
    ++m.queries;
    const int64_t t = match[static_cast<std::size_t>(q)];
    if (t >= items) throw std::invalid_argument("evaluate: true item out of range");
    if (t >= 0) ++m.positives;
  }

  // Distinct pairs of the selected queries, each with its highest score.
  std::unordered_map<uint64_t, double> best;
  best.reserve(pairs.size());
  for (const ScoredPair& p : pairs) {
    if (p.query < 0 || p.query >= nq) throw std::invalid_argument("evaluate: query out of range");
    if (p.item < 0 || p.item >= items) throw std::invalid_argument("evaluate: item out of range");
    if (!std::isfinite(p.score)) throw std::invalid_argument("evaluate: non-finite score");
    if (!in[static_cast<std::size_t>(p.query)]) continue;
    const uint64_t key = static_cast<uint64_t>(p.query) * static_cast<uint64_t>(items) +
                         static_cast<uint64_t>(p.item);
    auto [it, inserted] = best.emplace(key, p.score);
    if (!inserted) it->second = std::max(it->second, p.score);
  }
  struct Row {
    double score;
    int64_t query;
    bool correct;
  };
  std::vector<Row> rows;
  rows.reserve(best.size());
  for (const auto& [key, score] : best) {
    const int64_t q = static_cast<int64_t>(key / static_cast<uint64_t>(items));
    const int64_t i = static_cast<int64_t>(key % static_cast<uint64_t>(items));
    rows.push_back({score, q, match[static_cast<std::size_t>(q)] == i});
  }
  m.pairs = static_cast<int64_t>(rows.size());
  if (m.positives == 0) return m;

  // Global ranking: precision and recall after each group of equal scores.
  std::sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) { return a.score > b.score; });
  const double npos = static_cast<double>(m.positives);
  double ap = 0.0;
  double recall_p90 = 0.0;
  int64_t tp = 0;
  std::size_t i = 0;
  while (i < rows.size()) {
    std::size_t j = i;
    int64_t group_tp = 0;
    while (j < rows.size() && rows[j].score == rows[i].score) group_tp += rows[j++].correct;
    tp += group_tp;
    const double precision = static_cast<double>(tp) / static_cast<double>(j);
    const double recall = static_cast<double>(tp) / npos;
    ap += static_cast<double>(group_tp) / npos * precision;
    if (precision >= 0.9 && recall >= recall_p90 && group_tp > 0) {
      recall_p90 = recall;
      m.threshold_at_p90 = rows[i].score;
    }
    i = j;
  }
  m.micro_ap = ap;
  m.recall_at_p90 = recall_p90;

  // recall@1: per query, the best score, how many items share it, and whether the match does.
  struct Top {
    double score = -std::numeric_limits<double>::infinity();
    int64_t tied = 0;
    bool match_tied = false;
  };
  std::vector<Top> top(static_cast<std::size_t>(nq));
  for (const Row& r : rows) {
    Top& t = top[static_cast<std::size_t>(r.query)];
    if (r.score > t.score) {
      t = {r.score, 1, r.correct};
    } else if (r.score == t.score) {
      ++t.tied;
      t.match_tied = t.match_tied || r.correct;
    }
  }
  double hits = 0.0;
  for (int64_t q = 0; q < nq; ++q) {
    const Top& t = top[static_cast<std::size_t>(q)];
    if (in[static_cast<std::size_t>(q)] && match[static_cast<std::size_t>(q)] >= 0 && t.match_tied)
      hits += 1.0 / static_cast<double>(t.tied);
  }
  m.recall_at_1 = hits / npos;
  return m;
}

}  // namespace imgsim::ndbench
