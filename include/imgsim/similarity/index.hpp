// Similarity search over embeddings: an exact index (FlatIndex) and a graph index (HnswIndex,
// hnswlib inside) behind one faiss-like interface, plus versioned, checksummed index files.
//
//   imgsim::similarity::FlatIndex index(128);            // cosine by default
//   std::vector<int64_t> ids = index.add(n, vectors);     // n x 128, row-major
//   auto r = index.search(nq, queries, 10);               // r.ids / r.scores: nq x 10, best first
//   save_index(index, "gallery.imgsimidx");
//   std::unique_ptr<Index> back = load_index("gallery.imgsimidx");
//
// Scores are inner products: with Metric::cosine (the default) vectors and queries are
// L2-normalised first, so the score is the cosine similarity. Results are ordered by score,
// highest first, ties broken by the smaller id; a query with fewer than k results is padded with
// id -1 and score -infinity. Searches run on imgsim's thread pool (set_num_threads()); for a given
// index and ISA the results do not depend on the thread count or on how queries are batched.
//
// Thread safety: const member functions (search, contains, ...) may run concurrently with each
// other; add, remove, set_path and load need exclusive access (as in faiss).
// Formats and kernels: docs/index.md.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace imgsim::similarity {

enum class Metric : uint32_t {
  inner_product = 0,  // vectors and queries used as given
  cosine = 1,         // vectors and queries L2-normalised first (zero vectors are rejected)
};

enum class IndexType : uint32_t { flat = 1, hnsw = 2 };

const char* to_string(Metric m);
const char* to_string(IndexType t);

// Results of a batched search: nq rows of k, row-major, best first.
struct SearchResult {
  int64_t nq = 0;
  int64_t k = 0;
  std::vector<float> scores;  // -infinity where ids is -1
  std::vector<int64_t> ids;   // -1 where there was no k-th result
  float score(int64_t q, int64_t j) const { return scores[static_cast<std::size_t>(q * k + j)]; }
  int64_t id(int64_t q, int64_t j) const { return ids[static_cast<std::size_t>(q * k + j)]; }
};

class Index {
 public:
  virtual ~Index();
  Index(const Index&) = delete;
  Index& operator=(const Index&) = delete;

  virtual IndexType type() const = 0;
  int64_t dim() const { return dim_; }
  Metric metric() const { return metric_; }
  // Vectors that can be found (removed ones excluded).
  virtual int64_t size() const = 0;
  // The id add() assigns next when none are given: 1 + the largest id ever added (0 at first).
  int64_t next_id() const { return next_id_; }

  // Adds n vectors (n x dim, row-major). `ids`: n distinct ids >= 0, none of them in the index,
  // or nullptr to assign next_id(), next_id() + 1, ... Returns the ids. Throws InvalidArgument
  // (naming the offending row or id) for a negative n, a null pointer with n > 0, a non-finite
  // value, a zero vector under Metric::cosine, or a bad or repeated id; then the index is
  // unchanged.
  std::vector<int64_t> add(int64_t n, const float* vectors, const int64_t* ids = nullptr);
  // The same, with an image path (or any string; "" for none) per vector, saved in index files.
  std::vector<int64_t> add(int64_t n, const float* vectors, const int64_t* ids,
                           const std::vector<std::string>& paths);
  // Removes the given ids; ids not in the index are ignored. Returns how many were removed.
  int64_t remove(int64_t n, const int64_t* ids);
  int64_t remove(const std::vector<int64_t>& ids) {
    return remove(static_cast<int64_t>(ids.size()), ids.data());
  }
  virtual bool contains(int64_t id) const = 0;
  // The stored vector (normalised under Metric::cosine). InvalidArgument if id is not present.
  virtual std::vector<float> reconstruct(int64_t id) const = 0;
  // Ids present, in storage order.
  virtual std::vector<int64_t> ids() const = 0;

  // The path stored with id, "" if none. InvalidArgument if id is not present.
  const std::string& path(int64_t id) const;
  void set_path(int64_t id, std::string path);

  // The k best vectors for each of nq queries (nq x dim, row-major). k >= 1; k > size() pads.
  // InvalidArgument for a bad nq or k, a null pointer, a non-finite query value or (cosine) a zero
  // query.
  SearchResult search(int64_t nq, const float* queries, int64_t k) const;
  // The same into caller arrays of nq * k scores and ids (faiss style).
  void search(int64_t nq, const float* queries, int64_t k, float* scores, int64_t* ids) const;

 protected:
  Index(int64_t dim, Metric metric);
  Index(Index&&) noexcept = default;
  Index& operator=(Index&&) noexcept = default;

  // Called with validated arguments: finite rows, normalised under cosine, ids new and distinct.
  // Must leave the index unchanged if it throws (allocate before modifying).
  virtual void do_add(int64_t n, const float* vectors, const int64_t* ids) = 0;
  // ids: present and distinct.
  virtual void do_remove(int64_t n, const int64_t* ids) = 0;
  // Queries finite (normalised under cosine); writes nq * k, padded.
  virtual void do_search(int64_t nq, const float* queries, int64_t k, float* scores,
                         int64_t* ids) const = 0;
  // Takes the contents of `other`, which has the same type (load into an existing index).
  virtual void replace_with(Index&& other) noexcept = 0;

 private:
  friend struct IndexFileAccess;  // index files (src/similarity/index_file.cpp)

  int64_t dim_;
  Metric metric_;
  int64_t next_id_ = 0;
  std::unordered_map<int64_t, std::string> paths_;
};

// Exact search: every query against every stored vector with the SIMD inner-product kernels,
// blocked so that a batch of queries reuses each database block while it is in cache, split over
// the thread pool by database chunks and query blocks. Vectors live in one 64-byte-aligned
// row-major array; remove() moves the last row into the hole.
//
// Half-size prefilter (on by default; +50 % memory): the index also keeps every vector rounded to
// IEEE binary16 and a per-row bound on the score error that rounding can cause. Searches of up
// to 4 queries, which are limited by memory bandwidth, scan the half-size copy, keep the rows
// whose score could still reach the top k, and score only those from the float rows. The results
// are the same, bit for bit, as without the prefilter (docs/index.md gives the bound).
class FlatIndex final : public Index {
 public:
  explicit FlatIndex(int64_t dim, Metric metric = Metric::cosine, bool half_prefilter = true);
  ~FlatIndex() override;
  FlatIndex(FlatIndex&& other) noexcept;
  FlatIndex& operator=(FlatIndex&& other) noexcept;

  IndexType type() const override { return IndexType::flat; }
  int64_t size() const override { return static_cast<int64_t>(ids_.size()); }
  bool contains(int64_t id) const override { return row_of_.count(id) != 0; }
  std::vector<float> reconstruct(int64_t id) const override;
  std::vector<int64_t> ids() const override { return ids_; }
  // Row-major size() x dim(); valid until the next add or remove.
  const float* data() const { return data_; }
  bool half_prefilter() const { return half_prefilter_; }

 protected:
  void do_add(int64_t n, const float* vectors, const int64_t* ids) override;
  void do_remove(int64_t n, const int64_t* ids) override;
  void do_search(int64_t nq, const float* queries, int64_t k, float* scores,
                 int64_t* ids) const override;
  void replace_with(Index&& other) noexcept override;

 private:
  friend struct IndexFileAccess;
  void grow(int64_t rows);
  void release() noexcept;
  void search_exact(int64_t nq, const float* queries, int64_t k, float* scores, int64_t* ids) const;
  void search_half(int64_t nq, const float* queries, const float* qnorm, int64_t k, float* scores,
                   int64_t* ids) const;
  bool half_prefilter_;
  float* data_ = nullptr;     // capacity_ x dim floats, 64-byte aligned
  uint16_t* half_ = nullptr;  // capacity_ x dim binary16 (prefilter only)
  float* bound_ = nullptr;    // capacity_ error bounds (prefilter only)
  int64_t capacity_ = 0;      // rows
  std::vector<int64_t> ids_;
  std::unordered_map<int64_t, int64_t> row_of_;
};

struct HnswParams {
  int64_t M = 16;                 // graph degree (2 * M on the bottom layer), 2 .. 1024
  int64_t ef_construction = 200;  // candidate list while inserting, >= 1
  int64_t ef_search = 64;         // candidate list while searching (max(ef_search, k) is used)
  uint64_t seed = 100;            // level generator
};

// Approximate search with a hierarchical navigable small-world graph (hnswlib, header-only, from
// Debian's libhnswlib-dev) using imgsim's inner-product kernel as its distance (-<a, b>), so the
// scores it returns are exactly the FlatIndex scores of the same vectors (same ISA). remove()
// marks vectors deleted: they stay in the graph for navigation and are never returned; adding a
// removed id again re-inserts it. The kernel is chosen when the index is created or loaded.
// add() inserts in parallel on the thread pool; with more than one thread the graph (not the
// correctness of results) depends on the thread timing. Argument errors leave the index unchanged
// as for every index; if memory runs out during the insertion, the points inserted so far stay.
class HnswIndex final : public Index {
 public:
  explicit HnswIndex(int64_t dim, HnswParams params = {}, Metric metric = Metric::cosine);
  ~HnswIndex() override;
  HnswIndex(HnswIndex&& other) noexcept;
  HnswIndex& operator=(HnswIndex&& other) noexcept;

  IndexType type() const override { return IndexType::hnsw; }
  int64_t size() const override;
  bool contains(int64_t id) const override;
  std::vector<float> reconstruct(int64_t id) const override;
  std::vector<int64_t> ids() const override;
  const HnswParams& params() const { return params_; }
  // InvalidArgument for ef < 1.
  void set_ef_search(int64_t ef);

 protected:
  void do_add(int64_t n, const float* vectors, const int64_t* ids) override;
  void do_remove(int64_t n, const int64_t* ids) override;
  void do_search(int64_t nq, const float* queries, int64_t k, float* scores,
                 int64_t* ids) const override;
  void replace_with(Index&& other) noexcept override;

 private:
  friend struct IndexFileAccess;
  struct Impl;
  HnswParams params_;
  std::unique_ptr<Impl> impl_;
};

// Writes the index (type, metric, dim, ids, vectors, paths, and for HNSW its parameters and
// graph) to `path` atomically (temporary file, fsync, rename). IoError on failure, `path` intact.
void save_index(const Index& index, const std::string& path);
// Reads an index file of any type. IoError if unreadable; FormatError naming the file, what was
// expected and what was found for a wrong magic, version or type, a bad size or checksum, a
// truncated or inconsistent record.
std::unique_ptr<Index> load_index(const std::string& path);
// Replaces `index`'s contents with the file's, which must hold the same type, dim and metric
// (FormatError otherwise). On any error `index` is unchanged.
void load_index(Index& index, const std::string& path);

// L2-normalises n rows of dim floats in place. InvalidArgument naming the row for a zero or
// non-finite row.
void normalize_rows(int64_t n, int64_t dim, float* rows);

}  // namespace imgsim::similarity
