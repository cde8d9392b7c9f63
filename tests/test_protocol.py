"""The paper protocol: presets, budget, summaries, and a tiny end-to-end run (train, evaluate, report, resume)."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from pyterrier_hybrid import protocol
from pyterrier_hybrid.training.sampler import MODES


def test_presets_name_the_papers_configurations():
    assert protocol.PAPER_PRESETS == ("base", "en-en", "x-x", "x-y", "mono", "cross", "hybrid-0.25", "hybrid-0.5",
                                      "hybrid-0.75")
    assert {mode for mode, _ in protocol.PRESETS.values() if mode} <= set(MODES)
    assert protocol.parse_preset("hybrid-0.3") == ("hybrid", 0.3)
    assert protocol.parse_preset("cross") == ("cross", 0.0)
    for bad in ("hybrid-1.5", "hybrid", "x-z"):
        with pytest.raises(ValueError, match="valid presets"):
            protocol.parse_preset(bad)


def test_budget_is_validated_and_described():
    assert protocol.Budget(steps=10, batch_size=8).describe().startswith("10 steps x batch 8")
    with pytest.raises(ValueError, match="batch_size >= 2"):
        protocol.Budget(batch_size=1)


def test_result_table_gives_mean_and_sd_over_seeds():
    runs = pd.DataFrame({"preset": ["base", "mono", "mono", "mono"], "seed": [-1, 0, 1, 2],
                         "mono_mAP": [0.5, 0.6, 0.7, 0.8], "train_s": [0, 60, 60, 60], "eval_s": [1, 1, 1, 1]})
    result = protocol.ProtocolResult(runs, {}, {})
    table = result.table()
    assert table.loc["mono", "n"] == 3 and table.loc["mono", "mono_mAP"] == pytest.approx(0.7)
    assert table.loc["mono", "mono_mAP_sd"] == pytest.approx(0.1)
    assert math.isnan(table.loc["base", "mono_mAP_sd"]) and table.loc["mono", "train_min"] == pytest.approx(1.0)
    md = result.to_markdown()
    assert "| mono | 3 | 0.700 ± 0.100 | 1.0 |" in md and "| base | 1 | 0.500 | 0.0 |" in md


@pytest.mark.integration
@pytest.mark.slow  # trains 4 models, evaluates 10 grids and draws every plot, twice
def test_tiny_protocol_end_to_end_and_resume(lareqa_mirror, tiny_model_dir, tmp_path, one_torch_thread):
    from pyterrier_hybrid.datasets import sample_benchmark
    from pyterrier_hybrid.training import pairs_from_benchmark

    pairs = pairs_from_benchmark("mlqa-r", langs=["en", "de", "es"])
    sample = sample_benchmark("xquad-r", paragraphs=2, max_queries=4, seed=0)
    kwargs = dict(train_pairs=pairs, eval_benchmark="xquad-r", out_dir=tmp_path, sample=sample,
                  model=str(tiny_model_dir), budget=protocol.Budget(steps=2, batch_size=4, max_seq_length=32),
                  seeds=[0, 1], train_description="mlqa-r en/de/es", verbose=False,
                  groups={"en-involved": lambda q, d: "en" in (q, d)})
    result = protocol.run_protocol(["base", "x-x", "hybrid-0.5"], **kwargs)
    assert list(zip(result.runs.preset, result.runs.seed)) == [("base", -1), ("x-x", 0), ("hybrid-0.5", 0),
                                                               ("x-x", 1), ("hybrid-0.5", 1)]
    table = result.table()
    assert list(table.index) == ["base", "x-x", "hybrid-0.5"] and table.loc["x-x", "n"] == 2
    for column in ("mono_mAP", "cross_mAP", "pooled_mAP", "RankDistance", "SameLangPref", "PEER@1000",
                   "en-involved"):
        assert table[column].between(0, 1e6).all(), column
    grid = result.grids["base", -1]
    en = grid.results[(grid.results.measure == "AP") & ((grid.results.qlang == "en") | (grid.results.dlang == "en"))
                      & (grid.results.dlang != "multi")]
    assert result.runs.loc[0, "en-involved"] == pytest.approx(en.value.mean())
    for name in ("summary.md", "summary.csv", "runs.csv", "protocol.json", "plots/summary.png",
                 "plots/x-x-s0_minus_base_AP.png", "grids/hybrid-0.5-s1.csv", "models/x-x-s1/hybrid_training.json"):
        assert (tmp_path / name).is_file(), name
    assert (tmp_path / "plots" / "summary.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "2 steps x batch 4" in (tmp_path / "summary.md").read_text()
    card = (tmp_path / "models" / "x-x-s1" / "README.md").read_text()  # the card carries what the model scored
    assert card.count("model-index:") == 1 and sample.description in card
    # A second run reuses the trained models (same config and data) and reproduces the numbers.
    weights = tmp_path / "models" / "x-x-s0" / "model.safetensors"
    before = weights.stat().st_mtime_ns
    again = protocol.run_protocol(["base", "x-x", "hybrid-0.5"], **kwargs)
    assert weights.stat().st_mtime_ns == before
    pd.testing.assert_frame_equal(again.runs.drop(columns=["eval_s"]), result.runs.drop(columns=["eval_s"]))
    assert (tmp_path / "models" / "x-x-s1" / "README.md").read_text().count("model-index:") == 1  # replaced
    with pytest.raises(ValueError, match="train_pairs is None"):
        protocol.run_protocol(["mono"], **{**kwargs, "train_pairs": None})


def test_a_changed_budget_retrains_into_the_same_folder(tiny_model_dir, tmp_path, one_torch_thread):
    """The timing record lives beside the model folder, so the trainer (which refuses folders holding files
    it did not write) can train a changed budget into the protocol's own folder."""
    pairs = pd.DataFrame({"query": [f"q {i}" for i in range(16)], "text": [f"a {i}" for i in range(16)],
                          "qlang": ["en", "de"] * 8, "dlang": ["en", "de"] * 8,
                          "group_id": [f"g{i}" for i in range(16)]})
    out = tmp_path / "models" / "mono-s0"
    for steps in (1, 2):
        budget = protocol.Budget(steps=steps, batch_size=4, max_seq_length=16)
        model_dir = protocol.train_preset("mono", pairs, output_dir=out, model=str(tiny_model_dir), budget=budget)
        assert model_dir == str(out)
        assert protocol.training_time(out) >= 0
    assert (tmp_path / "models" / "mono-s0.timing.json").is_file() and not (out / "protocol_timing.json").exists()
    assert '"global_steps": 2' in (out / "hybrid_training.json").read_text()


@pytest.mark.integration
def test_named_training_sets_train_each_set_and_reduce_cross_presets_on_one_language(
        lareqa_mirror, tiny_model_dir, tmp_path, one_torch_thread):
    from pyterrier_hybrid.datasets import sample_benchmark

    def pairs(langs: list[tuple[str, str]]) -> pd.DataFrame:
        rows = [(f"q {i} {q}", f"a {i} {d}", q, d, f"g{i}") for i in range(8) for q, d in langs]
        return pd.DataFrame(rows, columns=["query", "text", "qlang", "dlang", "group_id"])

    sets = {"domain": pairs([("en", "en")]), "parallel": pairs([("en", "en"), ("de", "de"), ("en", "de")])}
    result = protocol.run_protocol(
        ["base", "cross", "hybrid-0.5"], train_pairs=sets, train_description={"domain": "one language"},
        eval_benchmark="xquad-r", out_dir=tmp_path, sample=sample_benchmark("xquad-r", paragraphs=1, max_queries=2),
        model=str(tiny_model_dir), budget=protocol.Budget(steps=1, batch_size=2, max_seq_length=16), seeds=[0],
        verbose=False)
    # on the one-language set both cross presets reduce to mono, which trains once
    assert list(result.runs.preset) == ["base", "domain mono", "parallel cross", "parallel hybrid-0.5"]
    assert Path(result.models["domain mono", 0]) == tmp_path / "models" / "domain-mono-s0"
    assert (tmp_path / "grids" / "parallel-hybrid-0.5-s0.csv").is_file()
    assert result.info["train_data"] == "domain: one language; parallel: 24 pairs"
    assert protocol.effective_preset("x-y", sets["domain"]) == "x-y"  # only cross / hybrid batches need pairs
    with pytest.raises(ValueError, match="maps a non-empty name to a DataFrame"):
        protocol.run_protocol(["mono"], train_pairs={"": sets["domain"]}, eval_benchmark="xquad-r",
                              out_dir=tmp_path / "x")
