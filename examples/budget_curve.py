r"""Budget curves: does hybrid batching win once training is long enough to tell?

The paper's two claims, measured as curves over the training budget instead of at one budget: (1) hybrid
batching (α = 0.5) gives the best pooled multilingual mAP while staying close to the best monolingual
and cross-lingual mAP, and (2) it is less language-biased (pooled rank distance) than monolingual
batching. Every preset (base, mono, cross, hybrid-0.5, x-y) is trained ONCE per seed on all MLQA-R pairs
to the final budget with a constant learning rate after a fixed warm-up, and evaluated zero-shot at
every checkpoint on one fixed XQuAD-R slice (all 121 settings + pooled); see
:mod:`pyterrier_hybrid.curves`. Also: the α trade-off at the final budget (α = 0 is the cross preset,
α = 1 is mono; the extra hybrid-0.25 / hybrid-0.75 runs use ``--alpha-seeds``), paired significance
tests of hybrid-0.5 against every other preset at every step (t-test and Wilcoxon over questions,
seeds averaged per question, Holm over the comparisons of a step), and typo / mixed query noise on
the final models. Finished evaluations and runs are reused: rerun the same command to resume.

The full CPU run (run it under the machine's heavy-job lock; encodings in the bf16 speed mode):

    flock /tmp/heavy.lock nice -n 5 .venv/bin/python examples/budget_curve.py \
        --presets base,mono,cross,hybrid-0.5,x-y --seeds 0,1,2 --steps 150 --checkpoints 25,50,100,150 \
        --batch-size 32 --lr 3e-05 --warmup-steps 10 --max-seq-length 96 --alphas 0,0.25,0.5,0.75,1 --alpha-seeds 0 \
        --paragraphs 48 --max-queries 96 --noise-models typo,mixed --noise-levels 0,20,50 \
        --noise-presets base,mono,cross,hybrid-0.5 --quantize bf16 --threads 2 --out outputs/budget_curve

Estimated CPU time of that command at the rates measured on a 2-core CPU (about 8.4 training pairs/s at
batch 32 with 2 threads; about 190 sentences/s encoded in bf16): 14 training runs x 150 steps x 32 pairs
(133 min), 51 checkpoint evaluations of 3,822 texts (17 min) and 10 final models under 4 noisy conditions
(7 min): about 157 min in all, plus a few seconds of model loading and grid scoring per evaluation.
``scripts/budget_curve_cpu.sh`` runs the same jobs as two single-thread workers sharing the output folder
(more pairs/s in total on 2 cores, see ``benchmarks/train_workers.py``); the README states what it took.

Other sizes:

    python examples/budget_curve.py --steps 10 --checkpoints 5,10 --seeds 0 --presets base,hybrid-0.5  # short check
    python examples/budget_curve.py --smoke                                 # seconds: a wiring check
    python examples/budget_curve.py --device cuda --full --steps 1000 --checkpoints 100,250,500,1000 \
        --batch-size 64 --warmup-steps 100 --no-freeze-embeddings --alpha-seeds 0,1,2 --out outputs/budget_curve_gpu

``--device cuda`` trains in bf16 (``training_args={"bf16": True}``) and encodes on the GPU; ``--full``
evaluates on all of XQuAD-R. Writes to ``--out``: ``report.md`` (every table with its budget),
``curve``/``final``/``alpha``/``significance``/``noise`` ``.csv`` + ``.md``, ``runs.csv``,
``plots/curves.png``, ``plots/alpha.png``, ``plots/noise.png``, ``evals/<preset>-s<seed>/step-<N>.*``
and the final models in ``models/``.
"""

from __future__ import annotations

import argparse

import pyterrier_hybrid  # noqa: F401  (registers the datasets)
from pyterrier_hybrid.curves import (
    ALPHAS,
    CPU_BF16_SENTENCES_PER_S,
    CPU_TRAIN_PAIRS_PER_S,
    CURVE_PRESETS,
    CURVE_STEPS,
    NOISE_LEVELS,
    NOISE_MODELS,
    NOISE_PRESETS,
    CurveBudget,
    CurveResult,
    estimate_cpu_seconds,
    plan_budget_curve,
)
from pyterrier_hybrid.noise import NOISE_MODELS as ALL_NOISE_MODELS
from pyterrier_hybrid.study import add_protocol_arguments, evaluation_sample, preset_list, seed_list, set_threads

FULL_CPU_COMMAND = (
    "flock /tmp/heavy.lock nice -n 5 .venv/bin/python examples/budget_curve.py "
    "--presets base,mono,cross,hybrid-0.5,x-y --seeds 0,1,2 --steps 150 --checkpoints 25,50,100,150 "
    "--batch-size 32 --lr 3e-05 --warmup-steps 10 --max-seq-length 96 --alphas 0,0.25,0.5,0.75,1 --alpha-seeds 0 "
    "--paragraphs 48 --max-queries 96 --noise-models typo,mixed --noise-levels 0,20,50 "
    "--noise-presets base,mono,cross,hybrid-0.5 --quantize bf16 --threads 2 --out outputs/budget_curve"
)
# Size of the default slice, sample_benchmark("xquad-r", paragraphs=48, max_queries=96, seed=0) (checked by a
# test), so that --help can state the estimate without loading the data.
DEFAULT_SLICE_CANDIDATES = 2766
DEFAULT_SLICE_QUESTIONS = 96 * 11


def full_cpu_estimate() -> dict[str, float]:
    """:func:`~pyterrier_hybrid.curves.estimate_cpu_seconds` of :data:`FULL_CPU_COMMAND`."""
    trained = len(CURVE_PRESETS) - 1
    extra_alpha = 2  # hybrid-0.25 and hybrid-0.75, one seed
    return estimate_cpu_seconds(
        train_runs=trained * 3 + extra_alpha, steps=150, batch_size=32,
        evaluations=1 + trained * 3 * len(CURVE_STEPS) + extra_alpha,
        texts_per_eval=DEFAULT_SLICE_CANDIDATES + DEFAULT_SLICE_QUESTIONS,
        noise_models=1 + (len(NOISE_PRESETS) - 1) * 3, questions=DEFAULT_SLICE_QUESTIONS,
        noisy_conditions=len(NOISE_MODELS) * sum(level > 0 for level in NOISE_LEVELS))


def _numbers(kind: type, what: str):
    def parse(text: str) -> list:
        try:
            values = [kind(x) for x in text.split(",") if x.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be a comma list of numbers, got {text!r}") from None
        if not values or len(set(values)) != len(values):
            raise argparse.ArgumentTypeError(f"{what} must be a non-empty comma list without repeats, got {text!r}")
        return values

    return parse


def _noise_models(text: str) -> list[str]:
    models = [m.strip() for m in text.split(",") if m.strip()]
    if bad := [m for m in models if m not in ALL_NOISE_MODELS]:
        raise argparse.ArgumentTypeError(f"unknown noise model(s) {bad}; valid: {', '.join(ALL_NOISE_MODELS)}")
    return models


def build_parser() -> argparse.ArgumentParser:
    """The command line (``--help`` prints the full-run command and its estimate)."""
    estimate = full_cpu_estimate()
    epilog = (f"full CPU run:\n  {FULL_CPU_COMMAND}\nestimated CPU time ({CPU_TRAIN_PAIRS_PER_S:g} pairs/s, "
              f"{CPU_BF16_SENTENCES_PER_S:g} sentences/s): about "
              f"{estimate['total'] / 60:.0f} min ({estimate['train'] / 60:.0f} training, "
              f"{estimate['evaluate'] / 60:.0f} checkpoint evaluations, {estimate['noise'] / 60:.0f} noise)")
    p = argparse.ArgumentParser(description=__doc__, epilog=epilog, formatter_class=argparse.RawTextHelpFormatter)
    add_protocol_arguments(
        p, presets=CURVE_PRESETS, steps=150, paragraphs=48, max_queries=96, out="outputs/budget_curve",
        presets_help=f"comma list (default: {','.join(CURVE_PRESETS)}; any hybrid-<alpha> works)",
        smoke_help="a seconds-long wiring check: base and hybrid-0.5, 2 steps, a 2-paragraph slice, typo noise")
    p.set_defaults(seeds=[0, 1, 2], batch_size=32)
    for action in p._actions:  # the shared option's help names its own default
        if action.dest == "seeds":
            action.help = "training seeds of the curve presets (default: 0,1,2)"
    p.add_argument("--checkpoints", type=_numbers(int, "--checkpoints"), default=list(CURVE_STEPS),
                   help="steps to evaluate besides the final one, each in (0, --steps] (default: 25,50,100,150)")
    p.add_argument("--warmup-steps", type=int, default=10, help="linear warm-up steps, then a constant learning "
                                                                "rate (default: %(default)s)")
    p.add_argument("--freeze-embeddings", action=argparse.BooleanOptionalAction, default=True,
                   help="keep the token embeddings fixed (default: on; off for paper-size GPU runs)")
    p.add_argument("--freeze-layers", type=int, default=0, metavar="N",
                   help="also fix the embedding block and the bottom N transformer layers: an optional CPU budget "
                        "knob, a different model (default: 0; the README's curves train every layer)")
    p.add_argument("--alphas", type=_numbers(float, "--alphas"), default=list(ALPHAS),
                   help="α curve at the final budget (0 = cross, 1 = mono; default: 0,0.25,0.5,0.75,1)")
    p.add_argument("--alpha-seeds", type=seed_list, default=[0],
                   help="seeds of the α runs that are not presets (hybrid-0.25, hybrid-0.75; default: 0)")
    p.add_argument("--noise-models", type=_noise_models, default=list(NOISE_MODELS),
                   help=f"query-noise models of the robustness table (default: {','.join(NOISE_MODELS)})")
    p.add_argument("--noise-levels", type=_numbers(int, "--noise-levels"), default=list(NOISE_LEVELS),
                   help="noise levels, percent of words; 0 = clean (default: 0,20,50)")
    p.add_argument("--noise-presets", type=preset_list, default=list(NOISE_PRESETS),
                   help=f"final models evaluated under noise (default: {','.join(NOISE_PRESETS)})")
    p.add_argument("--no-noise", action="store_true", help="skip the noise table")
    p.add_argument("--quantize", choices=["none", "bf16", "int8"], default="none",
                   help="encoding precision of the evaluations (default: none = float32; bf16 is the CPU speed mode)")
    p.add_argument("--device", default=None, help="torch device; cuda also trains in bf16 (default: cuda if present)")
    p.add_argument("--encode-batch-size", type=int, default=64, help="(default: %(default)s)")
    return p


def parse_args(argv=None) -> argparse.Namespace:
    """Parse and check the command line; a bad value exits 2 with one line. Adds ``args.budget``."""
    p = build_parser()
    args = p.parse_args(argv)
    if args.full:
        args.paragraphs = args.max_queries = 0
    if args.smoke:
        args.presets, args.seeds, args.steps, args.checkpoints = ["base", "hybrid-0.5"], [0], 2, [1]
        args.batch_size, args.max_seq_length, args.warmup_steps = 4, 32, 0
        args.paragraphs, args.max_queries, args.alphas, args.alpha_seeds = 2, 4, [0.5], [0]
        args.noise_models, args.noise_levels, args.noise_presets = ["typo"], [0, 20], ["hybrid-0.5"]
    if args.paragraphs < 0 or args.max_queries < 0:
        p.error("--paragraphs and --max-queries must be >= 0 (0 = all)")
    if not args.seeds:
        p.error("--seeds is empty")
    if args.no_noise:
        args.noise_models = []
    if bad := [a for a in args.alphas if not 0 <= a <= 1]:
        p.error(f"--alphas are mono-batch probabilities in [0, 1]; got {bad}")
    if args.noise_models and (bad := [x for x in args.noise_presets if x not in args.presets]):
        p.error(f"--noise-presets {bad} are not among --presets {','.join(args.presets)}")
    if bad := [level for level in args.noise_levels if not 0 <= level <= 100]:
        p.error(f"--noise-levels are percentages of words in [0, 100]; got {bad}")
    cuda = (args.device or "").startswith("cuda")
    try:
        args.budget = CurveBudget(steps=args.steps, checkpoints=tuple(args.checkpoints), batch_size=args.batch_size,
                                  lr=args.lr, warmup_steps=args.warmup_steps, max_seq_length=args.max_seq_length,
                                  freeze_embeddings=args.freeze_embeddings, freeze_layers=args.freeze_layers,
                                  bf16=cuda)
    except ValueError as e:
        p.error(str(e))
    args.parser = p
    return args


def main(argv=None) -> CurveResult:
    """Run (or resume) the budget curve; prints the plan, then the tables. Returns the :class:`CurveResult`."""
    from pyterrier_hybrid.training import pairs_from_benchmark

    args = parse_args(argv)
    set_threads(args)
    needs_training = any(p != "base" for p in args.presets) or bool(args.alphas)  # every α point is trained
    try:
        plan = plan_budget_curve(
            out_dir=args.out, train_pairs=pairs_from_benchmark("mlqa-r") if needs_training else None,
            sample=evaluation_sample(args, "xquad-r"), model=args.model, presets=args.presets, seeds=args.seeds,
            budget=args.budget, alphas=args.alphas, alpha_seeds=args.alpha_seeds, noise_models=args.noise_models,
            noise_levels=args.noise_levels, noise_presets=args.noise_presets,
            train_description="mlqa-r, all languages and language pairs",
            quantize=None if args.quantize == "none" else args.quantize, device=args.device,
            encode_batch_size=args.encode_batch_size)
    except (ValueError, FileExistsError, PermissionError) as e:
        args.parser.error(str(e))
    estimate = plan.estimate()
    print(f"Plan: {plan.describe()}.\nEstimated CPU time with nothing reused ({CPU_TRAIN_PAIRS_PER_S:g} training "
          f"pairs/s, {CPU_BF16_SENTENCES_PER_S:g} bf16 sentences/s): "
          f"{estimate['total'] / 60:.0f} min.", flush=True)
    result = plan.run()
    tables = result.markdown()
    for name in ("final", "alpha", "noise"):
        if name in tables:
            print(f"\n## {name}\n\n{tables[name]}")
    print(f"Every table (curves per step, significance): {args.out / 'report.md'}; plots: {args.out / 'plots'}")
    return result


if __name__ == "__main__":
    main()
