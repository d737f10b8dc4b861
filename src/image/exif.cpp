// EXIF orientation: reading the tag from a JPEG and applying it (image/exif.hpp).
//
// Layout (JEITA CP-3451 "Exif", TIFF 6.0): a JPEG APP1 segment (marker 0xffe1, 16-bit big-endian
// length including itself) whose payload starts with "Exif\0\0" followed by a TIFF block: byte
// order "II" (little-endian) or "MM" (big-endian), the number 42, the 32-bit offset of IFD0 from
// the start of the TIFF block; an IFD is a 16-bit entry count and 12-byte entries (tag, type,
// count, value or offset). Orientation is tag 0x0112, type SHORT (3), count 1, with the value in
// the first two bytes of the value field. Every read below is checked against the end of the
// segment, which is itself checked against the end of the data.
#include <algorithm>
#include <string>

#include "image/exif.hpp"
#include "imgsim/error.hpp"
#include "imgsim/image/image.hpp"

namespace imgsim::image {

namespace detail {

namespace {

constexpr unsigned kTagOrientation = 0x0112;
constexpr unsigned kTypeShort = 3;

class TiffReader {
 public:
  TiffReader(const unsigned char* data, std::size_t size) : d_(data), n_(size) {}

  // Orientation in 1..8, or 1.
  int orientation() {
    if (n_ < 8) return 1;
    if (d_[0] == 'I' && d_[1] == 'I')
      little_ = true;
    else if (d_[0] == 'M' && d_[1] == 'M')
      little_ = false;
    else
      return 1;
    if (u16(2) != 42) return 1;
    const uint32_t ifd = u32(4);
    if (!has(ifd, 2)) return 1;
    const unsigned count = u16(ifd);
    for (unsigned i = 0; i < count; ++i) {
      const std::size_t e = static_cast<std::size_t>(ifd) + 2 + std::size_t{12} * i;
      if (!has(e, 12)) return 1;  // the IFD runs past the block: ignore it
      if (u16(e) != kTagOrientation) continue;
      if (u16(e + 2) != kTypeShort || u32(e + 4) < 1) return 1;
      const unsigned v = u16(e + 8);
      return v >= 1 && v <= 8 ? static_cast<int>(v) : 1;
    }
    return 1;
  }

 private:
  // True if `len` bytes at `off` lie inside the block (no overflow: off <= n_ checked first).
  bool has(std::size_t off, std::size_t len) const { return off <= n_ && n_ - off >= len; }
  // Callers check has(off, 2 or 4) first.
  unsigned u16(std::size_t off) const {
    const unsigned a = d_[off], b = d_[off + 1];
    return little_ ? a | (b << 8) : (a << 8) | b;
  }
  uint32_t u32(std::size_t off) const {
    const uint32_t lo = u16(off), hi = u16(off + 2);
    return little_ ? lo | (hi << 16) : (lo << 16) | hi;
  }

  const unsigned char* d_;
  std::size_t n_;
  bool little_ = true;
};

}  // namespace

int jpeg_exif_orientation(const unsigned char* data, std::size_t size) {
  if (size < 4 || data[0] != 0xff || data[1] != 0xd8) return 1;
  std::size_t p = 2;
  for (;;) {
    // A marker: 0xff, optional 0xff fill bytes, the marker code.
    if (p >= size || data[p] != 0xff) return 1;
    while (p < size && data[p] == 0xff) ++p;
    if (p >= size) return 1;
    const unsigned m = data[p++];
    if (m == 0x01 || (m >= 0xd0 && m <= 0xd8)) continue;  // TEM, RSTn, SOI: no length
    if (m == 0xd9 || m == 0xda) return 1;                 // EOI or start of scan: metadata is over
    if (size - p < 2) return 1;
    const std::size_t len = (std::size_t{data[p]} << 8) | data[p + 1];
    if (len < 2 || size - p < len) return 1;  // malformed or cut short
    const unsigned char* payload = data + p + 2;
    const std::size_t payload_len = len - 2;
    static constexpr unsigned char kExif[6] = {'E', 'x', 'i', 'f', 0, 0};
    if (m == 0xe1 && payload_len >= 6 && std::equal(kExif, kExif + 6, payload))
      return TiffReader(payload + 6, payload_len - 6).orientation();
    p += len;
  }
}

OrientationMap orientation_map(int orientation, int width, int height) {
  const int64_t w = width, h = height;
  switch (orientation) {
    case 1:  // upright
      return {0, 1, w, false};
    case 2:  // mirrored left-right
      return {w - 1, -1, w, false};
    case 3:  // rotated 180
      return {(h - 1) * w + w - 1, -1, -w, false};
    case 4:  // mirrored top-bottom
      return {(h - 1) * w, 1, -w, false};
    case 5:  // transposed: stored row y is upright column y
      return {0, h, 1, true};
    case 6:  // stored top row is the upright right column: rotate 90 degrees clockwise
      return {h - 1, h, -1, true};
    case 7:  // transverse
      return {(w - 1) * h + h - 1, -h, -1, true};
    case 8:  // stored top row is the upright left column: rotate 90 degrees counter-clockwise
      return {(w - 1) * h, -h, 1, true};
    default:
      throw InvalidArgument("orientation must be an EXIF value in 1..8, got " +
                            std::to_string(orientation));
  }
}

}  // namespace detail

int read_exif_orientation(std::span<const unsigned char> bytes) {
  return detail::jpeg_exif_orientation(bytes.data(), bytes.size());
}

void apply_orientation_into(const Image& src, Image& dst, int orientation) {
  const detail::OrientationMap m = detail::orientation_map(orientation, src.width(), src.height());
  if (src.empty()) throw InvalidArgument("apply_orientation: the image is empty");
  if (&src == &dst) {
    Image tmp;
    apply_orientation_into(src, tmp, orientation);
    dst = std::move(tmp);
    return;
  }
  const int c = src.channels();
  dst.reset(m.swaps_sides ? src.height() : src.width(), m.swaps_sides ? src.width() : src.height(),
            c);
  float* out = dst.data();
  for (int y = 0; y < src.height(); ++y) {
    const float* s = src.row(y);
    int64_t k = m.base + y * m.step_y;
    for (int x = 0; x < src.width(); ++x, s += c, k += m.step_x)
      for (int ch = 0; ch < c; ++ch) out[k * c + ch] = s[ch];
  }
}

Image apply_orientation(const Image& src, int orientation) {
  Image out;
  apply_orientation_into(src, out, orientation);
  return out;
}

}  // namespace imgsim::image
