// AugmentedImageDataset (include/imgsim/data/augmented.hpp).
#include "imgsim/data/augmented.hpp"

#include <algorithm>
#include <utility>

#include "imgsim/error.hpp"

namespace imgsim::data {

namespace {

void check_options(const AugmentedImageOptions& o) {
  if (o.width < 1 || o.height < 1 || o.width > image::kMaxImageSide ||
      o.height > image::kMaxImageSide)
    throw InvalidArgument("AugmentedImageDataset: size " + std::to_string(o.width) + " x " +
                          std::to_string(o.height) + " out of range [1, " +
                          std::to_string(image::kMaxImageSide) + "]");
  if (o.channels != 1 && o.channels != 3 && o.channels != 4)
    throw InvalidArgument("AugmentedImageDataset: channels must be 1, 3 or 4, got " +
                          std::to_string(o.channels));
  if (o.cache_max_side < 0)
    throw InvalidArgument("AugmentedImageDataset: cache_max_side must be >= 0, got " +
                          std::to_string(o.cache_max_side));
  if (o.max_pixels < 1)
    throw InvalidArgument("AugmentedImageDataset: max_pixels must be positive, got " +
                          std::to_string(o.max_pixels));
}

std::vector<std::string> folder_paths(const ImageFolderDataset& folder) {
  std::vector<std::string> paths;
  paths.reserve(static_cast<std::size_t>(folder.size()));
  for (int64_t i = 0; i < folder.size(); ++i) paths.push_back(folder.path(i));
  return paths;
}

std::vector<int> folder_labels(const ImageFolderDataset& folder) {
  std::vector<int> labels;
  labels.reserve(static_cast<std::size_t>(folder.size()));
  for (int64_t i = 0; i < folder.size(); ++i) labels.push_back(folder.class_index(i));
  return labels;
}

}  // namespace

AugmentedImageDataset::AugmentedImageDataset(std::vector<std::string> paths,
                                             std::vector<int> labels, image::Augmenter augmenter,
                                             const AugmentedImageOptions& options)
    : paths_(std::move(paths)),
      labels_(std::move(labels)),
      augmenter_(std::move(augmenter)),
      options_(options) {
  check_options(options_);
  if (paths_.empty()) throw InvalidArgument("AugmentedImageDataset: no image paths");
  if (labels_.empty()) labels_.assign(paths_.size(), 0);
  if (labels_.size() != paths_.size())
    throw InvalidArgument("AugmentedImageDataset: " + std::to_string(paths_.size()) +
                          " paths but " + std::to_string(labels_.size()) + " labels");
  for (std::size_t i = 0; i < labels_.size(); ++i)
    if (labels_[i] < 0)
      throw InvalidArgument("AugmentedImageDataset: label " + std::to_string(labels_[i]) + " of " +
                            paths_[i] + " is negative");
  failed_.assign(paths_.size(), false);
  if (options_.cache_max_side > 0) cache_.resize(paths_.size());
  set_epoch(0);
}

AugmentedImageDataset::AugmentedImageDataset(const ImageFolderDataset& folder,
                                             image::Augmenter augmenter,
                                             const AugmentedImageOptions& options)
    : AugmentedImageDataset(folder_paths(folder), folder_labels(folder), std::move(augmenter),
                            options) {}

Shape AugmentedImageDataset::input_shape() const {
  if (options_.two_views) return Shape{2, options_.channels, options_.height, options_.width};
  return Shape{options_.channels, options_.height, options_.width};
}

void AugmentedImageDataset::set_epoch(uint64_t epoch) {
  epoch_ = epoch;
  rng_ = Rng(options_.seed ^ ((epoch + 1) * 0x9e3779b97f4a7c15ULL));
}

void AugmentedImageDataset::check_index(int64_t i, const char* what) const {
  if (i < 0 || i >= size())
    throw InvalidArgument(std::string("AugmentedImageDataset::") + what + ": index " +
                          std::to_string(i) + " out of [0, " + std::to_string(size()) + ")");
}

const std::string& AugmentedImageDataset::path(int64_t i) const {
  check_index(i, "path");
  return paths_[static_cast<std::size_t>(i)];
}

int AugmentedImageDataset::label(int64_t i) const {
  check_index(i, "label");
  return labels_[static_cast<std::size_t>(i)];
}

const image::Image& AugmentedImageDataset::decoded(std::size_t k) {
  if (!cache_.empty() && !cache_[k].empty()) return cache_[k];
  image::load_image_into(paths_[k], decoded_, file_buffer_,
                         {.channels = options_.channels, .max_pixels = options_.max_pixels});
  if (cache_.empty()) return decoded_;
  const int side = std::max(decoded_.width(), decoded_.height());
  const int m = options_.cache_max_side;
  if (side <= m) {
    cache_[k] = decoded_;
  } else {
    const int w = std::max(1, static_cast<int>(static_cast<int64_t>(decoded_.width()) * m / side));
    const int h = std::max(1, static_cast<int>(static_cast<int64_t>(decoded_.height()) * m / side));
    image::resize_into(decoded_, cache_[k], w, h, image::ResizeFilter::automatic);
  }
  return cache_[k];
}

void AugmentedImageDataset::write_view(const image::Image& src, Rng& rng, float* dst) {
  augmenter_.apply_into(src, augmented_, rng);
  const image::Image* img = &augmented_;
  if (augmented_.width() != options_.width || augmented_.height() != options_.height) {
    image::resize_into(augmented_, resized_, options_.width, options_.height, options_.filter);
    img = &resized_;
  }
  image::to_tensor_into(*img, options_.channels, dst);
}

void AugmentedImageDataset::get(std::span<const int64_t> indices, Tensor& x, Tensor& y) {
  const auto n = static_cast<int64_t>(indices.size());
  for (int64_t k : indices) check_index(k, "get");
  x.resize(input_shape().with_batch(n));
  y.resize(target_shape().with_batch(n));
  const int views = options_.two_views ? 2 : 1;
  const int64_t per_view = int64_t{options_.channels} * options_.height * options_.width;
  for (int64_t i = 0; i < n; ++i) {
    const auto k = static_cast<std::size_t>(indices[static_cast<std::size_t>(i)]);
    float* dst = x.data() + i * per_view * views;
    y[i] = static_cast<float>(labels_[k]);
    Rng sample = rng_.split();  // one draw per sample, whatever happens below
    if (!failed_[k]) {
      std::string reason;
      try {
        const image::Image& src = decoded(k);
        for (int v = 0; v < views; ++v) {
          Rng view = sample.split();
          write_view(src, view, dst + v * per_view);
        }
        continue;
      } catch (const FormatError& e) {
        if (options_.strict) throw;
        reason = e.what();
      } catch (const IoError& e) {
        if (options_.strict) throw;
        reason = e.what();
      }
      failed_[k] = true;
      skipped_.push_back({paths_[k], std::move(reason)});
    }
    std::fill(dst, dst + per_view * views, 0.0f);
  }
}

}  // namespace imgsim::data
