// Which lowering Conv2D uses (internal; tests and benchmarks force one to cover both).
//
// automatic: Winograd (kernels/winograd.hpp; F(4x4, 3x3) from kWino4MinWidth output columns,
// F(2x2, 3x3) below) for 3x3 kernels with stride 1, at least
// kWinoMinChannels input and output channels, and outputs at least kWinoMinWidth (forward) or
// kWinoMinWidthBackward (backward) wide; im2col + GEMM otherwise. The transforms cost a fixed
// amount per tile and channel while the products shrink with C*K: measured on the machine of
// docs/benchmarks.md (32->64 channels: Winograd forward wins from 16 output columns, backward
// from 24-32; 16->16 channels: never clearly).
#pragma once

namespace imgsim::nn::detail {

enum class ConvAlgo { automatic, im2col, winograd, winograd4 };

// Process-wide; read at every forward / backward call. Until set_conv_algo() is called it comes
// from IMGSIM_CONV_ALGO=auto|im2col|winograd2|winograd4 (read at first use; another value throws
// InvalidArgument), for benchmarks that compare the lowerings. winograd (F(2x2, 3x3)) and winograd4
// (F(4x4, 3x3)) apply only to layers that can use them (3x3, stride 1); the others use im2col
// whatever is set.
void set_conv_algo(ConvAlgo a);
ConvAlgo conv_algo();

inline constexpr long kWinoMinChannels = 32;
inline constexpr long kWinoMinWidth = 16;
inline constexpr long kWinoMinWidthBackward = 28;
// automatic picks F(4x4, 3x3) over F(2x2, 3x3) from this output width on: the seed model's
// conv2 (109 columns) and conv3 (52) take 19-29 % less time with it (docs/benchmarks.md).
// Narrower layers keep F(2x2), which also keeps the shipped default model (32-column layers)
// reproducible bit for bit by its recipe.
inline constexpr long kWino4MinWidth = 48;

}  // namespace imgsim::nn::detail
