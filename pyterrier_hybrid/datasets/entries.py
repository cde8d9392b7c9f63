"""XQuAD-R and MLQA-R as ir_datasets entries.

Ids (stable; ``q`` and ``d`` are ISO 639-1 codes of the benchmark):

============================  =========================================================
``<benchmark>/<q>``           monolingual: questions in ``q`` against candidates in ``q``
``<benchmark>/<q>-<d>``       cross-lingual (``q != d``): questions in ``q`` against
                              candidates in ``d``; only questions with an answer in ``d``
``<benchmark>/multi``         pooled multilingual: every question of every language against
                              the candidates of all languages; the gold sentence of every
                              language in which the question exists is relevant
``<benchmark>``               alias of ``<benchmark>/multi``
============================  =========================================================

with ``<benchmark>`` one of ``xquad-r`` (11 languages) and ``mlqa-r`` (7 languages).
Docs are :class:`~.lareqa.LareqaDoc` (``doc_id, text, lang, context``), queries
:class:`~.lareqa.LareqaQuery` (``query_id, text, lang, group_id``), qrels binary
``TrecQrel``. Every entry answers what ir_datasets' tools ask of a dataset: ``docs_count()``,
``queries_count()``, ``qrels_count()``, ``docs_store().get_many(ids)`` and ``queries_store().get(qid)``
(what ``ir_datasets lookup --qid`` calls; ir_datasets defines no query store of its own).
Ids carry their language (``en_...``), are unique across a benchmark, and a query keeps its id
in every entry it appears in, so runs on different entries pair up.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterable, Iterator, Sequence

import ir_datasets
from ir_datasets.formats import BaseDocs, BaseQrels, BaseQueries, TrecQrel
from ir_datasets.indices import Docstore

from ..languages import BENCHMARK_LANGS, LANG_NAMES, validate_benchmark, validate_lang
from .lareqa import LareqaDoc, LareqaQuery, load_language

POOLED = "multi"

CITATIONS = {
    "lareqa": """@inproceedings{roy-etal-2020-lareqa,
  title = {{LAReQA}: Language-Agnostic Answer Retrieval from a Multilingual Pool},
  author = {Roy, Uma and Constant, Noah and Al-Rfou, Rami and Barua, Aditya and Phillips, Aaron and Yang, Yinfei},
  booktitle = {Proceedings of EMNLP 2020},
  year = {2020},
  pages = {5919--5930},
  url = {https://aclanthology.org/2020.emnlp-main.477}
}""",
    "xquad-r": """@inproceedings{artetxe-etal-2020-cross,
  title = {On the Cross-lingual Transferability of Monolingual Representations},
  author = {Artetxe, Mikel and Ruder, Sebastian and Yogatama, Dani},
  booktitle = {Proceedings of ACL 2020},
  year = {2020},
  pages = {4623--4637},
  url = {https://aclanthology.org/2020.acl-main.421}
}""",
    "mlqa-r": """@inproceedings{lewis-etal-2020-mlqa,
  title = {{MLQA}: Evaluating Cross-lingual Extractive Question Answering},
  author = {Lewis, Patrick and Oguz, Barlas and Rinott, Ruty and Riedel, Sebastian and Schwenk, Holger},
  booktitle = {Proceedings of ACL 2020},
  year = {2020},
  pages = {7315--7330},
  url = {https://aclanthology.org/2020.acl-main.653}
}""",
}

PRETTY = {"xquad-r": "XQuAD-R", "mlqa-r": "MLQA-R"}
SOURCES = {
    "xquad-r": "XQuAD (Artetxe et al., 2020): 240 SQuAD v1.1 dev paragraphs and 1190 questions professionally "
    "translated into 10 languages",
    "mlqa-r": "the MLQA dev split (Lewis et al., 2020): parallel Wikipedia sentences with questions written in "
    "one language and translated; a question exists in 2 to 4 of the 7 languages",
}
LICENCES = {"xquad-r": "CC BY-SA 4.0", "mlqa-r": "CC BY-NC 4.0"}


def dataset_id(benchmark: str, qlang: str | None = None, dlang: str | None = None) -> str:
    """Id of an entry: pooled when both languages are None, monolingual when only ``qlang`` is given.

    >>> dataset_id("xquad-r", "en", "de")
    'xquad-r/en-de'
    """
    langs = validate_benchmark(benchmark)
    if qlang is None and dlang is None:
        return f"{benchmark}/{POOLED}"
    if qlang is None:
        raise ValueError("give qlang (the question language) when dlang is given")
    validate_lang(qlang, langs, what=f"{benchmark} question language")
    if dlang is None or dlang == qlang:
        return f"{benchmark}/{qlang}"
    validate_lang(dlang, langs, what=f"{benchmark} candidate language")
    return f"{benchmark}/{qlang}-{dlang}"


def settings(benchmark: str, *, mono: bool = True, cross: bool = True) -> list[tuple[str, str]]:
    """All ``(question language, candidate language)`` settings of a benchmark, monolingual first."""
    langs = validate_benchmark(benchmark)
    result = [(lang, lang) for lang in langs] if mono else []
    if cross:
        result += [(q, d) for q, d in itertools.product(langs, langs) if q != d]
    return result


class _MemoryDocstore(Docstore):
    """Doc lookup by id over the parsed files (the whole benchmark fits in memory)."""

    def __init__(self, docs: LareqaDocs):
        super().__init__(LareqaDoc, "doc_id")
        self._docs = docs

    def get_many_iter(self, doc_ids: Iterable[str]) -> Iterator[LareqaDoc]:
        """The docs of ``doc_ids`` that exist, in the order asked; unknown ids are skipped."""
        lookup = self._docs.lookup()
        for did in doc_ids:
            if did in lookup:
                yield lookup[did]


class QueryStore(Docstore):
    """Query lookup by ``query_id``, the interface ``ir_datasets lookup --qid`` uses (``get``, ``get_many``).

    ``get(qid)`` raises ``KeyError`` for an id the entry does not hold; ``get_many`` leaves such ids out.
    """

    def __init__(self, queries: BaseQueries, query_cls: type = LareqaQuery):
        super().__init__(query_cls, "query_id")
        self._queries = queries
        self._lookup: dict[str, tuple] | None = None

    def _table(self) -> dict[str, tuple]:
        if self._lookup is None:  # built on first use, from queries_iter (the parsed files are cached)
            self._lookup = {q.query_id: q for q in self._queries.queries_iter()}
        return self._lookup

    def get_many_iter(self, query_ids: Iterable[str]) -> Iterator[tuple]:
        """The queries of ``query_ids`` that exist, in the order asked."""
        table = self._table()
        for qid in query_ids:
            if qid in table:
                yield table[qid]

    def get(self, query_id: str, field: str | None = None):
        """The query (or one ``field`` of it) with id ``query_id``.

        Raises:
            KeyError: the entry holds no query with this id.
        """
        found = self.get_many([query_id], field)
        if query_id not in found:
            raise KeyError(f"query_id {query_id!r} is not in this entry; query ids look like 'en_<group id>' "
                           "(list them with `ir_datasets export <id> queries --fields query_id`)")
        return found[query_id]

    def count(self) -> int:
        """Number of queries."""
        return len(self._table())


class LareqaDocs(BaseDocs):
    """Candidate sentences of one or several languages of a benchmark."""

    def __init__(self, benchmark: str, langs: Sequence[str]):
        self._benchmark = benchmark
        self._langs = tuple(langs)

    def _all(self) -> list[LareqaDoc]:
        return [doc for lang in self._langs for doc in load_language(self._benchmark, lang).docs]

    @functools.lru_cache(maxsize=1)  # noqa: B019 - one handler object per entry, kept for the process
    def lookup(self) -> dict[str, LareqaDoc]:
        """Doc id → doc."""
        return {doc.doc_id: doc for doc in self._all()}

    def docs_iter(self) -> Iterator[LareqaDoc]:
        """Docs in language order, then file order."""
        return iter(self._all())

    def docs_count(self) -> int:
        """Number of candidate sentences."""
        return sum(len(load_language(self._benchmark, lang).docs) for lang in self._langs)

    def docs_cls(self):
        """:class:`~.lareqa.LareqaDoc`."""
        return LareqaDoc

    def docs_store(self, field: str = "doc_id") -> Docstore:
        """In-memory doc store (lookup by ``doc_id``)."""
        return _MemoryDocstore(self)

    def docs_namespace(self) -> str:
        """Doc ids are unique within a benchmark."""
        return self._benchmark

    def docs_lang(self) -> str | None:
        """The language, or None for a multilingual pool."""
        return self._langs[0] if len(self._langs) == 1 else None


def _groups_answered(benchmark: str, dlangs: Sequence[str]) -> set[str]:
    return set().union(*(load_language(benchmark, d).gold for d in dlangs))


class LareqaQueries(BaseQueries):
    """Questions in ``qlangs`` that have a gold sentence in at least one of ``dlangs``."""

    def __init__(self, benchmark: str, qlangs: Sequence[str], dlangs: Sequence[str]):
        self._benchmark = benchmark
        self._qlangs = tuple(qlangs)
        self._dlangs = tuple(dlangs)

    def queries_iter(self) -> Iterator[LareqaQuery]:
        """Questions in language order, then file order."""
        answered = _groups_answered(self._benchmark, self._dlangs)
        for lang in self._qlangs:
            yield from (q for q in load_language(self._benchmark, lang).queries if q.group_id in answered)

    def queries_cls(self):
        """:class:`~.lareqa.LareqaQuery`."""
        return LareqaQuery

    def queries_count(self) -> int:
        """Number of questions (without it ir_datasets reports None: it has no metadata for these ids)."""
        return sum(1 for _ in self.queries_iter())

    def queries_store(self) -> QueryStore:
        """Lookup by ``query_id`` (``.get(qid)``, ``.get_many(qids)``)."""
        return QueryStore(self)

    def queries_namespace(self) -> str:
        """Query ids are unique within a benchmark."""
        return self._benchmark

    def queries_lang(self) -> str | None:
        """The language, or None for several."""
        return self._qlangs[0] if len(self._qlangs) == 1 else None


class LareqaQrels(BaseQrels):
    """Binary qrels: each query's gold sentence in every candidate language where it exists."""

    def __init__(self, queries: LareqaQueries, benchmark: str, dlangs: Sequence[str]):
        self._queries = queries
        self._benchmark = benchmark
        self._dlangs = tuple(dlangs)

    def qrels_iter(self) -> Iterator[TrecQrel]:
        """One qrel per (query, candidate language with a gold sentence)."""
        golds = [load_language(self._benchmark, d).gold for d in self._dlangs]
        for query in self._queries.queries_iter():
            for gold in golds:
                if query.group_id in gold:
                    yield TrecQrel(query.query_id, gold[query.group_id], 1, "0")

    def qrels_cls(self):
        """``TrecQrel``."""
        return TrecQrel

    def qrels_count(self) -> int:
        """Number of qrels (one per query and candidate language that holds its answer)."""
        return sum(1 for _ in self.qrels_iter())

    def qrels_defs(self) -> dict[int, str]:
        """Relevance levels."""
        return {1: "the sentence that contains the answer (in any candidate language of the entry)"}


class _Documentation:
    def __init__(self, info: dict):
        self._info = info

    def documentation(self) -> dict:
        return self._info


def _describe(benchmark: str, qlangs: Sequence[str], dlangs: Sequence[str]) -> dict:
    pretty = PRETTY[benchmark]
    names = lambda langs: ", ".join(LANG_NAMES[lang] for lang in langs)  # noqa: E731
    if len(qlangs) > 1:
        setting = (
            f"pooled multilingual setting (LAReQA X-Y): questions in {names(qlangs)} against one pool of the "
            "candidate sentences of all languages; the gold sentence of every language in which the question "
            "exists is relevant"
        )
        name = f"{pretty} (pooled, all languages)"
    elif qlangs == dlangs:
        setting = f"monolingual setting: {names(qlangs)} questions against {names(dlangs)} candidate sentences"
        name = f"{pretty} ({qlangs[0]})"
    else:
        setting = (
            f"cross-lingual setting: {names(qlangs)} questions against {names(dlangs)} candidate sentences "
            "(only questions with an answer in the candidate language)"
        )
        name = f"{pretty} ({qlangs[0]} questions, {dlangs[0]} candidates)"
    return {
        "pretty_name": name,
        "desc": (
            f"<p>{pretty} answer-sentence retrieval from LAReQA (Roy et al., 2020), built from "
            f"{SOURCES[benchmark]}. Candidates are the sentences of all paragraphs; the gold candidate is the "
            f"sentence that contains the answer. This entry is the {setting}.</p>"
            f"<p>Licence: {LICENCES[benchmark]}. Registered by pyterrier_hybrid.</p>"
        ),
        "languages": list(qlangs) if len(qlangs) > 1 else sorted({*qlangs, *dlangs}),
        "bibtex": "\n".join([CITATIONS["lareqa"], CITATIONS[benchmark]]),
    }


def build_entry(benchmark: str, qlangs: Sequence[str], dlangs: Sequence[str],
                docs: LareqaDocs | None = None) -> ir_datasets.Dataset:
    """An ir_datasets Dataset for questions in ``qlangs`` against candidates in ``dlangs``."""
    docs = docs if docs is not None else LareqaDocs(benchmark, dlangs)
    queries = LareqaQueries(benchmark, qlangs, dlangs)
    qrels = LareqaQrels(queries, benchmark, dlangs)
    return ir_datasets.Dataset(docs, queries, qrels, _Documentation(_describe(benchmark, qlangs, dlangs)))


def entries(benchmark: str) -> dict[str, ir_datasets.Dataset]:
    """All entries of a benchmark by id (monolingual, cross-lingual, pooled and its alias)."""
    langs = validate_benchmark(benchmark)
    lang_docs = {lang: LareqaDocs(benchmark, [lang]) for lang in langs}  # shared by mono and cross entries
    result = {dataset_id(benchmark, q, d): build_entry(benchmark, [q], [d], lang_docs[d]) for q, d in
              settings(benchmark)}
    result[dataset_id(benchmark)] = build_entry(benchmark, langs, langs)
    result[benchmark] = build_entry(benchmark, langs, langs)
    return result


def register() -> list[str]:
    """Register every XQuAD-R and MLQA-R entry with ir_datasets; already registered ids are left alone.

    Returns:
        The ids of this package's entries.
    """
    existing = set(ir_datasets.registry)
    ids = []
    for benchmark in BENCHMARK_LANGS:
        for name, dataset in entries(benchmark).items():
            if name not in existing:
                ir_datasets.registry.register(name, dataset)
            ids.append(name)
    return ids
