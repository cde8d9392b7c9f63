"""Helpers shared by the protocol examples: command-line options, the budget, per-language reports.

The examples are scripts (``python examples/<name>.py``); each puts this folder on ``sys.path`` so that
``import _common`` also works when a test loads the example from its path.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pyterrier_hybrid.datasets import BenchmarkSample, sample_benchmark
from pyterrier_hybrid.models import DEFAULT_MODEL
from pyterrier_hybrid.plots import atomic_write_text
from pyterrier_hybrid.protocol import Budget, ProtocolResult, SettingFilter, parse_preset, run_protocol
from pyterrier_hybrid.training import pairs_from_benchmark

__all__ = [
    "add_budget_arguments",
    "add_protocol_arguments",
    "budget_from_args",
    "evaluation_sample",
    "finish_protocol_arguments",
    "lang_list",
    "parse_protocol_args",
    "per_language",
    "per_language_markdown",
    "plot_per_language",
    "preset_list",
    "report",
    "run_example_protocol",
    "run_group_example",
    "seed_list",
    "set_threads",
    "write_per_language",
]


# --------------------------------------------------------------------------------------------- argument types
def preset_list(text: str) -> list[str]:
    """Argparse type: a comma list of protocol presets (``base``, ``mono``, ``hybrid-0.3``...), each checked."""
    names = [p.strip() for p in text.split(",") if p.strip()]
    for name in names:
        try:
            parse_preset(name)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    if len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"presets repeat: {text!r}")
    return names


def seed_list(text: str) -> list[int]:
    """Argparse type: comma-separated integer seeds."""
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"seeds must be comma-separated integers, got {text!r}") from None


def lang_list(valid: Sequence[str]) -> Callable[[str], list[str]]:
    """Argparse type factory: a non-empty comma list of language codes out of ``valid``."""

    def parse(text: str) -> list[str]:
        langs = [s.strip() for s in text.split(",") if s.strip()]
        bad = [lang for lang in langs if lang not in valid]
        if bad or not langs:
            raise argparse.ArgumentTypeError(f"languages must be a comma list out of {','.join(valid)}, got {text!r}")
        return langs

    return parse


# --------------------------------------------------------------------------------------------- options
def add_budget_arguments(p: argparse.ArgumentParser, *, steps: int) -> None:
    """``--steps``, ``--batch-size``, ``--lr``, ``--max-seq-length``: the training budget of every preset."""
    p.add_argument("--steps", type=int, default=steps, help="optimiser steps per preset (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=16, help="pairs per batch (default: %(default)s)")
    p.add_argument("--lr", type=float, default=3e-5, help="peak learning rate (default: %(default)s)")
    p.add_argument("--max-seq-length", type=int, default=96, help="tokens per text (default: %(default)s)")


def budget_from_args(p: argparse.ArgumentParser, args: argparse.Namespace) -> Budget:
    """The :class:`Budget` of the parsed options; an invalid one is a usage error (exit status 2)."""
    try:
        return Budget(steps=args.steps, batch_size=args.batch_size, lr=args.lr, max_seq_length=args.max_seq_length)
    except ValueError as e:
        p.error(str(e))  # exits with status 2


def add_protocol_arguments(p: argparse.ArgumentParser, *, presets: Sequence[str], presets_help: str, steps: int,
                           paragraphs: int, max_queries: int, smoke_help: str, out: str) -> None:
    """The options every protocol example shares (model, presets, seeds, budget, evaluation slice, output)."""
    p.add_argument("--model", default=DEFAULT_MODEL, help="HF model id or local dir (default: %(default)s)")
    p.add_argument("--presets", type=preset_list, default=list(presets), help=presets_help)
    p.add_argument("--seeds", type=seed_list, default=[0], help="training seeds, e.g. 0,1,2 (default: 0)")
    add_budget_arguments(p, steps=steps)
    p.add_argument("--paragraphs", type=int, default=paragraphs,
                   help="paragraphs of the evaluation slice (0 = all; default: %(default)s)")
    p.add_argument("--max-queries", type=int, default=max_queries,
                   help="question groups of the evaluation slice (0 = all; default: %(default)s)")
    p.add_argument("--full", action="store_true", help="evaluate on the whole benchmark (same as --paragraphs 0 "
                                                       "--max-queries 0)")
    p.add_argument("--smoke", action="store_true", help=smoke_help)
    p.add_argument("--sample-seed", type=int, default=0, help="seed of the evaluation slice (default: 0)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--out", type=Path, default=Path(out), help="(default: %(default)s)")


def finish_protocol_arguments(p: argparse.ArgumentParser, args: argparse.Namespace, *,
                              smoke_presets: Sequence[str]) -> argparse.Namespace:
    """Apply ``--full`` and ``--smoke`` (2 steps at batch 4, a 2-paragraph slice, one seed), check sizes, add
    ``args.budget``."""
    if args.full:
        args.paragraphs = args.max_queries = 0
    if args.smoke:
        args.presets, args.steps, args.batch_size, args.max_seq_length = list(smoke_presets), 2, 4, 32
        args.paragraphs, args.max_queries, args.seeds = 2, 4, [0]
    if args.paragraphs < 0 or args.max_queries < 0:
        p.error("--paragraphs and --max-queries must be >= 0 (0 = all)")
    if not args.seeds:
        p.error("--seeds is empty")
    args.budget = budget_from_args(p, args)
    return args


def parse_protocol_args(argv: Sequence[str] | None, *, doc: str, presets: Sequence[str],
                        smoke_presets: Sequence[str], paragraphs: int, max_queries: int, out: str, steps: int = 30,
                        extra: Callable[[argparse.ArgumentParser], None] | None = None) -> argparse.Namespace:
    """Parse a protocol example's command line: the shared options (defaults given here), ``extra`` ones
    (a function adding them to the parser), then ``--full``/``--smoke`` and the budget applied."""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    add_protocol_arguments(
        p, presets=presets, steps=steps, paragraphs=paragraphs, max_queries=max_queries, out=out,
        presets_help=f"comma list (default: {','.join(presets)}; any hybrid-<alpha> works)",
        smoke_help=f"a seconds-long wiring check: presets {','.join(smoke_presets)}, 2 steps, a 2-paragraph slice")
    if extra is not None:
        extra(p)
    return finish_protocol_arguments(p, p.parse_args(argv), smoke_presets=smoke_presets)


# --------------------------------------------------------------------------------------------- runs
def set_threads(args: argparse.Namespace) -> None:
    """Apply ``--threads`` to torch (torch's own choice when not given)."""
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)


def evaluation_sample(args: argparse.Namespace, benchmark: str) -> BenchmarkSample | None:
    """The slice of ``benchmark`` that ``--paragraphs``/``--max-queries``/``--sample-seed`` ask for (None: all)."""
    if not (args.paragraphs or args.max_queries):
        return None
    return sample_benchmark(benchmark, paragraphs=args.paragraphs, max_queries=args.max_queries,
                            seed=args.sample_seed)


def run_example_protocol(args: argparse.Namespace, *, train_on: str, evaluate_on: str, out: Path,
                         groups: Mapping[str, SettingFilter] | None = None) -> ProtocolResult:
    """:func:`~pyterrier_hybrid.protocol.run_protocol` with the parsed example options: train every preset on
    all of ``train_on`` (every language and pair), evaluate on the slice of ``evaluate_on`` the options ask for."""
    set_threads(args)
    sample = evaluation_sample(args, evaluate_on)
    needs_training = any(p != "base" for p in args.presets)
    return run_protocol(
        args.presets, train_pairs=pairs_from_benchmark(train_on) if needs_training else None,
        eval_benchmark=evaluate_on, out_dir=out, sample=sample, model=args.model, budget=args.budget,
        seeds=args.seeds, train_description=f"{train_on}, all languages and language pairs", groups=groups)


def run_group_example(args: argparse.Namespace, *, train_on: str, evaluate_on: str,
                      groups: Mapping[str, SettingFilter], highlight: Sequence[str], label: str, others: str,
                      title: str) -> ProtocolResult:
    """A protocol run with extra mean-AP columns over groups of settings, then per-language tables and plot
    (``highlight`` languages marked ``label``, the rest ``others``), all printed and written to ``args.out``."""
    result = run_example_protocol(args, train_on=train_on, evaluate_on=evaluate_on, out=args.out, groups=groups)
    markdown = write_per_language(result, args.out, highlight, label=label, others=others, title=title)
    report(title, args.out, extra="\n" + markdown)
    return result


# --------------------------------------------------------------------------------------------- reports
def report(title: str, out: Path, extra: str = "") -> None:
    """Print a protocol run's ``summary.md`` (plus ``extra``) under ``title``, and where the plots are."""
    print(f"\n## {title}\n")
    print((out / "summary.md").read_text(encoding="utf-8"))
    if extra:
        print(extra)
    print(f"plots: {out / 'plots'}")


def per_language(result: ProtocolResult, measure: str = "AP") -> pd.DataFrame:
    """Per preset and language: the monolingual value (grid diagonal) and the pooled value of that language's
    questions, each the mean over the preset's seeds.

    Returns:
        Columns ``preset``, ``lang``, ``mono``, ``pooled`` (presets in run order, languages in grid order).
    """
    per_run = []
    for (preset, _seed), grid in result.grids.items():
        matrix = grid.matrix(measure)
        diagonal = pd.Series({lang: matrix.loc[lang, lang] for lang in matrix.index if lang in matrix.columns})
        pooled = grid.pooled_by_qlang()
        pooled = pooled[measure] if measure in pooled.columns else pd.Series(dtype=float)
        frame = pd.DataFrame({"mono": diagonal, "pooled": pooled.reindex(diagonal.index)})
        per_run.append(frame.rename_axis("lang").reset_index().assign(preset=preset))
    if not per_run:
        return pd.DataFrame(columns=["preset", "lang", "mono", "pooled"])
    runs = pd.concat(per_run, ignore_index=True)
    return runs.groupby(["preset", "lang"], sort=False)[["mono", "pooled"]].mean().reset_index()


def per_language_markdown(frame: pd.DataFrame, highlight: Iterable[str], *, label: str,
                          others: str, digits: int = 3) -> str:
    """Two markdown tables (monolingual AP, pooled AP per question language): languages x presets, the
    ``highlight`` languages marked with ``label`` and two closing rows with the means of both language groups."""
    highlight = set(highlight)
    blocks = []
    for column, heading in (("mono", "Monolingual AP (question and candidates in the language)"),
                            ("pooled", "Pooled AP of the language's questions (candidates in every language)")):
        wide = frame.pivot(index="lang", columns="preset", values=column)
        wide = wide.reindex(index=list(dict.fromkeys(frame["lang"])), columns=list(dict.fromkeys(frame["preset"])))
        if wide.isna().all().all():
            continue
        lines = [f"{heading}:", "", "| language | group | " + " | ".join(wide.columns) + " |",
                 "|" + "---|" * (len(wide.columns) + 2)]

        def row(name: str, group: str, values: pd.Series) -> str:
            cells = ["" if pd.isna(v) else f"{v:.{digits}f}" for v in values]
            return f"| {name} | {group} | " + " | ".join(cells) + " |"

        for lang, values in wide.iterrows():
            lines.append(row(str(lang), label if lang in highlight else others, values))
        for group, langs in ((others, [x for x in wide.index if x not in highlight]),
                             (label, [x for x in wide.index if x in highlight])):
            if langs:
                lines.append(row(f"**mean {group}**", group, wide.loc[langs].mean()))
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def plot_per_language(frame: pd.DataFrame, highlight: Iterable[str], *, path: Path, title: str, label: str,
                      dpi: int = 120) -> Any:
    """Grouped bars per language (one bar per preset): monolingual AP and pooled AP per question language.

    The ``highlight`` languages are shaded and their tick labels coloured (named ``label`` in the legend).

    Returns:
        The matplotlib figure (also written to ``path``, atomically).
    """
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    from pyterrier_hybrid._io import atomic_path

    highlight = set(highlight)
    langs = list(dict.fromkeys(frame["lang"]))
    langs = [x for x in langs if x not in highlight] + [x for x in langs if x in highlight]
    presets = list(dict.fromkeys(frame["preset"]))
    panels = [c for c in ("mono", "pooled") if frame[c].notna().any()]
    fig = Figure(figsize=(2.5 + 0.22 * len(langs) * max(len(presets), 2), 3.4 * len(panels)), layout="constrained")
    axes = np.atleast_1d(fig.subplots(len(panels), 1, sharex=True))
    x = np.arange(len(langs))
    width = 0.8 / len(presets)
    names = {"mono": "monolingual AP", "pooled": "pooled AP (question language)"}
    for ax, column in zip(axes, panels):
        wide = frame.pivot(index="lang", columns="preset", values=column).reindex(index=langs, columns=presets)
        for i, lang in enumerate(langs):
            if lang in highlight:
                ax.axvspan(i - 0.5, i + 0.5, color="tab:red", alpha=0.08, lw=0)
        for j, preset in enumerate(presets):
            ax.bar(x + (j - (len(presets) - 1) / 2) * width, wide[preset].to_numpy(dtype=float), width, label=preset)
        ax.set_ylabel(names[column])
        top = np.nanmax(wide.to_numpy(dtype=float)) if wide.notna().any().any() else 1.0
        ax.set_ylim(0, min(1.0, 1.15 * top) if math.isfinite(top) and top > 0 else 1.0)
        ax.grid(axis="y", alpha=0.3)
    axes[-1].set_xticks(x, langs)
    for tick, lang in zip(axes[-1].get_xticklabels(), langs):
        if lang in highlight:
            tick.set_color("tab:red")
            tick.set_fontweight("bold")
    handles, labels = axes[0].get_legend_handles_labels()
    handles.append(Patch(color="tab:red", alpha=0.15))
    labels.append(label)
    axes[0].legend(handles, labels, fontsize="small", ncols=min(len(labels), 6), loc="upper left")
    fig.suptitle(title, fontsize="medium")
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    return fig


def write_per_language(result: ProtocolResult, out: Path, highlight: Iterable[str], *, label: str, others: str,
                       title: str) -> str:
    """Per-language tables and plot of a protocol run: ``per_language.csv``, ``per_language.md`` and
    ``plots/per_language.png`` in ``out``; returns the markdown."""
    highlight = list(highlight)
    frame = per_language(result)
    frame = frame.assign(group=[label if lang in highlight else others for lang in frame["lang"]])
    atomic_write_text(out / "per_language.csv", frame.to_csv(index=False))
    markdown = per_language_markdown(frame, highlight, label=label, others=others)
    atomic_write_text(out / "per_language.md", markdown)
    plot_per_language(frame, highlight, path=out / "plots" / "per_language.png", title=title, label=label)
    return markdown
