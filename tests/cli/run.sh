#!/usr/bin/env bash
# End-to-end test of the imgsim program, run by ctest (tests/cli/tests.cmake):
#
#   run.sh IMGSIM MAKE_IMAGES WORKDIR [NDBENCH_SCORE]
#
# Generates small image sets and a tiny near-duplicate benchmark (make_images.cpp), trains a
# tiny metric model in a few seconds, then runs compare, embed, index build/add/info/remove,
# search, dedup, eval (labelled set, and --bench: with NDBENCH_SCORE, the imgsim-ndbench-score
# program, its table from the written predictions must be the same) and the other training
# modes with --json and checks their outputs with greps; then the error paths (missing file,
# corrupt model, corrupt index, empty folder, no model, usage errors), which must exit
# non-zero with exactly one line "imgsim: ..." on stderr and never crash. Every check runs; the
# exit status is 1 if any failed.
#
# pass() only echoes, so `check && pass ... || fail ...` is an if-then-else here.
# shellcheck disable=SC2015
set -u
IMGSIM=$1
MAKE_IMAGES=$2
W=$3
SCORER=${4:-}
rm -rf "$W"
mkdir -p "$W"
cd "$W" || exit 1
unset IMGSIM_MODEL
export IMGSIM_NUM_THREADS=2

failures=0
fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}
pass() { echo "ok: $*"; }

# run NAME CMD...: runs CMD with stdout in NAME.out, stderr in NAME.err, status in $rc.
run() {
  local name=$1
  shift
  "$@" >"$name.out" 2>"$name.err"
  rc=$?
  if [ "$rc" -ge 128 ]; then fail "$name: crashed (status $rc)"; fi
}

# expect_ok NAME: status 0.
expect_ok() {
  if [ "$rc" -eq 0 ]; then pass "$1"; else
    fail "$1: status $rc"
    sed 's/^/    /' "$1.err" >&2
  fi
}

# expect_error NAME STATUS PATTERN: the given status, one stderr line starting "imgsim: " that
# matches PATTERN (grep -E).
expect_error() {
  local name=$1 want=$2 pattern=$3
  local lines
  lines=$(wc -l <"$name.err")
  if [ "$rc" -ne "$want" ]; then
    fail "$name: status $rc, expected $want"
  elif [ "$lines" -ne 1 ]; then
    fail "$name: $lines lines on stderr, expected 1"
    sed 's/^/    /' "$name.err" >&2
  elif ! grep -q '^imgsim: ' "$name.err"; then
    fail "$name: stderr does not start with 'imgsim: ': $(cat "$name.err")"
  elif ! grep -Eq "$pattern" "$name.err"; then
    fail "$name: stderr does not match /$pattern/: $(cat "$name.err")"
  else
    pass "$name ($(cat "$name.err"))"
  fi
}

# expect_grep NAME FILE PATTERN: FILE contains PATTERN (grep -E).
expect_grep() {
  if grep -Eq -- "$3" "$2"; then pass "$1"; else fail "$1: no /$3/ in $2"; fi
}

"$MAKE_IMAGES" data || {
  echo "FAIL: make_images" >&2
  exit 1
}
D=$W/data

# --- help on every subcommand -----------------------------------------------------------------
for sub in "" compare embed index "index build" "index add" "index remove" "index info" search \
  dedup train eval; do
  # shellcheck disable=SC2086
  run help "$IMGSIM" $sub --help
  if [ "$rc" -eq 0 ] && grep -q "Usage: imgsim" help.out; then pass "help: imgsim $sub --help"; else
    fail "help: imgsim $sub --help (status $rc)"
  fi
done
run version "$IMGSIM" --version
expect_grep version version.out '^imgsim [0-9]'

# --- train a tiny metric model (seconds) -----------------------------------------------------
run train "$IMGSIM" train --mode metric --data "$D/classes" --size 16 --width 8 --dim 16 \
  --epochs 6 --p 3 --k 4 --lr 0.003 --val-fraction 0.25 --calibrate --seed 3 --threads 2 \
  -o model.imgsim --json
expect_ok train
expect_grep "train: threshold in the summary" train.out '"threshold": '
expect_grep "train: held-out metrics" train.out '"val_map_at_r": '
[ -s model.imgsim ] && pass "train: model written" || fail "train: no model.imgsim"
export IMGSIM_MODEL=$W/model.imgsim

# --- compare ---------------------------------------------------------------------------------
A=$D/classes/class0/img_0.png
B=$D/classes/class3/img_5.png
run compare_same "$IMGSIM" compare "$A" "$A" --json
expect_ok compare_same
expect_grep "compare: identical images score 1" compare_same.out '"score": (1(\.0+)?|0\.99999[0-9]*)(,|$)'
expect_grep "compare: identical images are the same" compare_same.out '"same": true'
run compare_ab "$IMGSIM" compare "$A" "$B" --threshold 1.5 --json
expect_ok compare_ab
expect_grep "compare: --threshold 1.5 says different" compare_ab.out '"same": false'
run compare_ba "$IMGSIM" compare "$B" "$A" --threshold 1.5 --json
score_ab=$(grep '"score"' compare_ab.out)
score_ba=$(grep '"score"' compare_ba.out)
[ -n "$score_ab" ] && [ "$score_ab" = "$score_ba" ] && pass "compare: symmetric ($score_ab)" ||
  fail "compare: not symmetric: '$score_ab' vs '$score_ba'"
run compare_text "$IMGSIM" compare "$A" "$A" --model model.imgsim
expect_grep "compare: text output" compare_text.out '^score [01]\.[0-9]{6}$'
run err_conv_algo env IMGSIM_CONV_ALGO=bogus "$IMGSIM" compare "$A" "$B"
expect_error err_conv_algo 1 'IMGSIM_CONV_ALGO: expected auto, im2col, winograd2 or winograd4'
run err_fuse env IMGSIM_FUSE=yes "$IMGSIM" compare "$A" "$B"
expect_error err_fuse 1 'IMGSIM_FUSE: expected 1 or 0'

# --- embed -----------------------------------------------------------------------------------
run embed_npy "$IMGSIM" embed "$D/classes" -o emb.npy --json --batch 7
expect_ok embed_npy
expect_grep "embed: 40 images" embed_npy.out '"count": 40'
[ "$(wc -l <emb.paths.txt)" -eq 40 ] && pass "embed: 40 paths listed" || fail "embed: paths list"
expect_grep "embed: paths in order" emb.paths.txt 'class0/img_0\.png$'
head -c 6 emb.npy | od -c | grep -q 'N   U   M   P   Y' && pass "embed: .npy magic" ||
  fail "embed: .npy magic"
# 128-byte header (version 1.0, padded) + 40 x 16 float32.
[ "$(stat -c %s emb.npy)" -eq $((128 + 40 * 16 * 4)) ] && pass "embed: .npy size" ||
  fail "embed: .npy size $(stat -c %s emb.npy)"
expect_grep "embed: .npy header" emb.npy "'shape': \(40, 16\)"
run embed_json "$IMGSIM" embed "$D/classes/class1" "$A" -o emb.json
expect_ok embed_json
expect_grep "embed: JSON file" emb.json '"count":11'
expect_grep "embed: JSON embeddings" emb.json '"embedding":\[-?[0-9]'

# --- index build / add / info / remove, search ----------------------------------------------
run build "$IMGSIM" index build "$D/classes/class0" "$D/classes/class1" "$D/classes/class2" \
  -o gallery.idx --json
expect_ok build
expect_grep "index build: 30 added" build.out '"added": 30'
run add "$IMGSIM" index add gallery.idx "$D/classes/class3" --json
expect_ok add
expect_grep "index add: 10 added" add.out '"added": 10'
run add_again "$IMGSIM" index add gallery.idx "$D/classes/class3" --json
expect_ok add_again
expect_grep "index add: nothing twice" add_again.out '"already_indexed": 10'
run info "$IMGSIM" index info gallery.idx --json --list
expect_ok info
expect_grep "index info: size" info.out '"size": 40'
expect_grep "index info: dim" info.out '"dim": 16'
expect_grep "index info: paths" info.out 'class3/img_9\.png"'
Q=$D/classes/class2/img_3.png
run search "$IMGSIM" search gallery.idx "$Q" -k 3 --json
expect_ok search
first=$(grep -m1 '"path": ' search.out)
case "$first" in
  *class2/img_3.png*) pass "search: the query finds itself first" ;;
  *) fail "search: first match is $first" ;;
esac
[ "$(grep -c '"rank": ' search.out)" -eq 3 ] && pass "search: k = 3 matches" || fail "search: k"
expect_grep "search: best score ~1" search.out '"score": (1(\.0+)?|0\.9999[0-9]*)(,|$)'
run search_text "$IMGSIM" search gallery.idx "$Q" "$A" -k 2
expect_grep "search: text output" search_text.out '^  1\. [01]\.[0-9]{6}  id [0-9]+  /'
id=$(grep -m1 '"id": ' search.out | tr -dc '0-9')
run remove "$IMGSIM" index remove gallery.idx "$id" 999999 --json
expect_grep "index remove: one removed" remove.out '"removed": 1'
expect_grep "index remove: size 39" remove.out '"size": 39'

# --- dedup -----------------------------------------------------------------------------------
run dedup_csv "$IMGSIM" dedup "$D/dups" --threshold 0.9999 --format csv -o dups.csv \
  --report report.html
expect_ok dedup_csv
expect_grep "dedup: unreadable file reported" dedup_csv.err 'warning: skipped .*broken\.png'
g0=$(awk -F, '$4 ~ /\/img_0\.png$/ {print $1}' dups.csv)
g1=$(awk -F, '$4 ~ /\/copy_of_0\.png$/ {print $1}' dups.csv)
[ -n "$g0" ] && [ "$g0" = "$g1" ] && pass "dedup: exact copy grouped (group $g0)" ||
  fail "dedup: img_0 in group '$g0', copy_of_0 in '$g1'"
expect_grep "dedup: CSV header" dups.csv '^group,size,id,path,score,representative$'
expect_grep "dedup: report has embedded JPEG thumbnails" report.html '<img src="data:image/jpeg;base64,/9j/'
expect_grep "dedup: report names the files" report.html 'copy_of_0\.png'
if grep -Eq 'src="(https?:|file:|/)' report.html; then fail "dedup: report is not self-contained"; else
  pass "dedup: report self-contained"
fi
expect_grep "dedup: report forbids scripts and remote content" report.html 'Content-Security-Policy'
if grep -q '<script' report.html; then fail "dedup: report contains a script"; else
  pass "dedup: report has no script"
fi
# A hostile file name is escaped in the page; --report-thumbs caps the thumbnails of a group.
cp "$D/dups/copy_of_0.png" "$D/dups/x<b>&y.png"
run dedup_names "$IMGSIM" dedup "$D/dups" --threshold 0.9999 --format csv -o dups2.csv \
  --report report2.html --report-thumbs 1
expect_ok dedup_names
expect_grep "dedup: hostile name escaped" report2.html 'x&lt;b&gt;&amp;y\.png'
if grep -q 'x<b>&y' report2.html; then fail "dedup: raw hostile name in the report"; else
  pass "dedup: no raw hostile name"
fi
expect_grep "dedup: --report-thumbs lists the rest" report2.html 'more image'
rm -f "$D/dups/x<b>&y.png"
run dedup_json "$IMGSIM" dedup "$D/dups" --threshold 0.9999 --json
expect_ok dedup_json
expect_grep "dedup: JSON groups" dedup_json.out '"groups": \['
expect_grep "dedup: JSON lists the skipped file" dedup_json.out '"reason": '

# --- eval ------------------------------------------------------------------------------------
run eval "$IMGSIM" eval --data "$D/classes" --json
expect_ok eval
expect_grep "eval: recall@1" eval.out '"recall_at_1": (0|1)'
expect_grep "eval: MAP@R" eval.out '"map_at_r": (0|1)'
expect_grep "eval: 40 queries" eval.out '"queries": 40'

# --- eval --bench: a near-duplicate benchmark (docs/ndbench.md) ------------------------------
# 16 queries (15 readable, q0015 undecodable), 13 of them with a match; 5 database images.
run eval_bench "$IMGSIM" eval --bench "$D/bench" --predictions preds.csv --top 3
expect_ok eval_bench
expect_grep "eval --bench: table header" eval_bench.out \
  '^\| edits \| queries \| with match \| model µAP \| model R@1 \| model R@P90 \|$'
expect_grep "eval --bench: overall row" eval_bench.out \
  '^\| \*\*all\*\* \| 16 \| 13 \| [01]\.[0-9]{3} \| [01]\.[0-9]{3} \| [01]\.[0-9]{3} \|$'
expect_grep "eval --bench: family rows" eval_bench.out '^\| flip \| 5 \| 4 \| [01]\.[0-9]{3} \|'
expect_grep "eval --bench: unreadable query reported" eval_bench.err 'warning: skipped .*q0015\.png'
expect_grep "eval --bench: predictions header" preds.csv '^query_id,db_id,score$'
expect_grep "eval --bench: prediction rows" preds.csv '^q00(0[0-9]|1[0-4]),d000[0-4],-?[0-9.]+(e-?[0-9]+)?$'
[ "$(wc -l <preds.csv)" -eq $((1 + 15 * 3)) ] && pass "eval --bench: --top 3 -> 45 rows" ||
  fail "eval --bench: $(wc -l <preds.csv) lines in preds.csv, expected 46"
if [ -n "$SCORER" ] && [ -x "$SCORER" ]; then
  run score "$SCORER" --bench "$D/bench" --predictions model=preds.csv
  if [ "$rc" -eq 0 ] && cmp -s score.out eval_bench.out; then
    pass "eval --bench: same table as imgsim-ndbench-score"
  else
    fail "eval --bench: imgsim-ndbench-score (status $rc) prints another table"
    diff eval_bench.out score.out | sed 's/^/    /' >&2
  fi
else
  echo "skip: eval --bench against imgsim-ndbench-score (not built)"
fi
run eval_bench_json "$IMGSIM" eval --bench "$D/bench" --top 0 --json -q
expect_ok eval_bench_json
expect_grep "eval --bench: JSON, every pair" eval_bench_json.out '"predictions": 75,'
expect_grep "eval --bench: JSON micro AP" eval_bench_json.out '"micro_ap": (0|1)'
expect_grep "eval --bench: JSON families" eval_bench_json.out '"combined": \{'
expect_grep "eval --bench: JSON lists the skipped query" eval_bench_json.out 'q0015\.png'
mkdir -p nobench
cp "$D/bench/ground_truth.csv" nobench/
run err_bench_no_db "$IMGSIM" eval --bench nobench
expect_error err_bench_no_db 1 'db\.csv'
run err_bench_missing "$IMGSIM" eval --bench "$W/no-such-bench"
expect_error err_bench_missing 1 'no-such-bench'
run err_bench_data "$IMGSIM" eval --bench "$D/bench" --data "$D/classes"
expect_error err_bench_data 2 'excludes'
run err_bench_top "$IMGSIM" eval --data "$D/classes" --top 5
expect_error err_bench_top 2 'requires|needs'

# --- the other training modes (one short epoch each) ----------------------------------------
run train_cls "$IMGSIM" train --mode classifier --data "$D/classes" --size 16 --width 4 --dim 8 \
  --epochs 1 --batch 8 --val-fraction 0.25 --calibrate -o cls.imgsim --quiet
expect_ok train_cls
run train_cos "$IMGSIM" train --mode classifier --loss cosface --scale 8 --margin 0.2 \
  --data "$D/classes" --size 16 --width 4 --dim 8 --epochs 1 --batch 8 --val-fraction 0.25 \
  -o cos.imgsim --quiet --json
expect_ok train_cos
expect_grep "train cosface: recipe in the summary" train_cos.out '"loss": "cosface"'
run train_cos_cls "$IMGSIM" train --mode classifier --loss cosface --embedding classes \
  --data "$D/classes" --size 16 --width 4 --dim 8 --epochs 1 --batch 8 --val-fraction 0.25 \
  -o cos_cls.imgsim --quiet --json
expect_ok train_cos_cls
run eval_flips "$IMGSIM" eval --model cos_cls.imgsim --data "$D/classes" --flip-average hv --json
expect_ok eval_flips
expect_grep "eval --flip-average: the override is used and reported" eval_flips.out \
  '"flip_average": "hv"'
run eval_noflips "$IMGSIM" eval --model cos_cls.imgsim --data "$D/classes" --json
expect_grep "eval: the model's own flip averaging by default" eval_noflips.out \
  '"flip_average": "none"'
run err_flips "$IMGSIM" eval --model cos_cls.imgsim --data "$D/classes" --flip-average x
expect_error err_flips 2 'flip-average'
run eval_shifts "$IMGSIM" eval --model cos_cls.imgsim --data "$D/classes" --shift-average 1 --json
expect_grep "eval --shift-average: the override is used and reported" eval_shifts.out \
  '"shift_average": 1'
expect_grep "eval: the model's own shift averaging by default" eval_noflips.out \
  '"shift_average": 0'
run err_shifts "$IMGSIM" eval --model cos_cls.imgsim --data "$D/classes" --shift-average 9
expect_error err_shifts 2 'shift-average'
expect_grep "train --embedding classes: one dimension per class" train_cos_cls.out '"dim": 4,'
expect_grep "train --embedding classes: held-out class-score metrics" train_cos_cls.out \
  '"val_classes_map_at_r": '
run err_embedding "$IMGSIM" train --mode metric --embedding classes --data "$D/classes" -o x.imgsim
expect_error err_embedding 2 'embedding'
run embed_cos "$IMGSIM" embed "$A" -o cos.npy --model cos.imgsim
expect_ok embed_cos
run train_supcon "$IMGSIM" train --mode metric --loss supcon --temperature 0.2 --augment \
  --erase 0.5 --data "$D/classes" --size 16 --width 4 --dim 8 --epochs 1 --val-fraction 0.25 \
  --shift-average 2 -o supcon.imgsim --quiet --json
expect_ok train_supcon
run eval_supcon "$IMGSIM" eval --model supcon.imgsim --data "$D/classes" --json
expect_grep "train --shift-average 2: stored in the model" eval_supcon.out '"shift_average": 2'
expect_grep "train supcon: held-out metrics" train_supcon.out '"val_map_at_r": '
# --- checkpoints: a run stopped after an epoch and resumed writes the same model bytes -------
# (flips, shifts and erasing draw from the saved generators; P x K batches from the sampler's).
for m in metric selfsup; do
  if [ $m = metric ]; then
    args=(--mode metric --loss supcon --augment --erase 0.5 --data "$D/classes" --p 3 --k 4)
  else
    args=(--mode selfsup --data "$D/dups" --batch 4)
  fi
  args+=(--size 16 --width 4 --dim 8 --epochs 3 --val-fraction 0.25 --seed 9 --quiet)
  run ck_full_$m "$IMGSIM" train "${args[@]}" -o ck_full_$m.imgsim
  expect_ok ck_full_$m
  run ck_stop_$m "$IMGSIM" train "${args[@]}" --checkpoint ck_$m.ckpt --stop-after 2 -o ck_$m.imgsim
  expect_ok ck_stop_$m
  expect_grep "train --stop-after 2 ($m): stopped" ck_stop_$m.out 'stopped after epoch 2/3'
  [ -s ck_$m.ckpt ] && [ ! -e ck_$m.imgsim ] && pass "train --stop-after ($m): checkpoint, no model" ||
    fail "train --stop-after ($m): expected a checkpoint and no model yet"
  cp ck_$m.ckpt ck_${m}_copy.ckpt
  run ck_resume_$m "$IMGSIM" train "${args[@]}" --checkpoint ck_$m.ckpt -o ck_$m.imgsim
  expect_ok ck_resume_$m
  cmp -s ck_full_$m.imgsim ck_$m.imgsim && pass "train --checkpoint ($m): resumed = uninterrupted" ||
    fail "train --checkpoint ($m): the resumed model differs from the uninterrupted one"
done
run err_ck_options "$IMGSIM" train "${args[@]}" --lr 0.01 --checkpoint ck_selfsup_copy.ckpt -o x.imgsim
expect_error err_ck_options 1 'other options'
head -c 300 ck_selfsup_copy.ckpt >ck_trunc.ckpt
run err_ck_trunc "$IMGSIM" train "${args[@]}" --checkpoint ck_trunc.ckpt -o x.imgsim
expect_error err_ck_trunc 1 'ck_trunc\.ckpt.*truncated'
run err_ck_model "$IMGSIM" train "${args[@]}" --checkpoint ck_full_selfsup.imgsim -o x.imgsim
expect_error err_ck_model 1 'not an imgsim training checkpoint'
run err_ck_dir "$IMGSIM" train "${args[@]}" --checkpoint "$W/no/such/dir/c.ckpt" -o x.imgsim
expect_error err_ck_dir 1 'no/such/dir'
run err_ck_stop "$IMGSIM" train --mode metric --data "$D/classes" --stop-after 1 -o x.imgsim
expect_error err_ck_stop 2 'needs --checkpoint'
run err_erase "$IMGSIM" train --mode metric --erase 1.5 --data "$D/classes" -o x.imgsim
expect_error err_erase 2 'erase'
run err_erase_ss "$IMGSIM" train --mode selfsup --erase 0.5 --data "$D/dups" -o x.imgsim
expect_error err_erase_ss 2 'erase needs'
run err_cos_loss "$IMGSIM" train --mode metric --loss cosface --data "$D/classes" -o x.imgsim
expect_error err_cos_loss 2 'cosface'
run train_ss "$IMGSIM" train --mode selfsup --data "$D/dups" --size 16 --width 4 --dim 8 \
  --epochs 1 --batch 4 --val-fraction 0.3 --calibrate -o ss.imgsim --quiet
expect_ok train_ss
run compare_ss "$IMGSIM" compare "$A" "$B" --model ss.imgsim --json
expect_grep "selfsup model: calibrated threshold used" compare_ss.out '"same": (true|false)'

# --- errors: one line, non-zero, no crash ---------------------------------------------------
run err_missing "$IMGSIM" compare "$A" "$W/no-such-file.png"
expect_error err_missing 1 'no-such-file\.png'
printf 'IMGSIMMD\001\000\000\000garbage' >bad.imgsim
run err_model "$IMGSIM" compare "$A" "$A" --model bad.imgsim
expect_error err_model 1 'bad\.imgsim'
head -c 300 model.imgsim >truncated.imgsim
run err_model_trunc "$IMGSIM" embed "$A" -o x.npy --model truncated.imgsim
expect_error err_model_trunc 1 'truncated\.imgsim'
printf 'this is not an index' >bad.idx
run err_index "$IMGSIM" search bad.idx "$A"
expect_error err_index 1 'bad\.idx'
run err_index_info "$IMGSIM" index info bad.idx
expect_error err_index_info 1 'bad\.idx'
head -c 100 gallery.idx >truncated.idx
run err_index_trunc "$IMGSIM" index add truncated.idx "$A"
expect_error err_index_trunc 1 'truncated\.idx'
run err_empty "$IMGSIM" index build "$D/empty" -o empty.idx
expect_error err_empty 1 'no image files'
[ -e empty.idx ] && fail "empty folder: an index was written" || pass "empty folder: nothing written"
run err_empty_dedup "$IMGSIM" dedup "$D/empty" --threshold 0.9
expect_error err_empty_dedup 1 'no image files'
run err_all_broken "$IMGSIM" embed "$D/dups/broken.png" -o broken.npy
[ "$rc" -eq 1 ] && pass "embed: only unreadable files -> status 1" || fail "embed broken: status $rc"
run err_empty_model env IMGSIM_MODEL= "$IMGSIM" compare "$A" "$A" --model ""
expect_error err_empty_model 2 'empty path'
run err_no_model env IMGSIM_MODEL= "$IMGSIM" compare "$A" "$A" --model "$W/absent.imgsim"
expect_error err_no_model 1 'absent.imgsim'
run err_dim "$IMGSIM" search gallery.idx "$A" --model cls.imgsim
expect_error err_dim 1 'dimensional'
run err_usage "$IMGSIM" search
expect_error err_usage 2 'required'
run err_option "$IMGSIM" compare "$A" "$A" --bogus
expect_error err_option 2 'bogus'
run err_command "$IMGSIM" frobnicate
expect_error err_command 2 'frobnicate'
run err_k "$IMGSIM" search gallery.idx "$A" -k 0
expect_error err_k 2 '\-k'

# --- imgsim-posterior-probe (tools/; its path in $IMGSIM_POSTERIOR_PROBE): refuses what it
# cannot score with one line and status 1, bad usage with status 2 ---------------------------
PROBE=${IMGSIM_POSTERIOR_PROBE:-}
if [ -n "$PROBE" ]; then
  run probe_metric "$PROBE" model.imgsim
  [ "$rc" -eq 1 ] && grep -q 'not a classifier' probe_metric.err &&
    pass "posterior probe: a metric model is refused" ||
    fail "posterior probe: metric model gave status $rc: $(cat probe_metric.err)"
  run probe_classes "$PROBE" cos_cls.imgsim
  [ "$rc" -eq 1 ] && grep -q 'Fashion-MNIST' probe_classes.err &&
    pass "posterior probe: a 4-class 16x16 classifier is refused" ||
    fail "posterior probe: 4-class model gave status $rc: $(cat probe_classes.err)"
  run probe_usage "$PROBE"
  [ "$rc" -eq 2 ] && pass "posterior probe: no model is a usage error" ||
    fail "posterior probe: no model gave status $rc"
  run probe_temp "$PROBE" cos_cls.imgsim --temperature 0
  [ "$rc" -eq 2 ] && pass "posterior probe: temperature 0 is a usage error" ||
    fail "posterior probe: temperature 0 gave status $rc"
else
  echo "skip: imgsim-posterior-probe (not built)"
fi

if [ "$failures" -ne 0 ]; then
  echo "$failures check(s) failed; files in $W" >&2
  exit 1
fi
echo "all CLI checks passed"
