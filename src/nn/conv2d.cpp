// 2-D convolution layer (docs/layers-conv-pool.md derives every formula below).
//
// Shapes: x (N, C, H, W), weight W (K, C, R, S), bias b (K), y (N, K, P, Q); strides (sh, sw),
// top/left padding (pt, pl) resolved by build() (kernels/im2col.hpp, nn/conv_geometry.hpp).
//
// Forward (the source document's y = sum_i sum_j w(i,j) x(x-i, y-j) + b, computed as a
// cross-correlation as every CNN library does, i.e. with x(p+i, q+j) and no kernel flip):
//   z[n,k,p,q] = b[k] + sum_{c,r,s} W[k,c,r,s] x[n, c, p*sh + r - pt, q*sw + s - pl]
//   y[n,k,p,q] = act(z[n,k,p,q])                        (x outside the image reads as 0)
// Lowering: the batch is one column matrix col = im2col(x) with C*R*S rows and N*P*Q columns,
// column j = n*PQ + p*Q + q (kernels/im2col.hpp), so that
//   z (K x NPQ) = W (K x CRS) * col (CRS x NPQ) + b 1^T
// (z stored NCHW: column j of z is z[n, :, p, q]).
//
// Backward, with dz = dy * act'(z) (act' written through y, see act.hpp):
//   dL/dW[k,c,r,s] = sum_{n,p,q} dz[n,k,p,q] x[n, c, p*sh + r - pt, q*sw + s - pl]
//                                                       dW += dz col^T
//   dL/db[k]       = sum_{n,p,q} dz[n,k,p,q]            db += rowsum(dz)
//   dL/dx[n,c,h,w] = sum_{k,r,s,p,q : p*sh + r - pt = h, q*sw + s - pl = w} dz[n,k,p,q] W[k,c,r,s]
//                                                       dcol = W^T dz, dx += col2im(dcol)
//
// Tiles. Neither col nor dz is ever built for the whole batch: the columns are cut into tiles of
// T columns (at most kTileFloats floats of columns and output together, so a tile's buffers stay
// in L2), a tile may span several images (small images: Fashion-MNIST's 11x11 outputs) or part
// of one (224x224). Per tile:
//   forward:   col_t = im2col_tile(x); out_t = W col_t (one GEMM, N = T);
//              y[tile] = act(out_t + b)                   (bias and activation fused in the store)
//   backward:  dz_t = dy[tile] * act'(y[tile]); db_g += rowsum(dz_t); col_t = im2col_tile(x);
//              dW_g += dz_t col_t^T; dcol_t = W^T dz_t (into col_t's buffer); dx += col2im(dcol_t)
//
// Threads. Forward: the tiles are shared out dynamically over the pool; each worker has its own
// column and output buffers, and every tile is computed the same way whichever worker takes it,
// so y does not depend on the thread count at all. Backward: the batch is cut into G groups of
// consecutive images (G = min(N, 16), halved while the partial gradients would exceed
// kPartialFloats), G depending only on N and the layer shape, never on the thread count. A group
// is processed by one worker, tile after tile, accumulating into its own partial dW_g and db_g;
// then dW += dW_0 + dW_1 + ... in group order. Groups own disjoint images, so the col2im adds
// into dx never race. The gradients therefore do not depend on the thread count either (bitwise;
// tests/test_conv2d.cpp checks 1 == 2 == 3 threads); they depend on N only through G, i.e. on the
// order in which float partial sums are added (the same reassociation any batch split makes).
//
// Fused pooling: Sequential runs a first layer, or a layer on the Winograd path, and a following
// 2x2 / stride 2 MaxPool2D as one (forward_pool2x2 / backward_pool2x2 below), without storing y.
//
// Memory: work_ holds, per worker, a column buffer (CRS x ld) and an output / dz buffer (K x ld),
// then the G partial gradients. It is resized on every call and reallocates only when a larger
// batch, input or thread count arrives.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>

#include "imgsim/error.hpp"
#include "imgsim/nn/layers.hpp"
#include "imgsim/nn/serialize.hpp"
#include "kernels/im2col.hpp"
#include "kernels/kernels.hpp"
#include "kernels/thread_pool.hpp"
#include "kernels/winograd.hpp"
#include "nn/act.hpp"
#include "nn/conv_algo.hpp"
#include "nn/conv_geometry.hpp"

namespace imgsim::nn {

namespace detail {
namespace {
constexpr int kAlgoUnset = -1;
std::atomic<int> g_conv_algo{kAlgoUnset};

ConvAlgo algo_from_env() {
  const char* env = std::getenv("IMGSIM_CONV_ALGO");
  if (!env || !*env) return ConvAlgo::automatic;
  const std::string v = env;
  if (v == "auto") return ConvAlgo::automatic;
  if (v == "im2col") return ConvAlgo::im2col;
  if (v == "winograd2") return ConvAlgo::winograd;
  if (v == "winograd4") return ConvAlgo::winograd4;
  throw InvalidArgument("IMGSIM_CONV_ALGO: expected auto, im2col, winograd2 or winograd4, got '" +
                        v + "'");
}
int fusion_from_env() {
  const char* env = std::getenv("IMGSIM_FUSE");
  if (!env || !*env) return 1;
  const std::string v = env;
  if (v == "1") return 1;
  if (v == "0") return 0;
  throw InvalidArgument("IMGSIM_FUSE: expected 1 or 0, got '" + v + "'");
}
std::atomic<int> g_fusion{kAlgoUnset};
}  // namespace
void set_fusion(bool on) {
  g_fusion.store(on ? 1 : 0, std::memory_order_relaxed);
}
bool fusion_enabled() {
  int f = g_fusion.load(std::memory_order_relaxed);
  if (f == kAlgoUnset) {
    const int from_env = fusion_from_env();
    f = g_fusion.compare_exchange_strong(f, from_env) ? from_env : f;
  }
  return f == 1;
}
void set_conv_algo(ConvAlgo a) {
  g_conv_algo.store(static_cast<int>(a), std::memory_order_relaxed);
}
namespace {
std::atomic<long> g_pool_block{0};
}  // namespace
void set_wino_pool_block(long floats) {
  g_pool_block.store(floats > 0 ? floats : 0, std::memory_order_relaxed);
}
long wino_pool_block() {
  const long b = g_pool_block.load(std::memory_order_relaxed);
  return b > 0 ? b : kWinoPoolBlockFloats;
}
ConvAlgo conv_algo() {
  int a = g_conv_algo.load(std::memory_order_relaxed);
  if (a == kAlgoUnset) {
    const int from_env = static_cast<int>(algo_from_env());
    // A concurrent set_conv_algo() wins over the environment.
    a = g_conv_algo.compare_exchange_strong(a, from_env) ? from_env : a;
  }
  return static_cast<ConvAlgo>(a);
}
}  // namespace detail

namespace {

constexpr int64_t kMaxFilters = int64_t{1} << 24;

std::string size_str(Size2 s) {
  return std::to_string(s.h) + "x" + std::to_string(s.w);
}

// "3" for a square size, "3x2" otherwise.
std::string short_size_str(Size2 s) {
  return s.h == s.w ? std::to_string(s.h) : size_str(s);
}

std::string who(const std::string& name) {
  return name.empty() ? "Conv2D" : "Conv2D " + name;
}

bool in_range(int64_t v, int64_t lo, int64_t hi) {
  return v >= lo && v <= hi;
}

}  // namespace

Conv2D::Conv2D(int64_t filters, Size2 kernel, Conv2DOptions opt)
    : filters_(filters), kernel_(kernel), opt_(opt) {
  if (!in_range(filters, 1, kMaxFilters))
    throw InvalidArgument("Conv2D: filters must be in [1, " + std::to_string(kMaxFilters) +
                          "], got " + std::to_string(filters));
  if (!in_range(kernel.h, 1, detail::kMaxWindow) || !in_range(kernel.w, 1, detail::kMaxWindow))
    throw InvalidArgument("Conv2D: kernel size must be in [1, " +
                          std::to_string(detail::kMaxWindow) + "], got " + size_str(kernel));
  if (!in_range(opt.stride.h, 1, detail::kMaxWindow) ||
      !in_range(opt.stride.w, 1, detail::kMaxWindow))
    throw InvalidArgument("Conv2D: stride must be in [1, " + std::to_string(detail::kMaxWindow) +
                          "], got " + size_str(opt.stride));
  if (!in_range(opt.pad.h, 0, detail::kMaxWindow) || !in_range(opt.pad.w, 0, detail::kMaxWindow))
    throw InvalidArgument("Conv2D: pad must be in [0, " + std::to_string(detail::kMaxWindow) +
                          "], got " + size_str(opt.pad));
  if (opt.activation == Activation::leaky_relu &&
      !(std::isfinite(opt.leaky_slope) && opt.leaky_slope > 0.0f))
    throw InvalidArgument("Conv2D: leaky_slope must be positive and finite, got " +
                          std::to_string(opt.leaky_slope));
  declared_input_ = opt.input_shape;
}

std::string Conv2D::describe() const {
  std::string s = "Conv2D(" + std::to_string(filters_) + ", " + size_str(kernel_) + ", stride " +
                  short_size_str(opt_.stride) + ", ";
  if (opt_.padding == Padding::explicit_)
    s += "pad " + short_size_str(opt_.pad);
  else
    s += detail::padding_name(opt_.padding);
  if (!opt_.use_bias) s += ", no bias";
  return s + ", " + to_string(opt_.activation) + ")";
}

Shape Conv2D::build(const Shape& in) {
  if (in.rank() != 3 || in[0] <= 0 || in[1] <= 0 || in[2] <= 0)
    throw ShapeError(who(name) + ": expects input (channels, height, width), got " + in.str());
  const int64_t c = in[0];
  if (!weight_.empty() && weight_.dim(1) != c)
    throw ShapeError(who(name) + ": weight " + weight_.shape().str() + " expects " +
                     std::to_string(weight_.dim(1)) + " input channels, got input " + in.str());
  const auto gh = detail::resolve_axis(opt_.padding, in[1], kernel_.h, opt_.stride.h, opt_.pad.h);
  const auto gw = detail::resolve_axis(opt_.padding, in[2], kernel_.w, opt_.stride.w, opt_.pad.w);
  if (gh.out <= 0 || gw.out <= 0) {
    std::string pad = opt_.padding == Padding::explicit_ ? "pad " + size_str(opt_.pad)
                                                         : detail::padding_name(opt_.padding);
    throw ShapeError(who(name) + ": kernel " + size_str(kernel_) + " does not fit input " +
                     in.str() + " (" + pad + " padding)");
  }
  if (weight_.empty()) {
    const Shape ws{filters_, c, kernel_.h, kernel_.w};
    weight_ = Tensor(ws);
    dweight_ = Tensor(ws);
    if (opt_.use_bias) {
      bias_ = Tensor({filters_});
      dbias_ = Tensor({filters_});
    }
  }
  pt_ = gh.before;
  pb_ = gh.after;
  pl_ = gw.before;
  pr_ = gw.after;
  return finish_build(in, Shape{filters_, gh.out, gw.out});
}

void Conv2D::init_params(Rng& rng) {
  const int64_t rs = kernel_.h * kernel_.w;
  const float bound = detail::init_bound(opt_.activation, in_shape_[0] * rs, filters_ * rs);
  for (int64_t i = 0; i < weight_.numel(); ++i) weight_[i] = rng.uniform(-bound, bound);
  if (opt_.use_bias) bias_.zero();
}

std::vector<Param> Conv2D::params() {
  std::vector<Param> p{{"weight", &weight_, &dweight_, true}};
  if (opt_.use_bias) p.push_back({"bias", &bias_, &dbias_, false});
  return p;
}

namespace {

// Geometry of the im2col lowering for the built layer.
kernels::Im2colGeometry lowering(const Shape& in, const Shape& out, Size2 kernel, Size2 stride,
                                 int64_t pt, int64_t pl) {
  kernels::Im2colGeometry g;
  g.channels = in[0];
  g.height = in[1];
  g.width = in[2];
  g.kernel_h = kernel.h;
  g.kernel_w = kernel.w;
  g.stride_h = stride.h;
  g.stride_w = stride.w;
  g.pad_top = pt;
  g.pad_left = pl;
  g.out_h = out[1];
  g.out_w = out[2];
  return g;
}

// A tile's column buffer and output buffer together, in floats (640 KiB: they stay in the 1 MiB
// L2 of the machine in docs/benchmarks.md while the GEMM runs over them).
constexpr int64_t kTileFloats = 160 * 1024;
// Backward image groups and the most floats their partial gradients may take together (32 MiB).
// Groups are halved, not decremented, to fit: a batch of 32 then splits into 16, 8 or 4 equal
// groups, which 2 workers share evenly. The seed's conv3 (1.2 MB per group) had 14 groups of 2
// or 3 images, so one worker ended with 17 images to the other's 15 (1.88x at best on 2 threads).
constexpr int64_t kMaxGroups = 16;
constexpr int64_t kPartialFloats = int64_t{1} << 23;
// dW of layers with at most this many weights per filter uses gemm_nt_small (kernels.hpp).
constexpr int64_t kSmallCrs = 32;
// The pooling-fused backward works channels-last from this many input channels on (a patch is
// R x S runs of C floats), on transposed im2col columns below it (docs/layers-conv-pool.md).
constexpr int64_t kHwcMinChannels = 16;
// The channels-last backward works on bands of the image whose input rows (and dx rows) are about
// this many floats (128 KiB), a part of L2 (docs/benchmarks.md).
constexpr int64_t kBandFloats = 32 * 1024;
// The direct first-layer forward (kernel conv3x3_pool) shares out this many pooled rows at a time.
constexpr int64_t kDirectRows = 8;
// Below this many flops per worker, fewer workers (waking one costs tens of microseconds).
constexpr double kMinWorkerFlops = 4.0e6;

int64_t round_up(int64_t a, int64_t m) {
  return (a + m - 1) / m * m;
}
int64_t ceil_div(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}

// Sizes of one forward or backward call on a batch of n.
struct Plan {
  int64_t crs = 0, k = 0, pq = 0, cols = 0;
  int64_t tile_max = 0;  // widest tile (columns), a multiple of 16
  int64_t ld = 0;        // row stride of the tile buffers
  int64_t groups = 0;    // backward image groups
  int64_t part = 0;      // floats per group: dW_g (K x CRS), then db_g (K), rounded up to 16
  int64_t buf = 0;       // floats per worker: columns (CRS x ld), then output / dz (K x ld)
};

Plan make_plan(const kernels::Im2colGeometry& g, int64_t k, int64_t n) {
  Plan p;
  p.crs = g.channels * g.kernel_h * g.kernel_w;
  p.k = k;
  p.pq = g.out_h * g.out_w;
  p.cols = n * p.pq;
  // A multiple of 48 (the AVX-512 GEMM's sliver width; also a multiple of the AVX2 and portable
  // ones), at least one sliver, no wider than the batch.
  int64_t t = kTileFloats / (p.crs + k) / 48 * 48;
  if (t < 48) t = 48;
  p.tile_max = t < round_up(p.cols, 16) ? t : round_up(p.cols, 16);
  // Rows a multiple of 64 floats apart would map a column sliver to a few L1 sets.
  p.ld = p.tile_max % 64 == 0 ? p.tile_max + 16 : p.tile_max;
  p.groups = n < kMaxGroups ? n : kMaxGroups;
  p.part = round_up(k * p.crs + k, 16);
  while (p.groups > 1 && p.groups * p.part > kPartialFloats) p.groups = (p.groups + 1) / 2;
  p.buf = (p.crs + k) * p.ld;
  return p;
}

// dW += dW_0 + dW_1 + ... and db likewise (db null: no bias), in group order, the same order for
// any thread count. Group g's partial gradients start at parts + g * part: dW_g, then db_g.
void add_group_parts(const float* parts, const Plan& pl, float* dw, float* db) {
  const int64_t nw = pl.k * pl.crs;
  for (int64_t gi = 0; gi < pl.groups; ++gi) {
    const float* __restrict pgi = parts + gi * pl.part;
    for (int64_t i = 0; i < nw; ++i) dw[i] += pgi[i];
    if (db)
      for (int64_t kk = 0; kk < pl.k; ++kk) db[kk] += pgi[nw + kk];
  }
}

// Prefetch [p, p + bytes) into L2 (prefetcht1), a cache line at a time.
void prefetch_l2(const void* p, int64_t bytes) {
  const char* c = static_cast<const char*>(p);
  for (int64_t b = 0; b < bytes; b += 64) __builtin_prefetch(c + b, 0, 2);
}

// off[t] = (idx[t] - base) * scale for t < n.
void scaled_offsets(const int32_t* __restrict idx, int64_t base, int64_t scale, int64_t n,
                    int64_t* __restrict off) {
  for (int64_t t = 0; t < n; ++t) off[t] = (idx[t] - base) * scale;
}

// off[t] = table[idx[t]] for t < n. (Separate, with restrict, so that the compiler need not
// reload the pointers after every store.)
void lookup(const int32_t* __restrict idx, const int64_t* __restrict table, int64_t n,
            int64_t* __restrict off) {
  for (int64_t t = 0; t < n; ++t) off[t] = table[idx[t]];
}

// sel[t * K + k] = place[arg[k * plane + t]]: the argmaxes' places in their windows, (window,
// filter) order, from (filter, window) ones.
void places_by_window(const int32_t* __restrict arg, const int64_t* __restrict place, int64_t K,
                      int64_t plane, uint8_t* __restrict sel) {
  for (int64_t k = 0; k < K; ++k)
    for (int64_t t = 0; t < plane; ++t)
      sel[t * K + k] = static_cast<uint8_t>(place[arg[k * plane + t]]);
}

// Workers worth waking for `tasks` tasks of `flops` in total.
int64_t workers_for(int64_t tasks, double flops) {
  int64_t w = num_threads();
  if (w > tasks) w = tasks;
  const auto by_work = static_cast<int64_t>(flops / kMinWorkerFlops);
  if (w > by_work) w = by_work;
  return w < 1 ? 1 : w;
}

// d[i] = act(s[i] + b) (b = *bias, or no bias if null) for i < len; d may be s (in place).
void act_row(const float* s, float* d, int64_t len, const float* bias, Activation a, float slope) {
  if (!bias) {
    if (d != s)
      for (int64_t i = 0; i < len; ++i) d[i] = s[i];
    detail::apply_activation(a, slope, d, len);
    return;
  }
  const float b = *bias;
  if (a == Activation::relu) {
    for (int64_t i = 0; i < len; ++i) {
      const float v = s[i] + b;
      d[i] = v > 0.0f ? v : 0.0f;
    }
  } else {
    for (int64_t i = 0; i < len; ++i) d[i] = s[i] + b;
    detail::apply_activation(a, slope, d, len);
  }
}

// y[n, k, pq] = act(out[k * ld + j - j0] + b[k]) for the columns j in [j0, j1).
void store_output(const float* out, int64_t ld, int64_t j0, int64_t j1, int64_t K, int64_t PQ,
                  const float* bias, Activation a, float slope, float* y) {
  for (int64_t j = j0; j < j1;) {
    const int64_t n = j / PQ, pq0 = j % PQ;
    const int64_t len = PQ - pq0 < j1 - j ? PQ - pq0 : j1 - j;
    for (int64_t kk = 0; kk < K; ++kk)
      act_row(out + kk * ld + (j - j0), y + (n * K + kk) * PQ + pq0, len,
              bias ? bias + kk : nullptr, a, slope);
    j += len;
  }
}

// dz[k * ld + j - j0] = dy[n, k, pq] * act'(y[n, k, pq]) for the columns j in [j0, j1).
void load_dz(const float* dy, const float* y, int64_t j0, int64_t j1, int64_t K, int64_t PQ,
             Activation a, float slope, float* dz, int64_t ld) {
  for (int64_t j = j0; j < j1;) {
    const int64_t n = j / PQ, pq0 = j % PQ;
    const int64_t len = PQ - pq0 < j1 - j ? PQ - pq0 : j1 - j;
    for (int64_t kk = 0; kk < K; ++kk) {
      const int64_t at = (n * K + kk) * PQ + pq0;
      detail::activation_backward(a, slope, y + at, dy + at, dz + kk * ld + (j - j0), len);
    }
    j += len;
  }
}

// Sum of v[0..n) in double with 8 independent accumulators (so it vectorises and pipelines).
double sum_row(const float* v, int64_t n) {
  double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; ++l) acc[l] += static_cast<double>(v[i + l]);
  double tail = 0.0;
  for (; i < n; ++i) tail += static_cast<double>(v[i]);
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])) + tail;
}

// --- Winograd F(2x2, 3x3) and F(4x4, 3x3) -------------------------------------------------------
//
// For 3x3 kernels with stride 1 (kernels/winograd.hpp has the algebra). Written below for F(2x2)
// (m = 2: 4x4 patches, 16 products xi); F(4x4) is the same with m = 4, 6x6 patches, 36 products
// and its own G (ft4_block, add_filter_gradient4). Per chunk of Tc m x m output tiles (a
// chunk may span images, like the im2col tiles):
//   forward:   V = input transform of x; M[xi] = U[xi] V[xi] (16 GEMMs, K x Tc x C);
//              y = act(output transform of M + b)
//   backward:  weights: V as above, Z = gradient transform of dz = dy * act'(y);
//              dU_g[xi] += Z[xi] V[xi]^T (16 GEMMs, K x C x Tc); db_g += row sums of Z[5]
//              then dW += G^T (dU_0 + dU_1 + ...) G in group order
//              data:    V' = input transform of dz padded by 2 - pad (over the dx tile grid),
//              M'[xi] = U'[xi] V'[xi] with U' the rotated, transposed filters (C x K);
//              dx (+)= output transform of M'
// Threads and determinism as for im2col: chunks shared dynamically in forward; in backward, G
// groups of images (fixed by N), each with its own dU_g, dx tiles of a group owned by it.
//
// Accuracy: every transform entry is a sum of +-1 and +-1/2 multiples of at most 9 inputs, so
// the error is that of a C-term (K-term) dot product of the transformed values;
// tests/test_kernels_conv.cpp bounds it by (2C + 64) u times the same sum in absolute values.

// Floats of one chunk's buffers (V and M, or V and Z): 1.5 MiB, so that one xi's slices stay in
// L2 while its GEMM runs.
constexpr int64_t kWinoChunkFloats = 384 * 1024;

// n: the batch in training, 1 in inference (so that an image's output does not depend on the
// batch it came in).
bool winograd_shape(Size2 kernel, Size2 stride, const kernels::Im2colGeometry& g, int64_t k,
                    int64_t n, bool backward) {
  const bool padded = g.pad_top > 0 || g.pad_left > 0;
  const int64_t tiles = n * ((g.out_h + 3) / 4) * ((g.out_w + 3) / 4);
  return kernel.h == 3 && kernel.w == 3 && stride.h == 1 && stride.w == 1 &&
         g.channels >= detail::kWinoMinChannels && k >= detail::kWinoMinChannels &&
         g.out_w >= detail::kWinoMinWidth && tiles >= detail::kWinoMinTiles &&
         (!backward || padded || g.out_w >= detail::kWinoMinWidthValid);
}

// Activation code of the kernels (nn::Activation order).
int act_code(Activation a) {
  return static_cast<int>(a);
}

// A first layer that the direct kernels (conv3x3, conv3x3_pool, conv3x3_pool_grad on AVX-512;
// the pooled two on AVX2) can run: a 3x3 filter, stride 1, no padding, few channels (C 9 <=
// kSmallCrs), an activation they apply (linear, relu, leaky relu), and no algorithm forced.
bool direct_3x3(const kernels::Im2colGeometry& g, Size2 kernel, const Conv2DOptions& opt) {
  const bool act = opt.activation == Activation::linear || opt.activation == Activation::relu ||
                   opt.activation == Activation::leaky_relu;
  return act && kernel.h == 3 && kernel.w == 3 && opt.stride.h == 1 && opt.stride.w == 1 &&
         g.pad_top == 0 && g.pad_left == 0 && g.channels * 9 <= kSmallCrs &&
         detail::conv_algo() == detail::ConvAlgo::automatic;
}

// The direct first-layer gradients' 16 lanes of partial sums per weight and bias (kernels
// conv3x3_grad, conv3x3_pool_grad: K filters of CRS + 1 vectors) summed pairwise into dW (K x CRS)
// and db (K).
void reduce_lanes(const float* acc, int64_t K, int64_t CRS, float* dw, float* db) {
  const int64_t nw = CRS + 1;
  for (int64_t kk = 0; kk < K; ++kk)
    for (int64_t wi = 0; wi < nw; ++wi) {
      float lane[16];
      std::copy(acc + (kk * nw + wi) * 16, acc + (kk * nw + wi + 1) * 16, lane);
      for (int h = 8; h >= 1; h /= 2)  // pairwise: lanes l and l + h
        for (int l = 0; l < h; ++l) lane[l] += lane[l + h];
      if (wi < CRS)
        dw[kk * CRS + wi] = lane[0];
      else
        db[kk] = lane[0];
    }
}

// The direct first-layer forwards' work: n images of `units` row units each (row pairs, or
// pooled rows), in tasks of kDirectRows units of one image shared out dynamically; fn(im, u0, u1,
// scratch) per task, with `scratch` floats per worker in work.
template <class Fn>
void direct_forward_tasks(int64_t n, int64_t units, double flops, int64_t scratch, Tensor& work,
                          Fn fn) {
  const int64_t per_img = ceil_div(units, kDirectRows), tasks = n * per_img;
  const int64_t workers = workers_for(tasks, flops);
  work.resize(Shape{workers * scratch});
  std::atomic<int64_t> next{0};
  kernels::parallel_for(workers, [&](int64_t wk) {
    float* sc = work.data() + wk * scratch;
    for (int64_t t; (t = next.fetch_add(1, std::memory_order_relaxed)) < tasks;) {
      const int64_t im = t / per_img, u0 = t % per_img * kDirectRows;
      fn(im, u0, std::min(units, u0 + kDirectRows), sc);
    }
  });
}

// The direct first-layer gradients' work, per image group of pl shared out dynamically over
// `workers`: the group's 16 lanes of partial sums (K (CRS + 1) 16 floats per worker, and
// `scratch` more) cleared, fn(im, acc, scratch) for each of its images, the lanes summed into the
// group's part; then the parts into dw and db.
template <class Fn>
void direct_grad_groups(const Plan& pl, int64_t n, int64_t workers, int64_t scratch, Tensor& work,
                        float* dw, float* db, Fn fn) {
  const int64_t K = pl.k, CRS = pl.crs, accn = K * (CRS + 1) * 16;
  work.resize(Shape{workers * (accn + scratch) + pl.groups * pl.part});
  float* parts = work.data() + workers * (accn + scratch);
  std::atomic<int64_t> next{0};
  kernels::parallel_for(workers, [&](int64_t wk) {
    float* acc = work.data() + wk * (accn + scratch);
    for (int64_t gi; (gi = next.fetch_add(1, std::memory_order_relaxed)) < pl.groups;) {
      float* dwg = parts + gi * pl.part;
      std::fill(acc, acc + accn, 0.0f);
      for (int64_t im = gi * n / pl.groups; im < (gi + 1) * n / pl.groups; ++im)
        fn(im, acc, acc + accn);
      reduce_lanes(acc, K, CRS, dwg, dwg + K * CRS);
    }
  });
  add_group_parts(parts, pl, dw, db);
}

struct WinoPlan {
  int64_t c = 0, k = 0;
  int64_t xis = 0;            // products per tile: (m + 2)^2, 16 for F(2x2) and 36 for F(4x4)
  int64_t chunk = 0, ld = 0;  // tiles per chunk (a multiple of 16), buffer row stride
  int64_t buf = 0;            // floats per worker: V (xis vc) and M or Z (xis vk)
  int64_t vc = 0, vk = 0;     // matrix xi to xi + 1 in V (C rows) and M / Z (K rows)
  int64_t ufl = 0;            // floats of one transformed filter set: xis K C, rounded up to 16
  int64_t groups = 0, part = 0;
};

WinoPlan make_wino_plan(int64_t c, int64_t k, int64_t n, int64_t max_tiles, int64_t tile) {
  WinoPlan p;
  p.c = c;
  p.k = k;
  p.xis = (tile + 2) * (tile + 2);
  int64_t t = kWinoChunkFloats / (p.xis * (c + k)) / 48 * 48;
  if (t < 48) t = 48;
  p.chunk = t < round_up(max_tiles, 16) ? t : round_up(max_tiles, 16);
  p.ld = p.chunk % 64 == 0 ? p.chunk + 16 : p.chunk;
  p.vc = c * p.ld + kernels::kWinoXiPad;
  p.vk = k * p.ld + kernels::kWinoXiPad;
  p.buf = p.xis * (p.vc + p.vk);
  p.ufl = round_up(p.xis * k * c, 16);
  p.groups = n < kMaxGroups ? n : kMaxGroups;
  p.part = round_up(p.xis * k * c + k, 16);
  while (p.groups > 1 && p.groups * p.part > kPartialFloats) p.groups = (p.groups + 1) / 2;
  return p;
}

// a (4 x 3 rows) = G g for one 3x3 g given by g(r, s), then u = a G^T (4 x 4), xi = 4i + j.
template <class Get>
void filter_transform(Get g, float* u, int64_t stride) {
  float a[4][3];
  for (int s = 0; s < 3; ++s) {
    a[0][s] = g(0, s);
    a[1][s] = 0.5f * ((g(0, s) + g(1, s)) + g(2, s));
    a[2][s] = 0.5f * ((g(0, s) - g(1, s)) + g(2, s));
    a[3][s] = g(2, s);
  }
  for (int i = 0; i < 4; ++i) {
    u[(4 * i + 0) * stride] = a[i][0];
    u[(4 * i + 1) * stride] = 0.5f * ((a[i][0] + a[i][1]) + a[i][2]);
    u[(4 * i + 2) * stride] = 0.5f * ((a[i][0] - a[i][1]) + a[i][2]);
    u[(4 * i + 3) * stride] = a[i][2];
  }
}

// Parts of the K filters for splitting per-filter work (filter transforms, the dU sum and
// G^T dU G) over `workers` threads: a few per worker, so that uneven filters balance.
int64_t filter_parts(int64_t K, int64_t workers) {
  return workers > 1 ? (K < 4 * workers ? K : 4 * workers) : 1;
}

// U[xi] (K x C) from W (K, C, 3, 3); with rotate, U'[xi] (C x K) from the filters rotated by 180
// degrees (the backward-data convolution). Filters [k0, k1) only, if given.
// F(4x4, 3x3): a (6 x 3) = G g, then u = a G^T (6 x 6), xi = 6i + j, with
//   G = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6; 1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1],
// for blocks of n filters at once (along contiguous floats, which the compiler vectorises; one
// filter at a time, with 36 scattered stores each, it was 3 % of a Fashion-MNIST step).
// ft4_cols: a = G g for g = (g0, g1, g2) of each filter.
constexpr int64_t kFtBlock = 64;
void ft4_cols(const float* g0, const float* g1, const float* g2, float (*a)[kFtBlock], int64_t n) {
  for (int64_t j = 0; j < n; ++j) {
    const float e = g0[j] + g2[j];
    a[0][j] = 0.25f * g0[j];
    a[1][j] = -(e + g1[j]) / 6.0f;
    a[2][j] = -(e - g1[j]) / 6.0f;
    a[3][j] = ((g0[j] + 4.0f * g2[j]) + 2.0f * g1[j]) / 24.0f;
    a[4][j] = ((g0[j] + 4.0f * g2[j]) - 2.0f * g1[j]) / 24.0f;
    a[5][j] = g2[j];
  }
}

// The transform of n filters, gb[3r + s][j] = g(r, s) of filter j, into u[xi * stride + j].
void ft4_block(const float (*gb)[kFtBlock], int64_t n, float* u, int64_t stride) {
  float a[3][6][kFtBlock];  // a[s] = G g[., s]
  for (int s = 0; s < 3; ++s) ft4_cols(gb[s], gb[3 + s], gb[6 + s], a[s], n);
  float r[6][kFtBlock];
  for (int i = 0; i < 6; ++i) {
    ft4_cols(a[0][i], a[1][i], a[2][i], r, n);
    for (int jj = 0; jj < 6; ++jj) {
      float* d = u + (6 * i + jj) * stride;
      for (int64_t j = 0; j < n; ++j) d[j] = r[jj][j];
    }
  }
}

void transform_filters(const float* w, int64_t K, int64_t C, bool rotate, int64_t tile, float* u,
                       int64_t k0 = 0, int64_t k1 = -1) {
  if (k1 < 0) k1 = K;
  if (tile == 4) {
    // Blocks of filters whose U entries are contiguous: plain, U[xi] row k along c; rotated,
    // U'[xi] row c along k (filters [k0, k1)).
    float gb[9][kFtBlock];
    if (!rotate) {
      for (int64_t k = k0; k < k1; ++k)
        for (int64_t c0 = 0; c0 < C; c0 += kFtBlock) {
          const int64_t n = C - c0 < kFtBlock ? C - c0 : kFtBlock;
          for (int64_t j = 0; j < n; ++j)
            for (int rs = 0; rs < 9; ++rs) gb[rs][j] = w[(k * C + c0 + j) * 9 + rs];
          ft4_block(gb, n, u + k * C + c0, K * C);
        }
    } else {
      for (int64_t c = 0; c < C; ++c)
        for (int64_t kb = k0; kb < k1; kb += kFtBlock) {
          const int64_t n = k1 - kb < kFtBlock ? k1 - kb : kFtBlock;
          for (int64_t j = 0; j < n; ++j)
            for (int rs = 0; rs < 9; ++rs) gb[rs][j] = w[((kb + j) * C + c) * 9 + (8 - rs)];
          ft4_block(gb, n, u + c * K + kb, K * C);
        }
    }
    return;
  }
  for (int64_t k = k0; k < k1; ++k)
    for (int64_t c = 0; c < C; ++c) {
      const float* g = w + (k * C + c) * 9;
      auto plain = [&](int r, int s) { return g[r * 3 + s]; };
      auto rotated = [&](int r, int s) { return g[(2 - r) * 3 + (2 - s)]; };
      float* dst = rotate ? u + c * K + k : u + k * C + c;
      if (rotate)
        filter_transform(rotated, dst, K * C);
      else
        filter_transform(plain, dst, K * C);
    }
}

// F(4x4, 3x3): dW (K, C, 3, 3) += G^T dU G, dU[xi] (K x C), xi = 6i + j, for filters [k0, k1).
void add_filter_gradient4(const float* du, int64_t K, int64_t C, int64_t k0, int64_t k1,
                          float* dw) {
  const int64_t kc = K * C;
  // b = G^T v for a 6-vector v (G as in ft4_cols).
  auto gt = [](const float* v, float* b) {
    const float m12 = v[1] + v[2], d12 = v[1] - v[2], m34 = v[3] + v[4], d34 = v[3] - v[4];
    b[0] = (0.25f * v[0] - m12 / 6.0f) + m34 / 24.0f;
    b[1] = d34 / 12.0f - d12 / 6.0f;
    b[2] = (m34 / 6.0f - m12 / 6.0f) + v[5];
  };
  for (int64_t k = k0; k < k1; ++k)
    for (int64_t c = 0; c < C; ++c) {
      const float* d = du + k * C + c;
      float t[3][6];  // G^T dU (3 x 6), column by column
      for (int j = 0; j < 6; ++j) {
        float v[6], b[3];
        for (int i = 0; i < 6; ++i) v[i] = d[(6 * i + j) * kc];
        gt(v, b);
        for (int r = 0; r < 3; ++r) t[r][j] = b[r];
      }
      float* o = dw + (k * C + c) * 9;
      for (int r = 0; r < 3; ++r) {  // (G^T dU) G
        float b[3];
        gt(t[r], b);
        for (int s2 = 0; s2 < 3; ++s2) o[r * 3 + s2] += b[s2];
      }
    }
}

// dW (K, C, 3, 3) += G^T dU G, dU[xi] (K x C), for filters [k0, k1).
void add_filter_gradient(const float* du, int64_t K, int64_t C, int64_t k0, int64_t k1, float* dw) {
  const int64_t kc = K * C;
  for (int64_t k = k0; k < k1; ++k)
    for (int64_t c = 0; c < C; ++c) {
      const float* d = du + k * C + c;
      float t[3][4];  // G^T dU (3 x 4)
      for (int j = 0; j < 4; ++j) {
        const float d0 = d[(0 + j) * kc], d1 = d[(4 + j) * kc], d2 = d[(8 + j) * kc],
                    d3 = d[(12 + j) * kc];
        t[0][j] = d0 + 0.5f * (d1 + d2);
        t[1][j] = 0.5f * (d1 - d2);
        t[2][j] = 0.5f * (d1 + d2) + d3;
      }
      float* o = dw + (k * C + c) * 9;
      for (int r = 0; r < 3; ++r) {  // (G^T dU) G
        o[r * 3 + 0] += t[r][0] + 0.5f * (t[r][1] + t[r][2]);
        o[r * 3 + 1] += 0.5f * (t[r][1] - t[r][2]);
        o[r * 3 + 2] += 0.5f * (t[r][1] + t[r][2]) + t[r][3];
      }
    }
}

// The groups' partial gradients (group gi at parts + gi * pl.part: dU_g[xi] (K x C) for every xi,
// then db_g (K)) into the layer's: dU = dU_0 + dU_1 + ... in group order (summed into dU_0), then
// dW += G^T dU G, split over filters k (rows of every dU[xi]) so that each element is summed in the
// same order for any thread count; db += db_0 + db_1 + ... (db null: no bias).
void add_wino_parts(float* parts, const WinoPlan& pl, int64_t tile, int64_t workers, float* dw,
                    float* db) {
  const int64_t K = pl.k, C = pl.c, kc = K * C;
  const int64_t kparts = filter_parts(K, workers);
  kernels::parallel_for(kparts, [&](int64_t part) {
    const int64_t k0 = part * K / kparts, k1 = (part + 1) * K / kparts;
    for (int64_t xi = 0; xi < pl.xis; ++xi) {
      float* __restrict d = parts + xi * kc + k0 * C;
      for (int64_t gi = 1; gi < pl.groups; ++gi) {
        const float* __restrict p = parts + gi * pl.part + xi * kc + k0 * C;
        for (int64_t i = 0; i < (k1 - k0) * C; ++i) d[i] += p[i];
      }
    }
    if (tile == 4)
      add_filter_gradient4(parts, K, C, k0, k1, dw);
    else
      add_filter_gradient(parts, K, C, k0, k1, dw);
  });
  if (db)
    for (int64_t gi = 0; gi < pl.groups; ++gi)
      for (int64_t kk = 0; kk < K; ++kk) db[kk] += parts[gi * pl.part + pl.xis * kc + kk];
}

// Floats between the packed A operands of one GEMM shape (M x depth) per xi (pack_gemm_a).
int64_t packed_stride(const kernels::KernelTable& kt, int64_t m, int64_t depth) {
  return round_up(kt.packed_a_floats(m, depth), 16);
}

// The xis matrices of u (rows x depth each, one after the other) packed for kt.sgemm_packed_a,
// packed_stride(kt, rows, depth) floats apart at up; split over parts of the xi range.
void pack_filters(const kernels::KernelTable& kt, const float* u, int64_t xis, int64_t rows,
                  int64_t depth, int64_t parts, float* up) {
  const int64_t ps = packed_stride(kt, rows, depth);
  kernels::parallel_for(parts, [&](int64_t part) {
    for (int64_t xi = part * xis / parts; xi < (part + 1) * xis / parts; ++xi)
      kt.pack_gemm_a(rows, depth, u + xi * rows * depth, depth, up + xi * ps);
  });
}

// U' (the rotated, transposed filters of backward-data) from W, split over filters, then packed
// (C x K per xi) into utp for the chunks' GEMMs.
void transform_dx_filters(const kernels::KernelTable& kt, const float* w, int64_t K, int64_t C,
                          int64_t tile, int64_t workers, float* ut, float* utp) {
  const int64_t kparts = filter_parts(K, workers);
  kernels::parallel_for(kparts, [&](int64_t part) {
    transform_filters(w, K, C, true, tile, ut, part * K / kparts, (part + 1) * K / kparts);
  });
  const int64_t xis = (tile + 2) * (tile + 2);
  pack_filters(kt, ut, xis, C, K, workers < xis ? workers : xis, utp);
}

struct WinoLayer {
  kernels::WinoGeometry in;     // x: C x H x W, pads, output P x Q
  kernels::WinoGeometry out;    // y / dz: K channels, P x Q
  kernels::WinoGeometry dgrad;  // dz as input: K x P x Q, pads 2 - p, output H x W
  kernels::WinoGeometry dx;     // dx: C channels, H x W
};

WinoLayer wino_layer(const kernels::Im2colGeometry& g, int64_t k, int64_t tile) {
  WinoLayer w;
  w.in = {g.channels, g.height, g.width, g.pad_top, g.pad_left, g.out_h, g.out_w, tile};
  w.out = {k, g.out_h, g.out_w, 0, 0, g.out_h, g.out_w, tile};
  w.dgrad = {k, g.out_h, g.out_w, 2 - g.pad_top, 2 - g.pad_left, g.height, g.width, tile};
  w.dx = {g.channels, g.height, g.width, 0, 0, g.height, g.width, tile};
  return w;
}

// One chunk of tiles [t0, t1) of each pass, shared by the plain and the pooling-fused layers. v is
// a worker's buffers (pl.buf floats): V, then M or Z. K = pl.k, C = pl.c.
//   forward: V = input transform of x; M[xi] = U[xi] V[xi]; out = output transform of M with
//            bias b and activation code act (0, 1, 2).
//            (wino_chunk_products computes M and returns it.)
//            up: U packed for kt.sgemm_packed_a (Conv2D::wino_filters), K x C per xi.
float* wino_chunk_products(const kernels::KernelTable& kt, const WinoLayer& wl, const WinoPlan& pl,
                           const float* x, const float* up, int64_t t0, int64_t t1, float* v) {
  const int64_t K = pl.k, C = pl.c, ps = packed_stride(kt, K, C);
  float* m = v + pl.xis * pl.vc;
  kt.wino_input(wl.in, x, nullptr, 0, 0.0f, t0, t1, v, pl.ld);
  for (int64_t xi = 0; xi < pl.xis; ++xi)
    kt.sgemm_packed_a(K, t1 - t0, C, 1.0f, up + xi * ps, v + xi * pl.vc, pl.ld, 0.0f,
                      m + xi * pl.vk, pl.ld);
  return m;
}

void wino_chunk_forward(const kernels::KernelTable& kt, const WinoLayer& wl, const WinoPlan& pl,
                        const float* x, const float* up, int64_t t0, int64_t t1, const float* b,
                        int act, float slope, float* v, float* out) {
  const float* m = wino_chunk_products(kt, wl, pl, x, up, t0, t1, v);
  kt.wino_output(wl.out, m, pl.ld, t0, t1, b, act, slope, false, out);
}

//   weights: V = input transform of x, Z = gradient transform of dz = dy * act'(y) (act code ac;
//            y is read only if ac > 0, but must point to a tensor like dy); dbg[k] += the tiles'
//            sums of dz (Z[sum_xi]) if dbg; dU[xi] = beta dU[xi] + Z[xi] V[xi]^T.
void wino_chunk_weights(const kernels::KernelTable& kt, const WinoLayer& wl, const WinoPlan& pl,
                        const float* x, const float* dy, const float* y, int ac, float slope,
                        int64_t t0, int64_t t1, float beta, float* v, float* dbg, float* du) {
  const int64_t K = pl.k, C = pl.c, nt = t1 - t0;
  float* z = v + pl.xis * pl.vc;
  kt.wino_input(wl.in, x, nullptr, 0, 0.0f, t0, t1, v, pl.ld);
  kt.wino_grad(wl.out, dy, y, ac, slope, t0, t1, z, pl.ld);
  if (dbg) {
    const int64_t sum_xi = wl.out.tile == 4 ? 7 : 5;  // Z[sum_xi] holds each tile's sum of dz
    for (int64_t kk = 0; kk < K; ++kk)
      dbg[kk] += static_cast<float>(sum_row(z + sum_xi * pl.vk + kk * pl.ld, nt));
  }
  for (int64_t xi = 0; xi < pl.xis; ++xi)
    kt.sgemm(false, true, K, C, nt, 1.0f, z + xi * pl.vk, pl.ld, v + xi * pl.vc, pl.ld, beta,
             du + xi * K * C, C);
}

//   data:    V' = input transform of dz = dy * act'(y) over the dx tile grid; M'[xi] = U'[xi]
//            V'[xi]; dx = (or +=, accumulate) output transform of M'. utp: U' packed
//            (transform_dx_filters).
void wino_chunk_dx(const kernels::KernelTable& kt, const WinoLayer& wl, const WinoPlan& pl,
                   const float* dy, const float* y, int ac, float slope, const float* utp,
                   int64_t t0, int64_t t1, bool accumulate, float* v, float* dx) {
  const int64_t K = pl.k, C = pl.c, nt = t1 - t0, ps = packed_stride(kt, C, K);
  float* m = v + pl.xis * pl.vk;
  kt.wino_input(wl.dgrad, dy, y, ac, slope, t0, t1, v, pl.ld);
  for (int64_t xi = 0; xi < pl.xis; ++xi)
    kt.sgemm_packed_a(C, nt, K, 1.0f, utp + xi * ps, v + xi * pl.vk, pl.ld, 0.0f, m + xi * pl.vc,
                      pl.ld);
  kt.wino_output(wl.dx, m, pl.ld, t0, t1, nullptr, 0, 0.0f, accumulate, dx);
}

// up: the filters transformed and packed for kt (Conv2D::wino_filters).
void wino_forward(const kernels::KernelTable& kt, const kernels::Im2colGeometry& g, int64_t K,
                  int64_t tile, const Tensor& x, Tensor& y, const float* up, const float* b,
                  Activation act, float slope, Tensor& work) {
  const int64_t n = x.dim(0), C = g.channels;
  const WinoLayer wl = wino_layer(g, K, tile);
  const int64_t tiles = n * wl.out.tiles_h() * wl.out.tiles_w();
  const WinoPlan pl = make_wino_plan(C, K, n, tiles, tile);
  const int64_t xis = pl.xis;
  const int64_t chunks = ceil_div(tiles, pl.chunk);
  const int64_t chunk = round_up(ceil_div(tiles, chunks), 16);  // equal chunks
  const int64_t nchunks = ceil_div(tiles, chunk);
  const int64_t workers =
      workers_for(nchunks, 2.0 * double(K) * double(C) * double(xis) * double(tiles));
  work.resize(Shape{workers * pl.buf});
  // tanh / sigmoid are applied afterwards (the output kernel fuses linear, relu, leaky_relu).
  const bool fused =
      act == Activation::linear || act == Activation::relu || act == Activation::leaky_relu;
  std::atomic<int64_t> next{0};
  kernels::parallel_for(workers, [&](int64_t wk) {
    float* v = work.data() + wk * pl.buf;
    for (int64_t ci; (ci = next.fetch_add(1, std::memory_order_relaxed)) < nchunks;) {
      const int64_t t0 = ci * chunk, t1 = t0 + chunk < tiles ? t0 + chunk : tiles;
      wino_chunk_forward(kt, wl, pl, x.data(), up, t0, t1, b, fused ? act_code(act) : 0, slope, v,
                         y.data());
    }
  });
  if (!fused) {
    const int64_t total = y.numel(), part = int64_t{1} << 16;
    kernels::parallel_for(ceil_div(total, part), [&](int64_t i) {
      const int64_t a = i * part;
      detail::apply_activation(act, slope, y.data() + a, total - a < part ? total - a : part);
    });
  }
}

void wino_backward(const kernels::Im2colGeometry& g, int64_t K, int64_t tile, const Tensor& x,
                   const Tensor& y, const Tensor& dy, Tensor* dx, bool weights, bool overwrite,
                   const float* w, bool use_bias, Activation act, float slope, float* dw, float* db,
                   Tensor& work) {
  const int64_t n = x.dim(0), C = g.channels;
  const WinoLayer wl = wino_layer(g, K, tile);
  const int64_t tt_out = wl.out.tiles_h() * wl.out.tiles_w();  // dz tiles per image
  const int64_t tt_dx = wl.dx.tiles_h() * wl.dx.tiles_w();     // dx tiles per image
  const int64_t per_group = ceil_div(n, n < kMaxGroups ? n : kMaxGroups);
  const WinoPlan pl = make_wino_plan(C, K, n, per_group * (tt_out > tt_dx ? tt_out : tt_dx), tile);
  const int64_t xis = pl.xis;
  const double flops = 2.0 * double(K) * double(C) * double(xis) *
                       ((weights ? double(n * tt_out) : 0.0) + (dx ? double(n * tt_dx) : 0.0));
  const int64_t workers = workers_for(pl.groups, flops);
  const kernels::KernelTable& kt = kernels::table();
  // U' (dx filters), then packed, then the workers' buffers and the groups' partial sums.
  const int64_t uf = dx ? pl.ufl + xis * packed_stride(kt, C, K) : 0;
  work.resize(Shape{uf + workers * pl.buf + pl.groups * pl.part});
  float* ut = work.data();
  float* utp = ut + pl.ufl;
  float* parts = work.data() + uf + workers * pl.buf;
  if (dx) transform_dx_filters(kt, w, K, C, tile, workers, ut, utp);
  const int ac = act_code(act);
  std::atomic<int64_t> next{0};
  kernels::parallel_for(workers, [&](int64_t wk) {
    float* v = work.data() + uf + wk * pl.buf;
    for (int64_t gi; (gi = next.fetch_add(1, std::memory_order_relaxed)) < pl.groups;) {
      const int64_t n0 = gi * n / pl.groups, n1 = (gi + 1) * n / pl.groups;
      if (weights) {
        float* du = parts + gi * pl.part;
        float* dbg = du + xis * K * C;
        for (int64_t kk = 0; kk < K; ++kk) dbg[kk] = 0.0f;
        const int64_t c0 = n0 * tt_out, c1 = n1 * tt_out;
        const int64_t chunk = round_up(ceil_div(c1 - c0, ceil_div(c1 - c0, pl.chunk)), 16);
        for (int64_t t0 = c0; t0 < c1; t0 += chunk)
          wino_chunk_weights(kt, wl, pl, x.data(), dy.data(), y.data(), ac, slope, t0,
                             t0 + chunk < c1 ? t0 + chunk : c1, t0 == c0 ? 0.0f : 1.0f, v,
                             use_bias ? dbg : nullptr, du);
      }
      if (dx) {
        const int64_t c0 = n0 * tt_dx, c1 = n1 * tt_dx;
        const int64_t chunk = round_up(ceil_div(c1 - c0, ceil_div(c1 - c0, pl.chunk)), 16);
        for (int64_t t0 = c0; t0 < c1; t0 += chunk)
          wino_chunk_dx(kt, wl, pl, dy.data(), y.data(), ac, slope, utp, t0,
                        t0 + chunk < c1 ? t0 + chunk : c1, !overwrite, v, dx->data());
      }
    }
  });
  if (weights) add_wino_parts(parts, pl, tile, workers, dw, use_bias ? db : nullptr);
}

// --- Winograd fused with a following 2x2 / stride 2 max pooling --------------------------------
//
// Conv2D::forward_pool2x2 / backward_pool2x2 for a layer on the Winograd path. Only the conv rows
// the pooling reads are computed (2 floor(P/2): a last odd row is dropped; a last odd column is
// computed and ignored, since the tile grid's row stride is Q). Work goes by blocks of whole
// images, nb of them (a conv output of about detail::wino_pool_block() floats, at least one image):
//   forward:  F(4x4) with linear, relu or leaky_relu: the chunks of wino_forward over the whole
//             batch, the output transform pooling as it goes (kernel wino_output_pool): yp and
//             argmax (relative to the conv plane, row stride Q, as MaxPool2D stores it) with no
//             conv output stored. Otherwise (F(2x2), tanh, sigmoid): chunks of the block's tiles
//             as in wino_forward, the output transform (bias, act) writing the block's conv
//             output yb (nb x K x 2Pp x Q) instead of y; then each plane of yb pooled into yp and
//             argmax. yb stays in cache between the two.
//   backward: dz of the block built from the pooling's gradient by the unpool2x2 kernel (zero but
//             dz[argmax] = dyp * act'(yp), y at the argmax being yp), db_g += the sum of those;
//             then the weight and data passes of wino_backward on dz (act already applied).
// The values are the two layers': the same transforms and GEMM columns per tile, the same pooling
// rule (forward bitwise); the gradients differ only in the order of float sums. Threads:
// forward, the chunks shared dynamically (pooled output transform), or blocks shared dynamically
// with a yb per worker when there are enough of them (a batch), else one block at a time with its
// chunks, then its planes, shared (batch 1); backward,
// the image groups of wino_backward, each worker with its own dz block. The block size is
// detail::wino_pool_block() (tests make it small to cover several blocks cheaply).

struct WinoPoolPlan {
  int64_t pp = 0, qp = 0, q = 0;  // pooled rows and columns; conv columns (row stride of yb, dz)
  int64_t plane = 0;              // floats per conv plane kept: 2 pp q
  int64_t nb = 0;                 // images per block
  kernels::Im2colGeometry g;      // the layer's geometry with out_h = 2 pp
};

WinoPoolPlan make_wino_pool_plan(const kernels::Im2colGeometry& g, int64_t K, int64_t n) {
  WinoPoolPlan p;
  p.pp = g.out_h / 2;
  p.qp = g.out_w / 2;
  p.q = g.out_w;
  p.plane = 2 * p.pp * p.q;
  p.nb = detail::wino_pool_block() / (K * p.plane);
  if (p.nb < 1) p.nb = 1;
  if (p.nb > n) p.nb = n;
  p.g = g;
  p.g.out_h = 2 * p.pp;
  return p;
}

// dz rows [0, 2 p_out) x [0, w) of a pooled plane (kernels unpool2x2) and grow = dyp * act'(yp):
// the kernel applies linear, relu and leaky_relu; tanh and sigmoid are applied here first.
void unpool_plane(const kernels::KernelTable& kt, Activation act, float slope, const float* yp,
                  const float* dyp, const int32_t* arg, int64_t arg0, int64_t w, int64_t p_out,
                  int64_t q_out, float* grow, float* dz) {
  if (act == Activation::tanh || act == Activation::sigmoid) {
    detail::activation_backward(act, slope, yp, dyp, grow, p_out * q_out);
    kt.unpool2x2(grow, nullptr, 0, 0.0f, arg, arg0, w, p_out, q_out, nullptr, dz);
  } else {
    kt.unpool2x2(dyp, yp, act_code(act), slope, arg, arg0, w, p_out, q_out, grow, dz);
  }
}

void wino_forward_pool(const kernels::KernelTable& kt, const kernels::Im2colGeometry& g, int64_t K,
                       int64_t tile, const Tensor& x, const float* up, const float* b,
                       Activation act, float slope, Tensor& yp, int32_t* argmax, Tensor& work) {
  const int64_t n = x.dim(0), C = g.channels, chw = C * g.height * g.width;
  const WinoPoolPlan pp = make_wino_pool_plan(g, K, n);
  const WinoLayer wl = wino_layer(pp.g, K, tile);
  const int64_t tt = wl.out.tiles_h() * wl.out.tiles_w();
  const bool fused =
      act == Activation::linear || act == Activation::relu || act == Activation::leaky_relu;
  if (tile == 4 && fused) {
    // The output transform pools (kernels wino_output_pool): the chunks of wino_forward over the
    // batch's tiles, straight to yp and argmax, with no conv output stored in between.
    const int64_t tiles = n * tt;
    const WinoPlan pl = make_wino_plan(C, K, n, tiles, tile);
    const int64_t chunk = round_up(ceil_div(tiles, ceil_div(tiles, pl.chunk)), 16);
    const int64_t nchunks = ceil_div(tiles, chunk);
    const int64_t workers =
        workers_for(nchunks, 2.0 * double(K) * double(C) * double(pl.xis) * double(tiles));
    work.resize(Shape{workers * pl.buf});
    std::atomic<int64_t> next{0};
    kernels::parallel_for(workers, [&](int64_t wk) {
      float* v = work.data() + wk * pl.buf;
      for (int64_t ci; (ci = next.fetch_add(1, std::memory_order_relaxed)) < nchunks;) {
        const int64_t t0 = ci * chunk, t1 = t0 + chunk < tiles ? t0 + chunk : tiles;
        const float* m = wino_chunk_products(kt, wl, pl, x.data(), up, t0, t1, v);
        kt.wino_output_pool(wl.out, m, pl.ld, t0, t1, b, act_code(act), slope, yp.data(), argmax);
      }
    });
    return;
  }
  const WinoPlan pl = make_wino_plan(C, K, n, pp.nb * tt, tile);
  const int64_t xis = pl.xis, blocks = ceil_div(n, pp.nb), pq = pp.pp * pp.qp;
  const int64_t ybuf = round_up(pp.nb * K * pp.plane, 16);
  const double flops = 2.0 * double(K) * double(C) * double(xis) * double(n * tt);
  // Tiles [t0, t1) of the block of images from n0 into yb; v: a worker's V and M buffers.
  auto conv_chunk = [&](float* v, int64_t n0, int64_t t0, int64_t t1, float* yb) {
    wino_chunk_forward(kt, wl, pl, x.data() + n0 * chw, up, t0, t1, b, fused ? act_code(act) : 0,
                       slope, v, yb);
  };
  // Planes [j0, j1) of yb (plane j: image n0 + j / K, channel j % K) pooled.
  auto pool_planes = [&](float* yb, int64_t n0, int64_t j0, int64_t j1) {
    for (int64_t j = j0; j < j1; ++j) {
      float* src = yb + j * pp.plane;
      if (!fused) detail::apply_activation(act, slope, src, pp.plane);
      const int64_t at = (n0 * K + j) * pq;
      kt.maxpool2x2(src, pp.q, pp.pp, pp.qp, nullptr, 0, 0.0f, yp.data() + at, argmax + at);
    }
  };
  // The block's tiles in equal chunks, each a multiple of 16.
  auto chunk_of = [&](int64_t tiles) {
    return round_up(ceil_div(tiles, ceil_div(tiles, pl.chunk)), 16);
  };
  const int64_t threads = num_threads();
  if (blocks >= 2 * threads || threads == 1) {
    // Whole blocks per worker, no barrier.
    const int64_t workers = workers_for(blocks, flops);
    work.resize(Shape{workers * (pl.buf + ybuf)});
    std::atomic<int64_t> next{0};
    kernels::parallel_for(workers, [&](int64_t wk) {
      float* v = work.data() + wk * (pl.buf + ybuf);
      float* yb = v + pl.buf;
      for (int64_t bi; (bi = next.fetch_add(1, std::memory_order_relaxed)) < blocks;) {
        const int64_t n0 = bi * pp.nb, n1 = n0 + pp.nb < n ? n0 + pp.nb : n;
        const int64_t tiles = (n1 - n0) * tt, chunk = chunk_of(tiles);
        for (int64_t t0 = 0; t0 < tiles; t0 += chunk)
          conv_chunk(v, n0, t0, t0 + chunk < tiles ? t0 + chunk : tiles, yb);
        pool_planes(yb, n0, 0, (n1 - n0) * K);
      }
    });
    return;
  }
  // One block at a time: its chunks, then its planes, over the workers.
  const int64_t workers = workers_for(ceil_div(pp.nb * tt, pl.chunk), flops / double(blocks));
  work.resize(Shape{ybuf + workers * pl.buf});
  float* yb = work.data();
  for (int64_t n0 = 0; n0 < n; n0 += pp.nb) {
    const int64_t n1 = n0 + pp.nb < n ? n0 + pp.nb : n;
    const int64_t tiles = (n1 - n0) * tt, chunk = chunk_of(tiles);
    const int64_t nchunks = ceil_div(tiles, chunk);
    std::atomic<int64_t> next{0};
    kernels::parallel_for(workers, [&](int64_t wk) {
      float* v = work.data() + ybuf + wk * pl.buf;
      for (int64_t ci; (ci = next.fetch_add(1, std::memory_order_relaxed)) < nchunks;) {
        const int64_t t0 = ci * chunk;
        conv_chunk(v, n0, t0, t0 + chunk < tiles ? t0 + chunk : tiles, yb);
      }
    });
    const int64_t planes = (n1 - n0) * K, parts = workers > 1 ? 4 * workers : 1;
    kernels::parallel_for(parts, [&](int64_t p) {
      pool_planes(yb, n0, p * planes / parts, (p + 1) * planes / parts);
    });
  }
}

void wino_backward_pool(const kernels::Im2colGeometry& g, int64_t K, int64_t tile, const Tensor& x,
                        const Tensor& yp, const Tensor& dyp, const int32_t* argmax, Tensor* dx,
                        bool overwrite, const float* w, bool use_bias, Activation act, float slope,
                        float* dw, float* db, Tensor& work) {
  const int64_t n = x.dim(0), C = g.channels, chw = C * g.height * g.width;
  const WinoPoolPlan pp = make_wino_pool_plan(g, K, n);
  // dz is zero past row 2 Pp: the weight pass's tiles stop there and the data pass reads it as
  // padding, so both use the trimmed geometry.
  const WinoLayer wl = wino_layer(pp.g, K, tile);
  const int64_t tt_out = wl.out.tiles_h() * wl.out.tiles_w();
  const int64_t tt_dx = wl.dx.tiles_h() * wl.dx.tiles_w();
  const int64_t groups0 = n < kMaxGroups ? n : kMaxGroups;
  const int64_t per_group = ceil_div(n, groups0);
  const int64_t nb = pp.nb < per_group ? pp.nb : per_group;
  const WinoPlan pl = make_wino_plan(C, K, n, nb * (tt_out > tt_dx ? tt_out : tt_dx), tile);
  const int64_t xis = pl.xis, pq = pp.pp * pp.qp;
  const double flops = 2.0 * double(K) * double(C) * double(xis) *
                       (double(n * tt_out) + (dx ? double(n * tt_dx) : 0.0));
  const int64_t workers = workers_for(pl.groups, flops);
  // Per worker: V and M / Z, then a dz block, then a pooled plane of dyp * act'(yp).
  const int64_t dzbuf = round_up(nb * K * pp.plane, 16), gbuf = round_up(pq, 16);
  const int64_t per_worker = pl.buf + dzbuf + gbuf;
  const kernels::KernelTable& kt = kernels::table();
  const int64_t uf = dx ? pl.ufl + xis * packed_stride(kt, C, K) : 0;  // U', then packed
  work.resize(Shape{uf + workers * per_worker + pl.groups * pl.part});
  float* ut = work.data();
  float* utp = ut + pl.ufl;
  float* parts = work.data() + uf + workers * per_worker;
  if (dx) transform_dx_filters(kt, w, K, C, tile, workers, ut, utp);
  auto chunk_of = [&](int64_t tiles) {
    return round_up(ceil_div(tiles, ceil_div(tiles, pl.chunk)), 16);
  };
  std::atomic<int64_t> next{0};
  kernels::parallel_for(workers, [&](int64_t wk) {
    float* v = work.data() + uf + wk * per_worker;
    float* dz = v + pl.buf;
    float* grow = dz + dzbuf;
    for (int64_t gi; (gi = next.fetch_add(1, std::memory_order_relaxed)) < pl.groups;) {
      const int64_t g0 = gi * n / pl.groups, g1 = (gi + 1) * n / pl.groups;
      float* du = parts + gi * pl.part;
      float* dbg = du + xis * K * C;
      for (int64_t kk = 0; kk < K; ++kk) dbg[kk] = 0.0f;
      for (int64_t n0 = g0; n0 < g1; n0 += nb) {
        const int64_t n1 = n0 + nb < g1 ? n0 + nb : g1;
        // dz of images [n0, n1): the pooling's scatter and act' at once (every element of the
        // block's planes written).
        for (int64_t j = 0; j < (n1 - n0) * K; ++j) {
          const int64_t at = (n0 * K + j) * pq;
          unpool_plane(kt, act, slope, yp.data() + at, dyp.data() + at, argmax + at, 0, pp.q, pp.pp,
                       pp.qp, grow, dz + j * pp.plane);
          if (use_bias) dbg[j % K] += static_cast<float>(sum_row(grow, pq));
        }
        // dU_g[xi] (+)= Z[xi] V[xi]^T over the block's dz tiles (db_g is summed above).
        const int64_t tiles = (n1 - n0) * tt_out, chunk = chunk_of(tiles);
        for (int64_t t0 = 0; t0 < tiles; t0 += chunk)
          wino_chunk_weights(kt, wl, pl, x.data() + n0 * chw, dz, dz, 0, 0.0f, t0,
                             t0 + chunk < tiles ? t0 + chunk : tiles,
                             n0 == g0 && t0 == 0 ? 0.0f : 1.0f, v, nullptr, du);
        if (!dx) continue;
        const int64_t dtiles = (n1 - n0) * tt_dx, dchunk = chunk_of(dtiles);
        for (int64_t t0 = 0; t0 < dtiles; t0 += dchunk)
          wino_chunk_dx(kt, wl, pl, dz, dz, 0, 0.0f, utp, t0,
                        t0 + dchunk < dtiles ? t0 + dchunk : dtiles, !overwrite, v,
                        dx->data() + n0 * chw);
      }
    }
  });
  add_wino_parts(parts, pl, tile, workers, dw, use_bias ? db : nullptr);
}

// The Winograd tile m for this layer (2 or 4), or 0 for im2col.
int64_t winograd_tile(Size2 kernel, Size2 stride, const kernels::Im2colGeometry& g, int64_t k,
                      int64_t n, bool backward) {
  const detail::ConvAlgo a = detail::conv_algo();
  if (a == detail::ConvAlgo::im2col) return 0;
  const bool fits = kernel.h == 3 && kernel.w == 3 && stride.h == 1 && stride.w == 1;
  if (a == detail::ConvAlgo::winograd) return fits ? 2 : 0;
  if (a == detail::ConvAlgo::winograd4) return fits ? 4 : 0;
  return winograd_shape(kernel, stride, g, k, n, backward) ? 4 : 0;
}

}  // namespace

// Transforming the filters costs about as much as a batch-1 forward's input transform (36 x K x C
// scattered stores), so it is done again only when the weights differ, bit for bit, from the ones
// it was done for: once per training step, once for all inference calls. Comparing the weights
// is a read of K x C x 9 floats. The transformed filters are then packed for the GEMMs of isa's
// kernels (pack_gemm_a), which every chunk of tiles would otherwise do again for each xi: again
// only when they or the ISA change.
const float* Conv2D::wino_filters(int64_t tile, Isa isa) {
  const int64_t xis = (tile + 2) * (tile + 2);
  const int64_t count = weight_.numel(), K = filters_, C = in_shape_[0];
  const kernels::KernelTable& kt = kernels::table_for(isa);
  const bool same = wino_tile_ == tile && wino_w_.numel() == count &&
                    std::memcmp(wino_w_.data(), weight_.data(),
                                static_cast<std::size_t>(count) * sizeof(float)) == 0;
  // Split over filters (or xi) on the pool's threads (each part written by one).
  const int64_t parts = K * C >= 1024 ? filter_parts(K, num_threads()) : 1;
  if (!same) {
    wino_u_.resize(Shape{round_up(xis * K * C, 16)});
    wino_w_.resize(Shape{count});
    std::copy(weight_.data(), weight_.data() + count, wino_w_.data());
    kernels::parallel_for(parts, [&](int64_t p) {
      transform_filters(weight_.data(), K, C, false, tile, wino_u_.data(), p * K / parts,
                        (p + 1) * K / parts);
    });
    wino_tile_ = tile;
  }
  if (!same || wino_packed_isa_ != static_cast<int>(isa)) {
    wino_up_.resize(Shape{xis * packed_stride(kt, K, C)});
    pack_filters(kt, wino_u_.data(), xis, K, C, parts < xis ? parts : xis, wino_up_.data());
    wino_packed_isa_ = static_cast<int>(isa);
  }
  return wino_up_.data();
}

void Conv2D::forward(const Tensor& x, Tensor& y, Phase phase) {
  const auto g = lowering(in_shape_, out_shape_, kernel_, opt_.stride, pt_, pl_);
  const int64_t n = x.dim(0);
  if (n == 0) return;
  const kernels::KernelTable& kt = kernels::table();
  if (kt.conv3x3 && direct_3x3(g, kernel_, opt_)) {
    // A first layer straight from the image (kernel conv3x3): no im2col, each output written
    // once. Tasks of kDirectRows row pairs of one image.
    const int64_t C = g.channels, H = g.height, W = g.width, K = filters_, P = g.out_h, Q = g.out_w;
    const float* w = weight_.data();
    const float* b = opt_.use_bias ? bias_.data() : nullptr;
    direct_forward_tasks(n, ceil_div(P, 2), 2.0 * double(K) * double(C * 9) * double(n * P * Q),
                         round_up(kernels::conv3x3_pool_scratch(C, W), 16), work_,
                         [&](int64_t im, int64_t i0, int64_t i1, float* sc) {
                           kt.conv3x3(x.data() + im * C * H * W, C, H, W, w, b,
                                      act_code(opt_.activation), opt_.leaky_slope, K, i0, i1,
                                      y.data() + im * K * P * Q, P * Q, sc);
                         });
    return;
  }
  const int64_t per = phase == Phase::train ? n : 1;
  if (const int64_t tile = winograd_tile(kernel_, opt_.stride, g, filters_, per, false)) {
    wino_forward(kt, g, filters_, tile, x, y, wino_filters(tile, kt.isa),
                 opt_.use_bias ? bias_.data() : nullptr, opt_.activation, opt_.leaky_slope, work_);
    return;
  }
  const Plan pl = make_plan(g, filters_, n);
  const int64_t ntiles = ceil_div(pl.cols, pl.tile_max);
  // Equal tiles, each a multiple of 48 columns (the last one shorter).
  const int64_t tile = round_up(ceil_div(pl.cols, ntiles), 48);
  const int64_t tiles = ceil_div(pl.cols, tile);
  const int64_t workers = workers_for(tiles, 2.0 * double(pl.k) * double(pl.crs) * double(pl.cols));
  work_.resize(Shape{workers * pl.buf});  // reallocates only for a larger batch / thread count
  const float* w = weight_.data();
  const float* b = opt_.use_bias ? bias_.data() : nullptr;
  std::atomic<int64_t> next{0};
  kernels::parallel_for(workers, [&](int64_t wk) {
    float* col = work_.data() + wk * pl.buf;
    float* out = col + pl.crs * pl.ld;
    for (int64_t t; (t = next.fetch_add(1, std::memory_order_relaxed)) < tiles;) {
      const int64_t j0 = t * tile, j1 = j0 + tile < pl.cols ? j0 + tile : pl.cols;
      kt.im2col_tile(g, x.data(), j0, j1, col, pl.ld);
      kt.sgemm(false, false, pl.k, j1 - j0, pl.crs, 1.0f, w, pl.crs, col, pl.ld, 0.0f, out, pl.ld);
      store_output(out, pl.ld, j0, j1, pl.k, pl.pq, b, opt_.activation, opt_.leaky_slope, y.data());
    }
  });
}

void Conv2D::backward(const Tensor& x, const Tensor& y, const Tensor& dy, Tensor* dx) {
  backward_parts(x, y, dy, dx, true, false);
}

// Each group clears its own images of dx just before adding into them, so the cleared lines are
// still in cache when col2im adds to them (instead of a separate pass over dx in memory).
void Conv2D::backward_into(const Tensor& x, const Tensor& y, const Tensor& dy, Tensor& dx) {
  backward_parts(x, y, dy, &dx, true, true);
}

void Conv2D::backward_parts(const Tensor& x, const Tensor& y, const Tensor& dy, Tensor* dx,
                            bool weights, bool overwrite) {
  const auto g = lowering(in_shape_, out_shape_, kernel_, opt_.stride, pt_, pl_);
  const int64_t n = x.dim(0);
  if (n == 0 || (!weights && !dx)) return;
  if (const int64_t tile = winograd_tile(kernel_, opt_.stride, g, filters_, n, true)) {
    wino_backward(g, filters_, tile, x, y, dy, dx, weights, overwrite, weight_.data(),
                  opt_.use_bias, opt_.activation, opt_.leaky_slope, dweight_.data(),
                  opt_.use_bias ? dbias_.data() : nullptr, work_);
    return;
  }
  const Plan pl = make_plan(g, filters_, n);
  const double flops =
      ((dx ? 2.0 : 0.0) + (weights ? 2.0 : 0.0)) * double(pl.k) * double(pl.crs) * double(pl.cols);
  const int64_t workers = workers_for(pl.groups, flops);
  const kernels::KernelTable& kt = kernels::table();
  if (!dx && kt.conv3x3_grad && direct_3x3(g, kernel_, opt_)) {
    // A first layer's dW and db straight from the image and dz (kernel conv3x3_grad): per image
    // group, 16 lanes of partial sums per weight, summed at the end of the group.
    const int64_t C = g.channels, H = g.height, W = g.width, K = pl.k;
    direct_grad_groups(pl, n, workers, round_up(kernels::conv3x3_grad_scratch(W), 16), work_,
                       dweight_.data(), opt_.use_bias ? dbias_.data() : nullptr,
                       [&](int64_t im, float* acc, float* sc) {
                         const int64_t at = im * K * pl.pq;
                         kt.conv3x3_grad(x.data() + im * C * H * W, C, H, W, dy.data() + at,
                                         y.data() + at, act_code(opt_.activation), opt_.leaky_slope,
                                         pl.pq, K, 0, g.out_h, acc, sc);
                       });
    return;
  }
  work_.resize(Shape{workers * pl.buf + pl.groups * pl.part});
  float* parts = work_.data() + workers * pl.buf;
  const float* w = weight_.data();
  const int64_t K = pl.k, CRS = pl.crs;
  std::atomic<int64_t> next{0};
  kernels::parallel_for(workers, [&](int64_t wk) {
    float* col = work_.data() + wk * pl.buf;
    float* dz = col + CRS * pl.ld;
    for (int64_t gi; (gi = next.fetch_add(1, std::memory_order_relaxed)) < pl.groups;) {
      float* dwg = parts + gi * pl.part;
      float* dbg = dwg + K * CRS;
      for (int64_t kk = 0; kk < K; ++kk) dbg[kk] = 0.0f;
      // Images [n0, n1): columns [c0, c1) in equal tiles, each a multiple of 16 columns.
      const int64_t n0 = gi * n / pl.groups, n1 = (gi + 1) * n / pl.groups;
      const int64_t c0 = n0 * pl.pq, c1 = n1 * pl.pq;
      if (dx && overwrite) {
        const int64_t chw = g.channels * g.height * g.width;
        std::fill(dx->data() + n0 * chw, dx->data() + n1 * chw, 0.0f);
      }
      const int64_t tile = round_up(ceil_div(c1 - c0, ceil_div(c1 - c0, pl.tile_max)), 16);
      for (int64_t j0 = c0; j0 < c1; j0 += tile) {
        const int64_t j1 = j0 + tile < c1 ? j0 + tile : c1, nt = j1 - j0;
        load_dz(dy.data(), y.data(), j0, j1, K, pl.pq, opt_.activation, opt_.leaky_slope, dz,
                pl.ld);
        if (weights) {
          if (opt_.use_bias)
            for (int64_t kk = 0; kk < K; ++kk)
              dbg[kk] += static_cast<float>(sum_row(dz + kk * pl.ld, nt));
          kt.im2col_tile(g, x.data(), j0, j1, col, pl.ld);
          // dW_g (K x CRS) (+)= dz_t (K x nt) * col_t^T (nt x CRS); a first layer's CRS (27, 9)
          // is too small for the blocked GEMM's packing to pay.
          const float beta = j0 == c0 ? 0.0f : 1.0f;
          if (CRS <= kSmallCrs)
            kt.gemm_nt_small(K, CRS, nt, dz, pl.ld, col, pl.ld, beta, dwg, CRS);
          else
            kt.sgemm(false, true, K, CRS, nt, 1.0f, dz, pl.ld, col, pl.ld, beta, dwg, CRS);
        }
        if (dx) {
          // dcol_t (CRS x nt) = W^T (CRS x K) * dz_t (K x nt), then scattered into dx.
          kt.sgemm(true, false, CRS, nt, K, 1.0f, w, CRS, dz, pl.ld, 0.0f, col, pl.ld);
          kt.col2im_tile_add(g, col, pl.ld, j0, j1, dx->data());
        }
      }
    }
  });
  if (weights) add_group_parts(parts, pl, dweight_.data(), opt_.use_bias ? dbias_.data() : nullptr);
}

// --- Fused with a following 2x2 / stride 2 max pooling -------------------------------------------
//
// For a first layer (C*R*S <= kSmallCrs, so the im2col lowering), Sequential runs the convolution
// and a following MaxPool2D({2, 2}) (stride 2, no padding) as one layer, so that the (N, K, P, Q)
// activation never goes to memory. In the seed model it is 200 MB at batch 32, written by the
// convolution and read by the pooling in forward; in backward the pooling writes dL/dy of that size
// and the convolution reads it with y for act'. Here a tile is a run of "units", a unit being a
// pair of output rows 2i, 2i+1 of image n (pooled row i), Pp = floor(P/2) units per image:
//   forward:  col_u = im2col(rows 2i, 2i+1); out_u = W col_u;
//             (yp, argmax) = maxpool2x2 of act(out_u + b), argmax made plane-relative (+ 2i Q);
//             the pooling kernel adds b and applies linear, relu or leaky_relu to each value it
//             reads (tanh, sigmoid: act_row on out_u first)
//   backward: dz_u = 0 but dz_u[argmax] = g = dyp * act'(yp): the pooling's scatter
//             (docs/layers-conv-pool.md) and the activation's derivative at once, since y at the
//             argmax is yp. So only the argmax columns count: db[k] += sum g,
//             dW[k, :] += sum g col_u[:, argmax] and dcol_u[:, argmax] += g W[k, :] (then
//             dx += col2im(dcol_u)), with col_u transposed so that a column is a row
//             (kernels transpose, gather_acc, scatter_axpy); from 16 input channels on, on
//             the image in channels-last order instead of im2col columns, dx by pooling window
//             at stride 1 (pool_scatter).
// On AVX-512 a valid 3x3 stride-1 first layer with a pooling activation skips all of this: its
// forward and (without dx) its dW and db run straight from the image (kernels conv3x3_pool,
// conv3x3_pool_grad; the same sums as the GEMM forward, and the dense gradient's); on AVX2 too.
// The values are those of the two layers: out_u's columns are the same GEMM columns and the same
// act_row, and the pooling kernel is the same, so yp and argmax are bitwise equal; the gradients
// differ only in the order of their float sums (other tiles). A last conv row that the pooling
// drops (odd P) is not computed; a dropped last column (odd Q) is computed and ignored; neither
// gets a gradient, as in the two layers. Threads and determinism as
// in forward() and backward_parts(): tiles shared dynamically in forward, fixed image groups with
// their own partial dW in backward.
//
// A layer on the Winograd path (3x3, stride 1, C and K >= kWinoMinChannels) is fused too: forward
// by wino_forward_pool above when the unfused layer would use Winograd (winograd_tile); backward
// by the channels-last sparse code below (C >= kHwcMinChannels), unless Winograd is forced
// (wino_backward_pool, for tests and comparisons).

bool Conv2D::fuses_pool2x2(const MaxPool2D& pool) const {
  if (in_shape_.rank() != 3) return false;
  // A first layer (im2col), or a layer of Winograd's shape (3x3, stride 1, enough channels; each
  // call then picks its lowering as the unfused layer would, winograd_tile, and runs it fused).
  const bool small = in_shape_[0] * kernel_.h * kernel_.w <= kSmallCrs;
  const bool wino = kernel_.h == 3 && kernel_.w == 3 && opt_.stride.h == 1 && opt_.stride.w == 1 &&
                    in_shape_[0] >= detail::kWinoMinChannels &&
                    filters_ >= detail::kWinoMinChannels;
  if (!small && !wino) return false;
  if (pool.pool_.h != 2 || pool.pool_.w != 2 || pool.opt_.stride.h != 2 ||
      pool.opt_.stride.w != 2 || pool.pt_ != 0 || pool.pl_ != 0)
    return false;
  const Shape& po = pool.output_shape();
  return pool.input_shape() == out_shape_ && po[1] == out_shape_[1] / 2 &&
         po[2] == out_shape_[2] / 2 && po[1] > 0 && po[2] > 0;
}

namespace {

// Tiles of whole units (two output rows) for the fused pooling.
struct PoolPlan {
  int64_t pp = 0, qp = 0;  // pooled rows and columns per image
  int64_t unit_cols = 0;   // 2Q columns per unit
  int64_t per_tile = 0;    // units per tile
  int64_t ld = 0;          // row stride of the tile buffers
  int64_t buf = 0;         // floats per worker in forward: columns (CRS x ld), output (K x ld),
                           // pooled rows
};

// floats_per_col > 0: tiles of at most kTileFloats / floats_per_col columns instead of the
// forward's pl.tile_max (buffers of other shapes: the backward's).
PoolPlan make_pool_plan(const Plan& pl, const kernels::Im2colGeometry& g,
                        int64_t floats_per_col = 0) {
  PoolPlan p;
  p.pp = g.out_h / 2;
  p.qp = g.out_w / 2;
  p.unit_cols = 2 * g.out_w;
  const int64_t tile_max = floats_per_col > 0 ? kTileFloats / floats_per_col : pl.tile_max;
  p.per_tile = tile_max / p.unit_cols > 1 ? tile_max / p.unit_cols : 1;
  p.ld = round_up(p.per_tile * p.unit_cols, 16);
  if (p.ld % 64 == 0) p.ld += 16;
  p.buf = (pl.crs + pl.k) * p.ld + round_up(p.per_tile * p.qp, 16);
  return p;
}

// Calls f(n, i0, i1, u) for each run of units [u0, u1) within one image: pooled rows [i0, i1) of
// image n, the run's first unit being the tile's u-th; its columns are
// [n PQ + 2 i0 Q, n PQ + 2 i1 Q), at column u * 2Q of the tile buffers.
template <class F>
void for_runs(int64_t u0, int64_t u1, int64_t pp, F&& f) {
  for (int64_t u = u0; u < u1;) {
    const int64_t n = u / pp, i0 = u % pp;
    const int64_t i1 = i0 + (u1 - u) < pp ? i0 + (u1 - u) : pp;
    f(n, i0, i1, u - u0);
    u += i1 - i0;
  }
}

}  // namespace

void Conv2D::forward_pool2x2(const Tensor& x, Tensor& yp, int32_t* argmax, Phase phase) {
  const auto g = lowering(in_shape_, out_shape_, kernel_, opt_.stride, pt_, pl_);
  const int64_t n = x.dim(0);
  if (n == 0) return;
  const int64_t per = phase == Phase::train ? n : 1;
  if (const int64_t tile = winograd_tile(kernel_, opt_.stride, g, filters_, per, false)) {
    const kernels::KernelTable& kt = kernels::table();
    wino_forward_pool(kt, g, filters_, tile, x, wino_filters(tile, kt.isa),
                      opt_.use_bias ? bias_.data() : nullptr, opt_.activation, opt_.leaky_slope, yp,
                      argmax, work_);
    return;
  }
  const kernels::KernelTable& kt = kernels::table();
  const float* w = weight_.data();
  const float* b = opt_.use_bias ? bias_.data() : nullptr;
  const bool pool_act = opt_.activation == Activation::linear ||
                        opt_.activation == Activation::relu ||
                        opt_.activation == Activation::leaky_relu;
  if (kt.conv3x3_pool && direct_3x3(g, kernel_, opt_)) {
    // A first layer straight from the image (kernel conv3x3_pool): no im2col, and the conv output
    // never leaves the registers. Tasks of kDirectRows pooled rows of one image.
    const int64_t C = g.channels, H = g.height, W = g.width, K = filters_;
    const int64_t pp = g.out_h / 2, plane = pp * (g.out_w / 2);
    direct_forward_tasks(n, pp, 2.0 * double(K) * double(C * 9) * double(n * 2 * pp * g.out_w),
                         round_up(kernels::conv3x3_pool_scratch(C, W), 16), work_,
                         [&](int64_t im, int64_t i0, int64_t i1, float* sc) {
                           kt.conv3x3_pool(x.data() + im * C * H * W, C, H, W, w, b,
                                           act_code(opt_.activation), opt_.leaky_slope, K, i0, i1,
                                           yp.data() + im * K * plane, argmax + im * K * plane,
                                           plane, sc);
                         });
    return;
  }
  const Plan pl = make_plan(g, filters_, n);
  const PoolPlan pp = make_pool_plan(pl, g);
  const int64_t K = filters_, Q = g.out_w, PQ = g.out_h * g.out_w;
  const int64_t units = n * pp.pp, tiles = ceil_div(units, pp.per_tile);
  const int64_t workers =
      workers_for(tiles, 2.0 * double(K) * double(pl.crs) * double(units * pp.unit_cols));
  work_.resize(Shape{workers * pp.buf});
  std::atomic<int64_t> next{0};
  kernels::parallel_for(workers, [&](int64_t wk) {
    float* col = work_.data() + wk * pp.buf;
    float* out = col + pl.crs * pp.ld;
    for (int64_t t; (t = next.fetch_add(1, std::memory_order_relaxed)) < tiles;) {
      const int64_t u0 = t * pp.per_tile, u1 = u0 + pp.per_tile < units ? u0 + pp.per_tile : units;
      const int64_t cols = (u1 - u0) * pp.unit_cols;
      for_runs(u0, u1, pp.pp, [&](int64_t img, int64_t i0, int64_t i1, int64_t u) {
        kt.im2col_tile(g, x.data(), img * PQ + 2 * i0 * Q, img * PQ + 2 * i1 * Q,
                       col + u * pp.unit_cols, pp.ld);
      });
      kt.sgemm(false, false, K, cols, pl.crs, 1.0f, w, pl.crs, col, pp.ld, 0.0f, out, pp.ld);
      // The pooling kernel applies bias and linear / relu / leaky_relu to the values it reads;
      // tanh and sigmoid go through act_row first.
      if (!pool_act)
        for (int64_t kk = 0; kk < K; ++kk)
          act_row(out + kk * pp.ld, out + kk * pp.ld, cols, b ? b + kk : nullptr, opt_.activation,
                  opt_.leaky_slope);
      // A run's columns are conv rows 2 i0 .. 2 i1 - 1 of each plane, one after the other.
      for_runs(u0, u1, pp.pp, [&](int64_t img, int64_t i0, int64_t i1, int64_t u) {
        const int64_t len = (i1 - i0) * pp.qp;
        const auto row0 = static_cast<int32_t>(2 * i0 * Q);
        for (int64_t kk = 0; kk < K; ++kk) {
          const int64_t at = ((img * K + kk) * pp.pp + i0) * pp.qp;
          int32_t* a = argmax + at;
          kt.maxpool2x2(out + kk * pp.ld + u * pp.unit_cols, Q, i1 - i0, pp.qp,
                        pool_act && b ? b + kk : nullptr, pool_act ? act_code(opt_.activation) : 0,
                        opt_.leaky_slope, yp.data() + at, a);
          for (int64_t q = 0; q < len; ++q) a[q] += row0;
        }
      });
    }
  });
}

void Conv2D::backward_pool2x2(const Tensor& x, const Tensor& yp, const Tensor& dyp,
                              const int32_t* argmax, Tensor* dx, bool overwrite) {
  const auto g = lowering(in_shape_, out_shape_, kernel_, opt_.stride, pt_, pl_);
  const int64_t n = x.dim(0);
  if (n == 0) return;
  // With 16 or more input channels the sparse channels-last backward below beats Winograd's dense
  // one on AVX-512 (measured on the models' 32->64 and 64->128 layers, docs/benchmarks.md). On
  // AVX2 it is slower: the seed's conv2 + pool2 backward 319 ms against 243 by Winograd, conv3 +
  // pool3 206 against 194 (bench_layers, one thread, Zen 3; 367 and 305 before pool_scatter
  // summed windows in registers on AVX2), so Winograd there. Winograd when forced (tests,
  // comparisons).
  const bool sparse = g.channels >= kHwcMinChannels && kernels::table().isa == Isa::avx512 &&
                      detail::conv_algo() == detail::ConvAlgo::automatic;
  if (const int64_t tile = sparse ? 0 : winograd_tile(kernel_, opt_.stride, g, filters_, n, true)) {
    wino_backward_pool(g, filters_, tile, x, yp, dyp, argmax, dx, overwrite, weight_.data(),
                       opt_.use_bias, opt_.activation, opt_.leaky_slope, dweight_.data(),
                       opt_.use_bias ? dbias_.data() : nullptr, work_);
    return;
  }
  const Plan pl = make_plan(g, filters_, n);
  const int64_t K = filters_, C = g.channels, CRS = pl.crs, Q = g.out_w, PQ = g.out_h * g.out_w;
  const int64_t RS = g.kernel_h * g.kernel_w;
  const PoolPlan pq0 = make_pool_plan(pl, g);
  const int64_t plane = pq0.pp * pq0.qp;  // pooled positions per plane
  // Workers by the dense convolution's flops (4x the sparse multiply-adds): the sparse passes
  // run at a fraction of the GEMM's rate, so their time per worker is about the dense one's.
  const double flops =
      (dx ? 4.0 : 2.0) * double(K) * double(CRS) * double(n * pq0.pp * pq0.unit_cols);
  const int64_t workers = workers_for(pl.groups, flops);
  const kernels::KernelTable& kt = kernels::table();
  const float* w = weight_.data();
  std::atomic<int64_t> next{0};
  // dz is nonzero only at the argmaxes: a quarter of the conv outputs (fewer if the pooling drops
  // a row or column). Each argmax's input patch is gathered into dW[k] (gather_acc) and, for dx,
  // g W[k] is added back onto it (scatter_axpy); g = dyp * act'(yp).
  if (C >= kHwcMinChannels) {
    // Channels-last: per image, x in HWC with its padding (Hp x Wp pixels of C floats), so that a
    // patch is R runs (its rows) of S C floats; dx likewise, transposed back at the end of the
    // image. dW accumulates as (K, R, S, C) and W is read as (K, R, S, C) too.
    const int64_t H = g.height, W = g.width, HW = H * W;
    const int64_t Hp = std::max(g.pad_top + H, (g.out_h - 1) * g.stride_h + g.kernel_h);
    const int64_t Wp = std::max(g.pad_left + W, (g.out_w - 1) * g.stride_w + g.kernel_w);
    const int64_t img = round_up(Hp * Wp * C, 16), krsc = K * RS * C;
    // dx by windows (kernel pool_scatter) at stride 1: per window, dz and the argmax's place in
    // it for every filter, (window, filter) order; the filters' g is (filter, window).
    const bool by_window = dx && g.stride_h == 1 && g.stride_w == 1;
    const int64_t kp = round_up(K * plane, 16);
    const int64_t wbuf = img * (dx ? 2 : 1) + (dx ? round_up(C * HW, 16) : 0) + round_up(krsc, 16) +
                         kp + (by_window ? kp + kp / 4 : 0);
    // Shared: W as (K, R, S, C) for scatter_axpy, or in pool_scatter's blocks of 16 channels.
    const int64_t wlen = round_up(by_window ? kernels::pool_scatter_floats(K, C, RS) : krsc, 16);
    work_.resize(Shape{wlen + workers * wbuf + pl.groups * pl.part});
    offsets_.resize(static_cast<std::size_t>(g.kernel_h + 2 * PQ + plane + workers * plane));
    float* wr = work_.data();
    float* parts = wr + wlen + workers * wbuf;
    // A patch row (S pixels of C channels) is one run: R runs of S C floats, Wp C apart.
    int64_t* rows = offsets_.data();
    for (int64_t r = 0; r < g.kernel_h; ++r) rows[r] = r * Wp * C;
    // patch[p Q + q]: where conv output (p, q)'s patch starts in the padded HWC image; place[.]:
    // where in its pooling window it lies (2 * row parity + column parity); org[i qp + j]: where
    // window (i, j)'s first patch starts.
    int64_t* patch = rows + g.kernel_h;
    int64_t* place = patch + PQ;
    int64_t* org = place + PQ;
    for (int64_t p = 0; p < g.out_h; ++p)
      for (int64_t q = 0; q < Q; ++q) {
        patch[p * Q + q] = (p * g.stride_h * Wp + q * g.stride_w) * C;
        place[p * Q + q] = 2 * (p & 1) + (q & 1);
      }
    for (int64_t i = 0; i < pq0.pp; ++i)
      for (int64_t j = 0; j < pq0.qp; ++j) org[i * pq0.qp + j] = patch[2 * i * Q + 2 * j];
    if (by_window)
      kernels::pool_scatter_pack(w, K, C, RS, wr);
    else
      for (int64_t kk = 0; kk < K; ++kk)  // (C, R S) -> (R S, C) per filter
        kt.transpose(w + kk * C * RS, RS, C, RS, wr + kk * RS * C, C);
    // Without padding the HWC image is the (C, H W) matrix transposed.
    const bool unpadded = Hp == H && Wp == W;
    // Pooled rows per band: their input rows about kBandFloats.
    const int64_t band =
        std::max<int64_t>(1, kBandFloats / (2 * g.stride_h * Wp * C * (dx ? 2 : 1)));
    kernels::parallel_for(workers, [&](int64_t wk) {
      float* xh = wr + wlen + wk * wbuf;                         // x of one image, HWC, padded
      float* dxh = xh + img;                                     // with dx: its gradient, likewise
      float* dxs = dxh + img;                                    // with dx: that gradient in CHW
      float* accr = dx ? dxs + round_up(C * HW, 16) : xh + img;  // dW of the group, (K, R, S, C)
      float* gk = accr + round_up(krsc, 16);                     // g, (filter, window)
      float* gw = gk + kp;                                       // by window: g, (window, filter)
      auto* sel = reinterpret_cast<uint8_t*>(gw + kp);           // by window: the places
      int64_t* off = org + plane + wk * plane;
      for (int64_t gi; (gi = next.fetch_add(1, std::memory_order_relaxed)) < pl.groups;) {
        float* dwg = parts + gi * pl.part;
        float* dbg = dwg + K * CRS;
        std::fill(dbg, dbg + K, 0.0f);
        std::fill(accr, accr + krsc, 0.0f);
        const int64_t n0 = gi * n / pl.groups, n1 = (gi + 1) * n / pl.groups;
        for (int64_t im = n0; im < n1; ++im) {
          const float* xn = x.data() + im * C * HW;
          if (unpadded) {
            kt.transpose(xn, HW, C, HW, xh, C);
          } else {
            std::fill(xh, xh + Hp * Wp * C, 0.0f);
            for (int64_t h = 0; h < H; ++h)
              kt.transpose(xn + h * W, HW, C, W, xh + ((h + g.pad_top) * Wp + g.pad_left) * C, C);
          }
          if (dx) std::fill(dxh, dxh + Hp * Wp * C, 0.0f);
          const int64_t at0 = im * K * plane;
          const int32_t* a = argmax + at0;
          detail::activation_backward(opt_.activation, opt_.leaky_slope, yp.data() + at0,
                                      dyp.data() + at0, gk, K * plane);
          if (opt_.use_bias)
            for (int64_t kk = 0; kk < K; ++kk)
              dbg[kk] += static_cast<float>(sum_row(gk + kk * plane, plane));
          if (by_window) {
            kt.transpose(gk, plane, K, plane, gw, K);
            places_by_window(a, place, K, plane, sel);
          }
          // A band of pooled rows at a time, every filter over it, so that the band's input (and
          // dx) rows stay in L2 while the filters go by: a large image (the seed's 111 x 111 x 32
          // is 1.6 MB) would otherwise be read from L3 once per filter.
          for (int64_t i0 = 0; i0 < pq0.pp; i0 += band) {
            const int64_t t0 = i0 * pq0.qp, t1 = std::min(pq0.pp, i0 + band) * pq0.qp;
            for (int64_t kk = 0; kk < K; ++kk) {
              const float* gr = gk + kk * plane + t0;
              const int32_t* ak = a + kk * plane + t0;
              lookup(ak, patch, t1 - t0, off);
              kt.gather_acc(t1 - t0, gr, off, xh, rows, g.kernel_h, g.kernel_w * C,
                            accr + kk * RS * C);
              if (dx && !by_window)
                kt.scatter_axpy(t1 - t0, gr, off, wr + kk * RS * C, rows, g.kernel_h,
                                g.kernel_w * C, dxh);
            }
            if (by_window)
              kt.pool_scatter(t1 - t0, K, gw + t0 * K, sel + t0 * K, org + t0, wr, g.kernel_h,
                              g.kernel_w, C, Wp * C, dxh);
          }
          if (dx) {
            float* dxn = dx->data() + im * C * HW;
            float* to = overwrite ? dxn : dxs;  // back to CHW
            if (unpadded)
              kt.transpose(dxh, C, HW, C, to, HW);
            else
              for (int64_t h = 0; h < H; ++h)
                kt.transpose(dxh + ((h + g.pad_top) * Wp + g.pad_left) * C, C, W, C, to + h * W,
                             HW);
            if (!overwrite)
              for (int64_t e = 0; e < C * HW; ++e) dxn[e] += dxs[e];
          }
        }
        for (int64_t kk = 0; kk < K; ++kk)  // (R S, C) -> (C, R S) per filter
          kt.transpose(accr + kk * RS * C, C, RS, C, dwg + kk * C * RS, RS);
      }
    });
    add_group_parts(parts, pl, dweight_.data(), opt_.use_bias ? dbias_.data() : nullptr);
    return;
  }
  if (!dx && kt.conv3x3_pool_grad && direct_3x3(g, kernel_, opt_)) {
    // A first layer's dW and db straight from the image (kernel conv3x3_pool_grad): per image
    // group, 16 lanes of partial sums per weight, summed at the end of the group.
    const int64_t H = g.height, W = g.width;
    direct_grad_groups(
        pl, n, workers, round_up(kernels::conv3x3_pool_grad_scratch(C, W, pq0.pp), 16), work_,
        dweight_.data(), opt_.use_bias ? dbias_.data() : nullptr,
        [&](int64_t im, float* acc, float* sc) {
          const int64_t at = im * K * plane;
          kt.conv3x3_pool_grad(x.data() + im * C * H * W, C, H, W, dyp.data() + at, yp.data() + at,
                               act_code(opt_.activation), opt_.leaky_slope, argmax + at, plane, K,
                               0, pq0.pp, acc, sc);
        });
    return;
  }
  // Few channels (a first layer): per tile of row pairs, the im2col columns transposed (colt), so
  // that a patch is one run of CRS floats; dcolt likewise, transposed back for col2im.
  const int64_t ldr = round_up(CRS, 16);
  const PoolPlan pp = make_pool_plan(pl, g, CRS + (dx ? 2 : 1) * ldr);
  const int64_t tcols = pp.per_tile * pp.unit_cols;
  const int64_t grow_len = round_up(pp.per_tile * pp.qp, 16);
  const int64_t wbuf = CRS * pp.ld + (dx ? 2 : 1) * tcols * ldr + grow_len;
  work_.resize(Shape{workers * wbuf + pl.groups * pl.part});
  offsets_.resize(static_cast<std::size_t>(1 + workers * pp.per_tile * pp.qp));
  float* parts = work_.data() + workers * wbuf;
  const int64_t* seg0 = offsets_.data();
  offsets_[0] = 0;
  kernels::parallel_for(workers, [&](int64_t wk) {
    float* col = work_.data() + wk * wbuf;  // im2col, then (with dx) dcolt transposed back
    float* grow = col + CRS * pp.ld;        // dyp * act'(yp) for a run of pooled rows
    float* colt = grow + grow_len;          // a row of ldr floats per column of the tile
    float* dcolt = colt + tcols * ldr;      // with dx: dL/dcol, likewise
    int64_t* off = offsets_.data() + 1 + wk * pp.per_tile * pp.qp;
    for (int64_t gi; (gi = next.fetch_add(1, std::memory_order_relaxed)) < pl.groups;) {
      float* dwg = parts + gi * pl.part;
      float* dbg = dwg + K * CRS;
      std::fill(dwg, dwg + K * CRS + K, 0.0f);
      const int64_t n0 = gi * n / pl.groups, n1 = (gi + 1) * n / pl.groups;
      if (dx && overwrite) {
        const int64_t chw = g.channels * g.height * g.width;
        std::fill(dx->data() + n0 * chw, dx->data() + n1 * chw, 0.0f);
      }
      const int64_t e0 = n0 * pp.pp, e1 = n1 * pp.pp;  // the group's units
      for (int64_t u0 = e0; u0 < e1; u0 += pp.per_tile) {
        const int64_t u1 = u0 + pp.per_tile < e1 ? u0 + pp.per_tile : e1;
        const int64_t cols = (u1 - u0) * pp.unit_cols;
        // The next tile's pooled gradient, outputs and argmaxes into L2 meanwhile: K short runs
        // of each per tile, too short for the hardware prefetcher to reach DRAM's rate (the
        // seed's conv1 reads 150 MB of them per batch).
        const int64_t u2 = u1 + pp.per_tile < e1 ? u1 + pp.per_tile : e1;
        for_runs(u1, u2, pp.pp, [&](int64_t im, int64_t i0, int64_t i1, int64_t) {
          const int64_t len = (i1 - i0) * pp.qp;
          for (int64_t kk = 0; kk < K; ++kk) {
            const int64_t at = ((im * K + kk) * pp.pp + i0) * pp.qp;
            prefetch_l2(argmax + at, len * 4);
            prefetch_l2(yp.data() + at, len * 4);
            prefetch_l2(dyp.data() + at, len * 4);
          }
        });
        for_runs(u0, u1, pp.pp, [&](int64_t im, int64_t i0, int64_t i1, int64_t u) {
          kt.im2col_tile(g, x.data(), im * PQ + 2 * i0 * Q, im * PQ + 2 * i1 * Q,
                         col + u * pp.unit_cols, pp.ld);
        });
        kt.transpose(col, pp.ld, CRS, cols, colt, ldr);
        if (dx) std::fill(dcolt, dcolt + cols * ldr, 0.0f);
        for_runs(u0, u1, pp.pp, [&](int64_t im, int64_t i0, int64_t i1, int64_t u) {
          const int64_t len = (i1 - i0) * pp.qp;
          // argmax is relative to the conv plane; the run starts at its row 2 i0, at column
          // u * 2Q of the tile.
          const int64_t idx0 = 2 * i0 * Q - u * pp.unit_cols;
          for (int64_t kk = 0; kk < K; ++kk) {
            const int64_t at = ((im * K + kk) * pp.pp + i0) * pp.qp;
            scaled_offsets(argmax + at, idx0, ldr, len, off);
            detail::activation_backward(opt_.activation, opt_.leaky_slope, yp.data() + at,
                                        dyp.data() + at, grow, len);
            if (opt_.use_bias) dbg[kk] += static_cast<float>(sum_row(grow, len));
            kt.gather_acc(len, grow, off, colt, seg0, 1, CRS, dwg + kk * CRS);
            if (dx) kt.scatter_axpy(len, grow, off, w + kk * CRS, seg0, 1, CRS, dcolt);
          }
        });
        if (dx) {
          kt.transpose(dcolt, ldr, cols, CRS, col, pp.ld);
          for_runs(u0, u1, pp.pp, [&](int64_t im, int64_t i0, int64_t i1, int64_t u) {
            kt.col2im_tile_add(g, col + u * pp.unit_cols, pp.ld, im * PQ + 2 * i0 * Q,
                               im * PQ + 2 * i1 * Q, dx->data());
          });
        }
      }
    }
  });
  add_group_parts(parts, pl, dweight_.data(), opt_.use_bias ? dbias_.data() : nullptr);
}

void Conv2D::save_config(ByteWriter& w) const {
  w.i64(filters_);
  w.i64(kernel_.h);
  w.i64(kernel_.w);
  w.i64(opt_.stride.h);
  w.i64(opt_.stride.w);
  w.u32(static_cast<uint32_t>(opt_.padding));
  w.i64(opt_.pad.h);
  w.i64(opt_.pad.w);
  w.u32(static_cast<uint32_t>(opt_.activation));
  w.f32(opt_.leaky_slope);
  w.u8(opt_.use_bias ? 1 : 0);
}

void Conv2D::load_config(ByteReader& r, uint32_t version) {
  if (version != 1)
    r.fail("conv2d layer record version " + std::to_string(version) + ", expected 1");
  const int64_t filters = r.i64("conv2d.filters");
  // One read per statement: the order of evaluation of function arguments is unspecified.
  Size2 kernel, stride, pad;
  kernel.h = r.i64("conv2d.kernel_h");
  kernel.w = r.i64("conv2d.kernel_w");
  stride.h = r.i64("conv2d.stride_h");
  stride.w = r.i64("conv2d.stride_w");
  const uint32_t padding = r.u32("conv2d.padding");
  pad.h = r.i64("conv2d.pad_h");
  pad.w = r.i64("conv2d.pad_w");
  const uint32_t act = r.u32("conv2d.activation");
  const float slope = r.f32("conv2d.leaky_slope");
  const uint8_t use_bias = r.u8("conv2d.use_bias");
  const std::string lim = std::to_string(detail::kMaxWindow);
  if (!in_range(filters, 1, kMaxFilters))
    r.fail("conv2d.filters " + std::to_string(filters) + " out of range [1, " +
           std::to_string(kMaxFilters) + "]");
  if (!in_range(kernel.h, 1, detail::kMaxWindow) || !in_range(kernel.w, 1, detail::kMaxWindow))
    r.fail("conv2d.kernel " + size_str(kernel) + " out of range [1, " + lim + "]");
  if (!in_range(stride.h, 1, detail::kMaxWindow) || !in_range(stride.w, 1, detail::kMaxWindow))
    r.fail("conv2d.stride " + size_str(stride) + " out of range [1, " + lim + "]");
  if (padding > static_cast<uint32_t>(Padding::explicit_))
    r.fail("conv2d.padding " + std::to_string(padding) + " is not a known padding mode");
  if (!in_range(pad.h, 0, detail::kMaxWindow) || !in_range(pad.w, 0, detail::kMaxWindow))
    r.fail("conv2d.pad " + size_str(pad) + " out of range [0, " + lim + "]");
  if (act > static_cast<uint32_t>(Activation::sigmoid))
    r.fail("conv2d.activation " + std::to_string(act) + " is not a known activation");
  if (!std::isfinite(slope) ||
      (static_cast<Activation>(act) == Activation::leaky_relu && !(slope > 0.0f)))
    r.fail("conv2d.leaky_slope " + std::to_string(slope) + " must be positive and finite");
  if (use_bias > 1) r.fail("conv2d.use_bias " + std::to_string(use_bias) + " is not 0 or 1");
  filters_ = filters;
  kernel_ = kernel;
  opt_.stride = stride;
  opt_.padding = static_cast<Padding>(padding);
  opt_.pad = pad;
  opt_.activation = static_cast<Activation>(act);
  opt_.leaky_slope = slope;
  opt_.use_bias = use_bias != 0;
}

}  // namespace imgsim::nn
