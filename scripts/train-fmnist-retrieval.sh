#!/usr/bin/env bash
# Trains the Fashion-MNIST retrieval model of docs/cli.md ("Other recipes") and scores it on the
# test split (recall@1 and MAP@R, every test image queried against the other 9999): supervised
# contrastive loss on P x K batches, flips, shifts and random erasing, a fixed seed. The run is
# resumable: the state goes to OUT.ckpt after every epoch, and running the same command again
# goes on from the last finished epoch with the same bits (imgsim train --checkpoint).
#
#   bash scripts/train-fmnist-retrieval.sh [--out FILE] [--width 64] [--epochs 30]
#        [--stop-after N] [--threads N]
#
#   --out FILE      the model (default build/fmnist/supcon-wW-eE.imgsim); its checkpoint FILE.ckpt
#   --width W       filters of the first conv block (64: 1.44M parameters; 96: 3.2M)
#   --epochs E      training length (the cosine schedule spans it)
#   --stop-after N  stop after N epochs of this run, keeping the checkpoint (for sessions
#                   shorter than the training); run the command again to go on
#   --threads N     training threads (default: all cores; results do not depend on it)
#
# Time on the development machine's 2 cores: about 4 minutes an epoch at width 64 (60 000
# images), about twice that at width 96. Width 96 with 30 epochs reaches the issue's goal:
# recall@1 0.9302, MAP@R 0.8831 (docs/cli.md, "Other recipes").
set -euo pipefail
cd "$(dirname "$0")/.."

width=64
epochs=30
out=
stop_after=0
threads=$(nproc)
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --width) width=$2; shift 2 ;;
    --epochs) epochs=$2; shift 2 ;;
    --stop-after) stop_after=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "train-fmnist-retrieval: unknown argument '$1' (see --help)" >&2
      exit 2
      ;;
  esac
done
[ -n "$out" ] || out=build/fmnist/supcon-w$width-e$epochs.imgsim

bash scripts/install-deps.sh build data
dir=build/release
if [ ! -f "$dir/CMakeCache.txt" ]; then
  cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DIMGSIM_BUILD_TESTS=OFF \
    -DIMGSIM_BUILD_BENCH=OFF
fi
cmake --build "$dir" --target imgsim_cli -j "$(nproc)"
mkdir -p "$(dirname "$out")"

# The recipe: two 3x3 convolutions per block (width, 2x, 4x filters, BatchNorm, ReLU, 2x2
# pooling), a 128-wide embedding; supcon at temperature 0.1 on batches of 10 classes x 12
# images; random flips and shifts of up to 2 pixels, random erasing in half of the images; all
# 60 000 training images (no held-out part); left-right flip averaging stored in the model.
"$dir/bin/imgsim" train --mode metric --loss supcon --temperature 0.1 --augment --erase 0.5 \
  --flip-average h --width "$width" --depth 2 --epochs "$epochs" --val-fraction 0 --seed 1 \
  --checkpoint "$out.ckpt" --stop-after "$stop_after" --threads "$threads" -o "$out"
[ -f "$out" ] || exit 0 # stopped early: the checkpoint holds the run

echo "test split, the model's left-right flip averaging:"
"$dir/bin/imgsim" eval --model "$out" --threads "$threads" -q
echo "without flip averaging:"
"$dir/bin/imgsim" eval --model "$out" --flip-average none --threads "$threads" -q
