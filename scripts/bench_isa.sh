#!/usr/bin/env bash
# The offline defaults' CPU step with torch's kernels held to AVX2, alternating with the machine's own:
#
#     scripts/bench_isa.sh [ROUNDS]
#
# On a machine with AVX-512 this estimates how much of the speed gap to an AVX2-only machine of the same core
# count is the instruction set: ATEN_CPU_CAPABILITY=avx2 caps PyTorch's own vectorised kernels,
# ONEDNN_MAX_CPU_ISA=AVX2 oneDNN's (convolutions) and MKL_ENABLE_INSTRUCTIONS=AVX2 MKL's (matrix products).
# Clock, caches and memory stay this machine's, so it measures the instruction set's share of the gap, not
# the other machine.
# Each `aip bench` prints its stages and the schedule it projects; run nothing else meanwhile.
set -u
ROUNDS=${1:-2}
AIP=${AIP:-aip}
PY=${PY:-python3}
SP="recipes/spoken-keywords.toml --device cpu --steps 8 --warmup 2 --num-classes 12 --set source.uri=synthetic:noise"
FM="recipes/fashion-mnist.toml --device cpu --steps 6 --warmup 2 --num-classes 10"
echo "torch's CPU capability here: $($PY -c 'import torch; print(torch.backends.cpu.get_cpu_capability())' 2>/dev/null)"
for recipe in "$SP" "$FM"; do
  for r in $(seq "$ROUNDS"); do
    echo "=== ${recipe%% *}, round $r, default"; $AIP bench $recipe
    echo "=== ${recipe%% *}, round $r, AVX2"; ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 $AIP bench $recipe
  done
done
