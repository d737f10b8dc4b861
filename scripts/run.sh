#!/usr/bin/env bash
# imgsim's main job, from a fresh Debian 12 machine: installs what is missing, builds the
# library and its examples (Release), trains the Fashion-MNIST CNN example and prints its test
# accuracy. Extra arguments go to the example (see examples/fashion_mnist/README.md), e.g.
#
#   bash scripts/run.sh                 # 15 epochs, plain CNN
#   bash scripts/run.sh --bn --dropout 0.3
#   bash scripts/run.sh --epochs 1 --limit 5000     # a one-minute smoke run
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh build data
dir=build/release
if [ ! -f "$dir/CMakeCache.txt" ]; then
  cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DIMGSIM_BUILD_TESTS=OFF \
    -DIMGSIM_BUILD_BENCH=OFF -DIMGSIM_BUILD_EXAMPLES=ON
fi
cmake --build "$dir" --target example_fashion_mnist example_seed_model -j "$(nproc)"
exec "$dir/examples/fashion_mnist" "$@"
