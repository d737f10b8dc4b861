// Helpers shared by the augmentation sources (augment.cpp, augment_overlay.cpp, edit.cpp).
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <string>

#include "imgsim/error.hpp"
#include "imgsim/image/augment.hpp"
#include "imgsim/rng.hpp"

namespace imgsim::image::detail {

inline float clamp01(float v) {
  return std::clamp(v, 0.0f, 1.0f);
}

inline float luma(float r, float g, float b) {
  return 0.299f * r + 0.587f * g + 0.114f * b;
}

inline void require_image(const char* what, const Image& img) {
  if (img.empty()) throw InvalidArgument(std::string(what) + ": the image is empty");
}

// Finite and in [lo, hi].
inline bool in_range(float v, float lo, float hi) {
  return std::isfinite(v) && v >= lo && v <= hi;
}

[[noreturn]] inline void bad_param(const char* what, const char* name, const std::string& value,
                                   const char* range) {
  throw InvalidArgument(std::string(what) + ": " + name + " must be " + range + ", got " + value);
}

inline void check_float(const char* what, const char* name, float v, float lo, float hi,
                        const char* range) {
  if (!in_range(v, lo, hi)) bad_param(what, name, std::to_string(v), range);
}

inline void check_color(const char* what, const Color& c) {
  for (float v : {c.r, c.g, c.b, c.a})
    if (!in_range(v, 0.0f, 1.0f))
      bad_param(what, "colour components", std::to_string(v), "in [0, 1]");
}

// dst = src (same dimensions), reusing dst's storage.
inline void copy_into(const Image& src, Image& dst) {
  if (&src == &dst) return;
  dst.reset(src.width(), src.height(), src.channels());
  std::copy(src.data(), src.data() + src.size(), dst.data());
}

// The colour as the channel values of an image with `channels` channels.
inline std::array<float, 4> color_values(const Color& c, int channels) {
  if (channels == 1) return {luma(c.r, c.g, c.b), 0.0f, 0.0f, 0.0f};
  return {c.r, c.g, c.b, c.a};
}

// Blends colour `v` (already in the pixel's layout; its alpha, if any, ignored) over pixel `p`
// with coverage `a` in [0, 1]. RGBA pixels use the straight-alpha "over" operator.
inline void blend_pixel(float* p, int channels, const float* v, float a) {
  if (channels == 4) {
    const float da = p[3];
    const float out_a = a + da * (1.0f - a);
    if (out_a <= 0.0f) {
      p[0] = p[1] = p[2] = p[3] = 0.0f;
      return;
    }
    const float wd = da * (1.0f - a) / out_a, ws = a / out_a;
    for (int c = 0; c < 3; ++c) p[c] = clamp01(ws * v[c] + wd * p[c]);
    p[3] = clamp01(out_a);
    return;
  }
  for (int c = 0; c < channels; ++c) p[c] = clamp01(a * v[c] + (1.0f - a) * p[c]);
}

// Fills `count` pixels at p with the colour values v.
inline void fill_pixels(float* p, int64_t count, int channels, const float* v) {
  for (int64_t i = 0; i < count; ++i, p += channels)
    for (int c = 0; c < channels; ++c) p[c] = v[c];
}

// Uniform integer in [lo, hi] (lo <= hi).
inline int uniform_int(Rng& rng, int lo, int hi) {
  return lo + static_cast<int>(rng.below(static_cast<uint64_t>(int64_t{hi} - lo + 1)));
}

// Random opaque colour, components uniform in [0, 1).
inline Color random_color(Rng& rng) {
  const float r = rng.uniform(), g = rng.uniform(), b = rng.uniform();
  return {r, g, b, 1.0f};
}

// A character for random overlay text: letters, digits, spaces and some punctuation.
inline char random_text_char(Rng& rng) {
  static constexpr char kChars[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789   .,:!?-+&@#%";
  return kChars[rng.below(sizeof(kChars) - 1)];
}

}  // namespace imgsim::image::detail
