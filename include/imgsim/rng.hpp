// Rng: a small seeded random generator (xoshiro256**) with its own uniform and normal
// transforms, so that the same seed gives the same numbers with every compiler and library.
#pragma once

#include <cstdint>

namespace imgsim {

class Rng {
 public:
  explicit Rng(uint64_t seed = 0x1234abcdULL);
  uint64_t next_u64();
  // Uniform in [0, 1).
  float uniform();
  // Uniform in [lo, hi).
  float uniform(float lo, float hi);
  // Standard normal (Box-Muller; caches the second value).
  float normal();
  // Uniform integer in [0, n); n > 0.
  uint64_t below(uint64_t n);
  // A generator seeded from this one: independent streams for workers or sub-tasks.
  Rng split();

  // The whole state, to save and restore a generator (training checkpoints): a generator given
  // another's state draws the same numbers from then on.
  struct State {
    uint64_t s[4] = {0, 0, 0, 0};
    bool has_spare = false;
    float spare = 0.0f;
  };
  State state() const;
  // InvalidArgument for the all-zero word state, which xoshiro never leaves.
  void set_state(const State& st);

 private:
  uint64_t s_[4];
  bool has_spare_ = false;
  float spare_ = 0.0f;
};

}  // namespace imgsim
