// Inner-product kernels for the similarity indexes (include/imgsim/similarity/index.hpp).
//
// Kept apart from kernels.hpp (the GEMM table) so the two kernel families evolve independently;
// dispatch follows the same rules: one static table per ISA, chosen from active_isa() (so
// set_max_isa() / IMGSIM_MAX_ISA apply), a scalar reference in ref/ as the oracle, per-ISA code in
// avx2/ and avx512/ with intrinsics only. docs/index.md describes the kernels.
//
// Numerics. Every fast version computes <a, b> in one fixed order per ISA: V lanes of partial sums
// over d (V = 16 for AVX-512, 8 for AVX2 and the portable version), each lane accumulated over
// chunks of V in increasing d with a fused multiply-add (plain multiply and add for the portable
// version), a zero-filled last chunk, then the lanes summed by one fixed tree
//   B_k = (l[4k] + l[4k+2]) + (l[4k+1] + l[4k+3]),   <a,b> = (B0 + B1) + (B2 + B3)   (V = 16)
//                                                     <a,b> = B0 + B1                  (V = 8)
// whatever the tile shape, the position of the pair in the tile or the entry point (ip_tile, dot,
// neg_dot_void). So within one ISA a score does not depend on how queries are batched, how the
// database is split over threads, or which index computed it: the indexes' "batched == single"
// and "1 thread == 2 threads" guarantees rest on this. Across ISAs results differ by rounding.
#pragma once

#include <cstdint>

#include "imgsim/runtime/cpu.hpp"

namespace imgsim::kernels {

// out[i * ldo + j] = <q_i, x_j> = sum_{t < d} q[i * ldq + t] * x[j * ldx + t], for i < nq,
// j < nx. Row-major, any alignment, any strides (ldq, ldx >= d). d == 0 writes zeros. The rows
// of q should fit in L1 (the fast versions re-read them for every group of database rows).
// Single-threaded, no allocation, never throws.
using IpTileFn = void (*)(const float* q, int64_t nq, int64_t ldq, const float* x, int64_t nx,
                          int64_t ldx, int64_t d, float* out, int64_t ldo);
// <a, b> over d floats.
using DotFn = float (*)(const float* a, const float* b, int64_t d);
// out[j] = sum_{t < d} q[t] * float(x[j * ldx + t]), j < nx: one query against rows stored as
// IEEE binary16 (FlatIndex's half-size prefilter copy). Any fixed order: the caller bounds the
// error (docs/index.md). Single-threaded, no allocation, never throws.
using IpF16Fn = void (*)(const float* q, const uint16_t* x, int64_t nx, int64_t ldx, int64_t d,
                         float* out);
// -<a, b> with d = *static_cast<const size_t*>(param): the distance-function signature of graph
// libraries (hnswlib's DISTFUNC), so a graph index ranks by exactly the flat index's scores.
using NegDotVoidFn = float (*)(const void* a, const void* b, const void* param);

struct DistanceKernels {
  Isa isa;
  IpTileFn ip_tile;
  DotFn dot;
  NegDotVoidFn neg_dot_void;
  IpF16Fn ip_f16;
  const char* ip_tile_name;  // f32_ip_<RQ>x<RX>__<isa>: the main register tile
};

// The table for active_isa() (follows set_max_isa()).
const DistanceKernels& distance_kernels();
// The table for a given ISA; throws InvalidArgument if isa > detected_isa().
const DistanceKernels& distance_kernels_for(Isa isa);

// IEEE binary16 <-> binary32, round to nearest even, overflow to infinity (what F16C and AVX-512
// conversions do). Baseline-compiled (ref/distance_ref.cpp), for any ISA's callers.
uint16_t f32_to_f16(float f);
float f16_to_f32(uint16_t h);

namespace ref {
// The oracle: sequential sum in double, rounded to float at the end.
void ip_tile(const float* q, int64_t nq, int64_t ldq, const float* x, int64_t nx, int64_t ldx,
             int64_t d, float* out, int64_t ldo);
float dot(const float* a, const float* b, int64_t d);
void ip_f16(const float* q, const uint16_t* x, int64_t nx, int64_t ldx, int64_t d, float* out);
}  // namespace ref

// One namespace per instruction set (portable/distance_portable.cpp, avx2/, avx512/).
// distance_compiled() is false when the build could not compile that ISA's code; the table then
// falls back to the next ISA down.
namespace portable {
void ip_tile(const float* q, int64_t nq, int64_t ldq, const float* x, int64_t nx, int64_t ldx,
             int64_t d, float* out, int64_t ldo);
float dot(const float* a, const float* b, int64_t d);
float neg_dot_void(const void* a, const void* b, const void* param);
void ip_f16(const float* q, const uint16_t* x, int64_t nx, int64_t ldx, int64_t d, float* out);
bool distance_compiled();
}  // namespace portable
namespace avx2 {
void ip_tile(const float* q, int64_t nq, int64_t ldq, const float* x, int64_t nx, int64_t ldx,
             int64_t d, float* out, int64_t ldo);
float dot(const float* a, const float* b, int64_t d);
float neg_dot_void(const void* a, const void* b, const void* param);
void ip_f16(const float* q, const uint16_t* x, int64_t nx, int64_t ldx, int64_t d, float* out);
bool distance_compiled();
}  // namespace avx2
namespace avx512 {
void ip_tile(const float* q, int64_t nq, int64_t ldq, const float* x, int64_t nx, int64_t ldx,
             int64_t d, float* out, int64_t ldo);
float dot(const float* a, const float* b, int64_t d);
float neg_dot_void(const void* a, const void* b, const void* param);
void ip_f16(const float* q, const uint16_t* x, int64_t nx, int64_t ldx, int64_t d, float* out);
bool distance_compiled();
}  // namespace avx512

}  // namespace imgsim::kernels
