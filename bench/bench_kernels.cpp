// SGEMM benchmarks for every kernel this CPU runs, in one binary: ref (naive loop), scalar
// (portable blocked fallback), avx2, avx512. Shapes are the im2col GEMMs of the conv layers
// (forward C[K x PQ] = W[K x CRS] * col[CRS x PQ]; backward dW = dY * col^T and dcol = W^T * dY)
// and squares. The FLOP/s counter is 2*M*N*K per iteration, over CPU time for the plain names
// (one thread) and over wall time for the names with threads:1 / threads:2 (the pool's size).
//
//   ./bench_kernels --benchmark_filter='avx512' --benchmark_min_time=0.2
#include <benchmark/benchmark.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "imgsim/runtime/cpu.hpp"
#include "kernels/kernels.hpp"

namespace {

using imgsim::Isa;
namespace k = imgsim::kernels;

struct Shape {
  const char* name;
  bool ta, tb;
  int64_t M, N, K;
};

// conv1: 3->32 channels 3x3 on 224x224 (valid: 222x222); conv2: 32->64 on 111x111; conv3:
// 64->128 on 54x54. *_dw and *_dx are the backward GEMMs of conv2.
// clang-format off
const Shape kShapes[] = {
    {"conv1_fwd",       false, false, 32,  222 * 222, 27},
    {"conv1_fwd_n2048", false, false, 32,  2048,      27},  // conv1 with C and B in L2
    {"conv2_fwd",       false, false, 64,  109 * 109, 288},
    {"l2_64x960x144",   false, false, 64,  960,       144},  // everything in L2
    {"conv3_fwd",       false, false, 128, 52 * 52,   576},
    {"conv2_dw",        false, true,  64,  288,       109 * 109},
    {"conv2_dx",        true,  false, 288, 109 * 109, 64},
    {"small_64x256x128", false, false, 64, 256,       128},  // just above the threading threshold
    // One Winograd F(4x4) chunk's GEMM (one of 36), as the seed's conv2 (C 32, K 64, 96 tiles)
    // and conv3 (C 64, K 128, 48 tiles) run them: forward M = U V, weights dU = Z V^T, data
    // M' = U'^T V'.
    {"wino2_fwd",       false, false, 64,  96,        32},
    {"wino2_dw",        false, true,  64,  32,        96},
    {"wino2_dx",        false, false, 32,  96,        64},
    {"wino3_fwd",       false, false, 128, 48,        64},
    {"wino3_dw",        false, true,  128, 64,        48},
    {"wino3_dx",        false, false, 64,  48,        128},
    // The seed model's dense layer (86528 -> 128, batch 32) backward: dW = dz^T x, dx = dz W.
    {"dense1_dw",       true,  false, 128, 86528,     32},
    {"dense1_dx",       false, false, 32,  86528,     128},
    {"square256",       false, false, 256, 256,       256},
    {"square512",       false, false, 512, 512,       512},
    {"square1024",      false, false, 1024, 1024,     1024},
};
// clang-format on

void run(benchmark::State& state, k::SgemmFn fn, Shape s, int threads) {
  const int saved = imgsim::num_threads();
  imgsim::set_num_threads(threads);
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> a(static_cast<size_t>(s.M * s.K)), b(static_cast<size_t>(s.K * s.N)),
      c(static_cast<size_t>(s.M * s.N));
  for (float& x : a) x = u(rng);
  for (float& x : b) x = u(rng);
  const int64_t lda = s.ta ? s.M : s.K, ldb = s.tb ? s.K : s.N;
  for (auto _ : state) {
    fn(s.ta, s.tb, s.M, s.N, s.K, 1.0f, a.data(), lda, b.data(), ldb, 0.0f, c.data(), s.N);
    benchmark::DoNotOptimize(c.data());
    benchmark::ClobberMemory();
  }
  state.counters["FLOP/s"] =
      benchmark::Counter(2.0 * double(s.M) * double(s.N) * double(s.K) * double(state.iterations()),
                         benchmark::Counter::kIsRate);
  imgsim::set_num_threads(saved);
}

void register_all() {
  struct Variant {
    std::string name;
    k::SgemmFn fn;
    bool big_ok;  // the naive loop takes seconds on the largest shapes
  };
  std::vector<Variant> variants{{"ref", &k::ref::sgemm, false}};
  for (Isa isa : {Isa::scalar, Isa::avx2, Isa::avx512})
    if (static_cast<int>(isa) <= static_cast<int>(imgsim::detected_isa()))
      variants.push_back({imgsim::to_string(isa), k::table_for(isa).sgemm, true});
  for (const Variant& v : variants)
    for (const Shape& s : kShapes) {
      if (!v.big_ok && s.M * s.N * s.K > 100'000'000) continue;
      // Single thread over CPU time (least disturbed by other processes), then 1 and 2 threads
      // over wall time, for the threading speed-up.
      const std::string base = "sgemm/" + v.name + "/" + s.name;
      benchmark::RegisterBenchmark(base.c_str(), run, v.fn, s, 1)->Unit(benchmark::kMillisecond);
      if (v.name == "ref") continue;
      for (int threads : {1, 2}) {
        const std::string name = base + "/threads:" + std::to_string(threads);
        benchmark::RegisterBenchmark(name.c_str(), run, v.fn, s, threads)
            ->Unit(benchmark::kMillisecond)
            ->UseRealTime();
      }
    }
}

}  // namespace

int main(int argc, char** argv) {
  register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
