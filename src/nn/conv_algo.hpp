// Which lowering Conv2D uses (internal; tests and benchmarks force one to cover both).
//
// automatic: Winograd F(2x2, 3x3) (kernels/winograd.hpp) for 3x3 kernels with stride 1, at least
// kWinoMinChannels input and output channels, and outputs at least kWinoMinWidth (forward) or
// kWinoMinWidthBackward (backward) wide; im2col + GEMM otherwise. The transforms cost a fixed
// amount per tile and channel while the products shrink with C*K: measured on the machine of
// docs/benchmarks.md (32->64 channels: Winograd forward wins from 16 output columns, backward
// from 24-32; 16->16 channels: never clearly).
#pragma once

namespace imgsim::nn::detail {

enum class ConvAlgo { automatic, im2col, winograd };

// Process-wide; read at every forward / backward call. winograd applies only to layers that can
// use it (3x3, stride 1); the others use im2col whatever is set.
void set_conv_algo(ConvAlgo a);
ConvAlgo conv_algo();

inline constexpr long kWinoMinChannels = 32;
inline constexpr long kWinoMinWidth = 16;
inline constexpr long kWinoMinWidthBackward = 28;

}  // namespace imgsim::nn::detail
