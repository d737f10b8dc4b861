// AugmentedImageDataset: image files decoded and augmented on the fly (docs/augmentation.md,
// "Data sets").
//
// Each get() reads a sample's file, decodes it to `channels` (EXIF orientation applied), runs
// the Augmenter, resizes the result to height x width when it is not that size already, and
// writes (C, H, W) floats in [0, 1]. The target is the sample's label, shape (1).
//
// Two-views mode (contrastive training, e.g. NT-Xent): every sample yields two independent
// augmentations of the same decoded image, so the input shape is (2, C, H, W) and a batch is
// (n, 2, C, H, W); reshaped to (2n, C, H, W) the positive pairs are rows 2i and 2i + 1.
//
// Randomness: one Rng stream seeded from (seed, epoch). Every sample in a get() takes exactly one
// split() of the stream, whatever its augmentation draws, and each view one split() of that; so
// a given seed, epoch and sequence of get() calls always give the same tensors. set_epoch()
// restarts the stream (call it at the start of each epoch to make epochs reproducible on their
// own, e.g. when resuming training).
//
// A file that cannot be read or decoded becomes an all-zero sample listed in skipped() (once;
// it is not retried), or get() throws with `strict`. Not thread-safe: one object per thread.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "imgsim/data/dataset.hpp"
#include "imgsim/data/image_folder.hpp"
#include "imgsim/image/augment.hpp"
#include "imgsim/image/image.hpp"
#include "imgsim/rng.hpp"

namespace imgsim::data {

struct AugmentedImageOptions {
  int width = 64;
  int height = 64;
  int channels = 3;  // 1, 3 or 4
  bool two_views = false;
  uint64_t seed = 0x5eed5eedULL;
  // Filter of the final resize (only when the augmenter's output is not width x height).
  image::ResizeFilter filter = image::ResizeFilter::automatic;
  int64_t max_pixels = image::kDefaultMaxPixels;
  bool strict = false;
  // 0: read and decode the file at every get(). > 0: decode each file once, shrink it (area
  // filter) so that its longer side is at most this many pixels, and keep it in memory; for
  // small collections seen many times (self-supervised training on a few hundred photos), where
  // decoding and augmenting full-size photos would cost far more than the training step.
  int cache_max_side = 0;
};

class AugmentedImageDataset : public Dataset {
 public:
  // `labels` is empty (every label 0) or holds one non-negative label per path.
  // InvalidArgument for no paths, mismatched labels or options out of range.
  AugmentedImageDataset(std::vector<std::string> paths, std::vector<int> labels,
                        image::Augmenter augmenter, const AugmentedImageOptions& options = {});
  // The files and class indices of an image folder (its decoding options are not used).
  AugmentedImageDataset(const ImageFolderDataset& folder, image::Augmenter augmenter,
                        const AugmentedImageOptions& options = {});

  int64_t size() const override { return static_cast<int64_t>(paths_.size()); }
  // (C, H, W), or (2, C, H, W) in two-views mode.
  Shape input_shape() const override;
  Shape target_shape() const override { return Shape{1}; }
  void get(std::span<const int64_t> indices, Tensor& x, Tensor& y) override;

  // Restarts the random stream for `epoch` (the constructor starts epoch 0).
  void set_epoch(uint64_t epoch);
  uint64_t epoch() const { return epoch_; }

  const std::string& path(int64_t i) const;
  int label(int64_t i) const;
  const image::Augmenter& augmenter() const { return augmenter_; }
  const AugmentedImageOptions& options() const { return options_; }
  const std::vector<SkippedFile>& skipped() const { return skipped_; }

 private:
  void check_index(int64_t i, const char* what) const;
  // Writes one augmented view of `src` at dst (C * H * W floats).
  void write_view(const image::Image& src, Rng& rng, float* dst);
  // The decoded image of sample k (from the cache when enabled); throws as load_image_into.
  const image::Image& decoded(std::size_t k);

  std::vector<std::string> paths_;
  std::vector<int> labels_;
  image::Augmenter augmenter_;
  AugmentedImageOptions options_;
  uint64_t epoch_ = 0;
  Rng rng_;
  std::vector<SkippedFile> skipped_;
  std::vector<bool> failed_;
  // Reused by get().
  std::vector<unsigned char> file_buffer_;
  image::Image decoded_;
  std::vector<image::Image> cache_;  // with cache_max_side: decoded, shrunk images (or empty)
  image::Image augmented_;
  image::Image resized_;
};

}  // namespace imgsim::data
