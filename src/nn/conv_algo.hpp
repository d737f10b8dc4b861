// Which lowering Conv2D uses (internal; tests and benchmarks force each one to cover it).
//
// automatic: Winograd F(4x4, 3x3) (kernels/winograd.hpp) for 3x3 kernels with stride 1, at least
// kWinoMinChannels input and output channels, outputs at least kWinoMinWidth wide and at least
// kWinoMinTiles 4x4 tiles (below); backward
// also needs either padding (a 'same' layer) or kWinoMinWidthValid columns: without padding, dx
// is a full convolution of dz over a larger tile grid, and on small images (Fashion-MNIST's 11x11
// conv2) im2col wins. im2col + GEMM otherwise. F(2x2, 3x3) is kept for tests and comparisons:
// measured on the machine of docs/benchmarks.md (bench_layers, one thread), F(4x4) took 25-60 %
// less time than F(2x2) and im2col on every pass of the models' 32->32 to 128->256 channel
// layers from 7 to 109 columns, except backward-data at 28-32 columns (10 % slower than F(2x2)).
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

// Whether Sequential runs a Conv2D (a first layer, or one on the Winograd path) and a following
// 2x2 / stride 2 MaxPool2D as one layer (Conv2D::forward_pool2x2, src/nn/conv2d.cpp). Process-wide
// like the lowering; until set_fusion() is called it comes from IMGSIM_FUSE=1|0 (default 1; another
// value throws InvalidArgument), for tests and benchmarks that compare the two.
void set_fusion(bool on);
bool fusion_enabled();

// A Winograd layer fused with its pooling works on blocks of whole images whose conv output is
// about this many floats (2 MiB, at least one image), so that it stays in cache between the
// output transform and the pooling (src/nn/conv2d.cpp). set_wino_pool_block(n) overrides it
// (n <= 0: back to the default), for tests that need several blocks on small inputs.
inline constexpr long kWinoPoolBlockFloats = 512 * 1024;
void set_wino_pool_block(long floats);
long wino_pool_block();

inline constexpr long kWinoMinChannels = 32;
inline constexpr long kWinoMinWidth = 6;
inline constexpr long kWinoMinWidthValid = 16;
// Every call transforms all K x C filters (36 values each) and runs 36 GEMMs, which only pays
// over enough tiles: at batch 1 the Fashion-MNIST model's inference took 4x longer with its conv2
// (9 tiles) in Winograd. Counted over the batch in training, per image in inference, so that an
// embedding does not depend on the batch the image came in.
inline constexpr long kWinoMinTiles = 16;

}  // namespace imgsim::nn::detail
