// CPU feature detection: CPUID for what the processor implements, XGETBV for what the operating
// system saves on a context switch (YMM / ZMM state). Compiled with the baseline flags, so it runs
// on any x86-64 CPU; on other architectures everything reports Isa::scalar.
#include "imgsim/runtime/cpu.hpp"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#include <cstdint>

namespace imgsim {
namespace {

#if defined(__x86_64__) || defined(__i386__)
// XCR0 via inline assembly: the _xgetbv intrinsic would need -mxsave on this translation unit.
uint64_t read_xcr0() {
  uint32_t lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (static_cast<uint64_t>(hi) << 32) | lo;
}

Isa detect() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return Isa::scalar;
  const bool osxsave = (ecx >> 27) & 1, avx = (ecx >> 28) & 1, fma = (ecx >> 12) & 1;
  if (!osxsave || !avx) return Isa::scalar;
  const uint64_t xcr0 = read_xcr0();
  // Bits 1 (SSE) and 2 (AVX upper halves): YMM state; plus 5, 6, 7 (opmask, ZMM0-15 upper halves,
  // ZMM16-31): ZMM state.
  const bool os_ymm = (xcr0 & 0x6) == 0x6;
  const bool os_zmm = (xcr0 & 0xe6) == 0xe6;
  if (__get_cpuid_max(0, nullptr) < 7) return Isa::scalar;
  __cpuid_count(7, 0, eax, ebx, ecx, edx);
  const bool avx2 = (ebx >> 5) & 1;
  const bool avx512f = (ebx >> 16) & 1, avx512dq = (ebx >> 17) & 1;
  const bool avx512bw = (ebx >> 30) & 1, avx512vl = (ebx >> 31) & 1;
  if (!(os_ymm && avx2 && fma)) return Isa::scalar;
  if (os_zmm && avx512f && avx512bw && avx512dq && avx512vl) return Isa::avx512;
#ifdef IMGSIM_EMULATE_AVX512
  return Isa::avx512;  // a test build: the AVX-512 kernels run emulated (avx512/emulate.hpp)
#else
  return Isa::avx2;
#endif
}
#else
Isa detect() {
  return Isa::scalar;
}
#endif

}  // namespace

Isa detected_isa() {
  static const Isa isa = detect();
  return isa;
}

}  // namespace imgsim
