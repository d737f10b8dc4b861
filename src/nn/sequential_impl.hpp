// Sequential's private state (internal; shared by sequential.cpp and model_file.cpp).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "imgsim/nn/sequential.hpp"

namespace imgsim::nn {

struct Sequential::Impl {
  std::vector<std::unique_ptr<Layer>> layers;
  Shape input;
  uint64_t seed = 42;
  std::vector<Tensor> acts;   // acts[i]: output of layer i (training forward)
  std::vector<Tensor> grads;  // two buffers: each layer reads dy from one, writes dx to the other
  std::vector<char> fused;    // fused[i]: the last training forward ran layers i, i+1 as one
  Tensor pingpong[2];         // inference buffers
  Tensor dout;                // dL/d output
  Tensor bx, by;              // training batch
  Tensor ex, ey;              // evaluation batch
  const Tensor* last_x = nullptr;
  bool have_train_forward = false;
  std::unique_ptr<Optimizer> opt;
  std::unique_ptr<Loss> loss;
  std::vector<std::string> metrics;
  std::vector<Param> param_cache;
  std::map<std::string, std::string> metadata;

  void check_input(const Tensor& x) const;
  void add_metrics(const Tensor& pred, const Tensor& target,
                   std::map<std::string, double>& sums) const;
};

}  // namespace imgsim::nn
