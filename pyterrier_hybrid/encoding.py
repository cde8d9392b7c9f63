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

import hashlib
import json
import os
import re
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyterrier as pt
import pyterrier_dr
import torch

from ._io import atomic_path
from .models import DEFAULT_MODEL, resolve_model

__all__ = ["BiEncoder", "VectorCache"]

Role = Literal["query", "doc"]
# e5 models expect these prefixes; used when a model's sentence-transformers config names no prompts.
E5_PROMPTS = {"query": "query: ", "doc": "passage: "}
_E5_NAME = re.compile(r"(^|[/_-])(multilingual-)?e5-(small|base|large)", re.IGNORECASE)


def _default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def _quantize_int8(model: torch.nn.Module) -> torch.nn.Module:
    """Dynamic int8 quantisation (int8 weights, per-batch int8 activations) of the linear layers.

    The FFN output projections stay float32: their inputs are GELU outputs with a long-tailed range that one
    per-tensor int8 scale represents poorly. With multilingual-e5-small, cosine to float32 on 100 XQuAD-R sentences
    is 0.977 (min 0.954) with every linear layer quantised and 0.995 (min 0.993) with these kept; on 2,000
    sentences (benchmarks/encode.py) mean 0.995, min 0.988. ``"bf16"`` is closer (min 0.99995) where the CPU has
    native bfloat16.
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
    """

    def __init__(self, root: str | Path, fingerprint: str):
        self.root = Path(root).expanduser()
        self.fingerprint = fingerprint
        self._loaded: dict[str, set[str]] = {"query": set(), "doc": set()}
        self._index: dict[str, dict[bytes, np.ndarray]] = {"query": {}, "doc": {}}

    def _dir(self, role: Role) -> Path:
        return self.root / self.fingerprint / role

    @staticmethod
    def key(text: str) -> bytes:
        """The cache key of a text (16-byte BLAKE2b digest)."""
        return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()

    def _refresh(self, role: Role) -> None:
        folder = self._dir(role)
        if not folder.is_dir():
            return
        for shard in sorted(folder.glob("*.npz")):
            if shard.name in self._loaded[role]:
                continue
            with np.load(shard) as data:
                keys, vecs = data["keys"], data["vecs"]
            index = self._index[role]
            for k, v in zip(keys, vecs):
                index[bytes(k)] = v
            self._loaded[role].add(shard.name)

    def get(self, role: Role, texts: Sequence[str]) -> tuple[list[np.ndarray | None], list[int]]:
        """Cached vectors (``None`` where missing) and the positions of the missing texts."""
        self._refresh(role)
        index = self._index[role]
        found = [index.get(self.key(t)) for t in texts]
        return found, [i for i, v in enumerate(found) if v is None]

    def put(self, role: Role, texts: Sequence[str], vecs: np.ndarray) -> None:
        """Store vectors for texts (one new shard; duplicates within the shard are harmless)."""
        if not len(texts):
            return
        folder = self._dir(role)
        folder.mkdir(parents=True, exist_ok=True)
        keys = np.frombuffer(b"".join(self.key(t) for t in texts), dtype="S16")
        vecs = np.ascontiguousarray(vecs, dtype=np.float32)
        name = f"{uuid.uuid4().hex}.npz"
        with atomic_path(folder / name) as tmp, open(tmp, "wb") as f:
            np.savez(f, keys=keys, vecs=vecs)
        index = self._index[role]
        for k, v in zip(keys, vecs):
            index[bytes(k)] = v
        self._loaded[role].add(name)

    def __len__(self) -> int:
        return sum(len(v) for v in self._index.values())


class BiEncoder(pyterrier_dr.BiEncoder):
    """A single-vector bi-encoder over any Hugging Face / sentence-transformers model.

    Args:
        model_name_or_path: A hub id (``"intfloat/multilingual-e5-small"``, ``"sentence-transformers/LaBSE"``,
            ``"bert-base-multilingual-cased"``), a local model directory (e.g. one the trainer saved), or
            :data:`~pyterrier_hybrid.models.DEFAULT_MODEL` (the offline multilingual-e5-small).
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
        model_name_or_path: str | os.PathLike = DEFAULT_MODEL,
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
        super().__init__(batch_size=batch_size, text_field=text_field, verbose=verbose)
        from sentence_transformers import SentenceTransformer
        from sentence_transformers.base.modules import Normalize
        from sentence_transformers.sentence_transformer.modules import Pooling

        if pooling not in (None, "cls", "mean"):
            raise ValueError(f"pooling must be None (the model's own), 'cls' or 'mean', not {pooling!r}")
        if quantize not in (None, "int8", "bf16"):
            raise ValueError(f"quantize must be None (exact float32), 'int8' or 'bf16', not {quantize!r}")
        if max_length < 1 or batch_size < 1:
            raise ValueError("max_length and batch_size must be positive")
        self.model_name_or_path = os.fspath(model_name_or_path)
        self.model_name = self.model_name_or_path  # pyterrier_dr's equality key
        self.device = torch.device(device or _default_device())
        if quantize == "int8" and self.device.type != "cpu":
            raise ValueError("quantize='int8' is a CPU speed mode; use device='cpu' or another quantize option")
        if threads:
            torch.set_num_threads(threads)
        self.normalize = normalize
        self.max_length = max_length
        self.quantize = quantize

        path = resolve_model(self.model_name_or_path)
        st = SentenceTransformer(path, device="cpu")
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
        self.cache = VectorCache(cache_dir, self.fingerprint()) if cache_dir else None

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
        """Encode query texts (with the query prompt) into a float32 ``(n, dim)`` array."""
        return self._encode_cached("query", texts, batch_size)

    def encode_docs(self, texts: Iterable[str], batch_size: int | None = None) -> np.ndarray:
        """Encode document texts (with the document prompt) into a float32 ``(n, dim)`` array."""
        return self._encode_cached("doc", texts, batch_size)

    def encode_queries_torch(self, texts: list[str], batch_size: int | None = None) -> torch.Tensor:
        """Query vectors as a tensor with gradients enabled (for training code)."""
        feats = self.model.preprocess([self.query_prompt + t for t in texts])
        feats = {k: v.to(self.device) if isinstance(v, torch.Tensor) else v for k, v in feats.items()}
        emb = self.model(feats)["sentence_embedding"]
        return torch.nn.functional.normalize(emb, dim=-1) if self.normalize else emb

    def _encode_cached(self, role: Role, texts: Iterable[str], batch_size: int | None) -> np.ndarray:
        if hasattr(texts, "disable"):  # pyterrier_dr wraps inputs in pt.tqdm when verbose; we show our own bar
            texts.disable = True
        texts = [str(t) for t in texts]
        if self.cache is None:
            return self._encode(role, texts, batch_size)
        found, missing = self.cache.get(role, texts)
        if missing:
            todo = list(dict.fromkeys(texts[i] for i in missing))  # unique, first-seen order
            vecs = self._encode(role, todo, batch_size)
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

    # ------------------------------------------------------------------------------------------- indexes
    def indexer(self, path: str | os.PathLike, **kwargs: Any) -> pt.Indexer:
        """An indexer writing a :class:`pyterrier_hybrid.index.DenseIndex` at ``path`` (see its ``indexer``)."""
        from .index import DenseIndex

        return DenseIndex(path).indexer(self, **kwargs)

    def retriever(self, index: Any, **kwargs: Any) -> pt.Transformer:
        """``query_encoder() >> index retriever`` for a :class:`~pyterrier_hybrid.index.DenseIndex` (or its path).

        Keyword arguments (``langs=``, ``num_results=``, ``method=``, ...) go to ``DenseIndex.retriever``.
        """
        from .index import DenseIndex

        index = index if isinstance(index, DenseIndex) else DenseIndex(index)
        return index.retriever(self, **kwargs)
