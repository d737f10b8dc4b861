#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run):
#   1. installs the missing Debian packages of the `test` profile (scripts/install-deps.sh)
#   2. checks the C++ formatting (scripts/format.sh --check)
#   3. Release build with warnings as errors into BUILD_DIR, then every ctest test, including
#      the package consumer builds (tests/consumer/)
#   4. Clang 14 Release build with warnings as errors into BUILD_DIR-clang (everything: library,
#      tests, benchmarks, examples, tools, CLI), then every test not labelled "slow"
#   5. ASan + UBSan build (Debug at -Og) into BUILD_DIR-asan, then every test not labelled "slow"
#   6. on a CPU without AVX-512: a Release build with the AVX-512 kernels emulated
#      (IMGSIM_EMULATE_AVX512, src/kernels/avx512/emulate.hpp) into BUILD_DIR-avx512emu, then
#      every test not labelled "slow": the AVX-512 code paths checked against the references
# and prints one summary line. Later steps run even if an earlier one fails; the exit status is
# non-zero if any failed.
#
#   scripts/test.sh [--no-sanitize] [--no-clang] [--no-format] [--no-emulate] [BUILD_DIR]
#                                               # BUILD_DIR defaults to build/ci
#   IMGSIM_JOBS=N   build and test parallelism (default: the number of cores)
set -euo pipefail
cd "$(dirname "$0")/.."

sanitize=1
clang=1
format=1
emulate=1
dir=build/ci
for arg in "$@"; do
  case "$arg" in
    --no-sanitize) sanitize=0 ;;
    --no-clang) clang=0 ;;
    --no-format) format=0 ;;
    --no-emulate) emulate=0 ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
      exit 0
      ;;
    -*)
      echo "test.sh: unknown option $arg" >&2
      exit 2
      ;;
    *) dir=$arg ;;
  esac
done
asan_dir=${dir%/}-asan
clang_dir=${dir%/}-clang
emu_dir=${dir%/}-avx512emu
jobs=${IMGSIM_JOBS:-$(nproc)}
t_start=$SECONDS

bash scripts/install-deps.sh test
t_deps=$((SECONDS - t_start))

summary=()
failed=0
# step NAME COMMAND...: runs COMMAND, records its status and time.
step() {
  local name=$1 t0=$SECONDS
  shift
  echo
  echo "==> $name"
  if "$@"; then
    summary+=("$name ok $((SECONDS - t0))s")
  else
    summary+=("$name FAILED $((SECONDS - t0))s")
    failed=1
    return 1
  fi
}

# configure DIR ARGS...: the generator is chosen only when DIR is new (Ninja if installed).
configure() {
  local d=$1
  shift
  local gen=()
  if [ ! -f "$d/CMakeCache.txt" ] && command -v ninja >/dev/null; then gen=(-G Ninja); fi
  cmake -S . -B "$d" "${gen[@]}" "$@" && cmake --build "$d" --parallel "$jobs"
}

run_tests() {
  local d=$1
  shift
  ctest --test-dir "$d" --output-on-failure --no-tests=error --timeout 900 \
    --parallel "$jobs" "$@"
}

if [ "$format" = 1 ]; then
  step format bash scripts/format.sh --check || true
fi

if step release-build configure "$dir" -DCMAKE_BUILD_TYPE=Release -DIMGSIM_WERROR=ON; then
  step release-tests run_tests "$dir" || true
fi

if [ "$clang" = 1 ]; then
  if step clang-build configure "$clang_dir" -DCMAKE_BUILD_TYPE=Release -DIMGSIM_WERROR=ON \
    -DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14; then
    step clang-tests run_tests "$clang_dir" --label-exclude slow || true
  fi
fi

if [ "$sanitize" = 1 ]; then
  # Warnings are checked by the Release build; GCC's sanitizer instrumentation gives spurious
  # ones, so they are not errors here. Benchmarks and examples are not rebuilt. -Og (asserts on)
  # compiles in about half the time of -O1 under ASan+UBSan (Catch2's main alone: 40 s vs 67 s
  # of CPU) and runs the tests nearly as fast.
  if step asan-build configure "$asan_dir" -DCMAKE_BUILD_TYPE=Debug \
    "-DCMAKE_CXX_FLAGS_DEBUG=-Og -g" -DIMGSIM_SANITIZE=ON -DIMGSIM_WERROR=OFF \
    -DIMGSIM_BUILD_BENCH=OFF -DIMGSIM_BUILD_EXAMPLES=OFF; then
    ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:strict_string_checks=1:check_initialization_order=1} \
      UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
      step asan-tests run_tests "$asan_dir" --label-exclude slow || true
  fi
fi

# Where the CPU runs the AVX-512 kernels itself (F, BW, DQ and VL, as cpu_features asks), the
# release tests above already ran them.
avx512_cpu() {
  local flag
  for flag in avx512f avx512bw avx512dq avx512vl; do
    grep -qw "$flag" /proc/cpuinfo 2>/dev/null || return 1
  done
}
if [ "$emulate" = 1 ] && ! avx512_cpu; then
  if step avx512emu-build configure "$emu_dir" -DCMAKE_BUILD_TYPE=Release -DIMGSIM_WERROR=ON \
    -DIMGSIM_EMULATE_AVX512=ON -DIMGSIM_BUILD_BENCH=OFF -DIMGSIM_BUILD_EXAMPLES=OFF \
    -DIMGSIM_BUILD_TOOLS=OFF -DIMGSIM_INSTALL=OFF; then
    step avx512emu-tests run_tests "$emu_dir" --label-exclude slow || true
  fi
fi

echo
status=PASSED
[ "$failed" = 0 ] || status=FAILED
echo "test.sh: $status in $((SECONDS - t_start))s (deps ${t_deps}s; $(
  IFS=,
  echo "${summary[*]}" | sed 's/,/, /g'
))"
exit "$failed"
