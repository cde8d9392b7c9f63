"""``LangPEER``: PEER usable by name (``"LangPEER@1000"``) in ``pt.Experiment``, ir_measures and its CLI.

peer-measure's own ``PEER`` requires a ``lang_mapping`` dict of every document id and a ``weights`` dict,
neither of which a measure name can carry, and its name cannot be reused (peer-measure registers it
itself). ``LangPEER`` is the measure :func:`pyterrier_hybrid.measures.peer` builds, with the languages read
from the ids (:func:`~pyterrier_hybrid.languages.lang_of_id`: the id prefix, or a registered language):

- ``LangPEER@k``: PEER over the top ``k`` ranks (default 1000, as :func:`~.measures.peer`);
- ``LangPEER(weights={0:1.0,1:0.0})@k``: relevance level → weight (default ``{0: 1.0, 1: 0.0}``, the
  default of :func:`~.measures.peer`; see :mod:`pyterrier_hybrid.measures` for why).

Its values are those of ``peer(k, langs=..., weights=...)`` on the same run and qrels (a query missing
from the run counts 0, as for peer-measure's PEER). Importing this module installs its ir_measures provider.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import ir_measures
from ir_measures import measures, providers
from ir_measures.providers.base import Any as AnyParam

from ._trec import peer_value
from .languages import lang_of_id
from .measures import _PerQueryEvaluator, peer

__all__ = ["LangPEER", "LangPEERProvider"]

_DEFAULT_WEIGHTS = {0: 1.0, 1: 0.0}


class _LangPEER(measures.Measure):
    """PEER with the document languages read from the ids (see the module docstring)."""

    __name__ = "LangPEER"
    NAME = __name__
    PRETTY_NAME = "PEER (languages from the ids)"
    SHORT_DESC = "probability that documents of every language have the same expected rank in the top k"
    SUPPORTED_PARAMS = {
        "cutoff": measures.ParamInfo(dtype=int, default=1000, desc="ranking cutoff threshold"),
        "weights": measures.ParamInfo(dtype=dict, default=_DEFAULT_WEIGHTS, desc="relevance level -> weight"),
    }


LangPEER = _LangPEER()


class LangPEERProvider(providers.Provider):
    """ir_measures provider of :data:`LangPEER` (delegates to :func:`~._trec.peer_value`)."""

    NAME = "pyterrier_hybrid_langpeer"
    SUPPORTED_MEASURES = [LangPEER(cutoff=AnyParam(), weights=AnyParam())]

    def _evaluator(self, measures_: Iterable[measures.Measure], qrels: Any) -> _LangPEEREvaluator:
        qrels = ir_measures.util.QrelsConverter(qrels).as_dict_of_dict()
        return _LangPEEREvaluator(list(measures_), qrels)


class _LangPEEREvaluator(_PerQueryEvaluator):
    """The per-query loop of the package's other measures (finite scores, trec_eval order), with PEER values."""

    def __init__(self, measures_: list[measures.Measure], qrels: dict[str, dict[str, int]]):
        super().__init__(measures_, qrels)
        # The language set only seeds the per-language groups (empty groups are dropped by the test), so the
        # languages of the judged documents are enough; docs of other languages get their group on the fly.
        langs = {_lang(doc) for judged in qrels.values() for doc in judged} - {None} or {"und"}
        self._peer = {m: peer(m["cutoff"], langs=langs, weights=m["weights"]) for m in measures_}

    def _value(self, measure: measures.Measure, qid: str, qrel: Mapping[str, int], ranking: list[str]) -> float:
        return peer_value(self._peer[measure], qrel, ranking)


def _lang(doc_id: str) -> str | None:
    try:
        return lang_of_id(doc_id)
    except ValueError:  # an id without language: peer_value names it if it is ever ranked
        return None


def _install() -> None:
    if LangPEER.NAME not in measures.registry:
        measures.register(LangPEER)
    pipeline = ir_measures.DefaultPipeline.providers
    if not any(isinstance(p, LangPEERProvider) for p in pipeline):
        provider = LangPEERProvider()
        providers.registry.setdefault(provider.NAME, provider)
        pipeline.insert(0, provider)


_install()
