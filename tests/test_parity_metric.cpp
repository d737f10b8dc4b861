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
#include "parity_report.hpp"

using namespace imgsim;
using namespace imgsim::nn;
using imgsim::testing::Fixture;
using imgsim::testing::kForwardBar;
using imgsim::testing::kGradBar;
using imgsim::testing::ParityReport;

namespace {

void run_loss(const std::string& fixture, Loss& loss) {
  const Fixture f = Fixture::load(fixture);
  ParityReport rep(fixture);
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
  ParityReport rep("l2_normalize");
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
  SECTION("supervised contrastive, temperature 0.1") {
    SupConLoss l(0.1f);
    run_loss("loss_supcon", l);
  }
}
