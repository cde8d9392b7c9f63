"""Robustness curve: mAP of BM25 and the offline dense model (multilingual-e5-small) against query noise.

For each setting (default ``xquad-r/en-de``, ``xquad-r/ar-en`` and ``xquad-r/hi``, the monolingual Hindi entry
"hi-hi") and each level (clean, 10, 20, 30, 50 percent of words), the same ``pt.Experiment`` runs over the clean
entry and the noisy entries ``<setting>/noise-<model>-<level>``: same documents, same qrels, same query ids, only
the query text differs. Writes ``robustness_<model>.csv``, ``.md`` and ``.png`` (mAP against noise level) to
``--out``, and prints the table.

    python examples/noise_robustness.py                      # mixed noise, all 1190 questions per setting
    python examples/noise_robustness.py --model typo --max-queries 200

Budget (2 CPU cores): the documents of the three candidate languages (~3,700 sentences) and every distinct
query text are encoded once (vectors cached in ``--cache-dir``, shared with other runs of the same encoder, so
clean texts encoded before are read back), BM25 needs seconds.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import pandas as pd
import pyterrier as pt

import pyterrier_hybrid  # noqa: F401 - registers the clean and noisy entries
from pyterrier_hybrid.bm25 import BM25Index
from pyterrier_hybrid.encoding import BiEncoder
from pyterrier_hybrid.index import DenseIndex
from pyterrier_hybrid.languages import lang_of_id
from pyterrier_hybrid.models import DEFAULT_MODEL
from pyterrier_hybrid.noise import NOISE_LEVELS, NOISE_MODELS

SETTINGS = ("xquad-r/en-de", "xquad-r/ar-en", "xquad-r/hi")
METRICS = ["map", "recip_rank", "ndcg_cut_10"]


def _atomic_write(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _doc_lang(setting: str) -> str:
    part = setting.split("/")[1]
    return part.split("-")[1] if "-" in part else part


def build_indexes(settings: list[str], out: Path, encoder: BiEncoder) -> tuple[BM25Index, DenseIndex]:
    """One BM25 and one dense index over the candidate sentences of all the settings' candidate languages."""
    dlangs = sorted({_doc_lang(s) for s in settings})
    corpus = [doc for d in dlangs for doc in pt.get_dataset(f"irds:xquad-r/{d}").get_corpus_iter(verbose=False)]
    corpus = [{"docno": doc["docno"], "text": doc["text"]} for doc in corpus]
    name = "-".join(dlangs)
    bm25_path = out / f"bm25.{name}"
    bm25 = BM25Index(bm25_path) if (bm25_path / "manifest.json").is_file() else BM25Index.build(corpus, bm25_path)
    dense = DenseIndex(out / f"dense.{name}")
    if not dense.built():
        dense.indexer(encoder).index(corpus)
    return bm25, dense


def _markdown(wide: pd.DataFrame) -> str:
    header = "| setting | system | " + " | ".join(wide.columns) + " |"
    lines = [header, "|" + "---|" * (len(wide.columns) + 2)]
    for (setting, system), values in wide.iterrows():
        lines.append(f"| {setting} | {system} | " + " | ".join(f"{v:.4f}" for v in values) + " |")
    return "\n".join(lines)


def plot(table: pd.DataFrame, model: str, path: Path) -> None:
    """mAP against noise level, one panel per setting, one line per system."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    settings = list(dict.fromkeys(table["setting"]))
    fig, axes = plt.subplots(1, len(settings), figsize=(4.2 * len(settings), 3.6), sharey=True, squeeze=False)
    for ax, setting in zip(axes[0], settings):
        part = table[table["setting"] == setting]
        for system, rows in part.groupby("system", sort=False):
            rows = rows.sort_values("level")
            ax.plot(rows["level"], rows["map"], marker="o", label=system)
        ax.set_title(setting)
        ax.set_xlabel(f"{model} noise (% of query words)")
        ax.set_xticks(sorted(part["level"].unique()))
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("mAP")
    axes[0][0].legend()
    fig.tight_layout()
    _atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    plt.close(fig)


def main(argv: list[str] | None = None) -> pd.DataFrame:
    """Run the curve and write the table and the plot; returns the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="mixed", choices=NOISE_MODELS, help="noise model (default: mixed)")
    parser.add_argument("--levels", type=int, nargs="+", default=list(NOISE_LEVELS), help="noise levels in percent")
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), help="clean xquad-r entry ids")
    parser.add_argument("--max-queries", type=int, default=None, help="first N questions per setting (quick run)")
    parser.add_argument("--seed", type=int, default=0, help="noise seed (0: the entries without -s<seed>)")
    parser.add_argument("--encoder", default=DEFAULT_MODEL, help="dense model (default: offline multilingual-e5-small)")
    parser.add_argument("--out", type=Path, default=Path("runs/noise_robustness"), help="output directory")
    parser.add_argument("--cache-dir", default="~/.cache/pyterrier_hybrid/vectors",
                        help="vector cache shared with other runs of the same encoder (clean texts are reused)")
    parser.add_argument("--no-dense", action="store_true", help="BM25 only")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    encoder = None if args.no_dense else BiEncoder(args.encoder, cache_dir=args.cache_dir, batch_size=64)
    started = time.time()
    bm25_index, dense_index = build_indexes(args.settings, args.out, encoder) if encoder else (None, None)
    if bm25_index is None:
        dlangs = sorted({_doc_lang(s) for s in args.settings})
        corpus = [{"docno": d["docno"], "text": d["text"]} for lang in dlangs
                  for d in pt.get_dataset(f"irds:xquad-r/{lang}").get_corpus_iter(verbose=False)]
        path = args.out / f"bm25.{'-'.join(dlangs)}"
        bm25_index = BM25Index(path) if (path / "manifest.json").is_file() else BM25Index.build(corpus, path)
    print(f"indexes ready in {time.time() - started:.0f}s", flush=True)

    rows = []
    for setting in args.settings:
        dlang = _doc_lang(setting)
        systems = [bm25_index.retriever(langs=[dlang], num_results=100)]
        names = ["BM25"]
        if dense_index is not None:
            systems.append(dense_index.retriever(encoder, langs=[dlang], num_results=100))
            names.append("e5-small")
        for level in [0, *args.levels]:
            suffix = f"/noise-{args.model}-{level}" + (f"-s{args.seed}" if args.seed else "")
            dataset_id = setting if level == 0 else setting + suffix
            ds = pt.get_dataset(f"irds:{dataset_id}")
            topics = ds.get_topics("text")
            if args.max_queries:
                topics = topics.iloc[: args.max_queries]
            assert all(lang_of_id(q) == setting.split("/")[1][:2] for q in topics["qid"])
            t0 = time.time()
            result = pt.Experiment(systems, topics, ds.get_qrels(), eval_metrics=METRICS, names=names)
            for _, r in result.iterrows():
                rows.append({"setting": setting, "dataset": dataset_id, "level": level, "system": r["name"],
                             "queries": len(topics), **{m: r[m] for m in METRICS}})
            print(f"{dataset_id}: {len(topics)} queries, " + ", ".join(
                f"{r['name']} mAP {r['map']:.4f}" for _, r in result.iterrows()) + f" ({time.time() - t0:.0f}s)",
                flush=True)

    table = pd.DataFrame(rows)
    stem = args.out / f"robustness_{args.model}"
    _atomic_write(stem.with_suffix(".csv"), lambda tmp: table.to_csv(tmp, index=False))
    wide = table.pivot_table(index=["setting", "system"], columns="level", values="map", sort=False)
    wide.columns = ["clean" if c == 0 else f"{c}%" for c in wide.columns]
    tokenizer = bm25_index.manifest.get("tokenizer", {}).get("name", "?")
    markdown = (f"mAP under {args.model} query noise (seed {args.seed}; "
                f"{table['queries'].max()} questions per setting; documents clean; BM25 tokenizer {tokenizer}; "
                f"dense {args.encoder if encoder else 'not run'})\n\n"
                + _markdown(wide) + "\n")
    _atomic_write(stem.with_suffix(".md"), lambda tmp: Path(tmp).write_text(markdown, encoding="utf-8"))
    plot(table, args.model, stem.with_suffix(".png"))
    print(markdown)
    print(f"wrote {stem}.csv, .md, .png in {time.time() - started:.0f}s")
    return table


if __name__ == "__main__":
    main()
