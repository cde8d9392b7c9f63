"""XQuAD-R and MLQA-R (LAReQA) as ir_datasets entries, registered on import.

``import pyterrier_hybrid`` (or only ``import pyterrier``) imports this package as soon as ir_datasets is
imported (see :mod:`pyterrier_hybrid._plugin`), so ``ir_datasets.load("xquad-r/en-de")`` and
``pt.get_dataset("irds:xquad-r/en-de")`` need no explicit import.

See :mod:`.entries` for the ids and :mod:`.source` for where the files come from.
"""

from .beir import BeirFolder, lareqa_dir_to_beir, pairs_from_beir_dir, split_groups, write_beir_folder
from .entries import POOLED, QueryStore, dataset_id, register, settings
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
    "BeirFolder",
    "BenchmarkSample",
    "LanguageData",
    "LareqaDoc",
    "LareqaFileError",
    "LareqaQuery",
    "QueryStore",
    "dataset_id",
    "import_mirror",
    "lareqa_dir_to_beir",
    "lareqa_file",
    "load_language",
    "noisy_dataset_id",
    "pairs_from_beir_dir",
    "register",
    "register_noisy",
    "sample_benchmark",
    "settings",
    "split_groups",
    "write_beir_folder",
]
