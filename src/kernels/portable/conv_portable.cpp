// Batch im2col / col2im tiles and Winograd transforms for Isa::scalar: conv_lowering.inc and
// winograd.inc with plain loops, compiled with the baseline flags (the compiler vectorises them
// with SSE2 on x86-64).
#include <cstdint>
#include <type_traits>

#include "kernels/kernels.hpp"

namespace imgsim::kernels::portable {

#include "kernels/conv_lowering.inc"
#include "kernels/winograd.inc"

}  // namespace imgsim::kernels::portable
