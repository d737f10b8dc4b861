// Shared by the PyTorch parity tests: the comparison metric and a per-fixture report.
//
//   ratio = max_i |imgsim_i - torch_i| / max_i |torch_i|     (max |imgsim - torch| if torch is 0)
//
// checked against the project's bars: forward values 1e-5, gradients and optimizer steps 1e-4.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>

#include <catch2/catch.hpp>

#include "imgsim/tensor.hpp"

namespace imgsim::testing {

constexpr double kForwardBar = 1e-5;
constexpr double kGradBar = 1e-4;

inline double parity_ratio(const Tensor& got, const Tensor& want) {
  double diff = 0.0, scale = 0.0;
  for (int64_t i = 0; i < want.numel(); ++i) {
    diff = std::max(diff, std::abs(static_cast<double>(got[i]) - static_cast<double>(want[i])));
    scale = std::max(scale, std::abs(static_cast<double>(want[i])));
  }
  return scale > 0.0 ? diff / scale : diff;
}

// Collects the ratios of one fixture and prints them ("[parity] case tensor ratio"); the
// destructor prints the worst forward and gradient ratios of the case.
class ParityReport {
 public:
  explicit ParityReport(std::string name) : name_(std::move(name)) {}
  ParityReport(const ParityReport&) = delete;
  ParityReport& operator=(const ParityReport&) = delete;
  ~ParityReport() {
    std::printf("[parity] %-27s WORST forward %.2e  gradient/step %.2e\n", name_.c_str(),
                worst_fwd_, worst_grad_);
  }

  void compare(const std::string& what, const Tensor& got, const Tensor& want, double bar) {
    INFO(name_ << ": " << what << " imgsim " << got.shape().str() << " torch "
               << want.shape().str());
    REQUIRE(got.shape() == want.shape());
    const double r = parity_ratio(got, want);
    std::printf("[parity] %-27s %-24s %.2e  (bar %.0e)\n", name_.c_str(), what.c_str(), r, bar);
    double& worst = bar == kForwardBar ? worst_fwd_ : worst_grad_;
    worst = std::max(worst, r);
    INFO("max|imgsim - torch| / max|torch| = " << r << ", bar " << bar);
    CHECK(r <= bar);
  }

  void compare_scalar(const std::string& what, double got, const Tensor& want, double bar) {
    Tensor g(Shape{1});
    g[0] = static_cast<float>(got);
    compare(what, g, want, bar);
  }

 private:
  std::string name_;
  double worst_fwd_ = 0.0, worst_grad_ = 0.0;
};

}  // namespace imgsim::testing
