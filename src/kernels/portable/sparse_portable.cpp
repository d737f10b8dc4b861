// Portable gathered accumulation (kernels.hpp), the Isa::scalar entry. The reference
// (ref/sparse_ref.cpp) sums one float at a time over all positions; here each run is cut into
// blocks of 16, then 4, then 1 floats, and a block's sums over all positions are kept in a fixed
// size local array (registers, vectorised with the baseline flags) before being added to acc.
#include <cstdint>

#include "kernels/kernels.hpp"

namespace imgsim::kernels::portable {

namespace {

// acc[c] += sum_i g[i] * x[off[i] + c] for c < B.
template <int B>
void gather_block(int64_t count, const float* g, const int64_t* off, const float* x, float* acc) {
  float a[B] = {};
  for (int64_t i = 0; i < count; ++i) {
    const float gi = g[i];
    const float* p = x + off[i];
    for (int c = 0; c < B; ++c) a[c] += gi * p[c];
  }
  for (int c = 0; c < B; ++c) acc[c] += a[c];
}

}  // namespace

void gather_acc(int64_t count, const float* g, const int64_t* off, const float* x,
                const int64_t* seg, int64_t nseg, int64_t n, float* acc) {
  for (int64_t s = 0; s < nseg; ++s) {
    const float* xs = x + seg[s];
    float* as = acc + s * n;
    int64_t c = 0;
    for (; c + 16 <= n; c += 16) gather_block<16>(count, g, off, xs + c, as + c);
    for (; c + 4 <= n; c += 4) gather_block<4>(count, g, off, xs + c, as + c);
    for (; c < n; ++c) gather_block<1>(count, g, off, xs + c, as + c);
  }
}

}  // namespace imgsim::kernels::portable
