// The model of the document this project started from, built layer by layer as in its Keras
// program, trained on real 224x224x3 images: Fashion-MNIST upscaled (bilinear) to 224x224 and
// copied to three channels, target +1 for footwear (sandal, sneaker, ankle boot), -1 otherwise,
// half of each.
//
//   seed_model [--train 2048] [--test 512] [--epochs 2] [--batch 32] [--threads T]
#include <cmath>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "imgsim/data/dataset.hpp"
#include "imgsim/data/mnist.hpp"
#include "imgsim/error.hpp"
#include "imgsim/nn/layers.hpp"
#include "imgsim/nn/sequential.hpp"
#include "imgsim/runtime/cpu.hpp"

using namespace imgsim;
using namespace imgsim::nn;

namespace {

// Fashion-MNIST images upscaled on the fly to (3, size, size); no copy of the set is made.
class UpscaledFashion : public data::Dataset {
 public:
  // Takes the first `count` images, half footwear and half not, so that a constant answer
  // cannot do better than a loss of 1 (mean squared error on +1/-1 targets).
  UpscaledFashion(const data::LabeledImages& d, int64_t count, int64_t size) : d_(d), size_(size) {
    int64_t pos = 0, neg = 0;
    for (int64_t k = 0; k < d.images.dim(0) && pos + neg < count; ++k) {
      const bool foot = footwear(static_cast<int>(d.labels[k]));
      if (foot ? pos < count / 2 : neg < count - count / 2) {
        rows_.push_back(k);
        (foot ? pos : neg) += 1;
      }
    }
    n_ = static_cast<int64_t>(rows_.size());
  }
  static bool footwear(int label) { return label == 5 || label == 7 || label == 9; }
  int64_t size() const override { return n_; }
  Shape input_shape() const override { return {3, size_, size_}; }
  Shape target_shape() const override { return {1}; }
  void get(std::span<const int64_t> idx, Tensor& x, Tensor& y) override {
    const auto n = static_cast<int64_t>(idx.size());
    x.resize({n, 3, size_, size_});
    y.resize({n, 1});
    const float scale = 28.0f / static_cast<float>(size_);
    for (int64_t i = 0; i < n; ++i) {
      const int64_t k = rows_[static_cast<std::size_t>(idx[static_cast<std::size_t>(i)])];
      const float* src = d_.images.data() + k * 784;
      float* dst = x.data() + i * 3 * size_ * size_;
      for (int64_t r = 0; r < size_; ++r) {
        // Bilinear, pixel centres aligned (align_corners = false).
        float fy = std::clamp((static_cast<float>(r) + 0.5f) * scale - 0.5f, 0.0f, 27.0f);
        int y0 = static_cast<int>(fy), y1 = std::min(y0 + 1, 27);
        float wy = fy - static_cast<float>(y0);
        for (int64_t c = 0; c < size_; ++c) {
          float fx = std::clamp((static_cast<float>(c) + 0.5f) * scale - 0.5f, 0.0f, 27.0f);
          int x0 = static_cast<int>(fx), x1 = std::min(x0 + 1, 27);
          float wx = fx - static_cast<float>(x0);
          float v = (1 - wy) * ((1 - wx) * src[y0 * 28 + x0] + wx * src[y0 * 28 + x1]) +
                    wy * ((1 - wx) * src[y1 * 28 + x0] + wx * src[y1 * 28 + x1]);
          dst[r * size_ + c] = v;
        }
      }
      for (int ch = 1; ch < 3; ++ch) std::copy(dst, dst + size_ * size_, dst + ch * size_ * size_);
      y[i] = footwear(static_cast<int>(d_.labels[k])) ? 1.0f : -1.0f;
    }
  }

 private:
  const data::LabeledImages& d_;
  std::vector<int64_t> rows_;
  int64_t n_ = 0, size_;
};

}  // namespace

int main(int argc, char** argv) {
  try {
    int64_t n_train = 2048, n_test = 512, batch = 32;
    int epochs = 2;
    double lr = 1e-4;
    for (int i = 1; i < argc; ++i) {
      std::string k = argv[i];
      if (k == "--help" || k == "-h") {
        std::cout << "usage: seed_model [--train N] [--test N] [--epochs N] [--batch N] [--lr X] "
                     "[--threads T]\n";
        return 0;
      }
      if (i + 1 >= argc) throw InvalidArgument(k + " needs a value");
      std::string v = argv[++i];
      if (k == "--train")
        n_train = std::stoll(v);
      else if (k == "--test")
        n_test = std::stoll(v);
      else if (k == "--epochs")
        epochs = std::stoi(v);
      else if (k == "--batch")
        batch = std::stoll(v);
      else if (k == "--lr")
        lr = std::stod(v);
      else if (k == "--threads")
        set_num_threads(std::stoi(v));
      else
        throw InvalidArgument("unknown option " + k + " (see --help)");
    }
    auto train_set = data::load_fashion_mnist(data::Split::train);
    auto test_set = data::load_fashion_mnist(data::Split::test);
    UpscaledFashion X_train(train_set, n_train, 224), X_test(test_set, n_test, 224);

    // The Keras program of the source document, line by line.
    Sequential model;
    model.add(Conv2D(32, {3, 3}, {.activation = Activation::relu, .input_shape = {3, 224, 224}}));
    model.add(MaxPool2D({2, 2}));
    model.add(Conv2D(64, {3, 3}, {.activation = Activation::relu}));
    model.add(MaxPool2D({2, 2}));
    model.add(Conv2D(128, {3, 3}, {.activation = Activation::relu}));
    model.add(MaxPool2D({2, 2}));
    model.add(Flatten());
    model.add(Dense(128, {.activation = Activation::relu}));
    model.add(Dense(1, {.activation = Activation::tanh}));
    // Keras: model.compile(optimizer='adam', loss='mean_squared_error'). Adam at Keras's default
    // rate of 1e-3 drives this model (a Dense layer over 86,528 inputs into tanh) into dead ReLUs
    // and a saturated constant output within two epochs, in Keras as here; 1e-4 trains steadily.
    model.compile(Adam({.lr = lr}), MeanSquaredError(), {"accuracy"});
    model.summary(std::cout);
    std::cout << "ISA " << to_string(active_isa()) << ", threads " << num_threads() << "\n";

    EvalResult before = model.evaluate(X_test, batch);
    std::cout << "before training: test loss " << before.loss << ", accuracy "
              << before.metrics["accuracy"] << "\n";
    model.fit(X_train, {.epochs = epochs, .batch_size = batch, .seed = 1, .validation = &X_test});
    EvalResult after = model.evaluate(X_test, batch);
    std::cout << "after training:  test loss " << after.loss << ", accuracy "
              << after.metrics["accuracy"] << "\n";
    std::cout << "peak memory " << Sequential::peak_rss_mb() << " MiB\n";
    return after.loss < before.loss ? 0 : 2;
  } catch (const std::exception& e) {
    std::cerr << "seed_model: " << e.what() << "\n";
    return 1;
  }
}
