// imgsim train: trains an embedding model (classifier, metric or self-supervised) from
// Fashion-MNIST or a folder of images and writes a model file the other commands can use.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <numeric>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common.hpp"
#include "imgsim/data/augmented.hpp"
#include "imgsim/data/image_folder.hpp"
#include "imgsim/data/mnist.hpp"
#include "imgsim/data/pk_sampler.hpp"
#include "imgsim/error.hpp"
#include "imgsim/image/augment.hpp"
#include "imgsim/nn/layers.hpp"
#include "imgsim/nn/loss.hpp"
#include "imgsim/nn/metric_loss.hpp"
#include "imgsim/nn/optimizer.hpp"
#include "imgsim/nn/sequential.hpp"
#include "imgsim/nn/serialize.hpp"
#include "imgsim/rng.hpp"
#include "imgsim/runtime/cpu.hpp"
#include "imgsim/similarity/retrieval.hpp"
#include "progress.hpp"

namespace imgsim::cli {

namespace {

using nn::Sequential;

struct TrainArgs {
  std::string mode = "metric";
  std::string data = "fashion-mnist";
  std::string output;
  int64_t dim = 128;
  int size = 0;      // 0: 28 for Fashion-MNIST, 64 for folders
  int channels = 0;  // 0: 1 for Fashion-MNIST, 3 for folders
  int width = 32;
  int depth = 1;
  std::string head = "flatten";
  std::string flip_average = "none";
  int shift_average = 0;
  int epochs = 10;
  int repeats = 1;
  int cache_side = 0;
  int64_t batch = 128;
  int64_t p = 0;
  int64_t k = 0;
  double lr = 1e-3;
  double weight_decay = 0.0;
  double warmup = 0.0;
  uint64_t seed = 1;
  std::string loss;  // "": per mode
  std::string mining = "all";
  double margin = std::nan("");
  double temperature = 0.2;
  double scale = 16.0;                 // cosface: the cosine head's scale
  std::string embedding = "features";  // classifier: features (before the head) or classes
  double label_smoothing = 0.0;
  std::string views = "near-duplicate";
  bool augment = false;
  double erase = 0.0;  // random-erasing probability (classifier/metric)
  double val_fraction = 0.1;
  int64_t val_max = 5000;
  int64_t limit = 0;
  bool calibrate = false;
  std::string calibrate_on;
  double target_precision = 0.0;
  int64_t pairs = 5000;
  int64_t max_memory_mb = 2048;
  std::string checkpoint;  // resume from / save to after every epoch
  int stop_after = 0;      // with a checkpoint: epochs of this run (0: all)
};

// --- data ------------------------------------------------------------------------------------

struct Material {
  int channels = 1, size = 28;
  int classes = 0;
  std::string description;
  // Labelled modes: inputs in [0, 1], already at C x S x S.
  Tensor train_x, train_y;  // (n, C, S, S), (n)
  std::vector<int> train_labels;
  Tensor val_x;  // (m, C, S, S)
  std::vector<int> val_labels;
  // Folder sources: the files of each split (self-supervised training, view calibration).
  std::vector<std::string> train_paths, val_paths;
  std::vector<data::SkippedFile> skipped;
};

// Preprocessing without normalisation: geometry and channels only, values in [0, 1].
similarity::Preprocessing geometry(int channels, int size) {
  similarity::Preprocessing g;
  g.channels = channels;
  g.height = g.width = size;
  g.resize = 0;
  g.center_crop = true;
  g.mean = {0.0f};
  g.stddev = {1.0f};
  return g;
}

// Runs fn(i) for i in [0, n) on num_threads() threads.
template <class F>
void parallel(int64_t n, F&& fn) {
  std::atomic<int64_t> next{0};
  const int workers = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(num_threads(), n)));
  std::vector<std::thread> pool;
  for (int w = 0; w < workers; ++w)
    pool.emplace_back([&] {
      for (int64_t i; (i = next.fetch_add(1)) < n;) fn(i);
    });
  for (auto& t : pool) t.join();
}

// Decodes files into (n, C, S, S); rows of files that fail are dropped (and reported).
Tensor load_files(const std::vector<std::string>& paths, const similarity::Preprocessing& g,
                  std::vector<char>& ok, std::vector<data::SkippedFile>& skipped,
                  const std::string& label) {
  const auto n = static_cast<int64_t>(paths.size());
  const int64_t in = int64_t{g.channels} * g.height * g.width;
  Tensor x({n, g.channels, g.height, g.width});
  ok.assign(paths.size(), 0);
  std::vector<std::string> errors(paths.size());
  Progress bar(label, n);
  std::atomic<int64_t> done{0};
  image::LoadOptions lo;
  lo.channels = g.channels;
  parallel(n, [&](int64_t i) {
    const auto k = static_cast<std::size_t>(i);
    try {
      g.apply(image::load_image(paths[k], lo), x.data() + i * in);
      ok[k] = 1;
    } catch (const std::exception& e) {
      errors[k] = e.what();
    }
    ++done;
  });
  bar.update(done.load());
  bar.finish();
  int64_t m = 0;
  for (int64_t i = 0; i < n; ++i) {
    const auto k = static_cast<std::size_t>(i);
    if (!ok[k]) {
      skipped.push_back({paths[k], errors[k]});
      continue;
    }
    if (m != i) std::copy(x.data() + i * in, x.data() + (i + 1) * in, x.data() + m * in);
    ++m;
  }
  Tensor out({m, g.channels, g.height, g.width});
  std::copy(x.data(), x.data() + m * in, out.data());
  return out;
}

// A seeded permutation of [0, n).
std::vector<int64_t> permutation(int64_t n, uint64_t seed) {
  std::vector<int64_t> p(static_cast<std::size_t>(n));
  std::iota(p.begin(), p.end(), int64_t{0});
  Rng rng(seed);
  for (int64_t i = n - 1; i > 0; --i)
    std::swap(p[static_cast<std::size_t>(i)], p[rng.below(static_cast<uint64_t>(i + 1))]);
  return p;
}

Tensor gather_rows(const Tensor& x, const std::vector<int64_t>& rows) {
  Shape s = x.shape();
  s[0] = static_cast<int64_t>(rows.size());
  Tensor out(s);
  const int64_t in = x.shape().sample_numel();
  for (std::size_t r = 0; r < rows.size(); ++r)
    std::copy(x.data() + rows[r] * in, x.data() + (rows[r] + 1) * in,
              out.data() + static_cast<int64_t>(r) * in);
  return out;
}

// Splits `n` items into validation (the first round(fraction * n) of a seeded permutation, at
// most val_max) and training (the rest, at most `limit` if > 0).
void split(int64_t n, const TrainArgs& a, std::vector<int64_t>& train, std::vector<int64_t>& val) {
  const std::vector<int64_t> p = permutation(n, a.seed * 7919 + 3);
  int64_t nv = static_cast<int64_t>(std::llround(a.val_fraction * static_cast<double>(n)));
  nv = std::clamp<int64_t>(nv, 0, std::min<int64_t>(a.val_max, n - 1));
  val.assign(p.begin(), p.begin() + nv);
  train.assign(p.begin() + nv, p.end());
  if (a.limit > 0 && static_cast<int64_t>(train.size()) > a.limit)
    train.resize(static_cast<std::size_t>(a.limit));
  std::sort(train.begin(), train.end());
  std::sort(val.begin(), val.end());
}

void check_memory(int64_t n, int c, int s, const TrainArgs& a) {
  const double mb = static_cast<double>(n) * c * s * s * 4.0 / (1024.0 * 1024.0);
  if (mb > static_cast<double>(a.max_memory_mb))
    throw Error("train: the images need " + std::to_string(static_cast<int64_t>(mb)) +
                " MiB in memory at " + std::to_string(c) + "x" + std::to_string(s) + "x" +
                std::to_string(s) + ", more than --max-memory-mb " +
                std::to_string(a.max_memory_mb) + "; lower --size or use --limit");
}

Material load_material(const TrainArgs& a) {
  Material m;
  const bool fashion = a.data == "fashion-mnist";
  m.channels = a.channels ? a.channels : (fashion ? 1 : 3);
  m.size = a.size ? a.size : (fashion ? 28 : 64);
  const similarity::Preprocessing g = geometry(m.channels, m.size);
  std::vector<int64_t> tr, va;
  if (fashion) {
    if (a.mode == "selfsup")
      throw UsageError("train: selfsup mode trains on a folder of images (--data DIR)");
    data::LabeledImages d = data::load_fashion_mnist(data::Split::train);
    const int64_t n = d.images.dim(0);
    split(n, a, tr, va);
    m.classes = 10;
    Tensor x;
    if (m.channels == 1 && m.size == 28) {
      x = std::move(d.images);
    } else {
      check_memory(n, m.channels, m.size, a);
      x = Tensor({n, m.channels, m.size, m.size});
      const int64_t in = int64_t{m.channels} * m.size * m.size;
      parallel(n, [&](int64_t i) {
        image::Image img(28, 28, 1);
        std::copy(d.images.data() + i * 784, d.images.data() + (i + 1) * 784, img.data());
        g.apply(img, x.data() + i * in);
      });
    }
    m.train_x = gather_rows(x, tr);
    m.val_x = gather_rows(x, va);
    for (int64_t i : tr) m.train_labels.push_back(static_cast<int>(d.labels[i]));
    for (int64_t i : va) m.val_labels.push_back(static_cast<int>(d.labels[i]));
    m.description = "Fashion-MNIST training split";
  } else if (a.mode == "selfsup") {
    std::vector<std::string> files = collect_images({a.data}, m.skipped);
    if (files.size() < 2)
      throw Error("train: need at least 2 images in " + a.data + ", found " +
                  std::to_string(files.size()));
    split(static_cast<int64_t>(files.size()), a, tr, va);
    for (int64_t i : tr) m.train_paths.push_back(files[static_cast<std::size_t>(i)]);
    for (int64_t i : va) m.val_paths.push_back(files[static_cast<std::size_t>(i)]);
    m.description = "images of " + a.data;
    return m;
  } else {
    // A class folder: one sub-folder per class. The dataset object is only used for its file
    // list, labels and header checks; decoding follows the embedder's preprocessing.
    data::ImageFolderDataset folder(a.data);
    m.skipped = folder.skipped();
    const int64_t n = folder.size();
    split(n, a, tr, va);
    check_memory(static_cast<int64_t>(tr.size() + va.size()), m.channels, m.size, a);
    m.classes = static_cast<int>(folder.class_names().size());
    for (const auto* part : {&tr, &va}) {
      std::vector<std::string> paths;
      std::vector<int> labels;
      for (int64_t i : *part) {
        paths.push_back(folder.path(i));
        labels.push_back(folder.class_index(i));
      }
      std::vector<char> ok;
      Tensor x = load_files(paths, g, ok, m.skipped, part == &tr ? "loading" : "loading held-out");
      std::vector<int> kept;
      std::vector<std::string> kept_paths;
      for (std::size_t i = 0; i < ok.size(); ++i)
        if (ok[i]) {
          kept.push_back(labels[i]);
          kept_paths.push_back(paths[i]);
        }
      if (part == &tr) {
        m.train_x = std::move(x);
        m.train_labels = std::move(kept);
        m.train_paths = std::move(kept_paths);
      } else {
        m.val_x = std::move(x);
        m.val_labels = std::move(kept);
        m.val_paths = std::move(kept_paths);
      }
    }
    m.description = "class folder " + a.data + " (" + std::to_string(m.classes) + " classes)";
  }
  const auto nt = static_cast<int64_t>(m.train_labels.size());
  if (nt < 2) throw Error("train: need at least 2 training images, found " + std::to_string(nt));
  m.train_y = Tensor({nt});
  for (int64_t i = 0; i < nt; ++i)
    m.train_y[i] = static_cast<float>(m.train_labels[static_cast<std::size_t>(i)]);
  return m;
}

// Random horizontal flip and a shift of up to `shift` pixels (edges replicated), in place on a
// batch (n, C, S, S).
void flip_shift(Tensor& x, int shift, Rng& rng) {
  const int64_t n = x.dim(0), c = x.dim(1), h = x.dim(2), w = x.dim(3);
  std::vector<float> plane(static_cast<std::size_t>(h * w));
  for (int64_t i = 0; i < n; ++i) {
    const bool flip = rng.below(2) == 1;
    const int64_t dy =
        static_cast<int64_t>(rng.below(static_cast<uint64_t>(2 * shift + 1))) - shift;
    const int64_t dx =
        static_cast<int64_t>(rng.below(static_cast<uint64_t>(2 * shift + 1))) - shift;
    for (int64_t ch = 0; ch < c; ++ch) {
      float* p = x.data() + (i * c + ch) * h * w;
      std::copy(p, p + h * w, plane.begin());
      for (int64_t r = 0; r < h; ++r)
        for (int64_t q = 0; q < w; ++q) {
          const int64_t sr = std::clamp<int64_t>(r + dy, 0, h - 1);
          int64_t sq = std::clamp<int64_t>(q + dx, 0, w - 1);
          if (flip) sq = w - 1 - sq;
          p[r * w + q] = plane[static_cast<std::size_t>(sr * w + sq)];
        }
    }
  }
}

// (x - mean) / std per channel, in place on (n, C, S, S).
void normalise(Tensor& x, const similarity::Preprocessing& pre) {
  const auto c = static_cast<std::size_t>(pre.channels);
  std::vector<float> mean(c), stddev(c);
  for (std::size_t i = 0; i < c; ++i) {
    mean[i] = pre.mean.size() == 1 ? pre.mean[0] : pre.mean[i];
    stddev[i] = pre.stddev.size() == 1 ? pre.stddev[0] : pre.stddev[i];
  }
  image::normalize(x, mean, stddev);
}

// --- model -----------------------------------------------------------------------------------

// Conv blocks (3x3 'same' convolutions with BatchNorm and ReLU, then 2x2 max-pooling; widths
// W, 2W, 4W, ... up to 8W) while the side is at least 6, then Flatten (or, with --head gap,
// global average pooling, which makes the embedding depend less on where things are), Dense(dim)
// and L2Normalize. A classifier adds Dense(classes, no bias) on the normalised embedding, or
// with --loss cosface CosineDense(classes, scale).
void build_net(Sequential& m, const TrainArgs& a, int channels, int size, int classes_head) {
  int side = size;
  int64_t filters = a.width;
  bool first = true;
  int blocks = 0;
  while (side >= 6 && blocks < 4) {
    for (int d = 0; d < a.depth; ++d) {
      nn::Conv2DOptions o;
      o.padding = nn::Padding::same;
      o.use_bias = false;
      if (first) o.input_shape = Shape{channels, size, size};
      first = false;
      m.add(nn::Conv2D(filters, {3, 3}, o));
      m.add(nn::BatchNorm());
      m.add(nn::ReLU());
    }
    m.add(nn::MaxPool2D({2, 2}));
    side /= 2;
    ++blocks;
    if (blocks < 4) filters = std::min<int64_t>(filters * 2, int64_t{a.width} * 8);
  }
  if (first) {
    nn::Flatten::Options fo;
    fo.input_shape = Shape{channels, size, size};
    m.add(nn::Flatten(fo));
  } else if (a.head == "gap") {
    m.add(nn::GlobalAvgPool2D());
  } else {
    m.add(nn::Flatten());
  }
  m.add(nn::Dense(a.dim));
  m.add(nn::L2Normalize());
  if (classes_head > 0 && a.loss == "cosface") {
    nn::CosineDenseOptions c;
    c.scale = static_cast<float>(a.scale);
    m.add(nn::CosineDense(classes_head, c));
  } else if (classes_head > 0) {
    nn::DenseOptions d;
    d.use_bias = false;
    m.add(nn::Dense(classes_head, d));
  }
}

// The embedding part of a trained network, with the trained parameters and BatchNorm statistics
// copied: the same layers without the classifier head or, with `classes` > 0, with the head and
// an L2Normalize after it (the embedding is then the unit vector of class scores).
Sequential embedding_model(Sequential& trained, const TrainArgs& a, int channels, int size,
                           int classes = 0) {
  Sequential e;
  build_net(e, a, channels, size, classes);
  if (classes > 0) e.add(nn::L2Normalize());
  e.build({channels, size, size});
  // (The trailing L2Normalize of `classes` has nothing to copy.)
  for (std::size_t i = 0; i < std::min(e.size(), trained.size()); ++i) {
    auto dst = e.layer(i).params();
    auto src = trained.layer(i).params();
    for (std::size_t j = 0; j < dst.size(); ++j) dst[j].value->copy_from(*src[j].value);
    auto ds = e.layer(i).state();
    auto ss = trained.layer(i).state();
    for (std::size_t j = 0; j < ds.size(); ++j) ds[j]->copy_from(*ss[j]);
  }
  return e;
}

// Unit embeddings (n, dim) of preprocessed [0, 1] inputs.
Tensor embed_tensor(Sequential& model, const Tensor& x, const similarity::Preprocessing& pre) {
  Tensor in = x.clone();
  normalise(in, pre);
  Tensor out = model.predict(in, 256);
  out.reshape({x.dim(0), out.numel() / std::max<int64_t>(x.dim(0), 1)});
  return out;
}

// --- checkpoints -----------------------------------------------------------------------------
//
// The program's part of a training checkpoint (Sequential::save_checkpoint's `extra`): a tag,
// the run's key (every option that changes the result), the epochs done, the state of the
// generators (batches order, flips, erasing; P x K draws), the shuffled order and the history.
// Resuming restores them, so a run stopped after any epoch and resumed gives the same bits.

constexpr const char* kCheckpointTag = "imgsim-train-checkpoint/1";

struct RunState {
  std::string key;
  int epochs_done = 0;
  Rng::State rng, pk_rng;
  bool has_pk = false;
  std::vector<int64_t> order;
  std::string history;
};

std::vector<uint8_t> encode_progress(const RunState& p) {
  nn::ByteWriter w;
  w.str(kCheckpointTag);
  w.str(p.key);
  w.u32(static_cast<uint32_t>(p.epochs_done));
  w.rng_state(p.rng);
  w.u8(p.has_pk ? 1 : 0);
  if (p.has_pk) w.rng_state(p.pk_rng);
  w.u64(p.order.size());
  for (int64_t v : p.order) w.i64(v);
  w.str(p.history);
  return w.buffer();
}

RunState decode_progress(const std::vector<uint8_t>& bytes, const std::string& path) {
  nn::ByteReader r(bytes.data(), bytes.size(), "training checkpoint '" + path + "'");
  RunState p;
  if (r.str("tag") != kCheckpointTag) r.fail("not written by imgsim train");
  p.key = r.str("run key");
  p.epochs_done = static_cast<int>(r.u32("epochs done"));
  p.rng = r.rng_state("generator");
  p.has_pk = r.u8("P x K flag") != 0;
  if (p.has_pk) p.pk_rng = r.rng_state("P x K generator");
  const uint64_t n = r.u64("order length");
  if (n > r.remaining() / 8) r.fail("order length beyond the end of the file");
  p.order.resize(static_cast<std::size_t>(n));
  for (int64_t& v : p.order) v = r.i64("order");
  p.history = r.str("history");
  if (r.remaining() != 0) r.fail(std::to_string(r.remaining()) + " unexpected bytes");
  return p;
}

// --- calibration -----------------------------------------------------------------------------

struct Pairs {
  std::vector<float> same, different;
  std::string what;
};

double dot(const float* a, const float* b, int64_t d) {
  double s = 0.0;
  for (int64_t i = 0; i < d; ++i) s += static_cast<double>(a[i]) * b[i];
  return s;
}

// Same-class and different-class pairs of held-out images.
Pairs class_pairs(const Tensor& emb, const std::vector<int>& labels, int64_t want, uint64_t seed) {
  Pairs p;
  const auto n = static_cast<int64_t>(labels.size());
  const int64_t d = emb.dim(1);
  std::map<int, std::vector<int64_t>> by_class;
  for (int64_t i = 0; i < n; ++i) by_class[labels[static_cast<std::size_t>(i)]].push_back(i);
  Rng rng(seed);
  for (int64_t t = 0; t < want * 20 && static_cast<int64_t>(p.same.size()) < want; ++t) {
    const auto i = static_cast<int64_t>(rng.below(static_cast<uint64_t>(n)));
    const auto& cls = by_class[labels[static_cast<std::size_t>(i)]];
    if (cls.size() < 2) continue;
    const int64_t j = cls[rng.below(cls.size())];
    if (j == i) continue;
    p.same.push_back(static_cast<float>(dot(emb.data() + i * d, emb.data() + j * d, d)));
  }
  for (int64_t t = 0; t < want * 20 && static_cast<int64_t>(p.different.size()) < want; ++t) {
    const auto i = static_cast<int64_t>(rng.below(static_cast<uint64_t>(n)));
    const auto j = static_cast<int64_t>(rng.below(static_cast<uint64_t>(n)));
    if (labels[static_cast<std::size_t>(i)] == labels[static_cast<std::size_t>(j)]) continue;
    p.different.push_back(static_cast<float>(dot(emb.data() + i * d, emb.data() + j * d, d)));
  }
  p.what = std::to_string(p.same.size()) + " same-class / " + std::to_string(p.different.size()) +
           " different-class pairs of held-out images";
  return p;
}

// Two near-duplicate edits of a held-out image (same) against edits of two different images
// (different): `want` of each kind (at least one per image), going round the images with new
// edits each round.
Pairs view_pairs(similarity::Embedder& e, const std::vector<image::Image>& images, int size,
                 int64_t want, uint64_t seed) {
  Pairs p;
  const auto n = static_cast<int64_t>(images.size());
  if (n < 2) return p;
  const int64_t total = std::max(want, n);
  const image::Augmenter aug = image::Augmenter::near_duplicate(size);
  std::vector<image::Image> a(static_cast<std::size_t>(total)), b(a.size());
  Rng rng(seed);
  std::vector<Rng> rngs;
  for (int64_t i = 0; i < total; ++i) rngs.push_back(rng.split());
  parallel(total, [&](int64_t t) {
    const auto k = static_cast<std::size_t>(t);
    const image::Image& src = images[static_cast<std::size_t>(t % n)];
    a[k] = aug.apply(src, rngs[k]);
    b[k] = aug.apply(src, rngs[k]);
  });
  const Tensor ea = e.embed_images(a), eb = e.embed_images(b);
  const int64_t d = e.dim();
  for (int64_t t = 0; t < total; ++t) {
    p.same.push_back(static_cast<float>(dot(ea.data() + t * d, eb.data() + t * d, d)));
    // An edit of another image: a row whose source differs.
    int64_t u = static_cast<int64_t>(rng.below(static_cast<uint64_t>(total)));
    while (u % n == t % n) u = static_cast<int64_t>(rng.below(static_cast<uint64_t>(total)));
    p.different.push_back(static_cast<float>(dot(ea.data() + t * d, eb.data() + u * d, d)));
  }
  p.what = std::to_string(total) + " same / " + std::to_string(total) +
           " different pairs of near-duplicate edits (Augmenter::near_duplicate) of " +
           std::to_string(n) + " held-out images";
  return p;
}

// --- training --------------------------------------------------------------------------------

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

void run_train(const TrainArgs& args) {
  apply_common();
  TrainArgs a = args;
  const auto t_start = std::chrono::steady_clock::now();
  if (a.mode != "classifier" && a.mode != "metric" && a.mode != "selfsup")
    throw UsageError("train: --mode must be classifier, metric or selfsup");
  std::string loss = a.loss;
  if (loss.empty())
    loss = a.mode == "classifier" ? "softmax" : a.mode == "metric" ? "triplet" : "ntxent";
  a.loss = loss;
  const std::set<std::string> allowed =
      a.mode == "classifier" ? std::set<std::string>{"softmax", "cosface"}
      : a.mode == "metric"   ? std::set<std::string>{"triplet", "contrastive", "supcon"}
                             : std::set<std::string>{"ntxent"};
  if (!allowed.count(loss))
    throw UsageError("train: --loss " + loss + " does not go with --mode " + a.mode);
  if (a.embedding != "features" && a.mode != "classifier")
    throw UsageError("train: --embedding " + a.embedding + " needs --mode classifier");
  if (a.erase > 0 && a.mode == "selfsup")
    throw UsageError("train: --erase needs --mode classifier or metric (selfsup has --views)");
  if (a.stop_after > 0 && a.checkpoint.empty())
    throw UsageError("train: --stop-after needs --checkpoint");
  if (a.size != 0 && (a.size < 4 || a.size > 1024))
    throw UsageError("train: --size must be in 4..1024");
  if (a.channels != 0 && a.channels != 1 && a.channels != 3)
    throw UsageError("train: --channels must be 1 or 3");

  Material m = load_material(a);
  warn_skipped(m.skipped);
  const bool labelled = a.mode != "selfsup";
  const int C = m.channels, S = m.size;

  similarity::Preprocessing pre = geometry(C, S);
  pre.mean = {0.5f};
  pre.stddev = {0.5f};

  Sequential net;
  build_net(net, a, C, S, a.mode == "classifier" ? m.classes : 0);
  std::unique_ptr<nn::Optimizer> opt;
  nn::AdamOptions ao;
  ao.lr = a.lr;
  ao.weight_decay = a.weight_decay;
  if (a.weight_decay > 0)
    opt = std::make_unique<nn::AdamW>(ao);
  else
    opt = std::make_unique<nn::Adam>(ao);
  std::unique_ptr<nn::Loss> lossfn;
  if (loss == "softmax") {
    lossfn = std::make_unique<nn::SoftmaxCrossEntropy>(static_cast<float>(a.label_smoothing));
  } else if (loss == "cosface") {
    // The margin is on the cosine; on the scaled logits it is scale x margin.
    const double margin = std::isnan(a.margin) ? 0.1 : a.margin;
    lossfn = std::make_unique<nn::SoftmaxCrossEntropy>(static_cast<float>(a.label_smoothing),
                                                       static_cast<float>(a.scale * margin));
  } else if (loss == "triplet") {
    const nn::Mining mining = a.mining == "semi_hard" ? nn::Mining::semi_hard
                              : a.mining == "all"     ? nn::Mining::all
                                                      : nn::Mining::batch_hard;
    lossfn = std::make_unique<nn::TripletLoss>(
        std::isnan(a.margin) ? 0.2f : static_cast<float>(a.margin), mining);
  } else if (loss == "contrastive") {
    lossfn = std::make_unique<nn::ContrastiveLoss>(
        std::isnan(a.margin) ? 1.0f : static_cast<float>(a.margin));
  } else if (loss == "supcon") {
    lossfn = std::make_unique<nn::SupConLoss>(static_cast<float>(a.temperature));
  } else {
    lossfn = std::make_unique<nn::NTXentLoss>(static_cast<float>(a.temperature));
  }
  net.compile(std::move(opt), std::move(lossfn));
  net.build({C, S, S}, a.seed);
  if (!common().quiet) {
    std::cerr << "training a " << a.mode << " model (" << loss << " loss) on " << m.description
              << ": " << (labelled ? m.train_labels.size() : m.train_paths.size())
              << " training images, " << (labelled ? m.val_labels.size() : m.val_paths.size())
              << " held out; input " << C << "x" << S << "x" << S << ", " << net.num_params()
              << " parameters\n";
  }

  // Batch sources.
  const auto n_train =
      static_cast<int64_t>(labelled ? m.train_labels.size() : m.train_paths.size());
  std::unique_ptr<data::TensorDataset> base;
  if (labelled) base = std::make_unique<data::TensorDataset>(m.train_x, m.train_y);
  std::unique_ptr<data::PKSampledDataset> pk;
  std::unique_ptr<data::AugmentedImageDataset> views;
  int64_t batch = std::min<int64_t>(a.batch, n_train);
  if (a.mode == "metric") {
    std::map<int, int64_t> counts;
    for (int l : m.train_labels) ++counts[l];
    int64_t usable = 0;
    for (const auto& [l, c] : counts) usable += c >= 2;
    const int64_t P = a.p > 0 ? a.p : std::max<int64_t>(1, std::min<int64_t>(usable, 16));
    const int64_t K = a.k > 0 ? a.k : std::max<int64_t>(2, a.batch / P);
    batch = P * K;
    pk = std::make_unique<data::PKSampledDataset>(*base, m.train_labels, P, K, 1, a.seed);
  } else if (a.mode == "selfsup") {
    data::AugmentedImageOptions o;
    o.width = o.height = S;
    o.channels = C;
    o.two_views = true;
    o.seed = a.seed;
    // Keep the decoded photos in memory, shrunk, when they fit the memory budget.
    o.cache_max_side = a.cache_side > 0 ? a.cache_side : 4 * S;
    // (Decoded images hold floats.)
    const double cache_mb = static_cast<double>(m.train_paths.size()) * C * o.cache_max_side *
                            o.cache_max_side * sizeof(float) / (1024.0 * 1024.0);
    if (cache_mb > static_cast<double>(a.max_memory_mb)) o.cache_max_side = 0;
    views = std::make_unique<data::AugmentedImageDataset>(
        m.train_paths, std::vector<int>{},
        a.views == "simclr" ? image::Augmenter::simclr(S) : image::Augmenter::near_duplicate(S), o);
    batch = std::max<int64_t>(2, std::min<int64_t>(a.batch, n_train));
  }
  // An epoch is `repeats` passes over the training images, each in a new order.
  const int64_t steps_per_pass = std::max<int64_t>(1, n_train / batch);
  const int64_t steps = steps_per_pass * a.repeats;
  nn::CosineLr schedule(a.epochs, 0.0, a.warmup);
  Rng rng(a.seed * 31 + 7);
  const int shift = std::max(1, S / 14);
  Tensor x, y, two;
  std::vector<int64_t> order(static_cast<std::size_t>(n_train));
  std::iota(order.begin(), order.end(), int64_t{0});
  std::vector<int64_t> idx;
  json history = json::array();
  const std::string recipe =
      "mode=" + a.mode + " loss=" + loss + " data=" + a.data + " dim=" + std::to_string(a.dim) +
      " size=" + std::to_string(S) + " channels=" + std::to_string(C) +
      " width=" + std::to_string(a.width) + " depth=" + std::to_string(a.depth) +
      " head=" + a.head + (a.flip_average != "none" ? " flip-average=" + a.flip_average : "") +
      (a.shift_average > 0 ? " shift-average=" + std::to_string(a.shift_average) : "") +
      " epochs=" + std::to_string(a.epochs) +
      (a.repeats > 1 ? " repeats=" + std::to_string(a.repeats) : std::string()) +
      " batch=" + std::to_string(batch) +
      (loss == "triplet" ? " mining=" + a.mining : std::string()) +
      (loss == "cosface" ? " scale=" + fmt("%g", a.scale) : std::string()) +
      (loss == "supcon" ? " temperature=" + fmt("%g", a.temperature) : std::string()) +
      (a.embedding != "features" ? " embedding=" + a.embedding : std::string()) +
      (a.label_smoothing > 0 ? " label-smoothing=" + fmt("%g", a.label_smoothing) : std::string()) +
      (std::isnan(a.margin) ? std::string() : " margin=" + fmt("%g", a.margin)) +
      " lr=" + fmt("%g", a.lr) + " seed=" + std::to_string(a.seed) + (a.augment ? " augment" : "") +
      (a.erase > 0 ? " erase=" + fmt("%g", a.erase) : std::string());

  // Resuming: the options that change the result beyond the recipe, then the saved state.
  const std::string run_key =
      recipe + " weight-decay=" + fmt("%g", a.weight_decay) + " warmup=" + fmt("%g", a.warmup) +
      " val-fraction=" + fmt("%g", a.val_fraction) + " val-max=" + std::to_string(a.val_max) +
      " limit=" + std::to_string(a.limit) + " p=" + std::to_string(pk ? pk->p() : 0) +
      " k=" + std::to_string(pk ? pk->k() : 0) +
      (a.mode == "selfsup" ? " views=" + a.views + " cache-side=" + std::to_string(a.cache_side)
                           : std::string());
  auto save_checkpoint = [&](int epochs_done) {
    RunState st;
    st.key = run_key;
    st.epochs_done = epochs_done;
    st.rng = rng.state();
    st.has_pk = pk != nullptr;
    if (pk) st.pk_rng = pk->rng().state();
    st.order = order;
    st.history = history.dump();
    net.save_checkpoint(a.checkpoint, encode_progress(st));
  };
  int first_epoch = 0;
  if (!a.checkpoint.empty() && !std::filesystem::exists(a.checkpoint)) {
    save_checkpoint(0);  // the starting state: a path that cannot be written fails now
  } else if (!a.checkpoint.empty()) {
    const RunState st = decode_progress(net.load_checkpoint(a.checkpoint), a.checkpoint);
    if (st.key != run_key)
      throw Error("train: checkpoint '" + a.checkpoint +
                  "' was written by a run with other options (" + st.key +
                  "); give the same options, or remove it to start again");
    std::vector<char> seen(order.size(), 0);
    bool permutation = st.order.size() == order.size();
    for (std::size_t i = 0; permutation && i < st.order.size(); ++i) {
      const int64_t v = st.order[i];
      permutation = v >= 0 && v < n_train && !seen[static_cast<std::size_t>(v)];
      if (permutation) seen[static_cast<std::size_t>(v)] = 1;
    }
    if (st.epochs_done > a.epochs || !permutation || st.has_pk != bool(pk))
      throw FormatError("training checkpoint '" + a.checkpoint + "': does not fit this run");
    first_epoch = st.epochs_done;
    rng.set_state(st.rng);
    if (pk) pk->rng().set_state(st.pk_rng);
    order = st.order;
    history = json::parse(st.history, nullptr, false);
    if (!history.is_array())
      throw FormatError("training checkpoint '" + a.checkpoint + "': bad history");
    if (!common().quiet)
      std::cerr << "resuming from " << a.checkpoint << " after epoch " << first_epoch << "/"
                << a.epochs << "\n";
  }

  for (int epoch = first_epoch; epoch < a.epochs; ++epoch) {
    const auto t0 = std::chrono::steady_clock::now();
    if (views) views->set_epoch(static_cast<uint64_t>(epoch));
    Progress bar("epoch " + std::to_string(epoch + 1) + "/" + std::to_string(a.epochs), steps,
                 "steps");
    double sum = 0.0;
    for (int64_t s = 0; s < steps; ++s) {
      const int64_t sp = s % steps_per_pass;
      if (sp == 0)
        for (int64_t i = n_train - 1; i > 0; --i)
          std::swap(order[static_cast<std::size_t>(i)],
                    order[rng.below(static_cast<uint64_t>(i + 1))]);
      idx.assign(order.begin() + sp * batch, order.begin() + std::min(n_train, (sp + 1) * batch));
      if (a.mode == "metric") {
        idx.resize(static_cast<std::size_t>(batch));  // values unused: P x K sampling
        pk->get(idx, x, y);
      } else if (a.mode == "classifier") {
        base->get(idx, x, y);
      } else {
        views->get(idx, two, y);
        // (n, 2, C, S, S) -> (2n, C, S, S) with the views of image i at rows i and i + n.
        const auto n = static_cast<int64_t>(idx.size());
        const int64_t in = int64_t{C} * S * S;
        x.resize({2 * n, C, S, S});
        for (int64_t i = 0; i < n; ++i)
          for (int v = 0; v < 2; ++v)
            std::copy(two.data() + (2 * i + v) * in, two.data() + (2 * i + v + 1) * in,
                      x.data() + (v * n + i) * in);
        y.resize({2 * n});
        y.zero();
      }
      if (labelled && a.augment) flip_shift(x, shift, rng);
      if (labelled && a.erase > 0) {
        image::RandomErasing re;
        re.probability = static_cast<float>(a.erase);
        image::random_erasing(x, re, rng);
      }
      normalise(x, pre);
      net.optimizer()->set_learning_rate(
          schedule.lr(a.lr, epoch + static_cast<double>(s) / static_cast<double>(steps)));
      sum += net.train_step(x, y);
      bar.update(s + 1, "loss " + fmt("%.4f", sum / static_cast<double>(s + 1)));
    }
    json ep;
    ep["epoch"] = epoch + 1;
    ep["loss"] = sum / static_cast<double>(steps);
    std::string status = "loss " + fmt("%.4f", sum / static_cast<double>(steps));
    if (labelled && m.val_labels.size() >= 2) {
      Sequential emb = a.mode == "classifier" ? embedding_model(net, a, C, S) : Sequential();
      Tensor ev = embed_tensor(a.mode == "classifier" ? emb : net, m.val_x, pre);
      const auto r = similarity::evaluate_retrieval(ev.dim(0), ev.dim(1), ev.data(), m.val_labels);
      // A classifier's other embedding: its class scores, normalised.
      similarity::RetrievalMetrics rc;
      if (a.mode == "classifier") {
        Sequential cls = embedding_model(net, a, C, S, m.classes);
        Tensor ec = embed_tensor(cls, m.val_x, pre);
        rc = similarity::evaluate_retrieval(ec.dim(0), ec.dim(1), ec.data(), m.val_labels);
        ep["val_features_recall_at_1"] = r.recall_at_1;
        ep["val_features_map_at_r"] = r.map_at_r;
        ep["val_classes_recall_at_1"] = rc.recall_at_1;
        ep["val_classes_map_at_r"] = rc.map_at_r;
      }
      const auto& chosen = a.embedding == "classes" ? rc : r;
      ep["val_recall_at_1"] = chosen.recall_at_1;
      ep["val_map_at_r"] = chosen.map_at_r;
      if (a.mode == "classifier")
        status += ", held-out recall@1 / MAP@R: features " + fmt("%.4f", r.recall_at_1) + " / " +
                  fmt("%.4f", r.map_at_r) + ", classes " + fmt("%.4f", rc.recall_at_1) + " / " +
                  fmt("%.4f", rc.map_at_r);
      else
        status += ", held-out recall@1 " + fmt("%.4f", r.recall_at_1) + ", MAP@R " +
                  fmt("%.4f", r.map_at_r);
    }
    ep["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    history.push_back(ep);
    bar.finish(status);
    if (!a.checkpoint.empty()) {
      save_checkpoint(epoch + 1);
      if (a.stop_after > 0 && epoch + 1 - first_epoch >= a.stop_after && epoch + 1 < a.epochs) {
        if (common().json)
          std::cout << json{{"checkpoint", a.checkpoint},
                            {"epochs_done", epoch + 1},
                            {"epochs", a.epochs},
                            {"history", history}}
                           .dump(2)
                    << '\n';
        else
          std::cout << "stopped after epoch " << epoch + 1 << "/" << a.epochs << "; "
                    << a.checkpoint << " holds the state: run the same command to go on\n";
        return;
      }
    }
  }

  // The model file: the embedding network with its preprocessing and recipe.
  Sequential final_model =
      a.mode == "classifier"
          ? embedding_model(net, a, C, S, a.embedding == "classes" ? m.classes : 0)
          : std::move(net);
  pre.flip_average = a.flip_average == "hv"  ? similarity::Preprocessing::Flips::hv
                     : a.flip_average == "h" ? similarity::Preprocessing::Flips::h
                                             : similarity::Preprocessing::Flips::none;
  pre.shift_average = a.shift_average;
  pre.to_metadata(final_model.metadata());
  auto& md = final_model.metadata();
  md["imgsim.train.mode"] = a.mode;
  md["imgsim.train.loss"] = loss;
  md["imgsim.train.data"] = a.data;
  md["imgsim.train.recipe"] = recipe;
  similarity::Embedder e(std::move(final_model));

  json out;
  out["model"] = a.output;
  out["mode"] = a.mode;
  out["loss"] = loss;
  out["dim"] = e.dim();
  out["input"] = std::to_string(C) + "x" + std::to_string(S) + "x" + std::to_string(S);
  out["history"] = history;
  if (a.calibrate) {
    std::string on = a.calibrate_on.empty() ? (labelled ? "classes" : "views") : a.calibrate_on;
    Pairs pairs;
    if (on == "classes") {
      if (!labelled) throw UsageError("train: --calibrate-on classes needs labelled data");
      if (m.val_labels.size() < 2)
        throw Error("train: --calibrate needs held-out images (raise --val-fraction)");
      Tensor ev = embed_tensor(e.model(), m.val_x, pre);
      pairs = class_pairs(ev, m.val_labels, a.pairs, a.seed + 11);
    } else {
      std::vector<image::Image> imgs;
      if (!m.val_paths.empty()) {
        image::LoadOptions lo;
        lo.channels = C;
        for (const std::string& p : m.val_paths) {
          if (static_cast<int64_t>(imgs.size()) >= a.pairs) break;
          try {
            image::Image img = image::load_image(p, lo);
            // Shrunk as in training (the decoded-photo cache): the edits end at S x S anyway.
            const int side = std::max(img.width(), img.height()), cap = 4 * S;
            if (side > cap)
              img = image::resize(img, std::max(1, img.width() * cap / side),
                                  std::max(1, img.height() * cap / side));
            imgs.push_back(std::move(img));
          } catch (const std::exception& ex) {
            warn("skipped " + p + ": " + ex.what());
          }
        }
      } else {
        // Held-out tensors (Fashion-MNIST): back to images.
        const int64_t n = std::min<int64_t>(m.val_x.dim(0), a.pairs);
        for (int64_t i = 0; i < n; ++i) {
          image::Image img(S, S, C);
          for (int c = 0; c < C; ++c)
            for (int yy = 0; yy < S; ++yy)
              for (int xx = 0; xx < S; ++xx)
                img.at(xx, yy, c) = m.val_x.data()[((i * C + c) * S + yy) * S + xx];
          imgs.push_back(std::move(img));
        }
      }
      pairs = view_pairs(e, imgs, S, a.pairs, a.seed + 13);
    }
    if (pairs.same.empty() || pairs.different.empty())
      throw Error("train: --calibrate found no " +
                  std::string(pairs.same.empty() ? "same" : "different") +
                  " pairs among the held-out images (raise --val-fraction)");
    similarity::CalibrationOptions co;
    co.target_precision = a.target_precision;
    const similarity::Calibration c =
        similarity::calibrate_threshold(pairs.same, pairs.different, co);
    const std::string source =
        "calibrate_threshold on " + pairs.what + " (" +
        (a.target_precision > 0 ? "target precision " + fmt("%g", a.target_precision)
                                : std::string("max accuracy")) +
        "): accuracy " + fmt("%.4f", c.accuracy) + ", precision " + fmt("%.4f", c.precision) +
        ", recall " + fmt("%.4f", c.recall);
    e.set_threshold(c.threshold, source);
    out["threshold"] = c.threshold;
    out["calibration"] = {{"pairs", on},
                          {"same_pairs", c.same_pairs},
                          {"different_pairs", c.different_pairs},
                          {"accuracy", c.accuracy},
                          {"precision", c.precision},
                          {"recall", c.recall},
                          {"target_met", c.target_met}};
    if (!c.target_met)
      warn("no threshold reaches precision " + fmt("%g", a.target_precision) +
           " on the held-out pairs; kept the most precise one");
  }
  e.save(a.output);
  out["seconds"] =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
  if (common().json) {
    std::cout << out.dump(2) << '\n';
  } else {
    std::cout << "saved " << a.output << " (" << a.mode << ", dim " << e.dim() << ", input "
              << out["input"].get<std::string>() << ")";
    if (out.contains("threshold"))
      std::cout << "; threshold " << fixed6(out["threshold"].get<double>()) << " (accuracy "
                << fmt("%.4f", out["calibration"]["accuracy"].get<double>()) << ")";
    std::cout << '\n';
  }
}

}  // namespace

void add_train_command(CLI::App& app) {
  auto a = std::make_shared<TrainArgs>();
  CLI::App* sub = app.add_subcommand(
      "train", "Train an embedding model from Fashion-MNIST or a folder of images");
  sub->add_option("--mode", a->mode,
                  "classifier (softmax on classes, embedding before the head), metric "
                  "(triplet/contrastive on P x K batches of classes) or selfsup (NT-Xent on two "
                  "augmented views of unlabelled images)")
      ->capture_default_str()
      ->check(CLI::IsMember({"classifier", "metric", "selfsup"}));
  sub->add_option("--data", a->data,
                  "fashion-mnist (Debian dataset-fashion-mnist, training split) or a folder: "
                  "one sub-folder per class for classifier/metric, any images for selfsup")
      ->capture_default_str();
  sub->add_option("-o,--output", a->output, "model file to write")->required();
  auto* g_arch = sub->add_option_group("architecture");
  g_arch->add_option("--dim", a->dim, "embedding dimension")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{2}, int64_t{4096}));
  g_arch
      ->add_option("--size", a->size, "input side in pixels (default 28 Fashion-MNIST, 64 folders)")
      ->check(CLI::Range(0, 1024));
  g_arch
      ->add_option("--channels", a->channels,
                   "1 (gray) or 3 (RGB) (default 1 Fashion-MNIST, 3 folders)")
      ->check(CLI::IsMember({0, 1, 3}));
  g_arch
      ->add_option("--head", a->head,
                   "after the conv blocks: flatten, or gap (global average pooling)")
      ->capture_default_str()
      ->check(CLI::IsMember({"flatten", "gap"}));
  g_arch
      ->add_option("--flip-average", a->flip_average,
                   "embed each image and its mirror images and add them: h (left-right, twice the "
                   "inference work) or hv (also top-bottom, four times)")
      ->capture_default_str()
      ->check(CLI::IsMember({"none", "h", "hv"}));
  g_arch
      ->add_option("--shift-average", a->shift_average,
                   "also embed each of those views shifted by this many pixels left, right, up "
                   "and down (edges repeated) and add them: five times the work (0: off)")
      ->capture_default_str()
      ->check(CLI::Range(0, similarity::Preprocessing::kMaxShiftAverage));
  g_arch->add_option("--width", a->width, "filters of the first conv block (doubling per block)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));
  g_arch->add_option("--depth", a->depth, "convolutions per block")
      ->capture_default_str()
      ->check(CLI::Range(1, 4));
  auto* g_opt = sub->add_option_group("optimisation");
  g_opt->add_option("--epochs", a->epochs)->capture_default_str()->check(CLI::Range(0, 100000));
  g_opt->add_option("--repeats", a->repeats, "passes over the training images per epoch")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
  g_opt->add_option("--batch", a->batch, "batch size (metric: P x K replaces it)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{2}, int64_t{65536}));
  g_opt->add_option("--p", a->p, "metric: classes per batch (default min(classes, 16))")
      ->check(non_negative());
  g_opt->add_option("--k", a->k, "metric: images per class in a batch (default batch / P)")
      ->check(non_negative());
  g_opt->add_option("--lr", a->lr, "Adam learning rate (cosine schedule)")
      ->capture_default_str()
      ->check(positive());
  g_opt->add_option("--weight-decay", a->weight_decay, "AdamW decoupled weight decay (0: Adam)")
      ->capture_default_str()
      ->check(non_negative());
  g_opt->add_option("--warmup", a->warmup, "linear warm-up, epochs")
      ->capture_default_str()
      ->check(non_negative());
  g_opt->add_option("--seed", a->seed, "weights, split, batches, augmentation")
      ->capture_default_str();
  g_opt->add_option(
      "--loss", a->loss,
      "metric: triplet (default), contrastive or supcon (supervised NT-Xent, --temperature); "
      "classifier: softmax (default; Dense head) or "
      "cosface (cosine head, --scale, --margin; margin 0 is NormFace); selfsup: ntxent");
  g_opt->add_option("--mining", a->mining, "triplet mining")
      ->capture_default_str()
      ->check(CLI::IsMember({"batch_hard", "semi_hard", "all"}));
  g_opt
      ->add_option(
          "--margin", a->margin,
          "triplet (default 0.2), contrastive (default 1) or cosface (cosine, default 0.1) "
          "margin")
      ->check(non_negative());
  g_opt
      ->add_option("--embedding", a->embedding,
                   "classifier: the saved embedding is the features before the head (dim "
                   "--dim) or the normalised class scores (dim = classes)")
      ->capture_default_str()
      ->check(CLI::IsMember({"features", "classes"}));
  g_opt->add_option("--scale", a->scale, "cosface: scale of the cosine logits")
      ->capture_default_str()
      ->check(positive());
  g_opt->add_option("--temperature", a->temperature, "NT-Xent and supcon temperature")
      ->capture_default_str()
      ->check(positive());
  g_opt->add_option("--label-smoothing", a->label_smoothing, "classifier")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  g_opt->add_flag("--augment", a->augment,
                  "classifier/metric: random horizontal flips and small shifts");
  g_opt
      ->add_option("--erase", a->erase,
                   "classifier/metric: random erasing with this probability (a rectangle of 2-40% "
                   "of the image filled with noise; docs/augmentation.md)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  g_opt->add_option("--views", a->views, "selfsup augmentation")
      ->capture_default_str()
      ->check(CLI::IsMember({"near-duplicate", "simclr"}));
  auto* g_data = sub->add_option_group("data");
  g_data
      ->add_option("--val-fraction", a->val_fraction,
                   "share of the images held out (validation, calibration)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 0.9));
  g_data->add_option("--val-max", a->val_max, "at most this many held-out images")
      ->capture_default_str()
      ->check(non_negative());
  g_opt
      ->add_option("--checkpoint", a->checkpoint,
                   "training state file: resumed from when it exists (same options needed), "
                   "written after every epoch; a stopped run goes on with the same bits")
      ->capture_default_str();
  g_opt
      ->add_option("--stop-after", a->stop_after,
                   "with --checkpoint: stop after this many epochs of this run (0: all)")
      ->capture_default_str()
      ->check(CLI::Range(0, 100000));
  g_data->add_option("--limit", a->limit, "use at most this many training images (quick runs)")
      ->check(non_negative());
  g_data->add_option("--max-memory-mb", a->max_memory_mb, "refuse to load more image data")
      ->capture_default_str();
  g_data
      ->add_option("--cache-side", a->cache_side,
                   "selfsup: keep decoded photos in memory shrunk to this longer side "
                   "(default 4 x --size; off if over --max-memory-mb)")
      ->check(CLI::Range(0, 8192));
  auto* g_cal = sub->add_option_group("threshold");
  g_cal->add_flag("--calibrate", a->calibrate,
                  "calibrate the same/different threshold on held-out pairs and store it in the "
                  "model");
  g_cal
      ->add_option("--calibrate-on", a->calibrate_on,
                   "classes: same-class vs different-class pairs (default with labels); views: "
                   "near-duplicate edits of one image vs of two (default for selfsup)")
      ->check(CLI::IsMember({"classes", "views"}));
  g_cal
      ->add_option("--target-precision", a->target_precision,
                   "pick the lowest threshold with this precision instead of the most accurate")
      ->check(CLI::Range(0.0, 1.0));
  g_cal->add_option("--pairs", a->pairs, "pairs of each kind for calibration")
      ->capture_default_str()
      ->check(positive());
  add_threads_option(*sub);
  add_json_flag(*sub, "print a JSON summary (history, calibration)");
  add_quiet_flag(*sub);
  sub->footer(
      "Examples:\n"
      "  imgsim train --mode metric --data fashion-mnist --epochs 10 --augment --calibrate -o "
      "fmnist.imgsim\n"
      "  imgsim train --mode selfsup --data photos/ --size 64 --epochs 20 --calibrate -o "
      "photos.imgsim");
  sub->callback([a] { run_train(*a); });
}

}  // namespace imgsim::cli
