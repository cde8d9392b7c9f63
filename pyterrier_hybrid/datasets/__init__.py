"""XQuAD-R and MLQA-R (LAReQA) as ir_datasets entries, registered on import.

See :mod:`.entries` for the ids and :mod:`.source` for where the files come from.
"""

from .entries import POOLED, dataset_id, register, settings
from .lareqa import LanguageData, LareqaDoc, LareqaQuery, load_language
from .source import LareqaFileError, import_mirror, lareqa_file

DATASET_IDS: list[str] = register()

__all__ = [
    "DATASET_IDS",
    "POOLED",
    "LanguageData",
    "LareqaDoc",
    "LareqaFileError",
    "LareqaQuery",
    "dataset_id",
    "import_mirror",
    "lareqa_file",
    "load_language",
    "register",
    "settings",
]
