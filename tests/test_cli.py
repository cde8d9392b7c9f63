"""The ``pyterrier-hybrid`` command line: help, exit codes, one-line errors, and small real runs."""

from __future__ import annotations

import inspect
import io
import json
from contextlib import redirect_stdout
from pathlib import Path

import pandas as pd
import pytest

from pyterrier_hybrid.cli import main

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# One torch thread: on a shared 2-core machine, thread contention makes tiny models far slower.
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _one_line_error(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected a one-line error, got:\n{err}"
    assert lines[0].startswith("pyterrier-hybrid: error: "), lines[0]
    return lines[0]


# --------------------------------------------------------------------------- help and argument errors


@pytest.mark.parametrize(
    "command",
    [[], ["data"], ["data", "import"], ["data", "list"], ["data", "info"], ["train"], ["evaluate"], ["noise"],
     ["noise", "preview"], ["noise", "list"]],
    ids=lambda c: " ".join(c) or "top",
)
def test_help_exits_0(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([*command, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: pyterrier-hybrid")


def test_top_level_help_lists_every_subcommand(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for name in ("data", "train", "evaluate", "noise"):
        assert name in out


def test_train_exposes_every_trainer_option(capsys):
    """Each HybridBatchTrainer keyword has a flag (the few that are not plain values map to named ones)."""
    from pyterrier_hybrid.training import HybridBatchTrainer

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    mapped = {"encoder": "model", "training_args": "--training-arg", "verbose": "--quiet", "valid_langs": None,
              "callbacks": None}  # Python objects / the data's own language check: library-only
    params = [p for p in inspect.signature(HybridBatchTrainer).parameters if p != "self"]
    assert len(params) > 20
    for param in params:
        flag = mapped.get(param, "--" + param.replace("_", "-"))
        if flag is not None:
            assert flag in out, f"trainer option {param} has no CLI flag {flag}"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["bogus"], "invalid choice"),
        (["train"], "--train"),
        (["train", "--train", "mlqa-r", "--alpha", "1.5"], "must be in [0, 1]"),
        (["train", "--train", "mlqa-r", "--mode", "multi"], "invalid choice"),
        (["train", "--train", "mlqa-r", "--batch-size", "0"], "must be >= 1"),
        (["train", "--train", "mlqa-r", "--scale", "10", "--temperature", "0.05"], "not allowed with"),
        (["evaluate", "--langs", "de,xx"], "valid codes are: ar, de, el, en"),
        (["evaluate", "--benchmark", "msmarco"], "invalid choice"),
        (["evaluate", "./no/such/model"], "does not exist"),
        (["evaluate", "--lir", "-1"], "must be >= 0"),
        (["noise", "preview", "--lang", "xx", "--model", "typo"], "valid codes are"),
        (["noise", "preview", "--lang", "de", "--model", "typo", "--level", "150"], "[0, 100]"),
    ],
)
def test_bad_arguments_exit_2(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("pyterrier-hybrid") and "error:" in last
    assert message in last


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--train", "{tmp}/missing"], "does not exist"),
        (["train", "--train", "mlqa-r", "--resume"], "needs the --output-dir"),
        (["train", "--train", "mlqa-r", "--resume", "{tmp}/ckpt"], "checkpoint directory"),
        (["evaluate", "--benchmark", "mlqa-r", "--langs", "de,es"], "add --no-pooled"),
        (["evaluate", "--benchmark", "mlqa-r", "--langs", "de,el", "--no-pooled"], "unknown mlqa-r language 'el'"),
        (["noise", "preview", "--lang", "el", "--model", "typo", "--benchmark", "mlqa-r"], "valid codes are"),
        (["noise", "preview", "--lang", "de", "--model", "sneeze"], "valid models are: typo"),
        (["data", "info", "no-such/entry"], "see `pyterrier-hybrid data list`"),
        (["evaluate", "--measure", "XYZ"], "not among the evaluated measures: AP, nDCG@10"),
        (["evaluate", "--measures", "AP,Foo@@"], "cannot parse AP,Foo@@"),
    ],
)
def test_runtime_failures_exit_1_with_one_line(argv, message, tmp_path, capsys):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(argv) == 1
    line = _one_line_error(capsys.readouterr().err)
    assert message in line


# --------------------------------------------------------------------------- listing


def test_data_list(capsys):
    from pyterrier_hybrid.datasets import DATASET_IDS

    assert main(["data", "list"]) == 0
    assert capsys.readouterr().out.split() == list(DATASET_IDS)
    assert main(["data", "list", "--benchmark", "mlqa-r"]) == 0
    mlqa = capsys.readouterr().out.split()
    assert mlqa and all(name.startswith("mlqa-r") for name in mlqa)
    assert "mlqa-r/de-es" in mlqa and "xquad-r/de-es" not in mlqa


def test_noise_list(capsys):
    from pyterrier_hybrid.noise import NOISE_LEVELS, NOISE_MODELS

    assert main(["noise", "list"]) == 0
    models, levels = capsys.readouterr().out.splitlines()
    assert models.split()[1:] == list(NOISE_MODELS)
    assert [int(x) for x in levels.split()[1:1 + len(NOISE_LEVELS)]] == list(NOISE_LEVELS)


@pytest.mark.integration
def test_noise_preview_prints_what_the_library_gives(capsys):
    from pyterrier_hybrid.datasets.noisy import preview

    assert main(["noise", "preview", "--lang", "de", "--model", "typo", "--level", "30", "-n", "3",
                 "--seed", "1"]) == 0
    out = capsys.readouterr().out
    expected = io.StringIO()
    examples = preview("de", "typo", 30, n=3, seed=1, file=expected)
    assert out == expected.getvalue()
    assert out.count("before: ") == 3 and out.count("after: ") == 3
    assert any(clean != noisy for _, clean, noisy in examples)


# --------------------------------------------------------------------------- real runs on a tiny random model


@pytest.mark.integration
def test_evaluate_writes_report(tiny_model_dir, tmp_path, capsys):
    out_dir = tmp_path / "report"
    argv = ["evaluate", str(tiny_model_dir), "--benchmark", "mlqa-r", "--langs", "de,es", "--no-pooled",
            "--lir", "1", "--max-length", "64", "--threads", "1", "--out", str(out_dir), "-q"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    name = Path(tiny_model_dir).name
    stem = f"{name}_mlqa-r"
    csv = pd.read_csv(out_dir / f"{stem}.csv")
    assert set(zip(csv.qlang, csv.dlang)) == {("de", "de"), ("de", "es"), ("es", "de"), ("es", "es")}
    ap = csv[csv.measure == "AP"]
    assert ap.value.between(0, 1).all()
    for png in (out_dir / f"{stem}_AP.png", out_dir / f"{name}+LIR1_mlqa-r_AP.png",
                out_dir / f"{name}+LIR1_mlqa-r_minus_{name}_AP.png"):
        assert png.read_bytes()[:8] == PNG_MAGIC
    assert "| de" in (out_dir / f"{stem}.md").read_text()
    ttest = pd.read_csv(out_dir / f"{name}+LIR1_mlqa-r_vs_{name}_AP_ttest.csv")
    assert len(ttest) == 4 and ttest.p.between(0, 1).all()
    # the printed summary is the mean of the written per-setting values
    row = next(line for line in printed.splitlines()  # the model's row, not a header naming a "model" column
               if line.startswith(f"| {name} ") and line.split("|")[2].strip().replace(".", "", 1).isdigit())
    mono = ap[ap.qlang == ap.dlang].value.mean()
    assert float(row.split("|")[2]) == pytest.approx(mono, abs=5e-4)
    assert f"{name}+LIR1" in printed
    assert (out_dir / "summary_mlqa-r.md").read_text().strip() == printed.strip()


def _write_lareqa(path: Path, lang: str, groups: int) -> None:
    """A LAReQA-style ``<lang>.json`` with one question and a two-sentence paragraph per group."""
    paragraphs = []
    for g in range(groups):
        first, answer = f"Intro {lang} {g}.", f"Answer {lang} number {g} is {g * 7}."
        context = f"{first} {answer}"
        paragraphs.append({
            "context": context, "sentences": [first, answer],
            "sentence_breaks": [[0, len(first)], [len(first) + 1, len(context)]],
            "qas": [{"id": f"g{g}", "question": f"Question {lang} {g}?",
                     "answers": [{"text": answer, "answer_start": len(first) + 1}]}],
        })
    (path / f"{lang}.json").write_text(json.dumps({"data": [{"title": "t", "paragraphs": paragraphs}]}))


def test_train_two_steps_saves_a_model(tiny_model_dir, tmp_path, capsys):
    from safetensors.numpy import load_file

    data = tmp_path / "lareqa"
    data.mkdir()
    for lang in ("en", "de"):
        _write_lareqa(data, lang, 12)
    out = tmp_path / "run"
    argv = ["train", str(tiny_model_dir), "--train", str(data), "--mode", "hybrid", "--alpha", "0.25",
            "--batch-size", "4", "--max-steps", "2", "--lr", "1e-3", "--seed", "3", "--max-seq-length", "32",
            "--freeze-embeddings", "--symmetric", "--output-dir", str(out), "--threads", "1", "-q"]
    with redirect_stdout(io.StringIO()) as stdout:
        assert main(argv) == 0
    assert f"model saved to {out}" in stdout.getvalue()
    info = json.loads((out / "hybrid_training.json").read_text())
    assert (info["mode"], info["alpha"], info["batch_size"], info["max_steps"], info["seed"]) == \
        ("hybrid", 0.25, 4, 2, 3)
    assert info["global_steps"] == 2 and info["freeze_embeddings"] and info["symmetric"]
    assert info["data_stats"]["pairs"] == 4 * 12  # en-en, en-de, de-en, de-de per group
    before, after = load_file(Path(tiny_model_dir) / "model.safetensors"), load_file(out / "model.safetensors")
    emb = next(k for k in before if "word_embeddings" in k)
    assert (before[emb] == after[emb]).all()  # frozen
    assert any(not (before[k] == after[k]).all() for k in before if k != emb)  # trained
    capsys.readouterr()
    assert main(["train", str(tiny_model_dir), "--train", str(data), "--langs", "zh"]) == 1
    assert "no file for language(s) ['zh']" in _one_line_error(capsys.readouterr().err)
