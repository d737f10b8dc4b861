// Parity with PyTorch on committed fixtures (docs/testing.md, "PyTorch parity").
//
// tools/gen_fixtures.py ran torch (float64 reference on float32 inputs) and wrote inputs,
// parameters, outputs and gradients to tests/fixtures/*.bin. Here the same computation runs in
// imgsim and every tensor is compared with
//
//   ratio = max_i |imgsim_i - torch_i| / max_i |torch_i|     (max |imgsim - torch| if torch is 0)
//
// against the project's bars: forward values (outputs, losses, running statistics after one
// forward) 1e-5; gradients and parameters after optimizer steps 1e-4. Every ratio is printed
// ("[parity] case tensor ratio"), followed by the worst ratio of each case.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "fixture.hpp"
#include "imgsim/error.hpp"
#include "imgsim/nn/layers.hpp"
#include "imgsim/nn/loss.hpp"
#include "imgsim/nn/optimizer.hpp"
#include "imgsim/nn/sequential.hpp"
#include "parity_report.hpp"

using namespace imgsim;
using namespace imgsim::nn;
using imgsim::testing::Fixture;
using imgsim::testing::kForwardBar;
using imgsim::testing::kGradBar;
using imgsim::testing::ParityReport;

namespace {

// prefix + i + suffix ("p3.init"). Built by appending: GCC 12 reports a false -Wrestrict for
// "literal" + std::to_string(i) at -O3.
std::string key(const char* prefix, std::size_t i, const char* suffix = "") {
  std::string k(prefix);
  k += std::to_string(i);
  k += suffix;
  return k;
}

// Copies a fixture tensor into an imgsim tensor of the same shape.
void set(Tensor& dst, const Tensor& src, const std::string& what) {
  INFO(what << ": imgsim " << dst.shape().str() << " fixture " << src.shape().str());
  REQUIRE(dst.shape() == src.shape());
  std::memcpy(dst.data(), src.data(), static_cast<std::size_t>(src.numel()) * sizeof(float));
}

// One layer on one fixture: parameters from the fixture (named as Param::name, gradients as
// "d" + name), forward in `phase`, then backward with the fixture's dy into zeroed dx and
// gradients (imgsim's backward adds).
void run_layer(const std::string& fixture, Layer& layer, Phase phase) {
  const Fixture f = Fixture::load(fixture);
  ParityReport rep(fixture);
  const Tensor& x = f["x"];
  const Shape out = layer.build(x.shape().without_batch());
  std::vector<Param> params = layer.params();
  for (Param& p : params) {
    set(*p.value, f[p.name], fixture + " " + p.name);
    p.grad->zero();
  }
  // Every parameter the fixture has must exist in the layer (a missing bias would pass silently).
  for (const char* pname : {"weight", "bias", "gamma", "beta"}) {
    bool found = false;
    for (const Param& p : params) found = found || p.name == pname;
    INFO(fixture << ": parameter " << pname);
    CHECK(found == f.has(pname));
  }
  auto* bn = dynamic_cast<BatchNorm*>(&layer);
  if (bn) {
    set(bn->running_mean(), f["running_mean"], fixture + " running_mean");
    set(bn->running_var(), f["running_var"], fixture + " running_var");
  }

  Tensor y(out.with_batch(x.dim(0)));
  layer.forward(x, y, phase);
  rep.compare("y", y, f["y"], kForwardBar);
  if (bn) {
    rep.compare("running_mean after", bn->running_mean(), f["running_mean_after"], kForwardBar);
    rep.compare("running_var after", bn->running_var(), f["running_var_after"], kForwardBar);
  }

  Tensor dx(x.shape());
  layer.backward(x, y, f["dy"], &dx);
  rep.compare("dx", dx, f["dx"], kGradBar);
  for (const Param& p : params) rep.compare("d" + p.name, *p.grad, f["d" + p.name], kGradBar);
}

void run_loss(const std::string& fixture, Loss& loss) {
  const Fixture f = Fixture::load(fixture);
  ParityReport rep(fixture);
  const Tensor& pred = f["pred"];
  Tensor dpred(pred.shape());
  const double value = loss.forward_backward(pred, f["target"], &dpred);
  rep.compare_scalar("loss", value, f["loss"], kForwardBar);
  rep.compare("dpred", dpred, f["dpred"], kGradBar);
}

// The models of tools/gen_fixtures.py (make_model), input (3, 9, 9), 5 classes.
Sequential make_model(bool bn) {
  Sequential m;
  // With BatchNorm the first conv is linear and has no bias (BatchNorm cancels it).
  m.add(Conv2D(4, {3, 3},
               {.padding = Padding::explicit_,
                .pad = {1, 1},
                .activation = bn ? Activation::linear : Activation::relu,
                .use_bias = !bn}));
  if (bn) {
    m.add(BatchNorm());
    m.add(ReLU());
  }
  m.add(MaxPool2D({2, 2}));
  m.add(Conv2D(6, {3, 3}));
  m.add(Flatten());
  m.add(Dense(16, {.activation = Activation::relu}));
  m.add(Dense(5));
  m.build(Shape{3, 9, 9});
  return m;
}

std::vector<Tensor*> model_state(Sequential& m) {
  std::vector<Tensor*> s;
  for (std::size_t i = 0; i < m.size(); ++i)
    for (Tensor* t : m.layer(i).state()) s.push_back(t);
  return s;
}

// Initial weights from the fixture, then `steps` train_step calls with the fixture's batches.
// Compares the first step's output and gradients, every step's loss, and the parameters (and
// BatchNorm running statistics) after the last step.
void run_training(const std::string& fixture, bool bn, std::unique_ptr<Optimizer> opt) {
  const Fixture f = Fixture::load(fixture);
  ParityReport rep(fixture);
  Sequential model = make_model(bn);
  model.compile(std::move(opt), std::make_unique<SoftmaxCrossEntropy>());
  std::vector<Param> params = model.params();
  REQUIRE(f.has(key("p", params.size() - 1, ".init")));
  REQUIRE_FALSE(f.has(key("p", params.size(), ".init")));
  for (std::size_t i = 0; i < params.size(); ++i)
    set(*params[i].value, f[key("p", i, ".init")], params[i].name);

  // Step 0's logits: a training forward, after which the BatchNorm running statistics are put
  // back so that train_step starts from torch's state.
  {
    std::vector<Tensor> saved;
    for (Tensor* t : model_state(model)) saved.push_back(t->clone());
    rep.compare("step0 logits", model.forward(f["step0.x"], Phase::train), f["step0.out"],
                kForwardBar);
    std::vector<Tensor*> state = model_state(model);
    for (std::size_t i = 0; i < state.size(); ++i) state[i]->copy_from(saved[i]);
  }

  for (std::size_t step = 0; f.has(key("step", step, ".x")); ++step) {
    const std::string s = key("step", step);
    const double loss = model.train_step(f[s + ".x"], f[s + ".y"]);
    rep.compare_scalar(s + " loss", loss, f[s + ".loss"], kForwardBar);
    if (step == 0)  // the optimizer leaves the gradients of the step in place
      for (std::size_t i = 0; i < params.size(); ++i)
        rep.compare("step0 d" + params[i].name, *params[i].grad, f[key("p", i, ".grad0")],
                    kGradBar);
  }
  for (std::size_t i = 0; i < params.size(); ++i) {
    const Tensor& init = f[key("p", i, ".init")];
    const Tensor& final_torch = f[key("p", i, ".final")];
    rep.compare("final " + params[i].name, *params[i].value, final_torch, kGradBar);
    // The total update (final - init) on its own scale, so that a small error in the optimizer
    // is not hidden by the size of the weights.
    Tensor got(init.shape()), want(init.shape());
    for (int64_t j = 0; j < init.numel(); ++j) {
      got[j] = (*params[i].value)[j] - init[j];
      want[j] = final_torch[j] - init[j];
    }
    rep.compare("update " + params[i].name, got, want, kGradBar);
  }
  if (bn) {
    auto& norm = dynamic_cast<BatchNorm&>(model.layer(1));
    rep.compare("final running_mean", norm.running_mean(), f["bn.running_mean.final"], kGradBar);
    rep.compare("final running_var", norm.running_var(), f["bn.running_var.final"], kGradBar);
  }
}

// A valid fixture image with one tensor "t" of shape (2) = {1.5, -2}.
std::vector<unsigned char> tiny_fixture() {
  std::vector<unsigned char> b(Fixture::kMagic, Fixture::kMagic + 8);
  auto put = [&b](const void* p, std::size_t n) {
    const auto* c = static_cast<const unsigned char*>(p);
    b.insert(b.end(), c, c + n);
  };
  const uint32_t version = 1, count = 1, len = 1, rank = 1;
  const int64_t dim = 2;
  const float v[2] = {1.5f, -2.0f};
  put(&version, 4);
  put(&count, 4);
  put(&len, 4);
  put("t", 1);
  put(&rank, 4);
  put(&dim, 8);
  put(v, 8);
  const uint64_t h = Fixture::fnv1a64(b.data(), b.size());
  put(&h, 8);
  return b;
}

}  // namespace

TEST_CASE("Fixture reader accepts a valid file and rejects damaged ones", "[parity][fixture]") {
  const auto good = tiny_fixture();
  const Fixture f = Fixture::parse(good, "tiny");
  REQUIRE(f.names() == std::vector<std::string>{"t"});
  CHECK(f["t"].shape() == Shape{2});
  CHECK(f["t"][0] == 1.5f);
  CHECK(f["t"][1] == -2.0f);
  CHECK_THROWS_AS(f["missing"], FormatError);

  auto bad_magic = good;
  bad_magic[0] = 'X';
  CHECK_THROWS_AS(Fixture::parse(bad_magic, "bad magic"), FormatError);
  auto flipped = good;
  flipped[good.size() - 12] ^= 0x40;  // a data byte: the hash no longer matches
  CHECK_THROWS_AS(Fixture::parse(flipped, "flipped"), FormatError);
  auto truncated = good;
  truncated.resize(good.size() - 3);
  CHECK_THROWS_AS(Fixture::parse(truncated, "truncated"), FormatError);
  CHECK_THROWS_AS(Fixture::parse({}, "empty"), FormatError);
  CHECK_THROWS_AS(Fixture::load("no_such_fixture"), IoError);
}

TEST_CASE("Conv2D matches torch", "[parity][conv2d]") {
  SECTION("3x3 stride 2, explicit padding 1, odd input, bias") {
    Conv2D l(4, {3, 3}, {.stride = {2, 2}, .padding = Padding::explicit_, .pad = {1, 1}});
    run_layer("conv2d_s2_p1", l, Phase::train);
  }
  SECTION("3x2 kernel, stride (1, 2), valid, no bias") {
    Conv2D l(3, {3, 2}, {.stride = {1, 2}, .use_bias = false});
    run_layer("conv2d_k3x2_s1x2", l, Phase::train);
  }
  SECTION("3x4 kernel, stride 2, same (TensorFlow rule)") {
    Conv2D l(5, {3, 4}, {.stride = {2, 2}, .padding = Padding::same});
    run_layer("conv2d_same_s2", l, Phase::train);
    CHECK(l.pad_top() == 0);
    CHECK(l.pad_bottom() == 1);
    CHECK(l.pad_left() == 1);
    CHECK(l.pad_right() == 2);
  }
  SECTION("3x3 stride 1, padding 1, fused ReLU") {
    Conv2D l(4, {3, 3},
             {.padding = Padding::explicit_, .pad = {1, 1}, .activation = Activation::relu});
    run_layer("conv2d_relu", l, Phase::train);
  }
  SECTION("1x1 pointwise") {
    Conv2D l(6, {1, 1});
    run_layer("conv2d_pointwise", l, Phase::train);
  }
}

TEST_CASE("MaxPool2D matches torch", "[parity][max_pool2d]") {
  SECTION("7x7 input, pool 2") {
    MaxPool2D l({2, 2});
    run_layer("max_pool_7x7_p2", l, Phase::train);
  }
  SECTION("9x8 input, pool 3 stride 2") {
    MaxPool2D l({3, 3}, {.stride = {2, 2}});
    run_layer("max_pool_9x8_p3_s2", l, Phase::train);
  }
  SECTION("7x7 input, pool 2, same") {
    MaxPool2D l({2, 2}, {.padding = Padding::same});
    run_layer("max_pool_same_7x7_p2", l, Phase::train);
  }
}

TEST_CASE("Dense and Flatten match torch", "[parity][dense]") {
  SECTION("linear with bias") {
    Dense l(6);
    run_layer("dense_bias", l, Phase::train);
  }
  SECTION("fused tanh") {
    Dense l(7, {.activation = Activation::tanh});
    run_layer("dense_tanh", l, Phase::train);
  }
  SECTION("cosine dense (NormFace head), scale 16") {
    CosineDense l(4, {.scale = 16.0f});
    run_layer("cosine_dense", l, Phase::train);
  }
  SECTION("flatten") {
    Flatten l;
    run_layer("flatten", l, Phase::train);
  }
  SECTION("global average pooling") {
    GlobalAvgPool2D l;
    run_layer("global_avg_pool", l, Phase::train);
  }
}

TEST_CASE("BatchNorm matches torch", "[parity][batch_norm]") {
  SECTION("2d, training") {
    BatchNorm l;
    run_layer("batch_norm2d_train", l, Phase::train);
  }
  SECTION("1d, training") {
    BatchNorm l;
    run_layer("batch_norm1d_train", l, Phase::train);
  }
  SECTION("2d, eval") {
    BatchNorm l;
    run_layer("batch_norm2d_eval", l, Phase::infer);
  }
  SECTION("1d, eval") {
    BatchNorm l;
    run_layer("batch_norm1d_eval", l, Phase::infer);
  }
}

TEST_CASE("Softmax and activation layers match torch", "[parity][activation]") {
  SECTION("softmax") {
    Softmax l;
    run_layer("softmax", l, Phase::train);
  }
  SECTION("leaky relu, slope 0.1") {
    LeakyReLU l(0.1f);
    run_layer("leaky_relu", l, Phase::train);
  }
  SECTION("sigmoid") {
    Sigmoid l;
    run_layer("sigmoid", l, Phase::train);
  }
  SECTION("relu") {
    ReLU l;
    run_layer("relu", l, Phase::train);
  }
  SECTION("tanh") {
    Tanh l;
    run_layer("tanh", l, Phase::train);
  }
}

TEST_CASE("Losses match torch", "[parity][loss]") {
  SECTION("MSE") {
    MeanSquaredError l;
    run_loss("loss_mse", l);
  }
  SECTION("cross-entropy, class indices") {
    SoftmaxCrossEntropy l;
    run_loss("loss_ce_index", l);
  }
  SECTION("cross-entropy, label smoothing 0.1") {
    SoftmaxCrossEntropy l(0.1f);
    run_loss("loss_ce_smooth", l);
  }
  SECTION("cross-entropy, target margin 1.6 and label smoothing 0.1") {
    SoftmaxCrossEntropy l(0.1f, 1.6f);
    run_loss("loss_ce_margin", l);
  }
  SECTION("cross-entropy, probability targets") {
    SoftmaxCrossEntropy l;
    run_loss("loss_ce_prob", l);
  }
  SECTION("BCE with logits") {
    BinaryCrossEntropy l(true);
    run_loss("loss_bce_logits", l);
  }
  SECTION("BCE on probabilities") {
    BinaryCrossEntropy l(false);
    run_loss("loss_bce_prob", l);
  }
}

TEST_CASE("Training steps match torch", "[parity][train]") {
  SECTION("Adam") {
    run_training("train_adam", false, std::make_unique<Adam>(AdamOptions{.lr = 1e-2}));
  }
  SECTION("Adam, BatchNorm model") {
    run_training("train_adam_bn", true, std::make_unique<Adam>(AdamOptions{.lr = 1e-2}));
  }
  SECTION("Adam, L2 weight decay on weights") {
    run_training("train_adam_l2", false,
                 std::make_unique<Adam>(AdamOptions{.lr = 1e-2, .weight_decay = 0.05}));
  }
  SECTION("SGD, Nesterov momentum, weight decay on weights") {
    run_training("train_sgd_nesterov", false,
                 std::make_unique<SGD>(SGDOptions{
                     .lr = 0.05, .momentum = 0.9, .nesterov = true, .weight_decay = 0.01}));
  }
  SECTION("AdamW, BatchNorm model, decay on weights") {
    run_training("train_adamw_bn", true,
                 std::make_unique<AdamW>(AdamOptions{.lr = 1e-2, .weight_decay = 0.1}));
  }
}
