"""HybridBatchTrainer and training pairs: loss falls, resume == uninterrupted, saved model, data sources, errors."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from safetensors.numpy import load_file
from sentence_transformers import SentenceTransformer
from transformers import TrainerCallback

from pyterrier_hybrid.training import (
    HybridBatchTrainer,
    pairs_from_benchmark,
    pairs_from_lareqa_dir,
    pairs_from_topics_qrels,
    validate_pairs,
)
from pyterrier_hybrid.training.testing import synthetic_pairs

ROOT = Path(__file__).resolve().parents[1]


# One torch thread: on a shared 2-core machine, thread contention makes tiny models far slower.
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny_model(tiny_model_dir) -> Path:
    return tiny_model_dir


@pytest.fixture(scope="module")
def loaded(tiny_model):
    """The tiny model loaded once; tests train deep copies."""
    return SentenceTransformer(str(tiny_model), device="cpu")


@pytest.fixture(scope="module")
def pairs() -> pd.DataFrame:
    return synthetic_pairs(120, ("en", "de", "es"), seed=0)


def trainer(model, out, **kwargs) -> HybridBatchTrainer:
    kwargs = {"batch_size": 8, "lr": 1e-3, "logging_steps": 1, "verbose": False, "freeze_embeddings": True, **kwargs}
    model = copy.deepcopy(model) if isinstance(model, SentenceTransformer) else str(model)
    return HybridBatchTrainer(model, output_dir=out, **kwargs)


def weights(path: Path) -> dict[str, np.ndarray]:
    return load_file(str(path / "model.safetensors"))


def test_loss_falls_and_model_is_saved(tiny_model, pairs, tmp_path):
    t = trainer(tiny_model, tmp_path / "run", max_steps=30, seed=1)
    encoder = t.fit_pairs(pairs, data_description="synthetic")
    losses = [log["loss"] for log in t.trainer_.state.log_history if "loss" in log]
    assert len(losses) == 30
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5])
    # HF + sentence-transformers files, our settings and a model card.
    out = tmp_path / "run"
    for name in ("config.json", "model.safetensors", "modules.json", "tokenizer.json", "README.md"):
        assert (out / name).exists(), name
    info = json.loads((out / "hybrid_training.json").read_text())
    assert (info["mode"], info["alpha"], info["seed"], info["global_steps"]) == ("hybrid", 0.5, 1, 30)
    assert info["data"] == "synthetic" and info["data_stats"]["pairs"] == len(pairs)
    card = (out / "README.md").read_text()
    assert "mode: `hybrid`, alpha: 0.5" in card and "seed: 1" in card
    # e5 prompts are applied to the training inputs.
    assert t.trainer_.args.prompts == {"anchor": "query: ", "positive": "passage: ", "negative": "passage: "}
    # Frozen embeddings did not move; the transformer did.
    before, after = weights(tiny_model), weights(out)
    emb = next(k for k in before if "word_embeddings" in k)
    assert np.array_equal(before[emb], after[emb])
    assert any(not np.array_equal(before[k], after[k]) for k in before if "encoder.layer" in k)
    # The returned bi-encoder is the trained model, ready for pipelines.
    from pyterrier_hybrid.encoding import BiEncoder

    assert isinstance(encoder, BiEncoder)
    res = encoder(pd.DataFrame({"qid": ["1"], "query": ["which river"]}))
    assert "query_vec" in res.columns and len(res["query_vec"].iloc[0]) == 32


def test_freeze_layers_trains_only_the_layers_above(tiny_model, pairs, tmp_path):
    t = trainer(tiny_model, tmp_path / "run", max_steps=3, freeze_embeddings=False, freeze_layers=1)
    t.fit_pairs(pairs)
    before, after = weights(tiny_model), weights(tmp_path / "run")
    moved = {k for k in before if not np.array_equal(before[k], after[k])}
    assert any("encoder.layer.1." in k for k in moved)
    assert not [k for k in moved if "embeddings" in k or "encoder.layer.0." in k]
    info = json.loads((tmp_path / "run" / "hybrid_training.json").read_text())
    assert info["freeze_layers"] == 1
    assert "frozen embedding block and bottom 1 layers" in (tmp_path / "run" / "README.md").read_text()


def test_freeze_layers_refuses_what_it_cannot_freeze(tiny_model, pairs, tmp_path):
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="freeze_layers must be an int >= 0"):
            trainer(tiny_model, tmp_path / "run", freeze_layers=bad)
    with pytest.raises(ValueError, match="freeze_layers=2 would fix all 2 layers of the encoder: use at most 1"):
        trainer(tiny_model, tmp_path / "run", max_steps=1, freeze_layers=2).fit_pairs(pairs)
    assert not (tmp_path / "run" / "model.safetensors").exists()


class _Interrupt(TrainerCallback):
    """Simulate a crash right after the checkpoint of step ``at`` was written."""

    def __init__(self, at: int):
        self.at = at

    def on_step_begin(self, args, state, control, **kwargs):
        if state.global_step == self.at:
            raise KeyboardInterrupt


def test_resume_gives_same_weights_as_uninterrupted(loaded, tmp_path):
    # 2 languages x 20 groups, batch 8: a handful of batches per epoch, so the run crosses epochs.
    small = synthetic_pairs(20, ("en", "de"), seed=3)
    common = {"max_steps": 10, "save_steps": 4, "seed": 5}
    trainer(loaded, tmp_path / "full", **common).fit_pairs(small)
    assert len(trainer(loaded, tmp_path / "x", **common)._sampler(validate_pairs(small), 8, world_size=1)) < 10

    with pytest.raises(KeyboardInterrupt):
        trainer(loaded, tmp_path / "resumed", callbacks=[_Interrupt(6)], **common).fit_pairs(small)
    assert (tmp_path / "resumed" / "checkpoint-4").is_dir()
    assert not (tmp_path / "resumed" / "model.safetensors").exists()
    resumed = trainer(loaded, tmp_path / "resumed", **common)
    resumed.fit_pairs(small, resume_from_checkpoint=True)
    assert resumed.trainer_.state.global_step == 10
    full, again = weights(tmp_path / "full"), weights(tmp_path / "resumed")
    assert full.keys() == again.keys()
    for key in full:
        np.testing.assert_allclose(full[key], again[key], rtol=0, atol=1e-6, err_msg=key)
    # The last two steps changed the weights, so a resume that skipped or repeated a batch would show.
    at8 = weights(tmp_path / "full" / "checkpoint-8")
    assert any(not np.allclose(full[k], at8[k], atol=1e-6) for k in full)


@pytest.mark.parametrize(
    "options", [{"symmetric": True, "temperature": 0.1}, {"gradient_cache": True, "mini_batch_size": 3, "mode": "x-y"}]
)
def test_loss_options_train(loaded, pairs, tmp_path, options):
    t = trainer(loaded, tmp_path / "run", max_steps=2, **options)
    t.fit_pairs(pairs)
    loss = t.trainer_.loss
    if options.get("gradient_cache"):
        assert type(loss).__name__ == "CachedMultipleNegativesRankingLoss" and loss.mini_batch_size == 3
    if options.get("symmetric"):
        assert tuple(loss.directions) == ("query_to_doc", "doc_to_query")
        assert loss.scale == pytest.approx(10.0)
    assert np.isfinite(t.trainer_.state.log_history[-1]["train_loss"])


def test_fit_on_topics_and_qrels_with_hard_negatives(loaded, pairs, tmp_path):
    sub = pairs.drop_duplicates(["qlang", "group_id", "dlang"])
    topics = sub[["qlang", "group_id", "query"]].drop_duplicates(["qlang", "group_id"])
    topics = pd.DataFrame({"qid": topics["qlang"] + "_" + topics["group_id"], "query": topics["query"]})
    docnos = sub["dlang"] + "_" + sub["group_id"]
    qrels = pd.DataFrame({"qid": sub["qlang"] + "_" + sub["group_id"], "docno": docnos, "label": 1})
    docs = pd.DataFrame({"docno": docnos, "text": sub["text"]}).drop_duplicates("docno")
    rebuilt = pairs_from_topics_qrels(topics, qrels, docs=docs)
    key = ["query", "text", "qlang", "dlang", "group_id"]
    assert rebuilt.sort_values(key).to_numpy().tolist() == validate_pairs(sub).sort_values(key).to_numpy().tolist()
    t = trainer(loaded, tmp_path / "run", max_steps=2, mode="cross")
    t.fit(topics, qrels, docs=docs)
    assert json.loads((tmp_path / "run" / "hybrid_training.json").read_text())["mode"] == "cross"
    assert "query_vec" in t.transform(topics.head(2)).columns
    # A 'negative' column becomes the third (hard negative) input of the loss.
    with_neg = pairs.assign(negative=pairs["text"].sample(frac=1.0, random_state=0).to_numpy())
    t = trainer(loaded, tmp_path / "neg", max_steps=1)
    t.fit_pairs(with_neg)
    assert t.trainer_.train_dataset.column_names == ["anchor", "positive", "negative"]


def test_clear_errors(tiny_model, pairs, tmp_path):
    with pytest.raises(ValueError, match=r"alpha .* \[0, 1\]"):
        HybridBatchTrainer(str(tiny_model), alpha=1.5)
    with pytest.raises(ValueError, match=r"alpha .* \[0, 1\]"):
        HybridBatchTrainer(str(tiny_model), alpha=-0.1)
    with pytest.raises(ValueError, match="unknown mode 'multi'; valid modes are: hybrid"):
        HybridBatchTrainer(str(tiny_model), mode="multi")
    t = trainer(tiny_model, tmp_path / "run", max_steps=1)
    with pytest.raises(ValueError, match="empty"):
        t.fit_pairs(pairs.iloc[:0])
    with pytest.raises(ValueError, match=r"lack column\(s\) \['group_id'\]"):
        t.fit_pairs(pairs.drop(columns="group_id"))
    with pytest.raises(ValueError, match="unknown language in training pairs 'xx'"):
        t.fit_pairs(pairs.assign(qlang="xx"))
    with pytest.raises(ValueError, match="empty texts"):
        t.fit_pairs(pairs.assign(text=""))
    with pytest.raises(ValueError, match="no training pairs"):
        pairs_from_topics_qrels(
            pd.DataFrame({"qid": ["en_1"], "query": ["q"]}),
            pd.DataFrame({"qid": ["en_2"], "docno": ["en_d"], "label": [1]}),
            docs={"en_d": "d"},
        )
    with pytest.raises(ValueError, match="crosslingual pairs"):
        trainer(tiny_model, tmp_path / "run", mode="cross").fit_pairs(pairs[pairs.qlang == pairs.dlang])
    assert not (tmp_path / "run" / "model.safetensors").exists()


def _write_lareqa(path: Path, lang: str, items: list[tuple[str, str, str]]) -> None:
    """A LAReQA-style file: one paragraph per item (question id, question, answer sentence)."""
    paragraphs = []
    for gid, question, answer in items:
        first = f"Intro {gid}."
        context = f"{first} {answer}"
        paragraphs.append(
            {
                "context": context,
                "sentences": [first, answer],
                "sentence_breaks": [[0, len(first)], [len(first) + 1, len(context)]],
                "qas": [
                    {"id": gid, "question": question, "answers": [{"text": answer, "answer_start": len(first) + 1}]}
                ],
            }
        )
    data = {"data": [{"title": "t", "paragraphs": paragraphs}]}
    (path / f"{lang}.json").write_text(json.dumps(data), encoding="utf-8")


def test_pairs_from_lareqa_dir(tmp_path):
    _write_lareqa(tmp_path, "en", [("a", "Who?", "Anna did."), ("b", "What?", "A boat.")])
    _write_lareqa(tmp_path, "de", [("a", "Wer?", "Anna war es.")])
    pairs = pairs_from_lareqa_dir(tmp_path)
    got = set(map(tuple, pairs.to_numpy().tolist()))
    assert got == {
        ("Who?", "Anna did.", "en", "en", "a"),
        ("What?", "A boat.", "en", "en", "b"),
        ("Who?", "Anna war es.", "en", "de", "a"),
        ("Wer?", "Anna did.", "de", "en", "a"),
        ("Wer?", "Anna war es.", "de", "de", "a"),
    }
    assert len(pairs_from_lareqa_dir(tmp_path, configs=[("de", "en")])) == 1
    with pytest.raises(ValueError, match=r"no pairs for language pair\(s\) \['de->es'\]"):
        pairs_from_lareqa_dir(tmp_path, configs=[("de", "es")])
    with pytest.raises(ValueError, match="no file for language"):
        pairs_from_lareqa_dir(tmp_path, langs=["zh"])
    (tmp_path / "xx.json").write_text("{}")
    with pytest.raises(ValueError, match="unknown language"):
        pairs_from_lareqa_dir(tmp_path)


@pytest.mark.integration
def test_benchmark_pairs_match_the_registered_qrels(lareqa_mirror):
    import pyterrier as pt

    import pyterrier_hybrid  # noqa: F401  (registers the entries)

    pairs = pairs_from_benchmark("mlqa-r")
    ds = pt.get_dataset("irds:mlqa-r/multi")
    qrels = ds.get_qrels()
    assert len(pairs) == len(qrels)  # every gold sentence of every language of a question is one pair
    from_entry = pairs_from_topics_qrels(ds.get_topics("text"), qrels, dataset=ds)
    key = ["qlang", "dlang", "group_id", "query", "text"]
    assert from_entry.sort_values(key)[key].to_numpy().tolist() == pairs.sort_values(key)[key].to_numpy().tolist()
    from_dir = pairs_from_lareqa_dir(lareqa_mirror / "mlqa-r")
    assert len(from_dir) == len(pairs)
    cross = pairs_from_benchmark("mlqa-r", configs=[("de", "zh")])
    assert set(zip(cross.qlang, cross.dlang)) == {("de", "zh")}
    with pytest.raises(ValueError, match="unknown mlqa-r language 'th'"):
        pairs_from_benchmark("mlqa-r", langs=["en", "th"])


@pytest.mark.slow
def test_ddp_two_cpu_processes(tmp_path):
    env = {**os.environ, "DDP_DEMO_OUT": str(tmp_path)}
    if shutil.which("torchrun") is None and not (Path(sys.executable).parent / "torchrun").exists():
        pytest.skip("torchrun not found")
    # The timeout only guards against a hung rendezvous; it is far above any run time, so load never fails it.
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts" / "ddp_demo.sh")], env=env, capture_output=True, text=True, timeout=3600
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((tmp_path / "ddp_report.json").read_text())
    assert report["world_size"] == 2 and report["steps"] > 0
    assert report["same_config_every_step"] and report["no_group_across_ranks"]
    assert (tmp_path / "model" / "model.safetensors").exists()
