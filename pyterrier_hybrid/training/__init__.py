"""Hybrid batch training (Elmahdy, Lin & Ahmad 2024, arXiv 2408.10536).

- training pairs (question, answer, languages, parallel group) from the registered benchmarks, LAReQA-style JSON
  directories, PyTerrier topics/qrels or DataFrames, re-exported from :mod:`pyterrier_hybrid.datasets.pairs`
  (pairs are data: they live with the datasets);
- :mod:`.sampler`: :class:`HybridBatchSampler`, one language configuration per batch
  (mono / cross / hybrid(α) / En-En / X-X / X-Y);
- :mod:`.losses`: InfoNCE from sentence-transformers (symmetric, hard negatives, gradient caching);
- :mod:`.trainer`: :class:`HybridBatchTrainer`, the PyTerrier estimator on sentence-transformers' trainer.
"""

from ..datasets.pairs import (
    PAIR_COLUMNS,
    describe_pairs,
    pairs_from_benchmark,
    pairs_from_lareqa_dir,
    pairs_from_topics_qrels,
    validate_pairs,
)
from .losses import infonce_loss
from .sampler import MODES, BatchConfig, HybridBatchSampler, validate_mode
from .trainer import HybridBatchTrainer, HybridSentenceTransformerTrainer, add_grid_to_model_card

__all__ = [
    "MODES",
    "PAIR_COLUMNS",
    "BatchConfig",
    "HybridBatchSampler",
    "HybridBatchTrainer",
    "HybridSentenceTransformerTrainer",
    "add_grid_to_model_card",
    "describe_pairs",
    "infonce_loss",
    "pairs_from_benchmark",
    "pairs_from_lareqa_dir",
    "pairs_from_topics_qrels",
    "validate_mode",
    "validate_pairs",
]
