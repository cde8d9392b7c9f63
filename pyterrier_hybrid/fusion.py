"""Rank fusion of retrievers (e.g. BM25 + dense), each one PyTerrier expression usable in ``pt.Experiment``.

* :func:`rrf` — reciprocal-rank fusion (Cormack, Clarke & Büttcher, SIGIR 2009): the score of a document is
  ``sum over runs of 1 / (k + rank)`` with ranks counted **from 1**, as in the paper. It is
  :class:`pyterrier_alpha.RRFusion` (whose ``rr_fusion`` does the merging) with three fixes: PyTerrier ranks count
  from 0, so ``k + 1`` is passed on; ``num_results=None`` keeps everything (pyterrier-alpha 0.16.5 raises);
  empty inputs give an empty result frame with the usual columns.
* :func:`linear_fusion` — ``weight * norm(a) + (1 - weight) * norm(b)`` with per-query min-max normalisation,
  written with PyTerrier's own ``>>``, ``*`` and ``+`` operators (``+`` gives 0 to a document that a run did
  not retrieve). The min-max step is :class:`PerQueryMinMax`: pyterrier-alpha's ``PerQueryMaxMinScore`` fails to
  import its validator in 0.16.5, so the same formula is implemented here.

Example::

    from pyterrier_hybrid.fusion import linear_fusion, rrf

    hybrid_rrf = rrf(bm25, dense, k=60, num_results=1000)
    hybrid_lin = linear_fusion(bm25, dense, weight=0.3)
    pt.Experiment([bm25, dense, hybrid_rrf, hybrid_lin], topics, qrels, eval_metrics=["AP"])
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyterrier as pt
import pyterrier_alpha as pta

__all__ = ["LinearFusion", "PerQueryMinMax", "RRF", "linear_fusion", "rrf"]

NORMALISATIONS = ("minmax", "none")


class PerQueryMinMax(pt.Transformer):
    """Rescales ``score`` to [0, 1] within each query: ``(s - min) / (max - min)``.

    A query whose scores are all equal (e.g. a single result) gets 0 for each, as with
    :func:`sklearn.preprocessing.minmax_scale` (and pyterrier-alpha's ``PerQueryMaxMinScore``). Ranks are kept.
    """

    def transform(self, inp: pd.DataFrame) -> pd.DataFrame:
        """Normalise the scores of ``inp`` (needs ``qid``, ``docno``, ``score``)."""
        with pta.validate.any(inp) as v:
            v.result_frame(extra_columns=["score"])
        if len(inp) == 0:
            return inp.copy()
        grouped = inp.groupby("qid", sort=False)["score"]
        lo = grouped.transform("min").to_numpy(dtype=np.float64)
        span = grouped.transform("max").to_numpy(dtype=np.float64) - lo
        score = inp["score"].to_numpy(dtype=np.float64)
        scaled = np.divide(score - lo, span, out=np.zeros_like(score), where=span > 0)
        return inp.assign(score=scaled)

    def __repr__(self) -> str:
        return "PerQueryMinMax()"


class RRF(pta.RRFusion):
    """Reciprocal-rank fusion with ranks counted from 1: ``score(d) = sum_i 1 / (k + rank_i(d))``.

    Args:
        transformers: the retrievers to fuse; each must output ``qid``, ``query``, ``docno``, ``score``.
        k: the RRF constant (60 in Cormack et al.).
        num_results: results kept per query; ``None`` keeps all.

    The output has ``qid``, ``query``, ``docno``, ``score``, ``rank``; other columns (e.g. ``text``) are
    dropped, as in :func:`pyterrier_alpha.fusion.rr_fusion`. Ties are broken by the merged order.
    """

    def __init__(self, *transformers: pt.Transformer, k: float = 60, num_results: int | None = 1000) -> None:
        if not transformers:
            raise ValueError("rrf needs at least one transformer to fuse")
        if k < 0:
            raise ValueError(f"the RRF constant k must be >= 0, got {k!r}")
        if num_results is not None and (not isinstance(num_results, int) or num_results < 1):
            raise ValueError(f"num_results must be a positive integer or None, got {num_results!r}")
        super().__init__(*transformers, k=k, num_results=num_results)

    def transform(self, inp: pd.DataFrame) -> pd.DataFrame:
        """Run every transformer on ``inp`` and fuse their rankings."""
        runs = [t(inp) for t in self.transformers]
        for i, run in enumerate(runs):
            missing = [c for c in ("qid", "query", "docno", "score") if c not in run.columns]
            if missing:
                raise ValueError(
                    f"run {i} ({self.transformers[i]!r}) lacks column(s) {missing}; RRF fuses result frames with "
                    "qid, query, docno and score"
                )
        runs = [r for r in runs if len(r)]
        if not runs:
            return pd.DataFrame(
                {
                    "qid": pd.Series(dtype=object),
                    "query": pd.Series(dtype=object),
                    "docno": pd.Series(dtype=object),
                    "score": pd.Series(dtype=np.float64),
                    "rank": pd.Series(dtype=np.int64),
                }
            )
        # rr_fusion uses 1 / (k + rank) with PyTerrier's 0-based rank; k + 1 gives the 1-based formula.
        num = self.num_results if self.num_results is not None else max(len(r) for r in runs) * len(runs)
        out = pta.fusion.rr_fusion(*[r.copy() for r in runs], k=self.k + 1, num_results=num)
        return out[["qid", "query", "docno", "score", "rank"]]

    def __repr__(self) -> str:
        inner = ", ".join(map(repr, self.transformers))
        return f"RRF({inner}, k={self.k!r}, num_results={self.num_results!r})"


def rrf(*retrievers: pt.Transformer, k: float = 60, num_results: int | None = 1000) -> RRF:
    """Reciprocal-rank fusion of ``retrievers`` (see :class:`RRF`).

    Args:
        retrievers: transformers that each return a ranking (``qid, query, docno, score``).
        k: RRF constant; a document at rank r (from 1) in a run earns ``1 / (k + r)``.
        num_results: results kept per query (``None``: all).
    """
    return RRF(*retrievers, k=k, num_results=num_results)


def linear_fusion(
    a: pt.Transformer,
    b: pt.Transformer,
    *,
    weight: float = 0.5,
    normalise: str | None = "minmax",
    num_results: int | None = None,
) -> pt.Transformer:
    """Score-level fusion ``weight * norm(a) + (1 - weight) * norm(b)``, per query.

    A document retrieved by only one run gets 0 from the other (after normalisation, the score of the worst
    retrieved document). Built from PyTerrier operators, so it prints and composes like any pipeline.

    Args:
        a: first retriever (e.g. BM25).
        b: second retriever (e.g. dense).
        weight: weight of ``a`` in [0, 1]; ``b`` gets ``1 - weight``.
        normalise: ``"minmax"`` (per-query min-max, :class:`PerQueryMinMax`) or ``"none"``/``None`` (raw scores).
        num_results: keep this many results per query (``None``: all).
    """
    if not 0.0 <= float(weight) <= 1.0:
        raise ValueError(f"weight must be in [0, 1] (the weight of the first run), got {weight!r}")
    norm = "none" if normalise is None else normalise
    if norm not in NORMALISATIONS:
        raise ValueError(f"unknown normalise={normalise!r}; valid values are: {', '.join(NORMALISATIONS)}, None")
    if num_results is not None and (not isinstance(num_results, int) or num_results < 1):
        raise ValueError(f"num_results must be a positive integer or None, got {num_results!r}")
    return LinearFusion(a, b, weight=float(weight), normalise=norm, num_results=num_results)


class LinearFusion(pt.Transformer):
    """The pipeline of :func:`linear_fusion` (``(a >> norm) * w + (b >> norm) * (1 - w)``, then a cutoff).

    It only adds one repair to PyTerrier's ``+``: a document that only the second run retrieved would get NaN in
    the query columns (``query`` ...), which are filled back from the input here.
    """

    def __init__(
        self, a: pt.Transformer, b: pt.Transformer, *, weight: float, normalise: str, num_results: int | None
    ) -> None:
        self.a, self.b = a, b
        self.weight, self.normalise, self.num_results = weight, normalise, num_results
        if normalise == "minmax":
            a, b = a >> PerQueryMinMax(), b >> PerQueryMinMax()
        fused = a * weight + b * (1.0 - weight)
        self.pipeline = fused % num_results if num_results is not None else fused

    def transform(self, inp: pd.DataFrame) -> pd.DataFrame:
        """Run both retrievers on ``inp`` and combine their scores."""
        out = self.pipeline(inp)
        query_cols = [c for c in inp.columns if c not in ("qid", "docno", "score", "rank") and c in out.columns]
        if query_cols and len(out):
            queries = inp[["qid", *query_cols]].drop_duplicates("qid")
            order = list(out.columns)
            out = out.drop(columns=query_cols).merge(queries, on="qid", how="left")[order]
        return out

    def __repr__(self) -> str:
        return (
            f"LinearFusion({self.a!r}, {self.b!r}, weight={self.weight!r}, normalise={self.normalise!r}, "
            f"num_results={self.num_results!r})"
        )
