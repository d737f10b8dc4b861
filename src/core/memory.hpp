// Large buffers and the TLB (docs/design.md, "Memory").
//
// The activations, gradients and argmaxes of a training step are tens of megabytes each. With
// 4 KiB pages every 4 KiB of them needs its own TLB entry, and a miss costs a page walk (two
// levels of tables in a virtual machine); a layer that streams 100 MB through them spent a fifth
// of its time there. Buffers from 2 MiB on are therefore advised for transparent huge pages
// before their first touch, which Linux honours in its default "madvise" mode and ignores where
// huge pages are off.
#pragma once

#include <cstddef>

namespace imgsim::detail {

constexpr std::size_t kHugePage = std::size_t{2} << 20;

// Advises [p, p + bytes) for huge pages (the 4 KiB-aligned part of it). Only pages not yet
// touched are affected; a no-op on systems without madvise.
void advise_huge_pages(void* p, std::size_t bytes) noexcept;

// bytes (> 0) of uninitialised memory, 64-byte aligned; from kHugePage on, kHugePage-aligned, a
// whole number of huge pages and advised. Null if the allocation fails. Free with std::free.
void* allocate_large(std::size_t bytes) noexcept;

}  // namespace imgsim::detail
