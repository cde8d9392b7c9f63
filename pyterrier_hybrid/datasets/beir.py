"""Local BEIR-format folders as PyTerrier-style datasets and as training pairs.

A BEIR folder (Thakur et al., NeurIPS 2021 Datasets and Benchmarks) holds::

    corpus.jsonl        one JSON object per line: "_id", "text", optional "title" (and "lang", see below)
    queries.jsonl       one JSON object per line: "_id", "text" (and optional "lang")
    qrels/<split>.tsv   tab-separated with the header "query-id  corpus-id  score"; score is an integer

The queries of a split are those its qrels judge (``queries.jsonl`` may hold the queries of every split).
Other fields of the JSON objects (e.g. ``metadata``) are ignored.

**Languages and ids.** This package reads a document's and a query's language from its id prefix
``<lang>_<id>`` (:func:`pyterrier_hybrid.languages.lang_of_id`), so ids are rewritten on reading:

- an id that already starts with a known language code and ``_`` (``de_17``, ``en_q3``) is kept as it is;
- otherwise it is prefixed with the row's language: ``17`` → ``en_17``.

A row's language is its optional ``lang`` field, else the folder's default (``lang=`` argument, ``"en"``),
so one folder can hold several languages. A ``lang`` field that contradicts a prefixed id is an error.
Qrels name the ids as written in the JSONL files; they are mapped the same way. Consequence: an id such as
``es_report`` in an English folder is read as Spanish (rename such ids: a ``lang`` field cannot override a prefix).

**Training pairs.** :meth:`BeirFolder.pairs` (and :func:`pairs_from_beir_dir`) turns the relevant qrels
(``score >= 1``) of a split into the pairs frame of :mod:`pyterrier_hybrid.datasets.pairs`. The parallel
group of a query is its id without the language prefix, so translations written as ``en_q1`` / ``de_q1``
never share a batch; in a one-language folder every query is its own group.

:func:`lareqa_dir_to_beir` writes a LAReQA-style JSON directory (``<lang>.json``, see
:mod:`pyterrier_hybrid.datasets.lareqa`) as a multilingual BEIR folder with train/test splits drawn by
question group, and :func:`write_beir_folder` writes any corpus / queries / qrels frames as one.

Example::

    from pyterrier_hybrid.bm25 import BM25Index
    from pyterrier_hybrid.datasets.beir import BeirFolder

    data = BeirFolder("data/my_corpus", lang="en", split="test")
    bm25 = BM25Index.build(data.get_corpus_iter(), "indexes/my_corpus.bm25").retriever()
    pt.Experiment([bm25], data.get_topics(), data.get_qrels(), ["AP", "nDCG@10"])
    train_pairs = data.pairs("train")            # query, text, qlang, dlang, group_id
"""

from __future__ import annotations

import csv
import functools
import json
import os
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyterrier as pt
import pyterrier_alpha as pta

from .._checks import TextError, check_text, check_texts
from .._io import atomic_dir
from ..languages import ALL_LANGS, ID_SEP, validate_lang
from .lareqa import lareqa_json_files, read_lareqa_json
from .pairs import validate_pairs

__all__ = [
    "CORPUS_FILE",
    "QRELS_COLUMNS",
    "QRELS_DIR",
    "QUERIES_FILE",
    "BeirFolder",
    "is_beir_folder",
    "lareqa_dir_to_beir",
    "pairs_from_beir_dir",
    "prefixed_id",
    "split_groups",
    "write_beir_folder",
]

CORPUS_FILE = "corpus.jsonl"
QUERIES_FILE = "queries.jsonl"
QRELS_DIR = "qrels"
QRELS_COLUMNS: tuple[str, str, str] = ("query-id", "corpus-id", "score")


def is_beir_folder(path: str | os.PathLike) -> bool:
    """Whether ``path`` looks like a BEIR folder (a directory holding ``corpus.jsonl``)."""
    return (Path(path) / CORPUS_FILE).is_file()


def prefixed_id(raw_id: str, lang: str, *, valid_langs: Sequence[str] = ALL_LANGS) -> str:
    """The package id of a BEIR id: kept when it already starts with ``<known lang>_``, else ``<lang>_<raw_id>``.

    >>> prefixed_id("17", "en"), prefixed_id("de_17", "en")
    ('en_17', 'de_17')
    """
    head, sep, _ = raw_id.partition(ID_SEP)
    if sep and head in valid_langs:
        return raw_id
    return f"{lang}{ID_SEP}{raw_id}"


def _check_row(row: dict[str, Any], path: Path, number: int) -> None:
    """Check the fields this package reads, naming the file, the line and the id.

    ``_id`` is a string or an integer; ``text`` a str (the missing-text policy of
    :func:`pyterrier_hybrid._checks.check_text`: null, NaN and lone surrogates are errors, never the string
    ``"None"``); ``title`` and ``lang`` a str or absent / null (a null title is no title).
    """
    ident = row["_id"]
    if isinstance(ident, bool) or not isinstance(ident, (str, int)):
        raise ValueError(f"{path}, line {number}: field '_id' must be a string (or an integer), got {ident!r}; "
                         "give every line an id")
    for key, optional in (("text", False), ("title", True), ("lang", True)):
        if key not in row or (optional and row[key] is None):
            continue
        try:
            check_text(row[key], what=f"{path}, line {number}: field {key!r} of id {ident!r}")
        except TextError as e:
            fill = '("" when there is none) ' if key == "text" else "(or leave the field out) "
            raise TextError(f"{e}; it must be a string {fill}- fix or remove that line") from None


def _read_jsonl(path: Path, required: Sequence[str]) -> list[dict[str, Any]]:
    """The JSON objects of a ``.jsonl`` file (blank lines skipped), each checked for the ``required`` fields."""
    if not path.is_file():
        raise ValueError(f"{path} does not exist; a BEIR folder needs {CORPUS_FILE}, {QUERIES_FILE} and "
                         f"{QRELS_DIR}/<split>.tsv")
    rows = []
    with open(path, "rb") as f:  # decoded line by line, so that a bad byte is reported with its line
        for number, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8-sig" if number == 1 else "utf-8")  # tolerate a byte-order mark
            except UnicodeDecodeError as e:
                raise ValueError(f"{path}, line {number}: not UTF-8 ({e.reason} at byte {e.start} of the line); "
                                 "BEIR files are UTF-8: convert the file (e.g. iconv -t utf-8)") from None
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}, line {number}: not valid JSON ({e.msg}): {line.strip()[:80]!r}; "
                                 "fix or remove that line (a truncated file? copy it again)") from None
            if not isinstance(row, dict):
                raise ValueError(f"{path}, line {number}: expected a JSON object, got {type(row).__name__}")
            if missing := [k for k in required if k not in row]:
                raise ValueError(f"{path}, line {number}: missing field(s) {missing}; every line needs "
                                 f"{list(required)}, this one has {sorted(row)}")
            _check_row(row, path, number)
            rows.append(row)
    if not rows:
        raise ValueError(f"{path} is empty")
    return rows


class BeirFolder(pt.datasets.Dataset):
    """A local BEIR-format folder as a PyTerrier dataset (see the module docstring).

    ``get_topics`` / ``get_qrels`` / ``get_topicsqrels`` take the split as PyTerrier's ``variant``;
    ``get_corpus_iter`` feeds indexers; :meth:`text_loader` makes ``pt.text.get_text(folder, "text")`` work.

    Args:
        path: the folder (``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``).
        lang: language of rows without a ``lang`` field and of ids without a language prefix.
        split: the split :meth:`get_topics`, :meth:`get_qrels` and :meth:`pairs` use by default.
        valid_langs: accepted language codes.
        title_sep: what joins a document's ``title`` and ``text`` (BEIR's own evaluation uses a space).

    Raises:
        ValueError: missing folder or files, an unknown language or an unknown split (the message lists the
            available ones). The files themselves are parsed (and checked) on first use.
    """

    def __init__(self, path: str | os.PathLike, *, lang: str = "en", split: str = "test",
                 valid_langs: Sequence[str] = ALL_LANGS, title_sep: str = " ") -> None:
        self.path = Path(path)
        self.title_sep = title_sep
        if not self.path.is_dir():
            raise ValueError(f"BEIR folder {self.path} does not exist or is not a directory")
        for name in (CORPUS_FILE, QUERIES_FILE):
            if not (self.path / name).is_file():
                raise ValueError(f"{self.path} is not a BEIR folder: {name} is missing (expected {CORPUS_FILE}, "
                                 f"{QUERIES_FILE} and {QRELS_DIR}/<split>.tsv)")
        if not self.splits:
            raise ValueError(f"{self.path} is not a BEIR folder: no qrels ({QRELS_DIR}/<split>.tsv) found")
        self.valid_langs = tuple(valid_langs)
        self._qrels_cache: dict[str, pd.DataFrame] = {}
        self.lang = validate_lang(lang, self.valid_langs, what="language of the BEIR folder")
        self.split = self._check_split(split)

    def __repr__(self) -> str:
        return f"BeirFolder({str(self.path)!r}, lang={self.lang!r}, split={self.split!r})"

    @property
    def splits(self) -> list[str]:
        """The splits that have qrels (``qrels/<split>.tsv``), sorted."""
        return sorted(p.stem for p in (self.path / QRELS_DIR).glob("*.tsv"))

    def _check_split(self, split: str | None) -> str:
        split = self.split if split is None else split
        if split not in self.splits:
            raise ValueError(f"unknown split {split!r} of {self.path}; available splits: {', '.join(self.splits)}")
        return split

    # ------------------------------------------------------------------------------------------- parsing
    def _rows(self, name: str, required: Sequence[str]) -> tuple[list[dict[str, Any]], dict[str, str], list[str]]:
        """Rows of a JSONL file, raw id -> package id, and each row's language."""
        path = self.path / name
        rows = _read_jsonl(path, required)
        ids: dict[str, str] = {}
        langs: list[str] = []
        for number, row in enumerate(rows, start=1):
            raw = str(row["_id"])
            if not raw.strip():
                raise ValueError(f"{path}, row {number}: empty '_id'")
            own = row.get("lang")
            lang = self.lang if own is None else validate_lang(
                str(own), self.valid_langs, what=f"'lang' of row {number} (id {raw!r}) in {path}:")
            pid = prefixed_id(raw, lang, valid_langs=self.valid_langs)
            if own is not None and pid.partition(ID_SEP)[0] != lang:
                raise ValueError(f"{path}, row {number}: id {raw!r} carries the language prefix "
                                 f"{pid.partition(ID_SEP)[0]!r} but its 'lang' field says {lang!r}")
            if raw in ids:
                raise ValueError(f"{path}: id {raw!r} occurs more than once")
            ids[raw] = pid
            langs.append(pid.partition(ID_SEP)[0])
        if len(set(ids.values())) != len(ids):
            seen: dict[str, str] = {}
            for raw, pid in ids.items():
                if pid in seen:
                    raise ValueError(f"{path}: ids {seen[pid]!r} and {raw!r} both become {pid!r} after language "
                                     "prefixing; rename one of them")
                seen[pid] = raw
        return rows, ids, langs

    @functools.cached_property
    def _corpus(self) -> tuple[pd.DataFrame, dict[str, str]]:
        rows, ids, langs = self._rows(CORPUS_FILE, ("_id", "text"))
        # texts and titles are checked str (a null title is no title) by _read_jsonl
        texts = [self.title_sep.join(p for p in ((r.get("title") or "").strip(), r["text"].strip()) if p)
                 for r in rows]
        frame = pd.DataFrame({"docno": list(ids.values()), "text": texts, "lang": langs,
                              "title": [str(r.get("title") or "") for r in rows]})
        return frame, ids

    @functools.cached_property
    def _queries(self) -> tuple[pd.DataFrame, dict[str, str]]:
        rows, ids, langs = self._rows(QUERIES_FILE, ("_id", "text"))
        qids = list(ids.values())
        frame = pd.DataFrame({"qid": qids, "query": [r["text"] for r in rows], "lang": langs,
                              "group_id": [q.partition(ID_SEP)[2] for q in qids]})
        return frame, ids

    @property
    def docs(self) -> pd.DataFrame:
        """All documents: ``docno`` (prefixed), ``text`` (title and text, see ``title_sep``), ``lang``, ``title``."""
        return self._corpus[0]

    @property
    def queries(self) -> pd.DataFrame:
        """All queries of ``queries.jsonl``: ``qid`` (prefixed), ``query``, ``lang``, ``group_id`` (qid w/o prefix)."""
        return self._queries[0]

    @property
    def langs(self) -> list[str]:
        """Languages of the documents and queries, sorted."""
        return sorted(set(self.docs["lang"]) | set(self.queries["lang"]))

    def _qrels(self, split: str) -> pd.DataFrame:
        if split not in self._qrels_cache:
            self._qrels_cache[split] = self._read_qrels(split)
        return self._qrels_cache[split]

    def _read_qrels(self, split: str) -> pd.DataFrame:
        path = self.path / QRELS_DIR / f"{split}.tsv"
        with open(path, encoding="utf-8", newline="") as f:
            lines = [row for row in csv.reader(f, delimiter="\t") if any(cell.strip() for cell in row)]
        if not lines:
            raise ValueError(f"{path} is empty; expected the header {' '.join(QRELS_COLUMNS)!r} and judgements")
        header = [cell.strip() for cell in lines[0]]
        if missing := [c for c in QRELS_COLUMNS if c not in header]:
            raise ValueError(f"{path}: header {header} lacks column(s) {missing}; BEIR qrels are tab-separated "
                             f"with the header {chr(9).join(QRELS_COLUMNS)!r}")
        col = [header.index(c) for c in QRELS_COLUMNS]
        doc_ids, query_ids = self._corpus[1], self._queries[1]
        rows = []
        for number, line in enumerate(lines[1:], start=2):
            if len(line) < len(header):
                raise ValueError(f"{path}, line {number}: {len(line)} field(s), the header has {len(header)}")
            qid, docno, score = (line[i].strip() for i in col)
            try:
                label = int(score)
            except ValueError:
                raise ValueError(f"{path}, line {number}: score {score!r} is not an integer") from None
            if qid not in query_ids:
                raise ValueError(f"{path}, line {number}: query-id {qid!r} is not in {QUERIES_FILE}")
            if docno not in doc_ids:
                raise ValueError(f"{path}, line {number}: corpus-id {docno!r} is not in {CORPUS_FILE}")
            rows.append((query_ids[qid], doc_ids[docno], label))
        if not rows:
            raise ValueError(f"{path} holds no judgements (only a header)")
        frame = pd.DataFrame(rows, columns=["qid", "docno", "label"]).astype({"label": "int64"})
        if frame.duplicated(["qid", "docno"]).any():
            dup = frame[frame.duplicated(["qid", "docno"])].iloc[0]
            raise ValueError(f"{path}: query {dup.qid!r} judges document {dup.docno!r} more than once")
        return frame

    # ------------------------------------------------------------------------------------------- dataset API
    def get_corpus_iter(self, verbose: bool = False) -> Iterator[dict[str, str]]:
        """Every document as a dict ``docno``, ``text`` (title + text), ``lang``, in file order.

        Args:
            verbose: show a progress bar.
        """
        docs = self.docs
        rows = zip(docs["docno"], docs["text"], docs["lang"])
        if verbose:
            from tqdm.auto import tqdm

            rows = tqdm(rows, total=len(docs), desc=self.path.name, unit="doc")
        for docno, text, lang in rows:
            yield {"docno": docno, "text": text, "lang": lang}

    def get_topics(self, split: str | None = None, variant: str | None = None) -> pd.DataFrame:
        """The queries judged in ``split`` (default: the folder's split): ``qid``, ``query``, in file order.

        Args:
            split: the split; ``variant`` is PyTerrier's name for it (``get_topicsqrels`` passes that).
            variant: the same as ``split``.

        Raises:
            ValueError: unknown split, two different splits, or a qrels file that does not parse.
        """
        judged = set(self._qrels(self._check_split(_split(split, variant)))["qid"])
        topics = self.queries[self.queries["qid"].isin(judged)]
        return topics[["qid", "query"]].reset_index(drop=True)

    def get_qrels(self, split: str | None = None, variant: str | None = None) -> pd.DataFrame:
        """The judgements of ``split`` (default: the folder's split): ``qid``, ``docno``, ``label`` (int).

        Args:
            split: the split; ``variant`` is PyTerrier's name for it.
            variant: the same as ``split``.

        Raises:
            ValueError: unknown split; a qrels file without the BEIR header, with a non-integer score, or naming
                a query or document that the JSONL files do not hold.
        """
        return self._qrels(self._check_split(_split(split, variant))).copy()

    def get_corpus(self) -> pd.DataFrame:
        """All documents as a frame (see :attr:`docs`)."""
        return self.docs.copy()

    def get_corpus_lang(self) -> str | None:
        """The documents' language, or None when they have several."""
        langs = set(self.docs["lang"])
        return langs.pop() if len(langs) == 1 else None

    def get_topics_lang(self) -> str | None:
        """The queries' language, or None when they have several."""
        langs = set(self.queries["lang"])
        return langs.pop() if len(langs) == 1 else None

    def text_loader(self, fields: str | Sequence[str] = "*", *, verbose: bool = False) -> pt.Transformer:
        """A transformer that adds document fields (``text``, ``title``, ``lang``) to a frame by ``docno``.

        Args:
            fields: one field, a list of them, or ``"*"`` for all.
            verbose: unused (the corpus is read once, in memory); accepted as PyTerrier's protocol asks.

        Raises:
            ValueError: an unknown field (the message lists the available ones).
        """
        available = [c for c in self.docs.columns if c != "docno"]
        wanted = available if fields == "*" else [fields] if isinstance(fields, str) else list(fields)
        if unknown := [f for f in wanted if f not in available]:
            raise ValueError(f"{self.path} has no document field(s) {unknown}; available: {', '.join(available)}")
        return _BeirTextLoader(self, tuple(wanted))

    def pairs(self, split: str | None = None, *, min_label: int = 1) -> pd.DataFrame:
        """Training pairs of ``split``: one per judgement with ``label >= min_label``.

        Returns:
            The pairs frame of :mod:`pyterrier_hybrid.datasets.pairs` (``query``, ``text``, ``qlang``, ``dlang``,
            ``group_id``), checked by :func:`~pyterrier_hybrid.datasets.pairs.validate_pairs`.

        Raises:
            ValueError: unknown split, no relevant judgement, or empty texts.
        """
        split = self._check_split(split)
        qrels = self._qrels(split)
        rel = qrels[qrels["label"] >= min_label]
        if rel.empty:
            raise ValueError(f"split {split!r} of {self.path} has no judgement with label >= {min_label}")
        queries = self.queries.set_index("qid")
        docs = self.docs.set_index("docno")
        pairs = pd.DataFrame({
            "query": queries.loc[rel["qid"], "query"].to_numpy(),
            "text": docs.loc[rel["docno"], "text"].to_numpy(),
            "qlang": queries.loc[rel["qid"], "lang"].to_numpy(),
            "dlang": docs.loc[rel["docno"], "lang"].to_numpy(),
            "group_id": queries.loc[rel["qid"], "group_id"].to_numpy(),
        })
        return validate_pairs(pairs, valid_langs=self.valid_langs)


def _split(split: str | None, variant: str | None) -> str | None:
    """``split`` or PyTerrier's ``variant`` (the same thing); both, if different, is an error."""
    if split is not None and variant is not None and split != variant:
        raise ValueError(f"split={split!r} and variant={variant!r} differ; give one of them")
    return split if split is not None else variant


class _BeirTextLoader(pt.Transformer):
    """Adds a :class:`BeirFolder`'s document fields to a frame by ``docno`` (see :meth:`BeirFolder.text_loader`)."""

    def __init__(self, folder: BeirFolder, fields: tuple[str, ...]) -> None:
        self.folder = folder
        self.fields = fields

    def __repr__(self) -> str:
        return f"{self.folder!r}.text_loader({list(self.fields)!r})"

    def transform(self, inp: pd.DataFrame) -> pd.DataFrame:
        """The input frame with the fields added (replacing columns of the same names), rows unchanged.

        Raises:
            KeyError: a docno that the folder does not hold, named.
        """
        pta.validate.columns(inp, includes=["docno"])
        docs = self.folder.docs.set_index("docno")
        unknown = ~inp["docno"].isin(docs.index)
        if unknown.any():
            raise KeyError(f"docno {inp['docno'][unknown].iloc[0]!r} is not in {self.folder.path} "
                           f"({int(unknown.sum())} unknown docnos); the frame comes from another corpus?")
        out = inp.copy()
        for field in self.fields:
            out[field] = docs.loc[inp["docno"], field].to_numpy() if len(inp) else pd.Series(dtype=object)
        return out


def pairs_from_beir_dir(path: str | os.PathLike, *, lang: str = "en", split: str = "train",
                        min_label: int = 1) -> pd.DataFrame:
    """Training pairs of one split of a BEIR folder (see :meth:`BeirFolder.pairs`).

    Args:
        path: the BEIR folder.
        lang: language of rows without a ``lang`` field / ids without a prefix.
        split: the qrels split (``qrels/<split>.tsv``).
        min_label: smallest score that counts as relevant.
    """
    return BeirFolder(path, lang=lang, split=split).pairs(min_label=min_label)


def split_groups(groups: Iterable[str], *, test_fraction: float = 0.3, seed: int = 0) -> tuple[list[str], list[str]]:
    """A reproducible train/test split of group ids (a pure function of the set of ids, the fraction and seed).

    Returns:
        ``(train, test)``, each sorted; the test part has ``round(test_fraction * n)`` groups (at least one,
        and at least one group is left for training when there are two or more).

    Raises:
        ValueError: a fraction outside ``(0, 1)`` or no groups.
    """
    unique = sorted({str(g) for g in groups})
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    if not unique:
        raise ValueError("no groups to split")
    n_test = min(max(1, round(test_fraction * len(unique))), max(1, len(unique) - 1))
    order = np.random.default_rng(seed).permutation(len(unique))
    test = {unique[i] for i in order[:n_test]}
    return [g for g in unique if g not in test], sorted(test)


def write_beir_folder(path: str | os.PathLike, *, corpus: pd.DataFrame, queries: pd.DataFrame,
                      qrels: Mapping[str, pd.DataFrame], overwrite: bool = False) -> Path:
    """Write frames as a BEIR folder (ids as given, so package ids ``<lang>_<id>`` read back unchanged).

    Args:
        path: the folder to write.
        corpus: ``docno``, ``text`` and optionally ``title`` and ``lang`` (written as the ``lang`` field).
        queries: ``qid``, ``query`` and optionally ``lang``.
        qrels: split name → frame with ``qid``, ``docno``, ``label``.
        overwrite: replace an existing folder.

    Returns:
        ``path``.

    Raises:
        ValueError: a missing column; a missing id, text, query or language, or a label that is not an integer
            (the message names the row); all checked before anything is written.
        FileExistsError: ``path`` exists and ``overwrite`` is false, or it is a file or holds files that are not
            a BEIR folder's (those are never replaced). The folder is written beside ``path`` and swapped in, so
            a failure leaves the old one intact.
    """
    path = Path(path)
    for name, frame, cols in (("corpus", corpus, ("docno", "text")), ("queries", queries, ("qid", "query"))):
        if missing := [c for c in cols if c not in frame.columns]:
            raise ValueError(f"{name} lacks column(s) {missing}; got {list(frame.columns)}")
    if not qrels:
        raise ValueError("qrels is empty: give at least one split")
    # Every value is checked first: a missing one must not be written as the text "nan" or "None".
    docnos = _written_ids(corpus["docno"], "docno", "corpus")
    qids = _written_ids(queries["qid"], "qid", "queries")
    doc_texts = check_texts(corpus["text"], ids=docnos, column="text", id_name="docno")
    query_texts = check_texts(queries["query"], ids=qids, column="query", id_name="qid")
    titles = ([_title(t, d) for d, t in zip(docnos, corpus["title"])] if "title" in corpus.columns
              else [""] * len(docnos))
    doc_langs = (check_texts(corpus["lang"], ids=docnos, column="lang", id_name="docno")
                 if "lang" in corpus.columns else None)
    query_langs = (check_texts(queries["lang"], ids=qids, column="lang", id_name="qid")
                   if "lang" in queries.columns else None)
    qrel_lines = {}
    for split, frame in qrels.items():
        if missing := [c for c in ("qid", "docno", "label") if c not in frame.columns]:
            raise ValueError(f"qrels of split {split!r} lack column(s) {missing}; got {list(frame.columns)}")
        q = _written_ids(frame["qid"], "qid", f"qrels of split {split!r}")
        d = _written_ids(frame["docno"], "docno", f"qrels of split {split!r}")
        qrel_lines[split] = ["\t".join(QRELS_COLUMNS)] + [
            f"{qid}\t{docno}\t{_label(label, split, qid, docno)}" for qid, docno, label in zip(q, d, frame["label"])]

    def dump(folder: Path, name: str, rows: Iterable[dict[str, Any]]) -> None:
        with open(folder / name, "w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")

    with atomic_dir(path, overwrite=overwrite, owned=_is_written_beir_folder, what="BEIR folder") as tmp:
        (tmp / QRELS_DIR).mkdir()
        dump(tmp, CORPUS_FILE, ({"_id": d, "title": t, "text": x, **({"lang": doc_langs[i]} if doc_langs else {})}
                                for i, (d, t, x) in enumerate(zip(docnos, titles, doc_texts))))
        dump(tmp, QUERIES_FILE, ({"_id": q, "text": x, **({"lang": query_langs[i]} if query_langs else {})}
                                 for i, (q, x) in enumerate(zip(qids, query_texts))))
        for split, lines in qrel_lines.items():
            (tmp / QRELS_DIR / f"{split}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _is_missing(value: Any) -> bool:
    return value is None or (not isinstance(value, str) and bool(np.ndim(value) == 0 and pd.isna(value)))


def _title(value: Any, docno: str) -> str:
    """A title to write: a str, or "" for a missing one (titles are optional: no title, not the text "nan")."""
    return "" if _is_missing(value) else check_text(value, what=f"corpus: 'title' of docno {docno!r}")


def _written_ids(values: Iterable[Any], column: str, frame: str) -> list[str]:
    """Ids as strings; a missing one (None, NaN) is an error, never the id ``"nan"``."""
    out = []
    for row, value in enumerate(values):
        if _is_missing(value) or isinstance(value, bool) or not isinstance(value, (str, int, np.integer)):
            raise ValueError(f"{frame}: {column!r} of row {row} is {value!r}, not a string id; give every row an id")
        out.append(str(value))
    return out


def _label(value: Any, split: str, qid: str, docno: str) -> int:
    """A qrels label as an int; NaN, fractions and non-numbers are errors (never rounded)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer, float, np.floating)) or \
            not (np.isfinite(value) and float(value).is_integer()):
        raise ValueError(f"qrels of split {split!r}: label of ({qid!r}, {docno!r}) is {value!r}, not an integer")
    return int(value)


def _is_written_beir_folder(path: Path) -> bool:
    """Whether ``path`` holds only what :func:`write_beir_folder` writes (so replacing it loses nothing else)."""
    names = {p.name for p in path.iterdir()}
    if not names <= {CORPUS_FILE, QUERIES_FILE, QRELS_DIR}:
        return False
    qrels_dir = path / QRELS_DIR
    return not qrels_dir.exists() or (qrels_dir.is_dir() and all(p.suffix == ".tsv" and p.is_file()
                                                                 for p in qrels_dir.iterdir()))


def lareqa_dir_to_beir(src: str | os.PathLike, dst: str | os.PathLike, *, test_fraction: float = 0.3, seed: int = 0,
                       langs: Iterable[str] | None = None, overwrite: bool = False) -> BeirFolder:
    """Write a directory of LAReQA-style ``<lang>.json`` files as a multilingual BEIR folder.

    Documents are all sentences of every language (ids ``<lang>_<paragraph:05d>_<sentence:03d>``, as in the
    registered XQuAD-R / MLQA-R entries), queries are ``<lang>_<question id>``. The relevance is LAReQA's pooled
    one: a question is judged relevant to the gold sentence of its group in *every* language that has the group,
    so a query's qrels hold one sentence per language. The question groups are split with :func:`split_groups`
    into ``qrels/train.tsv`` and ``qrels/test.tsv``, so no translation of a test question is trained on; the
    ``train`` pairs (:meth:`BeirFolder.pairs`) equal those of
    :func:`~pyterrier_hybrid.datasets.pairs.pairs_from_lareqa_dir` restricted to the train groups.

    Args:
        src: the directory of ``<lang>.json`` files.
        dst: the BEIR folder to write.
        test_fraction: share of question groups in the test split.
        seed: seed of the split.
        langs: languages to convert (default: every file).
        overwrite: replace an existing ``dst``.

    Returns:
        The folder, as a :class:`BeirFolder` on its ``test`` split.

    Raises:
        ValueError: missing directory or files, unknown languages, malformed JSON.
    """
    src = Path(src)
    files = lareqa_json_files(src, langs=langs)
    docs, queries, gold = [], [], {}
    for lang, file in files.items():
        data = read_lareqa_json(file, lang)
        d = [{"docno": x.doc_id, "text": x.text, "lang": lang} for x in data.docs]
        q = [{"qid": x.query_id, "query": x.text, "lang": lang, "group_id": x.group_id} for x in data.queries]
        g = data.gold
        counts = Counter(x["group_id"] for x in q)  # a repeated id would merge two questions' judgements
        if repeated := [group for group, n in counts.items() if n > 1]:
            raise ValueError(f"{file}: question id {repeated[0]!r} occurs more than once")
        docs += d
        queries += q
        gold[lang] = g
    train, test = split_groups({g for by_group in gold.values() for g in by_group}, test_fraction=test_fraction,
                               seed=seed)
    qrels = {}
    for split, groups in (("train", set(train)), ("test", set(test))):
        rows = [(f"{qlang}{ID_SEP}{group}", gold[dlang][group], 1)
                for qlang in gold for group in gold[qlang] if group in groups
                for dlang in gold if group in gold[dlang]]
        qrels[split] = pd.DataFrame(rows, columns=["qid", "docno", "label"])
    write_beir_folder(dst, corpus=pd.DataFrame(docs), queries=pd.DataFrame(queries), qrels=qrels,
                      overwrite=overwrite)
    return BeirFolder(dst, split="test")
