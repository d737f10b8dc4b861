// Image decoding, resampling, conversion and encoding (include/imgsim/image/image.hpp).
// Every stb call goes through image/stb_backend.hpp.
#include "imgsim/image/image.hpp"

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>

#include "image/box_resample.hpp"
#include "image/exif.hpp"
#include "image/jpeg_guard.hpp"
#include "image/stb_backend.hpp"
#include "imgsim/error.hpp"
#include "imgsim/nn/serialize.hpp"

namespace imgsim::image {

namespace {

std::string dims_str(int64_t w, int64_t h) {
  return std::to_string(w) + " x " + std::to_string(h);
}

void check_size(const char* what, int width, int height) {
  if (width < 1 || height < 1 || width > kMaxImageSide || height > kMaxImageSide)
    throw InvalidArgument(std::string(what) + ": size " + dims_str(width, height) +
                          " out of range [1, " + std::to_string(kMaxImageSide) + "]");
}

void check_channels(const char* what, int channels, bool allow_zero) {
  if (channels == 1 || channels == 3 || channels == 4 || (allow_zero && channels == 0)) return;
  throw InvalidArgument(std::string(what) + ": channels must be " + (allow_zero ? "0, " : "") +
                        "1, 3 or 4, got " + std::to_string(channels));
}

void check_not_empty(const char* what, const Image& img) {
  if (img.empty()) throw InvalidArgument(std::string(what) + ": the image is empty");
}

void check_options(const LoadOptions& o) {
  check_channels("LoadOptions", o.channels, true);
  if (o.max_pixels < 1)
    throw InvalidArgument("LoadOptions: max_pixels must be positive, got " +
                          std::to_string(o.max_pixels));
}

void check_pixel_limit(const std::string& name, int64_t w, int64_t h, int64_t max_pixels) {
  if (w * h > max_pixels)
    throw FormatError(name + ": image of " + dims_str(w, h) + " = " + std::to_string(w * h) +
                      " pixels exceeds the limit of " + std::to_string(max_pixels) +
                      " (LoadOptions::max_pixels); refusing to decode");
}

int int_len(std::span<const unsigned char> bytes, const std::string& name) {
  if (bytes.size() > static_cast<std::size_t>(INT_MAX))
    throw FormatError(name + ": " + std::to_string(bytes.size()) +
                      " bytes is too large to decode (limit " + std::to_string(INT_MAX) + ")");
  return static_cast<int>(bytes.size());
}

std::string stb_error(const std::string& name) {
  return name + ": cannot decode image: " + detail::stb_reason();
}

// Refuses JPEG data that would make stb_image overrun its Huffman tables (jpeg_guard.hpp).
// Returns the verdict for callers that need to know whether the header was complete.
detail::JpegVerdict guard_jpeg(std::span<const unsigned char> bytes, const std::string& name,
                               bool header_only) {
  const detail::JpegCheck c = detail::check_jpeg_tables(bytes.data(), bytes.size(), header_only);
  if (c.verdict == detail::JpegVerdict::unsafe)
    throw FormatError(name + ": cannot decode image: " + c.problem);
  return c.verdict;
}

detail::StbHeader probe_bytes(std::span<const unsigned char> bytes, const std::string& name,
                              bool* header_incomplete = nullptr) {
  if (bytes.empty()) throw FormatError(name + ": cannot decode image: empty file");
  const int len = int_len(bytes, name);
  const bool need_more = guard_jpeg(bytes, name, true) == detail::JpegVerdict::need_more;
  if (header_incomplete) *header_incomplete = need_more;
  detail::StbHeader h;
  if (!detail::stb_probe(bytes.data(), len, h)) throw FormatError(stb_error(name));
  return h;
}

const float* byte_to_float() {
  static const auto table = [] {
    std::array<float, 256> t{};
    for (int i = 0; i < 256; ++i) t[static_cast<std::size_t>(i)] = static_cast<float>(i) / 255.0f;
    return t;
  }();
  return table.data();
}

struct Deleter {
  void operator()(void* p) const { detail::stb_release(p); }
};

// The value of output channel `c` (of `out_channels`) for the pixel `p` with `in_channels`.
inline float channel_value(const float* p, int in_channels, int out_channels, int c) {
  if (in_channels == out_channels) return p[c];
  if (out_channels == 1) return 0.299f * p[0] + 0.587f * p[1] + 0.114f * p[2];  // in: 3 or 4
  if (c == 3) return 1.0f;                                                      // added alpha
  return in_channels == 1 ? p[0] : p[c];  // gray replicated, or RGB(A) -> RGB(A)
}

detail::StbFilter stb_filter(ResizeFilter f, bool shrinking) {
  switch (f) {
    case ResizeFilter::automatic:
      return shrinking ? detail::StbFilter::box : detail::StbFilter::triangle;
    case ResizeFilter::box:
      return detail::StbFilter::box;
    case ResizeFilter::bilinear:
      return detail::StbFilter::triangle;
    case ResizeFilter::bicubic:
      return detail::StbFilter::catmull_rom;
    case ResizeFilter::mitchell:
      return detail::StbFilter::mitchell;
  }
  throw InvalidArgument("resize: unknown ResizeFilter " + std::to_string(static_cast<int>(f)));
}

// Resamples the source region [s0, s1] x [t0, t1] (fractions) to width x height into dst.
void resample(const char* what, const Image& src, Image& dst, int width, int height,
              ResizeFilter filter, float s0, float t0, float s1, float t1) {
  check_not_empty(what, src);
  check_size(what, width, height);
  if (&src == &dst) {
    Image tmp;
    resample(what, src, tmp, width, height, filter, s0, t0, s1, t1);
    dst = std::move(tmp);
    return;
  }
  const int c = src.channels();
  dst.reset(width, height, c);
  const double region_w = src.width() * double{s1 - s0}, region_h = src.height() * double{t1 - t0};
  if (width == src.width() && height == src.height() && s0 == 0.0f && t0 == 0.0f && s1 == 1.0f &&
      t1 == 1.0f) {
    std::copy(src.data(), src.data() + src.size(), dst.data());
    return;
  }
  if (s0 >= 0.0f && t0 >= 0.0f && s1 <= 1.0f && t1 <= 1.0f &&
      detail::box_resample(src, dst, width, height, filter, src.width() * double{s0},
                           src.height() * double{t0}, src.width() * double{s1},
                           src.height() * double{t1}))
    return;
  if (!detail::stb_resize_region(src.data(), src.width(), src.height(), dst.data(), width, height,
                                 c, c == 4 ? 3 : -1, stb_filter(filter, width < region_w),
                                 stb_filter(filter, height < region_h), s0, t0, s1, t1))
    throw Error(std::string(what) + ": stb_image_resize failed (out of memory?) resizing " +
                dims_str(src.width(), src.height()) + " to " + dims_str(width, height));
  float* p = dst.data();
  const int64_t n = dst.size();
  for (int64_t i = 0; i < n; ++i) p[i] = std::clamp(p[i], 0.0f, 1.0f);
}

}  // namespace

// --- box (area) shrinking -------------------------------------------------------------------

namespace detail {

namespace {

// The source taps of each output pixel along one axis: output i covers [a + i * step,
// a + (i + 1) * step) of the source (step = (b - a) / out); source pixel n, the interval
// [n, n + 1), weighs its overlap with it, normalised to a sum of 1.
struct BoxTaps {
  std::vector<int> first;      // first source pixel of output i
  std::vector<int> count;      // number of source pixels of output i
  std::vector<float> weights;  // output i's weights at [i * stride, i * stride + count[i])
  int stride = 0;
};

void box_taps(int in, int out, double a, double b, BoxTaps& t) {
  const double step = (b - a) / out;
  t.stride = static_cast<int>(std::ceil(step)) + 2;
  t.first.assign(static_cast<std::size_t>(out), 0);
  t.count.assign(static_cast<std::size_t>(out), 0);
  t.weights.assign(static_cast<std::size_t>(out) * static_cast<std::size_t>(t.stride), 0.0f);
  double w[64];
  for (int i = 0; i < out; ++i) {
    const double lo = a + step * i;
    const double hi = i + 1 == out ? b : a + step * (i + 1);
    const int n0 = std::clamp(static_cast<int>(std::floor(lo)), 0, in - 1);
    const int n1 = std::clamp(static_cast<int>(std::ceil(hi)) - 1, n0, in - 1);
    int first = -1, k = 0;
    double total = 0.0;
    for (int n = n0; n <= n1; ++n) {
      const double overlap = std::min<double>(n + 1, hi) - std::max<double>(n, lo);
      if (!(overlap > 0.0)) continue;  // only at the ends
      if (first < 0) first = n;
      w[k++] = overlap;
      total += overlap;
    }
    if (first < 0) {  // (a degenerate interval: take the pixel it lies in)
      first = n0;
      w[0] = total = 1.0;
      k = 1;
    }
    t.first[static_cast<std::size_t>(i)] = first;
    t.count[static_cast<std::size_t>(i)] = k;
    float* dst =
        t.weights.data() + static_cast<std::size_t>(i) * static_cast<std::size_t>(t.stride);
    for (int j = 0; j < k; ++j) dst[j] = static_cast<float>(w[j] / total);
  }
}

}  // namespace

bool box_resample(const Image& src, Image& dst, int width, int height, ResizeFilter filter,
                  double x0, double y0, double x1, double y1) {
  const int c = src.channels();
  const double region_w = x1 - x0, region_h = y1 - y0;
  if (c == 4 || &src == &dst || !(region_w > 0.0) || !(region_h > 0.0) || width > region_w ||
      height > region_h || stb_filter(filter, width < region_w) != StbFilter::box ||
      stb_filter(filter, height < region_h) != StbFilter::box || x0 < 0.0 || y0 < 0.0 ||
      x1 > src.width() || y1 > src.height())
    return false;
  // At most 62 source pixels per output pixel on an axis (the tap buffer of box_taps); longer
  // boxes are rare (shrinking over 60 times) and left to stb_image_resize.
  if (region_w / width > 60.0 || region_h / height > 60.0) return false;
  thread_local BoxTaps tx, ty;
  thread_local std::vector<float> row;
  box_taps(src.width(), width, x0, x1, tx);
  box_taps(src.height(), height, y0, y1, ty);
  const int col0 = tx.first.front();
  const int col1 = tx.first.back() + tx.count.back();
  const std::size_t span = static_cast<std::size_t>(col1 - col0) * static_cast<std::size_t>(c);
  row.resize(span);
  dst.reset(width, height, c);
  float* acc = row.data();
  for (int y = 0; y < height; ++y) {
    // Vertical: the weighted sum of the covered source rows, over the covered columns.
    const float* wy = ty.weights.data() + static_cast<std::size_t>(y) * ty.stride;
    const int ry = ty.first[static_cast<std::size_t>(y)];
    const int ny = ty.count[static_cast<std::size_t>(y)];
    {
      const float w = wy[0];
      const float* s = src.row(ry) + static_cast<std::size_t>(col0) * c;
      for (std::size_t i = 0; i < span; ++i) acc[i] = w * s[i];
    }
    for (int k = 1; k < ny; ++k) {
      const float w = wy[k];
      const float* s = src.row(ry + k) + static_cast<std::size_t>(col0) * c;
      for (std::size_t i = 0; i < span; ++i) acc[i] += w * s[i];
    }
    // Horizontal.
    float* out = dst.row(y);
    for (int x = 0; x < width; ++x) {
      const float* wx = tx.weights.data() + static_cast<std::size_t>(x) * tx.stride;
      const float* s =
          acc + static_cast<std::size_t>(tx.first[static_cast<std::size_t>(x)] - col0) * c;
      const int nx = tx.count[static_cast<std::size_t>(x)];
      for (int ch = 0; ch < c; ++ch) {
        float v = 0.0f;
        for (int k = 0; k < nx; ++k) v += wx[k] * s[k * c + ch];
        out[static_cast<std::size_t>(x) * c + ch] = std::clamp(v, 0.0f, 1.0f);
      }
    }
  }
  return true;
}

}  // namespace detail

// --- Image -----------------------------------------------------------------------------------

Image::Image(int width, int height, int channels, float fill) {
  reset(width, height, channels);
  std::fill(pixels_.begin(), pixels_.end(), fill);
}

void Image::reset(int width, int height, int channels) {
  check_size("Image", width, height);
  check_channels("Image", channels, false);
  pixels_.resize(static_cast<std::size_t>(width) * static_cast<std::size_t>(height) *
                 static_cast<std::size_t>(channels));
  width_ = width;
  height_ = height;
  channels_ = channels;
}

// --- reading and decoding --------------------------------------------------------------------

void read_file(const std::string& path, std::vector<unsigned char>& out) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    throw IoError(path + ": cannot read file: is a directory");
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!f) throw IoError(path + ": cannot open: " + std::strerror(errno));
  out.clear();
  const auto hint = std::filesystem::file_size(path, ec);
  if (!ec && hint > static_cast<std::uintmax_t>(INT_MAX))
    throw FormatError(path + ": " + std::to_string(hint) + " bytes is too large to decode (limit " +
                      std::to_string(INT_MAX) + ")");
  if (!ec) out.reserve(static_cast<std::size_t>(hint));
  constexpr std::size_t kChunk = 1 << 16;
  for (;;) {
    const std::size_t old = out.size();
    out.resize(old + kChunk);
    const std::size_t got = std::fread(out.data() + old, 1, kChunk, f.get());
    out.resize(old + got);
    if (got < kChunk) break;
    if (out.size() > static_cast<std::size_t>(INT_MAX))
      throw FormatError(path + ": file is too large to decode (limit " + std::to_string(INT_MAX) +
                        " bytes)");
  }
  if (std::ferror(f.get())) throw IoError(path + ": read error: " + std::strerror(errno));
}

ImageInfo probe_image_from_memory(std::span<const unsigned char> bytes, const std::string& name) {
  const detail::StbHeader h = probe_bytes(bytes, name);
  return {h.width, h.height, h.channels, h.sixteen_bit};
}

ImageInfo probe_image(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    throw IoError(path + ": cannot read image: is a directory");
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!f) throw IoError(path + ": cannot open: " + std::strerror(errno));
  // Headers are small: read a prefix and grow it only while the header is not complete (a
  // JPEG's frame header can follow large metadata segments) or stb_image cannot parse it.
  std::vector<unsigned char> buf;
  std::size_t want = 4096;
  bool at_end = false;
  for (;;) {
    const std::size_t old = buf.size();
    buf.resize(want);
    const std::size_t got = std::fread(buf.data() + old, 1, want - old, f.get());
    buf.resize(old + got);
    if (got < want - old) {
      if (std::ferror(f.get())) throw IoError(path + ": read error: " + std::strerror(errno));
      at_end = true;
    }
    if (!at_end && buf.size() > static_cast<std::size_t>(INT_MAX))
      throw FormatError(path + ": no image header found in the first " +
                        std::to_string(buf.size()) + " bytes");
    bool incomplete = false;
    try {
      const detail::StbHeader h = probe_bytes(buf, path, &incomplete);
      if (!incomplete || at_end) return {h.width, h.height, h.channels, h.sixteen_bit};
    } catch (const FormatError&) {
      if (at_end) throw;
    }
    want *= 8;
  }
}

void load_image_from_memory_into(std::span<const unsigned char> bytes, Image& out,
                                 const LoadOptions& options, const std::string& name) {
  check_options(options);
  const detail::StbHeader h = probe_bytes(bytes, name);
  const int len = int_len(bytes, name);
  guard_jpeg(bytes, name, false);
  check_pixel_limit(name, h.width, h.height, options.max_pixels);

  const int channels = options.channels ? options.channels
                                        : (h.channels == 1   ? 1
                                           : h.channels == 3 ? 3
                                                             : 4);
  int w = 0, ht = 0;
  std::unique_ptr<void, Deleter> px(
      detail::stb_decode(bytes.data(), len, h.sixteen_bit, channels, &w, &ht));
  if (!px) throw FormatError(stb_error(name));
  if (w < 1 || ht < 1 || w > kMaxImageSide || ht > kMaxImageSide)
    throw FormatError(name + ": decoder returned an image of " + dims_str(w, ht));
  check_pixel_limit(name, w, ht, options.max_pixels);

  // EXIF orientation (JPEG only, hence 8-bit): each pixel goes straight to its upright place.
  const int orientation = options.apply_exif_orientation && !h.sixteen_bit
                              ? detail::jpeg_exif_orientation(bytes.data(), bytes.size())
                              : 1;
  if (orientation != 1) {
    const detail::OrientationMap m = detail::orientation_map(orientation, w, ht);
    out.reset(m.swaps_sides ? ht : w, m.swaps_sides ? w : ht, channels);
    const auto* src = static_cast<const unsigned char*>(px.get());
    const float* table = byte_to_float();
    float* dst = out.data();
    for (int y = 0; y < ht; ++y) {
      int64_t k = m.base + y * m.step_y;
      for (int x = 0; x < w; ++x, src += channels, k += m.step_x)
        for (int c = 0; c < channels; ++c) dst[k * channels + c] = table[src[c]];
    }
    return;
  }
  out.reset(w, ht, channels);
  float* dst = out.data();
  const int64_t n = out.size();
  if (h.sixteen_bit) {
    const auto* src = static_cast<const uint16_t*>(px.get());
    for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<float>(src[i]) * (1.0f / 65535.0f);
  } else {
    // The table's values (float(i) / 255), computed so the compiler vectorises the loop.
    const auto* src = static_cast<const unsigned char*>(px.get());
    for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<float>(src[i]) / 255.0f;
  }
}

Image load_image_from_memory(std::span<const unsigned char> bytes, const LoadOptions& options,
                             const std::string& name) {
  Image img;
  load_image_from_memory_into(bytes, img, options, name);
  return img;
}

void load_image_into(const std::string& path, Image& out, std::vector<unsigned char>& file_buffer,
                     const LoadOptions& options) {
  check_options(options);
  read_file(path, file_buffer);
  load_image_from_memory_into(file_buffer, out, options, path);
}

Image load_image(const std::string& path, const LoadOptions& options) {
  Image img;
  std::vector<unsigned char> buffer;
  load_image_into(path, img, buffer, options);
  return img;
}

// --- geometry --------------------------------------------------------------------------------

void resize_into(const Image& src, Image& dst, int width, int height, ResizeFilter filter) {
  resample("resize", src, dst, width, height, filter, 0.0f, 0.0f, 1.0f, 1.0f);
}

Image resize(const Image& src, int width, int height, ResizeFilter filter) {
  Image out;
  resize_into(src, out, width, height, filter);
  return out;
}

void resize_center_crop_into(const Image& src, Image& dst, int width, int height,
                             ResizeFilter filter) {
  check_not_empty("resize_center_crop", src);
  check_size("resize_center_crop", width, height);
  // Fraction of the source kept along each axis so the region has the target's aspect ratio.
  const double src_aspect = static_cast<double>(src.width()) / src.height();
  const double dst_aspect = static_cast<double>(width) / height;
  double fx = 1.0, fy = 1.0;
  if (src_aspect > dst_aspect)
    fx = dst_aspect / src_aspect;
  else
    fy = src_aspect / dst_aspect;
  const auto s0 = static_cast<float>((1.0 - fx) / 2), t0 = static_cast<float>((1.0 - fy) / 2);
  const auto s1 = fx == 1.0 ? 1.0f : static_cast<float>((1.0 + fx) / 2);
  const auto t1 = fy == 1.0 ? 1.0f : static_cast<float>((1.0 + fy) / 2);
  resample("resize_center_crop", src, dst, width, height, filter, s0, t0, s1, t1);
}

Image resize_center_crop(const Image& src, int width, int height, ResizeFilter filter) {
  Image out;
  resize_center_crop_into(src, out, width, height, filter);
  return out;
}

Image crop(const Image& src, int x, int y, int width, int height) {
  check_not_empty("crop", src);
  check_size("crop", width, height);
  if (x < 0 || y < 0 || int64_t{x} + width > src.width() || int64_t{y} + height > src.height())
    throw InvalidArgument("crop: rectangle " + dims_str(width, height) + " at (" +
                          std::to_string(x) + ", " + std::to_string(y) + ") is not inside the " +
                          dims_str(src.width(), src.height()) + " image");
  Image out(width, height, src.channels());
  const int c = src.channels();
  for (int r = 0; r < height; ++r) {
    const float* from = src.row(y + r) + static_cast<std::size_t>(x) * c;
    std::copy(from, from + static_cast<std::size_t>(width) * c, out.row(r));
  }
  return out;
}

Image center_crop(const Image& src, int width, int height) {
  check_not_empty("center_crop", src);
  if (width > src.width() || height > src.height())
    throw InvalidArgument("center_crop: " + dims_str(width, height) + " is larger than the " +
                          dims_str(src.width(), src.height()) + " image");
  return crop(src, (src.width() - width) / 2, (src.height() - height) / 2, width, height);
}

// --- conversion ------------------------------------------------------------------------------

Image convert_channels(const Image& src, int channels) {
  check_not_empty("convert_channels", src);
  check_channels("convert_channels", channels, false);
  Image out(src.width(), src.height(), channels);
  const int in_c = src.channels();
  const int64_t pixels = src.pixel_count();
  const float* s = src.data();
  float* d = out.data();
  for (int64_t i = 0; i < pixels; ++i, s += in_c, d += channels)
    for (int c = 0; c < channels; ++c) d[c] = channel_value(s, in_c, channels, c);
  return out;
}

void to_tensor_into(const Image& img, int channels, float* dst) {
  check_not_empty("to_tensor", img);
  check_channels("to_tensor", channels, true);
  const int in_c = img.channels();
  const int out_c = channels ? channels : in_c;
  const int64_t plane = img.pixel_count();
  const float* s = img.data();
  if (in_c == out_c) {
    for (int64_t i = 0; i < plane; ++i, s += in_c)
      for (int c = 0; c < out_c; ++c) dst[c * plane + i] = s[c];
    return;
  }
  for (int64_t i = 0; i < plane; ++i, s += in_c)
    for (int c = 0; c < out_c; ++c) dst[c * plane + i] = channel_value(s, in_c, out_c, c);
}

Tensor to_tensor(const Image& img, int channels) {
  check_not_empty("to_tensor", img);
  check_channels("to_tensor", channels, true);
  const int c = channels ? channels : img.channels();
  Tensor t(Shape{c, img.height(), img.width()});
  to_tensor_into(img, channels, t.data());
  return t;
}

void normalize(Tensor& t, std::span<const float> mean, std::span<const float> stddev) {
  if (t.rank() != 3 && t.rank() != 4)
    throw ShapeError("normalize: expected a (C, H, W) or (N, C, H, W) tensor, got " +
                     t.shape().str());
  const int64_t c = t.dim(t.rank() - 3);
  if (static_cast<int64_t>(mean.size()) != c || static_cast<int64_t>(stddev.size()) != c)
    throw InvalidArgument("normalize: tensor " + t.shape().str() + " has " + std::to_string(c) +
                          " channels but mean has " + std::to_string(mean.size()) + " and stddev " +
                          std::to_string(stddev.size()) + " entries");
  for (std::size_t i = 0; i < stddev.size(); ++i)
    if (!(stddev[i] > 0.0f) || !std::isfinite(stddev[i]) || !std::isfinite(mean[i]))
      throw InvalidArgument("normalize: channel " + std::to_string(i) +
                            " needs a finite mean and a positive stddev, got mean " +
                            std::to_string(mean[i]) + " stddev " + std::to_string(stddev[i]));
  const int64_t plane = t.dim(t.rank() - 2) * t.dim(t.rank() - 1);
  const int64_t n = t.rank() == 4 ? t.dim(0) : 1;
  float* p = t.data();
  for (int64_t s = 0; s < n; ++s)
    for (int64_t ch = 0; ch < c; ++ch, p += plane) {
      const float m = mean[static_cast<std::size_t>(ch)];
      const float inv = 1.0f / stddev[static_cast<std::size_t>(ch)];
      for (int64_t i = 0; i < plane; ++i) p[i] = (p[i] - m) * inv;
    }
}

// --- encoding --------------------------------------------------------------------------------

std::vector<unsigned char> encode_image(const Image& img, ImageFormat format, int quality) {
  check_not_empty("encode_image", img);
  if (quality < 1 || quality > 100)
    throw InvalidArgument("encode_image: JPEG quality must be in [1, 100], got " +
                          std::to_string(quality));
  std::vector<unsigned char> bytes(static_cast<std::size_t>(img.size()));
  const float* s = img.data();
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    const float v = std::isnan(s[i]) ? 0.0f : std::clamp(s[i], 0.0f, 1.0f);
    bytes[i] = static_cast<unsigned char>(std::lround(v * 255.0f));
  }
  const auto f = format == ImageFormat::png   ? detail::StbFormat::png
                 : format == ImageFormat::jpg ? detail::StbFormat::jpg
                                              : detail::StbFormat::bmp;
  std::vector<unsigned char> out;
  if (!detail::stb_encode(f, img.width(), img.height(), img.channels(), bytes.data(), quality, out))
    throw IoError("encode_image: stb_image_write failed to encode a " +
                  dims_str(img.width(), img.height()) + " image (out of memory?)");
  return out;
}

void save_image(const std::string& path, const Image& img, ImageFormat format, int quality) {
  nn::write_file_atomic(path, encode_image(img, format, quality));
}

void save_png(const std::string& path, const Image& img) {
  save_image(path, img, ImageFormat::png);
}
void save_jpg(const std::string& path, const Image& img, int quality) {
  save_image(path, img, ImageFormat::jpg, quality);
}
void save_bmp(const std::string& path, const Image& img) {
  save_image(path, img, ImageFormat::bmp);
}

}  // namespace imgsim::image
