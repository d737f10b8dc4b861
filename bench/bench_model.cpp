// Whole-model benchmark: times a training step (forward, loss, backward, Adam update) and
// inference at batch 1 and batch N of one of the project's two example models, after warm-up,
// as the median of several repeats, and prints one JSON line last (docs/benchmarks.md).
//
//   imgsim-bench-model --model seed|fmnist [--batch N] [--threads T] [--isa scalar|avx2|avx512]
//                      [--warmup W] [--repeats R] [--layers]
//
// seed:   Conv32-3x3-relu on 3x224x224, MaxPool2, Conv64, MaxPool2, Conv128, MaxPool2, Flatten,
//         Dense128-relu, Dense1-tanh; MSE loss (examples/seed_model).
// fmnist: Conv32-3x3-relu on 1x28x28, MaxPool2, Conv64, MaxPool2, Flatten, Dense128-relu,
//         Dense10; softmax cross-entropy (examples/fashion_mnist).
//
// Inputs are uniform random numbers in [0, 1) (the speed does not depend on the values, except
// for the ReLU pattern, which random inputs make realistic). Times are wall-clock medians;
// cpu_ms_per_step is the process CPU time per step (all threads), the figure least disturbed by
// other processes on a shared machine. gflops counts the multiply-adds of the convolutions and
// dense layers (2 per multiply-add): forward, plus dW and dX in backward (no dX for the first
// layer). --layers adds a per-layer table (forward and backward apart, median of the repeats).
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "imgsim/error.hpp"
#include "imgsim/nn/layers.hpp"
#include "imgsim/nn/loss.hpp"
#include "imgsim/nn/optimizer.hpp"
#include "imgsim/nn/sequential.hpp"
#include "imgsim/runtime/cpu.hpp"

using namespace imgsim;
using namespace imgsim::nn;

namespace {

struct Args {
  std::string model = "seed";
  int64_t batch = 0;  // 0: 32 for seed, 64 for fmnist
  int threads = 1;
  std::string isa;
  int warmup = 2;
  int repeats = 0;  // 0: 5 for seed, 30 for fmnist
  bool layers = false;
};

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    if (k == "--help" || k == "-h") {
      std::cout << "usage: imgsim-bench-model --model seed|fmnist [--batch N] [--threads T]\n"
                   "                          [--isa scalar|avx2|avx512] [--warmup W]\n"
                   "                          [--repeats R] [--layers]\n";
      std::exit(0);
    }
    if (k == "--layers") {
      a.layers = true;
      continue;
    }
    if (i + 1 >= argc) throw InvalidArgument(k + " needs a value");
    const std::string v = argv[++i];
    if (k == "--model")
      a.model = v;
    else if (k == "--batch")
      a.batch = std::stoll(v);
    else if (k == "--threads")
      a.threads = std::stoi(v);
    else if (k == "--isa")
      a.isa = v;
    else if (k == "--warmup")
      a.warmup = std::stoi(v);
    else if (k == "--repeats")
      a.repeats = std::stoi(v);
    else
      throw InvalidArgument("unknown option " + k + " (see --help)");
  }
  if (a.model != "seed" && a.model != "fmnist")
    throw InvalidArgument("--model must be seed or fmnist, got " + a.model);
  if (a.batch == 0) a.batch = a.model == "seed" ? 32 : 64;
  if (a.repeats == 0) a.repeats = a.model == "seed" ? 5 : 30;
  if (a.batch < 1 || a.repeats < 1 || a.warmup < 0)
    throw InvalidArgument("--batch and --repeats must be positive, --warmup >= 0");
  return a;
}

Sequential make_model(const std::string& name) {
  Sequential m;
  if (name == "seed") {
    m.add(Conv2D(32, {3, 3}, {.activation = Activation::relu, .input_shape = {3, 224, 224}}));
    m.add(MaxPool2D({2, 2}));
    m.add(Conv2D(64, {3, 3}, {.activation = Activation::relu}));
    m.add(MaxPool2D({2, 2}));
    m.add(Conv2D(128, {3, 3}, {.activation = Activation::relu}));
    m.add(MaxPool2D({2, 2}));
    m.add(Flatten());
    m.add(Dense(128, {.activation = Activation::relu}));
    m.add(Dense(1, {.activation = Activation::tanh}));
    m.build({3, 224, 224}, 1);
    m.compile(Adam(), MeanSquaredError());
  } else {
    m.add(Conv2D(32, {3, 3}, {.activation = Activation::relu, .input_shape = {1, 28, 28}}));
    m.add(MaxPool2D({2, 2}));
    m.add(Conv2D(64, {3, 3}, {.activation = Activation::relu}));
    m.add(MaxPool2D({2, 2}));
    m.add(Flatten());
    m.add(Dense(128, {.activation = Activation::relu}));
    m.add(Dense(10));
    m.build({1, 28, 28}, 1);
    m.compile(Adam(), SoftmaxCrossEntropy());
  }
  return m;
}

// Multiply-adds x 2 of one layer for one sample: forward, and backward (dW, plus dX unless
// `first`).
struct Flops {
  double fwd = 0, bwd = 0;
};
Flops layer_flops(Layer& l, bool first) {
  Flops f;
  const std::string t = l.type();
  const Shape& in = l.input_shape();
  const Shape& out = l.output_shape();
  double macs = 0;
  if (t == "conv2d") {
    // K * P * Q outputs, each C * R * S multiply-adds (C * R * S from the weight count).
    const double k = double(out[0]), pq = double(out[1]) * double(out[2]);
    const double crs = double(static_cast<Conv2D&>(l).weight().numel()) / k;
    macs = k * pq * crs;
  } else if (t == "dense") {
    macs = double(in[0]) * double(out[0]);
  }
  f.fwd = 2 * macs;
  f.bwd = (first ? 2 : 4) * macs;
  return f;
}

double now_ms() {
  return std::chrono::duration<double, std::milli>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
double cpu_ms() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return double(ts.tv_sec) * 1e3 + double(ts.tv_nsec) * 1e-6;
}
double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

void fill_uniform(Tensor& t, Rng& rng) {
  for (int64_t i = 0; i < t.numel(); ++i) t[i] = rng.uniform(0.0f, 1.0f);
}

// Per-layer forward and backward times on the model's own layers (training phase): wall-clock
// medians, and medians of the process CPU time (all threads), whose rate is the one to compare
// with the single-core FMA peak when the machine is shared.
void layer_table(Sequential& m, const Tensor& x, int repeats) {
  const std::size_t nl = m.size();
  const int64_t n = x.dim(0);
  std::vector<Tensor> acts(nl), grads(nl);
  for (std::size_t i = 0; i < nl; ++i) {
    acts[i] = Tensor(m.layer(i).output_shape().with_batch(n));
    grads[i] = Tensor(m.layer(i).output_shape().with_batch(n));
  }
  Rng rng(5);
  for (std::size_t i = 0; i < nl; ++i) fill_uniform(grads[i], rng);
  std::vector<std::vector<double>> tf(nl), tb(nl), cf(nl), cb(nl);
  for (int rep = 0; rep < repeats + 1; ++rep) {
    for (std::size_t i = 0; i < nl; ++i) {
      const Tensor& in = i == 0 ? x : acts[i - 1];
      const double t0 = now_ms(), c0 = cpu_ms();
      m.layer(i).forward(in, acts[i], Phase::train);
      if (rep > 0) {
        tf[i].push_back(now_ms() - t0);
        cf[i].push_back(cpu_ms() - c0);
      }
    }
    for (std::size_t i = nl; i-- > 0;) {
      const Tensor& in = i == 0 ? x : acts[i - 1];
      Tensor* din = i == 0 ? nullptr : &grads[i - 1];
      const double t0 = now_ms(), c0 = cpu_ms();
      m.layer(i).backward(in, acts[i], grads[i], din);
      if (rep > 0) {
        tb[i].push_back(now_ms() - t0);
        cb[i].push_back(cpu_ms() - c0);
      }
    }
  }
  std::printf("%-13s %-15s %9s %9s %9s | %9s %9s %9s\n", "layer", "output", "fwd ms", "fwd cpu",
              "GF/s cpu", "bwd ms", "bwd cpu", "GF/s cpu");
  for (std::size_t i = 0; i < nl; ++i) {
    const Flops f = layer_flops(m.layer(i), i == 0);
    const double mf = median(tf[i]), mb = median(tb[i]), cmf = median(cf[i]), cmb = median(cb[i]);
    auto rate = [&](double fl, double ms) {
      return fl > 0 && ms > 0 ? fl * double(n) / ms * 1e-6 : 0.0;
    };
    std::printf("%-13s %-15s %9.3f %9.3f %9.1f | %9.3f %9.3f %9.1f\n", m.layer(i).name.c_str(),
                m.layer(i).output_shape().str().c_str(), mf, cmf, rate(f.fwd, cmf), mb, cmb,
                rate(f.bwd, cmb));
  }
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Args a = parse(argc, argv);
    set_num_threads(a.threads);
    if (!a.isa.empty()) set_max_isa(isa_from_string(a.isa));
    Sequential m = make_model(a.model);
    const Shape in = m.input_shape();
    Rng rng(3);
    Tensor x(in.with_batch(a.batch));
    fill_uniform(x, rng);
    Tensor y;
    if (a.model == "seed") {
      y = Tensor({a.batch, 1});
      for (int64_t i = 0; i < a.batch; ++i) y[i] = rng.below(2) ? 1.0f : -1.0f;
    } else {
      y = Tensor({a.batch});
      for (int64_t i = 0; i < a.batch; ++i) y[i] = static_cast<float>(rng.below(10));
    }
    double flops_per_sample = 0;
    for (std::size_t i = 0; i < m.size(); ++i) {
      const Flops f = layer_flops(m.layer(i), i == 0);
      flops_per_sample += f.fwd + f.bwd;
    }

    // Training steps.
    for (int i = 0; i < a.warmup; ++i) m.train_step(x, y);
    std::vector<double> wall, cpu;
    for (int i = 0; i < a.repeats; ++i) {
      const double w0 = now_ms(), c0 = cpu_ms();
      m.train_step(x, y);
      wall.push_back(now_ms() - w0);
      cpu.push_back(cpu_ms() - c0);
    }
    const double step_ms = median(wall), step_cpu = median(cpu);
    const double rss =
        Sequential::peak_rss_mb();  // the training step's peak (inference is smaller)

    // Inference at batch 1 and batch N.
    auto infer = [&](int64_t n, int reps) {
      Tensor xi(in.with_batch(n));
      fill_uniform(xi, rng);
      for (int i = 0; i < 2; ++i) m.forward(xi, Phase::infer);
      std::vector<double> t;
      for (int i = 0; i < reps; ++i) {
        const double w0 = now_ms();
        m.forward(xi, Phase::infer);
        t.push_back(now_ms() - w0);
      }
      return median(t);
    };
    const double infer1 = infer(1, a.model == "seed" ? 20 : 200);
    const double infern = infer(a.batch, a.repeats);

    std::printf("model %s, batch %lld, threads %d, isa %s\n", a.model.c_str(),
                static_cast<long long>(a.batch), num_threads(), to_string(active_isa()));
    std::printf("train step: %.2f ms (median of %d; CPU %.2f ms), %.1f images/s, %.1f GFLOP/s\n",
                step_ms, a.repeats, step_cpu, double(a.batch) / step_ms * 1e3,
                flops_per_sample * double(a.batch) / step_ms * 1e-6);
    std::printf("inference: batch 1 %.3f ms, batch %lld %.2f ms (%.1f images/s)\n", infer1,
                static_cast<long long>(a.batch), infern, double(a.batch) / infern * 1e3);
    std::printf("peak RSS %.1f MiB\n", rss);
    if (a.layers) layer_table(m, x, a.repeats);
    std::printf(
        "{\"model\": \"%s\", \"batch\": %lld, \"ms_per_step\": %.3f, \"cpu_ms_per_step\": %.3f, "
        "\"images_per_s\": %.2f, \"infer_ms_batch1\": %.4f, \"infer_ms_batchN\": %.3f, "
        "\"infer_images_per_s\": %.2f, \"gflops\": %.2f, \"peak_rss_mb\": %.1f, \"isa\": \"%s\", "
        "\"threads\": %d}\n",
        a.model.c_str(), static_cast<long long>(a.batch), step_ms, step_cpu,
        double(a.batch) / step_ms * 1e3, infer1, infern, double(a.batch) / infern * 1e3,
        flops_per_sample * double(a.batch) / step_ms * 1e-6, rss, to_string(active_isa()),
        num_threads());
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "imgsim-bench-model: " << e.what() << "\n";
    return 1;
  }
}
