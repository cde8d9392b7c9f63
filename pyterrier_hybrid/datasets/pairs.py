"""Training pairs for hybrid batch training.

A *pairs frame* is a ``pandas.DataFrame`` with one row per (question, answer sentence) pair:

===============  ============================================================================
``query``        question text
``text``         answer sentence text (the positive)
``qlang``        language code of the question
``dlang``        language code of the answer
``group_id``     parallel group id: shared by all translations of one item (pairs of one group
                 never share a batch, because a translation would be a false negative)
``negative``     optional: a hard-negative sentence; when present every row must have one
===============  ============================================================================

From parallel data (a group exists in several languages) every (question language, answer
language) combination of a group is a pair: mono pairs (``qlang == dlang``) and cross pairs.

Sources: the registered XQuAD-R / MLQA-R entries (:func:`pairs_from_benchmark`), a directory of
LAReQA-style JSON files ``<lang>.json`` (:func:`pairs_from_lareqa_dir`), PyTerrier topics and qrels
(:func:`pairs_from_topics_qrels`), or any frame with the columns above (:func:`validate_pairs`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .._checks import check_texts
from ..languages import ALL_LANGS, ID_SEP, lang_of_id, validate_benchmark, validate_langs
from .lareqa import LanguageData, lareqa_json_files, load_language, read_lareqa_json

PAIR_COLUMNS: tuple[str, ...] = ("query", "text", "qlang", "dlang", "group_id")
NEGATIVE_COLUMN = "negative"


def validate_pairs(pairs: pd.DataFrame, *, valid_langs: Sequence[str] = ALL_LANGS) -> pd.DataFrame:
    """Check a pairs frame and return a clean copy (only the pair columns, fresh index).

    Texts (``query``, ``text``, ``negative``) must be ``str``: a missing value, bytes or a number is an
    error naming the row, its group and the column (see :func:`pyterrier_hybrid._checks.check_texts`),
    never turned into text such as ``"nan"`` or ``"b'abc'"``.

    Args:
        pairs: frame with the columns of the module docstring.
        valid_langs: accepted language codes.

    Raises:
        ValueError: not a frame, missing columns, no rows, missing or non-str or empty texts, missing
            languages or group ids, unknown languages.
    """
    if not isinstance(pairs, pd.DataFrame):
        raise ValueError(f"training pairs must be a pandas DataFrame with columns {list(PAIR_COLUMNS)}")
    missing = [c for c in PAIR_COLUMNS if c not in pairs.columns]
    if missing:
        raise ValueError(
            f"training pairs lack column(s) {missing}; expected {list(PAIR_COLUMNS)} (+ optional "
            f"{NEGATIVE_COLUMN!r}), got {list(pairs.columns)}"
        )
    if len(pairs) == 0:
        raise ValueError("no training pairs: the pairs frame is empty")
    columns = list(PAIR_COLUMNS) + ([NEGATIVE_COLUMN] if NEGATIVE_COLUMN in pairs.columns else [])
    labels = pairs.index.tolist()  # Python scalars: messages show 11, not np.int64(11)
    out = pairs[columns].reset_index(drop=True).copy()
    # Languages and group ids are labels, not texts: a missing one is an error, a number is a fine label.
    for column in ("qlang", "dlang", "group_id"):
        if out[column].isna().any():
            raise ValueError(
                f"column {column!r} of the training pairs has missing values (rows {_rows(out[column].isna(), labels)})"
                "; fill or drop those rows"
            )
        out[column] = out[column].astype(str)
    text_columns = ("query", "text") + ((NEGATIVE_COLUMN,) if NEGATIVE_COLUMN in columns else ())
    rows = _PairRows(labels, out["group_id"].tolist())
    for column in text_columns:
        check_texts(out[column].tolist(), rows, column=column, id_name="row")
        empty = out[column].str.strip() == ""
        if empty.any():
            raise ValueError(
                f"column {column!r} of the training pairs has empty texts (rows {_rows(empty, labels)}); "
                "drop those rows"
            )
    validate_langs(sorted(set(out["qlang"]) | set(out["dlang"])), valid_langs, what="language in training pairs")
    return out


class _PairRow:
    """How a bad text is named in messages: the row's index label in the user's frame and its group."""

    def __init__(self, label: object, group: str) -> None:
        self.label, self.group = label, group

    def __repr__(self) -> str:
        return f"{self.label!r} (group_id {self.group!r})"


class _PairRows(Sequence):
    """Row names for :func:`check_texts`, built only for the row that is reported."""

    def __init__(self, labels: list, groups: list[str]) -> None:
        self._labels, self._groups = labels, groups

    def __len__(self) -> int:
        return len(self._groups)

    def __getitem__(self, i: int) -> _PairRow:  # type: ignore[override]  # no slices: check_texts indexes one row
        return _PairRow(self._labels[i], self._groups[i])


def _rows(mask: pd.Series, labels: Sequence | None = None) -> str:
    rows = mask[mask].index.tolist()
    if labels is not None:
        rows = [labels[i] for i in rows]
    return ", ".join(map(repr if labels is not None else str, rows[:5])) + (" ..." if len(rows) > 5 else "")


def _restrict(
    pairs: pd.DataFrame,
    *,
    qlangs: Iterable[str] | None,
    dlangs: Iterable[str] | None,
    configs: Iterable[tuple[str, str]] | None,
    source: str,
) -> pd.DataFrame:
    """Keep the asked languages / configurations; raise if one of them has no data."""
    if qlangs is not None:
        qlangs = list(qlangs)
        pairs = pairs[pairs["qlang"].isin(qlangs)]
        if absent := sorted(set(qlangs) - set(pairs["qlang"])):
            raise ValueError(f"{source} has no questions in language(s) {absent}")
    if dlangs is not None:
        dlangs = list(dlangs)
        pairs = pairs[pairs["dlang"].isin(dlangs)]
        if absent := sorted(set(dlangs) - set(pairs["dlang"])):
            raise ValueError(f"{source} has no answers in language(s) {absent}")
    if configs is not None:
        configs = [tuple(c) for c in configs]
        have = set(zip(pairs["qlang"], pairs["dlang"]))
        if absent := [f"{q}->{d}" for q, d in configs if (q, d) not in have]:
            raise ValueError(f"{source} has no pairs for language pair(s) {absent}")
        keep = pd.Series(list(zip(pairs["qlang"], pairs["dlang"])), index=pairs.index).isin(set(configs))
        pairs = pairs[keep]
    if len(pairs) == 0:
        raise ValueError(f"{source} gives no training pairs for the languages asked")
    return pairs.reset_index(drop=True)


def _parallel_pairs(
    questions: Mapping[str, Mapping[str, str]], answers: Mapping[str, Mapping[str, str]]
) -> pd.DataFrame:
    """All (qlang, dlang) pairs of every group: ``questions[lang][group]`` x ``answers[lang][group]``."""
    rows = []
    for qlang, by_group in questions.items():
        for group, question in by_group.items():
            for dlang, answers_by_group in answers.items():
                if group in answers_by_group:
                    rows.append((question, answers_by_group[group], qlang, dlang, group))
    return pd.DataFrame(rows, columns=list(PAIR_COLUMNS))


def pairs_from_benchmark(
    benchmark: str,
    *,
    langs: Iterable[str] | None = None,
    qlangs: Iterable[str] | None = None,
    dlangs: Iterable[str] | None = None,
    configs: Iterable[tuple[str, str]] | None = None,
) -> pd.DataFrame:
    """Pairs frame of a registered benchmark (``"xquad-r"`` or ``"mlqa-r"``): every language combination.

    Args:
        benchmark: ``"xquad-r"`` or ``"mlqa-r"``.
        langs: languages to load (default: all of the benchmark).
        qlangs: keep only these question languages.
        dlangs: keep only these answer languages.
        configs: keep only these ``(qlang, dlang)`` pairs.

    Raises:
        ValueError: unknown benchmark or language, or a language / pair with no data.
    """
    valid = validate_benchmark(benchmark)
    langs = validate_langs(langs if langs is not None else valid, valid, what=f"{benchmark} language")
    read = {lang: _questions_and_answers(load_language(benchmark, lang)) for lang in langs}
    pairs = _parallel_pairs({k: v[0] for k, v in read.items()}, {k: v[1] for k, v in read.items()})
    return _restrict(pairs, qlangs=qlangs, dlangs=dlangs, configs=configs, source=f"benchmark {benchmark!r}")


def _questions_and_answers(data: LanguageData) -> tuple[dict[str, str], dict[str, str]]:
    """Questions and gold answer sentences of one language, both by group id."""
    return ({q.group_id: q.text for q in data.queries},
            {group: data.docs_by_id[docno].text for group, docno in data.gold.items()})


def pairs_from_lareqa_dir(
    path: str | Path,
    *,
    langs: Iterable[str] | None = None,
    qlangs: Iterable[str] | None = None,
    dlangs: Iterable[str] | None = None,
    configs: Iterable[tuple[str, str]] | None = None,
    valid_langs: Sequence[str] = ALL_LANGS,
) -> pd.DataFrame:
    """Pairs frame of a directory of LAReQA-style JSON files named ``<lang>.json``.

    The question id (``qas[].id``) is the parallel group id; the gold sentence is the one holding the
    answer start (see :mod:`pyterrier_hybrid.datasets.lareqa`).

    Raises:
        ValueError: missing directory or files, unknown languages, malformed JSON, a pair with no data.
    """
    path = Path(path)
    files = lareqa_json_files(path, langs=langs, valid_langs=valid_langs)
    read = {lang: _questions_and_answers(read_lareqa_json(p, lang)) for lang, p in files.items()}
    pairs = _parallel_pairs({k: v[0] for k, v in read.items()}, {k: v[1] for k, v in read.items()})
    return _restrict(pairs, qlangs=qlangs, dlangs=dlangs, configs=configs, source=f"directory {path}")


def _docs_lookup(docnos: Sequence[str], docs: object, dataset: object) -> dict[str, object]:
    """Docno -> text (unchecked: the caller checks the texts it uses) from a frame / mapping or a dataset."""
    if docs is not None:
        if isinstance(docs, pd.DataFrame):
            if not {"docno", "text"} <= set(docs.columns):
                raise ValueError(f"docs frame needs columns 'docno' and 'text', got {list(docs.columns)}")
            _check_ids(docs["docno"], "docno", "docs")
            wanted = docs[docs["docno"].astype(str).isin(set(docnos))]
            keys = wanted["docno"].astype(str)
            if keys.duplicated().any():
                dupes = wanted[keys.duplicated(keep=False)]
                texts_per_docno = dupes.groupby(dupes["docno"].astype(str))["text"].nunique(dropna=False)
                if (conflict := texts_per_docno[texts_per_docno > 1]).any():
                    raise ValueError(
                        f"docs frame has docno {conflict.index[0]!r} more than once with different texts; "
                        "keep one text per docno (e.g. docs.drop_duplicates('docno'))"
                    )
            return dict(zip(keys, wanted["text"]))
        if isinstance(docs, Mapping):
            return {str(k): v for k, v in docs.items()}
        raise ValueError("docs must be a DataFrame with docno/text columns or a mapping docno -> text")
    if dataset is None:
        raise ValueError(
            "the answer texts are needed: pass docs= (frame with docno/text) or dataset= (e.g. 'irds:mlqa-r/multi')"
        )
    import ir_datasets

    if isinstance(dataset, str):
        irds = ir_datasets.load(dataset.removeprefix("irds:"))
    elif hasattr(dataset, "irds_ref"):
        irds = dataset.irds_ref()
    else:
        raise ValueError(f"cannot look up documents in {dataset!r}; pass an ir_datasets id or docs=")
    found = irds.docs_store().get_many(list(docnos))
    return {docno: doc.text for docno, doc in found.items()}


def _check_ids(ids: pd.Series, column: str, frame: str) -> None:
    """Ids are joined on as strings; a missing one would become the id ``"nan"``, so it is an error."""
    if ids.isna().any():
        raise ValueError(
            f"{frame} column {column!r} has missing values (rows "
            f"{_rows(ids.isna().reset_index(drop=True), ids.index.tolist())}); drop those rows"
        )


def pairs_from_topics_qrels(
    topics: pd.DataFrame,
    qrels: pd.DataFrame,
    *,
    docs: pd.DataFrame | Mapping[str, str] | None = None,
    dataset: object = None,
    valid_langs: Sequence[str] = ALL_LANGS,
) -> pd.DataFrame:
    """Pairs frame from PyTerrier topics (``qid``, ``query``) and qrels (``qid``, ``docno``, ``label``).

    Query ids must look like ``<lang>_<group id>`` (as in the registered entries); the answer language
    comes from the docno prefix. Every relevant (``label > 0``) qrel is one pair. The queries and answer
    texts used must be ``str`` (as in :func:`validate_pairs`); labels must be numbers.

    Args:
        topics: queries; ids ``<lang>_<group>``.
        qrels: relevance judgements.
        docs: answer texts as a frame (``docno``, ``text``) or mapping; else looked up in ``dataset``.
        dataset: a PyTerrier dataset or ir_datasets id (``"irds:mlqa-r/multi"``) holding the docs.
        valid_langs: accepted language codes.

    Raises:
        ValueError: missing columns, missing ids, labels that are not numbers, a qid with two queries, a
            docno with two texts, missing or non-str texts, ids without language prefix, docs not found,
            no pairs.
    """
    for name, frame, cols in (("topics", topics, ("qid", "query")), ("qrels", qrels, ("qid", "docno", "label"))):
        if not isinstance(frame, pd.DataFrame) or not set(cols) <= set(frame.columns):
            got = list(frame.columns) if isinstance(frame, pd.DataFrame) else type(frame).__name__
            raise ValueError(f"{name} must be a DataFrame with columns {list(cols)}, got {got}")
    for name, frame, cols in (("topics", topics, ("qid",)), ("qrels", qrels, ("qid", "docno"))):
        for col in cols:
            _check_ids(frame[col], col, name)
    labels = pd.to_numeric(qrels["label"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    if not (finite := np.isfinite(labels)).all():  # NaN > 0 is False: a missing label would drop the pair silently
        i = np.flatnonzero(~finite)[0]
        raise ValueError(
            f"qrels 'label' of qid {str(qrels['qid'].iloc[i])!r} docno {str(qrels['docno'].iloc[i])!r} is "
            f"{qrels['label'].iloc[i]!r}, not a finite number ({int((~finite).sum())} such row(s)); labels are "
            "relevance grades (> 0 relevant)"
        )
    rel = qrels[labels > 0][["qid", "docno"]].astype(str)
    used = topics[["qid", "query"]].assign(qid=topics["qid"].astype(str))
    used = used[used["qid"].isin(set(rel["qid"]))]
    check_texts(used["query"].tolist(), used["qid"].tolist(), column="query", id_name="qid")
    if (per_qid := used.groupby("qid")["query"].nunique()).gt(1).any():
        raise ValueError(
            f"topics have qid {per_qid[per_qid > 1].index[0]!r} more than once with different queries; keep one "
            "query per qid"
        )
    merged = rel.merge(used.drop_duplicates("qid"), on="qid", how="inner")
    if len(merged) == 0:
        raise ValueError("no training pairs: no relevant qrel matches a topic (check qids and labels)")
    wanted = merged["docno"].unique().tolist()
    texts = _docs_lookup(wanted, docs, dataset)
    if absent := [d for d in wanted if d not in texts]:
        raise ValueError(f"{len(absent)} judged docno(s) have no text, e.g. {absent[:3]}")
    check_texts([texts[d] for d in wanted], wanted, column="text", id_name="docno")
    pairs = pd.DataFrame(
        {
            "query": merged["query"],
            "text": merged["docno"].map(texts),
            "qlang": merged["qid"].map(lang_of_id),
            "dlang": merged["docno"].map(lang_of_id),
            "group_id": merged["qid"].str.partition(ID_SEP)[2],
        }
    )
    return validate_pairs(pairs, valid_langs=valid_langs)


def pairs_fingerprint(pairs: pd.DataFrame) -> str:
    """SHA-256 over the pair columns of a validated pairs frame, row order included (it decides the batches).

    Two frames with the same fingerprint train identically under the same settings; a resumed run compares
    it with the one recorded when the run started.
    """
    columns = list(PAIR_COLUMNS) + ([NEGATIVE_COLUMN] if NEGATIVE_COLUMN in pairs.columns else [])
    digest = hashlib.sha256(json.dumps(columns).encode("utf-8"))
    chunk = 10_000  # JSON per chunk of rows: unambiguous (every chunk is one complete value), bounded memory
    for start in range(0, len(pairs), chunk):
        rows = pairs[columns].iloc[start : start + chunk].to_numpy().tolist()
        digest.update(json.dumps(rows, ensure_ascii=False).encode("utf-8"))
    return digest.hexdigest()


def describe_pairs(pairs: pd.DataFrame) -> dict[str, object]:
    """Counts for logs and model cards: pairs, groups, mono/cross pairs, pairs per configuration."""
    mono = pairs["qlang"] == pairs["dlang"]
    per_config = pairs.groupby(["qlang", "dlang"]).size()
    return {
        "pairs": len(pairs),
        "groups": int(pairs["group_id"].nunique()),
        "mono_pairs": int(mono.sum()),
        "cross_pairs": int((~mono).sum()),
        "languages": sorted(set(pairs["qlang"]) | set(pairs["dlang"])),
        "pairs_per_config": {f"{q}-{d}": int(n) for (q, d), n in per_config.items()},
    }
