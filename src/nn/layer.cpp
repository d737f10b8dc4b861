// Layer helpers shared by all layers: activation names, padding names, the type registry.
#include "imgsim/nn/layer.hpp"

#include "imgsim/error.hpp"
#include "imgsim/nn/layers.hpp"

namespace imgsim::nn {

Activation activation_from_string(const std::string& name) {
  if (name.empty() || name == "linear" || name == "none") return Activation::linear;
  if (name == "relu") return Activation::relu;
  if (name == "leaky_relu") return Activation::leaky_relu;
  if (name == "tanh") return Activation::tanh;
  if (name == "sigmoid") return Activation::sigmoid;
  throw InvalidArgument("unknown activation '" + name +
                        "' (expected linear, relu, leaky_relu, tanh or sigmoid)");
}

const char* to_string(Activation a) {
  switch (a) {
    case Activation::linear:
      return "linear";
    case Activation::relu:
      return "relu";
    case Activation::leaky_relu:
      return "leaky_relu";
    case Activation::tanh:
      return "tanh";
    case Activation::sigmoid:
      return "sigmoid";
  }
  return "?";
}

Padding padding_from_string(const std::string& name) {
  if (name == "valid") return Padding::valid;
  if (name == "same") return Padding::same;
  if (name == "explicit") return Padding::explicit_;
  throw InvalidArgument("unknown padding '" + name + "' (expected valid, same or explicit)");
}

void Layer::backward_into(const Tensor& x, const Tensor& y, const Tensor& dy, Tensor& dx) {
  dx.zero();
  backward(x, y, dy, &dx);
}

int64_t Layer::num_params() {
  int64_t n = 0;
  for (const Param& p : params()) n += p.value->numel();
  return n;
}

std::unique_ptr<Layer> make_layer(const std::string& type) {
  // Each built-in layer adds its line here when it is implemented.
  if (type == "dense") return std::make_unique<Dense>();
  if (type == "cosine_dense") return std::make_unique<CosineDense>();
  if (type == "conv2d") return std::make_unique<Conv2D>();
  if (type == "max_pool2d") return std::make_unique<MaxPool2D>();
  if (type == "flatten") return std::make_unique<Flatten>();
  if (type == "global_avg_pool2d") return std::make_unique<GlobalAvgPool2D>();
  if (type == "relu") return std::make_unique<ReLU>();
  if (type == "leaky_relu") return std::make_unique<LeakyReLU>();
  if (type == "tanh") return std::make_unique<Tanh>();
  if (type == "sigmoid") return std::make_unique<Sigmoid>();
  if (type == "softmax") return std::make_unique<Softmax>();
  if (type == "dropout") return std::make_unique<Dropout>();
  if (type == "batch_norm") return std::make_unique<BatchNorm>();
  if (type == "l2_normalize") return std::make_unique<L2Normalize>();
  return nullptr;
}

}  // namespace imgsim::nn
