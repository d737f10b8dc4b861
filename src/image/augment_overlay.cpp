// Text and logo overlays (include/imgsim/image/augment.hpp): the built-in 5 x 7 font, text
// drawing, procedural logos and alpha compositing of one image onto another.
#include <algorithm>
#include <cmath>
#include <string>

#include "image/augment_internal.hpp"
#include "imgsim/error.hpp"
#include "imgsim/image/augment.hpp"

namespace imgsim::image {

using detail::check_color;
using detail::check_float;
using detail::clamp01;
using detail::require_image;

namespace {

// --- font ------------------------------------------------------------------------------------
// Printable ASCII 32..126, drawn for imgsim: seven rows of five dots per glyph, '#' set.
struct Glyph {
  const char* rows[kGlyphHeight];
};

// clang-format off
constexpr Glyph kFont[95] = {
  {{".....", ".....", ".....", ".....", ".....", ".....", "....."}},  // ' '
  {{"..#..", "..#..", "..#..", "..#..", "..#..", ".....", "..#.."}},  // !
  {{".#.#.", ".#.#.", ".....", ".....", ".....", ".....", "....."}},  // "
  {{".#.#.", ".#.#.", "#####", ".#.#.", "#####", ".#.#.", ".#.#."}},  // #
  {{"..#..", ".####", "#.#..", ".###.", "..#.#", "####.", "..#.."}},  // $
  {{"##...", "##..#", "...#.", "..#..", ".#...", "#..##", "...##"}},  // %
  {{".##..", "#..#.", "#.#..", ".#...", "#.#.#", "#..#.", ".##.#"}},  // &
  {{"..#..", "..#..", ".....", ".....", ".....", ".....", "....."}},  // '
  {{"...#.", "..#..", ".#...", ".#...", ".#...", "..#..", "...#."}},  // (
  {{".#...", "..#..", "...#.", "...#.", "...#.", "..#..", ".#..."}},  // )
  {{".....", "..#..", "#.#.#", ".###.", "#.#.#", "..#..", "....."}},  // *
  {{".....", "..#..", "..#..", "#####", "..#..", "..#..", "....."}},  // +
  {{".....", ".....", ".....", ".....", ".##..", "..#..", ".#..."}},  // ,
  {{".....", ".....", ".....", "#####", ".....", ".....", "....."}},  // -
  {{".....", ".....", ".....", ".....", ".....", ".##..", ".##.."}},  // .
  {{".....", "....#", "...#.", "..#..", ".#...", "#....", "....."}},  // /
  {{".###.", "#...#", "#..##", "#.#.#", "##..#", "#...#", ".###."}},  // 0
  {{"..#..", ".##..", "..#..", "..#..", "..#..", "..#..", ".###."}},  // 1
  {{".###.", "#...#", "....#", "...#.", "..#..", ".#...", "#####"}},  // 2
  {{"#####", "...#.", "..#..", "...#.", "....#", "#...#", ".###."}},  // 3
  {{"...#.", "..##.", ".#.#.", "#..#.", "#####", "...#.", "...#."}},  // 4
  {{"#####", "#....", "####.", "....#", "....#", "#...#", ".###."}},  // 5
  {{"..##.", ".#...", "#....", "####.", "#...#", "#...#", ".###."}},  // 6
  {{"#####", "....#", "...#.", "..#..", ".#...", ".#...", ".#..."}},  // 7
  {{".###.", "#...#", "#...#", ".###.", "#...#", "#...#", ".###."}},  // 8
  {{".###.", "#...#", "#...#", ".####", "....#", "...#.", ".##.."}},  // 9
  {{".....", ".##..", ".##..", ".....", ".##..", ".##..", "....."}},  // :
  {{".....", ".##..", ".##..", ".....", ".##..", "..#..", ".#..."}},  // ;
  {{"...#.", "..#..", ".#...", "#....", ".#...", "..#..", "...#."}},  // <
  {{".....", ".....", "#####", ".....", "#####", ".....", "....."}},  // =
  {{".#...", "..#..", "...#.", "....#", "...#.", "..#..", ".#..."}},  // >
  {{".###.", "#...#", "....#", "...#.", "..#..", ".....", "..#.."}},  // ?
  {{".###.", "#...#", "....#", ".##.#", "#.#.#", "#.#.#", ".###."}},  // @
  {{".###.", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"}},  // A
  {{"####.", "#...#", "#...#", "####.", "#...#", "#...#", "####."}},  // B
  {{".###.", "#...#", "#....", "#....", "#....", "#...#", ".###."}},  // C
  {{"###..", "#..#.", "#...#", "#...#", "#...#", "#..#.", "###.."}},  // D
  {{"#####", "#....", "#....", "####.", "#....", "#....", "#####"}},  // E
  {{"#####", "#....", "#....", "####.", "#....", "#....", "#...."}},  // F
  {{".###.", "#...#", "#....", "#.###", "#...#", "#...#", ".####"}},  // G
  {{"#...#", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"}},  // H
  {{".###.", "..#..", "..#..", "..#..", "..#..", "..#..", ".###."}},  // I
  {{"..###", "...#.", "...#.", "...#.", "...#.", "#..#.", ".##.."}},  // J
  {{"#...#", "#..#.", "#.#..", "##...", "#.#..", "#..#.", "#...#"}},  // K
  {{"#....", "#....", "#....", "#....", "#....", "#....", "#####"}},  // L
  {{"#...#", "##.##", "#.#.#", "#.#.#", "#...#", "#...#", "#...#"}},  // M
  {{"#...#", "#...#", "##..#", "#.#.#", "#..##", "#...#", "#...#"}},  // N
  {{".###.", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."}},  // O
  {{"####.", "#...#", "#...#", "####.", "#....", "#....", "#...."}},  // P
  {{".###.", "#...#", "#...#", "#...#", "#.#.#", "#..#.", ".##.#"}},  // Q
  {{"####.", "#...#", "#...#", "####.", "#.#..", "#..#.", "#...#"}},  // R
  {{".####", "#....", "#....", ".###.", "....#", "....#", "####."}},  // S
  {{"#####", "..#..", "..#..", "..#..", "..#..", "..#..", "..#.."}},  // T
  {{"#...#", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."}},  // U
  {{"#...#", "#...#", "#...#", "#...#", "#...#", ".#.#.", "..#.."}},  // V
  {{"#...#", "#...#", "#...#", "#.#.#", "#.#.#", "#.#.#", ".#.#."}},  // W
  {{"#...#", "#...#", ".#.#.", "..#..", ".#.#.", "#...#", "#...#"}},  // X
  {{"#...#", "#...#", ".#.#.", "..#..", "..#..", "..#..", "..#.."}},  // Y
  {{"#####", "....#", "...#.", "..#..", ".#...", "#....", "#####"}},  // Z
  {{".###.", ".#...", ".#...", ".#...", ".#...", ".#...", ".###."}},  // [
  {{".....", "#....", ".#...", "..#..", "...#.", "....#", "....."}},  // backslash
  {{".###.", "...#.", "...#.", "...#.", "...#.", "...#.", ".###."}},  // ]
  {{"..#..", ".#.#.", "#...#", ".....", ".....", ".....", "....."}},  // ^
  {{".....", ".....", ".....", ".....", ".....", ".....", "#####"}},  // _
  {{".#...", "..#..", ".....", ".....", ".....", ".....", "....."}},  // `
  {{".....", ".....", ".###.", "....#", ".####", "#...#", ".####"}},  // a
  {{"#....", "#....", "#.##.", "##..#", "#...#", "#...#", "####."}},  // b
  {{".....", ".....", ".###.", "#....", "#....", "#...#", ".###."}},  // c
  {{"....#", "....#", ".##.#", "#..##", "#...#", "#...#", ".####"}},  // d
  {{".....", ".....", ".###.", "#...#", "#####", "#....", ".###."}},  // e
  {{"..##.", ".#..#", ".#...", "###..", ".#...", ".#...", ".#..."}},  // f
  {{".....", ".####", "#...#", "#...#", ".####", "....#", ".###."}},  // g
  {{"#....", "#....", "#.##.", "##..#", "#...#", "#...#", "#...#"}},  // h
  {{"..#..", ".....", ".##..", "..#..", "..#..", "..#..", ".###."}},  // i
  {{"...#.", ".....", "..##.", "...#.", "...#.", "#..#.", ".##.."}},  // j
  {{"#....", "#....", "#..#.", "#.#..", "##...", "#.#..", "#..#."}},  // k
  {{".##..", "..#..", "..#..", "..#..", "..#..", "..#..", ".###."}},  // l
  {{".....", ".....", "##.#.", "#.#.#", "#.#.#", "#...#", "#...#"}},  // m
  {{".....", ".....", "#.##.", "##..#", "#...#", "#...#", "#...#"}},  // n
  {{".....", ".....", ".###.", "#...#", "#...#", "#...#", ".###."}},  // o
  {{".....", ".....", "####.", "#...#", "####.", "#....", "#...."}},  // p
  {{".....", ".....", ".##.#", "#..##", ".####", "....#", "....#"}},  // q
  {{".....", ".....", "#.##.", "##..#", "#....", "#....", "#...."}},  // r
  {{".....", ".....", ".###.", "#....", ".###.", "....#", "####."}},  // s
  {{".#...", ".#...", "###..", ".#...", ".#...", ".#..#", "..##."}},  // t
  {{".....", ".....", "#...#", "#...#", "#...#", "#..##", ".##.#"}},  // u
  {{".....", ".....", "#...#", "#...#", "#...#", ".#.#.", "..#.."}},  // v
  {{".....", ".....", "#...#", "#...#", "#.#.#", "#.#.#", ".#.#."}},  // w
  {{".....", ".....", "#...#", ".#.#.", "..#..", ".#.#.", "#...#"}},  // x
  {{".....", ".....", "#...#", "#...#", ".####", "....#", ".###."}},  // y
  {{".....", ".....", "#####", "...#.", "..#..", ".#...", "#####"}},  // z
  {{"...#.", "..#..", "..#..", ".#...", "..#..", "..#..", "...#."}},  // {
  {{"..#..", "..#..", "..#..", "..#..", "..#..", "..#..", "..#.."}},  // |
  {{".#...", "..#..", "..#..", "...#.", "..#..", "..#..", ".#..."}},  // }
  {{".....", ".....", ".#...", "#.#.#", "...#.", ".....", "....."}},  // ~
};
// clang-format on

constexpr bool font_is_well_formed() {
  for (const Glyph& g : kFont)
    for (const char* row : g.rows) {
      for (int i = 0; i < kGlyphWidth; ++i)
        if (row[i] != '#' && row[i] != '.') return false;
      if (row[kGlyphWidth] != '\0') return false;
    }
  return true;
}
static_assert(font_is_well_formed(), "every glyph row is five '#' or '.' characters");

// The packed font: bit 4 of row r is the leftmost dot.
constexpr auto kBitmaps = [] {
  std::array<std::array<uint8_t, kGlyphHeight>, 95> out{};
  for (std::size_t g = 0; g < 95; ++g)
    for (std::size_t r = 0; r < kGlyphHeight; ++r) {
      unsigned bits = 0;
      for (int i = 0; i < kGlyphWidth; ++i)
        bits = (bits << 1) | (kFont[g].rows[r][i] == '#' ? 1u : 0u);
      out[g][r] = static_cast<uint8_t>(bits);
    }
  return out;
}();

const std::array<uint8_t, kGlyphHeight>& bitmap(char c) {
  const auto u = static_cast<unsigned char>(c);
  return kBitmaps[u >= 32 && u <= 126 ? u - 32u : '?' - 32u];
}

// --- logo shapes: coverage of the pixel centred at (px, py), in [0, 1] ---------------------

float disc(float px, float py, float cx, float cy, float r) {
  return clamp01(r + 0.5f - std::hypot(px - cx, py - cy));
}

float ring(float px, float py, float cx, float cy, float r_out, float r_in) {
  const float d = std::hypot(px - cx, py - cy);
  return clamp01(std::min(r_out + 0.5f - d, d - r_in + 0.5f));
}

// Overlap of [p - 0.5, p + 0.5] with [lo, hi].
float span(float p, float lo, float hi) {
  return clamp01(std::min(p + 0.5f, hi) - std::max(p - 0.5f, lo));
}

}  // namespace

std::array<uint8_t, kGlyphHeight> glyph_bitmap(char c) {
  return bitmap(c);
}

TextSize measure_text(std::string_view text, int scale) {
  if (scale < 1 || scale > 1024)
    throw InvalidArgument("measure_text: scale must be in [1, 1024], got " + std::to_string(scale));
  if (text.empty()) return {};
  int64_t lines = 1, longest = 0, current = 0;
  for (char ch : text) {
    if (ch == '\n') {
      ++lines;
      current = 0;
    } else {
      longest = std::max(longest, ++current);
    }
  }
  const auto clamp_int = [](int64_t v) {
    return static_cast<int>(std::min<int64_t>(v, int64_t{1} << 30));
  };
  const int64_t w = longest > 0 ? (longest * kGlyphAdvance - 1) * scale : 0;
  return {clamp_int(w), clamp_int((lines * kLineAdvance - 1) * scale)};
}

void draw_text(Image& img, std::string_view text, const TextStyle& style) {
  require_image("draw_text", img);
  measure_text(text, style.scale);  // checks the scale
  check_color("draw_text", style.color);
  check_float("draw_text", "opacity", style.opacity, 0.0f, 1.0f, "in [0, 1]");
  const int ch = img.channels(), s = style.scale;
  const std::array<float, 4> v = detail::color_values(style.color, ch);
  int64_t pen_x = style.x, pen_y = style.y;
  for (char c : text) {
    if (c == '\n') {
      pen_x = style.x;
      pen_y += int64_t{kLineAdvance} * s;
      continue;
    }
    const auto& rows = bitmap(c);
    for (int r = 0; r < kGlyphHeight; ++r) {
      if (!rows[static_cast<std::size_t>(r)]) continue;
      const int64_t y0 = std::max<int64_t>(pen_y + int64_t{r} * s, 0);
      const int64_t y1 = std::min<int64_t>(pen_y + int64_t{r + 1} * s, img.height());
      for (int d = 0; d < kGlyphWidth; ++d) {
        if (!((rows[static_cast<std::size_t>(r)] >> (kGlyphWidth - 1 - d)) & 1u)) continue;
        const int64_t x0 = std::max<int64_t>(pen_x + int64_t{d} * s, 0);
        const int64_t x1 = std::min<int64_t>(pen_x + int64_t{d + 1} * s, img.width());
        for (int64_t y = y0; y < y1; ++y) {
          float* p = img.row(static_cast<int>(y)) + x0 * ch;
          for (int64_t x = x0; x < x1; ++x, p += ch)
            detail::blend_pixel(p, ch, v.data(), style.opacity);
        }
      }
    }
    pen_x += int64_t{kGlyphAdvance} * s;
  }
}

void make_logo_into(uint64_t seed, int size, Image& dst) {
  if (size < 1 || size > kMaxImageSide)
    throw InvalidArgument("make_logo: size must be in [1, " + std::to_string(kMaxImageSide) +
                          "], got " + std::to_string(size));
  dst.reset(size, size, 4);
  std::fill(dst.data(), dst.data() + dst.size(), 0.0f);
  Rng rng(seed);
  const auto n = static_cast<float>(size);
  const int shapes = 2 + static_cast<int>(rng.below(3));
  for (int i = 0; i < shapes; ++i) {
    // The first shape is large and central so every logo is clearly visible.
    const int kind = static_cast<int>(rng.below(4));
    const float extent = i == 0 ? rng.uniform(0.35f, 0.5f) : rng.uniform(0.12f, 0.35f);
    const float cx = n * (i == 0 ? 0.5f : rng.uniform(0.25f, 0.75f)) - 0.5f;
    const float cy = n * (i == 0 ? 0.5f : rng.uniform(0.25f, 0.75f)) - 0.5f;
    const float r = extent * n;
    const float thickness = rng.uniform(0.25f, 0.5f);
    const float aspect = rng.uniform(0.3f, 1.0f);
    float color[4] = {rng.uniform(), rng.uniform(), rng.uniform(), 1.0f};
    color[rng.below(3)] = rng.uniform(0.8f, 1.0f);  // keep it from being dull
    const float alpha = rng.uniform(0.7f, 1.0f);
    for (int y = 0; y < size; ++y) {
      float* p = dst.row(y);
      const auto py = static_cast<float>(y);
      for (int x = 0; x < size; ++x, p += 4) {
        const auto px = static_cast<float>(x);
        float cover = 0.0f;
        switch (kind) {
          case 0:
            cover = disc(px, py, cx, cy, r);
            break;
          case 1:
            cover = ring(px, py, cx, cy, r, r * (1.0f - thickness));
            break;
          case 2:  // rectangle
            cover = span(px, cx - r, cx + r) * span(py, cy - r * aspect, cy + r * aspect);
            break;
          default:  // horizontal bar
            cover = span(px, cx - r, cx + r) *
                    span(py, cy - r * thickness * 0.4f, cy + r * thickness * 0.4f);
            break;
        }
        if (cover > 0.0f) detail::blend_pixel(p, 4, color, cover * alpha);
      }
    }
  }
}

Image make_logo(uint64_t seed, int size) {
  Image out;
  make_logo_into(seed, size, out);
  return out;
}

void overlay_image(Image& dst, const Image& overlay, int x, int y, float opacity, float scale) {
  require_image("overlay_image", dst);
  require_image("overlay_image: overlay", overlay);
  check_float("overlay_image", "opacity", opacity, 0.0f, 1.0f, "in [0, 1]");
  check_float("overlay_image", "scale", scale, 1e-6f, 1e6f, "positive and finite");
  const Image* ov = &overlay;
  thread_local Image scaled;
  if (scale != 1.0f) {
    const auto side = [&](int v) {
      const double s = std::round(v * static_cast<double>(scale));
      if (s > kMaxImageSide)
        throw InvalidArgument("overlay_image: scaled overlay side " + std::to_string(s) +
                              " exceeds kMaxImageSide");
      return std::max(1, static_cast<int>(s));
    };
    resize_into(overlay, scaled, side(overlay.width()), side(overlay.height()));
    ov = &scaled;
  }
  const int dc = dst.channels(), oc = ov->channels();
  const int x0 = std::max(0, x), y0 = std::max(0, y);
  const int64_t x1 = std::min<int64_t>(int64_t{x} + ov->width(), dst.width());
  const int64_t y1 = std::min<int64_t>(int64_t{y} + ov->height(), dst.height());
  for (int64_t yy = y0; yy < y1; ++yy) {
    const float* s = ov->row(static_cast<int>(yy - y)) + (x0 - int64_t{x}) * oc;
    float* p = dst.row(static_cast<int>(yy)) + int64_t{x0} * dc;
    for (int64_t xx = x0; xx < x1; ++xx, s += oc, p += dc) {
      const float a = opacity * (oc == 4 ? s[3] : 1.0f);
      if (a <= 0.0f) continue;
      float v[4];
      if (dc == 1)
        v[0] = oc == 1 ? s[0] : detail::luma(s[0], s[1], s[2]);
      else
        for (int k = 0; k < 3; ++k) v[k] = oc == 1 ? s[0] : s[k];
      detail::blend_pixel(p, dc, v, a);
    }
  }
}

}  // namespace imgsim::image
