#!/usr/bin/env bash
# Collects the natural photographs of the Debian packages allowed for training and tuning imgsim
# and for its near-duplicate benchmark (docs/ndbench.md, "Photos"), with a manifest.
#
#   scripts/fetch-photos.sh [--out DIR] [--cache DIR] [--install] [--min-side N] [--sizes]
#                           [--keep-extracted] [--packages "PKG ..."]
#
#   --out DIR     where the photos go (default data/photos; git-ignored): DIR/PACKAGE/NAME,
#                 DIR/manifest.tsv (path, package, width, height, bytes, sha256, origin) and
#                 DIR/rejected.tsv (every file looked at and not kept, with the reason)
#   --cache DIR   where downloaded .deb files are kept and extracted (default data/debs)
#   --install     install the missing packages with apt-get (as root; otherwise print the
#                 command and exit 1) instead of downloading and extracting their .deb files
#   --min-side N  shortest side a photo must have (default 200)
#   --sizes       only print each package's version, download and installed size, and exit
#   --keep-extracted  keep the unpacked .deb trees under the cache folder (default: removed
#                 after the photos are copied; the .deb files stay, so a rerun downloads nothing)
#   --packages "PKG ..."  only these of the allowed packages (default: all eight); e.g. the
#                 README's demo takes "libdlib19.1 python3-sklearn python-matplotlib-data"
#                 (18 photos, 8.5 MB of downloads)
#
# A package that is already installed is read where it is. Otherwise, by default, its .deb is
# fetched with `apt-get download` (no root needed, no dependencies pulled in: python3-skimage
# alone would bring matplotlib, scipy, networkx, ... and opencv-doc installs 270 MB of HTML) and
# unpacked with `dpkg-deb -x` under the cache folder; nothing is installed. The selection rules
# are in scripts/collect-photos.py. The same photos come out either way.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(opencv-doc scratch python3-skimage python3-sklearn python3-scipy python3-pywt
  python-matplotlib-data libdlib19.1)

out=data/photos
cache=data/debs
install=0
min_side=200
sizes_only=0
keep_extracted=0
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --cache) cache=$2; shift 2 ;;
    --install) install=1; shift ;;
    --min-side) min_side=$2; shift 2 ;;
    --sizes) sizes_only=1; shift ;;
    --keep-extracted) keep_extracted=1; shift ;;
    --packages)
      read -r -a chosen <<<"$2"
      for c in "${chosen[@]}"; do
        case " ${PACKAGES[*]} " in
          *" $c "*) ;;
          *)
            echo "fetch-photos: '$c' is not one of the allowed packages: ${PACKAGES[*]}" >&2
            exit 2
            ;;
        esac
      done
      PACKAGES=("${chosen[@]}")
      shift 2
      ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "fetch-photos: unknown argument '$1' (see --help)" >&2
      exit 2
      ;;
  esac
done

command -v python3 >/dev/null || {
  echo "fetch-photos: python3 is needed (apt-get install python3)" >&2
  exit 1
}

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

# apt-cache needs package lists; as root refresh them once if they are missing.
if ! apt-cache show "${PACKAGES[0]}" >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
  else
    echo "fetch-photos: no package lists; run as root: apt-get update" >&2
    exit 1
  fi
fi

printf '%-24s %-22s %12s %12s %s\n' package version download installed state
for p in "${PACKAGES[@]}"; do
  info=$(apt-cache show --no-all-versions "$p")
  version=$(sed -n 's/^Version: //p' <<<"$info" | head -n1)
  size=$(sed -n 's/^Size: //p' <<<"$info" | head -n1)
  isize=$(sed -n 's/^Installed-Size: //p' <<<"$info" | head -n1)
  state=absent
  installed "$p" && state=installed
  printf '%-24s %-22s %9d kB %9d kB %s\n' "$p" "$version" $((size / 1024)) "$isize" "$state"
done
[ "$sizes_only" = 1 ] && exit 0

if [ -d "$out" ] && [ -n "$(ls -A "$out")" ] && [ ! -f "$out/manifest.tsv" ]; then
  echo "fetch-photos: $out is not empty and has no manifest.tsv; choose another --out" >&2
  exit 1
fi

missing=()
for p in "${PACKAGES[@]}"; do installed "$p" || missing+=("$p"); done
if [ "$install" = 1 ] && [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
  else
    echo "fetch-photos: run as root:" >&2
    echo "  apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 1
  fi
  missing=()
fi

roots=()
for p in "${PACKAGES[@]}"; do
  case " ${missing[*]-} " in
    *" $p "*)
      mkdir -p "$cache"
      deb=$(find "$cache" -maxdepth 1 -name "${p}_*.deb" | sort | tail -n1)
      if [ -z "$deb" ]; then
        echo "fetch-photos: downloading $p" >&2
        (cd "$cache" && apt-get download -q "$p" >/dev/null 2>&1) ||
          (cd "$cache" && apt-get download "$p")
        deb=$(find "$cache" -maxdepth 1 -name "${p}_*.deb" | sort | tail -n1)
      fi
      dir="$cache/root/$p"
      if [ ! -f "$dir/.extracted" ] || [ "$dir/.extracted" -ot "$deb" ]; then
        rm -rf "$dir"
        mkdir -p "$dir"
        dpkg-deb -x "$deb" "$dir"
        touch "$dir/.extracted"
      fi
      roots+=("$p=$dir")
      ;;
    *) roots+=("$p=/") ;;
  esac
done

python3 scripts/collect-photos.py "$out" "$min_side" "${roots[@]}"
[ "$keep_extracted" = 1 ] || rm -rf "$cache/root"
