// HnswIndex: hnswlib's HierarchicalNSW (Debian libhnswlib-dev, header-only) with imgsim's
// inner-product kernel as its distance, and the HNSW record of index files (graph serialisation).
// This is the only translation unit that includes hnswlib (it defines non-inline functions).
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>
#include <stdexcept>
#include <string>
#include <utility>

#include "imgsim/error.hpp"
#include "imgsim/runtime/cpu.hpp"
#include "imgsim/similarity/index.hpp"
#include "kernels/distance.hpp"
#include "kernels/thread_pool.hpp"
#include "similarity/index_file.hpp"
#include "similarity/topk.hpp"

// hnswlib's headers define non-inline functions (cpuid, xgetbv, AVXCapable, AVX512Capable, in the
// global namespace) and variables (hnswlib::InnerProductSIMD16Ext, ...). Renamed here, so that a
// program linking imgsim can include hnswlib itself without duplicate symbols: the namespace
// becomes imgsim_hnswlib (the macro stays defined for the rest of this file) and the functions
// get imgsim-specific names. We never call those functions.
//
// NO_MANUAL_VECTORIZATION: hnswlib's SSE path only adds software prefetches (the distance is
// ours), and those read one element past a full upper-layer neighbour list, which ends at the
// edge of its malloc block (AddressSanitizer reports it). Without it the headers also skip the
// cpuid / xgetbv / AVXCapable definitions; the renames below stay as a guard.
#define NO_MANUAL_VECTORIZATION
#define hnswlib imgsim_hnswlib
#define cpuid imgsim_hnswlib_cpuid
#define xgetbv imgsim_hnswlib_xgetbv
#define AVXCapable imgsim_hnswlib_AVXCapable
#define AVX512Capable imgsim_hnswlib_AVX512Capable
#include <hnswlib/hnswlib.h>
#undef cpuid
#undef xgetbv
#undef AVXCapable
#undef AVX512Capable

namespace imgsim::similarity {

constexpr int64_t kHnswMaxM = 1024;
constexpr int64_t kHnswMaxEf = 1 << 20;

// hnswlib space: data = dim floats, distance = -<a, b> from the ISA table chosen at creation.
class HnswIpSpace final : public hnswlib::SpaceInterface<float> {
 public:
  HnswIpSpace(std::size_t dim, hnswlib::DISTFUNC<float> fn) : dim_(dim), fn_(fn) {}
  std::size_t get_data_size() override { return dim_ * sizeof(float); }
  hnswlib::DISTFUNC<float> get_dist_func() override { return fn_; }
  void* get_dist_func_param() override { return &dim_; }

 private:
  std::size_t dim_;  // the graph keeps a pointer to it: Impl never moves
  hnswlib::DISTFUNC<float> fn_;
};

using Graph = hnswlib::HierarchicalNSW<float>;

struct HnswIndex::Impl {
  Impl(int64_t dim, const HnswParams& p, int64_t capacity);
  bool alive(int64_t id) const;
  HnswIpSpace space;
  std::unique_ptr<Graph> graph;
};

namespace {

void check_params(const HnswParams& p) {
  if (p.M < 2 || p.M > kHnswMaxM)
    throw InvalidArgument("HnswIndex: M must be in 2.." + std::to_string(kHnswMaxM) + ", got " +
                          std::to_string(p.M));
  if (p.ef_construction < 1 || p.ef_construction > kHnswMaxEf)
    throw InvalidArgument("HnswIndex: ef_construction must be in 1.." + std::to_string(kHnswMaxEf) +
                          ", got " + std::to_string(p.ef_construction));
  if (p.ef_search < 1 || p.ef_search > kHnswMaxEf)
    throw InvalidArgument("HnswIndex: ef_search must be in 1.." + std::to_string(kHnswMaxEf) +
                          ", got " + std::to_string(p.ef_search));
}

// hnswlib reports failures with std::runtime_error; the library's callers get imgsim::Error.
template <class F>
void hnswlib_call(const char* what, F&& f) {
  try {
    f();
  } catch (const Error&) {
    throw;
  } catch (const std::bad_alloc&) {
    throw;
  } catch (const std::exception& e) {
    throw Error(std::string("HnswIndex: ") + what + ": hnswlib: " + e.what());
  }
}

}  // namespace

HnswIndex::Impl::Impl(int64_t dim, const HnswParams& p, int64_t capacity)
    : space(static_cast<std::size_t>(dim), kernels::distance_kernels().neg_dot_void),
      graph(std::make_unique<Graph>(
          &space, static_cast<std::size_t>(std::max<int64_t>(1, capacity)),
          static_cast<std::size_t>(p.M), static_cast<std::size_t>(p.ef_construction),
          static_cast<std::size_t>(p.seed))) {
  graph->setEf(static_cast<std::size_t>(p.ef_search));
}

bool HnswIndex::Impl::alive(int64_t id) const {
  if (id < 0) return false;
  const auto it = graph->label_lookup_.find(static_cast<hnswlib::labeltype>(id));
  return it != graph->label_lookup_.end() && !graph->isMarkedDeleted(it->second);
}

HnswIndex::HnswIndex(int64_t dim, HnswParams params, Metric metric)
    : Index(dim, metric), params_(params) {
  check_params(params_);
  impl_ = std::make_unique<Impl>(dim, params_, 1024);
}

HnswIndex::~HnswIndex() = default;
HnswIndex::HnswIndex(HnswIndex&& o) noexcept = default;
HnswIndex& HnswIndex::operator=(HnswIndex&& o) noexcept = default;

void HnswIndex::replace_with(Index&& other) noexcept {
  *this = std::move(static_cast<HnswIndex&>(other));
}

int64_t HnswIndex::size() const {
  return static_cast<int64_t>(impl_->graph->cur_element_count - impl_->graph->num_deleted_);
}

bool HnswIndex::contains(int64_t id) const {
  return impl_->alive(id);
}

std::vector<int64_t> HnswIndex::ids() const {
  const Graph& g = *impl_->graph;
  std::vector<int64_t> out;
  out.reserve(g.cur_element_count);
  for (std::size_t i = 0; i < g.cur_element_count; ++i)
    if (!g.isMarkedDeleted(static_cast<hnswlib::tableint>(i)))
      out.push_back(static_cast<int64_t>(g.getExternalLabel(static_cast<hnswlib::tableint>(i))));
  return out;
}

std::vector<float> HnswIndex::reconstruct(int64_t id) const {
  if (!impl_->alive(id))
    throw InvalidArgument("reconstruct: id " + std::to_string(id) + " is not in the index");
  const Graph& g = *impl_->graph;
  const auto* p = reinterpret_cast<const float*>(
      g.getDataByInternalId(g.label_lookup_.at(static_cast<hnswlib::labeltype>(id))));
  return std::vector<float>(p, p + dim());
}

void HnswIndex::set_ef_search(int64_t ef) {
  if (ef < 1 || ef > kHnswMaxEf)
    throw InvalidArgument("set_ef_search: ef must be in 1.." + std::to_string(kHnswMaxEf) +
                          ", got " + std::to_string(ef));
  params_.ef_search = ef;
  impl_->graph->setEf(static_cast<std::size_t>(ef));
}

void HnswIndex::do_add(int64_t n, const float* vectors, const int64_t* ids) {
  Graph& g = *impl_->graph;
  // Ids removed earlier are re-inserted in their old slot; the others need new slots.
  std::size_t fresh = 0;
  for (int64_t i = 0; i < n; ++i)
    fresh += g.label_lookup_.count(static_cast<hnswlib::labeltype>(ids[i])) == 0;
  const std::size_t need = g.cur_element_count + fresh;
  if (need > g.max_elements_) {
    const std::size_t cap = std::max(need, g.max_elements_ + g.max_elements_ / 2);
    hnswlib_call("resize", [&] { g.resizeIndex(cap); });
  }
  const int64_t d = dim();
  hnswlib_call("add", [&] {
    kernels::parallel_for(n, [&](int64_t i) {
      g.addPoint(vectors + i * d, static_cast<hnswlib::labeltype>(ids[i]));
    });
  });
}

void HnswIndex::do_remove(int64_t n, const int64_t* ids) {
  Graph& g = *impl_->graph;
  hnswlib_call("remove", [&] {
    for (int64_t i = 0; i < n; ++i) g.markDelete(static_cast<hnswlib::labeltype>(ids[i]));
  });
}

void HnswIndex::do_search(int64_t nq, const float* queries, int64_t k, float* out_scores,
                          int64_t* out_ids) const {
  const Graph& g = *impl_->graph;
  const int64_t d = dim();
  hnswlib_call("search", [&] {
    kernels::parallel_for(nq, [&](int64_t q) {
      auto pq = g.searchKnn(queries + q * d, static_cast<std::size_t>(k));
      std::vector<detail::Candidate> all;
      all.reserve(pq.size());
      for (; !pq.empty(); pq.pop())  // distance = -score, exactly
        all.push_back({-pq.top().first, static_cast<int64_t>(pq.top().second)});
      detail::write_best(all, k, out_scores + q * k, out_ids + q * k);
    });
  });
}

// ---- index files: the HNSW record -----------------------------------------------------------
//
//   u64 M, u64 ef_construction, u64 ef_search, u64 seed,
//   i64 max level (-1 for an empty graph), u64 entry row (0 for an empty graph),
//   per row: u8 flags (bit 0: removed), u32 level L, then for each layer l = 0..L:
//            u32 count (<= 2M on layer 0, <= M above), count x u32 neighbour rows
//
// The reader validates everything hnswlib's search relies on before building the graph: counts
// within the degree bounds, neighbours are rows that exist on that layer, the entry row is on the
// top layer. So a checksummed-but-hostile file cannot make a search read out of bounds.

namespace {
constexpr int64_t kHnswMaxLevel = 256;  // levels are ~ -ln(U) / ln(M): 256 never happens
}  // namespace

void IndexFileAccess::hnsw_rows(const HnswIndex& index, std::vector<int64_t>& ids,
                                std::vector<float>& vectors) {
  const Graph& g = *index.impl_->graph;
  const std::size_t rows = g.cur_element_count, d = static_cast<std::size_t>(index.dim());
  ids.resize(rows);
  vectors.resize(rows * d);
  for (std::size_t i = 0; i < rows; ++i) {
    const auto t = static_cast<hnswlib::tableint>(i);
    ids[i] = static_cast<int64_t>(g.getExternalLabel(t));
    std::memcpy(&vectors[i * d], g.getDataByInternalId(t), d * sizeof(float));
  }
}

void IndexFileAccess::write_hnsw(const HnswIndex& index, nn::ByteWriter& w) {
  const Graph& g = *index.impl_->graph;
  const HnswParams& p = index.params_;
  w.u64(static_cast<uint64_t>(p.M));
  w.u64(static_cast<uint64_t>(p.ef_construction));
  w.u64(static_cast<uint64_t>(p.ef_search));
  w.u64(p.seed);
  const std::size_t rows = g.cur_element_count;
  w.i64(rows ? g.maxlevel_ : -1);
  w.u64(rows ? g.enterpoint_node_ : 0);
  for (std::size_t i = 0; i < rows; ++i) {
    const auto t = static_cast<hnswlib::tableint>(i);
    w.u8(g.isMarkedDeleted(t) ? 1 : 0);
    const int level = g.element_levels_[i];
    w.u32(static_cast<uint32_t>(level));
    for (int l = 0; l <= level; ++l) {
      hnswlib::linklistsizeint* ll = g.get_linklist_at_level(t, l);
      const unsigned short count = g.getListCount(ll);
      w.u32(count);
      w.bytes(ll + 1, count * sizeof(hnswlib::tableint));
    }
  }
}

std::unique_ptr<HnswIndex> IndexFileAccess::read_hnsw(nn::ByteReader& r, int64_t dim, Metric metric,
                                                      const std::vector<int64_t>& ids,
                                                      const std::vector<float>& vectors) {
  HnswParams p;
  const uint64_t M = r.u64("hnsw M"), efc = r.u64("hnsw ef_construction"),
                 efs = r.u64("hnsw ef_search");
  p.seed = r.u64("hnsw seed");
  if (M < 2 || M > static_cast<uint64_t>(kHnswMaxM))
    r.fail("hnsw M: expected 2.." + std::to_string(kHnswMaxM) + ", found " + std::to_string(M));
  if (efc < 1 || efc > static_cast<uint64_t>(kHnswMaxEf))
    r.fail("hnsw ef_construction: expected 1.." + std::to_string(kHnswMaxEf) + ", found " +
           std::to_string(efc));
  if (efs < 1 || efs > static_cast<uint64_t>(kHnswMaxEf))
    r.fail("hnsw ef_search: expected 1.." + std::to_string(kHnswMaxEf) + ", found " +
           std::to_string(efs));
  p.M = static_cast<int64_t>(M);
  p.ef_construction = static_cast<int64_t>(efc);
  p.ef_search = static_cast<int64_t>(efs);

  const auto rows = static_cast<int64_t>(ids.size());
  const int64_t max_level = r.i64("hnsw max level");
  const uint64_t entry = r.u64("hnsw entry row");
  if (rows == 0 && (max_level != -1 || entry != 0))
    r.fail("hnsw graph: expected max level -1 and entry 0 for an empty graph, found " +
           std::to_string(max_level) + " and " + std::to_string(entry));
  if (rows > 0 && (max_level < 0 || max_level > kHnswMaxLevel))
    r.fail("hnsw max level: expected 0.." + std::to_string(kHnswMaxLevel) + ", found " +
           std::to_string(max_level));
  if (rows > 0 && entry >= static_cast<uint64_t>(rows))
    r.fail("hnsw entry row: expected below " + std::to_string(rows) + ", found " +
           std::to_string(entry));

  // Pass 1: read the structure into flat arrays, checking every count before it is used.
  std::vector<uint8_t> removed(static_cast<std::size_t>(rows));
  std::vector<int32_t> level(static_cast<std::size_t>(rows));
  std::vector<std::size_t> first_list(static_cast<std::size_t>(rows) + 1);  // into list_begin
  std::vector<std::size_t> list_begin;  // per (row, layer): offset into nb; one past the end last
  std::vector<uint32_t> nb;
  for (int64_t i = 0; i < rows; ++i) {
    const auto iu = static_cast<std::size_t>(i);
    const uint8_t flags = r.u8("hnsw row flags");
    if (flags > 1)
      r.fail("hnsw row " + std::to_string(i) + ": flags expected 0 or 1, found " +
             std::to_string(flags));
    removed[iu] = flags;
    const uint32_t lv = r.u32("hnsw row level");
    if (static_cast<int64_t>(lv) > max_level)
      r.fail("hnsw row " + std::to_string(i) + ": level " + std::to_string(lv) +
             " above the max level " + std::to_string(max_level));
    level[iu] = static_cast<int32_t>(lv);
    first_list[iu] = list_begin.size();
    for (uint32_t l = 0; l <= lv; ++l) {
      const uint32_t count = r.u32("hnsw neighbour count");
      const uint64_t cap = l == 0 ? 2 * M : M;
      if (count > cap)
        r.fail("hnsw row " + std::to_string(i) + ", layer " + std::to_string(l) +
               ": expected at most " + std::to_string(cap) + " neighbours, found " +
               std::to_string(count));
      list_begin.push_back(nb.size());
      const std::size_t old = nb.size();
      if (count * sizeof(uint32_t) > r.remaining())
        r.fail("truncated: hnsw row " + std::to_string(i) + " needs " + std::to_string(count) +
               " neighbours, only " + std::to_string(r.remaining()) + " bytes left");
      nb.resize(old + count);
      r.bytes(nb.data() + old, count * sizeof(uint32_t), "hnsw neighbours");
    }
  }
  first_list[static_cast<std::size_t>(rows)] = list_begin.size();
  list_begin.push_back(nb.size());
  // Pass 2: every neighbour exists on the layer it is linked on; the entry is on the top layer.
  for (int64_t i = 0; i < rows; ++i) {
    const auto iu = static_cast<std::size_t>(i);
    for (int32_t l = 0; l <= level[iu]; ++l) {
      const std::size_t li = first_list[iu] + static_cast<std::size_t>(l);
      for (std::size_t e = list_begin[li]; e < list_begin[li + 1]; ++e) {
        if (nb[e] >= static_cast<uint64_t>(rows) || level[nb[e]] < l)
          r.fail(
              "hnsw row " + std::to_string(i) + ", layer " + std::to_string(l) + ": neighbour " +
              std::to_string(nb[e]) +
              (nb[e] >= static_cast<uint64_t>(rows)
                   ? " is not a row (expected below " + std::to_string(rows) + ")"
                   : " is not on that layer (its level is " + std::to_string(level[nb[e]]) + ")"));
      }
    }
  }
  if (rows > 0 && level[entry] != max_level)
    r.fail("hnsw entry row " + std::to_string(entry) + ": expected level " +
           std::to_string(max_level) + " (the max level), found " + std::to_string(level[entry]));

  // Build: a graph with room for exactly these rows, filled as hnswlib lays it out.
  auto index = std::make_unique<HnswIndex>(dim, p, metric);
  index->impl_ = std::make_unique<HnswIndex::Impl>(dim, p, rows);
  Graph& g = *index->impl_->graph;
  const auto d = static_cast<std::size_t>(dim);
  std::size_t n_removed = 0;
  for (int64_t i = 0; i < rows; ++i) {
    const auto iu = static_cast<std::size_t>(i);
    const auto t = static_cast<hnswlib::tableint>(i);
    std::memset(g.data_level0_memory_ + iu * g.size_data_per_element_ + g.offsetLevel0_, 0,
                g.size_data_per_element_);
    auto fill = [&](hnswlib::linklistsizeint* ll, std::size_t li) {
      const std::size_t count = list_begin[li + 1] - list_begin[li];
      g.setListCount(ll, static_cast<unsigned short>(count));
      std::memcpy(ll + 1, nb.data() + list_begin[li], count * sizeof(uint32_t));
    };
    hnswlib::linklistsizeint* ll0 = g.get_linklist0(t);
    fill(ll0, first_list[iu]);
    if (removed[iu]) {
      reinterpret_cast<unsigned char*>(ll0)[2] |= Graph::DELETE_MARK;
      ++n_removed;
    }
    std::memcpy(g.getDataByInternalId(t), vectors.data() + iu * d, d * sizeof(float));
    g.setExternalLabel(t, static_cast<hnswlib::labeltype>(ids[iu]));
    if (level[iu] > 0) {
      const std::size_t bytes = g.size_links_per_element_ * static_cast<std::size_t>(level[iu]) + 1;
      g.linkLists_[iu] = static_cast<char*>(std::malloc(bytes));
      if (!g.linkLists_[iu]) throw std::bad_alloc();
      std::memset(g.linkLists_[iu], 0, bytes);
      g.element_levels_[iu] = level[iu];  // from here on the graph's destructor frees it
      for (int32_t l = 1; l <= level[iu]; ++l)
        fill(g.get_linklist(t, l), first_list[iu] + static_cast<std::size_t>(l));
    } else {
      g.element_levels_[iu] = 0;
    }
    g.label_lookup_[static_cast<hnswlib::labeltype>(ids[iu])] = t;
    g.cur_element_count = iu + 1;
  }
  g.num_deleted_ = n_removed;
  if (rows > 0) {
    g.enterpoint_node_ = static_cast<hnswlib::tableint>(entry);
    g.maxlevel_ = static_cast<int>(max_level);
  }
  return index;
}

}  // namespace imgsim::similarity
