"""pyterrier_hybrid: hybrid batch training and LAReQA-style multilingual retrieval for PyTerrier.

Importing the package registers the XQuAD-R and MLQA-R ir_datasets entries (``xquad-r/en``,
``xquad-r/en-de``, ``xquad-r/multi``, ``mlqa-r/...``); see :mod:`pyterrier_hybrid.datasets`.
"""

from . import datasets
from .datasets import dataset_id, import_mirror, settings
from .languages import MLQA_R_LANGS, XQUAD_R_LANGS, lang_of_id

__version__ = "0.1.0"

__all__ = [
    "MLQA_R_LANGS",
    "XQUAD_R_LANGS",
    "__version__",
    "dataset_id",
    "datasets",
    "import_mirror",
    "lang_of_id",
    "settings",
]
