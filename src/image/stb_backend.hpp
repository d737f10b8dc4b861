// Private bridge to stb_image, stb_image_resize and stb_image_write, compiled with static
// linkage in stb_impl.cpp so their symbols neither leak from libimgsim nor clash with another
// copy of stb in the same program. Nothing here throws; failures return false / nullptr with
// stb_reason() saying why.
#pragma once

#include <vector>

namespace imgsim::image::detail {

struct StbHeader {
  int width = 0;
  int height = 0;
  int channels = 0;
  bool sixteen_bit = false;
};

bool stb_probe(const unsigned char* data, int len, StbHeader& header);

// Decoded pixels (8- or 16-bit interleaved samples, `channels` per pixel) or nullptr.
// Release with stb_release.
void* stb_decode(const unsigned char* data, int len, bool sixteen_bit, int channels, int* width,
                 int* height);
void stb_release(void* pixels);
// stb_image's reason for the last failure on this thread.
const char* stb_reason();

// Filters as stb_image_resize numbers them.
enum class StbFilter { box = 1, triangle = 2, catmull_rom = 4, mitchell = 5 };

// Resamples the region [s0, s1] x [t0, t1] (fractions of the source) of a float image to
// out_w x out_h; `alpha_channel` is -1 for none. Working memory is a per-thread buffer reused
// between calls.
bool stb_resize_region(const float* in, int in_w, int in_h, float* out, int out_w, int out_h,
                       int channels, int alpha_channel, StbFilter filter_x, StbFilter filter_y,
                       float s0, float t0, float s1, float t1);

enum class StbFormat { png, jpg, bmp };
// Appends the encoded file to `out`.
bool stb_encode(StbFormat format, int width, int height, int channels, const unsigned char* pixels,
                int quality, std::vector<unsigned char>& out);

}  // namespace imgsim::image::detail
