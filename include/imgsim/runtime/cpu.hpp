// Run-time CPU dispatch and threading controls.
//
// imgsim picks its SIMD kernels once, at first use, from what the CPU and OS support
// (CPUID + XGETBV). IMGSIM_MAX_ISA=scalar|avx2|avx512 in the environment, or set_max_isa(),
// caps the choice so every path can be exercised on one machine.
#pragma once

#include <string>

namespace imgsim {

enum class Isa { scalar = 0, avx2 = 1, avx512 = 2 };

const char* to_string(Isa isa);
// Throws InvalidArgument for anything but "scalar", "avx2", "avx512".
Isa isa_from_string(const std::string& name);
// Best ISA this CPU and OS support: avx512 needs AVX512F+BW+DQ+VL and OS-saved ZMM state, avx2
// needs AVX2+FMA and OS-saved YMM state. Detected once.
Isa detected_isa();
// ISA the kernels use: min(detected, cap). The cap is IMGSIM_MAX_ISA (read at first use; an
// unknown value throws InvalidArgument) until set_max_isa() is called.
Isa active_isa();
// Caps the ISA; the next kernel call uses the new choice (intended for tests/benchmarks).
void set_max_isa(Isa isa);

// Threads of imgsim's persistent pool, used by the GEMM for large products and by layer loops.
// Default: IMGSIM_NUM_THREADS (read at first use; a value that is not an integer in 1..4096
// throws InvalidArgument) or else the number of hardware threads. set_num_threads() throws
// InvalidArgument for n < 1; it takes effect at the next parallel operation.
void set_num_threads(int n);
int num_threads();

}  // namespace imgsim
