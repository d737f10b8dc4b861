// Run-time kernel choice. One static table per ISA; table() picks the one for active_isa() =
// min(detected_isa(), cap) on every call (two relaxed atomic loads), so set_max_isa() takes effect
// for the next kernel call. The cap comes from IMGSIM_MAX_ISA (read once) until set_max_isa().
#include <atomic>
#include <cstdlib>
#include <string>

#include "imgsim/error.hpp"
#include "kernels/kernels.hpp"

namespace imgsim {

const char* to_string(Isa isa) {
  switch (isa) {
    case Isa::scalar:
      return "scalar";
    case Isa::avx2:
      return "avx2";
    case Isa::avx512:
      return "avx512";
  }
  return "?";
}

Isa isa_from_string(const std::string& name) {
  if (name == "scalar") return Isa::scalar;
  if (name == "avx2") return Isa::avx2;
  if (name == "avx512") return Isa::avx512;
  throw InvalidArgument("unknown ISA '" + name + "' (expected scalar, avx2 or avx512)");
}

namespace {
constexpr int kCapUnset = -1;
std::atomic<int> g_cap{kCapUnset};
}  // namespace

Isa active_isa() {
  int cap = g_cap.load(std::memory_order_relaxed);
  if (cap == kCapUnset) {
    const char* env = std::getenv("IMGSIM_MAX_ISA");
    int from_env = static_cast<int>(Isa::avx512);
    if (env) {
      try {
        from_env = static_cast<int>(isa_from_string(env));
      } catch (const InvalidArgument& e) {
        throw InvalidArgument(std::string("IMGSIM_MAX_ISA: ") + e.what());
      }
    }
    // A concurrent set_max_isa() wins over the environment.
    cap = g_cap.compare_exchange_strong(cap, from_env) ? from_env : cap;
  }
  const int det = static_cast<int>(detected_isa());
  return static_cast<Isa>(cap < det ? cap : det);
}

void set_max_isa(Isa isa) {
  const int v = static_cast<int>(isa);
  if (v < static_cast<int>(Isa::scalar) || v > static_cast<int>(Isa::avx512))
    throw InvalidArgument("set_max_isa: not an Isa value (" + std::to_string(v) + ")");
  g_cap.store(v, std::memory_order_relaxed);
}

namespace kernels {
namespace {

struct Tables {
  KernelTable by_isa[3];
};

// Best compiled table at or below each ISA (a build that could not compile an ISA's file falls
// back to the next one down).
const Tables& tables() {
  static const Tables t = [] {
    Tables r{{{Isa::scalar,
               &portable::sgemm,
               portable::sgemm_name(),
               &portable::packed_a_floats,
               &portable::pack_gemm_a,
               &portable::sgemm_packed_a,
               &portable::im2col_tile,
               &portable::col2im_tile_add,
               &ref::maxpool2x2,
               &ref::unpool2x2,
               &portable::wino_input,
               &portable::wino_output,
               &portable::wino_grad,
               &portable::wino_output_pool,
               &portable::gemm_nt_small,
               &ref::transpose,
               &portable::gather_acc,
               &ref::scatter_axpy,
               &ref::pool_scatter,
               nullptr,
               nullptr,
               nullptr,
               nullptr},
              {Isa::avx2,
               &avx2::sgemm,
               avx2::sgemm_name(),
               &avx2::packed_a_floats,
               &avx2::pack_gemm_a,
               &avx2::sgemm_packed_a,
               &avx2::im2col_tile,
               &avx2::col2im_tile_add,
               &avx2::maxpool2x2,
               &avx2::unpool2x2,
               &avx2::wino_input,
               &avx2::wino_output,
               &avx2::wino_grad,
               &avx2::wino_output_pool,
               &avx2::gemm_nt_small,
               &avx2::transpose,
               &avx2::gather_acc,
               &avx2::scatter_axpy,
               &avx2::pool_scatter,
               &avx2::conv3x3_pool,
               &avx2::conv3x3_pool_grad,
               nullptr,
               nullptr},
              {Isa::avx512,
               &avx512::sgemm,
               avx512::sgemm_name(),
               &avx512::packed_a_floats,
               &avx512::pack_gemm_a,
               &avx512::sgemm_packed_a,
               &avx512::im2col_tile,
               &avx512::col2im_tile_add,
               &avx512::maxpool2x2,
               &avx512::unpool2x2,
               &avx512::wino_input,
               &avx512::wino_output,
               &avx512::wino_grad,
               &avx512::wino_output_pool,
               &avx512::gemm_nt_small,
               &avx512::transpose,
               &avx512::gather_acc,
               &avx512::scatter_axpy,
               &avx512::pool_scatter,
               &avx512::conv3x3_pool,
               &avx512::conv3x3_pool_grad,
               &avx512::conv3x3,
               &avx512::conv3x3_grad}}};
    if (!avx2::compiled() || !avx2::conv_compiled() || !avx2::pool_compiled() ||
        !avx2::sparse_compiled())
      r.by_isa[1] = r.by_isa[0];
    if (!avx512::compiled() || !avx512::conv_compiled() || !avx512::pool_compiled() ||
        !avx512::sparse_compiled())
      r.by_isa[2] = r.by_isa[1];
    return r;
  }();
  return t;
}

}  // namespace

const KernelTable& table_for(Isa isa) {
  if (static_cast<int>(isa) > static_cast<int>(detected_isa()))
    throw InvalidArgument(std::string("table_for: ISA ") + to_string(isa) +
                          " is not supported by this CPU (detected " + to_string(detected_isa()) +
                          ")");
  return tables().by_isa[static_cast<int>(isa)];
}

const KernelTable& table() {
  return tables().by_isa[static_cast<int>(active_isa())];
}

}  // namespace kernels
}  // namespace imgsim
