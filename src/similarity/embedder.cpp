// Embedder: preprocessing from model metadata, parallel decoding, batched inference, cosine
// scores and threshold calibration (docs/similarity.md).
#include "imgsim/similarity/embedder.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <string>
#include <utility>

#include "imgsim/error.hpp"
#include "imgsim/image/augment.hpp"
#include "kernels/thread_pool.hpp"

namespace imgsim::similarity {

namespace {

const char* filter_name(image::ResizeFilter f) {
  switch (f) {
    case image::ResizeFilter::automatic:
      return "automatic";
    case image::ResizeFilter::box:
      return "box";
    case image::ResizeFilter::bilinear:
      return "bilinear";
    case image::ResizeFilter::bicubic:
      return "bicubic";
    case image::ResizeFilter::mitchell:
      return "mitchell";
  }
  return "automatic";
}

std::string format_float(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

std::string join_floats(const std::vector<float>& v) {
  std::string s;
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (i) s += ',';
    s += format_float(v[i]);
  }
  return s;
}

[[noreturn]] void bad_key(const std::string& key, const std::string& value,
                          const std::string& why) {
  throw FormatError("model metadata " + key + " = '" + value + "': " + why);
}

// Whole-string integer.
bool parse_int(const std::string& s, long long& out) {
  if (s.empty()) return false;
  const char* b = s.data();
  const char* e = b + s.size();
  auto [p, ec] = std::from_chars(b, e, out);
  return ec == std::errc() && p == e;
}

// Whole-string finite float (strtod: from_chars for floating point needs a newer libstdc++
// on some systems).
bool parse_float(const std::string& s, float& out) {
  if (s.empty() || std::isspace(static_cast<unsigned char>(s.front()))) return false;
  errno = 0;
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (errno != 0 || end != s.c_str() + s.size() || !std::isfinite(v)) return false;
  if (std::abs(v) > std::numeric_limits<float>::max()) return false;
  out = static_cast<float>(v);
  return true;
}

std::vector<float> parse_float_list(const std::string& key, const std::string& value) {
  std::vector<float> out;
  std::size_t start = 0;
  while (true) {
    const std::size_t comma = value.find(',', start);
    const std::string item =
        value.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    float f = 0.0f;
    if (!parse_float(item, f)) bad_key(key, value, "expected comma-separated finite numbers");
    out.push_back(f);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

// Reused per thread by the parallel decoders.
struct DecodeScratch {
  std::vector<unsigned char> file;
  image::Image decoded;
};

DecodeScratch& scratch() {
  thread_local DecodeScratch s;
  return s;
}

void l2_normalize_rows(float* rows, int64_t n, int64_t dim) {
  for (int64_t i = 0; i < n; ++i) {
    float* r = rows + i * dim;
    double ss = 0.0;
    for (int64_t t = 0; t < dim; ++t) ss += static_cast<double>(r[t]) * r[t];
    if (!(ss > 0.0) || !std::isfinite(ss)) continue;
    const double inv = 1.0 / std::sqrt(ss);
    for (int64_t t = 0; t < dim; ++t) r[t] = static_cast<float>(r[t] * inv);
  }
}

}  // namespace

// --- Preprocessing -------------------------------------------------------------------------

void Preprocessing::validate() const {
  if (channels != 1 && channels != 3)
    throw InvalidArgument("Preprocessing: channels must be 1 or 3, got " +
                          std::to_string(channels));
  if (width < 1 || height < 1 || width > image::kMaxImageSide || height > image::kMaxImageSide)
    throw InvalidArgument("Preprocessing: bad input size " + std::to_string(width) + "x" +
                          std::to_string(height));
  if (resize < 0 || resize > image::kMaxImageSide)
    throw InvalidArgument("Preprocessing: resize must be in 0.." +
                          std::to_string(image::kMaxImageSide) + ", got " + std::to_string(resize));
  if (resize > 0 && center_crop && resize < std::max(width, height))
    throw InvalidArgument("Preprocessing: resize (shorter side " + std::to_string(resize) +
                          ") must be at least the crop's longer side " +
                          std::to_string(std::max(width, height)));
  auto check_list = [&](const std::vector<float>& v, const char* what, bool positive) {
    if (v.size() != 1 && v.size() != static_cast<std::size_t>(channels))
      throw InvalidArgument(std::string("Preprocessing: ") + what + " needs 1 or " +
                            std::to_string(channels) + " values, got " + std::to_string(v.size()));
    for (float x : v)
      if (!std::isfinite(x) || (positive && !(x > 0.0f)))
        throw InvalidArgument(std::string("Preprocessing: bad ") + what + " value " +
                              format_float(x));
  };
  check_list(mean, "mean", false);
  check_list(stddev, "std", true);
  if (shift_average < 0 || shift_average > kMaxShiftAverage)
    throw InvalidArgument("Preprocessing: shift_average must be in 0.." +
                          std::to_string(kMaxShiftAverage) + ", got " +
                          std::to_string(shift_average));
}

Preprocessing Preprocessing::from_metadata(const std::map<std::string, std::string>& md,
                                           const Shape& input) {
  if (input.rank() != 3 || (input[0] != 1 && input[0] != 3) || input[1] < 1 || input[2] < 1 ||
      input[1] > image::kMaxImageSide || input[2] > image::kMaxImageSide)
    throw FormatError("the model input " + input.str() +
                      " is not an image shape (1 or 3 channels, height, width)");
  Preprocessing p;
  p.channels = static_cast<int>(input[0]);
  p.height = static_cast<int>(input[1]);
  p.width = static_cast<int>(input[2]);
  auto get = [&](const char* key) -> const std::string* {
    auto it = md.find(key);
    return it == md.end() ? nullptr : &it->second;
  };
  if (const std::string* v = get(kMetaVersion)) {
    if (*v != "1") bad_key(kMetaVersion, *v, "this build reads version 1");
  }
  if (const std::string* v = get(kMetaInput)) {
    const std::string want =
        std::to_string(input[0]) + "x" + std::to_string(input[1]) + "x" + std::to_string(input[2]);
    if (*v != want) bad_key(kMetaInput, *v, "the model's input is " + want);
  }
  if (const std::string* v = get(kMetaResize)) {
    long long r = 0;
    if (!parse_int(*v, r) || r < 0 || r > image::kMaxImageSide)
      bad_key(kMetaResize, *v, "expected an integer in 0.." + std::to_string(image::kMaxImageSide));
    p.resize = static_cast<int>(r);
  }
  if (const std::string* v = get(kMetaCrop)) {
    if (*v == "center")
      p.center_crop = true;
    else if (*v == "none")
      p.center_crop = false;
    else
      bad_key(kMetaCrop, *v, "expected 'center' or 'none'");
  }
  if (const std::string* v = get(kMetaFilter)) {
    bool found = false;
    for (auto f :
         {image::ResizeFilter::automatic, image::ResizeFilter::box, image::ResizeFilter::bilinear,
          image::ResizeFilter::bicubic, image::ResizeFilter::mitchell})
      if (*v == filter_name(f)) {
        p.filter = f;
        found = true;
      }
    if (!found) bad_key(kMetaFilter, *v, "expected automatic, box, bilinear, bicubic or mitchell");
  }
  if (const std::string* v = get(kMetaMean)) p.mean = parse_float_list(kMetaMean, *v);
  if (const std::string* v = get(kMetaStd)) p.stddev = parse_float_list(kMetaStd, *v);
  if (const std::string* v = get(kMetaFlipAverage)) {
    if (*v == "none")
      p.flip_average = Flips::none;
    else if (*v == "h")
      p.flip_average = Flips::h;
    else if (*v == "hv")
      p.flip_average = Flips::hv;
    else
      bad_key(kMetaFlipAverage, *v, "expected none, h or hv");
  }
  if (const std::string* v = get(kMetaShiftAverage)) {
    long long sh = 0;
    if (!parse_int(*v, sh) || sh < 0 || sh > kMaxShiftAverage)
      bad_key(kMetaShiftAverage, *v,
              "expected a whole number of pixels in 0.." + std::to_string(kMaxShiftAverage));
    p.shift_average = static_cast<int>(sh);
  }
  try {
    p.validate();
  } catch (const InvalidArgument& e) {
    throw FormatError(std::string("model metadata: ") + e.what());
  }
  return p;
}

void Preprocessing::to_metadata(std::map<std::string, std::string>& md) const {
  validate();
  md[kMetaVersion] = std::string("1");
  md[kMetaInput] =
      std::to_string(channels) + "x" + std::to_string(height) + "x" + std::to_string(width);
  md[kMetaResize] = std::to_string(resize);
  // (std::string temporaries: g++ 12 warns falsely (-Wrestrict) on assigning a const char*.)
  md[kMetaCrop] = std::string(center_crop ? "center" : "none");
  md[kMetaFilter] = std::string(filter_name(filter));
  md[kMetaMean] = join_floats(mean);
  md[kMetaStd] = join_floats(stddev);
  md[kMetaFlipAverage] = std::string(flip_average == Flips::none ? "none"
                                     : flip_average == Flips::h  ? "h"
                                                                 : "hv");
  // (Written only when on, so that files without it keep their bytes.)
  if (shift_average > 0)
    md[kMetaShiftAverage] = std::to_string(shift_average);
  else
    md.erase(kMetaShiftAverage);
}

void Preprocessing::apply(const image::Image& img, float* dst) const {
  if (img.empty()) throw InvalidArgument("Preprocessing::apply: empty image");
  thread_local image::Image sized;
  const image::Image* src = &img;
  if (img.width() != width || img.height() != height) {
    if (!center_crop) {
      image::resize_into(img, sized, width, height, filter);
    } else if (resize == 0) {
      image::resize_center_crop_into(img, sized, width, height, filter);
    } else {
      // Scale the shorter side to `resize`, cut the centre width x height: one resampling pass
      // over the matching source rectangle.
      const double scale =
          static_cast<double>(resize) / static_cast<double>(std::min(img.width(), img.height()));
      image::CropRect r;
      r.width = std::clamp(static_cast<int>(std::lround(width / scale)), 1, img.width());
      r.height = std::clamp(static_cast<int>(std::lround(height / scale)), 1, img.height());
      r.x = (img.width() - r.width) / 2;
      r.y = (img.height() - r.height) / 2;
      image::resized_crop_into(img, sized, r, width, height, filter);
    }
    src = &sized;
  }
  image::to_tensor_into(*src, channels, dst);
  const int64_t plane = int64_t{width} * height;
  for (int c = 0; c < channels; ++c) {
    const float m = mean.size() == 1 ? mean[0] : mean[static_cast<std::size_t>(c)];
    const float s = stddev.size() == 1 ? stddev[0] : stddev[static_cast<std::size_t>(c)];
    if (m == 0.0f && s == 1.0f) continue;
    const float inv = 1.0f / s;
    float* p = dst + c * plane;
    for (int64_t i = 0; i < plane; ++i) p[i] = (p[i] - m) * inv;
  }
}

float cosine(std::span<const float> a, std::span<const float> b) {
  if (a.size() != b.size())
    throw InvalidArgument("cosine: vectors of different lengths " + std::to_string(a.size()) +
                          " and " + std::to_string(b.size()));
  double ab = 0.0, aa = 0.0, bb = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    ab += static_cast<double>(a[i]) * b[i];
    aa += static_cast<double>(a[i]) * a[i];
    bb += static_cast<double>(b[i]) * b[i];
  }
  if (!(aa > 0.0) || !(bb > 0.0)) return 0.0f;
  const double c = ab / (std::sqrt(aa) * std::sqrt(bb));
  return static_cast<float>(std::clamp(c, -1.0, 1.0));
}

// --- Embedder --------------------------------------------------------------------------------

Embedder::Embedder(const std::string& model_path) : path_(model_path) {
  model_.load(model_path);
  try {
    init();
  } catch (const FormatError& e) {
    throw FormatError(model_path + ": " + e.what());
  }
}

Embedder::Embedder(nn::Sequential model) : model_(std::move(model)) {
  init();
}

Embedder::Embedder(Embedder&&) noexcept = default;
Embedder& Embedder::operator=(Embedder&&) noexcept = default;
Embedder::~Embedder() = default;

void Embedder::init() {
  if (!model_.built())
    throw InvalidArgument("Embedder: the model is not built (call build() or load a file)");
  pre_ = Preprocessing::from_metadata(model_.metadata(), model_.input_shape());
  dim_ = model_.output_shape().numel();
  if (dim_ < 1)
    throw FormatError("the model's output " + model_.output_shape().str() + " is empty");
  has_threshold_ = false;
  auto it = model_.metadata().find(kMetaThreshold);
  if (it != model_.metadata().end()) {
    float t = 0.0f;
    if (!parse_float(it->second, t))
      bad_key(kMetaThreshold, it->second, "expected a finite number");
    threshold_ = t;
    has_threshold_ = true;
  }
}

void Embedder::set_shift_average(int pixels) {
  Preprocessing p = pre_;
  p.shift_average = pixels;
  p.validate();
  pre_ = p;
}

Tensor Embedder::embed_inputs(const Tensor& inputs, int64_t batch_size) {
  const Shape want{pre_.channels, pre_.height, pre_.width};
  if (inputs.rank() != 4 || inputs.shape().without_batch() != want)
    throw ShapeError("Embedder::embed_inputs: inputs " + inputs.shape().str() +
                     " do not match the model input " + want.with_batch(-1).str());
  Tensor out = model_.predict(inputs, batch_size);
  const int64_t n = inputs.dim(0);
  const int s = pre_.shift_average;
  if ((pre_.flip_average != Preprocessing::Flips::none || s > 0) && n > 0) {
    // Embed the other views too and add (each output is already unit length for an L2Normalize
    // model; the sum is normalised below either way). Views, in the order they are added: per
    // flip (none; then left-right; with hv also top-bottom and both), unshifted and then
    // shifted by s right, left, down and up (pixel (r, q) of the view is the flipped input's
    // (r + dy, q + dx), clamped at the edges); the plain input is `out` already.
    const int64_t h = inputs.dim(2), w = inputs.dim(3), planes = inputs.numel() / (h * w);
    Tensor view(inputs.shape());
    const int flips = pre_.flip_average == Preprocessing::Flips::hv  ? 4
                      : pre_.flip_average == Preprocessing::Flips::h ? 2
                                                                     : 1;
    const int shifts = s > 0 ? 5 : 1;
    const int dxs[5] = {0, s, -s, 0, 0}, dys[5] = {0, 0, 0, s, -s};
    for (int f = 0; f < flips; ++f)
      for (int k = 0; k < shifts; ++k) {
        if (f == 0 && k == 0) continue;
        const bool flip_x = f == 1 || f == 3, flip_y = f >= 2;
        const int64_t dx = dxs[k], dy = dys[k];
        const float* src = inputs.data();
        float* dst = view.data();
        kernels::parallel_for(planes, [&](int64_t p) {
          for (int64_t r = 0; r < h; ++r) {
            const int64_t sr0 = std::clamp<int64_t>(r + dy, 0, h - 1);
            const float* a = src + (p * h + (flip_y ? h - 1 - sr0 : sr0)) * w;
            float* b = dst + (p * h + r) * w;
            for (int64_t j = 0; j < w; ++j) {
              const int64_t q = std::clamp<int64_t>(j + dx, 0, w - 1);
              b[j] = a[flip_x ? w - 1 - q : q];
            }
          }
        });
        const Tensor other = model_.predict(view, batch_size);
        for (int64_t i = 0; i < out.numel(); ++i) out[i] += other[i];
      }
  }
  out.reshape({n, dim_});
  l2_normalize_rows(out.data(), n, dim_);
  return out;
}

Tensor Embedder::embed_images(std::span<const image::Image> images, int64_t batch_size) {
  if (batch_size <= 0) throw InvalidArgument("Embedder: batch_size must be positive");
  const auto n = static_cast<int64_t>(images.size());
  const int64_t in = int64_t{pre_.channels} * pre_.height * pre_.width;
  Tensor x({n, pre_.channels, pre_.height, pre_.width});
  const Preprocessing& pre = pre_;
  kernels::parallel_for(
      n, [&](int64_t i) { pre.apply(images[static_cast<std::size_t>(i)], x.data() + i * in); });
  return embed_inputs(x, batch_size);
}

std::vector<float> Embedder::embed(const image::Image& img) {
  Tensor e = embed_images(std::span<const image::Image>(&img, 1));
  return std::vector<float>(e.data(), e.data() + dim_);
}

std::vector<float> Embedder::embed_file(const std::string& path) {
  image::LoadOptions lo;
  lo.channels = pre_.channels;
  return embed(image::load_image(path, lo));
}

EmbedResult Embedder::embed_files(const std::vector<std::string>& paths,
                                  const EmbedOptions& options) {
  if (options.batch_size <= 0) throw InvalidArgument("Embedder: batch_size must be positive");
  EmbedResult r;
  r.dim = dim_;
  const auto total = static_cast<int64_t>(paths.size());
  const int64_t in = int64_t{pre_.channels} * pre_.height * pre_.width;
  const int64_t bs = options.batch_size;
  Tensor x({std::min(bs, std::max<int64_t>(total, 1)), pre_.channels, pre_.height, pre_.width});
  std::vector<std::string> errors;
  std::vector<char> ok;
  image::LoadOptions lo;
  lo.channels = pre_.channels;
  lo.max_pixels = options.max_pixels;
  const Preprocessing& pre = pre_;
  for (int64_t b0 = 0; b0 < total; b0 += bs) {
    const int64_t b1 = std::min(total, b0 + bs);
    const int64_t n = b1 - b0;
    errors.assign(static_cast<std::size_t>(n), std::string());
    ok.assign(static_cast<std::size_t>(n), 0);
    kernels::parallel_for(n, [&](int64_t i) {
      const auto k = static_cast<std::size_t>(i);
      try {
        DecodeScratch& s = scratch();
        image::load_image_into(paths[static_cast<std::size_t>(b0 + i)], s.decoded, s.file, lo);
        pre.apply(s.decoded, x.data() + i * in);
        ok[k] = 1;
      } catch (const std::exception& e) {
        errors[k] = e.what();
      }
    });
    // Compact the rows that decoded, then run the model on them.
    int64_t m = 0;
    for (int64_t i = 0; i < n; ++i) {
      const auto k = static_cast<std::size_t>(i);
      if (!ok[k]) {
        r.skipped.push_back({paths[static_cast<std::size_t>(b0 + i)], errors[k]});
        continue;
      }
      if (m != i) std::copy(x.data() + i * in, x.data() + (i + 1) * in, x.data() + m * in);
      r.rows.push_back(static_cast<std::size_t>(b0 + i));
      ++m;
    }
    if (m > 0) {
      Tensor view = Tensor::view(x.data(), {m, pre_.channels, pre_.height, pre_.width});
      Tensor e = embed_inputs(view, bs);
      r.embeddings.insert(r.embeddings.end(), e.data(), e.data() + m * dim_);
    }
    if (options.progress) options.progress(b1, total);
  }
  return r;
}

float Embedder::compare(const image::Image& a, const image::Image& b) {
  if (a.empty() || b.empty()) throw InvalidArgument("Embedder::compare: empty image");
  const int64_t in = int64_t{pre_.channels} * pre_.height * pre_.width;
  Tensor x({2, pre_.channels, pre_.height, pre_.width});
  pre_.apply(a, x.data());
  pre_.apply(b, x.data() + in);
  Tensor e = embed_inputs(x);
  return cosine(std::span<const float>(e.data(), static_cast<std::size_t>(dim_)),
                std::span<const float>(e.data() + dim_, static_cast<std::size_t>(dim_)));
}

float Embedder::compare_files(const std::string& a, const std::string& b) {
  const std::vector<float> ea = embed_file(a);
  const std::vector<float> eb = embed_file(b);
  return cosine(ea, eb);
}

float Embedder::threshold() const {
  if (!has_threshold_)
    throw StateError("the model has no calibrated threshold (metadata " +
                     std::string(kMetaThreshold) + "); train with --calibrate or pass one");
  return threshold_;
}

bool Embedder::same(float score) const {
  return score >= threshold();
}

void Embedder::set_threshold(float threshold, const std::string& source) {
  if (!std::isfinite(threshold))
    throw InvalidArgument("Embedder::set_threshold: the threshold must be finite");
  threshold_ = threshold;
  has_threshold_ = true;
  model_.metadata()[kMetaThreshold] = format_float(threshold);
  if (!source.empty())
    model_.metadata()[kMetaThresholdSource] = source;
  else
    model_.metadata().erase(kMetaThresholdSource);
}

void Embedder::save(const std::string& path) const {
  model_.save(path);
}

// --- calibration -----------------------------------------------------------------------------

Calibration calibrate_threshold(std::span<const float> scores_same,
                                std::span<const float> scores_different,
                                const CalibrationOptions& options) {
  if (scores_same.empty() || scores_different.empty())
    throw InvalidArgument(
        "calibrate_threshold: need at least one same and one different pair (got " +
        std::to_string(scores_same.size()) + " and " + std::to_string(scores_different.size()) +
        ")");
  if (!(options.target_precision >= 0.0 && options.target_precision <= 1.0))
    throw InvalidArgument("calibrate_threshold: target_precision must be in [0, 1]");
  std::vector<float> pos(scores_same.begin(), scores_same.end());
  std::vector<float> neg(scores_different.begin(), scores_different.end());
  for (const auto* v : {&pos, &neg})
    for (float s : *v)
      if (!std::isfinite(s)) throw InvalidArgument("calibrate_threshold: non-finite score");
  std::sort(pos.begin(), pos.end());
  std::sort(neg.begin(), neg.end());
  std::vector<float> all;
  all.reserve(pos.size() + neg.size());
  std::merge(pos.begin(), pos.end(), neg.begin(), neg.end(), std::back_inserter(all));
  all.erase(std::unique(all.begin(), all.end()), all.end());

  const auto P = static_cast<int64_t>(pos.size());
  const auto N = static_cast<int64_t>(neg.size());
  struct Cand {
    float t;
    double gap;
    int64_t tp, fp;
  };
  // Candidate j in [0, all.size()]: "same" iff score >= all[j] (j == size: nothing is same).
  std::vector<Cand> cands;
  cands.reserve(all.size() + 1);
  std::size_t ip = 0, in = 0;  // counts of pos / neg scores below all[j]
  for (std::size_t j = 0; j <= all.size(); ++j) {
    const float hi = j < all.size() ? all[j] : std::numeric_limits<float>::infinity();
    while (ip < pos.size() && pos[ip] < hi) ++ip;
    while (in < neg.size() && neg[in] < hi) ++in;
    Cand c{};
    c.tp = P - static_cast<int64_t>(ip);
    c.fp = N - static_cast<int64_t>(in);
    if (j == 0) {
      c.t = all[0];
      c.gap = 0.0;
    } else if (j == all.size()) {
      c.t = std::nextafter(all.back(), std::numeric_limits<float>::infinity());
      c.gap = 0.0;
    } else {
      const float lo = all[j - 1];
      float t = static_cast<float>((static_cast<double>(lo) + hi) / 2.0);
      if (!(t > lo)) t = hi;
      c.t = t;
      c.gap = static_cast<double>(hi) - lo;
    }
    cands.push_back(c);
  }

  auto accuracy = [&](const Cand& c) {
    return static_cast<double>(c.tp + (N - c.fp)) / static_cast<double>(P + N);
  };
  auto precision = [](const Cand& c) {
    return c.tp + c.fp == 0 ? 1.0 : static_cast<double>(c.tp) / static_cast<double>(c.tp + c.fp);
  };
  constexpr std::size_t none = static_cast<std::size_t>(-1);
  std::size_t best = none;
  bool met = true;
  if (options.target_precision <= 0.0) {
    best = 0;
    for (std::size_t i = 1; i < cands.size(); ++i) {
      const double a = accuracy(cands[i]), b = accuracy(cands[best]);
      if (a > b || (a == b && cands[i].gap > cands[best].gap)) best = i;
    }
  } else {
    // Lowest threshold (candidates are in increasing order) that calls something same and
    // reaches the precision.
    for (std::size_t i = 0; i < cands.size() && best == none; ++i)
      if (cands[i].tp > 0 && precision(cands[i]) >= options.target_precision) best = i;
    if (best == none) {
      met = false;
      for (std::size_t i = 0; i < cands.size(); ++i)
        if (cands[i].tp > 0 && (best == none || precision(cands[i]) > precision(cands[best])))
          best = i;
    }
  }
  const Cand& c = cands[best];
  Calibration r;
  r.threshold = c.t;
  r.accuracy = accuracy(c);
  r.precision = precision(c);
  r.recall = static_cast<double>(c.tp) / static_cast<double>(P);
  r.specificity = static_cast<double>(N - c.fp) / static_cast<double>(N);
  r.same_pairs = P;
  r.different_pairs = N;
  r.target_met = met;
  return r;
}

}  // namespace imgsim::similarity
