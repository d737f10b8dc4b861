// Convolution and pooling kernels: the batch im2col / col2im tiles and 2x2 max pooling of every
// ISA this CPU runs against the scalar references, and Conv2D's tiled, threaded lowering against
// a direct loop and across thread counts.
//
// The tile kernels only move floats (im2col) or add one contribution per matrix row into each
// image position in the same (c, r, s) order (col2im), so every ISA must match the reference
// bit for bit. Max pooling only compares, so it must match exactly too, NaN and ties included.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <sstream>
#include <vector>

#include <catch2/catch.hpp>

#include "imgsim/nn/layers.hpp"
#include "imgsim/runtime/cpu.hpp"
#include "kernels/im2col.hpp"
#include "kernels/kernels.hpp"
#include "kernels/winograd.hpp"
#include "nn/conv_algo.hpp"

using namespace imgsim;
using namespace imgsim::kernels;

namespace {

constexpr float kSentinel = 12345.5f;

std::vector<Isa> runnable_isas() {
  std::vector<Isa> v;
  for (Isa isa : {Isa::scalar, Isa::avx2, Isa::avx512})
    if (static_cast<int>(isa) <= static_cast<int>(detected_isa())) v.push_back(isa);
  return v;
}

bool same_bits(float a, float b) {
  return std::memcmp(&a, &b, sizeof a) == 0;
}

// The direct first-layer kernels' formulas in double (activation codes 0 linear, 1 relu, 2 leaky
// relu with slope 0.1): filter k's output at conv position (p, q) of a C x H x W image, bias (or
// null) added and activation applied; and a gradient dy act'(y).
double conv_formula(const std::vector<float>& x, const std::vector<float>& w, const float* bias,
                    int64_t C, int64_t H, int64_t W, int64_t k, int64_t p, int64_t q, int act) {
  double z = bias ? bias[k] : 0.0;
  for (int64_t c = 0; c < C; ++c)
    for (int64_t r = 0; r < 3; ++r)
      for (int64_t s = 0; s < 3; ++s)
        z += double(w[static_cast<size_t>(((k * C + c) * 3 + r) * 3 + s)]) *
             x[static_cast<size_t>((c * H + p + r) * W + q + s)];
  return act == 1 ? (z > 0 ? z : 0) : act == 2 ? (z > 0 ? z : 0.1 * z) : z;
}
double grad_formula(float dy, float y, int act) {
  return act != 0 && !(y > 0.0f) ? (act == 2 ? 0.1 * dy : 0.0) : dy;
}

// The direct gradients leave 16 lanes of partial sums per weight (9 C, then the bias) and filter:
// for each, the lanes of got must sum to those of acc0 plus the formula's terms, within 1e-5 of
// the magnitudes. each(k, f) calls f(g, p, q) for every output filter k takes a product of: its
// gradient g and the conv position (p, q) of its patch.
template <class Each>
void check_lane_sums(const std::vector<float>& acc0, const std::vector<float>& got,
                     const std::vector<float>& x, int64_t C, int64_t H, int64_t W, int64_t K,
                     Each each) {
  const int64_t nw = 9 * C + 1;
  for (int64_t k = 0; k < K; ++k)
    for (int64_t wi = 0; wi < nw; ++wi) {
      double sum = 0, exact = 0, mag = 0;
      for (int l = 0; l < 16; ++l) {
        const auto e = static_cast<size_t>((k * nw + wi) * 16 + l);
        sum += got[e];
        exact += acc0[e];
        mag += std::fabs(acc0[e]);
      }
      const int64_t c = wi / 9, r = wi % 9 / 3, s = wi % 3;
      each(k, [&](double g, int64_t p, int64_t q) {
        const double term =
            wi < nw - 1 ? g * x[static_cast<size_t>((c * H + p + r) * W + q + s)] : g;
        exact += term;
        mag += std::fabs(term);
      });
      CHECK(std::fabs(sum - exact) <= 1e-5 * (1.0 + mag));
    }
}

// Geometries: channels, height, width, kernel, stride, top/left pad, output size (bottom/right
// padding implied), including padded, strided, 1x1 and single-row/column outputs.
struct Geo {
  const char* label;
  Im2colGeometry g;
};
const Geo kGeos[] = {
    {"3x9x8 k3 valid", {3, 9, 8, 3, 3, 1, 1, 0, 0, 7, 6}},
    {"2x13x13 k3 valid (Fashion-MNIST conv2 rows)", {2, 13, 13, 3, 3, 1, 1, 0, 0, 11, 11}},
    {"1x28x28 k3 valid", {1, 28, 28, 3, 3, 1, 1, 0, 0, 26, 26}},
    {"2x7x6 k3x2 s2 same", {2, 7, 6, 3, 2, 2, 2, 1, 0, 4, 3}},
    {"3x6x5 k4 same (1/2)", {3, 6, 5, 4, 4, 1, 1, 1, 1, 6, 5}},
    {"2x6x7 k3 s2x1 pad 1x2", {2, 6, 7, 3, 3, 2, 1, 1, 2, 3, 9}},
    {"1x3x3 k5 pad 2", {1, 3, 3, 5, 5, 1, 1, 2, 2, 3, 3}},
    {"3x5x4 k1", {3, 5, 4, 1, 1, 1, 1, 0, 0, 5, 4}},
    {"2x1x1 k3 same", {2, 1, 1, 3, 3, 1, 1, 1, 1, 1, 1}},
    {"2x40x37 k3 same (runs longer than 16)", {2, 40, 37, 3, 3, 1, 1, 1, 1, 40, 37}},
};

// Column ranges of a batch of n: everything, one whole image, ranges that start and end inside
// an output row and cross images, single columns.
std::vector<std::pair<int64_t, int64_t>> ranges(int64_t n, int64_t pq, int64_t q,
                                                std::mt19937& rng) {
  const int64_t cols = n * pq;
  std::vector<std::pair<int64_t, int64_t>> r{{0, cols}, {pq, 2 * pq}, {0, 1}, {cols - 1, cols}};
  if (q > 1) r.push_back({q - 1, cols - q + 1});
  std::uniform_int_distribution<int64_t> u(0, cols);
  for (int i = 0; i < 12; ++i) {
    int64_t a = u(rng), b = u(rng);
    if (a > b) std::swap(a, b);
    r.push_back({a, b});
  }
  return r;
}

}  // namespace

TEST_CASE("ref::im2col_tile and col2im_tile_add agree with the per-image references",
          "[kernels][conv]") {
  std::mt19937 rng(7);
  std::normal_distribution<float> nd;
  for (const Geo& geo : kGeos) {
    DYNAMIC_SECTION(geo.label) {
      const Im2colGeometry& g = geo.g;
      const int64_t n = 3, chw = g.channels * g.height * g.width, pq = g.out_h * g.out_w;
      const int64_t crs = g.channels * g.kernel_h * g.kernel_w, cols = n * pq;
      std::vector<float> x(static_cast<size_t>(n * chw));
      for (float& v : x) v = nd(rng);
      // The whole batch through the tile function equals image by image through ref::im2col.
      std::vector<float> tile(static_cast<size_t>(crs * cols), kSentinel);
      ref::im2col_tile(g, x.data(), 0, cols, tile.data(), cols);
      std::vector<float> one(static_cast<size_t>(crs * pq));
      for (int64_t i = 0; i < n; ++i) {
        ref::im2col(g, x.data() + i * chw, one.data());
        for (int64_t row = 0; row < crs; ++row)
          for (int64_t j = 0; j < pq; ++j)
            REQUIRE(tile[static_cast<size_t>(row * cols + i * pq + j)] ==
                    one[static_cast<size_t>(row * pq + j)]);
      }
      // col2im of the batch equals image by image.
      std::vector<float> c(static_cast<size_t>(crs * cols));
      for (float& v : c) v = nd(rng);
      std::vector<float> got(x.size(), 0.5f), want(x.size(), 0.5f);
      ref::col2im_tile_add(g, c.data(), cols, 0, cols, got.data());
      for (int64_t i = 0; i < n; ++i) {
        for (int64_t row = 0; row < crs; ++row)
          for (int64_t j = 0; j < pq; ++j)
            one[static_cast<size_t>(row * pq + j)] =
                c[static_cast<size_t>(row * cols + i * pq + j)];
        ref::col2im_add(g, one.data(), want.data() + i * chw);
      }
      for (std::size_t i = 0; i < x.size(); ++i) REQUIRE(got[i] == want[i]);
    }
  }
}

TEST_CASE("im2col_tile and col2im_tile_add: every ISA equals the reference bit for bit",
          "[kernels][conv]") {
  std::mt19937 rng(11);
  std::normal_distribution<float> nd;
  for (Isa isa : runnable_isas()) {
    const KernelTable& t = table_for(isa);
    for (const Geo& geo : kGeos) {
      DYNAMIC_SECTION(to_string(isa) << " " << geo.label) {
        const Im2colGeometry& g = geo.g;
        const int64_t n = 4, chw = g.channels * g.height * g.width, pq = g.out_h * g.out_w;
        const int64_t crs = g.channels * g.kernel_h * g.kernel_w;
        std::vector<float> x(static_cast<size_t>(n * chw));
        for (float& v : x) v = nd(rng);
        for (auto [j0, j1] : ranges(n, pq, g.out_w, rng)) {
          INFO("columns [" << j0 << ", " << j1 << ")");
          const int64_t w = j1 - j0, ld = w + 3;  // padded rows: the pad must survive
          // im2col: NaN-filled output, sentinel padding.
          std::vector<float> want(static_cast<size_t>(crs * ld + 1), kSentinel),
              got(static_cast<size_t>(crs * ld + 1), kSentinel);
          for (int64_t row = 0; row < crs; ++row)
            for (int64_t j = 0; j < w; ++j)
              got[static_cast<size_t>(row * ld + j)] = std::numeric_limits<float>::quiet_NaN();
          ref::im2col_tile(g, x.data(), j0, j1, want.data(), ld);
          t.im2col_tile(g, x.data(), j0, j1, got.data(), ld);
          for (std::size_t i = 0; i < want.size(); ++i) REQUIRE(same_bits(got[i], want[i]));
          // col2im: adds into a non-zero image, leaves the rest alone.
          std::vector<float> c(static_cast<size_t>(crs * ld));
          for (float& v : c) v = nd(rng);
          std::vector<float> xw(x.size()), xg(x.size());
          for (std::size_t i = 0; i < x.size(); ++i) xw[i] = xg[i] = 0.25f * x[i];
          ref::col2im_tile_add(g, c.data(), ld, j0, j1, xw.data());
          t.col2im_tile_add(g, c.data(), ld, j0, j1, xg.data());
          for (std::size_t i = 0; i < x.size(); ++i) REQUIRE(same_bits(xg[i], xw[i]));
        }
      }
    }
  }
}

TEST_CASE("maxpool2x2: every ISA equals the reference, ties and NaN included", "[kernels][pool]") {
  std::mt19937 rng(3);
  // Values from a small set make ties common; some NaN, in every window position.
  std::uniform_int_distribution<int> pick(0, 9);
  // The pre-ops: none (MaxPool2D), and a convolution's bias and activation (relu makes every
  // negative window a tie at 0; -0 and NaN become +0).
  struct Pre {
    float bias;
    bool has_bias;
    int act;
    float slope;
  };
  const Pre pres[] = {{0.0f, false, 0, 0.0f},
                      {0.5f, true, 1, 0.0f},
                      {0.0f, false, 1, 0.0f},
                      {-1.0f, true, 2, 0.1f},
                      {0.25f, true, 0, 0.0f}};
  for (Isa isa : runnable_isas()) {
    const KernelTable& t = table_for(isa);
    for (int64_t q_out : {1, 2, 7, 8, 9, 15, 16, 17, 31, 33, 55}) {
      for (int64_t extra : {0, 1}) {  // odd width: the last column is not pooled
        for (const Pre& pre : pres) {
          DYNAMIC_SECTION(to_string(isa) << " Q=" << q_out << " extra=" << extra
                                         << " act=" << pre.act << " bias=" << pre.has_bias) {
            const int64_t p_out = 5, w = 2 * q_out + extra, h = 2 * p_out + extra;
            std::vector<float> x(static_cast<size_t>(h * w));
            for (float& v : x) {
              const int k = pick(rng);
              v = k == 9   ? std::numeric_limits<float>::quiet_NaN()
                  : k == 8 ? -0.0f
                           : static_cast<float>(k % 4) - 1.0f;
            }
            const float* bias = pre.has_bias ? &pre.bias : nullptr;
            const auto n = static_cast<size_t>(p_out * q_out);
            std::vector<float> yw(n + 1, kSentinel), yg(n + 1, kSentinel);
            std::vector<int32_t> aw(n + 1, -7), ag(n + 1, -7);
            ref::maxpool2x2(x.data(), w, p_out, q_out, bias, pre.act, pre.slope, yw.data(),
                            aw.data());
            t.maxpool2x2(x.data(), w, p_out, q_out, bias, pre.act, pre.slope, yg.data(), ag.data());
            for (std::size_t i = 0; i < n + 1; ++i) {
              REQUIRE(same_bits(yg[i], yw[i]));
              REQUIRE(ag[i] == aw[i]);
            }
            // The reference itself: the first maximum in window order of act(x + bias), NaN
            // only in first place, computed as a convolution's act_row would.
            std::vector<float> z(x.size());
            for (std::size_t i = 0; i < x.size(); ++i) {
              float v = pre.has_bias ? x[i] + pre.bias : x[i];
              if (pre.act == 1) v = v > 0.0f ? v : 0.0f;
              if (pre.act == 2) v = v > 0.0f ? v : pre.slope * v;
              z[i] = v;
            }
            for (int64_t p = 0; p < p_out; ++p)
              for (int64_t q = 0; q < q_out; ++q) {
                const int64_t at[4] = {2 * p * w + 2 * q, 2 * p * w + 2 * q + 1,
                                       (2 * p + 1) * w + 2 * q, (2 * p + 1) * w + 2 * q + 1};
                int64_t best = at[0];
                for (int i = 1; i < 4; ++i)
                  if (z[static_cast<size_t>(at[i])] > z[static_cast<size_t>(best)]) best = at[i];
                REQUIRE(aw[static_cast<size_t>(p * q_out + q)] == best);
                REQUIRE(same_bits(yw[static_cast<size_t>(p * q_out + q)],
                                  z[static_cast<size_t>(best)]));
              }
          }
        }
      }
    }
  }
}

TEST_CASE("unpool2x2: every ISA equals the reference", "[kernels][pool]") {
  std::mt19937 rng(4);
  std::uniform_int_distribution<int> pick(0, 9);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (Isa isa : runnable_isas()) {
    const KernelTable& t = table_for(isa);
    for (int64_t q_out : {1, 2, 7, 8, 15, 16, 17, 33}) {
      for (int64_t extra : {0, 1, 3}) {  // columns past the windows, written as 0
        for (int act : {0, 1, 2}) {
          DYNAMIC_SECTION(to_string(isa)
                          << " Q=" << q_out << " extra=" << extra << " act=" << act) {
            const int64_t p_out = 3, w = 2 * q_out + extra, arg0 = 5 * w;
            // Argmaxes from the reference pooling of values with many ties, offset by arg0 (a
            // run of rows that starts inside the plane); y with zeros, negatives and NaN.
            std::vector<float> x(static_cast<size_t>(2 * p_out * w));
            for (float& v : x) v = static_cast<float>(pick(rng) % 3);
            const auto n = static_cast<size_t>(p_out * q_out);
            std::vector<float> y(n), dy(n);
            std::vector<int32_t> arg(n);
            ref::maxpool2x2(x.data(), w, p_out, q_out, nullptr, 0, 0.0f, y.data(), arg.data());
            for (std::size_t i = 0; i < n; ++i) {
              arg[i] += static_cast<int32_t>(arg0);
              const int k = pick(rng);
              y[i] = k == 9 ? std::numeric_limits<float>::quiet_NaN()
                            : static_cast<float>(k % 3) - 1.0f;
              dy[i] = k == 8 ? -0.0f : normal(rng);
            }
            const auto size = static_cast<size_t>(2 * p_out * w);
            std::vector<float> dw(size + 1, kSentinel), dg(size + 1, kSentinel);
            std::vector<float> gw(n + 1, kSentinel), gg(n + 1, kSentinel);
            ref::unpool2x2(dy.data(), y.data(), act, 0.1f, arg.data(), arg0, w, p_out, q_out,
                           gw.data(), dw.data());
            t.unpool2x2(dy.data(), y.data(), act, 0.1f, arg.data(), arg0, w, p_out, q_out,
                        gg.data(), dg.data());
            for (std::size_t i = 0; i < size + 1; ++i) REQUIRE(same_bits(dg[i], dw[i]));
            for (std::size_t i = 0; i < n + 1; ++i) REQUIRE(same_bits(gg[i], gw[i]));
            // Without g_out, and act 0 needs no y.
            std::vector<float> d2(size + 1, kSentinel);
            t.unpool2x2(dy.data(), act == 0 ? nullptr : y.data(), act, 0.1f, arg.data(), arg0, w,
                        p_out, q_out, nullptr, d2.data());
            for (std::size_t i = 0; i < size + 1; ++i) REQUIRE(same_bits(d2[i], dw[i]));
            // The reference: g = dy * act'(y) at each argmax, 0 elsewhere.
            for (std::size_t i = 0; i < n; ++i) {
              const float g = act == 0      ? dy[i]
                              : y[i] > 0.0f ? dy[i]
                              : act == 1    ? 0.0f
                                            : 0.1f * dy[i];
              REQUIRE(same_bits(gw[i], g));
              REQUIRE(same_bits(dw[static_cast<size_t>(arg[i] - arg0)], g));
            }
            int64_t nonzero = 0;
            for (std::size_t i = 0; i < size; ++i) nonzero += dw[i] != 0.0f || std::signbit(dw[i]);
            int64_t expect = 0;
            for (std::size_t i = 0; i < n; ++i) expect += gw[i] != 0.0f || std::signbit(gw[i]);
            REQUIRE(nonzero == expect);
          }
        }
      }
    }
  }
}

TEST_CASE("transpose: every ISA equals the reference", "[kernels][sparse]") {
  std::mt19937 rng(11);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (Isa isa : runnable_isas()) {
    const KernelTable& t = table_for(isa);
    for (int64_t rows : {1, 3, 8, 9, 15, 16, 17, 27, 33}) {
      for (int64_t cols : {1, 7, 8, 16, 17, 40, 61}) {
        for (int64_t off : {0, 1}) {  // unaligned bases
          DYNAMIC_SECTION(to_string(isa) << " " << rows << "x" << cols << " off=" << off) {
            const int64_t lda = cols + 3, ldt = rows + 5;
            std::vector<float> a(static_cast<size_t>(off + rows * lda));
            for (float& v : a) v = normal(rng);
            const auto size = static_cast<size_t>(off + cols * ldt + 1);
            std::vector<float> want(size, kSentinel), got(size, kSentinel);
            ref::transpose(a.data() + off, lda, rows, cols, want.data() + off, ldt);
            t.transpose(a.data() + off, lda, rows, cols, got.data() + off, ldt);
            for (std::size_t i = 0; i < size; ++i) REQUIRE(same_bits(got[i], want[i]));
            // The reference moves every element to its place and writes nothing else.
            for (int64_t i = 0; i < rows; ++i)
              for (int64_t j = 0; j < cols; ++j)
                REQUIRE(same_bits(want[static_cast<size_t>(off + j * ldt + i)],
                                  a[static_cast<size_t>(off + i * lda + j)]));
            int64_t untouched = 0;
            for (float v : want) untouched += same_bits(v, kSentinel);
            REQUIRE(untouched == static_cast<int64_t>(size) - rows * cols);
          }
        }
      }
    }
  }
}

namespace {

// Patches for gather_acc / scatter_axpy: nseg runs of n floats at seg[s] from each of count
// positions off[i]. Layout 0: one run per position, rows n + 2 floats apart (transposed im2col
// columns); layout 1: a channels-last image of 6 x 7 pixels of n channels (n + 1 floats apart),
// 3 x 3 runs per position, so neighbouring patches overlap; layout 2: a patch as its 3 rows, one
// run each (how the layer passes a channels-last patch: S C floats per row), rows n + 5 floats
// apart, positions 0 to 3 floats into a row, so that the runs of neighbouring positions overlap
// and the 2 floats at each row's end are never covered. Positions repeat.
struct Patches {
  std::vector<int64_t> off, seg;
  int64_t size = 0;  // floats the patches span
};

Patches make_patches(int layout, int64_t n, int64_t count, std::mt19937& rng) {
  Patches p;
  if (layout == 0) {
    const int64_t ldr = n + 2, rows = 37;
    p.seg = {0};
    std::uniform_int_distribution<int64_t> pick(0, rows - 1);
    for (int64_t i = 0; i < count; ++i) p.off.push_back(pick(rng) * ldr);
    p.size = rows * ldr;
  } else if (layout == 2) {
    const int64_t ldrow = n + 5, h = 6;
    p.seg = {0, ldrow, 2 * ldrow};
    std::uniform_int_distribution<int64_t> py(0, h - 3), px(0, 3);
    for (int64_t i = 0; i < count; ++i) p.off.push_back(py(rng) * ldrow + px(rng));
    p.size = h * ldrow;
  } else {
    const int64_t ch = n + 1, w = 7, h = 6;
    for (int64_t r = 0; r < 3; ++r)
      for (int64_t c = 0; c < 3; ++c) p.seg.push_back((r * w + c) * ch);
    std::uniform_int_distribution<int64_t> py(0, h - 3), px(0, w - 3);
    for (int64_t i = 0; i < count; ++i) p.off.push_back((py(rng) * w + px(rng)) * ch);
    p.size = h * w * ch;
  }
  return p;
}

// The scatter tests' check: every float no patch covers keeps its sentinel; the others are
// within 2 t u of the exact value times the sum of magnitudes, t the terms added to that float
// (each add, and each product without FMA, rounds once), for the reference and the fast version.
void check_scattered(const std::vector<bool>& covered, const std::vector<float>& want,
                     const std::vector<float>& got, const std::vector<double>& exact,
                     const std::vector<double>& mag, const std::vector<double>& terms) {
  for (std::size_t i = 0; i < covered.size(); ++i) {
    if (!covered[i]) {
      REQUIRE(same_bits(want[i], kSentinel));
      REQUIRE(same_bits(got[i], kSentinel));
      continue;
    }
    const double bound = 2.0 * terms[i] * std::ldexp(1.0, -24) * mag[i];
    REQUIRE(std::fabs(double(want[i]) - exact[i]) <= bound);
    REQUIRE(std::fabs(double(got[i]) - exact[i]) <= bound);
  }
}

}  // namespace

TEST_CASE("gather_acc: every ISA agrees with the reference", "[kernels][sparse]") {
  std::mt19937 rng(12);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (Isa isa : runnable_isas()) {
    const KernelTable& t = table_for(isa);
    for (int layout : {0, 1, 2}) {
      for (int64_t n : {1, 7, 8, 9, 15, 16, 17, 27, 31, 32, 33, 96, 288, 301}) {
        for (int64_t count : {0, 1, 2, 3, 4, 5, 9, 100}) {
          DYNAMIC_SECTION(to_string(isa)
                          << " layout " << layout << " n=" << n << " count=" << count) {
            // x one float past alignment; acc starts nonzero at an odd offset, a sentinel after.
            const Patches pt = make_patches(layout, n, count, rng);
            const auto nseg = static_cast<int64_t>(pt.seg.size());
            std::vector<float> xbuf(static_cast<size_t>(1 + pt.size)),
                g(static_cast<size_t>(count));
            for (float& v : xbuf) v = normal(rng);
            for (float& v : g) v = normal(rng);
            const int64_t na = nseg * n;
            std::vector<float> acc0(static_cast<size_t>(na + 2), kSentinel);
            for (int64_t c = 0; c < na; ++c) acc0[static_cast<size_t>(c + 1)] = normal(rng);
            std::vector<float> want = acc0, got = acc0;
            const float* x = xbuf.data() + 1;
            ref::gather_acc(count, g.data(), pt.off.data(), x, pt.seg.data(), nseg, n,
                            want.data() + 1);
            t.gather_acc(count, g.data(), pt.off.data(), x, pt.seg.data(), nseg, n, got.data() + 1);
            REQUIRE(same_bits(got[0], kSentinel));
            REQUIRE(same_bits(got[static_cast<size_t>(na + 1)], kSentinel));
            for (int64_t sg = 0; sg < nseg; ++sg) {
              for (int64_t c = 0; c < n; ++c) {
                // Exact value and the bound of a float sum of count + 1 terms in any order.
                const auto k = static_cast<size_t>(1 + sg * n + c);
                double exact = acc0[k], mag = std::fabs(exact);
                for (int64_t i = 0; i < count; ++i) {
                  const auto ii = static_cast<size_t>(i);
                  const double p =
                      double(g[ii]) * double(x[pt.off[ii] + pt.seg[static_cast<size_t>(sg)] + c]);
                  exact += p;
                  mag += std::fabs(p);
                }
                const double bound = double(count + 2) * std::ldexp(1.0, -24) * mag;
                REQUIRE(std::fabs(double(want[k]) - exact) <= bound);
                REQUIRE(std::fabs(double(got[k]) - exact) <= bound);
              }
            }
          }
        }
      }
    }
  }
}

TEST_CASE("scatter_axpy: every ISA agrees with the reference", "[kernels][sparse]") {
  std::mt19937 rng(13);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (Isa isa : runnable_isas()) {
    const KernelTable& t = table_for(isa);
    for (int layout : {0, 1, 2}) {
      for (int64_t n : {1, 7, 8, 9, 15, 16, 17, 27, 31, 32, 33, 96, 288, 301}) {
        for (int64_t count : {0, 1, 2, 5, 100}) {
          DYNAMIC_SECTION(to_string(isa)
                          << " layout " << layout << " n=" << n << " count=" << count) {
            // x one float past alignment, with a sentinel before and after and in every float
            // no patch covers (the gaps between rows or pixels): those must survive.
            const Patches pt = make_patches(layout, n, count, rng);
            const auto nseg = static_cast<int64_t>(pt.seg.size());
            const auto size = static_cast<size_t>(pt.size + 2);
            std::vector<bool> covered(size, false);
            // Every float a position of any offset could cover (the layout's patch grid).
            const Patches all = make_patches(layout, n, 2000, rng);
            for (int64_t o : all.off)
              for (int64_t sg : all.seg)
                for (int64_t c = 0; c < n; ++c) covered[static_cast<size_t>(1 + o + sg + c)] = true;
            std::vector<float> x0(size, kSentinel);
            for (std::size_t i = 0; i < size; ++i)
              if (covered[i]) x0[i] = normal(rng);
            std::vector<float> w(static_cast<size_t>(nseg * n + 1)), g(static_cast<size_t>(count));
            for (float& v : w) v = normal(rng);
            for (float& v : g) v = normal(rng);
            const float* wp = w.data() + 1;  // unaligned
            std::vector<float> want = x0, got = x0;
            ref::scatter_axpy(count, g.data(), pt.off.data(), wp, pt.seg.data(), nseg, n,
                              want.data() + 1);
            t.scatter_axpy(count, g.data(), pt.off.data(), wp, pt.seg.data(), nseg, n,
                           got.data() + 1);
            // The exact result in double, with the sum of magnitudes and terms per float.
            std::vector<double> exact(size), mag(size), terms(size, 1.0);
            for (std::size_t i = 0; i < size; ++i) {
              exact[i] = covered[i] ? x0[i] : 0.0;
              mag[i] = std::fabs(exact[i]);
            }
            for (int64_t i = 0; i < count; ++i)
              for (int64_t sg = 0; sg < nseg; ++sg)
                for (int64_t c = 0; c < n; ++c) {
                  const auto ii = static_cast<size_t>(i), ss = static_cast<size_t>(sg);
                  const auto k = static_cast<size_t>(1 + pt.off[ii] + pt.seg[ss] + c);
                  const double p = double(g[ii]) * double(wp[sg * n + c]);
                  exact[k] += p;
                  mag[k] += std::fabs(p);
                  terms[k] += 1.0;
                }
            check_scattered(covered, want, got, exact, mag, terms);
          }
        }
      }
    }
  }
}

TEST_CASE("conv3x3_pool: the fast versions equal the reference bit for bit", "[kernels][pool]") {
  // The reference sums with std::fma in the same order (c, r, s from 0), so values and argmaxes
  // agree exactly. Channels 1 to 3, odd and even widths (a tail of pooled columns past 16 and a
  // dropped last conv column), a dropped last conv row, filter tails (K = 1, 3, 5), every pooling
  // activation, with and without bias, a range of pooled rows inside the image, values with
  // ties (small integers: equal window values, the first wins).
  std::mt19937 rng(16);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_int_distribution<int> small(-2, 2);
  struct Case {
    int64_t c, h, w, k, i0, i1;
    int act;
    bool bias, ties;
  };
  const Case cases[] = {
      {3, 9, 11, 5, 0, 3, 1, true, false},  {1, 28, 28, 32, 0, 13, 1, true, false},
      {2, 8, 40, 3, 1, 3, 2, false, false}, {3, 7, 37, 1, 0, 2, 0, true, false},
      {1, 6, 5, 4, 0, 2, 1, true, true},    {3, 10, 35, 6, 2, 4, 2, true, true},
      {2, 6, 60, 3, 0, 2, 1, true, false},    // 29 windows a row: a second pair of blocks, 13
      {2, 6, 16, 3, 0, 2, 1, true, false},    // 7 windows: a block's tail of 7
      {1, 8, 22, 5, 0, 3, 2, false, false}};  // 10 windows: a tail of 2 in the second block
  int fast = 0;
  for (Isa isa : runnable_isas()) {
    const KernelTable& t = table_for(isa);
    if (!t.conv3x3_pool) continue;
    ++fast;
    for (const Case& cs : cases) {
      DYNAMIC_SECTION(to_string(isa) << " C=" << cs.c << " " << cs.h << "x" << cs.w << " K=" << cs.k
                                     << " rows " << cs.i0 << ".." << cs.i1 << " act " << cs.act
                                     << (cs.bias ? " bias" : "") << (cs.ties ? " ties" : "")) {
        auto draw = [&] { return cs.ties ? static_cast<float>(small(rng)) : normal(rng); };
        std::vector<float> x(static_cast<size_t>(cs.c * cs.h * cs.w)),
            w(static_cast<size_t>(cs.k * cs.c * 9)), b(static_cast<size_t>(cs.k));
        for (float& v : x) v = draw();
        for (float& v : w) v = draw();
        for (float& v : b) v = draw();
        const int64_t qp = (cs.w - 2) / 2, pp = (cs.h - 2) / 2, ldy = pp * qp + 3;
        const auto size = static_cast<size_t>(cs.k * ldy);
        std::vector<float> want(size, kSentinel), got(size, kSentinel);
        std::vector<int32_t> awant(size, -7), agot(size, -7);
        std::vector<float> scratch(static_cast<size_t>(conv3x3_pool_scratch(cs.c, cs.w)));
        const float* bp = cs.bias ? b.data() : nullptr;
        ref::conv3x3_pool(x.data(), cs.c, cs.h, cs.w, w.data(), bp, cs.act, 0.1f, cs.k, cs.i0,
                          cs.i1, want.data(), awant.data(), ldy, scratch.data());
        t.conv3x3_pool(x.data(), cs.c, cs.h, cs.w, w.data(), bp, cs.act, 0.1f, cs.k, cs.i0, cs.i1,
                       got.data(), agot.data(), ldy, scratch.data());
        for (std::size_t e = 0; e < size; ++e) {
          REQUIRE(same_bits(got[e], want[e]));
          REQUIRE(agot[e] == awant[e]);
        }
        // Only the asked rows of each plane are written.
        int64_t written = 0;
        for (std::size_t e = 0; e < size; ++e) written += !same_bits(want[e], kSentinel);
        REQUIRE(written == cs.k * (cs.i1 - cs.i0) * qp);
        // The reference is the formula: one value checked in double.
        const int64_t kk = cs.k - 1, i = cs.i1 - 1, j = qp - 1, Q = cs.w - 2;
        double best = 0;
        int64_t at = -1;
        for (int d = 0; d < 4; ++d) {
          const int64_t p = 2 * i + d / 2, q = 2 * j + d % 2;
          const double v = conv_formula(x, w, bp, cs.c, cs.h, cs.w, kk, p, q, cs.act);
          if (at < 0 || v > best + 1e-4) {
            best = v;
            at = p * Q + q;
          }
        }
        const auto e = static_cast<size_t>(kk * ldy + i * qp + j);
        CHECK(std::fabs(double(want[e]) - best) <= 1e-4 * (1 + std::fabs(best)));
        if (cs.ties) CHECK(awant[e] == at);
      }
    }
  }
  // AVX2 and AVX-512 have fast versions: each that this machine runs ran.
  CHECK(fast == static_cast<int>(detected_isa()) - static_cast<int>(Isa::scalar));
}

TEST_CASE("conv3x3: the fast versions equal the reference bit for bit", "[kernels][conv]") {
  // The unpooled direct convolution: the reference sums with std::fma (c, r, s from 0), adds the
  // bias, then the activation, as the im2col layer does. Odd and even conv rows and columns (a
  // last row pair with one row, a last column pair with one column, column tails past 16 and
  // 32), filter tails, every activation, with and without bias, a range of row pairs; the
  // other rows keep their sentinels. One value against the formula in double.
  std::mt19937 rng(18);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  struct Case {
    int64_t c, h, w, k, i0, i1;
    int act;
    bool bias;
  };
  const Case cases[] = {{3, 9, 11, 5, 0, 4, 1, true},  {1, 28, 28, 32, 0, 13, 1, true},
                        {2, 8, 40, 3, 1, 3, 2, false}, {3, 7, 37, 1, 0, 3, 0, true},
                        {3, 11, 69, 4, 2, 5, 2, true}, {1, 5, 3, 2, 0, 2, 1, false},
                        {3, 13, 36, 35, 1, 6, 1, true}};
  int fast = 0;
  for (Isa isa : runnable_isas()) {
    const KernelTable& t = table_for(isa);
    if (!t.conv3x3) continue;
    ++fast;
    for (const Case& cs : cases) {
      DYNAMIC_SECTION(to_string(isa)
                      << " C=" << cs.c << " " << cs.h << "x" << cs.w << " K=" << cs.k << " pairs "
                      << cs.i0 << ".." << cs.i1 << " act " << cs.act << (cs.bias ? " bias" : "")) {
        std::vector<float> x(static_cast<size_t>(cs.c * cs.h * cs.w)),
            w(static_cast<size_t>(cs.k * cs.c * 9)), b(static_cast<size_t>(cs.k));
        for (std::vector<float>* v : {&x, &w, &b})
          for (float& e : *v) e = normal(rng);
        const int64_t P = cs.h - 2, Q = cs.w - 2, ldy = P * Q + 7;
        const auto size = static_cast<size_t>(cs.k * ldy);
        std::vector<float> want(size, kSentinel), got(size, kSentinel);
        std::vector<float> scratch(static_cast<size_t>(conv3x3_pool_scratch(cs.c, cs.w)));
        const float* bp = cs.bias ? b.data() : nullptr;
        ref::conv3x3(x.data(), cs.c, cs.h, cs.w, w.data(), bp, cs.act, 0.1f, cs.k, cs.i0, cs.i1,
                     want.data(), ldy, scratch.data());
        t.conv3x3(x.data(), cs.c, cs.h, cs.w, w.data(), bp, cs.act, 0.1f, cs.k, cs.i0, cs.i1,
                  got.data(), ldy, scratch.data());
        for (std::size_t e = 0; e < size; ++e) REQUIRE(same_bits(got[e], want[e]));
        const int64_t p0 = 2 * cs.i0, p1 = std::min(2 * cs.i1, P);
        int64_t written = 0;
        for (std::size_t e = 0; e < size; ++e) written += !same_bits(want[e], kSentinel);
        REQUIRE(written == cs.k * (p1 - p0) * Q);
        const int64_t kk = cs.k - 1, p = p1 - 1, q = Q - 1;
        const double v = conv_formula(x, w, bp, cs.c, cs.h, cs.w, kk, p, q, cs.act);
        CHECK(std::fabs(double(want[static_cast<size_t>(kk * ldy + p * Q + q)]) - v) <=
              1e-4 * (1 + std::fabs(v)));
      }
    }
  }
  if (detected_isa() == Isa::avx512) CHECK(fast == 1);
}

TEST_CASE("conv3x3_grad: the fast versions equal the reference bit for bit", "[kernels][conv]") {
  // Random dy and y (y's sign decides act'), random starting partial sums; the reference adds in
  // the same order with std::fma. Odd and even sizes (column tails), filter tails (K odd: the
  // last filter alone), every activation, a range of conv rows over more than one band of
  // kConv3x3GradRows. The lane sums against the formula in double.
  std::mt19937 rng(19);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  struct Case {
    int64_t c, h, w, k, p0, p1;
    int act;
  };
  const Case cases[] = {{3, 9, 11, 5, 0, 7, 1},   {1, 28, 28, 32, 0, 26, 1},
                        {2, 8, 40, 3, 1, 5, 2},   {3, 7, 37, 1, 0, 5, 0},
                        {3, 30, 70, 4, 2, 27, 1}, {1, 12, 19, 7, 3, 10, 2}};
  for (Isa isa : runnable_isas()) {
    const KernelTable& t = table_for(isa);
    if (!t.conv3x3_grad) continue;
    for (const Case& cs : cases) {
      DYNAMIC_SECTION(to_string(isa) << " C=" << cs.c << " " << cs.h << "x" << cs.w << " K=" << cs.k
                                     << " rows " << cs.p0 << ".." << cs.p1 << " act " << cs.act) {
        const int64_t P = cs.h - 2, Q = cs.w - 2, ldy = P * Q + 5, nw = 9 * cs.c + 1;
        std::vector<float> x(static_cast<size_t>(cs.c * cs.h * cs.w)),
            y(static_cast<size_t>(cs.k * ldy)), dy(y.size()),
            acc0(static_cast<size_t>(cs.k * nw * 16));
        for (std::vector<float>* v : {&x, &y, &dy, &acc0})
          for (float& e : *v) e = normal(rng);
        std::vector<float> scratch(static_cast<size_t>(conv3x3_grad_scratch(cs.w)));
        std::vector<float> want = acc0, got = acc0;
        ref::conv3x3_grad(x.data(), cs.c, cs.h, cs.w, dy.data(), y.data(), cs.act, 0.1f, ldy, cs.k,
                          cs.p0, cs.p1, want.data(), scratch.data());
        t.conv3x3_grad(x.data(), cs.c, cs.h, cs.w, dy.data(), y.data(), cs.act, 0.1f, ldy, cs.k,
                       cs.p0, cs.p1, got.data(), scratch.data());
        for (std::size_t e = 0; e < want.size(); ++e) REQUIRE(same_bits(got[e], want[e]));
        check_lane_sums(acc0, want, x, cs.c, cs.h, cs.w, cs.k, [&](int64_t k, auto&& f) {
          for (int64_t p = cs.p0; p < cs.p1; ++p)
            for (int64_t q = 0; q < Q; ++q) {
              const auto at = static_cast<size_t>(k * ldy + p * Q + q);
              f(grad_formula(dy[at], y[at], cs.act), p, q);
            }
        });
      }
    }
  }
}

TEST_CASE("conv3x3_pool_grad: the fast versions equal the reference bit for bit",
          "[kernels][pool]") {
  // The pooled outputs and argmaxes come from ref::conv3x3_pool on the same image (argmaxes in
  // all four places), dy is random, and the partial sums (16 lanes per weight and the bias)
  // start from random values; the reference adds in the same order with std::fma. Shapes as
  // conv3x3_pool's test; a range of pooled rows inside the image. The lane sums are checked
  // against the formula in double.
  std::mt19937 rng(17);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  struct Case {
    int64_t c, h, w, k, i0, i1;
    int act;
  };
  const Case cases[] = {{3, 9, 11, 5, 0, 3, 1},
                        {1, 28, 28, 32, 0, 13, 1},
                        {2, 8, 40, 3, 1, 3, 2},
                        {3, 7, 37, 1, 0, 2, 0},
                        {3, 12, 70, 4, 2, 5, 1},
                        {3, 40, 200, 3, 1, 19, 2},  // bands: 8, 8, 2 (AVX-512)
                        // AVX2: two groups of filters (32 + 8) ...
                        {1, 20, 30, 40, 0, 9, 1},
                        // ... and dy, y, arg past 512 KiB (its prefetching loop), 6-row bands
                        {2, 90, 100, 40, 0, 44, 2}};
  for (Isa isa : runnable_isas()) {
    const KernelTable& t = table_for(isa);
    if (!t.conv3x3_pool_grad) continue;
    for (const Case& cs : cases) {
      DYNAMIC_SECTION(to_string(isa) << " C=" << cs.c << " " << cs.h << "x" << cs.w << " K=" << cs.k
                                     << " rows " << cs.i0 << ".." << cs.i1 << " act " << cs.act) {
        std::vector<float> x(static_cast<size_t>(cs.c * cs.h * cs.w)),
            w(static_cast<size_t>(cs.k * cs.c * 9));
        for (float& v : x) v = normal(rng);
        for (float& v : w) v = normal(rng);
        const int64_t qp = (cs.w - 2) / 2, pp = (cs.h - 2) / 2, ldg = pp * qp + 5, Q = cs.w - 2;
        const auto size = static_cast<size_t>(cs.k * ldg);
        std::vector<float> y(size, 0.0f), dy(size);
        std::vector<int32_t> arg(size, 0);
        std::vector<float> scratch(static_cast<size_t>(conv3x3_pool_grad_scratch(cs.c, cs.w, pp)));
        ref::conv3x3_pool(x.data(), cs.c, cs.h, cs.w, w.data(), nullptr, cs.act, 0.1f, cs.k, 0, pp,
                          y.data(), arg.data(), ldg, scratch.data());
        for (float& v : dy) v = normal(rng);
        const int64_t nw = 9 * cs.c + 1;
        std::vector<float> acc0(static_cast<size_t>(cs.k * nw * 16));
        for (float& v : acc0) v = normal(rng);
        std::vector<float> want = acc0, got = acc0;
        ref::conv3x3_pool_grad(x.data(), cs.c, cs.h, cs.w, dy.data(), y.data(), cs.act, 0.1f,
                               arg.data(), ldg, cs.k, cs.i0, cs.i1, want.data(), scratch.data());
        t.conv3x3_pool_grad(x.data(), cs.c, cs.h, cs.w, dy.data(), y.data(), cs.act, 0.1f,
                            arg.data(), ldg, cs.k, cs.i0, cs.i1, got.data(), scratch.data());
        for (std::size_t e = 0; e < want.size(); ++e) REQUIRE(same_bits(got[e], want[e]));
        // Lanes summed against the formula, in double.
        check_lane_sums(acc0, want, x, cs.c, cs.h, cs.w, cs.k, [&](int64_t k, auto&& f) {
          for (int64_t i = cs.i0; i < cs.i1; ++i)
            for (int64_t j = 0; j < qp; ++j) {
              const auto at = static_cast<size_t>(k * ldg + i * qp + j);
              const int64_t p = arg[at] / Q, q = arg[at] % Q;
              REQUIRE(p / 2 == i);
              REQUIRE(q / 2 == j);
              f(grad_formula(dy[at], y[at], cs.act), p, q);
            }
        });
      }
    }
  }
}

TEST_CASE("pool_scatter_pack: blocks of 16 channels, zero past C", "[kernels][sparse]") {
  std::mt19937 rng(15);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (int64_t c : {1, 16, 20, 32}) {
    const int64_t K = 3, RS = 9, blocks = (c + 15) / 16;
    std::vector<float> w(static_cast<size_t>(K * c * RS));
    for (float& v : w) v = normal(rng);
    std::vector<float> wb(static_cast<size_t>(pool_scatter_floats(K, c, RS)), kSentinel);
    REQUIRE(wb.size() == static_cast<size_t>(blocks * K * RS * 16));
    pool_scatter_pack(w.data(), K, c, RS, wb.data());
    for (int64_t cb = 0; cb < blocks; ++cb)
      for (int64_t k = 0; k < K; ++k)
        for (int64_t rs = 0; rs < RS; ++rs)
          for (int64_t l = 0; l < 16; ++l) {
            const float got = wb[static_cast<size_t>(((cb * K + k) * RS + rs) * 16 + l)];
            const int64_t ch = 16 * cb + l;
            if (ch < c)
              REQUIRE(same_bits(got, w[static_cast<size_t>((k * c + ch) * RS + rs)]));
            else
              REQUIRE(same_bits(got, 0.0f));
          }
  }
}

TEST_CASE("pool_scatter: every ISA agrees with the reference", "[kernels][sparse]") {
  // A channels-last image of h x wpx pixels of C floats, rows ldrow = wpx C + 3 floats apart
  // (the 3 floats after each row are never covered and keep a sentinel), one float past
  // alignment; windows at random places, overlapping and repeating, each filter's argmax at a
  // random one of the four places. 3x3 with C a multiple of 16 is AVX-512's register-blocked
  // case (K = 37: two full groups of 16 filters and a tail); the others its general loop.
  std::mt19937 rng(14);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  struct Case {
    int64_t r, s, c, k, nwin;
  };
  const Case cases[] = {{3, 3, 16, 37, 30}, {3, 3, 32, 16, 9}, {3, 3, 48, 5, 7},
                        {3, 3, 16, 1, 1},   {3, 3, 7, 20, 11}, {2, 3, 16, 17, 13},
                        {1, 1, 33, 9, 25},  {5, 5, 16, 3, 4},  {3, 3, 32, 64, 0}};
  for (Isa isa : runnable_isas()) {
    const KernelTable& t = table_for(isa);
    for (const Case& cs : cases) {
      DYNAMIC_SECTION(to_string(isa) << " " << cs.r << "x" << cs.s << " C=" << cs.c << " K=" << cs.k
                                     << " windows=" << cs.nwin) {
        const int64_t h = cs.r + 4, wpx = cs.s + 5, ldrow = wpx * cs.c + 3;
        const auto size = static_cast<size_t>(h * ldrow + 2);
        std::vector<float> x0(size, kSentinel);
        std::vector<bool> covered(size, false);
        for (int64_t y = 0; y < h; ++y)
          for (int64_t e = 0; e < wpx * cs.c; ++e) {
            const auto i = static_cast<size_t>(1 + y * ldrow + e);
            covered[i] = true;
            x0[i] = normal(rng);
          }
        std::uniform_int_distribution<int64_t> py(0, h - cs.r - 1), px(0, wpx - cs.s - 1);
        std::uniform_int_distribution<int> place(0, 3);
        std::vector<int64_t> org;
        for (int64_t j = 0; j < cs.nwin; ++j) org.push_back(py(rng) * ldrow + px(rng) * cs.c);
        const auto nk = static_cast<size_t>(cs.nwin * cs.k);
        std::vector<float> g(nk),
            w(static_cast<size_t>(pool_scatter_floats(cs.k, cs.c, cs.r * cs.s) + 1));
        std::vector<uint8_t> sel(nk);
        for (float& v : g) v = normal(rng);
        for (float& v : w) v = normal(rng);
        for (uint8_t& v : sel) v = static_cast<uint8_t>(place(rng));
        const float* wp = w.data() + 1;  // unaligned
        std::vector<float> want = x0, got = x0;
        ref::pool_scatter(cs.nwin, cs.k, g.data(), sel.data(), org.data(), wp, cs.r, cs.s, cs.c,
                          ldrow, want.data() + 1);
        t.pool_scatter(cs.nwin, cs.k, g.data(), sel.data(), org.data(), wp, cs.r, cs.s, cs.c, ldrow,
                       got.data() + 1);
        // The exact result in double, with the sum of magnitudes and the terms per float.
        std::vector<double> exact(size), mag(size), terms(size, 1.0);
        for (std::size_t i = 0; i < size; ++i) {
          exact[i] = covered[i] ? x0[i] : 0.0;
          mag[i] = std::fabs(exact[i]);
        }
        for (int64_t j = 0; j < cs.nwin; ++j)
          for (int64_t k = 0; k < cs.k; ++k) {
            const auto jk = static_cast<size_t>(j * cs.k + k);
            const int64_t base =
                1 + org[static_cast<size_t>(j)] + (sel[jk] >> 1) * ldrow + (sel[jk] & 1) * cs.c;
            for (int64_t r = 0; r < cs.r; ++r)
              for (int64_t q = 0; q < cs.s; ++q)
                for (int64_t e = 0; e < cs.c; ++e) {
                  const auto i = static_cast<size_t>(base + r * ldrow + q * cs.c + e);
                  const double p =
                      double(g[jk]) *
                      double(wp[((e / 16 * cs.k + k) * cs.r * cs.s + r * cs.s + q) * 16 + e % 16]);
                  exact[i] += p;
                  mag[i] += std::fabs(p);
                  terms[i] += 1.0;
                }
          }
        check_scattered(covered, want, got, exact, mag, terms);
      }
    }
  }
}

namespace {

// Forward, dW, db and dx of one Conv2D call (gradients zeroed first, dx starting from 0.5).
struct ConvResult {
  std::vector<float> y, dw, db, dx;
};

ConvResult run_conv(nn::Conv2D& conv, const Tensor& x, const Tensor& dy, bool with_dx) {
  Tensor y(conv.output_shape().with_batch(x.dim(0)));
  conv.forward(x, y, nn::Phase::train);
  for (auto& p : conv.params()) p.grad->zero();
  Tensor dx(x.shape(), 0.5f);
  conv.backward(x, y, dy, with_dx ? &dx : nullptr);
  auto params = conv.params();
  ConvResult r;
  r.y.assign(y.data(), y.data() + y.numel());
  r.dw.assign(params[0].grad->data(), params[0].grad->data() + params[0].grad->numel());
  r.db.assign(params[1].grad->data(), params[1].grad->data() + params[1].grad->numel());
  if (with_dx) r.dx.assign(dx.data(), dx.data() + dx.numel());
  return r;
}

struct ConvShape {
  const char* label;
  int64_t n, c, h, w, k;
  nn::Padding padding;
};
// Several tiles per call, tiles that span images (13x13: 11x11 outputs), groups of unequal size
// (n = 21 over 16 groups), a 'same'-padded layer.
const ConvShape kConvShapes[] = {
    {"21 x 32x13x13 -> 64, valid", 21, 32, 13, 13, 64, nn::Padding::valid},
    {"5 x 3x60x50 -> 8, valid", 5, 3, 60, 50, 8, nn::Padding::valid},
    {"17 x 4x20x20 -> 16, same", 17, 4, 20, 20, 16, nn::Padding::same},
};

}  // namespace

TEST_CASE("Conv2D (im2col): results do not depend on the thread count, and match a direct loop",
          "[conv2d][threads]") {
  const int saved = num_threads();
  nn::detail::set_conv_algo(nn::detail::ConvAlgo::im2col);
  for (const ConvShape& cs : kConvShapes) {
    DYNAMIC_SECTION(cs.label) {
      Rng rng(21);
      nn::Conv2D conv(cs.k, {3, 3},
                      {.padding = cs.padding, .activation = nn::Activation::leaky_relu});
      conv.build(Shape{cs.c, cs.h, cs.w});
      conv.init_params(rng);
      for (int64_t i = 0; i < conv.bias().numel(); ++i) conv.bias()[i] = 0.1f * rng.normal();
      Tensor x(Shape{cs.n, cs.c, cs.h, cs.w});
      for (int64_t i = 0; i < x.numel(); ++i) x[i] = rng.normal();
      Tensor dy(conv.output_shape().with_batch(cs.n));
      for (int64_t i = 0; i < dy.numel(); ++i) dy[i] = rng.normal();

      set_num_threads(1);
      const ConvResult one = run_conv(conv, x, dy, true);
      for (int threads : {2, 3}) {
        set_num_threads(threads);
        const ConvResult more = run_conv(conv, x, dy, true);
        INFO(threads << " threads");
        for (auto [a, b] : {std::pair{&one.y, &more.y}, std::pair{&one.dw, &more.dw},
                            std::pair{&one.db, &more.db}, std::pair{&one.dx, &more.dx}}) {
          REQUIRE(a->size() == b->size());
          for (std::size_t i = 0; i < a->size(); ++i) REQUIRE(same_bits((*a)[i], (*b)[i]));
        }
        // dW and db without dx are the same numbers.
        const ConvResult no_dx = run_conv(conv, x, dy, false);
        for (std::size_t i = 0; i < one.dw.size(); ++i) REQUIRE(same_bits(no_dx.dw[i], one.dw[i]));
        for (std::size_t i = 0; i < one.db.size(); ++i) REQUIRE(same_bits(no_dx.db[i], one.db[i]));
      }
      set_num_threads(saved);

      // Against the definition in double: y (pre-activation z recovered from the leaky ReLU), dW
      // and dx. Bound: (2 D + 16) u S for a float sum of D products, S = sum of |products|.
      const int64_t P = conv.output_shape()[1], Q = conv.output_shape()[2];
      const int64_t pt = conv.pad_top(), pl = conv.pad_left(), C = cs.c, K = cs.k;
      const double u = std::ldexp(1.0, -24), slope = double(0.01f);
      const Tensor& wt = conv.weight();
      auto xin = [&](int64_t n, int64_t c, int64_t h, int64_t w) {
        return h >= 0 && h < cs.h && w >= 0 && w < cs.w ? double(x.at(n, c, h, w)) : 0.0;
      };
      std::vector<double> dz(static_cast<size_t>(dy.numel()));
      std::vector<double> dw(static_cast<size_t>(wt.numel()), 0.0), dws(dw.size(), 0.0);
      std::vector<double> dx(static_cast<size_t>(x.numel()), 0.0), dxs(dx.size(), 0.0);
      for (int64_t n = 0; n < cs.n; ++n)
        for (int64_t k = 0; k < K; ++k)
          for (int64_t p = 0; p < P; ++p)
            for (int64_t q = 0; q < Q; ++q) {
              double z = conv.bias()[k], s = std::abs(conv.bias()[k]);
              for (int64_t c = 0; c < C; ++c)
                for (int64_t r = 0; r < 3; ++r)
                  for (int64_t t = 0; t < 3; ++t) {
                    const double prod = double(wt[((k * C + c) * 3 + r) * 3 + t]) *
                                        xin(n, c, p + r - pt, q + t - pl);
                    z += prod;
                    s += std::abs(prod);
                  }
              const auto at = static_cast<size_t>(((n * K + k) * P + p) * Q + q);
              const double y = z > 0 ? z : slope * z;
              const double bound = (2.0 * 9 * double(C) + 16) * u * s * (z > 0 ? 1.0 : slope);
              REQUIRE(std::abs(one.y[at] - y) <= bound + 1e-30);
              dz[at] = double(dy[static_cast<int64_t>(at)]) * (one.y[at] > 0 ? 1.0 : slope);
            }
      for (int64_t n = 0; n < cs.n; ++n)
        for (int64_t k = 0; k < K; ++k)
          for (int64_t p = 0; p < P; ++p)
            for (int64_t q = 0; q < Q; ++q) {
              const double g = dz[static_cast<size_t>(((n * K + k) * P + p) * Q + q)];
              for (int64_t c = 0; c < C; ++c)
                for (int64_t r = 0; r < 3; ++r)
                  for (int64_t t = 0; t < 3; ++t) {
                    const int64_t h = p + r - pt, w = q + t - pl;
                    if (h < 0 || h >= cs.h || w < 0 || w >= cs.w) continue;
                    const auto wi = static_cast<size_t>(((k * C + c) * 3 + r) * 3 + t);
                    dw[wi] += g * x.at(n, c, h, w);
                    dws[wi] += std::abs(g * x.at(n, c, h, w));
                    const auto xi = static_cast<size_t>(((n * C + c) * cs.h + h) * cs.w + w);
                    dx[xi] += g * wt[static_cast<int64_t>(wi)];
                    dxs[xi] += std::abs(g * wt[static_cast<int64_t>(wi)]);
                  }
            }
      const double depth_w = double(cs.n * P * Q), depth_x = 9.0 * double(K);
      for (std::size_t i = 0; i < dw.size(); ++i)
        REQUIRE(std::abs(one.dw[i] - dw[i]) <= (2 * depth_w + 16) * u * dws[i] + 1e-30);
      for (std::size_t i = 0; i < dx.size(); ++i)
        REQUIRE(std::abs(one.dx[i] - (0.5 + dx[i])) <= (2 * depth_x + 16) * u * (dxs[i] + 0.5));
    }
  }
  set_num_threads(saved);
  nn::detail::set_conv_algo(nn::detail::ConvAlgo::automatic);
}

// --- Winograd F(2x2, 3x3) -------------------------------------------------------------------

namespace {

struct WinoCase {
  const char* label;
  WinoGeometry g;  // input side: C, H, W, pads, output P x Q
};
const WinoCase kWinoCases[] = {
    {"5x8x8 valid (P, Q even)", {5, 8, 8, 0, 0, 6, 6}},
    {"3x13x13 valid (P, Q odd)", {3, 13, 13, 0, 0, 11, 11}},
    {"2x7x9 same", {2, 7, 9, 1, 1, 7, 9}},
    {"4x11x11 as dx of valid (pad 2)", {4, 11, 11, 2, 2, 13, 13}},
    {"2x3x3 pad 3 offset (pad -1)", {2, 3, 3, -1, -1, 1, 1}},
    {"1x40x300 (a row of more than 128 tiles)", {1, 40, 300, 0, 0, 38, 298}},
    {"2x21x70 same (odd rows, 17.5 F(4x4) tiles a row)", {2, 21, 70, 1, 1, 21, 70}},
    {"2x18x54 valid (13 F(4x4) tiles a row, as the seed's conv3)", {2, 18, 54, 0, 0, 16, 52}},
};

bool same_value(float a, float b) {
  return (std::isnan(a) && std::isnan(b)) || a == b;
}

}  // namespace

TEST_CASE("Winograd transforms: every ISA equals the reference", "[kernels][winograd]") {
  std::mt19937 rng(5);
  std::normal_distribution<float> nd;
  for (Isa isa : runnable_isas()) {
    const KernelTable& t = table_for(isa);
    for (const WinoCase& wc : kWinoCases)
      for (int64_t tile : {2, 4}) {
        DYNAMIC_SECTION(to_string(isa) << " F(" << tile << "x" << tile << ") " << wc.label) {
          WinoGeometry g = wc.g;
          g.tile = tile;
          const int64_t xis = g.patch() * g.patch();
          const int64_t n = 3, C = g.channels;
          const int64_t tiles = n * g.tiles_h() * g.tiles_w();
          std::vector<float> x(static_cast<size_t>(n * C * g.height * g.width)), yv(x.size());
          for (float& v : x) v = nd(rng);
          for (float& v : yv) v = nd(rng) > 0 ? 0.25f + 0.5f * std::abs(nd(rng)) : 0.0f;
          std::vector<std::pair<int64_t, int64_t>> rs{
              {0, tiles}, {1, tiles - 1}, {tiles / 2, tiles}};
          for (auto [t0, t1] : rs) {
            INFO("tiles [" << t0 << ", " << t1 << ")");
            const int64_t ld = t1 - t0 + 5;
            // Input transform: plain, and as dz = x * act'(y) for every activation code.
            for (int act = -1; act <= 4; ++act) {
              INFO("act " << act);
              std::vector<float> want(static_cast<size_t>(xis * (C * ld + kWinoXiPad)), kSentinel),
                  got(want);
              const float* ys = act < 0 ? nullptr : yv.data();
              ref::wino_input(g, x.data(), ys, act, 0.1f, t0, t1, want.data(), ld);
              t.wino_input(g, x.data(), ys, act, 0.1f, t0, t1, got.data(), ld);
              for (std::size_t i = 0; i < want.size(); ++i) REQUIRE(same_value(got[i], want[i]));
            }
            // Output transform (K = C here) into an output prefilled with a pattern; every mode.
            const WinoGeometry go{C, 0, 0, 0, 0, g.out_h, g.out_w, tile};
            std::vector<float> m(static_cast<size_t>(xis * (C * ld + kWinoXiPad))),
                bias(static_cast<size_t>(C));
            for (float& v : m) v = nd(rng);
            for (float& v : bias) v = nd(rng);
            const auto out_n = static_cast<size_t>(n * C * g.out_h * g.out_w);
            for (int act = 0; act <= 2; ++act)
              for (bool with_bias : {false, true})
                for (bool acc : {false, true}) {
                  INFO("act " << act << " bias " << with_bias << " accumulate " << acc);
                  std::vector<float> want(out_n), got(out_n);
                  for (std::size_t i = 0; i < out_n; ++i) want[i] = got[i] = 0.5f + float(i % 7);
                  const float* b = with_bias ? bias.data() : nullptr;
                  ref::wino_output(go, m.data(), ld, t0, t1, b, act, 0.1f, acc, want.data());
                  t.wino_output(go, m.data(), ld, t0, t1, b, act, 0.1f, acc, got.data());
                  for (std::size_t i = 0; i < out_n; ++i) REQUIRE(same_value(got[i], want[i]));
                }
            // Gradient transform: dy, y (N, C, P, Q).
            std::vector<float> dyv(out_n), yo(out_n);
            for (float& v : dyv) v = nd(rng);
            for (float& v : yo) v = nd(rng) > 0 ? 0.5f * std::abs(nd(rng)) : 0.0f;
            for (int act = 0; act <= 4; ++act) {
              INFO("grad act " << act);
              std::vector<float> want(static_cast<size_t>(xis * (C * ld + kWinoXiPad)), kSentinel),
                  got(want);
              ref::wino_grad(go, dyv.data(), yo.data(), act, 0.1f, t0, t1, want.data(), ld);
              t.wino_grad(go, dyv.data(), yo.data(), act, 0.1f, t0, t1, got.data(), ld);
              for (std::size_t i = 0; i < want.size(); ++i) REQUIRE(same_value(got[i], want[i]));
            }
          }
        }
      }
  }
}

TEST_CASE("wino_output_pool: wino_output then maxpool2x2, and every ISA equals it",
          "[kernels][winograd][pool]") {
  // P x Q conv outputs (P even): a last tile row of 2 rows, odd Q (a dropped column), rows of
  // 13 tiles (the seed's conv3) and of more than 16 (several runs per block).
  struct Case {
    int64_t k, p, q;
  };
  const Case cases[] = {{3, 8, 8}, {2, 6, 11}, {2, 16, 52}, {1, 4, 130}, {2, 2, 5}};
  std::mt19937 rng(11);
  std::normal_distribution<float> nd;
  for (const Case& c : cases) {
    const WinoGeometry g{c.k, 0, 0, 0, 0, c.p, c.q, 4};
    const int64_t n = 3, K = c.k, P = c.p, Q = c.q, pp = P / 2, qp = Q / 2;
    const int64_t tiles = n * g.tiles_h() * g.tiles_w(), ld = tiles + 3;
    std::vector<float> m(static_cast<size_t>(36 * (K * ld + kWinoXiPad))),
        bias(static_cast<size_t>(K));
    for (float& v : m) v = nd(rng);
    for (float& v : bias) v = nd(rng);
    // A NaN in one product of a few tiles spreads to several of their outputs.
    for (int64_t t = 1; t < tiles; t += 7)
      m[static_cast<size_t>(9 * (K * ld + kWinoXiPad) + t)] =
          std::numeric_limits<float>::quiet_NaN();
    const auto pn = static_cast<size_t>(n * K * pp * qp);
    for (int act = 0; act <= 2; ++act)
      for (bool with_bias : {false, true}) {
        const float* b = with_bias ? bias.data() : nullptr;
        // The definition: the conv output of every tile, then each plane pooled.
        std::vector<float> conv(static_cast<size_t>(n * K * P * Q)), def(pn);
        std::vector<int32_t> def_arg(pn);
        ref::wino_output(g, m.data(), ld, 0, tiles, b, act, 0.1f, false, conv.data());
        for (int64_t j = 0; j < n * K; ++j)
          ref::maxpool2x2(conv.data() + j * P * Q, Q, pp, qp, nullptr, 0, 0.0f,
                          def.data() + j * pp * qp, def_arg.data() + j * pp * qp);
        std::vector<float> want(pn, kSentinel);
        std::vector<int32_t> want_arg(pn, -7);
        ref::wino_output_pool(g, m.data(), ld, 0, tiles, b, act, 0.1f, want.data(),
                              want_arg.data());
        DYNAMIC_SECTION("ref: K " << K << " P " << P << " Q " << Q << " act " << act << " bias "
                                  << with_bias) {
          for (std::size_t i = 0; i < pn; ++i) {
            REQUIRE(same_value(want[i], def[i]));
            REQUIRE(want_arg[i] == def_arg[i]);
          }
        }
        for (Isa isa : runnable_isas()) {
          const KernelTable& t = table_for(isa);
          // Whole batch, and calls that start and end inside a row of tiles (and inside a block
          // of 16): each writes only its tiles' pooled outputs.
          const std::vector<std::pair<int64_t, int64_t>> rs{
              {0, tiles}, {1, tiles - 1}, {tiles / 2 + 3, tiles}};
          for (auto [t0, t1] : rs) {
            DYNAMIC_SECTION(to_string(isa)
                            << " K " << K << " P " << P << " Q " << Q << " act " << act << " bias "
                            << with_bias << " tiles [" << t0 << ", " << t1 << ")") {
              std::vector<float> wv(pn, kSentinel), gv(pn, kSentinel);
              std::vector<int32_t> wa(pn, -7), ga(pn, -7);
              const float* mt = m.data() + t0;  // M of tile t0 first, row stride ld
              ref::wino_output_pool(g, mt, ld, t0, t1, b, act, 0.1f, wv.data(), wa.data());
              t.wino_output_pool(g, mt, ld, t0, t1, b, act, 0.1f, gv.data(), ga.data());
              for (std::size_t i = 0; i < pn; ++i) {
                REQUIRE(same_value(gv[i], wv[i]));
                REQUIRE(ga[i] == wa[i]);
              }
            }
          }
        }
      }
  }
}

namespace {

// The transform matrices of F(m x m, 3x3) for the error bounds: |B^T| (n x n), |G| (n x 3),
// |A| (n x m) and A^T with signs (m x n), n = m + 2.
struct WinoMats {
  int m, n;
  double bt[6][6], g[6][3], a[6][4], at[4][6];
};
const WinoMats kWino2 = {2,
                         4,
                         {{1, 0, 1, 0}, {0, 1, 1, 0}, {0, 1, 1, 0}, {0, 1, 0, 1}},
                         {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, 0.5, 0.5}, {0, 0, 1}},
                         {{1, 0}, {1, 1}, {1, 1}, {0, 1}},
                         {{1, 1, 1, 0}, {0, 1, -1, -1}}};
const WinoMats kWino4 = {
    4,
    6,
    {{4, 0, 5, 0, 1, 0},
     {0, 4, 4, 1, 1, 0},
     {0, 4, 4, 1, 1, 0},
     {0, 2, 1, 2, 1, 0},
     {0, 2, 1, 2, 1, 0},
     {0, 4, 0, 5, 0, 1}},
    {{0.25, 0, 0},
     {1.0 / 6, 1.0 / 6, 1.0 / 6},
     {1.0 / 6, 1.0 / 6, 1.0 / 6},
     {1.0 / 24, 1.0 / 12, 1.0 / 6},
     {1.0 / 24, 1.0 / 12, 1.0 / 6},
     {0, 0, 1}},
    {{1, 0, 0, 0}, {1, 1, 1, 1}, {1, 1, 1, 1}, {1, 2, 4, 8}, {1, 2, 4, 8}, {0, 0, 0, 1}},
    {{1, 1, 1, 1, 1, 0}, {0, 1, -1, 2, -2, 0}, {0, 1, 1, 4, 4, 0}, {0, 1, -1, 8, -8, 1}}};

// |V| = |B^T| |d| |B| (n x n from the n x n patch d, row-major in d).
void abs_v(const WinoMats& w, const double* d, double* out) {
  for (int i = 0; i < w.n; ++i)
    for (int j = 0; j < w.n; ++j) {
      double s = 0;
      for (int l = 0; l < w.n; ++l)
        for (int m = 0; m < w.n; ++m) s += w.bt[i][l] * std::abs(d[l * w.n + m]) * w.bt[j][m];
      out[i * w.n + j] = s;
    }
}
// |U| = |G| |g| |G^T| (n x n from 3x3).
void abs_u(const WinoMats& w, const double g[3][3], double* out) {
  for (int i = 0; i < w.n; ++i)
    for (int j = 0; j < w.n; ++j) {
      double s = 0;
      for (int r = 0; r < 3; ++r)
        for (int c = 0; c < 3; ++c) s += w.g[i][r] * std::abs(g[r][c]) * w.g[j][c];
      out[i * w.n + j] = s;
    }
}
// |Z| = |A| |dz| |A^T| (n x n from the m x m tile dz, row-major).
void abs_z(const WinoMats& w, const double* dz, double* out) {
  for (int i = 0; i < w.n; ++i)
    for (int j = 0; j < w.n; ++j) {
      double s = 0;
      for (int r = 0; r < w.m; ++r)
        for (int c = 0; c < w.m; ++c) s += w.a[i][r] * std::abs(dz[r * w.m + c]) * w.a[j][c];
      out[i * w.n + j] = s;
    }
}

}  // namespace

// Accuracy of the Winograd layer against the definition in double, for F(2x2, 3x3) and
// F(4x4, 3x3). A Winograd output is sum_xi a_xi sum_c U_xi,c V_xi,c, every transformed value a
// short sum of multiples of the inputs (+-1 and +-1/2 for F(2x2); up to 5, 8 and 1/24 for
// F(4x4)); in float each is within a few units of rounding of the same expression in absolute
// values, and the C-term sums within (C + 1) u of theirs, so
//   |y - y_exact| <= (2 C + 64) u S_W,   S_W = sum_c sum_xi |a_xi| |U|_xi,c |V|_xi,c
// with |U| = |G| |g| |G^T| and |V| = |B^T| |d| |B| (and likewise for dx, over K, and for dW, over
// the N * tiles terms of dU = sum_t Z_t V_t^T, with |Z| = |A| |dz| |A^T| and |G^T| . |G|). The
// bound grows with the matrices' entries, so F(4x4) is allowed its larger error and no more. A
// dropped or misplaced term is of the size S_W / C and fails by orders of magnitude.
TEST_CASE(
    "Conv2D (Winograd): matches the definition within the Winograd error bound, and does "
    "not depend on the thread count",
    "[conv2d][winograd]") {
  const int saved = num_threads();
  struct Case {
    const char* label;
    int64_t n, c, h, w, k;
    nn::Padding padding;
    nn::Activation act;
  };
  const Case cases[] = {
      {"21 x 32x13x13 -> 64, valid, relu", 21, 32, 13, 13, 64, nn::Padding::valid,
       nn::Activation::relu},
      {"3 x 8x10x9 -> 9, same, tanh", 3, 8, 10, 9, 9, nn::Padding::same, nn::Activation::tanh},
      {"2 x 3x7x7 -> 4, valid, linear", 2, 3, 7, 7, 4, nn::Padding::valid, nn::Activation::linear},
      {"2 x 5x18x23 -> 6, same, relu", 2, 5, 18, 23, 6, nn::Padding::same, nn::Activation::relu},
  };
  for (const WinoMats* wm : {&kWino2, &kWino4})
    for (const Case& cs : cases) {
      DYNAMIC_SECTION("F(" << wm->m << "x" << wm->m << ") " << cs.label) {
        nn::detail::set_conv_algo(wm->m == 4 ? nn::detail::ConvAlgo::winograd4
                                             : nn::detail::ConvAlgo::winograd);
        const int tm = wm->m, tn = wm->n, xis = tn * tn;
        Rng rng(8);
        nn::Conv2D conv(cs.k, {3, 3}, {.padding = cs.padding, .activation = cs.act});
        conv.build(Shape{cs.c, cs.h, cs.w});
        conv.init_params(rng);
        for (int64_t i = 0; i < conv.bias().numel(); ++i) conv.bias()[i] = 0.1f * rng.normal();
        Tensor x(Shape{cs.n, cs.c, cs.h, cs.w});
        for (int64_t i = 0; i < x.numel(); ++i) x[i] = rng.normal();
        Tensor dy(conv.output_shape().with_batch(cs.n));
        for (int64_t i = 0; i < dy.numel(); ++i) dy[i] = rng.normal();

        set_num_threads(1);
        const ConvResult one = run_conv(conv, x, dy, true);
        for (int threads : {2, 3}) {
          set_num_threads(threads);
          const ConvResult more = run_conv(conv, x, dy, true);
          INFO(threads << " threads");
          for (auto [a, b] : {std::pair{&one.y, &more.y}, std::pair{&one.dw, &more.dw},
                              std::pair{&one.db, &more.db}, std::pair{&one.dx, &more.dx}})
            for (std::size_t i = 0; i < a->size(); ++i) REQUIRE(same_bits((*a)[i], (*b)[i]));
        }
        set_num_threads(saved);

        const int64_t P = conv.output_shape()[1], Q = conv.output_shape()[2];
        const int64_t pt = conv.pad_top(), pl = conv.pad_left(), C = cs.c, K = cs.k;
        const int64_t H = cs.h, W = cs.w;
        const double u = std::ldexp(1.0, -24);
        const Tensor& wt = conv.weight();
        auto wv = [&](int64_t k, int64_t c, int64_t r, int64_t s) {
          return double(wt[((k * C + c) * 3 + r) * 3 + s]);
        };
        auto xin = [&](int64_t n, int64_t c, int64_t h, int64_t w) {
          return h >= 0 && h < H && w >= 0 && w < W ? double(x.at(n, c, h, w)) : 0.0;
        };
        auto at_ij = [&](int i, int j, int xi) {  // |A^T[i][.] (x) A^T[j][.]| at xi
          return std::abs(wm->at[i][xi / tn] * wm->at[j][xi % tn]);
        };
        // |U| per (k, c) and its rotated, transposed version per (c, k).
        std::vector<double> ua(static_cast<size_t>(K * C * xis)), uat(ua.size());
        for (int64_t k = 0; k < K; ++k)
          for (int64_t c = 0; c < C; ++c) {
            double g[3][3], gr[3][3];
            for (int r = 0; r < 3; ++r)
              for (int s2 = 0; s2 < 3; ++s2) {
                g[r][s2] = wv(k, c, r, s2);
                gr[r][s2] = wv(k, c, 2 - r, 2 - s2);
              }
            abs_u(*wm, g, &ua[static_cast<size_t>((k * C + c) * xis)]);
            abs_u(*wm, gr, &uat[static_cast<size_t>((c * K + k) * xis)]);
          }
        // |V| of every patch of a channel (grid of tiles over an output of side oh x ow, the
        // input read through get(n, c, h, w)).
        auto patches = [&](int64_t n, int64_t ty, int64_t tx, int64_t channels, int64_t ptop,
                           int64_t pleft, auto get) {
          std::vector<double> va(static_cast<size_t>(channels * xis)), d(36);
          for (int64_t c = 0; c < channels; ++c) {
            for (int i = 0; i < tn; ++i)
              for (int j = 0; j < tn; ++j)
                d[static_cast<size_t>(i * tn + j)] =
                    get(n, c, tm * ty + i - ptop, tm * tx + j - pleft);
            abs_v(*wm, d.data(), &va[static_cast<size_t>(c * xis)]);
          }
          return va;
        };
        // Forward: compare y with act(z_exact), the bound scaled by the activation's slope bound
        // (1 for all three used here).
        std::vector<double> dz(static_cast<size_t>(dy.numel()));
        const int64_t th = (P + tm - 1) / tm, tw = (Q + tm - 1) / tm;
        for (int64_t n = 0; n < cs.n; ++n)
          for (int64_t ty = 0; ty < th; ++ty)
            for (int64_t tx = 0; tx < tw; ++tx) {
              const std::vector<double> va = patches(n, ty, tx, C, pt, pl, xin);
              for (int64_t k = 0; k < K; ++k)
                for (int i = 0; i < tm; ++i)
                  for (int j = 0; j < tm; ++j) {
                    const int64_t p = tm * ty + i, q = tm * tx + j;
                    if (p >= P || q >= Q) continue;
                    double z = conv.bias()[k], sw = std::abs(conv.bias()[k]);
                    for (int64_t c = 0; c < C; ++c)
                      for (int r = 0; r < 3; ++r)
                        for (int s2 = 0; s2 < 3; ++s2)
                          z += wv(k, c, r, s2) * xin(n, c, p + r - pt, q + s2 - pl);
                    for (int64_t c = 0; c < C; ++c)
                      for (int xi = 0; xi < xis; ++xi)
                        sw += at_ij(i, j, xi) * ua[static_cast<size_t>((k * C + c) * xis + xi)] *
                              va[static_cast<size_t>(c * xis + xi)];
                    const auto at = static_cast<size_t>(((n * K + k) * P + p) * Q + q);
                    double y = z;
                    if (cs.act == nn::Activation::relu) y = z > 0 ? z : 0;
                    if (cs.act == nn::Activation::tanh) y = std::tanh(z);
                    const double bound = (2.0 * double(C) + 64) * u * sw + 2 * u * std::abs(y);
                    REQUIRE(std::abs(one.y[at] - y) <= bound);
                    const double yv = one.y[at];
                    double dact = 1.0;
                    if (cs.act == nn::Activation::relu) dact = yv > 0 ? 1.0 : 0.0;
                    if (cs.act == nn::Activation::tanh) dact = 1.0 - yv * yv;
                    dz[at] = double(dy[static_cast<int64_t>(at)]) * dact;
                  }
            }
        auto dzv = [&](int64_t n, int64_t k, int64_t p, int64_t q) {
          return p >= 0 && p < P && q >= 0 && q < Q
                     ? dz[static_cast<size_t>(((n * K + k) * P + p) * Q + q)]
                     : 0.0;
        };
        // dW and db: exact sums, and the bound over the n * tiles terms of dU.
        std::vector<double> dwe(static_cast<size_t>(K * C * 9), 0.0),
            dus(static_cast<size_t>(K * C * xis), 0.0);
        std::vector<double> dbe(static_cast<size_t>(K), 0.0), dbs(static_cast<size_t>(K), 0.0);
        for (int64_t n = 0; n < cs.n; ++n)
          for (int64_t ty = 0; ty < th; ++ty)
            for (int64_t tx = 0; tx < tw; ++tx) {
              const std::vector<double> va = patches(n, ty, tx, C, pt, pl, xin);
              for (int64_t k = 0; k < K; ++k) {
                double g2[16], za[36];
                for (int i = 0; i < tm; ++i)
                  for (int j = 0; j < tm; ++j) g2[i * tm + j] = dzv(n, k, tm * ty + i, tm * tx + j);
                abs_z(*wm, g2, za);
                for (int64_t c = 0; c < C; ++c)
                  for (int xi = 0; xi < xis; ++xi)
                    dus[static_cast<size_t>((k * C + c) * xis + xi)] +=
                        za[xi] * va[static_cast<size_t>(c * xis + xi)];
                for (int i = 0; i < tm * tm; ++i) {
                  dbe[static_cast<size_t>(k)] += g2[i];
                  dbs[static_cast<size_t>(k)] += std::abs(g2[i]);
                }
              }
            }
        for (int64_t n = 0; n < cs.n; ++n)
          for (int64_t k = 0; k < K; ++k)
            for (int64_t p = 0; p < P; ++p)
              for (int64_t q = 0; q < Q; ++q)
                for (int64_t c = 0; c < C; ++c)
                  for (int r = 0; r < 3; ++r)
                    for (int s2 = 0; s2 < 3; ++s2)
                      dwe[static_cast<size_t>(((k * C + c) * 3 + r) * 3 + s2)] +=
                          dzv(n, k, p, q) * xin(n, c, p + r - pt, q + s2 - pl);
        const double terms = double(cs.n * th * tw);
        for (int64_t k = 0; k < K; ++k)
          for (int64_t c = 0; c < C; ++c)
            for (int r = 0; r < 3; ++r)
              for (int s2 = 0; s2 < 3; ++s2) {
                double sb = 0;  // |G^T| |dU| |G| at (r, s)
                for (int i = 0; i < tn; ++i)
                  for (int j = 0; j < tn; ++j)
                    sb += wm->g[i][r] * dus[static_cast<size_t>((k * C + c) * xis + i * tn + j)] *
                          wm->g[j][s2];
                const auto at = static_cast<size_t>(((k * C + c) * 3 + r) * 3 + s2);
                REQUIRE(std::abs(one.dw[at] - dwe[at]) <= (2 * terms + 64) * u * sb + 1e-30);
              }
        for (int64_t k = 0; k < K; ++k)
          REQUIRE(std::abs(one.db[static_cast<size_t>(k)] - dbe[static_cast<size_t>(k)]) <=
                  (2 * terms + 16) * u * dbs[static_cast<size_t>(k)] + 1e-30);
        // dx: a Winograd convolution of dz (pad 2 - pad) with the rotated filters, over the dx
        // grid; dx started at 0.5.
        const int64_t dth = (H + tm - 1) / tm, dtw = (W + tm - 1) / tm;
        for (int64_t n = 0; n < cs.n; ++n)
          for (int64_t ty = 0; ty < dth; ++ty)
            for (int64_t tx = 0; tx < dtw; ++tx) {
              const std::vector<double> va = patches(n, ty, tx, K, 2 - pt, 2 - pl, dzv);
              for (int64_t c = 0; c < C; ++c)
                for (int i = 0; i < tm; ++i)
                  for (int j = 0; j < tm; ++j) {
                    const int64_t h = tm * ty + i, w = tm * tx + j;
                    if (h >= H || w >= W) continue;
                    double e = 0.5, sx = 0.5;
                    for (int64_t k = 0; k < K; ++k)
                      for (int r = 0; r < 3; ++r)
                        for (int s2 = 0; s2 < 3; ++s2)
                          e += dzv(n, k, h + pt - r, w + pl - s2) * wv(k, c, r, s2);
                    for (int64_t k = 0; k < K; ++k)
                      for (int xi = 0; xi < xis; ++xi)
                        sx += at_ij(i, j, xi) * uat[static_cast<size_t>((c * K + k) * xis + xi)] *
                              va[static_cast<size_t>(k * xis + xi)];
                    const auto at = static_cast<size_t>(((n * C + c) * H + h) * W + w);
                    REQUIRE(std::abs(one.dx[at] - e) <= (2.0 * double(K) + 64) * u * sx);
                  }
            }
      }
    }
  set_num_threads(saved);
  nn::detail::set_conv_algo(nn::detail::ConvAlgo::automatic);
}

// The automatic choice counts Winograd tiles over the batch in training but per image in
// inference, so an image's inference output is the same bits whatever batch it is in. The
// 32-channel 'same' layers below have 4 tiles (7x7) and 16 tiles (13x13) per image: at batch 8
// training uses Winograd for both; inference only for the second.
TEST_CASE("Conv2D (automatic): inference does not depend on the batch", "[conv2d][winograd]") {
  nn::detail::set_conv_algo(nn::detail::ConvAlgo::automatic);
  for (int64_t side : {7, 13}) {
    DYNAMIC_SECTION(side << "x" << side) {
      Rng rng(3);
      nn::Conv2D conv(32, {3, 3},
                      {.padding = nn::Padding::same, .activation = nn::Activation::relu});
      conv.build(Shape{32, side, side});
      conv.init_params(rng);
      const int64_t n = 8, per = 32 * side * side;
      Tensor x(Shape{n, 32, side, side});
      for (int64_t i = 0; i < x.numel(); ++i) x[i] = rng.normal();
      Tensor y(conv.output_shape().with_batch(n)), yt(y.shape());
      conv.forward(x, y, nn::Phase::infer);
      conv.forward(x, yt, nn::Phase::train);
      bool train_differs = false;
      for (int64_t i = 0; i < y.numel(); ++i) train_differs |= !same_bits(y[i], yt[i]);
      // 7x7: inference is im2col, training Winograd (different rounding somewhere); 13x13: both
      // Winograd, the same bits.
      CHECK(train_differs == (side == 7));
      for (int64_t j = 0; j < n; ++j) {
        Tensor x1(Shape{1, 32, side, side}), y1(conv.output_shape().with_batch(1));
        std::copy(x.data() + j * per, x.data() + (j + 1) * per, x1.data());
        conv.forward(x1, y1, nn::Phase::infer);
        for (int64_t i = 0; i < y1.numel(); ++i) REQUIRE(same_bits(y1[i], y[j * y1.numel() + i]));
      }
    }
  }
}

// The Winograd forward keeps its transformed filters between calls and transforms again only
// when the weights change. After any change (a step of an optimiser, an edit through weight(),
// a change and its undo, the tile size) the output must be the one a fresh layer with the same
// weights computes.
TEST_CASE("Conv2D (Winograd): the kept filter transform follows the weights",
          "[conv2d][winograd]") {
  for (auto algo : {nn::detail::ConvAlgo::winograd4, nn::detail::ConvAlgo::winograd}) {
    nn::detail::set_conv_algo(algo);
    Rng rng(17);
    nn::Conv2DOptions o{.padding = nn::Padding::same, .activation = nn::Activation::relu};
    nn::Conv2D conv(16, {3, 3}, o);
    conv.build(Shape{8, 12, 12});
    conv.init_params(rng);
    Tensor x(Shape{2, 8, 12, 12});
    for (int64_t i = 0; i < x.numel(); ++i) x[i] = rng.normal();
    Tensor y(conv.output_shape().with_batch(2)), want(y.shape());
    auto fresh = [&](Tensor& out) {
      nn::Conv2D other(16, {3, 3}, o);
      other.build(Shape{8, 12, 12});
      other.weight().copy_from(conv.weight());
      other.bias().copy_from(conv.bias());
      other.forward(x, out, nn::Phase::infer);
    };
    auto same = [&] {
      conv.forward(x, y, nn::Phase::infer);
      fresh(want);
      for (int64_t i = 0; i < y.numel(); ++i) REQUIRE(same_bits(y[i], want[i]));
    };
    same();
    same();  // the kept transform
    const Tensor first = y.clone();
    const float w5 = conv.weight()[5];
    conv.weight()[5] = w5 + 0.25f;  // one weight changed
    same();
    bool changed = false;
    for (int64_t i = 0; i < y.numel(); ++i) changed |= !same_bits(y[i], first[i]);
    CHECK(changed);
    conv.weight()[5] = w5;  // and changed back
    same();
    for (int64_t i = 0; i < y.numel(); ++i) REQUIRE(same_bits(y[i], first[i]));
    conv.weight()[conv.weight().numel() - 1] *= -1.0f;  // the last weight
    same();
    conv.forward(x, y, nn::Phase::train);  // training forward: the same transform
    for (int64_t i = 0; i < y.numel(); ++i) REQUIRE(same_bits(y[i], want[i]));
  }
  // The tile size changes under a kept transform: F(2x2) after F(4x4).
  nn::detail::set_conv_algo(nn::detail::ConvAlgo::winograd4);
  Rng rng(18);
  nn::Conv2D conv(16, {3, 3}, {.padding = nn::Padding::same});
  conv.build(Shape{8, 12, 12});
  conv.init_params(rng);
  Tensor x(Shape{1, 8, 12, 12});
  for (int64_t i = 0; i < x.numel(); ++i) x[i] = rng.normal();
  // c (unbuilt, like conv) built with conv's weights: no kept transform yet.
  auto copy_conv = [&](nn::Conv2D& c) {
    c.build(Shape{8, 12, 12});
    c.weight().copy_from(conv.weight());
    c.bias().copy_from(conv.bias());
  };
  Tensor y4(conv.output_shape().with_batch(1)), y2(y4.shape()), y2b(y4.shape());
  conv.forward(x, y4, nn::Phase::infer);
  nn::detail::set_conv_algo(nn::detail::ConvAlgo::winograd);
  conv.forward(x, y2, nn::Phase::infer);
  nn::Conv2D other(16, {3, 3}, {.padding = nn::Padding::same});
  copy_conv(other);
  other.forward(x, y2b, nn::Phase::infer);
  for (int64_t i = 0; i < y2.numel(); ++i) REQUIRE(same_bits(y2[i], y2b[i]));
  // The ISA changes under a kept transform: the filters are packed again for the new table's
  // GEMM (AVX-512's panels are 8 rows, AVX2's and the scalar table's 6), down and back up. conv
  // and other keep their transforms from the runs before; a fresh copy has none.
  nn::detail::set_conv_algo(nn::detail::ConvAlgo::winograd4);
  std::vector<Isa> isas;
  for (Isa isa : {Isa::avx512, Isa::avx2, Isa::scalar, Isa::avx512})
    if (static_cast<int>(isa) <= static_cast<int>(detected_isa())) isas.push_back(isa);
  Tensor kept(y4.shape()), kept_other(y4.shape()), want(y4.shape());
  for (Isa isa : isas) {
    INFO(to_string(isa));
    set_max_isa(isa);
    conv.forward(x, kept, nn::Phase::infer);
    other.forward(x, kept_other, nn::Phase::infer);
    nn::Conv2D fresh(16, {3, 3}, {.padding = nn::Padding::same});
    copy_conv(fresh);
    fresh.forward(x, want, nn::Phase::infer);
    for (int64_t i = 0; i < want.numel(); ++i) REQUIRE(same_bits(kept[i], want[i]));
    for (int64_t i = 0; i < want.numel(); ++i) REQUIRE(same_bits(kept_other[i], want[i]));
  }
  set_max_isa(Isa::avx512);
  nn::detail::set_conv_algo(nn::detail::ConvAlgo::automatic);
}

TEST_CASE("gemm_nt_small: every ISA agrees with the reference GEMM", "[kernels][gemm]") {
  // C = A B^T + beta C with rows of A and B contiguous along K. Both are float sums of K products
  // in different orders: |fast - ref| <= (2K + 16) u (S + |beta C0|), S = sum_k |a_ik b_jk|.
  // K = 2688 takes the chunked path for whole blocks (M = 64, N = 27 overflows one group of
  // buffered accumulators), whose sums must have the bits of the one-pass path (rows and
  // elements alone, below).
  std::mt19937 rng(9);
  std::uniform_real_distribution<float> ud(-1.0f, 1.0f);
  const double u = std::ldexp(1.0, -24);
  for (Isa isa : runnable_isas()) {
    const KernelTable& t = table_for(isa);
    for (int64_t M : {1, 2, 3, 4, 5, 6, 7, 32, 64})
      for (int64_t N : {1, 2, 3, 4, 5, 6, 7, 9, 27})
        for (int64_t K : {1, 15, 16, 17, 100, 2688})
          for (float beta : {0.0f, 1.0f}) {
            INFO(to_string(isa) << " M=" << M << " N=" << N << " K=" << K << " beta=" << beta);
            const int64_t lda = K + 3, ldb = K + 5, ldc = N + 2;
            std::vector<float> a(static_cast<size_t>(M * lda)), b(static_cast<size_t>(N * ldb));
            for (float& v : a) v = ud(rng);
            for (float& v : b) v = ud(rng);
            std::vector<float> c0(static_cast<size_t>(M * ldc));
            for (float& v : c0)
              v = beta == 0.0f ? std::numeric_limits<float>::quiet_NaN() : ud(rng);
            std::vector<float> want(c0), got(c0);
            ref::sgemm(false, true, M, N, K, 1.0f, a.data(), lda, b.data(), ldb, beta, want.data(),
                       ldc);
            t.gemm_nt_small(M, N, K, a.data(), lda, b.data(), ldb, beta, got.data(), ldc);
            for (int64_t i = 0; i < M; ++i)
              for (int64_t j = 0; j < ldc; ++j) {
                const auto at = static_cast<size_t>(i * ldc + j);
                if (j >= N) {  // outside C: untouched
                  REQUIRE(same_bits(got[at], c0[at]));
                  continue;
                }
                double s = beta == 0.0f ? 0.0 : std::abs(double(c0[at]));
                for (int64_t k = 0; k < K; ++k)
                  s += std::abs(double(a[static_cast<size_t>(i * lda + k)]) *
                                b[static_cast<size_t>(j * ldb + k)]);
                REQUIRE(std::abs(double(got[at]) - want[at]) <= (2.0 * double(K) + 16) * u * s);
              }
            // Each result's order of sums depends only on K: row i alone gives the same bits as
            // row i in a block of rows (Dense's forward at batch 1 and in a small batch agree).
            for (int64_t i = 0; i < M; ++i) {
              std::vector<float> row(c0.begin() + i * ldc, c0.begin() + (i + 1) * ldc);
              t.gemm_nt_small(1, N, K, a.data() + i * lda, lda, b.data(), ldb, beta, row.data(),
                              ldc);
              for (int64_t j = 0; j < N; ++j)
                REQUIRE(
                    same_bits(row[static_cast<size_t>(j)], got[static_cast<size_t>(i * ldc + j)]));
            }
            // Nor on the block an element is computed in: each one alone (M = N = 1) gives the
            // same bits as in the full product, edge columns and corner included.
            for (int64_t i = 0; i < M; ++i)
              for (int64_t j = 0; j < N; ++j) {
                const auto at = static_cast<size_t>(i * ldc + j);
                float one = c0[at];
                t.gemm_nt_small(1, 1, K, a.data() + i * lda, lda, b.data() + j * ldb, ldb, beta,
                                &one, ldc);
                REQUIRE(same_bits(one, got[at]));
              }
          }
  }
}

TEST_CASE("Conv2D first layer: the direct 3x3 kernels against the im2col path", "[conv2d][conv]") {
  // Where the ISA has conv3x3 and conv3x3_grad (AVX-512), a 3x3 valid stride-1 layer with few
  // channels runs them (forward; dW and db without dx); forced onto im2col it runs the GEMMs. The
  // forward sums are the same, so y is equal bit for bit; dW and db are summed in another order
  // (16 lanes, then pairwise), so they agree within float reassociation, and with 1 and 2 threads
  // bit for bit. Odd and even sizes, a filter tail, every activation the kernels take, with and
  // without bias.
  struct LayerCase {
    int64_t n, c, h, w, k;
    nn::Activation act;
    bool bias;
  };
  const LayerCase cases[] = {{3, 3, 30, 26, 8, nn::Activation::relu, true},
                             {2, 1, 29, 31, 5, nn::Activation::leaky_relu, true},
                             {2, 2, 17, 40, 35, nn::Activation::linear, false}};
  const int saved = num_threads();
  for (const LayerCase& lc : cases)
    DYNAMIC_SECTION(lc.n << " x " << lc.c << "x" << lc.h << "x" << lc.w << " -> " << lc.k) {
      Rng rng(31);
      nn::Conv2D conv(lc.k, {3, 3}, {.activation = lc.act, .use_bias = lc.bias});
      conv.build(Shape{lc.c, lc.h, lc.w});
      conv.init_params(rng);
      if (lc.bias)
        for (int64_t i = 0; i < conv.bias().numel(); ++i) conv.bias()[i] = 0.1f * rng.normal();
      Tensor x(Shape{lc.n, lc.c, lc.h, lc.w});
      for (int64_t i = 0; i < x.numel(); ++i) x[i] = rng.normal();
      Tensor dy(conv.output_shape().with_batch(lc.n));
      for (int64_t i = 0; i < dy.numel(); ++i) dy[i] = rng.normal();
      auto run = [&](nn::detail::ConvAlgo algo, int threads) {
        nn::detail::set_conv_algo(algo);
        set_num_threads(threads);
        Tensor y(dy.shape());
        conv.forward(x, y, nn::Phase::train);
        for (auto& p : conv.params()) p.grad->zero();
        conv.backward(x, y, dy, nullptr);
        std::vector<std::vector<float>> out{std::vector<float>(y.data(), y.data() + y.numel())};
        for (auto& p : conv.params())
          out.emplace_back(p.grad->data(), p.grad->data() + p.grad->numel());
        nn::detail::set_conv_algo(nn::detail::ConvAlgo::automatic);
        return out;
      };
      const auto direct = run(nn::detail::ConvAlgo::automatic, 1);
      const auto lowered = run(nn::detail::ConvAlgo::im2col, 1);
      const auto two = run(nn::detail::ConvAlgo::automatic, 2);
      REQUIRE(direct.size() == lowered.size());
      for (std::size_t e = 0; e < direct[0].size(); ++e)
        REQUIRE(same_bits(direct[0][e], lowered[0][e]));
      for (std::size_t t = 1; t < direct.size(); ++t) {
        double d = 0, m = 0;
        for (std::size_t e = 0; e < direct[t].size(); ++e) {
          d = std::max(d, std::fabs(double(direct[t][e]) - lowered[t][e]));
          m = std::max(m, std::fabs(double(lowered[t][e])));
        }
        CHECK(d <= 1e-5 * m);
      }
      for (std::size_t t = 0; t < direct.size(); ++t)
        for (std::size_t e = 0; e < direct[t].size(); ++e)
          REQUIRE(same_bits(direct[t][e], two[t][e]));
    }
  set_num_threads(saved);
}
