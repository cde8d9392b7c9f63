r"""Language-bias measures for multilingual retrieval, as ir_measures measures usable in ``pt.Experiment``.

Importing this module registers three measures with ir_measures (so they work in ``pt.Experiment``,
``ir_measures.calc_aggregate`` and by name, e.g. ``ir_measures.parse_measure("RankDistance@1000")``):

``RankDistance`` (lower is better)
    For a query with relevant candidates :math:`R` (in LAReQA: the translations of its answer sentence),
    ranked in the run with ranks :math:`r(d)`, the rank distance is

    .. math:: \mathrm{RD}(q) = \max_{d \in R} r(d) - \min_{d \in R} r(d)

    A language-agnostic model ranks the translations of one answer together (RD near 0); a model
    that prefers one language pushes the others down. One relevant candidate gives RD = 0.

``SameLangPref`` (language-agnostic value: ``1 / |languages of R|``)
    1 when the highest-ranked relevant candidate is in the question's own language, else 0. Its
    mean is the share of queries whose best relevant answer is in the query language; a model with
    no language preference approaches 1 / (number of relevant languages), a model with a
    same-language bias approaches 1.

``PEER`` (Probability of Equal Expected Rank; Yang et al., SIGIR 2024; higher is fairer, in [0, 1])
    From the ``peer-measure`` package: per relevance level, a Kruskal-Wallis test of "documents of
    every language have the same expected rank" over the top-``cutoff`` ranks grouped by language;
    the value is the weighted sum of the p-values, :math:`\sum_\ell w_\ell \, p_\ell` (a NaN p-value,
    which the package returns when all ranks of a level are equal, counts as 1). Build it with
    :func:`peer`. Note for LAReQA: every language holds exactly one relevant candidate per question, so
    the relevance-1 test has one rank per group and is degenerate (H = N - 1 whatever the ranks); the
    information is in the non-relevant level (``weights={0: ...}``), i.e. whether the *non-relevant*
    candidates of all languages are mixed evenly in the top ``cutoff``. Use a deep cutoff (e.g. the run
    depth, 1000): a top list that holds a single language gives the test fewer than two groups, which
    the package scores 1 (fair), so a strongly same-language model looks fair at small cutoffs.

Ranks follow trec_eval: score descending, ties broken by doc id descending (what ``pt.Experiment``
sees). **Unretrieved relevant candidates**: a run holds only the top ``L`` documents of a query
(``L`` = the measure's cutoff when given, else the number of documents the run holds for the query);
relevant candidates outside it are given rank ``L + 1`` (the best rank they could have, so RD is a
lower bound of the full-ranking distance). ``SameLangPref`` looks only at retrieved relevant
candidates. A query that retrieves documents but *no* relevant candidate gets the worst value the
run can show: RD = ``L`` and SameLangPref = 0 (its best answer is not a same-language one). These
values must be numbers, not NaN: ``pt.Experiment`` averages the per-query values itself, so one NaN
would make the whole mean NaN. Only queries missing from the run are undefined (NaN) and left out of
ir_measures' mean. ``PEER`` keeps the package's own convention (unretrieved
relevant documents share the average of the ranks after the list).

The language of a document or query comes from its id prefix (:func:`~pyterrier_hybrid.lang_of_id`,
``de_00012_003`` → ``de``) unless a lookup was registered with :func:`register_languages`.

Motivation: LAReQA (Roy et al., EMNLP 2020) defines language-agnostic retrieval as ranking every
relevant answer above every irrelevant one whatever its language; hybrid batch training (Elmahdy, Lin &
Ahmad, 2024) aims at models that are strong both within and across languages, so language bias is
reported next to mAP.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import ir_measures
import numpy as np
import peer_measure
from ir_measures import Metric, measures, providers
from ir_measures.providers.base import Any as AnyParam

from ._checks import NonFiniteError, check_int
from ._trec import binary_measure_values, peer_value, sorted_run
from .languages import lang_of_id, register_languages

__all__ = ["PEER", "LanguageBiasProvider", "RankDistance", "SameLangPref", "peer", "register_languages"]


class _NanMeanAgg(measures.base.Agg):
    """Mean that leaves NaN values (undefined per-query values) out; NaN when every value is NaN."""

    def __init__(self):
        self.sum = 0.0
        self.count = 0

    def add(self, value: float):
        """Add one per-query value."""
        if not math.isnan(value):
            self.sum += value
            self.count += 1

    def result(self) -> float:
        """The mean of the non-NaN values."""
        return self.sum / self.count if self.count else float("nan")


class _BiasMeasure(measures.Measure):
    SUPPORTED_PARAMS = {
        "cutoff": measures.ParamInfo(dtype=int, required=False, desc="ranking cutoff threshold"),
        "rel": measures.ParamInfo(dtype=int, default=1, desc="minimum relevance score to be relevant"),
    }
    DEFAULT = float("nan")  # a query absent from the run has no defined value

    def aggregator(self) -> _NanMeanAgg:
        """NaN-skipping mean (see the module docstring)."""
        return _NanMeanAgg()


class _RankDistance(_BiasMeasure):
    """Rank of the lowest-ranked relevant candidate minus the rank of the highest-ranked one (lower is better)."""

    __name__ = "RankDistance"
    NAME = __name__
    PRETTY_NAME = "Rank distance"
    SHORT_DESC = "max minus min rank of a query's relevant candidates (unretrieved ones at cutoff + 1)"


class _SameLangPref(_BiasMeasure):
    """1 when the highest-ranked relevant candidate is in the query's language, else 0."""

    __name__ = "SameLangPref"
    NAME = __name__
    PRETTY_NAME = "Same-language preference"
    SHORT_DESC = "share of queries whose highest-ranked relevant candidate is in the query language"


RankDistance = _RankDistance()
SameLangPref = _SameLangPref()
for _measure in (RankDistance, SameLangPref):
    if _measure.NAME not in measures.registry:
        measures.register(_measure)


# --------------------------------------------------------------------------------------------------
# ir_measures provider for RankDistance / SameLangPref


class LanguageBiasProvider(providers.Provider):
    """ir_measures provider of :data:`RankDistance` and :data:`SameLangPref`."""

    NAME = "pyterrier_hybrid_bias"
    SUPPORTED_MEASURES = [
        RankDistance(cutoff=AnyParam(), rel=AnyParam()),
        SameLangPref(cutoff=AnyParam(), rel=AnyParam()),
    ]

    def _evaluator(self, measures_: Iterable[measures.Measure], qrels: Any) -> _LanguageBiasEvaluator:
        qrels = ir_measures.util.QrelsConverter(qrels).as_dict_of_dict()
        return _LanguageBiasEvaluator(list(measures_), qrels)


class _PerQueryEvaluator(providers.Evaluator):
    """Evaluates each judged query of a run from its trec_eval-ordered ranking (:func:`~._trec.sorted_run`)."""

    def __init__(self, measures_: list[measures.Measure], qrels: dict[str, dict[str, int]]):
        super().__init__(measures_, set(qrels))
        self.qrels = qrels

    def _iter_calc(self, run: Any) -> Iterator[Metric]:
        run = ir_measures.util.RunConverter(run).as_dict_of_dict()
        for qid, scored in run.items():
            qrel = self.qrels.get(qid)
            if not qrel:
                continue
            bad = [doc for doc, score in scored.items() if not math.isfinite(score)]
            if bad:  # sorted() of NaN scores gives an arbitrary order, hence an arbitrary value
                raise NonFiniteError(f"run scores hold NaN or infinity for query {qid!r} ({len(bad)} documents, e.g. "
                                     f"docno {bad[0]!r}); fix the model or the scores before evaluating")
            ranking = sorted_run(scored.items())
            for measure in self.measures:
                value = self._value(measure, qid, qrel, ranking)
                if value is not None:
                    yield Metric(query_id=qid, measure=measure, value=value)

    def _value(self, measure: measures.Measure, qid: str, qrel: Mapping[str, int], ranking: list[str]) -> float | None:
        raise NotImplementedError


class _LanguageBiasEvaluator(_PerQueryEvaluator):
    def _value(self, measure: measures.Measure, qid: str, qrel: Mapping[str, int], ranking: list[str]) -> float | None:
        level = measure["rel"]
        relevant = sorted(doc for doc, rel in qrel.items() if rel >= level)
        if not relevant:
            return None
        cutoff = measure.params.get("cutoff")
        depth = len(ranking) if cutoff is None else min(cutoff, len(ranking))
        position = {doc: i + 1 for i, doc in enumerate(ranking[:depth])}
        ranks = np.array([[position.get(doc, np.inf) for doc in relevant]], dtype=np.float64)
        order = np.argsort(ranks[0], kind="stable")
        ranks = ranks[:, order]
        same = None
        if measure.NAME == "SameLangPref":  # RankDistance needs no language: ids without one are fine there
            qlang = lang_of_id(qid)
            same = np.array([[lang_of_id(relevant[i]) == qlang for i in order]])
        value = binary_measure_values(measure(cutoff=depth) if cutoff is None else measure, ranks,
                                      np.array([len(relevant)]), np.array([depth]), same)[0]
        return float(value)


# --------------------------------------------------------------------------------------------------
# PEER (peer-measure package), made to work with ir_measures 0.4 and qrels without 0-judgements

PEER = peer_measure.PEER


class _IdLanguages(dict):
    """A doc id → language mapping for PEER that looks up any id with :func:`~.languages.lang_of_id`.

    ``peer-measure`` wants ``lang_mapping`` as a dict of every doc id and reads the set of languages
    from its values; this dict is seeded with one placeholder entry per language (so the language set
    is right) and answers other ids on lookup.
    """

    def __init__(self, langs: Iterable[str]):
        super().__init__({f"\x00{lang}": lang for lang in langs})

    def __missing__(self, key: str) -> str:
        return lang_of_id(key)


def peer(cutoff: int = 1000, *, langs: Iterable[str], weights: Mapping[int, float] | None = None,
         lang_mapping: Mapping[str, str] | None = None) -> measures.Measure:
    """A PEER@cutoff measure for the given document languages.

    Args:
        cutoff: rank cutoff.
        langs: every document language of the collection (e.g. ``XQUAD_R_LANGS``).
        weights: relevance level → weight (sum 1). Default ``{0: 1.0, 1: 0.0}``: on LAReQA every language
            holds one relevant candidate per question, so the relevant level's test is degenerate (a constant
            p-value, see the module docstring) and only the non-relevant level carries information.
        lang_mapping: explicit doc id → language; by default languages come from the id prefix.

    Returns:
        peer-measure's ``PEER`` measure with these parameters.

    Raises:
        ValueError: a cutoff that is not an int >= 1, weights that are not finite numbers >= 0 summing to 1,
            or no languages.
    """
    cutoff = check_int(cutoff, "PEER cutoff")
    weights = dict(weights) if weights is not None else {0: 1.0, 1: 0.0}
    if not all(isinstance(w, (int, float, np.number)) and not isinstance(w, bool) and math.isfinite(w) and w >= 0
               for w in weights.values()):
        raise ValueError(f"PEER weights must be finite numbers >= 0, got {weights}")
    if not np.isclose(sum(weights.values()), 1.0):
        raise ValueError(f"PEER weights must sum to 1.0, got {weights}")
    if lang_mapping is None and not set(langs):
        raise ValueError("PEER needs the document languages (langs=...), got none")
    mapping = dict(lang_mapping) if lang_mapping is not None else _IdLanguages(sorted(set(langs)))
    return PEER(cutoff=cutoff, weights=weights, lang_mapping=mapping)


class _PEERProvider(peer_measure.PEERProvider):
    """peer-measure's provider, fixed for ir_measures 0.4 (no ``util.flatten_measures``)."""

    NAME = "peer_measure_fixed"

    def _evaluator(self, measures_: Iterable[measures.Measure], qrels: Any) -> _PEEREvaluator:
        qrels = ir_measures.util.QrelsConverter(qrels).as_dict_of_dict()
        return _PEEREvaluator(list(measures_), qrels)


class _PEEREvaluator(_PerQueryEvaluator):
    def _value(self, measure: measures.Measure, qid: str, qrel: Mapping[str, int], ranking: list[str]) -> float:
        return peer_value(measure, qrel, ranking)


def _install_providers() -> None:
    pipeline = ir_measures.DefaultPipeline.providers
    if not any(isinstance(p, LanguageBiasProvider) for p in pipeline):
        bias = LanguageBiasProvider()
        providers.registry.setdefault(bias.NAME, bias)
        pipeline.insert(0, bias)
    if not any(isinstance(p, _PEERProvider) for p in pipeline):
        # Put the fixed provider ahead of peer-measure's own, which fails on ir_measures >= 0.4.
        pipeline.insert(0, _PEERProvider())


_install_providers()
