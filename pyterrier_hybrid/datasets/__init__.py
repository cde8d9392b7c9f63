"""XQuAD-R and MLQA-R (LAReQA) as ir_datasets entries, registered on import.

See :mod:`.entries` for the ids and :mod:`.source` for where the files come from.
"""

from .entries import POOLED, dataset_id, register, settings
from .lareqa import LanguageData, LareqaDoc, LareqaQuery, load_language
from .noisy import noisy_dataset_id, register_noisy
from .sample import BenchmarkSample, sample_benchmark
from .source import LareqaFileError, import_mirror, lareqa_file

DATASET_IDS: list[str] = register()
NOISY_ID_PATTERN: str = register_noisy()  # <clean id>/noise-<model>-<level>[-s<seed>][-docs], resolved on first load

__all__ = [
    "DATASET_IDS",
    "NOISY_ID_PATTERN",
    "POOLED",
    "BenchmarkSample",
    "LanguageData",
    "LareqaDoc",
    "LareqaFileError",
    "LareqaQuery",
    "dataset_id",
    "import_mirror",
    "lareqa_file",
    "load_language",
    "noisy_dataset_id",
    "register",
    "register_noisy",
    "sample_benchmark",
    "settings",
]
