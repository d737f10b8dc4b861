// Index: argument checks, id assignment, cosine normalisation and paths, shared by every index
// type; the types implement do_add / do_remove / do_search (flat_index.cpp, hnsw_index.cpp).
#include <cmath>
#include <limits>
#include <string>
#include <unordered_set>
#include <utility>

#include "imgsim/error.hpp"
#include "imgsim/similarity/index.hpp"

namespace imgsim::similarity {

const char* to_string(Metric m) {
  switch (m) {
    case Metric::inner_product:
      return "inner_product";
    case Metric::cosine:
      return "cosine";
  }
  return "?";
}

const char* to_string(IndexType t) {
  switch (t) {
    case IndexType::flat:
      return "flat";
    case IndexType::hnsw:
      return "hnsw";
  }
  return "?";
}

void normalize_rows(int64_t n, int64_t dim, float* rows) {
  if (n < 0 || dim < 1)
    throw InvalidArgument("normalize_rows: need n >= 0 and dim >= 1, got n = " + std::to_string(n) +
                          ", dim = " + std::to_string(dim));
  for (int64_t i = 0; i < n; ++i) {
    float* r = rows + i * dim;
    double ss = 0.0;
    for (int64_t t = 0; t < dim; ++t) ss += static_cast<double>(r[t]) * r[t];
    if (!(ss > 0.0) || !std::isfinite(ss))
      throw InvalidArgument("normalize_rows: row " + std::to_string(i) + " has norm " +
                            std::to_string(std::sqrt(ss)) + "; cannot normalise");
    const double inv = 1.0 / std::sqrt(ss);
    for (int64_t t = 0; t < dim; ++t) r[t] = static_cast<float>(r[t] * inv);
  }
}

namespace {

constexpr int64_t kMaxDim = 65536;

// Throws InvalidArgument naming the first non-finite value of an n x dim block.
void check_finite(const char* fn, const char* what, int64_t n, int64_t dim, const float* x) {
  for (int64_t i = 0; i < n; ++i)
    for (int64_t t = 0; t < dim; ++t)
      if (!std::isfinite(x[i * dim + t]))
        throw InvalidArgument(std::string(fn) + ": " + what + " " + std::to_string(i) +
                              ", component " + std::to_string(t) + " is " +
                              std::to_string(x[i * dim + t]) + " (values must be finite)");
}

}  // namespace

Index::Index(int64_t dim, Metric metric) : dim_(dim), metric_(metric) {
  if (dim < 1 || dim > kMaxDim)
    throw InvalidArgument("Index: dim must be in 1.." + std::to_string(kMaxDim) + ", got " +
                          std::to_string(dim));
  if (metric != Metric::inner_product && metric != Metric::cosine)
    throw InvalidArgument("Index: unknown metric " + std::to_string(static_cast<uint32_t>(metric)));
}

Index::~Index() = default;

std::vector<int64_t> Index::add(int64_t n, const float* vectors, const int64_t* ids) {
  return add(n, vectors, ids, {});
}

std::vector<int64_t> Index::add(int64_t n, const float* vectors, const int64_t* ids,
                                const std::vector<std::string>& paths) {
  if (n < 0) throw InvalidArgument("add: n must be >= 0, got " + std::to_string(n));
  if (!paths.empty() && static_cast<int64_t>(paths.size()) != n)
    throw InvalidArgument("add: " + std::to_string(paths.size()) + " paths for " +
                          std::to_string(n) + " vectors");
  if (n == 0) return {};
  if (!vectors) throw InvalidArgument("add: vectors is null");
  check_finite("add", "row", n, dim_, vectors);

  std::vector<int64_t> out(static_cast<std::size_t>(n));
  int64_t max_id = -1;
  if (ids) {
    std::unordered_set<int64_t> batch;
    batch.reserve(static_cast<std::size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
      const int64_t id = ids[i];
      if (id < 0)
        throw InvalidArgument("add: id " + std::to_string(id) + " (row " + std::to_string(i) +
                              ") is negative; ids must be >= 0");
      if (contains(id))
        throw InvalidArgument("add: id " + std::to_string(id) + " (row " + std::to_string(i) +
                              ") is already in the index");
      if (!batch.insert(id).second)
        throw InvalidArgument("add: id " + std::to_string(id) + " appears twice (again at row " +
                              std::to_string(i) + ")");
      if (id == std::numeric_limits<int64_t>::max())
        throw InvalidArgument("add: id " + std::to_string(id) + " is too large");
      out[static_cast<std::size_t>(i)] = id;
      if (id > max_id) max_id = id;
    }
  } else {
    if (next_id_ > std::numeric_limits<int64_t>::max() - n)
      throw InvalidArgument("add: no more ids to assign after " + std::to_string(next_id_));
    for (int64_t i = 0; i < n; ++i) out[static_cast<std::size_t>(i)] = next_id_ + i;
    max_id = next_id_ + n - 1;
  }

  std::vector<float> normalised;
  const float* src = vectors;
  if (metric_ == Metric::cosine) {
    normalised.assign(vectors, vectors + n * dim_);
    try {
      normalize_rows(n, dim_, normalised.data());
    } catch (const InvalidArgument& e) {
      throw InvalidArgument(std::string("add (cosine index): ") + e.what());
    }
    src = normalised.data();
  }

  // Everything that can fail happens before the index changes: the new paths are built apart and
  // the map is given room for them, so merging them in afterwards cannot throw.
  std::unordered_map<int64_t, std::string> new_paths;
  for (std::size_t i = 0; i < paths.size(); ++i)
    if (!paths[i].empty()) new_paths.emplace(out[i], paths[i]);
  paths_.reserve(paths_.size() + new_paths.size());

  do_add(n, src, out.data());
  next_id_ = max_id + 1 > next_id_ ? max_id + 1 : next_id_;
  paths_.merge(new_paths);
  return out;
}

int64_t Index::remove(int64_t n, const int64_t* ids) {
  if (n < 0) throw InvalidArgument("remove: n must be >= 0, got " + std::to_string(n));
  if (n == 0) return 0;
  if (!ids) throw InvalidArgument("remove: ids is null");
  std::vector<int64_t> present;
  std::unordered_set<int64_t> seen;
  for (int64_t i = 0; i < n; ++i)
    if (contains(ids[i]) && seen.insert(ids[i]).second) present.push_back(ids[i]);
  if (present.empty()) return 0;
  do_remove(static_cast<int64_t>(present.size()), present.data());
  for (int64_t id : present) paths_.erase(id);
  return static_cast<int64_t>(present.size());
}

const std::string& Index::path(int64_t id) const {
  if (!contains(id))
    throw InvalidArgument("path: id " + std::to_string(id) + " is not in the index");
  static const std::string kNone;
  const auto it = paths_.find(id);
  return it == paths_.end() ? kNone : it->second;
}

void Index::set_path(int64_t id, std::string path) {
  if (!contains(id))
    throw InvalidArgument("set_path: id " + std::to_string(id) + " is not in the index");
  if (path.empty())
    paths_.erase(id);
  else
    paths_[id] = std::move(path);
}

SearchResult Index::search(int64_t nq, const float* queries, int64_t k) const {
  if (nq < 0 || k < 1)
    throw InvalidArgument("search: need nq >= 0 and k >= 1, got nq = " + std::to_string(nq) +
                          ", k = " + std::to_string(k));
  if (nq > 0 && k > std::numeric_limits<int64_t>::max() / nq / 8)
    throw InvalidArgument("search: nq * k = " + std::to_string(nq) + " * " + std::to_string(k) +
                          " is too large");
  SearchResult r;
  r.nq = nq;
  r.k = k;
  r.scores.resize(static_cast<std::size_t>(nq * k));
  r.ids.resize(static_cast<std::size_t>(nq * k));
  search(nq, queries, k, r.scores.data(), r.ids.data());
  return r;
}

void Index::search(int64_t nq, const float* queries, int64_t k, float* scores, int64_t* ids) const {
  if (nq < 0 || k < 1)
    throw InvalidArgument("search: need nq >= 0 and k >= 1, got nq = " + std::to_string(nq) +
                          ", k = " + std::to_string(k));
  if (nq == 0) return;
  if (!queries || !scores || !ids) throw InvalidArgument("search: null pointer argument");
  check_finite("search", "query", nq, dim_, queries);
  if (metric_ == Metric::cosine) {
    std::vector<float> q(queries, queries + nq * dim_);
    try {
      normalize_rows(nq, dim_, q.data());
    } catch (const InvalidArgument& e) {
      throw InvalidArgument(std::string("search (cosine index): ") + e.what());
    }
    do_search(nq, q.data(), k, scores, ids);
  } else {
    do_search(nq, queries, k, scores, ids);
  }
}

}  // namespace imgsim::similarity
