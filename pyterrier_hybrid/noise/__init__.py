"""Seeded synthetic noise for multilingual queries: typos, informal spelling, dialect, romanisation.

>>> from pyterrier_hybrid.noise import perturb
>>> perturb("Wie viele Bälle fing Josh Norman ab?", "de", model="typo", level=0)
'Wie viele Bälle fing Josh Norman ab?'

Models (:data:`NOISE_MODELS`): ``typo`` (keyboard typos on the language's layout),
``orthographic`` (informal spelling), ``dialect`` (regional words and spellings), ``script``
(romanisation as typed on a Latin keyboard) and ``mixed`` (one of them per word). A level is the
percent of words touched; see :mod:`.models` for what that means when a model can change fewer
words, and ``docs/noise.md`` for examples and per-language coverage.

Noisy XQuAD-R/MLQA-R entries (``xquad-r/en-de/noise-typo-20``) are registered with ir_datasets
on ``import pyterrier_hybrid`` (see :mod:`pyterrier_hybrid.datasets.noisy`);
:class:`NoiseTransformer` perturbs the ``query`` column of any PyTerrier frame. This package only turns text
into text; :func:`pyterrier_hybrid.datasets.noisy.preview` (``pyterrier-hybrid noise preview``) prints
before/after examples of benchmark questions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .models import (
    DESCRIPTIONS,
    NOISE_LEVELS,
    NOISE_MODELS,
    SCRIPT_PRESERVING,
    perturb,
    validate_level,
    validate_model,
    validate_seed,
)
from .segment import word_spans, words

if TYPE_CHECKING:
    from .transformer import NoiseTransformer


def __getattr__(name: str):
    if name == "NoiseTransformer":  # imports PyTerrier: only when asked for
        from .transformer import NoiseTransformer

        return NoiseTransformer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DESCRIPTIONS",
    "NOISE_LEVELS",
    "NOISE_MODELS",
    "SCRIPT_PRESERVING",
    "NoiseTransformer",
    "perturb",
    "validate_level",
    "validate_model",
    "validate_seed",
    "word_spans",
    "words",
]
