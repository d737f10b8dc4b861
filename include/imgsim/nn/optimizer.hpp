// Optimizers, learning-rate schedules and gradient clipping. docs/optimizers.md gives each
// update rule; they follow PyTorch's definitions so that parity tests can compare step by step.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "imgsim/nn/layer.hpp"

namespace imgsim::nn {

struct ClipOptions {
  float max_norm = 0.0f;   // > 0: scale all grads so their global L2 norm is at most this
  float max_value = 0.0f;  // > 0: clamp each grad element to [-max_value, max_value]
};

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  virtual const char* type() const = 0;
  // Applies clipping, then one update to every parameter. State (momentum, moments) is kept
  // per parameter index and allocated on the first step; later calls must pass the same list.
  void step(const std::vector<Param>& params);
  double learning_rate() const { return lr_; }
  void set_learning_rate(double lr) { lr_ = lr; }
  ClipOptions clip;
  // Number of step() calls so far.
  int64_t steps() const { return t_; }
  // Forgets all per-parameter state (momentum, moments, step count): the next step() calls
  // init_state() again (it does whenever n_params_ == 0). Used after a model is reloaded.
  void reset() {
    t_ = 0;
    n_params_ = 0;
  }
  // Global L2 norm of the gradients before clipping, from the last step.
  double last_grad_norm() const { return last_norm_; }

  // Training checkpoints (Sequential::save_checkpoint): the type, the step count and the
  // per-parameter state tensors (momentum, moments). load_state reads what save_state wrote for
  // the same optimizer type and parameter list, so that the next step() computes the same bits
  // as it would have in the run that saved it; FormatError (via `r`) if the record does not
  // fit, and the state is then forgotten as by reset(). The learning rate and options are not
  // part of it (they come from the program that resumes).
  void save_state(ByteWriter& w) const;
  void load_state(ByteReader& r, const std::vector<Param>& params);

 protected:
  explicit Optimizer(double lr) : lr_(lr) {}
  virtual void init_state(const std::vector<Param>& params) = 0;
  virtual void update(const std::vector<Param>& params) = 0;
  // The tensors init_state() made, in a fixed order (none for plain SGD).
  virtual std::vector<const Tensor*> state_tensors() const = 0;
  std::vector<Tensor*> mutable_state_tensors();
  double lr_;
  int64_t t_ = 0;
  double last_norm_ = 0.0;
  std::size_t n_params_ = 0;
  std::vector<Shape> shapes_;  // parameter shapes seen on the first step
};

struct SGDOptions {
  double lr = 0.01;
  double momentum = 0.0;
  bool nesterov = false;
  double weight_decay = 0.0;  // L2 added to the gradient (torch.optim.SGD)
};

class SGD : public Optimizer {
 public:
  explicit SGD(SGDOptions opt = {});
  const char* type() const override { return "sgd"; }

 private:
  void init_state(const std::vector<Param>& params) override;
  void update(const std::vector<Param>& params) override;
  std::vector<const Tensor*> state_tensors() const override;
  SGDOptions opt_;
  std::vector<Tensor> velocity_;
};

struct AdamOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;  // Adam: L2 added to the gradient; AdamW: decoupled decay
};

class Adam : public Optimizer {
 public:
  explicit Adam(AdamOptions opt = {});
  const char* type() const override { return "adam"; }

 protected:
  void init_state(const std::vector<Param>& params) override;
  void update(const std::vector<Param>& params) override;
  std::vector<const Tensor*> state_tensors() const override;
  AdamOptions opt_;
  bool decoupled_ = false;
  std::vector<Tensor> m_, v_;
};

class AdamW : public Adam {
 public:
  // torch.optim.AdamW default weight decay is 0.01.
  explicit AdamW(AdamOptions opt = {
                     .lr = 1e-3, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.01});
  const char* type() const override { return "adamw"; }
};

// "sgd", "adam", "adamw" with default options; throws InvalidArgument.
std::unique_ptr<Optimizer> make_optimizer(const std::string& name);

// Learning rate as a function of training progress, in epochs (fractional within an epoch).
class LrSchedule {
 public:
  virtual ~LrSchedule() = default;
  virtual double lr(double base_lr, double epoch) const = 0;
};

// base * gamma ^ floor(epoch / step_epochs)  (torch StepLR, stepped per epoch)
class StepLr : public LrSchedule {
 public:
  StepLr(double step_epochs, double gamma) : step_(step_epochs), gamma_(gamma) {}
  double lr(double base_lr, double epoch) const override;

 private:
  double step_, gamma_;
};

// Linear warm-up for `warmup_epochs`, then min + (base - min) * (1 + cos(pi * t / T)) / 2 over
// the remaining epochs up to `total_epochs` (torch CosineAnnealingLR, evaluated per step).
class CosineLr : public LrSchedule {
 public:
  CosineLr(double total_epochs, double min_lr = 0.0, double warmup_epochs = 0.0)
      : total_(total_epochs), min_(min_lr), warmup_(warmup_epochs) {}
  double lr(double base_lr, double epoch) const override;

 private:
  double total_, min_, warmup_;
};

}  // namespace imgsim::nn
