// Internal kernel interface: free functions over raw pointers, no allocation on the hot path, no
// exceptions. Each entry has a scalar reference in ref/ (the oracle) and per-ISA versions chosen
// at run time (registry.cpp): a portable blocked version (baseline flags, Isa::scalar), AVX2+FMA
// and AVX-512. docs/kernels.md describes dispatch, naming, blocking and tolerances.
#pragma once

#include <cstdint>

#include "imgsim/runtime/cpu.hpp"

namespace imgsim::kernels {

// Row-major C[M x N] = alpha * op(A)[M x K] * op(B)[K x N] + beta * C.
// op(A) = A (lda >= K) or A^T (A stored K x M, lda >= M); likewise B. beta == 0 ignores C's
// previous contents (NaN-safe). The fast versions may split the work over the thread pool
// (thread_pool.hpp) when the problem is large; the result does not depend on the thread count.
using SgemmFn = void (*)(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                         const float* A, int64_t lda, const float* B, int64_t ldb, float beta,
                         float* C, int64_t ldc);

struct KernelTable {
  Isa isa;
  SgemmFn sgemm;
  const char* sgemm_name;  // microkernel name, f32_gemm_<MR>x<NR>__<isa> (docs/kernels.md)
};

// The table for active_isa(); follows set_max_isa() (tables are static, one per ISA).
const KernelTable& table();
// The table for a given ISA; throws InvalidArgument if isa > detected_isa(). For tests and
// benchmarks.
const KernelTable& table_for(Isa isa);

namespace ref {
// Naive triple loop: the oracle the fast GEMMs are tested against. Single-threaded.
void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
           int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);
}  // namespace ref

// Blocked GEMMs, one namespace per instruction set (sgemm_portable.cpp, avx2/, avx512/).
// compiled() is false when the build could not compile that ISA's code (e.g. IMGSIM_NATIVE on an
// older CPU); the registry then never selects it.
namespace portable {
void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
           int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);
bool compiled();
const char* sgemm_name();
}  // namespace portable
namespace avx2 {
void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
           int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);
bool compiled();
const char* sgemm_name();
}  // namespace avx2
namespace avx512 {
void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
           int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);
bool compiled();
const char* sgemm_name();
}  // namespace avx512

// Convenience wrapper over table().sgemm.
inline void sgemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                  int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  table().sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

}  // namespace imgsim::kernels
