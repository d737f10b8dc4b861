// Parity with PyTorch for metric learning: L2Normalize and the contrastive, triplet and NT-Xent
// losses (docs/metric-learning.md), on fixtures written by tools/gen_fixtures.py (docs/testing.md,
// "PyTorch parity"). The references there are plain torch ops in float64 (F.normalize; pairwise
// distances, label masks and hardest / semi-hard selection; cross-entropy over cosine
// similarities) on float32 inputs whose every discrete choice is decided by a gap of at least
// 1e-4. Each tensor is compared with
//
//   ratio = max_i |imgsim_i - torch_i| / max_i |torch_i|     (max |imgsim - torch| if torch is 0)
//
// against the project's bars: forward values (outputs, losses) 1e-5, gradients 1e-4. Every ratio
// is printed ("[parity] case tensor ratio"), followed by the worst ratio of each case.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>

#include <catch2/catch.hpp>

#include "fixture.hpp"
#include "imgsim/nn/layers.hpp"
#include "imgsim/nn/metric_loss.hpp"

using namespace imgsim;
using namespace imgsim::nn;
using imgsim::testing::Fixture;

namespace {

constexpr double kForwardBar = 1e-5;
constexpr double kGradBar = 1e-4;

double parity_ratio(const Tensor& got, const Tensor& want) {
  double diff = 0.0, scale = 0.0;
  for (int64_t i = 0; i < want.numel(); ++i) {
    diff = std::max(diff, std::abs(static_cast<double>(got[i]) - static_cast<double>(want[i])));
    scale = std::max(scale, std::abs(static_cast<double>(want[i])));
  }
  return scale > 0.0 ? diff / scale : diff;
}

// Collects the ratios of one fixture and prints them; the destructor prints the worst.
class Report {
 public:
  explicit Report(std::string name) : name_(std::move(name)) {}
  Report(const Report&) = delete;
  Report& operator=(const Report&) = delete;
  ~Report() {
    std::printf("[parity] %-27s WORST forward %.2e  gradient %.2e\n", name_.c_str(), worst_fwd_,
                worst_grad_);
  }

  void compare(const std::string& what, const Tensor& got, const Tensor& want, double bar) {
    INFO(name_ << ": " << what << " imgsim " << got.shape().str() << " torch "
               << want.shape().str());
    REQUIRE(got.shape() == want.shape());
    const double r = parity_ratio(got, want);
    std::printf("[parity] %-27s %-8s %.2e  (bar %.0e)\n", name_.c_str(), what.c_str(), r, bar);
    double& worst = bar == kForwardBar ? worst_fwd_ : worst_grad_;
    worst = std::max(worst, r);
    INFO("max|imgsim - torch| / max|torch| = " << r << ", bar " << bar);
    CHECK(r <= bar);
  }

 private:
  std::string name_;
  double worst_fwd_ = 0.0, worst_grad_ = 0.0;
};

void run_loss(const std::string& fixture, Loss& loss) {
  const Fixture f = Fixture::load(fixture);
  Report rep(fixture);
  const Tensor& pred = f["pred"];
  Tensor dpred(pred.shape());  // zero: forward_backward adds
  const double value = loss.forward_backward(pred, f["target"], &dpred);
  Tensor got(Shape{1});
  got[0] = static_cast<float>(value);
  rep.compare("loss", got, f["loss"], kForwardBar);
  rep.compare("dpred", dpred, f["dpred"], kGradBar);
  // The value alone (dpred null) is the same number.
  CHECK(loss.forward_backward(pred, f["target"], nullptr) == value);
}

}  // namespace

TEST_CASE("L2Normalize matches torch F.normalize", "[parity][metric][l2_normalize]") {
  const Fixture f = Fixture::load("l2_normalize");
  Report rep("l2_normalize");
  L2Normalize layer;
  const Tensor& x = f["x"];
  const Shape out = layer.build(x.shape().without_batch());
  Tensor y(out.with_batch(x.dim(0)));
  layer.forward(x, y, Phase::train);
  rep.compare("y", y, f["y"], kForwardBar);
  Tensor dx(x.shape());
  layer.backward(x, y, f["dy"], &dx);
  rep.compare("dx", dx, f["dx"], kGradBar);
}

TEST_CASE("Metric losses match torch", "[parity][metric][loss]") {
  SECTION("contrastive, margin 1") {
    ContrastiveLoss l(1.0f);
    run_loss("loss_contrastive", l);
  }
  SECTION("triplet, batch-hard, margin 0.2") {
    TripletLoss l(0.2f, Mining::batch_hard);
    run_loss("loss_triplet_batch_hard", l);
  }
  SECTION("triplet, batch-hard, squared distances, margin 0.2") {
    TripletLoss l(0.2f, Mining::batch_hard, true);
    run_loss("loss_triplet_batch_hard_sq", l);
  }
  SECTION("triplet, semi-hard with both kinds of fallback, margin 0.2") {
    TripletLoss l(0.2f, Mining::semi_hard);
    run_loss("loss_triplet_semi_hard", l);
  }
  SECTION("triplet, batch-all, margin 0.2") {
    TripletLoss l(0.2f, Mining::all);
    run_loss("loss_triplet_all", l);
  }
  SECTION("triplet, batch-all, squared distances, margin 0.3") {
    TripletLoss l(0.3f, Mining::all, true);
    run_loss("loss_triplet_all_sq", l);
  }
  SECTION("NT-Xent, temperature 0.5") {
    NTXentLoss l(0.5f);
    run_loss("loss_ntxent", l);
  }
  SECTION("NT-Xent, two noisy views, temperature 0.1") {
    NTXentLoss l(0.1f);
    run_loss("loss_ntxent_views", l);
  }
}
