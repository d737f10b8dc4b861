// The one translation unit that compiles stb_image, stb_image_resize and stb_image_write (the
// Debian libstb-dev headers), with static linkage, behind the bridge in stb_backend.hpp.
#include "image/stb_backend.hpp"

#include <cstddef>
#include <new>

#include "imgsim/image/image.hpp"

namespace {

// stb_image_resize asks for one block of working memory per call; a per-thread buffer serves
// it so repeated resizes do not allocate. It grows with the image widths, not with the areas.
void* stbir_scratch(std::size_t size) noexcept {
  thread_local std::vector<unsigned char> buffer;
  try {
    if (buffer.size() < size) buffer.resize(size);
  } catch (const std::bad_alloc&) {
    return nullptr;
  }
  return buffer.data();
}

}  // namespace

#define STBI_MAX_DIMENSIONS (imgsim::image::kMaxImageSide)
#define STBI_NO_STDIO  // imgsim reads files itself; only the memory decoders are needed
#define STBI_WRITE_NO_STDIO
#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STB_IMAGE_RESIZE_STATIC
#define STB_IMAGE_RESIZE_IMPLEMENTATION
#define STBIR_MALLOC(size, context) ((void)(context), stbir_scratch(size))
#define STBIR_FREE(ptr, context) ((void)(context), (void)(ptr))

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpedantic"
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wcast-align"
#pragma GCC diagnostic ignored "-Wnull-dereference"
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wunused-but-set-variable"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#pragma GCC diagnostic ignored "-Wtype-limits"
#pragma GCC diagnostic ignored "-Wdouble-promotion"
#pragma GCC diagnostic ignored "-Wconversion"
#ifndef __clang__
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // (GCC only; Clang has no such group)
#endif
#include <stb_image.h>
#include <stb_image_resize.h>
#include <stb_image_write.h>
#pragma GCC diagnostic pop

namespace imgsim::image::detail {

bool stb_probe(const unsigned char* data, int len, StbHeader& header) {
  if (!stbi_info_from_memory(data, len, &header.width, &header.height, &header.channels))
    return false;
  header.sixteen_bit = stbi_is_16_bit_from_memory(data, len) != 0;
  return true;
}

void* stb_decode(const unsigned char* data, int len, bool sixteen_bit, int channels, int* width,
                 int* height) {
  int stored = 0;
  if (sixteen_bit) return stbi_load_16_from_memory(data, len, width, height, &stored, channels);
  return stbi_load_from_memory(data, len, width, height, &stored, channels);
}

void stb_release(void* pixels) {
  stbi_image_free(pixels);
}

const char* stb_reason() {
  const char* r = stbi_failure_reason();
  return r ? r : "unknown error";
}

bool stb_resize_region(const float* in, int in_w, int in_h, float* out, int out_w, int out_h,
                       int channels, int alpha_channel, StbFilter filter_x, StbFilter filter_y,
                       float s0, float t0, float s1, float t1) {
  return stbir_resize_region(in, in_w, in_h, 0, out, out_w, out_h, 0, STBIR_TYPE_FLOAT, channels,
                             alpha_channel, 0, STBIR_EDGE_CLAMP, STBIR_EDGE_CLAMP,
                             static_cast<stbir_filter>(filter_x),
                             static_cast<stbir_filter>(filter_y), STBIR_COLORSPACE_LINEAR, nullptr,
                             s0, t0, s1, t1) != 0;
}

namespace {

struct Sink {
  std::vector<unsigned char>* out;
  bool failed = false;
};

// Called by the stb writers, which cannot handle exceptions: records failure instead.
void append_bytes(void* context, void* data, int size) noexcept {
  auto* sink = static_cast<Sink*>(context);
  if (sink->failed) return;
  const auto* p = static_cast<const unsigned char*>(data);
  try {
    sink->out->insert(sink->out->end(), p, p + size);
  } catch (const std::bad_alloc&) {
    sink->failed = true;
  }
}

}  // namespace

bool stb_encode(StbFormat format, int width, int height, int channels, const unsigned char* pixels,
                int quality, std::vector<unsigned char>& out) {
  Sink sink{&out};
  int ok = 0;
  switch (format) {
    case StbFormat::png:
      ok = stbi_write_png_to_func(append_bytes, &sink, width, height, channels, pixels,
                                  width * channels);
      break;
    case StbFormat::jpg:
      ok = stbi_write_jpg_to_func(append_bytes, &sink, width, height, channels, pixels, quality);
      break;
    case StbFormat::bmp:
      ok = stbi_write_bmp_to_func(append_bytes, &sink, width, height, channels, pixels);
      break;
  }
  return ok != 0 && !sink.failed;
}

}  // namespace imgsim::image::detail
