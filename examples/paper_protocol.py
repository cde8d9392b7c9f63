"""The paper's protocol: zero-shot base vs En-En, X-X, X-Y, mono, cross and hybrid(α) fine-tuning.

Elmahdy, Lin & Ahmad (2024, arXiv 2408.10536), Tables 1-2: every preset fine-tunes the same model on
MLQA-R with the same budget and is evaluated zero-shot on XQuAD-R (``--direction mlqa-xquad``, the
default), or trains on XQuAD-R and is evaluated on MLQA-R (``xquad-mlqa``; ``both`` runs the two).
Columns: mean monolingual mAP, mean cross-lingual mAP, pooled multilingual mAP, and the pooled-setting
language-bias measures (rank distance, same-language preference, PEER), as mean ± sd over ``--seeds``.

CPU-sized by default (one seed; 27 min measured here on 2 CPU cores shared with other jobs): 30 steps at
batch 16 per preset, evaluated on a slice of XQuAD-R (16 paragraphs with every translation as the pool,
770 candidates; 32 question groups asked in all 11 languages; see
:func:`pyterrier_hybrid.datasets.sample_benchmark`). ``--full`` evaluates on every
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

import pyterrier_hybrid  # noqa: F401  (registers the datasets)
from pyterrier_hybrid.protocol import PAPER_PRESETS
from pyterrier_hybrid.study import parse_protocol_args, report, run_example_protocol

DIRECTIONS = {"mlqa-xquad": ("mlqa-r", "xquad-r"), "xquad-mlqa": ("xquad-r", "mlqa-r")}


def parse_args(argv=None) -> argparse.Namespace:
    """Command-line options (``--help``)."""

    def direction(p: argparse.ArgumentParser) -> None:
        p.add_argument("--direction", choices=[*DIRECTIONS, "both"], default="mlqa-xquad",
                       help="train-benchmark -> evaluation-benchmark (default: %(default)s)")

    return parse_protocol_args(argv, doc=__doc__, presets=PAPER_PRESETS, smoke_presets=["base", "hybrid-0.5"],
                               paragraphs=16, max_queries=32, out="outputs/paper_protocol", extra=direction)


def main(argv=None) -> dict:
    """Run the protocol for the chosen direction(s); returns direction -> :class:`ProtocolResult`."""
    args = parse_args(argv)
    results = {}
    for direction in DIRECTIONS if args.direction == "both" else [args.direction]:
        train_on, evaluate_on = DIRECTIONS[direction]
        results[direction] = run_example_protocol(args, train_on=train_on, evaluate_on=evaluate_on,
                                                  out=args.out / direction)
        report(f"Trained on {train_on}, evaluated zero-shot on {evaluate_on}", args.out / direction)
    return results


if __name__ == "__main__":
    main()
