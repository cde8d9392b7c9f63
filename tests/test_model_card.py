"""The saved model's card (sentence-transformers' generator, offline) and library messages through ``logging``."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import socket
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from sentence_transformers import SentenceTransformer

from pyterrier_hybrid.datasets import source
from pyterrier_hybrid.evaluation import GridResult, _Setting, _tidy
from pyterrier_hybrid.models import DEFAULT_MODEL, HUB_MODEL
from pyterrier_hybrid.training import HybridBatchTrainer
from pyterrier_hybrid.training.testing import synthetic_pairs
from pyterrier_hybrid.training.trainer import _base_model, add_grid_to_model_card

pytestmark = pytest.mark.usefixtures("one_torch_thread")

LANGS = ("en", "de", "es")


def front_matter(path: Path) -> dict:
    text = path.read_text(encoding="utf-8")
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n", 2)[1])


def body(path: Path) -> str:
    return path.read_text(encoding="utf-8").split("---\n", 2)[2]


@pytest.fixture(scope="module")
def trained(tiny_model_dir, tmp_path_factory):
    """A tiny model trained 2 steps from a copy of the tiny model that says, as the offline e5-small rebuild does
    in its ``build.json``, which hub model it is; the hub look-ups, sockets, warnings and log records are kept."""
    root = tmp_path_factory.mktemp("card")
    base = root / "base"
    shutil.copytree(tiny_model_dir, base)
    (base / "build.json").write_text(json.dumps({"base_model": HUB_MODEL, "license": "MIT"}), encoding="utf-8")
    hub_calls, connects = [], []

    def no_hub(*args, **kwargs):
        hub_calls.append(args)
        raise AssertionError("the model card asked the hub")

    def no_socket(self, address):
        connects.append(address)
        raise OSError("no network in tests")

    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = records.append
    logger = logging.getLogger("pyterrier_hybrid")
    old_level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    with pytest.MonkeyPatch.context() as mp, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mp.setattr("sentence_transformers.base.model_card.get_model_info", no_hub)
        mp.setattr("sentence_transformers.base.model_card.get_dataset_info", no_hub)
        mp.setattr(socket.socket, "connect", no_socket)
        trainer = HybridBatchTrainer(str(base), mode="hybrid", alpha=0.25, batch_size=4, max_steps=2, lr=1e-3,
                                     max_seq_length=32, logging_steps=1, freeze_embeddings=True, verbose=False,
                                     output_dir=root / "model")
        trainer.fit_pairs(synthetic_pairs(24, LANGS, seed=0), data_description="synthetic pairs")
    logger.removeHandler(handler)
    logger.setLevel(old_level)
    return {"dir": root / "model", "hub_calls": hub_calls, "connects": connects, "warnings": caught,
            "records": records}


def test_card_front_matter_from_sentence_transformers_generator(trained):
    meta = front_matter(trained["dir"] / "README.md")
    assert meta["base_model"] == HUB_MODEL
    assert meta["license"] == "mit"
    assert meta["language"] == sorted(LANGS)
    assert meta["datasets"] == ["synthetic pairs"]
    assert meta["library_name"] == "sentence-transformers"
    assert meta["pipeline_tag"] == "sentence-similarity"
    # sentence-transformers' own tags (made by its generator after training) and ours
    assert {"sentence-transformers", "generated_from_trainer", "pyterrier", "hybrid-batch-training",
            "hybrid-batch-mode:hybrid"} <= set(meta["tags"])
    assert meta["widget"]  # examples from the training pairs


def test_card_body_mode_alpha_budget_usage(trained):
    text = body(trained["dir"] / "README.md")
    assert text.lstrip().startswith("# Hybrid batch fine-tuned bi-encoder (hybrid batches, α = 0.25) based on "
                                    f"{HUB_MODEL}")
    assert "mode: `hybrid`, alpha: 0.25" in text
    assert "- budget: 2 steps x batch 4 x 1 process(es), lr 0.001 (warm-up ratio 0.1), max length 32" in text
    assert "data: synthetic pairs: " in text and "languages de, en, es" in text
    # usage: sentence-transformers' snippet, then the PyTerrier bi-encoder with the training prompts
    assert 'model = SentenceTransformer("sentence_transformers_model_id")' in text
    assert "encoder = BiEncoder(\"sentence_transformers_model_id\", query_prompt='query: ', " \
           "doc_prompt='passage: ')" in text
    # our section sits in sentence-transformers' card, before its training details
    assert text.index("## Hybrid batch training") < text.index("## Training Details")
    assert "### Training Hyperparameters" in text


def test_card_offline_and_without_warnings(trained):
    assert trained["connects"] == []
    # The card asked the hub nothing: the only look-ups are sentence-transformers' loader probing local folders
    # (base and saved model), which huggingface_hub rejects as repo ids before any request.
    assert all(Path(call[0]).is_dir() for call in trained["hub_calls"]), trained["hub_calls"]
    caught = trained["warnings"]
    deprecations = [w for w in caught if issubclass(w.category, (DeprecationWarning, FutureWarning))]
    assert not deprecations, [f"{w.filename}:{w.lineno}: {w.message}" for w in deprecations]
    assert not [w for w in caught if "warmup" in str(w.message)]
    assert not [w for w in caught if "pyterrier_hybrid" in w.filename], [str(w.message) for w in caught]


def test_saved_model_still_loads_and_training_is_logged(trained):
    model = SentenceTransformer(str(trained["dir"]), device="cpu")
    vectors = model.encode(["query: which river?", "passage: the river."])
    assert vectors.shape == (2, 32) and np.isfinite(vectors).all()
    messages = [r.getMessage() for r in trained["records"] if r.name == "pyterrier_hybrid.training.trainer"]
    assert any(m.startswith("training ") and "mode hybrid, alpha 0.25, 2 steps x batch 4" in m for m in messages)
    assert any(m.startswith("saved the final model (step 2)") for m in messages)


def _grid(shift: float) -> GridResult:
    rng = np.random.default_rng(0)
    per_setting = []
    for q in LANGS:
        for d in LANGS:
            qids = [f"{q}_g{i}" for i in range(5)]
            per_setting.append((_Setting(q, d, qids, {}), pd.DataFrame(
                {"qid": qids, "measure": "AP", "value": np.clip(rng.random(5) + shift, 0, 1)})))
    qids = [f"{q}_g{i}" for q in LANGS for i in range(5)]
    per_setting.append((_Setting("all", "multi", qids, {}), pd.DataFrame(
        {"qid": qids, "measure": "AP", "value": np.clip(rng.random(15) + shift, 0, 1)})))
    return _tidy("xquad-r", "hybrid-0.25-s0", per_setting)


def test_grid_summary_table_in_card(trained, tmp_path):
    model_dir = tmp_path / "model"
    shutil.copytree(trained["dir"], model_dir)
    before = front_matter(model_dir / "README.md")
    for shift in (0.0, -0.2):  # a second evaluation of the same benchmark replaces the first
        grid = _grid(shift)
        add_grid_to_model_card(model_dir, grid, description="24 paragraphs per language")
    meta = front_matter(model_dir / "README.md")
    for key in ("base_model", "license", "language", "datasets", "tags", "widget"):
        assert meta[key] == before[key], key
    [entry] = meta["model-index"]
    [result] = entry["results"]
    assert result["dataset"]["type"] == "xquad-r"
    summary = grid.summary()
    got = {m["type"]: m["value"] for m in result["metrics"]}
    assert got == pytest.approx({f"{kind}_AP": summary.loc["AP", kind] for kind in ("mono", "cross", "pooled")})
    text = body(model_dir / "README.md")
    assert text.count("## Evaluation on xquad-r (pyterrier_hybrid grid)") == 1
    assert f"| AP | {summary.loc['AP', 'mono']:.3f} | {summary.loc['AP', 'cross']:.3f} | " \
           f"{summary.loc['AP', 'pooled']:.3f} |" in text
    assert text.index("## Evaluation on xquad-r") < text.index("## Training Details")
    assert not list(model_dir.glob(".README.md*"))  # written atomically, no temporary file left
    assert SentenceTransformer(str(model_dir), device="cpu").encode(["x"]).shape == (1, 32)
    with pytest.raises(FileNotFoundError, match="README.md"):
        add_grid_to_model_card(tmp_path, grid)


def test_base_model_found_offline(tmp_path):
    assert _base_model(DEFAULT_MODEL, None) == (HUB_MODEL, "mit")
    assert _base_model(HUB_MODEL, None) == (HUB_MODEL, "mit")
    assert _base_model("org/model", None) == ("org/model", None)  # a hub id: as given, nothing looked up
    plain = tmp_path / "plain"
    plain.mkdir()
    assert _base_model(str(plain), None) == (None, None)

    class Loaded:  # a local fine-tune whose card names its base
        _model_card_text = "---\nbase_model: org/base\nlicense: apache-2.0\n---\n# card\n"

    assert _base_model(str(plain), Loaded()) == ("org/base", "apache-2.0")


def test_mirror_copy_is_logged(tmp_path, monkeypatch, caplog):
    """Copying a LAReQA file from the mirror into the cache goes to the module's logger, not to the console."""
    mirror = tmp_path / "mirror"
    (mirror / "xquad-r").mkdir(parents=True)
    data = b'{"data": []}'
    (mirror / "xquad-r" / "de.json").write_bytes(data)
    monkeypatch.setitem(source.MD5, "xquad-r/de.json", hashlib.md5(data).hexdigest())  # noqa: S324 - as source
    monkeypatch.setenv("IR_DATASETS_HOME", str(tmp_path / "irds"))
    monkeypatch.setenv(source.MIRROR_ENV, str(mirror))
    source._verified.cache_clear()
    try:
        with caplog.at_level(logging.INFO, logger="pyterrier_hybrid.datasets.source"):
            path = source.lareqa_file("xquad-r", "de")
        assert path.read_bytes() == data
        [record] = [r for r in caplog.records if r.name == "pyterrier_hybrid.datasets.source"]
        assert record.levelno == logging.INFO
        assert "xquad-r/de.json" in record.getMessage() and str(mirror) in record.getMessage()
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="pyterrier_hybrid.datasets.source"):
            source.lareqa_file("xquad-r", "de")  # in the cache now: nothing copied, nothing logged
        assert not [r for r in caplog.records if r.name == "pyterrier_hybrid.datasets.source"]
    finally:
        source._verified.cache_clear()


def test_card_written_when_the_generator_fails(tiny_model_dir, tmp_path, monkeypatch):
    """sentence-transformers logs a failing generator and writes no card; the trainer then writes its own."""

    def broken(model):
        raise RuntimeError("generator broke")

    monkeypatch.setattr("sentence_transformers.base.model.generate_model_card", broken)
    HybridBatchTrainer(str(tiny_model_dir), mode="cross", batch_size=4, max_steps=1, freeze_embeddings=True,
                       verbose=False, output_dir=tmp_path / "model").fit_pairs(synthetic_pairs(12, LANGS, seed=1))
    card = tmp_path / "model" / "README.md"
    assert front_matter(card)["library_name"] == "sentence-transformers"
    assert "mode: `cross`, alpha: 0.5" in body(card)
    info = json.loads((tmp_path / "model" / "hybrid_training.json").read_text(encoding="utf-8"))
    assert "README.md" in info["files"]
