#!/usr/bin/env python3
"""Corpus scale: build time, memory, disk, latency and recall of DenseIndex search methods on synthetic vectors.

No encoding: unit vectors in 384 dimensions (multilingual-e5-small's size) with 11 language labels, written as
a :class:`~pyterrier_hybrid.index.DenseIndex` through its public indexer (``doc_vec`` input), then searched with
``DenseIndex.retriever(method=...)`` exactly as users do: flat (exact, FAISS ID selector), and the per-language
approximate methods HNSW, IVF and IVF-PQ (:mod:`pyterrier_hybrid.ann`, default settings), each without a filter
(pooled) and with a one-language filter.

Two generators (``--data``):

- ``clustered``: a mixture per language. Each vector is ``normalise(l + t + e)``: ``l`` the direction of its
  language, ``t`` one of ``N / 1000`` topic centres shared by all languages, ``e`` isotropic noise, the three of
  equal norm. Like a multilingual encoder, languages occupy separate regions and a topic exists in every language.
- ``uniform``: uniform random unit vectors, languages assigned in blocks. No structure at all: the worst case
  for approximate search (every document is about as far as every other).

Queries (200): in ``clustered``, each query is written in one of the 10 languages other than German, about a
random topic; the filtered search asks for German documents (a cross-lingual setting such as ``en-de``). For
each query one relevant German document is planted: its exact translation (same topic and noise, German
direction), so ``planted@100`` (the share of queries whose planted document is returned) is defined. In
``uniform``, queries are random unit vectors and the planted document is ``normalise(q + e)``.

Measured, each in a fresh process so that peak memory (VmHWM, which includes memory-mapped file pages that
were read) belongs to one method: the build (seconds, peak RSS), the serving process (load + first query,
ms/query at batch 1 over 50 queries and at batch 100 over 200, peak RSS and the anonymous part of RSS at the
end, i.e. what is not page cache), the structure's size on disk, and recall@100 against exact search (with
the same filter). The pooled IVF index with a FAISS range selector (what per-language sub-indexes replace) is
measured at the smallest size for comparison.

Run it as one heavy job::

    cd /work/main && flock /tmp/heavy.lock nice -n 5 .venv/bin/python benchmarks/scale.py
    python benchmarks/scale.py --sizes 20000 --data clustered      # a quick check while developing
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

# One OpenMP thread per search process (set before numpy / faiss load): the 2 cores are shared, and OpenMP
# threads that spin-wait for a descheduled sibling make multi-threaded timings erratic.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DIM = 384
LANGS = ("ar", "de", "el", "en", "es", "hi", "ru", "th", "tr", "vi", "zh")  # sorted, as the index stores them
FILTER = "de"
K = 100
N_QUERIES = 200
N_BATCH1 = 50
N_FLAT_POOLED_BATCH1 = 10  # exact pooled search reads every vector per query: fewer timed queries
CHUNK = 65536


# ---------------------------------------------------------------------------------------------------- data
def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


class Synthetic:
    """Deterministic synthetic corpus and queries (see the module docstring); ``seed`` fixes everything."""

    def __init__(self, kind: str, n: int, seed: int = 0, only_filter_language: bool = False):
        self.kind, self.n, self.seed, self.only = kind, n, seed, only_filter_language
        rng = np.random.default_rng([seed, 0])
        self.sizes = [n // len(LANGS) + (i < n % len(LANGS)) for i in range(len(LANGS))]
        self.starts = np.concatenate([[0], np.cumsum(self.sizes)]).astype(int)
        self.n_topics = max(100, n // 1000)
        self.lang_dirs = _unit(rng.standard_normal((len(LANGS), DIM)))
        self.topics = _unit(rng.standard_normal((self.n_topics, DIM)))
        f = LANGS.index(FILTER)
        self.q_langs = rng.integers(0, len(LANGS) - 1, N_QUERIES)
        self.q_langs[self.q_langs >= f] += 1  # every query language except the filter language
        self.q_topics = rng.integers(0, self.n_topics, N_QUERIES)
        self.q_noise = rng.standard_normal((N_QUERIES, DIM)).astype(np.float32) / np.sqrt(DIM)
        # planted documents: distinct positions inside the German block
        self.planted = self.starts[f] + rng.choice(self.sizes[f], N_QUERIES, replace=False)
        # with only the filter language indexed, docids start at its first document
        self.offset = int(self.starts[f]) if only_filter_language else 0

    def _mix(self, lang_idx: np.ndarray, topics: np.ndarray, noise: np.ndarray) -> np.ndarray:
        return _unit(self.lang_dirs[lang_idx] + self.topics[topics] + noise)

    def queries(self) -> np.ndarray:
        """The query vectors."""
        if self.kind == "uniform":
            return _unit(self.q_noise)
        return self._mix(self.q_langs, self.q_topics, self.q_noise)

    def planted_vectors(self) -> np.ndarray:
        """Each query's planted relevant document (in the filter language)."""
        if self.kind == "uniform":
            e = np.random.default_rng([self.seed, 2]).standard_normal((N_QUERIES, DIM)) / np.sqrt(DIM)
            return _unit(self.queries() + e.astype(np.float32))
        return self._mix(np.full(N_QUERIES, LANGS.index(FILTER)), self.q_topics, self.q_noise)

    def chunks(self):
        """``(start docid, language, vectors)`` in docid order (languages in sorted order, as stored)."""
        planted_vecs = self.planted_vectors()
        for li, lang in enumerate(LANGS):
            if self.only and lang != FILTER:
                continue
            for off in range(0, self.sizes[li], CHUNK):
                m = min(CHUNK, self.sizes[li] - off)
                rng = np.random.default_rng([self.seed, 1, li, off // CHUNK])
                noise = rng.standard_normal((m, DIM)).astype(np.float32) / np.sqrt(DIM)
                if self.kind == "uniform":
                    vecs = _unit(noise)
                else:
                    vecs = self._mix(np.full(m, li), rng.integers(0, self.n_topics, m), noise)
                start = int(self.starts[li] + off)
                here = (self.planted >= start) & (self.planted < start + m)
                vecs[self.planted[here] - start] = planted_vecs[here]
                yield start - self.offset, lang, vecs


class VectorsOnly:
    """The 'encoder' of a synthetic index: only its manifest is recorded (nothing is encoded)."""

    def manifest(self) -> dict:
        return {"model": "synthetic", "dim": DIM, "pooling": "none", "normalize": True, "query_prompt": "",
                "doc_prompt": "", "fingerprint": "synthetic"}


def write_index(data: Synthetic, path: Path) -> float:
    """Write the synthetic corpus as a DenseIndex through the public indexer; returns seconds."""
    from pyterrier_hybrid.index import DenseIndex

    def records():
        for start, lang, vecs in data.chunks():
            for i, vec in enumerate(vecs):
                yield {"docno": f"{lang}_{start + i}", "lang": lang, "doc_vec": vec}

    t0 = time.perf_counter()
    DenseIndex(path).indexer(VectorsOnly(), chunk_size=CHUNK).index(records())
    return time.perf_counter() - t0


def exact_top_k(vecs: np.ndarray, queries: np.ndarray, start: int, stop: int) -> np.ndarray:
    """Exact top-K docids of each query within docids [start, stop) (numpy over the memory map, in blocks)."""
    best_s = np.full((len(queries), 0), -np.inf, dtype=np.float32)
    best_i = np.zeros((len(queries), 0), dtype=np.int64)
    for lo in range(start, stop, 4 * CHUNK):
        hi = min(stop, lo + 4 * CHUNK)
        s = queries @ np.asarray(vecs[lo:hi]).T
        top = np.argpartition(-s, min(K, s.shape[1] - 1), axis=1)[:, :K]
        best_s = np.concatenate([best_s, np.take_along_axis(s, top, 1)], axis=1)
        best_i = np.concatenate([best_i, top + lo], axis=1)
        keep = np.argsort(-best_s, axis=1, kind="stable")[:, :K]
        best_s, best_i = np.take_along_axis(best_s, keep, 1), np.take_along_axis(best_i, keep, 1)
    return best_i


# ---------------------------------------------------------------------------------------------------- workers
def _memory() -> dict[str, float]:
    """Peak RSS (VmHWM) and current anonymous RSS of this process, in MB."""
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "RssAnon"):
            out[key] = int(value.split()[0]) / 1024
    return out


def _set_threads(n: int) -> None:
    import faiss

    faiss.omp_set_num_threads(n)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(n)
    except ImportError:
        pass


def worker_build(args: argparse.Namespace) -> dict:
    """Build one method's per-language sub-indexes (fresh process: peak memory is the build's)."""
    _set_threads(args.threads)
    from pyterrier_hybrid.ann import LanguagePartitions
    from pyterrier_hybrid.index import DenseIndex

    index = DenseIndex(args.index)
    t0 = time.perf_counter()
    folder = LanguagePartitions(index, args.method, n_list=args.n_list).build()
    seconds = time.perf_counter() - t0
    disk = sum(p.stat().st_size for p in folder.iterdir()) / 2**20
    return {"build_s": seconds, "build_peak_mb": _memory()["VmHWM"], "disk_mb": disk}


def worker_serve(args: argparse.Namespace) -> dict:
    """Load and search one method, unfiltered and filtered (fresh process: its memory is the serving cost)."""
    _set_threads(1)
    import pandas as pd

    from pyterrier_hybrid.index import DenseIndex

    queries = np.load(args.queries)
    index = DenseIndex(args.index)
    index.manifest  # noqa: B018 - opened and checked: the process before any vector or structure is read
    frame = pd.DataFrame({"qid": [f"q{i}" for i in range(len(queries))], "query_vec": list(queries)})
    index.retriever(method=args.method, num_results=K)(frame.iloc[:0])
    index.flex  # noqa: B018 - every library imported (pyterrier-dr, torch, faiss); no vector read yet
    out = {"process_mb": _memory()["VmHWM"]}
    for name, langs in (("none", None), ("one language", [FILTER])):
        retr = index.retriever(method=args.method, langs=langs, num_results=K, n_list=args.n_list)
        t0 = time.perf_counter()
        retr(frame.iloc[:1])  # loads the structure (FAISS flat: reads every vector into memory)
        load = time.perf_counter() - t0
        n1 = N_FLAT_POOLED_BATCH1 if args.method == "flat" and langs is None else N_BATCH1
        t0 = time.perf_counter()
        for i in range(n1):
            retr(frame.iloc[i:i + 1])
        b1 = (time.perf_counter() - t0) / n1 * 1000
        t0 = time.perf_counter()
        parts = [retr(frame.iloc[i:i + 100]) for i in range(0, len(frame), 100)]
        b100 = (time.perf_counter() - t0) / len(frame) * 1000
        # the search structure alone (FAISS / per-language sub-indexes), without the PyTerrier frame handling
        structure = index._faiss_index(args.method, retr.neighbours, retr.ef_construction, retr.n_list)
        params, _keep = retr._params()
        t0 = time.perf_counter()
        for i in range(n1):
            structure.search(queries[i:i + 1], K, params=params)
        search_b1 = (time.perf_counter() - t0) / n1 * 1000
        res = pd.concat(parts)
        ids = res.groupby("qid", sort=False)["docid"].apply(list).reindex(frame["qid"]).tolist()
        out[name] = {"load_s": load, "ms_b1": b1, "ms_b100": b100, "search_ms_b1": search_b1,
                     "ids": [list(map(int, x)) if isinstance(x, list) else [] for x in ids]}
    mem = _memory()
    out.update(serve_peak_mb=mem["VmHWM"], serve_anon_mb=mem["RssAnon"])
    out["sweep"] = []
    for pair in filter(None, (args.sweep or "").split(",")):  # filtered search with other n_probe / refine
        n_probe, refine = (int(x) for x in pair.split(":"))
        retr = index.retriever(method=args.method, langs=[FILTER], num_results=K, n_list=args.n_list,
                               n_probe=n_probe, refine=refine)
        structure = index._faiss_index(args.method, retr.neighbours, retr.ef_construction, retr.n_list)
        params, _keep = retr._params()
        t0 = time.perf_counter()
        for i in range(N_BATCH1):
            structure.search(queries[i:i + 1], K, params=params)
        search_b1 = (time.perf_counter() - t0) / N_BATCH1 * 1000
        t0 = time.perf_counter()
        res = pd.concat([retr(frame.iloc[i:i + 100]) for i in range(0, len(frame), 100)])
        b100 = (time.perf_counter() - t0) / len(frame) * 1000
        ids = res.groupby("qid", sort=False)["docid"].apply(list).reindex(frame["qid"]).tolist()
        out["sweep"].append({"n_probe": n_probe, "refine": refine, "search_ms_b1": search_b1, "ms_b100": b100,
                             "ids": [list(map(int, x)) if isinstance(x, list) else [] for x in ids]})
    return out


def _run_worker(kind: str, index: Path, method: str, queries: Path, threads: int, n_list: int | None,
                sweep: str | None = None) -> dict:
    cmd = [sys.executable, __file__, "--worker", kind, "--index", str(index), "--method", method,
           "--queries-file", str(queries), "--threads", str(threads)]
    if n_list:
        cmd += ["--n-list", str(n_list)]
    if sweep and kind == "serve" and method in ("ivf", "ivfpq"):
        cmd += ["--sweep", sweep]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"{kind} {method} on {index} failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def pooled_selector_recall(vecs: np.ndarray, data: Synthetic, queries: np.ndarray, gt: np.ndarray,
                           threads: int) -> dict:
    """One pooled IVF index (2·√N lists) searched through a FAISS range selector: the design not taken."""
    import faiss

    _set_threads(threads)
    n_list = max(1, int(2 * np.sqrt(data.n)))
    t0 = time.perf_counter()
    ivf = faiss.index_factory(DIM, f"IVF{n_list},Flat", faiss.METRIC_INNER_PRODUCT)
    rows = np.sort(np.random.default_rng(0).choice(data.n, min(data.n, 39 * n_list), replace=False))
    ivf.train(np.asarray(vecs[rows]))
    for lo in range(0, data.n, CHUNK):
        ivf.add(np.asarray(vecs[lo:lo + CHUNK]))
    build = time.perf_counter() - t0
    f = LANGS.index(FILTER)
    sel = faiss.IDSelectorRange(int(data.starts[f]), int(data.starts[f + 1]))
    _set_threads(1)
    t0 = time.perf_counter()
    _, ids = ivf.search(queries, K, params=faiss.SearchParametersIVF(sel=sel, nprobe=16))
    ms = (time.perf_counter() - t0) / len(queries) * 1000
    return {"build_s": build, "ms_b100": ms, "recall": _recall(ids.tolist(), gt)}


def _recall(ids: list[list[int]], gt: np.ndarray) -> float:
    return float(np.mean([len(set(r) & set(g.tolist())) / K for r, g in zip(ids, gt)]))


# ---------------------------------------------------------------------------------------------------- driver
COLUMNS = ["data", "n", "method", "settings", "filter", "build_s", "build_peak_mb", "disk_mb", "load_s", "ms_b1",
           "search_ms_b1", "ms_b100", "recall@100", "planted@100", "process_mb", "serve_peak_mb", "serve_anon_mb"]


def run_size(kind: str, n: int, methods: list[str], work: Path, threads: int, n_list: int | None, log,
             sweep: str | None = None, only_filter_language: bool = False) -> tuple:
    """Every measurement for one generator and corpus size: rows, and what the selector comparison needs."""
    data = Synthetic(kind, n, only_filter_language=only_filter_language)
    path = work / f"{kind}-{n}"
    if path.exists():
        shutil.rmtree(path)
    seconds = write_index(data, path)
    log(f"{kind} {n:,}: DenseIndex written in {seconds:.1f} s")
    from pyterrier_hybrid.index import DenseIndex

    index = DenseIndex(path)
    vecs = index.vectors()
    queries = data.queries()
    qfile = work / f"{kind}-{n}.queries.npy"
    np.save(qfile, queries)
    f = LANGS.index(FILTER)
    t0 = time.perf_counter()
    lo, hi = int(data.starts[f]) - data.offset, int(data.starts[f + 1]) - data.offset
    gt = {"one language": exact_top_k(vecs, queries, lo, hi)}
    gt["none"] = gt["one language"] if data.only else exact_top_k(vecs, queries, 0, n)
    log(f"{kind} {n:,}: exact top-{K} in {time.perf_counter() - t0:.1f} s")
    base = {"data": f"{kind}, {FILTER} only" if data.only else kind, "n": n}
    rows = [{**base, "method": "(index write)", "filter": "", "build_s": seconds,
             "disk_mb": (path / "vecs.f4").stat().st_size / 2**20}]
    for method in methods:
        built = {"build_s": 0.0, "build_peak_mb": float("nan"), "disk_mb": 0.0}
        lists = n_list if method in ("ivf", "ivfpq") else None
        if method != "flat":
            built = _run_worker("build", path, method, qfile, threads, lists)
        served = _run_worker("serve", path, method, qfile, threads, lists, sweep)
        settings = {"flat": "exact", "hnsw": "M 32, efC 40, ef 128", "ivf": "nprobe 32",
                    "ivfpq": "nprobe 32, PQ48, refine 4"}[method]
        if method in ("ivf", "ivfpq"):
            settings = f"{'n_list ' + str(lists) if lists else 'n_list 4√n'}, {settings}"
        for name in ("none", "one language"):
            s = served[name]
            planted = (np.mean([p in r for p, r in zip((data.planted - data.offset).tolist(), s["ids"])])
                       if name == "one language" else float("nan"))
            row = {**base, "method": method, "settings": settings, "filter": name, **built, "load_s": s["load_s"],
                   "ms_b1": s["ms_b1"], "search_ms_b1": s["search_ms_b1"], "ms_b100": s["ms_b100"],
                   "recall@100": _recall(s["ids"], gt[name]), "planted@100": planted,
                   "process_mb": served["process_mb"], "serve_peak_mb": served["serve_peak_mb"],
                   "serve_anon_mb": served["serve_anon_mb"]}
            rows.append(row)
            log(f"  {method:6s} {name:12s} recall@100 {row['recall@100']:.3f}  {row['ms_b1']:.2f} ms/q (b1; "
                f"structure {row['search_ms_b1']:.2f})  {row['ms_b100']:.2f} ms/q (b100)  build "
                f"{row['build_s']:.1f} s  serve peak {row['serve_peak_mb']:.0f} MB (anon {row['serve_anon_mb']:.0f};"
                f" process before loading {served['process_mb']:.0f})")
        for point in served["sweep"]:
            planted = np.mean([p in r for p, r in zip((data.planted - data.offset).tolist(), point["ids"])])
            row = {**base, "method": method, "settings": f"{settings.split(', nprobe')[0]}, nprobe {point['n_probe']}"
                   + (f", refine {point['refine']}" if method == "ivfpq" else ""), "filter": "one language",
                   "search_ms_b1": point["search_ms_b1"], "ms_b100": point["ms_b100"],
                   "recall@100": _recall(point["ids"], gt["one language"]), "planted@100": planted}
            rows.append(row)
            log(f"  {method:6s} one language, n_probe {point['n_probe']} refine {point['refine']}: recall@100 "
                f"{row['recall@100']:.3f}  structure {row['search_ms_b1']:.2f} ms/q (b1)  {row['ms_b100']:.2f} ms/q "
                f"(b100)")
    return rows, data, vecs, queries, gt


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="100000,1000000,5000000", help="comma-separated corpus sizes")
    ap.add_argument("--data", default="clustered,uniform", help="generators: clustered, uniform")
    ap.add_argument("--methods", default="flat,hnsw,ivf,ivfpq")
    ap.add_argument("--skip", default="hnsw@5000000,flat@5000000,ivf@5000000,flat@1000000:uniform,"
                                      "hnsw@1000000:uniform,ivf@1000000:uniform",
                    help="METHOD@SIZE[:DATA] pairs not run (time / memory budget)")
    ap.add_argument("--large-n-list", type=int, default=1024,
                    help="IVF lists per language above 1M vectors (the 4·√n default trains too long on 2 cores)")
    ap.add_argument("--uniform-max", type=int, default=1_000_000, help="largest size run with uniform data")
    ap.add_argument("--threads", type=int, default=2, help="threads for builds (searches use 1)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/pyterrier_hybrid_scale"), help="scratch folder")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "scale",
                    help="writes OUT.csv, OUT.md, OUT.png")
    ap.add_argument("--keep", action="store_true", help="keep the scratch indexes")
    ap.add_argument("--worker", choices=["build", "serve"], help=argparse.SUPPRESS)
    ap.add_argument("--index", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--method", help=argparse.SUPPRESS)
    ap.add_argument("--queries-file", dest="queries", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--n-list", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--only-filter-language", action="store_true",
                    help=f"index only the {FILTER} documents of each size: the filtered search's sub-index, built "
                         "at 1/11 of the cost (the 'none' rows then search the same documents)")
    ap.add_argument("--sweep", help="IVF / IVF-PQ: also search filtered with these N_PROBE:REFINE pairs (e.g. 128:4)")
    args = ap.parse_args(argv)
    if args.worker:
        result = worker_build(args) if args.worker == "build" else worker_serve(args)
        print(json.dumps(result))
        return

    import pandas as pd

    sizes = [int(s) for s in args.sizes.split(",")]
    kinds = [k.strip() for k in args.data.split(",")]
    methods = [m.strip() for m in args.methods.split(",")]
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    if args.work.exists():
        raise SystemExit(f"{args.work} exists; remove it or pass another --work (it is deleted afterwards)")
    args.work.mkdir(parents=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    lines: list[str] = []

    def log(msg: str) -> None:
        print(msg, flush=True)
        lines.append(msg)

    started = time.perf_counter()
    log(f"scale benchmark: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, builds with "
        f"{args.threads} threads, searches with 1; dim {DIM}, {len(LANGS)} languages, {N_QUERIES} queries, "
        f"k={K}, filter={FILTER}")
    rows: list[dict] = []
    try:
        for n in sizes:
            for kind in kinds:
                if kind == "uniform" and n > args.uniform_max:
                    continue
                todo = [m for m in methods if f"{m}@{n}" not in skip and f"{m}@{n}:{kind}" not in skip]
                skipped = sorted(set(methods) - set(todo))
                if skipped:
                    log(f"{kind} {n:,}: not run (budget): {', '.join(skipped)}")
                lists = args.large_n_list if n > 1_000_000 else None
                size_rows, data, vecs, queries, gt = run_size(kind, n, todo, args.work, args.threads, lists, log,
                                                              args.sweep, args.only_filter_language)
                rows += size_rows
                # the design not taken, once, where it is cheap to build
                if n == min(sizes) and n <= 1_000_000 and not args.only_filter_language:
                    p = pooled_selector_recall(vecs, data, queries, gt["one language"], args.threads)
                    rows.append({"data": kind, "n": n, "method": "ivf pooled+selector", "filter": "one language",
                                 "build_s": p["build_s"], "ms_b100": p["ms_b100"], "recall@100": p["recall"]})
                    log(f"  pooled IVF + range selector (nprobe 16): recall@100 {p['recall']:.3f}")
                del vecs
                if not args.keep:
                    shutil.rmtree(args.work / f"{kind}-{n}")
                log(f"  elapsed {time.perf_counter() - started:.0f} s")
    finally:
        if not args.keep:
            shutil.rmtree(args.work, ignore_errors=True)
    table = pd.DataFrame(rows, columns=COLUMNS)
    table.to_csv(args.out.with_suffix(".csv"), index=False, float_format="%.4g")
    md = table.to_markdown(index=False, floatfmt=".3g")
    header = "\n".join(["# benchmarks/scale.py", "", *[f"    {line}" for line in lines], ""])
    args.out.with_suffix(".md").write_text(header + "\n" + md + "\n")
    plot(table, args.out.with_suffix(".png"))
    print(md)
    print(f"total {time.perf_counter() - started:.0f} s; wrote {args.out}.csv/.md/.png")


def plot(table, path: Path) -> None:
    """Log-log plots of filtered ms/query (batch 1) and serving peak memory against corpus size."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.2))
    axes = fig.subplots(1, 3)
    rows = table[table["method"].isin(["flat", "hnsw", "ivf", "ivfpq"])]
    for (kind, method), g in rows.groupby(["data", "method"]):
        style = "-" if kind == "clustered" else ":"
        label = f"{method} ({kind})"
        filt = g[g["filter"] == "one language"].sort_values("n")
        pooled = g[g["filter"] == "none"].sort_values("n")
        axes[0].plot(filt["n"], filt["ms_b1"], style, marker="o", label=label)
        axes[1].plot(pooled["n"], pooled["ms_b1"], style, marker="o", label=label)
        axes[2].plot(filt["n"], filt["serve_peak_mb"], style, marker="o", label=label)
    titles = ["one-language filter: ms/query (batch 1)", "no filter: ms/query (batch 1)",
              "serving process: peak RSS (MB)"]
    for ax, title in zip(axes, titles):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("vectors")
        ax.set_title(title, fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
