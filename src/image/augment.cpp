// Geometric, colour and filter operations, random operations and the Augmenter
// (include/imgsim/image/augment.hpp, docs/augmentation.md).
#include <algorithm>
#include <cmath>
#include <numbers>
#include <string>
#include <utility>

#include "image/augment_internal.hpp"
#include "image/box_resample.hpp"
#include "imgsim/error.hpp"
#include "imgsim/image/augment.hpp"

namespace imgsim::image {

using detail::check_color;
using detail::check_float;
using detail::clamp01;
using detail::color_values;
using detail::copy_into;
using detail::luma;
using detail::require_image;

namespace {

std::string dims(int w, int h) {
  return std::to_string(w) + " x " + std::to_string(h);
}

// Number of colour (non-alpha) channels.
int color_channels(const Image& img) {
  return img.channels() == 4 ? 3 : img.channels();
}

// Mirrors index i into [0, n): ... 2 1 | 0 1 2 ... n-1 | n-2 ...
int reflect(int i, int n) {
  if (n == 1) return 0;
  const int period = 2 * (n - 1);
  i %= period;
  if (i < 0) i += period;
  return i < n ? i : period - i;
}

// Checks lo <= hi inside [min, max] (lo > min when min_exclusive).
void check_pair(const char* what, const char* name, float lo, float hi, float min, float max,
                bool min_exclusive, const char* range) {
  const bool ok = std::isfinite(lo) && std::isfinite(hi) && lo <= hi && hi <= max &&
                  (min_exclusive ? lo > min : lo >= min);
  if (ok) return;
  std::string value = "[";
  value += std::to_string(lo);
  value += ", ";
  value += std::to_string(hi);
  value += "]";
  detail::bad_param(what, name, value, range);
}

void check_int_pair(const char* what, const char* name, int lo, int hi, int min, int max) {
  if (lo < min || hi < lo || hi > max)
    throw InvalidArgument(std::string(what) + ": " + name + " must satisfy " + std::to_string(min) +
                          " <= min <= max <= " + std::to_string(max) + ", got [" +
                          std::to_string(lo) + ", " + std::to_string(hi) + "]");
}

void check_out_size(const char* what, int w, int h) {
  if (w < 1 || h < 1 || w > kMaxImageSide || h > kMaxImageSide)
    throw InvalidArgument(std::string(what) + ": output size " + dims(w, h) + " out of range [1, " +
                          std::to_string(kMaxImageSide) + "]");
}

}  // namespace

// --- geometry --------------------------------------------------------------------------------

void flip_horizontal(Image& img) {
  require_image("flip_horizontal", img);
  const int c = img.channels(), w = img.width();
  for (int y = 0; y < img.height(); ++y) {
    float* r = img.row(y);
    for (int a = 0, b = w - 1; a < b; ++a, --b)
      std::swap_ranges(r + a * c, r + (a + 1) * c, r + b * c);
  }
}

void flip_vertical(Image& img) {
  require_image("flip_vertical", img);
  const std::size_t n = static_cast<std::size_t>(img.width()) * img.channels();
  for (int a = 0, b = img.height() - 1; a < b; ++a, --b)
    std::swap_ranges(img.row(a), img.row(a) + n, img.row(b));
}

void crop_into(const Image& src, Image& dst, int x, int y, int width, int height) {
  require_image("crop", src);
  if (width < 1 || height < 1 || x < 0 || y < 0 || int64_t{x} + width > src.width() ||
      int64_t{y} + height > src.height())
    throw InvalidArgument("crop: rectangle " + dims(width, height) + " at (" + std::to_string(x) +
                          ", " + std::to_string(y) + ") is not inside the " +
                          dims(src.width(), src.height()) + " image");
  if (&src == &dst) {
    Image tmp;
    crop_into(src, tmp, x, y, width, height);
    dst = std::move(tmp);
    return;
  }
  const int c = src.channels();
  dst.reset(width, height, c);
  for (int r = 0; r < height; ++r) {
    const float* from = src.row(y + r) + static_cast<std::size_t>(x) * c;
    std::copy(from, from + static_cast<std::size_t>(width) * c, dst.row(r));
  }
}

void resized_crop_into(const Image& src, Image& dst, const CropRect& rect, int width, int height,
                       ResizeFilter filter) {
  check_out_size("resized_crop", width, height);
  // Box shrinking reads the rectangle in place; other filters see the cut's own edges.
  if (!src.empty() && rect.x >= 0 && rect.y >= 0 && rect.width >= 1 && rect.height >= 1 &&
      int64_t{rect.x} + rect.width <= src.width() &&
      int64_t{rect.y} + rect.height <= src.height() &&
      detail::box_resample(src, dst, width, height, filter, rect.x, rect.y, rect.x + rect.width,
                           rect.y + rect.height))
    return;
  thread_local Image cut;
  crop_into(src, cut, rect.x, rect.y, rect.width, rect.height);
  resize_into(cut, dst, width, height, filter);
}

CropRect rotated_valid_size(int width, int height, float degrees) {
  check_out_size("rotated_valid_size", width, height);
  check_float("rotated_valid_size", "degrees", degrees, -1e6f, 1e6f, "finite");
  const double rad = static_cast<double>(degrees) * std::numbers::pi / 180.0;
  const double c = std::abs(std::cos(rad)), s = std::abs(std::sin(rad));
  const double w = width, h = height;
  const double k = std::min(w / (w * c + h * s), h / (w * s + h * c));
  const auto side = [&](double v) {
    return std::max(1, static_cast<int>(std::floor(k * v + 1e-6)));
  };
  return {0, 0, std::min(width, side(w)), std::min(height, side(h))};
}

void rotate_into(const Image& src, Image& dst, float degrees, const RotateOptions& options) {
  require_image("rotate", src);
  check_float("rotate", "degrees", degrees, -1e6f, 1e6f, "finite");
  check_color("rotate: fill", options.fill);
  if (&src == &dst) {
    Image tmp;
    rotate_into(src, tmp, degrees, options);
    dst = std::move(tmp);
    return;
  }
  const int w = src.width(), h = src.height(), ch = src.channels();
  const CropRect out =
      options.crop_to_valid ? rotated_valid_size(w, h, degrees) : CropRect{0, 0, w, h};
  dst.reset(out.width, out.height, ch);
  const std::array<float, 4> fill = color_values(options.fill, ch);
  const double rad = static_cast<double>(degrees) * std::numbers::pi / 180.0;
  const double cs = std::cos(rad), sn = std::sin(rad);
  const double cxs = (w - 1) / 2.0, cys = (h - 1) / 2.0;
  const double cxo = (out.width - 1) / 2.0, cyo = (out.height - 1) / 2.0;
  // Output point q maps back to source point c_s + R^T (q - c_o), R the counter-clockwise
  // rotation in y-down coordinates: R = [cos sin; -sin cos].
  for (int y = 0; y < out.height; ++y) {
    const double dy = y - cyo;
    const double sx0 = cxs - sn * dy, sy0 = cys + cs * dy;
    float* o = dst.row(y);
    for (int x = 0; x < out.width; ++x, o += ch) {
      const double dx = x - cxo;
      double sx = sx0 + cs * dx, sy = sy0 + sn * dx;
      if (!(sx >= -0.5 && sx <= w - 0.5 && sy >= -0.5 && sy <= h - 0.5)) {
        for (int k = 0; k < ch; ++k) o[k] = fill[static_cast<std::size_t>(k)];
        continue;
      }
      sx = std::clamp(sx, 0.0, w - 1.0);
      sy = std::clamp(sy, 0.0, h - 1.0);
      const int x0 = static_cast<int>(sx), y0 = static_cast<int>(sy);
      const int x1 = std::min(x0 + 1, w - 1), y1 = std::min(y0 + 1, h - 1);
      const auto fx = static_cast<float>(sx - x0), fy = static_cast<float>(sy - y0);
      const float w00 = (1 - fx) * (1 - fy), w10 = fx * (1 - fy), w01 = (1 - fx) * fy,
                  w11 = fx * fy;
      const float* p00 = src.row(y0) + static_cast<std::size_t>(x0) * ch;
      const float* p10 = src.row(y0) + static_cast<std::size_t>(x1) * ch;
      const float* p01 = src.row(y1) + static_cast<std::size_t>(x0) * ch;
      const float* p11 = src.row(y1) + static_cast<std::size_t>(x1) * ch;
      if (ch == 4) {  // alpha-weighted colours
        const float a00 = w00 * p00[3], a10 = w10 * p10[3], a01 = w01 * p01[3], a11 = w11 * p11[3];
        const float a = a00 + a10 + a01 + a11;
        for (int k = 0; k < 3; ++k)
          o[k] = a > 0.0f ? clamp01((a00 * p00[k] + a10 * p10[k] + a01 * p01[k] + a11 * p11[k]) / a)
                          : 0.0f;
        o[3] = clamp01(a);
      } else {
        for (int k = 0; k < ch; ++k)
          o[k] = clamp01(w00 * p00[k] + w10 * p10[k] + w01 * p01[k] + w11 * p11[k]);
      }
    }
  }
}

Image rotate(const Image& src, float degrees, const RotateOptions& options) {
  Image out;
  rotate_into(src, out, degrees, options);
  return out;
}

void add_border_into(const Image& src, Image& dst, const Borders& b, Color color) {
  require_image("add_border", src);
  check_color("add_border", color);
  if (b.top < 0 || b.right < 0 || b.bottom < 0 || b.left < 0)
    throw InvalidArgument("add_border: border sizes must be >= 0, got top " +
                          std::to_string(b.top) + " right " + std::to_string(b.right) + " bottom " +
                          std::to_string(b.bottom) + " left " + std::to_string(b.left));
  const int64_t nw = int64_t{src.width()} + b.left + b.right;
  const int64_t nh = int64_t{src.height()} + b.top + b.bottom;
  if (nw > kMaxImageSide || nh > kMaxImageSide)
    throw InvalidArgument("add_border: result " + std::to_string(nw) + " x " + std::to_string(nh) +
                          " exceeds kMaxImageSide " + std::to_string(kMaxImageSide));
  if (&src == &dst) {
    Image tmp;
    add_border_into(src, tmp, b, color);
    dst = std::move(tmp);
    return;
  }
  const int c = src.channels();
  dst.reset(static_cast<int>(nw), static_cast<int>(nh), c);
  const std::array<float, 4> v = color_values(color, c);
  for (int y = 0; y < dst.height(); ++y) {
    float* o = dst.row(y);
    const int sy = y - b.top;
    if (sy < 0 || sy >= src.height()) {
      detail::fill_pixels(o, nw, c, v.data());
      continue;
    }
    detail::fill_pixels(o, b.left, c, v.data());
    std::copy(src.row(sy), src.row(sy) + static_cast<std::size_t>(src.width()) * c,
              o + static_cast<std::size_t>(b.left) * c);
    detail::fill_pixels(o + static_cast<std::size_t>(b.left + src.width()) * c, b.right, c,
                        v.data());
  }
}

Image add_border(const Image& src, const Borders& borders, Color color) {
  Image out;
  add_border_into(src, out, borders, color);
  return out;
}

Borders pad_to_aspect_borders(int width, int height, float aspect) {
  check_out_size("pad_to_aspect", width, height);
  check_float("pad_to_aspect", "aspect", aspect, 1e-6f, 1e6f, "positive and finite");
  Borders b;
  const double current = static_cast<double>(width) / height;
  if (current < aspect) {
    const auto target = std::llround(height * static_cast<double>(aspect));
    const auto pad = static_cast<int>(std::clamp<long long>(target - width, 0, kMaxImageSide));
    b.left = pad / 2;
    b.right = pad - b.left;
  } else if (current > aspect) {
    const auto target = std::llround(width / static_cast<double>(aspect));
    const auto pad = static_cast<int>(std::clamp<long long>(target - height, 0, kMaxImageSide));
    b.top = pad / 2;
    b.bottom = pad - b.top;
  }
  return b;
}

void pad_to_aspect_into(const Image& src, Image& dst, float aspect, Color color) {
  require_image("pad_to_aspect", src);
  add_border_into(src, dst, pad_to_aspect_borders(src.width(), src.height(), aspect), color);
}

Image pad_to_aspect(const Image& src, float aspect, Color color) {
  Image out;
  pad_to_aspect_into(src, out, aspect, color);
  return out;
}

// --- colour ----------------------------------------------------------------------------------

void adjust_brightness(Image& img, float factor) {
  require_image("adjust_brightness", img);
  check_float("adjust_brightness", "factor", factor, 0.0f, 1e6f, ">= 0 and finite");
  const int c = img.channels(), cc = color_channels(img);
  float* p = img.data();
  for (int64_t i = 0; i < img.pixel_count(); ++i, p += c)
    for (int k = 0; k < cc; ++k) p[k] = clamp01(p[k] * factor);
}

void adjust_contrast(Image& img, float factor) {
  require_image("adjust_contrast", img);
  check_float("adjust_contrast", "factor", factor, 0.0f, 1e6f, ">= 0 and finite");
  const int c = img.channels(), cc = color_channels(img);
  double sum = 0.0;
  const float* q = img.data();
  for (int64_t i = 0; i < img.pixel_count(); ++i, q += c)
    sum += cc == 1 ? q[0] : luma(q[0], q[1], q[2]);
  const auto mean = static_cast<float>(sum / static_cast<double>(img.pixel_count()));
  float* p = img.data();
  for (int64_t i = 0; i < img.pixel_count(); ++i, p += c)
    for (int k = 0; k < cc; ++k) p[k] = clamp01(mean + factor * (p[k] - mean));
}

void adjust_saturation(Image& img, float factor) {
  require_image("adjust_saturation", img);
  check_float("adjust_saturation", "factor", factor, 0.0f, 1e6f, ">= 0 and finite");
  if (img.channels() == 1) return;
  const int c = img.channels();
  float* p = img.data();
  for (int64_t i = 0; i < img.pixel_count(); ++i, p += c) {
    const float l = luma(p[0], p[1], p[2]);
    for (int k = 0; k < 3; ++k) p[k] = clamp01(l + factor * (p[k] - l));
  }
}

void adjust_hue(Image& img, float shift) {
  require_image("adjust_hue", img);
  check_float("adjust_hue", "shift", shift, -0.5f, 0.5f, "in [-0.5, 0.5]");
  if (img.channels() == 1) return;
  const int c = img.channels();
  float* p = img.data();
  for (int64_t i = 0; i < img.pixel_count(); ++i, p += c) {
    const float r = p[0], g = p[1], b = p[2];
    const float mx = std::max({r, g, b}), mn = std::min({r, g, b}), d = mx - mn;
    if (d <= 0.0f) continue;  // gray: no hue
    float h;
    if (mx == r)
      h = (g - b) / d;
    else if (mx == g)
      h = 2.0f + (b - r) / d;
    else
      h = 4.0f + (r - g) / d;
    h = h / 6.0f + shift;
    h -= std::floor(h);
    const float s = d / mx, v = mx;
    const float h6 = h * 6.0f;
    const float sector = std::floor(h6);
    const float f = h6 - sector;
    const float pp = v * (1 - s), qq = v * (1 - s * f), tt = v * (1 - s * (1 - f));
    float o[3];
    switch (static_cast<int>(sector) % 6) {
      case 0:
        o[0] = v, o[1] = tt, o[2] = pp;
        break;
      case 1:
        o[0] = qq, o[1] = v, o[2] = pp;
        break;
      case 2:
        o[0] = pp, o[1] = v, o[2] = tt;
        break;
      case 3:
        o[0] = pp, o[1] = qq, o[2] = v;
        break;
      case 4:
        o[0] = tt, o[1] = pp, o[2] = v;
        break;
      default:
        o[0] = v, o[1] = pp, o[2] = qq;
        break;
    }
    for (int k = 0; k < 3; ++k) p[k] = clamp01(o[k]);
  }
}

void to_grayscale(Image& img) {
  require_image("to_grayscale", img);
  if (img.channels() == 1) return;
  const int c = img.channels();
  float* p = img.data();
  for (int64_t i = 0; i < img.pixel_count(); ++i, p += c)
    p[0] = p[1] = p[2] = clamp01(luma(p[0], p[1], p[2]));
}

// --- filters ---------------------------------------------------------------------------------

int gaussian_radius(float sigma) {
  check_float("gaussian_blur", "sigma", sigma, 1e-6f, 1000.0f, "in (0, 1000]");
  return std::max(1, static_cast<int>(std::ceil(3.0f * sigma)));
}

void gaussian_blur(Image& img, float sigma) {
  require_image("gaussian_blur", img);
  const int r = gaussian_radius(sigma);
  const int w = img.width(), h = img.height(), c = img.channels();
  thread_local std::vector<float> kernel, line, tmp;
  kernel.resize(static_cast<std::size_t>(2 * r + 1));
  double total = 0.0;
  for (int k = -r; k <= r; ++k) {
    const double v = std::exp(-0.5 * k * k / (double{sigma} * sigma));
    kernel[static_cast<std::size_t>(k + r)] = static_cast<float>(v);
    total += v;
  }
  for (float& v : kernel) v = static_cast<float>(v / total);

  if (c == 4) {  // blur alpha-weighted colours
    float* p = img.data();
    for (int64_t i = 0; i < img.pixel_count(); ++i, p += 4)
      for (int k = 0; k < 3; ++k) p[k] *= p[3];
  }
  const std::size_t row_len = static_cast<std::size_t>(w) * c;
  line.resize((static_cast<std::size_t>(w) + 2 * static_cast<std::size_t>(r)) * c);
  tmp.resize(row_len * static_cast<std::size_t>(h));
  // Horizontal pass: each row, mirrored out to r pixels each side, into tmp.
  for (int y = 0; y < h; ++y) {
    const float* s = img.row(y);
    for (int i = 0; i < w + 2 * r; ++i) {
      const float* from = s + static_cast<std::size_t>(reflect(i - r, w)) * c;
      std::copy(from, from + c, line.data() + static_cast<std::size_t>(i) * c);
    }
    float* t = tmp.data() + row_len * static_cast<std::size_t>(y);
    for (std::size_t j = 0; j < row_len; ++j) {
      float acc = 0.0f;
      const float* l = line.data() + j;
      for (int k = 0; k <= 2 * r; ++k)
        acc += kernel[static_cast<std::size_t>(k)] * l[static_cast<std::size_t>(k) * c];
      t[j] = acc;
    }
  }
  // Vertical pass: whole rows of tmp, mirrored at the top and bottom, back into img.
  for (int y = 0; y < h; ++y) {
    float* o = img.row(y);
    std::fill(o, o + row_len, 0.0f);
    for (int k = -r; k <= r; ++k) {
      const float wk = kernel[static_cast<std::size_t>(k + r)];
      const float* t = tmp.data() + row_len * static_cast<std::size_t>(reflect(y + k, h));
      for (std::size_t j = 0; j < row_len; ++j) o[j] += wk * t[j];
    }
  }
  float* p = img.data();
  for (int64_t i = 0; i < img.pixel_count(); ++i, p += c) {
    if (c == 4) {
      const float a = p[3];
      for (int k = 0; k < 3; ++k) p[k] = a > 1e-6f ? p[k] / a : 0.0f;
    }
    for (int k = 0; k < c; ++k) p[k] = clamp01(p[k]);
  }
}

void jpeg_reencode(Image& img, int quality) {
  require_image("jpeg_reencode", img);
  if (quality < 1 || quality > 100)
    throw InvalidArgument("jpeg_reencode: quality must be in [1, 100], got " +
                          std::to_string(quality));
  const std::vector<unsigned char> bytes = encode_image(img, ImageFormat::jpg, quality);
  LoadOptions options;
  options.channels = img.channels() == 1 ? 1 : 3;
  options.apply_exif_orientation = false;
  if (img.channels() != 4) {
    load_image_from_memory_into(bytes, img, options, "jpeg_reencode");
    return;
  }
  thread_local Image rgb;
  load_image_from_memory_into(bytes, rgb, options, "jpeg_reencode");
  const float* s = rgb.data();
  float* p = img.data();
  for (int64_t i = 0; i < img.pixel_count(); ++i, p += 4, s += 3) std::copy(s, s + 3, p);
}

// --- random operations -----------------------------------------------------------------------

CropRect random_resized_crop_rect(int width, int height, const RandomResizedCrop& p, Rng& rng) {
  validate_augment_op(p);
  check_out_size("random_resized_crop", width, height);
  const double area = static_cast<double>(width) * height;
  const float log_lo = std::log(p.ratio_min), log_hi = std::log(p.ratio_max);
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double target = area * rng.uniform(p.scale_min, p.scale_max);
    const double ratio = std::exp(static_cast<double>(rng.uniform(log_lo, log_hi)));
    const auto w = std::llround(std::sqrt(target * ratio));
    const auto h = std::llround(std::sqrt(target / ratio));
    if (w > 0 && w <= width && h > 0 && h <= height) {
      const auto y = static_cast<int>(rng.below(static_cast<uint64_t>(height - h + 1)));
      const auto x = static_cast<int>(rng.below(static_cast<uint64_t>(width - w + 1)));
      return {x, y, static_cast<int>(w), static_cast<int>(h)};
    }
  }
  // Fallback: the centred crop with the closest allowed aspect ratio.
  const double in_ratio = static_cast<double>(width) / height;
  long long w = width, h = height;
  if (in_ratio < p.ratio_min)
    h = std::clamp<long long>(std::llround(width / double{p.ratio_min}), 1, height);
  else if (in_ratio > p.ratio_max)
    w = std::clamp<long long>(std::llround(height * double{p.ratio_max}), 1, width);
  return {static_cast<int>((width - w) / 2), static_cast<int>((height - h) / 2),
          static_cast<int>(w), static_cast<int>(h)};
}

namespace {

// Uniform top-left position of a box of side `box` in a side of length `side`: inside when it
// fits, otherwise overhanging both edges.
int place(Rng& rng, int side, int box) {
  return side >= box ? detail::uniform_int(rng, 0, side - box)
                     : detail::uniform_int(rng, side - box, 0);
}

struct Validator {
  void operator()(const RandomResizedCrop& p) const {
    check_out_size("RandomResizedCrop", p.width, p.height);
    check_pair("RandomResizedCrop", "scale", p.scale_min, p.scale_max, 0.0f, 1.0f, true,
               "0 < min <= max <= 1");
    check_pair("RandomResizedCrop", "ratio", p.ratio_min, p.ratio_max, 0.0f, 1e3f, true,
               "0 < min <= max <= 1000");
  }
  void operator()(const HorizontalFlip&) const {}
  void operator()(const VerticalFlip&) const {}
  void operator()(const RandomRotation& p) const {
    check_float("RandomRotation", "max_degrees", p.max_degrees, 0.0f, 360.0f, "in [0, 360]");
    check_color("RandomRotation: fill", p.options.fill);
  }
  void operator()(const ColorJitter& p) const {
    check_float("ColorJitter", "brightness", p.brightness, 0.0f, 1e3f, "in [0, 1000]");
    check_float("ColorJitter", "contrast", p.contrast, 0.0f, 1e3f, "in [0, 1000]");
    check_float("ColorJitter", "saturation", p.saturation, 0.0f, 1e3f, "in [0, 1000]");
    check_float("ColorJitter", "hue", p.hue, 0.0f, 0.5f, "in [0, 0.5]");
  }
  void operator()(const Grayscale&) const {}
  void operator()(const GaussianBlur& p) const {
    check_pair("GaussianBlur", "sigma", p.sigma_min, p.sigma_max, 0.0f, 1000.0f, true,
               "0 < min <= max <= 1000");
  }
  void operator()(const JpegCompression& p) const {
    check_int_pair("JpegCompression", "quality", p.quality_min, p.quality_max, 1, 100);
  }
  void operator()(const TextOverlay& p) const {
    check_int_pair("TextOverlay", "length", p.min_length, p.max_length, 0, 4096);
    check_pair("TextOverlay", "height", p.height_min, p.height_max, 0.0f, 1.0f, true,
               "0 < min <= max <= 1");
    check_pair("TextOverlay", "opacity", p.opacity_min, p.opacity_max, 0.0f, 1.0f, false,
               "0 <= min <= max <= 1");
  }
  void operator()(const LogoOverlay& p) const {
    check_pair("LogoOverlay", "size", p.size_min, p.size_max, 0.0f, 1.0f, true,
               "0 < min <= max <= 1");
    check_pair("LogoOverlay", "opacity", p.opacity_min, p.opacity_max, 0.0f, 1.0f, false,
               "0 <= min <= max <= 1");
  }
  void operator()(const RandomBorder& p) const {
    check_pair("RandomBorder", "fraction", p.fraction_min, p.fraction_max, 0.0f, 1.0f, false,
               "0 <= min <= max <= 1");
    check_color("RandomBorder", p.color);
  }
  void operator()(const PadToAspect& p) const {
    check_float("PadToAspect", "aspect", p.aspect, 1.0f / 64, 64.0f, "in [1/64, 64]");
    check_color("PadToAspect", p.color);
  }
  void operator()(const Resize& p) const { check_out_size("Resize", p.width, p.height); }
  void operator()(const CustomAugment& p) const {
    if (!p.fn) throw InvalidArgument("CustomAugment '" + p.name + "': no function");
  }
};

// Applies one op: in-place ops copy src to dst first (a no-op when they are the same object).
struct Applier {
  const Image& src;
  Image& dst;
  Rng& rng;

  void operator()(const RandomResizedCrop& p) const {
    const CropRect r = random_resized_crop_rect(src.width(), src.height(), p, rng);
    resized_crop_into(src, dst, r, p.width, p.height, p.filter);
  }
  void operator()(const HorizontalFlip&) const {
    copy_into(src, dst);
    flip_horizontal(dst);
  }
  void operator()(const VerticalFlip&) const {
    copy_into(src, dst);
    flip_vertical(dst);
  }
  void operator()(const RandomRotation& p) const {
    rotate_into(src, dst, rng.uniform(-p.max_degrees, p.max_degrees), p.options);
  }
  void operator()(const ColorJitter& p) const {
    // As torchvision: a random order of the four adjustments, then the factors.
    int order[4] = {0, 1, 2, 3};
    for (int i = 3; i > 0; --i)
      std::swap(order[i], order[static_cast<int>(rng.below(static_cast<uint64_t>(i + 1)))]);
    const auto factor = [&](float x) { return rng.uniform(std::max(0.0f, 1.0f - x), 1.0f + x); };
    const float b = p.brightness > 0 ? factor(p.brightness) : 1.0f;
    const float c = p.contrast > 0 ? factor(p.contrast) : 1.0f;
    const float s = p.saturation > 0 ? factor(p.saturation) : 1.0f;
    const float h = p.hue > 0 ? rng.uniform(-p.hue, p.hue) : 0.0f;
    copy_into(src, dst);
    for (int k : order) {
      if (k == 0 && p.brightness > 0) adjust_brightness(dst, b);
      if (k == 1 && p.contrast > 0) adjust_contrast(dst, c);
      if (k == 2 && p.saturation > 0) adjust_saturation(dst, s);
      if (k == 3 && p.hue > 0) adjust_hue(dst, h);
    }
  }
  void operator()(const Grayscale&) const {
    copy_into(src, dst);
    to_grayscale(dst);
  }
  void operator()(const GaussianBlur& p) const {
    const float sigma = rng.uniform(p.sigma_min, p.sigma_max);
    copy_into(src, dst);
    gaussian_blur(dst, sigma);
  }
  void operator()(const JpegCompression& p) const {
    const int q = detail::uniform_int(rng, p.quality_min, p.quality_max);
    copy_into(src, dst);
    jpeg_reencode(dst, q);
  }
  void operator()(const TextOverlay& p) const {
    const int len = detail::uniform_int(rng, p.min_length, p.max_length);
    thread_local std::string text;
    text.clear();
    for (int i = 0; i < len; ++i) text.push_back(detail::random_text_char(rng));
    const float glyph = rng.uniform(p.height_min, p.height_max) * static_cast<float>(src.height());
    TextStyle style;
    style.scale = std::clamp(static_cast<int>(std::lround(glyph / kGlyphHeight)), 1, 1024);
    style.color = detail::random_color(rng);
    style.opacity = rng.uniform(p.opacity_min, p.opacity_max);
    const TextSize box = measure_text(text, style.scale);
    style.x = place(rng, src.width(), box.width);
    style.y = place(rng, src.height(), box.height);
    copy_into(src, dst);
    draw_text(dst, text, style);
  }
  void operator()(const LogoOverlay& p) const {
    const int shorter = std::min(src.width(), src.height());
    const int size =
        std::max(1, static_cast<int>(std::lround(rng.uniform(p.size_min, p.size_max) * shorter)));
    const uint64_t seed = rng.next_u64();
    const float opacity = rng.uniform(p.opacity_min, p.opacity_max);
    const int x = place(rng, src.width(), size), y = place(rng, src.height(), size);
    thread_local Image logo;
    make_logo_into(seed, size, logo);
    copy_into(src, dst);
    overlay_image(dst, logo, x, y, opacity);
  }
  void operator()(const RandomBorder& p) const {
    const int shorter = std::min(src.width(), src.height());
    const int b = static_cast<int>(
        std::lround(rng.uniform(p.fraction_min, p.fraction_max) * static_cast<float>(shorter)));
    const Color color = p.random_color ? detail::random_color(rng) : p.color;
    add_border_into(src, dst, {b, b, b, b}, color);
  }
  void operator()(const PadToAspect& p) const { pad_to_aspect_into(src, dst, p.aspect, p.color); }
  void operator()(const Resize& p) const { resize_into(src, dst, p.width, p.height, p.filter); }
  void operator()(const CustomAugment& p) const {
    if (&src == &dst) {
      const Image copy = src;
      p.fn(copy, dst, rng);
    } else {
      p.fn(src, dst, rng);
    }
    require_image(("CustomAugment '" + p.name + "' result").c_str(), dst);
  }
};

struct Namer {
  std::string operator()(const RandomResizedCrop&) const { return "random_resized_crop"; }
  std::string operator()(const HorizontalFlip&) const { return "horizontal_flip"; }
  std::string operator()(const VerticalFlip&) const { return "vertical_flip"; }
  std::string operator()(const RandomRotation&) const { return "random_rotation"; }
  std::string operator()(const ColorJitter&) const { return "color_jitter"; }
  std::string operator()(const Grayscale&) const { return "grayscale"; }
  std::string operator()(const GaussianBlur&) const { return "gaussian_blur"; }
  std::string operator()(const JpegCompression&) const { return "jpeg_compression"; }
  std::string operator()(const TextOverlay&) const { return "text_overlay"; }
  std::string operator()(const LogoOverlay&) const { return "logo_overlay"; }
  std::string operator()(const RandomBorder&) const { return "random_border"; }
  std::string operator()(const PadToAspect&) const { return "pad_to_aspect"; }
  std::string operator()(const Resize&) const { return "resize"; }
  std::string operator()(const CustomAugment& p) const { return p.name; }
};

}  // namespace

std::string augment_op_name(const AugmentOp& op) {
  return std::visit(Namer{}, op);
}

void validate_augment_op(const AugmentOp& op) {
  std::visit(Validator{}, op);
}

void augment_into(const Image& src, Image& dst, const AugmentOp& op, Rng& rng) {
  require_image("augment", src);
  validate_augment_op(op);
  std::visit(Applier{src, dst, rng}, op);
}

Image augment(const Image& src, const AugmentOp& op, Rng& rng) {
  Image out;
  augment_into(src, out, op, rng);
  return out;
}

// --- Augmenter -------------------------------------------------------------------------------

Augmenter& Augmenter::add(AugmentOp op, float probability) {
  check_float("Augmenter::add", "probability", probability, 0.0f, 1.0f, "in [0, 1]");
  validate_augment_op(op);
  steps_.push_back({std::move(op), probability});
  return *this;
}

void Augmenter::apply_into(const Image& src, Image& dst, Rng& rng) const {
  require_image("Augmenter::apply", src);
  if (&src == &dst) {
    const Image copy = src;
    apply_into(copy, dst, rng);
    return;
  }
  // Ping-pong between dst and a scratch image. The per-thread scratch is borrowed (moved out
  // and back) so a CustomAugment that runs another Augmenter cannot clobber it.
  thread_local Image cached;
  Image scratch = std::move(cached);
  const Image* cur = &src;
  Image* bufs[2] = {&dst, &scratch};
  int next = 0;
  for (const Step& step : steps_) {
    if (!(rng.uniform() < step.probability)) continue;
    Image* out = bufs[next];
    std::visit(Applier{*cur, *out, rng}, step.op);
    cur = out;
    next = 1 - next;
  }
  if (cur == &src)
    copy_into(src, dst);
  else if (cur == &scratch)
    std::swap(dst, scratch);
  cached = std::move(scratch);
}

Image Augmenter::apply(const Image& src, Rng& rng) const {
  Image out;
  apply_into(src, out, rng);
  return out;
}

Augmenter Augmenter::simclr(int size) {
  Augmenter a;
  a.add(RandomResizedCrop{size, size, 0.2f, 1.0f})
      .add(HorizontalFlip{}, 0.5f)
      .add(ColorJitter{0.4f, 0.4f, 0.4f, 0.1f}, 0.8f)
      .add(Grayscale{}, 0.2f)
      .add(GaussianBlur{0.1f, 2.0f}, 0.5f);
  return a;
}

Augmenter Augmenter::near_duplicate(int size) {
  Augmenter a;
  a.add(RandomResizedCrop{size, size, 0.25f, 1.0f}, 1.0f)
      .add(HorizontalFlip{}, 0.5f)
      .add(RandomRotation{15.0f, {Color{}, true}}, 0.3f)
      .add(ColorJitter{0.4f, 0.4f, 0.4f, 0.05f}, 0.8f)
      .add(Grayscale{}, 0.1f)
      .add(GaussianBlur{0.1f, 2.0f}, 0.2f)
      .add(TextOverlay{}, 0.2f)
      .add(LogoOverlay{}, 0.2f)
      .add(RandomBorder{}, 0.1f)
      .add(JpegCompression{20, 90}, 0.5f)
      .add(Resize{size, size}, 1.0f);
  return a;
}

// --- batch augmentation on tensors ------------------------------------------------------------

void random_erasing(Tensor& batch, const RandomErasing& o, Rng& rng) {
  if (batch.rank() != 4)
    throw ShapeError("random_erasing: expected an (N, C, H, W) batch, got " + batch.shape().str());
  if (!(o.probability >= 0.0f && o.probability <= 1.0f))
    throw InvalidArgument("random_erasing: probability must be in [0, 1], got " +
                          std::to_string(o.probability));
  if (!(o.area_min > 0.0f && o.area_min <= o.area_max && o.area_max <= 1.0f))
    throw InvalidArgument("random_erasing: need 0 < area_min <= area_max <= 1, got " +
                          std::to_string(o.area_min) + " and " + std::to_string(o.area_max));
  if (!(o.aspect_min > 0.0f && o.aspect_min <= 1.0f))
    throw InvalidArgument("random_erasing: aspect_min must be in (0, 1], got " +
                          std::to_string(o.aspect_min));
  const int64_t n = batch.dim(0), c = batch.dim(1), h = batch.dim(2), w = batch.dim(3);
  const float log_aspect = std::log(o.aspect_min);
  for (int64_t i = 0; i < n; ++i) {
    if (!(rng.uniform() < o.probability)) continue;
    for (int attempt = 0; attempt < 10; ++attempt) {
      const double area =
          static_cast<double>(rng.uniform(o.area_min, o.area_max)) * static_cast<double>(h * w);
      const double aspect = std::exp(static_cast<double>(rng.uniform(log_aspect, -log_aspect)));
      const auto eh = static_cast<int64_t>(std::lround(std::sqrt(area * aspect)));
      const auto ew = static_cast<int64_t>(std::lround(std::sqrt(area / aspect)));
      if (eh < 1 || ew < 1 || eh >= h || ew >= w) continue;
      const auto y0 = static_cast<int64_t>(rng.below(static_cast<uint64_t>(h - eh + 1)));
      const auto x0 = static_cast<int64_t>(rng.below(static_cast<uint64_t>(w - ew + 1)));
      for (int64_t ch = 0; ch < c; ++ch) {
        float* p = batch.data() + ((i * c + ch) * h + y0) * w + x0;
        for (int64_t r = 0; r < eh; ++r, p += w)
          for (int64_t q = 0; q < ew; ++q) p[q] = rng.uniform();
      }
      break;
    }
  }
}

}  // namespace imgsim::image
