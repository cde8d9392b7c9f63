"""Dense bi-encoder transformers for any Hugging Face / sentence-transformers model, with an on-disk vector cache.

:class:`BiEncoder` extends :class:`pyterrier_dr.BiEncoder`, which supplies the PyTerrier side (``query_encoder()``
adds ``query_vec``, ``doc_encoder()`` adds ``doc_vec``, ``scorer()`` re-ranks ``qid, query, docno, text``); this
module adds what a multilingual study needs on top: loading by hub id, local directory or the offline default
(:data:`pyterrier_hybrid.models.DEFAULT_MODEL`), pooling / prompt / normalisation / length options read from the
sentence-transformers config unless overridden, token-length-sorted batches, an int8 speed mode, the
sentence-transformers multi-process pool, an encoder :meth:`~BiEncoder.manifest` that indexes record, and
:class:`VectorCache` so the same texts are never encoded twice by the same encoder::

    enc = BiEncoder()                                    # offline multilingual-e5-small
    enc = BiEncoder("intfloat/multilingual-e5-small")    # the hub model (online)
    enc = BiEncoder("runs/hybrid-e5", cache_dir="~/.cache/pyterrier_hybrid/vectors")
    topics = enc.query_encoder()(topics)                 # + query_vec
    reranked = (bm25 >> pt.text.get_text(ds, "text") >> enc.scorer())
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import uuid
import warnings
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyterrier as pt
import pyterrier_alpha as pta
import pyterrier_dr
import torch

from ._checks import check_device, check_finite, check_int, check_text, check_texts
from ._io import atomic_path
from .models import DEFAULT_MODEL, resolve_model

__all__ = ["BiEncoder", "VectorCache"]

Role = Literal["query", "doc"]
# e5 models expect these prefixes; used when a model's sentence-transformers config names no prompts.
E5_PROMPTS = {"query": "query: ", "doc": "passage: "}
_E5_NAME = re.compile(r"(^|[/_-])(multilingual-)?e5-(small|base|large)", re.IGNORECASE)


# Said with every NaN / inf vector error: finite texts never give such vectors, a broken model does.
DIVERGED_HINT = ("the model outputs NaN or infinity: its weights are damaged or its training diverged (check the "
                 "checkpoint; retrain with a lower learning rate); such vectors would rank every candidate equal")
# A stored vector of a normalising encoder further than this from norm 1 was not written by it.
_UNIT_TOLERANCE = 1e-3


def _default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"



class _Label(str):
    """A row label shown as is in messages (check_finite writes ids with repr)."""

    def __repr__(self) -> str:
        return str.__str__(self)


class _RowLabels(Sequence):
    """Lazy ``<row> '<text snippet>'`` labels: built only for the rows an error message names."""

    def __init__(self, texts: Sequence[str], rows: Sequence[int] | None = None):
        self.texts = texts
        self.rows = rows

    def __len__(self) -> int:
        return len(self.texts)

    def __getitem__(self, i: int) -> _Label:  # type: ignore[override]
        row = int(self.rows[i]) if self.rows is not None else i
        text = self.texts[i]
        return _Label(f"{row} {(text if len(text) <= 40 else text[:40] + '...')!r}")


def _quantize_int8(model: torch.nn.Module) -> torch.nn.Module:
    """Dynamic int8 quantisation (int8 weights, per-batch int8 activations) of the linear layers.

    The FFN output projections stay float32: their inputs are GELU outputs with a long-tailed range that one
    per-tensor int8 scale represents poorly, and quantising them costs most of the cosine to float32 (measured in
    ``benchmarks/encode.py``; the figures are in the README). ``"bf16"`` stays closer where the CPU has native
    bfloat16.
    """
    import warnings

    from torch.ao.quantization import default_dynamic_qconfig, quantize_dynamic

    linear = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    ffn_out = {n for n in linear if n.endswith("output.dense") and "attention" not in n}  # BERT/XLM-R naming
    with warnings.catch_warnings():  # torch.ao.quantization's deprecation notice
        warnings.simplefilter("ignore")
        return quantize_dynamic(model, {n: default_dynamic_qconfig for n in linear if n not in ffn_out},
                                dtype=torch.qint8)


class VectorCache:
    """On-disk store of vectors keyed by (encoder fingerprint, role, text).

    Layout: ``<root>/<fingerprint>/<role>/<uuid>.npz``, each shard holding ``keys`` (16-byte BLAKE2b digests of
    the texts) and ``vecs`` (float32). Shards are written to a temporary name and renamed, so readers (other
    processes included) never see half a shard; new shards from other processes are picked up on the next call.

    Every shard is checked when it is first read: readable, ``keys`` and ``vecs`` of the same length, vectors of
    dimension ``dim``, finite, and of unit norm when ``normalize``. A shard that fails (a disk fault, a copy cut
    short, a file from another program) is named in a warning and renamed to ``<name>.bad`` (kept for
    inspection, never deleted); its texts are simply missing from the cache and get encoded again.

    Args:
        root: cache folder (``~`` is expanded).
        fingerprint: the encoder's fingerprint (one sub-folder per encoder).
        dim: vector dimension of the encoder; shards of another dimension are set aside (None: not checked).
        normalize: the encoder writes unit vectors; shards with other norms are set aside.
    """

    def __init__(self, root: str | Path, fingerprint: str, *, dim: int | None = None, normalize: bool = False):
        self.root = Path(root).expanduser()
        self.fingerprint = fingerprint
        self.dim = check_int(dim, "dim") if dim is not None else None
        self.normalize = bool(normalize)
        self._loaded: dict[str, set[str]] = {"query": set(), "doc": set()}
        self._index: dict[str, dict[bytes, np.ndarray]] = {"query": {}, "doc": {}}

    def _dir(self, role: Role) -> Path:
        return self.root / self.fingerprint / role

    @staticmethod
    def key(text: str) -> bytes:
        """The cache key of a text (16-byte BLAKE2b digest of its UTF-8 bytes; see ``check_text``)."""
        return hashlib.blake2b(check_text(text).encode("utf-8"), digest_size=16).digest()

    def _refresh(self, role: Role) -> None:
        folder = self._dir(role)
        if not folder.is_dir():
            return
        for shard in sorted(folder.glob("*.npz")):
            if shard.name in self._loaded[role]:
                continue
            try:
                keys, vecs = self._read(shard)
            except FileNotFoundError:  # set aside (or removed by its owner) meanwhile
                continue
            except _BadShard as e:
                self._set_aside(shard, str(e))
                self._loaded[role].add(shard.name)
                continue
            index = self._index[role]
            for k, v in zip(keys, vecs):
                index[bytes(k)] = v
            self._loaded[role].add(shard.name)

    def _read(self, shard: Path) -> tuple[np.ndarray, np.ndarray]:
        """The keys and vectors of a shard, or :class:`_BadShard` saying what is wrong with it."""
        try:
            with np.load(shard) as data:
                if "keys" not in data.files or "vecs" not in data.files:
                    raise _BadShard(f"holds {sorted(data.files)}, not 'keys' and 'vecs'")
                keys, vecs = data["keys"], data["vecs"]
        except FileNotFoundError:
            raise
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as e:  # truncated, not an npz, pickled
            raise _BadShard(f"is unreadable ({type(e).__name__}: {' '.join(str(e).split())})") from e
        if keys.dtype != np.dtype("S16") or keys.ndim != 1:
            raise _BadShard(f"has keys of dtype {keys.dtype} and shape {keys.shape}, not 16-byte digests")
        if vecs.ndim != 2 or not np.issubdtype(vecs.dtype, np.floating):
            raise _BadShard(f"has vectors of dtype {vecs.dtype} and shape {vecs.shape}, not a float matrix")
        if len(keys) != len(vecs):
            raise _BadShard(f"has {len(keys)} keys for {len(vecs)} vectors")
        if self.dim is not None and vecs.shape[1] != self.dim:
            raise _BadShard(f"has vectors of dimension {vecs.shape[1]}, the encoder's are {self.dim}")
        vecs = vecs.astype(np.float32, copy=False)
        finite = np.isfinite(vecs).all(axis=1)
        if not finite.all():
            raise _BadShard(f"has {int((~finite).sum())} vectors holding NaN or infinity")
        if self.normalize and len(vecs):
            off = np.abs(np.linalg.norm(vecs, axis=1) - 1.0) > _UNIT_TOLERANCE
            if off.any():
                raise _BadShard(f"has {int(off.sum())} vectors that are not of unit norm (the encoder normalises)")
        return keys, vecs

    def _set_aside(self, shard: Path, problem: str) -> None:
        """Rename a bad shard to ``<name>.bad`` (never over an existing file) and warn."""
        target = shard.with_name(shard.name + ".bad")
        n = 0
        while target.exists():
            n += 1
            target = shard.with_name(f"{shard.name}.bad{n}")
        try:
            os.link(shard, target)  # fails rather than replace a file that appeared meanwhile
            os.unlink(shard)
            where = f"moved aside to {target.name}"
        except FileNotFoundError:  # another process set it aside first
            where = "already moved aside by another process"
        except OSError:  # no hard links on this file system: rename (checked free just above)
            try:
                os.rename(shard, target)
                where = f"moved aside to {target.name}"
            except OSError as e:
                where = f"left in place, could not be renamed ({type(e).__name__}) and is ignored"
        warnings.warn(f"vector cache shard {shard} {problem}; {where}; its texts will be encoded again",
                      RuntimeWarning, stacklevel=2)

    def get(self, role: Role, texts: Sequence[str]) -> tuple[list[np.ndarray | None], list[int]]:
        """Cached vectors (``None`` where missing) and the positions of the missing texts."""
        self._refresh(role)
        index = self._index[role]
        found = [index.get(self.key(t)) for t in texts]
        return found, [i for i, v in enumerate(found) if v is None]

    def put(self, role: Role, texts: Sequence[str], vecs: np.ndarray) -> None:
        """Store vectors for texts (one new shard; duplicates within the shard are harmless).

        Raises:
            ValueError: vectors of the wrong shape, or (NonFiniteError) holding NaN / infinity: a cache must
                never hand back such vectors as if a model had computed them.
        """
        if not len(texts):
            return
        vecs = np.ascontiguousarray(vecs, dtype=np.float32)
        if vecs.ndim != 2 or len(vecs) != len(texts) or (self.dim is not None and vecs.shape[1] != self.dim):
            raise ValueError(f"vectors of shape {vecs.shape} for {len(texts)} texts; expected ({len(texts)}, "
                             f"{self.dim if self.dim is not None else 'dim'})")
        check_finite(vecs, what="vectors to cache", ids=_RowLabels(list(texts)), hint=DIVERGED_HINT)
        folder = self._dir(role)
        folder.mkdir(parents=True, exist_ok=True)
        keys = np.frombuffer(b"".join(self.key(t) for t in texts), dtype="S16")
        name = f"{uuid.uuid4().hex}.npz"
        with atomic_path(folder / name) as tmp, open(tmp, "wb") as f:
            np.savez(f, keys=keys, vecs=vecs)
        index = self._index[role]
        for k, v in zip(keys, vecs):
            index[bytes(k)] = v
        self._loaded[role].add(name)

    def __len__(self) -> int:
        return sum(len(v) for v in self._index.values())


class _BadShard(Exception):
    """A cache shard that cannot be used (the message says why)."""


class BiEncoder(pyterrier_dr.BiEncoder):
    """A single-vector bi-encoder over any Hugging Face / sentence-transformers model.

    Args:
        model_name_or_path: A hub id (``"intfloat/multilingual-e5-small"``, ``"sentence-transformers/LaBSE"``,
            ``"bert-base-multilingual-cased"``), a local model directory (e.g. one the trainer saved),
            :data:`~pyterrier_hybrid.models.DEFAULT_MODEL` (the offline multilingual-e5-small), or a loaded
            ``SentenceTransformer`` (copied, so the options here never change the caller's model; it is named
            in the manifest by the path its transformer was loaded from).
        pooling: ``None`` keeps the sentence-transformers model's own pooling (mean for a plain HF model);
            ``"cls"`` or ``"mean"`` replaces it.
        query_prompt: Text prepended to queries; ``None`` reads the ``query`` prompt of the sentence-transformers
            config (E5 models without one get ``"query: "``); ``""`` disables it.
        doc_prompt: Likewise for documents (``document``/``passage`` prompt; E5: ``"passage: "``).
        normalize: L2-normalise the vectors (inner product = cosine). A model's own ``Normalize`` module is
            replaced by this flag.
        max_length: Maximum tokens per text (longer texts are truncated).
        batch_size: Texts per forward pass.
        device: ``"cuda"``, ``"cpu"``, ...; default CUDA when available, else CPU.
        verbose: Show progress bars.
        text_field: Document text column.
        quantize: Speed modes whose vectors differ slightly from exact float32 (``None``, the default):
            ``"int8"``: dynamic int8 quantisation of the linear layers except the FFN output projections (CPU);
            ``"bf16"``: bfloat16 weights and activations (CPUs with AVX512-BF16/AMX, GPUs).
        threads: ``torch.set_num_threads`` for CPU inference (default: leave torch's setting).
        processes: Encode with the sentence-transformers multi-process pool over this many CPU processes.
        devices: Encode with the sentence-transformers multi-process pool, one process per device
            (e.g. ``["cuda:0", "cuda:1"]``); overrides ``processes``.
        cache_dir: Root of a :class:`VectorCache`; texts encoded before by an identical encoder are read back.
    """

    def __init__(
        self,
        model_name_or_path: str | os.PathLike | Any = DEFAULT_MODEL,
        *,
        pooling: Literal["cls", "mean"] | None = None,
        query_prompt: str | None = None,
        doc_prompt: str | None = None,
        normalize: bool = True,
        max_length: int = 512,
        batch_size: int = 32,
        device: str | None = None,
        verbose: bool = False,
        text_field: str = "text",
        quantize: Literal["int8", "bf16"] | None = None,
        threads: int | None = None,
        processes: int | None = None,
        devices: Sequence[str] | None = None,
        cache_dir: str | os.PathLike | None = None,
    ):
        # Every option is checked before the model is loaded (loading takes seconds to minutes).
        if pooling not in (None, "cls", "mean"):
            raise ValueError(f"pooling must be None (the model's own), 'cls' or 'mean', not {pooling!r}")
        if quantize not in (None, "int8", "bf16"):
            raise ValueError(f"quantize must be None (exact float32), 'int8' or 'bf16', not {quantize!r}")
        max_length = check_int(max_length, "max_length")
        batch_size = check_int(batch_size, "batch_size")
        threads = check_int(threads, "threads") if threads is not None else None
        processes = check_int(processes, "processes") if processes is not None else None
        if not isinstance(text_field, str) or not text_field:
            raise ValueError(f"text_field must be the name of the document text column, got {text_field!r}")
        device = check_device(device)
        if devices is not None:
            if isinstance(devices, str) or not len(devices):
                raise ValueError(f"devices must be a non-empty list of devices (e.g. ['cuda:0', 'cuda:1']), "
                                 f"got {devices!r}")
            devices = [check_device(d) for d in devices]
        super().__init__(batch_size=batch_size, text_field=text_field, verbose=verbose)
        from sentence_transformers import SentenceTransformer
        from sentence_transformers.base.modules import Normalize
        from sentence_transformers.sentence_transformer.modules import Pooling

        given = model_name_or_path if isinstance(model_name_or_path, SentenceTransformer) else None
        if given is None and not isinstance(model_name_or_path, (str, os.PathLike)):
            kind = type(model_name_or_path)
            raise TypeError(f"model_name_or_path must be a hub id, a model folder or a SentenceTransformer, not "
                            f"{kind.__module__}.{kind.__name__}")
        self.model_name_or_path = _st_name(given) if given is not None else os.fspath(model_name_or_path)
        self.model_name = self.model_name_or_path  # pyterrier_dr's equality key
        self.device = torch.device(device or _default_device())
        if quantize == "int8" and self.device.type != "cpu":
            raise ValueError("quantize='int8' is a CPU speed mode; use device='cpu' or another quantize option")
        if threads:
            torch.set_num_threads(threads)
        self.normalize = normalize
        self.max_length = max_length
        self.quantize = quantize

        if given is not None:
            st = copy.deepcopy(given).to("cpu")  # pooling, quantisation and device below change modules in place
        else:
            st = SentenceTransformer(resolve_model(self.model_name_or_path), device="cpu")
        modules = [m for m in st if not isinstance(m, Normalize)]  # normalisation is ours (the flag above)
        pools = [i for i, m in enumerate(modules) if isinstance(m, Pooling)]
        if pooling is not None:
            dim_in = modules[0].get_embedding_dimension()
            if pools:
                modules[pools[0]] = Pooling(dim_in, pooling_mode=pooling)
            else:
                modules.insert(1, Pooling(dim_in, pooling_mode=pooling))
        mode = modules[pools[0]].pooling_mode if pools else "model"
        self.pooling = pooling or (mode if isinstance(mode, str) else "+".join(mode))
        prompts = dict(st.prompts or {})
        e5 = bool(_E5_NAME.search(self.model_name_or_path)) or self.model_name_or_path == DEFAULT_MODEL
        self.query_prompt = query_prompt if query_prompt is not None else prompts.get(
            "query", E5_PROMPTS["query"] if e5 else "")
        self.doc_prompt = doc_prompt if doc_prompt is not None else prompts.get(
            "document", prompts.get("passage", E5_PROMPTS["doc"] if e5 else ""))
        self.model = SentenceTransformer(modules=modules, device="cpu")
        self.model.max_seq_length = min(max_length, self.model.max_seq_length or max_length)
        if quantize == "int8":
            self.model = _quantize_int8(self.model)
        elif quantize == "bf16":
            self.model = self.model.to(torch.bfloat16)
        self.model.to(self.device).eval()
        self.dim = int(self.model.get_embedding_dimension())
        self.devices = list(devices) if devices else (["cpu"] * processes if processes and processes > 1 else None)
        self._pool = None
        self._fingerprint: str | None = None
        self.cache = VectorCache(cache_dir, self.fingerprint(), dim=self.dim, normalize=normalize) \
            if cache_dir else None

    # ------------------------------------------------------------------------------------------- metadata
    def manifest(self) -> dict[str, Any]:
        """What an index must record to check that queries come from the same encoder."""
        return {
            "model": self.model_name_or_path, "dim": self.dim, "pooling": self.pooling, "normalize": self.normalize,
            "query_prompt": self.query_prompt, "doc_prompt": self.doc_prompt, "max_length": self.max_length,
            "quantize": self.quantize, "fingerprint": self.fingerprint(),
        }

    def fingerprint(self) -> str:
        """Digest of the weights (a strided sample of every tensor) and of every option that changes vectors."""
        if self._fingerprint is None:
            h = hashlib.sha256()
            for name, tensor in sorted(self.model.state_dict().items()):
                if not isinstance(tensor, torch.Tensor) or not tensor.is_floating_point():
                    h.update(f"{name}:{getattr(tensor, 'shape', '')}".encode())  # e.g. packed int8 params
                    continue
                flat = tensor.detach().reshape(-1)
                sample = flat[:: max(1, flat.numel() // 4096)].float().cpu().numpy()
                h.update(f"{name}:{tuple(tensor.shape)}:{float(flat.double().sum()):.10e}".encode())
                h.update(sample.tobytes())
            opts = {k: getattr(self, k) for k in ("pooling", "normalize", "query_prompt", "doc_prompt",
                                                  "max_length", "quantize")}
            h.update(json.dumps(opts, sort_keys=True).encode())
            self._fingerprint = h.hexdigest()[:24]
        return self._fingerprint

    def __repr__(self) -> str:
        return f"BiEncoder({self.model_name_or_path!r})"

    # ------------------------------------------------------------------------------------------- encoding
    def encode_queries(self, texts: Iterable[str], batch_size: int | None = None) -> np.ndarray:
        """Encode query texts (with the query prompt) into a float32 ``(n, dim)`` array.

        Raises:
            TextError: a text is missing (None / NaN), bytes, not a str or not valid Unicode (see
                :mod:`pyterrier_hybrid._checks`), raised before anything is encoded.
            NonFiniteError: the model produced NaN or infinite vectors (named by row and text).
        """
        return self._encode_checked("query", texts, batch_size)

    def encode_docs(self, texts: Iterable[str], batch_size: int | None = None) -> np.ndarray:
        """Encode document texts (with the document prompt) into a float32 ``(n, dim)`` array.

        Raises:
            TextError: as :meth:`encode_queries`.
            NonFiniteError: as :meth:`encode_queries`.
        """
        return self._encode_checked("doc", texts, batch_size)

    def encode_queries_torch(self, texts: list[str], batch_size: int | None = None) -> torch.Tensor:
        """Query vectors as a tensor with gradients enabled (for training code)."""
        texts = check_texts(texts, column="query")
        feats = self.model.preprocess([self.query_prompt + t for t in texts])
        feats = {k: v.to(self.device) if isinstance(v, torch.Tensor) else v for k, v in feats.items()}
        emb = self.model(feats)["sentence_embedding"]
        return torch.nn.functional.normalize(emb, dim=-1) if self.normalize else emb

    def _encode_checked(self, role: Role, texts: Iterable[Any], batch_size: int | None, *,
                        ids: Sequence[Any] | None = None, id_name: str = "row", column: str | None = None,
                        rows: Sequence[int] | None = None) -> np.ndarray:
        """Check the texts, encode them, check the vectors.

        Args:
            role: ``"query"`` or ``"doc"``.
            texts: the texts.
            batch_size: texts per forward pass (None: the encoder's).
            ids: the id of each text (qid / docno) for messages; default: row number and a text snippet.
            id_name: what the ids are called.
            column: the column the texts come from, for messages.
            rows: row numbers of the texts in the caller's input (when ``ids`` is None and texts were deduplicated).
        """
        if hasattr(texts, "disable"):  # pyterrier_dr wraps inputs in pt.tqdm when verbose; we show our own bar
            texts.disable = True
        if batch_size is not None:
            batch_size = check_int(batch_size, "batch_size")
        column = column or ("query" if role == "query" else self.text_field)
        texts = check_texts(texts, ids, column=column, id_name=id_name)
        vecs = self._encode_cached(role, texts, batch_size)
        if not np.isfinite(vecs).all():  # labels are built only now: they cost a string per row
            check_finite(vecs, what=f"{'query' if role == 'query' else 'document'} vectors of {self!r}",
                         ids=ids if ids is not None else _RowLabels(texts, rows), id_name=id_name, hint=DIVERGED_HINT)
        return vecs

    def _encode_cached(self, role: Role, texts: list[str], batch_size: int | None) -> np.ndarray:
        if self.cache is None:
            return self._encode(role, texts, batch_size)
        found, missing = self.cache.get(role, texts)
        if missing:
            todo = list(dict.fromkeys(texts[i] for i in missing))  # unique, first-seen order
            vecs = self._encode(role, todo, batch_size)
            if np.isfinite(vecs).all():  # vectors of a broken model are never stored (the caller raises)
                self.cache.put(role, todo, vecs)
            new = dict(zip(todo, vecs))
            for i in missing:
                found[i] = new[texts[i]]
        return np.stack(found).astype(np.float32, copy=False) if found else np.zeros((0, self.dim), np.float32)

    def _encode(self, role: Role, texts: list[str], batch_size: int | None) -> np.ndarray:
        prompt = self.query_prompt if role == "query" else self.doc_prompt
        texts = [prompt + t for t in texts]
        batch_size = batch_size or self.batch_size
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        if self.devices:
            out = self._encode_pool(texts, batch_size)
        else:
            out = self._encode_local(texts, batch_size, role)
        if self.normalize:
            out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out

    def _encode_local(self, texts: list[str], batch_size: int, role: Role) -> np.ndarray:
        # Longest first, by token count: batches hold texts of similar length (little padding), and the
        # largest batch comes first so memory problems surface at once.
        tok = self.model.tokenizer
        lengths = [len(ids) for ids in tok(texts, truncation=True, max_length=self.model.max_seq_length,
                                           add_special_tokens=True)["input_ids"]]
        order = np.argsort(-np.asarray(lengths), kind="stable")
        out = np.empty((len(texts), self.dim), np.float32)
        starts = range(0, len(texts), batch_size)
        if self.verbose:
            starts = pt.tqdm(starts, desc=f"encoding {'queries' if role == 'query' else role + 's'}", unit="batch")
        with torch.inference_mode():
            for start in starts:
                idx = order[start:start + batch_size]
                feats = self.model.preprocess([texts[i] for i in idx])
                feats = {k: v.to(self.device) if isinstance(v, torch.Tensor) else v for k, v in feats.items()}
                out[idx] = self.model(feats)["sentence_embedding"].float().cpu().numpy()
        return out

    def _encode_pool(self, texts: list[str], batch_size: int) -> np.ndarray:
        if self._pool is None:
            self._pool = self.model.start_multi_process_pool(self.devices)
        out = self.model.encode(texts, pool=self._pool, batch_size=batch_size, convert_to_numpy=True,
                                normalize_embeddings=False, show_progress_bar=self.verbose)
        return np.asarray(out, dtype=np.float32)

    def close(self) -> None:
        """Stop the multi-process pool, if one was started."""
        if self._pool is not None:
            self.model.stop_multi_process_pool(self._pool)
            self._pool = None

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown; nothing useful to do
            pass

    # ------------------------------------------------------------------------------------------- transformers
    # pyterrier_dr's transformers, with every text checked and every vector / score checked, naming qid / docno.
    def transform(self, inp: pd.DataFrame) -> pd.DataFrame:
        """The encoder as a transformer: encode queries, encode documents, or score a result frame.

        The columns decide: ``query`` without document columns is a query frame (:meth:`query_encoder`), the text
        column (or ``doc_vec``) without query columns a document frame (:meth:`doc_encoder`), and both with
        ``docno`` a result frame (:meth:`text_scorer`). Both without ``docno`` is refused: pyterrier-dr would
        score each query against its own ``text`` as if that were a document, which is what a topics frame that
        still carries a ``text`` column (e.g. ``get_topics()`` of some datasets) would silently get.

        Raises:
            ValueError: the frame has query and document columns but no ``docno``.
        """
        query = next((c for c in ("query", "query_vec") if c in inp.columns), None)
        doc = next((c for c in (self.text_field, "doc_vec") if c in inp.columns), None)
        if query and doc and "docno" not in inp.columns:
            raise ValueError(f"{self!r} got a frame with {query!r} and {doc!r} but no 'docno', so it cannot tell "
                             "queries to encode from (query, document) rows to score: use .query_encoder() to encode "
                             f"the queries (it ignores {doc!r}), or add 'docno' to score the rows")
        return super().transform(inp)

    def query_encoder(self, verbose: bool | None = None, batch_size: int | None = None) -> pt.Transformer:
        """Adds ``query_vec`` to a frame with ``query`` (and usually ``qid``); each distinct query encoded once.

        Only ``query`` is encoded: a ``text`` column (of a result frame, or of topics that still carry one) is kept
        as it is and never encoded.
        """
        return _QueryEncoder(self, verbose=verbose, batch_size=batch_size)

    def doc_encoder(self, verbose: bool | None = None, batch_size: int | None = None) -> pt.Transformer:
        """Adds ``doc_vec`` to a frame with the text column (and usually ``docno``)."""
        return _DocEncoder(self, verbose=verbose, batch_size=batch_size)

    def text_scorer(self, verbose: bool | None = None, batch_size: int | None = None,
                    sim_fn: Any = None) -> pt.Transformer:
        """Scores ``qid, query, docno, text`` rows (or ones with ``query_vec`` / ``doc_vec``) by inner product.

        A frame without ``docno`` is refused (a topics frame with a ``text`` column is not a result frame).
        """
        return _Scorer(self, verbose=verbose, batch_size=batch_size, sim_fn=sim_fn)


def _st_name(st: Any) -> str:
    """The name a loaded SentenceTransformer is recorded under: the path its transformer was loaded from."""
    config = getattr(getattr(st[0], "auto_model", None), "config", None) if len(st) else None
    return str(getattr(config, "_name_or_path", "") or "SentenceTransformer")


def _ids(inp: pd.DataFrame, column: str) -> list[Any] | None:
    return inp[column].tolist() if column in inp.columns else None


def _stack(inp: pd.DataFrame, column: str, id_column: str) -> np.ndarray:
    """The vectors of a frame column as one matrix, checked finite (named by ``id_column``)."""
    try:
        matrix = np.stack(inp[column].to_numpy())
    except ValueError as e:
        raise ValueError(f"the {column!r} column does not hold vectors of one length: {' '.join(str(e).split())}") \
            from None
    ids = _ids(inp, id_column)
    return check_finite(matrix, what=f"the {column!r} column", ids=ids, id_name=id_column if ids else "row",
                        hint=DIVERGED_HINT)


class _QueryEncoder(pyterrier_dr.BiQueryEncoder):
    """pyterrier_dr's query encoder with texts checked first and errors naming the qid."""

    def transform(self, inp: pd.DataFrame) -> pd.DataFrame:
        """Add ``query_vec``."""
        with pta.validate.any(inp) as v:
            v.query_frame(extra_columns=["query"])
            v.columns(includes=["query"])
        ids = _ids(inp, "qid")
        id_name = "qid" if ids is not None else "row"
        texts = check_texts(inp["query"], ids, column="query", id_name=id_name)
        # pd.factorize keeps first-seen order and, unlike np.unique, never compares texts of different types
        codes, uniques = pd.factorize(pd.Series(texts, dtype=object))
        first = np.unique(codes, return_index=True)[1] if len(codes) else np.zeros(0, dtype=np.int64)
        vecs = self.bi_encoder_model._encode_checked(
            "query", list(uniques), self.batch_size, ids=[ids[i] for i in first] if ids is not None else None,
            id_name=id_name, column="query", rows=first)
        return inp.assign(query_vec=[vecs[c] for c in codes])


class _DocEncoder(pyterrier_dr.BiDocEncoder):
    """pyterrier_dr's document encoder with texts checked first and errors naming the docno."""

    def transform(self, inp: pd.DataFrame) -> pd.DataFrame:
        """Add ``doc_vec``."""
        with pta.validate.any(inp) as v:
            v.document_frame(extra_columns=[self.text_field])
            v.columns(includes=[self.text_field])
        ids = _ids(inp, "docno")
        vecs = self.bi_encoder_model._encode_checked(
            "doc", inp[self.text_field].tolist(), self.batch_size, ids=ids,
            id_name="docno" if ids is not None else "row", column=self.text_field)
        return inp.assign(doc_vec=list(vecs))


class _Scorer(pyterrier_dr.BiScorer):
    """pyterrier_dr's scorer; given vectors are checked finite and so are the scores."""

    def transform(self, inp: pd.DataFrame) -> pd.DataFrame:
        """Score (and rank) every row of a result frame (``docno`` and query and document texts or vectors)."""
        with pta.validate.any(inp) as v:  # docno in every mode: rows without one are not (query, document) pairs
            for query in ("query_vec", "query"):
                for doc in ("doc_vec", self.text_field):
                    v.columns(includes=[query, "docno", doc])
        for column, id_column in (("query_vec", "qid"), ("doc_vec", "docno")):
            if column in inp.columns and len(inp):
                _stack(inp, column, id_column)
        out = super().transform(inp)  # encodes through _QueryEncoder / _DocEncoder: texts and vectors checked
        if len(out):
            pairs = list(zip(out["qid"], out["docno"])) if {"qid", "docno"} <= set(out.columns) else None
            check_finite(out["score"].to_numpy(dtype=np.float64), what="scores", ids=pairs,
                         id_name="(qid, docno)" if pairs else "row", hint="the vectors are too large for float32")
        return out
