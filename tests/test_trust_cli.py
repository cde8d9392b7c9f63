"""Bad inputs and faults for the command line, the noise models and the dataset readers: one clear line each.

CLI cases run ``pyterrier_hybrid.cli.main`` in-process (two end to end, in a subprocess) and check the exit
status, that stderr ends in one ``pyterrier-hybrid...: error: <reason>`` line (argparse's usage lines may come
before it for status 2) and that no traceback is printed. Cases that must fail before the slow work give a
model folder that holds no model: had the check come after loading it, the error would be about the model.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from trust import Case, ids, run_case

from pyterrier_hybrid._checks import TextError
from pyterrier_hybrid.cli import main
from pyterrier_hybrid.datasets import LareqaFileError, lareqa, sample_benchmark, source
from pyterrier_hybrid.datasets.beir import BeirFolder, write_beir_folder
from pyterrier_hybrid.datasets.lareqa import read_lareqa_json
from pyterrier_hybrid.noise import NoiseTransformer, perturb

ROOT = Path(__file__).resolve().parents[1]
MIRROR = ROOT.parent / "shared" / "data" / "lareqa"

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ------------------------------------------------------------------------------------------------ CLI helpers
@dataclass
class Run:
    """Exit status and output of one command."""

    code: int
    out: str
    err: str


def cli(*argv: object) -> Run:
    """Run ``pyterrier-hybrid ARGV`` in this process, capturing its output and exit status."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in argv])
        except SystemExit as e:  # argparse: --help (0) and usage errors (2)
            code = e.code
    return Run(code, out.getvalue(), err.getvalue())


def fails(code: int, match: str, also: Callable[[Run, SimpleNamespace], None] | None = None):
    """Check: exit status ``code``, a last stderr line ``pyterrier-hybrid...: error: ...`` matching ``match``."""

    def check(run: Run, ctx: SimpleNamespace) -> None:
        assert "Traceback" not in run.err, run.err
        lines = [line for line in run.err.splitlines() if line.strip()]
        assert lines, f"nothing on stderr (exit {run.code})"
        last = lines[-1]
        assert run.code == code, f"exit {run.code}, expected {code}: {last}"
        if code == 2:  # argparse: usage lines, then "pyterrier-hybrid <sub>: error: ..."
            assert re.match(r"pyterrier-hybrid( [a-z]+)*: error: ", last), last
            assert all(line.startswith(("usage:", " ")) for line in lines[:-1]), run.err
        else:
            assert len(lines) == 1, f"expected one line, got:\n{run.err}"
            assert last.startswith("pyterrier-hybrid: error: "), last
        assert re.search(match, last, re.IGNORECASE), f"{last!r} !~ {match!r}"
        if also is not None:
            also(run, ctx)

    return check


def expect(predicate: Callable[..., bool], what: str) -> Callable[..., None]:
    """A check (or ``also``) that asserts ``predicate(result, ctx)``."""

    def check(result, ctx) -> None:
        assert predicate(result, ctx), what

    return check


def raising(error: BaseException) -> Callable[..., None]:
    def fail(*args, **kwargs):
        raise error

    return fail


@contextlib.contextmanager
def patched(target: object, name: str, value: object) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(target, name, value)
        yield


def preview_failing_with(error: BaseException, *extra: str) -> Run:
    """``noise preview`` whose library call fails with ``error`` (an unexpected failure inside a command)."""
    import pyterrier_hybrid.datasets.noisy

    with patched(pyterrier_hybrid.datasets.noisy, "preview", raising(error)):
        return cli(*extra, "noise", "preview", "--lang", "de", "--model", "typo")


def debug_reraises(*argv: str) -> Run:
    import pyterrier_hybrid.datasets.noisy

    with patched(pyterrier_hybrid.datasets.noisy, "preview", raising(RuntimeError("boom"))):
        with pytest.raises(RuntimeError, match="boom"):
            main(list(argv))
    return Run(0, "", "")


def needs_mirror() -> None:
    if not MIRROR.is_dir():
        pytest.skip(f"LAReQA mirror not found at {MIRROR}")


@contextlib.contextmanager
def lareqa_home(ctx: SimpleNamespace, *, mirror: str | None = None) -> Iterator[Path]:
    """An empty ir_datasets home (no mirror unless given); the per-process LAReQA caches are reset around it."""
    home = ctx.fresh()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("IR_DATASETS_HOME", str(home))
        if mirror is None:
            mp.delenv(source.MIRROR_ENV, raising=False)
        else:
            mp.setenv(source.MIRROR_ENV, mirror)
        mp.setenv(source.OFFLINE_ENV, "1")
        source._verified.cache_clear()
        lareqa.load_language.cache_clear()
        try:
            yield home / "lareqa"
        finally:
            source._verified.cache_clear()
            lareqa.load_language.cache_clear()


def truncated(src: Path, dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(src.read_bytes()[:5000])
    return dest


def import_truncated_mirror(ctx: SimpleNamespace) -> Run:
    """``data import`` of a mirror copy whose xquad-r/de.json is truncated (the other files link to the real ones)."""
    needs_mirror()
    mirror = ctx.fresh()
    (mirror / "xquad-r").mkdir(parents=True)
    for f in (MIRROR / "xquad-r").glob("*.json"):
        (mirror / "xquad-r" / f.name).symlink_to(f)
    (mirror / "xquad-r" / "de.json").unlink()
    ctx.bad_mirror_file = truncated(MIRROR / "xquad-r" / "de.json", mirror / "xquad-r" / "de.json")
    with lareqa_home(ctx):
        return cli("data", "import", mirror, "--benchmark", "xquad-r")


def info_on_truncated_cache(ctx: SimpleNamespace) -> Run:
    needs_mirror()
    with lareqa_home(ctx) as cache:
        ctx.bad_cache_file = truncated(MIRROR / "xquad-r" / "de.json", cache / "xquad-r" / "de.json")
        return cli("data", "info", "xquad-r/de")


def json_changed_after_md5_check(ctx: SimpleNamespace):
    """The cached file passed its md5 check earlier in the process and was truncated since."""
    needs_mirror()
    with lareqa_home(ctx) as cache:
        dest = cache / "mlqa-r" / "de.json"
        dest.parent.mkdir(parents=True)
        shutil.copyfile(MIRROR / "mlqa-r" / "de.json", dest)
        source.lareqa_file("mlqa-r", "de")  # verified (and remembered as verified)
        truncated(MIRROR / "mlqa-r" / "de.json", dest)
        return lareqa.load_language("mlqa-r", "de")


def mirror_env_missing(ctx: SimpleNamespace):
    with lareqa_home(ctx, mirror=str(ctx.root / "no-such-mirror")):
        return source.lareqa_file("xquad-r", "en")


def evaluate_then_report_fails(ctx: SimpleNamespace) -> Run:
    """A real (tiny) evaluation whose report writing fails: the table must already be printed."""
    import pyterrier_hybrid.plots

    out = ctx.fresh()
    with patched(pyterrier_hybrid.plots, "save_report", raising(OSError(28, "No space left on device"))):
        return cli("evaluate", ctx.tiny_model(), "--benchmark", "mlqa-r", "--langs", "de", "--no-pooled",
                   "--max-length", "32", "--threads", "1", "--out", out, "-q")


def measures_ap0(ctx: SimpleNamespace) -> Run:
    ctx.target = ctx.fresh()
    return cli("evaluate", ctx.no_model, "--measures", "AP@0", "--measure", "AP@0", "--out", ctx.target)


def without_benchmark_files(ctx: SimpleNamespace, *argv: object) -> Run:
    """Run a command with an empty LAReQA cache, no mirror and downloads forbidden."""
    with lareqa_home(ctx):
        return cli(*argv)


def table_printed(run: Run, ctx) -> None:
    assert run.out.startswith("| model"), run.out
    assert re.search(r"\| \S+ +\| +[01]\.\d{3} ", run.out), run.out  # the model's numbers are there


def subprocess_cli(*argv: object) -> Run:
    proc = subprocess.run([sys.executable, "-m", "pyterrier_hybrid.cli", *map(str, argv)], capture_output=True,
                          text=True, cwd=ROOT, env=os.environ.copy(), timeout=600)
    return Run(proc.returncode, proc.stdout, proc.stderr)


# ------------------------------------------------------------------------------------------------ data helpers
def lareqa_dir(ctx: SimpleNamespace, *, question: object = "Where?", qid: object = "g0",
               raw: str | None = None) -> Path:
    """A LAReQA-style folder with en.json and de.json (one paragraph, one question each)."""
    folder = ctx.fresh()
    folder.mkdir()
    for lang in ("en", "de"):
        if raw is not None and lang == "en":
            (folder / "en.json").write_text(raw, encoding="utf-8")
            continue
        first, answer = "Intro here.", "The answer is 42."
        context = f"{first} {answer}"
        qa = {"id": qid, "question": question if lang == "en" else "Wo?",
              "answers": [{"text": answer, "answer_start": len(first) + 1}]}
        para = {"context": context, "sentences": [first, answer],
                "sentence_breaks": [[0, len(first)], [len(first) + 1, len(context)]], "qas": [qa]}
        (folder / f"{lang}.json").write_text(json.dumps({"data": [{"title": "t", "paragraphs": [para]}]}),
                                             encoding="utf-8")
    return folder


def beir_dir(ctx: SimpleNamespace, corpus_lines: list[str] | None = None, query_lines: list[str] | None = None,
             corpus_bytes: bytes | None = None) -> Path:
    folder = ctx.fresh()
    (folder / "qrels").mkdir(parents=True)
    corpus_lines = corpus_lines or ['{"_id": "d1", "text": "alpha"}', '{"_id": "d2", "text": "beta"}']
    query_lines = query_lines or ['{"_id": "q1", "text": "what alpha"}']
    if corpus_bytes is not None:
        (folder / "corpus.jsonl").write_bytes(corpus_bytes)
    else:
        (folder / "corpus.jsonl").write_text("\n".join(corpus_lines) + "\n", encoding="utf-8")
    (folder / "queries.jsonl").write_text("\n".join(query_lines) + "\n", encoding="utf-8")
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n", encoding="utf-8")
    return folder


def read_beir(ctx, **kwargs) -> BeirFolder:
    data = BeirFolder(beir_dir(ctx, **kwargs))
    _ = data.docs, data.queries
    return data


CORPUS = pd.DataFrame({"docno": ["en_a", "en_b"], "text": ["alpha", "beta"]})
QUERIES = pd.DataFrame({"qid": ["en_x"], "query": ["what alpha"]})
QRELS = {"test": pd.DataFrame({"qid": ["en_x"], "docno": ["en_a"], "label": [1]})}


def write_beir(ctx, path: Path | None = None, *, corpus=CORPUS, queries=QUERIES, qrels=None, **kwargs) -> Path:
    ctx.target = path or ctx.fresh()
    return write_beir_folder(ctx.target, corpus=corpus, queries=queries, qrels=qrels or QRELS, **kwargs)


def refused_write(ctx, **kwargs) -> Path:
    """``write_beir_folder`` that must fail on a bad value before anything is written."""
    try:
        return write_beir(ctx, **kwargs)
    finally:
        assert not ctx.target.exists(), "a refused write left a folder behind"
        assert not [p for p in ctx.target.parent.iterdir() if p.name.startswith(f".{ctx.target.name}.")]


def over_user_folder(ctx) -> Path:
    folder = ctx.fresh()
    folder.mkdir()
    (folder / "thesis.tex").write_text("precious", encoding="utf-8")
    try:
        return write_beir(ctx, folder, overwrite=True)
    finally:
        assert [p.name for p in folder.iterdir()] == ["thesis.tex"]
        assert (folder / "thesis.tex").read_text(encoding="utf-8") == "precious"


def replaces_own_folder(ctx) -> Path:
    path = write_beir(ctx)
    return write_beir(ctx, path, corpus=CORPUS.assign(text=["gamma", "delta"]), overwrite=True)


def frame(*rows, lang=None) -> pd.DataFrame:
    data = {"qid": [q for q, _ in rows], "query": [t for _, t in rows]}
    if lang is not None:
        data["lang"] = lang
    return pd.DataFrame(data)


def noise_twice(ctx) -> tuple[pd.DataFrame, pd.DataFrame]:
    topics = frame(("de_1", "Wie viele Bälle fing Josh Norman ab?"), ("en_2", "How many balls did he catch?"))
    first = NoiseTransformer("typo", 50, seed=np.int64(3)).transform(topics)
    again = NoiseTransformer("typo", np.int64(50), seed=3).transform(topics.iloc[::-1].reset_index(drop=True))
    return first, again


def same_noise(result, ctx) -> None:
    first, again = result
    assert dict(zip(first["qid"], first["query"])) == dict(zip(again["qid"], again["query"]))
    assert (first["query"] != first["query_0"]).any()  # level 50 changed something


# ------------------------------------------------------------------------------------------------ cases
def _cuda_host() -> Run:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this host has CUDA")
    return cli("train", "--train", "mlqa-r", "--device", "cuda")


def _read_only_out(ctx) -> Run:
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    folder = ctx.fresh()
    folder.mkdir()
    folder.chmod(0o555)
    return cli("evaluate", ctx.no_model, "--out", folder / "report")


CASES = [
    # --- 1. every failure is one line; --debug; Ctrl-C
    Case("train with an unknown --training-arg key", lambda ctx: cli("train", "--train", "mlqa-r",
         "--training-arg", "bogus=1"), check=fails(2, r"'bogus' is not a SentenceTransformerTrainingArguments")),
    Case("train with a misspelt --training-arg key", lambda ctx: cli("train", "--train", "mlqa-r",
         "--training-arg", "fp17=true"), check=fails(2, "did you mean fp16")),
    Case("train with --device bogus", lambda ctx: cli("train", "--train", "mlqa-r", "--device", "bogus"),
         check=fails(2, r"argument --device: device 'bogus' is not a torch device")),
    Case("train with --device cuda on a CPU host", lambda ctx: _cuda_host(),
         check=fails(2, "CUDA is not available on this machine")),
    Case("evaluate with --device cuda:99", lambda ctx: cli("evaluate", ctx.no_model, "--device", "cuda:99"),
         check=fails(2, r"argument --device: device 'cuda:99'")),
    Case("a command fails with an unexpected RuntimeError",
         lambda ctx: preview_failing_with(RuntimeError("CUDA kernel\nfailed")),
         check=fails(1, r"unexpected RuntimeError: CUDA kernel failed .*--debug")),
    Case("a command fails with an AssertionError without message",
         lambda ctx: preview_failing_with(AssertionError()), check=fails(1, r"unexpected AssertionError: Assert")),
    Case("a command fails with a TypeError from a dependency",
         lambda ctx: preview_failing_with(TypeError("'float' object cannot be interpreted as an integer")),
         check=fails(1, r"unexpected TypeError: 'float' object")),
    Case("a command fails with a multi-line ValueError", lambda ctx: preview_failing_with(ValueError("a\n  b")),
         check=fails(1, r"error: a b$")),
    Case("a command fails with a KeyError", lambda ctx: preview_failing_with(KeyError("no such column")),
         check=fails(1, r"error: no such column$")),
    Case("the user presses Ctrl-C", lambda ctx: preview_failing_with(KeyboardInterrupt()),
         check=fails(130, r"error: interrupted$")),
    Case("--debug before the subcommand shows the traceback", lambda ctx: debug_reraises(
         "--debug", "noise", "preview", "--lang", "de", "--model", "typo")),
    Case("--debug after the subcommand shows the traceback", lambda ctx: debug_reraises(
         "noise", "preview", "--lang", "de", "--model", "typo", "--debug")),
    Case("evaluate a folder that holds no model", lambda ctx: cli("evaluate", ctx.no_model, "--benchmark",
         "mlqa-r", "--langs", "de", "--no-pooled", "-q"), check=fails(1, r"Unrecognized model in .*no_model")),
    Case("an unwritable --out on the real command line (subprocess)", lambda ctx: subprocess_cli(
         "evaluate", ctx.no_model, "--out", ctx.file / "report"), check=fails(1, r"--out .*cannot write there")),
    Case("an unknown --device on the real command line (subprocess)", lambda ctx: subprocess_cli(
         "train", "--train", "mlqa-r", "--device", "tpu9"), check=fails(2, r"'tpu9' is not a torch device")),
    # --- 2. fail early: output folders, measures; the table is printed before the reports
    Case("evaluate --out a path under a file", lambda ctx: cli("evaluate", ctx.no_model, "--out",
         ctx.file / "report"), check=fails(1, r"--out .*cannot write there \(Not a directory\)")),
    Case("evaluate --out an existing file", lambda ctx: cli("evaluate", ctx.no_model, "--out", ctx.file),
         check=fails(1, r"--out .* is a file, not a folder",
                     also=expect(lambda run, ctx: ctx.file.read_text() == "not a folder", "the file changed"))),
    Case("evaluate --out a read-only folder", _read_only_out, check=fails(1, r"--out .*cannot write there")),
    Case("evaluate --cache-dir a path under a file", lambda ctx: cli("evaluate", ctx.no_model, "--cache-dir",
         ctx.file / "vectors"), check=fails(1, r"--cache-dir .*cannot write there")),
    Case("evaluate --measures AP@0 (would score 0 everywhere)", measures_ap0,
         check=fails(1, r"cutoff of AP@0 must be an integer >= 1",
                     also=expect(lambda run, ctx: not ctx.target.exists(), "--out was created before the check"))),
    Case("evaluate --measures R@1.5", lambda ctx: cli("evaluate", ctx.no_model, "--measures", "R@1.5"),
         check=fails(1, r"cutoff of R@1.5 must be an integer, got 1.5")),
    Case("evaluate --measures P(rel=0.5)@5", lambda ctx: cli("evaluate", ctx.no_model, "--measures",
         "P(rel=0.5)@5"), check=fails(1, r"rel of P\(rel=0.5\)@5 must be an integer")),
    Case("evaluate --measures PEER@abc", lambda ctx: cli("evaluate", ctx.no_model, "--measures", "PEER@abc"),
         check=fails(1, r"cannot parse PEER@abc")),
    Case("evaluate --measure not among --measures", lambda ctx: cli("evaluate", ctx.no_model, "--measures",
         "AP,RR", "--measure", "nDCG@10"), check=fails(1, r"--measure nDCG@10 is not among .*AP, RR")),
    Case("evaluate whose report cannot be written still prints the table", evaluate_then_report_fails,
         check=fails(1, r"No space left on device", also=table_printed)),
    Case("noise preview --level nan", lambda ctx: cli("noise", "preview", "--lang", "de", "--model", "typo",
         "--level", "nan"), check=fails(2, r"must be a percent in \[0, 100\], got nan")),
    Case("noise preview --seed 1.5", lambda ctx: cli("noise", "preview", "--lang", "de", "--model", "typo",
         "--seed", "1.5"), check=fails(2, r"argument --seed: invalid int value")),
    Case("evaluate with the benchmark files missing (offline)", lambda ctx: without_benchmark_files(
         ctx, "evaluate", ctx.no_model, "--benchmark", "mlqa-r", "--langs", "de", "--no-pooled"),
         check=fails(1, r"mlqa-r/de\.json .*is not in the cache and \$PYTERRIER_HYBRID_OFFLINE forbids")),
    Case("noise preview with the benchmark files missing (offline)", lambda ctx: without_benchmark_files(
         ctx, "noise", "preview", "--lang", "de", "--model", "typo"),
         check=fails(1, r"xquad-r/de\.json .*is not in the cache")),
    # --- 3. noise
    Case("perturb an int", lambda ctx: perturb(5, "de", model="typo", level=20), error=TextError,
         match=r"text to perturb is an int \(5\), not str"),
    Case("perturb None", lambda ctx: perturb(None, "de", model="typo", level=20), error=TextError,
         match=r"missing \(None\)"),
    Case("perturb NaN", lambda ctx: perturb(float("nan"), "de", model="typo", level=20), error=TextError,
         match=r"missing \(nan\)"),
    Case("perturb bytes", lambda ctx: perturb(b"Hallo Welt", "de", model="typo", level=20), error=TextError,
         match=r"bytes .*decode it first"),
    Case("perturb a text with a lone surrogate", lambda ctx: perturb("Hallo \ud800 Welt", "de", model="typo",
         level=20), error=TextError, match=r"lone surrogate"),
    Case("perturb at level NaN", lambda ctx: perturb("Hallo Welt", "de", model="typo", level=float("nan")),
         error=ValueError, match=r"noise level must be a number of percent in \[0, 100\].*got nan"),
    Case("perturb at level True", lambda ctx: perturb("Hallo Welt", "de", model="typo", level=True),
         error=ValueError, match=r"noise level .*got True"),
    Case("perturb at level '20'", lambda ctx: perturb("Hallo Welt", "de", model="typo", level="20"),
         error=ValueError, match=r"got '20' \(a string: convert it with float\(\)\)"),
    Case("perturb with seed True", lambda ctx: perturb("Hallo Welt", "de", model="typo", level=20, seed=True),
         error=ValueError, match=r"noise seed must be an integer.*got True"),
    Case("perturb with NumPy level and seed equals plain ints", lambda ctx: (
         perturb("Wie viele Bälle fing er?", "de", model="typo", level=np.int64(60), seed=np.int64(2)),
         perturb("Wie viele Bälle fing er?", "de", model="typo", level=60, seed=2)),
         check=expect(lambda r, ctx: r[0] == r[1] != "Wie viele Bälle fing er?", "NumPy numbers changed the noise")),
    Case("NoiseTransformer on a NaN query", lambda ctx: NoiseTransformer("typo", 20).transform(
         frame(("de_1", "Hallo"), ("de_2", np.nan))), error=TextError, match=r"'query' of qid 'de_2' is missing"),
    Case("NoiseTransformer on a None query", lambda ctx: NoiseTransformer("typo", 20).transform(
         frame(("de_1", None))), error=TextError, match=r"'query' of qid 'de_1' is missing"),
    Case("NoiseTransformer on a bytes query", lambda ctx: NoiseTransformer("typo", 20).transform(
         frame(("de_1", "ok"), ("de_2", b"x"))), error=TextError, match=r"qid 'de_2' is bytes"),
    Case("NoiseTransformer on a row without qid", lambda ctx: NoiseTransformer("typo", 20).transform(
         frame(("de_1", "Hallo"), (None, "Welt"))), error=ValueError, match=r"'qid' is missing in 1 row"),
    Case("NoiseTransformer on a row whose lang is NaN", lambda ctx: NoiseTransformer("typo", 20).transform(
         frame(("de_1", "Hallo"), ("de_2", "Welt"), lang=["de", np.nan])), error=ValueError,
         match=r"'lang' of qid 'de_2' is missing"),
    Case("NoiseTransformer with seed True", lambda ctx: NoiseTransformer("typo", 20, seed=True), error=ValueError,
         match=r"noise seed must be an integer"),
    Case("NoiseTransformer with level 'high'", lambda ctx: NoiseTransformer("typo", "high"), error=ValueError,
         match=r"noise level must be a number"),
    Case("NoiseTransformer twice with the same seed, rows reordered", noise_twice, check=same_noise),
    Case("sample a benchmark with paragraphs=NaN (would mean all)", lambda ctx: sample_benchmark(
         "xquad-r", paragraphs=float("nan")), error=ValueError, match=r"paragraphs must be an integer >= 0.*nan"),
    Case("sample a benchmark with max_queries=2.5", lambda ctx: sample_benchmark("xquad-r", max_queries=2.5),
         error=ValueError, match=r"max_queries must be an integer >= 0 \(0 = all\), got 2.5"),
    Case("sample a benchmark with seed True", lambda ctx: sample_benchmark("xquad-r", seed=True), error=ValueError,
         match=r"seed must be an integer >= 0, got True"),
    # --- 4. corrupt JSON names the file and the fix; missing texts are errors
    Case("data import of a mirror whose xquad-r/de.json is truncated", import_truncated_mirror,
         check=fails(1, r"xquad-r/de\.json: md5 .* of this LAReQA mirror file .*fix: replace it in the mirror",
                     also=expect(lambda run, ctx: ctx.bad_mirror_file.is_file(), "the mirror file was deleted"))),
    Case("data info on a truncated cached xquad-r/de.json", info_on_truncated_cache,
         check=fails(1, r"lareqa/xquad-r/de\.json: md5 .*fix: delete it and run `pyterrier-hybrid data import")),
    Case("a cached LAReQA file truncated after its md5 check", json_changed_after_md5_check,
         error=LareqaFileError, match=r"mlqa-r/de\.json: LAReQA file .* is not valid JSON .*data import"),
    Case("a mirror variable naming a missing folder", mirror_env_missing, error=LareqaFileError,
         match=r"PYTERRIER_HYBRID_LAREQA_DIR=.*no-such-mirror is not a folder"),
    Case("data import from a folder that does not exist", lambda ctx: cli("data", "import", ctx.root / "nowhere"),
         check=fails(1, r"LAReQA mirror .*nowhere is not a folder")),
    Case("data info on an unknown id", lambda ctx: cli("data", "info", "xquad-r/en-xx"),
         check=fails(1, r"unknown dataset id 'xquad-r/en-xx'; see `pyterrier-hybrid data list`")),
    Case("data info on a noisy id with an unknown noise model", lambda ctx: cli(
         "data", "info", "xquad-r/en/noise-sneeze-20"), check=fails(1, r"unknown noise model 'sneeze'; valid models")),
    Case("data info on a noisy id at level 200", lambda ctx: cli("data", "info", "xquad-r/en/noise-typo-200"),
         check=fails(1, r"noise level must be a number of percent in \[0, 100\].*got 200")),
    Case("train on a LAReQA folder with a truncated en.json", lambda ctx: cli(
         "train", ctx.no_model, "--train", lareqa_dir(ctx, raw='{"data": [{"title": "t", "para'), "-q"),
         check=fails(1, r"en\.json is not valid JSON: .*restore or regenerate")),
    Case("train on a LAReQA folder with a null question", lambda ctx: cli(
         "train", ctx.no_model, "--train", lareqa_dir(ctx, question=None), "-q"),
         check=fails(1, r"en\.json: 'question' of qid 'en_g0' is missing \(None\)")),
    Case("read LAReQA JSON whose question id is null", lambda ctx: read_lareqa_json(
         lareqa_dir(ctx, qid=None) / "en.json", "en"), error=ValueError, match=r"question id None .*'Where\?'"),
    Case("read a BEIR corpus with a truncated line", lambda ctx: read_beir(ctx, corpus_lines=[
         '{"_id": "d1", "text": "alpha"}', '{"_id": "d2", "text": "beta"}', '{"_id": "d3", "te']),
         error=ValueError, match=r"corpus\.jsonl, line 3: not valid JSON .*fix or remove that line"),
    Case("read a BEIR corpus with a null text", lambda ctx: read_beir(ctx, corpus_lines=[
         '{"_id": "d1", "text": "alpha"}', '{"_id": "d2", "text": null}']), error=TextError,
         match=r"corpus\.jsonl, line 2: field 'text' of id 'd2' is missing \(None\)"),
    Case("read BEIR queries with a NaN text", lambda ctx: read_beir(ctx, query_lines=[
         '{"_id": "q1", "text": NaN}']), error=TextError, match=r"queries\.jsonl, line 1: field 'text' of id 'q1'"),
    Case("read BEIR queries with a lone surrogate", lambda ctx: read_beir(ctx, query_lines=[
         '{"_id": "q1", "text": "what \\ud800"}']), error=TextError, match=r"id 'q1' .*lone surrogate"),
    Case("read a BEIR corpus with a null _id", lambda ctx: read_beir(ctx, corpus_lines=[
         '{"_id": "d1", "text": "alpha"}', '{"_id": null, "text": "beta"}']), error=ValueError,
         match=r"line 2: field '_id' must be a string .*got None"),
    Case("read a BEIR corpus that is not UTF-8", lambda ctx: read_beir(
         ctx, corpus_bytes='{"_id": "d1", "text": "alpha"}\n{"_id": "d2", "text": "Stra\xdfe"}\n'.encode("latin-1")),
         error=ValueError, match=r"corpus\.jsonl, line 2: not UTF-8"),
    Case("read a BEIR corpus with a null title", lambda ctx: read_beir(ctx, corpus_lines=[
         '{"_id": "d1", "title": null, "text": "alpha"}', '{"_id": "d2", "text": "beta"}']),
         check=expect(lambda data, ctx: data.docs["text"].tolist() == ["alpha", "beta"], "title became text")),
    Case("write a BEIR folder with a NaN text", lambda ctx: refused_write(ctx, corpus=CORPUS.assign(
         text=["alpha", np.nan])), error=TextError, match=r"'text' of docno 'en_b' is missing \(nan\)"),
    Case("write a BEIR folder with a NaN label", lambda ctx: refused_write(ctx, qrels={"test": QRELS["test"].assign(
         label=[np.nan])}), error=ValueError, match=r"label of \('en_x', 'en_a'\) is nan, not an integer"),
    Case("write a BEIR folder with a missing qid", lambda ctx: refused_write(ctx, queries=QUERIES.assign(
         qid=[None])), error=ValueError, match=r"'qid' of row 0 is None"),
    Case("write a BEIR folder over a folder of the user's (overwrite=True)", over_user_folder,
         error=FileExistsError, match=r"holds files that are not a BEIR folder"),
    Case("write a BEIR folder over its own earlier one (overwrite=True)", replaces_own_folder,
         check=expect(lambda path, ctx: BeirFolder(path).docs["text"].tolist() == ["gamma", "delta"],
                      "the folder was not replaced")),
]


@pytest.fixture(scope="module")
def ctx(tmp_path_factory, request):
    root = tmp_path_factory.mktemp("trust_cli")
    counter = itertools.count()
    context = SimpleNamespace(root=root)
    context.fresh = lambda: root / f"p{next(counter)}"
    context.file = root / "a_file"
    context.file.write_text("not a folder", encoding="utf-8")
    context.no_model = root / "no_model"  # a folder that exists but holds no model: loading it fails
    context.no_model.mkdir()
    context.tiny_model = lambda: request.getfixturevalue("tiny_model_dir")
    return context


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_case(case, ctx):
    run_case(case, ctx)
