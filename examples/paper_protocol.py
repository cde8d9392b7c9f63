"""The paper's protocol: zero-shot base vs En-En, X-X, X-Y, mono, cross and hybrid(α) fine-tuning.

Elmahdy, Lin & Ahmad (2024, arXiv 2408.10536), Tables 1-2: every preset fine-tunes the same model on
MLQA-R with the same budget and is evaluated zero-shot on XQuAD-R (``--direction mlqa-xquad``, the
default), or trains on XQuAD-R and is evaluated on MLQA-R (``xquad-mlqa``; ``both`` runs the two).
Columns: mean monolingual mAP, mean cross-lingual mAP, pooled multilingual mAP, and the pooled-setting
language-bias measures (rank distance, same-language preference, PEER), as mean ± sd over ``--seeds``.

CPU-sized by default (≈25 min on 2 cores, one seed): 40 steps at batch 16 per preset, evaluated on a
slice of XQuAD-R (24 paragraphs with every translation as the pool, 48 question groups asked in all
11 languages; see :func:`pyterrier_hybrid.datasets.sample_benchmark`). ``--full`` evaluates on every
question and candidate; with a GPU raise ``--steps``/``--batch-size`` and pass a hub id to ``--model``.

    python examples/paper_protocol.py                                  # CPU-sized, offline e5-small
    python examples/paper_protocol.py --seeds 0,1,2 --presets base,mono,cross,hybrid-0.5
    python examples/paper_protocol.py --full --steps 1000 --batch-size 64 --model intfloat/multilingual-e5-small
    python examples/paper_protocol.py --smoke                          # seconds: a wiring check

Writes ``<out>/<direction>/summary.md`` (the table, with its budget), ``summary.csv``, ``runs.csv``,
``grids/*.csv`` and ``plots/`` (per-model AP heatmaps, deltas vs base, ``summary.png``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

import pyterrier_hybrid  # noqa: F401  (registers the datasets)
from pyterrier_hybrid.datasets import sample_benchmark
from pyterrier_hybrid.protocol import PAPER_PRESETS, run_protocol
from pyterrier_hybrid.training import pairs_from_benchmark

sys.path.insert(0, str(Path(__file__).resolve().parent))  # examples/_common.py, also when loaded by path
from _common import add_protocol_arguments, finish_protocol_arguments, report  # noqa: E402

DIRECTIONS = {"mlqa-xquad": ("mlqa-r", "xquad-r"), "xquad-mlqa": ("xquad-r", "mlqa-r")}


def parse_args(argv=None) -> argparse.Namespace:
    """Command-line options (``--help``)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    add_protocol_arguments(
        p, presets=PAPER_PRESETS, steps=30, paragraphs=16, max_queries=32, out="outputs/paper_protocol",
        presets_help=f"comma list (default: {','.join(PAPER_PRESETS)}; any hybrid-<alpha> works)",
        smoke_help="a seconds-long wiring check: presets base,hybrid-0.5, 2 steps, a 2-paragraph slice")
    p.add_argument("--direction", choices=[*DIRECTIONS, "both"], default="mlqa-xquad",
                   help="train-benchmark -> evaluation-benchmark (default: %(default)s)")
    return finish_protocol_arguments(p, p.parse_args(argv), smoke_presets=["base", "hybrid-0.5"])


def main(argv=None) -> dict:
    """Run the protocol for the chosen direction(s); returns direction -> :class:`ProtocolResult`."""
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    results = {}
    for direction in DIRECTIONS if args.direction == "both" else [args.direction]:
        train_on, evaluate_on = DIRECTIONS[direction]
        sample = sample_benchmark(evaluate_on, paragraphs=args.paragraphs, max_queries=args.max_queries,
                                  seed=args.sample_seed) if (args.paragraphs or args.max_queries) else None
        needs_training = any(p != "base" for p in args.presets)
        result = run_protocol(
            args.presets, train_pairs=pairs_from_benchmark(train_on) if needs_training else None,
            eval_benchmark=evaluate_on, out_dir=args.out / direction, sample=sample, model=args.model,
            budget=args.budget, seeds=args.seeds,
            train_description=f"{train_on}, all languages and language pairs")
        results[direction] = result
        report(f"Trained on {train_on}, evaluated zero-shot on {evaluate_on}", args.out / direction)
    return results


if __name__ == "__main__":
    main()
