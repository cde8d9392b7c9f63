"""Bad inputs and faults for the trainer (HybridBatchTrainer, training pairs, ``train`` command).

One clear line before the model is loaded, or the correct result: no file of the user's lost, no NaN
loss recorded as a result, no resume that silently trains another run.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import itertools
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import numpy as np
import pandas as pd
import pytest
from sentence_transformers import SentenceTransformer
from transformers import TrainerCallback
from trust import Case, ids, run_case

from pyterrier_hybrid import cli
from pyterrier_hybrid._checks import TextError
from pyterrier_hybrid.training import HybridBatchTrainer, pairs_from_topics_qrels, validate_pairs
from pyterrier_hybrid.training import trainer as trainer_module
from pyterrier_hybrid.training.testing import synthetic_pairs
from pyterrier_hybrid.training.trainer import RUN_RECORD, TRAINING_CONFIG, TrainingDivergedError

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# A handful of steps of the tiny model: every fit here takes seconds.
BASE = {"batch_size": 8, "lr": 1e-3, "logging_steps": 1, "verbose": False, "freeze_embeddings": True, "max_steps": 2}
# The run that the resume cases continue: interrupted after the checkpoint of step 2 of 4.
RUN = {**BASE, "max_steps": 4, "save_steps": 2, "seed": 0}


# ------------------------------------------------------------------------------------------------ helpers
def make(ctx, out: Path | None, encoder=None, **kwargs) -> HybridBatchTrainer:
    """A trainer of a fresh copy of the tiny model (a SentenceTransformer passed in is trained in place)."""
    return HybridBatchTrainer(copy.deepcopy(ctx.loaded) if encoder is None else encoder, output_dir=out,
                              **{**BASE, **kwargs})


LOAD = trainer_module._load_sentence_transformer


def setup():
    """Load models for real while preparing a case (an earlier run to resume, say) inside :func:`no_load`."""
    return mock.patch.object(trainer_module, "_load_sentence_transformer", LOAD)


def no_load(fn):
    """``run`` that fails the case if the model is loaded before the error (checks come first)."""
    def run(ctx):
        with mock.patch.object(trainer_module, "_load_sentence_transformer",
                               side_effect=AssertionError("the model was loaded before the bad input was reported")):
            return fn(ctx)
    return run


def then(fn, verify):
    """``run`` that calls ``fn`` and, when it raises, runs ``verify(ctx)`` before letting the error through."""
    def run(ctx):
        try:
            return fn(ctx)
        except Exception:
            verify(ctx)
            raise
    return run


def user_folder(ctx) -> Path:
    """A folder with the user's files: README.md, notes.txt and a 1_Pooling sub-folder with their file."""
    path = ctx.fresh()
    (path / "1_Pooling").mkdir(parents=True)
    (path / "README.md").write_text("my notes", encoding="utf-8")
    (path / "notes.txt").write_text("keep me", encoding="utf-8")
    (path / "1_Pooling" / "mine.txt").write_text("mine", encoding="utf-8")
    ctx.last = path
    return path


def user_files_intact(ctx) -> None:
    path = ctx.last
    assert (path / "README.md").read_text(encoding="utf-8") == "my notes"
    assert (path / "notes.txt").read_text(encoding="utf-8") == "keep me"
    assert (path / "1_Pooling" / "mine.txt").read_text(encoding="utf-8") == "mine"
    assert sorted(os.listdir(path)) == ["1_Pooling", "README.md", "notes.txt"], "something was written"


def record(path: Path) -> dict:
    return json.loads((path / RUN_RECORD).read_text(encoding="utf-8"))


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class _Interrupt(TrainerCallback):
    """Crash right after the checkpoint of step ``at`` was written."""

    def __init__(self, at: int):
        self.at = at

    def on_step_begin(self, args, state, control, **kwargs):
        if state.global_step == self.at:
            raise KeyboardInterrupt


def interrupted(ctx) -> Path:
    """A copy of a run of RUN's settings on ctx.pairs, stopped after checkpoint-2 (built once)."""
    if ctx.interrupted is None:
        path = ctx.root / "interrupted"
        with setup(), contextlib.suppress(KeyboardInterrupt):
            make(ctx, path, callbacks=[_Interrupt(2)], **RUN).fit_pairs(ctx.pairs)
        assert (path / "checkpoint-2").is_dir() and not (path / TRAINING_CONFIG).exists()
        ctx.interrupted = path
    copy_ = ctx.fresh()
    shutil.copytree(ctx.interrupted, copy_)
    ctx.last = copy_
    return copy_


def resume(ctx, path: Path | None = None, *, pairs=None, force: bool = False, target=True, **kwargs):
    path = interrupted(ctx) if path is None else path
    t = make(ctx, path, **{**RUN, **kwargs})
    return t.fit_pairs(ctx.pairs if pairs is None else pairs, resume_from_checkpoint=target, force_resume=force), t


def resume_refused_untouched(ctx) -> None:
    """A refused resume changed nothing: the record still holds the one interrupted session."""
    sessions = record(ctx.last)["sessions"]
    assert [s["status"] for s in sessions] == ["failed: KeyboardInterrupt"]
    assert not (ctx.last / TRAINING_CONFIG).exists()


def nan_model(ctx) -> SentenceTransformer:
    model = copy.deepcopy(ctx.loaded)
    model[0].auto_model.encoder.layer[0].attention.self.query.weight.data[0, 0] = float("nan")
    return model


def diverged(ctx, **kwargs):
    out = ctx.fresh()
    ctx.last = out
    make(ctx, out, **kwargs).fit_pairs(ctx.pairs)


def nothing_final(ctx) -> None:
    """A diverged run saved no model and no training info; its record says how it ended."""
    assert not (ctx.last / TRAINING_CONFIG).exists() and not (ctx.last / "model.safetensors").exists()
    assert record(ctx.last)["sessions"][-1]["status"] == "failed: TrainingDivergedError"


def topics_qrels(ctx):
    """Topics, qrels and docs of ctx.pairs (qids ``<lang>_<group>``, docnos ``<lang>_<group>``)."""
    sub = ctx.pairs.drop_duplicates(["qlang", "group_id", "dlang"])
    topics = sub.drop_duplicates(["qlang", "group_id"])
    topics = pd.DataFrame({"qid": topics["qlang"] + "_" + topics["group_id"], "query": topics["query"]})
    docnos = sub["dlang"] + "_" + sub["group_id"]
    qrels = pd.DataFrame({"qid": sub["qlang"] + "_" + sub["group_id"], "docno": docnos, "label": 1})
    docs = pd.DataFrame({"docno": docnos, "text": sub["text"]}).drop_duplicates("docno")
    return topics.reset_index(drop=True), qrels.reset_index(drop=True), docs.reset_index(drop=True)


def set_cell(frame: pd.DataFrame, row: int, column: str, value) -> pd.DataFrame:
    frame = frame.copy()
    frame[column] = frame[column].astype(object)
    frame.at[frame.index[row], column] = value
    return frame


def fit_topics(ctx, topics=None, qrels=None, docs=None, **kwargs):
    t0, q0, d0 = topics_qrels(ctx)
    return make(ctx, ctx.fresh()).fit(t0 if topics is None else topics, q0 if qrels is None else qrels,
                                      docs=d0 if docs is None else docs, **kwargs)


def bad_pairs(column: str, value, row: int = 3):
    return no_load(lambda ctx: make(ctx, ctx.fresh()).fit_pairs(set_cell(ctx.pairs, row, column, value)))


def construct(**kwargs):
    return no_load(lambda ctx: make(ctx, ctx.fresh(), encoder="never-loaded", **kwargs))


# -------------------------------------------------------------------------------- kill -9 during the final save
KILL_SCRIPT = """
import os, signal, sys
import torch
torch.set_num_threads(1)
import pandas as pd
import pyterrier_hybrid._io as io_
from pyterrier_hybrid.training import HybridBatchTrainer
calls = []
def exchange(a, b):  # the second folder swap of the final save: the first sub-folder is already in
    calls.append(a)
    if len(calls) == 2:
        os.kill(os.getpid(), signal.SIGKILL)
    return real(a, b)
real, io_._exchange = io_._exchange, exchange
pairs = pd.read_json(sys.argv[3])
HybridBatchTrainer(sys.argv[1], output_dir=sys.argv[2], batch_size=8, lr=1e-3, max_steps=1, verbose=False,
                   freeze_embeddings=True, seed=1).fit_pairs(pairs)
"""


def kill_during_final_save(ctx):
    out = ctx.fresh()
    make(ctx, out, seed=0).fit_pairs(ctx.pairs)  # an earlier run of ours: the next save swaps its sub-folders
    before = {name: digest(out / name) for name in ("model.safetensors", "2_Normalize/config.json")}
    data = ctx.root / "pairs.json"
    ctx.pairs.to_json(data)
    proc = subprocess.run([sys.executable, "-c", KILL_SCRIPT, str(ctx.model_dir), str(out), str(data)],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == -9, proc.stderr[-2000:]
    killed = {
        "marker": (out / TRAINING_CONFIG).exists(),
        "status": record(out)["sessions"][-1]["status"],
        "old_files": {name: digest(out / name) for name in before} == before,
        "leftovers": sorted(n for n in os.listdir(out) if n.startswith(".")),
    }
    # The next run in the same folder needs no overwrite: every file there is the trainer's own.
    make(ctx, out, seed=2).fit_pairs(ctx.pairs)
    return out, killed


def check_kill(result, ctx) -> None:
    out, killed = result
    assert killed["marker"] is False, "a half-installed model was marked finished"
    assert killed["status"] == "saving"
    assert killed["old_files"], "the earlier run's files changed before the swap reached them"
    assert killed["leftovers"], "the killed save left no temporary folder (the kill came too early?)"
    assert not [n for n in os.listdir(out) if n.startswith(".")], "leftovers were not cleaned up"
    info = json.loads((out / TRAINING_CONFIG).read_text())
    assert info["seed"] == 2 and info["global_steps"] == 2
    SentenceTransformer(str(out), device="cpu")  # loads whole


# ------------------------------------------------------------------------------------------------ CLI
def write_lareqa(path: Path, lang: str, groups: int) -> None:
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


def train_cli(ctx, out: Path, *extra: str) -> int:
    """``pyterrier-hybrid train`` on a small LAReQA folder; ``--debug`` lets the error itself through."""
    if ctx.lareqa is None:
        ctx.lareqa = ctx.root / "lareqa"
        ctx.lareqa.mkdir()
        for lang in ("en", "de"):
            write_lareqa(ctx.lareqa, lang, 12)
    argv = ["train", str(ctx.model_dir), "--train", str(ctx.lareqa), "--batch-size", "4", "--max-steps", "2",
            "--save-steps", "1", "--lr", "1e-3", "--max-seq-length", "32", "--freeze-embeddings", "--output-dir",
            str(out), "--threads", "1", "-q", "--debug", *extra]
    with contextlib.redirect_stdout(io.StringIO()):
        return cli.main(argv)


def cli_run(ctx) -> Path:
    """A finished CLI run (with checkpoints) to resume."""
    out = ctx.fresh()
    with setup():
        assert train_cli(ctx, out) == 0
    ctx.last = out
    return out


# ------------------------------------------------------------------------------------------------ checks
def check_overwrite_into_user_folder(result, ctx) -> None:
    path = ctx.last
    assert (path / "notes.txt").read_text(encoding="utf-8") == "keep me"
    assert (path / "1_Pooling" / "mine.txt").read_text(encoding="utf-8") == "mine"  # their file in our folder
    assert (path / "1_Pooling" / "config.json").exists()
    assert "Hybrid batch fine-tuned" in (path / "README.md").read_text(encoding="utf-8")  # same name: replaced
    assert json.loads((path / TRAINING_CONFIG).read_text())["global_steps"] == 2
    assert "query_vec" in result(pd.DataFrame({"qid": ["1"], "query": ["which river"]})).columns


def check_rerun_own_folder(result, ctx) -> None:
    path = ctx.last
    info = json.loads((path / TRAINING_CONFIG).read_text())
    assert info["seed"] == 7 and info["global_steps"] == 2
    rec = record(path)
    assert len(rec["sessions"]) == 1 and rec["sessions"][0]["status"] == "finished"
    assert not [n for n in os.listdir(path) if n.startswith("checkpoint-")], "the old run's checkpoints remain"


def check_resumed(result, ctx) -> None:
    encoder, t = result
    assert t.trainer_.state.global_step == 4
    sessions = record(ctx.last)["sessions"]
    assert [(s["start_step"], s["end_step"], s["status"], s["forced"]) for s in sessions] == [
        (0, 2, "failed: KeyboardInterrupt", False), (2, 4, "finished", False)]
    assert json.loads((ctx.last / TRAINING_CONFIG).read_text())["sessions"][-1]["end_step"] == 4


def check_forced(result, ctx) -> None:
    encoder, t = result
    sessions = record(ctx.last)["sessions"]
    assert sessions[-1]["forced"] is True and sessions[-1]["status"] == "finished"
    assert any(d.startswith("lr 0.001 in the run, 0.0005 now") for d in sessions[-1]["differences"])
    assert sessions[-1]["settings"]["lr"] == 5e-4 and sessions[0]["settings"]["lr"] == 1e-3
    info = json.loads((ctx.last / TRAINING_CONFIG).read_text())
    assert info["sessions"][-1]["forced"] is True


def check_final_loss(result, ctx) -> None:
    t = result
    info = json.loads((t.output_dir / TRAINING_CONFIG).read_text())
    logged = [log["loss"] for log in t.trainer_.state.log_history if "loss" in log]
    assert info["final_train_loss"] == logged[-1] and math.isfinite(info["final_train_loss"])
    assert info["final_train_loss_steps"] == [2, 2]
    assert f"final training loss: {info['final_train_loss']}" in (t.output_dir / "README.md").read_text()


def trained(ctx, **kwargs) -> HybridBatchTrainer:
    t = make(ctx, ctx.fresh(), **kwargs)
    with setup():
        t.fit_pairs(ctx.pairs)
    return t


def legacy_run(ctx, *, extra: bool = False):
    """A model folder of the trainer from before run records (no hybrid_run.json, no file list)."""
    path = trained(ctx).output_dir
    (path / RUN_RECORD).unlink()
    info = json.loads((path / TRAINING_CONFIG).read_text())
    del info["files"], info["sessions"]
    (path / TRAINING_CONFIG).write_text(json.dumps(info))
    if extra:
        (path / "notes.txt").write_text("keep me", encoding="utf-8")
    ctx.last = path
    return make(ctx, path, seed=9).fit_pairs(ctx.pairs)


def check_legacy(result, ctx) -> None:
    assert json.loads((ctx.last / TRAINING_CONFIG).read_text())["seed"] == 9
    assert len(record(ctx.last)["sessions"]) == 1


def check_conflict_kept(ctx) -> None:
    path = ctx.last
    assert (path / "1_Pooling").read_text(encoding="utf-8") == "a file, not a folder"
    kept = [p for p in path.iterdir() if p.name.startswith("final-model-")]
    assert len(kept) == 1 and (kept[0] / "model.safetensors").exists() and (kept[0] / "1_Pooling").is_dir()


def file_in_the_way(ctx):
    path = ctx.fresh()
    path.mkdir()
    (path / "1_Pooling").write_text("a file, not a folder", encoding="utf-8")
    ctx.last = path
    make(ctx, path, overwrite=True).fit_pairs(ctx.pairs)


def check_cli_overwrite(result, ctx) -> None:
    assert result == 0
    assert (ctx.last / "notes.txt").read_text(encoding="utf-8") == "keep me"
    assert (ctx.last / TRAINING_CONFIG).exists()


def check_cli_forced(result, ctx) -> None:
    assert result == 0
    sessions = record(ctx.last)["sessions"]
    assert [s["forced"] for s in sessions] == [False, True] and sessions[-1]["start_step"] == 2


def unused_topic_with_nan_query(ctx):
    topics, qrels, docs = topics_qrels(ctx)
    extra = pd.DataFrame({"qid": ["en_unjudged"], "query": [np.nan]})
    return pairs_from_topics_qrels(pd.concat([topics, extra], ignore_index=True), qrels, docs=docs)


def unrelated_nan_doc(ctx):
    topics, qrels, docs = topics_qrels(ctx)
    extra = pd.DataFrame({"docno": ["en_unjudged"], "text": [None]})
    return pairs_from_topics_qrels(topics, qrels, docs=pd.concat([docs, extra], ignore_index=True))


def check_pairs_built(result, ctx) -> None:
    assert len(result) == len(ctx.pairs) and result["query"].map(type).eq(str).all()
    assert "nan" not in set(result["query"]) | set(result["text"])


def labelled_pairs(ctx):
    pairs = ctx.pairs.assign(group_id=range(len(ctx.pairs)), negative=ctx.pairs["text"][::-1].to_numpy())
    return validate_pairs(pairs)


def check_labels(result, ctx) -> None:
    assert result["group_id"].tolist() == [str(i) for i in range(len(ctx.pairs))]  # labels: numbers are fine
    assert result["query"].tolist() == ctx.pairs["query"].tolist()


def fingerprint_of_changed_data(ctx):
    return resume(ctx, pairs=set_cell(ctx.pairs, 5, "text", "another answer"))


def cli_resume_other_lr(ctx):
    out = cli_run(ctx)
    train_cli(ctx, out, "--resume", "--lr", "2e-3")


def cli_force_resume(ctx):
    out = cli_run(ctx)
    return train_cli(ctx, out, "--resume", "--lr", "2e-3", "--max-steps", "3", "--force-resume")


def cli_overwrite(ctx):
    path = user_folder(ctx)
    (path / "1_Pooling" / "mine.txt").unlink()
    (path / "1_Pooling").rmdir()
    return train_cli(ctx, path, "--overwrite")


def half_written_checkpoint(ctx):
    path = interrupted(ctx)
    (path / "checkpoint-2" / "trainer_state.json").unlink()
    return resume(ctx, path, target=str(path / "checkpoint-2"))


def hf_checkpoint_without_record(ctx):
    path = interrupted(ctx)
    (path / RUN_RECORD).unlink()
    return resume(ctx, path)


# ------------------------------------------------------------------------------------------------ cases
CASES = [
    # -- training pairs: texts must be str, never turned into "nan" / "b'..'" / "5"
    Case("fit on pairs whose query is None", bad_pairs("query", None), TextError,
         r"'query' of row 3 \(group_id 'g\d+'\) is missing"),
    Case("fit on pairs with a NaN answer text", bad_pairs("text", np.nan), TextError, r"'text' of row 3 .* missing"),
    Case("fit on pairs with pd.NA as a hard negative",
         no_load(lambda ctx: make(ctx, ctx.fresh()).fit_pairs(
             set_cell(ctx.pairs.assign(negative=ctx.pairs["text"]), 0, "negative", pd.NA))),
         TextError, r"'negative' of row 0 .* missing"),
    Case("fit on pairs with a bytes query", bad_pairs("query", b"abc"), TextError, r"'query' .* is bytes"),
    Case("fit on pairs with a number as answer text", bad_pairs("text", 5), TextError, r"'text' .* int \(5\)"),
    Case("fit on pairs with a lone surrogate in a query", bad_pairs("query", "caf\udce9"), TextError, "surrogate"),
    Case("fit on pairs with a whitespace-only answer", bad_pairs("text", "   "), ValueError, r"'text' .* empty texts"),
    Case("fit on pairs with a missing group id", bad_pairs("group_id", None), ValueError,
         r"'group_id' .* missing values \(rows 3\)"),
    Case("fit on pairs with a NaN question language", bad_pairs("qlang", np.nan), ValueError, r"'qlang' .* missing"),
    Case("bad text in a frame with its own index: the user's row label is named",
         lambda ctx: validate_pairs(set_cell(ctx.pairs.set_axis([f"r{i}" for i in range(len(ctx.pairs))]),
                                             7, "query", None)),
         TextError, r"row 'r7'"),
    Case("validate pairs with numeric group ids and a negative column", labelled_pairs, check=check_labels),
    # -- topics / qrels / docs
    Case("fit on topics with a NaN query", no_load(lambda ctx: fit_topics(
        ctx, topics=set_cell(topics_qrels(ctx)[0], 1, "query", np.nan))), TextError,
         r"'query' of qid '\w+' is missing"),
    Case("fit on qrels with a NaN label", no_load(lambda ctx: fit_topics(
        ctx, qrels=set_cell(topics_qrels(ctx)[1], 0, "label", np.nan))), ValueError, "label.* not a finite number"),
    Case("fit on qrels with the label 'yes'", no_load(lambda ctx: fit_topics(
        ctx, qrels=set_cell(topics_qrels(ctx)[1], 2, "label", "yes"))), ValueError, r"'yes', not a finite number"),
    Case("fit with a docs frame holding a None answer", no_load(lambda ctx: fit_topics(
        ctx, docs=set_cell(topics_qrels(ctx)[2], 0, "text", None))), TextError, r"'text' of docno '\w+' is missing"),
    Case("fit with a docs mapping holding bytes", no_load(lambda ctx: fit_topics(
        ctx, docs={d: t.encode() for d, t in topics_qrels(ctx)[2].itertuples(index=False)})), TextError, "bytes"),
    Case("fit with a docno twice with different texts", no_load(lambda ctx: fit_topics(
        ctx, docs=pd.concat([topics_qrels(ctx)[2], topics_qrels(ctx)[2].head(1).assign(text="other")]))),
         ValueError, "more than once with different texts"),
    Case("fit with a qid twice with different queries", no_load(lambda ctx: fit_topics(
        ctx, topics=pd.concat([topics_qrels(ctx)[0], topics_qrels(ctx)[0].head(1).assign(query="other")]))),
         ValueError, "more than once with different queries"),
    Case("fit with a missing qid in the qrels", no_load(lambda ctx: fit_topics(
        ctx, qrels=set_cell(topics_qrels(ctx)[1], 0, "qid", None))), ValueError, r"qrels column 'qid' .* missing"),
    Case("fit with validation topics but no validation qrels", no_load(lambda ctx: fit_topics(
        ctx, topics_va=topics_qrels(ctx)[0])), ValueError, "both topics_va and qrels_va"),
    Case("a topic without relevant qrels has a NaN query", unused_topic_with_nan_query, check=check_pairs_built),
    Case("the docs frame holds an unjudged doc without text", unrelated_nan_doc, check=check_pairs_built),
    # -- settings: checked at construction, before any model is loaded
    Case("training_args with an unknown key", construct(training_args={"bogus": 1}), ValueError,
         r"unknown training_args key\(s\) 'bogus'"),
    Case("training_args with a typo", construct(training_args={"learning_rat": 1e-4}), ValueError,
         r"did you mean 'learning_rate'"),
    Case("training_args setting output_dir", construct(training_args={"output_dir": "x"}), ValueError,
         "pass output_dir=.* to HybridBatchTrainer"),
    Case("training_args with a bad value", no_load(lambda ctx: make(
        ctx, ctx.fresh(), training_args={"lr_scheduler_type": "wobbly"}).fit_pairs(ctx.pairs)),
         ValueError, "invalid training arguments: .*wobbly"),
    Case("batch_size 2.5", construct(batch_size=2.5), ValueError, r"batch_size must be an int >= 1, got 2\.5"),
    Case("batch_size True", construct(batch_size=True), ValueError, "batch_size must be an int"),
    Case("max_steps 0", construct(max_steps=0), ValueError, "max_steps must be an int >= 1 or None"),
    Case("save_steps 2.5", construct(save_steps=2.5), ValueError, "save_steps must be an int"),
    Case("logging_steps as the string '10'", construct(logging_steps="10"), ValueError, "logging_steps must be an int"),
    Case("lr NaN", construct(lr=float("nan")), ValueError, r"lr must be a finite number > 0, got nan"),
    Case("lr -1", construct(lr=-1), ValueError, "lr must be a finite number > 0"),
    Case("lr infinite", construct(lr=math.inf), ValueError, "lr must be a finite number > 0"),
    Case("temperature 0", construct(temperature=0), ValueError, "temperature must be a finite number > 0"),
    Case("temperature so small that the scale overflows", construct(temperature=1e-320), ValueError,
         r"scale \(1 / temperature\) must be a finite number"),
    Case("scale NaN", construct(scale=float("nan")), ValueError, "scale must be a finite number > 0"),
    Case("warmup_ratio 1", construct(warmup_ratio=1.0), ValueError, r"warmup_ratio .* \[0, 1\)"),
    Case("epochs 0", construct(epochs=0), ValueError, "epochs must be a finite number > 0"),
    Case("alpha NaN", construct(alpha=float("nan")), ValueError, r"alpha .* \[0, 1\]"),
    Case("seed -1", construct(seed=-1), ValueError, "seed must be an int >= 0"),
    Case("train from a model folder that does not exist",
         no_load(lambda ctx: make(ctx, ctx.fresh(), encoder=str(ctx.root / "no-such-model"))), ValueError,
         "is not a model folder"),
    Case("device 'bogus'", construct(device="bogus"), ValueError, "not a torch device"),
    Case("a CUDA device this machine lacks", construct(device="cuda:99"), ValueError, "cuda:99"),
    # -- output_dir: never lose or overwrite the user's files
    Case("train into a folder with the user's README and a same-named sub-folder",
         no_load(then(lambda ctx: make(ctx, user_folder(ctx)).fit_pairs(ctx.pairs), user_files_intact)),
         FileExistsError, r"did not write \(1_Pooling, README\.md, notes\.txt\).*overwrite=True"),
    Case("overwrite=True into the user's folder keeps their other files",
         lambda ctx: make(ctx, user_folder(ctx), overwrite=True).fit_pairs(ctx.pairs),
         check=check_overwrite_into_user_folder),
    Case("overwrite=True where a file of the user's has the name of a model folder",
         then(file_in_the_way, check_conflict_kept), FileExistsError, r"1_Pooling is a file .* kept in"),
    Case("train again into a model folder written before run records existed", legacy_run, check=check_legacy),
    Case("train into an old model folder to which the user added a file",
         no_load(lambda ctx: legacy_run(ctx, extra=True)), FileExistsError, r"did not write \(notes\.txt\)"),
    Case("output_dir is a file", no_load(lambda ctx: make(ctx, ctx.file).fit_pairs(ctx.pairs)),
         FileExistsError, "is a file"),
    Case("train again into the folder of an earlier finished run",
         lambda ctx: make(ctx, cli_run(ctx), seed=7).fit_pairs(ctx.pairs), check=check_rerun_own_folder),
    Case("train from scratch into a folder with an unfinished run's checkpoints",
         no_load(lambda ctx: make(ctx, interrupted(ctx), **RUN).fit_pairs(ctx.pairs)),
         FileExistsError, r"unfinished run with checkpoints \(checkpoint-2\).*resume_from_checkpoint=True"),
    Case("kill -9 during the final save's folder swap", kill_during_final_save, check=check_kill),
    # -- resume: only the run it belongs to
    Case("resume with the run's settings and data", lambda ctx: resume(ctx), check=check_resumed),
    Case("resume with another alpha", no_load(then(lambda ctx: resume(ctx, alpha=0.3), resume_refused_untouched)),
         ValueError, r"cannot resume checkpoint-2: .*alpha 0\.5 in the run, 0\.3 now.*force_resume=True"),
    Case("resume with another batch size, seed and lr",
         no_load(lambda ctx: resume(ctx, batch_size=4, seed=1, lr=5e-4)), ValueError,
         r"batch_size 8 in the run, 4 now; lr 0\.001 in the run, 0\.0005 now; seed 0 in the run, 1 now"),
    Case("resume with another mode", no_load(lambda ctx: resume(ctx, mode="cross")), ValueError,
         r"mode 'hybrid' in the run, 'cross' now"),
    Case("resume on other training data", no_load(fingerprint_of_changed_data), ValueError,
         r"training data \(fingerprint \w{12} in the run, \w{12} now\)"),
    Case("force_resume with another lr", lambda ctx: resume(ctx, lr=5e-4, force=True), check=check_forced),
    Case("resume in a new folder", no_load(lambda ctx: resume(ctx, ctx.fresh())), ValueError,
         "nothing to resume: .* does not exist"),
    Case("resume a finished run that wrote no checkpoints",
         no_load(lambda ctx: resume(ctx, trained(ctx).output_dir)), ValueError,
         "holds no complete checkpoint-<step> folder"),
    Case("resume from a checkpoint path that does not exist",
         no_load(lambda ctx: resume(ctx, target=str(ctx.root / "nowhere" / "checkpoint-9"))), ValueError,
         "checkpoint folder .* does not exist"),
    Case("resume from a half-written checkpoint", no_load(half_written_checkpoint), ValueError,
         "not a complete checkpoint"),
    Case("resume an HF checkpoint that has no run record", no_load(hf_checkpoint_without_record), ValueError,
         r"cannot check that .*checkpoint-2 belongs to this run.*force_resume=True"),
    Case("resume=True without an output_dir", no_load(lambda ctx: make(ctx, None).fit_pairs(
        ctx.pairs, resume_from_checkpoint=True)), ValueError, "needs the output_dir"),
    # -- non-finite training: stop at the first bad step, record no made-up loss
    Case("train a model with one NaN weight", then(lambda ctx: diverged(ctx, encoder=nan_model(ctx)), nothing_final),
         TrainingDivergedError, r"diverged at step 1: the loss is nan; lower the learning rate"),
    Case("train with lr 1e8", then(lambda ctx: diverged(ctx, lr=1e8, max_steps=6), nothing_final),
         TrainingDivergedError, r"diverged at step [2-6]: the loss is nan"),
    Case("train with a logit scale whose gradients overflow", then(lambda ctx: diverged(ctx, scale=1e36),
                                                                   nothing_final),
         TrainingDivergedError, r"diverged at step 1: the gradient norm is inf"),
    Case("the model card and info record the real final loss", lambda ctx: trained(ctx), check=check_final_loss),
    # -- the train command
    Case("cli train into a folder with the user's files",
         no_load(then(lambda ctx: train_cli(ctx, user_folder(ctx)), user_files_intact)), FileExistsError,
         "did not write .*--overwrite"),
    Case("cli train --overwrite into a folder with the user's files", cli_overwrite, check=check_cli_overwrite),
    Case("cli train --force-resume without --resume", lambda ctx: train_cli(ctx, ctx.fresh(), "--force-resume"),
         cli.CommandError, "only applies with --resume"),
    Case("cli train --resume with another --lr", no_load(cli_resume_other_lr), ValueError,
         r"lr 0\.001 in the run, 0\.002 now"),
    Case("cli train --resume --force-resume with another --lr", cli_force_resume, check=check_cli_forced),
]


@pytest.fixture(scope="module")
def ctx(tmp_path_factory, tiny_model_dir):
    root = tmp_path_factory.mktemp("trust_training")
    counter = itertools.count()
    context = SimpleNamespace(root=root, model_dir=tiny_model_dir, interrupted=None, lareqa=None, last=None)
    context.fresh = lambda: root / f"p{next(counter)}"
    context.loaded = SentenceTransformer(str(tiny_model_dir), device="cpu")
    context.pairs = synthetic_pairs(20, ("en", "de"), seed=3)
    context.file = root / "a_file"
    context.file.write_text("not a folder", encoding="utf-8")
    return context


# Cases run in a subprocess (a fresh interpreter importing the whole stack): in the slow set.
SLOW_CASES = {"kill -9 during the final save's folder swap"}


@pytest.mark.parametrize("case", [pytest.param(c, marks=pytest.mark.slow) if c.name in SLOW_CASES else c
                                  for c in CASES], ids=ids(CASES))
def test_case(case, ctx):
    run_case(case, ctx)
