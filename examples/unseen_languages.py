"""Languages never seen in training: train on MLQA-R's 7 languages, evaluate on XQuAD-R's 11.

MLQA-R has ar, de, en, es, hi, vi, zh; XQuAD-R adds el, ru, th and tr, which the fine-tuning data never
shows. Every preset is trained on MLQA-R under the same budget and evaluated zero-shot on all 121 XQuAD-R
settings + pooled (over a slice). Besides the protocol's columns (mono / cross / pooled mAP, bias) the table
has the mean AP over the settings whose languages were all seen in training (``seen_mAP``), over those that
involve at least one unseen language (``with_unseen_mAP``) and over those with only unseen languages
(``unseen_only_mAP``); ``per_language.md`` and ``plots/per_language.png`` break monolingual and pooled AP
down per language, unseen languages marked. Does fine-tuning on 7 languages transfer to the other 4, or does
it pull their vectors away from the rest?

CPU-sized by default (one seed; 6 min measured here on 2 CPU cores with the offline e5-small): presets
base, x-y, mono and hybrid-0.5, 30 steps at batch 16 each, an XQuAD-R slice of 24 paragraphs and 48
question groups.

    python examples/unseen_languages.py
    python examples/unseen_languages.py --seeds 0,1,2 --presets base,mono,hybrid-0.5
    python examples/unseen_languages.py --full --steps 1000 --batch-size 64 --model intfloat/multilingual-e5-small

Writes to ``--out`` (default ``outputs/unseen_languages``): ``summary.md``/``.csv``, ``runs.csv``, ``grids/``,
``per_language.md``/``.csv`` and ``plots/`` (heatmaps, deltas vs base, ``summary.png``, ``per_language.png``).
"""

from __future__ import annotations

import argparse

import pyterrier_hybrid  # noqa: F401  (registers the datasets)
from pyterrier_hybrid.languages import MLQA_R_LANGS, XQUAD_R_LANGS
from pyterrier_hybrid.study import parse_protocol_args, run_group_example

SEEN = tuple(lang for lang in XQUAD_R_LANGS if lang in MLQA_R_LANGS)
UNSEEN = tuple(lang for lang in XQUAD_R_LANGS if lang not in MLQA_R_LANGS)  # el, ru, th, tr
GROUPS = {
    "seen_mAP": lambda q, d: q in SEEN and d in SEEN,
    "with_unseen_mAP": lambda q, d: q in UNSEEN or d in UNSEEN,
    "unseen_only_mAP": lambda q, d: q in UNSEEN and d in UNSEEN,
}


def parse_args(argv=None) -> argparse.Namespace:
    """Command-line options (``--help``)."""
    return parse_protocol_args(argv, doc=__doc__, presets=["base", "x-y", "mono", "hybrid-0.5"],
                               smoke_presets=["base", "hybrid-0.5"], paragraphs=24, max_queries=48,
                               out="outputs/unseen_languages")


def main(argv=None):
    """Train on MLQA-R, evaluate on XQuAD-R; returns the :class:`~pyterrier_hybrid.protocol.ProtocolResult`."""
    args = parse_args(argv)
    return run_group_example(
        args, train_on="mlqa-r", evaluate_on="xquad-r", groups=GROUPS, highlight=UNSEEN,
        label=f"unseen in training ({','.join(UNSEEN)})", others="seen",
        title="Trained on MLQA-R (7 languages), evaluated zero-shot on XQuAD-R (11)")


if __name__ == "__main__":
    main()
