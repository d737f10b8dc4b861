// Dense (fully connected) layer.
//
// Shapes: x (N, D), weight W (U, D) as in torch.nn.Linear, bias b (U), y (N, U).
//
// Forward (the source document's f(x) = sum_i w_i x_i + b, one row per unit):
//   z[n,j] = b[j] + sum_i x[n,i] W[j,i]          z = x W^T + b
//   y[n,j] = act(z[n,j])
//
// Backward, with dz = dy * act'(z) (act' written through y, see act.hpp):
//   dL/dW[j,i] = sum_n dz[n,j] x[n,i]            dW += dz^T x
//   dL/db[j]   = sum_n dz[n,j]                   db += colsum(dz)
//   dL/dx[n,i] = sum_j dz[n,j] W[j,i]            dx += dz W
#include <algorithm>

#include "imgsim/error.hpp"
#include "imgsim/nn/layers.hpp"
#include "imgsim/nn/serialize.hpp"
#include "imgsim/runtime/cpu.hpp"
#include "kernels/kernels.hpp"
#include "kernels/thread_pool.hpp"
#include "nn/act.hpp"

namespace imgsim::nn {

Dense::Dense(int64_t units, DenseOptions opt) : units_(units), opt_(opt) {
  if (units <= 0)
    throw InvalidArgument("Dense: units must be positive, got " + std::to_string(units));
  declared_input_ = opt.input_shape;
}

std::string Dense::describe() const {
  return "Dense(" + std::to_string(units_) + (opt_.use_bias ? "" : ", no bias") + ", " +
         to_string(opt_.activation) + ")";
}

Shape Dense::build(const Shape& in) {
  if (in.rank() != 1 || in[0] <= 0)
    throw ShapeError("Dense " + name + ": expects input (features), got " + in.str() +
                     (in.rank() > 1 ? " (add a Flatten layer before it)" : ""));
  const int64_t d = in[0];
  if (!weight_.empty() && weight_.shape() != Shape{units_, d})
    throw ShapeError("Dense " + name + ": weight " + weight_.shape().str() +
                     " does not fit input " + in.str());
  if (weight_.empty()) {
    weight_ = Tensor({units_, d});
    dweight_ = Tensor({units_, d});
    if (opt_.use_bias) {
      bias_ = Tensor({units_});
      dbias_ = Tensor({units_});
    }
  }
  return finish_build(in, Shape{units_});
}

void Dense::init_params(Rng& rng) {
  const float bound = detail::init_bound(opt_.activation, in_shape_[0], units_);
  for (int64_t i = 0; i < weight_.numel(); ++i) weight_[i] = rng.uniform(-bound, bound);
  if (opt_.use_bias) bias_.zero();
}

std::vector<Param> Dense::params() {
  std::vector<Param> p{{"weight", &weight_, &dweight_, true}};
  if (opt_.use_bias) p.push_back({"bias", &bias_, &dbias_, false});
  return p;
}

namespace {

// The forward is gemm_nt_small at every batch: each unit's output a dot product of two
// contiguous rows (x and a row of W), summed in an order that depends only on d, so a row's
// output has the same bits alone and in any batch, in training and in inference (an image's
// embedding does not depend on the batch it is embedded in; the blocked GEMM sums in another
// order, and with it above batch 3 the outputs differed in the last bits). At small batches it is
// also the fast way: the blocked GEMM would first pack W, i.e. read and write all of it, which
// at batch 1 cost 3x the product (the seed model's 86528 x 128 weights, 44 MB: 4.7 ms against
// a 1.1 ms read). At batch 32 its long reductions go by chunks (gemm_nt_small), so that a part's
// rows of W and the rows of x come from memory once per part: the seed model's Dense forward takes
// 11.1 ms on one thread (14.5 ms when each block of 4 x 4 results streamed its own rows).
// Units per part (parts run in parallel, or one after the other on one thread), and the work
// (multiply-adds) below which it stays on one thread.
constexpr int64_t kRowsUnitsPerPart = 24;  // whole column blocks (3 or 4) of gemm_nt_small
constexpr int64_t kRowsParallelMin = int64_t{1} << 18;

}  // namespace

void Dense::forward(const Tensor& x, Tensor& y, Phase /*phase*/) {
  const int64_t n = x.dim(0), d = in_shape_[0], u = units_;
  const kernels::GemmNtSmallFn nt = kernels::table().gemm_nt_small;
  const int64_t parts = (u + kRowsUnitsPerPart - 1) / kRowsUnitsPerPart;
  auto part = [&](int64_t i) {
    const int64_t j0 = i * kRowsUnitsPerPart, j1 = std::min(u, j0 + kRowsUnitsPerPart);
    nt(n, j1 - j0, d, x.data(), d, weight_.data() + j0 * d, d, 0.0f, y.data() + j0, u);
  };
  if (n * u * d < kRowsParallelMin || parts < 2 || num_threads() == 1) {
    for (int64_t i = 0; i < parts; ++i) part(i);
  } else {
    kernels::parallel_for(parts, part);
  }
  if (opt_.use_bias) {
    for (int64_t r = 0; r < n; ++r) {
      float* row = y.data() + r * u;
      for (int64_t j = 0; j < u; ++j) row[j] += bias_[j];
    }
  }
  detail::apply_activation(opt_.activation, opt_.leaky_slope, y.data(), n * u);
}

void Dense::backward(const Tensor& x, const Tensor& y, const Tensor& dy, Tensor* dx) {
  backward_impl(x, y, dy, dx, 1.0f);
}

void Dense::backward_into(const Tensor& x, const Tensor& y, const Tensor& dy, Tensor& dx) {
  backward_impl(x, y, dy, &dx, 0.0f);  // beta = 0: dx is written, its contents ignored
}

void Dense::backward_impl(const Tensor& x, const Tensor& y, const Tensor& dy, Tensor* dx,
                          float dx_beta) {
  const int64_t n = x.dim(0), d = in_shape_[0], u = units_;
  const float* dz = dy.data();
  if (opt_.activation != Activation::linear) {
    dz_.resize(Shape{n, u});
    detail::activation_backward(opt_.activation, opt_.leaky_slope, y.data(), dy.data(), dz_.data(),
                                n * u);
    dz = dz_.data();
  }
  kernels::sgemm(true, false, u, d, n, 1.0f, dz, u, x.data(), d, 1.0f, dweight_.data(), d);
  if (opt_.use_bias) {
    for (int64_t r = 0; r < n; ++r)
      for (int64_t j = 0; j < u; ++j) dbias_[j] += dz[r * u + j];
  }
  if (dx)
    kernels::sgemm(false, false, n, d, u, 1.0f, dz, u, weight_.data(), d, dx_beta, dx->data(), d);
}

void Dense::save_config(ByteWriter& w) const {
  w.i64(units_);
  w.u32(static_cast<uint32_t>(opt_.activation));
  w.f32(opt_.leaky_slope);
  w.u8(opt_.use_bias ? 1 : 0);
}

void Dense::load_config(ByteReader& r, uint32_t version) {
  if (version != 1)
    r.fail("dense layer record version " + std::to_string(version) + ", expected 1");
  units_ = r.i64("dense.units");
  uint32_t act = r.u32("dense.activation");
  if (act > static_cast<uint32_t>(Activation::sigmoid))
    r.fail("dense.activation " + std::to_string(act) + " is not a known activation");
  opt_.activation = static_cast<Activation>(act);
  opt_.leaky_slope = r.f32("dense.leaky_slope");
  opt_.use_bias = r.u8("dense.use_bias") != 0;
  if (units_ <= 0 || units_ > (int64_t{1} << 24))
    r.fail("dense.units " + std::to_string(units_) + " out of range");
}

}  // namespace imgsim::nn
