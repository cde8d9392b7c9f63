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

from .._checks import check_int, check_number


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
        ValueError: a scale or temperature that is not a finite number > 0 (NaN would pass a plain ``<= 0``
            test and train on NaN logits), or a mini-batch size < 1.
    """
    if temperature is not None:
        check_number(temperature, "temperature", positive=True)
        scale = 1.0 / temperature
        check_number(scale, "scale (1 / temperature, positive=True)")
    check_number(scale, "scale", positive=True)
    kwargs: dict = {"scale": float(scale), "gather_across_devices": gather_across_devices}
    if symmetric:
        kwargs.update(directions=("query_to_doc", "doc_to_query"), partition_mode="per_direction")
    if gradient_cache:
        mini_batch_size = check_int(mini_batch_size, "mini_batch_size")
        return CachedMultipleNegativesRankingLoss(model, mini_batch_size=mini_batch_size, **kwargs)
    return MultipleNegativesRankingLoss(model, **kwargs)

