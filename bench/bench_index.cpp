// Similarity-index benchmarks (docs/index.md): the inner-product kernels of every ISA this CPU
// runs (ref, scalar = portable, avx2, avx512) on the tile shapes FlatIndex uses, FlatIndex search
// for one query and for a batch with 1 and 2 threads, and HnswIndex search. FLOP/s counters count
// 2 * d per (query, row) pair. For the 1M x 128 comparison with faiss see index_compare.cpp.
//
//   ./bench_index --benchmark_filter='ip_tile' --benchmark_min_time=0.2
#include <benchmark/benchmark.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "imgsim/rng.hpp"
#include "imgsim/runtime/cpu.hpp"
#include "imgsim/similarity/index.hpp"
#include "kernels/distance.hpp"

namespace {

using imgsim::Isa;
namespace k = imgsim::kernels;
namespace sim = imgsim::similarity;

std::vector<float> random_unit(int64_t n, int64_t d, uint64_t seed) {
  imgsim::Rng rng(seed);
  std::vector<float> v(static_cast<std::size_t>(n * d));
  for (float& x : v) x = rng.normal();
  sim::normalize_rows(n, d, v.data());
  return v;
}

// One kernel call: nq queries (L1) against nx rows (L2), as FlatIndex's inner loop.
void ip_tile(benchmark::State& state, k::IpTileFn fn, int64_t nq, int64_t nx, int64_t d) {
  const auto q = random_unit(nq, d, 1), x = random_unit(nx, d, 2);
  std::vector<float> out(static_cast<std::size_t>(nq * nx));
  for (auto _ : state) {
    fn(q.data(), nq, d, x.data(), nx, d, d, out.data(), nx);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.counters["FLOP/s"] = benchmark::Counter(2.0 * static_cast<double>(nq * nx * d),
                                                benchmark::Counter::kIsIterationInvariantRate);
}

// One query against nx binary16 rows (the prefilter's pass).
void ip_f16(benchmark::State& state, k::IpF16Fn fn, int64_t nx, int64_t d) {
  const auto q = random_unit(1, d, 1), xf = random_unit(nx, d, 2);
  std::vector<uint16_t> x(xf.size());
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = k::f32_to_f16(xf[i]);
  std::vector<float> out(static_cast<std::size_t>(nx));
  for (auto _ : state) {
    fn(q.data(), x.data(), nx, d, d, out.data());
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.counters["FLOP/s"] = benchmark::Counter(2.0 * static_cast<double>(nx * d),
                                                benchmark::Counter::kIsIterationInvariantRate);
}

void dot(benchmark::State& state, k::DotFn fn, int64_t d) {
  const auto a = random_unit(1, d, 3), b = random_unit(64, d, 4);
  float s = 0.0f;
  for (auto _ : state) {
    for (int64_t j = 0; j < 64; ++j) s += fn(a.data(), b.data() + j * d, d);
    benchmark::DoNotOptimize(s);
  }
  state.counters["FLOP/s"] = benchmark::Counter(2.0 * static_cast<double>(64 * d),
                                                benchmark::Counter::kIsIterationInvariantRate);
}

// Shared between benchmarks: built once.
const sim::FlatIndex& flat_index(int64_t n, int64_t d) {
  static std::unique_ptr<sim::FlatIndex> index;
  if (!index || index->size() != n || index->dim() != d) {
    index = std::make_unique<sim::FlatIndex>(d, sim::Metric::inner_product);
    index->add(n, random_unit(n, d, 5).data());
  }
  return *index;
}

void flat_search(benchmark::State& state, int64_t n, int64_t d, int64_t nq, int threads) {
  const int saved = imgsim::num_threads();
  imgsim::set_num_threads(threads);
  const auto& index = flat_index(n, d);
  const auto q = random_unit(nq, d, 6);
  for (auto _ : state) benchmark::DoNotOptimize(index.search(nq, q.data(), 10));
  state.counters["FLOP/s"] = benchmark::Counter(2.0 * static_cast<double>(n * d * nq),
                                                benchmark::Counter::kIsIterationInvariantRate);
  state.counters["queries/s"] =
      benchmark::Counter(static_cast<double>(nq), benchmark::Counter::kIsIterationInvariantRate);
  imgsim::set_num_threads(saved);
}

void hnsw_search(benchmark::State& state, int64_t n, int64_t d, int64_t ef) {
  static std::unique_ptr<sim::HnswIndex> index;
  if (!index) {
    index = std::make_unique<sim::HnswIndex>(
        d, sim::HnswParams{.M = 16, .ef_construction = 100, .ef_search = 64, .seed = 1},
        sim::Metric::inner_product);
    index->add(n, random_unit(n, d, 7).data());
  }
  index->set_ef_search(ef);
  const int64_t nq = 64;
  const auto q = random_unit(nq, d, 8);
  for (auto _ : state) benchmark::DoNotOptimize(index->search(nq, q.data(), 10));
  state.counters["queries/s"] =
      benchmark::Counter(static_cast<double>(nq), benchmark::Counter::kIsIterationInvariantRate);
}

int register_all() {
  struct Entry {
    const char* name;
    k::IpTileFn tile;
    k::DotFn dot;
    k::IpF16Fn f16;
  };
  std::vector<Entry> entries = {{"ref", &k::ref::ip_tile, &k::ref::dot, &k::ref::ip_f16}};
  for (Isa isa : {Isa::scalar, Isa::avx2, Isa::avx512})
    if (static_cast<int>(isa) <= static_cast<int>(imgsim::detected_isa()))
      entries.push_back({imgsim::to_string(isa), k::distance_kernels_for(isa).ip_tile,
                         k::distance_kernels_for(isa).dot, k::distance_kernels_for(isa).ip_f16});
  for (const Entry& e : entries) {
    for (auto [nq, nx, d] : {std::tuple<int64_t, int64_t, int64_t>{16, 256, 128},
                             {1, 256, 128},
                             {16, 512, 64},
                             {16, 256, 129}}) {
      const std::string name = std::string("ip_tile/") + e.name + "/" + std::to_string(nq) + "x" +
                               std::to_string(nx) + "x" + std::to_string(d);
      benchmark::RegisterBenchmark(name.c_str(), ip_tile, e.tile, nq, nx, d);
    }
    benchmark::RegisterBenchmark((std::string("ip_f16/") + e.name + "/1x256x128").c_str(), ip_f16,
                                 e.f16, 256, 128);
    for (int64_t d : {64, 128})
      benchmark::RegisterBenchmark((std::string("dot/") + e.name + "/" + std::to_string(d)).c_str(),
                                   dot, e.dot, d);
  }
  for (int threads : {1, 2})
    for (int64_t nq : {1, 64}) {
      const std::string name =
          "flat_search/200000x128/nq:" + std::to_string(nq) + "/threads:" + std::to_string(threads);
      benchmark::RegisterBenchmark(name.c_str(), flat_search, 200000, 128, nq, threads)
          ->UseRealTime();
    }
  for (int64_t ef : {32, 128})
    benchmark::RegisterBenchmark(("hnsw_search/20000x64/ef:" + std::to_string(ef)).c_str(),
                                 hnsw_search, 20000, 64, ef)
        ->UseRealTime();
  return 0;
}

const int registered = register_all();

}  // namespace

BENCHMARK_MAIN();
