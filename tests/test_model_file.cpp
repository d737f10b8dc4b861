// Model files: bit-exact round trips and every kind of bad file (docs/file-format.md).
#include <unistd.h>
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <vector>

#include <catch2/catch.hpp>

#include "imgsim/error.hpp"
#include "imgsim/nn/layers.hpp"
#include "imgsim/nn/sequential.hpp"
#include "imgsim/nn/serialize.hpp"

using namespace imgsim;
using namespace imgsim::nn;
namespace fs = std::filesystem;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() / ("imgsim_model_test_" + std::to_string(::getpid()));
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string file(const std::string& name) const { return (path / name).string(); }
};

Sequential every_layer_model() {
  Sequential m;
  m.add(Conv2D(
      4, {3, 2},
      {.stride = {2, 1}, .padding = Padding::same, .use_bias = false, .input_shape = {3, 9, 8}}));
  m.add(BatchNorm());
  m.add(LeakyReLU(0.2f));
  m.add(MaxPool2D({2, 2}, {.stride = {1, 2}}));
  m.add(Conv2D(5, {2, 2},
               {.padding = Padding::explicit_, .pad = {1, 1}, .activation = Activation::sigmoid}));
  m.add(Tanh());
  m.add(Flatten());
  m.add(Dense(6, {.activation = Activation::relu}));
  m.add(BatchNorm({.momentum = 0.2f, .eps = 1e-3f}));
  m.add(Dropout(0.25f));
  m.add(Sigmoid());
  m.add(ReLU());
  m.add(Dense(3));
  m.add(Softmax());
  return m;
}

Tensor random_input(int64_t n, uint64_t seed) {
  Rng rng(seed);
  Tensor x({n, 3, 9, 8});
  for (int64_t i = 0; i < x.numel(); ++i) x[i] = rng.normal();
  return x;
}

std::vector<uint8_t> slurp(const std::string& p) {
  return read_file(p);
}
void spit(const std::string& p, const std::vector<uint8_t>& b) {
  std::ofstream f(p, std::ios::binary);
  f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

Sequential trained_model() {
  Sequential m = every_layer_model();
  m.build({3, 9, 8}, 5);
  m.compile(Adam(), MeanSquaredError());  // the model ends in Softmax: regress one-hot targets
  Tensor x = random_input(8, 1);
  Tensor y({8, 3});
  for (int i = 0; i < 8; ++i) y[i * 3 + i % 3] = 1.0f;
  for (int i = 0; i < 3; ++i) m.train_step(x, y);  // moves weights and BatchNorm statistics
  return m;
}

}  // namespace

TEST_CASE("Save and load reproduce predictions bit for bit", "[model_file]") {
  TempDir dir;
  Sequential m = trained_model();
  m.metadata()["threshold"] = "0.75";
  Tensor x = random_input(5, 2);
  Tensor before = m.predict(x);
  m.save(dir.file("m.imgsim"));
  CHECK_FALSE(fs::exists(dir.file("m.imgsim") + ".tmp"));
  Sequential loaded = Sequential::from_file(dir.file("m.imgsim"));
  Tensor after = loaded.predict(x);
  REQUIRE(after.shape() == before.shape());
  for (int64_t i = 0; i < before.numel(); ++i) CHECK(after[i] == before[i]);
  CHECK(loaded.metadata().at("threshold") == "0.75");
  REQUIRE(loaded.size() == m.size());
  for (std::size_t i = 0; i < m.size(); ++i) {
    CHECK(loaded.layer(i).name == m.layer(i).name);
    CHECK(loaded.layer(i).describe() == m.layer(i).describe());
  }
  // Saving the loaded model gives the same bytes.
  loaded.save(dir.file("m2.imgsim"));
  CHECK(slurp(dir.file("m.imgsim")) == slurp(dir.file("m2.imgsim")));
}

TEST_CASE("A global-average-pooling embedding model with a cosine head round trips bit for bit",
          "[model_file]") {
  TempDir dir;
  Sequential m;
  m.add(Conv2D(6, {3, 3}, {.padding = Padding::same, .input_shape = {3, 9, 8}}));
  m.add(BatchNorm());
  m.add(ReLU());
  m.add(GlobalAvgPool2D());
  m.add(Dense(4));
  m.add(L2Normalize());
  m.add(CosineDense(5, {.scale = 8.0f}));
  m.build({3, 9, 8}, 3);
  m.compile(Adam(), MeanSquaredError());
  Tensor x = random_input(6, 4);
  Tensor y({6, 5}, 0.5f);
  for (int i = 0; i < 2; ++i) m.train_step(x, y);
  Tensor before = m.predict(x);
  m.save(dir.file("gap.imgsim"));
  Sequential loaded = Sequential::from_file(dir.file("gap.imgsim"));
  Tensor after = loaded.predict(x);
  REQUIRE(after.shape() == before.shape());
  for (int64_t i = 0; i < before.numel(); ++i) CHECK(after[i] == before[i]);
  CHECK(loaded.layer(3).describe() == "GlobalAvgPool2D()");
  CHECK(loaded.layer(6).describe() == "CosineDense(5, scale 8)");
}

TEST_CASE("Bad model files throw FormatError and leave the model untouched", "[model_file][bad]") {
  TempDir dir;
  Sequential m = trained_model();
  const std::string good = dir.file("good.imgsim");
  m.save(good);
  const std::vector<uint8_t> bytes = slurp(good);
  Tensor x = random_input(4, 3);

  Sequential target = every_layer_model();
  target.build({3, 9, 8}, 99);
  Tensor reference = target.predict(x);
  auto expect_untouched = [&] {
    Tensor now = target.predict(x);
    for (int64_t i = 0; i < now.numel(); ++i) REQUIRE(now[i] == reference[i]);
  };
  auto expect_error = [&](const std::vector<uint8_t>& b, const std::string& fragment) {
    const std::string p = dir.file("bad.imgsim");
    spit(p, b);
    try {
      target.load(p);
      FAIL("load accepted a bad file; expected: " << fragment);
    } catch (const FormatError& e) {
      INFO(e.what());
      CHECK(std::string(e.what()).find(fragment) != std::string::npos);
      CHECK(std::string(e.what()).find(p) != std::string::npos);
    }
    expect_untouched();
  };

  SECTION("truncated at many points") {
    for (std::size_t cut : {std::size_t{0}, std::size_t{5}, std::size_t{27}, std::size_t{40},
                            bytes.size() / 2, bytes.size() - 1}) {
      std::vector<uint8_t> b(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(cut));
      const std::string p = dir.file("cut.imgsim");
      spit(p, b);
      CHECK_THROWS_AS(target.load(p), FormatError);
      expect_untouched();
    }
  }
  SECTION("wrong magic") {
    auto b = bytes;
    b[0] = 'X';
    expect_error(b, "magic");
  }
  SECTION("wrong version") {
    auto b = bytes;
    b[8] = 7;
    expect_error(b, "format version 7");
  }
  SECTION("corrupt payload byte") {
    auto b = bytes;
    b[b.size() / 2] ^= 0x40;
    expect_error(b, "checksum");
  }
  SECTION("extra bytes") {
    auto b = bytes;
    b.push_back(0);
    expect_error(b, "payload size");
  }
  SECTION("unknown layer type with a valid checksum") {
    // Rebuild a file whose first layer type is renamed, with a correct checksum.
    auto b = bytes;
    const std::string from = "conv2d", to = "convXd";
    auto it = std::search(b.begin() + 28, b.end(), from.begin(), from.end());
    REQUIRE(it != b.end());
    std::copy(to.begin(), to.end(), it);
    uint32_t crc = crc32(b.data() + 28, b.size() - 28);
    std::memcpy(b.data() + 24, &crc, 4);
    expect_error(b, "unknown layer type 'convXd'");
  }
  SECTION("newer layer record version with a valid checksum") {
    auto b = bytes;
    const std::string from = "conv2d";
    auto it = std::search(b.begin() + 28, b.end(), from.begin(), from.end());
    REQUIRE(it != b.end());
    uint32_t v = 9;
    std::memcpy(&*(it + 6), &v, 4);  // the u32 after the type string
    uint32_t crc = crc32(b.data() + 28, b.size() - 28);
    std::memcpy(b.data() + 24, &crc, 4);
    expect_error(b, "record version 9");
  }
  SECTION("missing file") {
    CHECK_THROWS_AS(target.load(dir.file("nope.imgsim")), IoError);
    expect_untouched();
  }
}

TEST_CASE("Saving into a missing folder throws IoError and leaves no file", "[model_file][bad]") {
  TempDir dir;
  Sequential m = trained_model();
  CHECK_THROWS_AS(m.save(dir.file("no/such/dir/m.imgsim")), IoError);
  Sequential unbuilt = every_layer_model();
  CHECK_THROWS_AS(unbuilt.save(dir.file("m.imgsim")), StateError);
  CHECK_FALSE(fs::exists(dir.file("m.imgsim")));
}

// --- training checkpoints ----------------------------------------------------------------------

namespace {

Sequential compiled_model(const std::string& optimizer, uint64_t seed = 5) {
  Sequential m = every_layer_model();  // BatchNorm state and a Dropout generator included
  m.build({3, 9, 8}, seed);
  if (optimizer == "sgd")
    m.compile(SGD({.lr = 0.05, .momentum = 0.9, .nesterov = true}), MeanSquaredError());
  else if (optimizer == "adamw")
    m.compile(AdamW(), MeanSquaredError());
  else
    m.compile(Adam(), MeanSquaredError());
  return m;
}

void train_steps(Sequential& m, int steps, uint64_t seed) {
  Tensor y({8, 3});
  for (int i = 0; i < 8; ++i) y[i * 3 + i % 3] = 1.0f;
  for (int s = 0; s < steps; ++s) m.train_step(random_input(8, seed + static_cast<uint64_t>(s)), y);
}

std::vector<float> all_values(Sequential& m) {
  std::vector<float> v;
  for (const Param& p : m.params())
    v.insert(v.end(), p.value->data(), p.value->data() + p.value->numel());
  for (std::size_t i = 0; i < m.size(); ++i)
    for (Tensor* t : m.layer(i).state()) v.insert(v.end(), t->data(), t->data() + t->numel());
  return v;
}

}  // namespace

TEST_CASE("A checkpoint resumes training with the same bits", "[model_file][checkpoint]") {
  TempDir dir;
  for (const char* opt : {"sgd", "adam", "adamw"}) {
    INFO(opt);
    const std::string path = dir.file(std::string(opt) + ".ckpt");
    const std::vector<uint8_t> extra = {7, 0, 255, 3};
    Sequential a = compiled_model(opt);
    train_steps(a, 3, 100);
    a.save_checkpoint(path, extra);
    CHECK_FALSE(fs::exists(path + ".tmp"));
    train_steps(a, 2, 200);

    // A model built with another seed (other weights) and never trained: everything comes
    // from the file.
    Sequential b = compiled_model(opt, 99);
    CHECK(b.load_checkpoint(path) == extra);
    CHECK(b.optimizer()->steps() == 3);
    train_steps(b, 2, 200);
    CHECK(all_values(b) == all_values(a));
    Tensor x = random_input(4, 7);
    const Tensor pa = a.predict(x), pb = b.predict(x);
    for (int64_t i = 0; i < pa.numel(); ++i) CHECK(pa[i] == pb[i]);
  }
}

TEST_CASE("Without the optimizer's moments or the Dropout generator, resuming differs",
          "[model_file][checkpoint]") {
  // The bit-exact resume above is not an accident of the test: the same weights with a fresh
  // optimizer (Adam restarting its moments and step count) give other weights after a step.
  TempDir dir;
  Sequential a = compiled_model("adam");
  train_steps(a, 3, 100);
  a.save(dir.file("weights.imgsim"));
  train_steps(a, 1, 200);
  Sequential b = compiled_model("adam");
  b.load(dir.file("weights.imgsim"));
  train_steps(b, 1, 200);
  CHECK(all_values(b) != all_values(a));
}

TEST_CASE("Bad checkpoints throw and leave the model as it was", "[model_file][checkpoint][bad]") {
  TempDir dir;
  Sequential a = compiled_model("adam");
  train_steps(a, 2, 100);
  const std::string path = dir.file("a.ckpt");
  a.save_checkpoint(path, {1, 2, 3});
  const std::vector<uint8_t> bytes = slurp(path);

  Sequential b = compiled_model("adam");
  train_steps(b, 1, 300);
  const std::vector<float> before = all_values(b);
  const int64_t steps_before = b.optimizer()->steps();
  auto expect_error = [&](const std::vector<uint8_t>& file, const std::string& needle) {
    spit(dir.file("bad.ckpt"), file);
    try {
      b.load_checkpoint(dir.file("bad.ckpt"));
      FAIL("no exception for: " << needle);
    } catch (const FormatError& e) {
      INFO(e.what());
      CHECK(std::string(e.what()).find(needle) != std::string::npos);
    }
    CHECK(all_values(b) == before);
  };
  SECTION("truncated") {
    for (std::size_t n : {std::size_t{0}, std::size_t{20}, bytes.size() / 2, bytes.size() - 1})
      expect_error(std::vector<uint8_t>(bytes.begin(), bytes.begin() + static_cast<long>(n)),
                   n < 28 ? "too short" : "truncated");
  }
  SECTION("a flipped byte") {
    auto f = bytes;
    f[f.size() / 2] ^= 0x40;
    expect_error(f, "checksum mismatch");
  }
  SECTION("a model file") {
    a.save(dir.file("m.imgsim"));
    expect_error(slurp(dir.file("m.imgsim")), "not an imgsim training checkpoint");
  }
  SECTION("another model") {
    Sequential other;
    other.add(Flatten({.input_shape = {3, 9, 8}}));
    other.add(Dense(3));
    other.build({3, 9, 8}, 1);
    other.compile(Adam(), MeanSquaredError());
    Tensor y({2, 3}, 0.5f);
    other.train_step(random_input(2, 1), y);
    other.save_checkpoint(dir.file("other.ckpt"), {});
    expect_error(slurp(dir.file("other.ckpt")), "layers");
  }
  SECTION("another optimizer") {
    Sequential s = compiled_model("sgd");
    train_steps(s, 1, 100);
    s.save_checkpoint(dir.file("sgd.ckpt"), {});
    expect_error(slurp(dir.file("sgd.ckpt")), "optimizer state is for 'sgd'");
    CHECK(b.optimizer()->steps() == 0);  // forgotten, as documented
  }
  SECTION("missing file, unbuilt or uncompiled model") {
    CHECK_THROWS_AS(b.load_checkpoint(dir.file("nope.ckpt")), IoError);
    CHECK(all_values(b) == before);
    CHECK(b.optimizer()->steps() == steps_before);
    Sequential u = every_layer_model();
    CHECK_THROWS_AS(u.load_checkpoint(path), StateError);
    CHECK_THROWS_AS(u.save_checkpoint(dir.file("u.ckpt"), {}), StateError);
    u.build({3, 9, 8}, 1);
    CHECK_THROWS_AS(u.load_checkpoint(path), StateError);
  }
}

TEST_CASE("Rng state round trips", "[rng]") {
  Rng a(42);
  for (int i = 0; i < 5; ++i) a.normal();  // leaves a cached spare
  Rng b(7);
  b.set_state(a.state());
  for (int i = 0; i < 20; ++i) CHECK(a.normal() == b.normal());
  for (int i = 0; i < 20; ++i) CHECK(a.next_u64() == b.next_u64());
  CHECK_THROWS_AS(b.set_state(Rng::State{}), InvalidArgument);
}
