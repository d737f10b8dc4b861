#!/usr/bin/env bash
# The similarity job on real photos with the shipped default model (models/default.imgsim),
# run by scripts/run.sh after the build:
#   1. collects 18 photos from three allowed Debian packages (scripts/fetch-photos.sh:
#      libdlib19.1, python3-sklearn, python-matplotlib-data; 8.5 MB of .deb downloads, cached)
#   2. makes edited copies of them (imgsim-ndbench-build: crops, resizes, JPEG, rotations, flips,
#      colour, grayscale, blur, text and logo watermarks, borders and combinations) and a small
#      collection (the originals plus distractors)
#   3. imgsim compare: an edited copy against its original, and against another photo
#   4. imgsim index build + imgsim search: the collection searched with three edited copies
#   5. imgsim dedup: the near-duplicate groups of a folder mixing originals and copies
#   6. imgsim eval --bench: the scores over every edited copy (micro-AP, recall@1)
#
#   scripts/demo.sh BUILD_DIR [WORK_DIR]     # WORK_DIR defaults to data/demo
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:?usage: scripts/demo.sh BUILD_DIR [WORK_DIR]}
work=${2:-data/demo}
imgsim=$build/bin/imgsim
ndbench_build=$build/tools/imgsim-ndbench-build
export IMGSIM_MODEL=${IMGSIM_MODEL:-models/default.imgsim}

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
run() {
  printf '$ %s\n' "$*"
  "$@"
}

say "Photos from Debian packages"
bash scripts/fetch-photos.sh --packages "libdlib19.1 python3-sklearn python-matplotlib-data" \
  --out "$work/photos" | tail -n 1

say "Edited copies and a small collection"
run "$ndbench_build" --photos "$work/photos" --out "$work/bench" --seed 7 --format jpg \
  --quality 90 | tail -n 3

# An edited copy (several edits combined) with its original, and a photo that is not it.
gt=$work/bench/ground_truth.csv
line=$(awk -F, 'NR > 1 && $4 == "combined" && $3 != "" { print; exit }' "$gt")
query=$work/bench/$(cut -d, -f2 <<<"$line")
edits=$(cut -d, -f5 <<<"$line")
db_id=$(cut -d, -f3 <<<"$line")
original=$work/bench/$(awk -F, -v id="$db_id" '$1 == id { print $2 }' "$work/bench/db.csv")
other=$work/bench/$(awk -F, -v id="$db_id" 'NR > 1 && $1 != id { print $2; exit }' \
  "$work/bench/db.csv")

say "Compare an edited copy ($edits) with its original"
run "$imgsim" compare "$query" "$original"
say "Compare the same copy with another photo"
run "$imgsim" compare "$query" "$other"

say "Index the collection and search it with edited copies"
run "$imgsim" index build "$work/bench/db" -o "$work/collection.index" -q
mapfile -t queries < <(awk -F, 'NR > 1 && $3 != "" && ($4 == "crop" || $4 == "flip" ||
  $4 == "text") { print $2 }' "$gt" | head -n 3)
for i in "${!queries[@]}"; do queries[i]=$work/bench/${queries[i]}; done
run "$imgsim" search "$work/collection.index" "${queries[@]}" -k 3

say "Near-duplicate groups in a folder of originals and copies"
mix=$work/mixed
rm -rf "$mix"
mkdir -p "$mix"
awk -F, 'NR > 1 && $3 != "" { print $2 }' "$gt" | head -n 12 |
  while read -r f; do cp "$work/bench/$f" "$mix/"; done
cp "$work/bench/db/"* "$mix/"
run "$imgsim" dedup "$mix" --format csv -o "$work/dedup.csv" --report "$work/dedup.html" -q
head -n 25 "$work/dedup.csv"
echo "(all groups: $work/dedup.csv; thumbnails side by side: $work/dedup.html)"

say "Scores over every edited copy"
run "$imgsim" eval --bench "$work/bench" -q
