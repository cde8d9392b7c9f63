"""trec_eval arithmetic shared by the ir_measures providers and the grid evaluator (private).

Per-query values computed from the ranks of the relevant candidates, vectorised over queries, as
trec_eval (and so ``ir_measures``/``pt.Experiment``) computes them: documents in trec_eval order (score
descending, ties by doc id descending), sums in rank order. :mod:`pyterrier_hybrid.measures` (the
ir_measures plugin) calls them one query at a time; :mod:`pyterrier_hybrid.evaluation` (the grid) calls
them on every query of a setting at once, so that the grid's values equal ``pt.Experiment``'s.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import peer_measure
from ir_measures import measures

__all__ = [
    "binary_measure_values",
    "is_fast_measure",
    "peer_value",
    "rank_distance_values",
    "same_lang_pref_values",
    "sorted_run",
]


def sorted_run(docs: Iterable[tuple[str, float]]) -> list[str]:
    """Doc ids in trec_eval order.

    Args:
        docs: ``(doc id, score)`` pairs of one query.

    Returns:
        The doc ids, score descending, ties by doc id descending.
    """
    return [doc for doc, _ in sorted(docs, key=lambda x: (x[1], x[0]), reverse=True)]


def rank_distance_values(rel_ranks: np.ndarray, n_rel: np.ndarray, limit: np.ndarray) -> np.ndarray:
    """Rank distance per query from the ranks of its relevant candidates.

    Args:
        rel_ranks: ``(n_queries, max_rel)`` 1-based ranks of each query's relevant candidates, ``inf`` for
            unretrieved ones and for padding beyond ``n_rel``.
        n_rel: ``(n_queries,)`` number of relevant candidates.
        limit: ``(n_queries,)`` the run depth ``L``; unretrieved relevant candidates count at ``L + 1``.

    Returns:
        ``(n_queries,)`` float64 values; ``limit`` (the worst value) where no relevant candidate was retrieved.
    """
    rel_ranks = np.asarray(rel_ranks, dtype=np.float64)
    cols = np.arange(rel_ranks.shape[1])[None, :]
    real = cols < np.asarray(n_rel)[:, None]
    ranks = np.where(real & np.isinf(rel_ranks), np.asarray(limit, dtype=np.float64)[:, None] + 1, rel_ranks)
    best = np.where(real, ranks, np.inf).min(axis=1)
    worst = np.where(real, ranks, -np.inf).max(axis=1)
    retrieved = (real & ~np.isinf(rel_ranks)).any(axis=1)
    return np.where(retrieved, worst - best, np.asarray(limit, dtype=np.float64))


def same_lang_pref_values(rel_ranks: np.ndarray, rel_same_lang: np.ndarray) -> np.ndarray:
    """Same-language preference per query.

    Args:
        rel_ranks: as in :func:`rank_distance_values` (ties between relevant candidates cannot occur: ranks
            are positions).
        rel_same_lang: ``(n_queries, max_rel)`` bool, relevant candidate is in the query's language.

    Returns:
        ``(n_queries,)`` 1.0 / 0.0; 0.0 where no relevant candidate was retrieved.
    """
    rel_ranks = np.asarray(rel_ranks, dtype=np.float64)
    best = np.argmin(rel_ranks, axis=1)
    rows = np.arange(rel_ranks.shape[0])
    retrieved = ~np.isinf(rel_ranks[rows, best])
    return np.where(retrieved, np.asarray(rel_same_lang)[rows, best].astype(np.float64), 0.0)


_FAST = {"AP", "RR", "nDCG", "R", "P", "Success", "RankDistance", "SameLangPref"}


def is_fast_measure(measure: measures.Measure) -> bool:
    """Whether :func:`binary_measure_values` computes ``measure`` (binary qrels, default parameters).

    Args:
        measure: an ir_measures measure.

    Returns:
        False for measures and parameters left to ir_measures.
    """
    if measure.NAME not in _FAST:
        return False
    if measure.NAME == "RR" and "cutoff" in measure.params:
        return False  # ir_measures computes RR@k with the MS MARCO script, which breaks ties by doc id ascending
    for param, value in measure.params.items():
        if param == "cutoff":
            continue
        if param == "rel" and value == 1:
            continue
        if value != measure.SUPPORTED_PARAMS[param].default:
            return False  # judged_only, custom gains, graded levels...: left to ir_measures
    return True


def binary_measure_values(measure: measures.Measure, rel_ranks: np.ndarray, n_rel: np.ndarray,
                          limit: np.ndarray, rel_same_lang: np.ndarray | None = None) -> np.ndarray:
    """Per-query values of a rank-based measure on binary qrels, as trec_eval computes them.

    Only the ranks of the relevant candidates are needed: AP, RR, nDCG, R, P and Success of binary
    qrels are functions of them. Sums run in rank order, as in trec_eval, so the values are those
    of ``ir_measures``/``pt.Experiment`` on the same run.

    Args:
        measure: an ir_measures measure with :func:`is_fast_measure` true.
        rel_ranks: ``(n_queries, max_rel)`` ranks, ascending per row, ``inf`` for unretrieved and padding.
        n_rel: ``(n_queries,)`` number of relevant candidates (> 0).
        limit: ``(n_queries,)`` number of documents retrieved for the query (the run depth).
        rel_same_lang: for ``SameLangPref``: relevant candidate in the query's language.

    Returns:
        ``(n_queries,)`` float64 values.

    Raises:
        ValueError: ``measure`` is not computed here, or lacks what it needs (``P`` without a cutoff,
            ``SameLangPref`` without ``rel_same_lang``).
    """
    name = measure.NAME
    cutoff = measure.params.get("cutoff")
    rel_ranks = np.asarray(rel_ranks, dtype=np.float64)
    n_rel = np.asarray(n_rel)
    limit = np.asarray(limit)
    if cutoff is not None:
        ranks = np.where(rel_ranks <= cutoff, rel_ranks, np.inf)
        limit = np.minimum(limit, cutoff)
    else:
        ranks = rel_ranks
    found = ~np.isinf(ranks)
    if name == "RankDistance":
        return rank_distance_values(ranks, n_rel, limit)
    if name == "SameLangPref":
        if rel_same_lang is None:
            raise ValueError("SameLangPref needs the languages of the relevant candidates (rel_same_lang)")
        return same_lang_pref_values(ranks, rel_same_lang)
    if name == "AP":
        total = np.zeros(len(ranks))
        for i in range(ranks.shape[1]):  # sequential, in rank order, like trec_eval
            total += np.where(found[:, i], (i + 1) / ranks[:, i], 0.0)
        return total / n_rel
    if name == "RR":
        return np.where(found[:, 0], 1.0 / ranks[:, 0], 0.0) if ranks.shape[1] else np.zeros(len(ranks))
    if name in ("R", "P", "Success"):
        hits = found.sum(axis=1).astype(np.float64)
        if name == "R":
            return hits / n_rel
        if name == "Success":
            return (hits > 0).astype(np.float64)
        if cutoff is None:
            raise ValueError("P needs a cutoff (e.g. P@10)")
        return hits / cutoff
    if name == "nDCG":
        dcg = np.zeros(len(ranks))
        ideal = np.zeros(len(ranks))
        for i in range(ranks.shape[1]):
            dcg += np.where(found[:, i], 1.0 / np.log2(np.where(found[:, i], ranks[:, i], 1.0) + 1), 0.0)
            in_ideal = (i < n_rel) & ((cutoff is None) or (i < cutoff))
            ideal += np.where(in_ideal, 1.0 / np.log2(i + 2.0), 0.0)
        return np.where(ideal > 0, dcg / np.where(ideal > 0, ideal, 1.0), 0.0)
    raise ValueError(f"{measure} is not computed from ranks here; evaluate it with ir_measures")


def peer_value(measure: measures.Measure, qrel: Mapping[str, int], ranking: list[str]) -> float:
    """PEER of one query, with peer-measure's Kruskal-Wallis test.

    Args:
        measure: a ``PEER`` measure (see :func:`pyterrier_hybrid.measures.peer`).
        qrel: doc id → relevance level of the query.
        ranking: the run's doc ids in trec_eval order (see :func:`sorted_run`).

    Returns:
        The weighted sum of the per-level p-values.
    """
    mapping = measure["lang_mapping"]
    langs = set(mapping.values())  # the id-prefix mapping stores one placeholder entry per language
    weights = measure["weights"]
    cutoff = measure["cutoff"]
    # peer-measure builds its groups from the relevance levels present in the qrels only, so a retrieved
    # unjudged (level 0) document raised KeyError on qrels without 0-judgements; every weighted level
    # and level 0 get a group here.
    levels = set(qrel.values()) | set(weights) | {0}
    groups: dict[int, dict[str, list[float]]] = {rel: {lang: [] for lang in langs} for rel in levels}
    top = ranking[:cutoff] if cutoff is not None and cutoff is not measures.base._NOT_PROVIDED else ranking
    for i, doc in enumerate(top):
        groups[qrel.get(doc, 0)].setdefault(mapping[doc], []).append(i + 1)
    retrieved = set(top)
    for doc, rel in qrel.items():
        if rel > 0 and doc not in retrieved:
            groups[rel].setdefault(mapping[doc], []).append(np.nan)
    total = 0.0
    for rel, g in groups.items():
        p = peer_measure.kruskal(*g.values())[1]
        # kruskal divides by the spread of the ranks; when every rank is equal (e.g. one retrieved and one
        # unretrieved relevant document that it places at the same rank) it returns NaN: equal ranks, p = 1.
        total += (1.0 if not np.isfinite(p) else float(p)) * weights.get(rel, 0)
    return total
