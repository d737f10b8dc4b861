// Losses: gradients (generic checker), values against numbers computed by hand (in double, from
// the formulas in docs/losses.md), numerical stability, target validation and shape errors.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "gradcheck.hpp"
#include "imgsim/error.hpp"
#include "imgsim/nn/loss.hpp"
#include "imgsim/rng.hpp"

using namespace imgsim;
using namespace imgsim::nn;

namespace {

Tensor make(const Shape& s, std::initializer_list<float> values) {
  Tensor t(s);
  REQUIRE(static_cast<int64_t>(values.size()) == t.numel());
  int64_t i = 0;
  for (float v : values) t[i++] = v;
  return t;
}

Tensor random_tensor(const Shape& s, Rng& rng, float scale = 1.0f) {
  Tensor t(s);
  for (int64_t i = 0; i < t.numel(); ++i) t[i] = scale * rng.normal();
  return t;
}

// Random class indices in [0, k), stored as floats in a tensor of shape s.
Tensor random_indices(const Shape& s, int64_t k, Rng& rng) {
  Tensor t(s);
  for (int64_t i = 0; i < t.numel(); ++i)
    t[i] = static_cast<float>(rng.below(static_cast<uint64_t>(k)));
  return t;
}

// Random probability rows (N, K): positive, each row sums to 1.
Tensor random_probs(int64_t n, int64_t k, Rng& rng) {
  Tensor t({n, k});
  for (int64_t r = 0; r < n; ++r) {
    double s = 0.0;
    for (int64_t j = 0; j < k; ++j) s += t[r * k + j] = 0.05f + rng.uniform();
    for (int64_t j = 0; j < k; ++j) t[r * k + j] = static_cast<float>(t[r * k + j] / s);
  }
  return t;
}

// Runs forward_backward on a dpred pre-filled with `fill` and returns dL/dpred (dpred - fill).
// A non-zero fill checks that the gradient is added (the gradient checker also checks it).
std::vector<double> grad_of(Loss& loss, const Tensor& pred, const Tensor& target, double* value,
                            float fill = 0.0f) {
  Tensor d(pred.shape(), fill);
  *value = loss.forward_backward(pred, target, &d);
  std::vector<double> g(static_cast<std::size_t>(d.numel()));
  for (int64_t i = 0; i < d.numel(); ++i) g[static_cast<std::size_t>(i)] = double(d[i]) - fill;
  return g;
}

std::string error_of(Loss& loss, const Tensor& pred, const Tensor& target) {
  try {
    loss.forward_backward(pred, target, nullptr);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

}  // namespace

// --- gradients --------------------------------------------------------------------------------

TEST_CASE("MeanSquaredError gradients", "[loss][grad]") {
  Rng rng(11);
  MeanSquaredError mse;
  SECTION("same shape") {
    Tensor pred = random_tensor({3, 4}, rng);
    Tensor target = random_tensor({3, 4}, rng);
    REQUIRE_GRADIENTS_OK(testing::check_loss_gradients(mse, pred, target));
  }
  SECTION("(N, 1) prediction with (N) target") {
    Tensor pred = random_tensor({5, 1}, rng);
    Tensor target = random_tensor({5}, rng);
    REQUIRE_GRADIENTS_OK(testing::check_loss_gradients(mse, pred, target));
  }
}

TEST_CASE("SoftmaxCrossEntropy gradients for every target kind", "[loss][grad]") {
  Rng rng(12);
  const int64_t n = 4, k = 5;
  for (float smoothing : {0.0f, 0.2f}) {
    SoftmaxCrossEntropy ce(smoothing);
    DYNAMIC_SECTION("indices (N), smoothing " << smoothing) {
      Tensor pred = random_tensor({n, k}, rng, 2.0f);
      Tensor target = random_indices({n}, k, rng);
      REQUIRE_GRADIENTS_OK(testing::check_loss_gradients(ce, pred, target));
    }
    DYNAMIC_SECTION("indices (N, 1), smoothing " << smoothing) {
      Tensor pred = random_tensor({n, k}, rng, 2.0f);
      Tensor target = random_indices({n, 1}, k, rng);
      REQUIRE_GRADIENTS_OK(testing::check_loss_gradients(ce, pred, target));
    }
    DYNAMIC_SECTION("one-hot (N, K), smoothing " << smoothing) {
      Tensor pred = random_tensor({n, k}, rng, 2.0f);
      Tensor target({n, k});
      for (int64_t r = 0; r < n; ++r)
        target[r * k + static_cast<int64_t>(rng.below(static_cast<uint64_t>(k)))] = 1.0f;
      REQUIRE_GRADIENTS_OK(testing::check_loss_gradients(ce, pred, target));
    }
    DYNAMIC_SECTION("probabilities (N, K), smoothing " << smoothing) {
      Tensor pred = random_tensor({n, k}, rng, 2.0f);
      Tensor target = random_probs(n, k, rng);
      REQUIRE_GRADIENTS_OK(testing::check_loss_gradients(ce, pred, target));
    }
  }
}

TEST_CASE("SoftmaxCrossEntropy with a target margin: gradients and value", "[loss][grad]") {
  Rng rng(14);
  const int64_t n = 4, k = 5;
  for (float smoothing : {0.0f, 0.2f}) {
    SoftmaxCrossEntropy ce(smoothing, 2.5f);
    DYNAMIC_SECTION("indices, smoothing " << smoothing) {
      Tensor pred = random_tensor({n, k}, rng, 4.0f);
      Tensor target = random_indices({n}, k, rng);
      REQUIRE_GRADIENTS_OK(testing::check_loss_gradients(ce, pred, target));
    }
    DYNAMIC_SECTION("probabilities, smoothing " << smoothing) {
      Tensor pred = random_tensor({n, k}, rng, 4.0f);
      Tensor target = random_probs(n, k, rng);
      REQUIRE_GRADIENTS_OK(testing::check_loss_gradients(ce, pred, target));
    }
  }
  SECTION("the margin is taken off the target logit") {
    // Logits (1, 2, 0), class 1, margin 0.5: the plain loss of (1, 1.5, 0).
    Tensor pred({1, 3});
    pred[0] = 1.0f;
    pred[1] = 2.0f;
    pred[2] = 0.0f;
    Tensor target({1});
    target[0] = 1.0f;
    Tensor shifted = pred.clone();
    shifted[1] = 1.5f;
    SoftmaxCrossEntropy margin(0.0f, 0.5f), plain;
    const double expected = -(1.5 - std::log(std::exp(1.0) + std::exp(1.5) + 1.0));
    CHECK(margin.forward_backward(pred, target, nullptr) == Approx(expected).epsilon(1e-12));
    CHECK(plain.forward_backward(shifted, target, nullptr) == Approx(expected).epsilon(1e-12));
    CHECK(plain.forward_backward(pred, target, nullptr) < expected);
  }
  CHECK_THROWS_AS(SoftmaxCrossEntropy(0.0f, -1.0f), InvalidArgument);
  CHECK_THROWS_AS(SoftmaxCrossEntropy(0.0f, std::numeric_limits<float>::infinity()),
                  InvalidArgument);
}

TEST_CASE("SoftmaxCrossEntropy gradient with targets that do not sum to 1", "[loss][grad]") {
  // dL/dz = p * sum(q) - q: the general form, checked numerically.
  Rng rng(13);
  SoftmaxCrossEntropy ce;
  Tensor pred = random_tensor({3, 4}, rng, 2.0f);
  Tensor target({3, 4});
  for (int64_t i = 0; i < target.numel(); ++i) target[i] = rng.uniform();
  REQUIRE_GRADIENTS_OK(testing::check_loss_gradients(ce, pred, target));
}

TEST_CASE("BinaryCrossEntropy gradients in both modes", "[loss][grad]") {
  Rng rng(14);
  SECTION("from logits") {
    BinaryCrossEntropy bce(true);
    Tensor pred = random_tensor({4, 3}, rng, 3.0f);
    Tensor target({4, 3});
    for (int64_t i = 0; i < target.numel(); ++i) target[i] = rng.uniform();  // soft labels too
    REQUIRE_GRADIENTS_OK(testing::check_loss_gradients(bce, pred, target));
  }
  SECTION("from logits, (N, 1) with (N)") {
    BinaryCrossEntropy bce(true);
    Tensor pred = random_tensor({6, 1}, rng, 3.0f);
    Tensor target({6});
    for (int64_t i = 0; i < target.numel(); ++i) target[i] = static_cast<float>(rng.below(2));
    REQUIRE_GRADIENTS_OK(testing::check_loss_gradients(bce, pred, target));
  }
  SECTION("from probabilities") {
    BinaryCrossEntropy bce(false);
    Tensor pred({4, 3});
    Tensor target({4, 3});
    for (int64_t i = 0; i < pred.numel(); ++i) {
      pred[i] = rng.uniform(0.1f, 0.9f);  // away from the clamp, where the loss is smooth
      target[i] = static_cast<float>(rng.below(2));
    }
    REQUIRE_GRADIENTS_OK(testing::check_loss_gradients(bce, pred, target));
  }
}

// --- values -----------------------------------------------------------------------------------

TEST_CASE("MeanSquaredError value and gradient by hand", "[loss]") {
  MeanSquaredError mse;
  Tensor pred = make({2, 2}, {1, 2, 3, 4});
  Tensor target = make({2, 2}, {0, 2, 5, 4.5f});
  // diffs 1, 0, -2, -0.5: (1 + 0 + 4 + 0.25) / 4
  double value = 0.0;
  auto g = grad_of(mse, pred, target, &value, 0.75f);  // all sums below are exact in float
  CHECK(value == Approx(5.25 / 4).epsilon(1e-12));
  // 2 d / 4, added on top of the pre-filled 0.75
  CHECK(g[0] == Approx(0.5));
  CHECK(g[1] == 0.0);
  CHECK(g[2] == Approx(-1.0));
  CHECK(g[3] == Approx(-0.25));
  CHECK(mse.forward_backward(pred, target, nullptr) == value);
}

TEST_CASE("SoftmaxCrossEntropy values by hand", "[loss]") {
  // Row [1, 2, 3]: lse = log(e + e^2 + e^3) = 3.40760596444438
  const double lse = 3.40760596444438013;
  const double p[3] = {0.09003057317038048, 0.2447284710547977, 0.665240955774822};
  Tensor pred = make({2, 3}, {1, 2, 3, 1, 2, 3});

  SECTION("indices: mean over rows of lse - z_y") {
    SoftmaxCrossEntropy ce;
    Tensor target = make({2}, {2, 0});
    double value = 0.0;
    auto g = grad_of(ce, pred, target, &value);
    CHECK(value == Approx(((lse - 3) + (lse - 1)) / 2).epsilon(1e-12));
    CHECK(value == Approx((0.40760596444438013 + 2.40760596444438) / 2).epsilon(1e-12));
    // (p - onehot) / N
    CHECK(g[0] == Approx(p[0] / 2).epsilon(1e-6));
    CHECK(g[1] == Approx(p[1] / 2).epsilon(1e-6));
    CHECK(g[2] == Approx((p[2] - 1) / 2).epsilon(1e-6));
    CHECK(g[3] == Approx((p[0] - 1) / 2).epsilon(1e-6));
    CHECK(g[4] == Approx(p[1] / 2).epsilon(1e-6));
    CHECK(g[5] == Approx(p[2] / 2).epsilon(1e-6));
  }
  SECTION("label smoothing 0.1 as torch: (1-e) nll + e/K sum_k -log p_k") {
    SoftmaxCrossEntropy ce(0.1f);
    Tensor target = make({2, 1}, {0, 0});
    double value = 0.0;
    auto g = grad_of(ce, pred, target, &value);
    const double e = static_cast<double>(0.1f);
    const double torch_form = (1 - e) * (lse - 1) + e / 3 * ((lse - 1) + (lse - 2) + (lse - 3));
    CHECK(value == Approx(torch_form).epsilon(1e-12));
    CHECK(value == Approx(2.3076059644443805).epsilon(1e-6));  // 0.1 vs 0.1f
    // (p - q) / N with q = (0.9 + 0.1/3, 0.1/3, 0.1/3)
    CHECK(g[0] == Approx((p[0] - (1 - e) - e / 3) / 2).epsilon(1e-6));
    CHECK(g[1] == Approx((p[1] - e / 3) / 2).epsilon(1e-6));
    CHECK(g[2] == Approx((p[2] - e / 3) / 2).epsilon(1e-6));
  }
  SECTION("probability targets") {
    SoftmaxCrossEntropy ce;
    Tensor target = make({2, 3}, {0.2f, 0.3f, 0.5f, 0, 0, 1});
    double value = 0.0;
    auto g = grad_of(ce, pred, target, &value);
    const double t0 = 0.2f, t1 = 0.3f, t2 = 0.5f;
    const double row0 = t0 * (lse - 1) + t1 * (lse - 2) + t2 * (lse - 3);
    CHECK(value == Approx((row0 + (lse - 3)) / 2).epsilon(1e-12));
    CHECK(value == Approx((1.10760596444438 + 0.40760596444438013) / 2).epsilon(1e-6));
    CHECK(g[0] == Approx((p[0] - t0) / 2).epsilon(1e-6));
    CHECK(g[1] == Approx((p[1] - t1) / 2).epsilon(1e-6));
    CHECK(g[2] == Approx((p[2] - t2) / 2).epsilon(1e-6));
  }
}

TEST_CASE("SoftmaxCrossEntropy: indices, (N, 1) and one-hot targets agree", "[loss]") {
  Rng rng(21);
  const int64_t n = 6, k = 7;
  Tensor pred = random_tensor({n, k}, rng, 3.0f);
  Tensor idx = random_indices({n}, k, rng);
  Tensor idx2({n, 1});
  idx2.copy_from(idx);
  idx2.reshape({n, 1});
  Tensor onehot({n, k});
  for (int64_t r = 0; r < n; ++r) onehot[r * k + static_cast<int64_t>(idx[r])] = 1.0f;
  for (float smoothing : {0.0f, 0.3f}) {
    SoftmaxCrossEntropy ce(smoothing);
    double l1 = 0, l2 = 0, l3 = 0;
    auto g1 = grad_of(ce, pred, idx, &l1);
    auto g2 = grad_of(ce, pred, idx2, &l2);
    auto g3 = grad_of(ce, pred, onehot, &l3);
    CHECK(l1 == l2);
    CHECK(l1 == Approx(l3).epsilon(1e-12));
    for (std::size_t i = 0; i < g1.size(); ++i) {
      CHECK(g1[i] == g2[i]);
      CHECK(g1[i] == Approx(g3[i]).margin(1e-7));
    }
  }
}

TEST_CASE("BinaryCrossEntropy values by hand", "[loss]") {
  SECTION("from logits") {
    BinaryCrossEntropy bce(true);
    Tensor pred = make({3}, {0, 2, -1});
    Tensor target = make({3}, {1, 0, 0.25f});
    double value = 0.0;
    auto g = grad_of(bce, pred, target, &value);
    // z=0,t=1: log 2;  z=2,t=0: 2 + log1p(e^-2);  z=-1,t=0.25: 0.25 + log1p(e^-1)
    const double expect = (std::log(2.0) + 2.1269280110429727 + 0.5632616875182228) / 3;
    CHECK(value == Approx(expect).epsilon(1e-12));
    // (sigmoid(z) - t) / 3
    CHECK(g[0] == Approx((0.5 - 1) / 3).epsilon(1e-6));
    CHECK(g[1] == Approx((1 / (1 + std::exp(-2.0)) - 0) / 3).epsilon(1e-6));
    CHECK(g[2] == Approx((1 / (1 + std::exp(1.0)) - 0.25) / 3).epsilon(1e-6));
  }
  SECTION("from probabilities") {
    BinaryCrossEntropy bce(false);
    Tensor pred = make({2, 1}, {0.8f, 0.3f});
    Tensor target = make({2, 1}, {1, 0});
    double value = 0.0;
    auto g = grad_of(bce, pred, target, &value);
    const double p0 = 0.8f, p1 = 0.3f;
    CHECK(value == Approx((-std::log(p0) - std::log(1 - p1)) / 2).epsilon(1e-12));
    CHECK(-std::log(p0) == Approx(0.22314353641304868).epsilon(1e-12));
    // (p - t) / (p (1 - p)) / 2
    CHECK(g[0] == Approx((p0 - 1) / (p0 * (1 - p0)) / 2).epsilon(1e-6));
    CHECK(g[1] == Approx(p1 / (p1 * (1 - p1)) / 2).epsilon(1e-6));
  }
  SECTION("from probabilities: clamped to Keras' float32 bounds, zero gradient outside") {
    BinaryCrossEntropy bce(false);
    Tensor pred = make({2}, {0.0f, 1.0f});
    Tensor target = make({2}, {1, 0});
    double value = 0.0;
    auto g = grad_of(bce, pred, target, &value);
    // -log(1e-7f) and -log(1 - (1 - 1e-7f)) = -log(2^-23), computed in Python
    CHECK(value == Approx((16.118095639272223 + 15.942385152878742) / 2).epsilon(1e-12));
    CHECK(g[0] == 0.0);
    CHECK(g[1] == 0.0);
  }
  SECTION("logits and probabilities agree") {
    Rng rng(31);
    Tensor z = random_tensor({10}, rng, 2.0f);
    Tensor p({10});
    Tensor t({10});
    for (int64_t i = 0; i < 10; ++i) {
      p[i] = static_cast<float>(1 / (1 + std::exp(-static_cast<double>(z[i]))));
      t[i] = static_cast<float>(rng.below(2));
    }
    BinaryCrossEntropy from_logits(true), from_probs(false);
    // p is rounded to float: log(1 - p) near p = 1 loses a few digits, hence 1e-5.
    CHECK(from_logits.forward_backward(z, t, nullptr) ==
          Approx(from_probs.forward_backward(p, t, nullptr)).epsilon(1e-5));
  }
}

// --- stability --------------------------------------------------------------------------------

TEST_CASE("SoftmaxCrossEntropy is stable for huge logits", "[loss][stability]") {
  SoftmaxCrossEntropy ce;
  Tensor pred = make({3, 2}, {1e4f, -1e4f, 1e4f, 1e4f, -1e4f, -1e4f});
  Tensor target = make({3}, {1, 0, 1});
  double value = 0.0;
  auto g = grad_of(ce, pred, target, &value);
  // row 0: lse = 1e4, loss = 1e4 - (-1e4) = 2e4; rows 1 and 2: log 2
  REQUIRE(std::isfinite(value));
  CHECK(value == Approx((2e4 + 2 * std::log(2.0)) / 3).epsilon(1e-12));
  for (double gi : g) REQUIRE(std::isfinite(gi));
  CHECK(g[0] == Approx(1.0 / 3).epsilon(1e-6));
  CHECK(g[1] == Approx(-1.0 / 3).epsilon(1e-6));
  CHECK(g[2] == Approx(-0.5 / 3).epsilon(1e-6));
  CHECK(g[3] == Approx(0.5 / 3).epsilon(1e-6));
  CHECK(g[4] == Approx(0.5 / 3).epsilon(1e-6));
  CHECK(g[5] == Approx(-0.5 / 3).epsilon(1e-6));

  SoftmaxCrossEntropy smooth(0.1f);
  const double e = static_cast<double>(0.1f);
  Tensor one_row = make({1, 2}, {1e4f, -1e4f});
  Tensor y = make({1}, {0});
  // q = (1 - e/2, e/2): loss = (e/2) * 2e4
  CHECK(smooth.forward_backward(one_row, y, nullptr) == Approx(e / 2 * 2e4).epsilon(1e-12));
}

TEST_CASE("BinaryCrossEntropy from logits is stable for huge logits", "[loss][stability]") {
  BinaryCrossEntropy bce(true);
  Tensor pred = make({4}, {1e4f, -1e4f, 1e4f, -1e4f});
  Tensor target = make({4}, {0, 1, 1, 0});
  double value = 0.0;
  auto g = grad_of(bce, pred, target, &value);
  REQUIRE(std::isfinite(value));
  CHECK(value == Approx((1e4 + 1e4 + 0 + 0) / 4).epsilon(1e-12));
  CHECK(g[0] == Approx(0.25).epsilon(1e-6));
  CHECK(g[1] == Approx(-0.25).epsilon(1e-6));
  CHECK(g[2] == Approx(0.0).margin(1e-12));
  CHECK(g[3] == Approx(0.0).margin(1e-12));
}

// --- errors -----------------------------------------------------------------------------------

TEST_CASE("SoftmaxCrossEntropy rejects bad class indices naming row and value", "[loss][error]") {
  SoftmaxCrossEntropy ce;
  Tensor pred({3, 4});
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  struct Case {
    float value;
    const char* text;
  };
  for (Case c : {Case{1.5f, "1.5"}, Case{-1.0f, "-1"}, Case{4.0f, "is 4,"}, Case{nan, "nan"},
                 Case{inf, "inf"}, Case{1e9f, "1e+09"}}) {
    DYNAMIC_SECTION("value " << c.value) {
      Tensor target = make({3}, {0, 3, c.value});
      REQUIRE_THROWS_AS(ce.forward_backward(pred, target, nullptr), InvalidArgument);
      const std::string msg = error_of(ce, pred, target);
      INFO(msg);
      CHECK(contains(msg, "row 2"));
      CHECK(contains(msg, c.text));
      // dpred is untouched when the target is rejected
      Tensor d(pred.shape(), 0.5f);
      REQUIRE_THROWS(ce.forward_backward(pred, target, &d));
      for (int64_t i = 0; i < d.numel(); ++i) REQUIRE(d[i] == 0.5f);
    }
  }
  Tensor ok = make({3, 1}, {0, 3, 2});
  CHECK_NOTHROW(ce.forward_backward(pred, ok, nullptr));
}

TEST_CASE("Losses reject shapes that do not fit, naming both", "[loss][shape]") {
  MeanSquaredError mse;
  SoftmaxCrossEntropy ce;
  BinaryCrossEntropy bce;
  auto message = [](const Loss& l, const Shape& a, const Shape& b) {
    try {
      l.check(a, b);
    } catch (const ShapeError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  // Accepted.
  CHECK_NOTHROW(mse.check({4, 3}, {4, 3}));
  CHECK_NOTHROW(mse.check({4, 1}, {4}));
  CHECK_NOTHROW(mse.check({4}, {4, 1}));
  CHECK_NOTHROW(bce.check({4, 1}, {4}));
  CHECK_NOTHROW(ce.check({4, 3}, {4}));
  CHECK_NOTHROW(ce.check({4, 3}, {4, 1}));
  CHECK_NOTHROW(ce.check({4, 3}, {4, 3}));
  // Rejected.
  std::string m = message(mse, {4, 3}, {4, 2});
  CHECK(contains(m, "(4, 3)"));
  CHECK(contains(m, "(4, 2)"));
  CHECK_THROWS_AS(mse.check({2, 6}, {2, 2, 3}), ShapeError);
  CHECK_THROWS_AS(mse.check({4, 3}, {3, 4}), ShapeError);
  CHECK_THROWS_AS(bce.check({4, 2}, {4}), ShapeError);
  m = message(ce, {4, 3}, {5});
  CHECK(contains(m, "(4, 3)"));
  CHECK(contains(m, "(5)"));
  CHECK_THROWS_AS(ce.check({4, 3}, {4, 2}), ShapeError);
  CHECK_THROWS_AS(ce.check({4, 3, 1}, {4}), ShapeError);
  CHECK_THROWS_AS(ce.check({12}, {12}), ShapeError);
  // forward_backward checks too, and checks the gradient buffer.
  Tensor pred({2, 3}), target({3});
  CHECK_THROWS_AS(ce.forward_backward(pred, target, nullptr), ShapeError);
  Tensor good({2}), d({2, 2});
  CHECK_THROWS_AS(ce.forward_backward(pred, good, &d), ShapeError);
  CHECK_THROWS_AS(SoftmaxCrossEntropy(1.5f), InvalidArgument);
  CHECK_THROWS_AS(SoftmaxCrossEntropy(-0.1f), InvalidArgument);
}

TEST_CASE("make_loss knows the Keras and torch names", "[loss]") {
  for (const char* n : {"mean_squared_error", "mse"})
    CHECK(std::string(make_loss(n)->type()) == "mean_squared_error");
  for (const char* n : {"categorical_crossentropy", "sparse_categorical_crossentropy",
                        "cross_entropy", "softmax_cross_entropy"})
    CHECK(std::string(make_loss(n)->type()) == "softmax_cross_entropy");
  for (const char* n : {"binary_crossentropy", "binary_cross_entropy"}) {
    auto l = make_loss(n);
    auto* bce = dynamic_cast<BinaryCrossEntropy*>(l.get());
    REQUIRE(bce != nullptr);
    CHECK_FALSE(bce->from_logits());  // Keras' string takes probabilities
  }
  REQUIRE_THROWS_AS(make_loss("hinge"), InvalidArgument);
  try {
    make_loss("hinge");
  } catch (const InvalidArgument& e) {
    const std::string m = e.what();
    CHECK(contains(m, "hinge"));
    CHECK(contains(m, "mean_squared_error"));
    CHECK(contains(m, "sparse_categorical_crossentropy"));
    CHECK(contains(m, "binary_crossentropy"));
  }
}
