// pHash (include/imgsim/similarity/phash.hpp, docs/phash.md).
#include <catch2/catch.hpp>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <numbers>
#include <vector>

#include "imgsim/error.hpp"
#include "imgsim/image/augment.hpp"
#include "imgsim/image/image.hpp"
#include "imgsim/rng.hpp"
#include "imgsim/similarity/phash.hpp"

using namespace imgsim;
using namespace imgsim::similarity;
using imgsim::image::Image;

namespace {

constexpr int kN = kPhashSize;

// A photo-like RGB image: a random colour gradient, 12 soft coloured blobs and mild noise.
// Different seeds give unrelated layouts.
Image scene(int w, int h, uint64_t seed) {
  Rng rng(seed);
  struct Blob {
    float cx, cy, r, col[3];
  };
  float base[3], gx[3], gy[3];
  for (int c = 0; c < 3; ++c) {
    base[c] = rng.uniform(0.2f, 0.8f);
    gx[c] = rng.uniform(-0.3f, 0.3f);
    gy[c] = rng.uniform(-0.3f, 0.3f);
  }
  std::vector<Blob> blobs(12);
  for (Blob& b : blobs) {
    b.cx = rng.uniform();
    b.cy = rng.uniform();
    b.r = rng.uniform(0.05f, 0.25f);
    for (float& v : b.col) v = rng.uniform(-0.5f, 0.5f);
  }
  Image img(w, h, 3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      const float u = static_cast<float>(x) / static_cast<float>(w);
      const float v = static_cast<float>(y) / static_cast<float>(h);
      for (int c = 0; c < 3; ++c) {
        float value = base[c] + gx[c] * (u - 0.5f) + gy[c] * (v - 0.5f);
        for (const Blob& b : blobs) {
          const float d2 = (u - b.cx) * (u - b.cx) + (v - b.cy) * (v - b.cy);
          value += b.col[c] * std::exp(-d2 / (2.0f * b.r * b.r));
        }
        value += rng.uniform(-0.02f, 0.02f);
        img.at(x, y, c) = std::clamp(value, 0.0f, 1.0f);
      }
    }
  return img;
}

// The textbook definition, O(n^4).
PhashGrid naive_dct(const PhashGrid& f) {
  PhashGrid out{};
  for (int u = 0; u < kN; ++u)
    for (int v = 0; v < kN; ++v) {
      const double au = u == 0 ? std::sqrt(1.0 / kN) : std::sqrt(2.0 / kN);
      const double av = v == 0 ? std::sqrt(1.0 / kN) : std::sqrt(2.0 / kN);
      double sum = 0.0;
      for (int y = 0; y < kN; ++y)
        for (int x = 0; x < kN; ++x)
          sum += f[static_cast<std::size_t>(y * kN + x)] *
                 std::cos(std::numbers::pi * (2 * y + 1) * u / (2.0 * kN)) *
                 std::cos(std::numbers::pi * (2 * x + 1) * v / (2.0 * kN));
      out[static_cast<std::size_t>(u * kN + v)] = au * av * sum;
    }
  return out;
}

// The inverse of the orthonormal DCT (its transpose), O(n^4).
PhashGrid naive_idct(const PhashGrid& c) {
  PhashGrid out{};
  for (int y = 0; y < kN; ++y)
    for (int x = 0; x < kN; ++x) {
      double sum = 0.0;
      for (int u = 0; u < kN; ++u)
        for (int v = 0; v < kN; ++v) {
          const double au = u == 0 ? std::sqrt(1.0 / kN) : std::sqrt(2.0 / kN);
          const double av = v == 0 ? std::sqrt(1.0 / kN) : std::sqrt(2.0 / kN);
          sum += au * av * c[static_cast<std::size_t>(u * kN + v)] *
                 std::cos(std::numbers::pi * (2 * y + 1) * u / (2.0 * kN)) *
                 std::cos(std::numbers::pi * (2 * x + 1) * v / (2.0 * kN));
        }
      out[static_cast<std::size_t>(y * kN + x)] = sum;
    }
  return out;
}

// A coefficient grid whose 8 x 8 block (1 <= u, v <= 8) holds value(k), k = 8 (u-1) + (v-1).
template <typename F>
PhashGrid block_grid(F value) {
  PhashGrid c{};
  for (int k = 0; k < 64; ++k)
    c[static_cast<std::size_t>((k / 8 + 1) * kN + (k % 8 + 1))] = value(k);
  return c;
}

}  // namespace

TEST_CASE("phash: the separable DCT matches the O(n^4) definition", "[phash]") {
  Rng rng(7);
  PhashGrid f{};
  for (double& v : f) v = rng.uniform();
  const PhashGrid fast = dct2_32(f);
  const PhashGrid ref = naive_dct(f);
  double max_diff = 0.0;
  for (std::size_t i = 0; i < f.size(); ++i)
    max_diff = std::max(max_diff, std::abs(fast[i] - ref[i]));
  CHECK(max_diff < 1e-12);
  // Orthonormal: the DC term of a constant 1 is 32 and energy is preserved.
  PhashGrid ones{};
  ones.fill(1.0);
  CHECK(dct2_32(ones)[0] == Approx(32.0).epsilon(1e-12));
  double e_in = 0.0, e_out = 0.0;
  for (std::size_t i = 0; i < f.size(); ++i) {
    e_in += f[i] * f[i];
    e_out += fast[i] * fast[i];
  }
  CHECK(e_out == Approx(e_in).epsilon(1e-12));
}

TEST_CASE("phash: bit order on known coefficient blocks", "[phash]") {
  // Block values 0..63 in row-major order: the median is 31.5, so coefficients k = 32..63 are
  // set; coefficient k is bit 63 - k, so those are bits 31..0.
  CHECK(phash_from_dct(block_grid([](int k) { return static_cast<double>(k); })) ==
        0x00000000FFFFFFFFULL);
  CHECK(phash_from_dct(block_grid([](int k) { return -static_cast<double>(k); })) ==
        0xFFFFFFFF00000000ULL);
  // Odd k above the median, even k below: bits 62, 60, ..., 0.
  CHECK(phash_from_dct(block_grid([](int k) { return (k % 2 ? 1.0 : -1.0) + 0.001 * k; })) ==
        0x5555555555555555ULL);
  // Ties: the first row of the block (u = 1) is 1, the rest 0, so the median is 0 and only the
  // values strictly above it are set: the first two hex digits.
  CHECK(phash_to_hex(phash_from_dct(block_grid([](int k) { return k < 8 ? 1.0 : 0.0; }))) ==
        "ff00000000000000");
  // Coefficients outside the block (the DC term, row 0, column 0, u or v > 8) are ignored.
  PhashGrid c = block_grid([](int k) { return static_cast<double>(k); });
  c[0] = 1e6;
  c[5] = -1e6;
  c[3 * kN] = 1e6;
  c[9 * kN + 2] = 1e6;
  c[2 * kN + 9] = -1e6;
  CHECK(phash_from_dct(c) == 0x00000000FFFFFFFFULL);
  // A flat block hashes to 0.
  CHECK(phash_from_dct(PhashGrid{}) == 0);
}

TEST_CASE("phash: whole pipeline on an image built from known coefficients", "[phash]") {
  // A 32 x 32 gray image whose DCT is: DC 16 (mean 0.5) and block value +-0.1 alternating by
  // row of the block (rows u = 1, 3, 5, 7 positive). Box resizing a 32 x 32 image is the identity.
  PhashGrid c =
      block_grid([](int k) { return (k / 8) % 2 == 0 ? 0.1 + 1e-4 * k : -0.1 - 1e-4 * k; });
  c[0] = 16.0;
  const PhashGrid pixels = naive_idct(c);
  Image img(kN, kN, 1);
  for (int y = 0; y < kN; ++y)
    for (int x = 0; x < kN; ++x)
      img.at(x, y, 0) = static_cast<float>(pixels[static_cast<std::size_t>(y * kN + x)]);
  // Floats round the pixels by ~3e-8: far below the 0.1 coefficients.
  CHECK(phash(img) == 0xFF00FF00FF00FF00ULL);
  CHECK(phash_to_hex(phash(img)) == "ff00ff00ff00ff00");
}

TEST_CASE("phash: thumbnail is the area average of the luma", "[phash]") {
  SECTION("32 x 32 is kept as is") {
    const Image img = scene(32, 32, 3);
    const PhashGrid t = phash_thumbnail(img);
    for (int y = 0; y < kN; ++y)
      for (int x = 0; x < kN; ++x) {
        const double luma =
            0.299 * img.at(x, y, 0) + 0.587 * img.at(x, y, 1) + 0.114 * img.at(x, y, 2);
        CHECK(t[static_cast<std::size_t>(y * kN + x)] == Approx(luma).margin(1e-12));
      }
  }
  SECTION("64 x 96 averages 2 x 3 blocks") {
    Image img(64, 96, 1);
    Rng rng(3);
    for (int64_t i = 0; i < img.size(); ++i) img.data()[i] = rng.uniform();
    const PhashGrid t = phash_thumbnail(img);
    for (int j = 0; j < kN; ++j)
      for (int i = 0; i < kN; ++i) {
        double sum = 0.0;
        for (int dy = 0; dy < 3; ++dy)
          for (int dx = 0; dx < 2; ++dx) sum += img.at(2 * i + dx, 3 * j + dy, 0);
        CHECK(t[static_cast<std::size_t>(j * kN + i)] == Approx(sum / 6.0).margin(1e-12));
      }
  }
  SECTION("48 wide: output pixel 0 covers source 0 and half of source 1") {
    Image img(48, 32, 1);
    for (int y = 0; y < 32; ++y)
      for (int x = 0; x < 48; ++x) img.at(x, y, 0) = static_cast<float>(x) / 64.0f;
    const PhashGrid t = phash_thumbnail(img);
    // [0, 1.5): (1 * 0 + 0.5 * 1/64) / 1.5; [1.5, 3): (0.5 * 1/64 + 1 * 2/64) / 1.5.
    CHECK(t[0] == Approx((0.5 / 64.0) / 1.5).margin(1e-12));
    CHECK(t[1] == Approx((0.5 / 64.0 + 2.0 / 64.0) / 1.5).margin(1e-12));
  }
  SECTION("smaller than 32 is stretched; RGBA ignores alpha") {
    Image img(5, 3, 4);
    Rng rng(4);
    for (int64_t i = 0; i < img.size(); ++i) img.data()[i] = rng.uniform();
    Image opaque = img;
    for (int y = 0; y < 3; ++y)
      for (int x = 0; x < 5; ++x) opaque.at(x, y, 3) = 1.0f;
    CHECK(phash_thumbnail(img) == phash_thumbnail(opaque));
    // Thumbnail pixel (0, 0) lies inside source pixel (0, 0).
    const double luma = 0.299 * img.at(0, 0, 0) + 0.587 * img.at(0, 0, 1) + 0.114 * img.at(0, 0, 2);
    CHECK(phash_thumbnail(img)[0] == Approx(luma).margin(1e-12));
  }
}

TEST_CASE("phash: identical, re-encoded, resized and unrelated images", "[phash]") {
  const Image a = scene(320, 240, 11);
  const uint64_t ha = phash(a);
  CHECK(ha != 0);
  CHECK(std::popcount(ha) == 32);  // the median splits 64 distinct values in half
  Image copy = a;
  CHECK(phash(copy) == ha);
  CHECK(phash_similarity(ha, phash(copy)) == 1.0);

  const Image jpeg = image::apply_edit(a, image::edit::Jpeg{50});
  CHECK(phash_similarity(ha, phash(jpeg)) >= 0.9);
  const Image small = image::apply_edit(a, image::edit::Scale{0.5f});
  CHECK(phash_similarity(ha, phash(small)) >= 0.9);
  // A mirror image changes the sign of the odd horizontal frequencies: about half the bits.
  const Image flipped = image::apply_edit(a, image::edit::FlipH{});
  CHECK(phash_similarity(ha, phash(flipped)) < 0.8);

  // Unrelated scenes: similarities scatter around 0.5.
  std::vector<uint64_t> hashes;
  for (uint64_t seed = 100; seed < 116; ++seed) hashes.push_back(phash(scene(96, 80, seed)));
  double sum = 0.0;
  double highest = 0.0;
  int pairs = 0;
  for (std::size_t i = 0; i < hashes.size(); ++i)
    for (std::size_t j = i + 1; j < hashes.size(); ++j) {
      const double s = phash_similarity(hashes[i], hashes[j]);
      sum += s;
      highest = std::max(highest, s);
      ++pairs;
    }
  CHECK(sum / pairs == Approx(0.5).margin(0.08));
  CHECK(highest < 0.85);
}

TEST_CASE("phash: flat images, hex form, hamming distance, errors", "[phash]") {
  CHECK(phash(Image(40, 30, 3, 0.25f)) == 0);
  CHECK(phash(Image(1, 1, 1, 0.7f)) == 0);
  CHECK_THROWS_AS(phash(Image()), InvalidArgument);

  CHECK(phash_to_hex(0x0123456789abcdefULL) == "0123456789abcdef");
  CHECK(phash_from_hex("0123456789ABCDEF") == 0x0123456789abcdefULL);
  CHECK(phash_from_hex(phash_to_hex(0xfedcba9876543210ULL)) == 0xfedcba9876543210ULL);
  CHECK_THROWS_AS(phash_from_hex("0123"), InvalidArgument);
  CHECK_THROWS_AS(phash_from_hex("0123456789abcdeg"), InvalidArgument);

  CHECK(hamming_distance(0, ~uint64_t{0}) == 64);
  CHECK(hamming_distance(0xF0, 0x0F) == 8);
  CHECK(phash_similarity(0, ~uint64_t{0}) == 0.0);
  CHECK(phash_similarity(0xF0, 0x0F) == 1.0 - 8.0 / 64.0);
}
