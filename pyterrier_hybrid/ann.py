"""Approximate search of a :class:`~pyterrier_hybrid.index.DenseIndex`: one FAISS sub-index per language.

A :class:`~pyterrier_hybrid.index.DenseIndex` stores every language as a contiguous docid range. The approximate
methods (``"hnsw"``, ``"ivf"``, ``"ivfpq"``) build one FAISS index per language over its range, instead of one
pooled structure searched through an ID selector:

- *A language filter is a routing decision, applied inside the search.* A filtered query searches only the
  sub-indexes of its languages. With one pooled IVF index and a selector, the ``n_probe`` clusters nearest a query
  hold mostly documents of the query's own language, because multilingual encoders place languages in separate
  regions; a cross-lingual query filtered to another language then finds few or none of its neighbours there
  (``benchmarks/scale.py`` measures this). A pooled HNSW graph has the same problem: the walk stays in the
  query's language region and the selector rejects what it finds.
- *Unfiltered (pooled) search is the merge of the per-language searches.* Each language contributes its own
  best candidates, so the approximate structure adds no bias toward the query's language on top of the
  model's own; the cost is one sub-search per language.

Exact search (``"flat"``) stays one pooled FAISS flat index with the selector (see
:class:`~pyterrier_hybrid.index.DenseRetriever`): an exact scan restricted to a range loses nothing.

Sub-indexes are built on first use and cached in ``<index>/ann/<name>/`` (``spec.json`` and one ``.faiss`` file
per language), written with :func:`pyterrier_hybrid._io.atomic_dir` so a folder is complete or absent, and
memory-mapped when read: IVF inverted lists with ``faiss.IO_FLAG_MMAP``, HNSW and flat storage with
``faiss.IO_FLAG_MMAP_IFC``. A process then holds only the coarse centroids (IVF) or the graph (HNSW) in
anonymous memory; the vectors and codes are page cache. IVF-PQ keeps short product-quantisation codes and re-scores the
best ``refine × k`` candidates of each language exactly from the index's float32 vectors (memory-mapped), so
its scores are exact inner products.

Builds are deterministic for IVF and IVF-PQ (seeded training sample, FAISS's fixed k-means seed); an HNSW
graph depends on the order in which FAISS's threads insert nodes, so it can differ between builds.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ._io import atomic_dir

if TYPE_CHECKING:  # index imports this module, not the reverse
    from .index import DenseIndex

__all__ = ["APPROXIMATE", "METHODS", "AnnSearch", "LanguagePartitions", "default_pq_m"]

METHODS = ("flat", "hnsw", "ivf", "ivfpq")
APPROXIMATE = ("hnsw", "ivf", "ivfpq")
SPEC = "spec.json"
FORMAT = "pyterrier_hybrid.ann/1"
# FAISS asks for at least 39 training points per k-means centroid; PQ trains 256 centroids per sub-quantizer.
_POINTS_PER_CENTROID = 39
_MIN_PQ_TRAIN = _POINTS_PER_CENTROID * 256
_CHUNK = 65536


def default_pq_m(dim: int) -> int:
    """IVF-PQ sub-quantizers (bytes per vector) by default: the largest divisor of ``dim`` not above ``dim / 8``."""
    return max(m for m in range(1, max(1, dim // 8) + 1) if dim % m == 0)


@dataclass(frozen=True)
class AnnSearch:
    """Search-time settings of :meth:`LanguagePartitions.search` (built by ``DenseRetriever``).

    Attributes:
        langs: Languages to search; ``None``: all (pooled search).
        n_probe: IVF lists searched per query in each language.
        ef_search: HNSW search beam (raised to ``k`` when smaller).
        pq_m: IVF-PQ bytes per vector (``None``: :func:`default_pq_m`); part of the structure, so a new value
            builds a new one.
        refine: IVF-PQ: the ``refine × k`` best candidates of each language by PQ score are re-scored exactly
            (at least 1, so IVF-PQ scores are always exact inner products).
    """

    langs: tuple[str, ...] | None = None
    n_probe: int = 32
    ef_search: int = 128
    pq_m: int | None = None
    refine: int = 4


class LanguagePartitions:
    """The per-language FAISS sub-indexes of one approximate method over a DenseIndex (see the module docstring).

    It answers ``search(x, k, params=AnnSearch(...))`` like a FAISS index (scores and global docids, ``-1``
    padded), so :class:`~pyterrier_hybrid.index.DenseRetriever` uses it in place of a pooled FAISS index.

    Args:
        index: The dense index.
        method: ``"hnsw"``, ``"ivf"`` or ``"ivfpq"``.
        neighbours: HNSW graph degree.
        ef_construction: HNSW build-time beam.
        n_list: IVF lists per language; ``None``: ``4·√n`` for a language of ``n`` documents, at most ``n / 39``
            (FAISS's minimum training points per list) and at least 1.
    """

    def __init__(self, index: DenseIndex, method: str, *, neighbours: int = 32, ef_construction: int = 40,
                 n_list: int | None = None):
        if method not in APPROXIMATE:
            raise ValueError(f"approximate method must be one of {', '.join(APPROXIMATE)}, not {method!r}")
        self.index = index
        self.method = method
        self.neighbours, self.ef_construction, self.n_list = neighbours, ef_construction, n_list
        self._loaded: dict[int, dict[str, Any]] = {}
        self._vecs: np.ndarray | None = None

    def __repr__(self) -> str:
        return f"LanguagePartitions({self.index!r}, {self.method!r})"

    # ------------------------------------------------------------------------------------------- layout
    def _pq_m(self, pq_m: int | None) -> int:
        return pq_m if pq_m is not None else default_pq_m(int(self.index.manifest["dim"]))

    def name(self, pq_m: int | None = None) -> str:
        """The folder name of this structure under ``<index>/ann/``."""
        lists = self.n_list or "auto"
        if self.method == "hnsw":
            return f"hnsw-m{self.neighbours}-efc{self.ef_construction}"
        if self.method == "ivf":
            return f"ivf-{lists}"
        return f"ivfpq-{lists}-pq{self._pq_m(pq_m)}"

    def folder(self, pq_m: int | None = None) -> Path:
        """Where the sub-indexes are stored."""
        return self.index.path / "ann" / self.name(pq_m)

    def lists_for(self, n: int) -> int:
        """IVF lists for a language of ``n`` documents."""
        if self.n_list is not None:
            return max(1, min(self.n_list, n))
        return max(1, min(int(4 * np.sqrt(n)), n // _POINTS_PER_CENTROID))

    # ------------------------------------------------------------------------------------------- building
    def built(self, pq_m: int | None = None) -> bool:
        """Whether the sub-indexes exist on disk."""
        return (self.folder(pq_m) / SPEC).is_file()

    def build(self, pq_m: int | None = None) -> Path:
        """Build and store the sub-indexes (nothing to do when they exist); returns their folder."""
        folder = self.folder(pq_m)
        if self.built(pq_m):
            return folder
        import faiss

        m = self._pq_m(pq_m)
        dim = int(self.index.manifest["dim"])
        if self.method == "ivfpq" and dim % m:
            raise ValueError(f"pq_m={m} must divide the vector dimension {dim}")
        vecs = self.index.vectors()
        files: dict[str, dict[str, Any]] = {}
        try:
            with atomic_dir(folder, what="approximate-search index") as tmp:
                for number, (lang, (start, stop)) in enumerate(self.index._blocks().items()):
                    sub, kind = self._build_one(vecs[start:stop], dim, m)
                    name = f"{number:04d}.faiss"  # not the language code: that comes from the data
                    faiss.write_index(sub, str(tmp / name))
                    files[lang] = {"file": name, "kind": kind, "start": start, "stop": stop}
                (tmp / SPEC).write_text(json.dumps({
                    "format": FORMAT, "method": self.method, "neighbours": self.neighbours,
                    "ef_construction": self.ef_construction, "n_list": self.n_list, "pq_m": m, "dim": dim,
                    "count": len(self.index), "fingerprint": self.index.manifest["encoder"].get("fingerprint"),
                    "langs": files}, indent=2) + "\n")
        except FileExistsError:
            if not self.built(pq_m):  # another process built it meanwhile: use theirs; anything else is an error
                raise
        return folder

    def _build_one(self, vecs: np.ndarray, dim: int, pq_m: int) -> tuple[Any, str]:
        """One language's FAISS index and its kind (``"flat"`` where the language is too small to train PQ)."""
        import faiss

        n = len(vecs)
        if self.method == "hnsw":
            sub = faiss.IndexHNSWFlat(dim, self.neighbours, faiss.METRIC_INNER_PRODUCT)
            sub.hnsw.efConstruction = self.ef_construction
            _add(sub, vecs)
            return sub, "hnsw"
        if self.method == "ivfpq" and n < _MIN_PQ_TRAIN:
            sub = faiss.IndexFlatIP(dim)  # too few documents to train 256 PQ centroids; exact is cheap here
            _add(sub, vecs)
            return sub, "flat"
        lists = self.lists_for(n)
        spec = f"IVF{lists},Flat" if self.method == "ivf" else f"IVF{lists},PQ{pq_m}"
        sub = faiss.index_factory(dim, spec, faiss.METRIC_INNER_PRODUCT)
        if self.method == "ivfpq":
            sub.do_polysemous_training = False  # only for polysemous (Hamming) search, which is not used here
        wanted = max(_POINTS_PER_CENTROID * lists, _MIN_PQ_TRAIN if self.method == "ivfpq" else 0)
        rows = np.sort(np.random.default_rng(0).choice(n, size=min(n, wanted), replace=False))
        sub.train(np.ascontiguousarray(vecs[rows], dtype=np.float32))
        _add(sub, vecs)
        return sub, "ivf"

    # ------------------------------------------------------------------------------------------- searching
    def _load(self, pq_m: int | None) -> dict[str, Any]:
        import faiss

        m = self._pq_m(pq_m)
        if m not in self._loaded:
            folder = self.build(pq_m)
            spec = json.loads((folder / SPEC).read_text())
            if spec.get("format") != FORMAT or spec.get("count") != len(self.index):
                raise ValueError(f"{folder} does not belong to {self.index.path} (it was built for "
                                 f"{spec.get('count')} documents, the index holds {len(self.index)}); remove that "
                                 "folder and search again to rebuild it")
            subs = {}
            for lang, entry in spec["langs"].items():
                flag = faiss.IO_FLAG_MMAP if entry["kind"] == "ivf" else faiss.IO_FLAG_MMAP_IFC
                sub = faiss.read_index(str(folder / entry["file"]), flag)
                if entry["kind"] == "ivf":
                    lists = faiss.downcast_InvertedLists(faiss.extract_index_ivf(sub).invlists)
                    if hasattr(lists, "prefetch_nthread"):
                        # on-disk lists start prefetch threads on every search by default; the page cache
                        # does that work, and the threads cost more than a small search itself
                        lists.prefetch_nthread = 0
                subs[lang] = (sub, entry)
            self._loaded[m] = subs
        return self._loaded[m]

    def search(self, x: np.ndarray, k: int, params: AnnSearch | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` best documents per query row over the languages of ``params``.

        Returns:
            ``(scores, docids)``, both ``(len(x), k)``, best first; rows with fewer results are padded with
            docid ``-1`` (and score 0).
        """
        import faiss

        params = params or AnnSearch()
        subs = self._load(params.pq_m)
        langs = params.langs if params.langs is not None else tuple(subs)
        x = np.ascontiguousarray(x, dtype=np.float32)
        all_scores, all_ids = [], []
        for lang in langs:
            sub, entry = subs[lang]
            kind = entry["kind"]
            refine = self.method == "ivfpq" and kind == "ivf"
            kk = min(k * params.refine if refine else k, sub.ntotal)
            if kk == 0:
                continue
            if kind == "hnsw":
                p = faiss.SearchParametersHNSW(efSearch=max(params.ef_search, kk))
            elif kind == "ivf":
                p = faiss.SearchParametersIVF(nprobe=min(params.n_probe, faiss.extract_index_ivf(sub).nlist))
            else:
                p = None
            scores, ids = sub.search(x, kk, params=p)
            ids = np.where(ids >= 0, ids + entry["start"], -1)
            if refine:
                scores, ids = self._rescore(x, ids, k)
            all_scores.append(np.where(ids >= 0, scores, -np.inf))
            all_ids.append(ids)
        return _top_k(all_scores, all_ids, len(x), k)

    def _vectors(self) -> np.ndarray:
        """The index's float32 vectors (its ``vecs.f4``), memory-mapped for scattered reads.

        Re-scoring reads a few hundred scattered rows per query; without ``MADV_RANDOM`` every page fault would
        also read the pages around it (the kernel's read-around), loading far more of the file than is used.
        """
        if self._vecs is None:
            import mmap

            with open(self.index.path / "vecs.f4", "rb") as f:
                mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
            if hasattr(mmap, "MADV_RANDOM"):
                mapped.madvise(mmap.MADV_RANDOM)
            self._vecs = np.frombuffer(mapped, dtype=np.float32).reshape(-1, int(self.index.manifest["dim"]))
        return self._vecs

    def _rescore(self, x: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact inner products of the candidates (from the stored float32 vectors), best ``k`` per row."""
        vecs = self._vectors()
        scores = np.full(ids.shape, -np.inf, dtype=np.float32)
        for row in range(len(ids)):
            ok = ids[row] >= 0
            cand = ids[row][ok]
            order = np.argsort(cand)  # ascending reads from the memory map
            exact = np.empty(len(cand), dtype=np.float32)
            exact[order] = np.asarray(vecs[cand[order]], dtype=np.float32) @ x[row]
            scores[row][ok] = exact
        return _top_k([scores], [ids], len(ids), k, pad_score=-np.inf)


def _add(sub: Any, vecs: np.ndarray) -> None:
    for start in range(0, len(vecs), _CHUNK):
        sub.add(np.ascontiguousarray(vecs[start:start + _CHUNK], dtype=np.float32))


def _top_k(scores: Sequence[np.ndarray], ids: Sequence[np.ndarray], rows: int, k: int, *,
           pad_score: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Merge per-language results: best ``k`` per row by score (ties: language order, then FAISS rank)."""
    out_scores = np.full((rows, k), pad_score, dtype=np.float32)
    out_ids = np.full((rows, k), -1, dtype=np.int64)
    if not scores:
        return out_scores, out_ids
    s, i = np.concatenate(scores, axis=1), np.concatenate(ids, axis=1)
    order = np.argsort(-s, axis=1, kind="stable")[:, :k]
    s, i = np.take_along_axis(s, order, axis=1), np.take_along_axis(i, order, axis=1)
    found = np.isfinite(s) & (i >= 0)
    width = s.shape[1]
    out_scores[:, :width] = np.where(found, s, pad_score)
    out_ids[:, :width] = np.where(found, i, -1)
    return out_scores, out_ids
