"""Command lines of studies built on :func:`~pyterrier_hybrid.protocol.run_protocol`.

Shared options (presets, seeds, budget, evaluation slice, threads), argument types and the runners the example
scripts use.

The scripts in ``examples/`` are thin: they parse with :func:`parse_protocol_args` (or add these options to
their own parser) and run :func:`run_example_protocol`; the per-language reports are in :mod:`.plots`.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from .datasets import BenchmarkSample, sample_benchmark
from .models import DEFAULT_MODEL
from .plots import write_per_language
from .protocol import Budget, ProtocolResult, SettingFilter, parse_preset, run_protocol
from .training import pairs_from_benchmark

__all__ = [
    "add_budget_arguments",
    "add_protocol_arguments",
    "budget_from_args",
    "evaluation_sample",
    "finish_protocol_arguments",
    "lang_list",
    "parse_protocol_args",
    "preset_list",
    "report",
    "run_example_protocol",
    "run_group_example",
    "seed_list",
    "set_threads",
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
    """Apply ``--full`` and ``--smoke``, check sizes and add ``args.budget``.

    ``--smoke`` means 2 steps at batch 4, a 2-paragraph slice and one seed.
    """
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
    """Parse a protocol example's command line.

    The shared options (defaults given here), ``extra`` ones (a function adding them to the parser), then
    ``--full``/``--smoke`` and the budget applied.
    """
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
    """:func:`~pyterrier_hybrid.protocol.run_protocol` with the parsed example options.

    Trains every preset on all of ``train_on`` (every language and pair) and evaluates on the slice of
    ``evaluate_on`` the options ask for.
    """
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
    """A protocol run with extra mean-AP columns over groups of settings, then per-language tables and plot.

    The ``highlight`` languages are marked ``label``, the rest ``others``; all is printed and written to
    ``args.out``.
    """
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
