// The JPEG marker walker that protects stb_image from oversized Huffman tables
// (src/image/jpeg_guard.hpp, a private header).
#include <catch2/catch.hpp>

#include <vector>

#include "image/jpeg_guard.hpp"

using imgsim::image::detail::check_jpeg_tables;
using imgsim::image::detail::JpegVerdict;
using Bytes = std::vector<unsigned char>;

namespace {

JpegVerdict verdict(const Bytes& b, bool header_only) {
  return check_jpeg_tables(b.data(), b.size(), header_only).verdict;
}

// A DHT segment with one table whose 16 counts are all `count` (values zero).
Bytes dht(unsigned count) {
  const unsigned n = 16 * count;
  const unsigned len = 2 + 17 + n;
  Bytes b = {0xff, 0xc4, static_cast<unsigned char>(len >> 8),
             static_cast<unsigned char>(len & 0xff), 0x00};
  for (int i = 0; i < 16; ++i) b.push_back(static_cast<unsigned char>(count));
  b.insert(b.end(), n, 0);
  return b;
}

Bytes cat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const Bytes& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

const Bytes kSoi = {0xff, 0xd8};
const Bytes kSof = {0xff, 0xc0, 0x00, 0x0b, 8, 0, 1, 0, 1, 1, 1, 0x11, 0};
const Bytes kSos = {0xff, 0xda, 0x00, 0x08, 1, 1, 0, 0, 63, 0};
const Bytes kEoi = {0xff, 0xd9};

}  // namespace

TEST_CASE("JPEG guard passes well-formed streams and non-JPEG data", "[jpeg_guard]") {
  CHECK(verdict({0x89, 'P', 'N', 'G'}, false) == JpegVerdict::not_jpeg);
  CHECK(verdict({}, false) == JpegVerdict::not_jpeg);
  CHECK(verdict({0xff, 0xff, 0xd8}, false) == JpegVerdict::ok);  // fill bytes before SOI
  const Bytes ok = cat({kSoi, dht(16), kSof, kSos, {1, 2, 0xff, 0x00, 3, 0xff, 0xd0, 4}, kEoi});
  CHECK(verdict(ok, false) == JpegVerdict::ok);
  CHECK(verdict(ok, true) == JpegVerdict::ok);
}

TEST_CASE("JPEG guard finds oversized tables where stb_image would read them", "[jpeg_guard]") {
  // Before the frame header: found in both modes.
  const Bytes early = cat({kSoi, dht(17), kSof, kSos, kEoi});
  CHECK(verdict(early, true) == JpegVerdict::unsafe);
  CHECK(verdict(early, false) == JpegVerdict::unsafe);
  CHECK(check_jpeg_tables(early.data(), early.size(), true).problem.find("272 codes") !=
        std::string::npos);
  // Between scans (progressive JPEGs): only the full walk reaches it.
  const Bytes late = cat({kSoi, kSof, kSos, {5, 0xff, 0x00, 6}, dht(20), kSos, {7}, kEoi});
  CHECK(verdict(late, true) == JpegVerdict::ok);
  CHECK(verdict(late, false) == JpegVerdict::unsafe);
  // Padding between header segments is skipped, as stb_image does.
  const Bytes padded = cat({kSoi, {0, 0, 0}, dht(30), kSof, kEoi});
  CHECK(verdict(padded, false) == JpegVerdict::unsafe);
}

TEST_CASE("JPEG guard ignores lookalikes inside segments and reports short headers",
          "[jpeg_guard]") {
  // A DHT lookalike inside a comment is payload, not a marker.
  Bytes com = {0xff, 0xfe, 0x00, 0x18};
  const Bytes fake = dht(0);
  Bytes fake_big = fake;  // 0xff 0xc4, length, class/id, 16 counts: 21 bytes
  REQUIRE(fake_big.size() == 21);
  for (std::size_t i = 5; i < 21; ++i) fake_big[i] = 0x40;
  fake_big.push_back(0);
  com.insert(com.end(), fake_big.begin(), fake_big.end());
  REQUIRE(com.size() == 2 + 0x18);
  CHECK(verdict(cat({kSoi, com, kSof, kEoi}), false) == JpegVerdict::ok);
  // The data ends inside a segment before the frame header.
  const Bytes cut = cat({kSoi, {0xff, 0xe1, 0x10, 0x00, 1, 2, 3}});
  CHECK(verdict(cut, true) == JpegVerdict::need_more);
  CHECK(verdict(cut, false) == JpegVerdict::ok);
  const Bytes sof_cut = cat({kSoi, Bytes(kSof.begin(), kSof.begin() + 8)});
  CHECK(verdict(sof_cut, true) == JpegVerdict::need_more);
  CHECK(verdict(cat({kSoi, kSof}), true) == JpegVerdict::ok);
  // Counts cut off by the end of the data read as zero, as stb_image reads them.
  const Bytes tail = cat({kSoi, {0xff, 0xc4, 0x01, 0x00, 0x00, 200, 200}});
  CHECK(verdict(tail, false) == JpegVerdict::unsafe);
  const Bytes tail_ok = cat({kSoi, {0xff, 0xc4, 0x01, 0x00, 0x00, 200, 50}});
  CHECK(verdict(tail_ok, false) == JpegVerdict::ok);
}
