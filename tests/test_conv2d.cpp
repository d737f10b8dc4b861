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
#include "kernels/im2col.hpp"
#include "piecewise_gradcheck.hpp"

using namespace imgsim;
using namespace imgsim::nn;

namespace {

const Activation kActivations[] = {Activation::linear, Activation::relu, Activation::leaky_relu,
                                   Activation::tanh, Activation::sigmoid};

// One convolution geometry with its expected padding and output size, worked out by hand from
// the rules (valid: floor((in-k)/s)+1; same: ceil(in/s), total = max((out-1)s + k - in, 0),
// top = total/2; explicit: floor((in + 2 pad - k)/s)+1).
struct ConvCase {
  const char* label;
  int64_t c, h, w, k, r, s, sh, sw;
  Padding padding;
  int64_t pad_h, pad_w;
  int64_t pt, pb, pl, pr, p, q;
};

const ConvCase kCases[] = {
    {"1ch 5x5 k3 valid", 1, 5, 5, 2, 3, 3, 1, 1, Padding::valid, 0, 0, 0, 0, 0, 0, 3, 3},
    {"3ch 7x6 k3x2 s2 same", 3, 7, 6, 4, 3, 2, 2, 2, Padding::same, 0, 0, 1, 1, 0, 0, 4, 3},
    {"2ch 6x6 k3 s2 same (pad bottom/right only)", 2, 6, 6, 3, 3, 3, 2, 2, Padding::same, 0, 0, 0,
     1, 0, 1, 3, 3},
    {"3ch 6x5 k4 s1 same (asymmetric 1/2)", 3, 6, 5, 2, 4, 4, 1, 1, Padding::same, 0, 0, 1, 2, 1, 2,
     6, 5},
    {"2ch 9x7 k2x3 s3 same", 2, 9, 7, 3, 2, 3, 3, 3, Padding::same, 0, 0, 0, 0, 1, 1, 3, 3},
    {"1ch 7x9 k3 s2 same (odd input)", 1, 7, 9, 2, 3, 3, 2, 2, Padding::same, 0, 0, 1, 1, 1, 1, 4,
     5},
    {"3ch 6x7 k3 s2x1 explicit 1x2", 3, 6, 7, 2, 3, 3, 2, 1, Padding::explicit_, 1, 2, 1, 1, 2, 2,
     3, 9},
    {"2ch 8x7 k3x2 s3 explicit 1", 2, 8, 7, 2, 3, 2, 3, 3, Padding::explicit_, 1, 1, 1, 1, 1, 1, 3,
     3},
    {"1ch 3x3 k5 explicit 2", 1, 3, 3, 1, 5, 5, 1, 1, Padding::explicit_, 2, 2, 2, 2, 2, 2, 3, 3},
    {"3ch 5x4 k1 pointwise", 3, 5, 4, 4, 1, 1, 1, 1, Padding::valid, 0, 0, 0, 0, 0, 0, 5, 4},
    {"2ch 7x7 k1 s2", 2, 7, 7, 2, 1, 1, 2, 2, Padding::valid, 0, 0, 0, 0, 0, 0, 4, 4},
    {"2ch 1x1 k3 same", 2, 1, 1, 2, 3, 3, 1, 1, Padding::same, 0, 0, 1, 1, 1, 1, 1, 1},
    {"1ch 8x8 k3 s3 valid", 1, 8, 8, 2, 3, 3, 3, 3, Padding::valid, 0, 0, 0, 0, 0, 0, 2, 2},
    {"3ch 5x7 k2x3 s2x3 valid", 3, 5, 7, 3, 2, 3, 2, 3, Padding::valid, 0, 0, 0, 0, 0, 0, 2, 2},
};

Conv2D make_conv(const ConvCase& cs, Activation a, bool bias, float slope = 0.01f) {
  return Conv2D(cs.k, {cs.r, cs.s},
                {.stride = {cs.sh, cs.sw},
                 .padding = cs.padding,
                 .pad = {cs.pad_h, cs.pad_w},
                 .activation = a,
                 .leaky_slope = slope,
                 .use_bias = bias});
}

void fill_normal(Tensor& t, Rng& rng) {
  for (int64_t i = 0; i < t.numel(); ++i) t[i] = rng.normal();
}

double reference_activation(Activation a, float slope, double z) {
  switch (a) {
    case Activation::linear:
      return z;
    case Activation::relu:
      return z > 0 ? z : 0.0;
    case Activation::leaky_relu:
      return z > 0 ? z : static_cast<double>(slope) * z;
    case Activation::tanh:
      return std::tanh(z);
    case Activation::sigmoid:
      return 1.0 / (1.0 + std::exp(-z));
  }
  return z;
}

// The layer's formula as seven nested loops (n, k, p, q, c, r, s), in double:
//   y[n,k,p,q] = act(b[k] + sum_{c,r,s} w[k,c,r,s] x[n, c, p*sh + r - pt, q*sw + s - pl])
std::vector<double> reference_conv(const ConvCase& cs, const Tensor& x, const Tensor& w,
                                   const Tensor* b, Activation a, float slope) {
  const int64_t n_batch = x.dim(0);
  std::vector<double> y;
  for (int64_t n = 0; n < n_batch; ++n)
    for (int64_t k = 0; k < cs.k; ++k)
      for (int64_t p = 0; p < cs.p; ++p)
        for (int64_t q = 0; q < cs.q; ++q) {
          double z = b ? (*b)[k] : 0.0;
          for (int64_t c = 0; c < cs.c; ++c)
            for (int64_t r = 0; r < cs.r; ++r)
              for (int64_t s = 0; s < cs.s; ++s) {
                const int64_t i = p * cs.sh + r - cs.pt, j = q * cs.sw + s - cs.pl;
                if (i < 0 || i >= cs.h || j < 0 || j >= cs.w) continue;  // zero padding
                z += static_cast<double>(w[((k * cs.c + c) * cs.r + r) * cs.s + s]) *
                     x.at(n, c, i, j);
              }
          y.push_back(reference_activation(a, slope, z));
        }
  return y;
}

// One forward + backward with zeroed parameter gradients and a zeroed dx.
struct PassResult {
  Tensor y, dx;
  std::vector<Tensor> grads;
};

PassResult run_pass(Layer& layer, const Tensor& x, const Tensor& dy) {
  PassResult r;
  r.y = Tensor(layer.output_shape().with_batch(x.dim(0)));
  layer.forward(x, r.y, Phase::train);
  for (auto& p : layer.params()) p.grad->zero();
  r.dx = Tensor(x.shape());
  layer.backward(x, r.y, dy, &r.dx);
  for (auto& p : layer.params()) r.grads.push_back(p.grad->clone());
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

TEST_CASE("Conv2D resolves padding and output size", "[conv2d][shape]") {
  for (const ConvCase& cs : kCases) {
    DYNAMIC_SECTION(cs.label) {
      Conv2D conv = make_conv(cs, Activation::linear, true);
      const Shape out = conv.build(Shape{cs.c, cs.h, cs.w});
      CHECK(out == Shape{cs.k, cs.p, cs.q});
      CHECK(conv.pad_top() == cs.pt);
      CHECK(conv.pad_bottom() == cs.pb);
      CHECK(conv.pad_left() == cs.pl);
      CHECK(conv.pad_right() == cs.pr);
      CHECK(conv.weight().shape() == Shape{cs.k, cs.c, cs.r, cs.s});
    }
  }
}

TEST_CASE("Conv2D same padding with stride 2 on odd inputs", "[conv2d][shape]") {
  {
    Conv2D conv(4, 3, {.stride = 2, .padding = Padding::same});
    CHECK(conv.build(Shape{3, 7, 9}) == Shape{4, 4, 5});  // ceil(7/2), ceil(9/2)
    CHECK(conv.pad_top() == 1);
    CHECK(conv.pad_bottom() == 1);
    CHECK(conv.pad_left() == 1);
    CHECK(conv.pad_right() == 1);
  }
  {
    // Even kernel: total pad (4-1)*2 + 2 - 7 = 1 goes to the bottom/right, as in TensorFlow.
    Conv2D conv(1, 2, {.stride = 2, .padding = Padding::same});
    CHECK(conv.build(Shape{1, 7, 5}) == Shape{1, 4, 3});
    CHECK(conv.pad_top() == 0);
    CHECK(conv.pad_bottom() == 1);
    CHECK(conv.pad_left() == 0);
    CHECK(conv.pad_right() == 1);
  }
  {
    // Stride larger than needed: no padding at all (total would be negative).
    Conv2D conv(1, 1, {.stride = 2, .padding = Padding::same});
    CHECK(conv.build(Shape{1, 5, 5}) == Shape{1, 3, 3});
    CHECK(conv.pad_top() + conv.pad_bottom() + conv.pad_left() + conv.pad_right() == 0);
  }
}

TEST_CASE("Conv2D forward matches a direct loop over the formula", "[conv2d][forward]") {
  Rng rng(2024);
  for (const ConvCase& cs : kCases) {
    for (Activation a : kActivations) {
      for (bool bias : {true, false}) {
        DYNAMIC_SECTION(cs.label << ", " << to_string(a) << (bias ? ", bias" : ", no bias")) {
          const float slope = 0.2f;
          Conv2D conv = make_conv(cs, a, bias, slope);
          conv.build(Shape{cs.c, cs.h, cs.w});
          fill_normal(conv.weight(), rng);
          if (bias) fill_normal(conv.bias(), rng);
          Tensor x(Shape{3, cs.c, cs.h, cs.w});
          fill_normal(x, rng);
          // The layer must overwrite y completely, whatever it held.
          Tensor y(Shape{3, cs.k, cs.p, cs.q}, std::numeric_limits<float>::quiet_NaN());
          conv.forward(x, y, Phase::infer);
          const auto expect =
              reference_conv(cs, x, conv.weight(), bias ? &conv.bias() : nullptr, a, slope);
          REQUIRE(static_cast<int64_t>(expect.size()) == y.numel());
          for (int64_t i = 0; i < y.numel(); ++i) {
            INFO("element " << i);
            REQUIRE(y[i] == Approx(expect[static_cast<std::size_t>(i)]).margin(1e-5));
          }
        }
      }
    }
  }
}

TEST_CASE("Conv2D forward on a hand-computed example", "[conv2d][forward]") {
  // 1 channel 3x3 input 1..9, kernel [[1, 0], [0, -1]], bias 0.5: cross-correlation, no flip:
  //   y[p,q] = x[p,q] - x[p+1,q+1] + 0.5 = -4 + 0.5 everywhere.
  Conv2D conv(1, 2);
  conv.build(Shape{1, 3, 3});
  const float k[] = {1, 0, 0, -1};
  for (int i = 0; i < 4; ++i) conv.weight()[i] = k[i];
  conv.bias()[0] = 0.5f;
  Tensor x(Shape{1, 1, 3, 3});
  for (int i = 0; i < 9; ++i) x[i] = static_cast<float>(i + 1);
  Tensor y(Shape{1, 1, 2, 2});
  conv.forward(x, y, Phase::infer);
  for (int i = 0; i < 4; ++i) CHECK(y[i] == -3.5f);

  // Same padding, 3x3 kernel of ones: corner sums see the zero padding.
  Conv2D box(1, 3, {.padding = Padding::same, .use_bias = false});
  box.build(Shape{1, 3, 3});
  box.weight().fill(1.0f);
  Tensor yb(Shape{1, 1, 3, 3});
  box.forward(x, yb, Phase::infer);
  const float expect[] = {12, 21, 16, 27, 45, 33, 24, 39, 28};
  for (int i = 0; i < 9; ++i) CHECK(yb[i] == expect[i]);
}

// Linear, tanh and sigmoid are smooth: the shared checker applies as is. ReLU and leaky ReLU
// are piecewise linear; the shared checker's eps/eps/2 kink heuristic misses kinks crossed very
// close to the evaluation point (piecewise_gradcheck.hpp explains), so they are checked with
// exact kink exclusion: the pieces are the sign patterns of the pre-activations, computed by a
// twin layer with a linear activation and the same parameters.
testing::GradCheckReport check_conv_gradients(const ConvCase& cs, Activation a, bool bias,
                                              const testing::GradCheckOptions& o) {
  const Shape in{cs.c, cs.h, cs.w};
  Conv2D conv = make_conv(cs, a, bias, 0.2f);
  if (a != Activation::relu && a != Activation::leaky_relu)
    return testing::check_layer_gradients(conv, in, o);
  Conv2D twin = make_conv(cs, Activation::linear, bias);
  twin.build(in);
  auto signs = [&](const Tensor& x) {
    twin.weight().copy_from(conv.weight());
    if (bias) twin.bias().copy_from(conv.bias());
    Tensor z(twin.output_shape().with_batch(x.dim(0)));
    twin.forward(x, z, Phase::infer);
    std::vector<int64_t> s(static_cast<std::size_t>(z.numel()));
    for (int64_t i = 0; i < z.numel(); ++i) s[static_cast<std::size_t>(i)] = z[i] > 0.0f;
    return s;
  };
  return testing::check_piecewise_linear_gradients(conv, in, signs, o);
}

TEST_CASE("Conv2D gradients: every geometry, activation and bias setting", "[conv2d][grad]") {
  for (const ConvCase& cs : kCases) {
    for (Activation a : kActivations) {
      for (bool bias : {true, false}) {
        DYNAMIC_SECTION(cs.label << ", " << to_string(a) << (bias ? ", bias" : ", no bias")) {
          REQUIRE_GRADIENTS_OK(check_conv_gradients(cs, a, bias, {.batch = 2}));
        }
      }
    }
  }
}

TEST_CASE("Conv2D gradients without dx, several seeds", "[conv2d][grad]") {
  // kCases[0] (3x3, stride 1, valid, one channel) is a first layer: without dx, on AVX-512, its
  // forward and dW run the direct kernels conv3x3 and conv3x3_grad.
  for (const ConvCase* cs : {&kCases[2], &kCases[0]})
    for (uint64_t seed : {1, 2, 3}) {
      for (Activation a : {Activation::linear, Activation::relu, Activation::leaky_relu}) {
        DYNAMIC_SECTION(cs->label << ", seed " << seed << ", " << to_string(a)) {
          REQUIRE_GRADIENTS_OK(
              check_conv_gradients(*cs, a, true, {.batch = 3, .seed = seed, .check_input = false}));
        }
      }
    }
}

// The checkers must be able to fail: a layer whose dx is off in one coordinate.
struct BrokenConv : Conv2D {
  using Conv2D::Conv2D;
  void backward(const Tensor& x, const Tensor& y, const Tensor& dy, Tensor* dx) override {
    Conv2D::backward(x, y, dy, dx);
    if (dx) (*dx)[0] += 0.25f;
  }
};

TEST_CASE("The gradient checkers catch a wrong gradient", "[conv2d][grad]") {
  const ConvCase& cs = kCases[0];
  const Shape in{cs.c, cs.h, cs.w};
  BrokenConv smooth(cs.k, {cs.r, cs.s}, {.activation = Activation::tanh});
  CHECK_FALSE(testing::check_layer_gradients(smooth, in).ok);
  BrokenConv relu(cs.k, {cs.r, cs.s}, {.activation = Activation::relu});
  auto no_kinks = [](const Tensor&) { return std::vector<int64_t>{}; };
  const auto rep = testing::check_piecewise_linear_gradients(relu, in, no_kinks);
  CHECK_FALSE(rep.ok);
  CHECK(rep.first_failure.find("dx[0]") != std::string::npos);
}

TEST_CASE("Conv2D gradients with batch 3", "[conv2d][grad]") {
  for (Activation a : {Activation::leaky_relu, Activation::sigmoid}) {
    DYNAMIC_SECTION(to_string(a)) {
      REQUIRE_GRADIENTS_OK(check_conv_gradients(kCases[1], a, true, {.batch = 3, .seed = 11}));
    }
  }
}

TEST_CASE("Conv2D backward without dx gives the same parameter gradients", "[conv2d][grad]") {
  const ConvCase& cs = kCases[6];
  Rng rng(5);
  Conv2D conv = make_conv(cs, Activation::tanh, true);
  conv.build(Shape{cs.c, cs.h, cs.w});
  conv.init_params(rng);
  fill_normal(conv.bias(), rng);
  Tensor x(Shape{2, cs.c, cs.h, cs.w});
  fill_normal(x, rng);
  Tensor dy(Shape{2, cs.k, cs.p, cs.q});
  fill_normal(dy, rng);
  PassResult with_dx = run_pass(conv, x, dy);
  Tensor y(dy.shape());
  conv.forward(x, y, Phase::train);
  for (auto& p : conv.params()) p.grad->zero();
  conv.backward(x, y, dy, nullptr);
  auto params = conv.params();
  REQUIRE(params.size() == 2);
  CHECK(identical(*params[0].grad, with_dx.grads[0]));
  CHECK(identical(*params[1].grad, with_dx.grads[1]));
}

TEST_CASE("Conv2D reuses its buffers across batch sizes", "[conv2d][memory]") {
  for (int which : {1, 6, 9}) {  // same/stride 2, explicit/stride 2x1, pointwise
    const ConvCase& cs = kCases[which];
    DYNAMIC_SECTION(cs.label) {
      Rng rng(99);
      const Shape in{cs.c, cs.h, cs.w};
      auto make = [&] {
        Conv2D conv = make_conv(cs, Activation::sigmoid, true);
        conv.build(in);
        return conv;
      };
      Conv2D used = make();
      used.init_params(rng);
      fill_normal(used.bias(), rng);
      auto random = [&](const Shape& s) {
        Tensor t(s);
        fill_normal(t, rng);
        return t;
      };
      const Shape out = used.output_shape();
      Tensor xa = random(in.with_batch(4)), dya = random(out.with_batch(4));
      Tensor xb = random(in.with_batch(2)), dyb = random(out.with_batch(2));
      Tensor xc = random(in.with_batch(4)), dyc = random(out.with_batch(4));

      PassResult first = run_pass(used, xa, dya);
      PassResult second = run_pass(used, xb, dyb);
      PassResult third = run_pass(used, xc, dyc);
      PassResult again = run_pass(used, xa, dya);

      for (auto [x, dy, got] : {std::tuple{&xb, &dyb, &second}, std::tuple{&xc, &dyc, &third},
                                std::tuple{&xa, &dya, &again}}) {
        Conv2D fresh = make();
        fresh.weight().copy_from(used.weight());
        fresh.bias().copy_from(used.bias());
        PassResult ref = run_pass(fresh, *x, *dy);
        CHECK(identical(got->y, ref.y));
        CHECK(identical(got->dx, ref.dx));
        REQUIRE(got->grads.size() == ref.grads.size());
        for (std::size_t k = 0; k < ref.grads.size(); ++k)
          CHECK(identical(got->grads[k], ref.grads[k]));
      }
      CHECK(identical(first.y, again.y));
      CHECK(identical(first.dx, again.dx));
    }
  }
}

TEST_CASE("Conv2D initialisation follows the He/Glorot bound", "[conv2d]") {
  Rng rng(3);
  Conv2D relu(8, {3, 2}, {.activation = Activation::relu});
  relu.build(Shape{4, 9, 9});
  relu.bias().fill(1.0f);
  relu.init_params(rng);
  const double bound = std::sqrt(6.0 / (4 * 3 * 2));  // fan_in = C*R*S
  double max_abs = 0.0;
  for (int64_t i = 0; i < relu.weight().numel(); ++i)
    max_abs = std::max(max_abs, std::abs(static_cast<double>(relu.weight()[i])));
  CHECK(max_abs <= bound);
  CHECK(max_abs > 0.8 * bound);  // 192 draws from U(-b, b) come close to b
  for (int64_t i = 0; i < relu.bias().numel(); ++i) CHECK(relu.bias()[i] == 0.0f);

  Conv2D tanh_conv(8, {3, 2}, {.activation = Activation::tanh});
  tanh_conv.build(Shape{4, 9, 9});
  tanh_conv.init_params(rng);
  const double glorot = std::sqrt(6.0 / (4 * 3 * 2 + 8 * 3 * 2));  // fan_out = K*R*S
  for (int64_t i = 0; i < tanh_conv.weight().numel(); ++i)
    CHECK(std::abs(tanh_conv.weight()[i]) <= glorot);
}

TEST_CASE("Conv2D rejects bad shapes naming the layer and the shape", "[conv2d][shape]") {
  Conv2D conv(4, 3);
  conv.name = "conv_a";
  std::string msg = error_of([&] { conv.build(Shape{3, 5}); });
  CHECK(msg.find("(3, 5)") != std::string::npos);
  CHECK(msg.find("conv_a") != std::string::npos);

  msg = error_of([&] { conv.build(Shape{1, 2, 9}); });  // 3x3 kernel, height 2, valid
  CHECK(msg.find("(1, 2, 9)") != std::string::npos);
  CHECK(msg.find("conv_a") != std::string::npos);
  CHECK(msg.find("3x3") != std::string::npos);

  REQUIRE(conv.build(Shape{3, 8, 8}) == Shape{4, 6, 6});
  msg = error_of([&] { conv.build(Shape{2, 8, 8}); });  // weights exist for 3 channels
  CHECK(msg.find("(2, 8, 8)") != std::string::npos);
  CHECK(msg.find("conv_a") != std::string::npos);
  // Same channels, another size: fine, weights kept.
  CHECK(conv.build(Shape{3, 5, 4}) == Shape{4, 3, 2});

  Conv2D padded(1, 6, {.padding = Padding::explicit_, .pad = 1});
  msg = error_of([&] { padded.build(Shape{1, 3, 3}); });  // 3 + 2 < 6
  CHECK(msg.find("(1, 3, 3)") != std::string::npos);

  Conv2D zero_dim(1, 1);
  CHECK_THROWS_AS(zero_dim.build(Shape{0, 3, 3}), ShapeError);
  CHECK_THROWS_AS(zero_dim.build(Shape{1, 3, 3, 3}), ShapeError);
}

TEST_CASE("Conv2D rejects bad arguments", "[conv2d]") {
  CHECK_THROWS_AS(Conv2D(0, 3), InvalidArgument);
  CHECK_THROWS_AS(Conv2D(-2, 3), InvalidArgument);
  CHECK_THROWS_AS(Conv2D(4, {0, 3}), InvalidArgument);
  CHECK_THROWS_AS(Conv2D(4, {3, -1}), InvalidArgument);
  CHECK_THROWS_AS(Conv2D(4, 3, {.stride = 0}), InvalidArgument);
  CHECK_THROWS_AS(Conv2D(4, 3, {.stride = {1, -1}}), InvalidArgument);
  CHECK_THROWS_AS(Conv2D(4, 3, {.padding = Padding::explicit_, .pad = {-1, 0}}), InvalidArgument);
  CHECK_NOTHROW(Conv2D(4, 3, {.padding = Padding::explicit_, .pad = {0, 2}}));
}

TEST_CASE("Conv2D describes itself", "[conv2d]") {
  CHECK(Conv2D(32, 3, {.activation = Activation::relu}).describe() ==
        "Conv2D(32, 3x3, stride 1, valid, relu)");
  CHECK(Conv2D(8, {3, 2}, {.stride = {2, 1}, .padding = Padding::same, .use_bias = false})
            .describe() == "Conv2D(8, 3x2, stride 2x1, same, no bias, linear)");
  CHECK(Conv2D(4, 5, {.padding = Padding::explicit_, .pad = 2, .activation = Activation::tanh})
            .describe() == "Conv2D(4, 5x5, stride 1, pad 2, tanh)");
}

TEST_CASE("Conv2D configuration round-trips and is validated", "[conv2d][serialize]") {
  Conv2D conv(6, {3, 2},
              {.stride = {2, 3},
               .padding = Padding::explicit_,
               .pad = {1, 2},
               .activation = Activation::leaky_relu,
               .leaky_slope = 0.125f,
               .use_bias = false});
  ByteWriter w;
  conv.save_config(w);
  auto loaded = make_layer("conv2d");
  REQUIRE(loaded);
  CHECK(std::string(loaded->type()) == "conv2d");
  ByteReader r(w.buffer().data(), w.buffer().size(), "test record");
  loaded->load_config(r, 1);
  CHECK(r.remaining() == 0);
  CHECK(loaded->describe() == conv.describe());
  const Shape in{2, 9, 8};
  CHECK(loaded->build(in) == conv.build(in));
  CHECK(loaded->params().size() == 1);  // no bias

  // Version other than 1.
  {
    ByteReader rv(w.buffer().data(), w.buffer().size(), "test record");
    Conv2D c;
    CHECK_THROWS_AS(c.load_config(rv, 2), FormatError);
  }
  // Truncated record.
  {
    ByteReader rt(w.buffer().data(), w.buffer().size() - 1, "test record");
    Conv2D c;
    CHECK_THROWS_AS(c.load_config(rt, 1), FormatError);
  }
  // Field-by-field corruption: offsets of filters, kernel_h, stride_w, padding, pad_h,
  // activation in the record layout (i64 x5, u32, i64 x2, u32, f32, u8).
  struct Corrupt {
    std::size_t offset;
    int64_t value;
    bool is_u32;
    const char* field;
  };
  const Corrupt corruptions[] = {
      {0, 0, false, "conv2d.filters"}, {8, -3, false, "conv2d.kernel"},
      {32, 0, false, "conv2d.stride"}, {40, 3, true, "conv2d.padding"},
      {44, -1, false, "conv2d.pad"},   {60, 9, true, "conv2d.activation"}};
  for (const Corrupt& c : corruptions) {
    std::vector<uint8_t> bytes = w.buffer();
    if (c.is_u32) {
      const auto v = static_cast<uint32_t>(c.value);
      std::memcpy(bytes.data() + c.offset, &v, 4);
    } else {
      std::memcpy(bytes.data() + c.offset, &c.value, 8);
    }
    ByteReader rc(bytes.data(), bytes.size(), "test record");
    Conv2D bad;
    try {
      bad.load_config(rc, 1);
      FAIL("no FormatError for " << c.field);
    } catch (const FormatError& e) {
      CHECK(std::string(e.what()).find(c.field) != std::string::npos);
      CHECK(std::string(e.what()).find("test record") != std::string::npos);
    }
  }
}

TEST_CASE("im2col and col2im are adjoint and exact", "[conv2d][kernels]") {
  // Hand example: 1 channel 3x3 input 1..9, kernel 2x2, stride 1, no padding.
  {
    kernels::Im2colGeometry g{1, 3, 3, 2, 2, 1, 1, 0, 0, 2, 2};
    float x[9];
    for (int i = 0; i < 9; ++i) x[i] = static_cast<float>(i + 1);
    float col[16];
    kernels::ref::im2col(g, x, col);
    const float expect[16] = {1, 2, 4, 5, 2, 3, 5, 6, 4, 5, 7, 8, 5, 6, 8, 9};
    for (int i = 0; i < 16; ++i) CHECK(col[i] == expect[i]);
  }
  Rng rng(17);
  for (const ConvCase& cs : kCases) {
    DYNAMIC_SECTION(cs.label) {
      kernels::Im2colGeometry g{cs.c,  cs.h,  cs.w,  cs.r, cs.s, cs.sh,
                                cs.sw, cs.pt, cs.pl, cs.p, cs.q};
      const int64_t nx = cs.c * cs.h * cs.w, ncol = cs.c * cs.r * cs.s * cs.p * cs.q;
      std::vector<float> x(static_cast<std::size_t>(nx)), c(static_cast<std::size_t>(ncol));
      for (auto& v : x) v = rng.normal();
      for (auto& v : c) v = rng.normal();
      // im2col overwrites every entry.
      std::vector<float> col(c.size(), std::numeric_limits<float>::quiet_NaN());
      kernels::ref::im2col(g, x.data(), col.data());
      // col2im adds: start from ones.
      std::vector<float> back(x.size(), 1.0f);
      kernels::ref::col2im_add(g, c.data(), back.data());
      double lhs = 0.0, rhs = 0.0, scale = 0.0;
      for (std::size_t i = 0; i < c.size(); ++i) {
        REQUIRE(!std::isnan(col[i]));
        lhs += static_cast<double>(col[i]) * c[i];
        scale += std::abs(static_cast<double>(col[i]) * c[i]);
      }
      for (std::size_t i = 0; i < x.size(); ++i)
        rhs += static_cast<double>(x[i]) * (back[i] - 1.0f);
      CHECK(std::abs(lhs - rhs) <= 1e-5 * (1.0 + scale));
      // Every column entry is either a padding zero or the input it names.
      for (int64_t ch = 0; ch < cs.c; ++ch)
        for (int64_t r = 0; r < cs.r; ++r)
          for (int64_t s = 0; s < cs.s; ++s)
            for (int64_t p = 0; p < cs.p; ++p)
              for (int64_t q = 0; q < cs.q; ++q) {
                const int64_t i = p * cs.sh + r - cs.pt, j = q * cs.sw + s - cs.pl;
                const float v = col[static_cast<std::size_t>(
                    (((ch * cs.r + r) * cs.s + s) * cs.p + p) * cs.q + q)];
                const bool inside = i >= 0 && i < cs.h && j >= 0 && j < cs.w;
                REQUIRE(v ==
                        (inside ? x[static_cast<std::size_t>((ch * cs.h + i) * cs.w + j)] : 0.0f));
              }
    }
  }
}
