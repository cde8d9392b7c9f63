"""One pooled FAISS inner-product index over all languages, with a language filter and an encoder manifest.

Storage is a :class:`pyterrier_dr.FlexIndex` (``vecs.f4``, ``docnos.npids``, ``pt_meta.json``), so every FlexIndex
retriever also works on it; this module adds what FlexIndex lacks:

- ``manifest.json``: the encoder's :meth:`~pyterrier_hybrid.encoding.BiEncoder.manifest` (model, dimension,
  pooling, normalisation, prompts, weight fingerprint), the document count, and the docid range of each language.
  Documents are stored grouped by language, so a language is a contiguous docid range.
- :meth:`DenseIndex.retriever` with ``langs=``: FAISS search (exact ``IndexFlatIP`` by default; HNSW or IVF built
  and cached by FlexIndex) restricted with a FAISS ID selector to those languages' ranges. Exact search over the
  pooled index restricted to language L returns the same documents and scores as an index of L alone, so the
  monolingual and cross-lingual settings are all answered from one index.
- a refusal (:class:`EncoderMismatchError`) when the query encoder differs from the indexing encoder.
- atomic builds (written to a temporary directory, then renamed) and :meth:`DenseIndex.merge` of shard indexes
  built separately (e.g. one per process or machine).

Example::

    enc = BiEncoder()
    index = DenseIndex("indexes/xquad-r.e5s")
    index.indexer(enc).index(pt.get_dataset("irds:xquad-r/multi").get_corpus_iter())
    mono_de = index.retriever(enc, langs=["de"], num_results=100)      # == a German-only index
    pooled = index.retriever(enc, num_results=100)
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyterrier as pt
import pyterrier_alpha as pta
from pyterrier_dr import FlexIndex

from .languages import lang_of_id

__all__ = ["DenseIndex", "DenseIndexer", "DenseRetriever", "EncoderMismatchError"]

MANIFEST = "manifest.json"
FORMAT = "pyterrier_hybrid.dense/1"
# Manifest fields that must agree between the indexing and the query encoder.
_MUST_MATCH = ("model", "dim", "pooling", "normalize", "query_prompt", "doc_prompt", "fingerprint")


class EncoderMismatchError(ValueError):
    """Queries were encoded by a different encoder (or settings) than the indexed documents."""


class DenseIndex:
    """A pooled dense index at ``path`` (see the module docstring).

    Args:
        path: Index directory.
        verbose: Progress bars when building/searching.
    """

    def __init__(self, path: str | os.PathLike, *, verbose: bool = False):
        self.path = Path(path)
        self.verbose = verbose
        self._flex: FlexIndex | None = None
        self._manifest: dict[str, Any] | None = None
        self._faiss: dict[tuple, Any] = {}

    def __repr__(self) -> str:
        return f"DenseIndex({str(self.path)!r})"

    def built(self) -> bool:
        """Whether a complete index exists at ``path``."""
        return (self.path / MANIFEST).is_file()

    def _require_built(self) -> None:
        if not self.built():
            raise FileNotFoundError(f"no dense index at {self.path} (missing {MANIFEST}); build it with "
                                    f"DenseIndex(path).indexer(encoder).index(docs)")

    @property
    def manifest(self) -> dict[str, Any]:
        """The manifest: ``encoder`` (the encoder's manifest), ``count``, ``dim``, ``langs`` ({lang: [start, stop]})."""
        if self._manifest is None:
            self._require_built()
            self._manifest = json.loads((self.path / MANIFEST).read_text())
            if self._manifest.get("format") != FORMAT:
                raise ValueError(f"{self.path}: unsupported index format {self._manifest.get('format')!r}")
        return self._manifest

    @property
    def flex(self) -> FlexIndex:
        """The underlying :class:`pyterrier_dr.FlexIndex` (vectors and docnos)."""
        if self._flex is None:
            self._require_built()
            self._flex = FlexIndex(str(self.path), verbose=self.verbose)
        return self._flex

    def __len__(self) -> int:
        return int(self.manifest["count"])

    @property
    def langs(self) -> list[str]:
        """Languages in the index."""
        return list(self.manifest["langs"])

    def vectors(self) -> np.ndarray:
        """All document vectors (memory-mapped), in docid order."""
        return self.flex.np_vecs()

    def docnos(self) -> np.ndarray:
        """All docnos, in docid order."""
        if len(self) == 0:
            return np.array([], dtype=object)
        return np.asarray(self.flex.docnos().fwd[np.arange(len(self))])

    def doc_langs(self) -> np.ndarray:
        """The language of each docid."""
        out = np.empty(len(self), dtype=object)
        for lang, (start, stop) in self.manifest["langs"].items():
            out[start:stop] = lang
        return out

    # ------------------------------------------------------------------------------------------- checks
    def check_encoder(self, encoder: Any) -> None:
        """Raise :class:`EncoderMismatchError` unless ``encoder`` encodes like the one that built the index."""
        theirs = encoder.manifest() if hasattr(encoder, "manifest") else dict(encoder)
        ours = self.manifest["encoder"]
        diff = {k: (ours.get(k), theirs.get(k)) for k in _MUST_MATCH if ours.get(k) != theirs.get(k)}
        if diff:
            detail = "; ".join(f"{k}: index {a!r} vs query encoder {b!r}" for k, (a, b) in diff.items())
            raise EncoderMismatchError(
                f"{self.path} was built with a different encoder ({detail}). Encode queries with the encoder "
                f"that built the index, or rebuild the index with this encoder.")

    # ------------------------------------------------------------------------------------------- building
    def indexer(self, encoder: Any, *, overwrite: bool = False, chunk_size: int = 4096) -> DenseIndexer:
        """An indexer that encodes documents (``docno``, ``text``; or ``doc_vec``) and writes this index.

        Args:
            encoder: The :class:`~pyterrier_hybrid.encoding.BiEncoder` (its manifest is recorded; it encodes
                ``text`` unless the input already has ``doc_vec``).
            overwrite: Replace an existing index.
            chunk_size: Documents encoded per step.
        """
        return DenseIndexer(self, encoder, overwrite=overwrite, chunk_size=chunk_size)

    @classmethod
    def merge(cls, path: str | os.PathLike, shards: Sequence[DenseIndex | str | os.PathLike], *,
              overwrite: bool = False, verbose: bool = False) -> DenseIndex:
        """Build one index at ``path`` from shard indexes built separately with the same encoder."""
        shards = [s if isinstance(s, DenseIndex) else DenseIndex(s) for s in shards]
        if not shards:
            raise ValueError("merge needs at least one shard")
        first = shards[0].manifest["encoder"]
        for shard in shards[1:]:
            shard.check_encoder(first)
        out = cls(path, verbose=verbose)
        with _Writer(out, first, overwrite=overwrite) as writer:
            for shard in shards:
                vecs, docnos, langs = shard.vectors(), shard.docnos(), shard.doc_langs()
                for start in range(0, len(shard), 65536):
                    sl = slice(start, start + 65536)
                    writer.add(docnos[sl], langs[sl], np.asarray(vecs[sl]))
        return out

    # ------------------------------------------------------------------------------------------- retrieval
    def retriever(self, encoder: Any | None = None, *, langs: Sequence[str] | str | None = None,
                  num_results: int = 1000, method: Literal["flat", "hnsw", "ivf"] = "flat",
                  neighbours: int = 32, ef_construction: int = 40, ef_search: int = 128,
                  n_list: int | None = None, n_probe: int = 16, drop_query_vec: bool = False) -> pt.Transformer:
        """A retriever over this index, optionally restricted to some document languages.

        Args:
            encoder: If given, the result is ``encoder.query_encoder() >> retriever`` and the encoder is checked
                against the index manifest first (:class:`EncoderMismatchError`). Without it, the input must
                already have ``query_vec``.
            langs: Document languages to search (e.g. ``["de"]`` for the ``en-de`` setting); ``None``: all.
            num_results: Results per query.
            method: ``"flat"`` (exact, default), ``"hnsw"`` or ``"ivf"`` (approximate; graph/clusters built by
                FlexIndex and cached in the index directory).
            neighbours: HNSW graph degree.
            ef_construction: HNSW build-time beam.
            ef_search: HNSW search beam (at least ``num_results``).
            n_list: IVF clusters (default: FlexIndex's ~sqrt(count)).
            n_probe: IVF clusters searched per query.
            drop_query_vec: Drop ``query_vec`` from the output.
        """
        if encoder is not None:
            self.check_encoder(encoder)
        retr = DenseRetriever(self, langs=langs, num_results=num_results, method=method, neighbours=neighbours,
                              ef_construction=ef_construction, ef_search=ef_search, n_list=n_list,
                              n_probe=n_probe, drop_query_vec=drop_query_vec)
        return encoder.query_encoder() >> retr if encoder is not None else retr

    def _faiss_index(self, method: str, neighbours: int, ef_construction: int, n_list: int | None) -> Any:
        key = (method, neighbours, ef_construction, n_list)
        if key not in self._faiss:
            flex = self.flex
            if method == "flat":
                self._faiss[key] = flex.faiss_flat_retriever().faiss_index
            elif method == "hnsw":
                self._faiss[key] = flex.faiss_hnsw_retriever(neighbours, ef_construction=ef_construction).faiss_index
            elif method == "ivf":
                self._faiss[key] = flex.faiss_ivf_retriever(n_list=n_list).faiss_index
            else:
                raise ValueError(f"method must be 'flat', 'hnsw' or 'ivf', not {method!r}")
        return self._faiss[key]


class _Writer:
    """Collects (docno, lang, vector) rows in per-language spill files, then writes the index atomically."""

    def __init__(self, index: DenseIndex, encoder_manifest: dict[str, Any], *, overwrite: bool):
        self.index = index
        self.encoder_manifest = dict(encoder_manifest)
        self.overwrite = overwrite
        self.dim = int(encoder_manifest["dim"])
        if index.path.exists() and not overwrite:
            raise FileExistsError(f"{index.path} already exists; pass overwrite=True to replace it")
        self.tmp = index.path.with_name(f".{index.path.name}.tmp-{os.getpid()}")
        self.parts: dict[str, tuple[Any, list[str]]] = {}

    def __enter__(self) -> _Writer:
        shutil.rmtree(self.tmp, ignore_errors=True)
        (self.tmp / "parts").mkdir(parents=True)
        return self

    def add(self, docnos: Sequence[str], langs: Sequence[str], vecs: np.ndarray) -> None:
        vecs = np.asarray(vecs, dtype=np.float32)
        if vecs.ndim != 2 or vecs.shape[1] != self.dim:
            raise ValueError(f"document vectors have shape {vecs.shape}; the encoder's dimension is {self.dim}")
        langs = np.asarray(langs, dtype=object)
        for lang in dict.fromkeys(langs):
            if lang not in self.parts:
                self.parts[lang] = (open(self.tmp / "parts" / f"{lang}.f4", "wb"), [])
            f, names = self.parts[lang]
            rows = langs == lang
            f.write(np.ascontiguousarray(vecs[rows]).tobytes())
            names.extend(str(d) for d in np.asarray(docnos, dtype=object)[rows])

    def _records(self) -> Iterator[dict[str, Any]]:
        for lang in sorted(self.parts):
            _, names = self.parts[lang]
            vecs = np.fromfile(self.tmp / "parts" / f"{lang}.f4", dtype=np.float32).reshape(-1, self.dim)
            for docno, vec in zip(names, vecs):
                yield {"docno": docno, "doc_vec": vec}

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is not None:
                return
            for f, _ in self.parts.values():
                f.close()
            ranges, start = {}, 0
            for lang in sorted(self.parts):
                ranges[lang] = [start, start + len(self.parts[lang][1])]
                start += len(self.parts[lang][1])
            flex_dir = self.tmp / "index"
            if start:
                FlexIndex(str(flex_dir), verbose=self.index.verbose).indexer().index(self._records())
            else:  # FlexIndex (npids) cannot write an empty index; an empty one is never searched anyway
                flex_dir.mkdir()
                (flex_dir / "vecs.f4").write_bytes(b"")
                (flex_dir / "pt_meta.json").write_text(json.dumps(
                    {"type": "dense_index", "format": "flex", "vec_size": self.dim, "doc_count": 0}))
            (flex_dir / MANIFEST).write_text(json.dumps({
                "format": FORMAT, "encoder": self.encoder_manifest, "count": start, "dim": self.dim,
                "metric": "inner_product", "langs": ranges}, indent=2) + "\n")
            path = self.index.path
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.exists():  # overwrite: move the old index aside, swap the new one in
                old = path.with_name(f".{path.name}.old-{os.getpid()}")
                path.rename(old)
                shutil.rmtree(old, ignore_errors=True)
            flex_dir.rename(path)
            self.index._flex = self.index._manifest = None
            self.index._faiss.clear()
        finally:
            for f, _ in self.parts.values():
                f.close()
            shutil.rmtree(self.tmp, ignore_errors=True)


class DenseIndexer(pt.Indexer):
    """Encodes documents and writes a :class:`DenseIndex` (use :meth:`DenseIndex.indexer`)."""

    def __init__(self, index: DenseIndex, encoder: Any, *, overwrite: bool = False, chunk_size: int = 4096):
        self._index = index
        self.encoder = encoder
        self.overwrite = overwrite
        self.chunk_size = chunk_size

    def __repr__(self) -> str:
        return f"{self._index!r}.indexer({self.encoder!r})"

    def index_inputs(self) -> list[list[str]]:  # noqa: D102 - pt.Indexer API
        return [["docno", "text"], ["docno", "doc_vec"]]

    def index(self, inp: pd.DataFrame | Iterable[dict[str, Any]]) -> DenseIndex:
        """Index documents: a frame or iterable of dicts with ``docno`` and ``text`` (or ``doc_vec``).

        The language of each document is its ``lang`` field, else the prefix of its docno
        (:func:`pyterrier_hybrid.lang_of_id`).
        """
        chunks = _chunks(inp, self.chunk_size)
        with _Writer(self._index, self.encoder.manifest(), overwrite=self.overwrite) as writer:
            for chunk in chunks:
                if "doc_vec" not in chunk.columns:
                    pta.validate.columns(chunk, includes=["docno", "text"])
                    vecs = self.encoder.encode_docs(chunk["text"].tolist())
                else:
                    pta.validate.columns(chunk, includes=["docno", "doc_vec"])
                    vecs = np.stack(chunk["doc_vec"].tolist())
                langs = chunk["lang"] if "lang" in chunk.columns else chunk["docno"].map(lang_of_id)
                writer.add(chunk["docno"].tolist(), langs.tolist(), vecs)
        return self._index


def _chunks(inp: pd.DataFrame | Iterable[dict[str, Any]], size: int) -> Iterator[pd.DataFrame]:
    if isinstance(inp, pd.DataFrame):
        if inp.empty:
            return
        for start in range(0, len(inp), size):
            yield inp.iloc[start:start + size]
        return
    buf: list[dict[str, Any]] = []
    for record in inp:
        buf.append(record)
        if len(buf) == size:
            yield pd.DataFrame(buf)
            buf = []
    if buf:
        yield pd.DataFrame(buf)


class DenseRetriever(pt.Transformer):
    """FAISS search of a :class:`DenseIndex`, optionally restricted to some languages (use ``index.retriever``)."""

    def __init__(self, index: DenseIndex, *, langs: Sequence[str] | str | None = None, num_results: int = 1000,
                 method: str = "flat", neighbours: int = 32, ef_construction: int = 40, ef_search: int = 128,
                 n_list: int | None = None, n_probe: int = 16, drop_query_vec: bool = False):
        if method not in ("flat", "hnsw", "ivf"):
            raise ValueError(f"method must be 'flat', 'hnsw' or 'ivf', not {method!r}")
        if num_results < 1:
            raise ValueError("num_results must be positive")
        self.index = index
        langs = [langs] if isinstance(langs, str) else (list(langs) if langs is not None else None)
        if langs is not None:
            unknown = sorted(set(langs) - set(index.langs))
            if unknown:
                raise ValueError(f"languages {unknown} are not in {index.path}; it holds {sorted(index.langs)}")
        self.langs = langs
        self.num_results = num_results
        self.method = method
        self.neighbours, self.ef_construction, self.ef_search = neighbours, ef_construction, ef_search
        self.n_list, self.n_probe = n_list, n_probe
        self.drop_query_vec = drop_query_vec

    def __repr__(self) -> str:
        return f"{self.index!r}.retriever(langs={self.langs!r}, method={self.method!r}, k={self.num_results})"

    def _params(self) -> tuple[Any, list]:
        """FAISS search parameters with the language selector; the list keeps the selector objects alive."""
        import faiss

        keep: list = []
        sel = None
        if self.langs is not None and set(self.langs) != set(self.index.langs):
            ranges = [self.index.manifest["langs"][lang] for lang in self.langs]
            if len(ranges) == 1:
                sel = faiss.IDSelectorRange(*ranges[0])
            else:
                bitmap = np.zeros((len(self.index) + 7) // 8, dtype=np.uint8)
                bits = np.zeros(len(bitmap) * 8, dtype=bool)
                for start, stop in ranges:
                    bits[start:stop] = True
                bitmap[:] = np.packbits(bits, bitorder="little")
                keep.append(bitmap)
                sel = faiss.IDSelectorBitmap(len(self.index), faiss.swig_ptr(bitmap))
            keep.append(sel)
        if self.method == "hnsw":
            params = faiss.SearchParametersHNSW(sel=sel, efSearch=max(self.ef_search, self.num_results))
        elif self.method == "ivf":
            params = faiss.SearchParametersIVF(sel=sel, nprobe=self.n_probe)
        else:
            params = faiss.SearchParameters(sel=sel)
        return params, keep

    def transform(self, inp: pd.DataFrame) -> pd.DataFrame:
        """Retrieve for a query frame with ``qid`` and ``query_vec``."""
        pta.validate.query_frame(inp, extra_columns=["query_vec"])
        out = pta.DataFrameBuilder(["docno", "docid", "score", "rank"])
        inp = inp.reset_index(drop=True)
        vecs = inp["query_vec"].tolist()
        if self.drop_query_vec:
            inp = inp.drop(columns="query_vec")
        if inp.empty or len(self.index) == 0:
            return out.to_df(inp.iloc[:0])
        return self._search(np.ascontiguousarray(np.stack(vecs), dtype=np.float32), inp, out)

    def _search(self, query_vecs: np.ndarray, inp: pd.DataFrame, out: pta.DataFrameBuilder) -> pd.DataFrame:
        dim = self.index.manifest["dim"]
        if query_vecs.ndim != 2 or query_vecs.shape[1] != dim:
            raise EncoderMismatchError(
                f"query vectors have dimension {query_vecs.shape[-1]} but {self.index.path} holds {dim}-dimensional "
                f"vectors from {self.index.manifest['encoder'].get('model')!r}; encode queries with that encoder")
        faiss_index = self.index._faiss_index(self.method, self.neighbours, self.ef_construction, self.n_list)
        params, _keep = self._params()
        docnos = self.index.flex.docnos()
        k = min(self.num_results, len(self.index))
        starts = range(0, len(query_vecs), 256)
        if self.index.verbose:
            starts = pt.tqdm(starts, desc="dense retrieval", unit="qbatch")
        for start in starts:
            scores, ids = faiss_index.search(query_vecs[start:start + 256], k, params=params)
            for s, d in zip(scores, ids):
                keep = d >= 0
                d, s = d[keep], s[keep]
                out.extend({"docno": docnos.fwd[d], "docid": d, "score": s, "rank": np.arange(len(d))})
        return out.to_df(inp)
