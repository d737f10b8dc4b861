// Trains a small CNN classifier on Fashion-MNIST (Debian package dataset-fashion-mnist) and
// prints its test accuracy. See README.md beside this file.
//
//   fashion_mnist [--epochs 15] [--batch 64] [--lr 0.001] [--bn] [--dropout 0.3]
//                 [--limit N] [--seed 1] [--threads T] [--save model.imgsim]
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>

#include "imgsim/data/mnist.hpp"
#include "imgsim/error.hpp"
#include "imgsim/nn/layers.hpp"
#include "imgsim/nn/sequential.hpp"
#include "imgsim/runtime/cpu.hpp"

using namespace imgsim;
using namespace imgsim::nn;

namespace {

struct Args {
  int epochs = 15;
  int64_t batch = 64;
  double lr = 1e-3;
  bool bn = false;
  std::string augment = "none";  // none, flip, shift (flip + shift)
  bool same = false;
  float dropout = 0.0f;
  int64_t limit = 0;
  uint64_t seed = 1;
  int threads = 0;
  std::string save;
};

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string k = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) throw InvalidArgument(k + " needs a value");
      return argv[++i];
    };
    if (k == "--epochs")
      a.epochs = std::stoi(next());
    else if (k == "--batch")
      a.batch = std::stoll(next());
    else if (k == "--lr")
      a.lr = std::stod(next());
    else if (k == "--bn")
      a.bn = true;
    else if (k == "--augment")
      a.augment = next();
    else if (k == "--same")
      a.same = true;
    else if (k == "--dropout")
      a.dropout = std::stof(next());
    else if (k == "--limit")
      a.limit = std::stoll(next());
    else if (k == "--seed")
      a.seed = std::stoull(next());
    else if (k == "--threads")
      a.threads = std::stoi(next());
    else if (k == "--save")
      a.save = next();
    else if (k == "--help" || k == "-h") {
      std::cout << "usage: fashion_mnist [--epochs N] [--batch N] [--lr X] [--bn] [--same]\n"
                   "                     [--augment none|flip|shift] [--dropout P] [--limit N] "
                   "[--seed S] [--threads T]\n"
                   "                     [--save PATH]\n";
      std::exit(0);
    } else {
      throw InvalidArgument("unknown option " + k + " (see --help)");
    }
  }
  return a;
}

// Keeps the first n samples (for quick runs).
void truncate(data::LabeledImages& d, int64_t n) {
  if (n <= 0 || n >= d.images.dim(0)) return;
  data::LabeledImages t{Tensor({n, 1, 28, 28}), Tensor({n})};
  std::copy(d.images.data(), d.images.data() + n * 784, t.images.data());
  std::copy(d.labels.data(), d.labels.data() + n, t.labels.data());
  d = std::move(t);
}

// Training images with random horizontal flips and, with `shift`, shifts of up to 2 pixels
// (zero fill), as torchvision's RandomHorizontalFlip + RandomCrop(28, padding=2); drawn from a
// seeded Rng.
class ShiftFlipDataset : public data::Dataset {
 public:
  ShiftFlipDataset(const Tensor& x, const Tensor& y, bool shift, uint64_t seed)
      : x_(x), y_(y), shift_(shift), rng_(seed) {}
  int64_t size() const override { return x_.dim(0); }
  Shape input_shape() const override { return {1, 28, 28}; }
  Shape target_shape() const override { return {}; }
  void get(std::span<const int64_t> idx, Tensor& x, Tensor& y) override {
    const auto n = static_cast<int64_t>(idx.size());
    x.resize({n, 1, 28, 28});
    y.resize({n});
    for (int64_t i = 0; i < n; ++i) {
      const int64_t k = idx[static_cast<std::size_t>(i)];
      const float* src = x_.data() + k * 784;
      float* dst = x.data() + i * 784;
      const bool flip = rng_.below(2) == 1;
      const int dy = shift_ ? static_cast<int>(rng_.below(5)) - 2 : 0;
      const int dx = shift_ ? static_cast<int>(rng_.below(5)) - 2 : 0;
      for (int r = 0; r < 28; ++r)
        for (int c = 0; c < 28; ++c) {
          const int sr = r + dy, sc0 = c + dx;
          const int sc = flip ? 27 - sc0 : sc0;
          dst[r * 28 + c] = (sr >= 0 && sr < 28 && sc >= 0 && sc < 28) ? src[sr * 28 + sc] : 0.0f;
        }
      y[i] = y_[k];
    }
  }

 private:
  const Tensor& x_;
  const Tensor& y_;
  bool shift_;
  Rng rng_;
};

// Conv -> (BatchNorm) -> ReLU.
void conv_block(Sequential& m, int64_t filters, bool bn, bool same, Shape input = {}) {
  const Padding pad = same ? Padding::same : Padding::valid;
  if (bn) {
    m.add(Conv2D(filters, {3, 3}, {.padding = pad, .use_bias = false, .input_shape = input}));
    m.add(BatchNorm());
    m.add(ReLU());
  } else {
    m.add(Conv2D(filters, {3, 3},
                 {.padding = pad, .activation = Activation::relu, .input_shape = input}));
  }
}

}  // namespace

int main(int argc, char** argv) {
  try {
    Args a = parse(argc, argv);
    if (a.threads > 0) set_num_threads(a.threads);
    auto train = data::load_fashion_mnist(data::Split::train);
    auto test = data::load_fashion_mnist(data::Split::test);
    truncate(train, a.limit);

    Sequential model;
    conv_block(model, 32, a.bn, a.same, {1, 28, 28});
    model.add(MaxPool2D({2, 2}));
    conv_block(model, 64, a.bn, a.same);
    model.add(MaxPool2D({2, 2}));
    model.add(Flatten());
    model.add(Dense(128, {.activation = Activation::relu}));
    if (a.dropout > 0) model.add(Dropout(a.dropout));
    model.add(Dense(10));
    model.compile(Adam({.lr = a.lr}), SoftmaxCrossEntropy(), {"accuracy"});
    model.build({1, 28, 28}, a.seed);
    model.summary(std::cout);
    std::cout << "ISA " << to_string(active_isa()) << ", threads " << num_threads() << ", "
              << train.images.dim(0) << " training images\n";

    data::TensorDataset val(test.images, test.labels);
    CosineLr schedule(a.epochs);
    data::TensorDataset plain(train.images, train.labels);
    if (a.augment != "none" && a.augment != "flip" && a.augment != "shift")
      throw InvalidArgument("--augment takes none, flip or shift, not '" + a.augment + "'");
    ShiftFlipDataset augmented(train.images, train.labels, a.augment == "shift", a.seed + 1);
    data::Dataset& train_set = a.augment == "none" ? static_cast<data::Dataset&>(plain) : augmented;
    History h = model.fit(train_set, {.epochs = a.epochs,
                                      .batch_size = a.batch,
                                      .seed = a.seed,
                                      .validation = &val,
                                      .schedule = &schedule});
    double secs = 0;
    for (const auto& e : h.epochs) secs += e.seconds;
    EvalResult r = model.evaluate(test.images, test.labels, 256);
    std::cout << "seconds per epoch: " << (h.epochs.empty() ? 0.0 : secs / h.epochs.size()) << "\n";
    std::cout << "test loss " << r.loss << "\n";
    std::cout << "test accuracy " << r.metrics["accuracy"] << "\n";
    std::cout << "peak memory " << Sequential::peak_rss_mb() << " MiB\n";
    if (!a.save.empty()) {
      model.save(a.save);
      std::cout << "saved " << a.save << "\n";
    }
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "fashion_mnist: " << e.what() << "\n";
    return 1;
  }
}
