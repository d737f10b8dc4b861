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
// Best ISA this CPU and OS support.
Isa detected_isa();
// ISA the kernels use: min(detected, cap).
Isa active_isa();
// Caps the ISA (takes effect for kernels looked up afterwards; intended for tests/benchmarks).
void set_max_isa(Isa isa);

// Threads used by layer operations (default: IMGSIM_NUM_THREADS or the number of cores).
void set_num_threads(int n);
int num_threads();

}  // namespace imgsim
