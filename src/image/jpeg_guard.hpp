// Pre-check of JPEG Huffman tables before stb_image sees them.
//
// stb_image 2.27 (Debian 12's libstb-dev) copies a DHT table's code lengths into fixed arrays of
// 257 entries without checking that the 16 counts add up to at most 256, so a corrupt or hostile
// JPEG writes past those arrays (upstream nothings/stb issues #1289 and #1291). This walker
// follows the marker segments the way stb_image's decoder does and reports such a table first.
// It is deliberately at least as thorough as stb: it also checks tables stb would not reach.
#pragma once

#include <cstddef>
#include <string>

namespace imgsim::image::detail {

enum class JpegVerdict {
  not_jpeg,   // does not start like a JPEG (stb_image will not use its JPEG decoder)
  ok,         // every DHT segment stb_image could process is within bounds
  need_more,  // header_only: the data ended before the end of the frame header (SOF)
  unsafe,     // a Huffman table declares more than 256 codes
};

struct JpegCheck {
  JpegVerdict verdict = JpegVerdict::not_jpeg;
  std::string problem;  // for `unsafe`: what and where
};

// header_only: stop at the frame header, as stbi_info does; otherwise walk to the end (EOI).
JpegCheck check_jpeg_tables(const unsigned char* data, std::size_t size, bool header_only);

}  // namespace imgsim::image::detail
