#!/usr/bin/env bash
# orchard vs fastai 2.8.12 on elpv (issue 7): the same recipe, the same folds,
# one side after the other, then a markdown table of accuracy and mean
# column-wise ROC AUC per fold. Run from anywhere:
#
#   benches/fastai_elpv.sh
#
# Environment (defaults in brackets):
#   ORCHARD_PYTHON  python with fastai 2.8.12 + torch        [/work/venv/bin/python]
#   ELPV            the elpv data set (train.csv, images/)   [../shared/datasets/elpv, from the repo root]
#   ORCHARD_BIN     the orchard binary                       [target/release/orchard]
#   OUT             output directory (must not exist)        [/tmp/fastai_elpv-<time>]
#   EPOCHS [5]  SIZE [64]  BS [32]  LR [1e-3]  SEED [42]  K [5]  THREADS [2]
#   SKIP_FASTAI=1 / SKIP_ORCHARD=1  reuse $OUT/fastai/oof.csv or $OUT/orchard/oof.csv
#                                   already there (OUT must then exist)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${ORCHARD_PYTHON:-/work/venv/bin/python}"
ELPV="${ELPV:-../shared/datasets/elpv}"
BIN="${ORCHARD_BIN:-target/release/orchard}"
EPOCHS="${EPOCHS:-5}"; SIZE="${SIZE:-64}"; BS="${BS:-32}"; LR="${LR:-1e-3}"
SEED="${SEED:-42}"; K="${K:-5}"; THREADS="${THREADS:-2}"
OUT="${OUT:-/tmp/fastai_elpv-$(date +%Y%m%d-%H%M%S)}"

[ -x "$BIN" ] || { echo "no orchard binary at $BIN: run cargo build --release" >&2; exit 2; }
[ -f "$ELPV/train.csv" ] || { echo "no elpv data set at $ELPV (set ELPV)" >&2; exit 2; }
if [ -z "${SKIP_FASTAI:-}${SKIP_ORCHARD:-}" ]; then
  [ -e "$OUT" ] && { echo "$OUT exists; choose another OUT" >&2; exit 2; }
fi
mkdir -p "$OUT"
ELPV="$(cd "$ELPV" && pwd)"

# A private copy of the binary: other builds may replace target/release/orchard mid-run.
cp "$BIN" "$OUT/orchard-bin"
BIN="$OUT/orchard-bin"

# Both sides get THREADS cores. libgomp's default spin-waiting makes torch's
# OpenMP threads ~10x slower when the cores are shared with other processes;
# passive waiting costs nothing on an idle machine.
export RAYON_NUM_THREADS="$THREADS" OMP_NUM_THREADS="$THREADS" MKL_NUM_THREADS="$THREADS"
export OMP_WAIT_POLICY=PASSIVE

{
  echo "date        $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "host        $(nproc) cores; load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "orchard     $(git -C "$ROOT" rev-parse --short HEAD)$(git -C "$ROOT" diff --quiet HEAD -- src Cargo.toml Cargo.lock || echo ' (+ uncommitted changes in src/)'), binary $(date -u -r "$ROOT/${ORCHARD_BIN:-target/release/orchard}" +%H:%M:%SZ) sha256 $(sha256sum "$BIN" | cut -c1-12)"
  echo "python      $("$PY" -c 'import sys, fastai, torch, torchvision; print(sys.version.split()[0], "fastai", fastai.__version__, "torch", torch.__version__, "torchvision", torchvision.__version__)' 2>/dev/null)"
  echo "recipe      resnet18 from scratch, ${SIZE}px squish, ${EPOCHS} epochs, bs ${BS}, one-cycle lr_max ${LR}, seed ${SEED}, ${K} folds, ${THREADS} threads"
} | tee "$OUT/env.txt"

# 1. Folds, from orchard itself.
"$BIN" folds "$ELPV" --k "$K" --seed "$SEED" --format csv --out "$OUT/folds.csv" >/dev/null

# 2. fastai.
if [ -z "${SKIP_FASTAI:-}" ]; then
  echo; echo "== fastai =="
  t0=$(date +%s.%N)
  "$PY" "$ROOT/benches/fastai_elpv.py" --data "$ELPV" --folds "$OUT/folds.csv" \
    --out "$OUT/fastai_oof.csv" --epochs "$EPOCHS" --size "$SIZE" --bs "$BS" --lr "$LR" \
    --seed "$SEED" --threads "$THREADS" 2>&1 | tee "$OUT/fastai.log"
  t1=$(date +%s.%N)
  echo "$t1 - $t0" | bc > "$OUT/fastai.wall"
fi

# 3. orchard.
if [ -z "${SKIP_ORCHARD:-}" ]; then
  echo; echo "== orchard =="
  t0=$(date +%s.%N)
  "$BIN" train --data "$ELPV" --headless --k "$K" --seed "$SEED" --epochs "$EPOCHS" \
    --size "$SIZE" --bs "$BS" --lr "$LR" --run-dir "$OUT/orchard" 2>&1 | tee "$OUT/orchard.log"
  t1=$(date +%s.%N)
  echo "$t1 - $t0" | bc > "$OUT/orchard.wall"
fi

# orchard's own folds.csv must be the one fastai trained on.
if cmp -s "$OUT/folds.csv" "$OUT/orchard/folds.csv"; then
  echo; echo "folds: orchard train's folds.csv is byte-identical to the one fastai used"
else
  echo "orchard train's folds.csv differs from $OUT/folds.csv" >&2; exit 1
fi

# 4. The table.
echo; echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/env.txt"
echo
"$PY" "$ROOT/benches/compare_oof.py" "$OUT/orchard/oof.csv" "$OUT/fastai_oof.csv" \
  --names orchard fastai --folds "$OUT/folds.csv" \
  --wall "$(cat "$OUT/orchard.wall")" "$(cat "$OUT/fastai.wall")" | tee "$OUT/table.md"
echo; echo "outputs in $OUT"
