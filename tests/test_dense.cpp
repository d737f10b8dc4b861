#include <catch2/catch.hpp>

#include "gradcheck.hpp"
#include "imgsim/error.hpp"
#include "imgsim/nn/layers.hpp"

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
