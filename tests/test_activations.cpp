// ActivationLayer (ReLU, LeakyReLU, Tanh, Sigmoid, linear) and Softmax.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <memory>
#include <string>

#include "gradcheck.hpp"
#include "imgsim/error.hpp"
#include "imgsim/nn/layers.hpp"
#include "imgsim/nn/serialize.hpp"

using namespace imgsim;
using namespace imgsim::nn;

namespace {

// Saves `l`'s config, creates a layer of the same type through make_layer and loads it back.
std::unique_ptr<Layer> roundtrip(const Layer& l) {
  ByteWriter w;
  l.save_config(w);
  auto p = make_layer(l.type());
  REQUIRE(p != nullptr);
  ByteReader r(w.buffer().data(), w.buffer().size(), "test record");
  p->load_config(r, l.version());
  CHECK(r.remaining() == 0);
  return p;
}

// Loads `bytes` as a record of `type` with `version`; returns the FormatError message.
std::string load_error(const std::string& type, const ByteWriter& w, uint32_t version = 1) {
  auto p = make_layer(type);
  REQUIRE(p != nullptr);
  ByteReader r(w.buffer().data(), w.buffer().size(), "test record");
  try {
    p->load_config(r, version);
  } catch (const FormatError& e) {
    return e.what();
  }
  FAIL("load_config accepted a bad " << type << " record");
  return "";
}

Tensor make_tensor(const Shape& s, std::initializer_list<float> v) {
  Tensor t(s);
  REQUIRE(static_cast<int64_t>(v.size()) == t.numel());
  int64_t i = 0;
  for (float f : v) t[i++] = f;
  return t;
}

double sigmoid(double x) {
  return 1.0 / (1.0 + std::exp(-x));
}

}  // namespace

TEST_CASE("Activation layers pass the gradient check", "[activation][grad]") {
  SECTION("ReLU image") {
    ReLU l;
    REQUIRE_GRADIENTS_OK(testing::check_layer_gradients(l, Shape{3, 4, 5}));
  }
  SECTION("ReLU vector") {
    ReLU l;
    REQUIRE_GRADIENTS_OK(testing::check_layer_gradients(l, Shape{17}, {.batch = 3}));
  }
  SECTION("LeakyReLU default slope") {
    LeakyReLU l;
    REQUIRE_GRADIENTS_OK(testing::check_layer_gradients(l, Shape{3, 4, 5}));
  }
  SECTION("LeakyReLU slope 0.2") {
    LeakyReLU l(0.2f);
    REQUIRE_GRADIENTS_OK(testing::check_layer_gradients(l, Shape{17}, {.batch = 3}));
  }
  SECTION("Tanh") {
    Tanh l;
    REQUIRE_GRADIENTS_OK(
        testing::check_layer_gradients(l, Shape{2, 3, 3}, {.batch = 3, .input_scale = 2.0f}));
  }
  SECTION("Sigmoid") {
    Sigmoid l;
    REQUIRE_GRADIENTS_OK(
        testing::check_layer_gradients(l, Shape{2, 3, 3}, {.batch = 3, .input_scale = 2.0f}));
  }
  SECTION("linear") {
    ActivationLayer l(Activation::linear);
    REQUIRE_GRADIENTS_OK(testing::check_layer_gradients(l, Shape{9}, {.batch = 2}));
  }
}

TEST_CASE("Activation forward and backward match the formulas", "[activation]") {
  const float xs[] = {-2.0f, -0.5f, 0.0f, 0.5f, 3.0f};
  Tensor x(Shape{1, 5});
  for (int i = 0; i < 5; ++i) x[i] = xs[i];

  struct Case {
    Activation a;
    float slope;
    double (*f)(double, double);
    double (*df)(double, double);
  };
  const Case cases[] = {
      {Activation::relu, 0.01f, [](double v, double) { return v > 0 ? v : 0.0; },
       [](double v, double) { return v > 0 ? 1.0 : 0.0; }},
      {Activation::leaky_relu, 0.2f, [](double v, double s) { return v > 0 ? v : s * v; },
       [](double v, double s) { return v > 0 ? 1.0 : s; }},
      {Activation::tanh, 0.01f, [](double v, double) { return std::tanh(v); },
       [](double v, double) { return 1.0 - std::tanh(v) * std::tanh(v); }},
      {Activation::sigmoid, 0.01f, [](double v, double) { return sigmoid(v); },
       [](double v, double) { return sigmoid(v) * (1.0 - sigmoid(v)); }},
      {Activation::linear, 0.01f, [](double v, double) { return v; },
       [](double, double) { return 1.0; }},
  };
  for (const Case& c : cases) {
    DYNAMIC_SECTION(to_string(c.a)) {
      ActivationLayer l(c.a, c.slope);
      REQUIRE(l.build(Shape{5}) == Shape{5});
      Tensor y(Shape{1, 5});
      l.forward(x, y, Phase::train);
      for (int i = 0; i < 5; ++i) CHECK(y[i] == Approx(c.f(xs[i], c.slope)).margin(1e-7));

      Tensor dy(Shape{1, 5});
      Tensor dx(Shape{1, 5}, 0.25f);  // backward adds to this
      for (int i = 0; i < 5; ++i) dy[i] = 1.5f - static_cast<float>(i);
      l.backward(x, y, dy, &dx);
      for (int i = 0; i < 5; ++i)
        CHECK(dx[i] == Approx(0.25 + dy[i] * c.df(xs[i], c.slope)).margin(1e-6));
      l.backward(x, y, dy, nullptr);  // allowed: the first layer needs no input gradient
    }
  }
}

TEST_CASE("Activation backward handles tensors larger than its stack block", "[activation]") {
  const int64_t n = 1000;  // crosses the 256-element blocks with a partial tail
  Tanh l;
  l.build(Shape{n});
  Tensor x(Shape{1, n}), y(Shape{1, n}), dy(Shape{1, n}), dx(Shape{1, n}, -1.0f);
  Rng rng(3);
  for (int64_t i = 0; i < n; ++i) {
    x[i] = rng.normal();
    dy[i] = rng.normal();
  }
  l.forward(x, y, Phase::infer);
  l.backward(x, y, dy, &dx);
  for (int64_t i = 0; i < n; ++i) {
    const double t = std::tanh(static_cast<double>(x[i]));
    REQUIRE(dx[i] == Approx(-1.0 + dy[i] * (1.0 - t * t)).margin(1e-6));
  }
}

TEST_CASE("Activation type names, descriptions and shapes", "[activation]") {
  CHECK(std::string(ReLU().type()) == "relu");
  CHECK(std::string(LeakyReLU().type()) == "leaky_relu");
  CHECK(std::string(Tanh().type()) == "tanh");
  CHECK(std::string(Sigmoid().type()) == "sigmoid");
  CHECK(std::string(ActivationLayer(Activation::linear).type()) == "linear");
  CHECK(ReLU().describe() == "ReLU()");
  CHECK(LeakyReLU(0.2f).describe() == "LeakyReLU(0.2)");
  CHECK(ReLU().activation() == Activation::relu);

  ReLU r;
  CHECK(r.build(Shape{3, 8, 8}) == Shape{3, 8, 8});
  CHECK(r.output_shape() == Shape{3, 8, 8});
  CHECK(r.params().empty());
  REQUIRE_THROWS_AS(r.build(Shape{}), ShapeError);
  REQUIRE_THROWS_AS(r.build(Shape{3, 0, 8}), ShapeError);

  // The derivative is written through y, which needs slope >= 0.
  LeakyReLU bad(-0.1f);
  REQUIRE_THROWS_AS(bad.build(Shape{4}), InvalidArgument);
  LeakyReLU nan_slope(std::numeric_limits<float>::quiet_NaN());
  REQUIRE_THROWS_AS(nan_slope.build(Shape{4}), InvalidArgument);
}

TEST_CASE("Activation configs round-trip through make_layer", "[activation][serialize]") {
  for (const char* t : {"relu", "tanh", "sigmoid"}) {
    ActivationLayer l(activation_from_string(t));
    auto p = roundtrip(l);
    CHECK(std::string(p->type()) == t);
    CHECK(p->describe() == l.describe());
  }
  LeakyReLU leaky(0.3f);
  auto p = roundtrip(leaky);
  CHECK(std::string(p->type()) == "leaky_relu");
  CHECK(p->describe() == "LeakyReLU(0.3)");
  // The loaded slope is used: forward(-1) = -0.3.
  p->build(Shape{1});
  Tensor x(Shape{1, 1}, -1.0f), y(Shape{1, 1});
  p->forward(x, y, Phase::infer);
  CHECK(y[0] == Approx(-0.3f));

  SECTION("bad records are rejected with a FormatError naming the field") {
    ByteWriter nan_w;
    nan_w.f32(std::numeric_limits<float>::quiet_NaN());
    CHECK_THAT(load_error("leaky_relu", nan_w), Catch::Contains("leaky_relu.slope"));
    ByteWriter neg_w;
    neg_w.f32(-0.5f);
    CHECK_THAT(load_error("leaky_relu", neg_w), Catch::Contains("leaky_relu.slope"));
    ByteWriter empty;
    CHECK_THAT(load_error("leaky_relu", empty), Catch::Contains("truncated"));
    ByteWriter ok;
    ok.f32(0.1f);
    CHECK_THAT(load_error("leaky_relu", ok, 2), Catch::Contains("version 2"));
    CHECK_THAT(load_error("relu", empty, 0), Catch::Contains("version 0"));
  }
}

TEST_CASE("Softmax passes the gradient check", "[softmax][grad]") {
  Softmax s;
  REQUIRE_GRADIENTS_OK(testing::check_layer_gradients(s, Shape{6}, {.batch = 3}));
  Softmax wide;
  REQUIRE_GRADIENTS_OK(
      testing::check_layer_gradients(wide, Shape{10}, {.batch = 2, .input_scale = 3.0f}));
}

TEST_CASE("Softmax forward matches the formula and rows sum to 1", "[softmax]") {
  Softmax s;
  REQUIRE(s.build(Shape{3}) == Shape{3});
  Tensor x = make_tensor(Shape{2, 3}, {1.0f, 2.0f, 3.0f, -1.0f, 0.0f, 0.5f});
  Tensor y(Shape{2, 3});
  s.forward(x, y, Phase::infer);
  for (int r = 0; r < 2; ++r) {
    double z = 0.0;
    for (int i = 0; i < 3; ++i) z += std::exp(static_cast<double>(x[r * 3 + i]));
    double sum = 0.0;
    for (int i = 0; i < 3; ++i) {
      CHECK(y[r * 3 + i] == Approx(std::exp(static_cast<double>(x[r * 3 + i])) / z));
      sum += y[r * 3 + i];
    }
    CHECK(sum == Approx(1.0).margin(1e-6));
  }

  Softmax big;
  big.build(Shape{50});
  Tensor xb(Shape{4, 50}), yb(Shape{4, 50});
  Rng rng(11);
  for (int64_t i = 0; i < xb.numel(); ++i) xb[i] = 5.0f * rng.normal();
  big.forward(xb, yb, Phase::train);
  for (int r = 0; r < 4; ++r) {
    double sum = 0.0;
    for (int i = 0; i < 50; ++i) {
      CHECK(yb[r * 50 + i] >= 0.0f);
      sum += yb[r * 50 + i];
    }
    CHECK(sum == Approx(1.0).margin(1e-5));
  }
}

TEST_CASE("Softmax is stable for large inputs", "[softmax]") {
  Softmax s;
  s.build(Shape{3});
  Tensor x = make_tensor(Shape{4, 3}, {1000.0f, 1000.0f, -1000.0f,    //
                                       -1000.0f, -1000.0f, -1000.0f,  //
                                       1000.0f, 999.0f, 998.0f,       //
                                       -1000.0f, 1000.0f, 0.0f});
  Tensor y(Shape{4, 3});
  s.forward(x, y, Phase::infer);
  for (int64_t i = 0; i < y.numel(); ++i) REQUIRE(std::isfinite(y[i]));
  CHECK(y[0] == Approx(0.5));
  CHECK(y[1] == Approx(0.5));
  CHECK(y[2] == 0.0f);
  for (int i = 3; i < 6; ++i) CHECK(y[i] == Approx(1.0 / 3.0));
  const double z = 1.0 + std::exp(-1.0) + std::exp(-2.0);
  CHECK(y[6] == Approx(1.0 / z));
  CHECK(y[7] == Approx(std::exp(-1.0) / z));
  CHECK(y[8] == Approx(std::exp(-2.0) / z));
  CHECK(y[9] == 0.0f);
  CHECK(y[10] == Approx(1.0));
  CHECK(y[11] == 0.0f);

  // The backward of a saturated row is finite too.
  Tensor dy(y.shape(), 1.0f), dx(x.shape());
  dy[0] = 2.0f;
  s.backward(x, y, dy, &dx);
  for (int64_t i = 0; i < dx.numel(); ++i) REQUIRE(std::isfinite(dx[i]));
  CHECK(dx[0] == Approx(0.5 * (2.0 - 1.5)));
}

TEST_CASE("Softmax backward is the Jacobian-vector product and adds", "[softmax]") {
  Softmax s;
  s.build(Shape{4});
  Tensor x = make_tensor(Shape{1, 4}, {0.3f, -1.2f, 2.0f, 0.0f});
  Tensor y(Shape{1, 4});
  s.forward(x, y, Phase::train);
  Tensor dy = make_tensor(Shape{1, 4}, {1.0f, -2.0f, 0.5f, 3.0f});
  Tensor dx(Shape{1, 4}, 0.5f);
  s.backward(x, y, dy, &dx);
  // Explicit Jacobian J[i][k] = y_i ([i == k] - y_k); dx_k = sum_i dy_i J[i][k].
  for (int k = 0; k < 4; ++k) {
    double v = 0.0;
    for (int i = 0; i < 4; ++i) v += dy[i] * y[i] * ((i == k ? 1.0 : 0.0) - y[k]);
    CHECK(dx[k] == Approx(0.5 + v).margin(1e-6));
  }
  s.backward(x, y, dy, nullptr);  // allowed: no input gradient wanted
}

TEST_CASE("Softmax rejects non-vector input and round-trips its config", "[softmax]") {
  Softmax s;
  try {
    s.build(Shape{3, 4, 4});
    FAIL("Softmax accepted a (C, H, W) sample");
  } catch (const ShapeError& e) {
    CHECK_THAT(e.what(), Catch::Contains("(3, 4, 4)") && Catch::Contains("Flatten"));
  }
  auto p = roundtrip(s);
  CHECK(std::string(p->type()) == "softmax");
  ByteWriter empty;
  CHECK_THAT(load_error("softmax", empty, 3), Catch::Contains("version 3"));
}
