"""pyterrier_hybrid: hybrid batch training and LAReQA-style multilingual retrieval for PyTerrier.

Importing the package (or only ``import pyterrier``, through the ``pyterrier.modules`` entry point that
makes the package ``pt.hybrid``) registers the XQuAD-R and MLQA-R ir_datasets entries (``xquad-r/en``,
``xquad-r/en-de``, ``xquad-r/multi``, ``mlqa-r/...`` and their noisy variants; see
:mod:`pyterrier_hybrid.datasets`) as soon as ir_datasets is imported, and the measure names
``RankDistance``, ``SameLangPref`` and ``LangPEER`` with ir_measures (see :mod:`pyterrier_hybrid._plugin`).
Everything is exported lazily, so ``import pyterrier_hybrid`` stays cheap (no torch, no ir_datasets) until
a name is used:

- :class:`BiEncoder` (:mod:`.encoding`), :class:`DenseIndex` (:mod:`.index`): dense encoding and FAISS search;
- :class:`BM25Index` / :class:`BM25Indexer` (:mod:`.bm25`), :func:`rrf` / :func:`linear_fusion` (:mod:`.fusion`);
- :class:`HybridBatchTrainer` (:mod:`.training`): the hybrid batch trainer;
- :func:`evaluate_grid` (:mod:`.evaluation`), :class:`LIR` (:mod:`.lir`), bias measures (:mod:`.measures`),
  reports (:mod:`.plots`), noise models (:mod:`.noise`).
"""

from importlib import import_module
from typing import Any

from . import _plugin

__version__ = "0.1.0"

_plugin.install()  # ir_datasets entries and measure names, registered when those libraries are imported

# name -> module that defines it (imported on first access)
_LAZY = {
    "MLQA_R_LANGS": "languages",
    "XQUAD_R_LANGS": "languages",
    "lang_of_id": "languages",
    "dataset_id": "datasets",
    "import_mirror": "datasets",
    "settings": "datasets",
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
    if name == "datasets":  # the subpackage, imported (and its entries registered) on first access
        return import_module(".datasets", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["__version__", "datasets", *_LAZY]
