// pHash: a 64-bit perceptual hash from the discrete cosine transform of a 32 x 32 grayscale
// thumbnail, the classic baseline for near-duplicate detection (docs/phash.md specifies every
// step exactly).
//
//   uint64_t a = imgsim::similarity::phash(imgsim::image::load_image("a.jpg"));
//   uint64_t b = imgsim::similarity::phash(imgsim::image::load_image("b.jpg"));
//   double s = imgsim::similarity::phash_similarity(a, b);   // 1 - hamming(a, b) / 64
//
// Steps: (1) luma 0.299 R + 0.587 G + 0.114 B (alpha ignored), (2) area-average ("box") resize
// to 32 x 32, (3) orthonormal 2-D DCT-II, (4) the 64 coefficients C[u][v] with 1 <= u, v <= 8
// (u vertical, v horizontal frequency; the DC term, row u = 0 and column v = 0 are left out),
// (5) bit set where the coefficient is greater than the median of the 64 (the mean of the 32nd
// and 33rd smallest), (6) coefficient k = 8 (u - 1) + (v - 1) is bit 63 - k, so the hexadecimal
// form reads the block row by row, four coefficients per digit. Everything is computed in
// double. A flat thumbnail (every selected |coefficient| <= 1e-9) hashes to 0.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "imgsim/image/image.hpp"

namespace imgsim::similarity {

inline constexpr int kPhashSize = 32;  // thumbnail side
inline constexpr int kPhashBlock = 8;  // coefficients kept per axis
inline constexpr int kPhashBits = 64;

// A 32 x 32 grid of doubles, row-major (index y * 32 + x), or its DCT (index u * 32 + v).
using PhashGrid = std::array<double, kPhashSize * kPhashSize>;

// Steps 1 and 2: the luma thumbnail, values in [0, 1]. InvalidArgument for an empty image.
PhashGrid phash_thumbnail(const image::Image& img);
// Step 3 on the whole grid: C[u][v] = a(u) a(v) sum_y sum_x f[y][x] cos(pi (2y + 1) u / 64)
// cos(pi (2x + 1) v / 64), a(0) = sqrt(1/32), a(k > 0) = sqrt(2/32). Separable, O(32^3).
PhashGrid dct2_32(const PhashGrid& pixels);
// Steps 4 to 6 from a full coefficient grid (only 1 <= u, v <= 8 are read).
uint64_t phash_from_dct(const PhashGrid& coefficients);
// All steps. InvalidArgument for an empty image.
uint64_t phash(const image::Image& img);

// Number of differing bits, 0..64.
int hamming_distance(uint64_t a, uint64_t b);
// 1 - hamming_distance(a, b) / 64: 1 for equal hashes, about 0.5 for unrelated images.
double phash_similarity(uint64_t a, uint64_t b);

// 16 lower-case hexadecimal digits, most significant first.
std::string phash_to_hex(uint64_t hash);
// Reads exactly 16 hexadecimal digits (either case); InvalidArgument otherwise.
uint64_t phash_from_hex(std::string_view hex);

}  // namespace imgsim::similarity
