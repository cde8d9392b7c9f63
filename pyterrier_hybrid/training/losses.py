"""In-batch-negative InfoNCE losses, taken from sentence-transformers.

``MultipleNegativesRankingLoss`` is InfoNCE over in-batch negatives (plus hard negatives when the
dataset has a third column); ``directions=("query_to_doc", "doc_to_query")`` with
``partition_mode="per_direction"`` adds the symmetric answer-to-question term (what the deprecated
``MultipleNegativesSymmetricRankingLoss`` computed); the ``Cached`` variant is GradCache (Gao et al.,
2021): embeddings are computed in mini-batches without gradients, the loss gradient w.r.t. the
embeddings is computed once for the whole batch, and mini-batches are re-encoded with gradients, so a
batch of 256 fits in the memory of a mini-batch.
"""

from __future__ import annotations

from sentence_transformers.sentence_transformer.losses import (
    CachedMultipleNegativesRankingLoss,
    MultipleNegativesRankingLoss,
)
from torch import nn


def infonce_loss(
    model: nn.Module,
    *,
    scale: float = 20.0,
    temperature: float | None = None,
    symmetric: bool = False,
    gradient_cache: bool = False,
    mini_batch_size: int = 32,
    gather_across_devices: bool = False,
) -> nn.Module:
    """Build the InfoNCE loss module for ``model`` (a SentenceTransformer).

    Args:
        model: the SentenceTransformer being trained.
        scale: logit scale applied to cosine similarities (``1 / temperature``).
        temperature: alternative to ``scale``; if given, ``scale = 1 / temperature``.
        symmetric: add the answer -> question term.
        gradient_cache: use GradCache (large batches in little memory).
        mini_batch_size: mini-batch size of GradCache.
        gather_across_devices: with DDP, use the other ranks' embeddings as extra negatives.

    Raises:
        ValueError: non-positive scale, temperature or mini-batch size.
    """
    if temperature is not None:
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        scale = 1.0 / temperature
    if scale <= 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    kwargs: dict = {"scale": float(scale), "gather_across_devices": gather_across_devices}
    if symmetric:
        kwargs.update(directions=("query_to_doc", "doc_to_query"), partition_mode="per_direction")
    if gradient_cache:
        if mini_batch_size < 1:
            raise ValueError(f"mini_batch_size must be >= 1, got {mini_batch_size}")
        return CachedMultipleNegativesRankingLoss(model, mini_batch_size=int(mini_batch_size), **kwargs)
    return MultipleNegativesRankingLoss(model, **kwargs)
