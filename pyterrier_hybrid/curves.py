"""Training-budget curves: does hybrid batching win once training is long enough to tell?

The paper (Elmahdy, Lin & Ahmad 2024) claims two things about hybrid(α) batching: it gives the best pooled
multilingual retrieval while staying close to the best monolingual and cross-lingual results, and it
reduces language bias against monolingual batching. One budget cannot show either claim (at a small
budget every preset is still close to the base model), so this module measures the presets as curves over
the training budget, from ONE training run per (preset, seed):

- every run trains to the final budget with a constant learning rate after a fixed warm-up
  (``lr_scheduler_type="constant_with_warmup"``), so the model after ``N`` steps is the model a run of
  ``N`` steps would give (nothing decays towards a final step), and adding a later step only adds training;
- a :class:`CheckpointEvaluator` (a Hugging Face ``TrainerCallback``) evaluates the model at the chosen
  steps through the normal path: the weights are saved into a temporary folder, loaded by
  :class:`~pyterrier_hybrid.encoding.BiEncoder` and scored by
  :func:`~pyterrier_hybrid.evaluation.evaluate_grid` on one fixed slice of the evaluation benchmark
  (all 121 XQuAD-R settings + pooled). Every RNG state is restored afterwards, so training with the
  callback gives bit-identical weights to training without it;
- each evaluation is written to ``<out>/evals/<preset>-s<seed>/step-<N>.{json,questions.csv,grid.csv}``
  (summary row, per-question values, per-setting grid) and reused by later calls; a finished run (every
  wanted step evaluated, final model saved in ``<out>/models/``) is skipped; an interrupted one trains again
  from step 0, which reproduces the same numbers (same seed, deterministic sampler).

On top of the runs :func:`run_budget_curve` builds the α trade-off at the final budget (α = 0 is the
``cross`` preset and α = 1 is ``mono``: :func:`~pyterrier_hybrid.training.validate_mode` gives ``cross``
the mono-batch probability 0 and ``mono`` 1, so those runs are shared), paired significance tests of
``hybrid-0.5`` against every other preset at every step (per question: mono AP, mean cross AP, pooled AP,
pooled rank distance; each question's value averaged over a preset's seeds, then ``scipy.stats.ttest_rel``
and ``scipy.stats.wilcoxon`` over questions, Holm-corrected with statsmodels over all comparisons at the
step), query-noise robustness of the final models (only the questions are re-encoded), and the plots and
tables, each stating its budget. ``examples/budget_curve.py`` is the command line.

Example::

    from pyterrier_hybrid.curves import CurveBudget, run_budget_curve
    from pyterrier_hybrid.datasets import sample_benchmark
    from pyterrier_hybrid.training import pairs_from_benchmark

    result = run_budget_curve(out_dir="runs/curve", train_pairs=pairs_from_benchmark("mlqa-r"),
                              sample=sample_benchmark("xquad-r", paragraphs=48, max_queries=96),
                              budget=CurveBudget(steps=150, checkpoints=(25, 50, 100, 150), batch_size=32))
    print(result.report())
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import shutil
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from transformers import TrainerCallback

from ._checks import check_int
from ._io import atomic_path
from .datasets import POOLED, BenchmarkSample
from .datasets.sample import query_group
from .evaluation import GridResult
from .languages import lang_of_id
from .models import DEFAULT_MODEL, resolve_model
from .protocol import evaluate_model, parse_preset, summarise

__all__ = [
    "ALPHAS",
    "CURVE_METRICS",
    "CURVE_PRESETS",
    "CheckpointEvaluator",
    "CurveBudget",
    "CurveResult",
    "StepEval",
    "alpha_preset",
    "CurvePlan",
    "estimate_cpu_seconds",
    "noise_conditions",
    "plan_budget_curve",
    "plot_alpha",
    "plot_curves",
    "plot_noise",
    "question_values",
    "run_budget_curve",
    "significance",
    "train_with_checkpoints",
]

CURVE_PRESETS: tuple[str, ...] = ("base", "mono", "cross", "hybrid-0.5", "x-y")
CURVE_STEPS: tuple[int, ...] = (25, 50, 100, 150)
ALPHAS: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)
REFERENCE = "hybrid-0.5"
NOISE_MODELS: tuple[str, ...] = ("typo", "mixed")
NOISE_LEVELS: tuple[int, ...] = (0, 20, 50)
NOISE_PRESETS: tuple[str, ...] = ("base", "mono", "cross", "hybrid-0.5")
# The four numbers of the paper's two claims: summary column -> per-question column.
CURVE_METRICS: dict[str, str] = {"mono_mAP": "mono_AP", "cross_mAP": "cross_AP", "pooled_mAP": "pooled_AP",
                                 "RankDistance": "RankDistance"}
LOWER_IS_BETTER = frozenset({"RankDistance"})  # marked ↓ in tables, as in the README
QUESTION_COLUMNS = ("mono_AP", "cross_AP", "pooled_AP", "RankDistance", "SameLangPref")
WRITER = "pyterrier_hybrid.curves"
SETUP_FILE = "budget_curve.json"
RUN_FILE = "run.json"  # beside the evaluations (evals/<stem>/run.json): the model folder is the trainer's
# Rates for estimate_cpu_seconds, measured on 2 CPU cores with the offline e5-small: MLQA-R hybrid batches of
# 32 at max length 96 with 2 torch threads (benchmarks/results/train_workers.json, peer arm), and bf16 encoding.
CPU_TRAIN_PAIRS_PER_S = 8.4
CPU_BF16_SENTENCES_PER_S = 190.0


# ------------------------------------------------------------------------------------------------ budget
@dataclass(frozen=True)
class CurveBudget:
    """The training budget of every curve run, and the steps at which the runs are evaluated.

    Attributes:
        steps: the final budget (optimiser steps); always evaluated.
        checkpoints: earlier steps to evaluate, each in ``(0, steps]``.
        batch_size: pairs per batch (the in-batch negatives).
        lr: learning rate, constant after the warm-up (so a checkpoint is the model a shorter run gives).
        warmup_steps: linear warm-up steps (a fixed count, not a share of ``steps``, for the same reason).
        max_seq_length: tokens kept per text.
        freeze_embeddings: keep the token embeddings fixed (makes CPU fine-tuning practical).
        freeze_layers: also fix the embedding block and the bottom N transformer layers (an optional CPU
            budget knob; the presets' curves are meant to run without it: 0 trains every layer).
        bf16: bf16 mixed-precision training (a GPU option, passed through ``training_args``).
    """

    steps: int = 150
    checkpoints: tuple[int, ...] = CURVE_STEPS
    batch_size: int = 32
    lr: float = 3e-5
    warmup_steps: int = 10
    max_seq_length: int = 96
    freeze_embeddings: bool = True
    freeze_layers: int = 0
    bf16: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "checkpoints", tuple(int(c) for c in self.checkpoints))
        if self.steps < 1 or self.batch_size < 2 or self.max_seq_length < 8 or not 0 < self.lr < math.inf:
            raise ValueError(f"invalid budget (steps {self.steps}, batch_size {self.batch_size}, lr {self.lr}, "
                             f"max_seq_length {self.max_seq_length}): need steps >= 1, batch_size >= 2 (in-batch "
                             "negatives), a finite lr > 0 and max_seq_length >= 8")
        bad = [c for c in self.checkpoints if not 0 < c <= self.steps]
        if bad or len(set(self.checkpoints)) != len(self.checkpoints):
            raise ValueError(f"checkpoints must be distinct steps in (0, {self.steps}] (the final budget); got "
                             f"{list(self.checkpoints)}")
        if not 0 <= self.warmup_steps < self.steps:
            raise ValueError(f"warmup_steps must be in [0, steps), got {self.warmup_steps} with {self.steps} steps")
        check_int(self.freeze_layers, "freeze_layers", minimum=0)

    @property
    def eval_steps(self) -> tuple[int, ...]:
        """The evaluated steps: the checkpoints and the final step, ascending."""
        return tuple(sorted({*self.checkpoints, self.steps}))

    def describe(self, steps: int | None = None) -> str:
        """One line for reports, at ``steps`` (default: the final budget)."""
        frozen = ", frozen token embeddings" if self.freeze_embeddings else ""
        frozen += f", bottom {self.freeze_layers} layers frozen" if self.freeze_layers else ""
        precision = ", bf16 training" if self.bf16 else ""
        return (f"{self.steps if steps is None else steps} steps x batch {self.batch_size}, lr {self.lr:g} constant "
                f"after {self.warmup_steps} warm-up steps, max length {self.max_seq_length}{frozen}{precision}")

    def training_args(self) -> dict[str, Any]:
        """``training_args`` for :class:`~pyterrier_hybrid.training.HybridBatchTrainer`: the constant schedule."""
        return {"lr_scheduler_type": "constant_with_warmup", "warmup_steps": int(self.warmup_steps),
                "bf16": bool(self.bf16)}

    def setup_key(self) -> dict[str, Any]:
        """What makes a step's model: every field but ``steps`` and ``checkpoints`` (those only add steps).

        ``freeze_layers`` is left out when 0, so that folders written before the knob existed stay resumable.
        """
        key = asdict(self)
        del key["steps"], key["checkpoints"]
        if not key["freeze_layers"]:
            del key["freeze_layers"]
        return key


def alpha_preset(alpha: float) -> str:
    """The preset of a mono-batch probability: ``cross`` for 0, ``mono`` for 1, ``hybrid-<α>`` otherwise.

    :func:`~pyterrier_hybrid.training.validate_mode` gives ``cross`` the mono-batch probability 0 and
    ``mono`` 1, so the α curve shares those runs instead of training ``hybrid-0`` / ``hybrid-1`` again.
    """
    alpha = float(alpha)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha is a mono-batch probability in [0, 1], got {alpha}")
    return "cross" if alpha == 0.0 else "mono" if alpha == 1.0 else f"hybrid-{alpha:g}"


def _stem(preset: str, seed: int) -> str:
    return preset if seed < 0 else f"{preset}-s{seed}"


# ------------------------------------------------------------------------------------------------ evaluations
def question_values(grid: GridResult) -> pd.DataFrame:
    """Per question of a grid: its monolingual AP, its mean cross-lingual AP and its pooled values.

    Returns:
        One row per question id: ``qid``, ``qlang``, ``mono_AP`` (the setting with candidates in the
        question's language), ``cross_AP`` (mean over its cross-lingual settings), ``pooled_AP``,
        ``RankDistance`` and ``SameLangPref`` (pooled setting; NaN where the measure is undefined).
    """
    pq = grid.perquery
    ap = pq[(pq.measure == "AP") & (pq.dlang != POOLED)]
    mono = ap[ap.qlang == ap.dlang].set_index("qid")["value"]
    cross = ap[ap.qlang != ap.dlang].groupby("qid", sort=False)["value"].mean()
    pooled = pq[pq.dlang == POOLED]
    columns = {"mono_AP": mono, "cross_AP": cross}
    for column, measure in (("pooled_AP", "AP"), ("RankDistance", "RankDistance"), ("SameLangPref", "SameLangPref")):
        rows = pooled[pooled.measure.str.replace(r"@.*$", "", regex=True) == measure]
        columns[column] = rows.set_index("qid")["value"]
    frame = pd.DataFrame(columns).reindex(columns=list(QUESTION_COLUMNS))
    frame.index.name = "qid"
    frame = frame.reset_index()
    frame.insert(1, "qlang", [lang_of_id(q) for q in frame["qid"]])
    return frame


@dataclass
class StepEval:
    """One evaluated checkpoint of one run (``seed == -1`` and ``step == 0``: the untrained base model).

    Attributes:
        preset: preset name.
        seed: training seed.
        step: optimiser steps done.
        summary: :func:`~pyterrier_hybrid.protocol.summarise` of the grid.
        questions: :func:`question_values` of the grid.
        grid: the grid's per-setting results (``GridResult.results``).
        eval_s: seconds the evaluation took.
    """

    preset: str
    seed: int
    step: int
    summary: dict[str, float]
    questions: pd.DataFrame = field(repr=False)
    grid: pd.DataFrame = field(repr=False)
    eval_s: float = math.nan

    @staticmethod
    def paths(out: Path, preset: str, seed: int, step: int) -> dict[str, Path]:
        """The files of an evaluation under ``out`` (the JSON is written last: it marks the set complete)."""
        folder = out / "evals" / _stem(preset, seed)
        return {name: folder / f"step-{step}.{name}" for name in ("questions.csv", "grid.csv", "json")}

    def save(self, out: Path, setup: dict[str, Any]) -> None:
        """Write the three files atomically, the JSON (with the setup it belongs to) last."""
        paths = self.paths(out, self.preset, self.seed, self.step)
        for name, frame in (("questions.csv", self.questions), ("grid.csv", self.grid)):
            with atomic_path(paths[name]) as tmp:
                frame.to_csv(tmp, index=False)
        record = {"writer": WRITER, "setup": setup, "preset": self.preset, "seed": self.seed, "step": self.step,
                  "summary": self.summary, "eval_s": self.eval_s}
        with atomic_path(paths["json"]) as tmp:
            tmp.write_text(json.dumps(record, indent=2), encoding="utf-8")

    @classmethod
    def load(cls, out: Path, preset: str, seed: int, step: int, setup: dict[str, Any]) -> StepEval | None:
        """The stored evaluation, or None when missing, incomplete or written for another setup."""
        paths = cls.paths(out, preset, seed, step)
        if not all(p.is_file() for p in paths.values()):
            return None
        try:
            record = json.loads(paths["json"].read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return None
        if record.get("writer") != WRITER or record.get("setup") != setup:
            return None
        questions = pd.read_csv(paths["questions.csv"], float_precision="round_trip", keep_default_na=False,
                                na_values=[""])
        grid = pd.read_csv(paths["grid.csv"], float_precision="round_trip", keep_default_na=False, na_values=[""])
        return cls(preset, seed, step, record["summary"], questions, grid, record.get("eval_s", math.nan))


def _rng_state() -> dict[str, Any]:
    import torch

    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    import torch

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state:
        torch.cuda.set_rng_state_all(state["cuda"])


class CheckpointEvaluator(TrainerCallback):
    """Evaluate the model being trained at chosen steps, without changing the training.

    At the end of an optimiser step in ``steps`` (and not in ``skip``) the model is saved into a new
    temporary folder, ``evaluate(folder, step)`` is called (it loads the folder as a fresh model), and the
    folder is deleted. The model is switched to eval mode for the save and back to the mode it had, and the
    Python, NumPy, torch and CUDA RNG states are restored afterwards: loading a model may draw random
    numbers (initialising weights it then overwrites), and dropout in the next steps must see the same
    stream as without the callback. Under data parallelism only the main process evaluates.

    Args:
        steps: the global steps to evaluate at.
        evaluate: ``(model_dir, step) -> None``.
        skip: steps already evaluated elsewhere (an earlier, interrupted run).
        tmp_dir: where the temporary folders go (default: the system's temp folder).
    """

    def __init__(self, steps: Iterable[int], evaluate: Callable[[Path, int], None], *, skip: Iterable[int] = (),
                 tmp_dir: str | Path | None = None) -> None:
        self.steps = frozenset(int(s) for s in steps)
        self.skip = frozenset(int(s) for s in skip)
        self.evaluate = evaluate
        self.tmp_dir = tmp_dir
        self.evaluated: list[int] = []
        self.eval_s = 0.0

    def on_step_end(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        """Evaluate when ``state.global_step`` is a wanted step."""
        step = int(state.global_step)
        if step not in self.steps or step in self.skip or not state.is_world_process_zero or model is None:
            return
        model = getattr(model, "module", model)  # DDP / accelerate wrapper
        start = time.perf_counter()
        rng = _rng_state()
        was_training = model.training
        folder = Path(tempfile.mkdtemp(prefix=f"curve-step-{step}-", dir=self.tmp_dir))
        try:
            model.eval()
            model.save(str(folder), create_model_card=False)
            self.evaluate(folder, step)
            self.evaluated.append(step)
        finally:
            shutil.rmtree(folder, ignore_errors=True)  # our own temporary copy
            model.train(was_training)
            _set_rng_state(rng)
            self.eval_s += time.perf_counter() - start


def train_with_checkpoints(preset: str, pairs: pd.DataFrame, *, model: str, budget: CurveBudget, seed: int,
                           output_dir: str | Path, callbacks: Sequence[Any] = (), device: str | None = None,
                           data_description: str | None = None, verbose: bool = False) -> Any:
    """Train one curve run: ``preset`` on ``pairs`` to ``budget.steps`` with the constant schedule.

    Returns:
        The :class:`~pyterrier_hybrid.training.HybridBatchTrainer` after ``fit_pairs`` (the final model is in
        ``output_dir``; the trainer's own ``encoder_`` is not loaded).
    """
    from .training import HybridBatchTrainer

    class _CurveTrainer(HybridBatchTrainer):
        def _bi_encoder(self, output_dir: Path) -> None:
            # fit_pairs ends by loading the saved model as a BiEncoder; the curve loads its own encoders
            # (with its precision and device), so that load would only cost time.
            return None

    mode, alpha = parse_preset(preset)
    if mode is None:
        raise ValueError(f"preset {preset!r} trains nothing")
    trainer = _CurveTrainer(
        resolve_model(model), mode=mode, alpha=0.5 if math.isnan(alpha) else alpha, batch_size=budget.batch_size,
        max_steps=budget.steps, lr=budget.lr, warmup_ratio=0.0, seed=seed, freeze_embeddings=budget.freeze_embeddings,
        freeze_layers=budget.freeze_layers,
        max_seq_length=budget.max_seq_length, output_dir=output_dir, logging_steps=max(1, budget.steps // 6),
        device=device, training_args=budget.training_args(), callbacks=list(callbacks), verbose=verbose)
    trainer.fit_pairs(pairs, data_description=data_description)
    return trainer


# ------------------------------------------------------------------------------------------------ noise
def noise_conditions(models: Sequence[str], levels: Sequence[int]) -> list[tuple[str, int]]:
    """The (noise model, level) conditions of the robustness table; level 0 (clean) is shared by all models."""
    return [(m, int(level)) for m in models for level in levels]


def _noisy_grids(encoder: Any, *, benchmark: str, sample: BenchmarkSample | None, conditions: Sequence[tuple[str, int]],
                 name: str, seed: int = 0) -> pd.DataFrame:
    """Mono / cross / pooled mAP (and pooled rank distance) of one encoder per noise condition.

    The slice is encoded once; for each noisy condition only the questions are perturbed
    (``perturb(text, lang, model=, level=, seed=, key=qid)``) and re-encoded, the candidates' vectors reused.
    """
    from .datasets import load_language
    from .evaluation import EncodedBenchmark, LanguageVectors, encode_benchmark, evaluate_grid
    from .noise import perturb

    clean = encode_benchmark(encoder, benchmark, sample=sample)
    texts = {q.query_id: q.text for lang in clean.langs for q in load_language(benchmark, lang).queries}
    options = {"measures": ("AP",), "bias_measures": ("RankDistance",)}
    clean_row = summarise(evaluate_grid(clean, benchmark, name=name, **options))
    rows = []
    for noise, level in conditions:
        if level == 0:
            row = clean_row
        else:
            vectors = {}
            for lang, v in clean.vectors.items():
                noisy = [perturb(texts[q], lang, model=noise, level=level, seed=seed, key=q) for q in v.qids]
                vectors[lang] = LanguageVectors(v.qids, np.asarray(encoder.encode_queries(noisy), dtype=np.float32),
                                                v.docnos, v.dvecs)
            row = summarise(evaluate_grid(EncodedBenchmark(benchmark, vectors, clean.sample), benchmark, name=name,
                                          **options))
        rows.append({"noise": noise, "level": level, **row})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------------------ statistics
def _pm(mean: float, sd: float, digits: int) -> str:
    if pd.isna(mean):
        return ""
    return f"{mean:.{digits}f}" + ("" if pd.isna(sd) else f" ± {sd:.{digits}f}")


def _digits(metric: str) -> int:
    return 1 if metric.startswith("RankDistance") else 3


P_VALUES = ("p_t", "p_wilcoxon", "p_t_groups", "p_wilcoxon_groups")  # each also Holm-corrected per step


def _paired_tests(pair: pd.DataFrame) -> tuple[float, float, float, float]:
    """``t, p_t, wilcoxon, p_wilcoxon`` of the paired columns ``ref`` and ``other`` (NaN below 2 pairs)."""
    from scipy import stats

    if len(pair) < 2:
        return math.nan, math.nan, math.nan, math.nan
    if np.allclose(pair["ref"] - pair["other"], 0):  # identical values: no evidence of a difference
        return 0.0, 1.0, 0.0, 1.0
    t, p_t = (float(x) for x in stats.ttest_rel(pair["ref"], pair["other"]))
    w, p_w = (float(x) for x in stats.wilcoxon(pair["ref"], pair["other"]))
    return t, p_t, w, p_w


def significance(questions: pd.DataFrame, runs: pd.DataFrame, *, reference: str = REFERENCE,
                 metrics: dict[str, str] | None = None, base: str = "base") -> pd.DataFrame:
    """Paired tests over questions of ``reference`` against every other preset, at every step.

    Seeds are handled explicitly: each question's value is first averaged over the seeds of a preset, then
    the two presets are paired by question id and compared with ``scipy.stats.ttest_rel`` and
    ``scipy.stats.wilcoxon`` (questions where a value is undefined are dropped from that comparison).
    The translations of one question are not independent samples, so both tests are also run over
    question groups (``*_groups`` columns): each parallel group's paired values are averaged over its
    languages first (:func:`~pyterrier_hybrid.datasets.sample.query_group`), which is the conservative
    reading. At each step the p-values of each test and unit are Holm-corrected (statsmodels
    ``multipletests``) over all the comparisons of that step (presets x metrics); ``family`` is their number.
    The untrained base model is the same at every step (its step-0 evaluation is used).

    Args:
        questions: per-question values with ``preset``, ``seed``, ``step``, ``qid`` and the metric columns.
        runs: summary rows (``preset``, ``seed``, ``step`` and the summary metrics) for the seed-level means.
        reference: the preset compared with every other one.
        metrics: summary column -> per-question column (default :data:`CURVE_METRICS`).
        base: the untrained preset.

    Returns:
        One row per (step, metric, preset): ``n_questions``, seed counts, per-question means of both presets,
        ``delta`` (reference minus preset), ``t``, ``p_t``, ``p_t_holm``, ``wilcoxon``, ``p_wilcoxon``,
        ``p_wilcoxon_holm``, the same over groups (``n_groups``, ``t_groups``, ``p_t_groups``, ...), ``family``
        and the seed-level ``mean``/``sd`` of the summary metric of both.
    """
    from statsmodels.stats.multitest import multipletests

    metrics = dict(metrics or CURVE_METRICS)
    if questions.empty or reference not in set(questions["preset"]):
        return pd.DataFrame()
    base_q = questions[questions.preset == base]
    base_runs = runs[runs.preset == base]
    rows = []
    for step in sorted(set(questions.loc[(questions.preset == reference), "step"])):
        at_step = questions[(questions.step == step) & (questions.preset != base)]
        runs_at = runs[(runs.step == step) & (runs.preset != base)]
        if len(base_q):
            at_step = pd.concat([at_step, base_q], ignore_index=True)
            runs_at = pd.concat([runs_at, base_runs], ignore_index=True)
        means = at_step.groupby(["preset", "qid"], sort=False)[list(metrics.values())].mean()
        seeds = at_step.groupby("preset", sort=False)["seed"].nunique()
        ref = means.loc[reference]
        step_rows = []
        for preset in dict.fromkeys(at_step["preset"]):
            if preset == reference:
                continue
            other = means.loc[preset]
            for summary_metric, column in metrics.items():
                pair = pd.concat({"ref": ref[column], "other": other[column]}, axis=1, join="inner").dropna()
                diff = pair["ref"] - pair["other"]
                t, p_t, w, p_w = _paired_tests(pair)
                groups = pair.groupby(pair.index.map(query_group), sort=False).mean()
                t_g, p_t_g, w_g, p_w_g = _paired_tests(groups)
                ref_seed = runs_at.loc[runs_at.preset == reference, summary_metric]
                other_seed = runs_at.loc[runs_at.preset == preset, summary_metric]
                step_rows.append({
                    "step": step, "metric": summary_metric, "reference": reference, "preset": preset,
                    "n_questions": len(pair), "reference_seeds": int(seeds[reference]),
                    "preset_seeds": int(seeds[preset]),
                    "reference_mean": float(pair["ref"].mean()) if len(pair) else math.nan,
                    "preset_mean": float(pair["other"].mean()) if len(pair) else math.nan,
                    "delta": float(diff.mean()) if len(pair) else math.nan,
                    "t": t, "p_t": p_t, "wilcoxon": w, "p_wilcoxon": p_w, "n_groups": len(groups),
                    "t_groups": t_g, "p_t_groups": p_t_g, "wilcoxon_groups": w_g, "p_wilcoxon_groups": p_w_g,
                    "reference_seed_mean": float(ref_seed.mean()),
                    "reference_seed_sd": float(ref_seed.std(ddof=1)) if len(ref_seed) > 1 else math.nan,
                    "preset_seed_mean": float(other_seed.mean()),
                    "preset_seed_sd": float(other_seed.std(ddof=1)) if len(other_seed) > 1 else math.nan,
                })
        frame = pd.DataFrame(step_rows)
        for test in P_VALUES:
            frame[f"{test}_holm"] = math.nan
            ok = frame[test].notna()
            if ok.any():
                frame.loc[ok, f"{test}_holm"] = multipletests(frame.loc[ok, test].to_numpy(), method="holm")[1]
        frame["family"] = len(frame)
        rows.append(frame)
    columns = ["step", "metric", "reference", "preset", "n_questions", "reference_seeds", "preset_seeds",
               "reference_mean", "preset_mean", "delta", "t", "p_t", "p_t_holm", "wilcoxon", "p_wilcoxon",
               "p_wilcoxon_holm", "n_groups", "t_groups", "p_t_groups", "p_t_groups_holm", "wilcoxon_groups",
               "p_wilcoxon_groups", "p_wilcoxon_groups_holm", "family", "reference_seed_mean", "reference_seed_sd",
               "preset_seed_mean", "preset_seed_sd"]
    return pd.concat(rows, ignore_index=True)[columns] if rows else pd.DataFrame(columns=columns)


def _mean_sd(frame: pd.DataFrame, keys: list[str], metrics: Sequence[str]) -> pd.DataFrame:
    """Mean, sd (NaN with one seed) and the number of seeds of ``metrics`` per ``keys`` (in first-seen order)."""
    rows = []
    for key, group in frame.groupby(keys, sort=False):
        row = dict(zip(keys, key if isinstance(key, tuple) else (key,)))
        row["n"] = int(group["seed"].nunique())
        for m in metrics:
            row[m] = float(group[m].mean())
            row[f"{m}_sd"] = float(group[m].std(ddof=1)) if len(group) > 1 else math.nan
        rows.append(row)
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------------------ plots
def _title(fig: Any, text: str, *, fontsize: float = 10.0) -> None:
    """A suptitle wrapped to the figure's width (so it never runs off the figure)."""
    chars = max(20, int(fig.get_figwidth() * 72 / (0.6 * fontsize)))
    fig.suptitle(textwrap.fill(text, chars), fontsize=fontsize)


def _save(fig: Any, path: Path, dpi: int) -> None:
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")


def _metric_label(metric: str) -> str:
    label = metric.replace("_mAP", " mAP").replace("RankDistance", "rank distance (pooled)")
    return label + (" ↓" if metric in LOWER_IS_BETTER else "")


def plot_curves(curve: pd.DataFrame, *, path: str | Path, title: str, metrics: Sequence[str] = tuple(CURVE_METRICS),
                base: str = "base", dpi: int = 130) -> Any:
    """Metric against training steps, one line per preset with a ± sd band over seeds.

    Every trained run starts from the base model, so each line starts at the base value at step 0; the
    base model is also drawn as a dashed line.

    Args:
        curve: :meth:`CurveResult.curve_table` (``preset``, ``step``, ``n``, ``<metric>``, ``<metric>_sd``).
        path: PNG to write (atomically).
        title: figure title (wrapped to the figure's width).
        metrics: one panel each.
        base: the untrained preset.
        dpi: resolution.

    Returns:
        The matplotlib figure.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 7.2), layout="constrained")
    axes = np.atleast_1d(fig.subplots(2, math.ceil(len(metrics) / 2), squeeze=False)).ravel()
    base_row = curve[curve.preset == base]
    trained = curve[curve.preset != base]
    for ax, metric in zip(axes, metrics):
        for preset, rows in trained.groupby("preset", sort=False):
            rows = rows.sort_values("step")
            x, y = rows["step"].to_numpy(float), rows[metric].to_numpy(float)
            sd = rows[f"{metric}_sd"].fillna(0).to_numpy(float)
            if len(base_row):
                x, y, sd = np.r_[0, x], np.r_[base_row[metric].iloc[0], y], np.r_[0, sd]
            n = int(rows["n"].max())
            (line,) = ax.plot(x, y, marker="o", ms=3, label=f"{preset} (n={n})")
            ax.fill_between(x, y - sd, y + sd, color=line.get_color(), alpha=0.18, lw=0)
        if len(base_row):
            ax.axhline(base_row[metric].iloc[0], color="gray", ls="--", lw=1, label="base (no training)")
        ax.set_xlabel("training steps")
        ax.set_ylabel(_metric_label(metric))
        ax.grid(alpha=0.3)
    for ax in axes[len(metrics):]:
        ax.set_visible(False)
    axes[0].legend(fontsize="small")
    _title(fig, title)
    _save(fig, Path(path), dpi)
    return fig


def plot_alpha(alpha: pd.DataFrame, *, path: str | Path, title: str, metrics: Sequence[str] = tuple(CURVE_METRICS),
               dpi: int = 130) -> Any:
    """Metric against α (probability of a monolingual batch) at the final budget, ± sd error bars.

    Args:
        alpha: :meth:`CurveResult.alpha_table` (``alpha``, ``n``, ``<metric>``, ``<metric>_sd``).
        path: PNG to write.
        title: figure title (wrapped).
        metrics: one panel each.
        dpi: resolution.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(3.0 * len(metrics) + 1, 3.8), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(metrics)))
    for ax, metric in zip(axes, metrics):
        x = alpha["alpha"].to_numpy(float)
        ax.errorbar(x, alpha[metric].to_numpy(float), yerr=alpha[f"{metric}_sd"].fillna(0).to_numpy(float),
                    marker="o", capsize=3)
        for xi, yi, n in zip(x, alpha[metric], alpha["n"]):
            ax.annotate(f"n={n}", (xi, yi), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=7)
        ax.set_xticks(x, [f"{a:g}" for a in x])
        ax.set_xlabel("α (0 = cross, 1 = mono)")
        ax.set_ylabel(_metric_label(metric))
        ax.grid(alpha=0.3)
    _title(fig, title)
    _save(fig, Path(path), dpi)
    return fig


def plot_noise(noise: pd.DataFrame, *, path: str | Path, title: str,
               metrics: Sequence[str] = ("mono_mAP", "cross_mAP", "pooled_mAP"), dpi: int = 130) -> Any:
    """Plot mAP against noise level, one row of panels per noise model, one line per preset (± sd error bars).

    Args:
        noise: :meth:`CurveResult.noise_table` (``noise``, ``level``, ``preset``, ``n``, metrics and sds).
        path: PNG to write.
        title: figure title (wrapped).
        metrics: one panel column each.
        dpi: resolution.
    """
    from matplotlib.figure import Figure

    models = list(dict.fromkeys(noise["noise"]))
    fig = Figure(figsize=(3.2 * len(metrics) + 1, 2.8 * len(models) + 0.8), layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(models), len(metrics), squeeze=False))
    for r, model in enumerate(models):
        for c, metric in enumerate(metrics):
            ax = axes[r, c]
            for preset, rows in noise[noise.noise == model].groupby("preset", sort=False):
                rows = rows.sort_values("level")
                ax.errorbar(rows["level"], rows[metric], yerr=rows[f"{metric}_sd"].fillna(0), marker="o", capsize=2,
                            label=f"{preset} (n={int(rows['n'].max())})")
            ax.set_title(f"{model} noise", fontsize="small")
            ax.set_xlabel("noise level (% of words)")
            ax.set_ylabel(_metric_label(metric))
            ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize="x-small")
    _title(fig, title)
    _save(fig, Path(path), dpi)
    return fig


# ------------------------------------------------------------------------------------------------ result
def _markdown_table(frame: pd.DataFrame, labels: Sequence[str], metrics: Sequence[str],
                    extra: Sequence[tuple[str, Callable[[pd.Series], str]]] = ()) -> str:
    header = [*labels, "seeds", *[f"{m} ↓" if m in LOWER_IS_BETTER else m for m in metrics], *[e[0] for e in extra]]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for _, row in frame.iterrows():
        cells = [str(row[k]) for k in labels] + [str(int(row["n"]))]
        cells += [_pm(row[m], row.get(f"{m}_sd", math.nan), _digits(m)) for m in metrics]
        cells += [fmt(row) for _, fmt in extra]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


@dataclass
class CurveResult:
    """What :func:`run_budget_curve` measured.

    Attributes:
        runs: one row per evaluation: ``preset``, ``seed``, ``step``, the summary metrics, ``train_s`` (the
            run's training time, evaluations excluded) and ``eval_s``.
        questions: per-question values of every evaluation (``preset``, ``seed``, ``step`` + :func:`question_values`).
        noise: one row per (preset, seed, noise model, level): mono / cross / pooled mAP, rank distance.
        budget: the budget of every run.
        info: setup, slice, data, α presets, and what this call trained and evaluated (``trained``,
            ``evaluated``).
    """

    runs: pd.DataFrame
    questions: pd.DataFrame = field(repr=False)
    noise: pd.DataFrame
    budget: CurveBudget
    info: dict[str, Any]
    _cache: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def metrics(self) -> list[str]:
        """The summary columns of :attr:`runs`."""
        return [c for c in self.runs.columns if c not in ("preset", "seed", "step", "train_s", "eval_s")]

    def budget_line(self, steps: int | None = None) -> str:
        """``Budget: ...`` for reports: training, data, slice, encoding precision."""
        return (f"Budget: {self.budget.describe(steps)}; trained on {self.info['train_data']}; evaluated zero-shot "
                f"on {self.info['evaluation']}; evaluation encodings {self.info['encoding']}.")

    def curve_table(self) -> pd.DataFrame:
        """Per (preset, step): ``n`` seeds, mean and sd of every metric; base once at step 0."""
        return _mean_sd(self.runs, ["preset", "step"], self.metrics)

    def final_table(self) -> pd.DataFrame:
        """Every preset at the final budget: ``n``, mean and sd of every metric, mean training minutes per run."""
        final = self.runs[(self.runs.step == self.budget.steps) | (self.runs.preset == "base")]
        table = _mean_sd(final, ["preset"], self.metrics)
        minutes = final.groupby("preset", sort=False)["train_s"].mean() / 60
        return table.assign(train_min=table["preset"].map(minutes), steps=self.budget.steps)

    def alpha_table(self) -> pd.DataFrame:
        """The α curve at the final budget: ``alpha``, its ``preset`` (0: cross, 1: mono), ``n``, metrics."""
        final = self.runs[self.runs.step == self.budget.steps]
        rows = []
        for alpha in self.info["alphas"]:
            preset = alpha_preset(alpha)
            table = _mean_sd(final[final.preset == preset], ["preset"], self.metrics)
            if len(table):
                rows.append(table.assign(alpha=alpha).iloc[0])
        table = pd.DataFrame(rows).reset_index(drop=True)
        return table[["alpha", *[c for c in table.columns if c != "alpha"]]] if len(table) else table

    def significance(self) -> pd.DataFrame:
        """:func:`significance` of ``hybrid-0.5`` against the other presets at every step (computed once)."""
        if "significance" not in self._cache:
            self._cache["significance"] = significance(self.questions, self.runs, reference=self.info["reference"])
        return self._cache["significance"].copy()

    def noise_table(self) -> pd.DataFrame:
        """Per (noise model, level, preset): ``n`` seeds and mean / sd of the metrics, at the final budget."""
        if self.noise.empty:
            return pd.DataFrame()
        metrics = [c for c in self.noise.columns if c not in ("preset", "seed", "noise", "level")]
        return _mean_sd(self.noise, ["noise", "level", "preset"], metrics)

    # -- reports ---------------------------------------------------------------------------------------------
    def markdown(self) -> dict[str, str]:
        """Markdown of every table, each with its budget line.

        Returns:
            ``curve``, ``final``, ``alpha`` (if run), ``significance``, ``noise`` (if run) → markdown.
        """
        if "markdown" not in self._cache:
            self._cache["markdown"] = self._markdown()
        return dict(self._cache["markdown"])

    def _markdown(self) -> dict[str, str]:
        metrics = [m for m in self.metrics if m in CURVE_METRICS or m in ("SameLangPref", "PEER@1000")]
        out = {}
        curve = self.curve_table()
        out["curve"] = (f"{self.budget_line()} Rows: mean ± sd over seeds after `step` steps of one run per "
                        "(preset, seed); base = no training.\n\n" + _markdown_table(curve, ["preset", "step"], metrics))
        final = self.final_table()
        out["final"] = (f"{self.budget_line()} Train min: mean training minutes per run (evaluations "
                        "excluded).\n\n" + _markdown_table(final, ["preset"], metrics, extra=[
                            ("train min", lambda r: "" if pd.isna(r["train_min"]) else f"{r['train_min']:.1f}")]))
        alpha = self.alpha_table()
        if len(alpha):
            alpha = alpha.assign(alpha=[f"{a:g} ({p})" for a, p in zip(alpha["alpha"], alpha["preset"])])
            out["alpha"] = (f"{self.budget_line()} α = probability of a monolingual batch; α = 0 is the `cross` "
                            "preset and α = 1 is `mono` (validate_mode maps them); `seeds` = runs per row.\n\n"
                            + _markdown_table(alpha, ["alpha"], metrics))
        out["significance"] = self._significance_markdown()
        noise = self.noise_table()
        if len(noise):
            nm = [m for m in ("mono_mAP", "cross_mAP", "pooled_mAP", "RankDistance") if m in noise.columns]
            out["noise"] = (f"{self.budget_line()} Query noise on the final models: each question perturbed with "
                            "`perturb(text, lang, model=<noise>, level=<level>, seed=0, key=qid)` and re-encoded; "
                            "candidates unchanged; level 0 = clean.\n\n"
                            + _markdown_table(noise, ["noise", "level", "preset"], nm))
        return out

    def _significance_markdown(self) -> str:
        sig = self.significance()
        if sig.empty:
            return f"No significance tests: the reference preset {self.info['reference']!r} was not run.\n"
        lines = [f"{self.budget_line()}",
                 "",
                 f"Paired tests over questions, {self.info['reference']} against each other preset at each step. "
                 "Seeds: each question's value is averaged over a preset's seeds first, then the presets are paired "
                 "by question (scipy.stats.ttest_rel and scipy.stats.wilcoxon). The translations of a question "
                 "are not independent, so both tests are repeated over question groups (each group's values "
                 "averaged over its languages first): the conservative reading. p-values are Holm-corrected "
                 "(statsmodels multipletests) over all comparisons at a step, separately per test and unit; "
                 "`family` is their number. Δ = reference − preset (per-question mean; for RankDistance lower is "
                 "better). Seed-level columns: mean ± sd over seeds of the summary metric.",
                 ""]
        header = ["step", "family", "metric", "vs", "questions / groups", "seeds (ref/other)", "Δ",
                  "t-test p (Holm)", "Wilcoxon p (Holm)", "groups: t-test p (Holm)", "groups: Wilcoxon p (Holm)",
                  f"{self.info['reference']} (seeds)", "other (seeds)"]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for _, r in sig.iterrows():
            d = _digits(r["metric"])
            lines.append("| " + " | ".join([
                str(r["step"]), str(r["family"]), r["metric"], r["preset"], f"{r['n_questions']} / {r['n_groups']}",
                f"{r['reference_seeds']}/{r['preset_seeds']}", f"{r['delta']:+.{d}f}",
                *(f"{r[p]:.2g} ({r[f'{p}_holm']:.2g})" for p in P_VALUES),
                _pm(r["reference_seed_mean"], r["reference_seed_sd"], d),
                _pm(r["preset_seed_mean"], r["preset_seed_sd"], d),
            ]) + " |")
        return "\n".join(lines) + "\n"

    def report(self) -> str:
        """All tables as one markdown document."""
        titles = {"curve": "Metrics over the training budget", "final": "Final budget",
                  "alpha": "α trade-off at the final budget",
                  "significance": f"Significance ({self.info['reference']} against every other preset)",
                  "noise": "Query-noise robustness at the final budget"}
        parts = [f"## {titles[name]}\n\n{text}" for name, text in self.markdown().items()]
        return "\n".join(parts)

    def save(self, out_dir: str | Path, *, plots: bool = True) -> dict[str, Path]:
        """Write every table as CSV + markdown, ``report.md``, and the plots (``plots/*.png``) to ``out_dir``.

        Returns:
            Name → written path.
        """
        out = Path(out_dir)
        written: dict[str, Path] = {}
        tables = {"runs": self.runs, "curve": self.curve_table(), "final": self.final_table(),
                  "alpha": self.alpha_table(), "significance": self.significance(), "noise": self.noise_table()}
        for name, frame in tables.items():
            if len(frame):  # every number names its budget: the steps of its row, or the final budget
                presets = frame["preset"] if "preset" in frame.columns else [None] * len(frame)
                steps = frame["step"] if "step" in frame.columns else [
                    0 if p == "base" else self.budget.steps for p in presets]
                frame = frame.assign(budget=[self.budget.describe(int(st)) if st else "no training" for st in steps])
            with atomic_path(out / f"{name}.csv") as tmp:
                frame.to_csv(tmp, index=False)
            written[f"{name}.csv"] = out / f"{name}.csv"
        for name, text in self.markdown().items():
            with atomic_path(out / f"{name}.md") as tmp:
                tmp.write_text(text, encoding="utf-8")
            written[f"{name}.md"] = out / f"{name}.md"
        with atomic_path(out / "report.md") as tmp:
            tmp.write_text(self.report(), encoding="utf-8")
        written["report.md"] = out / "report.md"
        if not plots:
            return written
        where = f"{self.info['evaluation_short']}; batch {self.budget.batch_size}, lr {self.budget.lr:g}"
        path = out / "plots" / "curves.png"
        plot_curves(tables["curve"], path=path, title=f"Metrics vs training steps ({where}; ± sd over seeds)")
        written["curves.png"] = path
        if len(tables["alpha"]):
            path = out / "plots" / "alpha.png"
            plot_alpha(tables["alpha"], path=path, title=f"α trade-off after {self.budget.steps} steps ({where})")
            written["alpha.png"] = path
        if len(tables["noise"]):
            path = out / "plots" / "noise.png"
            plot_noise(tables["noise"], path=path, title=f"Query noise after {self.budget.steps} steps ({where})")
            written["noise.png"] = path
        return written


# ------------------------------------------------------------------------------------------------ estimate
def estimate_cpu_seconds(*, train_runs: int, steps: int, batch_size: int, evaluations: int, texts_per_eval: int,
                         noise_models: int, questions: int, noisy_conditions: int,
                         pairs_per_s: float = CPU_TRAIN_PAIRS_PER_S,
                         sentences_per_s: float = CPU_BF16_SENTENCES_PER_S) -> dict[str, float]:
    """Seconds a budget-curve run needs at the given training and (bf16) encoding rates.

    Args:
        train_runs: trained (preset, seed) runs.
        steps: steps per run.
        batch_size: pairs per step.
        evaluations: checkpoint evaluations (each encodes the slice's questions and candidates).
        texts_per_eval: questions + candidates of the slice.
        noise_models: final models evaluated under noise (each encodes the slice once).
        questions: questions of the slice (re-encoded per noisy condition).
        noisy_conditions: (noise model, level > 0) conditions.
        pairs_per_s: training throughput.
        sentences_per_s: encoding throughput.

    Returns:
        ``train``, ``evaluate``, ``noise`` and ``total`` seconds (grid scoring and model loading not included).
    """
    train = train_runs * steps * batch_size / pairs_per_s
    evaluate = evaluations * texts_per_eval / sentences_per_s
    noise = noise_models * (texts_per_eval + noisy_conditions * questions) / sentences_per_s
    return {"train": train, "evaluate": evaluate, "noise": noise, "total": train + evaluate + noise}


# ------------------------------------------------------------------------------------------------ the run
def _fingerprint(*parts: Any) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part if isinstance(part, bytes) else str(part).encode("utf-8"))
        h.update(b"\x1f")
    return h.hexdigest()[:16]


def _pairs_fingerprint(pairs: pd.DataFrame) -> str:
    frame = pairs[sorted(pairs.columns)].astype(str)
    return _fingerprint(list(frame.columns), pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())


def _plain(value: Any) -> Any:
    """``value`` as it reads back from JSON (tuples become lists), so stored and fresh keys compare equal."""
    return json.loads(json.dumps(value))


def _check_out_dir(out: Path, setup: dict[str, Any]) -> None:
    """Refuse an output folder that holds something else, or a budget-curve run of another setup."""
    marker = out / SETUP_FILE
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} is a file; choose a folder for the budget curve")
    if marker.is_file():
        try:
            saved = json.loads(marker.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise ValueError(f"{marker} is not valid JSON ({e}); choose another output folder") from None
        if saved.get("writer") != WRITER:
            raise FileExistsError(f"{marker} was not written by {WRITER}; choose another output folder")
        old = saved.get("setup", {})
        differ = sorted(k for k in set(old) | set(setup) if old.get(k) != setup.get(k))
        if differ:
            raise ValueError(f"{out} holds a budget curve of another setup (differs in: {', '.join(differ)}); "
                             "choose another output folder or repeat that setup")
    elif out.is_dir() and any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty and holds no budget curve ({SETUP_FILE} missing); choose an empty "
                              "or new output folder")
    existing = next(p for p in (out, *out.absolute().parents) if p.exists())
    if not os.access(existing, os.W_OK | os.X_OK):
        raise PermissionError(f"cannot write to {existing} (for the output folder {out}); choose another folder")


def plan_budget_curve(*, out_dir: str | Path, train_pairs: pd.DataFrame | None, sample: BenchmarkSample | None,
                      benchmark: str = "xquad-r", model: str = DEFAULT_MODEL, presets: Sequence[str] = CURVE_PRESETS,
                      seeds: Iterable[int] = (0, 1, 2), budget: CurveBudget = CurveBudget(),
                      alphas: Iterable[float] = ALPHAS, alpha_seeds: Iterable[int] | None = None,
                      noise_models: Sequence[str] = NOISE_MODELS, noise_levels: Sequence[int] = NOISE_LEVELS,
                      noise_presets: Sequence[str] = NOISE_PRESETS, train_description: str = "",
                      reference: str = REFERENCE, quantize: str | None = None, device: str | None = None,
                      encode_batch_size: int = 64, plots: bool = True, verbose: bool = True) -> CurvePlan:
    """Check every argument and the output folder, and list the work; nothing is written or trained.

    Args:
        out_dir: where everything goes (an empty / new folder, or one holding a run of the same setup, which is
            resumed): ``evals/``, ``models/`` (final models), ``noise/``, tables, ``report.md``, ``plots/``.
        train_pairs: training pairs (:mod:`pyterrier_hybrid.datasets.pairs`); may be None with only ``"base"``.
        sample: the fixed evaluation slice (None: the whole benchmark).
        benchmark: evaluation benchmark.
        model: the starting model (hub id or directory; default the offline e5-small).
        presets: curve presets (``"base"`` is evaluated once, untrained).
        seeds: training seeds of the curve presets.
        budget: the budget and checkpoints of every run.
        alphas: the α curve's points; each maps to a preset (:func:`alpha_preset`); those not in ``presets``
            are trained with ``alpha_seeds`` and evaluated at the final step only.
        alpha_seeds: seeds of those extra α runs (default: ``seeds``).
        noise_models: query-noise models of the robustness table (empty: no noise table).
        noise_levels: noise levels in percent of words (0 = clean).
        noise_presets: presets evaluated under noise, each with every seed (a subset of ``presets``).
        train_description: what ``train_pairs`` is, for the reports.
        reference: the preset the significance tests compare with every other one.
        quantize: encoding speed mode of every evaluation: None (float32), ``"bf16"`` or ``"int8"``.
        device: torch device of training and encoding (default: CUDA when present).
        encode_batch_size: encoding batch size.
        plots: write the PNG plots.
        verbose: progress output.

    Returns:
        A :class:`CurvePlan`; :meth:`CurvePlan.run` does the work.

    Raises:
        ValueError: a bad argument (one line naming it).
        FileExistsError: an output folder holding files this module did not write.
    """
    from .noise import validate_level, validate_model

    presets = list(presets)
    for p in presets:
        parse_preset(p)
    if len(set(presets)) != len(presets):
        raise ValueError(f"presets repeat: {presets}")
    seeds = _validate_seeds(seeds, "seeds")
    if not seeds:
        raise ValueError("seeds is empty; pass at least one seed")
    alphas = [float(a) for a in alphas]
    alpha_presets = [alpha_preset(a) for a in alphas]  # raises outside [0, 1]
    if len(set(alpha_presets)) != len(alpha_presets):
        raise ValueError(f"alphas repeat: {alphas}")
    alpha_seeds = seeds if alpha_seeds is None else _validate_seeds(alpha_seeds, "alpha seeds")
    extra_alpha = [p for p in alpha_presets if p not in presets]
    if extra_alpha and not alpha_seeds:
        raise ValueError(f"alpha seeds is empty but the α curve needs runs of {', '.join(extra_alpha)}")
    noise_models = [validate_model(m) for m in noise_models]
    noise_levels = [int(validate_level(level)) for level in noise_levels]
    if len(set(noise_levels)) != len(noise_levels) or len(set(noise_models)) != len(noise_models):
        raise ValueError(f"noise models or levels repeat: {noise_models}, {noise_levels}")
    noise_presets = list(noise_presets) if noise_models else []
    if missing := [p for p in noise_presets if p not in presets]:
        raise ValueError(f"noise presets {missing} are not among the presets {presets}")
    if train_pairs is None and any(p != "base" for p in [*presets, *extra_alpha]):
        raise ValueError("train_pairs is None but presets other than 'base' need training data")
    if sample is not None and sample.benchmark != benchmark:
        raise ValueError(f"the evaluation slice was drawn from {sample.benchmark}, not {benchmark}")
    if quantize not in (None, "bf16", "int8"):
        raise ValueError(f"quantize must be None (float32), 'bf16' or 'int8', not {quantize!r}")
    if encode_batch_size < 1:
        raise ValueError(f"encode_batch_size must be >= 1, got {encode_batch_size}")
    device = _resolve_device(device, budget)

    out = Path(out_dir)
    setup = _plain({
        "writer": WRITER, "model": str(model), "budget": budget.setup_key(), "benchmark": benchmark,
        "train_data": _pairs_fingerprint(train_pairs) if train_pairs is not None else None,
        "evaluation": (_fingerprint(sorted(sample.groups), sorted(sample.docnos)) if sample is not None else "all"),
        "quantize": quantize, "device": device.split(":")[0],
    })
    _check_out_dir(out, setup)
    info = {
        "presets": presets, "seeds": seeds, "alphas": alphas, "alpha_presets": alpha_presets,
        "alpha_seeds": alpha_seeds, "reference": reference, "model": str(model), "budget": budget.describe(),
        "budget_fields": asdict(budget), "eval_steps": list(budget.eval_steps),
        "train_data": train_description or ("none" if train_pairs is None else f"{len(train_pairs)} pairs"),
        "evaluation": sample.description if sample is not None else f"{benchmark} (all questions and candidates)",
        "evaluation_short": (f"{benchmark}, {len(sample.groups)} question groups, {len(sample.docnos)} candidates"
                             if sample is not None else f"all of {benchmark}"),
        "encoding": {None: "float32", "bf16": "bf16 (speed mode)", "int8": "int8 (speed mode)"}[quantize],
        "device": device, "noise_models": noise_models, "noise_levels": noise_levels, "noise_presets": noise_presets,
    }
    jobs: list[tuple[str, int, tuple[int, ...]]] = [("base", -1, (0,))] if "base" in presets else []
    jobs += [(p, s, budget.eval_steps) for s in seeds for p in presets if p != "base"]
    jobs += [(p, s, (budget.steps,)) for s in alpha_seeds for p in extra_alpha]
    noise_jobs = [("base", -1)] if "base" in noise_presets else []
    noise_jobs += [(p, s) for p in noise_presets if p != "base" for s in seeds]
    runner = _Runner(out=out, setup=setup, model=str(model), benchmark=benchmark, sample=sample, budget=budget,
                     pairs=train_pairs, train_description=train_description, quantize=quantize, device=device,
                     encode_batch_size=encode_batch_size, verbose=verbose)
    return CurvePlan(runner, info, jobs, noise_jobs, noise_conditions(noise_models, noise_levels), plots)


def run_budget_curve(**kwargs: Any) -> CurveResult:
    """Train every (preset, seed) once to the final budget, evaluating at every checkpoint; then tables and plots.

    :func:`plan_budget_curve` (same keyword arguments) followed by :meth:`CurvePlan.run`.

    Returns:
        A :class:`CurveResult` (also written to ``out_dir``); ``info["trained"]`` and ``info["evaluated"]`` list
        what this call trained and evaluated (empty when everything was reused).
    """
    return plan_budget_curve(**kwargs).run()


@dataclass
class CurvePlan:
    """The validated work of a budget curve (see :func:`plan_budget_curve`).

    Attributes:
        runner: trains, evaluates and reuses the runs.
        info: setup and report fields.
        jobs: ``(preset, seed, steps to evaluate)``; base is ``("base", -1, (0,))``.
        noise_jobs: ``(preset, seed)`` final models evaluated under noise.
        conditions: ``(noise model, level)`` pairs.
        plots: write the PNG plots.
    """

    runner: _Runner
    info: dict[str, Any]
    jobs: list[tuple[str, int, tuple[int, ...]]]
    noise_jobs: list[tuple[str, int]]
    conditions: list[tuple[str, int]]
    plots: bool = True

    def describe(self) -> str:
        """What the plan trains and evaluates, in one paragraph."""
        trained = [f"{p}-s{s}" for p, s, _ in self.jobs if p != "base"]
        evaluations = sum(len(steps) for _, _, steps in self.jobs)
        return (f"{len(trained)} training runs ({self.runner.budget.describe()}), {evaluations} checkpoint "
                f"evaluations on {self.info['evaluation']}, {len(self.noise_jobs)} models x "
                f"{len(self.conditions)} noise conditions; output in {self.runner.out}")

    def estimate(self, *, pairs_per_s: float = CPU_TRAIN_PAIRS_PER_S,
                 sentences_per_s: float = CPU_BF16_SENTENCES_PER_S) -> dict[str, float]:
        """:func:`estimate_cpu_seconds` of the whole plan (nothing reused), from the slice's sizes."""
        sample, benchmark = self.runner.sample, self.runner.benchmark
        if sample is not None:
            from .languages import validate_benchmark

            questions, candidates = len(sample.groups) * len(validate_benchmark(benchmark)), len(sample.docnos)
        else:
            from .datasets import load_language
            from .languages import validate_benchmark

            data = [load_language(benchmark, lang) for lang in validate_benchmark(benchmark)]
            questions, candidates = sum(len(d.queries) for d in data), sum(len(d.docs) for d in data)
        budget = self.runner.budget
        return estimate_cpu_seconds(
            train_runs=sum(p != "base" for p, _, _ in self.jobs), steps=budget.steps, batch_size=budget.batch_size,
            evaluations=sum(len(steps) for _, _, steps in self.jobs), texts_per_eval=questions + candidates,
            noise_models=len(self.noise_jobs), questions=questions,
            noisy_conditions=sum(level > 0 for _, level in self.conditions),
            pairs_per_s=pairs_per_s, sentences_per_s=sentences_per_s)

    def run(self) -> CurveResult:
        """Train and evaluate what is not stored yet, then write the tables, report and plots."""
        from tqdm.auto import tqdm

        runner, info = self.runner, self.info
        runner.out.mkdir(parents=True, exist_ok=True)
        with atomic_path(runner.out / SETUP_FILE) as tmp:  # first write: proves the folder is writable
            tmp.write_text(json.dumps({"writer": WRITER, "setup": runner.setup, "last_call": info}, indent=2),
                           encoding="utf-8")
        evals: list[StepEval] = []
        train_s: dict[tuple[str, int], float] = {}
        for preset, seed, steps in tqdm(self.jobs, desc="budget curve", unit="run", disable=not runner.verbose):
            done, train_s[preset, seed] = runner.run(preset, seed, steps)
            evals += done
        runs = pd.DataFrame([{"preset": e.preset, "seed": e.seed, "step": e.step, **e.summary,
                              "train_s": train_s[e.preset, e.seed], "eval_s": e.eval_s} for e in evals])
        questions = pd.concat([e.questions.assign(preset=e.preset, seed=e.seed, step=e.step) for e in evals],
                              ignore_index=True)
        questions = questions[["preset", "seed", "step", *[c for c in questions.columns
                                                           if c not in ("preset", "seed", "step")]]]
        frames = [runner.noise(preset, seed, self.conditions)
                  for preset, seed in tqdm(self.noise_jobs, desc="noise", unit="model",
                                           disable=not runner.verbose or not self.noise_jobs)]
        noise = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        result = CurveResult(runs, questions, noise, runner.budget,
                             {**info, "trained": list(runner.trained), "evaluated": list(runner.evaluated)})
        result.save(runner.out, plots=self.plots)
        return result


def _validate_seeds(seeds: Iterable[int], what: str) -> list[int]:
    seeds = list(seeds)
    if any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 0 for s in seeds):
        raise ValueError(f"{what} must be integers >= 0, got {seeds}")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"{what} repeat: {seeds}")
    return [int(s) for s in seeds]


def _resolve_device(device: str | None, budget: CurveBudget) -> str:
    """The torch device of training and encoding; CUDA asked for but absent, or bf16 training on CPU, is an error."""
    import torch

    resolved = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if resolved.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for, but torch sees no CUDA device here")
    if budget.bf16 and not resolved.startswith("cuda"):
        raise ValueError("bf16 training is a GPU option here; use device='cuda' or bf16=False")
    return resolved


@dataclass
class _Runner:
    """Trains, evaluates and reuses the runs of one :func:`run_budget_curve` call (all in ``out``)."""

    out: Path
    setup: dict[str, Any]
    model: str
    benchmark: str
    sample: BenchmarkSample | None
    budget: CurveBudget
    pairs: pd.DataFrame | None
    train_description: str
    quantize: str | None
    device: str
    encode_batch_size: int
    verbose: bool
    trained: list[str] = field(default_factory=list)
    evaluated: list[str] = field(default_factory=list)
    _base: Any = field(default=None, repr=False)

    def encoder(self, model_dir: str | Path) -> Any:
        """A :class:`~pyterrier_hybrid.encoding.BiEncoder` of ``model_dir``; the base model's is loaded once."""
        from .encoding import BiEncoder

        base = str(model_dir) == resolve_model(self.model)
        if base and self._base is not None:
            return self._base
        encoder = BiEncoder(str(model_dir), quantize=self.quantize, device=self.device,
                            batch_size=self.encode_batch_size)
        if base:  # used for step 0 and again for the noise table
            self._base = encoder
        return encoder

    def evaluate(self, model_dir: str | Path, preset: str, seed: int, step: int) -> StepEval:
        """Evaluate the model in ``model_dir`` on the slice and store the result."""
        start = time.perf_counter()
        encoder = self.encoder(model_dir)
        grid = evaluate_model(encoder, self.benchmark, name=f"{_stem(preset, seed)}@{step}", sample=self.sample)
        encoder.close()
        result = StepEval(preset, seed, step, summarise(grid), question_values(grid), grid.results,
                          round(time.perf_counter() - start, 1))
        result.save(self.out, self.setup)
        self.evaluated.append(f"{_stem(preset, seed)}@{step}")
        if self.verbose:
            from tqdm.auto import tqdm

            tqdm.write(f"{_stem(preset, seed)} step {step}: " + ", ".join(
                f"{k} {v:.3f}" for k, v in result.summary.items() if k in CURVE_METRICS) + f" ({result.eval_s:.0f}s)")
        return result

    def run(self, preset: str, seed: int, steps: Sequence[int]) -> tuple[list[StepEval], float]:
        """The evaluations of one (preset, seed) at ``steps`` and its training seconds, trained only if needed.

        Stored evaluations are reused. A finished run (final model saved under this setup and budget) trains
        nothing: at most its final step is evaluated from the saved model. Otherwise the run trains from step 0
        and the callback evaluates the steps not stored yet.
        """
        done = {st: e for st in steps if (e := StepEval.load(self.out, preset, seed, st, self.setup)) is not None}
        if preset == "base":
            return list(done.values()) or [self.evaluate(resolve_model(self.model), preset, seed, 0)], 0.0
        stem = _stem(preset, seed)
        model_dir = self.out / "models" / stem
        key = _plain({"setup": self.setup, "preset": preset, "seed": seed, "steps": self.budget.steps})
        marker = self.out / "evals" / stem / RUN_FILE
        saved = _read_json(marker)
        missing = [st for st in steps if st not in done]
        if saved.get("key") == key and saved.get("status") == "done" and set(missing) <= {self.budget.steps}:
            for st in missing:  # the saved final model is the final step's model
                done[st] = self.evaluate(model_dir, preset, seed, st)
            return [done[st] for st in steps], float(saved.get("train_s", math.nan))
        if model_dir.is_dir() and any(model_dir.iterdir()) and saved.get("writer") != WRITER:
            raise FileExistsError(f"{model_dir} holds files that no budget-curve run wrote ({marker} is missing); "
                                  "move them away or choose another output folder")
        with atomic_path(marker) as tmp:
            tmp.write_text(json.dumps({"writer": WRITER, "key": key, "status": "training"}), encoding="utf-8")

        def evaluate_step(folder: Path, step: int) -> None:
            done[step] = self.evaluate(folder, preset, seed, step)

        callback = CheckpointEvaluator(missing, evaluate_step)
        start = time.perf_counter()
        train_with_checkpoints(preset, self.pairs, model=self.model, budget=self.budget, seed=seed,
                               output_dir=model_dir, callbacks=[callback], device=self.device,
                               data_description=self.train_description, verbose=self.verbose)
        seconds = round(time.perf_counter() - start - callback.eval_s, 1)
        self.trained.append(stem)
        if absent := [st for st in steps if st not in done]:
            raise RuntimeError(f"{stem}: training ended before steps {absent}")
        with atomic_path(marker) as tmp:
            tmp.write_text(json.dumps({"writer": WRITER, "key": key, "status": "done", "train_s": seconds}),
                           encoding="utf-8")
        return [done[st] for st in steps], seconds

    def noise(self, preset: str, seed: int, conditions: Sequence[tuple[str, int]]) -> pd.DataFrame:
        """The noise rows of one final model (``<out>/noise/<stem>.csv``, reused when stored for this setup)."""
        stem = _stem(preset, seed)
        path, key_path = self.out / "noise" / f"{stem}.csv", self.out / "noise" / f"{stem}.json"
        key = _plain({"writer": WRITER, "setup": self.setup, "steps": self.budget.steps if preset != "base" else 0,
                      "conditions": conditions, "perturb_seed": 0})
        if path.is_file() and _read_json(key_path) == key:
            frame = pd.read_csv(path, float_precision="round_trip")
        else:
            encoder = self.encoder(resolve_model(self.model) if preset == "base" else self.out / "models" / stem)
            frame = _noisy_grids(encoder, benchmark=self.benchmark, sample=self.sample, conditions=conditions,
                                 name=stem, seed=0)
            encoder.close()
            with atomic_path(path) as tmp:
                frame.to_csv(tmp, index=False)
            with atomic_path(key_path) as tmp:
                tmp.write_text(json.dumps(key), encoding="utf-8")
            self.evaluated.append(f"{stem}@noise")
        frame = frame.assign(preset=preset, seed=seed)
        return frame[["preset", "seed", *[c for c in frame.columns if c not in ("preset", "seed")]]]


def _read_json(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``; empty when the file is missing or unreadable (then nothing is reused)."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    return value if isinstance(value, dict) else {}
