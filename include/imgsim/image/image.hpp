// Image: decoded pixels, and the operations between an image file and a network input
// (docs/data.md, "Images").
//
// An Image owns its pixels as float32 in [0, 1], interleaved (x fastest, then channel order
// within a pixel: HWC), rows top to bottom. It has 1 (gray), 3 (RGB) or 4 (RGBA, straight, not
// premultiplied alpha) channels. Floats rather than bytes so 8- and 16-bit files decode without
// loss and later processing (resizing, augmentation) does not round at every step; the cost is
// 4 bytes per value, which the pixel limit below keeps bounded.
//
// Decoding uses stb_image (PNG, JPEG, BMP, GIF first frame, TGA, PSD, HDR tone-mapped to 8 bit,
// PNM). Before anything is decoded the header is read and the image refused with FormatError
// if it has more than LoadOptions::max_pixels pixels or a side longer than kMaxImageSide, so a
// small file claiming a huge image (a "decompression bomb") costs no memory. Undecodable data
// throws FormatError naming the file and stb_image's reason; a missing or unreadable file throws
// IoError.
//
// The `*_into` variants write into an existing Image and reuse its storage, so a loop decoding
// images of similar size stops allocating after the first (stb_image's own decode buffer aside).
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "imgsim/tensor.hpp"

namespace imgsim::image {

// Default LoadOptions::max_pixels: 64 Mi pixels (8192 x 8192); an RGBA image that size takes
// 1 GiB as floats.
inline constexpr int64_t kDefaultMaxPixels = int64_t{1} << 26;
// Longest side any image may have (decoding or constructing).
inline constexpr int kMaxImageSide = 1 << 16;

class Image {
 public:
  // An empty image: 0 x 0, 0 channels.
  Image() = default;
  // width x height x channels, zero-filled. Throws InvalidArgument unless 1 <= width, height
  // <= kMaxImageSide and channels is 1, 3 or 4.
  Image(int width, int height, int channels, float fill = 0.0f);

  int width() const { return width_; }
  int height() const { return height_; }
  int channels() const { return channels_; }
  bool empty() const { return pixels_.empty(); }
  int64_t pixel_count() const { return int64_t{width_} * height_; }
  // Number of floats: width * height * channels.
  int64_t size() const { return static_cast<int64_t>(pixels_.size()); }

  float* data() { return pixels_.data(); }
  const float* data() const { return pixels_.data(); }
  float* row(int y) { return pixels_.data() + static_cast<std::size_t>(y) * row_stride(); }
  const float* row(int y) const {
    return pixels_.data() + static_cast<std::size_t>(y) * row_stride();
  }
  // Channel c of pixel (x, y); no bounds check.
  float& at(int x, int y, int c) { return row(y)[static_cast<std::size_t>(x) * channels_ + c]; }
  float at(int x, int y, int c) const {
    return row(y)[static_cast<std::size_t>(x) * channels_ + c];
  }

  // Changes the dimensions keeping the storage when it is large enough; the contents are then
  // unspecified. Same argument checks as the constructor.
  void reset(int width, int height, int channels);

 private:
  std::size_t row_stride() const { return static_cast<std::size_t>(width_) * channels_; }

  int width_ = 0;
  int height_ = 0;
  int channels_ = 0;
  std::vector<float> pixels_;
};

struct LoadOptions {
  // 0 keeps the file's layout (gray -> 1, gray+alpha -> 4, RGB -> 3, RGBA -> 4); 1, 3 or 4
  // converts (RGB -> gray uses stb_image's luma weights; dropping alpha discards it).
  int channels = 0;
  // Images with more pixels are refused with FormatError before decoding.
  int64_t max_pixels = kDefaultMaxPixels;
  // JPEG only: turn the pixels upright as the EXIF Orientation tag says (values 2..8 mirror
  // and/or rotate; 5..8 swap width and height). A missing or malformed EXIF block is ignored.
  bool apply_exif_orientation = true;
};

// What an image file's header says, read without decoding the pixels.
struct ImageInfo {
  int width = 0;
  int height = 0;
  int channels = 0;  // as stored: 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA
  bool sixteen_bit = false;
};

// Reads a prefix of the file (4 KiB, more only when the header lies further in, as a JPEG's
// frame header can after large metadata). FormatError if stb_image does not recognise it,
// IoError if it cannot be opened.
ImageInfo probe_image(const std::string& path);
ImageInfo probe_image_from_memory(std::span<const unsigned char> bytes,
                                  const std::string& name = "<memory>");

Image load_image(const std::string& path, const LoadOptions& options = {});
// `name` only labels error messages.
Image load_image_from_memory(std::span<const unsigned char> bytes, const LoadOptions& options = {},
                             const std::string& name = "<memory>");
// Reusing variants: `file_buffer` receives the file's bytes and `out` the pixels, both keeping
// their storage between calls.
void load_image_into(const std::string& path, Image& out, std::vector<unsigned char>& file_buffer,
                     const LoadOptions& options = {});
void load_image_from_memory_into(std::span<const unsigned char> bytes, Image& out,
                                 const LoadOptions& options = {},
                                 const std::string& name = "<memory>");
// Reads a whole file into `out` (resized to fit). IoError on failure.
void read_file(const std::string& path, std::vector<unsigned char>& out);

// EXIF orientation (docs/augmentation.md): the Orientation tag (1..8) of the first EXIF APP1
// segment of JPEG data; 1 when the data is not a JPEG or the tag is absent, malformed or out of
// range. Never reads outside `bytes`. probe_image reports the stored (not upright) size.
int read_exif_orientation(std::span<const unsigned char> bytes);
// Turns stored pixels upright for an EXIF orientation: 1 as is, 2 mirror left-right, 3 rotate
// 180, 4 mirror top-bottom, 5 transpose, 6 rotate 90 clockwise, 7 transverse, 8 rotate 90
// counter-clockwise. InvalidArgument for other values or an empty image.
Image apply_orientation(const Image& src, int orientation);
void apply_orientation_into(const Image& src, Image& dst, int orientation);

// Resampling filter. `automatic` picks, per axis, `box` (the average of the covered source
// area) when shrinking and `bilinear` otherwise. `bicubic` is Catmull-Rom and `mitchell` the
// Mitchell-Netravali cubic; results are clamped to [0, 1].
enum class ResizeFilter { automatic, box, bilinear, bicubic, mitchell };

// Scales to width x height (aspect ratio not kept). Alpha is handled as straight alpha:
// colours are weighted by it. InvalidArgument for an empty source or sizes out of range.
Image resize(const Image& src, int width, int height,
             ResizeFilter filter = ResizeFilter::automatic);
void resize_into(const Image& src, Image& dst, int width, int height,
                 ResizeFilter filter = ResizeFilter::automatic);
// Scales so the image covers width x height keeping its aspect ratio, then cuts the centre:
// one resampling pass over the centred source region with the target's aspect ratio.
Image resize_center_crop(const Image& src, int width, int height,
                         ResizeFilter filter = ResizeFilter::automatic);
void resize_center_crop_into(const Image& src, Image& dst, int width, int height,
                             ResizeFilter filter = ResizeFilter::automatic);

// The width x height rectangle whose top-left pixel is (x, y); it must lie inside the image
// (InvalidArgument otherwise).
Image crop(const Image& src, int x, int y, int width, int height);
// The centred width x height rectangle (left/top get the smaller half of an odd margin).
Image center_crop(const Image& src, int width, int height);

// Converts between 1, 3 and 4 channels: gray -> RGB replicates, RGB -> gray takes the BT.601
// luma 0.299 R + 0.587 G + 0.114 B, RGBA -> RGB drops alpha, adding alpha sets it to 1.
Image convert_channels(const Image& src, int channels);

// (C, H, W) floats in [0, 1], C = `channels` (0: the image's own), converted as in
// convert_channels.
Tensor to_tensor(const Image& img, int channels = 0);
// Same into caller storage: writes channels * height * width floats at `dst`.
void to_tensor_into(const Image& img, int channels, float* dst);

// (x - mean[c]) / stddev[c] in place for a (C, H, W) or (N, C, H, W) tensor. mean and stddev
// need C entries and stddev must be positive (InvalidArgument otherwise).
void normalize(Tensor& t, std::span<const float> mean, std::span<const float> stddev);
// The usual ImageNet RGB statistics.
inline constexpr std::array<float, 3> kImageNetMean = {0.485f, 0.456f, 0.406f};
inline constexpr std::array<float, 3> kImageNetStd = {0.229f, 0.224f, 0.225f};

// Encoded files are 8-bit: values are clamped to [0, 1] and rounded to 1/255.
enum class ImageFormat { png, jpg, bmp };
// `quality` (1..100) only matters for JPEG. stb_image_write's JPEGs are always 3-component
// YCbCr: gray is stored as RGB and alpha is dropped.
std::vector<unsigned char> encode_image(const Image& img, ImageFormat format, int quality = 90);
// Encodes, writes to a temporary file next to `path` and renames it into place, so `path` is
// either the old file or the complete new one. IoError on failure (the temporary is removed).
void save_image(const std::string& path, const Image& img, ImageFormat format, int quality = 90);
void save_png(const std::string& path, const Image& img);
void save_jpg(const std::string& path, const Image& img, int quality = 90);
void save_bmp(const std::string& path, const Image& img);

}  // namespace imgsim::image
