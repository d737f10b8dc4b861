// BatchNorm: gradients in both phases, forward values, running statistics (PyTorch convention,
// unbiased variance), shape rules and config records.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <string>

#include "gradcheck.hpp"
#include "imgsim/error.hpp"
#include "imgsim/nn/layers.hpp"
#include "imgsim/nn/serialize.hpp"

using namespace imgsim;
using namespace imgsim::nn;

namespace {

Tensor make_tensor(const Shape& s, std::initializer_list<float> v) {
  Tensor t(s);
  REQUIRE(static_cast<int64_t>(v.size()) == t.numel());
  int64_t i = 0;
  for (float f : v) t[i++] = f;
  return t;
}

// Runs three training forwards on shifted, scaled random batches so that the running statistics
// move well away from (0, 1); checks that they did.
void warm_up(Layer& layer) {
  auto& bn = dynamic_cast<BatchNorm&>(layer);
  const Shape in = bn.input_shape();
  Rng rng(99);
  Tensor x(in.with_batch(4)), y(in.with_batch(4));
  for (int step = 0; step < 3; ++step) {
    for (int64_t i = 0; i < x.numel(); ++i) x[i] = 0.7f + 1.8f * rng.normal();
    bn.forward(x, y, Phase::train);
  }
  for (int64_t c = 0; c < bn.running_mean().numel(); ++c) {
    REQUIRE(bn.running_mean()[c] != 0.0f);
    REQUIRE(std::abs(bn.running_var()[c] - 1.0f) > 0.05f);
  }
}

std::string load_error(const ByteWriter& w, uint32_t version = 1) {
  BatchNorm bn;
  ByteReader r(w.buffer().data(), w.buffer().size(), "test record");
  try {
    bn.load_config(r, version);
  } catch (const FormatError& e) {
    return e.what();
  }
  FAIL("load_config accepted a bad batch_norm record");
  return "";
}

}  // namespace

TEST_CASE("BatchNorm gradients, training phase", "[batch_norm][grad]") {
  SECTION("(C, H, W) input") {
    BatchNorm bn;
    REQUIRE_GRADIENTS_OK(testing::check_layer_gradients(bn, Shape{3, 4, 5}, {.batch = 2}));
  }
  SECTION("(D) input") {
    BatchNorm bn;
    REQUIRE_GRADIENTS_OK(testing::check_layer_gradients(bn, Shape{6}, {.batch = 5}));
  }
  SECTION("(D) input, smallest batch") {
    BatchNorm bn;
    REQUIRE_GRADIENTS_OK(testing::check_layer_gradients(bn, Shape{4}, {.batch = 3}));
  }
  SECTION("(C, H, W) input, batch of one") {
    BatchNorm bn;
    REQUIRE_GRADIENTS_OK(testing::check_layer_gradients(bn, Shape{2, 3, 3}, {.batch = 1}));
  }
}

TEST_CASE("BatchNorm gradients, inference phase (frozen statistics)", "[batch_norm][grad]") {
  SECTION("(C, H, W) input") {
    BatchNorm bn;
    REQUIRE_GRADIENTS_OK(testing::check_layer_gradients(
        bn, Shape{3, 4, 5}, {.batch = 2, .phase = Phase::infer, .prepare = warm_up}));
  }
  SECTION("(D) input") {
    BatchNorm bn;
    REQUIRE_GRADIENTS_OK(testing::check_layer_gradients(
        bn, Shape{6}, {.batch = 3, .phase = Phase::infer, .prepare = warm_up}));
  }
  SECTION("(D) input, batch of one") {
    BatchNorm bn;
    REQUIRE_GRADIENTS_OK(testing::check_layer_gradients(
        bn, Shape{6}, {.batch = 1, .phase = Phase::infer, .prepare = warm_up}));
  }
}

TEST_CASE("BatchNorm (D) forward and running statistics match hand-computed values",
          "[batch_norm]") {
  BatchNorm bn({.momentum = 0.1f, .eps = 1e-5f});
  REQUIRE(bn.build(Shape{2}) == Shape{2});
  bn.gamma()[0] = 2.0f;
  bn.gamma()[1] = -1.0f;
  bn.beta()[0] = 0.5f;
  bn.beta()[1] = 0.0f;
  // Feature 0: {1, 2, 3, 6}: mean 3, biased variance 14/4 = 3.5, unbiased 14/3.
  // Feature 1: {0, 0, 4, 4}: mean 2, biased variance 4, unbiased 16/3.
  Tensor x = make_tensor(Shape{4, 2}, {1, 0, 2, 0, 3, 4, 6, 4});
  Tensor y(Shape{4, 2});
  bn.forward(x, y, Phase::train);
  const double inv0 = 1.0 / std::sqrt(3.5 + 1e-5), inv1 = 1.0 / std::sqrt(4.0 + 1e-5);
  const double f0[] = {1, 2, 3, 6}, f1[] = {0, 0, 4, 4};
  for (int n = 0; n < 4; ++n) {
    CHECK(y[n * 2] == Approx(2.0 * (f0[n] - 3.0) * inv0 + 0.5));
    CHECK(y[n * 2 + 1] == Approx(-1.0 * (f1[n] - 2.0) * inv1).margin(1e-6));
  }
  // running = 0.9 * running + 0.1 * batch, starting from mean 0 and variance 1.
  CHECK(bn.running_mean()[0] == Approx(0.3));
  CHECK(bn.running_mean()[1] == Approx(0.2));
  CHECK(bn.running_var()[0] == Approx(0.9 + 0.1 * 14.0 / 3.0));  // 1.366667, not 1.25 (biased)
  CHECK(bn.running_var()[1] == Approx(0.9 + 0.1 * 16.0 / 3.0));  // 1.433333, not 1.3

  // A second step compounds: feature 0 {2, 2, 2, 2} (variance 0), feature 1 {-1, 1, -1, 1}
  // (mean 0, unbiased variance 4/3).
  Tensor x2 = make_tensor(Shape{4, 2}, {2, -1, 2, 1, 2, -1, 2, 1});
  bn.forward(x2, y, Phase::train);
  CHECK(bn.running_mean()[0] == Approx(0.9 * 0.3 + 0.1 * 2.0));
  CHECK(bn.running_mean()[1] == Approx(0.9 * 0.2));
  CHECK(bn.running_var()[0] == Approx(0.9 * (0.9 + 0.1 * 14.0 / 3.0)));
  CHECK(bn.running_var()[1] == Approx(0.9 * (0.9 + 0.1 * 16.0 / 3.0) + 0.1 * 4.0 / 3.0));
  // A constant feature normalises to beta (0 / sqrt(0 + eps)).
  for (int n = 0; n < 4; ++n) CHECK(y[n * 2] == Approx(0.5));
}

TEST_CASE("BatchNorm (C, H, W) statistics run over N, H and W per channel", "[batch_norm]") {
  BatchNorm bn({.momentum = 0.5f});
  REQUIRE(bn.build(Shape{2, 1, 3}) == Shape{2, 1, 3});
  // Channel 0: {1, 2, 3} and {4, 5, 6}: mean 3.5, biased variance 17.5 / 6, unbiased 17.5 / 5.
  // Channel 1: {0, 0, 0} and {2, 2, 2}: mean 1, biased variance 1, unbiased 6 / 5.
  Tensor x = make_tensor(Shape{2, 2, 1, 3}, {1, 2, 3, 0, 0, 0, 4, 5, 6, 2, 2, 2});
  Tensor y(x.shape());
  bn.forward(x, y, Phase::train);
  CHECK(bn.running_mean()[0] == Approx(0.5 * 3.5));
  CHECK(bn.running_mean()[1] == Approx(0.5 * 1.0));
  CHECK(bn.running_var()[0] == Approx(0.5 + 0.5 * 3.5));
  CHECK(bn.running_var()[1] == Approx(0.5 + 0.5 * 1.2));
  const double inv0 = 1.0 / std::sqrt(17.5 / 6.0 + 1e-5), inv1 = 1.0 / std::sqrt(1.0 + 1e-5);
  for (int n = 0; n < 2; ++n)
    for (int w = 0; w < 3; ++w) {
      CHECK(y.at(n, 0, 0, w) == Approx((x.at(n, 0, 0, w) - 3.5) * inv0));
      CHECK(y.at(n, 1, 0, w) == Approx((x.at(n, 1, 0, w) - 1.0) * inv1));
    }
}

TEST_CASE("BatchNorm training output is normalised per channel", "[batch_norm]") {
  BatchNorm bn;
  bn.build(Shape{3, 5, 4});
  const float gamma[] = {1.5f, 0.5f, -2.0f}, beta[] = {0.25f, -1.0f, 3.0f};
  for (int c = 0; c < 3; ++c) {
    bn.gamma()[c] = gamma[c];
    bn.beta()[c] = beta[c];
  }
  Tensor x(Shape{6, 3, 5, 4}), y(Shape{6, 3, 5, 4});
  Rng rng(5);
  for (int64_t n = 0; n < 6; ++n)
    for (int64_t c = 0; c < 3; ++c)
      for (int64_t h = 0; h < 5; ++h)
        for (int64_t w = 0; w < 4; ++w)
          x.at(n, c, h, w) = 10.0f * static_cast<float>(c) + (1.0f + c) * rng.normal();
  bn.forward(x, y, Phase::train);
  for (int64_t c = 0; c < 3; ++c) {
    double sum = 0.0, sq = 0.0;
    for (int64_t n = 0; n < 6; ++n)
      for (int64_t h = 0; h < 5; ++h)
        for (int64_t w = 0; w < 4; ++w) {
          const double v = (y.at(n, c, h, w) - beta[c]) / gamma[c];
          sum += v;
          sq += v * v;
        }
    CHECK(sum / 120.0 == Approx(0.0).margin(1e-5));
    CHECK(sq / 120.0 == Approx(1.0).epsilon(1e-4));  // var/(var+eps) with var ~ (1+c)^2
  }
}

TEST_CASE("BatchNorm inference uses the running statistics and does not update them",
          "[batch_norm]") {
  BatchNorm bn({.eps = 1e-3f});
  bn.build(Shape{2});
  bn.running_mean()[0] = 1.0f;
  bn.running_mean()[1] = -2.0f;
  bn.running_var()[0] = 4.0f;
  bn.running_var()[1] = 0.25f;
  bn.gamma()[0] = 3.0f;
  bn.gamma()[1] = 0.5f;
  bn.beta()[0] = -1.0f;
  bn.beta()[1] = 2.0f;
  Tensor x = make_tensor(Shape{1, 2}, {2.0f, 0.0f});  // a batch of one is fine in inference
  Tensor y(Shape{1, 2});
  bn.forward(x, y, Phase::infer);
  CHECK(y[0] == Approx(3.0 * (2.0 - 1.0) / std::sqrt(4.0 + 1e-3) - 1.0));
  CHECK(y[1] == Approx(0.5 * (0.0 + 2.0) / std::sqrt(0.25 + 1e-3) + 2.0));
  CHECK(bn.running_mean()[0] == 1.0f);
  CHECK(bn.running_mean()[1] == -2.0f);
  CHECK(bn.running_var()[0] == 4.0f);
  CHECK(bn.running_var()[1] == 0.25f);

  // Backward of the frozen layer: dx += dy * gamma / sqrt(running_var + eps).
  Tensor dy = make_tensor(Shape{1, 2}, {1.0f, -2.0f});
  Tensor dx(Shape{1, 2}, 10.0f);
  bn.backward(x, y, dy, &dx);
  CHECK(dx[0] == Approx(10.0 + 1.0 * 3.0 / std::sqrt(4.0 + 1e-3)));
  CHECK(dx[1] == Approx(10.0 - 2.0 * 0.5 / std::sqrt(0.25 + 1e-3)));
  CHECK(bn.params()[1].grad->operator[](1) == Approx(-2.0));  // dbeta = sum dy
  CHECK(bn.params()[0].grad->operator[](0) ==
        Approx(1.0 * (2.0 - 1.0) / std::sqrt(4.0 + 1e-3)));  // dgamma = sum dy * xhat
}

TEST_CASE("BatchNorm training backward removes the mean and the xhat component", "[batch_norm]") {
  // With dx zero-filled, sum_i dx_i = 0 and sum_i dx_i xhat_i = 0 per channel for any dy.
  BatchNorm bn;
  bn.build(Shape{2, 3, 3});
  Rng rng(21);
  Tensor x(Shape{3, 2, 3, 3}), y(x.shape()), dy(x.shape()), dx(x.shape());
  for (int64_t i = 0; i < x.numel(); ++i) {
    x[i] = 2.0f * rng.normal() + 1.0f;
    dy[i] = rng.normal() + 0.5f;
  }
  bn.forward(x, y, Phase::train);
  bn.backward(x, y, dy, &dx);
  for (int64_t c = 0; c < 2; ++c) {
    double s = 0.0, sx = 0.0, norm = 0.0;
    for (int64_t n = 0; n < 3; ++n)
      for (int64_t h = 0; h < 3; ++h)
        for (int64_t w = 0; w < 3; ++w) {
          s += dx.at(n, c, h, w);
          sx += static_cast<double>(dx.at(n, c, h, w)) * y.at(n, c, h, w);  // gamma 1, beta 0
          norm += std::abs(dx.at(n, c, h, w));
        }
    CHECK(norm > 1.0);  // not trivially zero
    CHECK(s == Approx(0.0).margin(1e-4));
    CHECK(sx == Approx(0.0).margin(1e-4));
  }
}

TEST_CASE("BatchNorm refuses one value per channel in training", "[batch_norm][shape]") {
  BatchNorm bn;
  bn.build(Shape{4});
  Tensor x(Shape{1, 4}, 1.0f), y(Shape{1, 4});
  try {
    bn.forward(x, y, Phase::train);
    FAIL("BatchNorm trained on a batch of one (D) sample");
  } catch (const ShapeError& e) {
    CHECK_THAT(e.what(), Catch::Contains("Expected more than 1 value per channel when training") &&
                             Catch::Contains("(1, 4)"));
  }
  CHECK(bn.running_mean()[0] == 0.0f);  // nothing was updated
  CHECK(bn.running_var()[0] == 1.0f);
  REQUIRE_NOTHROW(bn.forward(x, y, Phase::infer));

  BatchNorm pixel;  // (C, 1, 1) with N = 1 is also one value per channel
  pixel.build(Shape{3, 1, 1});
  Tensor xp(Shape{1, 3, 1, 1}), yp(Shape{1, 3, 1, 1});
  REQUIRE_THROWS_AS(pixel.forward(xp, yp, Phase::train), ShapeError);

  BatchNorm image;  // N = 1 with H * W > 1 is fine
  image.build(Shape{3, 2, 2});
  Tensor xi(Shape{1, 3, 2, 2}), yi(Shape{1, 3, 2, 2});
  for (int64_t i = 0; i < xi.numel(); ++i) xi[i] = static_cast<float>(i % 4);
  REQUIRE_NOTHROW(image.forward(xi, yi, Phase::train));
  // 4 values {0, 1, 2, 3} per channel: mean 1.5, unbiased variance 5/3.
  CHECK(image.running_mean()[2] == Approx(0.15));
  CHECK(image.running_var()[2] == Approx(0.9 + 0.1 * 5.0 / 3.0));
}

TEST_CASE("BatchNorm shapes, parameters, state and initial values", "[batch_norm][shape]") {
  BatchNorm bn;
  try {
    bn.build(Shape{4, 5});
    FAIL("BatchNorm accepted a rank-2 sample");
  } catch (const ShapeError& e) {
    CHECK_THAT(e.what(), Catch::Contains("(4, 5)"));
  }
  REQUIRE_THROWS_AS(bn.build(Shape{0}), ShapeError);
  REQUIRE(bn.build(Shape{3, 8, 8}) == Shape{3, 8, 8});
  const float* gamma_storage = bn.gamma().data();
  // Same channel count, other spatial size: accepted, parameters kept.
  REQUIRE(bn.build(Shape{3, 4, 4}) == Shape{3, 4, 4});
  CHECK(bn.gamma().data() == gamma_storage);
  REQUIRE_THROWS_AS(bn.build(Shape{5, 4, 4}), ShapeError);

  for (int64_t c = 0; c < 3; ++c) {
    CHECK(bn.gamma()[c] == 1.0f);
    CHECK(bn.beta()[c] == 0.0f);
    CHECK(bn.running_mean()[c] == 0.0f);
    CHECK(bn.running_var()[c] == 1.0f);
  }
  auto p = bn.params();
  REQUIRE(p.size() == 2);
  CHECK(p[0].name == "gamma");
  CHECK(p[0].value == &bn.gamma());
  CHECK(p[1].name == "beta");
  CHECK(p[1].value == &bn.beta());
  for (const Param& q : p) {
    CHECK_FALSE(q.decay);
    CHECK(q.grad->shape() == Shape{3});
  }
  CHECK(bn.num_params() == 6);
  auto s = bn.state();
  REQUIRE(s.size() == 2);
  CHECK(s[0] == &bn.running_mean());
  CHECK(s[1] == &bn.running_var());

  // init_params returns a used layer to the initial values.
  bn.gamma()[1] = 5.0f;
  bn.beta()[1] = 5.0f;
  bn.running_mean()[1] = 5.0f;
  bn.running_var()[1] = 5.0f;
  Rng rng(1);
  bn.init_params(rng);
  CHECK(bn.gamma()[1] == 1.0f);
  CHECK(bn.beta()[1] == 0.0f);
  CHECK(bn.running_mean()[1] == 0.0f);
  CHECK(bn.running_var()[1] == 1.0f);
}

TEST_CASE("BatchNorm options are validated and its config round-trips", "[batch_norm][serialize]") {
  REQUIRE_THROWS_AS(BatchNorm({.momentum = -0.1f}), InvalidArgument);
  REQUIRE_THROWS_AS(BatchNorm({.momentum = 1.5f}), InvalidArgument);
  REQUIRE_THROWS_AS(BatchNorm({.eps = 0.0f}), InvalidArgument);
  REQUIRE_THROWS_AS(BatchNorm({.eps = std::numeric_limits<float>::quiet_NaN()}), InvalidArgument);
  BatchNorm with_shape({.input_shape = {16}});
  CHECK(with_shape.declared_input_shape() == Shape{16});

  BatchNorm bn({.momentum = 0.01f, .eps = 1e-3f});
  CHECK(bn.describe() == "BatchNorm(momentum 0.01, eps 0.001)");
  ByteWriter w;
  bn.save_config(w);
  CHECK(w.buffer().size() == 8);  // momentum and eps only, nothing about shapes
  auto p = make_layer("batch_norm");
  REQUIRE(p != nullptr);
  ByteReader r(w.buffer().data(), w.buffer().size(), "test record");
  p->load_config(r, 1);
  CHECK(r.remaining() == 0);
  CHECK(std::string(p->type()) == "batch_norm");
  CHECK(p->describe() == bn.describe());

  // The loaded momentum is used.
  p->build(Shape{1});
  Tensor x = make_tensor(Shape{2, 1}, {0.0f, 2.0f});
  Tensor y(Shape{2, 1});
  p->forward(x, y, Phase::train);
  CHECK(dynamic_cast<BatchNorm&>(*p).running_mean()[0] == Approx(0.01));

  ByteWriter bad_m;
  bad_m.f32(2.0f);
  bad_m.f32(1e-5f);
  CHECK_THAT(load_error(bad_m), Catch::Contains("batch_norm.momentum"));
  ByteWriter bad_e;
  bad_e.f32(0.1f);
  bad_e.f32(-1e-5f);
  CHECK_THAT(load_error(bad_e), Catch::Contains("batch_norm.eps"));
  ByteWriter nan_e;
  nan_e.f32(0.1f);
  nan_e.f32(std::numeric_limits<float>::quiet_NaN());
  CHECK_THAT(load_error(nan_e), Catch::Contains("batch_norm.eps"));
  ByteWriter short_w;
  short_w.f32(0.1f);
  CHECK_THAT(load_error(short_w), Catch::Contains("truncated"));
  CHECK_THAT(load_error(w, 2), Catch::Contains("version 2"));
}
