// Replaces the global operator new and delete of a test program to count allocations, so a
// test can check that a hot path (a training step, a loss) allocates nothing once planned.
// Include it in exactly one translation unit of a test executable.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <new>

#include "imgsim/tensor.hpp"

// Counts every allocation through the global operator new of this test program, so that the
// no-allocation rule of forward_backward can be checked for std::vector scratch too. Every
// non-aligned form is replaced, so that each allocation and its release meet in malloc / free
// (also under AddressSanitizer, which checks the pairing). Not inlined: GCC would otherwise see
// free() applied to what operator new returned (-Wmismatched-new-delete).
namespace imgsim::testing {
// Number of operator new calls of this program so far.
inline std::atomic<int64_t> g_allocations{0};

// What f() allocated: Tensor buffers (Tensor::allocation_count) and operator new calls.
struct Allocations {
  int64_t tensors = 0, news = 0;
};
template <class F>
Allocations allocations_during(F&& f) {
  const int64_t tensors = Tensor::allocation_count(), news = g_allocations.load();
  f();
  return {Tensor::allocation_count() - tensors, g_allocations.load() - news};
}
}  // namespace imgsim::testing

namespace {

[[gnu::noinline]] void* counted_malloc(std::size_t n) noexcept {
  imgsim::testing::g_allocations.fetch_add(1, std::memory_order_relaxed);
  return std::malloc(n ? n : 1);
}
}  // namespace

[[gnu::noinline]] void* operator new(std::size_t n) {
  if (void* p = counted_malloc(n)) return p;
  throw std::bad_alloc();
}
[[gnu::noinline]] void* operator new[](std::size_t n) {
  if (void* p = counted_malloc(n)) return p;
  throw std::bad_alloc();
}
[[gnu::noinline]] void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  return counted_malloc(n);
}
[[gnu::noinline]] void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
  return counted_malloc(n);
}
[[gnu::noinline]] void operator delete(void* p) noexcept {
  std::free(p);
}
[[gnu::noinline]] void operator delete[](void* p) noexcept {
  std::free(p);
}
[[gnu::noinline]] void operator delete(void* p, std::size_t /*n*/) noexcept {
  std::free(p);
}
[[gnu::noinline]] void operator delete[](void* p, std::size_t /*n*/) noexcept {
  std::free(p);
}
[[gnu::noinline]] void operator delete(void* p, const std::nothrow_t&) noexcept {
  std::free(p);
}
[[gnu::noinline]] void operator delete[](void* p, const std::nothrow_t&) noexcept {
  std::free(p);
}
