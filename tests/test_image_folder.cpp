#include <catch2/catch.hpp>

#include <filesystem>
#include <functional>
#include <random>
#include <string>

#include "data_test_util.hpp"
#include "imgsim/data/image_folder.hpp"
#include "imgsim/error.hpp"
#include "imgsim/image/image.hpp"

using namespace imgsim;
using namespace imgsim::data;
using imgsim::testing::Bytes;
using imgsim::testing::TempDir;

namespace {

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

// A w x h image of one colour, saved as PNG (exact) at `path`.
void solid_png(const std::string& path, int w, int h, int channels, std::array<float, 3> rgb) {
  image::Image img(w, h, channels);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < channels; ++c) img.at(x, y, c) = c < 3 ? rgb[c] : 1.0f;
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  image::save_png(path, img);
}

// root/ant: 2 images, root/cat: 2 (one nested, one upper-case extension) plus a PNG whose data
// is cut short, root/zebra: 1 gray image plus junk the constructor must skip or ignore.
void build_tree(const TempDir& root) {
  solid_png(root / "ant/b.png", 10, 6, 3, {1.0f, 0.0f, 0.0f});
  solid_png(root / "ant/a.png", 3, 3, 3, {1.0f, 0.0f, 0.0f});
  solid_png(root / "cat/sub/x.png", 8, 8, 4, {0.0f, 1.0f, 0.0f});
  solid_png(root / "cat/Y.PNG", 4, 4, 3, {0.0f, 1.0f, 0.0f});
  solid_png(root / "zebra/z.png", 5, 5, 1, {0.2f, 0.2f, 0.2f});
  // Header intact, pixel data missing: passes the constructor's probe, fails in get().
  Bytes cut;
  image::read_file(root / "cat/Y.PNG", cut);
  cut.resize(40);
  imgsim::testing::write_file(root / "cat/cut.png", cut);
  // Not an image at all, but named like one: skipped by the constructor.
  imgsim::testing::write_file(root / "zebra/garbage.jpg", Bytes{'n', 'o', 't', ' ', 'a', 'n'});
  // Ignored: wrong extension, hidden file, hidden folder, file in root.
  imgsim::testing::write_file(root / "zebra/notes.txt", Bytes{'h', 'i'});
  solid_png(root / "zebra/.hidden.png", 2, 2, 3, {0, 0, 0});
  solid_png(root / "zebra/.cache/c.png", 2, 2, 3, {0, 0, 0});
  solid_png(root / "stray.png", 2, 2, 3, {0, 0, 0});
  std::filesystem::create_directories(root / ".git");
}

}  // namespace

TEST_CASE("ImageFolderDataset finds classes and files in sorted order", "[image_folder]") {
  TempDir root;
  build_tree(root);
  ImageFolderDataset ds(root.path().string(), {.width = 4, .height = 4, .channels = 3});
  REQUIRE(ds.class_names() == std::vector<std::string>{"ant", "cat", "zebra"});
  REQUIRE(ds.size() == 6);
  CHECK(ds.path(0) == root / "ant/a.png");
  CHECK(ds.path(1) == root / "ant/b.png");
  CHECK(ds.path(2) == root / "cat/Y.PNG");
  CHECK(ds.path(3) == root / "cat/cut.png");
  CHECK(ds.path(4) == root / "cat/sub/x.png");
  CHECK(ds.path(5) == root / "zebra/z.png");
  CHECK(ds.class_counts() == std::vector<int64_t>{2, 3, 1});
  for (int64_t i = 0; i < ds.size(); ++i) CHECK(ds.class_index(i) == (i < 2 ? 0 : i < 5 ? 1 : 2));
  CHECK(ds.input_shape() == Shape{3, 4, 4});
  CHECK(ds.target_shape() == Shape{1});
  REQUIRE(ds.skipped().size() == 1);
  CHECK(ds.skipped()[0].path == root / "zebra/garbage.jpg");
  CHECK(contains(ds.skipped()[0].reason, "cannot decode image"));
  REQUIRE_THROWS_AS(ds.path(6), InvalidArgument);
  CHECK(ImageFolderDataset::is_image_extension("a/b.JpEg"));
  CHECK(ImageFolderDataset::is_image_extension("x.pgm"));
  CHECK_FALSE(ImageFolderDataset::is_image_extension("x.webp"));
  CHECK_FALSE(ImageFolderDataset::is_image_extension("png"));
}

TEST_CASE("ImageFolderDataset decodes, resizes and labels batches", "[image_folder]") {
  TempDir root;
  build_tree(root);
  ImageFolderDataset ds(root.path().string(), {.width = 4, .height = 4, .channels = 3});
  Tensor x, y;
  const int64_t idx[] = {5, 0, 4, 2, 1};
  ds.get(idx, x, y);
  REQUIRE(x.shape() == Shape{5, 3, 4, 4});
  REQUIRE(y.shape() == Shape{5, 1});
  CHECK(y[0] == 2.0f);
  CHECK(y[1] == 0.0f);
  CHECK(y[2] == 1.0f);
  CHECK(y[3] == 1.0f);
  CHECK(y[4] == 0.0f);
  const float gray = std::round(0.2f * 255) / 255;
  const std::array<std::array<float, 3>, 5> expected = {
      {{gray, gray, gray}, {1, 0, 0}, {0, 1, 0}, {0, 1, 0}, {1, 0, 0}}};
  for (int n = 0; n < 5; ++n)
    for (int c = 0; c < 3; ++c)
      for (int h = 0; h < 4; ++h)
        for (int w = 0; w < 4; ++w)
          REQUIRE(x.at(n, c, h, w) ==
                  Approx(expected[static_cast<std::size_t>(n)][static_cast<std::size_t>(c)])
                      .margin(1e-5));
  CHECK(ds.skipped().size() == 1);  // nothing failed

  // A smaller batch reuses the tensors' storage.
  const float* storage = x.data();
  const int64_t two[] = {0, 1};
  ds.get(two, x, y);
  CHECK(x.shape() == Shape{2, 3, 4, 4});
  CHECK(x.data() == storage);

  const int64_t bad[] = {0, 6};
  REQUIRE_THROWS_AS(ds.get(bad, x, y), InvalidArgument);
}

TEST_CASE("ImageFolderDataset zero-fills and records a file that fails to decode",
          "[image_folder]") {
  TempDir root;
  build_tree(root);
  ImageFolderDataset ds(root.path().string(), {.width = 3, .height = 2, .channels = 1});
  REQUIRE(ds.path(3) == root / "cat/cut.png");
  Tensor x(Shape{2, 1, 2, 3}, 7.0f), y;
  const int64_t idx[] = {3, 2};
  ds.get(idx, x, y);
  for (int i = 0; i < 6; ++i) CHECK(x[i] == 0.0f);
  for (int i = 6; i < 12; ++i) CHECK(x[i] == Approx(0.587).margin(0.01));  // green as luma
  CHECK(y[0] == 1.0f);
  REQUIRE(ds.skipped().size() == 2);
  CHECK(ds.skipped()[1].path == root / "cat/cut.png");
  CHECK(contains(ds.skipped()[1].reason, "cut.png"));
  ds.get(idx, x, y);  // recorded once
  CHECK(ds.skipped().size() == 2);
  CHECK(x[0] == 0.0f);

  ImageFolderDataset strict(root.path().string(), {.width = 3, .height = 2, .strict = true});
  REQUIRE_THROWS_AS(strict.get(idx, x, y), FormatError);
}

TEST_CASE("ImageFolderDataset center_crop keeps the aspect ratio", "[image_folder]") {
  TempDir root;
  // 9 x 3: left third red, middle green, right blue.
  image::Image img(9, 3, 3);
  for (int yy = 0; yy < 3; ++yy)
    for (int xx = 0; xx < 9; ++xx) img.at(xx, yy, xx / 3) = 1.0f;
  std::filesystem::create_directories(root / "only");
  image::save_png(root / "only/i.png", img);
  ImageFolderDataset crop(root.path().string(), {.width = 1, .height = 1, .center_crop = true});
  ImageFolderDataset stretch(root.path().string(), {.width = 1, .height = 1});
  Tensor x, y;
  const int64_t idx[] = {0};
  crop.get(idx, x, y);
  CHECK(x[0] == Approx(0.0).margin(1e-5));
  CHECK(x[1] == Approx(1.0).margin(1e-5));
  CHECK(x[2] == Approx(0.0).margin(1e-5));
  stretch.get(idx, x, y);
  CHECK(x[0] == Approx(1.0 / 3).margin(1e-4));
  CHECK(x[1] == Approx(1.0 / 3).margin(1e-4));
}

TEST_CASE("ImageFolderDataset skips images over the pixel limit", "[image_folder]") {
  TempDir root;
  solid_png(root / "a/small.png", 4, 4, 3, {0.5f, 0.5f, 0.5f});
  solid_png(root / "a/large.png", 20, 20, 3, {0.5f, 0.5f, 0.5f});
  imgsim::testing::write_file(root / "b/bomb.png", imgsim::testing::png_header(10000, 10000, 8, 0));
  ImageFolderDataset ds(root.path().string(), {.max_pixels = 100});
  CHECK(ds.size() == 1);
  CHECK(ds.class_counts() == std::vector<int64_t>{1, 0});
  REQUIRE(ds.skipped().size() == 2);
  CHECK(ds.skipped()[0].path == root / "a/large.png");
  CHECK(contains(ds.skipped()[0].reason, "max_pixels"));
  CHECK(ds.skipped()[1].path == root / "b/bomb.png");
  // With the default limit only the bomb is refused.
  CHECK(ImageFolderDataset(root.path().string()).size() == 2);
}

TEST_CASE("ImageFolderDataset rejects unusable folders and options", "[image_folder][error]") {
  TempDir root;
  SECTION("empty folder") {
    REQUIRE_THROWS_AS(ImageFolderDataset(root.path().string()), InvalidArgument);
    CHECK(contains(error_of([&] { ImageFolderDataset d(root.path().string()); }),
                   root.path().string()));
  }
  SECTION("files but no class sub-folders") {
    solid_png(root / "a.png", 2, 2, 3, {0, 0, 0});
    REQUIRE_THROWS_AS(ImageFolderDataset(root.path().string()), InvalidArgument);
  }
  SECTION("class folders without images") {
    std::filesystem::create_directories(root / "a");
    imgsim::testing::write_file(root / "b/readme.txt", Bytes{'x'});
    const std::string e = error_of([&] { ImageFolderDataset d(root.path().string()); });
    CHECK(contains(e, "no usable image"));
    CHECK(contains(e, root.path().string()));
    REQUIRE_THROWS_AS(ImageFolderDataset(root.path().string()), InvalidArgument);
  }
  SECTION("missing root and a file as root") {
    REQUIRE_THROWS_AS(ImageFolderDataset(root / "absent"), IoError);
    imgsim::testing::write_file(root / "file", Bytes{'x'});
    REQUIRE_THROWS_AS(ImageFolderDataset(root / "file"), InvalidArgument);
  }
  SECTION("options") {
    solid_png(root / "a/i.png", 2, 2, 3, {0, 0, 0});
    REQUIRE_THROWS_AS(ImageFolderDataset(root.path().string(), {.width = 0}), InvalidArgument);
    REQUIRE_THROWS_AS(ImageFolderDataset(root.path().string(), {.channels = 2}), InvalidArgument);
    REQUIRE_THROWS_AS(ImageFolderDataset(root.path().string(), {.max_pixels = 0}), InvalidArgument);
    CHECK(ImageFolderDataset(root.path().string(), {.channels = 4}).input_shape() ==
          Shape{4, 64, 64});
  }
}

TEST_CASE("ImageFolderDataset decodes every format it lists", "[image_folder]") {
  TempDir root;
  image::Image img(6, 4, 3, 0.0f);
  for (int yy = 0; yy < 4; ++yy)
    for (int xx = 0; xx < 6; ++xx) img.at(xx, yy, 2) = 1.0f;  // blue
  std::filesystem::create_directories(root / "c");
  image::save_png(root / "c/1.png", img);
  image::save_jpg(root / "c/2.jpg", img, 95);
  image::save_bmp(root / "c/3.bmp", img);
  ImageFolderDataset ds(root.path().string(), {.width = 3, .height = 2});
  REQUIRE(ds.size() == 3);
  Tensor x, y;
  const int64_t idx[] = {0, 1, 2};
  ds.get(idx, x, y);
  for (int n = 0; n < 3; ++n) {
    CHECK(x.at(n, 0, 1, 1) == Approx(0.0).margin(0.03));
    CHECK(x.at(n, 2, 1, 1) == Approx(1.0).margin(0.03));
  }
  CHECK(ds.skipped().empty());
}
