// EXIF orientation: JPEGs written with stb_image_write (encode_image) get a hand-built APP1
// segment inserted after SOI; decoding must turn them upright, and malformed EXIF data must be
// ignored without reading outside the buffer.
#include <catch2/catch.hpp>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "data_test_util.hpp"
#include "imgsim/error.hpp"
#include "imgsim/image/image.hpp"
#include "imgsim/rng.hpp"

using namespace imgsim;
using namespace imgsim::image;
using imgsim::testing::Bytes;

namespace {

// Four flat quadrants, JPEG-friendly: red top-left, green top-right, blue bottom-left, white
// bottom-right.
constexpr std::array<std::array<float, 3>, 4> kQuadrant = {
    {{1.0f, 0.0f, 0.0f}, {0.0f, 1.0f, 0.0f}, {0.0f, 0.0f, 1.0f}, {1.0f, 1.0f, 1.0f}}};

Image quadrants(int w, int h) {
  Image img(w, h, 3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      const auto q = static_cast<std::size_t>((y >= h / 2 ? 2 : 0) + (x >= w / 2 ? 1 : 0));
      for (int c = 0; c < 3; ++c) img.at(x, y, c) = kQuadrant[q][static_cast<std::size_t>(c)];
    }
  return img;
}

// Index of the quadrant colour closest to pixel (x, y).
int quadrant_at(const Image& img, int x, int y) {
  int best = -1;
  float best_d = 1e9f;
  for (int q = 0; q < 4; ++q) {
    float d = 0.0f;
    for (int c = 0; c < 3; ++c) {
      const float e =
          img.at(x, y, c) - kQuadrant[static_cast<std::size_t>(q)][static_cast<std::size_t>(c)];
      d += e * e;
    }
    if (d < best_d) best_d = d, best = q;
  }
  return best;
}

void put16(Bytes& b, unsigned v, bool big) {
  if (big) {
    b.push_back(static_cast<unsigned char>(v >> 8));
    b.push_back(static_cast<unsigned char>(v & 0xff));
  } else {
    b.push_back(static_cast<unsigned char>(v & 0xff));
    b.push_back(static_cast<unsigned char>(v >> 8));
  }
}

void put32(Bytes& b, uint32_t v, bool big) {
  if (big) {
    put16(b, v >> 16, true);
    put16(b, v & 0xffff, true);
  } else {
    put16(b, v & 0xffff, false);
    put16(b, v >> 16, false);
  }
}

struct ExifSpec {
  bool big_endian = false;
  unsigned orientation = 1;
  unsigned type = 3;  // SHORT
  uint32_t count = 1;
  uint32_t ifd_offset = 8;
  unsigned entries = 2;  // declared entry count
};

// "Exif\0\0" + TIFF block: IFD0 holds Make (ASCII, stored after the IFD) then Orientation.
Bytes exif_payload(const ExifSpec& s) {
  Bytes b = {'E', 'x', 'i', 'f', 0, 0};
  const bool be = s.big_endian;
  const unsigned char order = be ? 'M' : 'I';
  b.push_back(order);
  b.push_back(order);
  put16(b, 42, be);
  put32(b, s.ifd_offset, be);
  put16(b, s.entries, be);
  // Make: tag 0x010f, ASCII (2), 6 bytes at offset 8 + 2 + 24 + 4 = 38.
  put16(b, 0x010f, be);
  put16(b, 2, be);
  put32(b, 6, be);
  put32(b, 38, be);
  // Orientation: tag 0x0112; a SHORT sits in the first two bytes of the value field.
  put16(b, 0x0112, be);
  put16(b, s.type, be);
  put32(b, s.count, be);
  put16(b, s.orientation, be);
  put16(b, 0, be);
  put32(b, 0, be);  // no next IFD
  for (unsigned char c : {'i', 'm', 'g', 's', 'm', '\0'}) b.push_back(c);
  return b;
}

// `b` with the bytes from `at` on replaced by `with` (built by insertion only).
Bytes replaced(const Bytes& b, std::size_t at, const Bytes& with) {
  REQUIRE(at + with.size() <= b.size());
  Bytes out(b.begin(), b.begin() + static_cast<std::ptrdiff_t>(at));
  out.insert(out.end(), with.begin(), with.end());
  out.insert(out.end(), b.begin() + static_cast<std::ptrdiff_t>(at + with.size()), b.end());
  return out;
}

// The JPEG with an APP1 segment holding `payload` inserted right after SOI.
Bytes with_app1(const Bytes& jpeg, const Bytes& payload) {
  REQUIRE(jpeg.size() > 2);
  REQUIRE(payload.size() + 2 <= 0xffff);
  Bytes out(jpeg.begin(), jpeg.begin() + 2);
  out.push_back(0xff);
  out.push_back(0xe1);
  const auto len = static_cast<unsigned>(payload.size() + 2);
  out.push_back(static_cast<unsigned char>(len >> 8));
  out.push_back(static_cast<unsigned char>(len & 0xff));
  out.insert(out.end(), payload.begin(), payload.end());
  out.insert(out.end(), jpeg.begin() + 2, jpeg.end());
  return out;
}

// The upright image for an EXIF orientation, written from the definitions (TIFF 6.0: where the
// stored 0th row and 0th column go), independently of the library's tables.
Image reference_orient(const Image& s, int o) {
  const int w = s.width(), h = s.height();
  const bool swap = o >= 5;
  Image out(swap ? h : w, swap ? w : h, s.channels());
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      int X = x, Y = y;
      switch (o) {
        case 2:
          X = w - 1 - x;
          break;  // 0th row top, 0th column right
        case 3:
          X = w - 1 - x, Y = h - 1 - y;
          break;  // bottom, right
        case 4:
          Y = h - 1 - y;
          break;  // bottom, left
        case 5:
          X = y, Y = x;
          break;  // 0th row left, 0th column top
        case 6:
          X = h - 1 - y, Y = x;
          break;  // right, top
        case 7:
          X = h - 1 - y, Y = w - 1 - x;
          break;  // right, bottom
        case 8:
          X = y, Y = w - 1 - x;
          break;  // left, bottom
        default:
          break;
      }
      for (int c = 0; c < s.channels(); ++c) out.at(X, Y, c) = s.at(x, y, c);
    }
  return out;
}

bool same_pixels(const Image& a, const Image& b) {
  if (a.width() != b.width() || a.height() != b.height() || a.channels() != b.channels())
    return false;
  for (int64_t i = 0; i < a.size(); ++i)
    if (a.data()[i] != b.data()[i]) return false;
  return true;
}

const Bytes& plain_jpeg() {
  static const Bytes jpeg = encode_image(quadrants(64, 32), ImageFormat::jpg, 100);
  return jpeg;
}

}  // namespace

TEST_CASE("EXIF orientation is read in both byte orders", "[exif]") {
  for (bool big : {false, true})
    for (unsigned o = 1; o <= 8; ++o) {
      ExifSpec s;
      s.big_endian = big;
      s.orientation = o;
      const Bytes jpeg = with_app1(plain_jpeg(), exif_payload(s));
      CHECK(read_exif_orientation(jpeg) == static_cast<int>(o));
    }
  CHECK(read_exif_orientation(plain_jpeg()) == 1);
  const Bytes png = encode_image(quadrants(8, 4), ImageFormat::png);
  CHECK(read_exif_orientation(png) == 1);
  CHECK(read_exif_orientation({}) == 1);
}

TEST_CASE("JPEGs are decoded upright for all eight orientations", "[exif]") {
  const Image stored = load_image_from_memory(plain_jpeg());
  REQUIRE(stored.width() == 64);
  REQUIRE(stored.height() == 32);
  // Which stored quadrant shows at the upright top-left, top-right, bottom-left, bottom-right.
  // Quadrants: 0 red TL, 1 green TR, 2 blue BL, 3 white BR.
  const std::array<std::array<int, 4>, 9> expected_corners = {{
      {},
      {0, 1, 2, 3},  // 1 as stored
      {1, 0, 3, 2},  // 2 mirrored left-right
      {3, 2, 1, 0},  // 3 rotated 180
      {2, 3, 0, 1},  // 4 mirrored top-bottom
      {0, 2, 1, 3},  // 5 transposed
      {2, 0, 3, 1},  // 6 shown after turning 90 degrees clockwise
      {3, 1, 2, 0},  // 7 transverse
      {1, 3, 0, 2},  // 8 shown after turning 90 degrees counter-clockwise
  }};
  for (bool big : {false, true})
    for (int o = 1; o <= 8; ++o) {
      DYNAMIC_SECTION("orientation " << o << (big ? " big-endian" : " little-endian")) {
        ExifSpec s;
        s.big_endian = big;
        s.orientation = static_cast<unsigned>(o);
        const Bytes jpeg = with_app1(plain_jpeg(), exif_payload(s));
        const Image upright = load_image_from_memory(jpeg);
        CHECK(same_pixels(upright, reference_orient(stored, o)));
        const bool swap = o >= 5;
        REQUIRE(upright.width() == (swap ? 32 : 64));
        REQUIRE(upright.height() == (swap ? 64 : 32));
        const int w = upright.width(), h = upright.height();
        const auto& e = expected_corners[static_cast<std::size_t>(o)];
        CHECK(quadrant_at(upright, w / 4, h / 4) == e[0]);
        CHECK(quadrant_at(upright, 3 * w / 4, h / 4) == e[1]);
        CHECK(quadrant_at(upright, w / 4, 3 * h / 4) == e[2]);
        CHECK(quadrant_at(upright, 3 * w / 4, 3 * h / 4) == e[3]);

        // Turned off: the stored pixels.
        LoadOptions off;
        off.apply_exif_orientation = false;
        CHECK(same_pixels(load_image_from_memory(jpeg, off), stored));
        // Channel conversion and the reusing variant take the same path.
        Image gray;
        load_image_from_memory_into(jpeg, gray, {.channels = 1});
        const Image stored_gray = load_image_from_memory(plain_jpeg(), {.channels = 1});
        CHECK(same_pixels(gray, reference_orient(stored_gray, o)));
        // apply_orientation on decoded pixels agrees with the decoder.
        CHECK(same_pixels(apply_orientation(stored, o), upright));
      }
    }
}

TEST_CASE("apply_orientation checks its arguments and inverts", "[exif]") {
  Image img(5, 3, 4);
  for (int64_t i = 0; i < img.size(); ++i) img.data()[i] = static_cast<float>(i) / 60.0f;
  REQUIRE_THROWS_AS(apply_orientation(img, 0), InvalidArgument);
  REQUIRE_THROWS_AS(apply_orientation(img, 9), InvalidArgument);
  REQUIRE_THROWS_AS(apply_orientation(Image(), 2), InvalidArgument);
  const int inverse[9] = {0, 1, 2, 3, 4, 5, 8, 7, 6};
  for (int o = 1; o <= 8; ++o) {
    CHECK(same_pixels(apply_orientation(img, o), reference_orient(img, o)));
    CHECK(same_pixels(apply_orientation(apply_orientation(img, o), inverse[o]), img));
    Image same = img;
    apply_orientation_into(same, same, o);  // aliasing
    CHECK(same_pixels(same, reference_orient(img, o)));
  }
}

TEST_CASE("Malformed EXIF blocks are ignored", "[exif][error]") {
  const Image stored = load_image_from_memory(plain_jpeg());
  const Bytes good = exif_payload({});
  std::vector<std::pair<std::string, Bytes>> cases;
  const auto spec_case = [&](const std::string& name, ExifSpec s) {
    cases.emplace_back(name, exif_payload(s));
  };
  cases.emplace_back("Exif header only", Bytes{'E', 'x', 'i', 'f', 0, 0});
  cases.emplace_back("truncated TIFF header", Bytes{'E', 'x', 'i', 'f', 0, 0, 'I', 'I', 42});
  {
    Bytes b = {'E', 'x', 'i', 'f'};
    b.insert(b.end(), good.begin() + 6, good.end());
    cases.emplace_back("no NULs after Exif", b);
  }
  cases.emplace_back("bad byte order", replaced(good, 6, {'X', 'X'}));
  cases.emplace_back("bad TIFF magic", replaced(good, 8, {43}));
  {
    Bytes b = good;  // the orientation entry cut off in the middle
    b.resize(6 + 8 + 2 + 12 + 6);
    cases.emplace_back("entry cut short", b);
  }
  {
    ExifSpec s;
    s.orientation = 6;
    s.entries = 0xffff;  // claims far more entries than there are; Orientation is not reached
    // The second entry's tag becomes Make too (little-endian 0x010f), so Orientation is not
    // among the entries present and the walk runs into the end of the block.
    cases.emplace_back("entry count past the end",
                       replaced(exif_payload(s), 6 + 8 + 2 + 12, {0x0f, 0x01}));
  }
  ExifSpec s;
  s.ifd_offset = 0xfffffff0u;
  spec_case("IFD offset far out", s);
  s = {};
  s.ifd_offset = 43;  // one byte before the end of the 44-byte block: the count would overrun
  spec_case("IFD offset at the end", s);
  s = {};
  s.orientation = 0;
  spec_case("orientation 0", s);
  s.orientation = 9;
  spec_case("orientation 9", s);
  s.orientation = 0xffff;
  s.big_endian = true;
  spec_case("orientation 65535", s);
  s = {};
  s.orientation = 6;
  s.type = 4;  // LONG
  spec_case("wrong type", s);
  s = {};
  s.orientation = 6;
  s.count = 0;
  spec_case("zero count", s);
  s = {};
  s.orientation = 6;
  s.entries = 0;
  spec_case("empty IFD", s);

  for (const auto& [name, payload] : cases) {
    DYNAMIC_SECTION(name) {
      const Bytes jpeg = with_app1(plain_jpeg(), payload);
      // The block alone, in an exactly sized buffer: any over-read is past the allocation.
      const Bytes head(jpeg.begin(),
                       jpeg.begin() + 6 + static_cast<std::ptrdiff_t>(payload.size()));
      CHECK(read_exif_orientation(head) == 1);
      CHECK(read_exif_orientation(jpeg) == 1);
      CHECK(same_pixels(load_image_from_memory(jpeg), stored));
    }
  }
}

TEST_CASE("Other APP1 segments before EXIF and truncated files", "[exif]") {
  ExifSpec s;
  s.orientation = 8;
  const std::string xmp_id = "http://ns.adobe.com/xap/1.0/";
  Bytes xmp(xmp_id.begin(), xmp_id.end());
  xmp.push_back(0);
  for (unsigned char c : {'<', 'x', '/', '>'}) xmp.push_back(c);
  const Bytes jpeg = with_app1(with_app1(plain_jpeg(), exif_payload(s)), xmp);
  CHECK(read_exif_orientation(jpeg) == 8);
  // Every prefix of the file: the segment is either complete (8) or ignored (1).
  for (std::size_t n = 0; n <= 120; ++n) {
    const Bytes prefix(jpeg.begin(), jpeg.begin() + static_cast<std::ptrdiff_t>(n));
    const int o = read_exif_orientation(prefix);
    CHECK((o == 1 || o == 8));
  }
  const Image img = load_image_from_memory(jpeg);
  CHECK(img.width() == 32);
  CHECK(img.height() == 64);
}

TEST_CASE("Randomly corrupted EXIF blocks never break decoding", "[exif][fuzz]") {
  const Image stored = load_image_from_memory(plain_jpeg());
  Rng rng(2024);
  for (int iter = 0; iter < 3000; ++iter) {
    ExifSpec s;
    s.big_endian = rng.uniform() < 0.5f;
    s.orientation = 1 + static_cast<unsigned>(rng.below(8));
    Bytes payload = exif_payload(s);
    const int flips = 1 + static_cast<int>(rng.below(4));
    for (int f = 0; f < flips; ++f) {
      const std::size_t at = 6 + rng.below(payload.size() - 6);
      payload[at] = static_cast<unsigned char>(rng.below(256));
    }
    if (rng.uniform() < 0.3f) payload.resize(6 + rng.below(payload.size() - 5));
    const Bytes jpeg = with_app1(plain_jpeg(), payload);
    const Bytes head(jpeg.begin(), jpeg.begin() + 6 + static_cast<std::ptrdiff_t>(payload.size()));
    const int o = read_exif_orientation(head);
    REQUIRE(o >= 1);
    REQUIRE(o <= 8);
    REQUIRE(read_exif_orientation(jpeg) == o);
    if (iter % 50 == 0) {
      const Image img = load_image_from_memory(jpeg);
      CHECK(same_pixels(img, reference_orient(stored, o)));
    }
  }
}
