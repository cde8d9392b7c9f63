"""Robustness curve: mAP against query noise of BM25, the base dense model and mono- / hybrid-trained ones.

Systems: BM25 (ICU words), the base dense model (default the offline multilingual-e5-small) and the same
model fine-tuned on MLQA-R (clean text) with the presets of ``--dense-presets`` (default ``mono`` and
``hybrid-0.5``, the paper's comparison; trained once under ``--steps``/``--batch-size`` and kept in
``<out>/models``). For each setting (default ``xquad-r/en-de``, ``xquad-r/ar-en`` and ``xquad-r/hi``, the
monolingual Hindi entry "hi-hi") and each level (clean, 10, 20, 30, 50 percent of words), the same
``pt.Experiment`` runs over the clean entry and the noisy entries ``<setting>/noise-<model>-<level>``: same
documents, same qrels, same query ids, only the query text differs. Writes ``robustness_<model>.csv``, ``.md``
and ``.png`` (mAP against noise level) to ``--out``, and prints the table.

    python examples/noise_robustness.py                      # mixed noise, 200 questions per setting
    python examples/noise_robustness.py --model typo --max-queries 0 --dense-presets base   # all 1190
    python examples/noise_robustness.py --steps 200 --seed 1 --dense-presets base,mono,hybrid-0.25,hybrid-0.5

Budget (2 CPU cores; 7.8 min measured here by default): per dense model the documents of the three candidate languages
(~3,500 sentences) and every distinct query text are encoded once (vectors cached in ``--cache-dir``, keyed by
the weights, so a rerun or texts encoded before are read back); each trained preset adds ``--steps`` steps at
``--batch-size`` (30 x 16 by default, ≈2 min); BM25 needs seconds.
"""

from __future__ import annotations

import argparse
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
from pyterrier_hybrid.plots import atomic_write_text, save_figure
from pyterrier_hybrid.protocol import Budget, train_preset
from pyterrier_hybrid.study import add_budget_arguments, budget_from_args, preset_list
from pyterrier_hybrid.training import pairs_from_benchmark

SETTINGS = ("xquad-r/en-de", "xquad-r/ar-en", "xquad-r/hi")
METRICS = ["map", "recip_rank", "ndcg_cut_10"]


def _doc_lang(setting: str) -> str:
    part = setting.split("/")[1]
    return part.split("-")[1] if "-" in part else part


def candidates(settings: list[str]) -> tuple[str, list[dict]]:
    """A name for the candidate languages of ``settings`` and their sentences (docno, text)."""
    dlangs = sorted({_doc_lang(s) for s in settings})
    corpus = [{"docno": d["docno"], "text": d["text"]} for lang in dlangs
              for d in pt.get_dataset(f"irds:xquad-r/{lang}").get_corpus_iter(verbose=False)]
    return "-".join(dlangs), corpus


def bm25_index(name: str, corpus: list[dict], out: Path) -> BM25Index:
    """One BM25 index over the candidates (:func:`candidates`) of all the settings (reused if built)."""
    path = out / f"bm25.{name}"
    return BM25Index(path) if (path / "manifest.json").is_file() else BM25Index.build(corpus, path)


def dense_index(name: str, corpus: list[dict], out: Path, encoder: BiEncoder, system: str) -> DenseIndex:
    """One dense index per system over the same candidates (reused if built)."""
    index = DenseIndex(out / f"dense.{system}.{name}")
    if not index.built():
        index.indexer(encoder).index(corpus)
    return index


def dense_models(args: argparse.Namespace, budget: Budget) -> dict[str, str]:
    """System name -> model directory: the base model and one model per trained preset (trained on MLQA-R)."""
    models = {}
    pairs = None
    for preset in args.dense_presets:
        if preset == "base":
            models["base"] = args.encoder
            continue
        pairs = pairs if pairs is not None else pairs_from_benchmark("mlqa-r")
        print(f"training {preset} on MLQA-R ({budget.describe()}, seed {args.train_seed})", flush=True)
        models[preset] = train_preset(preset, pairs, output_dir=args.out / "models" / f"{preset}-s{args.train_seed}",
                                      model=args.encoder, budget=budget, seed=args.train_seed,
                                      data_description="mlqa-r, all languages and language pairs")
    return models


def _markdown(wide: pd.DataFrame) -> str:
    header = "| setting | system | " + " | ".join(wide.columns) + " |"
    lines = [header, "|" + "---|" * (len(wide.columns) + 2)]
    for (setting, system), values in wide.iterrows():
        lines.append(f"| {setting} | {system} | " + " | ".join(f"{v:.4f}" for v in values) + " |")
    return "\n".join(lines)


def plot(table: pd.DataFrame, model: str, path: Path) -> None:
    """mAP against noise level, one panel per setting, one line per system."""
    from matplotlib.figure import Figure

    settings = list(dict.fromkeys(table["setting"]))
    fig = Figure(figsize=(4.2 * len(settings), 3.6), layout="constrained")
    axes = fig.subplots(1, len(settings), sharey=True, squeeze=False)
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
    axes[0][0].legend(fontsize="small")
    save_figure(fig, path, dpi=120)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (``--help``)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="mixed", choices=NOISE_MODELS, help="noise model (default: mixed)")
    parser.add_argument("--levels", type=int, nargs="+", default=list(NOISE_LEVELS), help="noise levels in percent")
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), help="clean xquad-r entry ids")
    parser.add_argument("--max-queries", type=int, default=200,
                        help="first N questions per setting (0 = all 1190; default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="noise seed (0: the entries without -s<seed>)")
    parser.add_argument("--encoder", default=DEFAULT_MODEL,
                        help="base dense model (default: offline multilingual-e5-small)")
    parser.add_argument("--dense-presets", type=preset_list, default=["base", "mono", "hybrid-0.5"],
                        help="dense systems: base and/or presets trained on MLQA-R (default: base,mono,hybrid-0.5)")
    add_budget_arguments(parser, steps=30)
    parser.add_argument("--train-seed", type=int, default=0, help="training seed (default: 0)")
    parser.add_argument("--out", type=Path, default=Path("outputs/noise_robustness"), help="output directory")
    parser.add_argument("--cache-dir", default="~/.cache/pyterrier_hybrid/vectors",
                        help="vector cache shared with other runs of the same encoder (clean texts are reused)")
    parser.add_argument("--no-dense", action="store_true", help="BM25 only")
    args = parser.parse_args(argv)
    if args.no_dense:
        args.dense_presets = []
    if args.max_queries < 0:
        parser.error("--max-queries must be >= 0 (0 = all)")
    if bad := [s for s in args.settings if not s.startswith("xquad-r/") or s.count("/") != 1]:
        parser.error(f"--settings takes clean xquad-r entries such as xquad-r/en-de or xquad-r/hi, got {bad}")
    args.budget = budget_from_args(parser, args)
    return args


def main(argv: list[str] | None = None) -> pd.DataFrame:
    """Run the curve and write the table and the plot; returns the table."""
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    corpus_name, corpus = candidates(args.settings)
    bm25 = bm25_index(corpus_name, corpus, args.out)
    encoders = {name: BiEncoder(path, cache_dir=args.cache_dir, batch_size=64)
                for name, path in dense_models(args, args.budget).items()}
    dense = {system: dense_index(corpus_name, corpus, args.out, encoder, system)
             for system, encoder in encoders.items()}
    print(f"models and indexes ready in {time.time() - started:.0f}s", flush=True)

    rows = []
    for setting in args.settings:
        dlang = _doc_lang(setting)
        systems = [bm25.retriever(langs=[dlang], num_results=100)]
        systems += [dense[name].retriever(encoders[name], langs=[dlang], num_results=100) for name in dense]
        names = ["BM25", *dense]
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
    atomic_write_text(stem.with_suffix(".csv"), table.to_csv(index=False))
    wide = table.pivot_table(index=["setting", "system"], columns="level", values="map", sort=False)
    wide.columns = ["clean" if c == 0 else f"{c}%" for c in wide.columns]
    tokenizer = bm25.manifest.get("tokenizer", {}).get("name", "?")
    trained = [p for p in args.dense_presets if p != "base"]
    markdown = (f"mAP under {args.model} query noise (seed {args.seed}; {table['queries'].max()} questions per "
                f"setting; documents clean; BM25 tokenizer {tokenizer}; dense base {args.encoder}"
                + (f"; {', '.join(trained)} trained on clean MLQA-R, {args.budget.describe()}, seed "
                   f"{args.train_seed}" if trained else "") + ")\n\n" + _markdown(wide) + "\n")
    atomic_write_text(stem.with_suffix(".md"), markdown)
    plot(table, args.model, stem.with_suffix(".png"))
    print(markdown)
    print(f"wrote {stem}.csv, .md, .png in {time.time() - started:.0f}s")
    return table


if __name__ == "__main__":
    main()
