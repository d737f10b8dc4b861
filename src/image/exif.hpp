// EXIF orientation of JPEG files (include/imgsim/image/image.hpp, docs/augmentation.md).
//
// Private helpers shared by the decoder (image.cpp), which writes decoded pixels straight to
// their upright place, and apply_orientation.
#pragma once

#include <cstddef>
#include <cstdint>

namespace imgsim::image::detail {

// The Orientation tag (0x0112) of the first EXIF APP1 segment of JPEG data, or 1 when the data
// is not a JPEG, has no EXIF block, or the block is malformed or holds a value outside 1..8.
// Reads only inside [data, data + size).
int jpeg_exif_orientation(const unsigned char* data, std::size_t size);

// Where stored pixel (x, y) of a width x height image goes in the upright image: pixel index
// base + x * step_x + y * step_y (in pixels, row-major). The upright image is height x width
// for orientations 5..8.
struct OrientationMap {
  int64_t base = 0;
  int64_t step_x = 1;
  int64_t step_y = 0;
  bool swaps_sides = false;
};
OrientationMap orientation_map(int orientation, int width, int height);

}  // namespace imgsim::image::detail
