"""The XLM-R Unigram tokenizer of an E5S1 file as Hugging Face fast-tokenizer files.

SentencePiece normalises with a per-codepoint map that ``tokenizers`` reads only in its compiled form
(``precompiled_charsmap``, a darts-clone trie); :func:`charsmap` compiles it, so no ``sentencepiece``
model file is needed.
"""

from __future__ import annotations

import json
import struct
from collections import deque
from pathlib import Path

import numpy as np

from .e5s1 import E5S1

__all__ = ["charsmap", "write_tokenizer"]


def charsmap(mapping: dict[str, str]) -> bytes:
    """Compile a string -> string map into SentencePiece's ``precompiled_charsmap`` blob.

    ``tokenizers.normalizers.Precompiled`` reads: u32 trie size in bytes, a darts-clone double array of u32
    units over the UTF-8 keys, then the NUL-terminated replacement strings. Walking the array: from node ``p``
    with ``o = offset(p)``, the child for byte ``c`` is unit ``p ^ o ^ c`` whose low byte must equal ``c``; if a
    key ends at a node (bit 8 set), the unit ``p ^ o`` (label 0) holds the replacement's byte offset with bit 31
    set. Unit bits: 0-7 label, 8 has-leaf, 10-30 offset (bit 9 would scale it by 256; not needed here).

    Nodes are placed breadth-first, each at the lowest base whose slots are all free.

    Args:
        mapping: key → replacement (keys without NUL).

    Returns:
        The blob for ``tokenizers.normalizers.Precompiled``.

    Raises:
        ValueError: a key holds NUL, or the map is too large for an unscaled offset.
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


def write_tokenizer(out: Path, e5: E5S1) -> None:
    """Write XLM-R fast tokenizer files of ``e5`` to ``out``.

    Pipeline: per-codepoint map -> whitespace split -> Metaspace -> Unigram -> ``<s> $A </s>``.

    Args:
        out: an existing directory.
        e5: the parsed model file.

    Raises:
        ValueError: the vocabulary does not end with ``<mask>`` (not an XLM-R vocabulary).
    """
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import XLMRobertaTokenizerFast

    sp = e5.special
    tok = Tokenizer(models.Unigram(list(zip(e5.pieces, e5.scores)), unk_id=sp["unk"], byte_fallback=False))
    tok.normalizer = normalizers.Precompiled(charsmap(e5.charmap))
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
