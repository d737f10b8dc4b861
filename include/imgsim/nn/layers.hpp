// Built-in layers. Each is implemented in src/nn/<layer>.cpp with forward and backward side by
// side and the math in comments; docs/layers.md derives every backward pass.
//
// Shapes are per sample, without the batch dimension: images are (C, H, W), vectors (D).
// Options use C++20 designated initialisers, so a model reads like its Keras original:
//
//   model.add(Conv2D(32, {3, 3}, {.activation = Activation::relu, .input_shape = {3, 224, 224}}));
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "imgsim/nn/layer.hpp"
#include "imgsim/runtime/cpu.hpp"

namespace imgsim::nn {

// Height and width of a kernel, stride or pad. Size2{3} is 3x3.
struct Size2 {
  int64_t h = 0, w = 0;
  Size2() = default;
  Size2(int64_t hw) : h(hw), w(hw) {}  // NOLINT(google-explicit-constructor): {3} reads well
  Size2(int64_t h_, int64_t w_) : h(h_), w(w_) {}
};

// 'valid': no padding. 'same': Keras/TensorFlow rule, output = ceil(in / stride), the extra pad
// (if odd) at the bottom/right. 'explicit': `pad` rows and columns of zeros on each side.
enum class Padding { valid, same, explicit_ };
Padding padding_from_string(const std::string& name);

struct Conv2DOptions {
  Size2 stride{1, 1};
  Padding padding = Padding::valid;
  Size2 pad{0, 0};  // used when padding == Padding::explicit_
  Activation activation = Activation::linear;
  float leaky_slope = 0.01f;  // for Activation::leaky_relu
  bool use_bias = true;
  Shape input_shape{};  // (C, H, W) for the first layer of a Sequential
};

class MaxPool2D;
class Sequential;

// y[n,k,p,q] = act( b[k] + sum_{c,r,s} w[k,c,r,s] * x[n, c, p*sh + r - pt, q*sw + s - pl] )
// weight (K, C, R, S), bias (K). Input (C, H, W), output (K, P, Q).
class Conv2D : public Layer {
 public:
  Conv2D() = default;  // for loading
  Conv2D(int64_t filters, Size2 kernel, Conv2DOptions opt = {});

  const char* type() const override { return "conv2d"; }
  std::string describe() const override;
  Shape build(const Shape& in) override;
  void forward(const Tensor& x, Tensor& y, Phase phase) override;
  void backward(const Tensor& x, const Tensor& y, const Tensor& dy, Tensor* dx) override;
  void backward_into(const Tensor& x, const Tensor& y, const Tensor& dy, Tensor& dx) override;
  // backward() in parts, for benchmarks: `weights` accumulates dW and db, a null dx skips dL/dx;
  // `overwrite` overwrites *dx instead of adding to it. backward(x, y, dy, dx) is
  // backward_parts(x, y, dy, dx, true, false).
  void backward_parts(const Tensor& x, const Tensor& y, const Tensor& dy, Tensor* dx, bool weights,
                      bool overwrite = false);
  std::vector<Param> params() override;
  void init_params(Rng& rng) override;
  void save_config(ByteWriter& w) const override;
  void load_config(ByteReader& r, uint32_t version) override;

  Tensor& weight() { return weight_; }
  Tensor& bias() { return bias_; }
  // Resolved padding after build: top, left, bottom, right.
  int64_t pad_top() const { return pt_; }
  int64_t pad_left() const { return pl_; }
  int64_t pad_bottom() const { return pb_; }
  int64_t pad_right() const { return pr_; }

 private:
  friend class Sequential;
  // A following MaxPool2D run in the same pass (Sequential does it for a first layer, or a 3x3
  // layer on the Winograd path, followed by 2x2 / stride 2 pooling; src/nn/conv2d.cpp): yp and
  // argmax are the pooling layer's output and argmax, bitwise as the two layers give them; the conv
  // output is never stored.
  bool fuses_pool2x2(const MaxPool2D& pool) const;
  void forward_pool2x2(const Tensor& x, Tensor& yp, int32_t* argmax, Phase phase);
  void backward_pool2x2(const Tensor& x, const Tensor& yp, const Tensor& dyp, const int32_t* argmax,
                        Tensor* dx, bool overwrite);
  int64_t filters_ = 0;
  Size2 kernel_;
  Conv2DOptions opt_;
  int64_t pt_ = 0, pl_ = 0, pb_ = 0, pr_ = 0;
  Tensor weight_, bias_, dweight_, dbias_;
  Tensor work_;                   // planned scratch (im2col columns, pre-activation gradient)
  std::vector<int64_t> offsets_;  // planned scratch of the pooling-fused backward (patch offsets)
  // Winograd forward: the transformed filters, and the weights and tile they were computed from
  // (recomputed only when the weights change, i.e. not between inference calls), and packed for
  // the GEMMs of one ISA's kernels.
  Tensor wino_u_, wino_w_, wino_up_;
  int64_t wino_tile_ = 0;
  int wino_packed_isa_ = -1;
  const float* wino_filters(int64_t tile, Isa isa);
};

struct MaxPool2DOptions {
  Size2 stride{0, 0};  // {0, 0}: equal to the pool size, as in Keras
  Padding padding = Padding::valid;
  Shape input_shape{};
};

// y[n,c,p,q] = max_{0<=i<R, 0<=j<S} x[n, c, p*sh + i, q*sw + j]; output size floor((H-R)/sh)+1
// ('valid'). Ties: the first maximum in row-major window order wins and receives the gradient.
class MaxPool2D : public Layer {
 public:
  MaxPool2D() = default;
  explicit MaxPool2D(Size2 pool, MaxPool2DOptions opt = {});
  const char* type() const override { return "max_pool2d"; }
  std::string describe() const override;
  Shape build(const Shape& in) override;
  void forward(const Tensor& x, Tensor& y, Phase phase) override;
  void backward(const Tensor& x, const Tensor& y, const Tensor& dy, Tensor* dx) override;
  void backward_into(const Tensor& x, const Tensor& y, const Tensor& dy, Tensor& dx) override;
  void save_config(ByteWriter& w) const override;
  void load_config(ByteReader& r, uint32_t version) override;

 private:
  friend class Conv2D;
  friend class Sequential;
  // argmax_ grown for a batch of n (as forward does), for a fused Conv2D to fill.
  int32_t* argmax_for(int64_t n);
  void scatter(const Tensor& x, const Tensor& y, const Tensor& dy, Tensor& dx, bool overwrite);
  Size2 pool_{2, 2};
  MaxPool2DOptions opt_;
  int64_t pt_ = 0, pl_ = 0;
  std::vector<int32_t> argmax_;  // flat input offset within the sample's channel plane
};

struct DenseOptions {
  Activation activation = Activation::linear;
  float leaky_slope = 0.01f;
  bool use_bias = true;
  Shape input_shape{};  // (D) for the first layer of a Sequential
};

// y[n,j] = act( b[j] + sum_i x[n,i] * w[j,i] ), weight (units, D) as in PyTorch, bias (units).
class Dense : public Layer {
 public:
  Dense() = default;
  explicit Dense(int64_t units, DenseOptions opt = {});
  const char* type() const override { return "dense"; }
  std::string describe() const override;
  Shape build(const Shape& in) override;
  void forward(const Tensor& x, Tensor& y, Phase phase) override;
  void backward(const Tensor& x, const Tensor& y, const Tensor& dy, Tensor* dx) override;
  void backward_into(const Tensor& x, const Tensor& y, const Tensor& dy, Tensor& dx) override;
  std::vector<Param> params() override;
  void init_params(Rng& rng) override;
  void save_config(ByteWriter& w) const override;
  void load_config(ByteReader& r, uint32_t version) override;

  Tensor& weight() { return weight_; }
  Tensor& bias() { return bias_; }

 private:
  void backward_impl(const Tensor& x, const Tensor& y, const Tensor& dy, Tensor* dx, float dx_beta);
  int64_t units_ = 0;
  DenseOptions opt_;
  Tensor weight_, bias_, dweight_, dbias_;
  Tensor dz_;  // planned: gradient before the activation
};

struct CosineDenseOptions {
  float scale = 16.0f;  // s: the logits are s cos, in [-s, s]
  float eps = 1e-12f;   // lower bound on the norms, as torch.nn.functional.normalize
  Shape input_shape{};  // (D) for the first layer of a Sequential
};

// y[n,j] = scale * cos(x_n, w_j) = scale * <x_n, w_j> / (max(||x_n||, eps) max(||w_j||, eps)),
// weight (units, D), no bias: the normalised-softmax classifier head of NormFace, and of CosFace
// with SoftmaxCrossEntropy's target margin (margin = scale * cosine margin). Each class is a unit
// vector, a proxy, that the embeddings of the class are pulled towards (docs/metric-learning.md).
class CosineDense : public Layer {
 public:
  CosineDense() = default;
  explicit CosineDense(int64_t units, CosineDenseOptions opt = {});
  const char* type() const override { return "cosine_dense"; }
  std::string describe() const override;
  Shape build(const Shape& in) override;
  void forward(const Tensor& x, Tensor& y, Phase phase) override;
  void backward(const Tensor& x, const Tensor& y, const Tensor& dy, Tensor* dx) override;
  std::vector<Param> params() override;
  void init_params(Rng& rng) override;
  void save_config(ByteWriter& w) const override;
  void load_config(ByteReader& r, uint32_t version) override;

  Tensor& weight() { return weight_; }
  float scale() const { return opt_.scale; }

 private:
  void normalise_weight();
  int64_t units_ = 0;
  CosineDenseOptions opt_;
  Tensor weight_, dweight_;
  Tensor what_, gw_;                  // planned (U, D): W / ||W_j||, dL/dWh
  Tensor g_, xdot_;                   // planned (N, U) and (N)
  std::vector<double> wnorm_, wdot_;  // planned (U): ||W_j|| (unclamped), sum_n g c
};

// (C, H, W) -> (C*H*W). Memory is unchanged (NCHW order).
class Flatten : public Layer {
 public:
  Flatten() = default;
  struct Options {
    Shape input_shape{};
  };
  explicit Flatten(Options opt);
  const char* type() const override { return "flatten"; }
  std::string describe() const override;
  Shape build(const Shape& in) override;
  void forward(const Tensor& x, Tensor& y, Phase phase) override;
  void backward(const Tensor& x, const Tensor& y, const Tensor& dy, Tensor* dx) override;
  void backward_into(const Tensor& x, const Tensor& y, const Tensor& dy, Tensor& dx) override;
  void save_config(ByteWriter& w) const override;
  void load_config(ByteReader& r, uint32_t version) override;
};

// Global average pooling: (C, H, W) -> (C), each channel's mean over its H x W plane
// (torch.nn.AdaptiveAvgPool2d(1) followed by flatten; Keras GlobalAveragePooling2D).
class GlobalAvgPool2D : public Layer {
 public:
  GlobalAvgPool2D() = default;
  struct Options {
    Shape input_shape{};
  };
  explicit GlobalAvgPool2D(Options opt);
  const char* type() const override { return "global_avg_pool2d"; }
  std::string describe() const override;
  Shape build(const Shape& in) override;
  void forward(const Tensor& x, Tensor& y, Phase phase) override;
  void backward(const Tensor& x, const Tensor& y, const Tensor& dy, Tensor* dx) override;
  void backward_into(const Tensor& x, const Tensor& y, const Tensor& dy, Tensor& dx) override;
  void save_config(ByteWriter& w) const override;
  void load_config(ByteReader& r, uint32_t version) override;
};

// Element-wise activations as layers (Conv2D and Dense can also fuse them).
class ActivationLayer : public Layer {
 public:
  explicit ActivationLayer(Activation a, float leaky_slope = 0.01f)
      : act_(a), slope_(leaky_slope) {}
  const char* type() const override;
  std::string describe() const override;
  Shape build(const Shape& in) override;
  void forward(const Tensor& x, Tensor& y, Phase phase) override;
  void backward(const Tensor& x, const Tensor& y, const Tensor& dy, Tensor* dx) override;
  void backward_into(const Tensor& x, const Tensor& y, const Tensor& dy, Tensor& dx) override;
  void save_config(ByteWriter& w) const override;
  void load_config(ByteReader& r, uint32_t version) override;
  Activation activation() const { return act_; }

 private:
  Activation act_;
  float slope_;
};

struct ReLU : ActivationLayer {
  ReLU() : ActivationLayer(Activation::relu) {}
};
struct LeakyReLU : ActivationLayer {
  explicit LeakyReLU(float slope = 0.01f) : ActivationLayer(Activation::leaky_relu, slope) {}
};
struct Tanh : ActivationLayer {
  Tanh() : ActivationLayer(Activation::tanh) {}
};
struct Sigmoid : ActivationLayer {
  Sigmoid() : ActivationLayer(Activation::sigmoid) {}
};

// Softmax over the features of (D) samples: y_i = exp(x_i - m) / sum_j exp(x_j - m).
// For classification prefer a linear last layer with SoftmaxCrossEntropy (fused, stable).
class Softmax : public Layer {
 public:
  Softmax() = default;
  const char* type() const override { return "softmax"; }
  std::string describe() const override { return "Softmax()"; }
  Shape build(const Shape& in) override;
  void forward(const Tensor& x, Tensor& y, Phase phase) override;
  void backward(const Tensor& x, const Tensor& y, const Tensor& dy, Tensor* dx) override;
  void save_config(ByteWriter& w) const override;
  void load_config(ByteReader& r, uint32_t version) override;
};

// Inverted dropout: in training y = x * m / (1 - rate), m ~ Bernoulli(1 - rate); identity in
// inference. The mask is drawn from the layer's seeded Rng.
class Dropout : public Layer {
 public:
  Dropout() = default;
  explicit Dropout(float rate);
  const char* type() const override { return "dropout"; }
  std::string describe() const override;
  Shape build(const Shape& in) override;
  void forward(const Tensor& x, Tensor& y, Phase phase) override;
  void backward(const Tensor& x, const Tensor& y, const Tensor& dy, Tensor* dx) override;
  void save_config(ByteWriter& w) const override;
  void load_config(ByteReader& r, uint32_t version) override;
  void set_seed(uint64_t seed) override { rng_ = Rng(seed); }
  Rng* random_stream() override { return &rng_; }

 private:
  float rate_ = 0.5f;
  Rng rng_;
  std::vector<float> mask_;  // planned
  bool last_train_ = false;
};

struct BatchNormOptions {
  float momentum = 0.1f;  // running = (1 - momentum) * running + momentum * batch (PyTorch)
  float eps = 1e-5f;
  Shape input_shape{};
};

// Batch normalisation over N (and H, W for (C, H, W) inputs) per channel/feature.
// train: y = gamma * (x - mean_B) / sqrt(var_B + eps) + beta, running stats updated with the
// unbiased batch variance (as PyTorch). infer: the running statistics are used.
class BatchNorm : public Layer {
 public:
  BatchNorm() = default;
  explicit BatchNorm(BatchNormOptions opt);
  const char* type() const override { return "batch_norm"; }
  std::string describe() const override;
  Shape build(const Shape& in) override;
  void forward(const Tensor& x, Tensor& y, Phase phase) override;
  void backward(const Tensor& x, const Tensor& y, const Tensor& dy, Tensor* dx) override;
  std::vector<Param> params() override;
  std::vector<Tensor*> state() override;
  void init_params(Rng& rng) override;
  void save_config(ByteWriter& w) const override;
  void load_config(ByteReader& r, uint32_t version) override;

  Tensor& gamma() { return gamma_; }
  Tensor& beta() { return beta_; }
  Tensor& running_mean() { return running_mean_; }
  Tensor& running_var() { return running_var_; }

 private:
  BatchNormOptions opt_;
  Tensor gamma_, beta_, dgamma_, dbeta_, running_mean_, running_var_;
  std::vector<float> mean_, invstd_;  // per channel, from the last training forward
  bool last_train_ = false;
};

struct L2NormalizeOptions {
  float eps = 1e-12f;  // lower bound on the norm, as torch.nn.functional.normalize
  Shape input_shape{};
};

// Per-sample L2 normalisation over the features of (D) samples: y = x / max(||x||_2, eps), as
// torch.nn.functional.normalize(x, dim=1). Makes embeddings unit vectors for metric losses and
// cosine similarity (docs/metric-learning.md).
class L2Normalize : public Layer {
 public:
  L2Normalize() = default;
  explicit L2Normalize(L2NormalizeOptions opt);
  const char* type() const override { return "l2_normalize"; }
  std::string describe() const override;
  Shape build(const Shape& in) override;
  void forward(const Tensor& x, Tensor& y, Phase phase) override;
  void backward(const Tensor& x, const Tensor& y, const Tensor& dy, Tensor* dx) override;
  void save_config(ByteWriter& w) const override;
  void load_config(ByteReader& r, uint32_t version) override;
  float eps() const { return opt_.eps; }

 private:
  L2NormalizeOptions opt_;
};

}  // namespace imgsim::nn
