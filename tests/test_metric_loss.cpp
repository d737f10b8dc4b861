// Metric learning: L2Normalize and the contrastive, triplet and NT-Xent losses
// (docs/metric-learning.md). Gradients with the generic checker on generic random embeddings,
// values against numbers computed by hand, degenerate batches, errors, the no-allocation rule,
// the make_loss / make_layer names and a short training run.
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "alloc_counter.hpp"
#include "gradcheck.hpp"
#include "imgsim/error.hpp"
#include "imgsim/nn/layers.hpp"
#include "imgsim/nn/metric_loss.hpp"
#include "imgsim/nn/optimizer.hpp"
#include "imgsim/nn/sequential.hpp"
#include "imgsim/nn/serialize.hpp"
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

// Rows scaled to unit length (what a model ending in L2Normalize produces).
Tensor unit_rows(int64_t n, int64_t d, Rng& rng) {
  Tensor t = random_tensor({n, d}, rng);
  for (int64_t r = 0; r < n; ++r) {
    double ss = 0.0;
    for (int64_t k = 0; k < d; ++k) ss += double(t[r * d + k]) * t[r * d + k];
    for (int64_t k = 0; k < d; ++k) t[r * d + k] = static_cast<float>(t[r * d + k] / std::sqrt(ss));
  }
  return t;
}

Tensor labels(std::initializer_list<float> v) {
  return make({static_cast<int64_t>(v.size())}, v);
}

// Runs forward_backward on a dpred pre-filled with `fill` and returns dL/dpred (dpred - fill).
std::vector<double> grad_of(Loss& loss, const Tensor& pred, const Tensor& target, double* value,
                            float fill = 0.25f) {
  Tensor d(pred.shape(), fill);
  *value = loss.forward_backward(pred, target, &d);
  std::vector<double> g(static_cast<std::size_t>(d.numel()));
  for (int64_t i = 0; i < d.numel(); ++i) g[static_cast<std::size_t>(i)] = double(d[i]) - fill;
  return g;
}

// sum over rows of dL/dp_i, per feature: 0 for losses of distances (translation invariance).
std::vector<double> column_sums(const std::vector<double>& g, int64_t d) {
  std::vector<double> s(static_cast<std::size_t>(d), 0.0);
  for (std::size_t i = 0; i < g.size(); ++i) s[i % static_cast<std::size_t>(d)] += g[i];
  return s;
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

const char* mining_name(Mining m) {
  switch (m) {
    case Mining::batch_hard:
      return "batch_hard";
    case Mining::semi_hard:
      return "semi_hard";
    case Mining::all:
      return "all";
  }
  return "?";
}

constexpr Mining kMinings[] = {Mining::batch_hard, Mining::semi_hard, Mining::all};

}  // namespace

// --- L2Normalize ------------------------------------------------------------------------------

TEST_CASE("L2Normalize gradients", "[metric][l2_normalize][grad]") {
  SECTION("norm above eps: (dy - y <y, dy>) / ||x||") {
    L2Normalize l;
    REQUIRE_GRADIENTS_OK(testing::check_layer_gradients(l, Shape{7}, {.batch = 3, .seed = 3}));
  }
  SECTION("single feature: y = sign(x), dx = 0") {
    L2Normalize l;
    REQUIRE_GRADIENTS_OK(testing::check_layer_gradients(l, Shape{1}, {.batch = 4, .seed = 4}));
  }
  SECTION("norm below eps: y = x / eps, dx = dy / eps") {
    L2Normalize l({.eps = 1.0f});
    // rows of 4 values of scale 0.05: norms around 0.1, far below eps = 1
    REQUIRE_GRADIENTS_OK(testing::check_layer_gradients(
        l, Shape{4}, {.batch = 3, .seed = 5, .eps = 1e-3f, .input_scale = 0.05f}));
  }
}

TEST_CASE("L2Normalize values by hand", "[metric][l2_normalize]") {
  L2Normalize l;
  l.build(Shape{2});
  Tensor x = make({3, 2}, {3, 4, 0, 0, -1e-20f, 0});
  Tensor y({3, 2});
  l.forward(x, y, Phase::infer);
  CHECK(y[0] == Approx(0.6).epsilon(1e-7));
  CHECK(y[1] == Approx(0.8).epsilon(1e-7));
  CHECK(y[2] == 0.0f);  // zero row: 0 / eps
  CHECK(y[3] == 0.0f);
  CHECK(y[4] == Approx(-1e-8).epsilon(1e-6));  // -1e-20 / 1e-12: clamped
  Tensor dy = make({3, 2}, {1, 0, 1e-12f, -2e-12f, 3e-12f, 0});
  Tensor dx({3, 2}, 0.5f);  // backward adds
  l.backward(x, y, dy, &dx);
  // ((1, 0) - (0.6, 0.8) * 0.6) / 5
  CHECK(dx[0] - 0.5 == Approx(0.128).epsilon(1e-6));
  CHECK(dx[1] - 0.5 == Approx(-0.096).epsilon(1e-6));
  // clamped rows: dy / eps
  CHECK(dx[2] - 0.5 == Approx(1.0).epsilon(1e-6));
  CHECK(dx[3] - 0.5 == Approx(-2.0).epsilon(1e-6));
  CHECK(dx[4] - 0.5 == Approx(3.0).epsilon(1e-6));
  CHECK(dx[5] == 0.5f);
  l.backward(x, y, dy, nullptr);  // no dx: nothing to do
}

TEST_CASE("L2Normalize rejects bad shapes and eps, registers and round-trips its config",
          "[metric][l2_normalize]") {
  L2Normalize l;
  CHECK_THROWS_AS(l.build(Shape{3, 4, 4}), ShapeError);
  CHECK_THROWS_AS(l.build(Shape{0}), ShapeError);
  CHECK_THROWS_AS(L2Normalize({.eps = 0.0f}), InvalidArgument);
  CHECK_THROWS_AS(L2Normalize({.eps = -1.0f}), InvalidArgument);
  CHECK_THROWS_AS(L2Normalize({.eps = std::numeric_limits<float>::quiet_NaN()}), InvalidArgument);

  auto made = make_layer("l2_normalize");
  REQUIRE(made);
  CHECK(std::string(made->type()) == "l2_normalize");

  L2Normalize src({.eps = 1e-6f});
  ByteWriter w;
  src.save_config(w);
  ByteReader r(w.buffer().data(), w.buffer().size(), "config");
  made->load_config(r, 1);
  CHECK(dynamic_cast<L2Normalize&>(*made).eps() == 1e-6f);
  CHECK(made->describe() == src.describe());

  ByteWriter bad;
  bad.f32(0.0f);
  ByteReader rb(bad.buffer().data(), bad.buffer().size(), "config");
  L2Normalize dst;
  CHECK_THROWS_AS(dst.load_config(rb, 1), FormatError);
}

TEST_CASE("A model ending in L2Normalize saves and loads", "[metric][l2_normalize]") {
  namespace fs = std::filesystem;
  const fs::path path =
      fs::temp_directory_path() / ("imgsim_metric_test_" + std::to_string(::getpid()) + ".imgsim");
  Sequential m;
  m.add(Dense(5, {.input_shape = {4}}));
  m.add(L2Normalize({.eps = 1e-8f}));
  m.build(Shape{4}, 9);
  Rng rng(9);
  Tensor x = random_tensor({3, 4}, rng);
  Tensor before = m.predict(x);
  m.save(path.string());
  Sequential loaded = Sequential::from_file(path.string());
  fs::remove(path);
  Tensor after = loaded.predict(x);
  REQUIRE(after.shape() == before.shape());
  for (int64_t i = 0; i < before.numel(); ++i) CHECK(after[i] == before[i]);
  CHECK(loaded.layer(1).describe() == m.layer(1).describe());
  for (int64_t r = 0; r < 3; ++r) {
    double ss = 0.0;
    for (int64_t k = 0; k < 5; ++k) ss += double(after[r * 5 + k]) * after[r * 5 + k];
    CHECK(ss == Approx(1.0).epsilon(1e-6));
  }
}

// --- gradients --------------------------------------------------------------------------------

TEST_CASE("ContrastiveLoss gradients", "[metric][contrastive][grad]") {
  Rng rng(101);
  const Tensor target = labels({0, 1, 2, 0, 1, 2, 0, 1, 3});
  SECTION("unit embeddings, margin 1 (some negatives inside the margin, some outside)") {
    ContrastiveLoss loss(1.0f);
    Tensor pred = unit_rows(9, 5, rng);
    REQUIRE_GRADIENTS_OK(testing::check_loss_gradients(loss, pred, target));
  }
  SECTION("raw embeddings, margin 2") {
    ContrastiveLoss loss(2.0f);
    Tensor pred = random_tensor({9, 3}, rng, 0.7f);
    REQUIRE_GRADIENTS_OK(testing::check_loss_gradients(loss, pred, target));
  }
}

// Unit rows (n, d) drawn from `rng` until every discrete choice of the three triplet minings is
// decided by a gap of at least `gap`: for each anchor a, the distances D_aj (j != a) differ
// pairwise by at least `gap` (no near-tie for the farthest positive, the closest negative or the
// closest semi-hard negative), and a positive's and a negative's distance also differ from the
// margin by at least `gap` (the semi-hard upper bound, the hinge at 0 and, for `all`, the count).
// `draws` returns the number of draws (the first acceptable one is used).
Tensor generic_triplet_batch(int64_t n, int64_t d, const Tensor& target, double margin,
                             bool squared, double gap, Rng& rng, int* draws) {
  for (*draws = 1;; ++*draws) {
    Tensor p = unit_rows(n, d, rng);
    std::vector<double> dist(static_cast<std::size_t>(n * n));
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < n; ++j) {
        double s = 0.0;
        for (int64_t k = 0; k < d; ++k) {
          const double diff = double(p[i * d + k]) - p[j * d + k];
          s += diff * diff;
        }
        dist[static_cast<std::size_t>(i * n + j)] = squared ? s : std::sqrt(s);
      }
    auto D = [&](int64_t i, int64_t j) { return dist[static_cast<std::size_t>(i * n + j)]; };
    bool ok = true;
    for (int64_t a = 0; a < n && ok; ++a)
      for (int64_t j = 0; j < n && ok; ++j)
        for (int64_t k = j + 1; k < n && ok; ++k) {
          if (j == a || k == a) continue;
          const double g = std::abs(D(a, j) - D(a, k));
          ok = g >= gap;
          if (ok && (target[j] == target[a]) != (target[k] == target[a]))
            ok = std::abs(g - margin) >= gap;
        }
    if (ok) return p;
  }
}

TEST_CASE("TripletLoss gradients for every mining mode and distance", "[metric][triplet][grad]") {
  // Batch-hard and semi-hard select triplets (batch-all counts active ones): the loss is smooth
  // only between the points where a choice changes, and semi-hard and batch-all even jump there.
  // The embeddings are therefore drawn generic: no choice changes within a step of eps. One
  // coordinate step of eps moves a Euclidean distance by at most eps (a squared distance between
  // unit rows by at most 4 eps + eps^2) and a gap between two distances from one anchor by at
  // most twice that; gaps of 2.5 times that bound leave every choice fixed, so no coordinate may
  // be skipped as a kink. Three classes of 3, 2 and 2 rows and one single row (never an anchor).
  const Tensor target = labels({0, 1, 2, 0, 1, 2, 0, 3});
  const float margin = 0.3f, eps = 1e-3f;
  for (Mining mining : kMinings) {
    for (bool squared : {false, true}) {
      DYNAMIC_SECTION(mining_name(mining) << (squared ? ", squared" : ", Euclidean")) {
        Rng rng(200 + 10 * static_cast<uint64_t>(mining) + (squared ? 1 : 0));
        const double lipschitz = squared ? 4.0 + eps : 1.0;
        int draws = 0;
        Tensor pred = generic_triplet_batch(8, 6, target, margin, squared,
                                            2.5 * 2 * lipschitz * eps, rng, &draws);
        INFO("accepted draw " << draws);
        TripletLoss loss(margin, mining, squared);
        CHECK(loss.forward_backward(pred, target, nullptr) > 0.0);  // not a flat batch
        const auto rep = testing::check_loss_gradients(loss, pred, target, {.eps = eps});
        REQUIRE_GRADIENTS_OK(rep);
        CHECK(rep.skipped == 0);
      }
    }
  }
}

TEST_CASE("NTXentLoss gradients", "[metric][ntxent][grad]") {
  Rng rng(301);
  for (float tau : {0.5f, 0.1f}) {
    DYNAMIC_SECTION("temperature " << tau) {
      NTXentLoss loss(tau);
      // raw rows (the loss normalises them itself); two views of 4 images
      Tensor pred = random_tensor({8, 5}, rng);
      for (int64_t i = 0; i < 4 * 5; ++i) pred[4 * 5 + i] = pred[i] + 0.5f * rng.normal();
      const Tensor target({8});
      REQUIRE_GRADIENTS_OK(testing::check_loss_gradients(loss, pred, target));
    }
  }
}

TEST_CASE("Distance losses have gradients that sum to 0 over the batch", "[metric][grad]") {
  // L depends on differences p_i - p_j only, so moving every row by the same vector changes
  // nothing: sum_i dL/dp_i = 0.
  Rng rng(401);
  const Tensor target = labels({0, 1, 0, 1, 2, 2, 0, 3});
  Tensor pred = unit_rows(8, 4, rng);
  ContrastiveLoss contrastive;
  TripletLoss hard(0.2f, Mining::batch_hard), semi(0.2f, Mining::semi_hard), all(0.2f, Mining::all);
  for (Loss* l : std::vector<Loss*>{&contrastive, &hard, &semi, &all}) {
    double value = 0.0;
    auto g = grad_of(*l, pred, target, &value);
    INFO(l->type());
    CHECK(value > 0.0);
    for (double s : column_sums(g, 4)) CHECK(s == Approx(0.0).margin(1e-6));
  }
}

// --- values by hand ---------------------------------------------------------------------------

TEST_CASE("ContrastiveLoss value and gradient by hand", "[metric][contrastive]") {
  // p0 = (0, 0), p1 = (3, 4), p2 = (0, 1); labels 0, 0, 1; margin 2; P = 3 pairs.
  //   (0, 1) positive, d = 5:      25
  //   (0, 2) negative, d = 1:      (2 - 1)^2 = 1
  //   (1, 2) negative, d = 3 sqrt 2 > 2: 0
  // L = 26 / 3. Gradients (c_ij (p_i - p_j), c = 2/P for positives, -2 (m - d) / d / P):
  //   g0 = 2/3 (-3, -4) - 2/3 (0, -1) = (-2, -2)
  //   g1 = 2/3 (3, 4) = (2, 8/3)
  //   g2 = -2/3 (0, 1) = (0, -2/3)
  ContrastiveLoss loss(2.0f);
  Tensor pred = make({3, 2}, {0, 0, 3, 4, 0, 1});
  double value = 0.0;
  auto g = grad_of(loss, pred, labels({0, 0, 1}), &value);
  CHECK(value == Approx(26.0 / 3).epsilon(1e-12));
  const double want[6] = {-2, -2, 2, 8.0 / 3, 0, -2.0 / 3};
  for (int i = 0; i < 6; ++i) CHECK(g[i] == Approx(want[i]).margin(1e-6));
  CHECK(loss.forward_backward(pred, labels({0, 0, 1}), nullptr) == value);
}

TEST_CASE("TripletLoss values and gradients by hand", "[metric][triplet]") {
  SECTION("4 points on a line: batch-hard, semi-hard with a fallback") {
    // x = 0, 1, 1.5, 4 (D = 1), labels 0, 0, 1, 1, margin 1, Euclidean.
    // batch-hard, per anchor (farthest positive, closest negative):
    //   a0: D01 = 1, D02 = 1.5 -> 0.5     a1: D10 = 1, D12 = 0.5 -> 1.5
    //   a2: D23 = 2.5, D21 = 0.5 -> 3     a3: D32 = 2.5, D31 = 3 -> 0.5
    //   L = 5.5 / 4
    // semi-hard picks the same negatives: (0,1) has the semi-hard 2 (1 < 1.5 < 2), (3,2) the
    // semi-hard 1 (2.5 < 3 < 3.5), (1,0) and (2,3) have none and fall back to the closest.
    // W: +1 (0,1), -1 (0,2), +1 (1,0), -1 (1,2), +1 (2,3), -1 (2,1), +1 (3,2), -1 (3,1);
    // c_ij = (W_ij + W_ji) / 4 / |x_i - x_j|, g_i = sum_j c_ij (x_i - x_j) = sum_j S_ij sgn / 4:
    //   g0 = (2 (-1) - 1 (-1)) / 4 = -0.25       g1 = (2 + 2 + 1) / 4 = 1.25
    //   g2 = (-1 - 2 - 2) / 4 = -1.25            g3 = (-1 + 2) / 4 = 0.25
    Tensor pred = make({4, 1}, {0, 1, 1.5f, 4});
    const Tensor target = labels({0, 0, 1, 1});
    for (Mining mining : {Mining::batch_hard, Mining::semi_hard}) {
      INFO(mining_name(mining));
      TripletLoss loss(1.0f, mining);
      double value = 0.0;
      auto g = grad_of(loss, pred, target, &value);
      CHECK(value == Approx(5.5 / 4).epsilon(1e-12));
      CHECK(g[0] == Approx(-0.25).epsilon(1e-6));
      CHECK(g[1] == Approx(1.25).epsilon(1e-6));
      CHECK(g[2] == Approx(-1.25).epsilon(1e-6));
      CHECK(g[3] == Approx(0.25).epsilon(1e-6));
    }
  }
  SECTION("one pair and four single negatives: the three minings differ") {
    // x = 0, 1 (labels 0, 0) and negatives 0.5, 1.3, 1.8, 2.5 (labels 1..4, no positives).
    // Margin 1. Distances from x0: 0.5, 1.3, 1.8, 2.5; from x1: 0.5, 0.3, 0.8, 1.5.
    Tensor pred = make({6, 1}, {0, 1, 0.5f, 1.3f, 1.8f, 2.5f});
    const Tensor target = labels({0, 0, 1, 2, 3, 4});
    const double x[6] = {0, 1, 0.5f, 1.3f, 1.8f, 2.5f};  // the float values, in double
    double value = 0.0;
    SECTION("batch-hard: closest negatives 0.5 (row 2) and 0.3 (row 3)") {
      TripletLoss loss(1.0f, Mining::batch_hard);
      auto g = grad_of(loss, pred, target, &value);
      // (1 + 1 - 0.5) and (1 + 1 - (x3 - x1))
      CHECK(value == Approx((1.5 + (2 - (x[3] - x[1]))) / 2).epsilon(1e-12));
      CHECK(value == Approx(1.6).epsilon(1e-7));
      // W: +1 (0,1), -1 (0,2), +1 (1,0), -1 (1,3); /2
      CHECK(g[0] == Approx((-2 + 1) / 2.0).epsilon(1e-6));
      CHECK(g[1] == Approx((2 + 1) / 2.0).epsilon(1e-6));
      CHECK(g[2] == Approx(-0.5).epsilon(1e-6));
      CHECK(g[3] == Approx(-0.5).epsilon(1e-6));
      CHECK(g[4] == 0.0);
      CHECK(g[5] == 0.0);
    }
    SECTION("semi-hard: 1.3 (row 3) for anchor 0, 1.5 (row 5) for anchor 1") {
      TripletLoss loss(1.0f, Mining::semi_hard);
      auto g = grad_of(loss, pred, target, &value);
      CHECK(value == Approx(((2 - x[3]) + (2 - (x[5] - x[1]))) / 2).epsilon(1e-12));
      CHECK(value == Approx(0.6).epsilon(1e-6));
      CHECK(g[0] == Approx(-0.5).epsilon(1e-6));
      CHECK(g[1] == Approx(1.5).epsilon(1e-6));
      CHECK(g[2] == 0.0);
      CHECK(g[3] == Approx(-0.5).epsilon(1e-6));
      CHECK(g[4] == 0.0);
      CHECK(g[5] == Approx(-0.5).epsilon(1e-6));
    }
    SECTION("all: 7 of 8 triplets active") {
      TripletLoss loss(1.0f, Mining::all);
      auto g = grad_of(loss, pred, target, &value);
      // anchor 0: 2 - 0.5, 2 - 1.3, 2 - 1.8 (and 2 - 2.5 < 0); anchor 1: 2 - 0.5, 2 - 0.3,
      // 2 - 0.8, 2 - 1.5
      const double sum = (2 - x[2]) + (2 - x[3]) + (2 - x[4]) + (2 - (x[1] - x[2])) +
                         (2 - (x[3] - x[1])) + (2 - (x[4] - x[1])) + (2 - (x[5] - x[1]));
      CHECK(value == Approx(sum / 7).epsilon(1e-12));
      CHECK(value == Approx(7.3 / 7).epsilon(1e-6));
      // W: +3 (0,1), -1 (0,2), (0,3), (0,4); +4 (1,0), -1 (1,2), (1,3), (1,4), (1,5).
      // S = W + W^T: S01 = 7, S02 = S12 = S03 = S13 = S04 = S14 = S15 = -1, S05 = 0.
      // g_i = sum_j S_ij sgn(x_i - x_j) / 7:
      //   g0 = (-7 + 1 + 1 + 1) / 7    g1 = (7 - 1 + 1 + 1 + 1) / 7    g2 = (-1 + 1) / 7
      //   g3 = (-1 - 1) / 7            g4 = (-1 - 1) / 7               g5 = -1 / 7
      CHECK(g[0] == Approx(-4.0 / 7).epsilon(1e-6));
      CHECK(g[1] == Approx(9.0 / 7).epsilon(1e-6));
      CHECK(g[2] == Approx(0.0).margin(1e-7));
      CHECK(g[3] == Approx(-2.0 / 7).epsilon(1e-6));
      CHECK(g[4] == Approx(-2.0 / 7).epsilon(1e-6));
      CHECK(g[5] == Approx(-1.0 / 7).epsilon(1e-6));
    }
    SECTION("batch-hard on squared distances") {
      TripletLoss loss(1.0f, Mining::batch_hard, true);
      auto g = grad_of(loss, pred, target, &value);
      // (1 + 1 - 0.25) and (1 + 1 - (x3 - x1)^2)
      const double d13 = x[3] - x[1];
      CHECK(value == Approx((1.75 + (2 - d13 * d13)) / 2).epsilon(1e-12));
      CHECK(value == Approx(1.83).epsilon(1e-6));
      // squared: dD_ij/dx_i = 2 (x_i - x_j); W: +1 (0,1), -1 (0,2), +1 (1,0), -1 (1,3); /2
      // g0 = (2 * 2 (0 - 1) - 2 (0 - 0.5)) / 2 = (-4 + 1) / 2
      CHECK(g[0] == Approx(-1.5).epsilon(1e-6));
      // g1 = (2 * 2 (1 - 0) - 2 (1 - 1.3)) / 2 = (4 + 0.6) / 2
      CHECK(g[1] == Approx(2.3).epsilon(1e-6));
      CHECK(g[2] == Approx(-1 * 2 * (x[2] - x[0]) / 2).epsilon(1e-6));
      CHECK(g[3] == Approx(-1 * 2 * (x[3] - x[1]) / 2).epsilon(1e-6));
    }
  }
}

TEST_CASE("NTXentLoss value by hand and invariance to the row scale", "[metric][ntxent]") {
  // u0 = (1, 0), u1 = (0, 1), u2 = (0.6, 0.8) (from (3, 4)), u3 = (-1, 0) (from (-2, 0));
  // M = 2: pairs (0, 2) and (1, 3). Temperature 1:
  //   s01 = 0, s02 = 0.6, s03 = -1, s12 = 0.8, s13 = 0, s23 = -0.6
  auto lse = [](std::initializer_list<double> v) {
    double s = 0.0;
    for (double x : v) s += std::exp(x);
    return std::log(s);
  };
  const double l0 = lse({0, 0.6, -1}) - 0.6;
  const double l1 = lse({0, 0.8, 0}) - 0;
  const double l2 = lse({0.6, 0.8, -0.6}) - 0.6;
  const double l3 = lse({-1, 0, -0.6}) - 0;
  Tensor pred = make({4, 2}, {1, 0, 0, 2, 3, 4, -2, 0});
  const Tensor target({4});
  NTXentLoss loss(1.0f);
  double value = 0.0;
  auto g = grad_of(loss, pred, target, &value);
  CHECK(value == Approx((l0 + l1 + l2 + l3) / 4).epsilon(1e-12));

  SECTION("temperature 0.25 divides every similarity by 0.25") {
    NTXentLoss cold(0.25f);
    const double v = cold.forward_backward(pred, target, nullptr);
    const double k0 = lse({0, 2.4, -4}) - 2.4, k1 = lse({0, 3.2, 0}),
                 k2 = lse({2.4, 3.2, -2.4}) - 2.4, k3 = lse({-4, 0, -2.4});
    CHECK(v == Approx((k0 + k1 + k2 + k3) / 4).epsilon(1e-12));
  }
  SECTION("scaling a row changes nothing but divides its gradient") {
    Tensor scaled = pred.clone();
    for (int k = 0; k < 2; ++k) scaled[2 * 2 + k] *= 4.0f;  // row 2 times 4
    double v2 = 0.0;
    auto g2 = grad_of(loss, scaled, target, &v2);
    CHECK(v2 == Approx(value).epsilon(1e-12));
    for (int i = 0; i < 8; ++i) {
      const double want = i / 2 == 2 ? g[i] / 4 : g[i];
      CHECK(g2[i] == Approx(want).margin(1e-7));
    }
  }
  SECTION("the gradient is orthogonal to each row (the radial direction changes nothing)") {
    for (int r = 0; r < 4; ++r)
      CHECK(g[2 * r] * pred[2 * r] + g[2 * r + 1] * pred[2 * r + 1] == Approx(0.0).margin(1e-7));
  }
}

TEST_CASE("NTXentLoss is stable for a tiny temperature", "[metric][ntxent]") {
  // s = cos / 1e-4 reaches 1e4: exp would overflow without the log-sum-exp shift.
  Rng rng(501);
  Tensor pred = random_tensor({6, 3}, rng);
  NTXentLoss loss(1e-4f);
  double value = 0.0;
  auto g = grad_of(loss, pred, Tensor({6}), &value);
  REQUIRE(std::isfinite(value));
  CHECK(value >= 0.0);
  for (double gi : g) REQUIRE(std::isfinite(gi));
}

// --- degenerate batches -----------------------------------------------------------------------

TEST_CASE("SupConLoss gradients", "[metric][supcon][grad]") {
  Rng rng(311);
  for (float tau : {0.5f, 0.1f}) {
    DYNAMIC_SECTION("temperature " << tau) {
      SupConLoss loss(tau);
      // raw rows; classes of 3, 3, 2 and a row (label 7) without a positive
      Tensor pred = random_tensor({9, 5}, rng);
      const Tensor target = labels({0, 1, 0, 2, 1, 0, 7, 2, 1});
      REQUIRE_GRADIENTS_OK(testing::check_loss_gradients(loss, pred, target));
    }
  }
}

TEST_CASE("SupConLoss value by hand, and NT-Xent when each row has one positive",
          "[metric][supcon]") {
  SECTION("three 2-D rows, temperature 1") {
    // u0 = (1, 0), u1 = (0, 1), u2 = (-1, 0); labels 0 0 1: anchors 0 and 1 (row 2 has no
    // positive but is a negative of both). s01 = 0, s02 = -1, s12 = 0.
    Tensor pred = make({3, 2}, {2, 0, 0, 0.5f, -1, 0});
    SupConLoss loss(1.0f);
    const double l0 = std::log(1.0 + std::exp(-1.0));  // lse(s01, s02) - s01
    const double l1 = std::log(2.0);                   // lse(s10, s12) - s10
    CHECK(loss.forward_backward(pred, labels({0, 0, 1}), nullptr) ==
          Approx((l0 + l1) / 2).epsilon(1e-12));
  }
  SECTION("labels pairing rows i and i + M give NT-Xent's value and gradient") {
    Rng rng(312);
    Tensor pred = random_tensor({10, 6}, rng);
    const Tensor pairs = labels({0, 1, 2, 3, 4, 0, 1, 2, 3, 4});
    SupConLoss sup(0.3f);
    NTXentLoss ntx(0.3f);
    double vs = 0.0, vn = 0.0;
    const auto gs = grad_of(sup, pred, pairs, &vs);
    const auto gn = grad_of(ntx, pred, Tensor({10}), &vn);
    CHECK(vs == Approx(vn).epsilon(1e-12));
    REQUIRE(gs.size() == gn.size());
    for (std::size_t i = 0; i < gs.size(); ++i) CHECK(gs[i] == Approx(gn[i]).margin(1e-7));
  }
  SECTION("more positives: the mean of their log-probabilities") {
    // Labels 0 0 0 1, tau 1: anchor 0 has positives 1 and 2.
    Tensor pred = make({4, 2}, {1, 0, 0.6f, 0.8f, 0, 1, -1, 0});
    SupConLoss loss(1.0f);
    const double s01 = 0.6, s02 = 0.0, s03 = -1.0, s12 = 0.8, s13 = -0.6, s23 = 0.0;
    auto lse = [](double a, double b, double c) {
      return std::log(std::exp(a) + std::exp(b) + std::exp(c));
    };
    const double l0 = lse(s01, s02, s03) - (s01 + s02) / 2;
    const double l1 = lse(s01, s12, s13) - (s01 + s12) / 2;
    const double l2 = lse(s02, s12, s23) - (s02 + s12) / 2;
    CHECK(loss.forward_backward(pred, labels({0, 0, 0, 1}), nullptr) ==
          Approx((l0 + l1 + l2) / 3).epsilon(1e-6));
  }
}

TEST_CASE("Batches without a valid pair or triplet give 0 and add nothing",
          "[metric][degenerate]") {
  Rng rng(601);
  auto expect_zero = [](Loss& loss, const Tensor& pred, const Tensor& target) {
    double value = -1.0;
    auto g = grad_of(loss, pred, target, &value);
    CHECK(value == 0.0);
    for (double gi : g) CHECK(gi == 0.0);
  };
  Tensor one = unit_rows(1, 4, rng);
  Tensor five = unit_rows(5, 4, rng);
  const Tensor same = labels({3, 3, 3, 3, 3});
  const Tensor distinct = labels({0, 1, 2, 3, 4});

  SECTION("contrastive: a single row has no pair") {
    ContrastiveLoss loss;
    expect_zero(loss, one, labels({0}));
  }
  for (Mining mining : kMinings) {
    for (bool squared : {false, true}) {
      DYNAMIC_SECTION("triplet " << mining_name(mining) << (squared ? " squared" : "")) {
        TripletLoss loss(0.2f, mining, squared);
        expect_zero(loss, one, labels({0}));
        expect_zero(loss, five, same);      // no negatives
        expect_zero(loss, five, distinct);  // no positives
      }
    }
  }
  SECTION("triplet: every hinge inactive (classes far apart)") {
    // two tight clusters 10 apart: D_ap <= 0.2, D_an >= 9.6, margin 1
    Tensor pred = make({4, 2}, {0, 0, 0.1f, 0.1f, 10, 0, 10.1f, -0.1f});
    const Tensor target = labels({0, 0, 1, 1});
    for (Mining mining : kMinings) {
      INFO(mining_name(mining));
      TripletLoss loss(1.0f, mining);
      expect_zero(loss, pred, target);
    }
  }
  SECTION("contrastive: only positives at distance 0, negatives beyond the margin") {
    Tensor pred = make({3, 2}, {1, 0, 1, 0, -1, 0});
    ContrastiveLoss loss(1.5f);
    expect_zero(loss, pred, labels({0, 0, 1}));
  }
  SECTION("supcon: no row has a positive, or a single row") {
    SupConLoss loss;
    expect_zero(loss, five, distinct);
    expect_zero(loss, one, labels({3}));
  }
  SECTION("NT-Xent: two rows, each the other's only candidate") {
    NTXentLoss loss;
    expect_zero(loss, unit_rows(2, 4, rng), Tensor({2}));
  }
}

TEST_CASE("Identical embeddings (distance 0) keep everything finite", "[metric][degenerate]") {
  // Rows 0 and 1 coincide with different labels: contrastive gives (m - 0)^2 with no push
  // (the derivative of d at 0 is taken as 0); the triplet losses use d = 0 as well.
  Tensor pred = make({4, 2}, {0.3f, 0.4f, 0.3f, 0.4f, -0.5f, 0.1f, 0.2f, -0.6f});
  const Tensor target = labels({0, 1, 0, 1});
  SECTION("contrastive") {
    ContrastiveLoss loss(1.0f);
    double value = 0.0;
    // A coincident negative pair: (m - 0)^2, and no push either way.
    auto g = grad_of(loss, make({2, 2}, {0.3f, 0.4f, 0.3f, 0.4f}), labels({0, 1}), &value);
    CHECK(value == 1.0);
    for (double gi : g) CHECK(gi == 0.0);
    // A coincident positive pair: 0^2.
    g = grad_of(loss, make({2, 2}, {0.3f, 0.4f, 0.3f, 0.4f}), labels({2, 2}), &value);
    CHECK(value == 0.0);
    for (double gi : g) CHECK(gi == 0.0);
    // In a larger batch everything stays finite.
    g = grad_of(loss, pred, target, &value);
    REQUIRE(std::isfinite(value));
    for (double gi : g) REQUIRE(std::isfinite(gi));
  }
  for (Mining mining : kMinings) {
    DYNAMIC_SECTION("triplet " << mining_name(mining)) {
      TripletLoss loss(0.5f, mining);
      double value = 0.0;
      auto g = grad_of(loss, pred, target, &value);
      REQUIRE(std::isfinite(value));
      CHECK(value > 0.0);
      for (double gi : g) REQUIRE(std::isfinite(gi));
    }
  }
  SECTION("NT-Xent with a zero row") {
    Tensor z = make({4, 2}, {0, 0, 1, 0, 0, 1, 1, 1});
    NTXentLoss loss;
    double value = 0.0;
    auto g = grad_of(loss, z, Tensor({4}), &value);
    REQUIRE(std::isfinite(value));
    for (double gi : g) REQUIRE(std::isfinite(gi));
  }
}

// --- errors -----------------------------------------------------------------------------------

TEST_CASE("Metric losses reject bad labels, shapes and parameters", "[metric][error]") {
  ContrastiveLoss contrastive;
  TripletLoss triplet;
  NTXentLoss ntxent;
  SupConLoss supcon;
  Tensor pred({3, 4});

  SECTION("labels must be finite integers; dpred is untouched") {
    const float nan = std::numeric_limits<float>::quiet_NaN();
    const float inf = std::numeric_limits<float>::infinity();
    for (float bad : {0.5f, nan, inf, -inf}) {
      Tensor target = labels({0, -3, bad});
      for (Loss* l : std::vector<Loss*>{&contrastive, &triplet, &supcon}) {
        INFO(l->type() << " label " << bad);
        const std::string msg = error_of(*l, pred, target);
        CHECK(contains(msg, "row 2"));
        Tensor d(pred.shape(), 0.5f);
        REQUIRE_THROWS_AS(l->forward_backward(pred, target, &d), InvalidArgument);
        for (int64_t i = 0; i < d.numel(); ++i) REQUIRE(d[i] == 0.5f);
      }
    }
    // NT-Xent ignores the target's values
    Tensor even({4, 4});
    CHECK_NOTHROW(ntxent.forward_backward(even, labels({nan, 0.5f, 1, 2}), nullptr));
  }
  SECTION("shapes") {
    for (Loss* l : std::vector<Loss*>{&contrastive, &triplet, &ntxent, &supcon}) {
      INFO(l->type());
      CHECK_NOTHROW(l->check({4, 3}, {4}));
      CHECK_NOTHROW(l->check({4, 3}, {4, 1}));
      CHECK_NOTHROW(l->check({1, 3}, {1}));  // fit checks with a batch of 1
      CHECK_THROWS_AS(l->check({4}, {4}), ShapeError);
      CHECK_THROWS_AS(l->check({4, 3, 2}, {4}), ShapeError);
      CHECK_THROWS_AS(l->check({4, 3}, {5}), ShapeError);
      CHECK_THROWS_AS(l->check({4, 3}, {4, 3}), ShapeError);
      CHECK_THROWS_AS(l->check({4, 0}, {4}), ShapeError);
      try {
        l->check({4, 3}, {4, 2});
        FAIL("no throw");
      } catch (const ShapeError& e) {
        CHECK(contains(e.what(), "(4, 3)"));
        CHECK(contains(e.what(), "(4, 2)"));
      }
      Tensor p({4, 3}), wrong({4, 2});
      CHECK_THROWS_AS(l->forward_backward(p, Tensor({4}), &wrong), ShapeError);
    }
    Tensor odd({5, 3});
    CHECK_THROWS_AS(ntxent.forward_backward(odd, Tensor({5}), nullptr), ShapeError);
    CHECK(contains(error_of(ntxent, odd, Tensor({5})), "even"));
  }
  SECTION("parameters") {
    const float nan = std::numeric_limits<float>::quiet_NaN();
    CHECK_THROWS_AS(ContrastiveLoss(0.0f), InvalidArgument);
    CHECK_THROWS_AS(ContrastiveLoss(-1.0f), InvalidArgument);
    CHECK_THROWS_AS(ContrastiveLoss(nan), InvalidArgument);
    CHECK_NOTHROW(TripletLoss(0.0f));
    CHECK_THROWS_AS(TripletLoss(-0.1f), InvalidArgument);
    CHECK_THROWS_AS(TripletLoss(nan), InvalidArgument);
    CHECK_THROWS_AS(TripletLoss(0.2f, static_cast<Mining>(7)), InvalidArgument);
    CHECK_THROWS_AS(NTXentLoss(0.0f), InvalidArgument);
    CHECK_THROWS_AS(NTXentLoss(-0.5f), InvalidArgument);
    CHECK_THROWS_AS(NTXentLoss(std::numeric_limits<float>::infinity()), InvalidArgument);
    CHECK_THROWS_AS(SupConLoss(0.0f), InvalidArgument);
    CHECK_THROWS_AS(SupConLoss(nan), InvalidArgument);
  }
}

// --- planning, names, training ----------------------------------------------------------------

TEST_CASE("forward_backward allocates nothing once planned", "[metric][alloc]") {
  Rng rng(701);
  Tensor big = unit_rows(16, 8, rng), small = unit_rows(8, 8, rng);
  Tensor big_t({16}), small_t({8});
  for (int64_t i = 0; i < 16; ++i) big_t[i] = static_cast<float>(i % 5);
  for (int64_t i = 0; i < 8; ++i) small_t[i] = static_cast<float>(i % 3);
  Tensor dbig(big.shape()), dsmall(small.shape());
  ContrastiveLoss contrastive;
  TripletLoss hard(0.2f, Mining::batch_hard), semi(0.2f, Mining::semi_hard),
      all(0.2f, Mining::all, true);
  NTXentLoss ntxent;
  SupConLoss supcon;
  for (Loss* l : std::vector<Loss*>{&contrastive, &hard, &semi, &all, &ntxent, &supcon}) {
    INFO(l->type());
    l->forward_backward(big, big_t, &dbig);  // plans for 16 rows
    const int64_t before = imgsim::testing::g_allocations.load();
    l->forward_backward(big, big_t, &dbig);
    l->forward_backward(small, small_t, &dsmall);
    l->forward_backward(small, small_t, nullptr);
    l->forward_backward(big, big_t, nullptr);
    CHECK(imgsim::testing::g_allocations.load() == before);
  }
}

TEST_CASE("make_loss knows the metric losses, with their defaults", "[metric][names]") {
  auto c = make_loss("contrastive");
  auto* cl = dynamic_cast<ContrastiveLoss*>(c.get());
  REQUIRE(cl);
  CHECK(std::string(cl->type()) == "contrastive");
  CHECK(cl->margin() == 1.0f);
  auto t = make_loss("triplet");
  auto* tl = dynamic_cast<TripletLoss*>(t.get());
  REQUIRE(tl);
  CHECK(std::string(tl->type()) == "triplet");
  CHECK(tl->margin() == 0.2f);
  CHECK(tl->mining() == Mining::batch_hard);
  CHECK_FALSE(tl->squared());
  auto n = make_loss("ntxent");
  auto* nl = dynamic_cast<NTXentLoss*>(n.get());
  REQUIRE(nl);
  CHECK(std::string(nl->type()) == "ntxent");
  CHECK(nl->temperature() == 0.5f);
  auto sc = make_loss("supcon");
  auto* scl = dynamic_cast<SupConLoss*>(sc.get());
  REQUIRE(scl);
  CHECK(std::string(scl->type()) == "supcon");
  CHECK(scl->temperature() == 0.1f);
  try {
    make_loss("no_such_loss");
    FAIL("no throw");
  } catch (const InvalidArgument& e) {
    CHECK(contains(e.what(), "contrastive"));
    CHECK(contains(e.what(), "triplet"));
    CHECK(contains(e.what(), "ntxent"));
    CHECK(contains(e.what(), "supcon"));
  }
}

TEST_CASE("Dense + L2Normalize learns to separate classes with each loss", "[metric][train]") {
  // 4 classes, 6 samples each, in 6 dimensions: class centre + noise. Embeddings of 4 values.
  Rng rng(801);
  const int64_t classes = 4, per = 6, n = classes * per, d = 6;
  Tensor centres = random_tensor({classes, d}, rng);
  Tensor x({n, d}), y({n});
  for (int64_t i = 0; i < n; ++i) {
    y[i] = static_cast<float>(i % classes);
    for (int64_t k = 0; k < d; ++k)
      x[i * d + k] = centres[(i % classes) * d + k] + 0.8f * rng.normal();
  }
  struct Case {
    const char* name;
    std::unique_ptr<Loss> (*make)();
  };
  const Case cases[] = {
      {"contrastive", [] { return std::unique_ptr<Loss>(new ContrastiveLoss(1.0f)); }},
      {"triplet batch_hard", [] { return std::unique_ptr<Loss>(new TripletLoss(0.2f)); }},
      {"triplet semi_hard",
       [] { return std::unique_ptr<Loss>(new TripletLoss(0.2f, Mining::semi_hard)); }},
      {"triplet all", [] { return std::unique_ptr<Loss>(new TripletLoss(0.2f, Mining::all)); }},
      {"supcon", [] { return std::unique_ptr<Loss>(new SupConLoss(0.5f)); }},
  };
  for (const Case& c : cases) {
    DYNAMIC_SECTION(c.name) {
      Sequential m;
      m.add(Dense(16, {.activation = Activation::tanh, .input_shape = {d}}));
      m.add(Dense(4));
      m.add(L2Normalize());
      m.build(Shape{d}, 3);
      m.compile(std::make_unique<Adam>(AdamOptions{.lr = 1e-2}), c.make());
      const double first = m.train_step(x, y);
      double last = first;
      for (int step = 0; step < 60; ++step) last = m.train_step(x, y);
      INFO("first " << first << ", last " << last);
      // SupCon cannot go below log(positives per anchor) (every positive equally likely at
      // best): require it to close more than half of the way to that floor.
      const double floor = std::string(c.name) == "supcon" ? std::log(double{per - 1}) : 0.0;
      CHECK(last - floor < 0.5 * (first - floor));
    }
  }
}
