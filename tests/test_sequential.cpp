// Sequential: shape inference, training, determinism, buffer planning, prediction.
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <sstream>

#include <catch2/catch.hpp>

#include "alloc_counter.hpp"
#include "core/memory.hpp"
#include "imgsim/error.hpp"
#include "imgsim/nn/layers.hpp"
#include "imgsim/nn/sequential.hpp"

using namespace imgsim;
using namespace imgsim::nn;

namespace {

Sequential small_cnn(bool bn = false, bool dropout = true) {
  Sequential m;
  m.add(
      Conv2D(4, {3, 3},
             {.padding = Padding::same, .activation = Activation::relu, .input_shape = {2, 8, 8}}));
  if (bn) m.add(BatchNorm());
  m.add(MaxPool2D({2, 2}));
  m.add(Conv2D(6, {3, 3}, {.stride = {2, 2}, .activation = Activation::tanh}));
  m.add(Flatten());
  m.add(Dense(5, {.activation = Activation::leaky_relu}));
  if (dropout) m.add(Dropout(0.2f));
  m.add(Dense(3));
  return m;
}

void random_fill(Tensor& t, Rng& rng) {
  for (int64_t i = 0; i < t.numel(); ++i) t[i] = rng.normal();
}

// A tiny separable problem: class = which of three quadrant patterns is brightest.
void make_batch(int64_t n, Tensor& x, Tensor& y, uint64_t seed) {
  Rng rng(seed);
  x.resize({n, 2, 8, 8});
  y.resize({n});
  for (int64_t i = 0; i < n; ++i) {
    int cls = static_cast<int>(rng.below(3));
    y[i] = static_cast<float>(cls);
    for (int c = 0; c < 2; ++c)
      for (int h = 0; h < 8; ++h)
        for (int w = 0; w < 8; ++w) {
          int quad = (h / 4) * 2 + (w / 4);
          float v = 0.3f * rng.normal() + (quad == cls ? 1.5f : 0.0f);
          x.at(i, c, h, w) = v;
        }
  }
}

}  // namespace

TEST_CASE("Sequential infers shapes and names layers", "[sequential]") {
  Sequential m = small_cnn();
  m.build({2, 8, 8});
  CHECK(m.output_shape() == Shape{3});
  CHECK(m.layer(0).output_shape() == Shape{4, 8, 8});
  CHECK(m.layer(1).output_shape() == Shape{4, 4, 4});
  CHECK(m.layer(2).output_shape() == Shape{6, 1, 1});
  CHECK(m.layer(0).name == "conv2d_1");
  CHECK(m.layer(2).name == "conv2d_2");
  std::ostringstream os;
  m.summary(os);
  CHECK(os.str().find("Total params: " + std::to_string(m.num_params())) != std::string::npos);
}

TEST_CASE("A shape mismatch names the layer and both shapes", "[sequential][shape]") {
  Sequential m;
  m.add(Conv2D(8, {3, 3}, {.input_shape = {3, 16, 16}}));
  m.add(Dense(4));  // needs a Flatten first
  try {
    m.build({3, 16, 16});
    FAIL("expected ShapeError");
  } catch (const ShapeError& e) {
    std::string msg = e.what();
    CHECK(msg.find("dense_1") != std::string::npos);
    CHECK(msg.find("(8, 14, 14)") != std::string::npos);
  }
  Sequential m2;
  m2.add(Conv2D(8, {5, 5}, {.input_shape = {3, 4, 4}}));
  CHECK_THROWS_AS(m2.build({3, 4, 4}), ShapeError);
  Sequential m3 = small_cnn();
  m3.build({2, 8, 8});
  Tensor wrong({2, 3, 8, 8});
  CHECK_THROWS_AS(m3.predict(wrong), ShapeError);
}

TEST_CASE("Sequential needs compile before fit", "[sequential]") {
  Sequential m = small_cnn();
  Tensor x, y;
  make_batch(8, x, y, 1);
  CHECK_THROWS_AS(m.fit(x, y), StateError);
  CHECK_THROWS_AS(m.compile("adagrad", "mse"), InvalidArgument);
  CHECK_THROWS_AS(m.compile("adam", "hinge"), InvalidArgument);
  m.compile("adam", "mse");
  CHECK_THROWS_AS(m.fit(x, y), ShapeError);  // (N) class indices cannot go with MSE on (N, 3)
}

TEST_CASE("The model's backward matches finite differences through all layers",
          "[sequential][grad]") {
  // Without batch norm the first Conv2D and the MaxPool2D run fused (Conv2D::forward_pool2x2).
  const bool bn = GENERATE(true, false);
  INFO((bn ? "with" : "without") << " batch norm");
  Sequential m = small_cnn(bn);
  m.build({2, 8, 8}, 3);
  // Dropout must not resample between evaluations: remove its randomness by using Phase::train
  // with a fixed seed before each forward.
  Rng rng(11);
  Tensor x({3, 2, 8, 8});
  random_fill(x, rng);
  Tensor r({3, 3});
  random_fill(r, rng);
  std::size_t dropout = 0;
  for (std::size_t i = 0; i < m.size(); ++i)
    if (std::string(m.layer(i).type()) == "dropout") dropout = i;
  REQUIRE(dropout > 0);
  auto objective = [&]() {
    m.layer(dropout).set_seed(99);
    const Tensor& y = m.forward(x, Phase::train);
    double s = 0;
    for (int64_t i = 0; i < y.numel(); ++i) s += static_cast<double>(r[i]) * y[i];
    return s;
  };
  objective();
  Tensor dx(x.shape());
  m.zero_grad();
  m.backward(r, &dx);
  auto params = m.params();
  int checked = 0, bad = 0;
  auto check = [&](float* v, float analytic) {
    const float orig = *v;
    const float eps = 2e-3f;
    *v = orig + eps;
    double lp = objective();
    *v = orig - eps;
    double lm = objective();
    *v = orig + eps / 2;
    double lp2 = objective();
    *v = orig - eps / 2;
    double lm2 = objective();
    *v = orig;
    double g1 = (lp - lm) / (2.0 * eps), g2 = (lp2 - lm2) / static_cast<double>(eps);
    if (std::abs(g1 - g2) > 1e-3 + 2e-2 * std::abs(g2)) return;  // kink
    ++checked;
    if (std::abs(g2 - analytic) > 2e-3 + 2e-2 * std::abs(g2)) ++bad;
  };
  for (int64_t i = 0; i < x.numel(); i += 7) check(&x[i], dx[i]);
  for (auto& p : params)
    for (int64_t i = 0; i < p.value->numel(); i += 5) check(&(*p.value)[i], (*p.grad)[i]);
  CHECK(checked > 100);
  CHECK(bad == 0);
}

TEST_CASE("A small CNN overfits a tiny batch", "[sequential][train]") {
  for (bool bn : {false, true}) {
    DYNAMIC_SECTION((bn ? "with" : "without") << " batch norm") {
      Sequential m = small_cnn(bn, /*dropout=*/false);
      m.compile(Adam({.lr = 1e-2}), SoftmaxCrossEntropy(), {"accuracy"});
      Tensor x, y;
      make_batch(16, x, y, 5);
      History h = m.fit(x, y, {.epochs = 150, .batch_size = 16, .seed = 3, .verbose = 0});
      REQUIRE(h.epochs.size() == 150);
      INFO("first loss " << h.epochs.front().loss << ", last " << h.epochs.back().loss);
      CHECK(h.epochs.back().loss < 0.02);
      CHECK(h.epochs.back().metrics.at("accuracy") == 1.0);
      EvalResult r = m.evaluate(x, y);
      CHECK(r.metrics.at("accuracy") == 1.0);
    }
  }
}

TEST_CASE("Training is deterministic for a seed and generalises on the toy task",
          "[sequential][train]") {
  auto run = [](uint64_t seed) {
    Sequential m = small_cnn(true);
    m.build({2, 8, 8}, 7);
    m.compile(Adam({.lr = 5e-3}), SoftmaxCrossEntropy(), {"accuracy"});
    Tensor x, y, xv, yv;
    make_batch(96, x, y, 21);
    make_batch(64, xv, yv, 22);
    data::TensorDataset val(xv, yv);
    return m.fit(x, y,
                 {.epochs = 8, .batch_size = 16, .seed = seed, .validation = &val, .verbose = 0});
  };
  History a = run(1), b = run(1), c = run(2);
  REQUIRE(a.epochs.size() == 8);
  for (std::size_t e = 0; e < a.epochs.size(); ++e) CHECK(a.epochs[e].loss == b.epochs[e].loss);
  CHECK(a.epochs.back().loss != c.epochs.back().loss);
  CHECK(a.epochs.back().val_metrics.at("accuracy") > 0.9);
}

TEST_CASE("Training steps allocate nothing once buffers are planned", "[sequential][memory]") {
  Sequential m = small_cnn(true);
  m.compile(Adam(), SoftmaxCrossEntropy());
  Tensor x, y;
  make_batch(8, x, y, 9);
  m.train_step(x, y);
  m.train_step(x, y);
  const auto a = imgsim::testing::allocations_during([&] {
    for (int i = 0; i < 5; ++i) m.train_step(x, y);
  });
  CHECK(a.tensors == 0);
  CHECK(a.news == 0);
  // A smaller batch reuses the planned buffers too.
  Tensor xs = x.slice(0, 5).clone(), ys = y.slice(0, 5).clone();
  const auto b = imgsim::testing::allocations_during([&] { m.train_step(xs, ys); });
  CHECK(b.tensors == 0);
  CHECK(b.news == 0);
}

TEST_CASE("Large buffers are whole huge pages; tensors are aligned and zeroed", "[memory]") {
  // core/memory.hpp: from 2 MiB on, 2 MiB-aligned (so the kernel can back them with huge
  // pages), below it 64-byte aligned; a Tensor of either size starts zeroed and writable to its
  // end.
  using imgsim::detail::allocate_large;
  using imgsim::detail::kHugePage;
  for (const std::size_t bytes : {std::size_t{100}, kHugePage - 4, kHugePage, 3 * kHugePage + 12}) {
    void* p = allocate_large(bytes);
    REQUIRE(p != nullptr);
    const auto a = reinterpret_cast<std::uintptr_t>(p);
    CHECK(a % 64 == 0);
    if (bytes >= kHugePage) CHECK(a % kHugePage == 0);
    static_cast<unsigned char*>(p)[bytes - 1] = 1;  // the last byte is ours
    std::free(p);
  }
  for (const int64_t n : {int64_t{1000}, int64_t{3} << 19}) {  // 4 KB and 6 MiB of floats
    Tensor t(Shape{n});
    CHECK(reinterpret_cast<std::uintptr_t>(t.data()) % Tensor::kAlignment == 0);
    bool zero = true;
    for (int64_t i = 0; i < n; ++i) zero = zero && t[i] == 0.0f;
    CHECK(zero);
    t[n - 1] = 1.0f;
  }
}

TEST_CASE("predict equals batched inference and keeps no training buffers", "[sequential]") {
  Sequential m = small_cnn(true);
  m.build({2, 8, 8});
  Rng rng(4);
  Tensor x({10, 2, 8, 8});
  random_fill(x, rng);
  Tensor all = m.predict(x, 10);
  Tensor parts = m.predict(x, 3);
  REQUIRE(all.shape() == Shape{10, 3});
  for (int64_t i = 0; i < all.numel(); ++i) CHECK(all[i] == parts[i]);
  // Inference is deterministic (Dropout is the identity).
  Tensor again = m.predict(x, 4);
  for (int64_t i = 0; i < all.numel(); ++i) CHECK(all[i] == again[i]);
}

TEST_CASE("pop removes the head and keeps the trunk's outputs", "[sequential]") {
  // Without dropout: layers conv, pool, conv, flatten, dense(5, leaky), dense(3).
  Sequential full = small_cnn(true, false);
  full.build({2, 8, 8}, 9);
  Sequential trunk = small_cnn(true, false);
  trunk.build({2, 8, 8}, 9);  // the same seed: the same parameters
  Rng rng(5);
  Tensor x({6, 2, 8, 8});
  random_fill(x, rng);
  const Tensor before = full.predict(x, 4);
  trunk.pop();
  REQUIRE(trunk.size() == full.size() - 1);
  CHECK(trunk.output_shape() == Shape{5});
  const Tensor features = trunk.predict(x, 4);
  REQUIRE(features.shape() == Shape{6, 5});
  // The popped Dense(3) applied to the features gives the full model's output.
  auto& head = dynamic_cast<Dense&>(full.layer(full.size() - 1));
  for (int64_t n = 0; n < 6; ++n)
    for (int64_t j = 0; j < 3; ++j) {
      double z = head.bias()[j];
      for (int64_t i = 0; i < 5; ++i) z += double{features[n * 5 + i]} * head.weight()[j * 5 + i];
      CHECK(before[n * 3 + j] == Approx(z).margin(1e-5));
    }
  // Compiled models and a last layer cannot be popped.
  Sequential compiled = small_cnn();
  compiled.compile(Adam(), MeanSquaredError());
  CHECK_THROWS_AS(compiled.pop(), StateError);
  Sequential one;
  one.add(Dense(2, {.input_shape = {3}}));
  CHECK_THROWS_AS(one.pop(), StateError);
}

TEST_CASE("Callbacks are called and can stop training", "[sequential]") {
  struct Counter : Callback {
    int epochs = 0, batches = 0, begins = 0, ends = 0;
    void on_train_begin(Sequential&) override { ++begins; }
    void on_batch_end(Sequential& m, const BatchLogs& logs) override {
      ++batches;
      if (logs.epoch == 1 && logs.step == 1) m.stop_training();
    }
    void on_epoch_end(Sequential&, const EpochLogs&) override { ++epochs; }
    void on_train_end(Sequential&, const History&) override { ++ends; }
  } cb;
  Sequential m = small_cnn();
  m.compile("sgd", "cross_entropy");
  Tensor x, y;
  make_batch(32, x, y, 2);
  std::ostringstream log;
  History h =
      m.fit(x, y, {.epochs = 5, .batch_size = 8, .callbacks = {&cb}, .verbose = 2, .out = &log});
  CHECK(cb.begins == 1);
  CHECK(cb.ends == 1);
  CHECK(cb.batches == 4 + 2);
  CHECK(cb.epochs == 2);
  CHECK(h.epochs.size() == 2);
  CHECK(log.str().find("Epoch 1/5") != std::string::npos);
  CHECK(log.str().find("img/s") != std::string::npos);
}

TEST_CASE("Cross-entropy after a Softmax layer is refused at compile", "[sequential]") {
  Sequential m;
  m.add(Dense(3, {.input_shape = {4}}));
  m.add(Softmax());
  CHECK_THROWS_AS(m.compile(Adam(), SoftmaxCrossEntropy()), InvalidArgument);
  CHECK_THROWS_AS(m.compile("adam", "categorical_crossentropy"), InvalidArgument);
  CHECK_NOTHROW(m.compile("adam", "mse"));
}
