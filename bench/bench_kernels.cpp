// SGEMM benchmarks for every kernel this CPU runs, in one binary: ref (naive loop), scalar
// (portable blocked fallback), avx2, avx512; then the pooling-fused backward's kernels
// (transpose, gather_acc, scatter_axpy, pool_scatter), the Winograd F(4x4) transforms and the
// direct first-layer kernels (conv3x3, conv3x3_grad, conv3x3_pool, conv3x3_pool_grad) on the
// models' shapes, "sparse/<isa>/<kernel>/<shape>".
// Shapes are the im2col GEMMs of the conv layers (forward C[K x PQ] = W[K x CRS] * col[CRS x PQ];
// backward dW = dY * col^T and dcol = W^T * dY) and squares. The FLOP/s counter is 2*M*N*K per
// iteration, over CPU time for the plain names (one thread) and over wall time for the names with
// threads:1 / threads:2 (the pool's size).
//
//   ./bench_kernels --benchmark_filter='avx512' --benchmark_min_time=0.2
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "imgsim/runtime/cpu.hpp"
#include "imgsim/tensor.hpp"
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

// Random op(A), op(B) and a C for one shape.
struct Operands {
  std::vector<float> a, b, c;
  explicit Operands(const Shape& s)
      : a(static_cast<size_t>(s.M * s.K)),
        b(static_cast<size_t>(s.K * s.N)),
        c(static_cast<size_t>(s.M * s.N)) {
    std::mt19937 rng(1);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    for (float& x : a) x = u(rng);
    for (float& x : b) x = u(rng);
  }
};

void set_flops(benchmark::State& state, const Shape& s) {
  state.counters["FLOP/s"] =
      benchmark::Counter(2.0 * double(s.M) * double(s.N) * double(s.K) * double(state.iterations()),
                         benchmark::Counter::kIsRate);
}

void run(benchmark::State& state, k::SgemmFn fn, Shape s, int threads) {
  const int saved = imgsim::num_threads();
  imgsim::set_num_threads(threads);
  Operands op(s);
  const int64_t lda = s.ta ? s.M : s.K, ldb = s.tb ? s.K : s.N;
  for (auto _ : state) {
    fn(s.ta, s.tb, s.M, s.N, s.K, 1.0f, op.a.data(), lda, op.b.data(), ldb, 0.0f, op.c.data(), s.N);
    benchmark::DoNotOptimize(op.c.data());
    benchmark::ClobberMemory();
  }
  set_flops(state, s);
  imgsim::set_num_threads(saved);
}

// sgemm_packed_a on an untransposed shape, A packed once outside the loop (as the Winograd
// layers' filters are): against sgemm/<isa>/<shape>, what packing A costs in each call.
void run_packed(benchmark::State& state, const k::KernelTable* t, Shape s) {
  const int saved = imgsim::num_threads();
  imgsim::set_num_threads(1);
  Operands op(s);
  std::vector<float> ap(static_cast<size_t>(t->packed_a_floats(s.M, s.K)));
  t->pack_gemm_a(s.M, s.K, op.a.data(), s.K, ap.data());
  for (auto _ : state) {
    t->sgemm_packed_a(s.M, s.N, s.K, 1.0f, ap.data(), op.b.data(), s.N, 0.0f, op.c.data(), s.N);
    benchmark::DoNotOptimize(op.c.data());
    benchmark::ClobberMemory();
  }
  set_flops(state, s);
  imgsim::set_num_threads(saved);
}

// The pooling-fused backward's patch kernels as Conv2D::backward_pool2x2 calls them for one
// image (hwc: Fashion-MNIST's conv2, a 13x13x32 channels-last image, 64 planes of 5x5 argmaxes,
// 3x3 patches; the seed's conv2, 111x111x32 and 54x54 argmaxes, a whole image at once) or one tile
// (rows: the seed's conv1, 6 row pairs of 222 columns transposed into rows of 32 floats, 27 used;
// 32 planes of 6x111 argmaxes). One argmax per 2x2 window, at a random place in it. The counter is
// 2 flops per multiply-add.
struct SparseCase {
  const char* name;
  int64_t k, pp, qp, q, c, wp, r, s, ldr;  // ldr > 0: rows layout
};
const SparseCase kSparse[] = {
    {"fmnist_conv2_hwc", 64, 5, 5, 11, 32, 13, 3, 3, 0},
    {"seed_conv2_hwc", 64, 54, 54, 109, 32, 111, 3, 3, 0},
    {"seed_conv1_rows", 32, 6, 111, 222, 27, 0, 1, 1, 32},
};

struct SparseData {
  imgsim::Tensor x, w, acc;  // 64-byte aligned, as the layer's buffers are
  std::vector<float> g;
  std::vector<int64_t> off, seg;
  int64_t plane = 0, n = 0, nseg = 0;
};

SparseData make_sparse(const SparseCase& sc) {
  std::mt19937 rng(2);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::uniform_int_distribution<int64_t> bit(0, 1);
  SparseData d;
  d.plane = sc.pp * sc.qp;
  // hwc: a patch row (S pixels of C channels) is one run, as the layer passes them.
  d.n = sc.ldr ? sc.c : sc.s * sc.c;
  for (int64_t r = 0; r < sc.r; ++r) d.seg.push_back(sc.ldr ? 0 : r * sc.wp * sc.c);
  d.nseg = static_cast<int64_t>(d.seg.size());
  const int64_t rows = sc.ldr ? 2 * sc.pp * sc.q : (2 * sc.pp + sc.r) * sc.wp;  // pixels or rows
  d.x = imgsim::Tensor(imgsim::Shape{rows * (sc.ldr ? sc.ldr : sc.c) + 64});
  d.w = imgsim::Tensor(imgsim::Shape{sc.k * d.nseg * d.n});
  d.acc = imgsim::Tensor(imgsim::Shape{sc.k * d.nseg * d.n});
  d.g.resize(static_cast<size_t>(sc.k * d.plane));
  for (int64_t i = 0; i < d.x.numel(); ++i) d.x[i] = u(rng);
  for (int64_t i = 0; i < d.w.numel(); ++i) d.w[i] = u(rng);
  d.acc.fill(0.0f);
  for (float& v : d.g) v = u(rng);
  for (int64_t kk = 0; kk < sc.k; ++kk)
    for (int64_t i = 0; i < sc.pp; ++i)
      for (int64_t j = 0; j < sc.qp; ++j) {
        const int64_t p = 2 * i + bit(rng), q = 2 * j + bit(rng);
        d.off.push_back(sc.ldr ? (p * sc.q + q) * sc.ldr : (p * sc.wp + q) * sc.c);
      }
  return d;
}

// pool_scatter on the hwc case's data: the same argmaxes, as (window, filter) places.
void run_pool_scatter(benchmark::State& state, const k::KernelTable* t, SparseCase sc) {
  SparseData d = make_sparse(sc);
  const int64_t plane = d.plane, rsc = d.nseg * d.n;
  std::vector<float> gw(static_cast<size_t>(sc.k * plane));
  std::vector<uint8_t> sel(gw.size());
  std::vector<int64_t> org;
  for (int64_t i = 0; i < sc.pp; ++i)
    for (int64_t j = 0; j < sc.qp; ++j) org.push_back((2 * i * sc.wp + 2 * j) * sc.c);
  for (int64_t kk = 0; kk < sc.k; ++kk)
    for (int64_t t2 = 0; t2 < plane; ++t2) {
      const auto src = static_cast<size_t>(kk * plane + t2),
                 dst = static_cast<size_t>(t2 * sc.k + kk);
      gw[dst] = d.g[src];
      const int64_t rel = d.off[src] - org[static_cast<size_t>(t2)];
      sel[dst] =
          static_cast<uint8_t>(rel >= sc.wp * sc.c ? 2 + (rel - sc.wp * sc.c) / sc.c : rel / sc.c);
    }
  for (auto _ : state) {
    t->pool_scatter(plane, sc.k, gw.data(), sel.data(), org.data(), d.w.data(), sc.r, sc.s, sc.c,
                    sc.wp * sc.c, d.x.data());
    benchmark::DoNotOptimize(d.x.data());
    benchmark::ClobberMemory();
  }
  state.counters["FLOP/s"] = benchmark::Counter(
      2.0 * double(sc.k * plane * rsc) * double(state.iterations()), benchmark::Counter::kIsRate);
}

void run_sparse(benchmark::State& state, const k::KernelTable* t, SparseCase sc, bool scatter) {
  SparseData d = make_sparse(sc);
  const int64_t rsc = d.nseg * d.n;
  for (auto _ : state) {
    for (int64_t kk = 0; kk < sc.k; ++kk) {
      const float* g = d.g.data() + kk * d.plane;
      const int64_t* off = d.off.data() + kk * d.plane;
      if (scatter)
        t->scatter_axpy(d.plane, g, off, d.w.data() + kk * rsc, d.seg.data(), d.nseg, d.n,
                        d.x.data());
      else
        t->gather_acc(d.plane, g, off, d.x.data(), d.seg.data(), d.nseg, d.n,
                      d.acc.data() + kk * rsc);
    }
    benchmark::DoNotOptimize(d.x.data());
    benchmark::DoNotOptimize(d.acc.data());
    benchmark::ClobberMemory();
  }
  state.counters["FLOP/s"] = benchmark::Counter(
      2.0 * double(sc.k * d.plane * rsc) * double(state.iterations()), benchmark::Counter::kIsRate);
}

// The transposes of the fused backward: a tile of the seed's conv1 im2col columns (27 x 2664)
// into rows of 32 floats, and one row of Fashion-MNIST's conv2 input (32 channels x 13) into
// channels-last order. The counter is floats moved.
// The direct first-layer kernels on one image of a model's first layer (seed: 3 x 224 x 224, 32
// filters; Fashion-MNIST: 1 x 28 x 28): conv3x3_pool (forward) and conv3x3_pool_grad (dW, db),
// with relu and every pooled row. The counter is the dense convolution's 2 flops per
// multiply-add (forward), as bench_layers counts them, and the same for the gradient.
struct DirectCase {
  const char* name;
  int64_t c, h, w, k;
};
const DirectCase kDirect[] = {{"seed_conv1", 3, 224, 224, 32}, {"fmnist_conv1", 1, 28, 28, 32}};

void run_direct(benchmark::State& state, const k::KernelTable* t, DirectCase dc, bool grad) {
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  const int64_t pp = (dc.h - 2) / 2, qp = (dc.w - 2) / 2, plane = pp * qp;
  imgsim::Tensor x(imgsim::Shape{dc.c * dc.h * dc.w}), w(imgsim::Shape{dc.k * dc.c * 9}),
      b(imgsim::Shape{dc.k}), y(imgsim::Shape{dc.k * plane}), dy(imgsim::Shape{dc.k * plane}),
      acc(imgsim::Shape{dc.k * (9 * dc.c + 1) * 16}),
      scratch(imgsim::Shape{k::conv3x3_pool_grad_scratch(dc.c, dc.w, pp)});
  std::vector<int32_t> arg(static_cast<size_t>(dc.k * plane));
  for (imgsim::Tensor* v : {&x, &w, &b, &dy})
    for (int64_t i = 0; i < v->numel(); ++i) (*v)[i] = u(rng);
  acc.fill(0.0f);
  t->conv3x3_pool(x.data(), dc.c, dc.h, dc.w, w.data(), b.data(), 1, 0.0f, dc.k, 0, pp, y.data(),
                  arg.data(), plane, scratch.data());
  for (auto _ : state) {
    if (grad)
      t->conv3x3_pool_grad(x.data(), dc.c, dc.h, dc.w, dy.data(), y.data(), 1, 0.0f, arg.data(),
                           plane, dc.k, 0, pp, acc.data(), scratch.data());
    else
      t->conv3x3_pool(x.data(), dc.c, dc.h, dc.w, w.data(), b.data(), 1, 0.0f, dc.k, 0, pp,
                      y.data(), arg.data(), plane, scratch.data());
    benchmark::DoNotOptimize(y.data());
    benchmark::DoNotOptimize(acc.data());
    benchmark::ClobberMemory();
  }
  state.counters["FLOP/s"] = benchmark::Counter(
      2.0 * double(dc.k * dc.c * 9 * 2 * pp * (dc.w - 2)) * double(state.iterations()),
      benchmark::Counter::kIsRate);
}

// The unpooled direct kernels (conv3x3, conv3x3_grad) on the same images, all conv rows.
void run_direct_conv(benchmark::State& state, const k::KernelTable* t, DirectCase dc, bool grad) {
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  const int64_t P = dc.h - 2, Q = dc.w - 2, plane = P * Q, pairs = (P + 1) / 2;
  imgsim::Tensor x(imgsim::Shape{dc.c * dc.h * dc.w}), w(imgsim::Shape{dc.k * dc.c * 9}),
      b(imgsim::Shape{dc.k}), y(imgsim::Shape{dc.k * plane}), dy(imgsim::Shape{dc.k * plane}),
      acc(imgsim::Shape{dc.k * (9 * dc.c + 1) * 16}),
      scratch(imgsim::Shape{
          std::max(k::conv3x3_pool_scratch(dc.c, dc.w), k::conv3x3_grad_scratch(dc.w))});
  for (imgsim::Tensor* v : {&x, &w, &b, &dy})
    for (int64_t i = 0; i < v->numel(); ++i) (*v)[i] = u(rng);
  acc.fill(0.0f);
  t->conv3x3(x.data(), dc.c, dc.h, dc.w, w.data(), b.data(), 1, 0.0f, dc.k, 0, pairs, y.data(),
             plane, scratch.data());
  for (auto _ : state) {
    if (grad)
      t->conv3x3_grad(x.data(), dc.c, dc.h, dc.w, dy.data(), y.data(), 1, 0.0f, plane, dc.k, 0, P,
                      acc.data(), scratch.data());
    else
      t->conv3x3(x.data(), dc.c, dc.h, dc.w, w.data(), b.data(), 1, 0.0f, dc.k, 0, pairs, y.data(),
                 plane, scratch.data());
    benchmark::DoNotOptimize(y.data());
    benchmark::DoNotOptimize(acc.data());
    benchmark::ClobberMemory();
  }
  state.counters["FLOP/s"] =
      benchmark::Counter(2.0 * double(dc.k * dc.c * 9 * plane) * double(state.iterations()),
                         benchmark::Counter::kIsRate);
}

// The Winograd F(4x4, 3x3) transforms on all tiles of one image of a layer, in the layer's chunks
// (as make_wino_plan in nn/conv2d.cpp sizes them, so that the buffer stays in L2): the input
// transform of x (forward and backward-weights), the gradient transform of dz = dy * relu'(y)
// (backward-weights) and the output transform with bias and relu (forward). The input and gradient
// transforms read rows of 12 tiles and more through row buffers, shorter ones tile by tile
// (kernels/winograd4.inc). The counter is the tile-channels transformed.
struct WinoCase {
  const char* name;
  int64_t c, h, w, pad, k;  // input C x H x W, padding (1: 'same', 0: valid), filters K
};
const WinoCase kWinoShapes[] = {
    {"seed_conv2", 32, 111, 111, 0, 64},     // 28 tiles a row
    {"seed_conv3", 64, 54, 54, 0, 128},      // 13
    {"default_conv16", 64, 16, 16, 1, 128},  // 4
    {"default_conv8", 128, 8, 8, 1, 256},    // 2
    {"fmnist_conv2", 32, 13, 13, 0, 64},     // 3
};

enum class WinoPass { input, grad, output };

void run_wino(benchmark::State& state, const k::KernelTable* t, WinoCase wc, WinoPass pass) {
  const int64_t P = wc.h + 2 * wc.pad - 2, Q = wc.w + 2 * wc.pad - 2;
  const k::WinoGeometry in{wc.c, wc.h, wc.w, wc.pad, wc.pad, P, Q, 4};
  const k::WinoGeometry out{wc.k, P, Q, 0, 0, P, Q, 4};
  const int64_t tiles = in.tiles_h() * in.tiles_w();
  const int64_t chunk = std::max<int64_t>(48, 384 * 1024 / (36 * (wc.c + wc.k)) / 48 * 48);
  const int64_t ld = std::min(chunk, (tiles + 15) / 16 * 16);
  const int64_t ch = pass == WinoPass::input ? wc.c : wc.k;
  std::mt19937 rng(4);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(wc.c * wc.h * wc.w)),
      dy(static_cast<size_t>(wc.k * P * Q)), y(dy.size()), bias(static_cast<size_t>(wc.k)),
      v(static_cast<size_t>(36 * (ch * ld + k::kWinoXiPad)));
  for (std::vector<float>* a : {&x, &dy, &y, &bias, &v})
    for (float& e : *a) e = u(rng);
  for (auto _ : state) {
    for (int64_t t0 = 0; t0 < tiles; t0 += ld) {
      const int64_t t1 = std::min(tiles, t0 + ld);
      if (pass == WinoPass::input)
        t->wino_input(in, x.data(), nullptr, 0, 0.0f, t0, t1, v.data(), ld);
      else if (pass == WinoPass::grad)
        t->wino_grad(out, dy.data(), y.data(), 1, 0.0f, t0, t1, v.data(), ld);
      else
        t->wino_output(out, v.data(), ld, t0, t1, bias.data(), 1, 0.0f, false, y.data());
    }
    benchmark::DoNotOptimize(v.data());
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  state.counters["tiles/s"] = benchmark::Counter(double(ch * tiles) * double(state.iterations()),
                                                 benchmark::Counter::kIsRate);
}

struct TransposeCase {
  const char* name;
  int64_t rows, cols, lda, ldt;
};
const TransposeCase kTranspose[] = {
    {"seed_conv1_tile", 27, 2664, 2672, 32},
    {"fmnist_conv2_row", 32, 13, 169, 32},
};

void run_transpose(benchmark::State& state, const k::KernelTable* t, TransposeCase tc) {
  std::vector<float> a(static_cast<size_t>(tc.rows * tc.lda)),
      b(static_cast<size_t>(tc.cols * tc.ldt));
  for (std::size_t i = 0; i < a.size(); ++i) a[i] = static_cast<float>(i % 97);
  for (auto _ : state) {
    t->transpose(a.data(), tc.lda, tc.rows, tc.cols, b.data(), tc.ldt);
    benchmark::DoNotOptimize(b.data());
    benchmark::ClobberMemory();
  }
  state.counters["floats/s"] = benchmark::Counter(
      double(tc.rows * tc.cols) * double(state.iterations()), benchmark::Counter::kIsRate);
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
  for (Isa isa : {Isa::scalar, Isa::avx2, Isa::avx512}) {
    if (static_cast<int>(isa) > static_cast<int>(imgsim::detected_isa())) continue;
    const k::KernelTable* t = &k::table_for(isa);
    for (const Shape& s : kShapes)  // the Winograd forward and data shapes, and a few others
      if (!s.ta && !s.tb && s.M * s.N * s.K <= 100'000'000)
        benchmark::RegisterBenchmark(
            ("sgemm_packed_a/" + std::string(imgsim::to_string(isa)) + "/" + s.name).c_str(),
            run_packed, t, s)
            ->Unit(benchmark::kMicrosecond);
  }
  for (Isa isa : {Isa::scalar, Isa::avx2, Isa::avx512}) {
    if (static_cast<int>(isa) > static_cast<int>(imgsim::detected_isa())) continue;
    const k::KernelTable* t = &k::table_for(isa);
    const std::string pre = std::string("sparse/") + imgsim::to_string(isa) + "/";
    for (const SparseCase& sc : kSparse)
      for (bool scatter : {false, true}) {
        const std::string name = pre + (scatter ? "scatter_axpy/" : "gather_acc/") + sc.name;
        benchmark::RegisterBenchmark(name.c_str(), run_sparse, t, sc, scatter)
            ->Unit(benchmark::kMicrosecond);
      }
    for (const SparseCase& sc : kSparse)
      if (!sc.ldr)
        benchmark::RegisterBenchmark((pre + "pool_scatter/" + sc.name).c_str(), run_pool_scatter, t,
                                     sc)
            ->Unit(benchmark::kMicrosecond);
    for (const TransposeCase& tc : kTranspose) {
      const std::string name = pre + "transpose/" + tc.name;
      benchmark::RegisterBenchmark(name.c_str(), run_transpose, t, tc)
          ->Unit(benchmark::kMicrosecond);
    }
    for (const WinoCase& wc : kWinoShapes)
      for (WinoPass pass : {WinoPass::input, WinoPass::grad, WinoPass::output}) {
        const char* pn = pass == WinoPass::input  ? "wino4_input/"
                         : pass == WinoPass::grad ? "wino4_grad/"
                                                  : "wino4_output/";
        benchmark::RegisterBenchmark((pre + pn + wc.name).c_str(), run_wino, t, wc, pass)
            ->Unit(benchmark::kMicrosecond);
      }
    if (t->conv3x3_pool)  // AVX2 and AVX-512 (null elsewhere); the gradient AVX-512 only
      for (const DirectCase& dc : kDirect)
        for (bool grad : {false, true}) {
          if (grad && !t->conv3x3_pool_grad) continue;
          const std::string name = pre + (grad ? "conv3x3_pool_grad/" : "conv3x3_pool/") + dc.name;
          benchmark::RegisterBenchmark(name.c_str(), run_direct, t, dc, grad)
              ->Unit(benchmark::kMicrosecond);
        }
    if (t->conv3x3 && t->conv3x3_grad)  // likewise
      for (const DirectCase& dc : kDirect)
        for (bool grad : {false, true}) {
          const std::string name = pre + (grad ? "conv3x3_grad/" : "conv3x3/") + dc.name;
          benchmark::RegisterBenchmark(name.c_str(), run_direct_conv, t, dc, grad)
              ->Unit(benchmark::kMicrosecond);
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
