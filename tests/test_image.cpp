#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <functional>
#include <random>
#include <string>

#include "data_test_util.hpp"
#include "image/stb_backend.hpp"
#include "imgsim/error.hpp"
#include "imgsim/image/augment.hpp"
#include "imgsim/image/image.hpp"

using namespace imgsim;
using namespace imgsim::image;
using imgsim::testing::Bytes;
using imgsim::testing::TempDir;

namespace {

// Seeded random image whose values are exact multiples of 1/255, so 8-bit files round-trip.
Image random_image(int w, int h, int c, uint32_t seed) {
  Image img(w, h, c);
  std::mt19937 rng(seed);
  for (int64_t i = 0; i < img.size(); ++i) img.data()[i] = static_cast<float>(rng() % 256) / 255.0f;
  return img;
}

// Smooth image (JPEG-friendly): a diagonal gradient per channel.
Image gradient_image(int w, int h, int c) {
  Image img(w, h, c);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int k = 0; k < c; ++k)
        img.at(x, y, k) = static_cast<float>(x + y + 8 * k) / static_cast<float>(w + h + 8 * c);
  return img;
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

bool same_pixels(const Image& a, const Image& b) {
  if (a.width() != b.width() || a.height() != b.height() || a.channels() != b.channels())
    return false;
  for (int64_t i = 0; i < a.size(); ++i)
    if (a.data()[i] != b.data()[i]) return false;
  return true;
}

Bytes read_bytes(const std::string& path) {
  std::vector<unsigned char> b;
  read_file(path, b);
  return b;
}

}  // namespace

TEST_CASE("Image construction checks its arguments", "[image]") {
  Image img(3, 2, 4, 0.5f);
  CHECK(img.width() == 3);
  CHECK(img.height() == 2);
  CHECK(img.channels() == 4);
  CHECK(img.size() == 24);
  CHECK(img.pixel_count() == 6);
  CHECK(img.at(2, 1, 3) == 0.5f);
  img.at(2, 1, 3) = 0.25f;
  CHECK(img.data()[23] == 0.25f);
  CHECK(img.row(1) == img.data() + 12);
  CHECK(Image().empty());
  REQUIRE_THROWS_AS(Image(0, 5, 3), InvalidArgument);
  REQUIRE_THROWS_AS(Image(5, -1, 3), InvalidArgument);
  REQUIRE_THROWS_AS(Image(5, 5, 2), InvalidArgument);
  REQUIRE_THROWS_AS(Image(kMaxImageSide + 1, 1, 1), InvalidArgument);
}

TEST_CASE("PNG and BMP round-trip gray, RGB and RGBA exactly", "[image][io]") {
  TempDir dir;
  for (int c : {1, 3, 4}) {
    const Image img = random_image(7, 5, c, 100u + static_cast<uint32_t>(c));
    DYNAMIC_SECTION("png, " << c << " channels") {
      save_png(dir / "a.png", img);
      const Image back = load_image(dir / "a.png");
      CHECK(same_pixels(img, back));
      const ImageInfo info = probe_image(dir / "a.png");
      CHECK(info.width == 7);
      CHECK(info.height == 5);
      CHECK(info.channels == c);
      CHECK_FALSE(info.sixteen_bit);
    }
    if (c != 4) {
      DYNAMIC_SECTION("bmp, " << c << " channels") {
        save_bmp(dir / "a.bmp", img);
        // BMP stores gray as RGB.
        const Image back = load_image(dir / "a.bmp", {.channels = c});
        CHECK(same_pixels(img, back));
      }
    }
  }
}

TEST_CASE("JPEG round-trips a smooth image closely", "[image][io]") {
  TempDir dir;
  for (int c : {1, 3}) {
    DYNAMIC_SECTION(c << " channels") {
      const Image img = gradient_image(32, 24, c);
      save_jpg(dir / "a.jpg", img, 95);
      // stb_image_write always writes 3-component JPEGs, so gray comes back as RGB.
      CHECK(probe_image(dir / "a.jpg").channels == 3);
      const Image back = load_image(dir / "a.jpg", {.channels = c});
      REQUIRE(back.channels() == c);
      REQUIRE(back.width() == 32);
      double err = 0.0;
      for (int64_t i = 0; i < img.size(); ++i) err += std::abs(img.data()[i] - back.data()[i]);
      CHECK(err / static_cast<double>(img.size()) < 0.01);
    }
  }
  REQUIRE_THROWS_AS(save_jpg(dir / "b.jpg", gradient_image(4, 4, 3), 0), InvalidArgument);
  REQUIRE_THROWS_AS(save_jpg(dir / "b.jpg", gradient_image(4, 4, 3), 101), InvalidArgument);
}

TEST_CASE("Loading converts channels on request", "[image][io]") {
  Image rgb(2, 1, 3);
  rgb.at(0, 0, 0) = 1.0f;  // red
  rgb.at(1, 0, 2) = 1.0f;  // blue
  const Bytes png = encode_image(rgb, ImageFormat::png);

  const Image gray = load_image_from_memory(png, {.channels = 1});
  REQUIRE(gray.channels() == 1);
  CHECK(gray.at(0, 0, 0) == Approx(0.299).margin(0.01));
  CHECK(gray.at(1, 0, 0) == Approx(0.114).margin(0.01));

  const Image rgba = load_image_from_memory(png, {.channels = 4});
  REQUIRE(rgba.channels() == 4);
  CHECK(rgba.at(0, 0, 0) == 1.0f);
  CHECK(rgba.at(0, 0, 3) == 1.0f);
  CHECK(rgba.at(1, 0, 2) == 1.0f);

  const Image g1(3, 3, 1, 0.2f);
  const Image g3 = load_image_from_memory(encode_image(g1, ImageFormat::png), {.channels = 3});
  REQUIRE(g3.channels() == 3);
  CHECK(g3.at(1, 1, 0) == g3.at(1, 1, 2));
  CHECK(g3.at(1, 1, 1) == Approx(0.2).margin(0.5 / 255));

  REQUIRE_THROWS_AS(load_image_from_memory(png, {.channels = 2}), InvalidArgument);
  REQUIRE_THROWS_AS(load_image_from_memory(png, {.max_pixels = 0}), InvalidArgument);
}

TEST_CASE("16-bit PNGs decode to floats without 8-bit rounding", "[image][io]") {
  // Values chosen so that 8-bit quantisation would move them by more than 1e-4.
  const std::vector<uint16_t> gray = {0, 1000, 30000, 65535, 257, 12345};
  Image g = load_image_from_memory(imgsim::testing::png16(3, 2, 1, gray));
  REQUIRE(g.channels() == 1);
  REQUIRE(g.width() == 3);
  REQUIRE(g.height() == 2);
  for (std::size_t i = 0; i < gray.size(); ++i)
    CHECK(g.data()[i] == Approx(gray[i] / 65535.0).margin(1e-6));
  CHECK(probe_image_from_memory(imgsim::testing::png16(3, 2, 1, gray)).sixteen_bit);

  std::vector<uint16_t> rgba(2 * 2 * 4);
  for (std::size_t i = 0; i < rgba.size(); ++i) rgba[i] = static_cast<uint16_t>(4099 * i + 7);
  Image c = load_image_from_memory(imgsim::testing::png16(2, 2, 4, rgba));
  REQUIRE(c.channels() == 4);
  for (std::size_t i = 0; i < rgba.size(); ++i)
    CHECK(c.data()[i] == Approx(rgba[i] / 65535.0).margin(1e-6));
  // Gray+alpha becomes RGBA.
  Image ga = load_image_from_memory(imgsim::testing::png16(1, 1, 2, {40000, 20000}));
  REQUIRE(ga.channels() == 4);
  CHECK(ga.at(0, 0, 1) == Approx(40000 / 65535.0).margin(1e-6));
  CHECK(ga.at(0, 0, 3) == Approx(20000 / 65535.0).margin(1e-6));
}

TEST_CASE("Decompression bombs are refused from the header", "[image][limits]") {
  // A valid PNG signature and header claiming 10000 x 10000 gray, and no pixel data at all.
  const Bytes bomb = imgsim::testing::png_header(10000, 10000, 8, 0);
  const ImageInfo info = probe_image_from_memory(bomb);
  CHECK(info.width == 10000);
  CHECK(info.height == 10000);
  REQUIRE_THROWS_AS(load_image_from_memory(bomb, {}, "bomb.png"), FormatError);
  const std::string e = error_of([&] { load_image_from_memory(bomb, {}, "bomb.png"); });
  CHECK(contains(e, "bomb.png"));
  CHECK(contains(e, "100000000 pixels exceeds the limit"));
  // With the limit raised the header passes and the decoder finds no data (a different error).
  const std::string e2 =
      error_of([&] { load_image_from_memory(bomb, {.max_pixels = int64_t{1} << 30}, "bomb.png"); });
  CHECK_FALSE(e2.empty());
  CHECK_FALSE(contains(e2, "exceeds the limit"));
  // A side beyond kMaxImageSide is refused by stb_image itself.
  REQUIRE_THROWS_AS(load_image_from_memory(imgsim::testing::png_header(70000, 1, 8, 0)),
                    FormatError);

  // The limit is inclusive.
  const Bytes png = encode_image(random_image(10, 10, 3, 1), ImageFormat::png);
  CHECK(load_image_from_memory(png, {.max_pixels = 100}).width() == 10);
  REQUIRE_THROWS_AS(load_image_from_memory(png, {.max_pixels = 99}), FormatError);
}

TEST_CASE("Corrupt, truncated and missing files are reported", "[image][error]") {
  TempDir dir;
  save_png(dir / "good.png", random_image(16, 16, 3, 5));
  Bytes good = read_bytes(dir / "good.png");
  REQUIRE(good.size() > 100);

  SECTION("truncated PNG") {
    good.resize(good.size() / 2);
    imgsim::testing::write_file(dir / "cut.png", good);
    REQUIRE_THROWS_AS(load_image(dir / "cut.png"), FormatError);
    CHECK(contains(error_of([&] { load_image(dir / "cut.png"); }), dir / "cut.png"));
  }
  SECTION("garbage") {
    std::mt19937 rng(77);
    Bytes junk(500);
    for (auto& b : junk) b = static_cast<unsigned char>(rng());
    imgsim::testing::write_file(dir / "junk.jpg", junk);
    REQUIRE_THROWS_AS(load_image(dir / "junk.jpg"), FormatError);
    REQUIRE_THROWS_AS(probe_image(dir / "junk.jpg"), FormatError);
    const std::string e = error_of([&] { load_image(dir / "junk.jpg"); });
    CHECK(contains(e, dir / "junk.jpg"));
    CHECK(contains(e, "cannot decode image: "));
    CHECK(e.size() > (dir / "junk.jpg").size() + 22);  // stb's reason follows
  }
  SECTION("empty file") {
    imgsim::testing::write_file(dir / "empty.png", {});
    REQUIRE_THROWS_AS(load_image(dir / "empty.png"), FormatError);
  }
  SECTION("missing file and folder") {
    REQUIRE_THROWS_AS(load_image(dir / "absent.png"), IoError);
    CHECK(contains(error_of([&] { load_image(dir / "absent.png"); }), dir / "absent.png"));
    REQUIRE_THROWS_AS(probe_image(dir / "absent.png"), IoError);
    REQUIRE_THROWS_AS(load_image(dir.path().string()), IoError);
  }
}

TEST_CASE("load_image_into reuses its buffers", "[image][io]") {
  TempDir dir;
  save_png(dir / "big.png", random_image(20, 10, 3, 1));
  save_png(dir / "small.png", random_image(8, 8, 1, 2));
  Image img;
  std::vector<unsigned char> buffer;
  load_image_into(dir / "big.png", img, buffer);
  const float* storage = img.data();
  const unsigned char* file_storage = buffer.data();
  load_image_into(dir / "small.png", img, buffer);
  CHECK(img.width() == 8);
  CHECK(img.channels() == 1);
  CHECK(img.data() == storage);
  CHECK(buffer.data() == file_storage);
  CHECK(same_pixels(img, random_image(8, 8, 1, 2)));
}

TEST_CASE("Box resize averages whole source blocks when shrinking", "[image][resize]") {
  Image img(4, 4, 1);
  for (int y = 0; y < 4; ++y)
    for (int x = 0; x < 4; ++x) img.at(x, y, 0) = static_cast<float>(y * 4 + x) / 16.0f;
  const Image half = resize(img, 2, 2);
  REQUIRE(half.width() == 2);
  REQUIRE(half.height() == 2);
  // Block (0,0) holds 0, 1, 4, 5 -> mean 2.5 / 16, and so on.
  CHECK(half.at(0, 0, 0) == Approx(2.5 / 16).margin(1e-6));
  CHECK(half.at(1, 0, 0) == Approx(4.5 / 16).margin(1e-6));
  CHECK(half.at(0, 1, 0) == Approx(10.5 / 16).margin(1e-6));
  CHECK(half.at(1, 1, 0) == Approx(12.5 / 16).margin(1e-6));

  // Same size is an exact copy; aliasing source and destination works.
  CHECK(same_pixels(resize(img, 4, 4), img));
  Image alias = img;
  resize_into(alias, alias, 2, 2);
  CHECK(same_pixels(alias, half));
}

TEST_CASE("Resizing keeps constants, interpolates and checks sizes", "[image][resize]") {
  const Image flat(5, 3, 3, 0.375f);
  for (ResizeFilter f : {ResizeFilter::automatic, ResizeFilter::box, ResizeFilter::bilinear,
                         ResizeFilter::bicubic, ResizeFilter::mitchell}) {
    DYNAMIC_SECTION("filter " << static_cast<int>(f)) {
      for (auto [w, h] : {std::pair{13, 7}, std::pair{2, 1}, std::pair{5, 9}}) {
        const Image r = resize(flat, w, h, f);
        REQUIRE(r.width() == w);
        REQUIRE(r.height() == h);
        REQUIRE(r.channels() == 3);
        for (int64_t i = 0; i < r.size(); ++i) REQUIRE(r.data()[i] == Approx(0.375).margin(1e-5));
      }
    }
  }
  // Enlarging a 2-pixel ramp gives a non-decreasing ramp between its ends.
  Image ramp(2, 1, 1);
  ramp.at(1, 0, 0) = 1.0f;
  const Image wide = resize(ramp, 8, 1);
  for (int x = 1; x < 8; ++x) CHECK(wide.at(x, 0, 0) >= wide.at(x - 1, 0, 0));
  CHECK(wide.at(0, 0, 0) < 0.1f);
  CHECK(wide.at(7, 0, 0) > 0.9f);
  CHECK(wide.at(3, 0, 0) > 0.2f);
  CHECK(wide.at(3, 0, 0) < 0.8f);
  // Overshooting filters are clamped to [0, 1].
  Image step(8, 1, 1);
  for (int x = 4; x < 8; ++x) step.at(x, 0, 0) = 1.0f;
  const Image cubic = resize(step, 23, 1, ResizeFilter::bicubic);
  for (int64_t i = 0; i < cubic.size(); ++i) {
    CHECK(cubic.data()[i] >= 0.0f);
    CHECK(cubic.data()[i] <= 1.0f);
  }

  REQUIRE_THROWS_AS(resize(flat, 0, 3), InvalidArgument);
  REQUIRE_THROWS_AS(resize(Image(), 3, 3), InvalidArgument);
}

TEST_CASE("Resize weights colour by straight alpha", "[image][resize]") {
  Image img(2, 1, 4);
  // Opaque red next to a fully transparent green pixel: the green must not bleed in.
  img.at(0, 0, 0) = 1.0f;
  img.at(0, 0, 3) = 1.0f;
  img.at(1, 0, 1) = 1.0f;
  const Image one = resize(img, 1, 1);
  CHECK(one.at(0, 0, 0) == Approx(1.0).margin(1e-4));
  CHECK(one.at(0, 0, 1) == Approx(0.0).margin(1e-4));
  CHECK(one.at(0, 0, 3) == Approx(0.5).margin(1e-4));
}

TEST_CASE("Crops take the requested rectangle", "[image][crop]") {
  Image img(6, 4, 1);
  for (int y = 0; y < 4; ++y)
    for (int x = 0; x < 6; ++x) img.at(x, y, 0) = static_cast<float>(10 * y + x) / 100.0f;
  const Image c = crop(img, 1, 2, 3, 2);
  REQUIRE(c.width() == 3);
  REQUIRE(c.height() == 2);
  CHECK(c.at(0, 0, 0) == img.at(1, 2, 0));
  CHECK(c.at(2, 1, 0) == img.at(3, 3, 0));
  const Image cc = center_crop(img, 2, 2);
  CHECK(cc.at(0, 0, 0) == img.at(2, 1, 0));
  CHECK(cc.at(1, 1, 0) == img.at(3, 2, 0));
  const Image odd = center_crop(img, 3, 3);  // margins 3 and 1: left/top get 1 and 0
  CHECK(odd.at(0, 0, 0) == img.at(1, 0, 0));
  REQUIRE_THROWS_AS(crop(img, 4, 0, 3, 1), InvalidArgument);
  REQUIRE_THROWS_AS(crop(img, -1, 0, 2, 1), InvalidArgument);
  REQUIRE_THROWS_AS(center_crop(img, 7, 1), InvalidArgument);
}

TEST_CASE("resize_center_crop keeps the aspect ratio", "[image][resize][crop]") {
  // 8 x 4: columns 0-1 red, 2-5 green, 6-7 blue. The centred square is all green.
  Image img(8, 4, 3);
  for (int y = 0; y < 4; ++y)
    for (int x = 0; x < 8; ++x) img.at(x, y, x < 2 ? 0 : x < 6 ? 1 : 2) = 1.0f;
  const Image sq = resize_center_crop(img, 2, 2);
  REQUIRE(sq.width() == 2);
  for (int y = 0; y < 2; ++y)
    for (int x = 0; x < 2; ++x) {
      CHECK(sq.at(x, y, 0) == Approx(0.0).margin(1e-5));
      CHECK(sq.at(x, y, 1) == Approx(1.0).margin(1e-5));
      CHECK(sq.at(x, y, 2) == Approx(0.0).margin(1e-5));
    }
  // A plain resize of the same image mixes in red and blue.
  const Image stretched = resize(img, 2, 2);
  CHECK(stretched.at(0, 0, 0) > 0.1f);
  // A tall target from a wide image keeps the full height.
  const Image tall = resize_center_crop(img, 1, 4);
  CHECK(tall.height() == 4);
  CHECK(tall.at(0, 0, 1) == Approx(1.0).margin(1e-5));
}

TEST_CASE("to_tensor lays out (C, H, W) and converts channels", "[image][tensor]") {
  Image img(3, 2, 3);
  for (int y = 0; y < 2; ++y)
    for (int x = 0; x < 3; ++x)
      for (int c = 0; c < 3; ++c) img.at(x, y, c) = static_cast<float>(100 * c + 10 * y + x) / 255;
  const Tensor t = to_tensor(img);
  REQUIRE(t.shape() == Shape{3, 2, 3});
  for (int c = 0; c < 3; ++c)
    for (int y = 0; y < 2; ++y)
      for (int x = 0; x < 3; ++x) REQUIRE(t[(c * 2 + y) * 3 + x] == img.at(x, y, c));

  const Tensor g = to_tensor(img, 1);
  REQUIRE(g.shape() == Shape{1, 2, 3});
  CHECK(g[4] ==
        Approx(0.299 * img.at(1, 1, 0) + 0.587 * img.at(1, 1, 1) + 0.114 * img.at(1, 1, 2)));
  const Tensor a = to_tensor(img, 4);
  REQUIRE(a.shape() == Shape{4, 2, 3});
  CHECK(a[3 * 6 + 5] == 1.0f);
  CHECK(a[2 * 6 + 5] == img.at(2, 1, 2));

  const Image gray(2, 2, 1, 0.25f);
  const Tensor rgb = to_tensor(gray, 3);
  REQUIRE(rgb.shape() == Shape{3, 2, 2});
  for (int64_t i = 0; i < rgb.numel(); ++i) CHECK(rgb[i] == 0.25f);
  const Image round_trip = convert_channels(convert_channels(gray, 4), 1);
  CHECK(round_trip.at(1, 0, 0) == Approx(0.25));  // the luma weights sum to 1
  CHECK(convert_channels(gray, 4).at(1, 1, 3) == 1.0f);
  REQUIRE_THROWS_AS(to_tensor(img, 2), InvalidArgument);
  REQUIRE_THROWS_AS(to_tensor(Image()), InvalidArgument);
}

TEST_CASE("normalize applies per-channel mean and stddev", "[image][tensor]") {
  Tensor t(Shape{2, 3, 1, 2}, 0.5f);
  normalize(t, kImageNetMean, kImageNetStd);
  for (int n = 0; n < 2; ++n)
    for (int c = 0; c < 3; ++c)
      for (int w = 0; w < 2; ++w)
        REQUIRE(t.at(n, c, 0, w) == Approx((0.5 - kImageNetMean[static_cast<std::size_t>(c)]) /
                                           kImageNetStd[static_cast<std::size_t>(c)]));
  Tensor chw(Shape{1, 2, 2}, 0.75f);
  const float mean[] = {0.25f}, sd[] = {0.5f};
  normalize(chw, mean, sd);
  CHECK(chw[3] == 1.0f);
  const float zero[] = {0.0f};
  REQUIRE_THROWS_AS(normalize(chw, mean, zero), InvalidArgument);
  REQUIRE_THROWS_AS(normalize(chw, kImageNetMean, kImageNetStd), InvalidArgument);
  Tensor flat(Shape{4});
  REQUIRE_THROWS_AS(normalize(flat, mean, sd), ShapeError);
}

TEST_CASE("Saving is atomic and reports failures as IoError", "[image][io]") {
  TempDir dir;
  const Image a = random_image(6, 6, 3, 1), b = random_image(9, 4, 3, 2);
  save_png(dir / "x.png", a);
  CHECK(dir.list() == std::vector<std::string>{"x.png"});
  save_png(dir / "x.png", b);  // replaces
  CHECK(dir.list() == std::vector<std::string>{"x.png"});
  CHECK(same_pixels(load_image(dir / "x.png"), b));
  save_jpg(dir / "y.jpg", b);
  CHECK(dir.list() == std::vector<std::string>{"x.png", "y.jpg"});

  // Missing folder: nothing is created.
  REQUIRE_THROWS_AS(save_png(dir / "no/such/folder/z.png", a), IoError);
  // The target is a folder: the rename fails, the temporary is removed.
  std::filesystem::create_directory(dir / "sub");
  REQUIRE_THROWS_AS(save_png(dir / "sub", a), IoError);
  CHECK(dir.list() == std::vector<std::string>{"sub", "x.png", "y.jpg"});
  CHECK(std::filesystem::is_empty(dir / "sub"));
  REQUIRE_THROWS_AS(save_png(dir / "e.png", Image()), InvalidArgument);
}

namespace {

// Offset of the first marker `m` (0xff m) in a JPEG, or 0.
std::size_t find_marker(const Bytes& jpg, unsigned char m) {
  for (std::size_t i = 2; i + 1 < jpg.size(); ++i)
    if (jpg[i] == 0xff && jpg[i + 1] == m) return i;
  return 0;
}

// A COM segment of `n` payload bytes full of 0xff 0xc4 (DHT lookalikes) and seeded noise.
Bytes comment_segment(std::size_t n, uint32_t seed) {
  Bytes seg = {0xff, 0xfe, static_cast<unsigned char>((n + 2) >> 8),
               static_cast<unsigned char>((n + 2) & 0xff)};
  std::mt19937 rng(seed);
  for (std::size_t i = 0; i < n; ++i)
    seg.push_back(i % 64 == 0 ? 0xff : i % 64 == 1 ? 0xc4 : static_cast<unsigned char>(rng()));
  return seg;
}

}  // namespace

TEST_CASE("JPEG Huffman tables that would overrun stb_image are refused", "[image][limits]") {
  const Bytes good = encode_image(gradient_image(16, 16, 3), ImageFormat::jpg);
  const std::size_t dht = find_marker(good, 0xc4);
  REQUIRE(dht > 0);
  Bytes bad = good;
  for (std::size_t i = 0; i < 16; ++i) bad[dht + 5 + i] = 0x20;  // 16 x 32 = 512 codes
  REQUIRE_THROWS_AS(load_image_from_memory(bad, {}, "bad.jpg"), FormatError);
  const std::string e = error_of([&] { load_image_from_memory(bad, {}, "bad.jpg"); });
  CHECK(contains(e, "bad.jpg"));
  CHECK(contains(e, "512 codes"));
  // stb_image_write puts its tables after the frame header, which is all a probe reads.
  CHECK(probe_image_from_memory(bad).width == 16);
  // A table ahead of the frame header is checked by the probe too.
  const std::size_t dht_len = (std::size_t{bad[dht + 2]} << 8) + bad[dht + 3];
  Bytes early(good.begin(), good.begin() + 2);
  early.insert(early.end(), bad.begin() + static_cast<std::ptrdiff_t>(dht),
               bad.begin() + static_cast<std::ptrdiff_t>(dht + 2 + dht_len));
  early.insert(early.end(), good.begin() + 2, good.end());
  REQUIRE_THROWS_AS(probe_image_from_memory(early), FormatError);
  // 256 codes is the legal maximum and must not be refused by the guard (stb may still reject
  // the table for other reasons, but not with the guard's message).
  Bytes edge = good;
  for (std::size_t i = 0; i < 16; ++i) edge[dht + 5 + i] = 16;
  CHECK_FALSE(contains(error_of([&] { load_image_from_memory(edge); }), "codes (at most 256)"));
}

TEST_CASE("JPEG headers behind large metadata segments are found", "[image][io]") {
  TempDir dir;
  const Image img = gradient_image(24, 16, 3);
  const Bytes plain = encode_image(img, ImageFormat::jpg);
  // Two 60 000-byte comments between SOI and the rest: the frame header starts past 120 kB,
  // and the comments hold byte pairs that look like DHT markers.
  Bytes big(plain.begin(), plain.begin() + 2);
  for (uint32_t seed : {1u, 2u}) {
    const Bytes seg = comment_segment(60000, seed);
    big.insert(big.end(), seg.begin(), seg.end());
  }
  big.insert(big.end(), plain.begin() + 2, plain.end());
  imgsim::testing::write_file(dir / "meta.jpg", big);
  const ImageInfo info = probe_image(dir / "meta.jpg");
  CHECK(info.width == 24);
  CHECK(info.height == 16);
  CHECK(info.channels == 3);
  CHECK(same_pixels(load_image(dir / "meta.jpg"), load_image_from_memory(plain)));
}

TEST_CASE("Box shrinking gives stb_image_resize's box filter result", "[image][resize]") {
  // resize, resize_center_crop and resized_crop shrink with their own area-averaging pass when
  // the filter is box on both axes (image/box_resample.hpp); it must agree with
  // stb_image_resize, which they used before and still use for the other cases, to rounding.
  auto stb = [](const Image& src, int w, int h, float s0, float t0, float s1, float t1) {
    Image out(w, h, src.channels());
    REQUIRE(detail::stb_resize_region(src.data(), src.width(), src.height(), out.data(), w, h,
                                      src.channels(), -1, detail::StbFilter::box,
                                      detail::StbFilter::box, s0, t0, s1, t1));
    for (int64_t i = 0; i < out.size(); ++i) out.data()[i] = std::clamp(out.data()[i], 0.0f, 1.0f);
    return out;
  };
  auto max_diff = [](const Image& a, const Image& b) {
    REQUIRE(a.width() == b.width());
    REQUIRE(a.height() == b.height());
    REQUIRE(a.channels() == b.channels());
    float d = 0.0f;
    for (int64_t i = 0; i < a.size(); ++i) d = std::max(d, std::abs(a.data()[i] - b.data()[i]));
    return d;
  };
  // stb_image_resize computes its weights in float (this pass in double), so results differ by
  // a few 1e-6 on random pixels in [0, 1] (3.4e-6 at most here).
  constexpr float kTol = 1e-5f;
  uint32_t seed = 40;
  for (int c : {1, 3}) {
    for (auto [sw, sh, w, h] :
         {std::array{500, 375, 64, 64}, std::array{97, 61, 13, 7}, std::array{64, 48, 64, 24},
          std::array{331, 512, 17, 160}, std::array{10, 10, 3, 3}, std::array{640, 20, 64, 1}}) {
      DYNAMIC_SECTION(c << " channels, " << sw << "x" << sh << " -> " << w << "x" << h) {
        const Image src = random_image(sw, sh, c, ++seed);
        CHECK(max_diff(resize(src, w, h, ResizeFilter::box), stb(src, w, h, 0, 0, 1, 1)) < kTol);
        if (w < sw && h < sh) CHECK(max_diff(resize(src, w, h), stb(src, w, h, 0, 0, 1, 1)) < kTol);
        // The centred region of the target's aspect ratio, as resize_center_crop computes it.
        const double sa = static_cast<double>(sw) / sh, da = static_cast<double>(w) / h;
        const double fx = sa > da ? da / sa : 1.0, fy = sa > da ? 1.0 : sa / da;
        const auto s0 = static_cast<float>((1 - fx) / 2), t0 = static_cast<float>((1 - fy) / 2);
        const float s1 = fx == 1.0 ? 1.0f : static_cast<float>((1 + fx) / 2);
        const float t1 = fy == 1.0 ? 1.0f : static_cast<float>((1 + fy) / 2);
        CHECK(max_diff(resize_center_crop(src, w, h, ResizeFilter::box),
                       stb(src, w, h, s0, t0, s1, t1)) < kTol);
        // A crop rectangle read in place, against cutting it first.
        const CropRect r{sw / 5, sh / 7, std::min(sw - sw / 5, std::max(w, sw / 2)),
                         std::min(sh - sh / 7, std::max(h, sh - sh / 7 - 1))};
        Image fast;
        resized_crop_into(src, fast, r, w, h, ResizeFilter::box);
        CHECK(max_diff(fast, stb(crop(src, r.x, r.y, r.width, r.height), w, h, 0, 0, 1, 1)) < kTol);
      }
    }
  }
  // Constant images stay constant; values stay in [0, 1].
  const Image flat = resize(Image(301, 203, 3, 0.7f), 64, 64);
  for (int64_t i = 0; i < flat.size(); ++i) REQUIRE(flat.data()[i] == Approx(0.7).margin(1e-6));
}
