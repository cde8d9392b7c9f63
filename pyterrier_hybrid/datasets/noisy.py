"""Noisy variants of the XQuAD-R and MLQA-R entries, registered lazily with ir_datasets.

Id scheme (any clean entry id, then the noise)::

    <clean id>/noise-<model>-<level>[-s<seed>][-docs]

``<clean id>`` is ``<benchmark>/<q>`` (monolingual), ``<benchmark>/<q>-<d>`` (cross-lingual) or
``<benchmark>/multi`` (pooled); ``<model>`` one of ``typo``, ``orthographic``, ``dialect``,
``script``, ``mixed``; ``<level>`` the percent of words touched, an integer 0 to 100 (10, 20, 30
and 50 are the documented levels); ``-s<seed>`` another noise draw (default seed 0); ``-docs``
perturbs the candidate sentences too (their ``text``; ``context`` stays clean). Examples:
``xquad-r/en-de/noise-typo-20``, ``xquad-r/hi/noise-script-50-s1``, ``mlqa-r/multi/noise-mixed-30-docs``.

Queries keep their ids, docs and qrels are those of the clean entry, so a clean and a noisy run
pair up query by query in significance tests. A query's noise is keyed by its id (with the seed,
model and language; see :func:`pyterrier_hybrid.noise.perturb`), so it is the same in every entry
that holds the query, and the same as :class:`pyterrier_hybrid.noise.NoiseTransformer` gives.

The ids are resolved on first ``ir_datasets.load(id)`` through a registry pattern, so the
thousands of combinations cost nothing at import.
"""

from __future__ import annotations

import numbers
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TextIO

import ir_datasets
from ir_datasets.formats import BaseDocs, BaseQueries
from ir_datasets.indices import Docstore

from ..languages import BENCHMARK_LANGS, validate_benchmark, validate_lang
from ..noise import perturb, validate_level, validate_model, validate_seed
from .entries import POOLED, QueryStore, _describe, _Documentation, dataset_id
from .lareqa import LareqaDoc, LareqaQuery, load_language

NOISE_ID = re.compile(
    r"^(?P<benchmark>xquad-r|mlqa-r)/(?P<setting>[a-z]{2}(?:-[a-z]{2})?|multi)/"
    r"noise-(?P<model>[a-z]+)-(?P<level>\d{1,3})(?:-s(?P<seed>\d+))?(?P<docs>-docs)?$"
)
"""What a noisy entry id looks like (the values are validated when the entry is built)."""


def noisy_dataset_id(benchmark: str, qlang: str | None = None, dlang: str | None = None, *, model: str,
                     level: int, seed: int = 0, docs: bool = False) -> str:
    """Id of a noisy entry (see the module docstring).

    >>> noisy_dataset_id("xquad-r", "en", "de", model="typo", level=20)
    'xquad-r/en-de/noise-typo-20'
    """
    from ..noise import validate_level, validate_model

    validate_model(model)
    if isinstance(level, bool) or not isinstance(level, int):
        raise ValueError(f"noisy entry levels are integer percents 0-100 (e.g. 10, 20, 30, 50); got {level!r}")
    validate_level(level)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer; got {seed!r}")
    suffix = f"noise-{model}-{level}" + (f"-s{seed}" if seed else "") + ("-docs" if docs else "")
    return f"{dataset_id(benchmark, qlang, dlang)}/{suffix}"


@dataclass(frozen=True)
class Noise:
    """One noise setting of an entry: model, level, seed, and the namespace its texts live in."""

    model: str
    level: int
    seed: int
    namespace: str

    def apply(self, text: str, lang: str, key: str) -> str:
        """``text`` perturbed, keyed by a query or doc id (see :func:`pyterrier_hybrid.noise.perturb`)."""
        from ..noise import perturb

        return perturb(text, lang, model=self.model, level=self.level, seed=self.seed, key=key)


class NoisyQueries(BaseQueries):
    """The clean entry's queries with noisy text; ids, languages and group ids unchanged."""

    def __init__(self, clean: BaseQueries, noise: Noise):
        self._clean = clean
        self._noise = noise

    def queries_iter(self) -> Iterator[LareqaQuery]:
        """Clean queries in the clean order, text perturbed (keyed by query id)."""
        for query in self._clean.queries_iter():
            yield query._replace(text=self._noise.apply(query.text, query.lang, query.query_id))

    def queries_cls(self):
        """:class:`~.lareqa.LareqaQuery`."""
        return LareqaQuery

    def queries_count(self) -> int:
        """The clean entry's count: noise changes texts, never which queries there are."""
        return self._clean.queries_count()

    def queries_store(self) -> QueryStore:
        """Lookup of the noisy texts by ``query_id`` (``.get(qid)``, ``.get_many(qids)``)."""
        return QueryStore(self)

    def queries_namespace(self) -> str:
        """A namespace of its own: same ids as the clean queries, different text."""
        return self._noise.namespace

    def queries_lang(self) -> str | None:
        """The clean entry's query language."""
        return self._clean.queries_lang()


class _NoisyDocstore(Docstore):
    def __init__(self, docs: NoisyDocs):
        super().__init__(LareqaDoc, "doc_id")
        self._docs = docs

    def get_many_iter(self, doc_ids):
        clean = self._docs._clean.docs_store()
        for doc in clean.get_many_iter(doc_ids):
            yield self._docs._perturb(doc)


class NoisyDocs(BaseDocs):
    """The clean entry's candidate sentences with noisy ``text`` (keyed by doc id); ``context`` is kept clean."""

    def __init__(self, clean: BaseDocs, noise: Noise):
        self._clean = clean
        self._noise = noise

    def _perturb(self, doc: LareqaDoc) -> LareqaDoc:
        return doc._replace(text=self._noise.apply(doc.text, doc.lang, doc.doc_id))

    def docs_iter(self) -> Iterator[LareqaDoc]:
        """Clean docs in the clean order, text perturbed."""
        return (self._perturb(doc) for doc in self._clean.docs_iter())

    def docs_count(self) -> int:
        """As many as the clean entry."""
        return self._clean.docs_count()

    def docs_cls(self):
        """:class:`~.lareqa.LareqaDoc`."""
        return LareqaDoc

    def docs_store(self, field: str = "doc_id") -> Docstore:
        """Lookup by ``doc_id`` (perturbed on the fly)."""
        return _NoisyDocstore(self)

    def docs_namespace(self) -> str:
        """A namespace of its own, so no index or vector cache of the clean docs is reused for them."""
        return self._noise.namespace

    def docs_lang(self) -> str | None:
        """The clean entry's doc language."""
        return self._clean.docs_lang()


def build_noisy_entry(benchmark: str, setting: str, model: str, level: int, seed: int = 0,
                      docs: bool = False) -> ir_datasets.Dataset:
    """The noisy variant of ``<benchmark>/<setting>`` (``setting``: ``q``, ``q-d`` or ``multi``).

    Raises:
        ValueError: unknown benchmark, language, model, or a level outside 0-100, with the valid values.
    """
    from ..noise import DESCRIPTIONS, validate_level, validate_model

    validate_model(model)
    validate_level(level)
    langs = BENCHMARK_LANGS.get(benchmark)
    if langs is None:
        raise ValueError(f"unknown benchmark {benchmark!r}; valid names are: {', '.join(BENCHMARK_LANGS)}")
    if setting == POOLED:
        qlangs = dlangs = list(langs)
        clean_id = dataset_id(benchmark)
    else:
        qlang, _, dlang = setting.partition("-")
        if dlang == qlang:
            raise ValueError(f"{benchmark}/{setting}: a monolingual entry is named by one language: "
                             f"use {benchmark}/{qlang}/noise-...")
        clean_id = dataset_id(benchmark, qlang, dlang or None)  # validates both languages
        qlangs, dlangs = [qlang], [dlang or qlang]
    clean = ir_datasets.registry[clean_id]
    noise = f"noise-{model}-{level}-s{seed}"
    spec = Noise(model, level, seed, f"{benchmark}/{noise}")
    queries = NoisyQueries(clean.queries_handler(), spec)
    doc_handler = NoisyDocs(clean.docs_handler(), spec) if docs else clean.docs_handler()
    info = dict(_describe(benchmark, qlangs, dlangs))
    what = "questions and candidate sentences" if docs else "questions"
    info["pretty_name"] += f", {model} noise {level}%" + (f" (seed {seed})" if seed else "") + (
        " on questions and candidates" if docs else "")
    info["desc"] += (
        f"<p>Noisy variant of <code>{clean_id}</code>: the {what} carry synthetic <b>{model}</b> noise ("
        f"{DESCRIPTIONS[model]}) on {level}% of their words, seed {seed}, generated on the fly by "
        "pyterrier_hybrid.noise. Query ids, docs"
        + (" (except their text)" if docs else "")
        + " and qrels are those of the clean entry.</p>"
    )
    return ir_datasets.Dataset(doc_handler, queries, clean.qrels_handler(), _Documentation(info))


def _initialise(name: str, groups: tuple) -> ir_datasets.Dataset:
    benchmark, setting, model, level, seed, docs = groups
    return build_noisy_entry(benchmark, setting, model, int(level), int(seed or 0), bool(docs))


_registered = False


def register_noisy() -> str:
    """Register the noisy-entry pattern with ir_datasets (once per process); returns the pattern."""
    global _registered
    if not _registered:
        ir_datasets.registry.register_pattern(NOISE_ID.pattern, _initialise)
        _registered = True
    return NOISE_ID.pattern


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
