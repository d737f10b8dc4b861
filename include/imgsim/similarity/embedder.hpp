// Embedder: a trained model plus the preprocessing that turns an image file into its input, so
// that images become unit vectors whose inner product (cosine similarity) says how alike they are
// (docs/similarity.md).
//
//   imgsim::similarity::Embedder e("models/default.imgsim");
//   std::vector<float> a = e.embed_file("a.jpg"), b = e.embed_file("b.jpg");
//   float s = cosine(a, b);                 // in [-1, 1], higher is more alike
//   if (e.has_threshold() && e.same(s)) ...  // threshold calibrated on validation pairs
//
// Preprocessing is described by string metadata saved in the model file (Sequential::metadata),
// so a model carries everything needed to use it. Keys (all optional; defaults in brackets):
//
//   imgsim.embedder.version  "1"
//   imgsim.embedder.input    "CxHxW", checked against the model's input shape (C, H, W) [that
//   shape] imgsim.embedder.resize   shorter side S the image is scaled to before the centre H x W
//   crop;
//                            0 scales so the image just covers H x W [0]
//   imgsim.embedder.crop     "center": keep the aspect ratio and cut the centre; "none": stretch
//                            the whole image to H x W [center]
//   imgsim.embedder.filter   "automatic", "box", "bilinear", "bicubic", "mitchell" [automatic]
//   imgsim.embedder.mean     1 or C comma-separated values subtracted per channel [0]
//   imgsim.embedder.std      1 or C comma-separated positive values dividing per channel [1]
//   imgsim.threshold         cosine score at or above which two images are "the same"
//   imgsim.threshold.source  free text: how the threshold was calibrated
//
// The input has C = 1 (gray) or 3 (RGB) channels; files are decoded straight to C channels (EXIF
// orientation applied) with pixel values in [0, 1], then (x - mean[c]) / std[c]. The embedding is
// the model's output flattened and L2-normalised (a zero output stays zero).
//
// An Embedder is not thread-safe (inference reuses the model's buffers); its batch functions use
// imgsim's thread pool (set_num_threads) to decode images in parallel and run the model on whole
// batches.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "imgsim/data/image_folder.hpp"
#include "imgsim/image/image.hpp"
#include "imgsim/nn/sequential.hpp"
#include "imgsim/tensor.hpp"

namespace imgsim::similarity {

// Metadata keys (see the header comment).
inline constexpr const char* kMetaVersion = "imgsim.embedder.version";
inline constexpr const char* kMetaInput = "imgsim.embedder.input";
inline constexpr const char* kMetaResize = "imgsim.embedder.resize";
inline constexpr const char* kMetaCrop = "imgsim.embedder.crop";
inline constexpr const char* kMetaFilter = "imgsim.embedder.filter";
inline constexpr const char* kMetaMean = "imgsim.embedder.mean";
inline constexpr const char* kMetaStd = "imgsim.embedder.std";
inline constexpr const char* kMetaFlipAverage = "imgsim.embedder.flip_average";
inline constexpr const char* kMetaShiftAverage = "imgsim.embedder.shift_average";
inline constexpr const char* kMetaThreshold = "imgsim.threshold";
inline constexpr const char* kMetaThresholdSource = "imgsim.threshold.source";

// How an image becomes a model input of channels x height x width.
struct Preprocessing {
  int channels = 3;  // 1 or 3
  int height = 64;
  int width = 64;
  int resize = 0;           // shorter side before the centre crop; 0: just cover the crop
  bool center_crop = true;  // false: stretch to width x height
  image::ResizeFilter filter = image::ResizeFilter::automatic;
  std::vector<float> mean{0.0f};    // 1 or `channels` values
  std::vector<float> stddev{1.0f};  // 1 or `channels` values, all > 0
  // Flip averaging: the embedding is the normalised sum of the model's outputs for the image
  // and its mirror images, so that they all get the same embedding. none: off; h: left-right
  // (twice the model work); hv: left-right, top-bottom and both (four times).
  enum class Flips { none, h, hv };
  Flips flip_average = Flips::none;
  // Shift averaging (0: off): with s > 0, each of those views is also embedded shifted by s
  // pixels left, right, up and down (edge pixels repeated), five times the model work. 0..8.
  int shift_average = 0;
  static constexpr int kMaxShiftAverage = 8;

  // Reads the keys above; the input shape (C, H, W) is the model's. FormatError (naming the key
  // and value) for a malformed or inconsistent value, or a model input that is not (1|3, H, W).
  static Preprocessing from_metadata(const std::map<std::string, std::string>& metadata,
                                     const Shape& model_input);
  // Writes every key above except the threshold ones.
  void to_metadata(std::map<std::string, std::string>& metadata) const;
  // InvalidArgument unless the values are in range.
  void validate() const;

  // Writes channels * height * width floats for `img` (any size, 1, 3 or 4 channels) at dst.
  void apply(const image::Image& img, float* dst) const;
};

// Cosine similarity of two vectors of the same length (0 if either is zero), accumulated in
// double. InvalidArgument if the lengths differ.
float cosine(std::span<const float> a, std::span<const float> b);

struct EmbedOptions {
  int64_t batch_size = 64;  // images per model call
  // Called after each batch with (images done, total); may be empty.
  std::function<void(int64_t done, int64_t total)> progress{};
  // Decoding limit (image::LoadOptions::max_pixels).
  int64_t max_pixels = image::kDefaultMaxPixels;
};

// Embeddings of the files that could be read, in input order.
struct EmbedResult {
  int64_t dim = 0;
  std::vector<float> embeddings;           // rows.size() x dim, row-major
  std::vector<std::size_t> rows;           // index in the input list of each embedded file
  std::vector<data::SkippedFile> skipped;  // files that could not be read, in input order
  int64_t size() const { return static_cast<int64_t>(rows.size()); }
  const float* row(int64_t i) const { return embeddings.data() + i * dim; }
};

class Embedder {
 public:
  // Loads a model file (IoError / FormatError naming it, as Sequential::load) and reads its
  // preprocessing and threshold metadata (FormatError naming the file and key).
  explicit Embedder(const std::string& model_path);
  // Takes a built model; its metadata describes the preprocessing (FormatError if malformed).
  explicit Embedder(nn::Sequential model);
  Embedder(Embedder&&) noexcept;
  Embedder& operator=(Embedder&&) noexcept;
  ~Embedder();

  int64_t dim() const { return dim_; }
  const Preprocessing& preprocessing() const { return pre_; }
  // Overrides the model's flip averaging for the following calls (e.g. to measure what test-time
  // flips add without rewriting the model file).
  void set_flip_average(Preprocessing::Flips flips) { pre_.flip_average = flips; }
  // The same for shift averaging (InvalidArgument outside 0..8).
  void set_shift_average(int pixels);
  nn::Sequential& model() { return model_; }
  const nn::Sequential& model() const { return model_; }
  // The file the model came from ("" if constructed from a model).
  const std::string& path() const { return path_; }

  // One image (decoded, any size) -> dim floats, unit length.
  std::vector<float> embed(const image::Image& img);
  // Decodes and embeds one file; IoError / FormatError if it cannot be read.
  std::vector<float> embed_file(const std::string& path);
  // Images -> (n, dim) unit rows. Preprocessing runs in parallel on the thread pool.
  Tensor embed_images(std::span<const image::Image> images, int64_t batch_size = 64);
  // Already preprocessed inputs (n, C, H, W) -> (n, dim) unit rows.
  Tensor embed_inputs(const Tensor& inputs, int64_t batch_size = 64);
  // Many files: decoded and preprocessed in parallel, embedded batch by batch. A file that
  // cannot be read or decoded is listed in `skipped` (with the reason) and never stops the run.
  EmbedResult embed_files(const std::vector<std::string>& paths, const EmbedOptions& options = {});

  // Cosine similarity of the two images' embeddings: 1 for identical images, higher is more
  // alike. Symmetric.
  float compare(const image::Image& a, const image::Image& b);
  float compare_files(const std::string& a, const std::string& b);

  // The calibrated threshold ("imgsim.threshold"); StateError from threshold() if there is none.
  bool has_threshold() const { return has_threshold_; }
  float threshold() const;
  // score >= threshold(). StateError if there is no threshold.
  bool same(float score) const;
  // Sets the threshold (finite, InvalidArgument otherwise) and writes it, with `source`, to the
  // model's metadata so that save() keeps it.
  void set_threshold(float threshold, const std::string& source = "");
  // Saves the model with its metadata (Sequential::save).
  void save(const std::string& path) const;

 private:
  void init();
  nn::Sequential model_;
  Preprocessing pre_;
  std::string path_;
  int64_t dim_ = 0;
  bool has_threshold_ = false;
  float threshold_ = 0.0f;
};

// --- threshold calibration -------------------------------------------------------------------

struct CalibrationOptions {
  // 0: maximise accuracy. In (0, 1]: the lowest threshold whose precision on the pairs is at
  // least this (the highest recall at that precision); if none reaches it, the threshold with
  // the highest precision, and Calibration::target_met is false.
  double target_precision = 0.0;
};

struct Calibration {
  float threshold = 0.0f;
  double accuracy = 0.0;     // (true positives + true negatives) / pairs
  double precision = 0.0;    // of "same" decisions (1 when nothing is called same)
  double recall = 0.0;       // of same pairs (true positive rate)
  double specificity = 0.0;  // of different pairs (true negative rate)
  int64_t same_pairs = 0;
  int64_t different_pairs = 0;
  bool target_met = true;
};

// Picks the threshold t for the rule "same iff score >= t" from scores of pairs known to be the
// same and known to be different. Candidates are the midpoints between consecutive distinct
// scores (plus one below and one above them all); among the best candidates the one with the
// widest gap between its neighbouring scores wins, then the lowest. InvalidArgument if either
// list is empty or holds a non-finite score. Deterministic.
Calibration calibrate_threshold(std::span<const float> scores_same,
                                std::span<const float> scores_different,
                                const CalibrationOptions& options = {});

}  // namespace imgsim::similarity
