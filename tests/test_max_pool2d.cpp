// MaxPool2D, Flatten and GlobalAvgPool2D.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <string>
#include <tuple>
#include <vector>

#include "gradcheck.hpp"
#include "imgsim/error.hpp"
#include "imgsim/nn/layers.hpp"
#include "imgsim/nn/serialize.hpp"
#include "piecewise_gradcheck.hpp"

using namespace imgsim;
using namespace imgsim::nn;

namespace {

// Expected output size and top/left padding worked out by hand (valid: floor((in-k)/s)+1;
// same: ceil(in/s), total = max((out-1)s + k - in, 0), top = total/2).
struct PoolCase {
  const char* label;
  int64_t c, h, w, ph, pw, sh, sw;  // stride 0: the pool size
  Padding padding;
  int64_t p, q, pt, pl;
};

const PoolCase kCases[] = {
    {"7x7 pool 2", 2, 7, 7, 2, 2, 0, 0, Padding::valid, 3, 3, 0, 0},
    {"5x6 pool 3 stride 2", 3, 5, 6, 3, 3, 2, 2, Padding::valid, 2, 2, 0, 0},
    {"5x6 pool 3 stride 2 same", 2, 5, 6, 3, 3, 2, 2, Padding::same, 3, 3, 1, 0},
    {"7x7 pool 2 same", 1, 7, 7, 2, 2, 0, 0, Padding::same, 4, 4, 0, 0},
    {"6x7 pool 2x3 stride 1x2 (overlapping)", 2, 6, 7, 2, 3, 1, 2, Padding::valid, 5, 3, 0, 0},
    {"5x5 pool 3 stride 1 same", 1, 5, 5, 3, 3, 1, 1, Padding::same, 5, 5, 1, 1},
    {"1x1 pool 2 same", 2, 1, 1, 2, 2, 0, 0, Padding::same, 1, 1, 0, 0},
    {"4x9 pool 3 stride 3 same", 2, 4, 9, 3, 3, 3, 3, Padding::same, 2, 3, 1, 0},
};

MaxPool2D make_pool(const PoolCase& cs) {
  return MaxPool2D({cs.ph, cs.pw}, {.stride = {cs.sh, cs.sw}, .padding = cs.padding});
}

void fill_normal(Tensor& t, Rng& rng) {
  for (int64_t i = 0; i < t.numel(); ++i) t[i] = rng.normal();
}

// Direct evaluation: for every window, scan (r, s) in row-major order, skip padded cells, keep
// the first strict maximum. Returns the outputs and, for each, the flat input index that won.
void reference_pool(const PoolCase& cs, const Tensor& x, std::vector<float>& y,
                    std::vector<int64_t>& winner) {
  const int64_t sh = cs.sh ? cs.sh : cs.ph, sw = cs.sw ? cs.sw : cs.pw;
  y.clear();
  winner.clear();
  for (int64_t n = 0; n < x.dim(0); ++n)
    for (int64_t c = 0; c < cs.c; ++c)
      for (int64_t p = 0; p < cs.p; ++p)
        for (int64_t q = 0; q < cs.q; ++q) {
          bool found = false;
          float best = 0.0f;
          int64_t at = -1;
          for (int64_t r = 0; r < cs.ph; ++r)
            for (int64_t s = 0; s < cs.pw; ++s) {
              const int64_t i = p * sh + r - cs.pt, j = q * sw + s - cs.pl;
              if (i < 0 || i >= cs.h || j < 0 || j >= cs.w) continue;
              const float v = x.at(n, c, i, j);
              if (!found || v > best) {
                found = true;
                best = v;
                at = ((n * cs.c + c) * cs.h + i) * cs.w + j;
              }
            }
          REQUIRE(found);
          y.push_back(best);
          winner.push_back(at);
        }
}

struct PassResult {
  Tensor y, dx;
};

PassResult run_pass(Layer& layer, const Tensor& x, const Tensor& dy, Phase phase) {
  PassResult r;
  r.y = Tensor(layer.output_shape().with_batch(x.dim(0)));
  layer.forward(x, r.y, phase);
  r.dx = Tensor(x.shape());
  layer.backward(x, r.y, dy, &r.dx);
  return r;
}

bool identical(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape()) return false;
  for (int64_t i = 0; i < a.numel(); ++i)
    if (a[i] != b[i]) return false;
  return true;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const ShapeError& e) {
    return e.what();
  }
  return "(no ShapeError thrown)";
}

}  // namespace

TEST_CASE("MaxPool2D output sizes", "[max_pool2d][shape]") {
  for (const PoolCase& cs : kCases) {
    DYNAMIC_SECTION(cs.label) {
      MaxPool2D pool = make_pool(cs);
      CHECK(pool.build(Shape{cs.c, cs.h, cs.w}) == Shape{cs.c, cs.p, cs.q});
    }
  }
}

TEST_CASE("MaxPool2D forward and backward match a direct scan", "[max_pool2d][forward]") {
  Rng rng(41);
  for (const PoolCase& cs : kCases) {
    for (float shift : {0.0f, -10.0f}) {  // all-negative input: padding (-inf) must never win
      DYNAMIC_SECTION(cs.label << ", shift " << shift) {
        MaxPool2D pool = make_pool(cs);
        pool.build(Shape{cs.c, cs.h, cs.w});
        Tensor x(Shape{3, cs.c, cs.h, cs.w});
        fill_normal(x, rng);
        for (int64_t i = 0; i < x.numel(); ++i) x[i] += shift;
        Tensor y(Shape{3, cs.c, cs.p, cs.q}, std::numeric_limits<float>::quiet_NaN());
        pool.forward(x, y, Phase::train);
        std::vector<float> expect;
        std::vector<int64_t> winner;
        reference_pool(cs, x, expect, winner);
        REQUIRE(static_cast<int64_t>(expect.size()) == y.numel());
        for (int64_t i = 0; i < y.numel(); ++i)
          REQUIRE(y[i] == expect[static_cast<std::size_t>(i)]);

        // backward adds dy at the winners: start dx from a known pattern.
        Tensor dy(y.shape());
        fill_normal(dy, rng);
        Tensor dx(x.shape());
        for (int64_t i = 0; i < dx.numel(); ++i) dx[i] = static_cast<float>(i % 7);
        pool.backward(x, y, dy, &dx);
        std::vector<double> expect_dx(static_cast<std::size_t>(x.numel()));
        for (std::size_t i = 0; i < expect_dx.size(); ++i)
          expect_dx[i] = static_cast<double>(i % 7);
        for (std::size_t t = 0; t < winner.size(); ++t)
          expect_dx[static_cast<std::size_t>(winner[t])] += dy[static_cast<int64_t>(t)];
        for (int64_t i = 0; i < dx.numel(); ++i)
          REQUIRE(dx[i] == Approx(expect_dx[static_cast<std::size_t>(i)]).margin(1e-6));
      }
    }
  }
}

// Max pooling is piecewise linear: within a piece (the winner of every window fixed) y is a copy
// of inputs. Random normal inputs make exact ties impossible, but two values of a window closer
// than eps can still occur, which the shared checker's kink heuristic may miss
// (piecewise_gradcheck.hpp). So the pieces are given exactly: the winners of the direct scan.
TEST_CASE("MaxPool2D gradients", "[max_pool2d][grad]") {
  for (const PoolCase& cs : kCases) {
    for (uint64_t seed : {7, 8}) {
      DYNAMIC_SECTION(cs.label << ", seed " << seed) {
        MaxPool2D pool = make_pool(cs);
        auto winners = [&](const Tensor& x) {
          std::vector<float> y;
          std::vector<int64_t> at;
          reference_pool(cs, x, y, at);
          return at;
        };
        REQUIRE_GRADIENTS_OK(testing::check_piecewise_linear_gradients(
            pool, Shape{cs.c, cs.h, cs.w}, winners, {.batch = 3, .seed = seed}));
      }
    }
  }
}

TEST_CASE("MaxPool2D gradients through the shared checker on well-separated inputs",
          "[max_pool2d][grad]") {
  // input_scale 10 spreads the values tenfold, so a near-tie inside eps is ten times rarer; the
  // outputs are copies of inputs, so the scale costs no precision.
  for (int which : {0, 1, 2, 4}) {
    const PoolCase& cs = kCases[which];
    DYNAMIC_SECTION(cs.label) {
      MaxPool2D pool = make_pool(cs);
      REQUIRE_GRADIENTS_OK(testing::check_layer_gradients(pool, Shape{cs.c, cs.h, cs.w},
                                                          {.batch = 3, .input_scale = 10.0f}));
    }
  }
}

TEST_CASE("MaxPool2D ties: the first maximum in row-major order wins", "[max_pool2d]") {
  SECTION("all-equal windows, pool 2") {
    MaxPool2D pool(2);
    pool.build(Shape{1, 4, 4});
    Tensor x(Shape{1, 1, 4, 4}, 5.0f);
    Tensor y(Shape{1, 1, 2, 2});
    pool.forward(x, y, Phase::train);
    for (int i = 0; i < 4; ++i) CHECK(y[i] == 5.0f);
    Tensor dy(y.shape(), 1.0f);
    Tensor dx(x.shape());
    pool.backward(x, y, dy, &dx);
    const float expect[16] = {1, 0, 1, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0};
    for (int i = 0; i < 16; ++i) CHECK(dx[i] == expect[i]);
  }
  SECTION("all-equal overlapping windows, pool 3 stride 1") {
    MaxPool2D pool(3, {.stride = 1});
    pool.build(Shape{1, 4, 4});
    Tensor x(Shape{1, 1, 4, 4}, -2.0f);
    Tensor y(Shape{1, 1, 2, 2});
    pool.forward(x, y, Phase::train);
    Tensor dy(y.shape());
    for (int i = 0; i < 4; ++i) dy[i] = static_cast<float>(i + 1);
    Tensor dx(x.shape());
    pool.backward(x, y, dy, &dx);
    // Windows start at (0,0), (0,1), (1,0), (1,1): each sends its dy to its own first cell.
    const float expect[16] = {1, 2, 0, 0, 3, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    for (int i = 0; i < 16; ++i) CHECK(dx[i] == expect[i]);
  }
  SECTION("two equal maxima: the earlier one, not the later one") {
    MaxPool2D pool(2);
    pool.build(Shape{1, 2, 2});
    Tensor x(Shape{1, 1, 2, 2});
    const float v[4] = {1, 3, 3, 2};
    for (int i = 0; i < 4; ++i) x[i] = v[i];
    Tensor y(Shape{1, 1, 1, 1});
    pool.forward(x, y, Phase::train);
    CHECK(y[0] == 3.0f);
    Tensor dy(y.shape(), 2.5f);
    Tensor dx(x.shape());
    pool.backward(x, y, dy, &dx);
    CHECK(dx[0] == 0.0f);
    CHECK(dx[1] == 2.5f);
    CHECK(dx[2] == 0.0f);
    CHECK(dx[3] == 0.0f);
  }
}

TEST_CASE("MaxPool2D same padding never picks a padded cell", "[max_pool2d]") {
  // 1x3 row of negatives, pool 2 stride 2 same: out ceil(3/2) = 2, total pad 1 at the right.
  MaxPool2D pool({1, 2}, {.padding = Padding::same});
  REQUIRE(pool.build(Shape{1, 1, 3}) == Shape{1, 1, 2});
  Tensor x(Shape{1, 1, 1, 3});
  x[0] = -4;
  x[1] = -3;
  x[2] = -7;
  Tensor y(Shape{1, 1, 1, 2});
  pool.forward(x, y, Phase::train);
  CHECK(y[0] == -3.0f);
  CHECK(y[1] == -7.0f);  // the window is {-7, pad}: the pad is not a 0
  Tensor dy(y.shape(), 1.0f);
  Tensor dx(x.shape());
  pool.backward(x, y, dy, &dx);
  CHECK(dx[0] == 0.0f);
  CHECK(dx[1] == 1.0f);
  CHECK(dx[2] == 1.0f);
}

TEST_CASE("MaxPool2D backward after an inference forward", "[max_pool2d]") {
  const PoolCase& cs = kCases[2];
  Rng rng(8);
  MaxPool2D a = make_pool(cs), b = make_pool(cs);
  a.build(Shape{cs.c, cs.h, cs.w});
  b.build(Shape{cs.c, cs.h, cs.w});
  Tensor x(Shape{2, cs.c, cs.h, cs.w}), dy(Shape{2, cs.c, cs.p, cs.q});
  fill_normal(x, rng);
  fill_normal(dy, rng);
  PassResult train = run_pass(a, x, dy, Phase::train);
  PassResult infer = run_pass(b, x, dy, Phase::infer);
  CHECK(identical(train.y, infer.y));
  CHECK(identical(train.dx, infer.dx));
}

TEST_CASE("MaxPool2D reuses its argmax buffer across batch sizes", "[max_pool2d][memory]") {
  for (int which : {1, 2, 4}) {
    const PoolCase& cs = kCases[which];
    DYNAMIC_SECTION(cs.label) {
      Rng rng(123);
      const Shape in{cs.c, cs.h, cs.w};
      MaxPool2D used = make_pool(cs);
      const Shape out = used.build(in);
      auto random = [&](const Shape& s) {
        Tensor t(s);
        fill_normal(t, rng);
        return t;
      };
      Tensor xa = random(in.with_batch(4)), dya = random(out.with_batch(4));
      Tensor xb = random(in.with_batch(2)), dyb = random(out.with_batch(2));
      Tensor xc = random(in.with_batch(4)), dyc = random(out.with_batch(4));
      PassResult first = run_pass(used, xa, dya, Phase::train);
      PassResult second = run_pass(used, xb, dyb, Phase::train);
      PassResult third = run_pass(used, xc, dyc, Phase::train);
      PassResult again = run_pass(used, xa, dya, Phase::train);
      for (auto [x, dy, got] : {std::tuple{&xb, &dyb, &second}, std::tuple{&xc, &dyc, &third},
                                std::tuple{&xa, &dya, &again}}) {
        MaxPool2D fresh = make_pool(cs);
        fresh.build(in);
        PassResult ref = run_pass(fresh, *x, *dy, Phase::train);
        CHECK(identical(got->y, ref.y));
        CHECK(identical(got->dx, ref.dx));
      }
      CHECK(identical(first.y, again.y));
      CHECK(identical(first.dx, again.dx));
    }
  }
}

TEST_CASE("MaxPool2D rejects bad shapes naming the layer and the shape", "[max_pool2d][shape]") {
  MaxPool2D pool(3);
  pool.name = "pool_a";
  std::string msg = error_of([&] { pool.build(Shape{1, 2, 5}); });
  CHECK(msg.find("(1, 2, 5)") != std::string::npos);
  CHECK(msg.find("pool_a") != std::string::npos);
  msg = error_of([&] { pool.build(Shape{4, 9}); });
  CHECK(msg.find("(4, 9)") != std::string::npos);
  CHECK_THROWS_AS(pool.build(Shape{0, 9, 9}), ShapeError);
  // Same padding always fits.
  MaxPool2D same(3, {.padding = Padding::same});
  CHECK(same.build(Shape{1, 2, 5}) == Shape{1, 1, 2});
}

TEST_CASE("MaxPool2D arguments, description and configuration", "[max_pool2d][serialize]") {
  CHECK_THROWS_AS(MaxPool2D(0), InvalidArgument);
  CHECK_THROWS_AS(MaxPool2D({2, -1}), InvalidArgument);
  CHECK_THROWS_AS(MaxPool2D(2, {.stride = -1}), InvalidArgument);
  CHECK_THROWS_AS(MaxPool2D(2, {.padding = Padding::explicit_}), InvalidArgument);
  CHECK(MaxPool2D(2).describe() == "MaxPool2D(2x2, stride 2, valid)");
  CHECK(MaxPool2D({3, 2}, {.stride = {2, 1}, .padding = Padding::same}).describe() ==
        "MaxPool2D(3x2, stride 2x1, same)");

  MaxPool2D pool({3, 2}, {.stride = {1, 2}, .padding = Padding::same});
  ByteWriter w;
  pool.save_config(w);
  auto loaded = make_layer("max_pool2d");
  REQUIRE(loaded);
  CHECK(std::string(loaded->type()) == "max_pool2d");
  ByteReader r(w.buffer().data(), w.buffer().size(), "test record");
  loaded->load_config(r, 1);
  CHECK(r.remaining() == 0);
  CHECK(loaded->describe() == pool.describe());
  CHECK(loaded->build(Shape{2, 7, 8}) == pool.build(Shape{2, 7, 8}));

  ByteReader rv(w.buffer().data(), w.buffer().size(), "test record");
  MaxPool2D v2;
  CHECK_THROWS_AS(v2.load_config(rv, 2), FormatError);
  // Record layout: pool_h, pool_w, stride_h, stride_w (i64), padding (u32).
  struct Corrupt {
    std::size_t offset;
    int64_t value;
    bool is_u32;
    const char* field;
  };
  const Corrupt corruptions[] = {{0, 0, false, "max_pool2d.pool"},
                                 {24, 0, false, "max_pool2d.stride"},
                                 {32, 2, true, "max_pool2d.padding"}};
  for (const Corrupt& c : corruptions) {
    std::vector<uint8_t> bytes = w.buffer();
    if (c.is_u32) {
      const auto v = static_cast<uint32_t>(c.value);
      std::memcpy(bytes.data() + c.offset, &v, 4);
    } else {
      std::memcpy(bytes.data() + c.offset, &c.value, 8);
    }
    ByteReader rc(bytes.data(), bytes.size(), "test record");
    MaxPool2D bad;
    try {
      bad.load_config(rc, 1);
      FAIL("no FormatError for " << c.field);
    } catch (const FormatError& e) {
      CHECK(std::string(e.what()).find(c.field) != std::string::npos);
    }
  }
}

// ------------------------------------------------------------------------------------------------
// Flatten

TEST_CASE("Flatten shapes and copies", "[flatten]") {
  Flatten f;
  REQUIRE(f.build(Shape{3, 4, 5}) == Shape{60});
  CHECK(f.describe() == "Flatten()");
  Rng rng(1);
  Tensor x(Shape{2, 3, 4, 5});
  fill_normal(x, rng);
  Tensor y(Shape{2, 60});
  f.forward(x, y, Phase::infer);
  for (int64_t n = 0; n < 2; ++n)
    for (int64_t c = 0; c < 3; ++c)
      for (int64_t h = 0; h < 4; ++h)
        for (int64_t w = 0; w < 5; ++w)
          REQUIRE(y[n * 60 + (c * 4 + h) * 5 + w] == x.at(n, c, h, w));
  CHECK(y.data() != x.data());
  const float before = y[7];
  x[7] += 1.0f;  // y is a copy, not a view
  CHECK(y[7] == before);

  Tensor dy(y.shape());
  fill_normal(dy, rng);
  Tensor dx(x.shape(), 0.5f);
  f.backward(x, y, dy, &dx);
  for (int64_t i = 0; i < dx.numel(); ++i) REQUIRE(dx[i] == 0.5f + dy[i]);
  f.backward(x, y, dy, nullptr);  // no dx: nothing to do, must not crash
}

TEST_CASE("Flatten gradients", "[flatten][grad]") {
  Flatten f;
  REQUIRE_GRADIENTS_OK(testing::check_layer_gradients(f, Shape{3, 5, 7}, {.batch = 2}));
}

TEST_CASE("Flatten errors, options and configuration", "[flatten][serialize]") {
  Flatten f;
  f.name = "flat";
  const std::string msg = error_of([&] { f.build(Shape{}); });
  CHECK(msg.find("()") != std::string::npos);
  CHECK(msg.find("flat") != std::string::npos);
  CHECK_THROWS_AS(f.build(Shape{3, 0, 2}), ShapeError);
  Flatten g(Flatten::Options{.input_shape = {3, 8, 8}});
  CHECK(g.declared_input_shape() == Shape{3, 8, 8});

  ByteWriter w;
  g.save_config(w);
  CHECK(w.buffer().empty());
  auto loaded = make_layer("flatten");
  REQUIRE(loaded);
  CHECK(std::string(loaded->type()) == "flatten");
  ByteReader r(w.buffer().data(), w.buffer().size(), "test record");
  loaded->load_config(r, 1);
  ByteReader r2(w.buffer().data(), w.buffer().size(), "test record");
  CHECK_THROWS_AS(loaded->load_config(r2, 2), FormatError);
}

// ------------------------------------------------------------------------------------------------
// GlobalAvgPool2D

TEST_CASE("GlobalAvgPool2D averages each plane", "[global_avg_pool]") {
  GlobalAvgPool2D g;
  REQUIRE(g.build(Shape{3, 4, 5}) == Shape{3});
  CHECK(g.describe() == "GlobalAvgPool2D()");
  Rng rng(2);
  Tensor x(Shape{2, 3, 4, 5});
  fill_normal(x, rng);
  Tensor y(Shape{2, 3});
  g.forward(x, y, Phase::infer);
  for (int64_t n = 0; n < 2; ++n)
    for (int64_t c = 0; c < 3; ++c) {
      double s = 0.0;
      for (int64_t h = 0; h < 4; ++h)
        for (int64_t w = 0; w < 5; ++w) s += x.at(n, c, h, w);
      REQUIRE(y[n * 3 + c] == Approx(s / 20.0).margin(1e-6));
    }
  Tensor dy(y.shape());
  fill_normal(dy, rng);
  Tensor dx(x.shape(), 0.5f);
  g.backward(x, y, dy, &dx);
  for (int64_t i = 0; i < dx.numel(); ++i) REQUIRE(dx[i] == Approx(0.5f + dy[i / 20] / 20.0f));
  Tensor dx2(x.shape(), 7.0f);
  g.backward_into(x, y, dy, dx2);
  for (int64_t i = 0; i < dx2.numel(); ++i) REQUIRE(dx2[i] == Approx(dy[i / 20] / 20.0f));
  g.backward(x, y, dy, nullptr);
}

TEST_CASE("GlobalAvgPool2D gradients", "[global_avg_pool][grad]") {
  GlobalAvgPool2D g;
  REQUIRE_GRADIENTS_OK(testing::check_layer_gradients(g, Shape{4, 3, 5}, {.batch = 2}));
}

TEST_CASE("GlobalAvgPool2D errors and configuration", "[global_avg_pool][serialize]") {
  GlobalAvgPool2D g;
  g.name = "gap";
  const std::string msg = error_of([&] { g.build(Shape{12}); });
  CHECK(msg.find("(12)") != std::string::npos);
  CHECK(msg.find("gap") != std::string::npos);
  CHECK_THROWS_AS(g.build(Shape{3, 0, 2}), ShapeError);
  GlobalAvgPool2D h(GlobalAvgPool2D::Options{.input_shape = {3, 8, 8}});
  CHECK(h.declared_input_shape() == Shape{3, 8, 8});
  ByteWriter w;
  h.save_config(w);
  CHECK(w.buffer().empty());
  auto loaded = make_layer("global_avg_pool2d");
  REQUIRE(loaded);
  CHECK(std::string(loaded->type()) == "global_avg_pool2d");
  ByteReader r(w.buffer().data(), w.buffer().size(), "test record");
  loaded->load_config(r, 1);
  ByteReader r2(w.buffer().data(), w.buffer().size(), "test record");
  CHECK_THROWS_AS(loaded->load_config(r2, 2), FormatError);
}
