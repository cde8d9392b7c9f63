"""Encode-once evaluation of the LAReQA grid (XQuAD-R: 121 settings + pooled; MLQA-R: 49 + pooled).

Every question and candidate sentence of every language is encoded exactly once
(:func:`encode_benchmark`); each setting is then answered by exact inner product from those vectors
and scored with the qrels of the registered ir_datasets entry (``xquad-r/<q>-<d>``, ``xquad-r/multi``).
The numbers are those ``pt.Experiment`` gives for the same vectors on the same entry: ranks follow
trec_eval (score descending, ties by doc id descending), only the top ``k`` (default 1000) of each
query count as retrieved, and AP / RR / nDCG / R / P / Success on binary qrels are computed from the
ranks of the relevant candidates with trec_eval's formulas (other measures go through ir_measures on
the top-``k`` run). :func:`evaluate_pipeline_grid` is the slow general path for any PyTerrier retrieval
pipeline: one ``pt.Experiment`` per setting.

Example::

    from pyterrier_hybrid.encoding import BiEncoder
    from pyterrier_hybrid.evaluation import evaluate_grid

    grid = evaluate_grid(BiEncoder(), "xquad-r", verbose=True)
    grid.summary()          # mean monolingual / mean cross-lingual / pooled per measure
    grid.matrix("AP")       # qlang x dlang
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import ir_datasets
import ir_measures
import numpy as np
import pandas as pd
import pyterrier as pt

from . import _trec
from . import measures as bias
from ._checks import NonFiniteError, TextError, check_finite, check_int, check_texts
from ._io import atomic_write_text
from .datasets import POOLED, BenchmarkSample, dataset_id
from .datasets import settings as benchmark_settings
from .languages import lang_of_id, validate_benchmark, validate_langs

__all__ = [
    "DEFAULT_BIAS_MEASURES",
    "DEFAULT_MEASURES",
    "ALL_QLANGS",
    "EncodedBenchmark",
    "Encoder",
    "GridResult",
    "LanguageVectors",
    "encode_benchmark",
    "evaluate_grid",
    "evaluate_pipeline_grid",
]

DEFAULT_MEASURES: tuple[ir_measures.Measure, ...] = (
    ir_measures.AP, ir_measures.nDCG @ 10, ir_measures.R @ 10, ir_measures.RR,
)
# PEER at the run depth: with a small cutoff a strongly same-language top list holds one language only,
# which PEER's Kruskal-Wallis test cannot compare (fewer than 2 groups -> p = 1, "fair"), so a shallow PEER
# can rank a more biased model as the fairer one.
DEFAULT_BIAS_MEASURES: tuple[str, ...] = ("RankDistance", "SameLangPref", "PEER@1000")
ALL_QLANGS = "all"  # qlang of the pooled row over all question languages


@runtime_checkable
class Encoder(Protocol):
    """What the grid needs from a bi-encoder (e.g. :class:`pyterrier_hybrid.encoding.BiEncoder`)."""

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors ``(n, dim)`` of questions."""

    def encode_docs(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors ``(n, dim)`` of candidate sentences."""


@dataclass
class LanguageVectors:
    """Vectors of one language of a benchmark, rows in file order.

    Attributes:
        qids: query ids (``<lang>_<group>``).
        qvecs: ``(n_queries, dim)`` question vectors.
        docnos: doc ids (``<lang>_<paragraph>_<sentence>``).
        dvecs: ``(n_docs, dim)`` candidate vectors.
    """

    qids: np.ndarray
    qvecs: np.ndarray
    docnos: np.ndarray
    dvecs: np.ndarray


@dataclass
class EncodedBenchmark:
    """Every question and candidate of a benchmark, encoded once.

    Attributes:
        benchmark: ``"xquad-r"`` or ``"mlqa-r"``.
        vectors: language → :class:`LanguageVectors`.
        sample: the slice that was encoded (None: the whole benchmark).
    """

    benchmark: str
    vectors: dict[str, LanguageVectors]
    sample: BenchmarkSample | None = None

    @property
    def langs(self) -> tuple[str, ...]:
        """Encoded languages."""
        return tuple(self.vectors)

    def project(self, lir: Any) -> EncodedBenchmark:
        """A copy with ``lir`` applied to every vector (e.g. :class:`pyterrier_hybrid.lir.LIR`).

        ``lir`` needs ``project(vectors, langs)``; when it has ``is_fitted`` false it is first fitted
        on the candidate vectors of every language (``fit_vectors({lang: dvecs})``), as LIR prescribes.
        The projected vectors are checked like encoded ones (:meth:`validate`).
        """
        if not getattr(lir, "is_fitted", True):
            lir.fit_vectors({lang: v.dvecs for lang, v in self.vectors.items()})
        out = {}
        for lang, v in self.vectors.items():
            out[lang] = LanguageVectors(
                v.qids, _as_matrix(lir.project(v.qvecs, [lang] * len(v.qids)), len(v.qids), "LIR projection"),
                v.docnos, _as_matrix(lir.project(v.dvecs, [lang] * len(v.docnos)), len(v.docnos), "LIR projection"))
        return EncodedBenchmark(self.benchmark, out, self.sample).validate(f"after the projection by {lir!r}")

    def validate(self, where: str = "") -> EncodedBenchmark:
        """Check that every language holds one finite vector per id, all of one dimension; return self.

        Args:
            where: where the vectors come from, for messages (``"after the projection by LIR(...)"``).

        Raises:
            ValueError: mismatched shapes or dimensions. NonFiniteError: NaN / infinite vectors (the
                language and the first ids named): a NaN score never compares smaller, so such vectors would
                rank relevant candidates first and score perfectly.
        """
        at = f" {where}" if where else ""
        if not self.vectors:
            raise ValueError(f"the encoded {self.benchmark} holds no language")
        dims = set()
        for lang, v in self.vectors.items():
            for vecs, ids, role, id_name in ((v.qvecs, v.qids, "question", "qid"),
                                             (v.dvecs, v.docnos, "candidate", "docno")):
                vecs = np.asarray(vecs)
                if vecs.ndim != 2 or len(vecs) != len(ids):
                    raise ValueError(f"{self.benchmark} {lang} {role} vectors{at} have shape {vecs.shape} for "
                                     f"{len(ids)} ids; expected ({len(ids)}, dim)")
                dims.add(vecs.shape[1])
                check_finite(vecs, what=f"{self.benchmark} {lang} {role} vectors{at}", ids=ids, id_name=id_name,
                             hint=_vector_hint(where))
        if len(dims) > 1:
            raise ValueError(f"the encoded {self.benchmark}{at} mixes vector dimensions {sorted(dims)}; encode every "
                             "language with the same encoder")
        return self

    def pool(self, dlang: str) -> tuple[np.ndarray, np.ndarray]:
        """Doc ids and vectors of candidate language ``dlang`` (``"multi"``: all languages)."""
        if dlang == POOLED:
            return (np.concatenate([v.docnos for v in self.vectors.values()]),
                    np.concatenate([v.dvecs for v in self.vectors.values()]))
        return self.vectors[dlang].docnos, self.vectors[dlang].dvecs

    def queries(self, qids: Sequence[str]) -> np.ndarray:
        """Question vectors of the given ids (any languages)."""
        index = self._query_index()
        try:
            return np.stack([self.vectors[index[q][0]].qvecs[index[q][1]] for q in qids]) if len(qids) else \
                np.zeros((0, self.dim), dtype=np.float32)
        except KeyError as e:
            raise KeyError(f"query {e.args[0]!r} was not encoded; encoded languages: {', '.join(self.langs)}") from e

    def _query_index(self) -> dict[str, tuple[str, int]]:
        if getattr(self, "_index", None) is None:
            self._index = {qid: (lang, i) for lang, v in self.vectors.items() for i, qid in enumerate(v.qids)}
        return self._index

    @property
    def dim(self) -> int:
        """Vector dimension."""
        return next(iter(self.vectors.values())).dvecs.shape[1]

    def run(self, qlang: str | None, dlang: str | None, *, num_results: int = 1000) -> pd.DataFrame:
        """The top-``num_results`` run of a setting as a PyTerrier result frame (qid, docno, score, rank).

        Args:
            qlang: question language (None with ``dlang`` None: the pooled setting).
            dlang: candidate language.
            num_results: run depth (the name PyTerrier retrievers use).
        """
        k = check_int(num_results, "num_results")
        qids = _setting_from_entry(self.benchmark, qlang, dlang, self.sample).qids
        docnos, dvecs = self.pool(POOLED if qlang is None else (dlang or qlang))
        order = _name_order(docnos)
        frames = []
        for start in range(0, len(qids), _BLOCK):
            scores = _scores(self.queries(qids[start:start + _BLOCK]), dvecs, qids[start:start + _BLOCK])
            top = _topk(scores, k, order)
            rows = np.arange(len(top))[:, None]
            frames.append(pd.DataFrame({
                "qid": np.repeat(qids[start:start + _BLOCK], top.shape[1]),
                "docno": docnos[top].ravel(),
                "score": scores[rows, top].ravel().astype(np.float64),
                "rank": np.tile(np.arange(top.shape[1]), len(top)),
            }))
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
            columns=["qid", "docno", "score", "rank"])


def encode_benchmark(encoder: Encoder, benchmark: str = "xquad-r", *, langs: Iterable[str] | None = None,
                     sample: BenchmarkSample | None = None, verbose: bool = False) -> EncodedBenchmark:
    """Encode every question and candidate sentence of ``benchmark`` once.

    Args:
        encoder: anything with ``encode_queries(texts)`` and ``encode_docs(texts)`` returning ``(n, dim)``
            arrays (e.g. :class:`pyterrier_hybrid.encoding.BiEncoder`).
        benchmark: ``"xquad-r"`` or ``"mlqa-r"``.
        langs: languages to encode (default: all of the benchmark).
        sample: encode only this slice (:func:`pyterrier_hybrid.datasets.sample_benchmark`).
        verbose: show a progress bar over languages.
    """
    all_langs = validate_benchmark(benchmark)
    langs = _langs(langs, all_langs, benchmark) if langs is not None else all_langs
    if not (callable(getattr(encoder, "encode_queries", None)) and callable(getattr(encoder, "encode_docs", None))):
        raise TypeError(f"{type(encoder).__name__} has no encode_queries/encode_docs; pass a bi-encoder such as "
                        "pyterrier_hybrid.encoding.BiEncoder, or use evaluate_pipeline_grid for other pipelines")
    if sample is not None and not isinstance(sample, BenchmarkSample):
        raise TypeError(f"sample must be a BenchmarkSample (pyterrier_hybrid.datasets.sample_benchmark), not "
                        f"{type(sample).__name__}")
    if sample is not None and sample.benchmark != benchmark:
        raise ValueError(f"the sample was drawn from {sample.benchmark}, not {benchmark}")
    # Every text of every language is checked before the first one is encoded. The texts come from the
    # registered monolingual entries, the data pt.Experiment reads through pt.get_dataset("irds:...").
    texts = {}
    for lang in langs:
        entry = ir_datasets.load(dataset_id(benchmark, lang))
        queries, docs = list(entry.queries_iter()), list(entry.docs_iter())
        if sample is not None:
            queries = [q for q in queries if sample.keeps_query(q.query_id)]
            docs = [d for d in docs if sample.keeps_doc(d.doc_id)]
        qids = np.array([q.query_id for q in queries], dtype=object)
        docnos = np.array([d.doc_id for d in docs], dtype=object)
        texts[lang] = (qids, check_texts([q.text for q in queries], qids, column=f"{benchmark} question",
                                         id_name="qid"),
                       docnos, check_texts([d.text for d in docs], docnos, column=f"{benchmark} candidate",
                                           id_name="docno"))
    vectors = {}
    for lang in pt.tqdm(langs, desc=f"encoding {benchmark}", unit="lang", disable=not verbose):
        qids, qtexts, docnos, dtexts = texts[lang]
        qvecs = _encode(encoder.encode_queries, qtexts, f"{benchmark} {lang} questions")
        dvecs = _encode(encoder.encode_docs, dtexts, f"{benchmark} {lang} candidates")
        if qvecs.shape[1] != dvecs.shape[1]:
            raise ValueError(f"query and doc vectors differ in dimension ({qvecs.shape[1]} vs {dvecs.shape[1]})")
        vectors[lang] = LanguageVectors(qids, qvecs, docnos, dvecs)
        # A custom encoder gets no check of its own: refuse its NaN / inf vectors here, naming the ids.
        EncodedBenchmark(benchmark, {lang: vectors[lang]}, sample).validate(f"from {_describe(encoder)}")
    return EncodedBenchmark(benchmark, vectors, sample)


def _describe(obj: Any) -> str:
    text = repr(obj)
    return text if len(text) <= 80 and "\n" not in text else type(obj).__name__


def _vector_hint(where: str) -> str:
    """The likely cause of non-finite vectors, for messages."""
    if "projection" in where:
        return "the projection produced them (check its directions, e.g. LIR fitted on NaN vectors)"
    return ("the encoder outputs NaN or infinity: its weights are damaged or its training diverged, or it "
            "returns values beyond float32 range")


def _encode(method: Callable[[list[str]], Any], texts: list[str], what: str) -> np.ndarray:
    """Call an encoder method; its text and finiteness errors get the benchmark and language prepended."""
    try:
        out = method(texts)
    except (TextError, NonFiniteError) as e:
        raise type(e)(f"{what}: {e}") from None
    return _as_matrix(out, len(texts), f"{getattr(method, '__name__', 'the encoder')} ({what})")


def _as_matrix(vectors: Any, n: int, what: str) -> np.ndarray:
    try:
        with np.errstate(over="ignore"):  # values beyond float32 become inf, refused by validate()
            vectors = np.asarray(vectors, dtype=np.float32)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{what} returned something that is not a float matrix ({type(vectors).__name__}: "
                         f"{' '.join(str(e).split())})") from None
    if vectors.ndim != 2 or len(vectors) != n:
        raise ValueError(f"{what} returned shape {vectors.shape}; expected ({n}, dim)")
    return vectors



def _langs(langs: Any, all_langs: Sequence[str], benchmark: str) -> tuple[str, ...]:
    """Languages as a tuple without repeats; a single code is one language (not its letters)."""
    if isinstance(langs, str):
        langs = [langs]
    try:
        langs = list(langs)
    except TypeError:
        raise ValueError(f"langs must be a list of {benchmark} language codes, got {langs!r}") from None
    return tuple(dict.fromkeys(validate_langs(langs, all_langs, what=f"{benchmark} language")))


def _scores(qvecs: np.ndarray, dvecs: np.ndarray, qids: Sequence[str]) -> np.ndarray:
    """Inner products, refused when not finite (finite vectors whose products overflow float32)."""
    with np.errstate(over="ignore", invalid="ignore"):
        scores = qvecs @ dvecs.T
    if not np.isfinite(scores).all():
        check_finite(scores, what="scores", ids=list(qids), id_name="qid",
                     hint="the vectors are too large for float32 inner products; normalise them")
    return scores


# --------------------------------------------------------------------------------------------------
# ranking helpers

_BLOCK = 512  # query rows scored at once (512 x 13k floats for the pooled XQuAD-R pool)


def _name_order(docnos: np.ndarray) -> np.ndarray:
    """Position of each doc id in ascending string order (trec_eval breaks score ties by doc id descending)."""
    order = np.empty(len(docnos), dtype=np.int64)
    order[np.argsort(docnos.astype(str), kind="stable")] = np.arange(len(docnos))
    return order


def _topk(scores: np.ndarray, k: int, name_order: np.ndarray) -> np.ndarray:
    """Column indices of the top ``k`` per row in trec_eval order (score desc, doc id desc)."""
    n = scores.shape[1]
    k = min(k, n)
    if k == 0:
        return np.zeros((len(scores), 0), dtype=np.int64)
    if k < n:
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    else:
        part = np.tile(np.arange(n), (len(scores), 1))
    out = np.empty((len(scores), k), dtype=np.int64)
    for i in range(len(scores)):
        cand = part[i]
        if k < n:
            threshold = scores[i, cand].min()
            if (scores[i] >= threshold).sum() > k:  # ties across the cut: take them all, order, then cut
                cand = np.flatnonzero(scores[i] >= threshold)
        keys = np.lexsort((-name_order[cand], -scores[i, cand].astype(np.float64)))
        out[i] = cand[keys[:k]]
    return out


def _relevant_ranks(scores: np.ndarray, rel_cols: np.ndarray, name_order: np.ndarray, k: int) -> np.ndarray:
    """Ranks (1-based, trec_eval order) of the relevant columns; ``inf`` beyond ``k`` and for padding (-1)."""
    ranks = np.full(rel_cols.shape, np.inf)
    rows = np.arange(len(scores))
    for c in range(rel_cols.shape[1]):
        cols = rel_cols[:, c]
        valid = cols >= 0
        safe = np.where(valid, cols, 0)
        value = scores[rows, safe][:, None]
        rank = (scores > value).sum(axis=1) + 1
        equal = scores == value
        tied = equal.sum(axis=1) > 1
        if tied.any():  # equal scores: the larger doc id comes first
            t = np.flatnonzero(tied)
            rank[t] += (equal[t] & (name_order[None, :] > name_order[safe[t]][:, None])).sum(axis=1)
        ranks[:, c] = np.where(valid & (rank <= k), rank, np.inf)
    return ranks


@dataclass
class _Setting:
    qlang: str
    dlang: str
    qids: list[str]
    qrels: dict[str, list[str]]  # qid -> relevant doc ids


def _setting_from_entry(benchmark: str, qlang: str | None, dlang: str | None,
                        sample: BenchmarkSample | None = None) -> _Setting:
    """Queries and qrels of a registered entry (exactly what pt.Experiment would be given), within ``sample``."""
    entry = ir_datasets.load(dataset_id(benchmark, qlang, dlang))
    qids = [q.query_id for q in entry.queries_iter() if sample is None or sample.keeps_query(q.query_id)]
    qrels: dict[str, list[str]] = {}
    for qrel in entry.qrels_iter():
        if qrel.relevance > 0 and (sample is None or (sample.keeps_query(qrel.query_id)
                                                      and sample.keeps_doc(qrel.doc_id))):
            qrels.setdefault(qrel.query_id, []).append(qrel.doc_id)
    return _Setting(qlang or ALL_QLANGS, POOLED if qlang is None else (dlang or qlang), qids, qrels)


_PEER_NAME = re.compile(r"^PEER(?:@(?P<cutoff>.*))?$")


def _measure_items(items: Any, what: str) -> list[Any]:
    """The entries of a ``measures`` argument: one name or measure counts as one (``"AP"`` is not A and P)."""
    if items is None:
        return []
    if isinstance(items, (str, ir_measures.measures.Measure)):
        return [items]
    try:
        return list(items)
    except TypeError:
        raise ValueError(f"{what} must be a measure name (e.g. 'AP'), an ir_measures measure or a list of them, "
                         f"got {items!r}") from None


def _parse_measure(m: Any, what: str) -> ir_measures.Measure:
    """One measure from a name or an ir_measures measure; a clear error for anything else."""
    if isinstance(m, str):
        try:
            m = ir_measures.parse_measure(m.strip())
        except (NameError, ValueError, SyntaxError, TypeError, AssertionError) as e:
            raise ValueError(f"{what}: cannot parse {m!r} ({' '.join(str(e).split())}); write names like 'AP', "
                             f"'nDCG@10', 'R@10', 'RR', 'P@5'; known names: "
                             f"{', '.join(sorted(ir_measures.measures.registry))}") from None
    elif not isinstance(m, ir_measures.measures.Measure):
        raise ValueError(f"{what}: {m!r} is neither a measure name (e.g. 'AP') nor an ir_measures measure")
    cutoff = m.params.get("cutoff")
    if cutoff is not None and (isinstance(cutoff, bool) or not isinstance(cutoff, numbers.Integral) or cutoff < 1):
        raise ValueError(f"{what}: {m} has cutoff {cutoff!r}; a cutoff is an int >= 1 (e.g. nDCG@10)")
    return m


def _normalise_measures(items: Any, what: str = "measures") -> list[ir_measures.Measure]:
    """Parse ``measures`` (a name, a measure or a list), without repeats, each checked computable."""
    out = {}
    for m in _measure_items(items, what):
        m = _parse_measure(m, what)
        out.setdefault(str(m), m)
    for m in out.values():
        _check_computable(m, what)
    return list(out.values())


def _parse_bias(items: Any, langs: Sequence[str], what: str = "bias_measures") -> list[ir_measures.Measure]:
    """Bias measures; ``"PEER@k"`` strings become :func:`~pyterrier_hybrid.measures.peer` measures."""
    out = {}
    for m in _measure_items(items, what):
        match = _PEER_NAME.match(m.strip()) if isinstance(m, str) else None
        if match:
            cutoff = match["cutoff"]
            if cutoff is not None and not (cutoff.isdigit() and int(cutoff) >= 1):
                raise ValueError(f"{what}: {m!r} has cutoff {cutoff!r}; the PEER cutoff is an int >= 1 "
                                 "(e.g. 'PEER@1000')")
            m = bias.peer(int(cutoff) if cutoff else 1000, langs=langs)
        else:
            m = _parse_measure(m, what)
        out.setdefault(str(m), m)
    for m in out.values():
        _check_computable(m, what)
    return list(out.values())


def _check_computable(measure: ir_measures.Measure, what: str) -> None:
    """Compute ``measure`` on a three-candidate toy setting through the grid's own code path.

    A measure that no installed provider computes, or whose parameters are invalid (``P`` without a cutoff,
    ``BPM(T=1)``), then fails here, before any encoding, rather than after the whole benchmark is encoded.
    """
    vecs = np.array([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]], dtype=np.float32)
    toy = EncodedBenchmark("toy", {
        "en": LanguageVectors(np.array(["en_q0"], dtype=object), vecs[:1], np.array(["en_0_0", "en_0_1"], dtype=object),
                              vecs[1:]),
        "de": LanguageVectors(np.array(["de_q0"], dtype=object), vecs[2:], np.array(["de_0_0"], dtype=object),
                              vecs[:1]),
    })
    setting = _Setting(ALL_QLANGS, POOLED, ["en_q0", "de_q0"], {"en_q0": ["en_0_0", "de_0_0"],
                                                                 "de_q0": ["en_0_0", "de_0_0"]})
    try:
        _evaluate_setting(toy, setting, [measure], 3)
    except Exception as e:  # noqa: BLE001 - any failure means the measure cannot be used; say which and why
        raise ValueError(f"{what}: {measure} cannot be computed ({type(e).__name__}: {' '.join(str(e).split())}); "
                         "choose another measure or install the ir_measures provider it needs") from None


def _measure_name(measure: ir_measures.Measure) -> str:
    return str(measure)


def _union(first: list[ir_measures.Measure], second: list[ir_measures.Measure]) -> list[ir_measures.Measure]:
    """Both lists, in order, each measure once (a measure in both would be computed and counted twice)."""
    out: dict[str, ir_measures.Measure] = {}
    for m in [*first, *second]:
        out.setdefault(str(m), m)
    return list(out.values())


def _evaluate_setting(encoded: EncodedBenchmark, setting: _Setting, measures: list[ir_measures.Measure],
                      k: int) -> pd.DataFrame:
    """Per-query values (qid, measure, value) of one setting."""
    docnos, dvecs = encoded.pool(setting.dlang)
    name_order = _name_order(docnos)
    column = {d: i for i, d in enumerate(docnos)}
    qids = [q for q in setting.qids if q in setting.qrels]  # trec_eval scores queries of the qrels only
    fast = [m for m in measures if _trec.is_fast_measure(m)]
    slow = [m for m in measures if not _trec.is_fast_measure(m)]
    peers = [m for m in slow if m.NAME == "PEER"]
    other = [m for m in slow if m.NAME != "PEER"]
    depth = min(k, len(docnos))
    dlangs = np.array([lang_of_id(d) for d in docnos], dtype=object)
    max_rel = max((len(setting.qrels[q]) for q in qids), default=0)
    values: dict[str, list[np.ndarray]] = {_measure_name(m): [] for m in measures}
    run_frames = []
    for start in range(0, len(qids), _BLOCK):
        block = qids[start:start + _BLOCK]
        scores = _scores(encoded.queries(block), dvecs, block)
        if fast:
            rel = np.full((len(block), max_rel), -1, dtype=np.int64)
            for i, q in enumerate(block):
                cols = [column[d] for d in setting.qrels[q] if d in column]
                rel[i, :len(cols)] = cols
            ranks = _relevant_ranks(scores, rel, name_order, depth)
            order = np.argsort(ranks, axis=1, kind="stable")
            ranks = np.take_along_axis(ranks, order, axis=1)
            rel = np.take_along_axis(rel, order, axis=1)
            qlangs = np.array([lang_of_id(q) for q in block], dtype=object)
            same = (dlangs[np.where(rel >= 0, rel, 0)] == qlangs[:, None]) & (rel >= 0)
            n_rel = np.array([len(setting.qrels[q]) for q in block])
            limit = np.full(len(block), depth)
            for m in fast:
                values[_measure_name(m)].append(_trec.binary_measure_values(m, ranks, n_rel, limit, same))
        if peers or other:
            top = _topk(scores, depth, name_order)
            if peers:
                for m in peers:
                    qrel_dicts = [{d: 1 for d in setting.qrels[q]} for q in block]
                    values[_measure_name(m)].append(np.array(
                        [_trec.peer_value(m, qd, list(docnos[t])) for qd, t in zip(qrel_dicts, top)]))
            if other:
                rows = np.arange(len(top))[:, None]
                run_frames.append(pd.DataFrame({
                    "query_id": np.repeat(block, top.shape[1]), "doc_id": docnos[top].ravel(),
                    "score": scores[rows, top].ravel().astype(np.float64)}))
    frames = [pd.DataFrame({"qid": qids, "measure": name, "value": np.concatenate(v)})
              for name, v in values.items() if v]
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["qid", "measure", "value"])
    if other and qids:
        qrels = pd.DataFrame([(q, d, 1) for q in qids for d in setting.qrels[q]],
                             columns=["query_id", "doc_id", "relevance"])
        run = pd.concat(run_frames, ignore_index=True)
        metrics = pd.DataFrame([(m.query_id, _measure_name(m.measure), m.value)
                                for m in ir_measures.iter_calc(other, qrels, run)],
                               columns=["qid", "measure", "value"])
        frame = pd.concat([frame, metrics], ignore_index=True)
    return frame


# --------------------------------------------------------------------------------------------------
# results


def _aggregate(values: pd.Series, measure: str) -> float:
    """Mean as ir_measures aggregates: NaN-skipping for the bias measures, plain mean otherwise."""
    if measure.startswith(("RankDistance", "SameLangPref")):
        return float(values.mean(skipna=True)) if values.notna().any() else math.nan
    return float(values.mean(skipna=False)) if len(values) else math.nan


@dataclass
class GridResult:
    """Results of a LAReQA grid evaluation.

    Attributes:
        benchmark: ``"xquad-r"`` or ``"mlqa-r"``.
        name: model name (for tables and plots).
        results: tidy frame ``qlang, dlang, measure, value, n_queries``; pooled rows have
            ``dlang == "multi"`` with ``qlang == "all"`` (every question) or one question language
            (that language's questions in the pooled setting).
        perquery: ``qlang, dlang, qid, measure, value`` per query (``qlang == "all"`` rows for pooled).
    """

    benchmark: str
    name: str
    results: pd.DataFrame
    perquery: pd.DataFrame = field(repr=False)

    @property
    def measures(self) -> list[str]:
        """Measure names, in evaluation order."""
        return list(dict.fromkeys(self.results["measure"]))

    def _rows(self, kind: str) -> pd.DataFrame:
        r = self.results
        if kind == "mono":
            return r[r.qlang == r.dlang]
        if kind == "cross":
            return r[(r.qlang != r.dlang) & (r.dlang != POOLED)]
        return r[(r.dlang == POOLED) & (r.qlang == ALL_QLANGS)]

    def summary(self) -> pd.DataFrame:
        """Per measure: mean over monolingual settings, mean over cross-lingual settings, pooled."""
        out = {}
        for kind in ("mono", "cross", "pooled"):
            rows = self._rows(kind)
            out[kind] = rows.groupby("measure", sort=False)["value"].mean() if len(rows) else pd.Series(dtype=float)
        frame = pd.DataFrame(out).reindex(self.measures)
        frame.index.name = "measure"
        return frame

    def pooled_by_qlang(self) -> pd.DataFrame:
        """Pooled-setting value per question language (rows) and measure (columns)."""
        r = self.results
        rows = r[(r.dlang == POOLED) & (r.qlang != ALL_QLANGS)]
        return rows.pivot(index="qlang", columns="measure", values="value").reindex(columns=self.measures)

    def matrix(self, measure: str = "AP") -> pd.DataFrame:
        """The qlang x dlang grid of one measure (mono on the diagonal)."""
        r = self.results
        rows = r[(r.measure == measure) & (r.dlang != POOLED)]
        if rows.empty:
            raise KeyError(f"no per-setting values of {measure!r}; measures are: {', '.join(self.measures)}")
        return rows.pivot(index="qlang", columns="dlang", values="value").reindex(
            index=list(dict.fromkeys(rows.qlang)), columns=list(dict.fromkeys(rows.dlang)))

    def to_csv(self, path: str) -> None:
        """Write :attr:`results` as CSV, atomically."""
        atomic_write_text(path, self.results.to_csv(index=False))

    def to_markdown(self, measure: str = "AP", *, digits: int = 3) -> str:
        """A markdown table of the qlang x dlang grid of ``measure`` plus the summary (:func:`markdown_grid`)."""
        return markdown_grid(self, measure, digits=digits)


def _fmt(v: float, digits: int) -> str:
    return "" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:.{digits}f}"


def _markdown(frame: pd.DataFrame, digits: int, index_name: str) -> str:
    header = [index_name, *map(str, frame.columns)]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * len(frame.columns)) + "|"]
    for idx, row in frame.iterrows():
        cells = [_fmt(v, digits) if isinstance(v, (float, np.floating)) else str(v) for v in row]
        lines.append("| " + " | ".join([str(idx), *cells]) + " |")
    return "\n".join(lines)


def markdown_grid(result: GridResult, measure: str = "AP", *, digits: int = 3) -> str:
    """Markdown: the qlang x dlang table of ``measure``, then mono / cross / pooled per measure."""
    parts = [f"**{result.name}** on {result.benchmark}: {measure} (rows: question language, columns: candidate "
             "language)", "", _markdown(result.matrix(measure), digits, "q \\ d"), "",
             _markdown(result.summary(), digits, "measure")]
    by_lang = result.pooled_by_qlang()
    if len(by_lang):
        parts += ["", "Pooled setting per question language:", "", _markdown(by_lang, digits, "qlang")]
    return "\n".join(parts) + "\n"


def _tidy(benchmark: str, name: str, per_setting: list[tuple[_Setting, pd.DataFrame]]) -> GridResult:
    rows, perquery = [], []
    for setting, frame in per_setting:
        perquery.append(frame.assign(qlang=setting.qlang, dlang=setting.dlang))
        for measure, values in frame.groupby("measure", sort=False)["value"]:
            rows.append((setting.qlang, setting.dlang, measure, _aggregate(values, measure), len(values)))
        if setting.dlang == POOLED:  # per question language of the pooled setting
            by_lang = frame.assign(ql=[lang_of_id(q) for q in frame.qid])
            for (ql, measure), values in by_lang.groupby(["ql", "measure"], sort=False)["value"]:
                rows.append((ql, POOLED, measure, _aggregate(values, measure), len(values)))
    results = pd.DataFrame(rows, columns=["qlang", "dlang", "measure", "value", "n_queries"])
    pq = pd.concat(perquery, ignore_index=True)[["qlang", "dlang", "qid", "measure", "value"]] if perquery else \
        pd.DataFrame(columns=["qlang", "dlang", "qid", "measure", "value"])
    return GridResult(benchmark, name, results, pq)


def _grid_settings(benchmark: str, langs: Sequence[str], settings: Iterable[tuple[str, str]] | None,
                   pooled: bool) -> list[tuple[str | None, str | None]]:
    all_langs = validate_benchmark(benchmark)
    if settings is None:
        chosen: list[tuple[str | None, str | None]] = [
            (q, d) for q, d in benchmark_settings(benchmark) if q in langs and d in langs]
    else:
        chosen = []
        for pair in ([settings] if isinstance(settings, str) else settings):
            if isinstance(pair, str) or not isinstance(pair, Sequence) or len(pair) != 2:
                raise ValueError(f"settings must be (question language, candidate language) pairs such as "
                                 f"('de', 'en'), got {pair!r}")
            q, d = validate_langs(list(pair), all_langs, what=f"{benchmark} language")
            if (q, d) not in chosen:
                chosen.append((q, d))
    if pooled:
        if set(langs) != set(all_langs):
            raise ValueError(f"the pooled setting needs every language of {benchmark}; pass pooled=False "
                             f"to evaluate a subset of languages ({', '.join(langs)})")
        chosen.append((None, None))
    return chosen


def evaluate_grid(model: Encoder | EncodedBenchmark, benchmark: str = "xquad-r", *,
                  measures: Iterable[Any] | None = None, bias_measures: Iterable[Any] | None = None,
                  num_results: int = 1000, langs: Iterable[str] | None = None,
                  settings: Iterable[tuple[str, str]] | None = None, pooled: bool = True, lir: Any = None,
                  sample: BenchmarkSample | None = None, name: str | None = None,
                  verbose: bool = False) -> GridResult:
    """Evaluate every (question language, candidate language) setting and the pooled setting, encoding once.

    Args:
        model: a bi-encoder (``encode_queries`` / ``encode_docs``) or an :class:`EncodedBenchmark` (reused).
        benchmark: ``"xquad-r"`` (11 x 11 + pooled) or ``"mlqa-r"`` (7 x 7 + pooled).
        measures: ir_measures measures (objects or names; one name such as ``"AP"`` is one measure) for every
            setting; default :data:`DEFAULT_MEASURES` (AP, nDCG@10, R@10, RR). Repeats are computed once.
        bias_measures: measures for the pooled setting only (where several languages hold relevant
            candidates); default :data:`DEFAULT_BIAS_MEASURES`. ``"PEER@k"`` builds
            :func:`pyterrier_hybrid.measures.peer` over the benchmark's languages.
        num_results: run depth: only the top ``num_results`` candidates of a query count as retrieved (as with
            a retriever returning ``num_results`` results).
        langs: restrict to these languages (needs ``pooled=False`` unless all are given).
        settings: explicit ``(qlang, dlang)`` settings instead of all of ``langs``.
        pooled: also evaluate the pooled multilingual setting.
        lir: optional :class:`pyterrier_hybrid.lir.LIR` applied to all vectors ("base + LIR"); fitted on the
            benchmark's candidates when not fitted yet.
        sample: evaluate on this slice only (:func:`pyterrier_hybrid.datasets.sample_benchmark`): its
            questions against its pool, with the qrels inside it. With an :class:`EncodedBenchmark` the
            vectors' own slice is used and ``sample`` must be None or the same.
        name: model name stored in the result.
        verbose: progress bars.

    Returns:
        A :class:`GridResult`.

    Raises:
        ValueError: an unknown or uncomputable measure, a cutoff or ``k`` that is not an int >= 1, bad
            languages or settings: all raised before anything is encoded. NonFiniteError: NaN / infinite
            vectors (from the encoder, in ``model`` or after ``lir``) or scores, naming language and ids.
        TextError: a question or candidate without valid text (named by id), before anything is encoded.
    """
    # Every argument is checked before anything is encoded (encoding a benchmark takes minutes).
    all_langs = validate_benchmark(benchmark)
    langs = _langs(langs, all_langs, benchmark) if langs is not None else all_langs
    k = check_int(num_results, "num_results (the run depth)")
    measures_ = _normalise_measures(measures if measures is not None else DEFAULT_MEASURES, "measures")
    bias_ = _parse_bias(bias_measures if bias_measures is not None else DEFAULT_BIAS_MEASURES, all_langs)
    if not measures_ and not (pooled and bias_):
        raise ValueError("no measure to compute: measures is empty (and no pooled setting with bias_measures)")
    if lir is not None and not callable(getattr(lir, "project", None)):
        raise TypeError(f"lir must have project(vectors, langs) (e.g. pyterrier_hybrid.lir.LIR), not "
                        f"{type(lir).__name__}")
    if name is not None and not isinstance(name, str):
        raise ValueError(f"name must be a str, got {name!r}")
    chosen = _grid_settings(benchmark, langs, settings, pooled)
    needed = sorted({lang for q, d in chosen for lang in ((q, d) if q else all_langs)}, key=all_langs.index)
    if isinstance(model, EncodedBenchmark):
        if model.benchmark != benchmark:
            raise ValueError(f"vectors were encoded for {model.benchmark}, not {benchmark}")
        missing = set(needed) - set(model.langs)
        if missing:
            raise ValueError(f"languages {sorted(missing)} were not encoded; encode them with encode_benchmark")
        if sample is not None and sample != model.sample:
            raise ValueError("the vectors were encoded for a different slice than `sample`; pass sample=None "
                             "to use theirs, or encode the slice with encode_benchmark(..., sample=sample)")
        encoded = model.validate("passed to evaluate_grid")
    else:
        encoded = encode_benchmark(model, benchmark, langs=needed, sample=sample, verbose=verbose)
    if lir is not None:
        encoded = encoded.project(lir)
    per_setting = []
    for qlang, dlang in pt.tqdm(chosen, desc=f"{benchmark} grid", unit="setting", disable=not verbose):
        setting = _setting_from_entry(benchmark, qlang, dlang, encoded.sample)
        wanted = _union(measures_, bias_ if qlang is None else [])
        per_setting.append((setting, _evaluate_setting(encoded, setting, wanted, k)))
    default_name = "model" if isinstance(model, EncodedBenchmark) else type(model).__name__
    return _tidy(benchmark, name or default_name, per_setting)


def evaluate_pipeline_grid(retriever_for: Callable[[str], pt.Transformer], benchmark: str = "xquad-r", *,
                           measures: Iterable[Any] | None = None, bias_measures: Iterable[Any] | None = None,
                           langs: Iterable[str] | None = None, settings: Iterable[tuple[str, str]] | None = None,
                           pooled: bool = True, name: str | None = None, verbose: bool = False,
                           batch_size: int | None = None) -> GridResult:
    """The slow general path: one ``pt.Experiment`` per setting with any PyTerrier retrieval pipeline.

    Args:
        retriever_for: ``dlang -> pipeline`` retrieving from the candidates of ``dlang`` (``"multi"``: the
            pooled candidates of all languages), taking topics ``qid, query``. Called once per candidate
            language.
        benchmark: ``"xquad-r"`` or ``"mlqa-r"``.
        measures: as :func:`evaluate_grid`.
        bias_measures: as :func:`evaluate_grid` (pooled setting only).
        langs: as :func:`evaluate_grid`.
        settings: as :func:`evaluate_grid`.
        pooled: as :func:`evaluate_grid`.
        name: model name stored in the result.
        verbose: progress bar over settings.
        batch_size: passed to ``pt.Experiment``.
    """
    all_langs = validate_benchmark(benchmark)
    langs = _langs(langs, all_langs, benchmark) if langs is not None else all_langs
    measures_ = _normalise_measures(measures if measures is not None else DEFAULT_MEASURES, "measures")
    bias_ = _parse_bias(bias_measures if bias_measures is not None else DEFAULT_BIAS_MEASURES, all_langs)
    if not measures_ and not (pooled and bias_):
        raise ValueError("no measure to compute: measures is empty (and no pooled setting with bias_measures)")
    if batch_size is not None:
        batch_size = check_int(batch_size, "batch_size")
    if not callable(retriever_for):
        raise TypeError(f"retriever_for must be a function dlang -> pipeline, not {type(retriever_for).__name__}")
    chosen = _grid_settings(benchmark, langs, settings, pooled)
    pipelines: dict[str, pt.Transformer] = {}
    per_setting = []
    for qlang, dlang in pt.tqdm(chosen, desc=f"{benchmark} grid", unit="setting", disable=not verbose):
        setting = _setting_from_entry(benchmark, qlang, dlang)
        if setting.dlang not in pipelines:
            pipelines[setting.dlang] = retriever_for(setting.dlang) >> _FiniteScores()
        ds = pt.get_dataset(f"irds:{dataset_id(benchmark, qlang, dlang)}")
        wanted = _union(measures_, bias_ if qlang is None else [])
        res = pt.Experiment([pipelines[setting.dlang]], ds.get_topics("text"), ds.get_qrels(), wanted,
                            names=["model"], perquery=True, batch_size=batch_size, verbose=False)
        names = {str(m) for m in wanted}
        frame = res[res.measure.isin(names)][["qid", "measure", "value"]].reset_index(drop=True)
        per_setting.append((setting, frame))
    return _tidy(benchmark, name or "pipeline", per_setting)


class _FiniteScores(pt.Transformer):
    """Passes a result frame through, refusing NaN / infinite scores (trec_eval would rank them arbitrarily)."""

    def transform(self, inp: pd.DataFrame) -> pd.DataFrame:
        """Check ``score`` and return the frame unchanged."""
        if "score" in inp.columns and len(inp):
            pairs = list(zip(inp["qid"], inp["docno"])) if {"qid", "docno"} <= set(inp.columns) else None
            check_finite(inp["score"].to_numpy(dtype=np.float64), what="scores of the pipeline", ids=pairs,
                         id_name="(qid, docno)" if pairs else "row",
                         hint="the retrieval pipeline produced them; fix its model or scores")
        return inp
