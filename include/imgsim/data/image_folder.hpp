// ImageFolderDataset: labelled images laid out as one sub-folder per class
// (docs/data.md, "Image folders").
//
//   root/cat/0001.jpg           class names: the sub-folders of root, sorted by byte value;
//   root/cat/more/0002.png      class index: position in that list; files are found at any
//   root/dog/a.jpeg             depth below their class folder and sorted by path.
//
// Files are recognised by extension, case-insensitively: jpg jpeg png bmp gif tga psd hdr pnm
// ppm pgm. Names starting with '.' (hidden files and folders) are ignored, as are files in
// root itself. The constructor reads only each file's header (probe_image): files stb_image
// does not recognise, that cannot be opened or that exceed max_pixels are left out and listed
// in skipped() with the reason, so one bad file never stops a run.
//
// get() decodes lazily: read the file, decode to `channels`, resample to height x width and
// write (C, H, W) floats in [0, 1] into the batch; the target is the class index, shape (1).
// The file buffer and the decoded and resized images are members reused across calls. A file whose
// header was fine but whose data is not (e.g. cut short) becomes an all-zero sample and is appended
// to skipped() (once; later get()s return zeros without retrying), unless `strict` is set, in which
// case get() throws the FormatError or IoError. Not thread-safe: use one dataset object per thread.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "imgsim/data/dataset.hpp"
#include "imgsim/image/image.hpp"

namespace imgsim::data {

struct ImageFolderOptions {
  int width = 64;
  int height = 64;
  int channels = 3;  // 1, 3 or 4
  // false: stretch to width x height; true: keep the aspect ratio and cut the centre.
  bool center_crop = false;
  image::ResizeFilter filter = image::ResizeFilter::automatic;
  // Files with more pixels are skipped (see image::LoadOptions::max_pixels).
  int64_t max_pixels = image::kDefaultMaxPixels;
  // Throw from get() instead of substituting zeros for a file that fails to decode.
  bool strict = false;
};

struct SkippedFile {
  std::string path;
  std::string reason;
};

class ImageFolderDataset : public Dataset {
 public:
  // Throws IoError if `root` does not exist, InvalidArgument if it is not a folder, has no
  // class sub-folders or no usable image, or if the options are out of range.
  explicit ImageFolderDataset(const std::string& root, const ImageFolderOptions& options = {});

  int64_t size() const override { return static_cast<int64_t>(samples_.size()); }
  Shape input_shape() const override;
  Shape target_shape() const override;
  void get(std::span<const int64_t> indices, Tensor& x, Tensor& y) override;

  const std::string& root() const { return root_; }
  const std::vector<std::string>& class_names() const { return classes_; }
  // Path and class index of sample i (InvalidArgument if out of range).
  const std::string& path(int64_t i) const;
  int class_index(int64_t i) const;
  // Number of samples of each class.
  std::vector<int64_t> class_counts() const;
  // Files left out by the constructor, then files that failed in get(), in order.
  const std::vector<SkippedFile>& skipped() const { return skipped_; }
  const ImageFolderOptions& options() const { return options_; }

  // True for the extensions listed above, in any case.
  static bool is_image_extension(const std::string& path);

 private:
  struct Sample {
    std::string path;
    int label;
  };
  void check_index(int64_t i, const char* what) const;
  // Decodes sample k into dst (C * H * W floats); zeros if it cannot.
  void decode(std::size_t k, float* dst);

  std::string root_;
  ImageFolderOptions options_;
  std::vector<std::string> classes_;
  std::vector<Sample> samples_;
  std::vector<SkippedFile> skipped_;
  std::vector<bool> failed_;  // samples that failed in get(), zero-filled from then on
  // Reused by get().
  std::vector<unsigned char> file_buffer_;
  image::Image decoded_;
  image::Image resized_;
};

}  // namespace imgsim::data
