// 2-D max pooling (docs/layers-conv-pool.md).
//
// Shapes: x (N, C, H, W), y (N, C, P, Q); pool R x S, strides (sh, sw), top/left padding
// (pt, pl) from the 'same' rule (0 for 'valid').
//
// Forward (the source document's p(x,y) = max{ f(x-i, y-j) }, over the window at (p, q)):
//   y[n,c,p,q] = max_{(i,j) in window(p,q)} x[n, c, i, j]
//   window(p,q) = { (p*sh - pt + r, q*sw - pl + s) : 0 <= r < R, 0 <= s < S } clipped to the
//   image: padded cells count as -inf, so they never win (every window holds a real cell).
//   a[n,c,p,q]  = the winning (i, j), the FIRST maximum in row-major window order.
//
// Backward: y is piecewise the identity of one input, so
//   dL/dx[n,c,i,j] = sum_{(p,q) : a[n,c,p,q] = (i,j)} dy[n,c,p,q]   (dx[a] += dy)
// Overlapping windows (stride < pool) may route several gradients to the same input.
//
// The argmax is stored as the flat offset i*W + j within the channel plane, in a vector grown
// only when a larger batch or image arrives. It is recorded in both phases (so backward works
// after any forward); the cost is one int32 per output.
//
// Speed: the common 2x2 window with stride 2 and no top/left padding has its own kernel
// (kernels.hpp: maxpool2x2, SIMD per ISA with compares and blends): the branchy loop over the
// window mispredicts on about every other element of real data. Planes are shared out over the
// thread pool in chunks when there is enough work; each plane is computed the same way by any
// thread.
#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>

#include "core/memory.hpp"
#include "imgsim/error.hpp"
#include "imgsim/nn/layers.hpp"
#include "imgsim/nn/serialize.hpp"
#include "imgsim/runtime/cpu.hpp"
#include "kernels/kernels.hpp"
#include "kernels/thread_pool.hpp"
#include "nn/conv_geometry.hpp"

namespace imgsim::nn {
namespace {

std::string size_str(Size2 s) {
  return std::to_string(s.h) + "x" + std::to_string(s.w);
}

std::string short_size_str(Size2 s) {
  return s.h == s.w ? std::to_string(s.h) : size_str(s);
}

std::string who(const std::string& name) {
  return name.empty() ? "MaxPool2D" : "MaxPool2D " + name;
}

bool in_range(int64_t v, int64_t lo, int64_t hi) {
  return v >= lo && v <= hi;
}

}  // namespace

MaxPool2D::MaxPool2D(Size2 pool, MaxPool2DOptions opt) : pool_(pool), opt_(opt) {
  if (!in_range(pool.h, 1, detail::kMaxWindow) || !in_range(pool.w, 1, detail::kMaxWindow))
    throw InvalidArgument("MaxPool2D: pool size must be in [1, " +
                          std::to_string(detail::kMaxWindow) + "], got " + size_str(pool));
  if (!in_range(opt.stride.h, 0, detail::kMaxWindow) ||
      !in_range(opt.stride.w, 0, detail::kMaxWindow))
    throw InvalidArgument("MaxPool2D: stride must be in [0, " + std::to_string(detail::kMaxWindow) +
                          "] (0 = pool size), got " + size_str(opt.stride));
  if (opt.padding == Padding::explicit_)
    throw InvalidArgument("MaxPool2D: padding must be valid or same");
  if (opt_.stride.h == 0) opt_.stride.h = pool.h;
  if (opt_.stride.w == 0) opt_.stride.w = pool.w;
  declared_input_ = opt.input_shape;
}

std::string MaxPool2D::describe() const {
  return "MaxPool2D(" + size_str(pool_) + ", stride " + short_size_str(opt_.stride) + ", " +
         detail::padding_name(opt_.padding) + ")";
}

Shape MaxPool2D::build(const Shape& in) {
  if (in.rank() != 3 || in[0] <= 0 || in[1] <= 0 || in[2] <= 0)
    throw ShapeError(who(name) + ": expects input (channels, height, width), got " + in.str());
  if (in[1] * in[2] > std::numeric_limits<int32_t>::max())
    throw ShapeError(who(name) + ": input " + in.str() + " has too many pixels per channel");
  const auto gh = detail::resolve_axis(opt_.padding, in[1], pool_.h, opt_.stride.h, 0);
  const auto gw = detail::resolve_axis(opt_.padding, in[2], pool_.w, opt_.stride.w, 0);
  if (gh.out <= 0 || gw.out <= 0)
    throw ShapeError(who(name) + ": pool " + size_str(pool_) + " does not fit input " + in.str() +
                     " (" + detail::padding_name(opt_.padding) + " padding)");
  pt_ = gh.before;
  pl_ = gw.before;
  return finish_build(in, Shape{in[0], gh.out, gw.out});
}

namespace {

// Outputs per parallel chunk of planes; below twice this, one thread does everything.
constexpr int64_t kChunkOutputs = 64 * 1024;

// Runs fn(first_plane, end_plane) over [0, planes), in parallel chunks when there is enough work.
template <class F>
void for_planes(int64_t planes, int64_t outputs_per_plane, F&& fn) {
  const int64_t total = planes * outputs_per_plane;
  if (total < 2 * kChunkOutputs || num_threads() == 1) {
    fn(int64_t{0}, planes);
    return;
  }
  int64_t per = kChunkOutputs / (outputs_per_plane > 0 ? outputs_per_plane : 1);
  if (per < 1) per = 1;
  const int64_t chunks = (planes + per - 1) / per;
  kernels::parallel_for(chunks, [&](int64_t i) {
    const int64_t p0 = i * per, p1 = p0 + per < planes ? p0 + per : planes;
    fn(p0, p1);
  });
}

}  // namespace

int32_t* MaxPool2D::argmax_for(int64_t n) {
  const auto need = static_cast<std::size_t>(n * out_shape_.numel());
  if (argmax_.size() < need) {             // grows only for a larger batch or image
    std::vector<int32_t>().swap(argmax_);  // the old contents are not needed
    argmax_.reserve(need);                 // fresh memory, advised before resize touches it
    imgsim::detail::advise_huge_pages(argmax_.data(), need * sizeof(int32_t));
    argmax_.resize(need);
  }
  return argmax_.data();
}

void MaxPool2D::forward(const Tensor& x, Tensor& y, Phase /*phase*/) {
  const int64_t planes = x.dim(0) * in_shape_[0];
  const int64_t h = in_shape_[1], w = in_shape_[2];
  const int64_t p_out = out_shape_[1], q_out = out_shape_[2];
  const int64_t sh = opt_.stride.h, sw = opt_.stride.w;
  int32_t* const argmax = argmax_for(x.dim(0));
  const bool fast = pool_.h == 2 && pool_.w == 2 && sh == 2 && sw == 2 && pt_ == 0 && pl_ == 0 &&
                    2 * p_out <= h && 2 * q_out <= w;
  const kernels::MaxPool2x2Fn pool2x2 = kernels::table().maxpool2x2;
  for_planes(planes, p_out * q_out, [&](int64_t first, int64_t end) {
    for (int64_t plane = first; plane < end; ++plane) {
      const float* xp = x.data() + plane * h * w;
      float* yp = y.data() + plane * p_out * q_out;
      int32_t* ap = argmax + plane * p_out * q_out;
      if (fast) {
        pool2x2(xp, w, p_out, q_out, nullptr, 0, 0.0f, yp, ap);
        continue;
      }
      for (int64_t p = 0; p < p_out; ++p) {
        const int64_t h0 = p * sh - pt_;
        const int64_t i_begin = std::max<int64_t>(h0, 0), i_end = std::min(h0 + pool_.h, h);
        for (int64_t q = 0; q < q_out; ++q) {
          const int64_t w0 = q * sw - pl_;
          const int64_t j_begin = std::max<int64_t>(w0, 0), j_end = std::min(w0 + pool_.w, w);
          int64_t best_at = -1;
          float best = -std::numeric_limits<float>::infinity();
          for (int64_t i = i_begin; i < i_end; ++i) {
            const float* row = xp + i * w;
            for (int64_t j = j_begin; j < j_end; ++j) {
              // Strict '>': a later equal value does not replace the first maximum.
              if (best_at < 0 || row[j] > best) {
                best = row[j];
                best_at = i * w + j;
              }
            }
          }
          yp[p * q_out + q] = best;
          ap[p * q_out + q] = static_cast<int32_t>(best_at);
        }
      }
    }
  });
}

void MaxPool2D::backward(const Tensor& x, const Tensor& y, const Tensor& dy, Tensor* dx) {
  if (dx) scatter(x, y, dy, *dx, false);
}

// Each plane is cleared just before its gradients are scattered into it, while it is in cache.
void MaxPool2D::backward_into(const Tensor& x, const Tensor& y, const Tensor& dy, Tensor& dx) {
  scatter(x, y, dy, dx, true);
}

void MaxPool2D::scatter(const Tensor& x, const Tensor& /*y*/, const Tensor& dy, Tensor& dxt,
                        bool overwrite) {
  Tensor* dx = &dxt;
  const int64_t planes = x.dim(0) * in_shape_[0];
  const int64_t hw = in_shape_[1] * in_shape_[2];
  const int64_t pq = out_shape_[1] * out_shape_[2];
  if (argmax_.size() < static_cast<std::size_t>(planes * pq))
    throw StateError(who(name) + ": backward called without a forward pass for this batch");
  // Planes are disjoint, so chunks of planes can be done by different threads.
  for_planes(planes, pq, [&](int64_t first, int64_t end) {
    for (int64_t plane = first; plane < end; ++plane) {
      const float* dyp = dy.data() + plane * pq;
      const int32_t* ap = argmax_.data() + plane * pq;
      float* dxp = dx->data() + plane * hw;
      if (overwrite) std::fill(dxp, dxp + hw, 0.0f);
      for (int64_t t = 0; t < pq; ++t)
        if (ap[t] >= 0) dxp[ap[t]] += dyp[t];
    }
  });
}

void MaxPool2D::save_config(ByteWriter& w) const {
  w.i64(pool_.h);
  w.i64(pool_.w);
  w.i64(opt_.stride.h);
  w.i64(opt_.stride.w);
  w.u32(static_cast<uint32_t>(opt_.padding));
}

void MaxPool2D::load_config(ByteReader& r, uint32_t version) {
  if (version != 1)
    r.fail("max_pool2d layer record version " + std::to_string(version) + ", expected 1");
  // One read per statement: the order of evaluation of function arguments is unspecified.
  Size2 pool, stride;
  pool.h = r.i64("max_pool2d.pool_h");
  pool.w = r.i64("max_pool2d.pool_w");
  stride.h = r.i64("max_pool2d.stride_h");
  stride.w = r.i64("max_pool2d.stride_w");
  const uint32_t padding = r.u32("max_pool2d.padding");
  const std::string lim = std::to_string(detail::kMaxWindow);
  if (!in_range(pool.h, 1, detail::kMaxWindow) || !in_range(pool.w, 1, detail::kMaxWindow))
    r.fail("max_pool2d.pool " + size_str(pool) + " out of range [1, " + lim + "]");
  if (!in_range(stride.h, 1, detail::kMaxWindow) || !in_range(stride.w, 1, detail::kMaxWindow))
    r.fail("max_pool2d.stride " + size_str(stride) + " out of range [1, " + lim + "]");
  if (padding != static_cast<uint32_t>(Padding::valid) &&
      padding != static_cast<uint32_t>(Padding::same))
    r.fail("max_pool2d.padding " + std::to_string(padding) + " is not valid (0) or same (1)");
  pool_ = pool;
  opt_.stride = stride;
  opt_.padding = static_cast<Padding>(padding);
}

}  // namespace imgsim::nn
