// Run-time choice of the inner-product kernels (distance.hpp): one static table per ISA, indexed
// by active_isa() on every call, like the GEMM table in registry.cpp.
#include <string>

#include "imgsim/error.hpp"
#include "kernels/distance.hpp"

namespace imgsim::kernels {
namespace {

struct DistanceTables {
  DistanceKernels by_isa[3];
};

const DistanceTables& distance_tables() {
  static const DistanceTables t = [] {
    DistanceTables r{{{Isa::scalar, &portable::ip_tile, &portable::dot, &portable::neg_dot_void,
                       &portable::ip_f16, "f32_ip_1x4__portable"},
                      {Isa::avx2, &avx2::ip_tile, &avx2::dot, &avx2::neg_dot_void, &avx2::ip_f16,
                       "f32_ip_2x4__avx2"},
                      {Isa::avx512, &avx512::ip_tile, &avx512::dot, &avx512::neg_dot_void,
                       &avx512::ip_f16, "f32_ip_4x4__avx512"}}};
    if (!avx2::distance_compiled()) r.by_isa[1] = r.by_isa[0];
    if (!avx512::distance_compiled()) r.by_isa[2] = r.by_isa[1];
    return r;
  }();
  return t;
}

}  // namespace

const DistanceKernels& distance_kernels_for(Isa isa) {
  if (static_cast<int>(isa) < 0 || static_cast<int>(isa) > static_cast<int>(detected_isa()))
    throw InvalidArgument(std::string("distance_kernels_for: ISA ") + to_string(isa) +
                          " is not supported by this CPU (detected " + to_string(detected_isa()) +
                          ")");
  return distance_tables().by_isa[static_cast<int>(isa)];
}

const DistanceKernels& distance_kernels() {
  return distance_tables().by_isa[static_cast<int>(active_isa())];
}

}  // namespace imgsim::kernels
