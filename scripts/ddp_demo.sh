#!/usr/bin/env bash
# Hybrid batch training with DDP on 2 CPU processes (gloo) and a tiny random model.
# Usage: scripts/ddp_demo.sh   (output in $DDP_DEMO_OUT, default /tmp/ddp_demo)
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f .venv/bin/activate ] && . .venv/bin/activate
export DDP_DEMO_OUT="${DDP_DEMO_OUT:-/tmp/ddp_demo}" HF_HUB_OFFLINE=1 PYTERRIER_HYBRID_OFFLINE=1 \
  TOKENIZERS_PARALLELISM=false OMP_NUM_THREADS=1
mkdir -p "$DDP_DEMO_OUT"
python -c "from pyterrier_hybrid.training.testing import tiny_sentence_transformer as t; t('$DDP_DEMO_OUT/tiny')"
torchrun --standalone --nproc_per_node 2 scripts/ddp_demo.py
