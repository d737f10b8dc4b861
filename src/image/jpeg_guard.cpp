// See jpeg_guard.hpp. Marker syntax from ITU-T T.81 (JPEG), annex B; the walk mirrors
// stb_image's stbi__decode_jpeg_header / stbi__decode_jpeg_image control flow, including that
// reads past the end of the data yield zero bytes.
#include "image/jpeg_guard.hpp"

namespace imgsim::image::detail {

namespace {

bool is_sof(unsigned m) {
  return m == 0xc0 || m == 0xc1 || m == 0xc2;
}
bool is_rst(unsigned m) {
  return m >= 0xd0 && m <= 0xd7;
}
bool is_app_or_com(unsigned m) {
  return (m >= 0xe0 && m <= 0xef) || m == 0xfe;
}

class Walker {
 public:
  Walker(const unsigned char* data, std::size_t size) : d_(data), n_(size) {}

  unsigned get8(std::size_t i) const { return i < n_ ? d_[i] : 0u; }
  unsigned get16(std::size_t i) const { return (get8(i) << 8) | get8(i + 1); }

  JpegCheck run(bool header_only) {
    // SOI, possibly preceded by fill bytes.
    std::size_t p = 0;
    if (get8(p) != 0xff) return {JpegVerdict::not_jpeg, {}};
    while (p < n_ && d_[p] == 0xff) ++p;
    if (get8(p) != 0xd8) return {JpegVerdict::not_jpeg, {}};
    ++p;
    bool in_header = true;  // before the frame header
    for (;;) {
      if (p >= n_) return end(in_header, header_only);
      if (d_[p] != 0xff) {
        if (!in_header) return ok();  // stb: "expected marker", stops
        ++p;                          // stb skips padding between header segments
        continue;
      }
      while (p < n_ && d_[p] == 0xff) ++p;
      if (p >= n_) return end(in_header, header_only);
      const unsigned m = d_[p++];
      const std::size_t len = get16(p);
      if (in_header && is_sof(m)) {
        if (header_only)  // stbi_info reads the frame header itself: it must be complete
          return p + len > n_ ? JpegCheck{JpegVerdict::need_more, {}} : ok();
        in_header = false;
        p += len;
      } else if (m == 0xc4) {
        JpegCheck c;
        if (!dht(p, c)) return c;
        p += len;
      } else if (m == 0xdb || m == 0xdd || is_app_or_com(m)) {
        if (len < 2) return ok();  // stb rejects the segment and stops
        p += len;
      } else if (!in_header && m == 0xd9) {
        return ok();
      } else if (!in_header && m == 0xdc) {
        if (len != 4) return ok();
        p += len;
      } else if (!in_header && m == 0xda) {
        p = skip_entropy_coded(p + len);
      } else {
        return ok();  // a marker stb does not accept here: it stops
      }
    }
  }

 private:
  static JpegCheck ok() { return {JpegVerdict::ok, {}}; }
  static JpegCheck end(bool in_header, bool header_only) {
    return {in_header && header_only ? JpegVerdict::need_more : JpegVerdict::ok, {}};
  }

  // Checks every table of the DHT segment whose length field is at p; false if one is unsafe.
  bool dht(std::size_t p, JpegCheck& out) const {
    long left = static_cast<long>(get16(p)) - 2;
    std::size_t q = p + 2;
    while (left > 0) {
      const unsigned tc_th = get8(q);
      if ((tc_th >> 4) > 1 || (tc_th & 15) > 3) return true;  // stb: "bad DHT header"
      unsigned codes = 0;
      for (std::size_t i = 1; i <= 16; ++i) codes += get8(q + i);
      if (codes > 256) {
        out = {JpegVerdict::unsafe, "corrupt JPEG: Huffman table at byte " + std::to_string(q) +
                                        " declares " + std::to_string(codes) +
                                        " codes (at most 256)"};
        return false;
      }
      q += 17 + codes;
      left -= 17 + static_cast<long>(codes);
    }
    return true;
  }

  // Entropy-coded data runs to the next marker: 0xff (fill 0xff...) then a byte that is neither
  // 0 (a stuffed 0xff) nor a restart marker. Returns the position of that 0xff.
  std::size_t skip_entropy_coded(std::size_t p) const {
    while (p < n_) {
      if (d_[p] != 0xff) {
        ++p;
        continue;
      }
      std::size_t q = p + 1;
      while (q < n_ && d_[q] == 0xff) ++q;
      if (q >= n_) return n_;
      if (d_[q] != 0 && !is_rst(d_[q])) return p;
      p = q + 1;
    }
    return n_;
  }

  const unsigned char* d_;
  std::size_t n_;
};

}  // namespace

JpegCheck check_jpeg_tables(const unsigned char* data, std::size_t size, bool header_only) {
  return Walker(data, size).run(header_only);
}

}  // namespace imgsim::image::detail
