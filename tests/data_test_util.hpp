// Helpers for the data and image tests: a self-removing temporary folder and hand-built gzip
// and PNG byte streams (deflate "stored" blocks, so no compressor is needed and a test can
// corrupt any byte it likes).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "imgsim/nn/serialize.hpp"

namespace imgsim::testing {

using Bytes = std::vector<unsigned char>;

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "imgsim-test-XXXXXX").string();
    if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }
  // Names of the entries directly in the folder, sorted.
  std::vector<std::string> list() const {
    std::vector<std::string> names;
    for (const auto& e : std::filesystem::directory_iterator(path_))
      names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  }

 private:
  std::filesystem::path path_;
};

inline void write_file(const std::string& path, const Bytes& bytes) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (!f) throw std::runtime_error("cannot write " + path);
}

inline void put_be32(Bytes& b, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<unsigned char>(v >> s));
}
inline void put_le32(Bytes& b, uint32_t v) {
  for (int s = 0; s < 32; s += 8) b.push_back(static_cast<unsigned char>(v >> s));
}

inline uint32_t crc32_of(const Bytes& b, std::size_t from = 0) {
  return nn::crc32(b.data() + from, b.size() - from);
}

// Deflate stream of stored (uncompressed) blocks.
inline Bytes deflate_stored(const Bytes& data) {
  Bytes out;
  std::size_t pos = 0;
  do {
    const std::size_t n = std::min<std::size_t>(data.size() - pos, 65535);
    const bool last = pos + n == data.size();
    out.push_back(last ? 1 : 0);  // BFINAL, BTYPE = 00
    out.push_back(static_cast<unsigned char>(n & 0xff));
    out.push_back(static_cast<unsigned char>(n >> 8));
    out.push_back(static_cast<unsigned char>(~n & 0xff));
    out.push_back(static_cast<unsigned char>((~n >> 8) & 0xff));
    out.insert(out.end(), data.begin() + static_cast<std::ptrdiff_t>(pos),
               data.begin() + static_cast<std::ptrdiff_t>(pos + n));
    pos += n;
  } while (pos < data.size());
  return out;
}

inline Bytes gzip_stored(const Bytes& data) {
  Bytes out = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff};
  const Bytes body = deflate_stored(data);
  out.insert(out.end(), body.begin(), body.end());
  put_le32(out, crc32_of(data));
  put_le32(out, static_cast<uint32_t>(data.size()));
  return out;
}

inline Bytes zlib_stored(const Bytes& data) {
  Bytes out = {0x78, 0x01};
  const Bytes body = deflate_stored(data);
  out.insert(out.end(), body.begin(), body.end());
  uint32_t a = 1, b = 0;
  for (unsigned char c : data) {
    a = (a + c) % 65521;
    b = (b + a) % 65521;
  }
  put_be32(out, (b << 16) | a);
  return out;
}

inline void png_chunk(Bytes& png, const char* type, const Bytes& data) {
  put_be32(png, static_cast<uint32_t>(data.size()));
  const std::size_t start = png.size();
  png.insert(png.end(), type, type + 4);
  png.insert(png.end(), data.begin(), data.end());
  put_be32(png, crc32_of(png, start));
}

// PNG signature and IHDR only; color_type 0 gray, 2 RGB, 4 gray+alpha, 6 RGBA.
inline Bytes png_header(uint32_t width, uint32_t height, int bit_depth, int color_type) {
  Bytes png = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  Bytes ihdr;
  put_be32(ihdr, width);
  put_be32(ihdr, height);
  ihdr.push_back(static_cast<unsigned char>(bit_depth));
  ihdr.push_back(static_cast<unsigned char>(color_type));
  ihdr.push_back(0);
  ihdr.push_back(0);
  ihdr.push_back(0);
  png_chunk(png, "IHDR", ihdr);
  return png;
}

// A 16-bit PNG; `samples` holds width * height * channels values, row-major, interleaved.
inline Bytes png16(int width, int height, int channels, const std::vector<uint16_t>& samples) {
  const int color_type = channels == 1 ? 0 : channels == 2 ? 4 : channels == 3 ? 2 : 6;
  Bytes png =
      png_header(static_cast<uint32_t>(width), static_cast<uint32_t>(height), 16, color_type);
  Bytes raw;
  std::size_t i = 0;
  for (int y = 0; y < height; ++y) {
    raw.push_back(0);  // filter: none
    for (int k = 0; k < width * channels; ++k, ++i) {
      raw.push_back(static_cast<unsigned char>(samples[i] >> 8));
      raw.push_back(static_cast<unsigned char>(samples[i] & 0xff));
    }
  }
  png_chunk(png, "IDAT", zlib_stored(raw));
  png_chunk(png, "IEND", {});
  return png;
}

}  // namespace imgsim::testing
