// Conv2D + MaxPool2D fused by Sequential (Conv2D::forward_pool2x2 / backward_pool2x2): the same
// model with fusion off is the reference. Forward must agree bit for bit (same GEMM columns, same
// activation, same pooling kernel); gradients up to the order of float sums, and exactly when
// every sum is exact (small integers).
#include <catch2/catch.hpp>
#include <cmath>
#include <string>
#include <vector>

#include "alloc_counter.hpp"
#include "imgsim/error.hpp"
#include "imgsim/nn/layers.hpp"
#include "imgsim/nn/sequential.hpp"
#include "imgsim/runtime/cpu.hpp"
#include "nn/conv_algo.hpp"

using namespace imgsim;
using namespace imgsim::nn;

namespace {

struct FuseCase {
  const char* label;
  int64_t c, h, w, k, r, s, stride;
  Padding padding;
  int64_t pad;
  Activation act;
  bool bias;
  int64_t batch;
  bool conv_first;    // a Conv2D(1 -> c) before the fused pair, so the pair's dx is computed too
  bool wino = false;  // the pair's convolution takes the Winograd path (inexact with integers)
};

// Odd and even outputs (a dropped last row or column), padding, stride 2, every activation,
// tiles spanning images (small images) and units wider than a tile (a 1400-wide image).
const FuseCase kCases[] = {
    {"3ch 9x11 valid relu, odd output", 3, 9, 11, 5, 3, 3, 1, Padding::valid, 0, Activation::relu,
     true, 3, false},
    {"1ch 8x8 same linear", 1, 8, 8, 4, 3, 3, 1, Padding::same, 0, Activation::linear, true, 2,
     false},
    {"2ch 11x9 5x3 explicit pad 1 leaky", 2, 11, 9, 3, 5, 3, 1, Padding::explicit_, 1,
     Activation::leaky_relu, false, 2, true},
    {"3ch 13x13 stride 2 tanh", 3, 13, 13, 4, 3, 3, 2, Padding::valid, 0, Activation::tanh, true, 2,
     false},
    {"1ch 28x28 sigmoid, tiles across images", 1, 28, 28, 32, 3, 3, 1, Padding::valid, 0,
     Activation::sigmoid, true, 40, false},
    {"3ch 4x1400 relu, a unit wider than a tile", 3, 4, 1400, 32, 3, 3, 1, Padding::valid, 0,
     Activation::relu, true, 2, true},
    // Winograd layers (C, K >= 32, 3x3, stride 1): odd outputs (a dropped last row, a computed and
    // ignored last column), 'same' and 'valid', the activations fused into the output transform
    // and one applied afterwards (tanh); a 13-wide valid output whose backward goes by im2col.
    {"wino 32ch 13x13 same relu, odd output", 32, 13, 13, 32, 3, 3, 1, Padding::same, 0,
     Activation::relu, true, 3, true, true},
    {"wino 32ch 20x18 valid leaky, no bias", 32, 20, 18, 33, 3, 3, 1, Padding::valid, 0,
     Activation::leaky_relu, false, 2, true, true},
    {"wino 32ch 16x13 same tanh", 32, 16, 13, 32, 3, 3, 1, Padding::same, 0, Activation::tanh, true,
     3, false, true},
    {"wino 32ch 15x15 valid linear, backward by im2col", 32, 15, 15, 32, 3, 3, 1, Padding::valid, 0,
     Activation::linear, true, 4, true, true},
    // More valid 3x3 stride-1 pairs with at most 3 channels (the direct forward, conv3x3_pool, on
    // AVX-512): leaky ReLU without bias and 35 filters (a tail of 3), linear with 1 channel.
    {"2ch 10x37 valid leaky, no bias, 35 filters", 2, 10, 37, 35, 3, 3, 1, Padding::valid, 0,
     Activation::leaky_relu, false, 3, false},
    {"1ch 12x12 valid linear", 1, 12, 12, 6, 3, 3, 1, Padding::valid, 0, Activation::linear, true,
     2, true},
};

Sequential make_model(const FuseCase& fc) {
  Sequential m;
  const Shape in{fc.conv_first ? 1 : fc.c, fc.h, fc.w};
  if (fc.conv_first)
    m.add(Conv2D(fc.c, {1, 1}, {.activation = Activation::linear, .input_shape = in}));
  Conv2DOptions o;
  o.stride = {fc.stride, fc.stride};
  o.padding = fc.padding;
  o.pad = {fc.pad, fc.pad};
  o.activation = fc.act;
  o.use_bias = fc.bias;
  if (!fc.conv_first) o.input_shape = in;
  m.add(Conv2D(fc.k, {fc.r, fc.s}, o));
  m.add(MaxPool2D({2, 2}));
  m.add(Flatten());
  m.add(Dense(3));
  m.build(in, 17);
  return m;
}

// Parameters, input and output gradient: small integers (exact sums) or normal floats.
void fill(Tensor& t, Rng& rng, bool integers) {
  for (int64_t i = 0; i < t.numel(); ++i)
    t[i] = integers ? static_cast<float>(static_cast<int>(rng.below(7)) - 3) : rng.normal();
}

struct Run {
  Tensor y, yi, dx;
  std::vector<Tensor> grads;
  std::vector<Tensor> grads_only;  // backward without dx
};

Run run(const FuseCase& fc, bool fused, bool integers) {
  detail::set_fusion(fused);
  Sequential m = make_model(fc);
  Rng rng(5);
  for (auto& p : m.params()) fill(*p.value, rng, integers);
  if (!integers)  // keep the sigmoid and tanh out of saturation
    for (auto& p : m.params())
      for (int64_t i = 0; i < p.value->numel(); ++i) (*p.value)[i] *= 0.3f;
  const Shape in = m.input_shape();
  Tensor x(in.with_batch(fc.batch));
  fill(x, rng, integers);
  Run r;
  r.y = m.forward(x, Phase::train).clone();
  Tensor dy(r.y.shape());
  fill(dy, rng, integers);
  r.dx = Tensor(x.shape());
  m.zero_grad();
  m.backward(dy, &r.dx);
  for (auto& p : m.params()) r.grads.push_back(p.grad->clone());
  // Again without the input's gradient, as training asks for it (a first layer then computes
  // only dW and db, by other code on AVX-512).
  m.zero_grad();
  m.backward(dy, nullptr);
  for (auto& p : m.params()) r.grads_only.push_back(p.grad->clone());
  r.yi = m.forward(x, Phase::infer).clone();
  detail::set_fusion(true);
  return r;
}

bool same_bits(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape()) return false;
  for (int64_t i = 0; i < a.numel(); ++i)
    if (!(a[i] == b[i]) && !(std::isnan(a[i]) && std::isnan(b[i]))) return false;
  return true;
}

// max |a - b| / max |a|.
double rel_diff(const Tensor& a, const Tensor& b) {
  double d = 0, m = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    d = std::max(d, std::abs(static_cast<double>(a[i]) - b[i]));
    m = std::max(m, std::abs(static_cast<double>(a[i])));
  }
  return m > 0 ? d / m : d;
}

// The fused model against the unfused one on the same parameters and data: forward bitwise (train
// and infer); gradients bitwise when `exact` (integer data whose products and sums stay integers
// below 2^24, exact in any order), else within float reassociation.
void check_against_unfused(const FuseCase& fc, bool integers, bool exact) {
  const Run ref = run(fc, false, integers), fz = run(fc, true, integers);
  CHECK(same_bits(ref.y, fz.y));
  CHECK(same_bits(ref.yi, fz.yi));
  CHECK(same_bits(ref.y, ref.yi));
  REQUIRE(ref.grads.size() == fz.grads.size());
  REQUIRE(ref.grads_only.size() == fz.grads_only.size());
  if (exact) {
    CHECK(same_bits(ref.dx, fz.dx));
    for (std::size_t i = 0; i < ref.grads.size(); ++i) CHECK(same_bits(ref.grads[i], fz.grads[i]));
    for (std::size_t i = 0; i < ref.grads_only.size(); ++i)
      CHECK(same_bits(ref.grads_only[i], fz.grads_only[i]));
  } else {
    // Only the order of the float sums differs (tiles of whole row pairs). Integer data through
    // leaky ReLU, tanh or sigmoid are not integers any more.
    CHECK(rel_diff(ref.dx, fz.dx) < 1e-5);
    for (std::size_t i = 0; i < ref.grads.size(); ++i)
      CHECK(rel_diff(ref.grads[i], fz.grads[i]) < 1e-5);
    for (std::size_t i = 0; i < ref.grads_only.size(); ++i)
      CHECK(rel_diff(ref.grads_only[i], fz.grads_only[i]) < 1e-5);
  }
}

// The fused model with 2 and 3 threads equals it with 1, bit for bit.
void check_thread_independence(const FuseCase& fc) {
  const int threads = num_threads();
  set_num_threads(1);
  const Run one = run(fc, true, false);
  for (int t : {2, 3}) {
    set_num_threads(t);
    const Run r = run(fc, true, false);
    INFO(t << " threads");
    CHECK(same_bits(one.y, r.y));
    CHECK(same_bits(one.dx, r.dx));
    for (std::size_t i = 0; i < one.grads.size(); ++i) CHECK(same_bits(one.grads[i], r.grads[i]));
  }
  set_num_threads(threads);
}

bool integer_exact_act(Activation a) {
  return a == Activation::linear || a == Activation::relu;
}

}  // namespace

TEST_CASE("Fused Conv2D + MaxPool2D: forward bitwise, gradients as unfused", "[fusion]") {
  for (const FuseCase& fc : kCases) {
    for (bool integers : {true, false}) {
      INFO(fc.label << (integers ? ", integer data" : ", float data"));
      check_against_unfused(fc, integers, integers && !fc.wino && integer_exact_act(fc.act));
    }
  }
}

TEST_CASE("Fused pairs with many channels on im2col: the channels-last backward", "[fusion][hwc]") {
  // The Winograd-shaped cases forced onto im2col (both models): C >= 16, so the fused backward
  // gathers and scatters the patches of a channels-last image ('same' padding, odd outputs, every
  // activation, with and without dx). Integer data are exact in any order here (no Winograd).
  detail::set_conv_algo(detail::ConvAlgo::im2col);
  for (const FuseCase& fc : kCases) {
    if (!fc.wino) continue;
    for (bool integers : {true, false}) {
      INFO(fc.label << (integers ? ", integer data" : ", float data") << ", im2col");
      check_against_unfused(fc, integers, integers && integer_exact_act(fc.act));
    }
  }
  check_thread_independence(kCases[7]);
  detail::set_conv_algo(detail::ConvAlgo::automatic);
}

TEST_CASE("Fused pairs with Winograd forced: the Winograd backward", "[fusion][wino]") {
  // By default the fused backward of these pairs is the channels-last one; forced onto Winograd
  // (F(2x2) and F(4x4), both models), the pair runs wino_backward_pool.
  for (detail::ConvAlgo a : {detail::ConvAlgo::winograd, detail::ConvAlgo::winograd4}) {
    detail::set_conv_algo(a);
    for (const FuseCase& fc : kCases) {
      if (!fc.wino) continue;
      INFO(fc.label << (a == detail::ConvAlgo::winograd ? ", F(2x2)" : ", F(4x4)"));
      check_against_unfused(fc, false, false);
    }
    check_thread_independence(kCases[7]);
  }
  detail::set_conv_algo(detail::ConvAlgo::automatic);
}

TEST_CASE("Fused Conv2D + MaxPool2D does not depend on the thread count", "[fusion][threads]") {
  check_thread_independence(kCases[4]);
}

TEST_CASE("Backward follows the forward's fusion decision", "[fusion]") {
  // Switching fusion off between forward and backward must not mix the two paths (the fused
  // forward stored no conv output for an unfused backward to read).
  const FuseCase& fc = kCases[0];
  const Run fz = run(fc, true, true);
  detail::set_fusion(true);
  Sequential m = make_model(fc);
  Rng rng(5);
  for (auto& p : m.params()) fill(*p.value, rng, true);
  Tensor x(m.input_shape().with_batch(fc.batch));
  fill(x, rng, true);
  const Tensor& y = m.forward(x, Phase::train);
  Tensor dy(y.shape());
  fill(dy, rng, true);
  detail::set_fusion(false);
  Tensor dx(x.shape());
  m.zero_grad();
  m.backward(dy, &dx);
  detail::set_fusion(true);
  CHECK(same_bits(dx, fz.dx));
  auto params = m.params();
  for (std::size_t i = 0; i < params.size(); ++i) CHECK(same_bits(*params[i].grad, fz.grads[i]));
}

TEST_CASE("Fused training steps allocate nothing once planned", "[fusion][memory]") {
  detail::set_fusion(true);
  // An im2col first layer, a Winograd pair, and a pair with a channels-last backward.
  for (const FuseCase* c : {&kCases[4], &kCases[6], &kCases[9]}) {
    const FuseCase& fc = *c;
    INFO(fc.label);
    Sequential m = make_model(fc);
    m.compile("adam", "softmax_cross_entropy");
    Rng rng(8);
    Tensor x(m.input_shape().with_batch(fc.batch)), y({fc.batch});
    fill(x, rng, false);
    for (int64_t i = 0; i < fc.batch; ++i) y[i] = static_cast<float>(rng.below(3));
    m.train_step(x, y);
    m.train_step(x, y);
    const auto a = imgsim::testing::allocations_during([&] {
      for (int i = 0; i < 3; ++i) m.train_step(x, y);
    });
    CHECK(a.tensors == 0);
    CHECK(a.news == 0);
  }
}

TEST_CASE("Fused Winograd pairs: blocks of images, any thread count", "[fusion][threads]") {
  // 20 images in 16 backward groups (some of two images). Blocks of one image (20 blocks: whole
  // blocks per worker; two blocks in a group of two images), of four (5 blocks: per worker with
  // 2 threads, one block at a time with its chunks and planes shared with 3) and the default (one
  // block of all, shared).
  FuseCase fc = kCases[6];
  REQUIRE(fc.wino);
  fc.batch = 20;
  const int threads = num_threads();
  set_num_threads(1);
  const Run ref = run(fc, false, false);
  for (long block : {0L, 1L, 4L}) {
    detail::set_wino_pool_block(block == 0 ? 0 : block * fc.k * 12 * 13);
    set_num_threads(1);
    const Run one = run(fc, true, false);
    for (int t : {1, 2, 3}) {
      set_num_threads(t);
      const Run r = run(fc, true, false);
      INFO("block " << block << ", " << t << " threads");
      CHECK(same_bits(ref.y, r.y));
      CHECK(same_bits(ref.yi, r.yi));
      CHECK(rel_diff(ref.dx, r.dx) < 1e-5);
      // Blocks change the order of the weight gradient's sums; threads change nothing.
      CHECK(same_bits(one.dx, r.dx));
      for (std::size_t i = 0; i < one.grads.size(); ++i) {
        CHECK(same_bits(one.grads[i], r.grads[i]));
        CHECK(rel_diff(ref.grads[i], r.grads[i]) < 1e-5);
      }
    }
  }
  detail::set_wino_pool_block(0);
  set_num_threads(threads);
}
