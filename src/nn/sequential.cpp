// Sequential model: shape inference, planned buffers, training loop, evaluation, prediction.
//
// Buffers. For a batch of N, acts[i] holds layer i's output (N, out_i...); during backward the
// gradients alternate between two buffers (each layer reads dy from one and writes dx into the
// other), each as large as the largest gradient it takes, instead of one per layer. All are
// resized per batch with Tensor::resize, which keeps the storage when it is large enough, so
// after the first (largest) batch no step allocates. Inference uses two ping-pong buffers instead
// of one per layer, so predict() keeps no training buffers.
//
// Fusion. A Conv2D (a first layer, or a 3x3 layer on the Winograd path) followed by 2x2 / stride
// 2 MaxPool2D runs as one layer (Conv2D::forward_pool2x2, src/nn/conv2d.cpp), in training and in
// inference: the convolution's output, the largest activations of an image model, is then never
// stored (acts[i] stays empty).
// The results are the two layers' (bitwise in forward; backward sums in another order).
#include "imgsim/nn/sequential.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <numeric>
#include <sstream>

#include "imgsim/error.hpp"
#include "imgsim/nn/layers.hpp"
#include "nn/conv_algo.hpp"
#include "nn/progress.hpp"
#include "nn/sequential_impl.hpp"

namespace imgsim::nn {

Sequential::Sequential() : impl_(std::make_unique<Impl>()) {}
Sequential::~Sequential() = default;
Sequential::Sequential(Sequential&&) noexcept = default;
Sequential& Sequential::operator=(Sequential&&) noexcept = default;

Layer& Sequential::add(std::unique_ptr<Layer> layer) {
  if (!layer) throw InvalidArgument("Sequential::add: null layer");
  if (built_)
    throw StateError(
        "Sequential::add: the model is already built; add layers before build/compile/fit");
  if (layer->name.empty()) {
    int count = 1;
    for (const auto& l : impl_->layers)
      if (std::string(l->type()) == layer->type()) ++count;
    layer->name = std::string(layer->type()) + "_" + std::to_string(count);
  }
  impl_->layers.push_back(std::move(layer));
  return *impl_->layers.back();
}

void Sequential::pop() {
  if (impl_->layers.size() < 2)
    throw StateError("Sequential::pop: the model has " + std::to_string(impl_->layers.size()) +
                     " layer(s); pop needs at least 2");
  if (impl_->opt || impl_->loss)
    throw StateError("Sequential::pop: the model is compiled; pop layers before compile");
  impl_->layers.pop_back();
  impl_->acts.resize(built_ ? impl_->layers.size() : 0);
  impl_->param_cache.clear();
  impl_->have_train_forward = false;
  impl_->last_x = nullptr;
}

void Sequential::build(const Shape& input, uint64_t seed) {
  if (impl_->layers.empty()) throw StateError("Sequential::build: the model has no layers");
  Shape s = input;
  for (std::size_t i = 0; i < impl_->layers.size(); ++i) {
    Layer& l = *impl_->layers[i];
    const Shape& declared = l.declared_input_shape();
    if (declared.rank() > 0 && declared != s)
      throw ShapeError("layer " + l.name + " (" + l.describe() + ") declares input_shape " +
                       declared.str() + " but receives " + s.str());
    try {
      s = l.build(s);
    } catch (const ShapeError& e) {
      std::string prev =
          i == 0 ? std::string("the model input") : "layer " + impl_->layers[i - 1]->name;
      throw ShapeError("layer " + l.name + " (" + l.describe() + ") cannot take the output " +
                       s.str() + " of " + prev + ": " + e.what());
    }
  }
  impl_->input = input;
  impl_->seed = seed;
  Rng rng(seed);
  for (std::size_t i = 0; i < impl_->layers.size(); ++i) {
    impl_->layers[i]->init_params(rng);
    impl_->layers[i]->set_seed(seed * 1000003ULL + i);
  }
  impl_->acts.resize(impl_->layers.size());
  impl_->grads.resize(2);
  built_ = true;
}

void Sequential::ensure_built() {
  if (built_) return;
  if (impl_->layers.empty()) throw StateError("Sequential: the model has no layers");
  const Shape& declared = impl_->layers.front()->declared_input_shape();
  if (declared.rank() == 0)
    throw StateError(
        "Sequential: input shape unknown; give the first layer an input_shape "
        "option or call build(shape)");
  build(declared);
}

void Sequential::compile(std::unique_ptr<Optimizer> optimizer, std::unique_ptr<Loss> loss,
                         std::vector<std::string> metrics) {
  if (!optimizer || !loss) throw InvalidArgument("Sequential::compile: null optimizer or loss");
  for (const auto& m : metrics)
    if (m != "accuracy" && m != "mae")
      throw InvalidArgument("Sequential::compile: unknown metric '" + m +
                            "' (expected accuracy or mae)");
  if (dynamic_cast<SoftmaxCrossEntropy*>(loss.get()) && !impl_->layers.empty() &&
      std::string(impl_->layers.back()->type()) == "softmax")
    throw InvalidArgument(
        "Sequential::compile: the cross-entropy loss takes logits and applies softmax itself; "
        "remove the final Softmax layer (keep it only for predict-time probabilities)");
  impl_->opt = std::move(optimizer);
  impl_->loss = std::move(loss);
  impl_->metrics = std::move(metrics);
  // As Keras does when the first layer declares its input shape: build now, so summary() and
  // parameter counts are available before fit.
  if (!built_ && !impl_->layers.empty() && impl_->layers.front()->declared_input_shape().rank() > 0)
    build(impl_->layers.front()->declared_input_shape());
}

void Sequential::compile(const std::string& optimizer, const std::string& loss,
                         std::vector<std::string> metrics) {
  compile(make_optimizer(optimizer), make_loss(loss), std::move(metrics));
}

std::size_t Sequential::size() const {
  return impl_->layers.size();
}
Layer& Sequential::layer(std::size_t i) {
  if (i >= impl_->layers.size()) throw InvalidArgument("Sequential::layer: index out of range");
  return *impl_->layers[i];
}
const Layer& Sequential::layer(std::size_t i) const {
  if (i >= impl_->layers.size()) throw InvalidArgument("Sequential::layer: index out of range");
  return *impl_->layers[i];
}
std::vector<Param> Sequential::params() {
  std::vector<Param> all;
  for (auto& l : impl_->layers)
    for (Param& p : l->params()) {
      p.name = l->name + "." + p.name;
      all.push_back(p);
    }
  return all;
}
int64_t Sequential::num_params() {
  int64_t n = 0;
  for (auto& l : impl_->layers) n += l->num_params();
  return n;
}
Shape Sequential::input_shape() const {
  return impl_->input;
}
Shape Sequential::output_shape() const {
  if (!built_) throw StateError("Sequential::output_shape: the model is not built");
  return impl_->layers.back()->output_shape();
}
Optimizer* Sequential::optimizer() {
  return impl_->opt.get();
}
Loss* Sequential::loss() {
  return impl_->loss.get();
}
std::map<std::string, std::string>& Sequential::metadata() {
  return impl_->metadata;
}
const std::map<std::string, std::string>& Sequential::metadata() const {
  return impl_->metadata;
}

void Sequential::Impl::check_input(const Tensor& x) const {
  if (x.rank() < 1 || x.shape().without_batch() != input)
    throw ShapeError("Sequential: input " + x.shape().str() + " does not match the model input " +
                     input.with_batch(x.rank() >= 1 ? x.dim(0) : 0).str());
}

const Tensor& Sequential::forward(const Tensor& x, Phase phase) {
  ensure_built();
  impl_->check_input(x);
  const int64_t n = x.dim(0);
  auto& L = impl_->layers;
  // The convolution of layers i, i+1 when they run as one: a Conv2D followed by 2x2 / stride 2
  // max pooling (Conv2D::fuses_pool2x2), fusion enabled (nn/conv_algo.hpp).
  const bool fuse = detail::fusion_enabled();  // read on every call, so a bad IMGSIM_FUSE fails
  auto fused_conv = [&L, fuse](std::size_t i) -> Conv2D* {
    if (!fuse || i + 1 >= L.size()) return nullptr;
    auto* c = dynamic_cast<Conv2D*>(L[i].get());
    auto* p = dynamic_cast<MaxPool2D*>(L[i + 1].get());
    return c && p && c->fuses_pool2x2(*p) ? c : nullptr;
  };
  if (phase == Phase::train) {
    impl_->fused.assign(L.size(), 0);
    const Tensor* in = &x;
    for (std::size_t i = 0; i < L.size(); ++i) {
      if (Conv2D* conv = fused_conv(i)) {
        // Layers i and i+1 at once; acts[i] (the convolution's output) is never needed.
        auto& pool = static_cast<MaxPool2D&>(*L[i + 1]);
        impl_->fused[i] = 1;
        impl_->acts[i + 1].resize(pool.output_shape().with_batch(n));
        conv->forward_pool2x2(*in, impl_->acts[i + 1], pool.argmax_for(n), phase);
        in = &impl_->acts[++i];
        continue;
      }
      impl_->acts[i].resize(L[i]->output_shape().with_batch(n));
      L[i]->forward(*in, impl_->acts[i], phase);
      in = &impl_->acts[i];
    }
    impl_->last_x = &x;
    impl_->have_train_forward = true;
    return impl_->acts.back();
  }
  // Inference: ping-pong between two buffers, each layer writing the one it does not read.
  const Tensor* in = &x;
  for (std::size_t i = 0; i < L.size(); ++i) {
    Tensor& out = in == &impl_->pingpong[0] ? impl_->pingpong[1] : impl_->pingpong[0];
    if (Conv2D* conv = fused_conv(i)) {
      auto& pool = static_cast<MaxPool2D&>(*L[++i]);
      out.resize(pool.output_shape().with_batch(n));
      conv->forward_pool2x2(*in, out, pool.argmax_for(n), phase);
    } else {
      out.resize(L[i]->output_shape().with_batch(n));
      L[i]->forward(*in, out, phase);
    }
    in = &out;
  }
  impl_->have_train_forward = false;
  return *in;
}

void Sequential::backward(const Tensor& dout, Tensor* dx) {
  if (!impl_->have_train_forward)
    throw StateError("Sequential::backward: call forward(x, Phase::train) first");
  auto& L = impl_->layers;
  if (dout.shape() != impl_->acts.back().shape())
    throw ShapeError("Sequential::backward: gradient " + dout.shape().str() +
                     " does not match the output " + impl_->acts.back().shape().str());
  // Each layer reads its dy from one of two buffers and writes its dx into the other (no gradient
  // is needed after the layer below has used it), so two buffers serve the whole model. They are
  // overwritten (backward_into), never cleared. A fused pair (i, i+1) is one step from
  // dL/d acts[i+1] to dL/d acts[i-1].
  const Tensor* dy = &dout;
  for (std::size_t i = L.size(); i-- > 0;) {
    const bool fused = i > 0 && impl_->fused[i - 1];
    const std::size_t first = fused ? i - 1 : i;
    const Tensor& in = first == 0 ? *impl_->last_x : impl_->acts[first - 1];
    Tensor* din = dx;  // the first layer adds into the caller's dx, if any
    if (first > 0) {
      din = dy == &impl_->grads[0] ? &impl_->grads[1] : &impl_->grads[0];
      din->resize(in.shape());
    }
    if (fused) {
      auto& conv = static_cast<Conv2D&>(*L[first]);
      auto& pool = static_cast<MaxPool2D&>(*L[i]);
      conv.backward_pool2x2(in, impl_->acts[i], *dy, pool.argmax_.data(), din, first > 0);
    } else if (first > 0) {
      L[i]->backward_into(in, impl_->acts[i], *dy, *din);
    } else {
      L[i]->backward(in, impl_->acts[i], *dy, dx);
    }
    dy = din;
    i = first;
  }
}

void Sequential::zero_grad() {
  if (impl_->param_cache.empty()) impl_->param_cache = params();
  for (Param& p : impl_->param_cache) p.grad->zero();
}

namespace {

// Running sums for metrics over a pass.
struct MetricSums {
  double loss = 0.0;
  int64_t n = 0;
  std::map<std::string, double> sums;
  std::map<std::string, double> means(double* mean_loss) const {
    std::map<std::string, double> m;
    for (const auto& [k, v] : sums) m[k] = n ? v / static_cast<double>(n) : 0.0;
    if (mean_loss) *mean_loss = n ? loss / static_cast<double>(n) : 0.0;
    return m;
  }
};

}  // namespace

// Adds, for each metric, the per-sample values summed over the batch.
void Sequential::Impl::add_metrics(const Tensor& pred, const Tensor& target,
                                   std::map<std::string, double>& sums) const {
  const int64_t n = pred.dim(0);
  const int64_t k = pred.shape().sample_numel();
  const int64_t tk = target.shape().sample_numel();
  for (const std::string& m : metrics) {
    double s = 0.0;
    if (m == "accuracy") {
      for (int64_t i = 0; i < n; ++i) {
        const float* p = pred.data() + i * k;
        const float* t = target.data() + i * tk;
        bool right;
        if (k > 1) {
          int64_t arg = std::max_element(p, p + k) - p;
          int64_t cls = tk == 1 ? static_cast<int64_t>(t[0]) : std::max_element(t, t + tk) - t;
          right = arg == cls;
        } else {
          // Binary: BCE on logits thresholds at 0, on probabilities at 0.5; a single tanh or
          // linear output regressed on +1/-1 targets compares signs.
          const auto* bce = dynamic_cast<const BinaryCrossEntropy*>(loss.get());
          if (bce) {
            float thr = bce->from_logits() ? 0.0f : 0.5f;
            right = (p[0] > thr) == (t[0] > 0.5f);
          } else {
            right = (p[0] > 0.0f) == (t[0] > 0.0f);
          }
        }
        s += right ? 1.0 : 0.0;
      }
    } else if (m == "mae") {
      for (int64_t i = 0; i < n; ++i) {
        double a = 0.0;
        for (int64_t j = 0; j < k; ++j)
          a += std::abs(static_cast<double>(pred[i * k + j]) - target[i * tk + (tk == k ? j : 0)]);
        s += a / static_cast<double>(k);
      }
    }
    sums[m] += s;
  }
}

double Sequential::train_step(const Tensor& x, const Tensor& y) {
  if (!impl_->opt || !impl_->loss) throw StateError("Sequential: call compile() before training");
  ensure_built();
  const Tensor& out = forward(x, Phase::train);
  impl_->loss->check(out.shape(), y.shape());
  Tensor& dout = impl_->dout;
  dout.resize(out.shape());
  dout.zero();
  zero_grad();
  double l = impl_->loss->forward_backward(out, y, &dout);
  if (!std::isfinite(l))
    throw Error("Sequential: the loss became " + std::to_string(l) +
                " (diverged; lower the learning rate or clip gradients)");
  backward(dout, nullptr);
  impl_->opt->step(impl_->param_cache);
  return l;
}

History Sequential::fit(const Tensor& x, const Tensor& y, const FitOptions& opt) {
  data::TensorDataset ds(x, y);
  return fit(ds, opt);
}

History Sequential::fit(data::Dataset& train, const FitOptions& opt) {
  if (!impl_->opt || !impl_->loss) throw StateError("Sequential::fit: call compile() first");
  if (opt.epochs < 0) throw InvalidArgument("fit: epochs must be >= 0");
  if (opt.batch_size <= 0) throw InvalidArgument("fit: batch_size must be positive");
  if (train.size() <= 0) throw InvalidArgument("fit: the training set is empty");
  if (!built_) {
    const Shape& declared =
        impl_->layers.empty() ? Shape{} : impl_->layers.front()->declared_input_shape();
    build(declared.rank() ? declared : train.input_shape());
  }
  if (train.input_shape() != impl_->input)
    throw ShapeError("fit: training samples " + train.input_shape().str() +
                     " do not match the model input " + impl_->input.str());
  impl_->loss->check(output_shape().with_batch(1), train.target_shape().with_batch(1));

  std::ostream& os = opt.out ? *opt.out : std::cout;
  bool tty = (&os == &std::cout && ::isatty(1)) || (&os == &std::cerr && ::isatty(2));
  int verbose = opt.verbose < 0 ? (tty ? 1 : 2) : opt.verbose;
  detail::Progress progress(os, verbose == 2 ? 1 : verbose, tty && verbose == 1, opt.epochs);

  const int64_t n = train.size();
  const int64_t steps = (n + opt.batch_size - 1) / opt.batch_size;
  std::vector<int64_t> order(static_cast<std::size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  Rng rng(opt.seed);
  for (std::size_t i = 0; i < impl_->layers.size(); ++i)
    impl_->layers[i]->set_seed(opt.seed * 7919ULL + 17 * i + 1);
  const double base_lr = impl_->opt->learning_rate();
  History history;
  stop_ = false;
  for (Callback* cb : opt.callbacks) cb->on_train_begin(*this);
  for (int epoch = 0; epoch < opt.epochs && !stop_; ++epoch) {
    for (Callback* cb : opt.callbacks) cb->on_epoch_begin(*this, epoch);
    if (opt.shuffle)
      for (int64_t i = n - 1; i > 0; --i)
        std::swap(order[static_cast<std::size_t>(i)],
                  order[rng.below(static_cast<uint64_t>(i + 1))]);
    progress.begin_epoch(epoch, steps);
    const auto t0 = std::chrono::steady_clock::now();
    MetricSums sums;
    BatchLogs blog;
    blog.epoch = epoch;
    blog.steps = steps;
    for (int64_t s = 0; s < steps && !stop_; ++s) {
      const int64_t b0 = s * opt.batch_size, b1 = std::min(n, b0 + opt.batch_size);
      train.get(std::span<const int64_t>(order.data() + b0, static_cast<std::size_t>(b1 - b0)),
                impl_->bx, impl_->by);
      if (opt.schedule)
        impl_->opt->set_learning_rate(
            opt.schedule->lr(base_lr, epoch + static_cast<double>(s) / static_cast<double>(steps)));
      double l = train_step(impl_->bx, impl_->by);
      sums.loss += l * static_cast<double>(b1 - b0);
      sums.n += b1 - b0;
      add_metrics_after_step(sums.sums);
      blog.step = s;
      blog.metrics = sums.means(&blog.loss);
      progress.update(s + 1, sums.n, blog.loss, blog.metrics);
      for (Callback* cb : opt.callbacks) cb->on_batch_end(*this, blog);
    }
    EpochLogs elog;
    elog.epoch = epoch;
    elog.metrics = sums.means(&elog.loss);
    elog.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    elog.images_per_s = elog.seconds > 0 ? static_cast<double>(sums.n) / elog.seconds : 0.0;
    elog.learning_rate = impl_->opt->learning_rate();
    if (opt.validation) {
      EvalResult v = evaluate(*opt.validation, opt.batch_size);
      elog.has_validation = true;
      elog.val_loss = v.loss;
      elog.val_metrics = v.metrics;
    }
    progress.end_epoch(elog.seconds, elog.images_per_s, elog.loss, elog.metrics,
                       elog.has_validation, elog.val_loss, elog.val_metrics);
    history.epochs.push_back(elog);
    for (Callback* cb : opt.callbacks) cb->on_epoch_end(*this, elog);
  }
  if (opt.schedule) impl_->opt->set_learning_rate(base_lr);
  for (Callback* cb : opt.callbacks) cb->on_train_end(*this, history);
  return history;
}

void Sequential::add_metrics_after_step(std::map<std::string, double>& sums) {
  if (!impl_->metrics.empty()) impl_->add_metrics(impl_->acts.back(), impl_->by, sums);
}

EvalResult Sequential::evaluate(const Tensor& x, const Tensor& y, int64_t batch_size) {
  data::TensorDataset ds(x, y);
  return evaluate(ds, batch_size);
}

EvalResult Sequential::evaluate(data::Dataset& data, int64_t batch_size) {
  if (!impl_->loss) throw StateError("Sequential::evaluate: call compile() first");
  if (batch_size <= 0) throw InvalidArgument("evaluate: batch_size must be positive");
  ensure_built();
  if (data.size() <= 0) throw InvalidArgument("evaluate: the data set is empty");
  const int64_t n = data.size();
  std::vector<int64_t> idx(static_cast<std::size_t>(std::min(n, batch_size)));
  MetricSums sums;
  Tensor& bx = impl_->ex;
  Tensor& by = impl_->ey;
  for (int64_t b0 = 0; b0 < n; b0 += batch_size) {
    const int64_t b1 = std::min(n, b0 + batch_size);
    for (int64_t i = b0; i < b1; ++i) idx[static_cast<std::size_t>(i - b0)] = i;
    data.get(std::span<const int64_t>(idx.data(), static_cast<std::size_t>(b1 - b0)), bx, by);
    const Tensor& out = forward(bx, Phase::infer);
    impl_->loss->check(out.shape(), by.shape());
    sums.loss += impl_->loss->forward_backward(out, by, nullptr) * static_cast<double>(b1 - b0);
    sums.n += b1 - b0;
    impl_->add_metrics(out, by, sums.sums);
  }
  EvalResult r;
  r.metrics = sums.means(&r.loss);
  return r;
}

Tensor Sequential::predict(const Tensor& x, int64_t batch_size) {
  if (batch_size <= 0) throw InvalidArgument("predict: batch_size must be positive");
  ensure_built();
  impl_->check_input(x);
  const int64_t n = x.dim(0);
  Tensor result(output_shape().with_batch(n));
  const int64_t on = output_shape().numel();
  for (int64_t b0 = 0; b0 < n; b0 += batch_size) {
    const int64_t b1 = std::min(n, b0 + batch_size);
    // A view of the caller's rows: no copy of the input.
    Tensor view = Tensor::view(const_cast<float*>(x.data()) + b0 * impl_->input.numel(),
                               impl_->input.with_batch(b1 - b0));
    const Tensor& out = forward(view, Phase::infer);
    std::copy(out.data(), out.data() + (b1 - b0) * on, result.data() + b0 * on);
  }
  return result;
}

void Sequential::summary(std::ostream& os) const {
  os << std::left << std::setw(28) << "Layer (type)" << std::setw(22) << "Output shape"
     << "Params\n";
  os << std::string(62, '=') << '\n';
  int64_t total = 0;
  for (const auto& l : impl_->layers) {
    int64_t np = l->built() ? l->num_params() : 0;
    total += np;
    std::string shape = l->built() ? l->output_shape().with_batch(-1).str() : "?";
    // Show the batch dimension as "None" like Keras.
    if (shape.rfind("(-1", 0) == 0) shape = "(None" + shape.substr(3);
    os << std::setw(28) << (l->name + " (" + l->type() + ")") << std::setw(22) << shape << np
       << '\n';
  }
  os << std::string(62, '=') << '\n' << "Total params: " << total << '\n';
}

double Sequential::peak_rss_mb() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("VmHWM:", 0) == 0) {
      std::istringstream is(line.substr(6));
      double kb = 0;
      is >> kb;
      return kb / 1024.0;
    }
  }
  return 0.0;
}

}  // namespace imgsim::nn
