// The layer contract (docs/design.md, "Layers").
//
//  * build(in) receives the shape of one sample (no batch dimension), checks it, allocates
//    parameters the first time, and returns the shape of one output sample. A shape the layer
//    cannot take throws ShapeError naming the layer and the shape.
//  * forward(x, y, phase): x is (N, in...), y is resized by the caller to (N, out...). The layer
//    may cache what backward needs (argmax, im2col columns, batch statistics, dropout mask) in
//    buffers planned for the largest batch seen; forward never allocates once planned.
//  * backward(x, y, dy, dx): x and y are the tensors of the last forward call. It ADDS dL/dx into
//    *dx (skipped when dx is null, e.g. for the first layer) and ADDS dL/dparam into each
//    parameter's grad. The generic gradient checker (tests/gradcheck.hpp) checks both rules.
//    backward_into(x, y, dy, dx) is the same with *dx overwritten instead of added to.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "imgsim/rng.hpp"
#include "imgsim/tensor.hpp"

namespace imgsim::nn {

class ByteWriter;
class ByteReader;

enum class Phase { train, infer };

// Element-wise activation that Conv2D and Dense can fuse into their output.
enum class Activation { linear, relu, leaky_relu, tanh, sigmoid };

// "relu", "tanh", "sigmoid", "leaky_relu", "linear" (or "" / "none"); throws InvalidArgument.
Activation activation_from_string(const std::string& name);
const char* to_string(Activation a);

// A trainable tensor and its gradient, owned by a layer.
struct Param {
  std::string name;   // "weight", "bias", "gamma", ...
  Tensor* value;      // never null
  Tensor* grad;       // same shape as value
  bool decay = true;  // whether weight decay applies (false for biases and norm parameters)
};

class Layer {
 public:
  Layer() = default;
  Layer(const Layer&) = delete;
  Layer& operator=(const Layer&) = delete;
  Layer(Layer&&) = default;
  Layer& operator=(Layer&&) = default;
  virtual ~Layer() = default;

  // Stable type name written to model files: "conv2d", "max_pool2d", "dense", ...
  virtual const char* type() const = 0;
  // Version of this layer's record in model files.
  virtual uint32_t version() const { return 1; }
  // Human-readable one-liner: "Conv2D(32, 3x3, stride 1, valid, relu)".
  virtual std::string describe() const = 0;

  virtual Shape build(const Shape& in) = 0;
  virtual void forward(const Tensor& x, Tensor& y, Phase phase) = 0;
  virtual void backward(const Tensor& x, const Tensor& y, const Tensor& dy, Tensor* dx) = 0;
  // backward() that OVERWRITES *dx (never null here) instead of adding to it: its previous
  // contents are ignored. Parameter gradients are still added to. Sequential uses it for the
  // gradient buffers it owns, which saves clearing them first (on the 224x224 model that is a
  // pass over hundreds of MB per step). The default clears *dx and calls backward(); layers
  // override it where writing directly is cheaper.
  virtual void backward_into(const Tensor& x, const Tensor& y, const Tensor& dy, Tensor& dx);

  virtual std::vector<Param> params() { return {}; }
  // (Re)initialises parameters; called by Sequential::build with the model's seeded Rng.
  virtual void init_params(Rng& /*rng*/) {}
  // Non-trainable state that must be saved (BatchNorm running statistics).
  virtual std::vector<Tensor*> state() { return {}; }

  // Layer configuration (not parameters) for model files.
  virtual void save_config(ByteWriter& w) const = 0;
  virtual void load_config(ByteReader& r, uint32_t version) = 0;

  // Seed for layers that draw random numbers in forward (Dropout).
  virtual void set_seed(uint64_t /*seed*/) {}
  // That generator, for training checkpoints (nullptr: the layer draws none).
  virtual Rng* random_stream() { return nullptr; }

  // Shape given at construction through the `input_shape` option (rank 0 if none).
  const Shape& declared_input_shape() const { return declared_input_; }
  const Shape& input_shape() const { return in_shape_; }
  const Shape& output_shape() const { return out_shape_; }
  bool built() const { return built_; }
  std::string name;  // set by Sequential ("conv2d_1") unless the user set it

  // Total number of trainable scalars.
  int64_t num_params();

 protected:
  // Layers call this at the end of build() to record shapes.
  Shape finish_build(const Shape& in, const Shape& out) {
    in_shape_ = in;
    out_shape_ = out;
    built_ = true;
    return out;
  }
  Shape declared_input_;
  Shape in_shape_, out_shape_;
  bool built_ = false;
};

// Creates an empty layer of the given type, for loading model files; null if unknown.
std::unique_ptr<Layer> make_layer(const std::string& type);

}  // namespace imgsim::nn
