// The umbrella header compiles on its own and exposes the whole public API.
#include "imgsim/imgsim.hpp"

#include <catch2/catch.hpp>

TEST_CASE("imgsim.hpp exposes the public API", "[api]") {
  imgsim::nn::Sequential model;
  model.add(imgsim::nn::Dense(2, {.input_shape = {3}}));
  model.build({3});
  CHECK(model.output_shape() == imgsim::Shape{2});
  CHECK(imgsim::active_isa() <= imgsim::detected_isa());
}
