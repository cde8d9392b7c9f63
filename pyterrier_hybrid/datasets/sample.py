"""Reproducible CPU-sized slices of XQuAD-R / MLQA-R that keep the benchmark's structure.

Encoding all of XQuAD-R (26k texts) takes about 20 minutes on 2 CPU cores, so experiments that compare
many models evaluate on a slice. A slice keeps **whole paragraphs in every language**: a random set of
paragraphs (keyed by the paragraph of each question group's English gold sentence) defines the candidate
pool, which is every sentence of those paragraphs' translations, and a random subset of their question
groups is asked in every language. Every gold sentence of a kept question is in the pool, all settings
(mono, cross, pooled) stay meaningful and the pool is the same for every model, so models are compared
on identical candidates. The slice is a pure function of ``(benchmark, paragraphs, max_queries, seed)``.

Example::

    sample = sample_benchmark("xquad-r", paragraphs=30, max_queries=60, seed=0)
    grid = evaluate_grid(encoder, "xquad-r", sample=sample)
    topics, qrels = sample.topics(topics), sample.qrels(qrels)   # the same slice for pt.Experiment
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..languages import ID_SEP, validate_benchmark
from .lareqa import load_language

__all__ = ["BenchmarkSample", "query_group", "sample_benchmark"]


def _paragraph(docno: str) -> str:
    """``<lang>_<paragraph>`` of a doc id ``<lang>_<paragraph>_<sentence>``."""
    return docno.rsplit(ID_SEP, 1)[0]


def query_group(qid: str) -> str:
    """The parallel group id of a query id ``<lang>_<group>``."""
    return qid.partition(ID_SEP)[2]


@dataclass(frozen=True)
class BenchmarkSample:
    """A slice of a benchmark: the question groups asked and the candidate pool (all languages).

    Attributes:
        benchmark: ``"xquad-r"`` or ``"mlqa-r"``.
        groups: parallel group ids whose questions are asked (in every language that has them).
        docnos: doc ids of the candidate pool.
        description: how it was drawn, for reports.
    """

    benchmark: str
    groups: frozenset[str]
    docnos: frozenset[str]
    description: str

    def keeps_query(self, qid: str) -> bool:
        """Whether query ``<lang>_<group>`` is in the slice."""
        return query_group(qid) in self.groups

    def keeps_doc(self, docno: str) -> bool:
        """Whether candidate ``docno`` is in the pool."""
        return docno in self.docnos

    def topics(self, topics: pd.DataFrame) -> pd.DataFrame:
        """The rows of a PyTerrier topics frame (``qid`` column) that the slice asks."""
        return topics[topics["qid"].map(self.keeps_query)].reset_index(drop=True)

    def qrels(self, qrels: pd.DataFrame) -> pd.DataFrame:
        """The rows of a PyTerrier qrels frame (``qid``, ``docno``) inside the slice."""
        keep = qrels["qid"].map(self.keeps_query) & qrels["docno"].map(self.keeps_doc)
        return qrels[keep].reset_index(drop=True)

    def corpus(self, corpus: pd.DataFrame) -> pd.DataFrame:
        """The rows of a corpus frame (``docno`` column) in the pool."""
        return corpus[corpus["docno"].map(self.keeps_doc)].reset_index(drop=True)


def sample_benchmark(benchmark: str, *, paragraphs: int = 0, max_queries: int = 0, seed: int = 0) -> BenchmarkSample:
    """Draw a reproducible slice of ``benchmark`` (see the module docstring).

    Args:
        benchmark: ``"xquad-r"`` or ``"mlqa-r"``.
        paragraphs: number of English paragraphs whose translations form the pool (0 = all).
        max_queries: question groups asked, drawn from the groups of the kept paragraphs (0 = all of them).
        seed: random seed of both draws.

    Raises:
        ValueError: unknown benchmark, sizes that are not integers >= 0 (a NaN would silently mean "all"), or a
            seed that is not an integer >= 0; checked before any file is read.
    """
    langs = validate_benchmark(benchmark)
    for name, value in (("paragraphs", paragraphs), ("max_queries", max_queries), ("seed", seed)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
            raise ValueError(f"{name} must be an integer >= 0{' (0 = all)' if name != 'seed' else ''}, "
                             f"got {value!r}")
    data = {lang: load_language(benchmark, lang) for lang in langs}
    key_lang = "en" if "en" in data else langs[0]
    # Each group is keyed by the paragraph of its gold sentence in the key language (or the first
    # language that has the group, for groups without it).
    keys: dict[str, str] = {}
    for lang in (key_lang, *langs):
        for group, docno in data[lang].gold.items():
            keys.setdefault(group, _paragraph(docno))
    rng = np.random.default_rng(seed)
    all_keys = sorted(set(keys.values()))
    if paragraphs and paragraphs < len(all_keys):
        all_keys = sorted(rng.choice(all_keys, size=paragraphs, replace=False).tolist())
    kept_keys = set(all_keys)
    pool_groups = sorted(g for g, k in keys.items() if k in kept_keys)
    groups = pool_groups
    if max_queries and max_queries < len(groups):
        groups = sorted(rng.choice(groups, size=max_queries, replace=False).tolist())
    pool_paragraphs = {_paragraph(d.gold[g]) for d in data.values() for g in pool_groups if g in d.gold}
    docnos = frozenset(doc.doc_id for d in data.values() for doc in d.docs if _paragraph(doc.doc_id) in pool_paragraphs)
    description = (f"{benchmark} slice: {len(kept_keys)} paragraphs (seed {seed}), {len(groups)} question groups, "
                   f"{len(docnos)} candidates")
    return BenchmarkSample(benchmark, frozenset(groups), docnos, description)
