#!/usr/bin/env bash
# imgsim's main job, from a fresh Debian 12 machine: installs what is missing, builds the
# library and the imgsim CLI (Release), then runs the similarity job on real photos with the
# shipped default model (scripts/demo.sh): compares an edited copy with its original, searches a
# small collection with edited copies, groups near-duplicates, and scores every edited copy.
#
#   bash scripts/run.sh                        # the similarity demo (data/demo)
#   bash scripts/run.sh --fashion-mnist [ARGS] # the Fashion-MNIST CNN example instead (15 epochs;
#                                              # ARGS as in examples/fashion_mnist/README.md)
set -euo pipefail
cd "$(dirname "$0")/.."
dir=build/release
configure() {
  if [ ! -f "$dir/CMakeCache.txt" ]; then
    cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DIMGSIM_BUILD_TESTS=OFF \
      -DIMGSIM_BUILD_BENCH=OFF -DIMGSIM_BUILD_EXAMPLES=ON
  fi
}
if [ "${1-}" = --fashion-mnist ]; then
  shift
  bash scripts/install-deps.sh build data
  configure
  cmake --build "$dir" --target example_fashion_mnist example_seed_model -j "$(nproc)"
  exec "$dir/examples/fashion_mnist" "$@"
fi
bash scripts/install-deps.sh build photos
configure
cmake --build "$dir" --target imgsim_cli imgsim-ndbench-build -j "$(nproc)"
exec bash scripts/demo.sh "$dir" "$@"
