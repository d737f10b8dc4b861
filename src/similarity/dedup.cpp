// Near-duplicate grouping: top-k search per stored vector, links above the threshold,
// union-find, then a deterministic description of each component (docs/similarity.md).
#include "imgsim/similarity/dedup.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <unordered_map>

#include "imgsim/error.hpp"

namespace imgsim::similarity {

namespace {

struct UnionFind {
  std::vector<int64_t> parent, size;
  explicit UnionFind(int64_t n)
      : parent(static_cast<std::size_t>(n)), size(static_cast<std::size_t>(n), 1) {
    std::iota(parent.begin(), parent.end(), int64_t{0});
  }
  int64_t find(int64_t x) {
    while (parent[static_cast<std::size_t>(x)] != x) {
      auto& p = parent[static_cast<std::size_t>(x)];
      p = parent[static_cast<std::size_t>(p)];  // path halving
      x = p;
    }
    return x;
  }
  void unite(int64_t a, int64_t b) {
    a = find(a);
    b = find(b);
    if (a == b) return;
    if (size[static_cast<std::size_t>(a)] < size[static_cast<std::size_t>(b)]) std::swap(a, b);
    parent[static_cast<std::size_t>(b)] = a;
    size[static_cast<std::size_t>(a)] += size[static_cast<std::size_t>(b)];
  }
};

float dot(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i) s += static_cast<double>(a[i]) * b[i];
  return static_cast<float>(s);
}

}  // namespace

std::vector<DuplicateGroup> find_duplicate_groups(const Index& index, const DedupOptions& options) {
  if (options.k < 1) throw InvalidArgument("find_duplicate_groups: k must be >= 1");
  if (options.query_batch < 1)
    throw InvalidArgument("find_duplicate_groups: query_batch must be >= 1");
  if (!std::isfinite(options.threshold))
    throw InvalidArgument("find_duplicate_groups: the threshold must be finite");

  std::vector<int64_t> ids = index.ids();
  std::sort(ids.begin(), ids.end());
  const auto n = static_cast<int64_t>(ids.size());
  std::unordered_map<int64_t, int64_t> pos;
  pos.reserve(ids.size());
  for (int64_t i = 0; i < n; ++i) pos[ids[static_cast<std::size_t>(i)]] = i;

  const int64_t dim = index.dim();
  const int64_t k = std::min(options.k + 1, std::max<int64_t>(n, 1));
  // Links keyed by (a, b) positions, a < b; the higher score if found from both ends.
  std::vector<ScoredPair> links;
  std::vector<float> queries;
  for (int64_t q0 = 0; q0 < n; q0 += options.query_batch) {
    const int64_t q1 = std::min(n, q0 + options.query_batch);
    queries.resize(static_cast<std::size_t>((q1 - q0) * dim));
    for (int64_t i = q0; i < q1; ++i) {
      const std::vector<float> v = index.reconstruct(ids[static_cast<std::size_t>(i)]);
      std::copy(v.begin(), v.end(), queries.begin() + (i - q0) * dim);
    }
    const SearchResult r = index.search(q1 - q0, queries.data(), k);
    for (int64_t i = q0; i < q1; ++i) {
      for (int64_t j = 0; j < k; ++j) {
        const int64_t other = r.id(i - q0, j);
        if (other < 0 || other == ids[static_cast<std::size_t>(i)]) continue;
        const float s = r.score(i - q0, j);
        if (!(s >= options.threshold)) continue;
        const int64_t a = std::min(i, pos.at(other)), b = std::max(i, pos.at(other));
        links.push_back({a, b, s});
      }
    }
    if (options.progress) options.progress(q1, n);
  }
  std::sort(links.begin(), links.end(), [](const ScoredPair& x, const ScoredPair& y) {
    return x.a != y.a ? x.a < y.a : x.b != y.b ? x.b < y.b : x.score > y.score;
  });
  links.erase(std::unique(links.begin(), links.end(),
                          [](const ScoredPair& x, const ScoredPair& y) {
                            return x.a == y.a && x.b == y.b;
                          }),
              links.end());

  UnionFind uf(n);
  for (const ScoredPair& p : links) uf.unite(p.a, p.b);

  // Components with two or more members, members in increasing id order.
  std::unordered_map<int64_t, std::size_t> comp_of_root;
  std::vector<std::vector<int64_t>> comps;  // positions
  for (int64_t i = 0; i < n; ++i) {
    const int64_t root = uf.find(i);
    if (uf.size[static_cast<std::size_t>(root)] < 2) continue;
    auto [it, inserted] = comp_of_root.try_emplace(root, comps.size());
    if (inserted) comps.emplace_back();
    comps[it->second].push_back(i);
  }
  std::vector<std::vector<ScoredPair>> comp_links(comps.size());
  std::vector<double> strength(static_cast<std::size_t>(n), 0.0);
  for (const ScoredPair& p : links) {
    comp_links[comp_of_root.at(uf.find(p.a))].push_back(p);
    strength[static_cast<std::size_t>(p.a)] += p.score;
    strength[static_cast<std::size_t>(p.b)] += p.score;
  }

  std::vector<DuplicateGroup> groups;
  groups.reserve(comps.size());
  for (std::size_t c = 0; c < comps.size(); ++c) {
    const std::vector<int64_t>& m = comps[c];
    int64_t rep = m.front();
    for (int64_t p : m)
      if (strength[static_cast<std::size_t>(p)] > strength[static_cast<std::size_t>(rep)]) rep = p;
    const std::vector<float> rv = index.reconstruct(ids[static_cast<std::size_t>(rep)]);
    std::vector<std::pair<float, int64_t>> scored;  // (score vs rep, id)
    scored.reserve(m.size());
    for (int64_t p : m) {
      const int64_t id = ids[static_cast<std::size_t>(p)];
      scored.emplace_back(dot(index.reconstruct(id), rv), id);
    }
    const int64_t rep_id = ids[static_cast<std::size_t>(rep)];
    std::sort(scored.begin(), scored.end(), [&](const auto& x, const auto& y) {
      if ((x.second == rep_id) != (y.second == rep_id)) return x.second == rep_id;
      return x.first != y.first ? x.first > y.first : x.second < y.second;
    });
    DuplicateGroup g;
    g.representative = rep_id;
    for (const auto& [s, id] : scored) {
      g.members.push_back(id);
      g.scores.push_back(s);
    }
    for (const ScoredPair& p : comp_links[c])
      g.pairs.push_back(
          {ids[static_cast<std::size_t>(p.a)], ids[static_cast<std::size_t>(p.b)], p.score});
    groups.push_back(std::move(g));
  }
  std::sort(groups.begin(), groups.end(), [](const DuplicateGroup& x, const DuplicateGroup& y) {
    if (x.members.size() != y.members.size()) return x.members.size() > y.members.size();
    return *std::min_element(x.members.begin(), x.members.end()) <
           *std::min_element(y.members.begin(), y.members.end());
  });
  return groups;
}

std::vector<DuplicateGroup> find_duplicate_groups(int64_t n, int64_t dim, const float* vectors,
                                                  const int64_t* ids, const DedupOptions& options) {
  FlatIndex index(dim, Metric::cosine);
  index.add(n, vectors, ids);
  return find_duplicate_groups(index, options);
}

}  // namespace imgsim::similarity
