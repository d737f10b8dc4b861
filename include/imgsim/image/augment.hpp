// Augmentations and edits on Image (docs/augmentation.md).
//
// Three layers:
//
// * Deterministic operations with explicit parameters: flips, rotation, colour adjustments,
//   grayscale, Gaussian blur, JPEG re-encoding, text and logo overlays, borders, padding,
//   crops. Operations that keep the size work in place on an Image&; the others write into a
//   destination Image whose storage is reused (the `_into` forms) or return a new one.
// * Random operations: parameter structs holding ranges (RandomResizedCrop, ColorJitter, ...),
//   applied with augment_into(src, dst, op, rng), which draws every random choice from `rng`
//   (the same seed gives the same result), and the Augmenter pipeline: a list of steps, each
//   applied with a probability.
// * Edits: one precisely specified change (crop keeping 80% of each side, JPEG quality 35, ...)
//   as a value that can be written to and read from a line of text, applied by apply_edit.
//   random_edit draws one in the ranges of the near-duplicate benchmark (EditRanges).
//
// Conventions: pixels stay in [0, 1] (results are clamped); on RGBA images colour operations
// leave alpha alone and geometric ones interpolate with alpha-weighted colours; on gray images
// a Color becomes its BT.601 luma 0.299 R + 0.587 G + 0.114 B, and saturation and hue have no
// effect. Invalid parameters throw InvalidArgument naming the operation and the value; an empty
// source image is an InvalidArgument too. Nothing allocates per pixel: scratch buffers are
// per-thread and reused. All functions may be called from several threads on different images.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "imgsim/image/image.hpp"
#include "imgsim/rng.hpp"

namespace imgsim::image {

// A straight-alpha colour, components in [0, 1]. `a` is used where an RGBA image receives a fill
// (rotation corners, borders, padding); overlays use their own opacity instead.
struct Color {
  float r = 0.0f;
  float g = 0.0f;
  float b = 0.0f;
  float a = 1.0f;
};

// --- geometry --------------------------------------------------------------------------------

// Mirror left-right / top-bottom, in place.
void flip_horizontal(Image& img);
void flip_vertical(Image& img);

// Copies the width x height rectangle at (x, y) (inside the image, InvalidArgument otherwise)
// into dst, reusing its storage.
void crop_into(const Image& src, Image& dst, int x, int y, int width, int height);

struct CropRect {
  int x = 0;
  int y = 0;
  int width = 0;
  int height = 0;
};
// crop_into followed by resize_into(width, height, filter).
void resized_crop_into(const Image& src, Image& dst, const CropRect& rect, int width, int height,
                       ResizeFilter filter = ResizeFilter::automatic);

struct RotateOptions {
  // Colour of output pixels whose source lies outside the image.
  Color fill{};
  // Output only the largest centred rectangle with the source's aspect ratio that holds no fill
  // (rotated_valid_size), instead of a source-sized image with filled corners.
  bool crop_to_valid = false;
};
// Rotates counter-clockwise by `degrees` (any finite value) about the image centre with
// bilinear sampling. Pixel centres sit at integer coordinates; an output pixel samples the
// source at its inverse-rotated centre, the source clamped to its border pixels within half a
// pixel of the edge and `fill` beyond.
void rotate_into(const Image& src, Image& dst, float degrees, const RotateOptions& options = {});
Image rotate(const Image& src, float degrees, const RotateOptions& options = {});
// Size of rotate's crop_to_valid output: s * width x s * height (rounded down, at least 1) with
// s = min(W / (W |cos| + H |sin|), H / (W |sin| + H |cos|)).
CropRect rotated_valid_size(int width, int height, float degrees);

struct Borders {
  int top = 0;
  int right = 0;
  int bottom = 0;
  int left = 0;
};
// Surrounds the image with a solid frame; each side >= 0 and the result at most kMaxImageSide.
void add_border_into(const Image& src, Image& dst, const Borders& borders, Color color = {});
Image add_border(const Image& src, const Borders& borders, Color color = {});
// Letterboxing: the borders that bring width / height to `aspect` (> 0) by padding the short
// dimension, split evenly (the extra pixel of an odd split goes right / bottom).
Borders pad_to_aspect_borders(int width, int height, float aspect);
void pad_to_aspect_into(const Image& src, Image& dst, float aspect, Color color = {});
Image pad_to_aspect(const Image& src, float aspect, Color color = {});

// --- colour (in place; as torchvision.transforms.functional) -------------------------------

// Scales every colour value by factor >= 0.
void adjust_brightness(Image& img, float factor);
// Blends with the mean luma of the whole image: m + factor * (v - m); factor >= 0.
void adjust_contrast(Image& img, float factor);
// Blends each pixel with its own luma: l + factor * (v - l); factor >= 0 (0 gives gray).
void adjust_saturation(Image& img, float factor);
// Rotates the hue of every pixel by `shift` turns (HSV), shift in [-0.5, 0.5].
void adjust_hue(Image& img, float shift);
// Replaces R, G and B by the luma (the channel count stays); gray images are unchanged.
void to_grayscale(Image& img);

// --- filters and re-encoding -----------------------------------------------------------------

// Radius of gaussian_blur's kernel: ceil(3 sigma), at least 1.
int gaussian_radius(float sigma);
// Separable Gaussian blur, sigma in (0, 1000]; the kernel is sampled at integer offsets within
// gaussian_radius(sigma) and normalised; edges are mirrored (d c b | a b c d | c b a).
void gaussian_blur(Image& img, float sigma);
// Encodes as JPEG at `quality` (1..100) with stb_image_write in memory and decodes it back;
// gray stays gray (via luma), alpha is kept as it was.
void jpeg_reencode(Image& img, int quality);

// --- text and logo overlays ------------------------------------------------------------------

// The built-in font: printable ASCII (32..126), each glyph 5 x 7 dots; characters advance by
// 6 dots and lines by 8 ('\n' starts a new line). Other characters draw as '?'.
inline constexpr int kGlyphWidth = 5;
inline constexpr int kGlyphHeight = 7;
inline constexpr int kGlyphAdvance = 6;
inline constexpr int kLineAdvance = 8;
// Rows of glyph `c` top to bottom; bit 4 is the leftmost dot.
std::array<uint8_t, kGlyphHeight> glyph_bitmap(char c);

struct TextSize {
  int width = 0;
  int height = 0;
};
// Size of the box draw_text can touch: (longest line * 6 - 1) * scale by (lines * 8 - 1) *
// scale; 0 x 0 for empty text.
TextSize measure_text(std::string_view text, int scale);

struct TextStyle {
  int x = 0;  // top-left corner of the text box, may lie outside the image (clipped)
  int y = 0;
  int scale = 1;  // each font dot is a scale x scale square, 1..1024
  Color color{1.0f, 1.0f, 1.0f, 1.0f};
  float opacity = 1.0f;  // in [0, 1]
};
// Draws the text with alpha blending; only pixels inside the measure_text box change.
void draw_text(Image& img, std::string_view text, const TextStyle& style);

// A procedural logo: an RGBA size x size image, transparent outside 2 to 4 anti-aliased shapes
// (discs, rings, rectangles, bars) whose layout and colours follow from `seed`.
Image make_logo(uint64_t seed, int size);
void make_logo_into(uint64_t seed, int size, Image& dst);
// Alpha-composites `overlay` (1, 3 or 4 channels; its alpha times `opacity`) onto `dst` with
// its top-left corner at (x, y), after scaling it by `scale` (> 0). Parts outside dst are
// clipped. On an RGBA dst this is the "over" operator.
void overlay_image(Image& dst, const Image& overlay, int x, int y, float opacity = 1.0f,
                   float scale = 1.0f);

// --- random operations -----------------------------------------------------------------------
// Each struct holds the ranges one random operation draws from; augment_into applies it.
// "uniform in [a, b]" means Rng::uniform(a, b).

// torchvision RandomResizedCrop: up to 10 tries of area fraction uniform in [scale_min,
// scale_max] and aspect ratio log-uniform in [ratio_min, ratio_max], sides rounded; the first
// that fits is placed uniformly; otherwise a centred crop clamped to the ratio range. The crop
// is resized to width x height.
struct RandomResizedCrop {
  int width = 224;
  int height = 224;
  float scale_min = 0.08f;
  float scale_max = 1.0f;
  float ratio_min = 3.0f / 4.0f;
  float ratio_max = 4.0f / 3.0f;
  ResizeFilter filter = ResizeFilter::automatic;
};
// The rectangle RandomResizedCrop would cut from a width x height image.
CropRect random_resized_crop_rect(int width, int height, const RandomResizedCrop& params, Rng& rng);
// Always flips; give the Augmenter step a probability for a random flip.
struct HorizontalFlip {};
struct VerticalFlip {};
// Angle uniform in [-max_degrees, max_degrees].
struct RandomRotation {
  float max_degrees = 15.0f;
  RotateOptions options{};
};
// torchvision ColorJitter: factors uniform in [max(0, 1 - x), 1 + x] for brightness, contrast
// and saturation, hue shift uniform in [-hue, hue] (hue <= 0.5); 0 disables one. The enabled
// adjustments run in a random order.
struct ColorJitter {
  float brightness = 0.0f;
  float contrast = 0.0f;
  float saturation = 0.0f;
  float hue = 0.0f;
};
struct Grayscale {};
// sigma uniform in [sigma_min, sigma_max].
struct GaussianBlur {
  float sigma_min = 0.1f;
  float sigma_max = 2.0f;
};
// quality uniform integer in [quality_min, quality_max] (1..100).
struct JpegCompression {
  int quality_min = 30;
  int quality_max = 95;
};
// Random text: length uniform in [min_length, max_length] (letters, digits, spaces, some
// punctuation), glyph height a fraction uniform in [height_min, height_max] of the image
// height, random colour, opacity uniform in [opacity_min, opacity_max], placed uniformly so the
// box lies inside the image when it fits.
struct TextOverlay {
  int min_length = 4;
  int max_length = 16;
  float height_min = 0.05f;
  float height_max = 0.15f;
  float opacity_min = 0.5f;
  float opacity_max = 1.0f;
};
// A make_logo with a random seed, side a fraction uniform in [size_min, size_max] of the shorter
// image side, opacity uniform in [opacity_min, opacity_max], placed uniformly inside.
struct LogoOverlay {
  float size_min = 0.1f;
  float size_max = 0.3f;
  float opacity_min = 0.5f;
  float opacity_max = 1.0f;
};
// The same frame width on every side: a fraction uniform in [fraction_min, fraction_max] of the
// shorter side (rounded); colour uniform random (alpha 1) or `color`.
struct RandomBorder {
  float fraction_min = 0.02f;
  float fraction_max = 0.1f;
  bool random_color = true;
  Color color{};
};
// Deterministic steps, for pipelines.
struct PadToAspect {
  float aspect = 1.0f;
  Color color{};
};
struct Resize {
  int width = 224;
  int height = 224;
  ResizeFilter filter = ResizeFilter::automatic;
};
// Any other operation: fn(src, dst, rng) writes its result into dst (never the same object as
// src) and draws its randomness from rng.
struct CustomAugment {
  std::string name;
  std::function<void(const Image& src, Image& dst, Rng& rng)> fn;
};

using AugmentOp = std::variant<RandomResizedCrop, HorizontalFlip, VerticalFlip, RandomRotation,
                               ColorJitter, Grayscale, GaussianBlur, JpegCompression, TextOverlay,
                               LogoOverlay, RandomBorder, PadToAspect, Resize, CustomAugment>;

// Short name: "random_resized_crop", "horizontal_flip", ..., or a CustomAugment's name.
std::string augment_op_name(const AugmentOp& op);
// Throws InvalidArgument if the parameters are out of range.
void validate_augment_op(const AugmentOp& op);
// Applies op to src with random choices drawn from rng; src and dst may be the same object.
void augment_into(const Image& src, Image& dst, const AugmentOp& op, Rng& rng);
Image augment(const Image& src, const AugmentOp& op, Rng& rng);

// A pipeline: steps run in order, each with its probability (one rng.uniform() per step decides,
// then the step draws its own choices). The same seed and source give the same result.
class Augmenter {
 public:
  struct Step {
    AugmentOp op;
    float probability = 1.0f;
  };

  Augmenter() = default;
  // Appends a step; InvalidArgument if op's parameters or probability (in [0, 1]) are invalid.
  Augmenter& add(AugmentOp op, float probability = 1.0f);
  const std::vector<Step>& steps() const { return steps_; }
  bool empty() const { return steps_.empty(); }

  // src and dst may be the same object. Reuses dst's storage and one per-thread scratch image.
  void apply_into(const Image& src, Image& dst, Rng& rng) const;
  Image apply(const Image& src, Rng& rng) const;

  // SimCLR-style views for contrastive training: random resized crop to size x size (scale
  // 0.2..1), horizontal flip (p 0.5), colour jitter 0.4/0.4/0.4/0.1 (p 0.8), grayscale (p 0.2),
  // Gaussian blur sigma 0.1..2 (p 0.5).
  static Augmenter simclr(int size);
  // Near-duplicate style views: crop (scale 0.25..1, ratio 3/4..4/3), flip (p 0.5), rotation up
  // to 15 degrees cropped to valid (p 0.3), jitter 0.4/0.4/0.4/0.05 (p 0.8), grayscale (p 0.1),
  // blur (p 0.2), text (p 0.2), logo (p 0.2), border (p 0.1), JPEG 20..90 (p 0.5), then
  // resize to size x size.
  static Augmenter near_duplicate(int size);

 private:
  std::vector<Step> steps_;
};

// --- batch augmentation on tensors ------------------------------------------------------------

// Random erasing (Zhong et al., "Random Erasing Data Augmentation", AAAI 2020; as
// torchvision.transforms.RandomErasing with value="random"): with `probability`, a rectangle of
// area U(area_min, area_max) x H x W and aspect ratio (height / width) log-uniform in
// [aspect_min, 1 / aspect_min] is placed uniformly inside the image and every one of its values,
// in every channel, is replaced by U(0, 1). Up to 10 draws of the rectangle; if none fits the
// image is left alone.
struct RandomErasing {
  float probability = 0.5f;
  float area_min = 0.02f;
  float area_max = 0.4f;
  float aspect_min = 0.3f;
};
// On every image of an (N, C, H, W) batch (values in [0, 1], before normalisation), in place,
// drawing from rng. ShapeError for another rank; InvalidArgument for a probability outside
// [0, 1], areas outside 0 < area_min <= area_max <= 1 or aspect_min outside (0, 1].
void random_erasing(Tensor& batch, const RandomErasing& options, Rng& rng);

// --- edits -----------------------------------------------------------------------------------
// One exactly specified change, for building benchmarks. Positions and sizes are fractions of
// the image so an edit means the same on any image size. Anchors place a box between the left /
// top edge (0) and the right / bottom edge (1): x0 = round(anchor * (image side - box side)).

namespace edit {
// Keeps round(keep_width * W) x round(keep_height * H) pixels (at least 1); keep in (0, 1].
struct Crop {
  float keep_width = 0.8f;
  float keep_height = 0.8f;
  float anchor_x = 0.5f;
  float anchor_y = 0.5f;
};
// Resizes to round(factor * W) x round(factor * H) (at least 1); factor in (0, 16].
struct Scale {
  float factor = 0.5f;
};
struct Jpeg {
  int quality = 50;  // 1..100
};
struct Rotate {
  float degrees = 0.0f;  // counter-clockwise, |degrees| <= 360
  bool crop_to_valid = false;
  Color fill{};
};
struct FlipH {};
struct FlipV {};
struct Brightness {
  float factor = 1.0f;  // >= 0
};
struct Contrast {
  float factor = 1.0f;  // >= 0
};
struct Saturation {
  float factor = 1.0f;  // >= 0
};
struct Hue {
  float shift = 0.0f;  // turns, [-0.5, 0.5]
};
struct Grayscale {};
struct Blur {
  float sigma = 1.0f;  // (0, 1000]
};
// Glyph height (7 font dots) is `height` (in (0, 1]) of the image height: scale =
// max(1, round(height * H / 7)).
struct Text {
  std::string text = "imgsim";
  float anchor_x = 0.5f;
  float anchor_y = 0.5f;
  float height = 0.1f;
  Color color{1.0f, 1.0f, 1.0f, 1.0f};
  float opacity = 1.0f;
};
// make_logo(seed, round(size * min(W, H))), size in (0, 1].
struct Logo {
  uint64_t seed = 1;
  float anchor_x = 0.5f;
  float anchor_y = 0.5f;
  float size = 0.2f;
  float opacity = 1.0f;
};
// The same frame on every side: round(width * min(W, H)) pixels, width in [0, 1].
struct Border {
  float width = 0.05f;
  Color color{};
};
// Letterbox to aspect W / H = `aspect` in [1/16, 16].
struct Pad {
  float aspect = 1.0f;
  Color color{};
};
}  // namespace edit

// The kinds in the order of the Edit alternatives.
enum class EditKind {
  crop,
  scale,
  jpeg,
  rotate,
  flip_h,
  flip_v,
  brightness,
  contrast,
  saturation,
  hue,
  grayscale,
  blur,
  text,
  logo,
  border,
  pad
};
inline constexpr int kEditKindCount = 16;

using Edit =
    std::variant<edit::Crop, edit::Scale, edit::Jpeg, edit::Rotate, edit::FlipH, edit::FlipV,
                 edit::Brightness, edit::Contrast, edit::Saturation, edit::Hue, edit::Grayscale,
                 edit::Blur, edit::Text, edit::Logo, edit::Border, edit::Pad>;

EditKind edit_kind(const Edit& e);
// "crop", "scale", "jpeg", "rotate", "flip_h", "flip_v", "brightness", "contrast",
// "saturation", "hue", "grayscale", "blur", "text", "logo", "border", "pad".
std::string_view edit_kind_name(EditKind kind);
EditKind parse_edit_kind(std::string_view name);  // InvalidArgument if unknown
// An edit of that kind with default parameters.
Edit default_edit(EditKind kind);

// Throws InvalidArgument if a parameter is out of its documented range.
void validate_edit(const Edit& e);
void apply_edit_into(const Image& src, Image& dst, const Edit& e);
Image apply_edit(const Image& src, const Edit& e);

// One line, "kind key=value ...", with every parameter; floats with 9 significant digits (they
// read back exactly), colours "r,g,b,a", text in double quotes with \" and \\ escaped.
std::string to_string(const Edit& e);
// Reads that form; keys may be omitted (defaults) but not unknown or repeated. The result is
// validated. InvalidArgument naming the problem otherwise.
Edit parse_edit(std::string_view line);

// The near-duplicate benchmark's ranges for random_edit.
struct EditRanges {
  float crop_keep_min = 0.5f;  // each side independently
  float crop_keep_max = 0.95f;
  float scale_min = 0.25f;
  float scale_max = 0.75f;
  int jpeg_quality_min = 20;
  int jpeg_quality_max = 90;
  float rotate_max_degrees = 15.0f;  // crop_to_valid with probability 0.5, else black fill
  float brightness_min = 0.6f;
  float brightness_max = 1.4f;
  float contrast_min = 0.6f;
  float contrast_max = 1.4f;
  float saturation_min = 0.4f;
  float saturation_max = 1.6f;
  float hue_max = 0.1f;
  float blur_sigma_min = 0.5f;
  float blur_sigma_max = 2.5f;
  int text_length_min = 4;
  int text_length_max = 16;
  float text_height_min = 0.05f;
  float text_height_max = 0.15f;
  float overlay_opacity_min = 0.5f;  // text and logo
  float overlay_opacity_max = 1.0f;
  float logo_size_min = 0.1f;
  float logo_size_max = 0.3f;
  float border_width_min = 0.02f;
  float border_width_max = 0.1f;
  float pad_aspect_min = 0.5f;  // log-uniform
  float pad_aspect_max = 2.0f;
};
// An edit of `kind` with parameters drawn uniformly from `ranges` (anchors uniform in [0, 1],
// colours uniform, logo seeds from rng).
Edit random_edit(EditKind kind, Rng& rng, const EditRanges& ranges = {});

}  // namespace imgsim::image
