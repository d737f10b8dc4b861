// Optimizers, clipping and schedules. Every optimizer is compared step by step with a reference
// written here in double, independently, from the torch update rules in docs/optimizers.md.
#include <catch2/catch.hpp>

#include <cmath>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "imgsim/error.hpp"
#include "imgsim/nn/optimizer.hpp"
#include "imgsim/rng.hpp"

using namespace imgsim;
using namespace imgsim::nn;

namespace {

// float32 element-wise arithmetic against a double reference: a few ulps per step.
constexpr double kRel = 1e-6;
constexpr double kAbs = 1e-7;

// Parameters owned by the test: value and gradient tensors, and the Param list over them.
struct Model {
  std::vector<Tensor> values, grads;
  std::vector<bool> decay;

  void add(std::vector<float> v, bool dec) {
    const int64_t n = static_cast<int64_t>(v.size());
    Tensor t({n});
    for (int64_t i = 0; i < n; ++i) t[i] = v[static_cast<std::size_t>(i)];
    values.push_back(std::move(t));
    grads.emplace_back(Shape{n});
    decay.push_back(dec);
  }
  std::vector<Param> params() {
    std::vector<Param> p;
    for (std::size_t k = 0; k < values.size(); ++k)
      p.push_back({std::to_string(k), &values[k], &grads[k], decay[k]});
    return p;
  }
  std::vector<std::vector<double>> as_double() const {
    std::vector<std::vector<double>> out;
    for (const Tensor& t : values) {
      std::vector<double> v;
      for (int64_t i = 0; i < t.numel(); ++i) v.push_back(t[i]);
      out.push_back(v);
    }
    return out;
  }
  // Fills every gradient with random numbers and returns them as doubles.
  std::vector<std::vector<double>> random_grads(Rng& rng) {
    std::vector<std::vector<double>> out;
    for (Tensor& g : grads) {
      std::vector<double> v;
      for (int64_t i = 0; i < g.numel(); ++i) {
        g[i] = rng.normal();
        v.push_back(g[i]);
      }
      out.push_back(v);
    }
    return out;
  }
};

void require_close(const Model& m, const std::vector<std::vector<double>>& ref) {
  for (std::size_t k = 0; k < ref.size(); ++k)
    for (std::size_t i = 0; i < ref[k].size(); ++i) {
      INFO("param " << k << " element " << i);
      REQUIRE(m.values[k][static_cast<int64_t>(i)] == Approx(ref[k][i]).epsilon(kRel).margin(kAbs));
    }
}

using Vec = std::vector<std::vector<double>>;

// --- references, in double -------------------------------------------------------------------

struct RefSgd {
  double lr, mu, wd;
  bool nesterov;
  Vec buf;
  int t = 0;
  void step(Vec& w, const Vec& grad, const std::vector<bool>& decay) {
    ++t;
    if (buf.empty()) buf = w;  // sized like w; contents overwritten on the first step
    for (std::size_t k = 0; k < w.size(); ++k)
      for (std::size_t i = 0; i < w[k].size(); ++i) {
        double g = grad[k][i] + (decay[k] ? wd * w[k][i] : 0.0);
        double d = g;
        if (mu != 0.0) {
          buf[k][i] = t == 1 ? g : mu * buf[k][i] + g;
          d = nesterov ? g + mu * buf[k][i] : buf[k][i];
        }
        w[k][i] -= lr * d;
      }
  }
};

struct RefAdam {
  double lr, b1, b2, eps, wd;
  bool decoupled;
  Vec m, v;
  int t = 0;
  void step(Vec& w, const Vec& grad, const std::vector<bool>& decay) {
    ++t;
    if (m.empty()) {
      m = w;
      v = w;
      for (auto& row : m)
        for (double& x : row) x = 0;
      for (auto& row : v)
        for (double& x : row) x = 0;
    }
    for (std::size_t k = 0; k < w.size(); ++k)
      for (std::size_t i = 0; i < w[k].size(); ++i) {
        const double lam = decay[k] ? wd : 0.0;
        double g = grad[k][i];
        if (decoupled)
          w[k][i] *= 1 - lr * lam;
        else
          g += lam * w[k][i];
        m[k][i] = b1 * m[k][i] + (1 - b1) * g;
        v[k][i] = b2 * v[k][i] + (1 - b2) * g * g;
        const double mhat = m[k][i] / (1 - std::pow(b1, t));
        const double vhat = v[k][i] / (1 - std::pow(b2, t));
        w[k][i] -= lr * mhat / (std::sqrt(vhat) + eps);
      }
  }
};

Model two_params(Rng& rng) {
  Model m;
  std::vector<float> a, b;
  for (int i = 0; i < 5; ++i) a.push_back(rng.normal());
  for (int i = 0; i < 3; ++i) b.push_back(rng.normal());
  m.add(a, true);   // a weight
  m.add(b, false);  // a bias
  return m;
}

}  // namespace

// --- hand-computed first steps -----------------------------------------------------------------

TEST_CASE("SGD first steps by hand", "[optim]") {
  Model m;
  m.add({1.0f}, true);
  SECTION("momentum 0.9") {
    SGD sgd({.lr = 0.1, .momentum = 0.9});
    m.grads[0][0] = 0.5f;
    sgd.step(m.params());  // b = 0.5, w = 1 - 0.05
    CHECK(m.values[0][0] == Approx(0.95));
    sgd.step(m.params());  // b = 0.9 * 0.5 + 0.5 = 0.95, w = 0.95 - 0.095
    CHECK(m.values[0][0] == Approx(0.855));
    CHECK(sgd.steps() == 2);
  }
  SECTION("nesterov 0.9") {
    SGD sgd({.lr = 0.1, .momentum = 0.9, .nesterov = true});
    m.grads[0][0] = 0.5f;
    sgd.step(m.params());  // b = 0.5, d = 0.5 + 0.45, w = 1 - 0.095
    CHECK(m.values[0][0] == Approx(0.905));
    sgd.step(m.params());  // b = 0.95, d = 0.5 + 0.855, w = 0.905 - 0.1355
    CHECK(m.values[0][0] == Approx(0.7695));
  }
}

TEST_CASE("Adam and AdamW first step by hand", "[optim]") {
  // Step 1: m_hat = g, v_hat = g^2, so w -= lr g / (|g| + eps).
  Model m;
  m.add({1.0f, -2.0f}, true);
  m.grads[0][0] = 0.5f;
  m.grads[0][1] = -0.25f;
  SECTION("Adam") {
    Adam adam({.lr = 0.1});
    adam.step(m.params());
    CHECK(m.values[0][0] == Approx(1.0 - 0.1 * 0.5 / (0.5 + 1e-8)));
    CHECK(m.values[0][1] == Approx(-2.0 + 0.1 * 0.25 / (0.25 + 1e-8)));
  }
  SECTION("AdamW decays first: w (1 - lr wd) - lr sign(g)") {
    AdamW adamw({.lr = 0.1, .weight_decay = 0.5});
    adamw.step(m.params());
    CHECK(m.values[0][0] == Approx(1.0 * 0.95 - 0.1));
    CHECK(m.values[0][1] == Approx(-2.0 * 0.95 + 0.1));
  }
}

// --- several steps against the double references -----------------------------------------------

TEST_CASE("SGD matches the torch rule step by step", "[optim]") {
  struct Cfg {
    double mu, wd;
    bool nesterov;
  };
  for (Cfg c : {Cfg{0.0, 0.0, false}, Cfg{0.0, 0.05, false}, Cfg{0.9, 0.0, false},
                Cfg{0.9, 0.01, false}, Cfg{0.8, 0.01, true}}) {
    DYNAMIC_SECTION("momentum " << c.mu << " wd " << c.wd << " nesterov " << c.nesterov) {
      Rng rng(101);
      Model m = two_params(rng);
      Vec ref = m.as_double();
      SGD sgd({.lr = 0.05, .momentum = c.mu, .nesterov = c.nesterov, .weight_decay = c.wd});
      RefSgd r{0.05, c.mu, c.wd, c.nesterov, {}};
      for (int s = 0; s < 6; ++s) {
        Vec g = m.random_grads(rng);
        sgd.step(m.params());
        r.step(ref, g, m.decay);
        require_close(m, ref);
      }
      CHECK(sgd.steps() == 6);
    }
  }
}

TEST_CASE("Adam and AdamW match the torch rules step by step", "[optim]") {
  for (double wd : {0.0, 0.1}) {
    for (bool decoupled : {false, true}) {
      DYNAMIC_SECTION((decoupled ? "AdamW" : "Adam") << " wd " << wd) {
        Rng rng(202);
        Model m = two_params(rng);
        Vec ref = m.as_double();
        AdamOptions o{.lr = 0.01, .beta1 = 0.9, .beta2 = 0.99, .eps = 1e-6, .weight_decay = wd};
        std::unique_ptr<Optimizer> opt;
        if (decoupled)
          opt = std::make_unique<AdamW>(o);
        else
          opt = std::make_unique<Adam>(o);
        RefAdam r{0.01, 0.9, 0.99, 1e-6, wd, decoupled, {}, {}};
        for (int s = 0; s < 8; ++s) {
          Vec g = m.random_grads(rng);
          opt->step(m.params());
          r.step(ref, g, m.decay);
          require_close(m, ref);
        }
      }
    }
  }
}

TEST_CASE("The learning rate can change between steps", "[optim]") {
  Rng rng(303);
  Model m = two_params(rng);
  Vec ref = m.as_double();
  Adam adam({.lr = 0.02});
  RefAdam r{0.02, 0.9, 0.999, 1e-8, 0.0, false, {}, {}};
  for (int s = 0; s < 5; ++s) {
    const double lr = 0.02 / (1 + s);
    adam.set_learning_rate(lr);
    r.lr = lr;
    Vec g = m.random_grads(rng);
    adam.step(m.params());
    r.step(ref, g, m.decay);
    require_close(m, ref);
  }
  CHECK(adam.learning_rate() == 0.02 / 5);
}

// --- weight decay only where Param::decay is set -------------------------------------------------

TEST_CASE("Weight decay applies only to parameters with decay == true", "[optim]") {
  // Zero gradients: any change comes from weight decay.
  auto fresh = [] {
    Model m;
    m.add({2.0f, -1.0f}, true);
    m.add({3.0f, -4.0f}, false);
    return m;
  };
  SECTION("SGD: w <- w - lr wd w") {
    Model m = fresh();
    SGD sgd({.lr = 0.5, .weight_decay = 0.1});
    sgd.step(m.params());
    CHECK(m.values[0][0] == Approx(2.0 * 0.95));
    CHECK(m.values[0][1] == Approx(-1.0 * 0.95));
    CHECK(m.values[1][0] == 3.0f);
    CHECK(m.values[1][1] == -4.0f);
  }
  SECTION("Adam: L2 gradient wd w, first step moves by lr sign(w)") {
    Model m = fresh();
    Adam adam({.lr = 0.1, .weight_decay = 0.1});
    adam.step(m.params());
    CHECK(m.values[0][0] == Approx(2.0 - 0.1 * 0.2 / (0.2 + 1e-8)));
    CHECK(m.values[0][1] == Approx(-1.0 + 0.1 * 0.1 / (0.1 + 1e-8)));
    CHECK(m.values[1][0] == 3.0f);
    CHECK(m.values[1][1] == -4.0f);
  }
  SECTION("AdamW: w <- w (1 - lr wd)") {
    Model m = fresh();
    AdamW adamw({.lr = 0.1, .weight_decay = 0.5});
    adamw.step(m.params());
    adamw.step(m.params());
    CHECK(m.values[0][0] == Approx(2.0 * 0.95 * 0.95));
    CHECK(m.values[0][1] == Approx(-1.0 * 0.95 * 0.95));
    CHECK(m.values[1][0] == 3.0f);
    CHECK(m.values[1][1] == -4.0f);
  }
}

// --- clipping ----------------------------------------------------------------------------------

TEST_CASE("Gradient clipping by value", "[optim][clip]") {
  Model m;
  m.add({0.0f, 0.0f, 0.0f}, true);
  m.grads[0][0] = 3.0f;
  m.grads[0][1] = -0.5f;
  m.grads[0][2] = -2.0f;
  SGD sgd({.lr = 1.0});
  sgd.clip.max_value = 1.0f;
  sgd.step(m.params());
  CHECK(sgd.last_grad_norm() == Approx(std::sqrt(9.0 + 0.25 + 4.0)).epsilon(1e-12));
  CHECK(m.grads[0][0] == 1.0f);  // clipped in place
  CHECK(m.grads[0][1] == -0.5f);
  CHECK(m.grads[0][2] == -1.0f);
  CHECK(m.values[0][0] == -1.0f);
  CHECK(m.values[0][1] == 0.5f);
  CHECK(m.values[0][2] == 1.0f);
}

TEST_CASE("Gradient clipping by global norm", "[optim][clip]") {
  Model m;
  m.add({0.0f}, true);
  m.add({0.0f}, false);
  SECTION("norm above max_norm: scaled by max_norm / (norm + 1e-6)") {
    m.grads[0][0] = 3.0f;
    m.grads[1][0] = 4.0f;  // global norm 5 across both parameters
    SGD sgd({.lr = 1.0});
    sgd.clip.max_norm = 1.0f;
    sgd.step(m.params());
    CHECK(sgd.last_grad_norm() == Approx(5.0).epsilon(1e-12));
    const double scale = 1.0 / (5.0 + 1e-6);
    CHECK(m.grads[0][0] == Approx(3.0 * scale).epsilon(kRel));
    CHECK(m.grads[1][0] == Approx(4.0 * scale).epsilon(kRel));
    CHECK(m.values[0][0] == Approx(-3.0 * scale).epsilon(kRel));
    CHECK(m.values[1][0] == Approx(-4.0 * scale).epsilon(kRel));
  }
  SECTION("norm below max_norm: untouched") {
    m.grads[0][0] = 0.3f;
    m.grads[1][0] = -0.4f;
    SGD sgd({.lr = 1.0});
    sgd.clip.max_norm = 1.0f;
    sgd.step(m.params());
    CHECK(sgd.last_grad_norm() == Approx(0.5).epsilon(1e-7));
    CHECK(m.grads[0][0] == 0.3f);
    CHECK(m.grads[1][0] == -0.4f);
  }
  SECTION("value first, then norm") {
    m.grads[0][0] = 3.0f;
    m.grads[1][0] = -4.0f;
    SGD sgd({.lr = 1.0});
    sgd.clip.max_value = 2.0f;  // -> (2, -2), norm 2 sqrt 2
    sgd.clip.max_norm = 1.0f;
    sgd.step(m.params());
    CHECK(sgd.last_grad_norm() == Approx(5.0).epsilon(1e-12));  // before any clipping
    const double scale = 1.0 / (2.0 * std::sqrt(2.0) + 1e-6);
    CHECK(m.grads[0][0] == Approx(2.0 * scale).epsilon(kRel));
    CHECK(m.grads[1][0] == Approx(-2.0 * scale).epsilon(kRel));
  }
}

// --- schedules ---------------------------------------------------------------------------------

TEST_CASE("StepLr values", "[optim][schedule]") {
  StepLr s(3, 0.1);
  CHECK(s.lr(0.5, 0.0) == 0.5);
  CHECK(s.lr(0.5, 2.99) == 0.5);
  CHECK(s.lr(0.5, 3.0) == Approx(0.05).epsilon(1e-15));
  CHECK(s.lr(0.5, 5.5) == Approx(0.05).epsilon(1e-15));
  CHECK(s.lr(0.5, 7.0) == Approx(0.005).epsilon(1e-15));
  CHECK_THROWS_AS(StepLr(0, 0.1).lr(0.5, 1.0), InvalidArgument);
  CHECK_THROWS_AS(s.lr(0.5, -1.0), InvalidArgument);
}

TEST_CASE("CosineLr values", "[optim][schedule]") {
  SECTION("no warm-up: torch CosineAnnealingLR") {
    CosineLr c(10, 0.0);
    CHECK(c.lr(1.0, 0.0) == 1.0);
    CHECK(c.lr(1.0, 5.0) == Approx(0.5).epsilon(1e-15));
    CHECK(c.lr(1.0, 2.5) == Approx((1 + std::sqrt(0.5)) / 2).epsilon(1e-15));
    CHECK(c.lr(1.0, 10.0) == 0.0);
    CHECK(c.lr(1.0, 12.0) == 0.0);
  }
  SECTION("warm-up 2 of 10 epochs, min 0.001") {
    CosineLr c(10, 0.001, 2);
    const double base = 0.1;
    CHECK(c.lr(base, 0.0) == 0.0);
    CHECK(c.lr(base, 1.0) == Approx(0.05).epsilon(1e-15));
    CHECK(c.lr(base, 1.5) == Approx(0.075).epsilon(1e-15));
    CHECK(c.lr(base, 2.0) == Approx(base).epsilon(1e-15));
    // t = 4 of T = 8: cos(pi/2) = 0, half-way between base and min
    CHECK(c.lr(base, 6.0) == Approx(0.001 + (base - 0.001) / 2).epsilon(1e-12));
    // t = 6 of 8: (1 + cos(3 pi / 4)) / 2
    CHECK(c.lr(base, 8.0) ==
          Approx(0.001 + (base - 0.001) * (1 - std::sqrt(0.5)) / 2).epsilon(1e-12));
    CHECK(c.lr(base, 10.0) == 0.001);
    CHECK(c.lr(base, 11.0) == 0.001);
  }
  CHECK_THROWS_AS(CosineLr(0).lr(1.0, 0.0), InvalidArgument);
  CHECK_THROWS_AS(CosineLr(5, 0.0, 6).lr(1.0, 0.0), InvalidArgument);
}

// --- state and arguments -------------------------------------------------------------------------

TEST_CASE("step() throws StateError when the parameter list changes", "[optim][error]") {
  for (std::string name : {"sgd", "adam", "adamw"}) {
    DYNAMIC_SECTION(name) {
      auto opt = make_optimizer(name);
      CHECK(std::string(opt->type()) == name);
      Model m;
      m.add({1, 2, 3}, true);
      m.add({4}, false);
      opt->step(m.params());
      opt->step(m.params());

      auto fewer = m.params();
      fewer.pop_back();
      CHECK_THROWS_AS(opt->step(fewer), StateError);

      Model other;
      other.add({1, 2}, true);  // different shape at index 0
      other.add({4}, false);
      try {
        opt->step(other.params());
        FAIL("expected StateError");
      } catch (const StateError& e) {
        const std::string msg = e.what();
        INFO(msg);
        CHECK(msg.find("(2)") != std::string::npos);
        CHECK(msg.find("(3)") != std::string::npos);
      }
      CHECK(opt->steps() == 2);  // the rejected calls did not count

      opt->reset();  // forgets the state: a new list is accepted
      opt->step(other.params());
      CHECK(opt->steps() == 1);
    }
  }
}

TEST_CASE("Optimizer arguments are validated", "[optim][error]") {
  CHECK_THROWS_AS(make_optimizer("rmsprop"), InvalidArgument);
  CHECK_THROWS_AS(SGD({.lr = -1}), InvalidArgument);
  CHECK_THROWS_AS(SGD({.momentum = -0.1}), InvalidArgument);
  CHECK_THROWS_AS(SGD({.nesterov = true}), InvalidArgument);
  CHECK_THROWS_AS(Adam({.beta1 = 1.0}), InvalidArgument);
  CHECK_THROWS_AS(Adam({.beta2 = -0.5}), InvalidArgument);
  CHECK_THROWS_AS(AdamW({.weight_decay = -0.01}), InvalidArgument);

  Model m;
  m.add({1, 2}, true);
  Tensor bad_grad({3});
  std::vector<Param> p{{"w", &m.values[0], &bad_grad, true}};
  CHECK_THROWS_AS(SGD().step(p), ShapeError);
}

// --- end to end ----------------------------------------------------------------------------------

TEST_CASE("Every optimizer minimises a quadratic", "[optim][e2e]") {
  // L(w) = sum_i (w_i - c_i)^2, dL/dw = 2 (w - c).
  struct Run {
    const char* name;
    std::function<std::unique_ptr<Optimizer>()> make;
    int steps;
    bool decay;
    double wd_shrink;  // minimiser is c * wd_shrink (L2 weight decay moves it)
    float max_norm;
  };
  const std::vector<Run> runs = {
      {"sgd", [] { return std::make_unique<SGD>(SGDOptions{.lr = 0.1}); }, 300, true, 1.0, 0},
      {"sgd momentum",
       [] { return std::make_unique<SGD>(SGDOptions{.lr = 0.05, .momentum = 0.9}); }, 600, true,
       1.0, 0},
      {"sgd nesterov",
       [] {
         return std::make_unique<SGD>(SGDOptions{.lr = 0.05, .momentum = 0.9, .nesterov = true});
       },
       600, true, 1.0, 0},
      // with L2 decay wd: 2 (w - c) + wd w = 0  =>  w = c * 2 / (2 + wd)
      {"sgd weight decay",
       [] { return std::make_unique<SGD>(SGDOptions{.lr = 0.1, .weight_decay = 0.1}); }, 300, true,
       2.0 / 2.1, 0},
      // |w0 - c| is about 9 and each clipped step moves at most lr * 0.5: needs several hundred.
      {"sgd clipped", [] { return std::make_unique<SGD>(SGDOptions{.lr = 0.1}); }, 1000, true, 1.0,
       0.5f},
      {"adam", [] { return std::make_unique<Adam>(AdamOptions{.lr = 0.05}); }, 3000, true, 1.0, 0},
      // the decay flag is off: AdamW's default decay must not pull w away from c
      {"adamw",
       [] { return std::make_unique<AdamW>(AdamOptions{.lr = 0.05, .weight_decay = 0.01}); }, 3000,
       false, 1.0, 0},
  };
  for (const Run& run : runs) {
    DYNAMIC_SECTION(run.name) {
      Rng rng(404);
      std::vector<float> w0, c;
      for (int i = 0; i < 8; ++i) {
        w0.push_back(2.0f * rng.normal());
        c.push_back(rng.normal());
      }
      Model m;
      m.add(w0, run.decay);
      auto opt = run.make();
      opt->clip.max_norm = run.max_norm;
      // The learning rate is annealed to 0 as in training: with a constant rate, Adam in float32
      // keeps taking steps of about lr at the minimum, where the quantised gradients (+-1 ulp)
      // are normalised by an equally tiny sqrt(v).
      const double base_lr = opt->learning_rate();
      const CosineLr schedule(run.steps);
      for (int s = 0; s < run.steps; ++s) {
        opt->set_learning_rate(schedule.lr(base_lr, s));
        for (int i = 0; i < 8; ++i) m.grads[0][i] = 2.0f * (m.values[0][i] - c[i]);
        opt->step(m.params());
      }
      for (int i = 0; i < 8; ++i) {
        INFO("element " << i << ", start " << w0[i]);
        CHECK(m.values[0][i] == Approx(c[i] * run.wd_shrink).margin(1e-5));
      }
    }
  }
}
