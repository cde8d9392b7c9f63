"""The paper's protocol as one call: train batch-mode presets under one budget, evaluate each zero-shot.

Elmahdy, Lin & Ahmad (2024) compare a zero-shot base model with the same model fine-tuned under
LAReQA's baselines (En-En, X-X, X-Y) and under monolingual, cross-lingual and hybrid(α) batching, all
on one training set (e.g. MLQA-R), and evaluate each on another benchmark (e.g. XQuAD-R): mean
monolingual, mean cross-lingual and pooled multilingual mAP plus language bias. :func:`run_protocol`
does exactly that for any list of :data:`PRESETS`, seeds and budget, and writes every grid, a summary
table (mean ± sd over seeds) and plots. The examples in ``examples/`` are thin command lines over it.

Example::

    from pyterrier_hybrid.datasets import sample_benchmark
    from pyterrier_hybrid.protocol import Budget, run_protocol
    from pyterrier_hybrid.training import pairs_from_benchmark

    result = run_protocol(["base", "mono", "hybrid-0.5"], train_pairs=pairs_from_benchmark("mlqa-r"),
                          eval_benchmark="xquad-r", sample=sample_benchmark("xquad-r", paragraphs=24),
                          budget=Budget(steps=60, batch_size=16), seeds=[0, 1, 2], out_dir="runs/protocol")
    print(result.to_markdown())
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ._checks import check_int
from ._io import atomic_path
from .datasets import POOLED, BenchmarkSample
from .evaluation import GridResult, evaluate_grid
from .models import DEFAULT_MODEL, resolve_model

logger = logging.getLogger(__name__)

__all__ = [
    "PAPER_PRESETS",
    "PRESETS",
    "Budget",
    "ProtocolResult",
    "SettingFilter",
    "evaluate_model",
    "parse_preset",
    "run_protocol",
    "summarise",
    "train_preset",
    "training_time",
]

# preset name -> (sampler mode, alpha); "base" is the model without fine-tuning.
PRESETS: dict[str, tuple[str | None, float]] = {
    "base": (None, math.nan),
    "en-en": ("en-en", 1.0),  # LAReQA En-En: English pairs only
    "x-x": ("x-x", 1.0),  # LAReQA X-X: monolingual pairs, mixed-language batches
    "x-y": ("x-y", math.nan),  # LAReQA X-Y: any pair, mixed batches
    "mono": ("mono", 1.0),  # one language per batch (X-X-mono)
    "cross": ("cross", 0.0),  # one language pair per batch
    "hybrid-0.25": ("hybrid", 0.25),
    "hybrid-0.5": ("hybrid", 0.5),
    "hybrid-0.75": ("hybrid", 0.75),
}
PAPER_PRESETS: tuple[str, ...] = tuple(PRESETS)


def parse_preset(name: str) -> tuple[str | None, float]:
    """``(mode, alpha)`` of a preset name; ``"hybrid-<α>"`` works for any α in ``[0, 1]``.

    Raises:
        ValueError: unknown name (the message lists the valid ones).
    """
    if name in PRESETS:
        return PRESETS[name]
    match = re.fullmatch(r"hybrid-([01](?:\.\d+)?)", name)
    if match and 0.0 <= float(match.group(1)) <= 1.0:
        return "hybrid", float(match.group(1))
    raise ValueError(f"unknown preset {name!r}; valid presets: {', '.join(PRESETS)} or hybrid-<alpha in [0, 1]>")


@dataclass(frozen=True)
class Budget:
    """The training budget every preset gets (the same for all, so the comparison is fair).

    Attributes:
        steps: optimiser steps.
        batch_size: pairs per batch (the in-batch negatives).
        lr: peak learning rate (10% linear warm-up, then linear decay).
        max_seq_length: tokens kept per text.
        freeze_embeddings: keep the token embeddings fixed (makes CPU fine-tuning practical).
        freeze_layers: also fix the embedding block and the bottom N transformer layers (an optional CPU
            budget knob, see :class:`~pyterrier_hybrid.training.HybridBatchTrainer`; 0 trains every layer).
    """

    steps: int = 60
    batch_size: int = 16
    lr: float = 3e-5
    max_seq_length: int = 96
    freeze_embeddings: bool = True
    freeze_layers: int = 0

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 2 or self.max_seq_length < 8 or not self.lr > 0:
            raise ValueError(f"invalid budget {self}: need steps >= 1, batch_size >= 2 (in-batch negatives), "
                             "max_seq_length >= 8 and lr > 0")
        check_int(self.freeze_layers, "freeze_layers", minimum=0)

    def describe(self) -> str:
        """One line for reports."""
        frozen = ", frozen token embeddings" if self.freeze_embeddings else ""
        frozen += f", bottom {self.freeze_layers} layers frozen" if self.freeze_layers else ""
        return f"{self.steps} steps x batch {self.batch_size}, lr {self.lr:g}, max length {self.max_seq_length}{frozen}"


def train_preset(preset: str, pairs: pd.DataFrame, *, output_dir: str | Path, model: str = DEFAULT_MODEL,
                 budget: Budget = Budget(), seed: int = 0, data_description: str | None = None,
                 verbose: bool = False) -> str:
    """Fine-tune ``model`` with preset ``preset`` on ``pairs``; returns the model directory.

    A finished run in ``output_dir`` with the same settings and data is reused (its
    ``hybrid_training.json`` is compared), so an interrupted protocol resumes where it stopped.
    ``"base"`` trains nothing and returns the model's own directory. The training wall time is recorded
    in the model directory (:func:`training_time` reads it, also for a reused run).
    """
    from .training import HybridBatchTrainer, describe_pairs
    from .training.trainer import TRAINING_CONFIG

    mode, alpha = parse_preset(preset)
    if mode is None:
        return resolve_model(model)
    trainer = HybridBatchTrainer(
        resolve_model(model), mode=mode, alpha=0.5 if math.isnan(alpha) else alpha, batch_size=budget.batch_size,
        max_steps=budget.steps, lr=budget.lr, seed=seed, freeze_embeddings=budget.freeze_embeddings,
        freeze_layers=budget.freeze_layers, max_seq_length=budget.max_seq_length, output_dir=output_dir,
        logging_steps=max(1, budget.steps // 6),
        verbose=verbose)
    done = Path(output_dir) / TRAINING_CONFIG
    if done.exists():
        saved = json.loads(done.read_text(encoding="utf-8"))
        same_config = all(saved.get(k) == v for k, v in json.loads(json.dumps(trainer.config())).items())
        same_data = saved.get("data_stats") == json.loads(json.dumps(describe_pairs(pairs), default=str))
        if same_config and same_data and saved.get("global_steps") == budget.steps:
            logger.info("preset %s, seed %d: reusing the finished run in %s (same settings, data and steps)",
                        preset, seed, output_dir)
            return str(output_dir)
    logger.info("preset %s, seed %d: training into %s (%s)", preset, seed, output_dir, budget.describe())
    start = time.perf_counter()
    trainer.fit_pairs(pairs, data_description=data_description)
    with atomic_path(_timing_file(output_dir)) as tmp:
        tmp.write_text(json.dumps({"train_s": time.perf_counter() - start}), encoding="utf-8")
    return str(output_dir)


_TIMING = "protocol_timing.json"


def _timing_file(model_dir: str | Path) -> Path:
    """Where the training time of ``model_dir`` is recorded: ``<model_dir>.timing.json``, beside it.

    The model folder belongs to the trainer, which refuses to train again into a folder holding files it
    did not write.
    """
    model_dir = Path(model_dir)
    return model_dir.with_name(f"{model_dir.name}.timing.json")


def training_time(model_dir: str | Path) -> float:
    """Seconds :func:`train_preset` spent training the model in ``model_dir`` (NaN if not recorded)."""
    for path in (_timing_file(model_dir), Path(model_dir) / _TIMING):  # the second: runs of earlier versions
        if path.exists():
            return float(json.loads(path.read_text(encoding="utf-8"))["train_s"])
    return math.nan


def evaluate_model(model: Any, benchmark: str, *, name: str, sample: BenchmarkSample | None = None,
                   batch_size: int = 64, cache_dir: str | Path | None = None, verbose: bool = False,
                   **grid_options: Any) -> GridResult:
    """Evaluate a model (directory, hub id or :class:`~pyterrier_hybrid.encoding.BiEncoder`) on a benchmark grid.

    Args:
        model: what to evaluate.
        benchmark: ``"xquad-r"`` or ``"mlqa-r"``.
        name: the model's name in reports.
        sample: evaluate on this slice (:func:`pyterrier_hybrid.datasets.sample_benchmark`).
        batch_size: encoding batch size.
        cache_dir: vector cache of the encoder (:class:`~pyterrier_hybrid.encoding.VectorCache`; keyed by
            the weights' fingerprint, so a trained model never reads the base model's vectors).
        verbose: progress bars.
        grid_options: passed to :func:`~pyterrier_hybrid.evaluation.evaluate_grid` (measures, k, ...).
    """
    from .encoding import BiEncoder

    encoder = model if hasattr(model, "encode_queries") else BiEncoder(
        resolve_model(model), batch_size=batch_size, cache_dir=cache_dir, verbose=verbose)
    return evaluate_grid(encoder, benchmark, sample=sample, name=name, verbose=verbose, **grid_options)


SettingFilter = Callable[[str, str], bool]


def summarise(grid: GridResult, *, groups: Mapping[str, SettingFilter] | None = None) -> dict[str, float]:
    """The protocol's numbers of one grid.

    Args:
        grid: an evaluated grid.
        groups: extra columns: name → ``(qlang, dlang) -> bool``; the column is the mean AP over the
            (non-pooled) settings the filter keeps (e.g. settings involving languages unseen in training).

    Returns:
        ``mono_mAP``, ``cross_mAP``, ``pooled_mAP``, the pooled bias measures present, then the groups.
    """
    summary = grid.summary()
    row = {f"{kind}_mAP": float(summary.loc["AP", kind]) if "AP" in summary.index else math.nan
           for kind in ("mono", "cross", "pooled")}
    for measure in summary.index:
        short = re.sub(r"\(.*\)", "", measure)  # PEER(weights=...)@1000 -> PEER@1000
        if short.startswith(("RankDistance", "SameLangPref", "PEER")):
            row[short] = float(summary.loc[measure, "pooled"])
    if groups:
        r = grid.results
        ap = r[(r.measure == "AP") & (r.dlang != POOLED)]
        for name, keep in groups.items():
            mask = np.array([bool(keep(q, d)) for q, d in zip(ap.qlang, ap.dlang)], dtype=bool)
            row[name] = float(ap.value[mask].mean()) if mask.any() else math.nan
    return row


@dataclass
class ProtocolResult:
    """What :func:`run_protocol` measured.

    Attributes:
        runs: one row per (preset, seed): the :func:`summarise` columns plus ``train_s`` and ``eval_s``.
        grids: ``(preset, seed)`` → grid (``"base"`` has seed -1: it is not trained).
        info: budget, data and slice descriptions.
        models: ``(preset, seed)`` → the evaluated model's directory (for further evaluations).
    """

    runs: pd.DataFrame
    grids: dict[tuple[str, int], GridResult] = field(repr=False)
    info: dict[str, Any]
    models: dict[tuple[str, int], str] = field(default_factory=dict, repr=False)

    @property
    def metrics(self) -> list[str]:
        """The measured columns (everything but preset, seed and timings)."""
        return [c for c in self.runs.columns if c not in ("preset", "seed", "train_s", "eval_s")]

    def table(self) -> pd.DataFrame:
        """Per preset (in run order): mean and sd over seeds of every metric, seeds and training minutes.

        Columns: ``n`` (seeds), ``<metric>``, ``<metric>_sd`` (NaN with one seed), ``train_min``.
        """
        rows = []
        for preset, runs in self.runs.groupby("preset", sort=False):
            row: dict[str, Any] = {"preset": preset, "n": len(runs)}
            for m in self.metrics:
                row[m] = runs[m].mean()
                row[f"{m}_sd"] = runs[m].std(ddof=1) if len(runs) > 1 else math.nan
            row["train_min"] = runs["train_s"].mean() / 60
            rows.append(row)
        return pd.DataFrame(rows).set_index("preset")

    def to_markdown(self, digits: int = 3) -> str:
        """The table as markdown, ``mean ± sd`` where there are several seeds (↓: lower is better)."""
        table = self.table()
        header = ["preset", "seeds", *[f"{m} ↓" if m == "RankDistance" else m for m in self.metrics], "train min"]
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for preset, row in table.iterrows():
            cells = [str(preset), str(int(row["n"]))]
            for m in self.metrics:
                d = 1 if m == "RankDistance" else digits
                mean, sd = row[m], row[f"{m}_sd"]
                cells.append("" if pd.isna(mean) else f"{mean:.{d}f}" + ("" if pd.isna(sd) else f" ± {sd:.{d}f}"))
            cells.append(f"{row['train_min']:.1f}")
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"

    def save(self, out_dir: str | Path) -> None:
        """Write the tables, grids and plots to ``out_dir``.

        Tables: ``summary.md`` (with the budget line), ``summary.csv``, ``runs.csv``, ``protocol.json``; every
        grid as ``grids/<model>.csv``; plots in ``plots/`` (AP heatmaps, deltas vs ``base``, summary bars).
        Grids already written are kept, so it can be called after every model (partial results survive).
        """
        from .plots import atomic_write_text, delta_heatmap, heatmap, protocol_bars

        out = Path(out_dir)
        atomic_write_text(out / "runs.csv", self.runs.to_csv(index=False))
        atomic_write_text(out / "summary.csv", self.table().to_csv())
        budget_line = f"Budget: {self.info['budget']}; train data: {self.info['train_data']}; " \
                      f"evaluation: {self.info['evaluation']}; seeds: {self.info['seeds']}.\n\n"
        atomic_write_text(out / "summary.md", budget_line + self.to_markdown())
        with atomic_path(out / "protocol.json") as tmp:
            tmp.write_text(json.dumps({"info": self.info, "runs": self.runs.to_dict(orient="records")}, indent=2,
                                      default=str), encoding="utf-8")
        base = next((grid for (preset, _), grid in self.grids.items() if preset == "base"), None)
        for (preset, seed), grid in self.grids.items():
            stem = _grid_stem(preset, seed)
            if not (out / "grids" / f"{stem}.csv").exists():
                (out / "grids").mkdir(parents=True, exist_ok=True)
                grid.to_csv(str(out / "grids" / f"{stem}.csv"))
                heatmap(grid, "AP", path=out / "plots" / f"{stem}_AP.png", title=f"{stem} on {grid.benchmark}: AP")
                if base is not None and preset != "base":
                    delta_heatmap(grid, base, "AP", path=out / "plots" / f"{stem}_minus_base_AP.png")
        if len(self.runs):
            protocol_bars(self.table(), path=out / "plots" / "summary.png",
                          title=f"{self.info['evaluation']} ({self.info['budget']})")


def _grid_stem(preset: str, seed: int) -> str:
    """File stem of a model's outputs: ``<preset>-s<seed>`` (``base`` alone), spaces as hyphens."""
    return (preset if seed < 0 else f"{preset}-s{seed}").replace(" ", "-")


def effective_preset(preset: str, pairs: pd.DataFrame) -> str:
    """``preset``, or ``"mono"`` when it asks for cross-lingual batches and ``pairs`` has no cross-lingual pair.

    A corpus in one language (a domain's own data) has only monolingual pairs, so cross and hybrid batching
    reduce to monolingual batches there; training it under the preset's name would mislabel the model.
    """
    mode, alpha = parse_preset(preset)
    if mode in ("cross", "hybrid") and alpha < 1.0 and not (pairs["qlang"] != pairs["dlang"]).any():
        return "mono"
    return preset


def _training_sets(train_pairs: Any, train_description: Any) -> dict[str | None, tuple[pd.DataFrame, str]]:
    """``{name: (pairs, description)}``; a single frame is the one set named None."""
    if train_pairs is None:
        return {}
    if isinstance(train_pairs, pd.DataFrame):
        if not isinstance(train_description, str):
            raise ValueError("train_description must be a str when train_pairs is one frame")
        return {None: (train_pairs, train_description)}
    if not isinstance(train_pairs, Mapping) or not train_pairs:
        raise ValueError(f"train_pairs must be a DataFrame or a non-empty mapping name -> DataFrame, got "
                         f"{type(train_pairs).__name__}")
    descriptions = train_description if isinstance(train_description, Mapping) else {}
    sets = {}
    for name, pairs in train_pairs.items():
        if not isinstance(name, str) or not name or not isinstance(pairs, pd.DataFrame):
            raise ValueError(f"train_pairs maps a non-empty name to a DataFrame; got {name!r} -> "
                             f"{type(pairs).__name__}")
        sets[name] = (pairs, str(descriptions.get(name, f"{len(pairs)} pairs")))
    return sets


def run_protocol(presets: Sequence[str], *, train_pairs: pd.DataFrame | Mapping[str, pd.DataFrame] | None,
                 eval_benchmark: str, out_dir: str | Path, sample: BenchmarkSample | None = None,
                 model: str = DEFAULT_MODEL, budget: Budget = Budget(), seeds: Iterable[int] = (0,),
                 train_description: str | Mapping[str, str] = "",
                 groups: Mapping[str, SettingFilter] | None = None, encode_batch_size: int = 64,
                 grid_options: Mapping[str, Any] | None = None, cache_dir: str | Path | None = None,
                 verbose: bool = True) -> ProtocolResult:
    """Train every preset for every seed under ``budget`` and evaluate each on ``eval_benchmark``.

    With several named training sets every (set, preset, seed) is trained; its row is labelled
    ``"<set> <preset>"`` and its files ``<set>-<preset>-s<seed>``. A preset that asks for cross-lingual
    batches trains as ``mono`` on a set without cross-lingual pairs (:func:`effective_preset`; logged), and
    a (set, preset, seed) that two presets reduce to is trained once.

    Args:
        presets: names from :data:`PRESETS` (or ``hybrid-<α>``); ``"base"`` is evaluated once.
        train_pairs: training pairs (:mod:`pyterrier_hybrid.datasets.pairs`), or named sets of them
            (``{"domain": pairs, "generic": pairs}``); may be None with only ``"base"``.
        eval_benchmark: ``"xquad-r"`` or ``"mlqa-r"``.
        out_dir: models (``models/<preset>-s<seed>``), grids, tables and plots go here.
        sample: evaluate on this slice of ``eval_benchmark`` (the same for every model).
        model: the starting model (HF id or directory; the default is the offline e5-small).
        budget: the training budget of every preset.
        seeds: training seeds (sampler, dropout); report mean ± sd over them.
        train_description: what ``train_pairs`` is, for the reports (per name for named sets).
        groups: extra mean-AP columns over chosen settings (see :func:`summarise`).
        encode_batch_size: encoding batch size at evaluation.
        grid_options: passed to :func:`~pyterrier_hybrid.evaluation.evaluate_grid`.
        cache_dir: vector cache for evaluation (see :func:`evaluate_model`).
        verbose: progress bars and one result line per model on the console (the line is also logged at INFO).

    Returns:
        A :class:`ProtocolResult`; ``out_dir`` holds ``summary.md``/``summary.csv``/``runs.csv``/
        ``protocol.json``, ``grids/*.csv`` and ``plots/*.png`` (per-model heatmaps, deltas vs base, summary bars).
    """
    from tqdm.auto import tqdm

    for p in presets:
        parse_preset(p)
    if len(set(presets)) != len(presets):
        raise ValueError(f"presets repeat: {list(presets)}")
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("seeds is empty; pass at least one seed")
    sets = _training_sets(train_pairs, train_description)
    if not sets and any(p != "base" for p in presets):
        raise ValueError("train_pairs is None but presets other than 'base' need training data")
    out = Path(out_dir)
    for sub in ("models", "grids", "plots"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    info = {
        "presets": list(presets),
        "model": model,
        "budget": budget.describe(),
        "budget_fields": asdict(budget),
        "seeds": seeds,
        "train_data": "; ".join((f"{name}: " if name else "") + (desc or f"{len(pairs)} pairs")
                                for name, (pairs, desc) in sets.items()) or "none",
        "evaluation": sample.description if sample is not None else f"{eval_benchmark} (all questions)",
    }
    # (row label, seed, set name, preset actually trained)
    jobs: list[tuple[str, int, str | None, str]] = [("base", -1, None, "base")] if "base" in presets else []
    for seed in seeds:
        for name, (pairs, _) in sets.items():
            for preset in (p for p in presets if p != "base"):
                actual = effective_preset(preset, pairs)
                if actual != preset:
                    logger.info("%sone language pair type only (no cross-lingual pairs), so %s trains as %s",
                                f"{name}: " if name else "", preset, actual)
                    if verbose:
                        tqdm.write(f"{name + ': ' if name else ''}one language only, so {preset} trains as {actual}")
                label = f"{name} {actual}" if name else actual
                if all(job[:2] != (label, seed) for job in jobs):
                    jobs.append((label, seed, name, actual))
    result = ProtocolResult(pd.DataFrame(), {}, info)
    rows = []
    for preset, seed, name, actual in tqdm(jobs, desc="protocol", unit="model", disable=not verbose):
        stem = _grid_stem(preset, seed)
        pairs, description = sets.get(name, (None, ""))
        model_dir = train_preset(actual, pairs, output_dir=out / "models" / stem, model=model, budget=budget,
                                 seed=max(seed, 0), data_description=description,
                                 verbose=verbose) if actual != "base" else resolve_model(model)
        train_s = training_time(model_dir) if preset != "base" else 0.0
        t1 = time.perf_counter()
        grid = evaluate_model(model_dir, eval_benchmark, name=stem, sample=sample, batch_size=encode_batch_size,
                              cache_dir=cache_dir, verbose=verbose, **dict(grid_options or {}))
        t2 = time.perf_counter()
        if preset != "base" and (Path(model_dir) / "README.md").is_file():  # the card shows what the model scored
            from .training import add_grid_to_model_card

            add_grid_to_model_card(model_dir, grid, description=info["evaluation"])
        rows.append({"preset": preset, "seed": seed, **summarise(grid, groups=groups),
                     "train_s": round(train_s, 1), "eval_s": round(t2 - t1, 1)})
        result.grids[preset, seed] = grid
        result.models[preset, seed] = str(model_dir)
        result.runs = pd.DataFrame(rows)
        result.save(out)
        line = (f"{stem}: " + ", ".join(f"{k} {v:.3f}" for k, v in rows[-1].items()
                                        if isinstance(v, float) and k not in ("train_s", "eval_s"))
                + f" (train {train_s:.0f}s, eval {t2 - t1:.0f}s)")
        logger.info("%s", line)
        if verbose:  # the console line of the command lines, beside the progress bar (as before)
            tqdm.write(line)
    return result
