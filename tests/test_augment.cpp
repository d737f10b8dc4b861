// Augmentations, the Augmenter pipeline, edits and AugmentedImageDataset
// (include/imgsim/image/augment.hpp, include/imgsim/data/augmented.hpp).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <functional>
#include <numbers>
#include <set>
#include <string>
#include <vector>

#include "data_test_util.hpp"
#include "imgsim/data/augmented.hpp"
#include "imgsim/data/image_folder.hpp"
#include "imgsim/error.hpp"
#include "imgsim/image/augment.hpp"
#include "imgsim/image/image.hpp"
#include "imgsim/rng.hpp"

using namespace imgsim;
using namespace imgsim::image;
using imgsim::testing::TempDir;

namespace {

// Seeded noise with values in [lo, hi).
Image noise_image(int w, int h, int c, uint64_t seed, float lo = 0.0f, float hi = 1.0f) {
  Image img(w, h, c);
  Rng rng(seed);
  for (int64_t i = 0; i < img.size(); ++i) img.data()[i] = rng.uniform(lo, hi);
  return img;
}

// Smooth colourful image (JPEG-friendly).
Image smooth_image(int w, int h, int c) {
  Image img(w, h, c);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int k = 0; k < c; ++k)
        img.at(x, y, k) = k == 3 ? 1.0f
                                 : 0.5f + 0.4f * std::sin(0.15f * static_cast<float>(x) +
                                                          0.1f * static_cast<float>(y) +
                                                          2.0f * static_cast<float>(k));
  return img;
}

bool same_pixels(const Image& a, const Image& b) {
  if (a.width() != b.width() || a.height() != b.height() || a.channels() != b.channels())
    return false;
  return std::equal(a.data(), a.data() + a.size(), b.data());
}

bool same_size(const Image& a, const Image& b) {
  return a.width() == b.width() && a.height() == b.height() && a.channels() == b.channels();
}

float max_abs_diff(const Image& a, const Image& b) {
  REQUIRE(same_size(a, b));
  float m = 0.0f;
  for (int64_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(a.data()[i] - b.data()[i]));
  return m;
}

double mean_abs_diff(const Image& a, const Image& b) {
  REQUIRE(same_size(a, b));
  double s = 0.0;
  for (int64_t i = 0; i < a.size(); ++i) s += std::abs(a.data()[i] - b.data()[i]);
  return s / static_cast<double>(a.size());
}

double channel_mean(const Image& img, int c) {
  double s = 0.0;
  for (int y = 0; y < img.height(); ++y)
    for (int x = 0; x < img.width(); ++x) s += img.at(x, y, c);
  return s / static_cast<double>(img.pixel_count());
}

double channel_variance(const Image& img, int c) {
  const double m = channel_mean(img, c);
  double s = 0.0;
  for (int y = 0; y < img.height(); ++y)
    for (int x = 0; x < img.width(); ++x) s += (img.at(x, y, c) - m) * (img.at(x, y, c) - m);
  return s / static_cast<double>(img.pixel_count());
}

std::vector<AugmentOp> all_random_ops() {
  return {RandomResizedCrop{12, 10},
          HorizontalFlip{},
          VerticalFlip{},
          RandomRotation{30.0f},
          RandomRotation{30.0f, {Color{1, 0, 0, 1}, true}},
          ColorJitter{0.4f, 0.4f, 0.4f, 0.1f},
          Grayscale{},
          GaussianBlur{0.5f, 1.5f},
          JpegCompression{20, 90},
          TextOverlay{},
          LogoOverlay{},
          RandomBorder{},
          PadToAspect{2.0f},
          Resize{7, 5}};
}

}  // namespace

// --- determinism -------------------------------------------------------------------------------

TEST_CASE("Augmentations are deterministic per seed", "[augment]") {
  const Image src = smooth_image(40, 30, 3);
  const std::vector<AugmentOp> ops = all_random_ops();
  for (std::size_t i = 0; i < ops.size(); ++i) {
    const AugmentOp& op = ops[i];
    DYNAMIC_SECTION(i << " " << augment_op_name(op)) {
      Rng a(7), b(7);
      const Image x = augment(src, op, a);
      const Image y = augment(src, op, b);
      CHECK(same_pixels(x, y));
      CHECK(a.next_u64() == b.next_u64());  // the same number of draws
    }
  }
  for (const Augmenter& pipeline : {Augmenter::simclr(24), Augmenter::near_duplicate(24)}) {
    std::vector<Image> first, second;
    Rng a(99), b(99);
    for (int i = 0; i < 8; ++i) first.push_back(pipeline.apply(src, a));
    for (int i = 0; i < 8; ++i) second.push_back(pipeline.apply(src, b));
    for (int i = 0; i < 8; ++i) CHECK(same_pixels(first[i], second[i]));
    // Different draws give different views.
    int distinct = 0;
    for (int i = 1; i < 8; ++i) distinct += same_pixels(first[i], first[0]) ? 0 : 1;
    CHECK(distinct >= 6);
    Rng c(100);
    CHECK_FALSE(same_pixels(pipeline.apply(src, c), first[0]));
  }
}

TEST_CASE("Augmenter applies steps with their probabilities", "[augment]") {
  const Image src = noise_image(9, 7, 3, 1);
  Augmenter never;
  never.add(HorizontalFlip{}, 0.0f);
  Rng rng(3);
  CHECK(same_pixels(never.apply(src, rng), src));
  Augmenter always;
  always.add(HorizontalFlip{}, 1.0f).add(VerticalFlip{}, 1.0f);
  Image expected = src;
  flip_horizontal(expected);
  flip_vertical(expected);
  CHECK(same_pixels(always.apply(src, rng), expected));
  Augmenter empty;
  CHECK(empty.empty());
  CHECK(same_pixels(empty.apply(src, rng), src));

  // About half of 2000 images are flipped at p = 0.5.
  Augmenter half;
  half.add(HorizontalFlip{}, 0.5f);
  int flipped = 0;
  Image out;
  for (int i = 0; i < 2000; ++i) {
    half.apply_into(src, out, rng);
    flipped += same_pixels(out, src) ? 0 : 1;
  }
  CHECK(flipped > 900);
  CHECK(flipped < 1100);

  // In place, and a custom step.
  Augmenter custom;
  custom.add(CustomAugment{"invert", [](const Image& s, Image& d, Rng&) {
                             d = s;
                             for (int64_t i = 0; i < d.size(); ++i)
                               d.data()[i] = 1.0f - d.data()[i];
                           }});
  Image inplace = src;
  custom.apply_into(inplace, inplace, rng);
  CHECK(inplace.at(3, 2, 1) == Approx(1.0f - src.at(3, 2, 1)));
  CHECK(augment_op_name(custom.steps()[0].op) == "invert");
}

// --- geometry --------------------------------------------------------------------------------

TEST_CASE("Flips move pixels exactly", "[augment][geometry]") {
  for (int w : {1, 4, 5})
    for (int h : {1, 3, 6}) {
      const Image src = noise_image(w, h, 3, static_cast<uint64_t>(w * 10 + h));
      Image hf = src, vf = src;
      flip_horizontal(hf);
      flip_vertical(vf);
      for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x)
          for (int c = 0; c < 3; ++c) {
            REQUIRE(hf.at(x, y, c) == src.at(w - 1 - x, y, c));
            REQUIRE(vf.at(x, y, c) == src.at(x, h - 1 - y, c));
          }
      flip_horizontal(hf);
      CHECK(same_pixels(hf, src));
    }
}

TEST_CASE("Rotation by 90 degrees through the general path is a transpose and flip",
          "[augment][geometry]") {
  const int n = 9;
  for (int ch : {1, 3, 4}) {
    Image src = noise_image(n, n, ch, 5, 0.1f, 1.0f);
    const Image ccw = rotate(src, 90.0f);
    REQUIRE(same_size(ccw, src));
    float err = 0.0f;
    for (int y = 0; y < n; ++y)
      for (int x = 0; x < n; ++x)
        for (int c = 0; c < ch; ++c)  // counter-clockwise: the top row becomes the left column
          err = std::max(err, std::abs(ccw.at(x, y, c) - src.at(n - 1 - y, x, c)));
    CHECK(err < 1e-4f);
    // Agrees with the EXIF orientation code (8 = turn 90 counter-clockwise, 6 clockwise).
    CHECK(max_abs_diff(ccw, apply_orientation(src, 8)) < 1e-4f);
    CHECK(max_abs_diff(rotate(src, -90.0f), apply_orientation(src, 6)) < 1e-4f);
  }
  // 180 degrees on a non-square image, and 0 degrees.
  const Image rect = noise_image(8, 5, 3, 6);
  CHECK(max_abs_diff(rotate(rect, 180.0f), apply_orientation(rect, 3)) < 1e-4f);
  CHECK(max_abs_diff(rotate(rect, 0.0f), rect) == 0.0f);
  CHECK(max_abs_diff(rotate(rect, 360.0f), rect) < 1e-4f);
}

TEST_CASE("Rotation fills corners or crops to the valid region", "[augment][geometry]") {
  const Image src = noise_image(60, 40, 3, 8, 0.2f, 0.8f);
  const Color red{1.0f, 0.0f, 0.0f, 1.0f};
  const Image filled = rotate(src, 30.0f, {red, false});
  REQUIRE(same_size(filled, src));
  for (auto [x, y] : std::vector<std::pair<int, int>>{{0, 0}, {59, 0}, {0, 39}, {59, 39}}) {
    CHECK(filled.at(x, y, 0) == 1.0f);
    CHECK(filled.at(x, y, 1) == 0.0f);
  }
  CHECK(filled.at(30, 20, 0) < 0.81f);  // the centre is image

  const CropRect valid = rotated_valid_size(60, 40, 30.0f);
  const double c = std::cos(std::numbers::pi / 6), s = std::sin(std::numbers::pi / 6);
  const double k = std::min(60 / (60 * c + 40 * s), 40 / (60 * s + 40 * c));
  CHECK(valid.width == static_cast<int>(std::floor(k * 60)));
  CHECK(valid.height == static_cast<int>(std::floor(k * 40)));
  const Image cropped = rotate(src, 30.0f, {red, true});
  CHECK(cropped.width() == valid.width);
  CHECK(cropped.height() == valid.height);
  float top = 0.0f, low = 1.0f;  // no fill anywhere: values stay within the source's range
  for (int64_t i = 0; i < cropped.size(); ++i) {
    top = std::max(top, cropped.data()[i]);
    low = std::min(low, cropped.data()[i]);
  }
  CHECK(top <= 0.8f);
  CHECK(low >= 0.2f);
  // 90 degrees: the turned image is 40 wide, so a 3:2 region of 40 x 26 fits.
  CHECK(rotated_valid_size(60, 40, 90.0f).width == 40);
  CHECK(rotated_valid_size(60, 40, 90.0f).height == 26);
  CHECK(rotated_valid_size(60, 40, 0.0f).width == 60);
}

TEST_CASE("Random resized crop areas and aspect ratios stay in range", "[augment][geometry]") {
  Rng rng(11);
  RandomResizedCrop p{16, 16, 0.3f, 0.6f, 0.5f, 2.0f};
  int fallback = 0;
  for (int i = 0; i < 3000; ++i) {
    const CropRect r = random_resized_crop_rect(120, 80, p, rng);
    REQUIRE(r.x >= 0);
    REQUIRE(r.y >= 0);
    REQUIRE(r.x + r.width <= 120);
    REQUIRE(r.y + r.height <= 80);
    const double area = static_cast<double>(r.width) * r.height / (120.0 * 80.0);
    const double ratio = static_cast<double>(r.width) / r.height;
    if (r.width == 120 || r.height == 80) ++fallback;
    // Rounding each side to whole pixels moves the area and ratio slightly.
    CHECK(area >= 0.3 * 0.97);
    CHECK(area <= 0.6 * 1.03);
    CHECK(ratio >= 0.5 * 0.97);
    CHECK(ratio <= 2.0 * 1.03);
  }
  CHECK(fallback < 100);
  // Impossible requests fall back to the centred crop with the nearest allowed ratio.
  RandomResizedCrop square{8, 8, 0.9f, 1.0f, 1.0f, 1.0f};
  const CropRect r = random_resized_crop_rect(100, 10, square, rng);
  CHECK(r.width == 10);
  CHECK(r.height == 10);
  CHECK(r.x == 45);
  CHECK(r.y == 0);
  const Image out = augment(noise_image(100, 10, 3, 2), square, rng);
  CHECK(out.width() == 8);
  CHECK(out.height() == 8);
}

TEST_CASE("Borders and letterbox padding have the requested sizes", "[augment][geometry]") {
  const Image src = noise_image(30, 20, 3, 4);
  const Color blue{0.0f, 0.0f, 1.0f, 1.0f};
  const Image framed = add_border(src, {1, 2, 3, 4}, blue);
  REQUIRE(framed.width() == 36);
  REQUIRE(framed.height() == 24);
  CHECK(framed.at(0, 0, 2) == 1.0f);
  CHECK(framed.at(35, 23, 0) == 0.0f);
  CHECK(framed.at(4, 1, 0) == src.at(0, 0, 0));
  CHECK(framed.at(33, 20, 1) == src.at(29, 19, 1));
  CHECK(framed.at(34, 20, 2) == 1.0f);  // right border
  CHECK(framed.at(4, 21, 2) == 1.0f);   // bottom border

  const Image square = pad_to_aspect(src, 1.0f);
  CHECK(square.width() == 30);
  CHECK(square.height() == 30);
  CHECK(square.at(0, 4, 0) == 0.0f);
  CHECK(square.at(0, 5, 0) == src.at(0, 0, 0));
  const Borders wide = pad_to_aspect_borders(30, 20, 2.0f);
  CHECK(wide.left == 5);
  CHECK(wide.right == 5);
  CHECK(wide.top == 0);
  const Borders odd = pad_to_aspect_borders(3, 4, 1.0f);
  CHECK(odd.left == 0);
  CHECK(odd.right == 1);
  const Borders none = pad_to_aspect_borders(30, 20, 1.5f);
  CHECK(none.left + none.right + none.top + none.bottom == 0);

  // RandomBorder: the same width on every side, the fraction of the shorter side.
  Rng rng(5);
  for (int i = 0; i < 20; ++i) {
    const Image b = augment(src, RandomBorder{0.1f, 0.25f}, rng);
    const int bw = (b.width() - 30) / 2;
    CHECK(b.width() - 30 == b.height() - 20);
    CHECK(bw >= 2);
    CHECK(bw <= 5);
  }
  // Gray and RGBA fills.
  const Image g = add_border(Image(2, 2, 1, 0.5f), {1, 1, 1, 1}, Color{1.0f, 0.0f, 0.0f, 1.0f});
  CHECK(g.at(0, 0, 0) == Approx(0.299f));
  const Image a = add_border(Image(2, 2, 4, 0.5f), {1, 0, 0, 0}, Color{0.0f, 0.0f, 0.0f, 0.25f});
  CHECK(a.at(0, 0, 3) == 0.25f);
}

// --- colour ----------------------------------------------------------------------------------

TEST_CASE("Brightness scales the mean, contrast and saturation blend", "[augment][color]") {
  const Image src = noise_image(16, 12, 3, 9, 0.0f, 0.5f);
  Image b = src;
  adjust_brightness(b, 1.6f);
  for (int c = 0; c < 3; ++c)
    CHECK(channel_mean(b, c) == Approx(1.6 * channel_mean(src, c)).epsilon(1e-5));
  Image dark = src;
  adjust_brightness(dark, 0.0f);
  CHECK(*std::max_element(dark.data(), dark.data() + dark.size()) == 0.0f);

  Image flat = src;
  adjust_contrast(flat, 0.0f);
  double luma_mean = 0.0;
  for (int y = 0; y < 12; ++y)
    for (int x = 0; x < 16; ++x)
      luma_mean += 0.299 * src.at(x, y, 0) + 0.587 * src.at(x, y, 1) + 0.114 * src.at(x, y, 2);
  luma_mean /= 16 * 12;
  for (int64_t i = 0; i < flat.size(); ++i)
    REQUIRE(flat.data()[i] == Approx(luma_mean).epsilon(1e-5));
  Image more = src;
  adjust_contrast(more, 1.5f);
  CHECK(channel_variance(more, 0) > channel_variance(src, 0) * 1.5);
  Image same = src;
  adjust_contrast(same, 1.0f);
  CHECK(max_abs_diff(same, src) < 1e-6f);

  Image gray = src;
  adjust_saturation(gray, 0.0f);
  for (int y = 0; y < 12; ++y)
    for (int x = 0; x < 16; ++x) {
      const float l =
          0.299f * src.at(x, y, 0) + 0.587f * src.at(x, y, 1) + 0.114f * src.at(x, y, 2);
      REQUIRE(gray.at(x, y, 0) == Approx(l).epsilon(1e-5));
      REQUIRE(gray.at(x, y, 1) == gray.at(x, y, 0));
      REQUIRE(gray.at(x, y, 2) == gray.at(x, y, 0));
    }
}

TEST_CASE("Hue rotation and grayscale", "[augment][color]") {
  Image red(2, 1, 4, 0.0f);
  red.at(0, 0, 0) = 1.0f;
  red.at(0, 0, 3) = 0.5f;
  red.at(1, 0, 0) = 0.8f;
  red.at(1, 0, 2) = 0.2f;
  red.at(1, 0, 3) = 1.0f;
  Image green = red;
  adjust_hue(green, 1.0f / 3.0f);
  CHECK(green.at(0, 0, 0) == Approx(0.0f).margin(1e-5));
  CHECK(green.at(0, 0, 1) == Approx(1.0f));
  CHECK(green.at(0, 0, 2) == Approx(0.0f).margin(1e-5));
  CHECK(green.at(0, 0, 3) == 0.5f);  // alpha untouched
  Image back = green;
  adjust_hue(back, -1.0f / 3.0f);
  CHECK(max_abs_diff(back, red) < 1e-5f);
  Image half = red;
  adjust_hue(half, 0.5f);  // red -> cyan
  CHECK(half.at(0, 0, 0) == Approx(0.0f).margin(1e-5));
  CHECK(half.at(0, 0, 1) == Approx(1.0f));
  CHECK(half.at(0, 0, 2) == Approx(1.0f));
  const Image noise = noise_image(10, 10, 3, 12);
  Image zero = noise;
  adjust_hue(zero, 0.0f);
  CHECK(max_abs_diff(zero, noise) < 1e-5f);
  Image one_channel = noise_image(4, 4, 1, 3);
  const Image before = one_channel;
  adjust_hue(one_channel, 0.3f);
  adjust_saturation(one_channel, 0.0f);
  to_grayscale(one_channel);
  CHECK(same_pixels(one_channel, before));

  Image g = noise_image(7, 5, 4, 13);
  const Image orig = g;
  to_grayscale(g);
  REQUIRE(g.channels() == 4);
  for (int y = 0; y < 5; ++y)
    for (int x = 0; x < 7; ++x) {
      REQUIRE(g.at(x, y, 0) == g.at(x, y, 1));
      REQUIRE(g.at(x, y, 1) == g.at(x, y, 2));
      REQUIRE(g.at(x, y, 0) == Approx(0.299f * orig.at(x, y, 0) + 0.587f * orig.at(x, y, 1) +
                                      0.114f * orig.at(x, y, 2)));
      REQUIRE(g.at(x, y, 3) == orig.at(x, y, 3));
    }
}

TEST_CASE("ColorJitter draws factors in torchvision's ranges", "[augment][color]") {
  const Image src = noise_image(8, 8, 3, 14, 0.2f, 0.4f);
  Rng rng(15);
  double lo = 10, hi = 0;
  for (int i = 0; i < 300; ++i) {
    const Image out = augment(src, ColorJitter{0.5f, 0.0f, 0.0f, 0.0f}, rng);
    const double ratio = channel_mean(out, 0) / channel_mean(src, 0);
    lo = std::min(lo, ratio);
    hi = std::max(hi, ratio);
  }
  CHECK(lo >= 0.5 - 1e-4);
  CHECK(lo < 0.55);
  CHECK(hi <= 1.5 + 1e-4);
  CHECK(hi > 1.45);
  // Nothing enabled: unchanged.
  CHECK(same_pixels(augment(src, ColorJitter{}, rng), src));
}

// --- filters and re-encoding -----------------------------------------------------------------

TEST_CASE("Gaussian blur matches a direct 2-D convolution", "[augment][blur]") {
  const Image src = noise_image(11, 7, 3, 16);
  const float sigma = 1.3f;
  const int r = gaussian_radius(sigma);
  CHECK(r == 4);
  std::vector<double> k(static_cast<std::size_t>(2 * r + 1));
  double total = 0.0;
  for (int i = -r; i <= r; ++i)
    total += k[static_cast<std::size_t>(i + r)] = std::exp(-0.5 * i * i / (sigma * sigma));
  const auto mirror = [](int i, int n) {
    while (i < 0 || i >= n) i = i < 0 ? -i : 2 * (n - 1) - i;
    return i;
  };
  Image blurred = src;
  gaussian_blur(blurred, sigma);
  float err = 0.0f;
  for (int y = 0; y < 7; ++y)
    for (int x = 0; x < 11; ++x)
      for (int c = 0; c < 3; ++c) {
        double acc = 0.0;
        for (int dy = -r; dy <= r; ++dy)
          for (int dx = -r; dx <= r; ++dx)
            acc += k[static_cast<std::size_t>(dy + r)] * k[static_cast<std::size_t>(dx + r)] *
                   src.at(mirror(x + dx, 11), mirror(y + dy, 7), c);
        err = std::max(err,
                       static_cast<float>(std::abs(acc / (total * total) - blurred.at(x, y, c))));
      }
  CHECK(err < 1e-5f);
}

TEST_CASE("Blur reduces variance and keeps the mean", "[augment][blur]") {
  const Image src = noise_image(64, 48, 3, 17);
  Image b = src;
  gaussian_blur(b, 2.0f);
  for (int c = 0; c < 3; ++c) {
    CHECK(channel_variance(b, c) < 0.1 * channel_variance(src, c));
    CHECK(channel_mean(b, c) == Approx(channel_mean(src, c)).margin(2e-3));
  }
  Image constant(9, 9, 4, 0.3f);
  gaussian_blur(constant, 5.0f);
  for (int64_t i = 0; i < constant.size(); ++i) REQUIRE(constant.data()[i] == Approx(0.3f));
  // Transparent pixels do not bleed their colour into opaque ones.
  Image rgba(8, 1, 4, 0.0f);
  for (int x = 0; x < 4; ++x) rgba.at(x, 0, 0) = 1.0f, rgba.at(x, 0, 3) = 1.0f;  // opaque red
  for (int x = 4; x < 8; ++x) rgba.at(x, 0, 2) = 1.0f;                           // clear blue
  gaussian_blur(rgba, 1.0f);
  CHECK(rgba.at(3, 0, 0) == Approx(1.0f));
  CHECK(rgba.at(3, 0, 2) == Approx(0.0f).margin(1e-6));
  CHECK(rgba.at(4, 0, 3) > 0.0f);
  CHECK(rgba.at(4, 0, 3) < 1.0f);
}

TEST_CASE("JPEG re-encoding changes pixels a little", "[augment][jpeg]") {
  const Image src = smooth_image(48, 32, 3);
  Image q95 = src, q10 = src;
  jpeg_reencode(q95, 95);
  jpeg_reencode(q10, 10);
  REQUIRE(same_size(q95, src));
  const double e95 = mean_abs_diff(q95, src), e10 = mean_abs_diff(q10, src);
  CHECK(e95 > 0.0);
  CHECK(e95 < 0.02);
  CHECK(e10 > e95);
  CHECK(e10 < 0.15);
  Image gray = smooth_image(20, 20, 1);
  const Image gray_src = gray;
  jpeg_reencode(gray, 80);
  REQUIRE(gray.channels() == 1);
  CHECK(mean_abs_diff(gray, gray_src) < 0.03);
  Image rgba = smooth_image(16, 16, 4);
  for (int y = 0; y < 16; ++y) rgba.at(3, y, 3) = 0.25f;
  jpeg_reencode(rgba, 50);
  CHECK(rgba.at(3, 7, 3) == 0.25f);
  CHECK(rgba.at(4, 7, 3) == 1.0f);
}

// --- text and logos --------------------------------------------------------------------------

TEST_CASE("The built-in font has 95 distinct glyphs", "[augment][text]") {
  std::set<std::array<uint8_t, kGlyphHeight>> seen;
  for (int c = 32; c <= 126; ++c) {
    const auto g = glyph_bitmap(static_cast<char>(c));
    bool any = false;
    for (uint8_t row : g) {
      CHECK(row < 32);
      any = any || row != 0;
    }
    CHECK(any == (c != ' '));
    seen.insert(g);
  }
  CHECK(seen.size() == 95);
  CHECK(glyph_bitmap('\x01') == glyph_bitmap('?'));
  CHECK(glyph_bitmap(static_cast<char>(0xe9)) == glyph_bitmap('?'));
  const auto minus = glyph_bitmap('-');
  CHECK(minus[3] == 0x1f);
  CHECK(minus[2] == 0);
}

TEST_CASE("Text overlay draws glyph dots only inside its box", "[augment][text]") {
  CHECK(measure_text("", 3).width == 0);
  CHECK(measure_text("AB", 1).width == 11);
  CHECK(measure_text("AB", 1).height == 7);
  CHECK(measure_text("AB\nC", 2).width == 22);
  CHECK(measure_text("AB\nC", 2).height == 30);

  // '-' is one row of five dots: at scale 2 a 10 x 2 bar at (x, y + 6).
  Image img(20, 16, 3, 0.0f);
  draw_text(img, "-", {3, 2, 2, Color{1.0f, 1.0f, 1.0f, 1.0f}, 0.5f});
  for (int y = 0; y < 16; ++y)
    for (int x = 0; x < 20; ++x) {
      const bool bar = x >= 3 && x < 13 && y >= 8 && y < 10;
      REQUIRE(img.at(x, y, 1) == (bar ? 0.5f : 0.0f));
    }

  const Image src = noise_image(80, 40, 3, 18);
  for (int scale : {1, 2, 3}) {
    Image out = src;
    const TextStyle style{7, 5, scale, Color{1.0f, 0.0f, 1.0f, 1.0f}, 0.8f};
    const std::string text = "Hi!\nimgsim 42";
    draw_text(out, text, style);
    const TextSize box = measure_text(text, scale);
    int changed = 0;
    for (int y = 0; y < 40; ++y)
      for (int x = 0; x < 80; ++x) {
        const bool inside = x >= 7 && x < 7 + box.width && y >= 5 && y < 5 + box.height;
        bool diff = false;
        for (int c = 0; c < 3; ++c) diff = diff || out.at(x, y, c) != src.at(x, y, c);
        if (!inside) REQUIRE_FALSE(diff);
        changed += diff ? 1 : 0;
      }
    CHECK(changed > 30 * scale * scale);
  }
  // Clipped at every edge without trouble; gray images take the colour's luma.
  Image gray(5, 3, 1, 0.0f);
  draw_text(gray, "WWWWW\nWWW", {-4, -3, 2, Color{1.0f, 0.0f, 0.0f, 1.0f}, 1.0f});
  float top = 0.0f;
  for (int64_t i = 0; i < gray.size(); ++i) top = std::max(top, gray.data()[i]);
  CHECK(top == Approx(0.299f));
}

TEST_CASE("Logos are procedural, seeded and composited inside their box", "[augment][logo]") {
  const Image a = make_logo(1, 32), b = make_logo(1, 32), c = make_logo(2, 32);
  REQUIRE(a.channels() == 4);
  CHECK(same_pixels(a, b));
  CHECK_FALSE(same_pixels(a, c));
  int opaque = 0, clear = 0;
  for (int y = 0; y < 32; ++y)
    for (int x = 0; x < 32; ++x) {
      opaque += a.at(x, y, 3) > 0.6f ? 1 : 0;
      clear += a.at(x, y, 3) == 0.0f ? 1 : 0;
    }
  CHECK(opaque > 100);
  CHECK(clear > 0);

  const Image src = noise_image(50, 40, 3, 19);
  Image out = src;
  overlay_image(out, a, 10, 6, 1.0f);
  int changed = 0;
  for (int y = 0; y < 40; ++y)
    for (int x = 0; x < 50; ++x) {
      const bool inside = x >= 10 && x < 42 && y >= 6 && y < 38;
      const bool diff = out.at(x, y, 0) != src.at(x, y, 0) || out.at(x, y, 1) != src.at(x, y, 1) ||
                        out.at(x, y, 2) != src.at(x, y, 2);
      if (!inside) REQUIRE_FALSE(diff);
      if (inside && a.at(x - 10, y - 6, 3) == 0.0f) REQUIRE_FALSE(diff);
      changed += diff ? 1 : 0;
    }
  CHECK(changed >= opaque);
  Image none = src;
  overlay_image(none, a, 10, 6, 0.0f);
  CHECK(same_pixels(none, src));
  // Scaled overlay: an opaque 4 x 4 gray square doubled covers 8 x 8.
  Image scaled = Image(20, 20, 3, 0.0f);
  overlay_image(scaled, Image(4, 4, 1, 1.0f), -2, 3, 1.0f, 2.0f);
  CHECK(scaled.at(0, 3, 0) == Approx(1.0f));
  CHECK(scaled.at(5, 10, 2) == Approx(1.0f));
  CHECK(scaled.at(6, 10, 2) == 0.0f);
  CHECK(scaled.at(5, 11, 2) == 0.0f);
  // RGBA destination: "over" keeps full coverage opaque.
  Image rgba(4, 4, 4, 0.0f);
  overlay_image(rgba, Image(2, 2, 3, 0.5f), 1, 1, 0.5f);
  CHECK(rgba.at(1, 1, 3) == 0.5f);
  CHECK(rgba.at(1, 1, 0) == 0.5f);  // straight alpha: the colour is the overlay's
  CHECK(rgba.at(0, 0, 3) == 0.0f);
}

// --- validation and odd sizes ----------------------------------------------------------------

TEST_CASE("Invalid parameters throw InvalidArgument", "[augment][errors]") {
  Image img = noise_image(8, 8, 3, 20);
  Rng rng(1);
  CHECK_THROWS_AS(adjust_brightness(img, -0.1f), InvalidArgument);
  CHECK_THROWS_AS(adjust_contrast(img, std::nanf("")), InvalidArgument);
  CHECK_THROWS_AS(adjust_saturation(img, -1.0f), InvalidArgument);
  CHECK_THROWS_AS(adjust_hue(img, 0.6f), InvalidArgument);
  CHECK_THROWS_AS(gaussian_blur(img, 0.0f), InvalidArgument);
  CHECK_THROWS_AS(gaussian_blur(img, 2000.0f), InvalidArgument);
  CHECK_THROWS_AS(jpeg_reencode(img, 0), InvalidArgument);
  CHECK_THROWS_AS(jpeg_reencode(img, 101), InvalidArgument);
  CHECK_THROWS_AS(rotate(img, INFINITY), InvalidArgument);
  CHECK_THROWS_AS(rotate(img, 10.0f, {Color{2.0f, 0.0f, 0.0f, 1.0f}, false}), InvalidArgument);
  CHECK_THROWS_AS(add_border(img, {-1, 0, 0, 0}), InvalidArgument);
  CHECK_THROWS_AS(add_border(img, {0, kMaxImageSide, 0, 0}), InvalidArgument);
  CHECK_THROWS_AS(pad_to_aspect(img, 0.0f), InvalidArgument);
  CHECK_THROWS_AS(draw_text(img, "x", {0, 0, 0, Color{}, 1.0f}), InvalidArgument);
  CHECK_THROWS_AS(draw_text(img, "x", {0, 0, 1, Color{}, 1.5f}), InvalidArgument);
  CHECK_THROWS_AS(make_logo(1, 0), InvalidArgument);
  CHECK_THROWS_AS(overlay_image(img, Image(), 0, 0), InvalidArgument);
  CHECK_THROWS_AS(overlay_image(img, img, 0, 0, 1.0f, 0.0f), InvalidArgument);
  CHECK_THROWS_AS(crop_into(img, img, 4, 4, 5, 1), InvalidArgument);
  CHECK_THROWS_AS(flip_horizontal(img = Image()), InvalidArgument);
  img = noise_image(8, 8, 3, 20);

  const std::vector<AugmentOp> bad = {RandomResizedCrop{0, 8},
                                      RandomResizedCrop{8, 8, 0.5f, 0.4f},
                                      RandomResizedCrop{8, 8, 0.0f, 1.0f},
                                      RandomResizedCrop{8, 8, 0.5f, 1.5f},
                                      RandomResizedCrop{8, 8, 0.5f, 1.0f, 2.0f, 1.0f},
                                      RandomRotation{-1.0f},
                                      RandomRotation{400.0f},
                                      ColorJitter{-0.1f, 0, 0, 0},
                                      ColorJitter{0, 0, 0, 0.7f},
                                      GaussianBlur{0.0f, 1.0f},
                                      GaussianBlur{2.0f, 1.0f},
                                      JpegCompression{0, 50},
                                      JpegCompression{60, 50},
                                      TextOverlay{5, 4},
                                      TextOverlay{1, 4, 0.0f, 0.1f},
                                      TextOverlay{1, 4, 0.1f, 0.2f, 0.5f, 1.5f},
                                      LogoOverlay{0.0f, 0.3f},
                                      LogoOverlay{0.1f, 0.3f, -0.1f, 1.0f},
                                      RandomBorder{0.2f, 0.1f},
                                      PadToAspect{0.0f},
                                      Resize{8, 0},
                                      CustomAugment{"empty", {}}};
  for (std::size_t i = 0; i < bad.size(); ++i) {
    const AugmentOp& op = bad[i];
    DYNAMIC_SECTION(i << " " << augment_op_name(op)) {
      CHECK_THROWS_AS(validate_augment_op(op), InvalidArgument);
      CHECK_THROWS_AS(Augmenter().add(op), InvalidArgument);
      CHECK_THROWS_AS(augment(img, op, rng), InvalidArgument);
    }
  }
  CHECK_THROWS_AS(Augmenter().add(HorizontalFlip{}, 1.5f), InvalidArgument);
  CHECK_THROWS_AS(Augmenter().add(HorizontalFlip{}, -0.5f), InvalidArgument);
  CHECK_THROWS_AS(Augmenter::simclr(0), InvalidArgument);
  CHECK_THROWS_AS(Augmenter::simclr(8).apply(Image(), rng), InvalidArgument);
}

TEST_CASE("Every operation handles 1 x 1, 1 x N and N x 1 images", "[augment][sizes]") {
  Rng rng(21);
  for (auto [w, h] : std::vector<std::pair<int, int>>{{1, 1}, {1, 9}, {9, 1}, {2, 3}})
    for (int c : {1, 3, 4}) {
      DYNAMIC_SECTION(w << " x " << h << " x " << c) {
        const Image src = noise_image(w, h, c, static_cast<uint64_t>(w * 100 + h * 10 + c));
        for (const AugmentOp& op : all_random_ops()) {
          const Image out = augment(src, op, rng);
          REQUIRE_FALSE(out.empty());
          REQUIRE(out.channels() == c);
          for (int64_t i = 0; i < out.size(); ++i) {
            REQUIRE(out.data()[i] >= 0.0f);
            REQUIRE(out.data()[i] <= 1.0f);
          }
        }
        Image b = src;
        gaussian_blur(b, 3.0f);
        if (w == 1 && h == 1) CHECK(max_abs_diff(b, src) < 1e-6f);
        const Image r = rotate(src, 90.0f, {Color{}, true});
        CHECK(r.width() >= 1);
        CHECK(r.height() >= 1);
        for (int k = 0; k < kEditKindCount; ++k) {
          const Edit e = random_edit(static_cast<EditKind>(k), rng);
          const Image out = apply_edit(src, e);
          REQUIRE_FALSE(out.empty());
        }
        Augmenter::near_duplicate(8).apply(src, rng);
      }
    }
}

// --- edits -----------------------------------------------------------------------------------

TEST_CASE("Edits apply exactly what they specify", "[augment][edit]") {
  const Image src = noise_image(100, 60, 3, 22);
  const Image crop = apply_edit(src, edit::Crop{0.5f, 0.75f, 1.0f, 0.0f});
  REQUIRE(crop.width() == 50);
  REQUIRE(crop.height() == 45);
  CHECK(crop.at(0, 0, 0) == src.at(50, 0, 0));
  CHECK(crop.at(49, 44, 2) == src.at(99, 44, 2));
  const Image centre = apply_edit(src, edit::Crop{0.8f, 0.8f, 0.5f, 0.5f});
  CHECK(centre.at(0, 0, 1) == src.at(10, 6, 1));

  const Image small = apply_edit(src, edit::Scale{0.25f});
  CHECK(small.width() == 25);
  CHECK(small.height() == 15);
  const Image rot = apply_edit(src, edit::Rotate{10.0f, true, Color{}});
  CHECK(rot.width() == rotated_valid_size(100, 60, 10.0f).width);
  Image flipped = src;
  flip_horizontal(flipped);
  CHECK(same_pixels(apply_edit(src, edit::FlipH{}), flipped));
  const Image bordered = apply_edit(src, edit::Border{0.1f, Color{}});
  CHECK(bordered.width() == 112);
  CHECK(bordered.height() == 72);
  const Image padded = apply_edit(src, edit::Pad{1.0f, Color{}});
  CHECK(padded.width() == 100);
  CHECK(padded.height() == 100);
  const Image text =
      apply_edit(src, edit::Text{"COPY", 0.0f, 1.0f, 0.14f, Color{1, 1, 1, 1}, 1.0f});
  // scale = round(0.14 * 60 / 7) = 1: a 23 x 7 box at the bottom left, (0, 53). The 'C' has
  // rows ".###." and (row 3) "#....".
  CHECK(text.at(1, 53, 0) == 1.0f);
  CHECK(text.at(0, 53, 0) == src.at(0, 53, 0));
  CHECK(text.at(0, 56, 1) == 1.0f);
  CHECK(text.at(0, 52, 1) == src.at(0, 52, 1));
  const Image logo1 = apply_edit(src, edit::Logo{7, 0.5f, 0.5f, 0.3f, 1.0f});
  const Image logo2 = apply_edit(src, edit::Logo{7, 0.5f, 0.5f, 0.3f, 1.0f});
  CHECK(same_pixels(logo1, logo2));
  CHECK_FALSE(same_pixels(logo1, src));
  const Image gray = apply_edit(src, edit::Grayscale{});
  CHECK(gray.at(5, 5, 0) == gray.at(5, 5, 2));
  Image q = src;
  jpeg_reencode(q, 35);
  CHECK(same_pixels(apply_edit(src, edit::Jpeg{35}), q));
}

TEST_CASE("Edits round-trip through their text form", "[augment][edit]") {
  Rng rng(23);
  for (int round = 0; round < 20; ++round)
    for (int k = 0; k < kEditKindCount; ++k) {
      const auto kind = static_cast<EditKind>(k);
      const Edit e = random_edit(kind, rng);
      REQUIRE(edit_kind(e) == kind);
      const std::string line = to_string(e);
      REQUIRE(line.rfind(std::string(edit_kind_name(kind)), 0) == 0);
      const Edit back = parse_edit(line);
      REQUIRE(to_string(back) == line);
      const Image src = smooth_image(24, 16, 3);
      REQUIRE(same_pixels(apply_edit(src, back), apply_edit(src, e)));
    }
  const Edit t = edit::Text{"say \"hi\"\\\nbye", 0.25f, 0.5f, 0.1f, Color{0.5f, 1, 0, 1}, 0.75f};
  const std::string line = to_string(t);
  CHECK(line ==
        "text text=\"say \\\"hi\\\"\\\\\\nbye\" anchor_x=0.25 anchor_y=0.5 height=0.1 "
        "color=0.5,1,0,1 opacity=0.75");
  CHECK(std::get<edit::Text>(parse_edit(line)).text == "say \"hi\"\\\nbye");
  const Edit partial = parse_edit("  rotate degrees=-7.5   fill=1,1,1 ");
  CHECK(std::get<edit::Rotate>(partial).degrees == -7.5f);
  CHECK(std::get<edit::Rotate>(partial).fill.a == 1.0f);
  CHECK_FALSE(std::get<edit::Rotate>(partial).crop_to_valid);
  CHECK(parse_edit("flip_h").index() == static_cast<std::size_t>(EditKind::flip_h));

  for (const char* bad : {"",
                          "warp factor=2",
                          "scale factor=",
                          "scale factor=abc",
                          "scale factor=0.5 factor=0.6",
                          "scale amount=0.5",
                          "scale factor=0",
                          "jpeg quality=101",
                          "jpeg quality=5.5",
                          "crop keep_width=1.2",
                          "hue shift=0.7",
                          "rotate fill=1,1",
                          "rotate fill=1,1,1,1,1",
                          "rotate crop_to_valid=yes",
                          "text text=\"open",
                          "text text=\"a\\q\"",
                          "text text=\"a\"b",
                          "logo seed=-1",
                          "pad aspect=100",
                          "scale 0.5"}) {
    DYNAMIC_SECTION("'" << bad << "'") {
      CHECK_THROWS_AS(parse_edit(bad), InvalidArgument);
    }
  }
  CHECK_THROWS_AS(parse_edit_kind("zoom"), InvalidArgument);
  CHECK(parse_edit_kind("blur") == EditKind::blur);
}

TEST_CASE("random_edit stays in the benchmark ranges", "[augment][edit]") {
  Rng rng(24);
  const EditRanges r;
  for (int i = 0; i < 300; ++i) {
    const auto c = std::get<edit::Crop>(random_edit(EditKind::crop, rng));
    CHECK(c.keep_width >= 0.5f);
    CHECK(c.keep_width <= 0.95f);
    CHECK(c.keep_height >= 0.5f);
    CHECK(c.keep_height <= 0.95f);
    const auto s = std::get<edit::Scale>(random_edit(EditKind::scale, rng));
    CHECK(s.factor >= 0.25f);
    CHECK(s.factor <= 0.75f);
    const auto j = std::get<edit::Jpeg>(random_edit(EditKind::jpeg, rng));
    CHECK(j.quality >= 20);
    CHECK(j.quality <= 90);
    const auto rot = std::get<edit::Rotate>(random_edit(EditKind::rotate, rng));
    CHECK(std::abs(rot.degrees) <= 15.0f);
    const auto p = std::get<edit::Pad>(random_edit(EditKind::pad, rng));
    CHECK(p.aspect >= r.pad_aspect_min);
    CHECK(p.aspect <= r.pad_aspect_max);
    const auto t = std::get<edit::Text>(random_edit(EditKind::text, rng));
    CHECK(t.text.size() >= 4);
    CHECK(t.text.size() <= 16);
  }
  EditRanges wrong;
  wrong.crop_keep_min = 0.9f;
  wrong.crop_keep_max = 0.8f;
  CHECK_THROWS_AS(random_edit(EditKind::crop, rng, wrong), InvalidArgument);
  wrong = {};
  wrong.jpeg_quality_max = 120;
  CHECK_THROWS_AS(random_edit(EditKind::jpeg, rng, wrong), InvalidArgument);
  CHECK_THROWS_AS(random_edit(static_cast<EditKind>(99), rng), InvalidArgument);
}

// --- data set --------------------------------------------------------------------------------

TEST_CASE("AugmentedImageDataset yields augmented (C, H, W) tensors and two views",
          "[augment][dataset]") {
  TempDir dir;
  std::vector<std::string> paths;
  for (int i = 0; i < 4; ++i) {
    std::string name = std::to_string(i % 2);
    name += "/img";
    name += std::to_string(i);
    name += ".png";
    const std::string p = dir / name;
    std::filesystem::create_directories(std::filesystem::path(p).parent_path());
    save_png(p, smooth_image(30 + i, 20 + 2 * i, 3));
    paths.push_back(p);
  }
  data::AugmentedImageOptions o;
  o.width = 16;
  o.height = 12;
  o.seed = 77;
  data::AugmentedImageDataset ds(paths, {0, 1, 0, 1}, Augmenter::simclr(16), o);
  CHECK(ds.size() == 4);
  CHECK(ds.input_shape() == Shape{3, 12, 16});
  const std::vector<int64_t> idx = {2, 0, 3};
  Tensor x1, y1, x2, y2;
  ds.get(idx, x1, y1);
  CHECK(x1.shape() == Shape{3, 3, 12, 16});
  CHECK(y1[0] == 0.0f);
  CHECK(y1[2] == 1.0f);
  for (int64_t i = 0; i < x1.numel(); ++i) {
    REQUIRE(x1[i] >= 0.0f);
    REQUIRE(x1[i] <= 1.0f);
  }
  // The stream moves on: the next call differs; a restarted epoch repeats it.
  ds.get(idx, x2, y2);
  bool differ = false;
  for (int64_t i = 0; i < x1.numel(); ++i) differ = differ || x1[i] != x2[i];
  CHECK(differ);
  ds.set_epoch(0);
  ds.get(idx, x2, y2);
  for (int64_t i = 0; i < x1.numel(); ++i) REQUIRE(x1[i] == x2[i]);
  ds.set_epoch(1);
  ds.get(idx, x2, y2);
  differ = false;
  for (int64_t i = 0; i < x1.numel(); ++i) differ = differ || x1[i] != x2[i];
  CHECK(differ);

  // Two views: (n, 2, C, H, W), the views differ, and the result is reproducible.
  o.two_views = true;
  data::AugmentedImageDataset pairs(paths, {}, Augmenter::simclr(16), o);
  CHECK(pairs.input_shape() == Shape{2, 3, 12, 16});
  Tensor px, py;
  pairs.get(idx, px, py);
  REQUIRE(px.shape() == Shape{3, 2, 3, 12, 16});
  CHECK(py[1] == 0.0f);
  const int64_t view = 3 * 12 * 16;
  for (int64_t s = 0; s < 3; ++s) {
    double diff = 0.0;
    for (int64_t i = 0; i < view; ++i)
      diff += std::abs(px[(2 * s) * view + i] - px[(2 * s + 1) * view + i]);
    CHECK(diff > 1.0);
  }
  data::AugmentedImageDataset again(paths, {}, Augmenter::simclr(16), o);
  Tensor ax, ay;
  again.get(idx, ax, ay);
  for (int64_t i = 0; i < px.numel(); ++i) REQUIRE(px[i] == ax[i]);

  // Without steps the views are the resized images themselves.
  data::AugmentedImageDataset plain(paths, {}, Augmenter(), o);
  plain.get(std::vector<int64_t>{1}, px, py);
  const Tensor ref = to_tensor(resize(load_image(paths[1]), 16, 12));
  for (int64_t i = 0; i < view; ++i) {
    REQUIRE(px[i] == ref[i]);
    REQUIRE(px[view + i] == ref[i]);
  }
}

TEST_CASE("AugmentedImageDataset over an image folder, with bad files", "[augment][dataset]") {
  TempDir dir;
  std::filesystem::create_directories(dir.path() / "cat");
  std::filesystem::create_directories(dir.path() / "dog");
  save_png(dir / "cat/a.png", smooth_image(20, 20, 3));
  save_png(dir / "dog/b.png", smooth_image(24, 18, 3));
  data::ImageFolderDataset folder(dir.path().string());
  REQUIRE(folder.size() == 2);
  data::AugmentedImageOptions o;
  o.width = 8;
  o.height = 8;
  o.channels = 1;
  data::AugmentedImageDataset ds(folder, Augmenter::near_duplicate(8), o);
  CHECK(ds.label(1) == 1);
  CHECK(ds.path(0) == folder.path(0));
  Tensor x, y;
  ds.get(std::vector<int64_t>{0, 1}, x, y);
  CHECK(x.shape() == Shape{2, 1, 8, 8});
  CHECK(y[1] == 1.0f);
  CHECK_THROWS_AS(ds.get(std::vector<int64_t>{2}, x, y), InvalidArgument);

  // A file that breaks after construction: zeros and a skipped() entry, or a throw if strict.
  imgsim::testing::write_file(dir / "dog/b.png", {0x89, 'P', 'N', 'G'});
  ds.get(std::vector<int64_t>{1, 0}, x, y);
  REQUIRE(ds.skipped().size() == 1);
  CHECK(ds.skipped()[0].path == folder.path(1));
  for (int64_t i = 0; i < 64; ++i) REQUIRE(x[i] == 0.0f);
  double sum = 0.0;
  for (int64_t i = 64; i < 128; ++i) sum += x[i];
  CHECK(sum > 0.0);
  o.strict = true;
  data::AugmentedImageDataset strict(folder, Augmenter(), o);
  CHECK_THROWS_AS(strict.get(std::vector<int64_t>{1}, x, y), FormatError);

  CHECK_THROWS_AS(data::AugmentedImageDataset({}, {}, Augmenter()), InvalidArgument);
  CHECK_THROWS_AS(data::AugmentedImageDataset({"a.png"}, {0, 1}, Augmenter()), InvalidArgument);
  CHECK_THROWS_AS(data::AugmentedImageDataset({"a.png"}, {-1}, Augmenter()), InvalidArgument);
  data::AugmentedImageOptions bad;
  bad.channels = 2;
  CHECK_THROWS_AS(data::AugmentedImageDataset({"a.png"}, {}, Augmenter(), bad), InvalidArgument);
}

TEST_CASE("AugmentedImageDataset with a decoded-image cache", "[augment][dataset]") {
  TempDir dir;
  std::vector<std::string> paths;
  for (int i = 0; i < 3; ++i) {
    const std::string p = dir / ("img" + std::to_string(i) + ".png");
    save_png(p, smooth_image(40 + 3 * i, 30 + i, 3));
    paths.push_back(p);
  }
  data::AugmentedImageOptions o;
  o.width = o.height = 12;
  o.two_views = true;
  o.seed = 5;
  const std::vector<int64_t> idx = {1, 2, 0};
  Tensor plain_x, cached_x, y;
  // A cache side above every image keeps the decoded pixels as they are: the same tensors.
  data::AugmentedImageDataset plain(paths, {}, Augmenter::near_duplicate(12), o);
  plain.get(idx, plain_x, y);
  o.cache_max_side = 64;
  data::AugmentedImageDataset cached(paths, {}, Augmenter::near_duplicate(12), o);
  cached.get(idx, cached_x, y);
  REQUIRE(cached_x.shape() == plain_x.shape());
  for (int64_t i = 0; i < plain_x.numel(); ++i) REQUIRE(cached_x[i] == plain_x[i]);
  // Once cached, the files are no longer read: removing them changes nothing.
  for (const auto& p : paths) std::filesystem::remove(p);
  cached.set_epoch(0);
  cached.get(idx, cached_x, y);
  CHECK(cached.skipped().empty());
  for (int64_t i = 0; i < plain_x.numel(); ++i) REQUIRE(cached_x[i] == plain_x[i]);
  // A small cache side shrinks the stored images; the output keeps its size.
  for (int i = 0; i < 3; ++i) save_png(paths[static_cast<std::size_t>(i)], smooth_image(80, 60, 3));
  o.cache_max_side = 16;
  data::AugmentedImageDataset small(paths, {}, Augmenter::near_duplicate(12), o);
  small.get(idx, cached_x, y);
  CHECK(cached_x.shape() == Shape{3, 2, 3, 12, 12});
  CHECK(small.skipped().empty());
  o.cache_max_side = -1;
  CHECK_THROWS_AS(data::AugmentedImageDataset(paths, {}, Augmenter(), o), InvalidArgument);
}

TEST_CASE("random_erasing fills one rectangle per erased image with U(0, 1) noise",
          "[augment][erasing]") {
  // Every value starts at -1, outside [0, 1): an erased value is told apart exactly.
  const int64_t n = 400, c = 3, h = 13, w = 29;  // odd, non-square
  Tensor x({n, c, h, w});
  x.fill(-1.0f);
  RandomErasing o;
  o.probability = 0.5f;
  Rng rng(42);
  random_erasing(x, o, rng);
  int64_t erased = 0;
  std::vector<double> areas, aspects;
  for (int64_t i = 0; i < n; ++i) {
    // Bounding box of the changed values of channel 0.
    int64_t r0 = h, r1 = -1, q0 = w, q1 = -1, count = 0;
    for (int64_t r = 0; r < h; ++r)
      for (int64_t q = 0; q < w; ++q)
        if (x.at(i, 0, r, q) != -1.0f) {
          r0 = std::min(r0, r), r1 = std::max(r1, r), q0 = std::min(q0, q), q1 = std::max(q1, q);
          ++count;
        }
    if (count == 0) {
      for (int64_t k = 0; k < c * h * w; ++k) REQUIRE(x.data()[i * c * h * w + k] == -1.0f);
      continue;
    }
    ++erased;
    const int64_t eh = r1 - r0 + 1, ew = q1 - q0 + 1;
    REQUIRE(count == eh * ew);  // a full rectangle
    REQUIRE(eh < h);
    REQUIRE(ew < w);
    // The same rectangle in every channel, values in [0, 1), not all equal.
    std::set<float> values;
    for (int64_t ch = 0; ch < c; ++ch)
      for (int64_t r = 0; r < h; ++r)
        for (int64_t q = 0; q < w; ++q) {
          const float v = x.at(i, ch, r, q);
          const bool inside = r >= r0 && r <= r1 && q >= q0 && q <= q1;
          if (inside) {
            REQUIRE(v >= 0.0f);
            REQUIRE(v < 1.0f);
            values.insert(v);
          } else {
            REQUIRE(v == -1.0f);
          }
        }
    CHECK(values.size() > static_cast<std::size_t>(c * eh * ew / 2));
    areas.push_back(static_cast<double>(eh * ew) / static_cast<double>(h * w));
    aspects.push_back(static_cast<double>(eh) / static_cast<double>(ew));
  }
  // About half the images (400 draws: 4.5 standard deviations either side).
  CHECK(erased >= 155);
  CHECK(erased <= 245);
  // Areas and aspect ratios within the ranges, up to the rounding of the sides to pixels.
  for (std::size_t k = 0; k < areas.size(); ++k) {
    INFO("erased rectangle " << k);
    CHECK(areas[k] <= 0.4 * 1.6);
    CHECK(aspects[k] >= 0.3 / 2.0);
    CHECK(aspects[k] <= 2.0 / 0.3);
  }
  // Both sides of the log-uniform aspect ratio occur.
  CHECK(std::count_if(aspects.begin(), aspects.end(), [](double a) { return a > 1.2; }) > 10);
  CHECK(std::count_if(aspects.begin(), aspects.end(), [](double a) { return a < 0.8; }) > 10);

  SECTION("the same seed gives the same batch; probability 0 and 1") {
    Tensor y({n, c, h, w});
    y.fill(-1.0f);
    Rng again(42);
    random_erasing(y, o, again);
    for (int64_t k = 0; k < x.numel(); ++k) REQUIRE(y.data()[k] == x.data()[k]);
    y.fill(-1.0f);
    o.probability = 0.0f;
    random_erasing(y, o, again);
    for (int64_t k = 0; k < y.numel(); ++k) REQUIRE(y.data()[k] == -1.0f);
    o.probability = 1.0f;
    random_erasing(y, o, again);
    int64_t untouched = 0;
    for (int64_t i = 0; i < n; ++i)
      untouched += std::all_of(y.data() + i * c * h * w, y.data() + (i + 1) * c * h * w,
                               [](float v) { return v == -1.0f; });
    CHECK(untouched == 0);  // a fitting rectangle is nearly always found within 10 draws
  }
}

TEST_CASE("random_erasing rejects bad shapes and options", "[augment][erasing]") {
  Rng rng(1);
  Tensor three({3, 8, 8});
  CHECK_THROWS_AS(random_erasing(three, RandomErasing{}, rng), ShapeError);
  Tensor x({2, 1, 8, 8});
  RandomErasing o;
  o.probability = 1.5f;
  CHECK_THROWS_AS(random_erasing(x, o, rng), InvalidArgument);
  o = {};
  o.probability = std::nanf("");
  CHECK_THROWS_AS(random_erasing(x, o, rng), InvalidArgument);
  o = {};
  o.area_min = 0.0f;
  CHECK_THROWS_AS(random_erasing(x, o, rng), InvalidArgument);
  o = {};
  o.area_min = 0.5f;
  o.area_max = 0.4f;
  CHECK_THROWS_AS(random_erasing(x, o, rng), InvalidArgument);
  o = {};
  o.area_max = 1.5f;
  CHECK_THROWS_AS(random_erasing(x, o, rng), InvalidArgument);
  o = {};
  o.aspect_min = 0.0f;
  CHECK_THROWS_AS(random_erasing(x, o, rng), InvalidArgument);
  o = {};
  o.aspect_min = 2.0f;
  CHECK_THROWS_AS(random_erasing(x, o, rng), InvalidArgument);
  // A 1x1 image has no rectangle smaller than itself: left alone.
  Tensor one({4, 2, 1, 1});
  one.fill(-1.0f);
  o = {};
  o.probability = 1.0f;
  random_erasing(one, o, rng);
  for (int64_t k = 0; k < one.numel(); ++k) CHECK(one.data()[k] == -1.0f);
}
