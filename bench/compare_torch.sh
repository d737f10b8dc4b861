#!/usr/bin/env bash
# Runs the seed and Fashion-MNIST models (with --layers, the layers; with --epoch, a Fashion-MNIST
# training epoch) in imgsim and in PyTorch 1.13 (Debian python3-torch), same threads and batch,
# in one go, and prints ratios (docs/benchmarks.md).
#
#   bench/compare_torch.sh [--build-dir DIR] [--threads 1 2] [--models seed fmnist] [--layers]
#                          [--epoch] [--rounds 2] [--channels-last] ...   (see bench/compare_torch.py)
#
# PyTorch is made fast and fair as measured on this machine: the system /usr/bin/python3; the
# pthread build of OpenBLAS (apt-get install libopenblas0-pthread; scripts/install-deps.sh bench)
# put first on LD_LIBRARY_PATH with one OpenBLAS thread (torch's own threads do the parallel
# work); no OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE overrides; torch.set_num_threads(T); and glibc
# malloc kept from returning memory to the kernel between steps (MALLOC_MMAP_MAX_=0,
# MALLOC_TRIM_THRESHOLD_), which otherwise costs page faults on every step. The same malloc
# settings apply to imgsim, which does not allocate once trained a step.
# Build first: ninja -C build-perf imgsim-bench-model bench_layers
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if ! /usr/bin/python3 -c 'import torch' 2>/dev/null; then
  echo "compare_torch: /usr/bin/python3 cannot import torch (Debian: apt-get install python3-torch)" >&2
  exit 2
fi
if [ ! -e /usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so.0 ]; then
  echo "compare_torch: libopenblas0-pthread is missing (scripts/install-deps.sh bench)" >&2
  exit 2
fi
unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE
export OPENBLAS_NUM_THREADS=1
export MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=100000000000
exec /usr/bin/python3 "$here/compare_torch.py" "$@"
