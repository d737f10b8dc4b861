// Output size and padding along one spatial axis, shared by Conv2D and MaxPool2D (internal).
//
//   valid:    no padding,                   out = floor((in - k) / st) + 1
//   same:     Keras/TensorFlow rule,        out = ceil(in / st),
//             total = max((out - 1) * st + k - in, 0), before = total / 2, after = total - before
//   explicit: `pad` on each side (PyTorch), out = floor((in + 2 pad - k) / st) + 1
//
// out <= 0 means the window does not fit; callers turn that into a ShapeError.
#pragma once

#include <algorithm>
#include <cstdint>

#include "imgsim/nn/layers.hpp"

namespace imgsim::nn::detail {

// Largest kernel, stride or pad accepted by the constructors and model files; keeps every size
// computation far from int64 overflow.
inline constexpr int64_t kMaxWindow = int64_t{1} << 20;

struct AxisGeometry {
  int64_t out = 0;
  int64_t before = 0, after = 0;
};

// in, k, stride >= 1 and pad >= 0 (<= kMaxWindow for k, stride, pad).
inline AxisGeometry resolve_axis(Padding mode, int64_t in, int64_t k, int64_t stride, int64_t pad) {
  AxisGeometry g;
  switch (mode) {
    case Padding::valid:
      g.out = in >= k ? (in - k) / stride + 1 : 0;
      break;
    case Padding::same: {
      g.out = (in + stride - 1) / stride;
      const int64_t total = std::max<int64_t>((g.out - 1) * stride + k - in, 0);
      g.before = total / 2;
      g.after = total - g.before;
      break;
    }
    case Padding::explicit_:
      g.before = g.after = pad;
      g.out = in + 2 * pad >= k ? (in + 2 * pad - k) / stride + 1 : 0;
      break;
  }
  return g;
}

inline const char* padding_name(Padding p) {
  switch (p) {
    case Padding::valid:
      return "valid";
    case Padding::same:
      return "same";
    case Padding::explicit_:
      return "explicit";
  }
  return "?";
}

}  // namespace imgsim::nn::detail
