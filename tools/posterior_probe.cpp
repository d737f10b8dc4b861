// imgsim-posterior-probe: how well a classifier's own class posterior ranks Fashion-MNIST, as a
// reference point for embedding models (docs/cli.md, "eval").
//
//   imgsim-posterior-probe MODEL [--temperature T] [--split test|train]
//
// MODEL is a classifier saved by `imgsim train --mode classifier --embedding classes` (its last
// two layers are the head, e.g. CosineDense, and L2Normalize). The L2Normalize is popped, the
// head's scores z are turned into class probabilities p = softmax(z / T), and every image is
// queried against all the others with the embedding sqrt(p): a unit vector whose inner products
// are Bhattacharyya coefficients between predicted class distributions. For a confident query of
// class c this orders the collection by p_c, the model's own belief that an image is of class c.
// Prints the arg-max accuracy, then recall@1 and MAP@R of the normalised scores (what the model
// file embeds) and of sqrt(p).
#include <cmath>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "imgsim/data/mnist.hpp"
#include "imgsim/error.hpp"
#include "imgsim/nn/sequential.hpp"
#include "imgsim/similarity/embedder.hpp"
#include "imgsim/similarity/retrieval.hpp"

using namespace imgsim;

int main(int argc, char** argv) {
  try {
    std::string model_path, split = "test";
    double temperature = 1.0;
    for (int i = 1; i < argc; ++i) {
      const std::string arg = argv[i];
      if (arg == "--temperature" && i + 1 < argc) {
        temperature = std::strtod(argv[++i], nullptr);
      } else if (arg == "--split" && i + 1 < argc) {
        split = argv[++i];
      } else if (arg == "-h" || arg == "--help") {
        std::cout << "usage: imgsim-posterior-probe MODEL [--temperature T] [--split test|train]\n";
        return 0;
      } else if (model_path.empty() && arg[0] != '-') {
        model_path = arg;
      } else {
        std::cerr << "imgsim-posterior-probe: unexpected argument " << arg << "\n";
        return 2;
      }
    }
    if (model_path.empty() || !(temperature > 0.0) || (split != "test" && split != "train")) {
      std::cerr << "usage: imgsim-posterior-probe MODEL [--temperature T>0] [--split test|train]\n";
      return 2;
    }
    nn::Sequential m = nn::Sequential::from_file(model_path);
    if (m.size() < 2 || std::string(m.layer(m.size() - 1).type()) != "l2_normalize")
      throw FormatError(model_path +
                        ": expected a classifier saved with --embedding classes (ending in "
                        "L2Normalize after its head)");
    const auto mode = m.metadata().find("imgsim.train.mode");
    if (mode == m.metadata().end() || mode->second != "classifier")
      throw FormatError(model_path + ": not a classifier (imgsim.train.mode is not 'classifier')");
    m.pop();
    if (m.output_shape() != Shape{10})
      throw FormatError(model_path + ": the head has " + m.output_shape().str() +
                        " outputs, expected the 10 Fashion-MNIST classes");
    const data::LabeledImages d =
        data::load_fashion_mnist(split == "train" ? data::Split::train : data::Split::test);
    // The model's own normalisation (its preprocessing metadata; 28 x 28 gray input).
    const similarity::Preprocessing pre =
        similarity::Preprocessing::from_metadata(m.metadata(), m.input_shape());
    if (pre.channels != 1 || pre.height != 28 || pre.width != 28)
      throw FormatError(model_path + ": expected a 1 x 28 x 28 Fashion-MNIST model");
    Tensor x = d.images.clone();
    const float mean = pre.mean[0], stddev = pre.stddev[0];
    for (int64_t i = 0; i < x.numel(); ++i) x[i] = (x[i] - mean) / stddev;
    const Tensor z = m.predict(x, 256);
    const int64_t n = z.dim(0), k = z.dim(1);
    std::vector<int> labels(static_cast<std::size_t>(n));
    std::vector<float> unit(static_cast<std::size_t>(n * k)), root(static_cast<std::size_t>(n * k));
    int64_t correct = 0;
    for (int64_t i = 0; i < n; ++i) {
      labels[static_cast<std::size_t>(i)] = static_cast<int>(d.labels[i]);
      const float* r = z.data() + i * k;
      int64_t best = 0;
      double ss = 0.0;
      for (int64_t j = 0; j < k; ++j) {
        if (r[j] > r[best]) best = j;
        ss += double{r[j]} * r[j];
      }
      correct += best == labels[static_cast<std::size_t>(i)];
      double se = 0.0;
      for (int64_t j = 0; j < k; ++j) se += std::exp((r[j] - r[best]) / temperature);
      for (int64_t j = 0; j < k; ++j) {
        unit[static_cast<std::size_t>(i * k + j)] = static_cast<float>(r[j] / std::sqrt(ss));
        root[static_cast<std::size_t>(i * k + j)] =
            static_cast<float>(std::sqrt(std::exp((r[j] - r[best]) / temperature) / se));
      }
    }
    const auto a = similarity::evaluate_retrieval(n, k, unit.data(), labels);
    const auto b = similarity::evaluate_retrieval(n, k, root.data(), labels);
    std::cout << "Fashion-MNIST " << split << " split, " << n << " images\n"
              << "accuracy                     " << static_cast<double>(correct) / n << "\n"
              << "normalised scores   recall@1 " << a.recall_at_1 << "  MAP@R " << a.map_at_r
              << "\n"
              << "sqrt(posterior)     recall@1 " << b.recall_at_1 << "  MAP@R " << b.map_at_r
              << "  (temperature " << temperature << ")\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "imgsim-posterior-probe: " << e.what() << "\n";
    return 1;
  }
}
