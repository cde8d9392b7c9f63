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
