// Persistent thread pool for the library's data-parallel loops (GEMM blocks, batch loops).
//
// num_threads() - 1 workers are started on first use and kept; the calling thread is the last
// worker. set_num_threads() takes effect at the next parallel_for. No thread is created per call
// and parallel_for does not allocate.
#pragma once

#include <cstdint>
#include <type_traits>

namespace imgsim::kernels {

// Runs fn(ctx, i) once for every i in [0, n), spread over the pool; returns when all are done.
// Runs everything inline on the calling thread when n == 1, num_threads() == 1, when called from
// inside a pool task (nested parallelism) or while another thread is using the pool. Tasks are
// handed out dynamically, so fn must not depend on which thread runs which i. If fn throws, the
// first exception is rethrown in the caller once the tasks already started have finished.
void parallel_for_impl(int64_t n, void (*fn)(void* ctx, int64_t i), void* ctx);

// True on a pool worker thread or on the caller while it runs parallel_for tasks.
bool in_parallel_region();

// parallel_for(n, [&](int64_t i) { ... }): the callable is passed by address, not copied.
template <class F>
void parallel_for(int64_t n, F&& fn) {
  using Fn = std::remove_reference_t<F>;
  parallel_for_impl(
      n, [](void* ctx, int64_t i) { (*static_cast<Fn*>(ctx))(i); },
      const_cast<void*>(static_cast<const void*>(&fn)));
}

}  // namespace imgsim::kernels
