#!/usr/bin/env bash
# The method at the paper's scale on one GPU, in one pass of under 8 minutes on an H100:
#
#     scripts/gpu_proof.sh FASHION_MNIST_FOLDER [LOGFILE]
#
# FASHION_MNIST_FOLDER holds the four files of the Debian package dataset-fashion-mnist
# (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz).
# 1. trains the Fashion-MNIST teacher of recipes/fashion-mnist-gpu.toml on the GPU (`aip teacher`; its accuracy
#    and the sha256 of its checkpoint go into teacher.json);
# 2. distils a student from one photo for AIP_PROOF_VIEWS views (10 M), evaluated on a log-spaced grid of steps
#    (eval.log_grid), and writes the views-to-accuracy curve (aip.curve) and the views to 90/95/98 % of the teacher;
# 3. the same schedule from `dataset:train` (the real-data upper bound) if less than half of AIP_PROOF_BUDGET_S
#    is spent by then;
# 4. `aip bench --json` of the Kinetics-400 step (random-weight teachers; against the 349 clips/s of
#    docs/benchmarks.md and the 1.5x goal, 524 clips/s) and of every paper recipe (projected schedule times);
# 5. regenerates docs/reproduction.md from the records it wrote (run folders with provenance.json under
#    AIP_PROOF_DOCS/measured/, bench records under AIP_PROOF_DOCS/bench/).
# Everything goes to LOGFILE (default gpu-proof.log), a short summary to stdout and to LOGFILE.summary.
#
# Scale knobs (environment; the test suite dry-runs the script on the CPU with tiny values):
#   AIP_PROOF_DEVICE (cuda), AIP_PROOF_VIEWS (10000000), AIP_PROOF_EPOCHS (10: distillation epochs),
#   AIP_PROOF_BATCH (the recipe's 512), AIP_PROOF_TEACHER_EPOCHS (the recipe's 10), AIP_PROOF_TEACHER_BATCH, AIP_PROOF_TEACHER_ARCH,
#   AIP_PROOF_STUDENT_ARCH, AIP_PROOF_LOG_GRID (4 evaluations a decade), AIP_PROOF_BUDGET_S (420),
#   AIP_PROOF_TRAIN_RUN (1: also the dataset:train run; 0: never), AIP_PROOF_BENCH (paper recipes to bench,
#   "name:classes ..."; "none" for none), AIP_PROOF_KINETICS (1), AIP_PROOF_BENCH_STEPS (5),
#   AIP_PROOF_DOCS (docs/reproduction), AIP_PROOF_PAGE (docs/reproduction.md), AIP_PROOF_ROOT (.: where the
#   page's run globs start), AIP_PROOF_RECIPE (recipes/fashion-mnist-gpu.toml), PY (python3).
set -u
die() { echo "gpu_proof.sh: $*" >&2; exit 2; }
[ $# -ge 1 ] || die "usage: scripts/gpu_proof.sh FASHION_MNIST_FOLDER [LOGFILE] (the folder of the four idx .gz files)"
SRC=$1
LOG=${2:-gpu-proof.log}
[ -d "$SRC" ] || die "$SRC is not a folder; pass the folder of the Fashion-MNIST idx files (dpkg -L dataset-fashion-mnist)"
for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
  [ -s "$SRC/$f.gz" ] || die "$SRC/$f.gz is missing or empty; the folder needs the four Fashion-MNIST idx .gz files"
done
PY=${PY:-python3}
DEVICE=${AIP_PROOF_DEVICE:-cuda}
VIEWS=${AIP_PROOF_VIEWS:-10000000}
EPOCHS=${AIP_PROOF_EPOCHS:-10}
BUDGET=${AIP_PROOF_BUDGET_S:-420}
DOCS=${AIP_PROOF_DOCS:-docs/reproduction}
PAGE=${AIP_PROOF_PAGE:-docs/reproduction.md}
ROOT=${AIP_PROOF_ROOT:-.}
RECIPE=${AIP_PROOF_RECIPE:-recipes/fashion-mnist-gpu.toml}
STEPS=${AIP_PROOF_BENCH_STEPS:-5}
BENCH_LIST=${AIP_PROOF_BENCH:-cifar10:10 cifar100:100 stl10:10 imagenet:1000 imagenet-r50x2:1000 flowers102:102 \
pets:37 places365:365 ucf101:101 kinetics400:400 speechcommands:12 speechcommands35:35}
case $VIEWS in ''|*[!0-9]*) die "AIP_PROOF_VIEWS=$VIEWS is not a whole number of views" ;; esac
case $EPOCHS in ''|*[!0-9]*|0) die "AIP_PROOF_EPOCHS=$EPOCHS is not a positive whole number" ;; esac
[ -f "$RECIPE" ] || die "$RECIPE does not exist; run the script from the repository root"
[ -f "$DOCS/paper.toml" ] || die "$DOCS/paper.toml does not exist; AIP_PROOF_DOCS names the folder of the page's inputs"
: >"$LOG" 2>/dev/null || die "cannot write the log $LOG"
SUMMARY=$LOG.summary
: >"$SUMMARY"

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
export AIP_CACHE=${AIP_CACHE:-$WORK/cache} PYTHONUNBUFFERED=1 AIP_PROGRESS=0
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$WORK/data/FashionMNIST/raw" "$DOCS/bench" "$DOCS/measured/fashion-mnist-gpu"
for f in "$SRC"/*-ubyte.gz; do ln -s "$(cd "$(dirname "$f")" && pwd)/$(basename "$f")" "$WORK/data/FashionMNIST/raw/"; done

BATCH=${AIP_PROOF_BATCH:-$("$PY" -c "import tomllib,sys;print(tomllib.load(open(sys.argv[1],'rb'))['train']['batch_size'])" "$RECIPE")}
PER_EPOCH=$(( (VIEWS + EPOCHS - 1) / EPOCHS ))
SETS=(--set "eval.root=$WORK/data" --set "train.epochs=$EPOCHS" --set "train.samples_per_epoch=$PER_EPOCH"
      --set "train.batch_size=$BATCH" --set "eval.log_grid=${AIP_PROOF_LOG_GRID:-4}")
[ -n "${AIP_PROOF_TEACHER_EPOCHS:-}" ] && SETS+=(--set "teacher.fit.epochs=$AIP_PROOF_TEACHER_EPOCHS")
[ -n "${AIP_PROOF_TEACHER_BATCH:-}" ] && SETS+=(--set "teacher.fit.batch_size=$AIP_PROOF_TEACHER_BATCH")
[ -n "${AIP_PROOF_TEACHER_ARCH:-}" ] && SETS+=(--set "teacher.arch=$AIP_PROOF_TEACHER_ARCH" --set "teacher.kwargs={}")
[ -n "${AIP_PROOF_STUDENT_ARCH:-}" ] && SETS+=(--set "student.arch=$AIP_PROOF_STUDENT_ARCH" --set "student.kwargs={}")
FAILED=0

step() {  # step NAME COMMAND...: log it, time it, keep going on failure
  local name=$1 start=$SECONDS rc; shift
  echo "=== $name: $*" >>"$LOG"
  "$@" >>"$LOG" 2>&1
  rc=$?
  echo "=== $name: exit $rc after $((SECONDS - start)) s" >>"$LOG"
  echo "$name: exit $rc after $((SECONDS - start)) s" | tee -a "$SUMMARY"
  [ $rc -eq 0 ] || FAILED=1
  return $rc
}
say() { echo "$*" | tee -a "$SUMMARY"; }

# 1. the teacher, its accuracy and checkpoint hash
step teacher "$PY" - "$RECIPE" "$DEVICE" "$WORK/teacher.json" "${SETS[@]}" <<'EOF'
import hashlib, json, sys
from pathlib import Path
from aip.hardware import resolve_device
from aip.recipe import load
from aip.run import train_teacher
recipe_path, device, out, rest = sys.argv[1], sys.argv[2], Path(sys.argv[3]), sys.argv[4:]
overrides = [rest[i + 1] for i in range(0, len(rest), 2)]
info = train_teacher(load(recipe_path, overrides), device=resolve_device(device))
info["sha256"] = hashlib.sha256(Path(info["path"]).read_bytes()).hexdigest()
out.write_text(json.dumps(info))
print(f"teacher top-1 {info['top1']:.2f} %, sha256 {info['sha256']}")
EOF

provenance() {  # provenance RUN_DIR COMMAND: the machine, date, command and teacher hash beside the run's metrics
  "$PY" - "$1" "$DEVICE" "$WORK/teacher.json" "$2" <<'EOF'
import datetime as dt, json, sys
from pathlib import Path
from aip.bench import device_name
from aip.hardware import resolve_device
run, device, teacher, command = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), sys.argv[4]
info = json.loads(teacher.read_text()) if teacher.is_file() else {}
(run / "provenance.json").write_text(json.dumps({
    "machine": device_name(resolve_device(device)), "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d"),
    "command": command, "teacher_sha256": info.get("sha256", ""), "teacher_top1": info.get("top1")}, indent=2))
EOF
}

curve() {  # curve RUN_DIR: views-to-accuracy table and figure, views to 90/95/98 % of the teacher
  "$PY" - "$1" <<'EOF'
import sys
from pathlib import Path
from aip import curve
run = Path(sys.argv[1])
c = curve.read_curve(run)
if c is None or not c.views:
    sys.exit(f"{run} holds no evaluations to draw")
(run / "curve.md").write_text(curve.table([c]) + "\n")
curve.figure([c], run / "curve.png", title=f"{run.name}: views to accuracy", command="scripts/gpu_proof.sh")
top = c.top1[-1]
reach = ", ".join(f"{int(100 * s)} %: {curve._views(curve.views_to_share(c, s))}" for s in (0.9, 0.95, 0.98))
ratio = f"{100 * top / c.teacher_top1:.1f} % of the teacher" if c.teacher_top1 else "no teacher accuracy"
print(f"{run.name}: student {top:.2f} % after {c.views[-1]:,} views ({ratio}); views to {reach}")
EOF
}

# 2. the student from one photo; 3. the same schedule from the training images, if time allows
for variant in one-photo dataset-train; do
  if [ "$variant" = dataset-train ]; then
    [ "${AIP_PROOF_TRAIN_RUN:-1}" = 1 ] || { say "dataset-train: skipped (AIP_PROOF_TRAIN_RUN=0)"; continue; }
    [ $SECONDS -lt $((BUDGET / 2)) ] || { say "dataset-train: skipped ($SECONDS s spent of the $BUDGET s budget)"; continue; }
    EXTRA=(--set source.uri=dataset:train)
  else
    EXTRA=()
  fi
  OUT=$DOCS/measured/fashion-mnist-gpu/$variant
  rm -rf "$OUT"
  step "$variant" "$PY" -m aip run "$RECIPE" --device "$DEVICE" --out "$OUT" "${SETS[@]}" "${EXTRA[@]}" &&
    provenance "$OUT" "scripts/gpu_proof.sh ($variant, $VIEWS views)" &&
    curve "$OUT" 2>>"$LOG" | tee -a "$SUMMARY" "$LOG"
  rm -f "$OUT"/*.pt  # checkpoints stay out of the docs; the teacher's hash is in provenance.json
done

# 4. the Kinetics-400 step and every paper recipe's projected schedule
bench() {  # bench NAME:CLASSES [OVERRIDES...]
  local r=${1%%:*} k=${1##*:}; shift
  local src=(--set source.uri=skimage:astronaut)
  case $r in speech*) src=(--set source.uri=synthetic:noise) ;; esac
  step "bench-$r" "$PY" -m aip bench "recipes/$r.toml" --device "$DEVICE" --num-classes "$k" "${src[@]}" \
    --steps "$STEPS" --warmup 3 --processes 8 --json "$DOCS/bench/gpu-proof-$r.json" "$@"
}
if [ "${AIP_PROOF_KINETICS:-1}" = 1 ]; then
  bench kinetics400:400 && "$PY" - "$DOCS/bench/gpu-proof-kinetics400.json" <<'EOF' | tee -a "$SUMMARY" "$LOG"
import json, sys
r = json.load(open(sys.argv[1]))
rate = r["samples_per_second"]
print(f"kinetics400 step: {rate:,.0f} clips/s on {r['device']}; {rate / 349:.2f}x the 349 clips/s of "
      f"docs/benchmarks.md (goal 1.5x, 524 clips/s: {'met' if rate >= 524 else 'not met'})")
EOF
fi
[ "$BENCH_LIST" = none ] || for rk in $BENCH_LIST; do
  [ "${rk%%:*}" = kinetics400 ] && [ "${AIP_PROOF_KINETICS:-1}" = 1 ] && continue
  bench "$rk"
done

# 5. the page, from the records just written
step reproduction "$PY" -m aip.reproduction --inputs "$DOCS" --root "$ROOT" --out "$PAGE"
say "total: $SECONDS s; log $LOG; page $PAGE"
exit $FAILED
