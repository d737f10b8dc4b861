// ImageFolderDataset (include/imgsim/data/image_folder.hpp).
#include "imgsim/data/image_folder.hpp"

#include <algorithm>
#include <array>
#include <filesystem>
#include <string_view>
#include <system_error>

#include "imgsim/error.hpp"

namespace imgsim::data {

namespace fs = std::filesystem;

namespace {

bool hidden(const fs::path& p) {
  const std::string name = p.filename().string();
  return !name.empty() && name[0] == '.';
}

void check_options(const ImageFolderOptions& o) {
  if (o.width < 1 || o.height < 1 || o.width > image::kMaxImageSide ||
      o.height > image::kMaxImageSide)
    throw InvalidArgument("ImageFolderDataset: size " + std::to_string(o.width) + " x " +
                          std::to_string(o.height) + " out of range [1, " +
                          std::to_string(image::kMaxImageSide) + "]");
  if (o.channels != 1 && o.channels != 3 && o.channels != 4)
    throw InvalidArgument("ImageFolderDataset: channels must be 1, 3 or 4, got " +
                          std::to_string(o.channels));
  if (o.max_pixels < 1)
    throw InvalidArgument("ImageFolderDataset: max_pixels must be positive, got " +
                          std::to_string(o.max_pixels));
}

}  // namespace

bool ImageFolderDataset::is_image_extension(const std::string& path) {
  static constexpr std::array<std::string_view, 11> kExtensions = {
      ".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tga", ".psd", ".hdr", ".pnm", ".ppm", ".pgm"};
  std::string ext = fs::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) {
    return static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  });
  return std::find(kExtensions.begin(), kExtensions.end(), ext) != kExtensions.end();
}

ImageFolderDataset::ImageFolderDataset(const std::string& root, const ImageFolderOptions& options)
    : root_(root), options_(options) {
  check_options(options_);
  std::error_code ec;
  const fs::file_status st = fs::status(root_, ec);
  if (!fs::exists(st))
    throw IoError("ImageFolderDataset: " + root_ + " does not exist" +
                  (ec && ec != std::errc::no_such_file_or_directory ? " (" + ec.message() + ")"
                                                                    : std::string()));
  if (!fs::is_directory(st))
    throw InvalidArgument("ImageFolderDataset: " + root_ + " is not a folder");

  for (fs::directory_iterator it(root_, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code dir_ec;
    if (!hidden(it->path()) && it->is_directory(dir_ec))
      classes_.push_back(it->path().filename().string());
  }
  if (ec) throw IoError("ImageFolderDataset: cannot list " + root_ + ": " + ec.message());
  if (classes_.empty())
    throw InvalidArgument("ImageFolderDataset: " + root_ +
                          " has no class sub-folders (expected root/<class>/<image files>)");
  std::sort(classes_.begin(), classes_.end());

  for (std::size_t label = 0; label < classes_.size(); ++label) {
    std::vector<std::string> files;
    const fs::path dir = fs::path(root_) / classes_[label];
    fs::recursive_directory_iterator it(dir, fs::directory_options::skip_permission_denied, ec);
    for (const fs::recursive_directory_iterator end; !ec && it != end; it.increment(ec)) {
      std::error_code entry_ec;
      if (hidden(it->path())) {
        if (it->is_directory(entry_ec)) it.disable_recursion_pending();
        continue;
      }
      if (it->is_regular_file(entry_ec) && is_image_extension(it->path().string()))
        files.push_back(it->path().string());
    }
    if (ec) {
      skipped_.push_back({dir.string(), "cannot list folder: " + ec.message()});
      ec.clear();
    }
    std::sort(files.begin(), files.end());
    for (std::string& f : files) {
      try {
        const image::ImageInfo info = image::probe_image(f);
        const int64_t pixels = int64_t{info.width} * info.height;
        if (pixels > options_.max_pixels) {
          skipped_.push_back(
              {f, std::to_string(info.width) + " x " + std::to_string(info.height) +
                      " pixels exceed max_pixels = " + std::to_string(options_.max_pixels)});
          continue;
        }
      } catch (const FormatError& e) {
        skipped_.push_back({f, e.what()});
        continue;
      } catch (const IoError& e) {
        skipped_.push_back({f, e.what()});
        continue;
      }
      samples_.push_back({std::move(f), static_cast<int>(label)});
    }
  }
  if (samples_.empty())
    throw InvalidArgument("ImageFolderDataset: no usable image files under " + root_ + " (" +
                          std::to_string(classes_.size()) + " class folders, " +
                          std::to_string(skipped_.size()) + " files skipped)");
  failed_.assign(samples_.size(), false);
}

Shape ImageFolderDataset::input_shape() const {
  return Shape{options_.channels, options_.height, options_.width};
}

Shape ImageFolderDataset::target_shape() const {
  return Shape{1};
}

void ImageFolderDataset::check_index(int64_t i, const char* what) const {
  if (i < 0 || i >= size())
    throw InvalidArgument(std::string("ImageFolderDataset::") + what + ": index " +
                          std::to_string(i) + " out of [0, " + std::to_string(size()) + ")");
}

const std::string& ImageFolderDataset::path(int64_t i) const {
  check_index(i, "path");
  return samples_[static_cast<std::size_t>(i)].path;
}

int ImageFolderDataset::class_index(int64_t i) const {
  check_index(i, "class_index");
  return samples_[static_cast<std::size_t>(i)].label;
}

std::vector<int64_t> ImageFolderDataset::class_counts() const {
  std::vector<int64_t> counts(classes_.size(), 0);
  for (const Sample& s : samples_) ++counts[static_cast<std::size_t>(s.label)];
  return counts;
}

void ImageFolderDataset::decode(std::size_t k, float* dst) {
  if (!failed_[k]) {
    const Sample& s = samples_[k];
    std::string reason;
    try {
      image::load_image_into(s.path, decoded_, file_buffer_,
                             {.channels = options_.channels, .max_pixels = options_.max_pixels});
      const image::Image* img = &decoded_;
      if (decoded_.width() != options_.width || decoded_.height() != options_.height) {
        if (options_.center_crop)
          image::resize_center_crop_into(decoded_, resized_, options_.width, options_.height,
                                         options_.filter);
        else
          image::resize_into(decoded_, resized_, options_.width, options_.height, options_.filter);
        img = &resized_;
      }
      image::to_tensor_into(*img, options_.channels, dst);
      return;
    } catch (const FormatError& e) {
      if (options_.strict) throw;
      reason = e.what();
    } catch (const IoError& e) {
      if (options_.strict) throw;
      reason = e.what();
    }
    failed_[k] = true;
    skipped_.push_back({s.path, std::move(reason)});
  }
  std::fill(dst, dst + input_shape().numel(), 0.0f);
}

void ImageFolderDataset::get(std::span<const int64_t> indices, Tensor& x, Tensor& y) {
  const auto n = static_cast<int64_t>(indices.size());
  for (int64_t k : indices) check_index(k, "get");
  x.resize(input_shape().with_batch(n));
  y.resize(target_shape().with_batch(n));
  const int64_t per = input_shape().numel();
  for (int64_t i = 0; i < n; ++i) {
    const auto k = static_cast<std::size_t>(indices[static_cast<std::size_t>(i)]);
    decode(k, x.data() + i * per);
    y[i] = static_cast<float>(samples_[k].label);
  }
}

}  // namespace imgsim::data
