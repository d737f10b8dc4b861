// Small helpers shared by the layer implementations (internal).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>

namespace imgsim::nn::detail {

// A layer parameter in messages and describe(): shortest "%g" form.
inline std::string format_float(float v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", static_cast<double>(v));
  return buf;
}

// For scales and norm bounds (eps): finite and > 0.
inline bool positive_finite(float v) {
  return std::isfinite(v) && v > 0.0f;
}

// ||row||_2 of d floats, accumulated in double.
inline double row_l2_norm(const float* row, int64_t d) {
  double ss = 0.0;
  for (int64_t i = 0; i < d; ++i) ss += static_cast<double>(row[i]) * row[i];
  return std::sqrt(ss);
}

}  // namespace imgsim::nn::detail
