// A program outside the imgsim tree, built by tests/consumer/run.cmake against an installed imgsim
// (find_package) and through add_subdirectory. It includes the umbrella header, so every public
// header must compile with nothing but imgsim::imgsim (no Eigen, stb or hnswlib include paths).
#include <imgsim/imgsim.hpp>

#include <cmath>
#include <cstdio>

int main() {
  using namespace imgsim;
  using namespace imgsim::nn;

  Sequential model;
  model.add(Dense(8, {.activation = Activation::relu, .input_shape = {4}}));
  model.add(Dense(2));
  model.compile(SGD({.lr = 0.05}), MeanSquaredError());

  Rng rng(7);
  Tensor x(Shape{16, 4}), y(Shape{16, 2});
  for (int64_t i = 0; i < x.numel(); ++i) x[i] = rng.uniform(-1.0f, 1.0f);
  for (int64_t n = 0; n < 16; ++n) {
    y[2 * n] = x[4 * n] + x[4 * n + 1];
    y[2 * n + 1] = x[4 * n + 2] - x[4 * n + 3];
  }
  double loss = 0.0;
  for (int step = 0; step < 5; ++step) loss = model.train_step(x, y);
  Tensor pred = model.predict(x);
  if (!std::isfinite(loss) || pred.shape() != Shape{16, 2}) {
    std::fprintf(stderr, "consumer: loss %g, prediction shape %s\n", loss,
                 pred.shape().str().c_str());
    return 1;
  }

  // Typed exceptions thrown inside the library are caught by their type out here.
  bool caught = false;
  try {
    Sequential bad;
    bad.add(Dense(4));
    bad.build(Shape{3, 5, 5});
  } catch (const ShapeError&) {
    caught = true;
  }
  if (!caught) {
    std::fprintf(stderr, "consumer: Dense did not throw ShapeError for a (3, 5, 5) input\n");
    return 1;
  }

  std::printf("consumer: %lld parameters, loss after 5 steps %.4f, predict -> %s\n",
              static_cast<long long>(model.num_params()), loss, pred.shape().str().c_str());
  return 0;
}
