// Edits: exactly specified changes, their text form and the benchmark's random draws
// (include/imgsim/image/augment.hpp, docs/augmentation.md, "Edits").
#include <algorithm>
#include <charconv>
#include <cmath>
#include <string>
#include <utility>

#include "image/augment_internal.hpp"
#include "imgsim/error.hpp"
#include "imgsim/image/augment.hpp"

namespace imgsim::image {

using detail::check_color;
using detail::check_float;

static_assert(std::variant_size_v<Edit> == kEditKindCount);

namespace {

constexpr std::string_view kKindNames[kEditKindCount] = {
    "crop",       "scale", "jpeg",      "rotate", "flip_h", "flip_v", "brightness", "contrast",
    "saturation", "hue",   "grayscale", "blur",   "text",   "logo",   "border",     "pad"};

// --- the parameters of each edit, by name (shared by printing and parsing) ------------------

template <class F>
void fields(edit::Crop& e, F&& f) {
  f("keep_width", e.keep_width);
  f("keep_height", e.keep_height);
  f("anchor_x", e.anchor_x);
  f("anchor_y", e.anchor_y);
}
template <class F>
void fields(edit::Scale& e, F&& f) {
  f("factor", e.factor);
}
template <class F>
void fields(edit::Jpeg& e, F&& f) {
  f("quality", e.quality);
}
template <class F>
void fields(edit::Rotate& e, F&& f) {
  f("degrees", e.degrees);
  f("crop_to_valid", e.crop_to_valid);
  f("fill", e.fill);
}
template <class F>
void fields(edit::FlipH&, F&&) {}
template <class F>
void fields(edit::FlipV&, F&&) {}
template <class F>
void fields(edit::Brightness& e, F&& f) {
  f("factor", e.factor);
}
template <class F>
void fields(edit::Contrast& e, F&& f) {
  f("factor", e.factor);
}
template <class F>
void fields(edit::Saturation& e, F&& f) {
  f("factor", e.factor);
}
template <class F>
void fields(edit::Hue& e, F&& f) {
  f("shift", e.shift);
}
template <class F>
void fields(edit::Grayscale&, F&&) {}
template <class F>
void fields(edit::Blur& e, F&& f) {
  f("sigma", e.sigma);
}
template <class F>
void fields(edit::Text& e, F&& f) {
  f("text", e.text);
  f("anchor_x", e.anchor_x);
  f("anchor_y", e.anchor_y);
  f("height", e.height);
  f("color", e.color);
  f("opacity", e.opacity);
}
template <class F>
void fields(edit::Logo& e, F&& f) {
  f("seed", e.seed);
  f("anchor_x", e.anchor_x);
  f("anchor_y", e.anchor_y);
  f("size", e.size);
  f("opacity", e.opacity);
}
template <class F>
void fields(edit::Border& e, F&& f) {
  f("width", e.width);
  f("color", e.color);
}
template <class F>
void fields(edit::Pad& e, F&& f) {
  f("aspect", e.aspect);
  f("color", e.color);
}

// --- printing --------------------------------------------------------------------------------

template <class T>
void append_number(std::string& out, T v) {
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);  // shortest exact form for floats
  out.append(buf, r.ptr);
}

struct Printer {
  std::string& out;
  void operator()(const char* key, float v) const {
    head(key);
    append_number(out, v);
  }
  void operator()(const char* key, int v) const {
    head(key);
    append_number(out, v);
  }
  void operator()(const char* key, uint64_t v) const {
    head(key);
    append_number(out, v);
  }
  void operator()(const char* key, bool v) const {
    head(key);
    out += v ? "1" : "0";
  }
  void operator()(const char* key, const Color& c) const {
    head(key);
    const float v[4] = {c.r, c.g, c.b, c.a};
    for (int i = 0; i < 4; ++i) {
      if (i) out += ',';
      append_number(out, v[i]);
    }
  }
  void operator()(const char* key, const std::string& s) const {
    head(key);
    out += '"';
    for (char ch : s) {
      if (ch == '"' || ch == '\\') out += '\\';
      if (ch == '\n') {
        out += "\\n";
        continue;
      }
      out += ch;
    }
    out += '"';
  }
  void head(const char* key) const {
    out += ' ';
    out += key;
    out += '=';
  }
};

// --- parsing ---------------------------------------------------------------------------------

[[noreturn]] void parse_error(std::string_view line, const std::string& what) {
  throw InvalidArgument("parse_edit: " + what + " in \"" + std::string(line) + "\"");
}

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

struct Token {
  std::string key;
  std::string value;
  bool used = false;
};

template <class T>
bool parse_number(std::string_view s, T& out) {
  if (s.empty()) return false;
  T v{};
  const auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  if (r.ec != std::errc() || r.ptr != s.data() + s.size()) return false;
  out = v;
  return true;
}

struct Parser {
  std::string_view line;
  std::vector<Token>& tokens;

  Token* find(const char* key) const {
    for (Token& t : tokens)
      if (t.key == key) return &t;
    return nullptr;
  }
  [[noreturn]] void bad(const Token& t, const char* expected) const {
    parse_error(line, "value \"" + t.value + "\" of " + t.key + " is not " + expected);
  }
  template <class T>
  void number(const char* key, T& v, const char* expected) const {
    Token* t = find(key);
    if (!t) return;
    t->used = true;
    if (!parse_number(t->value, v)) bad(*t, expected);
  }
  void operator()(const char* key, float& v) const { number(key, v, "a number"); }
  void operator()(const char* key, int& v) const { number(key, v, "an integer"); }
  void operator()(const char* key, uint64_t& v) const { number(key, v, "an unsigned integer"); }
  void operator()(const char* key, bool& v) const {
    Token* t = find(key);
    if (!t) return;
    t->used = true;
    if (t->value == "1" || t->value == "true")
      v = true;
    else if (t->value == "0" || t->value == "false")
      v = false;
    else
      bad(*t, "0, 1, true or false");
  }
  void operator()(const char* key, Color& c) const {
    Token* t = find(key);
    if (!t) return;
    t->used = true;
    float v[4] = {0.0f, 0.0f, 0.0f, 1.0f};
    std::string_view rest = t->value;
    int n = 0;
    for (;; ++n) {
      const std::size_t comma = rest.find(',');
      if (n == 4 || !parse_number(rest.substr(0, comma), v[n])) bad(*t, "\"r,g,b\" or \"r,g,b,a\"");
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
    if (n < 2) bad(*t, "\"r,g,b\" or \"r,g,b,a\"");
    c = {v[0], v[1], v[2], v[3]};
  }
  void operator()(const char* key, std::string& s) const {
    if (Token* t = find(key)) {
      t->used = true;
      s = t->value;
    }
  }
};

std::vector<Token> tokenize(std::string_view line, std::string& kind) {
  std::vector<Token> tokens;
  std::size_t p = 0;
  const auto skip = [&] {
    while (p < line.size() && is_space(line[p])) ++p;
  };
  skip();
  while (p < line.size() && !is_space(line[p])) kind += line[p++];
  if (kind.empty()) parse_error(line, "no edit kind");
  for (;;) {
    skip();
    if (p >= line.size()) break;
    Token t;
    while (p < line.size() && line[p] != '=' && !is_space(line[p])) t.key += line[p++];
    if (p >= line.size() || line[p] != '=')
      parse_error(line, "expected key=value at \"" + t.key + "\"");
    ++p;
    if (p < line.size() && line[p] == '"') {
      ++p;
      bool closed = false;
      while (p < line.size()) {
        const char c = line[p++];
        if (c == '"') {
          closed = true;
          break;
        }
        if (c != '\\') {
          t.value += c;
          continue;
        }
        if (p >= line.size()) break;
        const char e = line[p++];
        if (e == '"' || e == '\\')
          t.value += e;
        else if (e == 'n')
          t.value += '\n';
        else
          parse_error(line, std::string("unknown escape \\") + e);
      }
      if (!closed) parse_error(line, "unterminated quoted value of " + t.key);
      if (p < line.size() && !is_space(line[p]))
        parse_error(line, "text after the quoted value of " + t.key);
    } else {
      while (p < line.size() && !is_space(line[p])) t.value += line[p++];
    }
    for (const Token& other : tokens)
      if (other.key == t.key) parse_error(line, "repeated key " + t.key);
    tokens.push_back(std::move(t));
  }
  return tokens;
}

template <std::size_t... I>
Edit make_edit(std::size_t k, std::index_sequence<I...>) {
  Edit out;
  ((k == I ? (out.template emplace<I>(), 0) : 0), ...);
  return out;
}

// --- validation and application --------------------------------------------------------------

void check_anchor(const char* what, float x, float y) {
  check_float(what, "anchor_x", x, 0.0f, 1.0f, "in [0, 1]");
  check_float(what, "anchor_y", y, 0.0f, 1.0f, "in [0, 1]");
}

struct Validator {
  void operator()(const edit::Crop& e) const {
    check_float("edit crop", "keep_width", e.keep_width, 1e-6f, 1.0f, "in (0, 1]");
    check_float("edit crop", "keep_height", e.keep_height, 1e-6f, 1.0f, "in (0, 1]");
    check_anchor("edit crop", e.anchor_x, e.anchor_y);
  }
  void operator()(const edit::Scale& e) const {
    check_float("edit scale", "factor", e.factor, 1e-6f, 16.0f, "in (0, 16]");
  }
  void operator()(const edit::Jpeg& e) const {
    if (e.quality < 1 || e.quality > 100)
      throw InvalidArgument("edit jpeg: quality must be in [1, 100], got " +
                            std::to_string(e.quality));
  }
  void operator()(const edit::Rotate& e) const {
    check_float("edit rotate", "degrees", e.degrees, -360.0f, 360.0f, "in [-360, 360]");
    check_color("edit rotate: fill", e.fill);
  }
  void operator()(const edit::FlipH&) const {}
  void operator()(const edit::FlipV&) const {}
  void operator()(const edit::Brightness& e) const {
    check_float("edit brightness", "factor", e.factor, 0.0f, 1000.0f, "in [0, 1000]");
  }
  void operator()(const edit::Contrast& e) const {
    check_float("edit contrast", "factor", e.factor, 0.0f, 1000.0f, "in [0, 1000]");
  }
  void operator()(const edit::Saturation& e) const {
    check_float("edit saturation", "factor", e.factor, 0.0f, 1000.0f, "in [0, 1000]");
  }
  void operator()(const edit::Hue& e) const {
    check_float("edit hue", "shift", e.shift, -0.5f, 0.5f, "in [-0.5, 0.5]");
  }
  void operator()(const edit::Grayscale&) const {}
  void operator()(const edit::Blur& e) const {
    check_float("edit blur", "sigma", e.sigma, 1e-6f, 1000.0f, "in (0, 1000]");
  }
  void operator()(const edit::Text& e) const {
    if (e.text.size() > 4096)
      throw InvalidArgument("edit text: at most 4096 characters, got " +
                            std::to_string(e.text.size()));
    check_anchor("edit text", e.anchor_x, e.anchor_y);
    check_float("edit text", "height", e.height, 1e-6f, 1.0f, "in (0, 1]");
    check_color("edit text", e.color);
    check_float("edit text", "opacity", e.opacity, 0.0f, 1.0f, "in [0, 1]");
  }
  void operator()(const edit::Logo& e) const {
    check_anchor("edit logo", e.anchor_x, e.anchor_y);
    check_float("edit logo", "size", e.size, 1e-6f, 1.0f, "in (0, 1]");
    check_float("edit logo", "opacity", e.opacity, 0.0f, 1.0f, "in [0, 1]");
  }
  void operator()(const edit::Border& e) const {
    check_float("edit border", "width", e.width, 0.0f, 1.0f, "in [0, 1]");
    check_color("edit border", e.color);
  }
  void operator()(const edit::Pad& e) const {
    check_float("edit pad", "aspect", e.aspect, 1.0f / 16, 16.0f, "in [1/16, 16]");
    check_color("edit pad", e.color);
  }
};

int round_to_int(double v) {
  return static_cast<int>(std::lround(v));
}

// Top-left coordinate of a box of side `box` anchored in a side of length `side`.
int anchored(float anchor, int side, int box) {
  return round_to_int(static_cast<double>(anchor) * (side - box));
}

struct Applier {
  const Image& src;
  Image& dst;

  int w() const { return src.width(); }
  int h() const { return src.height(); }
  int shorter() const { return std::min(w(), h()); }

  void operator()(const edit::Crop& e) const {
    const int cw = std::clamp(round_to_int(double{e.keep_width} * w()), 1, w());
    const int ch = std::clamp(round_to_int(double{e.keep_height} * h()), 1, h());
    crop_into(src, dst, anchored(e.anchor_x, w(), cw), anchored(e.anchor_y, h(), ch), cw, ch);
  }
  void operator()(const edit::Scale& e) const {
    const int nw = std::max(1, round_to_int(double{e.factor} * w()));
    const int nh = std::max(1, round_to_int(double{e.factor} * h()));
    resize_into(src, dst, nw, nh);
  }
  void operator()(const edit::Jpeg& e) const {
    detail::copy_into(src, dst);
    jpeg_reencode(dst, e.quality);
  }
  void operator()(const edit::Rotate& e) const {
    rotate_into(src, dst, e.degrees, {e.fill, e.crop_to_valid});
  }
  void operator()(const edit::FlipH&) const {
    detail::copy_into(src, dst);
    flip_horizontal(dst);
  }
  void operator()(const edit::FlipV&) const {
    detail::copy_into(src, dst);
    flip_vertical(dst);
  }
  void operator()(const edit::Brightness& e) const {
    detail::copy_into(src, dst);
    adjust_brightness(dst, e.factor);
  }
  void operator()(const edit::Contrast& e) const {
    detail::copy_into(src, dst);
    adjust_contrast(dst, e.factor);
  }
  void operator()(const edit::Saturation& e) const {
    detail::copy_into(src, dst);
    adjust_saturation(dst, e.factor);
  }
  void operator()(const edit::Hue& e) const {
    detail::copy_into(src, dst);
    adjust_hue(dst, e.shift);
  }
  void operator()(const edit::Grayscale&) const {
    detail::copy_into(src, dst);
    to_grayscale(dst);
  }
  void operator()(const edit::Blur& e) const {
    detail::copy_into(src, dst);
    gaussian_blur(dst, e.sigma);
  }
  void operator()(const edit::Text& e) const {
    TextStyle style;
    style.scale = std::clamp(round_to_int(double{e.height} * h() / kGlyphHeight), 1, 1024);
    style.color = e.color;
    style.opacity = e.opacity;
    const TextSize box = measure_text(e.text, style.scale);
    style.x = anchored(e.anchor_x, w(), box.width);
    style.y = anchored(e.anchor_y, h(), box.height);
    detail::copy_into(src, dst);
    draw_text(dst, e.text, style);
  }
  void operator()(const edit::Logo& e) const {
    const int size = std::max(1, round_to_int(double{e.size} * shorter()));
    thread_local Image logo;
    make_logo_into(e.seed, size, logo);
    detail::copy_into(src, dst);
    overlay_image(dst, logo, anchored(e.anchor_x, w(), size), anchored(e.anchor_y, h(), size),
                  e.opacity);
  }
  void operator()(const edit::Border& e) const {
    const int b = round_to_int(double{e.width} * shorter());
    add_border_into(src, dst, {b, b, b, b}, e.color);
  }
  void operator()(const edit::Pad& e) const { pad_to_aspect_into(src, dst, e.aspect, e.color); }
};

}  // namespace

EditKind edit_kind(const Edit& e) {
  return static_cast<EditKind>(e.index());
}

std::string_view edit_kind_name(EditKind kind) {
  const auto k = static_cast<std::size_t>(kind);
  if (k >= static_cast<std::size_t>(kEditKindCount))
    throw InvalidArgument("edit_kind_name: unknown EditKind " + std::to_string(k));
  return kKindNames[k];
}

EditKind parse_edit_kind(std::string_view name) {
  for (int k = 0; k < kEditKindCount; ++k)
    if (kKindNames[k] == name) return static_cast<EditKind>(k);
  std::string known;
  for (std::string_view n : kKindNames) known += (known.empty() ? "" : ", ") + std::string(n);
  throw InvalidArgument("unknown edit kind \"" + std::string(name) + "\" (known: " + known + ")");
}

Edit default_edit(EditKind kind) {
  const auto k = static_cast<std::size_t>(kind);
  if (k >= static_cast<std::size_t>(kEditKindCount))
    throw InvalidArgument("default_edit: unknown EditKind " + std::to_string(k));
  return make_edit(k, std::make_index_sequence<kEditKindCount>{});
}

void validate_edit(const Edit& e) {
  std::visit(Validator{}, e);
}

void apply_edit_into(const Image& src, Image& dst, const Edit& e) {
  detail::require_image("apply_edit", src);
  validate_edit(e);
  if (&src == &dst) {
    const Image copy = src;
    apply_edit_into(copy, dst, e);
    return;
  }
  std::visit(Applier{src, dst}, e);
}

Image apply_edit(const Image& src, const Edit& e) {
  Image out;
  apply_edit_into(src, out, e);
  return out;
}

std::string to_string(const Edit& e) {
  std::string out(edit_kind_name(edit_kind(e)));
  Edit copy = e;
  std::visit([&](auto& alt) { fields(alt, Printer{out}); }, copy);
  return out;
}

Edit parse_edit(std::string_view line) {
  std::string kind;
  std::vector<Token> tokens = tokenize(line, kind);
  Edit e = default_edit(parse_edit_kind(kind));
  std::visit([&](auto& alt) { fields(alt, Parser{line, tokens}); }, e);
  for (const Token& t : tokens)
    if (!t.used) parse_error(line, "unknown key " + t.key + " for " + kind);
  validate_edit(e);
  return e;
}

Edit random_edit(EditKind kind, Rng& rng, const EditRanges& r) {
  const auto pair = [](const char* name, float lo, float hi, float min, float max) {
    if (!(std::isfinite(lo) && std::isfinite(hi) && lo >= min && lo <= hi && hi <= max))
      throw InvalidArgument(std::string("random_edit: EditRanges ") + name + " [" +
                            std::to_string(lo) + ", " + std::to_string(hi) + "] must satisfy " +
                            std::to_string(min) + " <= min <= max <= " + std::to_string(max));
  };
  const auto anchor = [&] { return rng.uniform(); };
  Edit out = default_edit(kind);
  switch (kind) {
    case EditKind::crop:
      pair("crop_keep", r.crop_keep_min, r.crop_keep_max, 1e-6f, 1.0f);
      out = edit::Crop{rng.uniform(r.crop_keep_min, r.crop_keep_max),
                       rng.uniform(r.crop_keep_min, r.crop_keep_max), anchor(), anchor()};
      break;
    case EditKind::scale:
      pair("scale", r.scale_min, r.scale_max, 1e-6f, 16.0f);
      out = edit::Scale{rng.uniform(r.scale_min, r.scale_max)};
      break;
    case EditKind::jpeg:
      if (r.jpeg_quality_min < 1 || r.jpeg_quality_min > r.jpeg_quality_max ||
          r.jpeg_quality_max > 100)
        throw InvalidArgument(
            "random_edit: EditRanges jpeg_quality must satisfy 1 <= min <= max "
            "<= 100");
      out = edit::Jpeg{detail::uniform_int(rng, r.jpeg_quality_min, r.jpeg_quality_max)};
      break;
    case EditKind::rotate: {
      pair("rotate_max_degrees", 0.0f, r.rotate_max_degrees, 0.0f, 360.0f);
      const float degrees = rng.uniform(-r.rotate_max_degrees, r.rotate_max_degrees);
      out = edit::Rotate{degrees, rng.uniform() < 0.5f, Color{}};
      break;
    }
    case EditKind::brightness:
      pair("brightness", r.brightness_min, r.brightness_max, 0.0f, 1000.0f);
      out = edit::Brightness{rng.uniform(r.brightness_min, r.brightness_max)};
      break;
    case EditKind::contrast:
      pair("contrast", r.contrast_min, r.contrast_max, 0.0f, 1000.0f);
      out = edit::Contrast{rng.uniform(r.contrast_min, r.contrast_max)};
      break;
    case EditKind::saturation:
      pair("saturation", r.saturation_min, r.saturation_max, 0.0f, 1000.0f);
      out = edit::Saturation{rng.uniform(r.saturation_min, r.saturation_max)};
      break;
    case EditKind::hue:
      pair("hue_max", 0.0f, r.hue_max, 0.0f, 0.5f);
      out = edit::Hue{rng.uniform(-r.hue_max, r.hue_max)};
      break;
    case EditKind::blur:
      pair("blur_sigma", r.blur_sigma_min, r.blur_sigma_max, 1e-6f, 1000.0f);
      out = edit::Blur{rng.uniform(r.blur_sigma_min, r.blur_sigma_max)};
      break;
    case EditKind::text: {
      if (r.text_length_min < 0 || r.text_length_min > r.text_length_max ||
          r.text_length_max > 4096)
        throw InvalidArgument(
            "random_edit: EditRanges text_length must satisfy 0 <= min <= max "
            "<= 4096");
      pair("text_height", r.text_height_min, r.text_height_max, 1e-6f, 1.0f);
      pair("overlay_opacity", r.overlay_opacity_min, r.overlay_opacity_max, 0.0f, 1.0f);
      edit::Text t;
      t.text.clear();
      const int len = detail::uniform_int(rng, r.text_length_min, r.text_length_max);
      for (int i = 0; i < len; ++i) t.text.push_back(detail::random_text_char(rng));
      t.anchor_x = anchor();
      t.anchor_y = anchor();
      t.height = rng.uniform(r.text_height_min, r.text_height_max);
      t.color = detail::random_color(rng);
      t.opacity = rng.uniform(r.overlay_opacity_min, r.overlay_opacity_max);
      out = std::move(t);
      break;
    }
    case EditKind::logo: {
      pair("logo_size", r.logo_size_min, r.logo_size_max, 1e-6f, 1.0f);
      pair("overlay_opacity", r.overlay_opacity_min, r.overlay_opacity_max, 0.0f, 1.0f);
      edit::Logo l;
      l.seed = rng.next_u64();
      l.anchor_x = anchor();
      l.anchor_y = anchor();
      l.size = rng.uniform(r.logo_size_min, r.logo_size_max);
      l.opacity = rng.uniform(r.overlay_opacity_min, r.overlay_opacity_max);
      out = l;
      break;
    }
    case EditKind::border:
      pair("border_width", r.border_width_min, r.border_width_max, 0.0f, 1.0f);
      out = edit::Border{rng.uniform(r.border_width_min, r.border_width_max),
                         detail::random_color(rng)};
      break;
    case EditKind::pad: {
      pair("pad_aspect", r.pad_aspect_min, r.pad_aspect_max, 1.0f / 16, 16.0f);
      const float lo = std::log(r.pad_aspect_min), hi = std::log(r.pad_aspect_max);
      const float aspect =
          std::clamp(std::exp(rng.uniform(lo, hi)), r.pad_aspect_min, r.pad_aspect_max);
      out = edit::Pad{aspect, detail::random_color(rng)};
      break;
    }
    case EditKind::flip_h:
    case EditKind::flip_v:
    case EditKind::grayscale:
      break;
  }
  return out;
}

}  // namespace imgsim::image
