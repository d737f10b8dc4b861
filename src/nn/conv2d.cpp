// 2-D convolution layer (docs/layers-conv-pool.md derives every formula below).
//
// Shapes: x (N, C, H, W), weight W (K, C, R, S), bias b (K), y (N, K, P, Q); strides (sh, sw),
// top/left padding (pt, pl) resolved by build() (kernels/im2col.hpp, nn/conv_geometry.hpp).
//
// Forward (the source document's y = sum_i sum_j w(i,j) x(x-i, y-j) + b, computed as a
// cross-correlation as every CNN library does, i.e. with x(p+i, q+j) and no kernel flip):
//   z[n,k,p,q] = b[k] + sum_{c,r,s} W[k,c,r,s] x[n, c, p*sh + r - pt, q*sw + s - pl]
//   y[n,k,p,q] = act(z[n,k,p,q])                        (x outside the image reads as 0)
// Per image, with col_n = im2col(x_n) of shape (C*R*S, P*Q):
//   z_n (K x PQ) = W (K x CRS) * col_n (CRS x PQ) + b 1^T
//
// Backward, with dz = dy * act'(z) (act' written through y, see act.hpp):
//   dL/dW[k,c,r,s] = sum_{n,p,q} dz[n,k,p,q] x[n, c, p*sh + r - pt, q*sw + s - pl]
//                                                       dW += dz_n col_n^T   (summed over n)
//   dL/db[k]       = sum_{n,p,q} dz[n,k,p,q]            db += rowsum(dz_n)
//   dL/dx[n,c,h,w] = sum_{k,r,s,p,q : p*sh + r - pt = h, q*sw + s - pl = w} dz[n,k,p,q] W[k,c,r,s]
//                                                       dcol = W^T dz_n, dx_n += col2im(dcol)
//
// Memory: work_ holds one image's columns (CRS x PQ) followed by one image's dz (K x PQ). It is
// resized on every call but only reallocates when a larger input size arrives; the batch size
// does not matter. backward recomputes im2col of x_n rather than keeping columns for the batch,
// and reuses the column buffer for dcol once dW has been accumulated.
#include <cmath>

#include "imgsim/error.hpp"
#include "imgsim/nn/layers.hpp"
#include "imgsim/nn/serialize.hpp"
#include "kernels/im2col.hpp"
#include "kernels/kernels.hpp"
#include "nn/act.hpp"
#include "nn/conv_geometry.hpp"

namespace imgsim::nn {
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

// A 1x1 kernel with stride 1 and no padding: im2col(x_n) is x_n itself.
bool is_pointwise(const kernels::Im2colGeometry& g) {
  return g.kernel_h == 1 && g.kernel_w == 1 && g.stride_h == 1 && g.stride_w == 1 &&
         g.pad_top == 0 && g.pad_left == 0 && g.out_h == g.height && g.out_w == g.width;
}

}  // namespace

void Conv2D::forward(const Tensor& x, Tensor& y, Phase /*phase*/) {
  const auto g = lowering(in_shape_, out_shape_, kernel_, opt_.stride, pt_, pl_);
  const int64_t n = x.dim(0), k = filters_;
  const int64_t chw = g.channels * g.height * g.width;
  const int64_t crs = g.channels * g.kernel_h * g.kernel_w, pq = g.out_h * g.out_w;
  const bool direct = is_pointwise(g);
  work_.resize(Shape{crs * pq + k * pq});  // reallocates only for a larger input size
  float* col = work_.data();
  for (int64_t i = 0; i < n; ++i) {
    const float* xn = x.data() + i * chw;
    float* yn = y.data() + i * k * pq;
    const float* cn = xn;
    if (!direct) {
      kernels::ref::im2col(g, xn, col);
      cn = col;
    }
    kernels::sgemm(false, false, k, pq, crs, 1.0f, weight_.data(), crs, cn, pq, 0.0f, yn, pq);
    if (opt_.use_bias) {
      for (int64_t j = 0; j < k; ++j) {
        const float b = bias_[j];
        float* row = yn + j * pq;
        for (int64_t t = 0; t < pq; ++t) row[t] += b;
      }
    }
  }
  detail::apply_activation(opt_.activation, opt_.leaky_slope, y.data(), n * k * pq);
}

void Conv2D::backward(const Tensor& x, const Tensor& y, const Tensor& dy, Tensor* dx) {
  const auto g = lowering(in_shape_, out_shape_, kernel_, opt_.stride, pt_, pl_);
  const int64_t n = x.dim(0), k = filters_;
  const int64_t chw = g.channels * g.height * g.width;
  const int64_t crs = g.channels * g.kernel_h * g.kernel_w, pq = g.out_h * g.out_w;
  const bool direct = is_pointwise(g);
  work_.resize(Shape{crs * pq + k * pq});  // same size as in forward: no allocation
  float* col = work_.data();
  float* dzbuf = col + crs * pq;
  for (int64_t i = 0; i < n; ++i) {
    const float* xn = x.data() + i * chw;
    const float* dz = dy.data() + i * k * pq;
    if (opt_.activation != Activation::linear) {
      detail::activation_backward(opt_.activation, opt_.leaky_slope, y.data() + i * k * pq, dz,
                                  dzbuf, k * pq);
      dz = dzbuf;
    }
    const float* cn = xn;
    if (!direct) {
      kernels::ref::im2col(g, xn, col);
      cn = col;
    }
    // dW (K x CRS) += dz_n (K x PQ) * col_n^T (PQ x CRS)
    kernels::sgemm(false, true, k, crs, pq, 1.0f, dz, pq, cn, pq, 1.0f, dweight_.data(), crs);
    if (opt_.use_bias) {
      for (int64_t j = 0; j < k; ++j) {
        const float* row = dz + j * pq;
        double sum = 0.0;
        for (int64_t t = 0; t < pq; ++t) sum += row[t];
        dbias_[j] += static_cast<float>(sum);
      }
    }
    if (dx) {
      float* dxn = dx->data() + i * chw;
      // dcol (CRS x PQ) = W^T (CRS x K) * dz_n (K x PQ); with a pointwise kernel dcol is dx_n.
      if (direct) {
        kernels::sgemm(true, false, crs, pq, k, 1.0f, weight_.data(), crs, dz, pq, 1.0f, dxn, pq);
      } else {
        kernels::sgemm(true, false, crs, pq, k, 1.0f, weight_.data(), crs, dz, pq, 0.0f, col, pq);
        kernels::ref::col2im_add(g, col, dxn);
      }
    }
  }
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
