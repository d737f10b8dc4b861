// Fast SGEMMs (every ISA this CPU runs) against the naive reference ref::sgemm.
//
// Tolerance, per element (documented in docs/kernels.md): both results are float sums of K
// products, summed in different orders (the blocked kernels use FMA and add one K block at a
// time), so each is within about (K + 4) u (|alpha| S + |beta| |C0|) of the exact value, where
// u = 2^-24 and S = sum_k |op(A)_ik op(B)_kj| (computed in double). We allow their difference
//   |fast - ref| <= (2 K + 16) u (|alpha| S + |beta| |C0|).
// A dropped or doubled term (of size ~S/K) or a wrong alpha/beta breaks this by orders of
// magnitude. Everything outside the C matrix (padding columns, the float before an offset base)
// is filled with a sentinel and must come back untouched; with beta == 0, C starts as NaN.
#include <atomic>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "imgsim/error.hpp"
#include "imgsim/runtime/cpu.hpp"
#include "kernels/kernels.hpp"
#include "kernels/thread_pool.hpp"

using namespace imgsim;
using namespace imgsim::kernels;

namespace {

constexpr float kSentinel = 12345.5f;

struct Case {
  bool ta = false, tb = false;
  int64_t M = 1, N = 1, K = 1;
  float alpha = 1.0f, beta = 0.0f;
  int64_t pad = 0;     // added to lda, ldb and ldc (different multiples of it)
  int64_t offset = 0;  // floats before each base pointer (1: not 64-byte aligned)
};

std::string describe(const Case& c) {
  std::ostringstream os;
  os << "ta=" << c.ta << " tb=" << c.tb << " M=" << c.M << " N=" << c.N << " K=" << c.K
     << " alpha=" << c.alpha << " beta=" << c.beta << " pad=" << c.pad << " offset=" << c.offset;
  return os.str();
}

// Operands and both results for one case.
struct Problem {
  Case c;
  int64_t lda, ldb, ldc;
  std::vector<float> a, b, c0, bound;

  Problem(const Case& cs, std::mt19937& rng) : c(cs) {
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    const int64_t a_rows = c.ta ? c.K : c.M, a_cols = c.ta ? c.M : c.K;
    const int64_t b_rows = c.tb ? c.N : c.K, b_cols = c.tb ? c.K : c.N;
    lda = a_cols + c.pad;
    ldb = b_cols + 2 * c.pad;
    ldc = c.N + 3 * c.pad;
    a.resize(static_cast<size_t>(c.offset + a_rows * lda + 1));
    b.resize(static_cast<size_t>(c.offset + b_rows * ldb + 1));
    for (float& x : a) x = u(rng);
    for (float& x : b) x = u(rng);
    c0.assign(static_cast<size_t>(c.offset + c.M * ldc + 1), kSentinel);
    for (int64_t i = 0; i < c.M; ++i)
      for (int64_t j = 0; j < c.N; ++j)
        c0[idx_c(i, j)] = c.beta == 0.0f ? std::numeric_limits<float>::quiet_NaN() : u(rng);
    bound.resize(static_cast<size_t>(c.M * c.N));
    const double ulp = std::ldexp(1.0, -24);
    for (int64_t i = 0; i < c.M; ++i)
      for (int64_t j = 0; j < c.N; ++j) {
        double s = 0;
        for (int64_t k = 0; k < c.K; ++k) s += std::fabs(double(op_a(i, k)) * double(op_b(k, j)));
        const double c_term = c.beta == 0.0f ? 0.0 : std::fabs(double(c.beta) * c0[idx_c(i, j)]);
        bound[static_cast<size_t>(i * c.N + j)] = static_cast<float>(
            (2.0 * double(c.K) + 16.0) * ulp * (std::fabs(double(c.alpha)) * s + c_term) + 1e-30);
      }
  }
  size_t idx_c(int64_t i, int64_t j) const { return static_cast<size_t>(c.offset + i * ldc + j); }
  float op_a(int64_t i, int64_t k) const {
    return a[static_cast<size_t>(c.offset + (c.ta ? k * lda + i : i * lda + k))];
  }
  float op_b(int64_t k, int64_t j) const {
    return b[static_cast<size_t>(c.offset + (c.tb ? j * ldb + k : k * ldb + j))];
  }
  std::vector<float> run(SgemmFn fn) const {
    std::vector<float> out = c0;
    fn(c.ta, c.tb, c.M, c.N, c.K, c.alpha, a.data() + c.offset, lda, b.data() + c.offset, ldb,
       c.beta, out.data() + c.offset, ldc);
    return out;
  }
};

// Number of elements of `got` that are outside the bound (or touched outside C).
int64_t count_bad(const Problem& p, const std::vector<float>& got, const std::vector<float>& want) {
  int64_t bad = 0;
  std::vector<char> inside(got.size(), 0);
  for (int64_t i = 0; i < p.c.M; ++i)
    for (int64_t j = 0; j < p.c.N; ++j) {
      const size_t at = p.idx_c(i, j);
      inside[at] = 1;
      const float d = std::fabs(got[at] - want[at]);
      if (!(d <= p.bound[static_cast<size_t>(i * p.c.N + j)]) || !std::isfinite(got[at])) {
        if (bad < 3)
          UNSCOPED_INFO("C(" << i << "," << j << ") = " << got[at] << ", reference " << want[at]
                             << ", bound " << p.bound[static_cast<size_t>(i * p.c.N + j)]);
        ++bad;
      }
    }
  for (size_t at = 0; at < got.size(); ++at)
    if (!inside[at] && got[at] != kSentinel) {
      if (bad < 3) UNSCOPED_INFO("wrote outside C at flat index " << at);
      ++bad;
    }
  return bad;
}

std::vector<Isa> runnable_isas() {
  std::vector<Isa> v;
  for (Isa isa : {Isa::scalar, Isa::avx2, Isa::avx512})
    if (static_cast<int>(isa) <= static_cast<int>(detected_isa())) v.push_back(isa);
  return v;
}

// Checks one case on every runnable ISA against the reference.
void check_all_isas(const Case& c, std::mt19937& rng) {
  const Problem p(c, rng);
  const std::vector<float> want = p.run(&ref::sgemm);
  for (Isa isa : runnable_isas()) {
    const KernelTable& t = table_for(isa);
    INFO(t.sgemm_name << ": " << describe(c));
    CHECK(count_bad(p, p.run(t.sgemm), want) == 0);
  }
}

const int64_t kSizes[] = {1, 2, 3, 5, 7, 13, 15, 16, 17, 31, 33, 47, 64, 65, 97, 128, 257};

}  // namespace

TEST_CASE("sgemm: M and N around tile widths and primes, all transposes", "[kernels][gemm]") {
  std::mt19937 rng(20240601);
  int64_t n_case = 0;
  for (int64_t K : {1, 5, 16, 33, 257})
    for (int64_t M : kSizes)
      for (int64_t N : kSizes)
        for (int t = 0; t < 4; ++t) {
          Case c;
          c.ta = t & 1;
          c.tb = t & 2;
          c.M = M;
          c.N = N;
          c.K = K;
          c.pad = n_case % 3 == 0 ? 0 : 1 + n_case % 5;
          c.offset = n_case % 2;
          ++n_case;
          check_all_isas(c, rng);
        }
}

TEST_CASE("sgemm: alpha and beta, padded leading dimensions, unaligned bases", "[kernels][gemm]") {
  std::mt19937 rng(7);
  struct Mnk {
    int64_t M, N, K;
  };
  for (Mnk s : {Mnk{13, 97, 31}, Mnk{64, 65, 47}, Mnk{1, 257, 7}, Mnk{97, 33, 300}, Mnk{8, 48, 4}})
    for (float alpha : {1.0f, -0.75f, 2.0f})
      for (float beta : {0.0f, 1.0f, -1.5f, 0.25f})
        for (int t = 0; t < 4; ++t) {
          Case c;
          c.ta = t & 1;
          c.tb = t & 2;
          c.M = s.M;
          c.N = s.N;
          c.K = s.K;
          c.alpha = alpha;
          c.beta = beta;
          c.pad = 3;
          c.offset = 1;
          check_all_isas(c, rng);
        }
}

TEST_CASE("sgemm: sizes that cross the cache blocks (MC, KC, NC)", "[kernels][gemm]") {
  std::mt19937 rng(99);
  struct Mnk {
    int64_t M, N, K;
  };
  for (Mnk s : {Mnk{257, 65, 513}, Mnk{7, 3100, 20}, Mnk{130, 2100, 9}, Mnk{33, 49, 1030}})
    for (int t = 0; t < 4; ++t) {
      Case c;
      c.ta = t & 1;
      c.tb = t & 2;
      c.M = s.M;
      c.N = s.N;
      c.K = s.K;
      c.beta = t == 3 ? 0.5f : 0.0f;
      c.pad = 1;
      c.offset = 1;
      check_all_isas(c, rng);
    }
}

TEST_CASE("sgemm: K == 0 scales C by beta; empty M or N leaves C alone", "[kernels][gemm]") {
  std::mt19937 rng(3);
  for (float beta : {0.0f, 1.0f, 2.0f}) {
    Case c;
    c.M = 5;
    c.N = 19;
    c.K = 0;
    c.beta = beta;
    c.pad = 2;
    c.offset = 1;
    check_all_isas(c, rng);  // bound is 1e-30 here: must be exact
  }
  for (Isa isa : runnable_isas()) {
    float cval = 4.0f;
    const float a = 1.0f, b = 1.0f;
    table_for(isa).sgemm(false, false, 0, 1, 1, 1.0f, &a, 1, &b, 1, 0.0f, &cval, 1);
    table_for(isa).sgemm(false, false, 1, 0, 1, 1.0f, &a, 1, &b, 1, 0.0f, &cval, 1);
    CHECK(cval == 4.0f);
  }
}

TEST_CASE("sgemm: 1 and 2 threads agree with the reference and with each other",
          "[kernels][gemm][threads]") {
  std::mt19937 rng(11);
  const int saved = num_threads();
  struct Mnk {
    int64_t M, N, K;
  };
  // The first shape is split over N, the second over M (N too narrow), the third over N in
  // whole vectors (a few AVX-512 slivers, wider than M: a dense layer's forward), the last is
  // below the parallel threshold and runs on one thread.
  for (Mnk s : {Mnk{64, 3001, 100}, Mnk{301, 40, 1000}, Mnk{24, 131, 6000}, Mnk{9, 10, 11}})
    for (int t = 0; t < 4; ++t) {
      Case c;
      c.ta = t & 1;
      c.tb = t & 2;
      c.M = s.M;
      c.N = s.N;
      c.K = s.K;
      c.beta = t == 2 ? -1.0f : 0.0f;
      c.offset = 1;
      const Problem p(c, rng);
      const std::vector<float> want = p.run(&ref::sgemm);
      for (Isa isa : runnable_isas()) {
        const KernelTable& tab = table_for(isa);
        INFO(tab.sgemm_name << ": " << describe(c));
        set_num_threads(1);
        const std::vector<float> one = p.run(tab.sgemm);
        set_num_threads(2);
        const std::vector<float> two = p.run(tab.sgemm);
        CHECK(count_bad(p, one, want) == 0);
        CHECK(count_bad(p, two, want) == 0);
        // Each C element is computed by the same instructions whichever thread owns its block,
        // so the results are bitwise equal (docs/kernels.md, "Threading").
        CHECK(one == two);
      }
    }
  set_num_threads(saved);
}

TEST_CASE("sgemm_packed_a: the bits of sgemm with A packed once, on 1 and 2 threads",
          "[kernels][gemm][threads]") {
  std::mt19937 rng(23);
  const int saved = num_threads();
  struct Mnk {
    int64_t M, N, K;
  };
  // Around the register tiles, across the cache blocks (M past MC = 120, K past KC = 256 and
  // unequal K blocks, N past NC), the Winograd chunks' shapes, and one large enough to be split
  // over threads (by N, the only split with a packed A).
  for (Mnk s : {Mnk{1, 1, 1}, Mnk{5, 17, 3}, Mnk{7, 33, 13}, Mnk{64, 96, 32}, Mnk{128, 96, 64},
                Mnk{130, 47, 300}, Mnk{257, 65, 513}, Mnk{13, 3100, 20}, Mnk{64, 3001, 100}})
    for (int v = 0; v < 3; ++v) {
      Case c;
      c.M = s.M;
      c.N = s.N;
      c.K = s.K;
      c.alpha = v == 2 ? -0.75f : 1.0f;
      c.beta = v == 0 ? 0.0f : (v == 1 ? 1.0f : 0.5f);
      c.pad = v;
      c.offset = v % 2;
      const Problem p(c, rng);
      const std::vector<float> want = p.run(&ref::sgemm);
      for (Isa isa : runnable_isas()) {
        const KernelTable& tab = table_for(isa);
        INFO(tab.sgemm_name << ": " << describe(c));
        const int64_t floats = tab.packed_a_floats(c.M, c.K);
        REQUIRE(floats >= c.M * c.K);
        std::vector<float> ap(static_cast<size_t>(floats + 1), kSentinel);
        tab.pack_gemm_a(c.M, c.K, p.a.data() + c.offset, p.lda, ap.data());
        CHECK(ap.back() == kSentinel);  // nothing past packed_a_floats
        auto run_packed = [&] {
          std::vector<float> out = p.c0;
          tab.sgemm_packed_a(c.M, c.N, c.K, c.alpha, ap.data(), p.b.data() + c.offset, p.ldb,
                             c.beta, out.data() + c.offset, p.ldc);
          return out;
        };
        set_num_threads(1);
        const std::vector<float> unpacked = p.run(tab.sgemm), one = run_packed();
        set_num_threads(2);
        const std::vector<float> two = run_packed();
        CHECK(count_bad(p, one, want) == 0);
        CHECK(one == unpacked);
        CHECK(two == one);
      }
    }
  set_num_threads(saved);
}

TEST_CASE("thread pool: every index exactly once, nesting, exceptions", "[kernels][threads]") {
  const int saved = num_threads();
  for (int threads : {1, 2, 3}) {
    set_num_threads(threads);
    std::vector<std::atomic<int>> hits(1000);
    parallel_for(1000, [&](int64_t i) { hits[static_cast<size_t>(i)].fetch_add(1); });
    int64_t wrong = 0;
    for (auto& h : hits) wrong += h.load() != 1;
    CHECK(wrong == 0);

    std::atomic<int64_t> inner{0};
    std::atomic<int> outside{0};  // Catch2 assertions are not thread-safe: count instead
    parallel_for(8, [&](int64_t) {
      if (!in_parallel_region()) outside.fetch_add(1);
      parallel_for(10, [&](int64_t j) { inner.fetch_add(j); });  // runs inline
    });
    CHECK(inner.load() == 8 * 45);
    CHECK(outside.load() == 0);
    CHECK_FALSE(in_parallel_region());

    int calls = 0;
    parallel_for(0, [&](int64_t) { ++calls; });
    CHECK(calls == 0);

    CHECK_THROWS_AS(parallel_for(16,
                                 [&](int64_t i) {
                                   if (i == 5) throw std::runtime_error("task 5");
                                 }),
                    std::runtime_error);
    // The pool still works after an exception.
    std::atomic<int> after{0};
    parallel_for(4, [&](int64_t) { after.fetch_add(1); });
    CHECK(after.load() == 4);
  }
  CHECK_THROWS_AS(set_num_threads(0), InvalidArgument);
  set_num_threads(saved);
}

TEST_CASE("thread pool: many short jobs from two submitting threads", "[kernels][threads]") {
  const int saved = num_threads();
  set_num_threads(3);
  // Short jobs make workers wake up after their job is already finished (the caller did it);
  // a second submitter finds the pool busy and runs inline. Every job must still see each of its
  // indices exactly once.
  auto hammer = [](int64_t jobs, std::atomic<int64_t>& wrong) {
    for (int64_t r = 0; r < jobs; ++r) {
      std::atomic<int64_t> sum{0};
      const int64_t n = 1 + r % 7;
      parallel_for(n, [&](int64_t i) { sum.fetch_add(i + 1); });
      if (sum.load() != n * (n + 1) / 2) wrong.fetch_add(1);
    }
  };
  std::atomic<int64_t> wrong{0};
  std::thread other([&] { hammer(3000, wrong); });
  hammer(3000, wrong);
  other.join();
  CHECK(wrong.load() == 0);
  set_num_threads(saved);
}

TEST_CASE("dispatch: set_max_isa caps the table, names are validated", "[kernels][dispatch]") {
  const Isa det = detected_isa();
  INFO("detected " << to_string(det));
  for (Isa cap : {Isa::scalar, Isa::avx2, Isa::avx512}) {
    set_max_isa(cap);
    const Isa want = static_cast<int>(cap) < static_cast<int>(det) ? cap : det;
    CHECK(active_isa() == want);
    CHECK(table().isa == table_for(want).isa);
    CHECK(table().sgemm == table_for(want).sgemm);
  }
  set_max_isa(Isa::avx512);
  CHECK(active_isa() == det);
  CHECK(table_for(Isa::scalar).isa == Isa::scalar);
  if (det != Isa::avx512) CHECK_THROWS_AS(table_for(Isa::avx512), InvalidArgument);

  for (Isa isa : {Isa::scalar, Isa::avx2, Isa::avx512})
    CHECK(isa_from_string(to_string(isa)) == isa);
  CHECK_THROWS_AS(isa_from_string("AVX2"), InvalidArgument);
  CHECK_THROWS_AS(isa_from_string(""), InvalidArgument);
  CHECK_THROWS_WITH(isa_from_string("sse4"), Catch::Contains("sse4"));
}
