"""Before/after examples of a noise model on real benchmark questions."""

from __future__ import annotations

import numbers
import sys
from typing import TextIO

from .models import perturb, validate_level, validate_model, validate_seed


def preview(lang: str, model: str, level: float, n: int = 5, seed: int = 0, *, benchmark: str = "xquad-r",
            file: TextIO | None = None) -> list[tuple[str, str, str]]:
    """Print ``n`` questions of ``lang`` before and after noise, as the noisy datasets perturb them.

    The questions are spread evenly over the benchmark's file; the noise is keyed by query id as in
    the registered entries, so the noisy text shown is the one ``<benchmark>/<lang>/noise-<model>-<level>``
    (seed 0) holds.

    Args:
        lang: question language (a language of ``benchmark``).
        model: a noise model.
        level: percent of words to touch.
        n: number of examples.
        seed: the noise seed.
        benchmark: ``"xquad-r"`` or ``"mlqa-r"``.
        file: where to print (default: standard output).

    Returns:
        ``(query_id, clean, noisy)`` for each example.
    """
    from ..datasets import load_language
    from ..languages import validate_benchmark, validate_lang

    validate_lang(lang, validate_benchmark(benchmark), what=f"{benchmark} question language")
    validate_model(model)
    validate_level(level)
    seed = validate_seed(seed)
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise ValueError(f"n (the number of examples) must be an integer >= 1; got {n!r}")
    queries = load_language(benchmark, lang).queries
    step = max(len(queries) // n, 1)
    chosen = queries[::step][:n]
    out = file or sys.stdout
    print(f"{benchmark} {lang} questions, noise model {model!r}, level {level:g}%, seed {seed}", file=out)
    examples = []
    for query in chosen:
        noisy = perturb(query.text, lang, model=model, level=level, seed=seed, key=query.query_id)
        examples.append((query.query_id, query.text, noisy))
        print(f"\n{query.query_id}\n  before: {query.text}\n  after:  {noisy}", file=out)
    return examples
