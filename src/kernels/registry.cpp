// Run-time kernel choice. Provisional: only the scalar reference is registered until the
// SIMD kernels land (issue: fast CPU kernels).
#include <atomic>
#include <cstdlib>
#include <string>

#include "imgsim/error.hpp"
#include "kernels/kernels.hpp"

namespace imgsim {

const char* to_string(Isa isa) {
  switch (isa) {
    case Isa::scalar: return "scalar";
    case Isa::avx2: return "avx2";
    case Isa::avx512: return "avx512";
  }
  return "?";
}

Isa isa_from_string(const std::string& name) {
  if (name == "scalar") return Isa::scalar;
  if (name == "avx2") return Isa::avx2;
  if (name == "avx512") return Isa::avx512;
  throw InvalidArgument("unknown ISA '" + name + "' (expected scalar, avx2 or avx512)");
}

Isa detected_isa() { return Isa::scalar; }

namespace {
std::atomic<int> g_cap{-1};
std::atomic<int> g_threads{0};
}  // namespace

Isa active_isa() {
  int cap = g_cap.load();
  if (cap < 0) {
    const char* env = std::getenv("IMGSIM_MAX_ISA");
    cap = env ? static_cast<int>(isa_from_string(env)) : static_cast<int>(Isa::avx512);
    g_cap.store(cap);
  }
  int det = static_cast<int>(detected_isa());
  return static_cast<Isa>(cap < det ? cap : det);
}

void set_max_isa(Isa isa) { g_cap.store(static_cast<int>(isa)); }

void set_num_threads(int n) {
  if (n < 1) throw InvalidArgument("set_num_threads: need at least 1 thread, got " + std::to_string(n));
  g_threads.store(n);
}

int num_threads() {
  int n = g_threads.load();
  return n > 0 ? n : 1;
}

namespace kernels {

const KernelTable& table_for(Isa /*isa*/) {
  static const KernelTable scalar{Isa::scalar, &ref::sgemm};
  return scalar;
}

const KernelTable& table() { return table_for(active_isa()); }

}  // namespace kernels
}  // namespace imgsim
