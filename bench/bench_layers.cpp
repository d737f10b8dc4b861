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
// all threads: on threads:2 against the plain entry, the work threading adds. The conv entries
// also have .../scaling: 1 and 2 threads alternated call by call, the speed-up as the median of
// the pairs' ratios (run_scaling).
//
//   bench_layers --benchmark_filter='seed_conv2/.*/avx512$' --benchmark_min_time=1
#include <benchmark/benchmark.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
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

// One pass of one case, set up once: step() runs it, flops() is its arithmetic (0 for pooling).
class Runner {
 public:
  virtual ~Runner() = default;
  virtual void step() = 0;
  double flops() const { return flops_; }

 protected:
  double flops_ = 0;
};

// Conv2D(relu, valid) + MaxPool2D(2) as a model's first layers, through Sequential.
class PairRunner : public Runner {
 public:
  PairRunner(const LayerCase& c, Pass pass) : pass_(pass) {
    m_.add(Conv2D(c.units, {3, 3}, {.activation = Activation::relu, .input_shape = c.in}));
    m_.add(MaxPool2D({2, 2}));
    m_.build(c.in, 1);
    Rng rng(1);
    x_ = Tensor(c.in.with_batch(c.n));
    fill(x_, rng, 0.0f, 1.0f);
    dy_ = Tensor(m_.forward(x_, Phase::train).shape());
    fill(dy_, rng, -1.0f, 1.0f);
    // A model's first layer (3 or 1 channels) computes no dx; the later pairs do.
    with_dx_ = c.in[0] > 3;
    dx_ = Tensor(with_dx_ ? x_.shape() : Shape{0});
    const Shape conv_out = m_.layer(0).output_shape();
    const double macs = double(c.n) * double(conv_out.numel()) * double(c.in[0]) * 9.0;
    flops_ = pass == Pass::fwd || !with_dx_ ? 2.0 * macs : 4.0 * macs;
  }
  void step() override {
    if (pass_ == Pass::fwd)
      m_.forward(x_, Phase::train);
    else
      m_.backward(dy_, with_dx_ ? &dx_ : nullptr);
  }

 private:
  Pass pass_;
  Sequential m_;
  Tensor x_, dy_, dx_;
  bool with_dx_ = false;
};

// One layer (conv and dense fuse ReLU, as in both models).
class LayerRunner : public Runner {
 public:
  LayerRunner(const LayerCase& c, Pass pass) : pass_(pass) {
    if (c.kind == Kind::conv)
      layer_ =
          std::make_unique<Conv2D>(c.units, Size2{3, 3},
                                   Conv2DOptions{.padding = c.same ? Padding::same : Padding::valid,
                                                 .activation = Activation::relu});
    else if (c.kind == Kind::pool)
      layer_ = std::make_unique<MaxPool2D>(Size2{2, 2});
    else
      layer_ = std::make_unique<Dense>(c.units, DenseOptions{.activation = Activation::relu});
    const Shape out = layer_->build(c.in);
    Rng rng(1);
    layer_->init_params(rng);
    x_ = Tensor(c.in.with_batch(c.n));
    y_ = Tensor(out.with_batch(c.n));
    dy_ = Tensor(out.with_batch(c.n));
    dx_ = Tensor(c.in.with_batch(c.n));
    fill(x_, rng, 0.0f, 1.0f);
    fill(dy_, rng, -1.0f, 1.0f);
    layer_->forward(x_, y_, Phase::train);  // argmax, and a realistic ReLU pattern in y
    if (c.kind == Kind::conv) {
      flops_ = 2.0 * double(c.n) * double(out.numel()) * double(c.in[0]) * 9.0;
    } else if (c.kind == Kind::dense) {
      const double macs = double(c.n) * double(c.in[0]) * double(c.units);
      flops_ = pass == Pass::fwd ? 2 * macs : 4 * macs;
    }
  }
  // The first layer of a model never computes dx: its backward-data entry is skipped by the
  // registration, not here.
  void step() override {
    switch (pass_) {
      case Pass::fwd:
        layer_->forward(x_, y_, Phase::train);
        break;
      case Pass::bwd_data:
        static_cast<Conv2D&>(*layer_).backward_parts(x_, y_, dy_, &dx_, false);
        break;
      case Pass::bwd_weights:
        static_cast<Conv2D&>(*layer_).backward_parts(x_, y_, dy_, nullptr, true);
        break;
      case Pass::bwd:
        layer_->backward(x_, y_, dy_, &dx_);
        break;
    }
  }

 private:
  Pass pass_;
  std::unique_ptr<Layer> layer_;
  Tensor x_, y_, dy_, dx_;
};

std::unique_ptr<Runner> make_runner(const LayerCase& c, Pass pass) {
  if (c.kind == Kind::conv_pool) return std::make_unique<PairRunner>(c, pass);
  return std::make_unique<LayerRunner>(c, pass);
}

void run(benchmark::State& state, LayerCase c, Pass pass, Isa isa, int threads) {
  set_max_isa(isa);
  const int saved = num_threads();
  set_num_threads(threads);
  const std::unique_ptr<Runner> r = make_runner(c, pass);
  const double cpu0 = process_cpu_ms();
  for (auto _ : state) {
    r->step();
    benchmark::ClobberMemory();
  }
  set_process_cpu(state, cpu0);
  set_rates(state, r->flops());
  set_num_threads(saved);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t h = v.size() / 2;
  return v.size() % 2 ? v[h] : 0.5 * (v[h - 1] + v[h]);
}

// The two-thread speed-up measured in pairs: each iteration runs the pass once on 1 thread and
// once on 2, in alternating order, so that both see the same moment of a shared machine (whose
// load drifts over seconds: separate 1- and 2-thread runs of the same binary differed by 1.6-2.2x
// per pass in docs/benchmarks.md). Counters: speedup, the median over the pairs of t1 / t2;
// speedup_of_min, the fastest t1 over the fastest t2; t1_ms and t2_ms, the medians. The time is
// the pair's.
void run_scaling(benchmark::State& state, LayerCase c, Pass pass, Isa isa) {
  set_max_isa(isa);
  const int saved = num_threads();
  const std::unique_ptr<Runner> r = make_runner(c, pass);
  for (int threads : {1, 2}) {  // warm-up: each thread count's buffers planned and touched
    set_num_threads(threads);
    r->step();
  }
  auto timed = [&](int threads) {
    set_num_threads(threads);
    const auto t0 = std::chrono::steady_clock::now();
    r->step();
    benchmark::ClobberMemory();
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  };
  std::vector<double> t1, t2, ratio;
  for (auto _ : state) {
    double a, b;
    if (t1.size() % 2 == 0) {
      a = timed(1);
      b = timed(2);
    } else {
      b = timed(2);
      a = timed(1);
    }
    t1.push_back(a);
    t2.push_back(b);
    ratio.push_back(a / b);
    state.SetIterationTime(1e-3 * (a + b));
  }
  if (!t1.empty()) {
    state.counters["speedup"] = median(ratio);
    state.counters["speedup_of_min"] =
        *std::min_element(t1.begin(), t1.end()) / *std::min_element(t2.begin(), t2.end());
    state.counters["t1_ms"] = median(t1);
    state.counters["t2_ms"] = median(t2);
  }
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
      for (Pass p : passes) {
        const std::string base =
            std::string("layer/") + c.name + "/" + pass_name(p) + "/" + to_string(isa);
        for (int threads : {1, 2}) {
          const std::string name = base + (threads == 2 ? "/threads:2" : "");
          auto* b = benchmark::RegisterBenchmark(name.c_str(), run, c, p, isa, threads);
          b->Unit(benchmark::kMillisecond);
          if (threads == 2) b->UseRealTime();
        }
        if (c.kind == Kind::conv || c.kind == Kind::conv_pool)
          benchmark::RegisterBenchmark((base + "/scaling").c_str(), run_scaling, c, p, isa)
              ->Unit(benchmark::kMillisecond)
              ->UseManualTime();
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
