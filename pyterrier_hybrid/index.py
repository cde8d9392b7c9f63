"""One pooled FAISS inner-product index over all languages, with a language filter and an encoder manifest.

Storage is a :class:`pyterrier_dr.FlexIndex` (``vecs.f4``, ``docnos.npids``, ``pt_meta.json``), so every FlexIndex
retriever also works on it; this module adds what FlexIndex lacks:

- ``manifest.json``: the encoder's :meth:`~pyterrier_hybrid.encoding.BiEncoder.manifest` (model, dimension,
  pooling, normalisation, prompts, weight fingerprint), the document count, and the docid range of each language.
  Documents are stored grouped by language, so a language is a contiguous docid range.
- :meth:`DenseIndex.retriever` with ``langs=``: exact FAISS search (``IndexFlatIP``) restricted with a FAISS ID
  selector to those languages' ranges, or approximate search (HNSW, IVF, IVF-PQ) over one sub-index per language
  (:mod:`pyterrier_hybrid.ann`). Exact search over the
  pooled index restricted to language L returns the same documents and scores as an index of L alone, so the
  monolingual and cross-lingual settings are all answered from one index.
- a refusal (:class:`EncoderMismatchError`) when the query encoder differs from the indexing encoder.
- checked inputs: docnos must be unique non-empty strings, texts must be strings (the package's missing-text
  policy, checked before anything is encoded), vectors and scores must be finite.
- whole-folder builds: the index is written in a temporary sibling folder and swapped in whole
  (:func:`pyterrier_hybrid._io.atomic_dir`), so the path holds the complete old or the complete new index at
  every instant, even when a build is killed. Only a folder written by this module is ever replaced.
- an integrity check when an index is opened (manifest against the files), raising :class:`CorruptIndexError`.
- :meth:`DenseIndex.merge` of shard indexes built separately (e.g. one per process or machine).
- a PyTerrier artifact of type ``dense_index`` and format ``hybrid_flex``: ``pt.Artifact.load(path)`` opens the
  folder as a :class:`DenseIndex` without importing this package first, and ``build_package`` / ``from_url`` /
  ``to_hf`` / ``from_hf`` work on it. pyterrier-dr's ``FlexIndex(path)`` refuses any format but ``flex`` when it
  reads the vectors; :attr:`DenseIndex.flex` is a FlexIndex over the same files for pyterrier-dr's retrievers.
  Folders written before (format ``flex``) open with ``DenseIndex(path)`` as before.
- languages are optional: a document's language is its ``lang`` field, else :func:`pyterrier_hybrid.lang_of_id`
  of its docno (a registered language or a ``<lang>_`` prefix); a corpus none of whose documents has one
  (pyterrier-dr style docnos ``d1``, ``d2``) is indexed without languages and searched without a filter.
- :meth:`DenseIndex.adopt` of a FlexIndex built by pyterrier-dr (its vectors are copied, never re-encoded).

Example::

    enc = BiEncoder()
    index = DenseIndex("indexes/xquad-r.e5s")
    index.indexer(enc).index(pt.get_dataset("irds:xquad-r/multi").get_corpus_iter())
    mono_de = index.retriever(enc, langs=["de"], num_results=100)      # == a German-only index
    pooled = index.retriever(enc, num_results=100)
"""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Literal

import numpy as np
import pandas as pd
import pyterrier as pt
import pyterrier_alpha as pta

from . import _io
from ._checks import check_finite, check_int, check_texts, folded_cutoff
from ._packages import local_folder
from .ann import APPROXIMATE, AnnSearch, LanguagePartitions
from .languages import lang_of_id

if TYPE_CHECKING:
    from pyterrier_dr import FlexIndex

__all__ = ["CorruptIndexError", "DenseIndex", "DenseIndexer", "DenseRetriever", "EncoderMismatchError"]

MANIFEST = "manifest.json"
FORMAT = "pyterrier_hybrid.dense/1"
PT_META = "pt_meta.json"
# PyTerrier's artifact metadata: pt.Artifact.load(path) finds DenseIndex through the "pyterrier.artifact" entry point
# "dense_index.hybrid_flex" (pyproject.toml). Folders of earlier versions say "flex" (pyterrier-dr's FlexIndex).
ARTIFACT_TYPE, ARTIFACT_FORMAT, ARTIFACT_PACKAGE_HINT = "dense_index", "hybrid_flex", "pyterrier-hybrid"
_FORMATS = (ARTIFACT_FORMAT, "flex")
# Manifest fields that must agree between the indexing and the query encoder.
logger = logging.getLogger(__name__)

_MUST_MATCH = ("model", "dim", "pooling", "normalize", "query_prompt", "doc_prompt", "fingerprint")
_METHODS = ("flat", "hnsw", "ivf", "ivfpq")
_MERGE_STEP = 65536  # vectors copied per step when merging shards
_QUERY_BATCH = 256  # queries per FAISS call


class EncoderMismatchError(ValueError):
    """Queries were encoded by a different encoder (or settings) than the indexed documents."""


class CorruptIndexError(ValueError):
    """The files of an index disagree with its manifest (truncated, edited or partly deleted)."""



def _owned(path: Path) -> bool:
    """Whether the folder at ``path`` was written by this module, so that ``overwrite=True`` may replace it.

    The manifest names the format in its first line; a manifest too damaged for that still counts when the
    folder is otherwise this module's FlexIndex (``pt_meta.json`` of a dense flex index), so that a corrupt
    index can be rebuilt in place.
    """
    try:
        if FORMAT.encode() in (path / MANIFEST).read_bytes()[:4096]:
            return True
        meta = json.loads((path / PT_META).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and meta.get("type") == ARTIFACT_TYPE and meta.get("format") in _FORMATS


def _as_encoder(encoder: Any, where: str, needs: tuple[str, ...] = ("manifest",)) -> Any:
    """``encoder`` as a :class:`~pyterrier_hybrid.encoding.BiEncoder`: one as is; a model (path, name, object) wrapped.

    ``needs``: the methods the caller uses; an object that has them (and a ``manifest``) is taken as it is.
    """
    st = sys.modules.get("sentence_transformers")  # loaded already if encoder is a SentenceTransformer
    if isinstance(encoder, (str, os.PathLike)) or (st is not None and isinstance(encoder, st.SentenceTransformer)):
        from .encoding import BiEncoder

        return BiEncoder(encoder)
    if all(callable(getattr(encoder, name, None)) for name in ("manifest", *needs)):
        return encoder
    kind = type(encoder)
    raise TypeError(f"{where} takes a pyterrier_hybrid BiEncoder, a SentenceTransformer or a model name or path, not "
                    f"{kind.__module__}.{kind.__name__}; wrap the model with "
                    f"pyterrier_hybrid.BiEncoder(model_name_or_path)")


def _flex_meta(source: Path) -> dict[str, Any]:
    """``pt_meta.json`` of a pyterrier-dr FlexIndex folder, checked (its type, format, count and dimension)."""
    try:
        meta = json.loads((source / PT_META).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ValueError(f"{source} is not a FlexIndex folder ({PT_META}: {' '.join(str(e).split())}); "
                         "give the folder of a pyterrier_dr.FlexIndex") from None
    if not isinstance(meta, dict) or (meta.get("type"), meta.get("format")) != ("dense_index", "flex"):
        found = (meta.get("type"), meta.get("format")) if isinstance(meta, dict) else (None, None)
        raise ValueError(f"{source} holds a {found[0]!r}.{found[1]!r} artifact, not a pyterrier-dr FlexIndex "
                         "('dense_index'.'flex'); open a DenseIndex folder with DenseIndex(path)")
    count, dim = meta.get("doc_count"), meta.get("vec_size")
    ok = all(isinstance(v, int) and not isinstance(v, bool) for v in (count, dim)) and count >= 0 and dim >= 1
    if not ok:
        raise ValueError(f"{source / PT_META} gives doc_count {count!r} and vec_size {dim!r}; the FlexIndex is corrupt")
    vecs = source / "vecs.f4"
    if count and (not vecs.is_file() or vecs.stat().st_size != count * dim * 4):
        raise ValueError(f"{vecs} is missing or not {count} vectors of dimension {dim}; the FlexIndex is incomplete")
    return meta


def _lang_function(langs: Callable[[str], str | None] | Mapping[str, str] | None) -> Callable[[str], str | None]:
    """The language of a docno for :meth:`DenseIndex.adopt` (None: the docno has none)."""
    if langs is None:
        return _lang_of_docno
    if isinstance(langs, Mapping):
        given: Callable[[str], Any] = langs.get
    elif callable(langs):
        given = langs
    else:
        raise TypeError(f"langs must be a function docno -> language, a mapping docno -> language or None, not "
                        f"{type(langs).__name__}")

    def checked(docno: str) -> str | None:
        lang = given(docno)
        if lang is not None and (not isinstance(lang, str) or not lang):
            raise ValueError(f"langs gives docno {docno!r} the language {lang!r}; give a language code (a non-empty "
                             "str) or None")
        return lang

    return checked


def _lang_of_docno(docno: str) -> str | None:
    """A docno's language by :func:`~pyterrier_hybrid.lang_of_id`; None when it has none (no prefix or registry)."""
    try:
        return lang_of_id(docno)
    except ValueError:
        return None


def _check_target(path: Path, overwrite: bool) -> None:
    """Raise before any work unless a dense index may be written at ``path``."""
    if not isinstance(overwrite, bool):
        raise TypeError(f"overwrite must be True or False, not {overwrite!r}")
    _io.check_replaceable(path, overwrite=overwrite, owned=_owned, what="dense index")


class DenseIndex(pta.Artifact):
    """A pooled dense index at ``path`` (see the module docstring).

    It is a PyTerrier artifact (type ``dense_index``, format ``hybrid_flex``): ``pt.Artifact.load(path)`` returns a
    DenseIndex, and ``build_package`` / :meth:`from_url` / ``to_hf`` / ``from_hf`` move it as one package.

    Args:
        path: Index directory.
        verbose: Progress bars when building/searching.
    """

    ARTIFACT_TYPE = ARTIFACT_TYPE
    ARTIFACT_FORMAT = ARTIFACT_FORMAT
    ARTIFACT_PACKAGE_HINT = ARTIFACT_PACKAGE_HINT

    def __init__(self, path: str | os.PathLike, *, verbose: bool = False):
        super().__init__(path)
        self.path: Path = Path(path)
        self.verbose = verbose
        self._flex: FlexIndex | None = None
        self._manifest: dict[str, Any] | None = None
        self._faiss: dict[tuple, Any] = {}

    def __repr__(self) -> str:
        return f"DenseIndex({str(self.path)!r})"

    def built(self) -> bool:
        """Whether a complete index exists at ``path``."""
        if not self.path.exists():
            # A build killed between the two renames of a non-atomic swap leaves the old index aside: restore it.
            _io.recover_dir(self.path)
        return (self.path / MANIFEST).is_file()

    def _require_built(self) -> None:
        if not self.built():
            raise FileNotFoundError(f"no dense index at {self.path} (missing {MANIFEST}); build it with "
                                    f"DenseIndex(path).indexer(encoder).index(docs)")

    def _reset(self) -> None:
        """Forget what was read from disk (after a rebuild)."""
        self._flex = self._manifest = None
        self._faiss.clear()

    @property
    def manifest(self) -> dict[str, Any]:
        """The manifest: ``encoder`` (the encoder's manifest), ``count``, ``dim``, ``langs``.

        ``langs`` is ``{lang: [start, stop]}``, or None for an index without languages. Read and checked against
        the index files on first use (:class:`CorruptIndexError`).
        """
        if self._manifest is None:
            self._require_built()
            self._manifest = self._read_manifest()
        return self._manifest

    def _corrupt(self, problem: str) -> CorruptIndexError:
        return CorruptIndexError(
            f"{problem}: the dense index at {self.path} is truncated or corrupt; rebuild it with "
            f"DenseIndex({str(self.path)!r}).indexer(encoder, overwrite=True).index(docs)")

    def _read_manifest(self) -> dict[str, Any]:
        """Read ``manifest.json`` and check it against ``vecs.f4``, ``pt_meta.json`` and ``docnos.npids``."""
        file = self.path / MANIFEST
        try:
            m = json.loads(file.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise self._corrupt(f"{file} is not valid JSON ({' '.join(str(e).split())})") from None
        if not isinstance(m, dict):
            raise self._corrupt(f"{file} holds a {type(m).__name__}, not an object")
        if m.get("format") != FORMAT:
            raise ValueError(f"{self.path}: unsupported index format {m.get('format')!r} (this version reads "
                             f"{FORMAT!r}); rebuild the index with this version")
        count, dim, langs = m.get("count"), m.get("dim"), m.get("langs")
        if not (isinstance(count, int) and not isinstance(count, bool) and count >= 0):
            raise self._corrupt(f"{file} gives count {count!r}, not an int >= 0")
        if not (isinstance(dim, int) and not isinstance(dim, bool) and dim >= 1):
            raise self._corrupt(f"{file} gives dim {dim!r}, not an int >= 1")
        if not isinstance(m.get("encoder"), dict):
            raise self._corrupt(f"{file} has no encoder manifest")
        if "langs" not in m:
            raise self._corrupt(f"{file} has no language ranges")
        if langs is not None:  # null: an index without languages
            self._check_ranges(file, langs, count)
        vecs = self.path / "vecs.f4"
        if not vecs.is_file():
            raise self._corrupt(f"{vecs} is missing")
        if vecs.stat().st_size != count * dim * 4:
            raise self._corrupt(f"{vecs} holds {vecs.stat().st_size} bytes but {file} gives {count} vectors of "
                                f"dimension {dim} ({count * dim * 4} bytes)")
        meta = self._read_pt_meta()
        if (meta.get("doc_count"), meta.get("vec_size")) != (count, dim):
            raise self._corrupt(f"{self.path / PT_META} disagrees with {file} (count {count}, dim {dim})")
        if count:
            from npids import Lookup

            npids = self.path / "docnos.npids"
            try:
                with Lookup(npids) as lookup:
                    n_docnos = len(lookup)
            except Exception as e:  # noqa: BLE001 - npids raises anything on a damaged file
                raise self._corrupt(f"{npids} is missing or unreadable ({type(e).__name__}: "
                                    f"{' '.join(str(e).split())})") from None
            if n_docnos != count:
                raise self._corrupt(f"{npids} holds {n_docnos} docnos but {file} gives count {count}")
        return m

    def _read_pt_meta(self) -> dict[str, Any]:
        """``pt_meta.json``: a dense index's (format ``hybrid_flex``, or ``flex`` for folders of earlier versions)."""
        meta_file = self.path / PT_META
        try:
            meta = json.loads(meta_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise self._corrupt(f"{meta_file} is missing or unreadable ({' '.join(str(e).split())})") from None
        if not isinstance(meta, dict):
            raise self._corrupt(f"{meta_file} holds a {type(meta).__name__}, not an object")
        if meta.get("type") != ARTIFACT_TYPE or meta.get("format") not in _FORMATS:
            raise self._corrupt(f"{meta_file} describes a {meta.get('type')!r}.{meta.get('format')!r} artifact, not "
                                f"a {ARTIFACT_TYPE!r}.{ARTIFACT_FORMAT!r} one")
        return meta

    def _check_ranges(self, file: Path, langs: Any, count: int) -> None:
        """Language ranges must be sorted, contiguous, non-overlapping and cover ``[0, count)``."""
        if not isinstance(langs, dict):
            raise self._corrupt(f"{file} has no language ranges")
        stop = 0
        for lang, bounds in sorted(langs.items(), key=lambda kv: kv[1] if isinstance(kv[1], list) else []):
            ok = (isinstance(bounds, list) and len(bounds) == 2
                  and all(isinstance(b, int) and not isinstance(b, bool) for b in bounds))
            if not ok or bounds[0] != stop or bounds[1] < bounds[0]:
                raise self._corrupt(f"{file} gives language {lang!r} the docid range {bounds!r}; ranges must be "
                                    f"contiguous, non-overlapping and cover [0, {count})")
            stop = bounds[1]
        if stop != count:
            raise self._corrupt(f"{file}: the language ranges cover [0, {stop}) but count is {count}")

    @property
    def flex(self) -> FlexIndex:
        """A :class:`pyterrier_dr.FlexIndex` over this index's vectors and docnos.

        Every pyterrier-dr retriever (``index.flex.np_retriever()``, ``faiss_hnsw_retriever()`` ...) works on it.
        """
        if self._flex is None:
            from pyterrier_dr import FlexIndex  # here: importing pyterrier_dr loads torch and transformers

            self.manifest  # noqa: B018 - checks the files before FlexIndex maps them
            meta = dict(self._read_pt_meta(), **{"type": "dense_index", "format": "flex"})
            flex = FlexIndex(str(self.path), verbose=self.verbose)
            # FlexIndex.payload asserts format "flex" when it reads pt_meta.json, which it skips once _meta is set
            flex._meta = meta
            self._flex = flex
        return self._flex

    def __len__(self) -> int:
        return int(self.manifest["count"])

    @property
    def has_langs(self) -> bool:
        """Whether the index records a language per document (only then can it filter by language)."""
        return self.manifest["langs"] is not None

    @property
    def langs(self) -> list[str]:
        """Languages in the index (empty for an index without languages)."""
        return list(self.manifest["langs"] or {})

    def _blocks(self) -> dict[str, list[int]]:
        """Docid ranges searched apart by the approximate methods: one per language, or one for all documents."""
        if self.has_langs:
            return dict(self.manifest["langs"])
        return {"": [0, len(self)]} if len(self) else {}

    def vectors(self) -> np.ndarray:
        """All document vectors (memory-mapped), in docid order."""
        if len(self) == 0:
            return np.zeros((0, self.manifest["dim"]), dtype=np.float32)
        return self.flex.np_vecs()

    def docnos(self) -> np.ndarray:
        """All docnos, in docid order."""
        if len(self) == 0:
            return np.array([], dtype=object)
        return np.asarray(self.flex.docnos().fwd[np.arange(len(self))])

    def doc_langs(self) -> np.ndarray:
        """The language of each docid (None everywhere in an index without languages)."""
        out = np.full(len(self), None, dtype=object)
        for lang, (start, stop) in (self.manifest["langs"] or {}).items():
            out[start:stop] = lang
        return out

    # ------------------------------------------------------------------------------------------- checks
    def check_encoder(self, encoder: Any) -> None:
        """Raise :class:`EncoderMismatchError` unless ``encoder`` encodes like the one that built the index.

        Args:
            encoder: A :class:`~pyterrier_hybrid.encoding.BiEncoder` or an encoder manifest (a mapping).
        """
        if isinstance(encoder, Mapping):
            theirs = dict(encoder)
        else:
            theirs = _as_encoder(encoder, "check_encoder").manifest()
        ours = self.manifest["encoder"]
        # An adopted index whose encoder was not named records only the dimension (see adopt)
        keys = ("dim",) if ours.get("unverified") else _MUST_MATCH
        diff = {k: (ours.get(k), theirs.get(k)) for k in keys if ours.get(k) != theirs.get(k)}
        if diff:
            detail = "; ".join(f"{k}: index {a!r} vs query encoder {b!r}" for k, (a, b) in diff.items())
            raise EncoderMismatchError(
                f"{self.path} was built with a different encoder ({detail}). Encode queries with the encoder "
                f"that built the index, or rebuild the index with this encoder.")

    # ------------------------------------------------------------------------------------------- building
    def indexer(self, encoder: Any, *, overwrite: bool = False, chunk_size: int = 4096,
                langs: bool | None = None) -> DenseIndexer:
        """An indexer that encodes documents (``docno``, ``text``; or ``doc_vec``) and writes this index.

        Args:
            encoder: The :class:`~pyterrier_hybrid.encoding.BiEncoder` (its manifest is recorded; it encodes
                ``text`` unless the input already has ``doc_vec``).
            overwrite: Replace an existing index (only a folder holding a dense index is ever replaced).
            chunk_size: Documents encoded per step.
            langs: Record document languages: None (default) when the documents have them (see
                :meth:`DenseIndexer.index`), True to require one for every document, False never (an index
                without languages, e.g. for docnos whose ``_`` is not a language prefix).

        Raises:
            FileExistsError: the path exists and ``overwrite`` is False, or it holds something else than a
                dense index (checked here, before any document is encoded, and again when indexing starts).
        """
        return DenseIndexer(self, encoder, overwrite=overwrite, chunk_size=chunk_size, langs=langs)

    @classmethod
    def merge(cls, path: str | os.PathLike, shards: Sequence[DenseIndex | str | os.PathLike], *,
              overwrite: bool = False, verbose: bool = False) -> DenseIndex:
        """Build one index at ``path`` from shard indexes built separately with the same encoder.

        Raises:
            ValueError: a docno occurs in two shards (or a shard is listed twice).
            EncoderMismatchError: the shards were built with different encoders.
        """
        if isinstance(shards, (str, os.PathLike, DenseIndex)) or not isinstance(shards, Iterable):
            raise TypeError(f"shards must be a list of DenseIndex objects or paths, not {type(shards).__name__} "
                            f"{shards!r}")
        shards = [s if isinstance(s, DenseIndex) else DenseIndex(s) for s in shards]
        if not shards:
            raise ValueError("merge needs at least one shard")
        first = shards[0].manifest["encoder"]
        for shard in shards[1:]:
            shard.check_encoder(first)
        out = cls(path, verbose=verbose)
        _check_target(out.path, overwrite)
        with _io.atomic_dir(out.path, overwrite=overwrite, owned=_owned, what="dense index") as folder:
            writer = _Writer(folder, first)
            try:
                for shard in shards:
                    vecs, docnos, langs = shard.vectors(), shard.docnos(), shard.doc_langs()
                    for start in range(0, len(shard), _MERGE_STEP):
                        sl = slice(start, start + _MERGE_STEP)
                        writer.claim(docnos[sl].tolist(), where=f" (shard {shard.path})")
                        writer.add(docnos[sl].tolist(), langs[sl].tolist(), np.asarray(vecs[sl]),
                                   hint=f"shard {shard.path} is corrupt; rebuild it")
                writer.finish()
            finally:
                writer.close()
        out._reset()
        _log_written(out, "merged")
        return out

    # ------------------------------------------------------------------------------------------- retrieval
    def retriever(self, encoder: Any | None = None, *, langs: Sequence[str] | str | None = None,
                  num_results: int = 1000, method: Literal["flat", "hnsw", "ivf", "ivfpq"] = "flat",
                  neighbours: int = 32, ef_construction: int = 40, ef_search: int = 128,
                  n_list: int | None = None, n_probe: int = 32, pq_m: int | None = None, refine: int = 4,
                  drop_query_vec: bool = False) -> pt.Transformer:
        """A retriever over this index, optionally restricted to some document languages.

        ``retriever % k`` folds into ``num_results=k`` when the pipeline is compiled (``(retriever % k).compile()``),
        as pyterrier-dr's retrievers do.

        Args:
            encoder: If given, the result is ``encoder.query_encoder() >> retriever`` and the encoder is checked
                against the index manifest first (:class:`EncoderMismatchError`): a
                :class:`~pyterrier_hybrid.encoding.BiEncoder`, or a SentenceTransformer or model name / path that
                is wrapped in one. Without it, the input must already have ``query_vec``.
            langs: Document languages to search (e.g. ``["de"]`` for the ``en-de`` setting); ``None``: all. An index
                without languages refuses a filter.
            num_results: Results per query (an int >= 1).
            method: ``"flat"`` (exact, default; the language filter is a FAISS ID selector), or ``"hnsw"``,
                ``"ivf"``, ``"ivfpq"`` (approximate: one sub-index per language, built on first use and cached in
                the index directory, memory-mapped; a filter searches only its languages' sub-indexes, see
                :mod:`pyterrier_hybrid.ann`).
            neighbours: HNSW graph degree.
            ef_construction: HNSW build-time beam.
            ef_search: HNSW search beam (at least ``num_results``).
            n_list: IVF / IVF-PQ lists per language (default ``4·√n`` for a language of ``n`` documents).
            n_probe: IVF / IVF-PQ lists searched per query in each language.
            pq_m: IVF-PQ bytes per vector (sub-quantizers; must divide the dimension; default ``dim / 8``).
            refine: IVF-PQ re-scores the ``refine × num_results`` best candidates of each language exactly.
            drop_query_vec: Drop ``query_vec`` from the output.
        """
        if encoder is not None:
            encoder = _as_encoder(encoder, "DenseIndex.retriever", ("query_encoder",))
        retr = DenseRetriever(self, langs=langs, num_results=num_results, method=method, neighbours=neighbours,
                              ef_construction=ef_construction, ef_search=ef_search, n_list=n_list,
                              n_probe=n_probe, pq_m=pq_m, refine=refine, drop_query_vec=drop_query_vec)
        if encoder is None:
            return retr
        self.check_encoder(encoder)
        return encoder.query_encoder() >> retr

    # ------------------------------------------------------------------------------------------- artifacts
    @classmethod
    def adopt(cls, flex: str | os.PathLike | FlexIndex, path: str | os.PathLike, *,
              langs: Callable[[str], str | None] | Mapping[str, str] | None = None, encoder: Any = None,
              overwrite: bool = False, verbose: bool = False) -> DenseIndex:
        """Write a DenseIndex at ``path`` from a :class:`pyterrier_dr.FlexIndex`, without re-encoding anything.

        The FlexIndex's vectors are copied (grouped by language) into a new folder with this package's manifest;
        the FlexIndex folder is only read.

        Args:
            flex: A FlexIndex (written by pyterrier-dr) or its path.
            path: Where the DenseIndex is written.
            langs: The language of each docno: a function (docno -> code, or None for none), a mapping docno ->
                code, or None: :func:`pyterrier_hybrid.lang_of_id` (registered languages, ``<lang>_`` prefixes).
                Either every document gets a language or none does (an index without languages).
            encoder: The :class:`~pyterrier_hybrid.encoding.BiEncoder` (or model path) that encoded the
                documents; its manifest is recorded and checked against the queries' encoder as for any index.
                None: the encoder is unknown, and only the vector dimension is checked.
            overwrite: Replace an existing DenseIndex at ``path``.
            verbose: Progress bars when searching the new index.

        Raises:
            ValueError: ``flex`` is not a FlexIndex folder, or ``path`` is the FlexIndex folder itself; a document
                has no language while others have one; a vector is not finite.
            EncoderMismatchError: the encoder's dimension is not the FlexIndex's.
        """
        source = Path(getattr(flex, "index_path", flex)) if not isinstance(flex, (str, os.PathLike)) else Path(flex)
        meta = _flex_meta(source)
        dim, count = meta["vec_size"], meta["doc_count"]
        out = cls(path, verbose=verbose)
        if source.resolve() in (out.path.resolve(), *out.path.resolve().parents):
            raise ValueError(f"adopt writes a new folder and never writes into {source}; give a path outside it")
        if encoder is not None:
            manifest = _as_encoder(encoder, "DenseIndex.adopt").manifest()
            if manifest.get("dim") != dim:
                raise EncoderMismatchError(f"the encoder gives {manifest.get('dim')}-dimensional vectors but {source} "
                                           f"holds {dim}-dimensional ones; name the encoder that built it")
        else:
            manifest = {"model": None, "dim": dim, "unverified": True, "adopted_from": str(source)}
        lang_of = _lang_function(langs)
        _check_target(out.path, overwrite)
        vecs = np.memmap(source / "vecs.f4", mode="r", dtype=np.float32, shape=(count, dim)) if count else None
        with _io.atomic_dir(out.path, overwrite=overwrite, owned=_owned, what="dense index") as folder:
            writer = _Writer(folder, manifest)
            try:
                if count:
                    from npids import Lookup

                    with Lookup(source / "docnos.npids") as lookup:
                        if len(lookup) != count:
                            raise ValueError(f"{source} is not a complete FlexIndex: docnos.npids holds "
                                             f"{len(lookup)} docnos but pt_meta.json gives doc_count {count}")
                        for start in range(0, count, _MERGE_STEP):
                            stop = min(start + _MERGE_STEP, count)
                            docnos = [str(d) for d in lookup.fwd[np.arange(start, stop)]]
                            writer.claim(docnos, where=f" (in {source})")
                            writer.add(docnos, [lang_of(d) for d in docnos], np.asarray(vecs[start:stop]),
                                       hint=f"{source}/vecs.f4 holds them; rebuild that FlexIndex")
                writer.finish()
            finally:
                writer.close()
        out._reset()
        _log_written(out, "adopted")
        return out

    @classmethod
    def from_url(cls, url: str, *, expected_sha256: str | None = None, **kwargs: Any) -> DenseIndex:
        """Open the index behind ``url``: a package, an index folder, or any URL ``pt.Artifact.from_url`` takes.

        A local package written by ``build_package`` (a path or ``file://`` URL, also split into segments) is
        checked against its SHA-256 and unpacked once into PyTerrier's artifact cache, as
        :meth:`pyterrier_hybrid.bm25.BM25Index.from_url` does; ``hf:owner/repo``, ``https://...`` go to PyTerrier.

        Raises:
            FileNotFoundError: no package at the local path.
            ValueError: the package's SHA-256 differs from the expected one, or it is not a package.
        """
        folder = local_folder(url, expected_sha256, what="dense index",
                              write_hint="DenseIndex(path).build_package(package_path)")
        if folder is None:
            return super().from_url(url, expected_sha256=expected_sha256, **kwargs)  # type: ignore[return-value]
        return cls(folder, **kwargs)

    def _package_files(self) -> Iterator[tuple[str, str | io.BytesIO]]:
        """The folder's files, with a ``pt_meta.json`` naming this class (also for folders of earlier versions)."""
        self.manifest  # noqa: B018 - refuse to package a damaged index
        meta = dict(self._read_pt_meta(), type=ARTIFACT_TYPE, format=ARTIFACT_FORMAT,
                    package_hint=ARTIFACT_PACKAGE_HINT)
        for name, source in super()._package_files():
            if name == PT_META:
                source = io.BytesIO(json.dumps(meta).encode())
            yield name, source

    def _faiss_index(self, method: str, neighbours: int, ef_construction: int, n_list: int | None) -> Any:
        key = (method, neighbours, ef_construction, n_list)
        if key not in self._faiss:
            flex = self.flex
            if method == "flat":
                flat = flex.faiss_flat_retriever().faiss_index
                self._check_stored_vectors()  # before caching: a damaged index stays refused
                self._faiss[key] = flat
            else:  # searched like a FAISS index, with AnnSearch parameters (DenseRetriever._params)
                self._faiss[key] = LanguagePartitions(self, method, neighbours=neighbours,
                                                      ef_construction=ef_construction, n_list=n_list)
        return self._faiss[key]

    def _check_stored_vectors(self) -> None:
        """Refuse a ``vecs.f4`` damaged into NaN or infinity after it was written.

        FAISS silently drops a document whose score is NaN from a ranking. The flat index reads every vector
        anyway, so checking them while they are in the page cache costs a fraction of that read.
        """
        vecs = self.vectors()
        for start in range(0, len(vecs), _MERGE_STEP):
            stop = min(start + _MERGE_STEP, len(vecs))
            check_finite(np.asarray(vecs[start:stop]), what=f"stored vectors of {self.path}",
                         ids=range(start, stop), id_name="docid",
                         hint=f"vecs.f4 is corrupt; rebuild the index with DenseIndex({str(self.path)!r})"
                              ".indexer(encoder, overwrite=True).index(docs)")


class _Writer:
    """Collects (docno, lang, vector) rows in per-language spill files inside the temporary index folder.

    :meth:`finish` writes the FlexIndex files grouped by language and the manifest (last). The caller owns the
    folder (:func:`pyterrier_hybrid._io.atomic_dir` swaps it in, or removes it with the spill files on failure).
    """

    def __init__(self, folder: Path, encoder_manifest: dict[str, Any]):
        self.folder = folder
        self.encoder_manifest = dict(encoder_manifest)
        self.dim = check_int(self.encoder_manifest.get("dim"), "the encoder manifest's dim")
        self.parts: dict[str | None, tuple[BinaryIO, list[str]]] = {}
        self.seen: set[str] = set()
        self.langs = _LangPresence()
        (folder / "parts").mkdir()

    def claim(self, docnos: list[str], *, where: str = "") -> None:
        """Record ``docnos`` as indexed; raise if one was seen before (call before encoding their texts)."""
        _claim(self.seen, docnos, where=where)

    def add(self, docnos: list[str], langs: list[str | None], vecs: np.ndarray, *, hint: str) -> None:
        """Append claimed documents and their vectors (``hint``: the likely cause of non-finite vectors).

        ``langs``: each document's language, or None for all of them (an index without languages).
        """
        self.langs.update(docnos, langs)
        vecs = np.asarray(vecs, dtype=np.float32)
        if vecs.shape != (len(docnos), self.dim):
            raise ValueError(f"document vectors have shape {vecs.shape}; expected ({len(docnos)}, {self.dim}) "
                             f"(one vector of the encoder's dimension per document)")
        check_finite(vecs, what="document vectors", ids=docnos, id_name="docno", hint=hint)
        langs_arr = np.asarray(langs, dtype=object)
        docnos_arr = np.asarray(docnos, dtype=object)
        for lang in dict.fromkeys(langs):
            if lang not in self.parts:  # numbered files: a language code is never used as a file name
                self.parts[lang] = (open(self.folder / "parts" / f"{len(self.parts)}.f4", "wb"), [])
            f, names = self.parts[lang]
            rows = langs_arr == lang
            f.write(np.ascontiguousarray(vecs[rows]).tobytes())
            names.extend(docnos_arr[rows].tolist())

    def close(self) -> None:
        """Close the spill files (idempotent)."""
        for f, _ in self.parts.values():
            f.close()

    def finish(self) -> None:
        """Write ``vecs.f4``, ``docnos.npids``, ``pt_meta.json`` and then ``manifest.json``; drop the spill files."""
        from npids import Lookup

        self.close()
        ranges: dict[str | None, list[int]] = {}
        start = 0
        order = sorted(self.parts, key=lambda lang: lang or "")  # one None key in an index without languages
        with open(self.folder / "vecs.f4", "wb") as out:
            for lang in order:
                f, names = self.parts[lang]
                ranges[lang] = [start, start + len(names)]
                start += len(names)
                with open(f.name, "rb") as part:
                    shutil.copyfileobj(part, out, 1 << 22)
        if start:  # npids cannot write an empty lookup; an empty index is never searched anyway
            with Lookup.builder(self.folder / "docnos.npids") as builder:
                _fix_npids_prefix(builder)
                for lang in order:
                    for docno in self.parts[lang][1]:
                        builder.add(docno)
        shutil.rmtree(self.folder / "parts")
        (self.folder / PT_META).write_text(json.dumps(
            {"type": ARTIFACT_TYPE, "format": ARTIFACT_FORMAT, "package_hint": ARTIFACT_PACKAGE_HINT,
             "vec_size": self.dim, "doc_count": start}), encoding="utf-8")
        (self.folder / MANIFEST).write_text(json.dumps({
            "format": FORMAT, "encoder": self.encoder_manifest, "count": start, "dim": self.dim,
            "metric": "inner_product", "langs": None if self.langs.without else ranges}, indent=2) + "\n",
            encoding="utf-8")


class _LangPresence:
    """Checks that either every document has a language or none has (``without``: none has)."""

    def __init__(self) -> None:
        self.with_lang: str | None = None  # a docno that has a language
        self.without_lang: str | None = None  # a docno that has none

    @property
    def without(self) -> bool:
        return self.without_lang is not None

    def update(self, docnos: Sequence[str], langs: Sequence[str | None]) -> None:
        if self.with_lang is None:
            self.with_lang = next((d for d, lang in zip(docnos, langs) if lang is not None), None)
        if self.without_lang is None:
            self.without_lang = next((d for d, lang in zip(docnos, langs) if lang is None), None)
        if self.with_lang is not None and self.without_lang is not None:
            raise ValueError(f"docno {self.without_lang!r} has no language (no 'lang' field, no '<lang>_' prefix, "
                             f"none registered) but docno {self.with_lang!r} has one; give every document a language "
                             "(a 'lang' column, or pyterrier_hybrid.languages.register_languages), or index without "
                             "languages (indexer(encoder, langs=False))")


def _fix_npids_prefix(builder: Any) -> None:
    """Make an npids builder store docnos it would otherwise write unreadably.

    npids' fixed-width codec stores the docnos' common byte prefix once. It cuts that prefix inside a multi-byte
    UTF-8 character when two docnos share only its lead byte (``"zh_文档"`` and ``"zh_文本"``), which it then
    cannot decode, and for a lone docno it takes the whole docno, leaving a width of 0 that it cannot read back.
    This codec cuts the prefix at a character boundary and keeps at least one byte per docno.
    """
    from npids.codecs import FwdFixedBytes

    class Utf8FixedBytes(FwdFixedBytes):
        def seed(self, id: str) -> bool:
            ok = super().seed(id)
            if self.length is not None and len(self.prefix) >= self.length:
                self.prefix = self.prefix[:-1]
            while self.prefix:
                try:
                    self.prefix.decode("utf-8")
                    break
                except UnicodeDecodeError:
                    self.prefix = self.prefix[:-1]
            return ok

    formats = getattr(builder, "formats", None)
    if isinstance(formats, dict) and "fixedbytes" in formats:
        formats["fixedbytes"] = Utf8FixedBytes()
        builder.seeded_formats = formats.copy()


class DenseIndexer(pt.Indexer):
    """Encodes documents and writes a :class:`DenseIndex` (use :meth:`DenseIndex.indexer`)."""

    def __init__(self, index: DenseIndex, encoder: Any, *, overwrite: bool = False, chunk_size: int = 4096,
                 langs: bool | None = None):
        encoder = _as_encoder(encoder, "DenseIndex.indexer")  # manifest only: doc_vec input needs no encoding
        if langs not in (None, True, False):
            raise TypeError(f"langs must be None (languages when the documents have them), True or False, not "
                            f"{langs!r}")
        self.langs = langs
        self._index = index
        self.encoder = encoder
        self.chunk_size = check_int(chunk_size, "chunk_size")
        _check_target(index.path, overwrite)  # fail now, not after the documents were encoded
        self.overwrite = overwrite

    def __repr__(self) -> str:
        return f"{self._index!r}.indexer({self.encoder!r})"

    def index_inputs(self) -> list[list[str]]:  # noqa: D102 - pt.Indexer API
        return [["docno", "text"], ["docno", "doc_vec"]]

    def index(self, inp: pd.DataFrame | Iterable[dict[str, Any]]) -> DenseIndex:
        """Index documents: a frame or iterable of dicts with ``docno`` and ``text`` (or ``doc_vec``).

        The language of each document is its ``lang`` field, else the language of its docno
        (:func:`pyterrier_hybrid.lang_of_id`: a registered language or a ``<lang>_`` prefix). When no document has
        one, the index is written without languages (searched without a language filter); documents with and
        without a language in one corpus are refused. Docnos must be unique non-empty strings and texts strings
        (see :mod:`pyterrier_hybrid._checks`); a frame is checked whole before any text is encoded, an iterable
        chunk by chunk. Nothing is written to ``path`` unless every document was indexed.

        Raises:
            ValueError: a bad docno, language, text or vector (the message names the document), or a
                duplicate docno.
            NonFiniteError: a document vector is NaN or infinite.
            FileExistsError: see :meth:`DenseIndex.indexer`.
        """
        if isinstance(inp, (str, bytes, os.PathLike)):
            raise TypeError(f"index() takes a DataFrame or an iterable of dicts with docno and text, not "
                            f"{type(inp).__name__} {inp!r}")
        if isinstance(inp, pd.DataFrame):
            _check_columns(inp)
            frame_seen: set[str] = set()
            presence = _LangPresence()
            for offset, chunk in _chunks(inp, self.chunk_size):  # the whole frame, before any encoding
                docnos = _check_chunk(chunk, offset)
                _claim(frame_seen, docnos)
                presence.update(docnos, self._langs(chunk, docnos))
        path = self._index.path
        _check_target(path, self.overwrite)
        with _io.atomic_dir(path, overwrite=self.overwrite, owned=_owned, what="dense index") as folder:
            writer = _Writer(folder, self.encoder.manifest())
            try:
                for offset, chunk in _chunks(inp, self.chunk_size):
                    docnos = _check_chunk(chunk, offset)
                    langs = self._langs(chunk, docnos)
                    writer.claim(docnos)
                    writer.langs.update(docnos, langs)  # before the chunk's texts are encoded
                    if "doc_vec" in chunk.columns:
                        vecs = _as_vectors(chunk["doc_vec"].tolist(), docnos, "docno", "doc_vec", writer.dim)
                        hint = "the doc_vec input holds them; fix or drop those documents"
                    else:
                        vecs = self.encoder.encode_docs(chunk["text"].tolist())
                        hint = ("the encoder outputs NaN or infinity for these texts; check the model (e.g. a "
                                "diverged training run or a float16 overflow)")
                    writer.add(docnos, langs, vecs, hint=hint)
                writer.finish()
            finally:
                writer.close()
        self._index._reset()
        _log_written(self._index, "indexed")
        return self._index


    def _langs(self, chunk: pd.DataFrame, docnos: list[str]) -> list[str | None]:
        """The language of each document of a checked chunk, as the ``langs`` option asks."""
        if self.langs is False:
            return [None] * len(docnos)
        langs = _chunk_langs(chunk, docnos)
        missing = next((d for d, lang in zip(docnos, langs) if lang is None), None) if self.langs else None
        if missing is not None:
            raise ValueError(f"docno {missing!r} carries no language (no '<lang>_' prefix, none registered) and "
                             "langs=True requires one; add a 'lang' column to the input")
        return langs


def _log_written(index: DenseIndex, how: str) -> None:
    """One INFO line per finished build, merge or adoption: where, how many documents, which languages."""
    langs = index.manifest["langs"]
    logger.info("dense index %s: %s %d documents of dimension %d (%s)", index.path, how, len(index),
                index.manifest["dim"], ", ".join(f"{k} {v[1] - v[0]}" for k, v in langs.items()) if langs
                else "no languages")


def _check_columns(frame: pd.DataFrame) -> None:
    """Columns of an input frame (an empty frame without columns is an empty corpus)."""
    if frame.empty and len(frame.columns) == 0:
        return
    if "doc_vec" in frame.columns:
        pta.validate.columns(frame, includes=["docno", "doc_vec"])
    else:
        pta.validate.columns(frame, includes=["docno", "text"])


def _check_chunk(chunk: pd.DataFrame, offset: int) -> list[str]:
    """Check a chunk's columns, docnos, languages and texts (before its texts are encoded); return the docnos."""
    _check_columns(chunk)
    docnos = check_texts(chunk["docno"].tolist(), list(range(offset, offset + len(chunk))), column="docno")
    empty = next((offset + i for i, d in enumerate(docnos) if not d), None)
    if empty is not None:
        raise ValueError(f"'docno' of row {empty} is an empty string; every docno must be a non-empty str")
    nul = next((offset + i for i, d in enumerate(docnos) if "\x00" in d), None)
    if nul is not None:  # npids pads with NUL bytes and strips them on reading: "a\x00" would come back as "a"
        raise ValueError(f"'docno' of row {nul} ({docnos[nul - offset]!r}) contains a NUL character, which the "
                         "docno store cannot keep; remove it from the docno")
    _chunk_langs(chunk, docnos)
    if "doc_vec" not in chunk.columns:
        check_texts(chunk["text"].tolist(), docnos, column="text", id_name="docno")
    return docnos


def _chunk_langs(chunk: pd.DataFrame, docnos: list[str]) -> list[str | None]:
    """The language of each document: its ``lang`` field, else its docno's (None: it has none)."""
    if "lang" in chunk.columns:
        langs = check_texts(chunk["lang"].tolist(), docnos, column="lang", id_name="docno")
        empty = next((d for d, lang in zip(docnos, langs) if not lang), None)
        if empty is not None:
            raise ValueError(f"'lang' of docno {empty!r} is an empty string; give every document a language code")
        return langs
    return [_lang_of_docno(docno) for docno in docnos]


def _claim(seen: set[str], docnos: list[str], *, where: str = "") -> None:
    """Add ``docnos`` to ``seen``; raise naming the first docno that repeats (within ``docnos`` or one in ``seen``)."""
    index = pd.Index(docnos)
    dup = next(iter(index[index.duplicated()]), None)
    if dup is None:
        dup = next((d for d in docnos if d in seen), None)
    if dup is not None:
        raise ValueError(f"docno {dup!r} occurs more than once{where}; docnos must be unique (a ranking would list "
                         f"the document twice): drop the duplicates first, e.g. frame.drop_duplicates('docno')")
    seen.update(docnos)


def _as_vectors(cells: list[Any], ids: list[Any], id_name: str, column: str, dim: int) -> np.ndarray:
    """Stack per-row vectors into a float32 ``(n, dim)`` array, naming the first row that is not a vector."""
    for key, cell in zip(ids, cells):
        arr = None if cell is None else np.asarray(cell)
        if arr is None or arr.dtype.kind not in "fiu" or arr.ndim != 1:
            shown = f"{type(cell).__name__} {cell!r}"[:80]
            raise ValueError(f"{column!r} of {id_name} {key!r} is {shown}, not a numeric vector; every {column!r} "
                             f"must be a 1-d array of {dim} numbers")
        if arr.shape != (dim,):
            raise EncoderMismatchError(f"{column!r} of {id_name} {key!r} has dimension {arr.shape[0]} but the index "
                                       f"holds {dim}-dimensional vectors; encode with the index's encoder")
    if not cells:
        return np.zeros((0, dim), dtype=np.float32)
    with np.errstate(over="ignore"):  # float64 beyond float32's range becomes inf, which check_finite reports
        return np.ascontiguousarray(np.stack([np.asarray(c) for c in cells]), dtype=np.float32)


def _chunks(inp: pd.DataFrame | Iterable[dict[str, Any]], size: int) -> Iterator[tuple[int, pd.DataFrame]]:
    """``(offset of the first row, chunk)`` pairs of at most ``size`` rows."""
    if isinstance(inp, pd.DataFrame):
        for start in range(0, len(inp), size):
            yield start, inp.iloc[start:start + size]
        return
    buf: list[dict[str, Any]] = []
    offset = 0
    for record in inp:
        buf.append(record)
        if len(buf) == size:
            yield offset, pd.DataFrame(buf)
            offset += len(buf)
            buf = []
    if buf:
        yield offset, pd.DataFrame(buf)


class DenseRetriever(pt.Transformer):
    """FAISS search of a :class:`DenseIndex`, optionally restricted to some languages (use ``index.retriever``).

    Every query vector must be finite (:class:`~pyterrier_hybrid._checks.NonFiniteError` names the qids), and so
    must every score. A query without any hit (e.g. an IVF probe that finds no document of the requested
    languages) gives no rows.
    """

    def __init__(self, index: DenseIndex, *, langs: Sequence[str] | str | None = None, num_results: int = 1000,
                 method: str = "flat", neighbours: int = 32, ef_construction: int = 40, ef_search: int = 128,
                 n_list: int | None = None, n_probe: int = 32, pq_m: int | None = None, refine: int = 4,
                 drop_query_vec: bool = False):
        if not isinstance(method, str) or method not in _METHODS:
            raise ValueError(f"method must be 'flat', 'hnsw', 'ivf' or 'ivfpq', not {method!r}")
        self.pq_m = None if pq_m is None else check_int(pq_m, "pq_m")
        self.refine = check_int(refine, "refine")
        if self.pq_m is not None and index.manifest["dim"] % self.pq_m:
            raise ValueError(f"pq_m={pq_m} must divide the vector dimension {index.manifest['dim']}")
        self.num_results = check_int(num_results, "num_results")
        self.neighbours = check_int(neighbours, "neighbours")
        self.ef_construction = check_int(ef_construction, "ef_construction")
        self.ef_search = check_int(ef_search, "ef_search")
        self.n_list = None if n_list is None else check_int(n_list, "n_list")
        self.n_probe = check_int(n_probe, "n_probe")
        if not isinstance(drop_query_vec, bool):
            raise TypeError(f"drop_query_vec must be True or False, not {drop_query_vec!r}")
        self.index = index
        if isinstance(langs, str):
            langs = [langs]
        elif langs is not None:
            if not isinstance(langs, Iterable):
                raise TypeError(f"langs must be a language code, a list of them or None, not {langs!r}")
            langs = list(langs)
            if not langs:
                raise ValueError("langs is empty, which would search nothing; pass None to search all languages")
        if langs is not None and not index.has_langs:
            raise ValueError(f"{index.path} has no document languages, so it cannot filter by language: pass "
                             "langs=None, or rebuild it with a 'lang' column (or registered languages)")
        if langs is not None:
            unknown = sorted((lang for lang in set(langs) - set(index.langs)), key=repr)
            if unknown:
                raise ValueError(f"languages {unknown} are not in {index.path}; it holds {sorted(index.langs)}")
        else:
            index.manifest  # noqa: B018 - open and check the index now, before any query is encoded
        self.langs = langs
        self.method = method
        self.drop_query_vec = drop_query_vec

    def __repr__(self) -> str:
        return f"{self.index!r}.retriever(langs={self.langs!r}, method={self.method!r}, k={self.num_results})"

    def fuse_rank_cutoff(self, k: int) -> DenseRetriever | None:
        """``self % k`` as one retriever with ``num_results=min(num_results, k)`` (PyTerrier's compile step)."""
        num = folded_cutoff(k, self.num_results)
        if num is None or num == self.num_results:
            return None if num is None else self
        return pt.inspect.transformer_apply_attributes(self, num_results=num)  # type: ignore[return-value]

    def _params(self) -> tuple[Any, list]:
        """FAISS search parameters with the language selector; the list keeps the selector objects alive."""
        import faiss

        if self.method in APPROXIMATE:  # per-language sub-indexes: the filter picks which ones are searched
            return AnnSearch(langs=None if self.langs is None else tuple(dict.fromkeys(self.langs)),
                             n_probe=self.n_probe, ef_search=self.ef_search, pq_m=self.pq_m, refine=self.refine), []
        keep: list = []
        sel = None
        if self.langs is not None and set(self.langs) != set(self.index.langs):
            ranges = [self.index.manifest["langs"][lang] for lang in self.langs]
            if len(ranges) == 1:
                sel = faiss.IDSelectorRange(*ranges[0])
            else:
                bits = np.zeros((len(self.index) + 7) // 8 * 8, dtype=bool)
                for start, stop in ranges:
                    bits[start:stop] = True
                bitmap = np.packbits(bits, bitorder="little")
                keep.append(bitmap)
                sel = faiss.IDSelectorBitmap(len(self.index), faiss.swig_ptr(bitmap))
            keep.append(sel)
        return faiss.SearchParameters(sel=sel), keep

    def transform(self, inp: pd.DataFrame) -> pd.DataFrame:
        """Retrieve for a query frame with ``qid`` and ``query_vec``."""
        pta.validate.query_frame(inp, extra_columns=["query_vec"])
        inp = inp.reset_index(drop=True)
        qids = inp["qid"].tolist()
        vecs = _as_vectors(inp["query_vec"].tolist(), qids, "qid", "query_vec", self.index.manifest["dim"])
        check_finite(vecs, what="query vectors", ids=qids, id_name="qid",
                     hint="the query encoder outputs NaN or infinity for these queries; check the model (e.g. a "
                          "diverged training run or a float16 overflow)")
        if self.drop_query_vec:
            inp = inp.drop(columns="query_vec")
        if inp.empty or len(self.index) == 0:
            return _results(inp, [], [], [], [], [])
        return self._search(vecs, inp)

    def _search(self, query_vecs: np.ndarray, inp: pd.DataFrame) -> pd.DataFrame:
        faiss_index = self.index._faiss_index(self.method, self.neighbours, self.ef_construction, self.n_list)
        params, _keep = self._params()
        docnos = self.index.flex.docnos()
        k = min(self.num_results, len(self.index))
        rows: list[np.ndarray] = []
        docids: list[np.ndarray] = []
        scores: list[np.ndarray] = []
        starts = range(0, len(query_vecs), _QUERY_BATCH)
        if self.index.verbose:
            starts = pt.tqdm(starts, desc="dense retrieval", unit="qbatch")
        for start in starts:
            batch_scores, batch_ids = faiss_index.search(query_vecs[start:start + _QUERY_BATCH], k, params=params)
            for row, (s, d) in enumerate(zip(batch_scores, batch_ids), start=start):
                keep = d >= 0  # FAISS pads with -1 when fewer than k documents pass the filter
                if keep.any():  # a query without hits gives no rows
                    rows.append(np.full(int(keep.sum()), row))
                    docids.append(d[keep])
                    scores.append(s[keep])
        qids = inp["qid"].to_numpy()
        row_idx = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
        score_arr = np.concatenate(scores) if scores else np.zeros(0, dtype=np.float32)
        check_finite(score_arr, what="retrieval scores", ids=qids[row_idx].tolist(), id_name="qid",
                     hint="inner products overflow float32 (normalise the vectors) or the index is corrupt "
                          "(rebuild it)")
        docid_arr = np.concatenate(docids) if docids else np.zeros(0, dtype=np.int64)
        ranks = [np.arange(len(d)) for d in docids]
        docno_arr = np.asarray(docnos.fwd[docid_arr], dtype=object) if len(docid_arr) else []
        return _results(inp, row_idx, docno_arr, docid_arr, score_arr, np.concatenate(ranks) if ranks else [])


def _results(inp: pd.DataFrame, rows: Any, docnos: Any, docids: Any, scores: Any, ranks: Any) -> pd.DataFrame:
    """The result frame: the query columns of each hit's query row, then docno, docid, score and rank."""
    out = inp.iloc[np.asarray(rows, dtype=np.int64)].reset_index(drop=True)
    return out.assign(docno=pd.Series(np.asarray(docnos, dtype=object), dtype=object),
                      docid=np.asarray(docids, dtype=np.int64),
                      score=np.asarray(scores, dtype=np.float32),
                      rank=np.asarray(ranks, dtype=np.int64))
