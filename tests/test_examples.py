"""The examples' smallest configurations run end to end (``--smoke`` with a tiny random model), their
``--help`` exits 0 and bad arguments exit 2 with a one-line reason."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pandas as pd
import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
PROTOCOL_EXAMPLES = ["paper_protocol", "unseen_languages", "low_resource_domain_shift"]
ALL_EXAMPLES = [*PROTOCOL_EXAMPLES, "domain_finetuning", "noise_robustness", "main_job", "budget_curve"]
DATA = EXAMPLES / "data"


def load(name: str):
    """Import ``examples/<name>.py`` as a module (the examples are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", ALL_EXAMPLES)
def test_help_exits_0(name, capsys):
    with pytest.raises(SystemExit) as exit_info:
        load(name).main(["--help"])
    assert exit_info.value.code == 0
    assert "usage:" in capsys.readouterr().out


@pytest.mark.parametrize(("name", "argv", "message"), [
    ("paper_protocol", ["--presets", "base,nope"], "unknown preset 'nope'"),
    ("paper_protocol", ["--direction", "xquad-xquad"], "invalid choice"),
    ("paper_protocol", ["--seeds", "0,x"], "seeds must be comma-separated integers"),
    ("unseen_languages", ["--steps", "0"], "invalid budget"),
    ("low_resource_domain_shift", ["--paragraphs", "-1"], "must be >= 0"),
    ("noise_robustness", ["--settings", "mlqa-r/en"], "clean xquad-r entries"),
    ("noise_robustness", ["--dense-presets", "base,base"], "presets repeat"),
    ("domain_finetuning", ["--corpus", str(EXAMPLES)], "neither a BEIR folder"),
    ("domain_finetuning", ["--corpus", str(DATA / "legal_qa_beir"), "--test-split", "dev"], "available splits"),
    ("domain_finetuning", ["--train-sets", "domain,nope"], "training sets must be"),
    ("domain_finetuning", ["--test-fraction", "1.5"], "must be a number in (0, 1)"),
])
def test_bad_arguments_exit_2(name, argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        load(name).main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.strip().splitlines()[-1].startswith("usage:") or "error:" in err.strip().splitlines()[-1]


# example -> (its group columns, the languages it marks)
GROUPS = {
    "paper_protocol": ([], set()),
    "unseen_languages": (["seen_mAP", "with_unseen_mAP", "unseen_only_mAP"], {"el", "ru", "th", "tr"}),
    "low_resource_domain_shift": (["low_resource_mAP", "other_mAP"], {"hi", "vi", "ar"}),
}


@pytest.mark.integration
@pytest.mark.slow  # an example end to end: trains, evaluates and plots (tens of seconds each on 2 cores)
@pytest.mark.parametrize("name", PROTOCOL_EXAMPLES)
def test_protocol_example_smoke(name, tiny_model_dir, tmp_path, capsys):
    result = load(name).main(["--smoke", "--model", str(tiny_model_dir), "--out", str(tmp_path)])
    results = result if isinstance(result, dict) else {"": result}
    for direction, res in results.items():
        out = tmp_path / direction
        assert (out / "summary.md").read_text(encoding="utf-8").startswith("Budget: 2 steps x batch 4")
        runs = pd.read_csv(out / "runs.csv")
        assert runs["preset"].iloc[0] == "base" and len(runs) == 2
        assert runs[["mono_mAP", "cross_mAP", "pooled_mAP"]].notna().all().all()
        assert (out / "plots" / "summary.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert list(res.runs["preset"]) == list(runs["preset"])
    assert "| preset | seeds | mono_mAP |" in capsys.readouterr().out

    columns, marked = GROUPS[name]
    if columns:  # the group columns and the per-language report, marked languages in a group of their own
        assert result.runs[columns].notna().all().all()
        group = pd.read_csv(tmp_path / "per_language.csv").groupby("lang")["group"].first()
        marked &= set(group.index)  # MLQA-R is partly parallel: a 2-paragraph slice may miss a language
        assert marked and len({group[lang] for lang in marked}) == 1
        assert not {group[lang] for lang in marked} & {group[lang] for lang in set(group.index) - marked}
        assert (tmp_path / "plots" / "per_language.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert "**mean " in (tmp_path / "per_language.md").read_text(encoding="utf-8")


@pytest.mark.integration
@pytest.mark.slow
def test_noise_robustness_smoke(tiny_model_dir, tmp_path, capsys):
    table = load("noise_robustness").main([
        "--settings", "xquad-r/en-de", "--levels", "30", "--max-queries", "8", "--encoder", str(tiny_model_dir),
        "--dense-presets", "base,hybrid-0.5", "--steps", "2", "--batch-size", "4", "--max-seq-length", "32",
        "--out", str(tmp_path), "--cache-dir", str(tmp_path / "vectors")])
    assert set(table["system"]) == {"BM25", "base", "hybrid-0.5"}
    assert sorted(table["level"].unique()) == [0, 30]
    assert (table["queries"] == 8).all() and table["map"].between(0, 1).all()
    assert (tmp_path / "models" / "hybrid-0.5-s0" / "hybrid_training.json").exists()
    assert (tmp_path / "robustness_mixed.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "trained on clean MLQA-R, 2 steps x batch 4" in (tmp_path / "robustness_mixed.md").read_text()


@pytest.mark.integration
@pytest.mark.slow
def test_domain_finetuning_smoke_on_the_english_beir_folder(tiny_model_dir, tmp_path, capsys):
    result = load("domain_finetuning").main(["--smoke", "--model", str(tiny_model_dir), "--out", str(tmp_path),
                           "--corpus", str(DATA / "legal_qa_beir"), "--train-sets", "domain,generic"])
    table = result["in_domain"]
    assert table["name"].tolist() == ["BM25", "base", "domain mono", "generic hybrid-0.5", "RRF(BM25, domain mono)"]
    assert table[["AP", "nDCG@10", "R@10"]].notna().all().all()
    assert list(result["zero_shot"].runs["preset"]) == ["base", "domain mono", "generic hybrid-0.5"]
    assert (tmp_path / "zero_shot" / "summary.md").read_text(encoding="utf-8").startswith("Budget: 2 steps x batch 4")
    assert (tmp_path / "plots" / "in_domain.png").read_bytes()[:4] == b"\x89PNG"
    out = capsys.readouterr().out
    assert "domain: one language only, so hybrid-0.5 trains as mono" in out and "| preset | seeds |" in out
