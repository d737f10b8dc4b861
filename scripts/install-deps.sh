#!/usr/bin/env bash
# Installs the Debian 12 packages imgsim needs, and only those that are missing.
#
#   scripts/install-deps.sh [PROFILE...]    # default profile: build
#   scripts/install-deps.sh --list PROFILE  # print the profile's packages and exit
#
# Profiles (they can be combined, e.g. `build data`):
#   build   compiler, CMake, Ninja, Eigen, stb, zlib, hnswlib, CLI11, nlohmann-json: enough to build
#           the library and the imgsim CLI
#   test    build + Catch2, Google Benchmark (benchmarks are compiled in CI), clang-format,
#           Clang 14 (the second compiler of the warnings-as-errors build), the Fashion-MNIST
#           data set
#   data    the Fashion-MNIST data set (/usr/share/datasets/fashion-mnist)
#   photos  what scripts/fetch-photos.sh needs to collect the allowed packages' photos (python3;
#           apt-get and dpkg-deb are in every Debian)
#   bench   build + Google Benchmark, OpenBLAS (pthread build) for bench/compare_torch.sh
#   format  clang-format
#   dev     all of the above
#
# As root it runs apt-get itself (apt-get update only when the package lists lack a package);
# otherwise it uses `sudo -n` if that works without a password, and if not it prints the exact
# command to run and exits with status 1. With everything present it only runs dpkg-query.
set -euo pipefail

profile_packages() {
  case "$1" in
    build) echo build-essential cmake ninja-build libeigen3-dev libstb-dev zlib1g-dev libhnswlib-dev libcli11-dev nlohmann-json3-dev ;;
    data) echo dataset-fashion-mnist ;;
    photos) echo python3 ;;
    bench) echo "$(profile_packages build)" libbenchmark-dev libopenblas0-pthread ;;
    format) echo clang-format ;;
    test) echo "$(profile_packages bench)" catch2 clang-format clang-14 dataset-fashion-mnist ;;
    dev) echo "$(profile_packages test)" python3 ;;
    *)
      echo "install-deps: unknown profile '$1' (build, test, data, photos, bench, format, dev)" >&2
      return 1
      ;;
  esac
}

list_only=0
profiles=()
for arg in "$@"; do
  case "$arg" in
    --list) list_only=1 ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
      exit 0
      ;;
    *) profiles+=("$arg") ;;
  esac
done
[ ${#profiles[@]} -gt 0 ] || profiles=(build)

wanted=()
for p in "${profiles[@]}"; do
  pkgs=$(profile_packages "$p") || exit 2
  for pkg in $pkgs; do
    case " ${wanted[*]-} " in *" $pkg "*) ;; *) wanted+=("$pkg") ;; esac
  done
done
if [ "$list_only" = 1 ]; then
  echo "${wanted[*]}"
  exit 0
fi

command -v dpkg-query >/dev/null || {
  echo "install-deps: dpkg-query not found; this script is for Debian 12 (bookworm)" >&2
  exit 2
}

missing=()
for pkg in "${wanted[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
  [ "$status" = installed ] || missing+=("$pkg")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#wanted[@]} packages for '${profiles[*]}' are installed"
  exit 0
fi

if [ "$(id -u)" = 0 ]; then
  sudo=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  sudo=(sudo -n)
else
  echo "install-deps: missing Debian packages: ${missing[*]}" >&2
  echo "install-deps: run this as an administrator, then run this script again:" >&2
  echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}"
  exit 1
fi

apt_get() { "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q "$@"; }

# The package lists are refreshed only if one of the missing packages has no install candidate
# (fresh machine, or lists that predate a package).
need_update=0
for pkg in "${missing[@]}"; do
  candidate=$(apt-cache policy "$pkg" 2>/dev/null | sed -n 's/^ *Candidate: //p')
  if [ -z "$candidate" ] || [ "$candidate" = "(none)" ]; then
    need_update=1
    break
  fi
done

echo "install-deps: installing ${missing[*]}"
start=$SECONDS
if [ "$need_update" = 1 ]; then
  apt_get update
fi
if ! apt_get install -y --no-install-recommends "${missing[@]}"; then
  # Stale lists point at files the mirror no longer has: refresh once and retry.
  [ "$need_update" = 0 ] || exit 1
  apt_get update
  apt_get install -y --no-install-recommends "${missing[@]}"
fi
echo "install-deps: installed ${#missing[@]} packages in $((SECONDS - start)) s"
