#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <functional>
#include <random>
#include <string>

#include "data_test_util.hpp"
#include "imgsim/data/mnist.hpp"
#include "imgsim/error.hpp"

using namespace imgsim;
using namespace imgsim::data;
using imgsim::testing::Bytes;
using imgsim::testing::TempDir;

namespace {

Bytes idx_header(uint32_t magic, std::initializer_list<uint32_t> dims) {
  Bytes b;
  imgsim::testing::put_be32(b, magic);
  for (uint32_t d : dims) imgsim::testing::put_be32(b, d);
  return b;
}

// An IDX3 image file with seeded random pixels; `pixels` receives them.
Bytes idx_images(uint32_t n, uint32_t rows, uint32_t cols, uint32_t seed, Bytes* pixels = nullptr) {
  Bytes b = idx_header(0x803, {n, rows, cols});
  std::mt19937 rng(seed);
  Bytes px(static_cast<std::size_t>(n) * rows * cols);
  for (auto& p : px) p = static_cast<unsigned char>(rng() & 0xff);
  b.insert(b.end(), px.begin(), px.end());
  if (pixels) *pixels = px;
  return b;
}

Bytes idx_labels(const Bytes& labels) {
  Bytes b = idx_header(0x801, {static_cast<uint32_t>(labels.size())});
  b.insert(b.end(), labels.begin(), labels.end());
  return b;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

}  // namespace

TEST_CASE("IDX images and labels read back from raw and gzip files", "[idx]") {
  TempDir dir;
  Bytes pixels;
  const Bytes images = idx_images(5, 3, 4, 42, &pixels);
  const Bytes labels = idx_labels({3, 0, 9, 255, 7});
  imgsim::testing::write_file(dir / "img.idx", images);
  imgsim::testing::write_file(dir / "img.idx.gz", imgsim::testing::gzip_stored(images));
  imgsim::testing::write_file(dir / "lab.idx", labels);
  imgsim::testing::write_file(dir / "lab.idx.gz", imgsim::testing::gzip_stored(labels));

  for (const char* name : {"img.idx", "img.idx.gz"}) {
    DYNAMIC_SECTION(name) {
      Tensor t = read_idx_images(dir / name);
      REQUIRE(t.shape() == Shape{5, 1, 3, 4});
      for (std::size_t i = 0; i < pixels.size(); ++i)
        REQUIRE(t[static_cast<int64_t>(i)] == static_cast<float>(pixels[i]) / 255.0f);
    }
  }
  for (const char* name : {"lab.idx", "lab.idx.gz"}) {
    DYNAMIC_SECTION(name) {
      Tensor t = read_idx_labels(dir / name);
      REQUIRE(t.shape() == Shape{5});
      CHECK(t[0] == 3.0f);
      CHECK(t[1] == 0.0f);
      CHECK(t[2] == 9.0f);
      CHECK(t[3] == 255.0f);
      CHECK(t[4] == 7.0f);
    }
  }
}

TEST_CASE("IDX reader handles a payload spanning many gzip blocks and zero samples", "[idx]") {
  TempDir dir;
  Bytes pixels;
  const Bytes images = idx_images(300, 28, 28, 7, &pixels);  // 235 200 bytes, 4 stored blocks
  imgsim::testing::write_file(dir / "big.gz", imgsim::testing::gzip_stored(images));
  Tensor t = read_idx_images(dir / "big.gz");
  REQUIRE(t.shape() == Shape{300, 1, 28, 28});
  CHECK(t[t.numel() - 1] == static_cast<float>(pixels.back()) / 255.0f);
  CHECK(t[100000] == static_cast<float>(pixels[100000]) / 255.0f);

  imgsim::testing::write_file(dir / "none", idx_header(0x803, {0, 28, 28}));
  CHECK(read_idx_images(dir / "none").shape() == Shape{0, 1, 28, 28});
}

TEST_CASE("IDX reader rejects a wrong magic number", "[idx][error]") {
  TempDir dir;
  imgsim::testing::write_file(dir / "lab", idx_labels({1, 2}));
  imgsim::testing::write_file(dir / "img", idx_images(1, 2, 2, 1));
  const std::string e1 = error_of([&] { read_idx_images(dir / "lab"); });
  CHECK(contains(e1, dir / "lab"));
  CHECK(contains(e1, "0x00000801"));
  CHECK(contains(e1, "0x00000803"));
  REQUIRE_THROWS_AS(read_idx_images(dir / "lab"), FormatError);
  REQUIRE_THROWS_AS(read_idx_labels(dir / "img"), FormatError);
  // A 16-bit IDX file (type 0x0b) is not unsigned bytes.
  Bytes shorts = idx_header(0x0b03, {1, 1, 1});
  shorts.push_back(0);
  shorts.push_back(0);
  imgsim::testing::write_file(dir / "shorts", shorts);
  REQUIRE_THROWS_AS(read_idx_images(dir / "shorts"), FormatError);
  // Not IDX at all.
  imgsim::testing::write_file(dir / "text", Bytes{'h', 'e', 'l', 'l', 'o', ' ', 'w', 'o', 'r'});
  REQUIRE_THROWS_AS(read_idx_labels(dir / "text"), FormatError);
}

TEST_CASE("IDX reader names expected and found sizes of a truncated file", "[idx][error]") {
  TempDir dir;
  Bytes images = idx_images(10, 28, 28, 3);  // 16 + 7840 bytes
  images.resize(5016);
  imgsim::testing::write_file(dir / "cut", images);
  imgsim::testing::write_file(dir / "cut.gz", imgsim::testing::gzip_stored(images));
  for (const char* name : {"cut", "cut.gz"}) {
    DYNAMIC_SECTION(name) {
      REQUIRE_THROWS_AS(read_idx_images(dir / name), FormatError);
      const std::string e = error_of([&] { read_idx_images(dir / name); });
      CHECK(contains(e, dir / name));
      CHECK(contains(e, "expected 7856"));
      CHECK(contains(e, "found 5016"));
    }
  }
  // Header itself cut short.
  imgsim::testing::write_file(dir / "head", Bytes{0, 0, 8, 3, 0, 0});
  const std::string e = error_of([&] { read_idx_images(dir / "head"); });
  CHECK(contains(e, "expected 16"));
  CHECK(contains(e, "found 6"));
  // A gzip file cut in the middle of its deflate data.
  Bytes gz = imgsim::testing::gzip_stored(idx_images(10, 28, 28, 3));
  gz.resize(gz.size() / 2);
  imgsim::testing::write_file(dir / "half.gz", gz);
  const std::string e2 = error_of([&] { read_idx_images(dir / "half.gz"); });
  CHECK(contains(e2, "truncated"));
  CHECK(contains(e2, "expected 7856"));
  REQUIRE_THROWS_AS(read_idx_images(dir / "half.gz"), FormatError);
}

TEST_CASE("IDX reader rejects bytes beyond the promised payload", "[idx][error]") {
  TempDir dir;
  Bytes labels = idx_labels({1, 2, 3});
  labels.push_back(4);
  labels.push_back(5);
  imgsim::testing::write_file(dir / "long", labels);
  imgsim::testing::write_file(dir / "long.gz", imgsim::testing::gzip_stored(labels));
  for (const char* name : {"long", "long.gz"}) {
    DYNAMIC_SECTION(name) {
      REQUIRE_THROWS_AS(read_idx_labels(dir / name), FormatError);
      const std::string e = error_of([&] { read_idx_labels(dir / name); });
      CHECK(contains(e, "holds 13 bytes, expected 11"));
    }
  }
}

TEST_CASE("IDX reader reports corrupt gzip data as FormatError", "[idx][error]") {
  TempDir dir;
  const Bytes images = idx_images(2, 4, 4, 9);
  SECTION("checksum mismatch") {
    Bytes gz = imgsim::testing::gzip_stored(images);
    gz[gz.size() - 8] ^= 0x5a;  // first CRC-32 byte
    imgsim::testing::write_file(dir / "crc.gz", gz);
    REQUIRE_THROWS_AS(read_idx_images(dir / "crc.gz"), FormatError);
    CHECK(contains(error_of([&] { read_idx_images(dir / "crc.gz"); }), "corrupt gzip"));
  }
  SECTION("invalid deflate block type") {
    Bytes gz = imgsim::testing::gzip_stored(images);
    gz[10] = 0x07;  // BFINAL = 1, BTYPE = 11 (reserved)
    imgsim::testing::write_file(dir / "block.gz", gz);
    REQUIRE_THROWS_AS(read_idx_images(dir / "block.gz"), FormatError);
    CHECK(contains(error_of([&] { read_idx_images(dir / "block.gz"); }), "corrupt gzip"));
  }
  SECTION("trailer missing after complete data") {
    Bytes gz = imgsim::testing::gzip_stored(images);
    gz.resize(gz.size() - 8);
    imgsim::testing::write_file(dir / "trailer.gz", gz);
    REQUIRE_THROWS_AS(read_idx_images(dir / "trailer.gz"), FormatError);
  }
}

TEST_CASE("IDX reader refuses hostile dimensions before allocating", "[idx][error]") {
  TempDir dir;
  imgsim::testing::write_file(dir / "huge",
                              idx_header(0x803, {0xffffffffu, 0xffffffffu, 0xffffffffu}));
  imgsim::testing::write_file(dir / "big", idx_header(0x803, {3000000, 1000, 1000}));
  imgsim::testing::write_file(dir / "biglab", idx_header(0x801, {0x80000001u}));
  for (const char* name : {"huge", "big"}) {
    DYNAMIC_SECTION(name) {
      REQUIRE_THROWS_AS(read_idx_images(dir / name), FormatError);
      CHECK(contains(error_of([&] { read_idx_images(dir / name); }), "refusing"));
    }
  }
  REQUIRE_THROWS_AS(read_idx_labels(dir / "biglab"), FormatError);
  // Exactly at the cap is allowed by the header check and then fails as truncated.
  imgsim::testing::write_file(dir / "cap", idx_header(0x801, {0x80000000u}));
  CHECK(contains(error_of([&] { read_idx_labels(dir / "cap"); }), "found 8"));
  // A zero image side.
  imgsim::testing::write_file(dir / "zero", idx_header(0x803, {5, 0, 28}));
  REQUIRE_THROWS_AS(read_idx_images(dir / "zero"), FormatError);
}

TEST_CASE("IDX reader reports missing files as IoError", "[idx][error]") {
  TempDir dir;
  REQUIRE_THROWS_AS(read_idx_images(dir / "absent.gz"), IoError);
  CHECK(contains(error_of([&] { read_idx_images(dir / "absent.gz"); }), dir / "absent.gz"));
  REQUIRE_THROWS_AS(read_idx_labels(dir.path().string()), IoError);  // a folder

  REQUIRE_THROWS_AS(load_fashion_mnist(Split::test, dir.path().string()), IoError);
  const std::string e = error_of([&] { load_fashion_mnist(Split::test, dir.path().string()); });
  CHECK(contains(e, "apt-get install dataset-fashion-mnist"));
  CHECK(contains(e, "t10k-images-idx3-ubyte"));
  CHECK(contains(e, "IMGSIM_FASHION_MNIST_DIR"));
}

TEST_CASE("load_fashion_mnist reads a split from a folder and checks it", "[idx][fashion]") {
  TempDir dir;
  Bytes pixels;
  imgsim::testing::write_file(dir / "train-images-idx3-ubyte.gz",
                              imgsim::testing::gzip_stored(idx_images(4, 28, 28, 11, &pixels)));
  imgsim::testing::write_file(dir / "train-labels-idx1-ubyte", idx_labels({9, 0, 4, 2}));
  LabeledImages d = load_fashion_mnist(Split::train, dir.path().string());
  REQUIRE(d.images.shape() == Shape{4, 1, 28, 28});
  REQUIRE(d.labels.shape() == Shape{4});
  CHECK(d.labels[0] == 9.0f);
  CHECK(d.labels[3] == 2.0f);
  CHECK(d.images.at(1, 0, 5, 7) == static_cast<float>(pixels[784 + 5 * 28 + 7]) / 255.0f);

  SECTION("label count must match") {
    imgsim::testing::write_file(dir / "train-labels-idx1-ubyte", idx_labels({9, 0, 4}));
    REQUIRE_THROWS_AS(load_fashion_mnist(Split::train, dir.path().string()), FormatError);
  }
  SECTION("labels must be classes 0-9") {
    imgsim::testing::write_file(dir / "train-labels-idx1-ubyte", idx_labels({9, 0, 10, 2}));
    REQUIRE_THROWS_AS(load_fashion_mnist(Split::train, dir.path().string()), FormatError);
  }
  SECTION("images must be 28 x 28") {
    imgsim::testing::write_file(dir / "train-images-idx3-ubyte.gz",
                                imgsim::testing::gzip_stored(idx_images(4, 28, 27, 11)));
    REQUIRE_THROWS_AS(load_fashion_mnist(Split::train, dir.path().string()), FormatError);
  }
  SECTION("the test split is separate") {
    REQUIRE_THROWS_AS(load_fashion_mnist(Split::test, dir.path().string()), IoError);
  }
}

TEST_CASE("default Fashion-MNIST folder honours IMGSIM_FASHION_MNIST_DIR", "[idx][fashion]") {
  const char* old = std::getenv("IMGSIM_FASHION_MNIST_DIR");
  const std::string saved = old ? old : "";
  setenv("IMGSIM_FASHION_MNIST_DIR", "/some/where", 1);
  CHECK(default_fashion_mnist_dir() == "/some/where");
  setenv("IMGSIM_FASHION_MNIST_DIR", "", 1);
  CHECK(default_fashion_mnist_dir() == "/usr/share/datasets/fashion-mnist");
  unsetenv("IMGSIM_FASHION_MNIST_DIR");
  CHECK(default_fashion_mnist_dir() == "/usr/share/datasets/fashion-mnist");
  if (old) setenv("IMGSIM_FASHION_MNIST_DIR", saved.c_str(), 1);
  REQUIRE(fashion_mnist_class_names().size() == 10);
  CHECK(fashion_mnist_class_names()[0] == "T-shirt/top");
  CHECK(fashion_mnist_class_names()[9] == "Ankle boot");
}

TEST_CASE("installed Fashion-MNIST has the published shape and balance", "[idx][fashion][real]") {
  const std::string dir = "/usr/share/datasets/fashion-mnist";
  if (!std::filesystem::exists(std::filesystem::path(dir) / "t10k-images-idx3-ubyte.gz")) {
    WARN("Fashion-MNIST not installed (apt-get install dataset-fashion-mnist); test skipped");
    return;
  }
  for (Split split : {Split::test, Split::train}) {
    const int64_t n = split == Split::test ? 10000 : 60000;
    DYNAMIC_SECTION((split == Split::test ? "test" : "train")) {
      LabeledImages d = load_fashion_mnist(split, dir);
      REQUIRE(d.images.shape() == Shape{n, 1, 28, 28});
      REQUIRE(d.labels.shape() == Shape{n});
      std::vector<int64_t> counts(10, 0);
      for (int64_t i = 0; i < n; ++i) {
        const float l = d.labels[i];
        REQUIRE(l >= 0.0f);
        REQUIRE(l < 10.0f);
        REQUIRE(l == static_cast<float>(static_cast<int>(l)));
        ++counts[static_cast<std::size_t>(l)];
      }
      for (int64_t c : counts) CHECK(c == n / 10);
      float lo = 1.0f, hi = 0.0f;
      double sum = 0.0;
      for (int64_t i = 0; i < d.images.numel(); ++i) {
        lo = std::min(lo, d.images[i]);
        hi = std::max(hi, d.images[i]);
        sum += d.images[i];
      }
      CHECK(lo == 0.0f);
      CHECK(hi == 1.0f);
      // Fashion-MNIST's mean pixel is about 0.286 in both splits.
      CHECK(sum / static_cast<double>(d.images.numel()) == Approx(0.286).margin(0.01));
    }
  }
}
