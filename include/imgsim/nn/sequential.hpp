// Sequential: a stack of layers trained like Keras's Sequential.
//
//   Sequential model;
//   model.add(Conv2D(32, {3, 3}, {.activation = Activation::relu, .input_shape = {3, 224, 224}}));
//   model.add(MaxPool2D({2, 2}));
//   ...
//   model.compile(Adam(), MeanSquaredError());
//   model.fit(x_train, y_train, {.epochs = 10, .batch_size = 32});
//   auto result = model.evaluate(x_test, y_test);
//
// build() infers every shape (a mismatch throws ShapeError naming the layer and both shapes)
// and plans the activation and gradient buffers; they grow only when a larger batch arrives,
// so training steps do not allocate.
#pragma once

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <map>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "imgsim/data/dataset.hpp"
#include "imgsim/nn/layer.hpp"
#include "imgsim/nn/loss.hpp"
#include "imgsim/nn/optimizer.hpp"

namespace imgsim::nn {

struct BatchLogs {
  int epoch = 0;                          // 0-based
  int64_t step = 0;                       // 0-based within the epoch
  int64_t steps = 0;                      // steps in this epoch
  double loss = 0.0;                      // running mean over the epoch so far
  std::map<std::string, double> metrics;  // running means
};

struct EpochLogs {
  int epoch = 0;
  double loss = 0.0;
  std::map<std::string, double> metrics;
  bool has_validation = false;
  double val_loss = 0.0;
  std::map<std::string, double> val_metrics;
  double seconds = 0.0;
  double images_per_s = 0.0;
  double learning_rate = 0.0;
};

struct History {
  std::vector<EpochLogs> epochs;
};

class Sequential;

// Override what you need; set model.stop_training(true) to stop after the current batch.
class Callback {
 public:
  virtual ~Callback() = default;
  virtual void on_train_begin(Sequential& /*model*/) {}
  virtual void on_epoch_begin(Sequential& /*model*/, int /*epoch*/) {}
  virtual void on_batch_end(Sequential& /*model*/, const BatchLogs& /*logs*/) {}
  virtual void on_epoch_end(Sequential& /*model*/, const EpochLogs& /*logs*/) {}
  virtual void on_train_end(Sequential& /*model*/, const History& /*history*/) {}
};

// 0: silent; 1: live progress bar on a terminal, one line per epoch otherwise; 2: one line per
// epoch. -1 (default): 1 if the output stream is a terminal, else 2.
struct FitOptions {
  int epochs = 1;
  int64_t batch_size = 32;
  bool shuffle = true;
  uint64_t seed = 0;  // shuffling and dropout
  data::Dataset* validation = nullptr;
  const LrSchedule* schedule = nullptr;  // learning rate = schedule->lr(base, epoch + step/steps)
  std::vector<Callback*> callbacks{};
  int verbose = -1;
  std::ostream* out = nullptr;  // default std::cout
};

struct EvalResult {
  double loss = 0.0;
  std::map<std::string, double> metrics;
};

class Sequential {
 public:
  Sequential();
  ~Sequential();
  Sequential(Sequential&&) noexcept;
  Sequential& operator=(Sequential&&) noexcept;

  // Adds a layer (moved in) and returns a reference to the stored one.
  template <class L>
  requires std::is_base_of_v<Layer, std::remove_cvref_t<L>> std::remove_cvref_t<L>
  &add(L&& layer) {
    auto p = std::make_unique<std::remove_cvref_t<L>>(std::forward<L>(layer));
    auto& ref = *p;
    add(std::unique_ptr<Layer>(std::move(p)));
    return ref;
  }
  Layer& add(std::unique_ptr<Layer> layer);

  // Infers all shapes from `input` (one sample, e.g. (3, 224, 224)) and initialises parameters
  // with `seed`. Called by compile/fit if the first layer declared an input_shape.
  void build(const Shape& input, uint64_t seed = 42);
  bool built() const { return built_; }

  // Metrics: "accuracy" (argmax for multi-class, threshold for binary, sign for a single tanh
  // output), "mae".
  template <class O, class L>
  requires std::is_base_of_v<Optimizer, std::remove_cvref_t<O>> &&
      std::is_base_of_v<Loss, std::remove_cvref_t<L>>
  void compile(O&& optimizer, L&& loss, std::vector<std::string> metrics = {}) {
    compile(std::unique_ptr<Optimizer>(new std::remove_cvref_t<O>(std::forward<O>(optimizer))),
            std::unique_ptr<Loss>(new std::remove_cvref_t<L>(std::forward<L>(loss))),
            std::move(metrics));
  }
  void compile(std::unique_ptr<Optimizer> optimizer, std::unique_ptr<Loss> loss,
               std::vector<std::string> metrics = {});
  // Keras spelling: compile("adam", "mean_squared_error", {"accuracy"}).
  void compile(const std::string& optimizer, const std::string& loss,
               std::vector<std::string> metrics = {});

  History fit(const Tensor& x, const Tensor& y, const FitOptions& opt = {});
  History fit(data::Dataset& train, const FitOptions& opt = {});
  EvalResult evaluate(const Tensor& x, const Tensor& y, int64_t batch_size = 32);
  EvalResult evaluate(data::Dataset& data, int64_t batch_size = 32);
  // Inference (Phase::infer), batch by batch; returns (N, output...).
  Tensor predict(const Tensor& x, int64_t batch_size = 32);

  // One training step on a batch: forward, loss, backward, optimizer update. Returns the loss.
  double train_step(const Tensor& x, const Tensor& y);
  // Forward in the given phase; the returned reference stays valid until the next call.
  const Tensor& forward(const Tensor& x, Phase phase);
  // Backward from dL/d(output) after forward(x, Phase::train); accumulates parameter grads.
  // If dx is not null, dL/dx is added to it.
  void backward(const Tensor& dout, Tensor* dx = nullptr);
  void zero_grad();

  // Removes the last layer (Keras' Sequential.pop), e.g. to read a trained model's features
  // before its head. The other layers keep their parameters and state, and a built model stays
  // built. StateError if the model has no layers or one, or is compiled (the optimizer holds
  // the layer's parameters).
  void pop();
  std::size_t size() const;
  Layer& layer(std::size_t i);
  const Layer& layer(std::size_t i) const;
  std::vector<Param> params();
  int64_t num_params();
  Shape input_shape() const;
  Shape output_shape() const;
  Optimizer* optimizer();
  Loss* loss();
  void stop_training(bool stop = true) { stop_ = stop; }

  // Keras-style table of layers, output shapes and parameter counts.
  void summary(std::ostream& os) const;

  // Architecture + weights (+ BatchNorm state) to a versioned, checksummed file written
  // atomically (docs/file-format.md). load() replaces this model only if the whole file is valid.
  void save(const std::string& path) const;
  void load(const std::string& path);
  static Sequential from_file(const std::string& path);
  // Training checkpoints (docs/file-format.md, "Training checkpoints"): every parameter, the
  // layers' state and the optimizer's state (step count, moments), plus `extra`, bytes of the
  // caller's own (its data order, random generators, progress), in a checksummed file written
  // atomically. load_checkpoint restores them into this built and compiled model, which must
  // have the same layers (types, names, shapes) and optimizer type, so that the next
  // train_step computes the same bits as in the run that saved it, and returns `extra`. On
  // any error (IoError, FormatError) the parameters and layer state are unchanged and the
  // optimizer's state is forgotten. StateError if the model is not built and compiled. The
  // generators of layers that draw random numbers (Dropout) are saved and restored too.
  void save_checkpoint(const std::string& path, const std::vector<uint8_t>& extra) const;
  std::vector<uint8_t> load_checkpoint(const std::string& path);
  // Free-form key/value strings saved with the model (e.g. a calibrated threshold).
  std::map<std::string, std::string>& metadata();
  const std::map<std::string, std::string>& metadata() const;
  // Peak resident set size of this process so far, in MiB (from /proc/self/status).
  static double peak_rss_mb();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  bool built_ = false;
  bool stop_ = false;
  void ensure_built();
  void add_metrics_after_step(std::map<std::string, double>& sums);
};

}  // namespace imgsim::nn
