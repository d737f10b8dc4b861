// Measures this machine's FP32 FMA peak: independent FMA chains (enough accumulators to cover the
// FMA latency on every port), AVX2 (8 floats per FMA) and AVX-512 (16 floats per FMA), on one
// thread and on IMGSIM_PEAK_THREADS (default 2) threads. Prints GFLOP/s (1 FMA = 2 FLOP).
//
// The SIMD loops use function-level target attributes and run only if the CPU has the ISA, so the
// program itself is built with the project's baseline flags.
#include <immintrin.h>

#include <time.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

namespace {

constexpr int64_t kIters = 200'000'000 / 12;

// 12 independent accumulators: latency 4 x 2 ports = 8 in flight is the minimum on current cores;
// 12 leaves margin. Each iteration does 12 FMAs of kLanes floats.
__attribute__((target("avx2,fma"), noinline)) float run_avx2(int64_t iters) {
  __m256 acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = _mm256_set1_ps(0.001f * static_cast<float>(i));
  const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
  for (int64_t it = 0; it < iters; ++it) {
#pragma GCC unroll 12
    for (int i = 0; i < 12; ++i) acc[i] = _mm256_fmadd_ps(acc[i], a, b);
  }
  __m256 s = acc[0];
  for (int i = 1; i < 12; ++i) s = _mm256_add_ps(s, acc[i]);
  return _mm256_cvtss_f32(s);
}

__attribute__((target("avx512f"), noinline)) float run_avx512(int64_t iters) {
  __m512 acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = _mm512_set1_ps(0.001f * static_cast<float>(i));
  const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
  for (int64_t it = 0; it < iters; ++it) {
#pragma GCC unroll 12
    for (int i = 0; i < 12; ++i) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
  }
  __m512 s = acc[0];
  for (int i = 1; i < 12; ++i) s = _mm512_add_ps(s, acc[i]);
  alignas(64) float out[16];
  _mm512_store_ps(out, s);
  return out[0] + out[15];
}

volatile float g_sink;

double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

struct Rate {
  double wall = 0;  // total GFLOP/s over wall-clock time
  double cpu = 0;   // GFLOP/s per thread over that thread's CPU time (robust on a shared machine)
};

// `threads` threads each run fn(kIters); best of `reps`.
Rate measure(float (*fn)(int64_t), int lanes, int threads, int reps) {
  Rate best;
  const double flops_per_thread = 2.0 * 12.0 * lanes * static_cast<double>(kIters);
  for (int r = 0; r < reps; ++r) {
    std::vector<double> cpu(static_cast<size_t>(threads));
    auto body = [&cpu, fn](int t) {
      const double c0 = thread_cpu_seconds();
      g_sink = fn(kIters);
      cpu[static_cast<size_t>(t)] = thread_cpu_seconds() - c0;
    };
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<std::thread> pool;
    for (int t = 1; t < threads; ++t) pool.emplace_back(body, t);
    body(0);
    for (auto& th : pool) th.join();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    double worst_cpu = 0;
    for (double c : cpu) worst_cpu = c > worst_cpu ? c : worst_cpu;
    if (flops_per_thread * threads / s > best.wall) best.wall = flops_per_thread * threads / s;
    if (flops_per_thread / worst_cpu > best.cpu) best.cpu = flops_per_thread / worst_cpu;
  }
  best.wall *= 1e-9;
  best.cpu *= 1e-9;
  return best;
}

void report(const char* isa, float (*fn)(int64_t), int lanes, int threads) {
  const Rate one = measure(fn, lanes, 1, 3), many = measure(fn, lanes, threads, 3);
  std::printf("%-9s 1 thread : %7.1f GFLOP/s wall, %7.1f GFLOP/s per thread CPU time\n", isa,
              one.wall, one.cpu);
  std::printf("%-9s %d threads: %7.1f GFLOP/s wall, %7.1f GFLOP/s per thread CPU time\n", isa,
              threads, many.wall, many.cpu);
}

}  // namespace

int main() {
  const char* env = std::getenv("IMGSIM_PEAK_THREADS");
  const int threads = env ? std::atoi(env) : 2;
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    report("avx2+fma", run_avx2, 8, threads);
  else
    std::printf("avx2+fma: not supported by this CPU\n");
  if (__builtin_cpu_supports("avx512f"))
    report("avx512f", run_avx512, 16, threads);
  else
    std::printf("avx512f: not supported by this CPU\n");
  return 0;
}
