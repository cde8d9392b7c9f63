"""pyterrier_hybrid: hybrid batch training and LAReQA-style multilingual retrieval for PyTerrier.

Importing the package registers the XQuAD-R and MLQA-R ir_datasets entries (``xquad-r/en``,
``xquad-r/en-de``, ``xquad-r/multi``, ``mlqa-r/...`` and their noisy variants); see
:mod:`pyterrier_hybrid.datasets`. The main classes are exported lazily, so ``import pyterrier_hybrid``
stays cheap (no torch) until one of them is used:

- :class:`BiEncoder` (:mod:`.encoding`), :class:`DenseIndex` (:mod:`.index`): dense encoding and FAISS search;
- :class:`BM25Index` / :class:`BM25Indexer` (:mod:`.bm25`), :func:`rrf` / :func:`linear_fusion` (:mod:`.fusion`);
- :class:`HybridBatchTrainer` (:mod:`.training`): the hybrid batch trainer;
- :func:`evaluate_grid` (:mod:`.evaluation`), :class:`LIR` (:mod:`.lir`), bias measures (:mod:`.measures`),
  reports (:mod:`.plots`), noise models (:mod:`.noise`).
"""

from importlib import import_module
from typing import Any

from . import datasets
from .datasets import dataset_id, import_mirror, settings
from .languages import MLQA_R_LANGS, XQUAD_R_LANGS, lang_of_id

__version__ = "0.1.0"

# name -> module that defines it (imported on first access)
_LAZY = {
    "BiEncoder": "encoding",
    "DenseIndex": "index",
    "EncoderMismatchError": "index",
    "BM25Index": "bm25",
    "BM25Indexer": "bm25",
    "BM25Retriever": "bm25",
    "rrf": "fusion",
    "linear_fusion": "fusion",
    "HybridBatchTrainer": "training",
    "evaluate_grid": "evaluation",
    "LIR": "lir",
    "RankDistance": "measures",
    "SameLangPref": "measures",
    "peer": "measures",
    "DEFAULT_MODEL": "models",
    "perturb": "noise",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "MLQA_R_LANGS",
    "XQUAD_R_LANGS",
    "__version__",
    "dataset_id",
    "datasets",
    "import_mirror",
    "lang_of_id",
    "settings",
    *_LAZY,
]
