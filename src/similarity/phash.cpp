// pHash (docs/phash.md): luma, area-average resize to 32 x 32, orthonormal DCT-II, median
// threshold of the 8 x 8 block 1 <= u, v <= 8.
#include "imgsim/similarity/phash.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <numbers>
#include <vector>

#include "imgsim/error.hpp"

namespace imgsim::similarity {
namespace {

constexpr int kN = kPhashSize;

// Area-average weights for shrinking or stretching n samples onto kN: output i covers the
// source interval [i n / kN, (i + 1) n / kN), source sample s covers [s, s + 1).
struct Span {
  int first = 0;
  std::vector<double> weights;  // overlap lengths divided by the interval length
};

std::array<Span, kN> box_spans(int n) {
  std::array<Span, kN> spans;
  const double scale = static_cast<double>(n) / kN;
  for (int i = 0; i < kN; ++i) {
    const double lo = i * scale;
    const double hi = (i + 1) * scale;
    const int first = static_cast<int>(std::floor(lo));
    const int last = std::min(n - 1, static_cast<int>(std::ceil(hi)) - 1);
    Span& s = spans[static_cast<std::size_t>(i)];
    s.first = first;
    for (int x = first; x <= last; ++x) {
      const double overlap = std::min(hi, x + 1.0) - std::max(lo, static_cast<double>(x));
      s.weights.push_back(std::max(0.0, overlap) / scale);
    }
  }
  return spans;
}

// The orthonormal DCT-II basis: row u, column x.
const PhashGrid& dct_basis() {
  static const PhashGrid basis = [] {
    PhashGrid b{};
    for (int u = 0; u < kN; ++u) {
      const double a = u == 0 ? std::sqrt(1.0 / kN) : std::sqrt(2.0 / kN);
      for (int x = 0; x < kN; ++x)
        b[static_cast<std::size_t>(u * kN + x)] =
            a * std::cos(std::numbers::pi * (2 * x + 1) * u / (2.0 * kN));
    }
    return b;
  }();
  return basis;
}

}  // namespace

PhashGrid phash_thumbnail(const image::Image& img) {
  if (img.empty()) throw InvalidArgument("phash: empty image");
  const int w = img.width();
  const int h = img.height();
  const int c = img.channels();

  // Step 1: luma in double (alpha ignored).
  std::vector<double> gray(static_cast<std::size_t>(w) * static_cast<std::size_t>(h));
  for (int y = 0; y < h; ++y) {
    const float* row = img.row(y);
    double* out = gray.data() + static_cast<std::size_t>(y) * static_cast<std::size_t>(w);
    for (int x = 0; x < w; ++x) {
      const float* p = row + static_cast<std::size_t>(x) * static_cast<std::size_t>(c);
      out[x] = c == 1 ? static_cast<double>(p[0])
                      : 0.299 * static_cast<double>(p[0]) + 0.587 * static_cast<double>(p[1]) +
                            0.114 * static_cast<double>(p[2]);
    }
  }

  // Step 2: area average, horizontally (h x 32) then vertically (32 x 32).
  const std::array<Span, kN> xs = box_spans(w);
  const std::array<Span, kN> ys = box_spans(h);
  std::vector<double> rows(static_cast<std::size_t>(h) * kN);
  for (int y = 0; y < h; ++y) {
    const double* in = gray.data() + static_cast<std::size_t>(y) * static_cast<std::size_t>(w);
    for (int i = 0; i < kN; ++i) {
      const Span& s = xs[static_cast<std::size_t>(i)];
      double sum = 0.0;
      for (std::size_t k = 0; k < s.weights.size(); ++k)
        sum += s.weights[k] * in[static_cast<std::size_t>(s.first) + k];
      rows[static_cast<std::size_t>(y) * kN + static_cast<std::size_t>(i)] = sum;
    }
  }
  PhashGrid out{};
  for (int j = 0; j < kN; ++j) {
    const Span& s = ys[static_cast<std::size_t>(j)];
    for (int i = 0; i < kN; ++i) {
      double sum = 0.0;
      for (std::size_t k = 0; k < s.weights.size(); ++k)
        sum += s.weights[k] *
               rows[(static_cast<std::size_t>(s.first) + k) * kN + static_cast<std::size_t>(i)];
      out[static_cast<std::size_t>(j * kN + i)] = sum;
    }
  }
  return out;
}

PhashGrid dct2_32(const PhashGrid& f) {
  const PhashGrid& b = dct_basis();
  // t[y][v] = sum_x f[y][x] b[v][x]; c[u][v] = sum_y b[u][y] t[y][v].
  PhashGrid t{};
  for (int y = 0; y < kN; ++y)
    for (int v = 0; v < kN; ++v) {
      double sum = 0.0;
      for (int x = 0; x < kN; ++x)
        sum += f[static_cast<std::size_t>(y * kN + x)] * b[static_cast<std::size_t>(v * kN + x)];
      t[static_cast<std::size_t>(y * kN + v)] = sum;
    }
  PhashGrid c{};
  for (int u = 0; u < kN; ++u)
    for (int v = 0; v < kN; ++v) {
      double sum = 0.0;
      for (int y = 0; y < kN; ++y)
        sum += b[static_cast<std::size_t>(u * kN + y)] * t[static_cast<std::size_t>(y * kN + v)];
      c[static_cast<std::size_t>(u * kN + v)] = sum;
    }
  return c;
}

uint64_t phash_from_dct(const PhashGrid& coefficients) {
  std::array<double, kPhashBits> block{};
  double max_abs = 0.0;
  for (int u = 1; u <= kPhashBlock; ++u)
    for (int v = 1; v <= kPhashBlock; ++v) {
      const double value = coefficients[static_cast<std::size_t>(u * kN + v)];
      block[static_cast<std::size_t>((u - 1) * kPhashBlock + (v - 1))] = value;
      max_abs = std::max(max_abs, std::abs(value));
    }
  if (!(max_abs > 1e-9)) return 0;  // flat thumbnail (or NaN): no structure to hash
  std::array<double, kPhashBits> sorted = block;
  std::sort(sorted.begin(), sorted.end());
  const double median = 0.5 * (sorted[kPhashBits / 2 - 1] + sorted[kPhashBits / 2]);
  uint64_t hash = 0;
  for (int k = 0; k < kPhashBits; ++k)
    if (block[static_cast<std::size_t>(k)] > median) hash |= uint64_t{1} << (kPhashBits - 1 - k);
  return hash;
}

uint64_t phash(const image::Image& img) {
  return phash_from_dct(dct2_32(phash_thumbnail(img)));
}

int hamming_distance(uint64_t a, uint64_t b) {
  return std::popcount(a ^ b);
}

double phash_similarity(uint64_t a, uint64_t b) {
  return 1.0 - static_cast<double>(hamming_distance(a, b)) / kPhashBits;
}

std::string phash_to_hex(uint64_t hash) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(16, '0');
  for (int i = 15; i >= 0; --i) {
    out[static_cast<std::size_t>(i)] = kDigits[hash & 0xF];
    hash >>= 4;
  }
  return out;
}

uint64_t phash_from_hex(std::string_view hex) {
  if (hex.size() != 16)
    throw InvalidArgument("phash_from_hex: expected 16 hexadecimal digits, got \"" +
                          std::string(hex) + "\"");
  uint64_t out = 0;
  for (const char ch : hex) {
    int d = -1;
    if (ch >= '0' && ch <= '9') d = ch - '0';
    if (ch >= 'a' && ch <= 'f') d = ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') d = ch - 'A' + 10;
    if (d < 0)
      throw InvalidArgument("phash_from_hex: not a hexadecimal digit in \"" + std::string(hex) +
                            "\"");
    out = (out << 4) | static_cast<uint64_t>(d);
  }
  return out;
}

}  // namespace imgsim::similarity
