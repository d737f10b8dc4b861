// Dropout: inverted scaling, mask statistics, determinism, inference identity, gradients.
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

// x in [1, 2): never zero, so a zero output means a dropped element.
Tensor positive_input(const Shape& s, uint64_t seed) {
  Tensor x(s);
  Rng rng(seed);
  for (int64_t i = 0; i < x.numel(); ++i) x[i] = 1.0f + rng.uniform();
  return x;
}

}  // namespace

TEST_CASE("Dropout keeps about 1 - rate of a large tensor, scaled by 1/(1 - rate)", "[dropout]") {
  for (float rate : {0.1f, 0.3f, 0.5f, 0.9f}) {
    DYNAMIC_SECTION("rate " << rate) {
      Dropout d(rate);
      d.set_seed(123);
      d.build(Shape{50000});
      Tensor x = positive_input(Shape{4, 50000}, 1);
      Tensor y(x.shape());
      d.forward(x, y, Phase::train);
      int64_t kept = 0;
      const double scale = 1.0 / (1.0 - rate);
      for (int64_t i = 0; i < x.numel(); ++i) {
        if (y[i] == 0.0f) continue;
        ++kept;
        REQUIRE(y[i] == Approx(x[i] * scale).epsilon(1e-6));
      }
      // 200000 Bernoulli draws: the standard deviation of the fraction is <= 0.0012.
      const double frac = static_cast<double>(kept) / static_cast<double>(x.numel());
      CHECK(frac == Approx(1.0 - rate).margin(0.006));
    }
  }
}

TEST_CASE("Dropout backward scales dy by the mask and adds", "[dropout]") {
  Dropout d(0.4f);
  d.set_seed(9);
  d.build(Shape{3, 4, 4});
  Tensor x = positive_input(Shape{2, 3, 4, 4}, 2);
  Tensor y(x.shape()), dy(x.shape()), dx(x.shape(), 0.5f);
  Rng rng(4);
  for (int64_t i = 0; i < dy.numel(); ++i) dy[i] = rng.normal();
  d.forward(x, y, Phase::train);
  d.backward(x, y, dy, &dx);
  int64_t dropped = 0;
  for (int64_t i = 0; i < x.numel(); ++i) {
    if (y[i] == 0.0f) {
      ++dropped;
      CHECK(dx[i] == 0.5f);
    } else {
      CHECK(dx[i] == Approx(0.5 + dy[i] / 0.6));
    }
  }
  CHECK(dropped > 0);
  CHECK(dropped < x.numel());
  d.backward(x, y, dy, nullptr);  // allowed
}

TEST_CASE("Dropout is the identity in inference, forward and backward", "[dropout]") {
  Dropout d(0.5f);
  d.build(Shape{100});
  Tensor x = positive_input(Shape{3, 100}, 3);
  Tensor y(x.shape()), dy(x.shape(), 2.0f), dx(x.shape(), 1.0f);
  // A training forward first, to check that the next inference forward clears its mask.
  d.forward(x, y, Phase::train);
  d.forward(x, y, Phase::infer);
  for (int64_t i = 0; i < x.numel(); ++i) REQUIRE(y[i] == x[i]);
  d.backward(x, y, dy, &dx);
  for (int64_t i = 0; i < x.numel(); ++i) REQUIRE(dx[i] == 3.0f);

  Dropout none(0.0f);  // rate 0 is the identity in training too
  none.build(Shape{100});
  none.forward(x, y, Phase::train);
  for (int64_t i = 0; i < x.numel(); ++i) REQUIRE(y[i] == x[i]);
}

TEST_CASE("Dropout masks are reproducible from the seed and redrawn each forward", "[dropout]") {
  Tensor x = positive_input(Shape{2, 500}, 4);
  Tensor y1(x.shape()), y2(x.shape()), y3(x.shape()), y4(x.shape());
  Dropout a(0.5f), b(0.5f), c(0.5f);
  for (Dropout* d : {&a, &b, &c}) d->build(Shape{500});
  a.set_seed(42);
  b.set_seed(42);
  c.set_seed(43);
  a.forward(x, y1, Phase::train);
  b.forward(x, y2, Phase::train);
  c.forward(x, y3, Phase::train);
  a.forward(x, y4, Phase::train);  // second draw of a
  int64_t same_seed_diff = 0, other_seed_diff = 0, next_draw_diff = 0;
  for (int64_t i = 0; i < x.numel(); ++i) {
    same_seed_diff += (y1[i] == 0.0f) != (y2[i] == 0.0f);
    other_seed_diff += (y1[i] == 0.0f) != (y3[i] == 0.0f);
    next_draw_diff += (y1[i] == 0.0f) != (y4[i] == 0.0f);
  }
  CHECK(same_seed_diff == 0);
  CHECK(other_seed_diff > 300);  // about half of 1000 differ for independent masks
  CHECK(next_draw_diff > 300);

  a.set_seed(42);  // re-seeding restarts the sequence
  a.forward(x, y4, Phase::train);
  for (int64_t i = 0; i < x.numel(); ++i) REQUIRE(y4[i] == y1[i]);
}

TEST_CASE("Dropout mask buffer follows the batch size", "[dropout]") {
  Dropout d(0.5f);
  d.set_seed(8);
  d.build(Shape{64});
  Tensor big = positive_input(Shape{8, 64}, 5), ybig(big.shape());
  d.forward(big, ybig, Phase::train);
  // A smaller batch afterwards reuses the buffer; backward uses this batch's mask.
  Tensor x = positive_input(Shape{2, 64}, 6), y(x.shape()), dy(x.shape(), 1.0f), dx(x.shape());
  d.forward(x, y, Phase::train);
  d.backward(x, y, dy, &dx);
  for (int64_t i = 0; i < x.numel(); ++i) REQUIRE(dx[i] == (y[i] == 0.0f ? 0.0f : 2.0f));

  // backward for a larger batch than the last training forward is refused, not over-read.
  Dropout fresh(0.5f);
  fresh.build(Shape{64});
  fresh.forward(x, y, Phase::train);
  Tensor dybig(big.shape()), dxbig(big.shape());
  REQUIRE_THROWS_AS(fresh.backward(big, ybig, dybig, &dxbig), StateError);
}

TEST_CASE("Dropout passes the gradient check", "[dropout][grad]") {
  SECTION("training, (C, H, W)") {
    Dropout d(0.3f);
    REQUIRE_GRADIENTS_OK(testing::check_layer_gradients(d, Shape{3, 4, 5}, {.batch = 2}));
  }
  SECTION("training, (D)") {
    Dropout d(0.5f);
    REQUIRE_GRADIENTS_OK(testing::check_layer_gradients(d, Shape{10}, {.batch = 3}));
  }
  SECTION("inference") {
    Dropout d(0.5f);
    REQUIRE_GRADIENTS_OK(
        testing::check_layer_gradients(d, Shape{10}, {.batch = 3, .phase = Phase::infer}));
  }
}

TEST_CASE("Dropout rate is validated and its config round-trips", "[dropout][serialize]") {
  for (float bad : {-0.1f, 1.0f, 1.5f, std::numeric_limits<float>::quiet_NaN(),
                    std::numeric_limits<float>::infinity()}) {
    REQUIRE_THROWS_AS(Dropout(bad), InvalidArgument);
  }
  REQUIRE_NOTHROW(Dropout(0.0f));
  REQUIRE_NOTHROW(Dropout(0.999f));

  Dropout d(0.25f);
  CHECK(d.describe() == "Dropout(0.25)");
  CHECK(std::string(d.type()) == "dropout");
  ByteWriter w;
  d.save_config(w);
  auto p = make_layer("dropout");
  REQUIRE(p != nullptr);
  ByteReader r(w.buffer().data(), w.buffer().size(), "test record");
  p->load_config(r, 1);
  CHECK(r.remaining() == 0);
  CHECK(p->describe() == "Dropout(0.25)");

  for (float bad : {1.0f, -0.5f, std::numeric_limits<float>::quiet_NaN()}) {
    ByteWriter bw;
    bw.f32(bad);
    ByteReader br(bw.buffer().data(), bw.buffer().size(), "test record");
    Dropout loaded;
    try {
      loaded.load_config(br, 1);
      FAIL("accepted dropout rate " << bad);
    } catch (const FormatError& e) {
      CHECK_THAT(e.what(), Catch::Contains("dropout.rate"));
    }
  }
  ByteReader bv(w.buffer().data(), w.buffer().size(), "test record");
  Dropout loaded;
  REQUIRE_THROWS_AS(loaded.load_config(bv, 2), FormatError);
}
