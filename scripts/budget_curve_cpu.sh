#!/usr/bin/env bash
# The committed budget curve (benchmarks/results/budget_curve/) on a 2-core CPU, as two single-thread
# workers sharing one output folder. Two one-thread processes train ~1.1x more pairs/s in total than one
# two-thread process here (benchmarks/results/budget_curve/README.md). Every worker call is the full
# command of examples/budget_curve.py restricted to some presets/seeds; the setup key of the folder is the
# same for all of them, finished evaluations and runs are reused, and the last call (all presets, seeds and
# α points) trains nothing new: it only writes the combined tables, report and plots.
#   flock /tmp/heavy.lock nice -n 5 bash scripts/budget_curve_cpu.sh [OUT]
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-outputs/budget_curve}"
py="${PYTERRIER_HYBRID_VENV:-.venv}/bin/python"
if [ -z "${PYTERRIER_HYBRID_LAREQA_DIR:-}" ] && [ -d ../shared/data/lareqa ]; then
  PYTERRIER_HYBRID_LAREQA_DIR="$(cd ../shared/data/lareqa && pwd)"
  export PYTERRIER_HYBRID_LAREQA_DIR
fi
export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}" TOKENIZERS_PARALLELISM=false OMP_NUM_THREADS=1
common=(--steps 150 --checkpoints 25,50,100,150 --batch-size 32 --lr 3e-05 --warmup-steps 10 --max-seq-length 96
        --paragraphs 48 --max-queries 96 --noise-models typo,mixed --noise-levels 0,20,50 --quantize bf16
        --out "$out")
curve() { "$py" examples/budget_curve.py "${common[@]}" "$@"; }

# the alpha curve needs the final models of alpha 0 (cross), 0.5 (hybrid-0.5) and 1 (mono), which the workers
# train anyway; each worker names only alpha points among its presets, so it trains no extra alpha run
{
  curve --presets base,mono,cross,hybrid-0.5,x-y --seeds 0 --alphas 0,0.5,1 --noise-presets base,mono,cross,hybrid-0.5 --threads 1
  curve --presets base,mono,cross --seeds 2 --alphas 0,1 --noise-presets base,mono,cross --threads 1
  curve --presets base --seeds 0 --alphas 0.25 --alpha-seeds 0 --no-noise --threads 1
} > "$out.worker1.log" 2>&1 &
w1=$!
{
  # start once worker 1 has stored the base model's evaluation, so that it is not computed twice
  for _ in $(seq 120); do [ -f "$out/evals/base/step-0.json" ] && break; sleep 5; done
  curve --presets base,mono,cross,hybrid-0.5,x-y --seeds 1 --alphas 0,0.5,1 --noise-presets base,mono,cross,hybrid-0.5 --threads 1
  curve --presets base,hybrid-0.5,x-y --seeds 2 --alphas 0.5 --noise-presets base,hybrid-0.5 --threads 1
  curve --presets base --seeds 0 --alphas 0.75 --alpha-seeds 0 --no-noise --threads 1
} > "$out.worker2.log" 2>&1 &
w2=$!
wait "$w1" "$w2"
# the combined tables: everything above is reused
curve --presets base,mono,cross,hybrid-0.5,x-y --seeds 0,1,2 --alphas 0,0.25,0.5,0.75,1 --alpha-seeds 0 \
  --noise-presets base,mono,cross,hybrid-0.5 --threads 2 > "$out.log" 2>&1
