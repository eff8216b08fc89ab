#!/usr/bin/env bash
# Every GPU figure of docs/benchmarks.md, plus a CUDA end-to-end run, in one pass on one GPU:
#
#     scripts/gpu_check.sh LOGFILE [STEP ...]
#
# With STEP names (the names in the log: views-1024, imagenet-256, ...), only those steps run.
# 0. whether each recipe's data path is captured into a CUDA graph, and replays vs eager (scripts/check_graphs.py);
# 1. the image view generator alone at 28, 32 and 224 px (scripts/bench_views.py, batches of 1,024 and 4,096);
# 2. `aip bench` of the ImageNet recipe (ResNet-18 -> ResNet-50, 224 px, bf16, channels-last) at batch 256, at
#    the recipe's batch 512 with a profile, and at batch 256 compiled;
# 3. `aip bench` of the CIFAR-10, Kinetics-400, Speech Commands and spoken-keywords recipes, and of CIFAR-10,
#    Kinetics-400 and spoken-keywords with the data path run eagerly (`train.graph_data=off`, steps *-eager);
#    the paper's PIL pipeline (`--vs-reference`) at 224 and 32 px in the steps reference-224 and reference-32;
# 4. the Kinetics-400 step with channels_last_3d and torch.compile (kinetics400-cl3d, -compile, -cl3d-compile),
#    and every paper recipe's projected schedule time (projection-NAME);
# 5. a tiny recipe end to end on CUDA: `aip teacher`, `aip run`, the same run under torchrun (NCCL, 1 process)
#    and `aip eval` of the plain run's checkpoint.
#
# The recipes' own source files are downloads, so every bench points `source.uri` at a bundled photo or at
# synthetic noise (the speed does not depend on the picture). Each step has its own time limit; a failing
# step is reported and the next one runs. Everything goes to LOGFILE and a summary to stdout.
set -u
LOG=${1:-gpu-check.log}
shift || true
ONLY=" $* "
PY=${PY:-python3}
WORK=$(mktemp -d)
export AIP_CACHE=$WORK/cache PYTHONUNBUFFERED=1
# this checkout's code first, for scripts/*.py too (whose own folder, not the checkout, heads sys.path), even if
# an installed copy of aip is on PYTHONPATH for its entry points
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
: >"$LOG"

step() {  # step NAME LIMIT_S COMMAND...
  local name=$1 limit=$2; shift 2
  local start=$SECONDS rc
  if [ "$ONLY" != "  " ] && [[ "$ONLY" != *" $name "* ]]; then return; fi
  echo "=== $name: $*" >>"$LOG"
  timeout "$limit" "$@" >>"$LOG" 2>&1
  rc=$?
  echo "=== $name: exit $rc after $((SECONDS - start)) s" >>"$LOG"
  echo "$name: exit $rc after $((SECONDS - start)) s"
}

BENCH=(-m aip bench --device cuda)
PHOTO=(--set source.uri=skimage:astronaut)

step machine 60 bash -c "nvidia-smi -L; $PY -c 'import torch, torchvision, kornia; print(torch.__version__, torchvision.__version__, kornia.__version__, torch.cuda.get_device_name())'"
step check-graphs 240 "$PY" scripts/check_graphs.py --profile kinetics400 spoken-keywords
step views-1024 120 "$PY" scripts/bench_views.py --device cuda --sizes 28 32 224 --batch 1024 --repeats 20
step imagenet-256 240 "$PY" "${BENCH[@]}" recipes/imagenet.toml --num-classes 1000 "${PHOTO[@]}" \
  --set train.batch_size=256 --steps 30 --warmup 10
step reference-224 240 "$PY" "${BENCH[@]}" recipes/imagenet.toml --num-classes 1000 "${PHOTO[@]}" \
  --set train.batch_size=256 --steps 5 --warmup 2 --vs-reference --workers "$(nproc)"
step imagenet-512-profile 180 "$PY" "${BENCH[@]}" recipes/imagenet.toml --num-classes 1000 "${PHOTO[@]}" \
  --steps 20 --warmup 10 --profile 3

# a tiny recipe end to end on CUDA (the test suite's stripes set and recipe)
[[ "$ONLY" == "  " || "$ONLY" == *" tiny-"* ]] && "$PY" - "$WORK" <<'EOF'
import sys
from pathlib import Path
sys.path.insert(0, "tests")
from conftest import TINY_RECIPE, write_stripes_folder
work = Path(sys.argv[1])
root = write_stripes_folder(work / "stripes")
(work / "tiny.toml").write_text(TINY_RECIPE.format(root=root.as_posix(), epochs=6))
EOF
step tiny-teacher 120 "$PY" -m aip teacher "$WORK/tiny.toml" --device cuda
step tiny-run 180 "$PY" -m aip run "$WORK/tiny.toml" --device cuda --out "$WORK/run"
step tiny-torchrun-nccl 180 "$PY" -m torch.distributed.run --nproc-per-node 1 -m aip run "$WORK/tiny.toml" \
  --device cuda --out "$WORK/ddp"
step tiny-eval 60 "$PY" -m aip eval "$WORK/tiny.toml" --checkpoint "$WORK/run/best.pt" --device cuda

step cifar10 120 "$PY" "${BENCH[@]}" recipes/cifar10.toml --num-classes 10 "${PHOTO[@]}" --steps 30 --warmup 10
step cifar10-eager 120 "$PY" "${BENCH[@]}" recipes/cifar10.toml --num-classes 10 "${PHOTO[@]}" --steps 30 \
  --warmup 10 --set train.graph_data=off
step reference-32 120 "$PY" "${BENCH[@]}" recipes/cifar10.toml --num-classes 10 "${PHOTO[@]}" --steps 5 --warmup 2 \
  --vs-reference --workers "$(nproc)"
step kinetics400 180 "$PY" "${BENCH[@]}" recipes/kinetics400.toml --num-classes 400 "${PHOTO[@]}" --steps 20 \
  --warmup 5 --profile 2
step kinetics400-eager 180 "$PY" "${BENCH[@]}" recipes/kinetics400.toml --num-classes 400 "${PHOTO[@]}" --steps 20 \
  --warmup 5 --set train.graph_data=off
step speechcommands 120 "$PY" "${BENCH[@]}" recipes/speechcommands.toml --num-classes 12 \
  --set source.uri=synthetic:noise --steps 30 --warmup 10
step spoken-keywords 120 "$PY" "${BENCH[@]}" recipes/spoken-keywords.toml --num-classes 12 \
  --set source.uri=synthetic:noise --steps 30 --warmup 10
step spoken-keywords-eager 120 "$PY" "${BENCH[@]}" recipes/spoken-keywords.toml --num-classes 12 \
  --set source.uri=synthetic:noise --steps 30 --warmup 10 --set train.graph_data=off
# the Kinetics-400 step (bound by the expanded X3D student's depthwise 3-D convolutions): channels_last_3d
# (train.channels_last = "on"), torch.compile, and both
step kinetics400-cl3d 180 "$PY" "${BENCH[@]}" recipes/kinetics400.toml --num-classes 400 "${PHOTO[@]}" --steps 20 \
  --warmup 5 --set train.channels_last=on
step kinetics400-compile 300 "$PY" "${BENCH[@]}" recipes/kinetics400.toml --num-classes 400 "${PHOTO[@]}" \
  --steps 20 --warmup 5 --set train.compile=true
step kinetics400-cl3d-compile 300 "$PY" "${BENCH[@]}" recipes/kinetics400.toml --num-classes 400 "${PHOTO[@]}" \
  --steps 20 --warmup 5 --set train.compile=true --set train.channels_last=on
# every paper recipe's whole schedule at its measured step (the last lines of each bench), 1 and 8 processes
for rk in cifar10:10 cifar100:100 stl10:10 imagenet:1000 imagenet-r50x2:1000 flowers102:102 pets:37 places365:365 \
          ucf101:101 kinetics400:400 speechcommands:12 speechcommands35:35; do
  r=${rk%%:*}
  case $r in speech*) SRC=(--set source.uri=synthetic:noise) ;; *) SRC=("${PHOTO[@]}") ;; esac
  step "projection-$r" 120 "$PY" "${BENCH[@]}" "recipes/$r.toml" --num-classes "${rk##*:}" "${SRC[@]}" --steps 5 \
    --warmup 3 --processes 8
done
step views-4096 120 "$PY" scripts/bench_views.py --device cuda --sizes 28 32 224 --batch 4096 --repeats 10
step imagenet-256-compile 200 "$PY" "${BENCH[@]}" recipes/imagenet.toml --num-classes 1000 "${PHOTO[@]}" \
  --set train.batch_size=256 --set train.compile=true --steps 30 --warmup 5
rm -rf "$WORK"
