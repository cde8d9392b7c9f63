"""Rank fusion of retrievers (e.g. BM25 + dense), each one PyTerrier expression usable in ``pt.Experiment``.

* :func:`rrf` — reciprocal-rank fusion (Cormack, Clarke & Büttcher, SIGIR 2009): the score of a document is
  ``sum over runs of 1 / (k + rank)`` with ranks counted **from 1**, as in the paper. It is
  :class:`pyterrier_alpha.RRFusion` (whose ``rr_fusion`` does the merging) with three fixes: PyTerrier ranks count
  from 0, so ``k + 1`` is passed on; ``num_results=None`` keeps everything (pyterrier-alpha 0.16.5 raises);
  empty inputs give an empty result frame with the usual columns; runs are merged on ``qid`` and ``docno`` only
  (``rr_fusion`` also merges on ``query``, so two runs that spell one query differently would give the same
  document twice).
* :func:`linear_fusion` — ``weight * norm(a) + (1 - weight) * norm(b)`` with per-query min-max normalisation,
  written with PyTerrier's own ``>>``, ``*`` and ``+`` operators (``+`` gives 0 to a document that a run did
  not retrieve). The min-max step is :class:`PerQueryMinMax`: pyterrier-alpha's ``PerQueryMaxMinScore`` fails to
  import its validator in 0.16.5, so the same formula is implemented here.

Both are inspectable like PyTerrier's own operators (``pt.inspect.subtransformers``, ``transformer_inputs``,
``transformer_outputs`` answer from the fused retrievers, without running them) and fold a following ``% k``
into their ``num_results`` when the pipeline is compiled.

Every run is checked before it is fused: its scores must be finite (``linear_fusion`` would otherwise count a NaN
as 0 and ``rrf`` rank it arbitrarily) and it may rank a document only once per query (a repeated document would be
counted twice). Both are errors naming the run, the qid (and the docno).

Example::

    from pyterrier_hybrid.fusion import linear_fusion, rrf

    hybrid_rrf = rrf(bm25, dense, k=60, num_results=1000)
    hybrid_lin = linear_fusion(bm25, dense, weight=0.3)
    pt.Experiment([bm25, dense, hybrid_rrf, hybrid_lin], topics, qrels, eval_metrics=["AP"])
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyterrier as pt
import pyterrier_alpha as pta

from ._checks import check_finite, check_int, check_number, folded_cutoff

__all__ = ["LinearFusion", "PerQueryMinMax", "RRF", "check_run", "linear_fusion", "rrf"]

NORMALISATIONS = ("minmax", "none")
RUN_COLUMNS = ("qid", "docno", "score")



def _check_transformers(transformers: tuple[Any, ...], what: str) -> None:
    for i, t in enumerate(transformers):
        if not isinstance(t, pt.Transformer):
            raise TypeError(f"{what} fuses transformers, but argument {i} is a {type(t).__name__}; wrap a fixed run "
                            "in pt.Transformer.from_df(run)")


def _common_inputs(transformers: Sequence[pt.Transformer]) -> list[list[str]]:
    """Input configurations that every one of ``transformers`` accepts, in the first transformer's priority order.

    A candidate is the union of one configuration of each transformer; it is kept when each transformer accepts
    it (``pt.inspect.transformer_outputs`` succeeds: a superset is not always accepted, e.g. a query frame must not
    carry ``docno``). ``pt.inspect._minimal_inputs`` (what ``**`` uses) is private and returns its columns in set
    order, so this small variant keeps the order deterministic.
    """
    configs = [pt.inspect.transformer_inputs(t) for t in transformers]
    out: list[list[str]] = []
    for combo in itertools.product(*configs):
        candidate = list(dict.fromkeys(c for config in combo for c in config))
        if any(set(candidate) == set(seen) for seen in out):
            continue
        if all(pt.inspect.transformer_outputs(t, candidate, strict=False) is not None for t in transformers):
            out.append(candidate)
    return out


def _name(i: int, transformer: pt.Transformer) -> str:
    """A one-line name of run ``i`` for messages (some reprs span lines)."""
    text = " ".join(repr(transformer).split())
    return f"run {i} ({text[:80]}{'...' if len(text) > 80 else ''})"


def check_run(run: pd.DataFrame, name: str, *, columns: tuple[str, ...] = RUN_COLUMNS) -> None:
    """Refuse a run that fusion would turn into wrong numbers silently.

    Args:
        run: a result frame.
        name: the run, for messages (``"run 1 (BM25Retriever(...))"``).
        columns: the columns the run must have.

    Raises:
        ValueError: a column is missing, a docno is missing, a score is not a number, or a document is ranked
            twice for one query.
        NonFiniteError: a score is NaN or infinite (names the qid).
    """
    missing = [c for c in columns if c not in run.columns]
    if missing:
        raise ValueError(f"{name} lacks column(s) {missing}; fusion needs result frames with {', '.join(columns)}")
    if not len(run):
        return
    try:
        scores = run["score"].to_numpy(dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"the scores of {name} are not numbers (dtype {run['score'].dtype}); a run's score "
                         "column must be numeric") from None
    check_finite(scores, what=f"the scores of {name}", ids=run["qid"].tolist(), id_name="qid",
                 hint="fusion would count them as 0 or rank them arbitrarily; fix the retriever or drop those rows")
    no_docno = run["docno"].isna().to_numpy()
    if no_docno.any():
        qid = run["qid"].iloc[int(np.flatnonzero(no_docno)[0])]
        raise ValueError(f"{name} has a row without docno for qid {qid!r} ({int(no_docno.sum())} rows in all); "
                         "every retrieved row needs its docno")
    repeated = run.duplicated(["qid", "docno"]).to_numpy()
    if repeated.any():
        row = run.iloc[int(np.flatnonzero(repeated)[0])]
        raise ValueError(f"{name} ranks docno {row['docno']!r} more than once for qid {row['qid']!r} "
                         f"({int(repeated.sum())} repeated rows in all); a run ranks each document once per query "
                         "(keep the best row of each, e.g. run.drop_duplicates(['qid', 'docno']))")


class _CheckRun(pt.Transformer):
    """Passes a run through after :func:`check_run` (the first stage of each side of :class:`LinearFusion`)."""

    # Declared, since check_run's own error (it names the run) is not the InputValidationError pt.inspect reads.
    transform_inputs = [list(RUN_COLUMNS)]

    def __init__(self, name: str) -> None:
        self.name = name

    def transform_outputs(self, input_columns: list[str]) -> list[str]:
        """The input columns, once they hold a run (``qid``, ``docno``, ``score``)."""
        pt.validate.result_frame(input_columns, extra_columns=["score"])
        return list(input_columns)

    def transform(self, inp: pd.DataFrame) -> pd.DataFrame:
        """Check ``inp`` and return it unchanged."""
        check_run(inp, self.name)
        return inp

    def __repr__(self) -> str:
        return f"_CheckRun({self.name!r})"


class PerQueryMinMax(pt.Transformer):
    """Rescales ``score`` to [0, 1] within each query: ``(s - min) / (max - min)``.

    A query whose scores are all equal (e.g. a single result) gets 0 for each, as with
    :func:`sklearn.preprocessing.minmax_scale` (and pyterrier-alpha's ``PerQueryMaxMinScore``). Ranks are kept.
    A NaN or infinite score is an error (it would turn every score of its query into NaN).
    """

    def transform(self, inp: pd.DataFrame) -> pd.DataFrame:
        """Normalise the scores of ``inp`` (needs ``qid``, ``docno``, ``score``)."""
        with pta.validate.any(inp) as v:
            v.result_frame(extra_columns=["score"])
        if len(inp) == 0:
            return inp.copy()
        check_finite(inp["score"].to_numpy(dtype=np.float64), what="the scores given to PerQueryMinMax",
                     ids=inp["qid"].tolist(), id_name="qid", hint="fix the retriever or drop those rows")
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
        k: the RRF constant (60 in Cormack et al.), a finite number >= 0.
        num_results: results kept per query (a positive int); ``None`` keeps all.

    The output has ``qid``, ``query``, ``docno``, ``score``, ``rank``; other columns (e.g. ``text``) are
    dropped, as in :func:`pyterrier_alpha.fusion.rr_fusion`. The ``query`` of a qid is the one of the first run
    that retrieved anything for it. Ties are broken by the merged order.

    Raises:
        ValueError: at transform time, for a run with a NaN/infinite score or one that ranks a docno twice for
            one query (see :func:`check_run`).
    """

    def __init__(self, *transformers: pt.Transformer, k: float = 60, num_results: int | None = 1000) -> None:
        if not transformers:
            raise ValueError("rrf needs at least one transformer to fuse")
        _check_transformers(transformers, "rrf")
        k = check_number(k, "the RRF constant k")
        if k < 0:
            raise ValueError(f"the RRF constant k must be >= 0, got {k!r}")
        super().__init__(*transformers, k=k, num_results=check_int(num_results, "num_results", optional=True))

    def subtransformers(self) -> dict[str, list[pt.Transformer]]:
        """The fused retrievers (``pt.inspect.subtransformers``)."""
        return {"transformers": list(self.transformers)}

    def transform_inputs(self) -> list[list[str]]:
        """Input configurations every fused retriever accepts (``pt.inspect.transformer_inputs``)."""
        return _common_inputs(self.transformers)

    def transform_outputs(self, input_columns: list[str]) -> list[str]:
        """``qid, query, docno, score, rank`` once each retriever accepts ``input_columns`` and returns a ranking.

        Raises:
            pt.validate.InputValidationError: a retriever refuses ``input_columns`` or would return no ranking.
        """
        for t in self.transformers:
            pt.validate.result_frame(pt.inspect.transformer_outputs(t, input_columns), extra_columns=["query", "score"])
        return ["qid", "query", "docno", "score", "rank"]

    def fuse_rank_cutoff(self, k: int) -> RRF | None:
        """``self % k`` as one fusion keeping ``min(num_results, k)`` results (PyTerrier's compile step)."""
        num = folded_cutoff(k, self.num_results)
        if num is None or num == self.num_results:
            return None if num is None else self
        return RRF(*self.transformers, k=self.k, num_results=num)

    def transform(self, inp: pd.DataFrame) -> pd.DataFrame:
        """Run every transformer on ``inp`` and fuse their rankings."""
        runs = [t(inp) for t in self.transformers]
        for i, run in enumerate(runs):
            check_run(run, _name(i, self.transformers[i]), columns=("qid", "query", "docno", "score"))
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
        # Merge on qid and docno alone (rr_fusion merges on query too), then give each qid its first run's query.
        queries = pd.concat([r[["qid", "query"]] for r in runs]).drop_duplicates("qid").set_index("qid")["query"]
        out = pta.fusion.rr_fusion(*[r[["qid", "docno", "score"]].assign(query="") for r in runs], k=self.k + 1,
                                   num_results=num)
        out["query"] = out["qid"].map(queries)
        return out[["qid", "query", "docno", "score", "rank"]].reset_index(drop=True)

    def __repr__(self) -> str:
        inner = ", ".join(map(repr, self.transformers))
        return f"RRF({inner}, k={self.k!r}, num_results={self.num_results!r})"


def rrf(*retrievers: pt.Transformer, k: float = 60, num_results: int | None = 1000) -> RRF:
    """Reciprocal-rank fusion of ``retrievers`` (see :class:`RRF`).

    Args:
        retrievers: transformers that each return a ranking (``qid, query, docno, score``) with finite scores and
            each document at most once per query (otherwise the fused run is refused with an error naming the
            run, the qid and the docno).
        k: RRF constant, finite and >= 0; a document at rank r (from 1) in a run earns ``1 / (k + r)``.
        num_results: results kept per query, a positive int (``None``: all).
    """
    return RRF(*retrievers, k=k, num_results=num_results)


def linear_fusion(
    a: pt.Transformer,
    b: pt.Transformer,
    *,
    weight: float = 0.5,
    normalize: str | None = "minmax",
    num_results: int | None = None,
) -> pt.Transformer:
    """Score-level fusion ``weight * norm(a) + (1 - weight) * norm(b)``, per query.

    A document retrieved by only one run gets 0 from the other (after normalisation, the score of the worst
    retrieved document). Built from PyTerrier operators, so it prints and composes like any pipeline.

    Each run must have finite scores and rank each document at most once per query: a NaN score would count as 0
    and a repeated document twice, so either is an error naming the run, the qid (and the docno).

    Args:
        a: first retriever (e.g. BM25).
        b: second retriever (e.g. dense).
        weight: weight of ``a``, a number in [0, 1]; ``b`` gets ``1 - weight``.
        normalize: ``"minmax"`` (per-query min-max, :class:`PerQueryMinMax`) or ``"none"``/``None`` (raw scores).
        num_results: keep this many results per query, a positive int (``None``: all).
    """
    return LinearFusion(a, b, weight=weight, normalize=normalize, num_results=num_results)


class LinearFusion(pt.Transformer):
    """The pipeline of :func:`linear_fusion` (``(a >> norm) * w + (b >> norm) * (1 - w)``, then a cutoff).

    It adds a check of each run (:func:`check_run`: finite scores, each document once per query) before anything
    is combined, and one repair to PyTerrier's ``+``: a document that only the second run retrieved would get NaN
    in the input's columns (``query`` ...), which are filled back from the input here (per query, or per query and
    document when the input is a result frame being re-ranked). Its options are checked as :func:`linear_fusion`
    describes.
    """

    def __init__(
        self, a: pt.Transformer, b: pt.Transformer, *, weight: float, normalize: str | None, num_results: int | None
    ) -> None:
        _check_transformers((a, b), "linear_fusion")
        weight = check_number(weight, "weight")
        if not 0.0 <= weight <= 1.0:
            raise ValueError(f"weight must be in [0, 1] (the weight of the first run), got {weight!r}")
        norm = "none" if normalize is None else normalize
        if norm not in NORMALISATIONS:
            raise ValueError(f"unknown normalize={normalize!r}; valid values are: {', '.join(NORMALISATIONS)}, None")
        self.a, self.b = a, b
        self.weight, self.normalize = weight, norm
        self.num_results = check_int(num_results, "num_results", optional=True)
        a, b = a >> _CheckRun(_name(0, a)), b >> _CheckRun(_name(1, b))
        if norm == "minmax":
            a, b = a >> PerQueryMinMax(), b >> PerQueryMinMax()
        fused = a * weight + b * (1.0 - weight)
        self.pipeline = fused % self.num_results if self.num_results is not None else fused

    def subtransformers(self) -> dict[str, pt.Transformer]:
        """The two fused retrievers (``pt.inspect.subtransformers``), not the internal pipeline."""
        return {"a": self.a, "b": self.b}

    def transform_inputs(self) -> list[list[str]]:
        """Input configurations both retrievers accept (``pt.inspect.transformer_inputs``)."""
        return _common_inputs((self.a, self.b))

    def transform_outputs(self, input_columns: list[str]) -> list[str]:
        """The columns of ``a``'s run, then those only ``b``'s run has, then ``rank`` (PyTerrier's ``+`` re-ranks).

        Raises:
            pt.validate.InputValidationError: a retriever refuses ``input_columns`` or would return no ranking.
        """
        out_a, out_b = (pt.inspect.transformer_outputs(t, input_columns) for t in (self.a, self.b))
        for out in (out_a, out_b):
            pt.validate.result_frame(out, extra_columns=["score"])
        return [c for c in dict.fromkeys([*out_a, *out_b]) if c != "rank"] + ["rank"]

    def fuse_rank_cutoff(self, k: int) -> LinearFusion | None:
        """``self % k`` as one fusion keeping ``min(num_results, k)`` results (PyTerrier's compile step)."""
        num = folded_cutoff(k, self.num_results)
        if num is None or num == self.num_results:
            return None if num is None else self
        return LinearFusion(self.a, self.b, weight=self.weight, normalize=self.normalize, num_results=num)

    def transform(self, inp: pd.DataFrame) -> pd.DataFrame:
        """Run both retrievers on ``inp`` and combine their scores."""
        out = self.pipeline(inp)
        # Re-ranking (the input has docno): its columns (text ...) belong to each document, not to the query.
        keys = ["qid", "docno"] if "docno" in inp.columns else ["qid"]
        cols = [c for c in inp.columns if c not in ("qid", "docno", "score", "rank") and c in out.columns]
        if cols and len(out):
            source = inp[[*keys, *cols]].drop_duplicates(keys)
            order = list(out.columns)
            out = out.drop(columns=cols).merge(source, on=keys, how="left")[order]
        return out

    def __repr__(self) -> str:
        return (
            f"LinearFusion({self.a!r}, {self.b!r}, weight={self.weight!r}, normalize={self.normalize!r}, "
            f"num_results={self.num_results!r})"
        )
