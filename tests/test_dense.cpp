#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "gradcheck.hpp"
#include "imgsim/error.hpp"
#include "imgsim/nn/layers.hpp"
#include "imgsim/runtime/cpu.hpp"

using namespace imgsim;
using namespace imgsim::nn;

TEST_CASE("Dense gradients for every activation", "[dense][grad]") {
  for (Activation a : {Activation::linear, Activation::relu, Activation::leaky_relu,
                       Activation::tanh, Activation::sigmoid}) {
    for (bool bias : {true, false}) {
      DYNAMIC_SECTION(to_string(a) << (bias ? " with bias" : " no bias")) {
        Dense d(7, {.activation = a, .use_bias = bias});
        REQUIRE_GRADIENTS_OK(testing::check_layer_gradients(d, Shape{13}, {.batch = 3}));
      }
    }
  }
}

TEST_CASE("Dense forward matches the formula", "[dense]") {
  Dense d(2, {.activation = Activation::linear});
  d.build(Shape{3});
  float w[] = {1, 2, 3, -1, 0.5f, 0};
  for (int i = 0; i < 6; ++i) d.weight()[i] = w[i];
  d.bias()[0] = 0.25f;
  d.bias()[1] = -1.0f;
  Tensor x({1, 3});
  x[0] = 1;
  x[1] = -2;
  x[2] = 0.5f;
  Tensor y({1, 2});
  d.forward(x, y, Phase::infer);
  CHECK(y[0] == Approx(1 - 4 + 1.5 + 0.25));
  CHECK(y[1] == Approx(-1 - 1 + 0 - 1.0));
}

TEST_CASE("Dense forward at small and large batches, every ISA and thread count", "[dense]") {
  // The forward is the row-by-row product (gemm_nt_small) at every batch, in training and in
  // inference: against a double reference, bounded by (2d + 16) u sum |x w| + |b|, and
  // independent of the batch, the phase and the threads: row i of a batch has the bits of the
  // same row alone in inference (an image's embedding is the same alone and in a batch). d and
  // units are odd; d * units is large enough for two threads to split.
  const int64_t d = 3001, units = 37;
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> ud(-1.0f, 1.0f);
  const double u = std::ldexp(1.0, -24);
  const Isa top = active_isa();  // IMGSIM_MAX_ISA caps the ISAs tried
  const int threads_before = num_threads();
  for (int isa = 0; isa <= static_cast<int>(top); ++isa) {
    set_max_isa(static_cast<Isa>(isa));
    for (int threads : {1, 2}) {
      set_num_threads(threads);
      for (Phase phase : {Phase::infer, Phase::train})
        for (int64_t n : {1, 2, 3, 4, 7, 20}) {
          INFO(to_string(static_cast<Isa>(isa)) << " threads " << threads << " batch " << n
                                                << (phase == Phase::infer ? " infer" : " train"));
          Dense layer(units, {.activation = Activation::linear});
          layer.build(Shape{d});
          for (int64_t i = 0; i < layer.weight().numel(); ++i) layer.weight()[i] = ud(rng);
          for (int64_t j = 0; j < units; ++j) layer.bias()[j] = ud(rng);
          Tensor x({n, d});
          for (int64_t i = 0; i < x.numel(); ++i) x[i] = ud(rng);
          Tensor y({n, units});
          layer.forward(x, y, phase);
          for (int64_t r = 0; r < n; ++r)
            for (int64_t j = 0; j < units; ++j) {
              double want = layer.bias()[j], s = std::abs(double(layer.bias()[j]));
              for (int64_t k = 0; k < d; ++k) {
                want += double(x[r * d + k]) * layer.weight()[j * d + k];
                s += std::abs(double(x[r * d + k]) * layer.weight()[j * d + k]);
              }
              REQUIRE(std::abs(y[r * units + j] - want) <= (2.0 * double(d) + 16) * u * s);
            }
          for (int64_t r = 0; r < n; ++r) {
            Tensor one({1, d}), y1({1, units});
            std::copy(x.data() + r * d, x.data() + (r + 1) * d, one.data());
            layer.forward(one, y1, Phase::infer);
            for (int64_t j = 0; j < units; ++j) REQUIRE(y1[j] == y[r * units + j]);
          }
        }
    }
  }
  set_max_isa(top);
  set_num_threads(threads_before);
}

TEST_CASE("Dense rejects non-flat input naming the shape", "[dense][shape]") {
  Dense d(4);
  REQUIRE_THROWS_AS(d.build(Shape{3, 5, 5}), ShapeError);
  try {
    d.build(Shape{3, 5, 5});
  } catch (const ShapeError& e) {
    CHECK(std::string(e.what()).find("(3, 5, 5)") != std::string::npos);
    CHECK(std::string(e.what()).find("Flatten") != std::string::npos);
  }
  REQUIRE_THROWS_AS(Dense(0), InvalidArgument);
}

// --- CosineDense ---------------------------------------------------------------------------------

TEST_CASE("CosineDense gradients", "[cosine_dense][grad]") {
  for (float scale : {1.0f, 16.0f}) {
    DYNAMIC_SECTION("scale " << scale) {
      CosineDense d(6, {.scale = scale});
      REQUIRE_GRADIENTS_OK(testing::check_layer_gradients(d, Shape{11}, {.batch = 4}));
    }
  }
}

TEST_CASE("CosineDense forward is the scaled cosine", "[cosine_dense]") {
  CosineDense d(2, {.scale = 10.0f});
  d.build(Shape{3});
  // w_0 = (3, 0, 4) (length 5), w_1 = (0, -2, 0) (length 2)
  const float w[] = {3, 0, 4, 0, -2, 0};
  for (int i = 0; i < 6; ++i) d.weight()[i] = w[i];
  Tensor x({2, 3});
  const float xv[] = {1, 2, 2, 0, 0, 0};  // (1, 2, 2) has length 3; the second row is zero
  for (int i = 0; i < 6; ++i) x[i] = xv[i];
  Tensor y({2, 2});
  d.forward(x, y, Phase::infer);
  CHECK(y[0] == Approx(10.0 * (3 + 8) / 15.0));
  CHECK(y[1] == Approx(10.0 * -4 / 6.0));
  // A zero input gives zero logits (as torch's normalize), not NaN.
  CHECK(y[2] == 0.0f);
  CHECK(y[3] == 0.0f);
  // Its gradient is finite: the norm is clamped at eps.
  Tensor dy({2, 2});
  dy.fill(1.0f);
  Tensor dx({2, 3});
  d.backward(x, y, dy, &dx);
  for (int64_t i = 0; i < dx.numel(); ++i) CHECK(std::isfinite(dx[i]));
  // Scaling an input row or a weight row does not change the output.
  for (int i = 0; i < 3; ++i) x[i] *= 7.0f;
  for (int i = 0; i < 3; ++i) d.weight()[i] *= 0.1f;
  Tensor y2({2, 2});
  d.forward(x, y2, Phase::infer);
  CHECK(y2[0] == Approx(y[0]));
  CHECK(y2[1] == Approx(y[1]));
}

TEST_CASE("CosineDense with a zero weight row: zero logits, finite gradients", "[cosine_dense]") {
  CosineDense d(2, {.scale = 4.0f});
  d.build(Shape{3});
  const float w[] = {0, 0, 0, 1, 2, 2};  // unit 0 has no direction (its norm is clamped at eps)
  for (int i = 0; i < 6; ++i) d.weight()[i] = w[i];
  Tensor x({1, 3});
  x[0] = 2;
  x[1] = -1;
  x[2] = 2;  // length 3
  Tensor y({1, 2});
  d.forward(x, y, Phase::infer);
  CHECK(y[0] == 0.0f);
  CHECK(y[1] == Approx(4.0 * (2 - 2 + 4) / 9.0));
  Tensor dy({1, 2});
  dy.fill(1.0f);
  Tensor dx({1, 3});
  for (const Param& p : d.params()) p.grad->zero();
  d.backward(x, y, dy, &dx);
  // Clamped row: y_0 = s <xh, w_0> / eps, so dL/dw_0 = s dy_0 xh / eps without a projection.
  const Tensor& dw = *d.params()[0].grad;
  for (int i = 0; i < 3; ++i) {
    CHECK(std::isfinite(dw[i]));
    CHECK(dw[i] == Approx(4.0 * x[i] / 3.0 / 1e-12).epsilon(1e-5));
  }
}

TEST_CASE("CosineDense errors and configuration", "[cosine_dense][serialize]") {
  CHECK_THROWS_AS(CosineDense(0), InvalidArgument);
  CHECK_THROWS_AS(CosineDense(3, {.scale = 0.0f}), InvalidArgument);
  CHECK_THROWS_AS(CosineDense(3, {.scale = std::numeric_limits<float>::quiet_NaN()}),
                  InvalidArgument);
  CHECK_THROWS_AS(CosineDense(3, {.eps = -1.0f}), InvalidArgument);
  CosineDense d(3, {.scale = 8.0f});
  CHECK(d.describe() == "CosineDense(3, scale 8)");
  REQUIRE_THROWS_AS(d.build(Shape{2, 4, 4}), ShapeError);
  auto made = make_layer("cosine_dense");
  REQUIRE(made);
  CHECK(std::string(made->type()) == "cosine_dense");
}
