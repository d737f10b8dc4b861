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
