#!/usr/bin/env bash
# Formats imgsim's C++ sources (include/ src/ tests/ bench/ examples/ tools/) with clang-format
# and the project's .clang-format; installs Debian's clang-format if it is missing.
#
#   scripts/format.sh          # rewrite the files in place
#   scripts/format.sh --check  # change nothing: list the files that need formatting, exit 1 if any
set -euo pipefail
cd "$(dirname "$0")/.."

check=0
case "${1-}" in
  "") ;;
  --check) check=1 ;;
  *)
    echo "usage: scripts/format.sh [--check]" >&2
    exit 2
    ;;
esac

command -v clang-format >/dev/null || bash scripts/install-deps.sh format

dirs=()
for d in include src tests bench examples tools; do [ -d "$d" ] && dirs+=("$d"); done
mapfile -d '' files < <(find "${dirs[@]}" -type f \
  \( -name '*.cpp' -o -name '*.hpp' -o -name '*.h' -o -name '*.cc' \) -print0 | sort -z)
if [ ${#files[@]} -eq 0 ]; then
  echo "format: no C++ files found"
  exit 0
fi

if [ "$check" = 0 ]; then
  clang-format -i "${files[@]}"
  echo "format: formatted ${#files[@]} files with $(clang-format --version)"
  exit 0
fi

bad=()
for f in "${files[@]}"; do
  clang-format --dry-run --Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done
if [ ${#bad[@]} -gt 0 ]; then
  echo "format: ${#bad[@]} of ${#files[@]} files are not clang-formatted:" >&2
  printf '  %s\n' "${bad[@]}" >&2
  clang-format --dry-run --Werror "${bad[0]}" 2>&1 | head -n 20 >&2 || true
  echo "format: run 'bash scripts/format.sh' to fix them" >&2
  exit 1
fi
echo "format: all ${#files[@]} files are clang-formatted"
