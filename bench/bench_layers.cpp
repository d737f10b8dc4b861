// Per-layer benchmarks (Google Benchmark) of the seed model (batch 32) and the Fashion-MNIST
// model (batch 64): each convolution's forward, backward-data and backward-weights apart, max
// pooling forward and backward, dense forward and backward; every ISA this CPU runs, in one
// binary (set_max_isa). Counters: FLOP/s (2 per multiply-add of the layer's arithmetic; 0 for
// pooling) and, for the conv and dense entries, the share of the FMA peak given with
// --peak_gflops (default 117, bench/peak_fma on the machine in docs/benchmarks.md).
//
// Each convolution followed by pooling also runs as the model runs them, fused by Sequential
// (docs/layers-conv-pool.md): layer/<model>_conv<i>_pool/fwd|bwd (bwd: dW and db, and dx except
// for a first layer; FLOP/s counts each pass's multiply-adds); run with IMGSIM_FUSE=0 for the
// two layers one after the other through the same Sequential.
//
// Names: layer/<model>_<layer>/<pass>/<isa>[/threads:2]. The plain names run on one thread and
// report rates over CPU time (least disturbed by other processes); threads:2 runs the pool with
// two threads and reports rates over wall time. proc_cpu_ms is the process's CPU time per call,
// all threads: on threads:2 against the plain entry, the work threading adds.
//
//   bench_layers --benchmark_filter='seed_conv2/.*/avx512$' --benchmark_min_time=1
#include <benchmark/benchmark.h>
#include <sys/resource.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "imgsim/nn/layers.hpp"
#include "imgsim/nn/sequential.hpp"
#include "imgsim/rng.hpp"
#include "imgsim/runtime/cpu.hpp"

namespace {

using namespace imgsim;
using namespace imgsim::nn;

double g_peak_gflops = 117.0;

enum class Pass { fwd, bwd_data, bwd_weights, bwd };

const char* pass_name(Pass p) {
  switch (p) {
    case Pass::fwd:
      return "fwd";
    case Pass::bwd_data:
      return "bwd_data";
    case Pass::bwd_weights:
      return "bwd_weights";
    case Pass::bwd:
      return "bwd";
  }
  return "?";
}

enum class Kind { conv, pool, dense, conv_pool };

struct LayerCase {
  const char* name;
  Kind kind;
  int64_t n;
  Shape in;           // per sample
  int64_t units;      // conv filters or dense units
  bool same = false;  // conv: 'same' padding (else valid)
};

// clang-format off
const LayerCase kCases[] = {
    {"seed_conv1",    Kind::conv,  32, {3, 224, 224},  32},
    {"seed_conv2",    Kind::conv,  32, {32, 111, 111}, 64},
    {"seed_conv3",    Kind::conv,  32, {64, 54, 54},   128},
    {"seed_pool1",    Kind::pool,  32, {32, 222, 222}, 0},
    {"seed_pool2",    Kind::pool,  32, {64, 109, 109}, 0},
    {"seed_pool3",    Kind::pool,  32, {128, 52, 52},  0},
    {"seed_dense1",   Kind::dense, 32, {86528},        128},
    {"seed_conv1_pool",   Kind::conv_pool, 32, {3, 224, 224}, 32},
    {"seed_conv2_pool",   Kind::conv_pool, 32, {32, 111, 111}, 64},
    {"seed_conv3_pool",   Kind::conv_pool, 32, {64, 54, 54},   128},
    {"fmnist_conv1",  Kind::conv,  64, {1, 28, 28},    32},
    {"fmnist_conv2",  Kind::conv,  64, {32, 13, 13},   64},
    {"fmnist_pool1",  Kind::pool,  64, {32, 26, 26},   0},
    {"fmnist_dense1", Kind::dense, 64, {1600},         128},
    {"fmnist_conv1_pool", Kind::conv_pool, 64, {1, 28, 28},   32},
    {"fmnist_conv2_pool", Kind::conv_pool, 64, {32, 13, 13},  64},
    // The 3x3 'same' convolutions with C >= 32 of the models `imgsim train` builds: a
    // Fashion-MNIST model (--width 32 --depth 2, batch 128) and the default model (64x64 gray,
    // --width 32, batch 2 x 128 views).
    {"train_conv28",   Kind::conv, 128, {32, 28, 28},  32,  true},
    {"train_conv14",   Kind::conv, 128, {64, 14, 14},  64,  true},
    {"train_conv7",    Kind::conv, 128, {128, 7, 7},   128, true},
    {"default_conv32", Kind::conv, 256, {32, 32, 32},  64,  true},
    {"default_conv16", Kind::conv, 256, {64, 16, 16},  128, true},
    {"default_conv8",  Kind::conv, 256, {128, 8, 8},   256, true},
};
// clang-format on

void fill(Tensor& t, Rng& rng, float lo, float hi) {
  for (int64_t i = 0; i < t.numel(); ++i) t[i] = rng.uniform(lo, hi);
}

// Sets the counters for `flops` per iteration.
// CPU time of the whole process (every thread), in milliseconds.
double process_cpu_ms() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return 1e3 * (double(u.ru_utime.tv_sec + u.ru_stime.tv_sec)) +
         1e-3 * double(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

// "proc_cpu_ms": the process's CPU time per call, all threads (the pool's threads block when
// idle, so waiting is not counted). On 2 threads, against the 1-thread time, it tells the work
// that threading adds apart from the wall time, which on a shared machine also depends on when
// the second vCPU is free.
void set_process_cpu(benchmark::State& state, double cpu0) {
  if (state.iterations() > 0)
    state.counters["proc_cpu_ms"] = (process_cpu_ms() - cpu0) / double(state.iterations());
}

void set_rates(benchmark::State& state, double flops) {
  if (flops <= 0) return;
  state.counters["FLOP/s"] =
      benchmark::Counter(flops * double(state.iterations()), benchmark::Counter::kIsRate);
  // Share of the single-core peak (for threads:2 the rate is over wall time, so up to 2).
  state.counters["peak"] = benchmark::Counter(
      flops * double(state.iterations()) / (g_peak_gflops * 1e9), benchmark::Counter::kIsRate);
}

// Conv2D(relu, valid) + MaxPool2D(2) as a model's first layers, through Sequential.
void run_pair(benchmark::State& state, LayerCase c, Pass pass, Isa isa, int threads) {
  set_max_isa(isa);
  const int saved = num_threads();
  set_num_threads(threads);
  Sequential m;
  m.add(Conv2D(c.units, {3, 3}, {.activation = Activation::relu, .input_shape = c.in}));
  m.add(MaxPool2D({2, 2}));
  m.build(c.in, 1);
  Rng rng(1);
  Tensor x(c.in.with_batch(c.n));
  fill(x, rng, 0.0f, 1.0f);
  Tensor dy(m.forward(x, Phase::train).shape());
  fill(dy, rng, -1.0f, 1.0f);
  // A model's first layer (3 or 1 channels) computes no dx; the later pairs do.
  const bool with_dx = c.in[0] > 3;
  Tensor dx(with_dx ? x.shape() : Shape{0});
  const double cpu0 = process_cpu_ms();
  for (auto _ : state) {
    if (pass == Pass::fwd) {
      m.forward(x, Phase::train);
    } else {
      m.backward(dy, with_dx ? &dx : nullptr);
    }
    benchmark::ClobberMemory();
  }
  const Shape conv_out = m.layer(0).output_shape();
  const double macs = double(c.n) * double(conv_out.numel()) * double(c.in[0]) * 9.0;
  set_process_cpu(state, cpu0);
  set_rates(state, pass == Pass::fwd || !with_dx ? 2.0 * macs : 4.0 * macs);
  set_num_threads(saved);
}

void run(benchmark::State& state, LayerCase c, Pass pass, Isa isa, int threads) {
  set_max_isa(isa);
  const int saved = num_threads();
  set_num_threads(threads);
  std::unique_ptr<Layer> layer;
  // Conv and dense layers fuse ReLU, as in both models.
  if (c.kind == Kind::conv)
    layer =
        std::make_unique<Conv2D>(c.units, Size2{3, 3},
                                 Conv2DOptions{.padding = c.same ? Padding::same : Padding::valid,
                                               .activation = Activation::relu});
  else if (c.kind == Kind::pool)
    layer = std::make_unique<MaxPool2D>(Size2{2, 2});
  else
    layer = std::make_unique<Dense>(c.units, DenseOptions{.activation = Activation::relu});
  const Shape out = layer->build(c.in);
  Rng rng(1);
  layer->init_params(rng);
  Tensor x(c.in.with_batch(c.n)), y(out.with_batch(c.n)), dy(out.with_batch(c.n)),
      dx(c.in.with_batch(c.n));
  fill(x, rng, 0.0f, 1.0f);
  fill(dy, rng, -1.0f, 1.0f);
  layer->forward(x, y, Phase::train);  // argmax, and a realistic ReLU pattern in y
  double flops = 0;
  if (c.kind == Kind::conv) {
    const double macs = double(c.n) * double(out.numel()) * double(c.in[0]) * 9.0;
    flops = 2 * macs;
  } else if (c.kind == Kind::dense) {
    const double macs = double(c.n) * double(c.in[0]) * double(c.units);
    flops = pass == Pass::fwd ? 2 * macs : 4 * macs;
  }
  // The first layer of a model never computes dx: its backward-data entry is skipped by the
  // registration, not here.
  const double cpu0 = process_cpu_ms();
  for (auto _ : state) {
    switch (pass) {
      case Pass::fwd:
        layer->forward(x, y, Phase::train);
        break;
      case Pass::bwd_data:
        static_cast<Conv2D&>(*layer).backward_parts(x, y, dy, &dx, false);
        break;
      case Pass::bwd_weights:
        static_cast<Conv2D&>(*layer).backward_parts(x, y, dy, nullptr, true);
        break;
      case Pass::bwd:
        layer->backward(x, y, dy, &dx);
        break;
    }
    benchmark::ClobberMemory();
  }
  set_process_cpu(state, cpu0);
  set_rates(state, flops);
  set_num_threads(saved);
}

void register_all() {
  for (Isa isa : {Isa::scalar, Isa::avx2, Isa::avx512}) {
    if (static_cast<int>(isa) > static_cast<int>(detected_isa())) continue;
    for (const LayerCase& c : kCases) {
      std::vector<Pass> passes;
      if (c.kind == Kind::conv) {
        passes = {Pass::fwd, Pass::bwd_weights};
        if (c.in[0] > 3) passes.push_back(Pass::bwd_data);  // not for a model's first layer
      } else if (c.kind == Kind::conv_pool) {
        passes = {Pass::fwd, Pass::bwd};
      } else {
        passes = {Pass::fwd, Pass::bwd};
      }
      for (Pass p : passes)
        for (int threads : {1, 2}) {
          std::string name = std::string("layer/") + c.name + "/" + pass_name(p) + "/" +
                             to_string(isa) + (threads == 2 ? "/threads:2" : "");
          auto* b = benchmark::RegisterBenchmark(
              name.c_str(), c.kind == Kind::conv_pool ? run_pair : run, c, p, isa, threads);
          b->Unit(benchmark::kMillisecond);
          if (threads == 2) b->UseRealTime();
        }
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  // Our own flag, removed before Google Benchmark parses the rest.
  int out = 1;
  for (int i = 1; i < argc; ++i) {
    const char* flag = "--peak_gflops=";
    if (std::strncmp(argv[i], flag, std::strlen(flag)) == 0)
      g_peak_gflops = std::atof(argv[i] + std::strlen(flag));
    else
      argv[out++] = argv[i];
  }
  argc = out;
  register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
