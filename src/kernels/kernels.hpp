// Internal kernel interface: free functions over raw pointers, single-threaded, no allocation,
// no exceptions. Each entry has a scalar reference in ref/ (the oracle and the fallback) and
// may have AVX2 and AVX-512 versions, chosen once at run time (registry.cpp).
#pragma once

#include <cstdint>

#include "imgsim/runtime/cpu.hpp"

namespace imgsim::kernels {

// Row-major C[M x N] = alpha * op(A)[M x K] * op(B)[K x N] + beta * C.
// op(A) = A (lda >= K) or A^T (A stored K x M, lda >= M); likewise B. beta == 0 ignores C's
// previous contents (NaN-safe).
using SgemmFn = void (*)(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                         const float* A, int64_t lda, const float* B, int64_t ldb, float beta,
                         float* C, int64_t ldc);

struct KernelTable {
  Isa isa;
  SgemmFn sgemm;
};

// The table for active_isa(); looked up once, re-looked up after set_max_isa().
const KernelTable& table();
// The table for a given ISA (must be <= detected_isa()); for tests and benchmarks.
const KernelTable& table_for(Isa isa);

namespace ref {
void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
           const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
           int64_t ldc);
}  // namespace ref

// Convenience wrapper over table().sgemm.
inline void sgemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                  int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  table().sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

}  // namespace imgsim::kernels
