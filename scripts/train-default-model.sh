#!/usr/bin/env bash
# Reproduces models/default.imgsim, the model the imgsim CLI uses when --model is not given
# (docs/default-model.md): self-supervised training (NT-Xent on two near-duplicate edits of each
# photo) on the photos of the Debian packages allowed for training, with a fixed seed.
#
#   bash scripts/train-default-model.sh [--out FILE] [--threads N]
#
#   --out FILE    where the model goes (default models/default.imgsim; written atomically)
#   --threads N   training threads (default: all cores; with the fixed seed and the same ISA
#                 the model file comes out byte for byte the same for any thread count)
#
# Steps: installs what is missing (build profile plus python3), builds the imgsim CLI
# (build/release), collects the photos (scripts/fetch-photos.sh -> data/photos: 143 photos from
# opencv-doc, scratch, python3-skimage, python3-sklearn, python3-scipy, python3-pywt,
# python-matplotlib-data and libdlib19.1; 167 MB of .deb downloads, cached in data/debs), then
# trains (about 5 minutes on the development machine's 2 cores) and calibrates the
# same/different threshold on near-duplicate edits of the 14 held-out photos.
set -euo pipefail
cd "$(dirname "$0")/.."

out=models/default.imgsim
threads=$(nproc)
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "train-default-model: unknown argument '$1' (see --help)" >&2
      exit 2
      ;;
  esac
done

bash scripts/install-deps.sh build photos
dir=build/release
if [ ! -f "$dir/CMakeCache.txt" ]; then
  cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DIMGSIM_BUILD_TESTS=OFF \
    -DIMGSIM_BUILD_BENCH=OFF
fi
cmake --build "$dir" --target imgsim_cli -j "$(nproc)"
bash scripts/fetch-photos.sh --out data/photos

mkdir -p "$(dirname "$out")"
# The recipe. Input 1 x 64 x 64 (gray: colour and grayscale edits cannot move the embedding),
# four conv blocks of 32-64-128-256 filters with batch norm, global average pooling, a 128-wide
# embedding; flip averaging over left-right and top-bottom mirrors. Every option is recorded
# in the model's imgsim.train.recipe metadata.
"$dir/bin/imgsim" train --mode selfsup --data data/photos \
  --size 64 --channels 1 --width 32 --depth 1 --head gap --dim 128 --flip-average hv \
  --batch 128 --repeats 8 --epochs 40 --warmup 1 --lr 0.001 --temperature 0.1 --seed 1 \
  --val-fraction 0.1 --calibrate --calibrate-on views --pairs 2000 --target-precision 0.99 \
  --threads "$threads" -o "$out"
