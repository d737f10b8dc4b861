// Similarity indexes (include/imgsim/similarity/index.hpp, docs/index.md): the inner-product
// kernels of every runnable ISA against the scalar reference, FlatIndex against a brute-force
// sort, batching and thread-count invariance, add / remove / ids, index files (round trips and
// every kind of bad file), and HnswIndex recall against exact search.
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
// hnswlib itself, as a program using imgsim might: imgsim renames its private copy of hnswlib's
// non-inline symbols, so this links without duplicates (and serves as a reference below).
// Without its SSE prefetches, which read past a full neighbour list (see hnsw_index.cpp).
#define NO_MANUAL_VECTORIZATION
#include <hnswlib/hnswlib.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "imgsim/error.hpp"
#include "imgsim/nn/serialize.hpp"
#include "imgsim/rng.hpp"
#include "imgsim/runtime/cpu.hpp"
#include "imgsim/similarity/index.hpp"
#include "kernels/distance.hpp"
#include "similarity/topk.hpp"

using namespace imgsim;
using namespace imgsim::similarity;
namespace fs = std::filesystem;

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

std::vector<Isa> runnable_isas() {
  std::vector<Isa> v;
  for (Isa isa : {Isa::scalar, Isa::avx2, Isa::avx512})
    if (static_cast<int>(isa) <= static_cast<int>(detected_isa())) v.push_back(isa);
  return v;
}

// Restores the ISA cap and the thread count at the end of a test.
struct Restore {
  int threads = num_threads();
  Isa isa = active_isa();
  ~Restore() {
    set_max_isa(isa);
    set_num_threads(threads);
  }
};

std::vector<float> random_vectors(int64_t n, int64_t d, uint64_t seed, bool normalise = true) {
  Rng rng(seed);
  std::vector<float> v(static_cast<std::size_t>(n * d));
  for (float& x : v) x = rng.normal();
  if (normalise && n > 0) normalize_rows(n, d, v.data());
  return v;
}

// Distinct, non-contiguous, shuffled ids.
std::vector<int64_t> scattered_ids(int64_t n, uint64_t seed) {
  std::vector<int64_t> ids(static_cast<std::size_t>(n));
  for (int64_t i = 0; i < n; ++i) ids[static_cast<std::size_t>(i)] = 3 * i + 1000;
  Rng rng(seed);
  for (int64_t i = n - 1; i > 0; --i)
    std::swap(ids[static_cast<std::size_t>(i)],
              ids[static_cast<std::size_t>(rng.below(static_cast<uint64_t>(i + 1)))]);
  return ids;
}

// The exact answer with the active ISA's dot kernel: every score, sorted by (score desc, id asc).
SearchResult brute_force(const Index& index, int64_t nq, const float* q, int64_t k) {
  const auto& kern = kernels::distance_kernels();
  const std::vector<int64_t> ids = index.ids();
  std::vector<std::vector<float>> rows;
  for (int64_t id : ids) rows.push_back(index.reconstruct(id));
  SearchResult r;
  r.nq = nq;
  r.k = k;
  r.scores.resize(static_cast<std::size_t>(nq * k));
  r.ids.resize(static_cast<std::size_t>(nq * k));
  for (int64_t i = 0; i < nq; ++i) {
    std::vector<detail::Candidate> all;
    for (std::size_t j = 0; j < ids.size(); ++j)
      all.push_back({kern.dot(q + i * index.dim(), rows[j].data(), index.dim()), ids[j]});
    std::sort(all.begin(), all.end(), [](const detail::Candidate& a, const detail::Candidate& b) {
      return a.score > b.score || (a.score == b.score && a.id < b.id);
    });
    for (int64_t j = 0; j < k; ++j) {
      const bool have = j < static_cast<int64_t>(all.size());
      r.scores[static_cast<std::size_t>(i * k + j)] =
          have ? all[static_cast<std::size_t>(j)].score : kNegInf;
      r.ids[static_cast<std::size_t>(i * k + j)] = have ? all[static_cast<std::size_t>(j)].id : -1;
    }
  }
  return r;
}

// Bitwise equality of two results (scores compared as bit patterns: -inf padding included).
void require_same(const SearchResult& a, const SearchResult& b) {
  REQUIRE(a.nq == b.nq);
  REQUIRE(a.k == b.k);
  REQUIRE(a.ids == b.ids);
  REQUIRE(a.scores.size() == b.scores.size());
  REQUIRE(std::memcmp(a.scores.data(), b.scores.data(), a.scores.size() * sizeof(float)) == 0);
}

struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() / ("imgsim_index_test_" + std::to_string(::getpid()));
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string file(const std::string& name) const { return (path / name).string(); }
};

std::vector<uint8_t> read_bytes(const std::string& p) {
  return nn::read_file(p);
}
void write_bytes(const std::string& p, const std::vector<uint8_t>& b) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

// Rewrites the header's payload size and CRC to match the (edited) payload, so that the reader
// gets past the checksum to the field checks.
void fix_header(std::vector<uint8_t>& b) {
  const uint64_t size = b.size() - 28;
  std::memcpy(b.data() + 16, &size, 8);
  const uint32_t crc = nn::crc32(b.data() + 28, b.size() - 28);
  std::memcpy(b.data() + 24, &crc, 4);
}

template <class T>
void put(std::vector<uint8_t>& b, std::size_t off, T v) {
  std::memcpy(b.data() + off, &v, sizeof v);
}

// Loads `bytes` as a file and requires a FormatError whose message contains every fragment.
void require_format_error(const TempDir& dir, const std::vector<uint8_t>& bytes,
                          const std::vector<std::string>& fragments) {
  const std::string p = dir.file("bad.idx");
  write_bytes(p, bytes);
  try {
    (void)load_index(p);
    FAIL("expected a FormatError");
  } catch (const FormatError& e) {
    const std::string msg = e.what();
    INFO(msg);
    CHECK(msg.find("bad.idx") != std::string::npos);
    for (const auto& f : fragments) CHECK(msg.find(f) != std::string::npos);
  }
}

}  // namespace

// ---- kernels ----------------------------------------------------------------------------------

TEST_CASE("ip kernels: every ISA matches the reference on odd dims and unaligned rows",
          "[index][kernels]") {
  const int64_t dims[] = {1, 3, 7, 15, 16, 17, 31, 33, 127, 128, 129};
  for (Isa isa : runnable_isas()) {
    const auto& kern = kernels::distance_kernels_for(isa);
    for (int64_t d : dims) {
      for (int64_t offset : {0, 1, 3}) {  // floats: rows 4 or 12 bytes off a 64-byte boundary
        INFO("isa " << to_string(isa) << ", d " << d << ", offset " << offset);
        const int64_t nq = 7, nx = 21, ldq = d + 2, ldx = d + 5, ldo = nx + 3;
        Rng rng(static_cast<uint64_t>(d * 100 + offset));
        std::vector<float> qbuf(static_cast<std::size_t>(offset + nq * ldq));
        std::vector<float> xbuf(static_cast<std::size_t>(offset + nx * ldx));
        for (float& v : qbuf) v = rng.uniform(-1.0f, 1.0f);
        for (float& v : xbuf) v = rng.uniform(-1.0f, 1.0f);
        const float* q = qbuf.data() + offset;
        const float* x = xbuf.data() + offset;
        // Every (nq', nx') corner exercises the 4x4 / 2x8 / 1x16 tiles and their tails.
        for (int64_t mq : {int64_t{1}, int64_t{2}, int64_t{3}, int64_t{4}, int64_t{5}, nq}) {
          for (int64_t mx : {int64_t{1}, int64_t{4}, int64_t{9}, int64_t{16}, int64_t{17}, nx}) {
            std::vector<float> out(static_cast<std::size_t>(nq * ldo),
                                   std::numeric_limits<float>::quiet_NaN());
            kern.ip_tile(q, mq, ldq, x, mx, ldx, d, out.data(), ldo);
            for (int64_t i = 0; i < nq; ++i)
              for (int64_t j = 0; j < ldo; ++j) {
                const float got = out[static_cast<std::size_t>(i * ldo + j)];
                if (i >= mq || j >= mx) {
                  REQUIRE(std::isnan(got));  // nothing outside the block is written
                  continue;
                }
                const float* a = q + i * ldq;
                const float* b = x + j * ldx;
                double mag = 0.0;
                for (int64_t t = 0; t < d; ++t) mag += std::fabs(static_cast<double>(a[t]) * b[t]);
                const float want = kernels::ref::dot(a, b, d);
                REQUIRE(std::fabs(got - want) <= d * 1.2e-7 * mag + 1e-30);
                // One summation order per ISA: the tile equals the single dot bit for bit.
                const float single = kern.dot(a, b, d);
                REQUIRE(std::memcmp(&got, &single, sizeof got) == 0);
                const std::size_t du = static_cast<std::size_t>(d);
                REQUIRE(kern.neg_dot_void(a, b, &du) == -single);
              }
          }
        }
      }
    }
  }
}

TEST_CASE("ip kernels: binary16 rows match the reference for every ISA", "[index][kernels]") {
  const int64_t dims[] = {1, 3, 7, 15, 16, 17, 31, 33, 127, 128, 129};
  for (Isa isa : runnable_isas()) {
    const auto& kern = kernels::distance_kernels_for(isa);
    for (int64_t d : dims) {
      for (int64_t offset : {0, 1, 3}) {
        INFO("isa " << to_string(isa) << ", d " << d << ", offset " << offset);
        const int64_t nx = 37, ldx = d + 3;
        Rng rng(static_cast<uint64_t>(d * 7 + offset));
        std::vector<float> qbuf(static_cast<std::size_t>(offset + d));
        std::vector<uint16_t> xbuf(static_cast<std::size_t>(offset + nx * ldx));
        for (float& v : qbuf) v = rng.uniform(-1.0f, 1.0f);
        for (uint16_t& v : xbuf) v = kernels::f32_to_f16(rng.uniform(-1.0f, 1.0f));
        const float* q = qbuf.data() + offset;
        const uint16_t* x = xbuf.data() + offset;
        for (int64_t mx : {int64_t{1}, int64_t{7}, int64_t{8}, int64_t{16}, int64_t{17}, nx}) {
          std::vector<float> out(static_cast<std::size_t>(nx + 2),
                                 std::numeric_limits<float>::quiet_NaN());
          kern.ip_f16(q, x, mx, ldx, d, out.data());
          std::vector<float> want(static_cast<std::size_t>(mx));
          kernels::ref::ip_f16(q, x, mx, ldx, d, want.data());
          for (int64_t j = 0; j < nx + 2; ++j) {
            const float got = out[static_cast<std::size_t>(j)];
            if (j >= mx) {
              REQUIRE(std::isnan(got));
              continue;
            }
            double mag = 0.0;
            for (int64_t t = 0; t < d; ++t)
              mag += std::fabs(q[t] * static_cast<double>(kernels::f16_to_f32(x[j * ldx + t])));
            REQUIRE(std::fabs(got - want[static_cast<std::size_t>(j)]) <= d * 1.2e-7 * mag + 1e-30);
          }
        }
      }
    }
  }
}

#if defined(__x86_64__)
__attribute__((target("f16c"))) static uint16_t hw_f16(float f) {
  // (_cvtss_sh is a macro with a compound literal in Clang's headers.)
  const __m128i h = _mm_cvtps_ph(_mm_set_ss(f), 0);  // _MM_FROUND_TO_NEAREST_INT
  return static_cast<uint16_t>(_mm_extract_epi16(h, 0));
}
#endif

TEST_CASE("binary16 conversion: round to nearest even, exhaustive round trip", "[index][kernels]") {
  using kernels::f16_to_f32;
  using kernels::f32_to_f16;
  CHECK(f32_to_f16(1.0f) == 0x3c00);
  CHECK(f32_to_f16(-2.0f) == 0xc000);
  CHECK(f32_to_f16(65504.0f) == 0x7bff);
  CHECK(f32_to_f16(65519.0f) == 0x7bff);
  CHECK(f32_to_f16(65520.0f) == 0x7c00);  // the tie rounds to even: infinity
  CHECK(f32_to_f16(1e10f) == 0x7c00);
  CHECK(f32_to_f16(std::ldexp(1.0f, -24)) == 0x0001);
  CHECK(f32_to_f16(std::ldexp(1.0f, -25)) == 0x0000);         // tie to even (0)
  CHECK(f32_to_f16(std::ldexp(3.0f, -25)) == 0x0002);         // tie to even (2)
  CHECK(f32_to_f16(1.0f + std::ldexp(1.0f, -11)) == 0x3c00);  // tie to even
  CHECK(f32_to_f16(1.0f + std::ldexp(3.0f, -11)) == 0x3c02);  // tie to even
  CHECK(f32_to_f16(std::numeric_limits<float>::quiet_NaN()) == 0x7e00);
  CHECK(f32_to_f16(-std::numeric_limits<float>::infinity()) == 0xfc00);
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = f16_to_f32(static_cast<uint16_t>(h));
    if (std::isnan(f)) continue;
    REQUIRE(f32_to_f16(f) == h);
  }
#if defined(__x86_64__)
  if (detected_isa() != Isa::scalar) {  // AVX2 machines have F16C: compare with the hardware
    Rng rng(9);
    for (int i = 0; i < 200000; ++i) {
      uint32_t bits = static_cast<uint32_t>(rng.next_u64());
      float f;
      std::memcpy(&f, &bits, 4);
      if (std::isnan(f)) continue;
      REQUIRE(f32_to_f16(f) == hw_f16(f));
      const float g =
          rng.uniform(-70000.0f, 70000.0f) * std::ldexp(1.0f, -static_cast<int>(rng.below(40)));
      REQUIRE(f32_to_f16(g) == hw_f16(g));
    }
  }
#endif
}

TEST_CASE("ip kernels: a wrong product is caught (the tolerance is tight)", "[index][kernels]") {
  // The check above allows d * 1.2e-7 * sum|a_i b_i|; dropping one term of 128 would exceed it.
  Rng rng(5);
  std::vector<float> a(128), b(128);
  for (auto& v : a) v = rng.uniform(0.5f, 1.0f);
  for (auto& v : b) v = rng.uniform(0.5f, 1.0f);
  const float full = kernels::ref::dot(a.data(), b.data(), 128);
  const float missing_one = kernels::ref::dot(a.data(), b.data(), 127);
  double mag = 0.0;
  for (int t = 0; t < 128; ++t)
    mag += a[static_cast<std::size_t>(t)] * b[static_cast<std::size_t>(t)];
  CHECK(std::fabs(full - missing_one) > 128 * 1.2e-7 * mag);
}

TEST_CASE("ip kernels: dispatch follows set_max_isa and refuses unsupported ISAs",
          "[index][kernels]") {
  Restore restore;
  for (Isa cap : runnable_isas()) {
    set_max_isa(cap);
    CHECK(kernels::distance_kernels().ip_tile == kernels::distance_kernels_for(cap).ip_tile);
  }
  if (detected_isa() != Isa::avx512)
    CHECK_THROWS_AS(kernels::distance_kernels_for(Isa::avx512), InvalidArgument);
  if (detected_isa() == Isa::avx512)
    CHECK(std::string(kernels::distance_kernels_for(Isa::avx512).ip_tile_name) ==
          "f32_ip_4x4__avx512");
  // d == 0: zeros.
  float q = 1.0f, x = 2.0f, out = 5.0f;
  for (Isa isa : runnable_isas()) {
    kernels::distance_kernels_for(isa).ip_tile(&q, 1, 1, &x, 1, 1, 0, &out, 1);
    CHECK(out == 0.0f);
  }
}

// ---- FlatIndex ----------------------------------------------------------------------------------

TEST_CASE("FlatIndex: top-k equals a brute-force sort for every ISA", "[index][flat]") {
  Restore restore;
  const int64_t n = 3000, d = 37, nq = 13, k = 10;
  const auto x = random_vectors(n, d, 1, false);
  const auto q = random_vectors(nq, d, 2, false);
  const auto ids = scattered_ids(n, 3);
  for (Metric metric : {Metric::inner_product, Metric::cosine}) {
    FlatIndex index(d, metric);
    index.add(n, x.data(), ids.data());
    REQUIRE(index.size() == n);
    std::vector<float> qn = q;
    if (metric == Metric::cosine) normalize_rows(nq, d, qn.data());
    for (Isa isa : runnable_isas()) {
      INFO("metric " << to_string(metric) << ", isa " << to_string(isa));
      set_max_isa(isa);
      const SearchResult got = index.search(nq, q.data(), k);
      require_same(got, brute_force(index, nq, qn.data(), k));
      for (int64_t i = 0; i < nq; ++i)
        for (int64_t j = 1; j < k; ++j) REQUIRE(got.score(i, j - 1) >= got.score(i, j));
    }
  }
}

TEST_CASE("FlatIndex: equal scores are ordered by smaller id", "[index][flat]") {
  const int64_t d = 5;
  FlatIndex index(d, Metric::inner_product);
  const auto v = random_vectors(1, d, 7);
  const auto other = random_vectors(4, d, 8);
  // The same vector under ids 50, 7, 30, 12 (added in that order), plus 4 others.
  std::vector<float> x;
  for (int r = 0; r < 4; ++r) x.insert(x.end(), v.begin(), v.end());
  x.insert(x.end(), other.begin(), other.end());
  const std::vector<int64_t> ids = {50, 7, 30, 12, 1, 2, 3, 4};
  index.add(8, x.data(), ids.data());
  const SearchResult r = index.search(1, v.data(), 3);
  CHECK(r.ids == std::vector<int64_t>{7, 12, 30});
  CHECK(r.scores[0] == r.scores[1]);
  CHECK(r.scores[1] == r.scores[2]);
  // k = 2 must cut the tie by id too.
  CHECK(index.search(1, v.data(), 2).ids == std::vector<int64_t>{7, 12});
}

TEST_CASE("FlatIndex: k larger than the index pads with -1 and -inf", "[index][flat]") {
  const int64_t d = 9;
  FlatIndex index(d);
  const auto q = random_vectors(2, d, 11);
  SearchResult r = index.search(2, q.data(), 3);  // empty index
  CHECK(r.ids == std::vector<int64_t>(6, -1));
  for (float s : r.scores) CHECK(s == kNegInf);

  const auto x = random_vectors(5, d, 12);
  index.add(5, x.data());
  r = index.search(2, q.data(), 8);
  for (int64_t i = 0; i < 2; ++i) {
    std::vector<int64_t> got;
    for (int64_t j = 0; j < 5; ++j) {
      CHECK(r.id(i, j) >= 0);
      CHECK(std::isfinite(r.score(i, j)));
      got.push_back(r.id(i, j));
    }
    std::sort(got.begin(), got.end());
    CHECK(got == std::vector<int64_t>{0, 1, 2, 3, 4});
    for (int64_t j = 5; j < 8; ++j) {
      CHECK(r.id(i, j) == -1);
      CHECK(r.score(i, j) == kNegInf);
    }
  }
}

TEST_CASE("FlatIndex: add and remove by id, auto ids, reconstruct", "[index][flat]") {
  const int64_t d = 6;
  FlatIndex index(d, Metric::inner_product);
  const auto x = random_vectors(10, d, 21);
  CHECK(index.add(3, x.data()) == std::vector<int64_t>{0, 1, 2});
  const std::vector<int64_t> explicit_ids = {10, 40, 20};
  index.add(3, x.data() + 3 * d, explicit_ids.data());
  CHECK(index.next_id() == 41);
  CHECK(index.add(2, x.data() + 6 * d) == std::vector<int64_t>{41, 42});
  CHECK(index.size() == 8);

  // Remove from the middle (the last row moves into the hole); unknown and repeated ids ignored.
  CHECK(index.remove({1, 20, 999, 1}) == 2);
  CHECK(index.size() == 6);
  CHECK_FALSE(index.contains(1));
  CHECK_FALSE(index.contains(20));
  CHECK(index.contains(42));
  CHECK(index.reconstruct(42) == std::vector<float>(x.begin() + 7 * d, x.begin() + 8 * d));
  CHECK(index.reconstruct(40) == std::vector<float>(x.begin() + 4 * d, x.begin() + 5 * d));
  CHECK_THROWS_AS(index.reconstruct(1), InvalidArgument);

  // Searching for a removed vector never returns its id.
  const SearchResult r = index.search(1, x.data() + 1 * d, 6);
  for (int64_t id : r.ids) {
    CHECK(id != 1);
    CHECK(id != 20);
  }
  require_same(r, brute_force(index, 1, x.data() + 1 * d, 6));
  // A removed id can be added again.
  const int64_t again = 20;
  index.add(1, x.data() + 9 * d, &again);
  CHECK(index.reconstruct(20) == std::vector<float>(x.begin() + 9 * d, x.end()));
  CHECK(index.remove(std::vector<int64_t>{}) == 0);
}

TEST_CASE("FlatIndex: bad ids and values are refused and leave the index unchanged",
          "[index][flat]") {
  const int64_t d = 4;
  FlatIndex index(d);
  const auto x = random_vectors(4, d, 31);
  const std::vector<int64_t> ids = {5, 6};
  index.add(2, x.data(), ids.data());
  const SearchResult before = index.search(1, x.data(), 3);

  auto refused = [&](int64_t n, const float* v, const int64_t* i, const std::string& fragment) {
    try {
      index.add(n, v, i);
      FAIL("expected InvalidArgument");
    } catch (const InvalidArgument& e) {
      INFO(e.what());
      CHECK(std::string(e.what()).find(fragment) != std::string::npos);
    }
    CHECK(index.size() == 2);
    CHECK(index.next_id() == 7);
    require_same(index.search(1, x.data(), 3), before);
  };
  const std::vector<int64_t> dup_existing = {7, 6};
  refused(2, x.data() + 2 * d, dup_existing.data(), "id 6 (row 1) is already in the index");
  const std::vector<int64_t> dup_batch = {8, 8};
  refused(2, x.data() + 2 * d, dup_batch.data(), "id 8 appears twice");
  const std::vector<int64_t> negative = {-3};
  refused(1, x.data() + 2 * d, negative.data(), "negative");
  std::vector<float> bad(x.begin(), x.begin() + 2 * d);
  bad[static_cast<std::size_t>(d + 2)] = std::numeric_limits<float>::quiet_NaN();
  refused(2, bad.data(), nullptr, "row 1, component 2");
  std::vector<float> zero(static_cast<std::size_t>(d), 0.0f);
  refused(1, zero.data(), nullptr, "norm");  // cosine cannot normalise a zero vector
  refused(-1, x.data(), nullptr, "n must be >= 0");
  refused(1, nullptr, nullptr, "null");

  CHECK_THROWS_AS(index.search(1, x.data(), 0), InvalidArgument);
  CHECK_THROWS_AS(index.search(-1, x.data(), 1), InvalidArgument);
  CHECK_THROWS_AS(index.search(1, zero.data(), 1), InvalidArgument);
  CHECK_THROWS_AS(index.search(1, bad.data() + d, 1), InvalidArgument);
  CHECK_THROWS_AS(FlatIndex(0), InvalidArgument);
  CHECK_THROWS_AS(index.add(1, x.data(), nullptr, {"a", "b"}), InvalidArgument);
}

TEST_CASE("FlatIndex: batched queries and single queries give identical results", "[index][flat]") {
  Restore restore;
  // Large enough for several database chunks, blocks and query tiles.
  const int64_t n = 20000, d = 64, nq = 37, k = 10;
  const auto x = random_vectors(n, d, 41);
  const auto q = random_vectors(nq, d, 42);
  FlatIndex index(d, Metric::inner_product);
  index.add(n, x.data(), scattered_ids(n, 43).data());
  for (Isa isa : runnable_isas()) {
    INFO("isa " << to_string(isa));
    set_max_isa(isa);
    const SearchResult batch = index.search(nq, q.data(), k);
    for (int64_t i = 0; i < nq; ++i) {
      const SearchResult one = index.search(1, q.data() + i * d, k);
      REQUIRE(std::vector<int64_t>(batch.ids.begin() + i * k, batch.ids.begin() + (i + 1) * k) ==
              one.ids);
      REQUIRE(std::memcmp(batch.scores.data() + i * k, one.scores.data(), k * sizeof(float)) == 0);
    }
    // Sub-batches of every size agree too.
    for (int64_t m : {2, 3, 5, 17}) {
      const SearchResult part = index.search(m, q.data() + 4 * d, k);
      REQUIRE(std::vector<int64_t>(batch.ids.begin() + 4 * k, batch.ids.begin() + (4 + m) * k) ==
              part.ids);
    }
  }
}

TEST_CASE("FlatIndex: 1 thread and 2 threads give identical results", "[index][flat]") {
  Restore restore;
  const int64_t n = 30000, d = 48, k = 7;
  const auto x = random_vectors(n, d, 51);
  FlatIndex index(d);
  index.add(n, x.data());
  for (int64_t nq : {1, 9, 300}) {
    const auto q = random_vectors(nq, d, 52 + static_cast<uint64_t>(nq));
    set_num_threads(1);
    const SearchResult one = index.search(nq, q.data(), k);
    set_num_threads(2);
    const SearchResult two = index.search(nq, q.data(), k);
    require_same(one, two);
    set_num_threads(3);
    require_same(one, index.search(nq, q.data(), k));
    if (nq == 9) require_same(one, brute_force(index, nq, q.data(), k));
  }
}

TEST_CASE("FlatIndex: the half-size prefilter gives exactly the exact path's results",
          "[index][flat]") {
  Restore restore;
  const int64_t n = 5000, d = 40, k = 10;
  auto x = random_vectors(n, d, 151, false);
  // Near-ties: many rows are copies of a few vectors nudged by one float ulp; rows too large for
  // binary16 (always candidates); rows with values in binary16's subnormal range.
  const auto base = random_vectors(8, d, 152, false);
  for (int64_t i = 0; i < 800; ++i)
    for (int64_t t = 0; t < d; ++t) {
      float v = base[static_cast<std::size_t>((i % 8) * d + t)];
      if ((i / 8) % 3 == 1) v = std::nextafter(v, 10.0f);
      x[static_cast<std::size_t>(i * d + t)] = v;
    }
  for (int64_t i = 800; i < 820; ++i)
    for (int64_t t = 0; t < d; ++t) x[static_cast<std::size_t>(i * d + t)] *= 1e5f;
  for (int64_t i = 820; i < 900; ++i)
    for (int64_t t = 0; t < d; ++t) x[static_cast<std::size_t>(i * d + t)] *= 1e-6f;
  std::vector<float> q = random_vectors(4, d, 153, false);
  std::copy(base.begin(), base.begin() + d, q.begin());  // a query that hits the ties
  const auto ids = scattered_ids(n, 154);
  for (Metric metric : {Metric::inner_product, Metric::cosine}) {
    FlatIndex with(d, metric, true), without(d, metric, false);
    with.add(n, x.data(), ids.data());
    without.add(n, x.data(), ids.data());
    with.remove({ids[3], ids[900]});
    without.remove({ids[3], ids[900]});
    for (Isa isa : runnable_isas()) {
      set_max_isa(isa);
      for (int64_t nq = 1; nq <= 4; ++nq) {
        INFO("metric " << to_string(metric) << ", isa " << to_string(isa) << ", nq " << nq);
        const SearchResult a = with.search(nq, q.data(), k);
        require_same(a, without.search(nq, q.data(), k));
        if (metric == Metric::inner_product) require_same(a, brute_force(without, nq, q.data(), k));
      }
      // k beyond a chunk's rows, and beyond the index.
      require_same(with.search(1, q.data(), 3000), without.search(1, q.data(), 3000));
      require_same(with.search(1, q.data(), n + 5), without.search(1, q.data(), n + 5));
    }
  }
  // A zero query (inner product) falls back to the exact path: every score is 0, ids ascending.
  FlatIndex ip(d, Metric::inner_product);
  ip.add(n, x.data(), ids.data());
  std::vector<float> zero(static_cast<std::size_t>(d), 0.0f);
  const SearchResult z = ip.search(1, zero.data(), 3);
  std::vector<int64_t> sorted = ids;
  std::sort(sorted.begin(), sorted.end());
  CHECK(z.ids == std::vector<int64_t>(sorted.begin(), sorted.begin() + 3));
}

TEST_CASE("Index: paths are stored per id and follow removals", "[index][flat]") {
  const int64_t d = 3;
  FlatIndex index(d);
  const auto x = random_vectors(3, d, 61);
  const auto ids = index.add(3, x.data(), nullptr, {"a/0.png", "", "b/2.jpg"});
  CHECK(index.path(ids[0]) == "a/0.png");
  CHECK(index.path(ids[1]).empty());
  index.set_path(ids[1], "c/1.png");
  CHECK(index.path(ids[1]) == "c/1.png");
  index.remove(1, &ids[0]);
  CHECK_THROWS_AS(index.path(ids[0]), InvalidArgument);
  CHECK_THROWS_AS(index.set_path(99, "x"), InvalidArgument);
  index.set_path(ids[1], "");
  CHECK(index.path(ids[1]).empty());
}

// ---- index files
// ---------------------------------------------------------------------------------

TEST_CASE("index files: FlatIndex round trip is exact", "[index][file]") {
  TempDir dir;
  const int64_t n = 500, d = 33, nq = 8, k = 6;
  const auto x = random_vectors(n, d, 71, false);
  FlatIndex index(d);  // cosine: the stored (normalised) vectors must survive bit for bit
  std::vector<std::string> paths(static_cast<std::size_t>(n));
  for (int64_t i = 0; i < n; i += 3)
    paths[static_cast<std::size_t>(i)] = "img/" + std::to_string(i) + ".png";
  index.add(n, x.data(), scattered_ids(n, 72).data(), paths);
  index.remove({1000, 1003, 1006});
  const auto q = random_vectors(nq, d, 73);

  const std::string p = dir.file("flat.idx");
  save_index(index, p);
  std::unique_ptr<Index> back = load_index(p);
  REQUIRE(back->type() == IndexType::flat);
  CHECK(back->dim() == d);
  CHECK(back->metric() == Metric::cosine);
  CHECK(back->size() == index.size());
  CHECK(back->next_id() == index.next_id());
  CHECK(back->ids() == index.ids());
  for (int64_t id : index.ids()) {
    const auto a = index.reconstruct(id), b = back->reconstruct(id);
    REQUIRE(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
    REQUIRE(back->path(id) == index.path(id));
  }
  require_same(back->search(nq, q.data(), k), index.search(nq, q.data(), k));
  // Saving again gives the same bytes.
  save_index(*back, dir.file("flat2.idx"));
  CHECK(read_bytes(p) == read_bytes(dir.file("flat2.idx")));
  // An empty index round-trips too, and so does the prefilter setting.
  FlatIndex empty(4, Metric::inner_product, false);
  save_index(empty, dir.file("empty.idx"));
  auto e = load_index(dir.file("empty.idx"));
  CHECK(e->size() == 0);
  CHECK(e->metric() == Metric::inner_product);
  CHECK_FALSE(static_cast<const FlatIndex&>(*e).half_prefilter());
  CHECK(static_cast<const FlatIndex&>(*back).half_prefilter());
}

TEST_CASE("index files: HnswIndex round trip keeps the graph, removals and paths",
          "[index][file][hnsw]") {
  TempDir dir;
  Restore restore;
  set_num_threads(1);  // a reproducible graph
  const int64_t n = 2000, d = 16, nq = 20, k = 10;
  const auto x = random_vectors(n, d, 81);
  HnswIndex index(d, {.M = 8, .ef_construction = 40, .ef_search = 20, .seed = 5});
  std::vector<std::string> paths(static_cast<std::size_t>(n));
  paths[7] = "seven.png";
  paths[8] = "eight.png";
  index.add(n, x.data(), nullptr, paths);
  index.remove({3, 8, 500});
  const auto q = random_vectors(nq, d, 82);

  const std::string p = dir.file("hnsw.idx");
  save_index(index, p);
  std::unique_ptr<Index> back = load_index(p);
  REQUIRE(back->type() == IndexType::hnsw);
  const auto& h = static_cast<const HnswIndex&>(*back);
  CHECK(h.params().M == 8);
  CHECK(h.params().ef_construction == 40);
  CHECK(h.params().ef_search == 20);
  CHECK(h.params().seed == 5);
  CHECK(back->size() == n - 3);
  CHECK_FALSE(back->contains(8));
  CHECK(back->path(7) == "seven.png");
  CHECK(back->ids() == index.ids());
  // Same graph, same ef: the same approximate answers, bit for bit.
  require_same(back->search(nq, q.data(), k), index.search(nq, q.data(), k));
  save_index(*back, dir.file("hnsw2.idx"));
  CHECK(read_bytes(p) == read_bytes(dir.file("hnsw2.idx")));
  // The loaded graph accepts new points and re-inserted ids.
  const std::vector<int64_t> again = {3};
  back->add(1, x.data() + 3 * d, again.data());
  CHECK(back->contains(3));
  CHECK(back->search(1, x.data() + 3 * d, 1).ids[0] == 3);
}

TEST_CASE(
    "index files: loading into an index checks type, dim and metric and changes nothing "
    "on failure",
    "[index][file]") {
  TempDir dir;
  const int64_t d = 8;
  const auto x = random_vectors(50, d, 91);
  FlatIndex flat8(d);
  flat8.add(50, x.data());
  save_index(flat8, dir.file("flat8.idx"));
  HnswIndex hnsw8(d);
  hnsw8.add(10, x.data());
  save_index(hnsw8, dir.file("hnsw8.idx"));
  FlatIndex flat8ip(d, Metric::inner_product);
  save_index(flat8ip, dir.file("flat8ip.idx"));

  FlatIndex target(d);
  target.add(5, x.data() + 10 * d);
  const SearchResult before = target.search(2, x.data(), 4);
  auto refused = [&](Index& t, const std::string& file, const std::string& fragment) {
    try {
      load_index(t, dir.file(file));
      FAIL("expected a FormatError");
    } catch (const FormatError& e) {
      INFO(e.what());
      CHECK(std::string(e.what()).find(fragment) != std::string::npos);
    }
  };
  refused(target, "hnsw8.idx", "index type: expected flat, found hnsw");
  refused(target, "flat8ip.idx", "metric: expected cosine, found inner_product");
  FlatIndex target4(4);
  refused(target4, "flat8.idx", "dim: expected 4, found 8");
  CHECK_THROWS_AS(load_index(target, dir.file("missing.idx")), IoError);
  CHECK(target.size() == 5);
  require_same(target.search(2, x.data(), 4), before);
  // The right file replaces the contents.
  load_index(target, dir.file("flat8.idx"));
  CHECK(target.size() == 50);
  require_same(target.search(2, x.data(), 4), flat8.search(2, x.data(), 4));
}

TEST_CASE("index files: every bad header is a FormatError naming what was expected",
          "[index][file]") {
  TempDir dir;
  const int64_t d = 4;
  FlatIndex index(d);
  index.add(3, random_vectors(3, d, 101).data(), nullptr, {"p0", "", "p2"});
  save_index(index, dir.file("good.idx"));
  const std::vector<uint8_t> good = read_bytes(dir.file("good.idx"));

  require_format_error(dir, {}, {"shorter than the 28-byte header"});
  require_format_error(dir, std::vector<uint8_t>(good.begin(), good.begin() + 20),
                       {"shorter than the 28-byte header"});
  {
    auto b = good;
    std::memcpy(b.data(), "IMGSIMMD", 8);  // a model file
    require_format_error(dir, b, {"expected magic 'IMGSIMIX', found 'IMGSIMMD'"});
  }
  {
    auto b = good;
    put<uint32_t>(b, 8, 2);
    require_format_error(dir, b, {"format version 2 is not supported", "reads 1"});
  }
  {
    auto b = good;
    put<uint32_t>(b, 12, 1);
    require_format_error(dir, b, {"flags: expected 0, found 1"});
  }
  {
    auto b = good;
    b.pop_back();
    require_format_error(dir, b, {"payload size says", "truncated"});
    b = good;
    b.push_back(0);
    require_format_error(dir, b, {"payload size says"});
  }
  {
    auto b = good;
    b[good.size() - 3] ^= 0x40;  // inside the last path string
    require_format_error(dir, b, {"checksum mismatch"});
  }
  CHECK_THROWS_AS(load_index(dir.file("does-not-exist.idx")), IoError);
}

TEST_CASE("index files: every bad field is a FormatError, even with a valid checksum",
          "[index][file]") {
  TempDir dir;
  const int64_t d = 4, rows = 3;
  FlatIndex index(d);
  const std::vector<int64_t> ids = {4, 9, 2};
  index.add(rows, random_vectors(rows, d, 111).data(), ids.data(), {"p4", "", "p2"});
  save_index(index, dir.file("good.idx"));
  const std::vector<uint8_t> good = read_bytes(dir.file("good.idx"));
  // Payload offsets (docs/index.md).
  const std::size_t kType = 28, kMetric = 32, kDim = 36, kRows = 44, kNext = 52, kIds = 60;
  const std::size_t kVec = kIds + 8 * rows, kPaths = kVec + 4 * rows * d;

  auto edited = [&](auto&& edit, const std::vector<std::string>& fragments) {
    auto b = good;
    edit(b);
    fix_header(b);
    require_format_error(dir, b, fragments);
  };
  edited([&](auto& b) { put<uint32_t>(b, kType, 3); }, {"index type: expected 1 (flat) or 2"});
  edited([&](auto& b) { put<uint32_t>(b, kMetric, 7); }, {"metric: expected 0", "found 7"});
  edited([&](auto& b) { put<uint64_t>(b, kDim, 0); }, {"dim: expected 1..65536, found 0"});
  edited([&](auto& b) { put<uint64_t>(b, kDim, 5); }, {});  // rows misread: some field fails
  edited([&](auto& b) { put<uint64_t>(b, kRows, uint64_t{1} << 60); },
         {"row count 1152921504606846976 needs 24 bytes per row"});
  edited([&](auto& b) { put<uint64_t>(b, kRows, 5); }, {"row count 5"});
  edited([&](auto& b) { put<uint64_t>(b, kRows, 4); }, {});
  edited([&](auto& b) { put<int64_t>(b, kNext, -1); }, {"next id: expected >= 0"});
  edited([&](auto& b) { put<int64_t>(b, kNext, 9); }, {"id of row 1", "found 9"});
  edited([&](auto& b) { put<int64_t>(b, kIds + 8, 4); }, {"id 4 appears twice"});
  edited([&](auto& b) { put<int64_t>(b, kIds, -5); }, {"id of row 0", "found -5"});
  edited([&](auto& b) { put<float>(b, kVec + 4 * 5, std::numeric_limits<float>::infinity()); },
         {"row 1, component 1 is not finite"});
  edited([&](auto& b) { put<uint64_t>(b, kPaths, 4); }, {"path count: expected at most"});
  edited([&](auto& b) { put<int64_t>(b, kPaths + 8, 77); }, {"id 77 is not in the index"});
  edited([&](auto& b) { put<int64_t>(b, kPaths + 8, 9); }, {"ascending"});  // 9 then 4
  edited(
      [&](auto& b) {
        put<uint32_t>(b, kPaths + 16, 0);
        b.erase(b.begin() + kPaths + 20, b.begin() + kPaths + 22);
      },
      {"is empty"});
  edited([&](auto& b) { put<uint32_t>(b, kPaths + 16, 1000); }, {"truncated", "path"});
  edited([&](auto& b) { b.push_back(0); }, {"1 bytes left over"});
  const std::size_t kOptions = good.size() - 4;  // the last field of a flat payload
  edited([&](auto& b) { put<uint32_t>(b, kOptions, 2); },
         {"flat options: expected 0 or 1, found 2"});

  // Truncated at every length, with the header made consistent: a FormatError, never a crash.
  for (std::size_t len = 28; len < good.size(); ++len) {
    auto b = std::vector<uint8_t>(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(len));
    fix_header(b);
    INFO("length " << len);
    require_format_error(dir, b, {});
  }
}

TEST_CASE("index files: a hostile HNSW graph record is refused", "[index][file][hnsw]") {
  TempDir dir;
  Restore restore;
  set_num_threads(1);
  const int64_t d = 4, rows = 40;
  HnswIndex index(d, {.M = 4, .ef_construction = 10, .ef_search = 10, .seed = 1});
  index.add(rows, random_vectors(rows, d, 121).data());
  save_index(index, dir.file("good.idx"));
  const std::vector<uint8_t> good = read_bytes(dir.file("good.idx"));
  REQUIRE_NOTHROW(load_index(dir.file("good.idx")));
  const std::size_t kRec = 60 + 8 * rows + 4 * rows * d + 8;  // after the (empty) path list
  const std::size_t kMaxLevel = kRec + 32, kEntry = kRec + 40, kRow0 = kRec + 48;
  int64_t max_level;
  std::memcpy(&max_level, good.data() + kMaxLevel, 8);

  auto edited = [&](auto&& edit, const std::vector<std::string>& fragments) {
    auto b = good;
    edit(b);
    fix_header(b);
    require_format_error(dir, b, fragments);
  };
  edited([&](auto& b) { put<uint64_t>(b, kRec, 1); }, {"hnsw M: expected 2..1024, found 1"});
  edited([&](auto& b) { put<uint64_t>(b, kRec + 8, 0); }, {"hnsw ef_construction"});
  edited([&](auto& b) { put<uint64_t>(b, kRec + 16, 0); }, {"hnsw ef_search"});
  edited([&](auto& b) { put<int64_t>(b, kMaxLevel, 300); }, {"hnsw max level: expected 0..256"});
  edited([&](auto& b) { put<uint64_t>(b, kEntry, rows); }, {"hnsw entry row: expected below 40"});
  edited([&](auto& b) { b[kRow0] = 2; }, {"hnsw row 0: flags expected 0 or 1, found 2"});
  edited([&](auto& b) { put<uint32_t>(b, kRow0 + 1, static_cast<uint32_t>(max_level + 1)); },
         {"above the max level"});
  edited([&](auto& b) { put<uint32_t>(b, kRow0 + 5, 9); },
         {"hnsw row 0, layer 0: expected at most 8 neighbours, found 9"});
  edited([&](auto& b) { put<uint32_t>(b, kRow0 + 9, static_cast<uint32_t>(rows)); },
         {"neighbour 40 is not a row"});
  // Walk the rows to find a link on layer 1 and a row that lives on layer 0 only.
  std::vector<uint32_t> level(rows);
  std::vector<std::size_t> layer1(rows, 0);  // offset of the layer-1 list, 0 if none
  std::size_t pos = kRow0;
  for (int64_t i = 0; i < rows; ++i) {
    std::memcpy(&level[static_cast<std::size_t>(i)], good.data() + pos + 1, 4);
    pos += 5;
    for (uint32_t l = 0; l <= level[static_cast<std::size_t>(i)]; ++l) {
      uint32_t c;
      std::memcpy(&c, good.data() + pos, 4);
      if (l == 1 && c > 0) layer1[static_cast<std::size_t>(i)] = pos;
      pos += 4 + 4 * std::size_t{c};
    }
  }
  REQUIRE(pos == good.size());
  const auto low = std::find(level.begin(), level.end(), 0u) - level.begin();
  const auto linked = std::find_if(layer1.begin(), layer1.end(), [](std::size_t o) { return o; });
  REQUIRE(low < rows);
  REQUIRE(linked != layer1.end());
  edited([&](auto& b) { put<uint32_t>(b, *linked + 4, static_cast<uint32_t>(low)); },
         {"layer 1: neighbour " + std::to_string(low) + " is not on that layer"});
  edited([&](auto& b) { put<uint64_t>(b, kEntry, static_cast<uint64_t>(low)); },
         {"hnsw entry row " + std::to_string(low) + ": expected level"});
  // Truncated at every length with a consistent header.
  for (std::size_t len = kRec; len < good.size(); len += 3) {
    auto b = std::vector<uint8_t>(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(len));
    fix_header(b);
    INFO("length " << len);
    require_format_error(dir, b, {});
  }
}

// ---- HnswIndex
// -------------------------------------------------------------------------------------

// Uniform random vectors on the 64-dimensional sphere are a hard case for graph search (no
// low-dimensional structure): with M = 16, ef_construction = 200 recall@10 measured 0.73 at
// ef 64, 0.89 at ef 128, 0.95 at ef 200, 0.97 at ef 256, 0.99 at ef 400.
TEST_CASE("HnswIndex: recall@10 against exact search on 20k random vectors", "[index][hnsw]") {
  const int64_t n = 20000, d = 64, nq = 200, k = 10;
  const auto x = random_vectors(n, d, 131);
  const auto q = random_vectors(nq, d, 132);
  FlatIndex exact(d, Metric::inner_product);
  exact.add(n, x.data());
  HnswIndex approx(d, {.M = 16, .ef_construction = 200, .ef_search = 256, .seed = 7},
                   Metric::inner_product);
  approx.add(n, x.data());
  REQUIRE(approx.size() == n);
  const SearchResult truth = exact.search(nq, q.data(), k);
  auto recall = [&](const SearchResult& r) {
    int64_t hit = 0;
    for (int64_t i = 0; i < nq; ++i)
      for (int64_t j = 0; j < k; ++j) {
        const auto b = truth.ids.begin() + i * k, e = b + k;
        hit += std::find(b, e, r.id(i, j)) != e;
      }
    return static_cast<double>(hit) / static_cast<double>(nq * k);
  };
  const SearchResult got = approx.search(nq, q.data(), k);
  const double r256 = recall(got);
  INFO("recall@10 at ef 256: " << r256);
  CHECK(r256 >= 0.95);
  // The scores are the exact kernel's scores of the returned ids, ordered best first.
  const auto& kern = kernels::distance_kernels();
  for (int64_t i = 0; i < nq; ++i)
    for (int64_t j = 0; j < k; ++j) {
      const auto v = exact.reconstruct(got.id(i, j));
      REQUIRE(got.score(i, j) == kern.dot(q.data() + i * d, v.data(), d));
      if (j > 0) REQUIRE(got.score(i, j - 1) >= got.score(i, j));
    }
  // A small ef is measurably worse: the parameter reaches hnswlib.
  approx.set_ef_search(10);
  const double r10 = recall(approx.search(nq, q.data(), k));
  INFO("recall@10 at ef 10: " << r10);
  CHECK(r10 < r256);
  CHECK_THROWS_AS(approx.set_ef_search(0), InvalidArgument);
}

TEST_CASE("HnswIndex: removed ids are never returned; padding; duplicates refused",
          "[index][hnsw]") {
  const int64_t n = 300, d = 8;
  const auto x = random_vectors(n, d, 141);
  HnswIndex index(d, {.M = 8, .ef_construction = 50, .ef_search = 50, .seed = 3});
  SearchResult r = index.search(1, x.data(), 4);  // empty
  CHECK(r.ids == std::vector<int64_t>(4, -1));
  index.add(n, x.data(), scattered_ids(n, 142).data());
  CHECK(index.size() == n);
  const std::vector<int64_t> all = index.ids();
  CHECK(static_cast<int64_t>(all.size()) == n);

  // The nearest neighbour of a stored vector is itself; after removal it never comes back.
  const int64_t victim = scattered_ids(n, 142)[5];
  r = index.search(1, x.data() + 5 * d, 1);
  CHECK(r.ids[0] == victim);
  CHECK(index.remove({victim}) == 1);
  CHECK(index.size() == n - 1);
  CHECK_FALSE(index.contains(victim));
  r = index.search(1, x.data() + 5 * d, 50);
  for (int64_t id : r.ids) CHECK(id != victim);
  CHECK_THROWS_AS(index.reconstruct(victim), InvalidArgument);
  // Re-adding a removed id works; adding a present one does not.
  index.add(1, x.data() + 5 * d, &victim);
  CHECK(index.search(1, x.data() + 5 * d, 1).ids[0] == victim);
  CHECK_THROWS_AS(index.add(1, x.data(), &victim), InvalidArgument);
  CHECK(index.size() == n);

  // k > size pads.
  HnswIndex small(d);
  small.add(3, x.data());
  r = small.search(1, x.data(), 5);
  CHECK(r.ids[3] == -1);
  CHECK(r.ids[4] == -1);
  CHECK(r.scores[4] == kNegInf);
  CHECK_THROWS_AS(HnswIndex(d, {.M = 1}), InvalidArgument);
}

TEST_CASE("HnswIndex: recall matches hnswlib's own inner-product space", "[index][hnsw]") {
  Restore restore;
  set_num_threads(1);
  const int64_t n = 3000, d = 32, nq = 100, k = 10;
  const auto x = random_vectors(n, d, 161);
  const auto q = random_vectors(nq, d, 162);
  FlatIndex exact(d, Metric::inner_product);
  exact.add(n, x.data());
  const SearchResult truth = exact.search(nq, q.data(), k);
  HnswIndex ours(d, {.M = 8, .ef_construction = 64, .ef_search = 32, .seed = 100},
                 Metric::inner_product);
  ours.add(n, x.data());
  hnswlib::InnerProductSpace space(static_cast<std::size_t>(d));
  hnswlib::HierarchicalNSW<float> raw(&space, static_cast<std::size_t>(n), 8, 64, 100);
  for (int64_t i = 0; i < n; ++i) raw.addPoint(x.data() + i * d, static_cast<std::size_t>(i));
  raw.setEf(32);
  const SearchResult got = ours.search(nq, q.data(), k);
  int64_t hit_ours = 0, hit_raw = 0;
  for (int64_t i = 0; i < nq; ++i) {
    const auto b = truth.ids.begin() + i * k, e = b + k;
    for (int64_t j = 0; j < k; ++j) hit_ours += std::find(b, e, got.id(i, j)) != e;
    auto pq = raw.searchKnn(q.data() + i * d, static_cast<std::size_t>(k));
    for (; !pq.empty(); pq.pop())
      hit_raw += std::find(b, e, static_cast<int64_t>(pq.top().second)) != e;
  }
  const double r_ours = static_cast<double>(hit_ours) / (nq * k);
  const double r_raw = static_cast<double>(hit_raw) / (nq * k);
  INFO("recall@10: imgsim " << r_ours << ", hnswlib " << r_raw);
  CHECK(r_ours >= r_raw - 0.05);
  CHECK(r_ours > 0.5);
}
