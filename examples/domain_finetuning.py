"""Fine-tune on your own corpus vs on generic data: in-domain retrieval and zero-shot XQuAD-R.

Starting from one model (``--model``, default the offline e5-small), every preset of ``--presets``
(default ``base,hybrid-0.5``; ``base`` is the untrained model, evaluated once) is trained under one
:class:`Budget` on each training set of ``--train-sets``:

- ``generic``: MLQA-R, all languages and language pairs (``pairs_from_benchmark("mlqa-r")``);
- ``domain``: the train split of ``--corpus``, your own data. A one-language corpus has no cross-lingual
  pairs, so presets that need them (``cross``, ``hybrid-α`` with α < 1) train as ``mono`` on it;
- ``domain+generic``: both, with MLQA-R subsampled (whole question groups, seeded) to as many pairs as the
  domain set, so the domain data is half of the mix instead of ~3% of it.

Every model is then evaluated twice:

1. **in-domain**, on the test split of ``--corpus``, with ONE ``pt.Experiment`` over exact search:
   BM25 (this package's ``BM25Index``), each dense model (``DenseIndex``, one per model) and
   RRF(BM25, domain model); AP, nDCG@10, R@10 (plus rank distance and same-language preference when the
   corpus is multilingual);
2. **zero-shot on XQuAD-R** (a slice: ``--paragraphs`` paragraphs in 11 languages, ``--max-queries``
   question groups): mean monolingual / cross-lingual / pooled mAP and language bias, as in
   ``examples/paper_protocol.py``.

``--corpus`` is a BEIR folder (``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``; language
``--corpus-lang`` unless rows say otherwise, see :mod:`pyterrier_hybrid.datasets.beir`) or a directory of
LAReQA-style ``<lang>.json`` files (detected automatically). A LAReQA directory has no splits: its question
groups are split ``--test-fraction`` / ``--split-seed`` into train and test, no translation of a test
question is trained on, and it is evaluated as LAReQA's pooled setting: the candidates are every sentence
in every language and a question's relevant candidates are its answer sentence in each language (converted
to a BEIR folder in ``<out>/corpus_beir``). The default corpus is the shipped synthetic tenancy-law set in
English, German and Spanish (``examples/data/legal_qa_lareqa``; its English BEIR version is
``examples/data/legal_qa_beir``), which shows both cross-lingual training and language bias in-domain.

    python examples/domain_finetuning.py                                         # 5.5 min on 2 CPU cores
    python examples/domain_finetuning.py --corpus examples/data/legal_qa_beir    # English BEIR: mono domain
    python examples/domain_finetuning.py --corpus path/to/beir --corpus-lang de --train-sets domain,generic
    python examples/domain_finetuning.py --smoke --model path/to/tiny-model       # seconds: a wiring check

Budget (defaults, CPU-sized, one seed): 30 steps x batch 16 per trained model (3 models, ~2 min each on 2
cores with the offline e5-small), an XQuAD-R slice of 16 paragraphs / 32 question groups (~1 min per
model) and the in-domain corpus (384 sentences, 69 questions for the shipped set: seconds per model):
5.5 minutes measured here (2 CPU cores, offline e5-small). ``--smoke`` with a tiny model took 49 s here on
2 busy cores. Raise ``--steps``/``--batch-size`` and pass a hub id to ``--model`` on a GPU.

Writes to ``--out`` (default ``outputs/domain_finetuning``): ``in_domain.md`` / ``in_domain.csv`` and
``plots/in_domain.png`` (the ``pt.Experiment`` table); ``zero_shot/summary.md``, ``summary.csv``,
``runs.csv``, ``grids/*.csv`` and ``zero_shot/plots/`` (per-model AP heatmaps, deltas vs base,
``summary.png``); ``results.md`` with both tables; the models in ``models/`` (finished ones are reused).
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import pandas as pd

import pyterrier_hybrid  # noqa: F401  (registers the datasets)
from pyterrier_hybrid.datasets.beir import BeirFolder, is_beir_folder, lareqa_dir_to_beir
from pyterrier_hybrid.plots import atomic_write_text, save_figure
from pyterrier_hybrid.protocol import run_protocol
from pyterrier_hybrid.study import (
    add_protocol_arguments,
    evaluation_sample,
    finish_protocol_arguments,
    report,
    set_threads,
)

HERE = Path(__file__).resolve().parent
DEFAULT_CORPUS = HERE / "data" / "legal_qa_lareqa"
TRAIN_SETS = ("generic", "domain", "domain+generic")
GENERIC = "mlqa-r"


def _train_sets(text: str) -> list[str]:
    names = [s.strip() for s in text.split(",") if s.strip()]
    if not names or any(n not in TRAIN_SETS for n in names) or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"training sets must be a comma list out of {','.join(TRAIN_SETS)} "
                                         f"without repeats, got {text!r}")
    return names


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"must be a number in (0, 1), got {text!r}")
    return value


def parse_args(argv=None) -> argparse.Namespace:
    """Command-line options (``--help``); checks the corpus and its splits (exit status 2 when unusable)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    add_protocol_arguments(
        p, presets=["base", "hybrid-0.5"], steps=30, paragraphs=16, max_queries=32, out="outputs/domain_finetuning",
        presets_help="comma list; every preset but base is trained on every training set (default: base,hybrid-0.5)",
        smoke_help="a seconds-long wiring check: base,hybrid-0.5, 2 steps at batch 4, a 2-paragraph XQuAD-R "
                   "slice, one torch thread unless --threads")
    p.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS,
                   help="BEIR folder or directory of LAReQA-style <lang>.json files (default: the shipped synthetic "
                        "tenancy-law set, %(default)s)")
    p.add_argument("--corpus-lang", default="en", help="language of a BEIR corpus (rows without a 'lang' field; "
                                                       "default: %(default)s)")
    p.add_argument("--train-split", default="train", help="BEIR split to train on (default: %(default)s)")
    p.add_argument("--test-split", default="test", help="BEIR split to evaluate on (default: %(default)s)")
    p.add_argument("--test-fraction", type=_fraction, default=0.3,
                   help="LAReQA corpus: share of question groups held out for testing (default: %(default)s)")
    p.add_argument("--split-seed", type=int, default=0, help="LAReQA corpus: seed of that split (default: 0)")
    p.add_argument("--train-sets", type=_train_sets, default=list(TRAIN_SETS),
                   help=f"comma list out of {','.join(TRAIN_SETS)} (default: all)")
    p.add_argument("--rrf-k", type=float, default=60.0, help="RRF constant (default: %(default)s)")
    p.add_argument("--cache-dir", type=Path, default=None, help="vector cache for evaluation (default: none)")
    args = finish_protocol_arguments(p, p.parse_args(argv), smoke_presets=["base", "hybrid-0.5"])

    if is_beir_folder(args.corpus):
        args.corpus_kind = "beir"
        try:
            folder = BeirFolder(args.corpus, lang=args.corpus_lang, split=args.test_split)
        except ValueError as e:
            p.error(f"--corpus: {e}")
        if needs_domain(args) and args.train_split not in folder.splits:
            p.error(f"--train-split {args.train_split!r}: {args.corpus} has no qrels/{args.train_split}.tsv; "
                    f"available splits: {', '.join(folder.splits)}")
    elif args.corpus.is_dir() and any(args.corpus.glob("*.json")):
        args.corpus_kind = "lareqa"
    else:
        p.error(f"--corpus {args.corpus} is neither a BEIR folder (corpus.jsonl, queries.jsonl, qrels/) nor a "
                "directory of LAReQA-style <lang>.json files")
    return args


def needs_domain(args: argparse.Namespace) -> bool:
    """Whether some model is trained on the corpus (so it needs a train split)."""
    return any(p != "base" for p in args.presets) and any(s.startswith("domain") for s in args.train_sets)


# --------------------------------------------------------------------------------------------- data
def load_corpus(args: argparse.Namespace) -> BeirFolder:
    """The in-domain corpus as a BEIR folder (a LAReQA directory is converted into ``<out>/corpus_beir``)."""
    if args.corpus_kind == "beir":
        return BeirFolder(args.corpus, lang=args.corpus_lang, split=args.test_split)
    folder = lareqa_dir_to_beir(args.corpus, args.out / "corpus_beir", test_fraction=args.test_fraction,
                                seed=args.split_seed, overwrite=True)
    args.train_split, args.test_split = "train", "test"
    return folder


def subsample_groups(pairs: pd.DataFrame, max_pairs: int, seed: int) -> pd.DataFrame:
    """At most ``max_pairs`` pairs of ``pairs``, whole parallel groups drawn at random (seeded)."""
    if len(pairs) <= max_pairs:
        return pairs
    groups = pd.Series(pairs["group_id"].unique()).sample(frac=1.0, random_state=seed)
    sizes = pairs.groupby("group_id").size().reindex(groups).cumsum()
    keep = set(sizes[sizes <= max_pairs].index)
    return pairs[pairs["group_id"].isin(keep)].reset_index(drop=True)


def training_sets(args: argparse.Namespace, folder: BeirFolder) -> dict[str, tuple[pd.DataFrame, str]]:
    """Name -> (pairs, description) of every requested training set."""
    from pyterrier_hybrid.training import pairs_from_benchmark

    out: dict[str, tuple[pd.DataFrame, str]] = {}
    generic = pairs_from_benchmark(GENERIC) if "generic" in args.train_sets or "domain+generic" in args.train_sets \
        else None
    domain = folder.pairs(args.train_split) if needs_domain(args) else None
    corpus = f"{args.corpus.name} ({args.train_split} split)"
    for name in args.train_sets:
        if name == "generic":
            out[name] = generic, f"{GENERIC}, all languages and language pairs ({len(generic)} pairs)"
        elif name == "domain":
            out[name] = domain, f"{corpus}, {len(domain)} pairs"
        else:
            part = subsample_groups(generic, len(domain), seed=args.split_seed)
            out[name] = (pd.concat([domain, part], ignore_index=True),
                         f"{corpus} ({len(domain)} pairs) + {GENERIC} subsample ({len(part)} pairs)")
    return out


# --------------------------------------------------------------------------------------------- models
def trained_models(result) -> list[dict]:
    """One record per model the protocol evaluated (``base`` first): label, file stem, training set, seed, dir."""
    models = []
    for (label, seed), model_dir in result.models.items():
        name = "none" if label == "base" else label.split(" ")[0]
        stem = label if seed < 0 else f"{label}-s{seed}".replace(" ", "-")
        models.append({"label": label, "stem": stem, "set": name, "seed": seed, "dir": model_dir})
    return models


# --------------------------------------------------------------------------------------------- in-domain
def in_domain(args: argparse.Namespace, folder: BeirFolder, models: list[dict]) -> pd.DataFrame:
    """One ``pt.Experiment`` on the corpus's test split: BM25, every dense model, RRF(BM25, domain model)."""
    import pyterrier as pt
    from ir_measures import AP, R, nDCG

    from pyterrier_hybrid.bm25 import BM25Index
    from pyterrier_hybrid.fusion import rrf
    from pyterrier_hybrid.index import DenseIndex
    from pyterrier_hybrid.measures import RankDistance, SameLangPref

    corpus = folder.get_corpus()[["docno", "text", "lang"]]
    topics, qrels = folder.get_topics(args.test_split), folder.get_qrels(args.test_split)
    indexes = args.out / "indexes"
    bm25 = BM25Index.build(corpus, indexes / "bm25", overwrite=True).retriever(num_results=1000)
    systems, names = [bm25], ["BM25"]
    rank = {"none": 0, "domain": 1, "generic": 2, "domain+generic": 3}  # base, domain, generic, mixed
    order = sorted(models, key=lambda m: rank[m["set"]])
    domain_run = None
    for m in order:
        index = DenseIndex(indexes / m["stem"])
        index.indexer(m["encoder"], overwrite=True).index(corpus)
        run = index.retriever(m["encoder"], num_results=1000)
        systems.append(run)
        names.append(m["label"] if len(args.seeds) == 1 or m["seed"] < 0 else f"{m['label']} s{m['seed']}")
        if m["set"] == "domain" and domain_run is None:
            domain_run = (run, names[-1])
    if domain_run is not None:
        systems.append(rrf(bm25, domain_run[0], k=args.rrf_k))
        names.append(f"RRF(BM25, {domain_run[1]})")
    measures = [AP, nDCG @ 10, R @ 10]
    if len(folder.langs) > 1:
        measures += [RankDistance, SameLangPref]
    table = pt.Experiment(systems, topics, qrels, measures, names=names)
    first = ["name", "AP", "nDCG@10", "R@10"]
    table = table[first + [c for c in table.columns if c not in first]]
    table.insert(1, "queries", len(topics))
    return table


def plot_in_domain(table: pd.DataFrame, path: Path, title: str) -> None:
    """Grouped bars: one group per measure in [0, 1], one bar per system."""
    from matplotlib.figure import Figure

    measures = [c for c in table.columns if c not in ("name", "queries", "RankDistance")]
    fig = Figure(figsize=(3 + 0.35 * len(table) * len(measures), 3.8), layout="constrained")
    ax = fig.subplots()
    width = 0.8 / len(table)
    for i, (_, row) in enumerate(table.iterrows()):
        ax.bar([j + (i - (len(table) - 1) / 2) * width for j in range(len(measures))],
               [row[m] for m in measures], width, label=row["name"])
    ax.set_xticks(range(len(measures)), measures)
    ax.set_ylim(0, 1)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_title(title, fontsize="medium")
    save_figure(fig, path, dpi=120)


# --------------------------------------------------------------------------------------------- main
def main(argv=None) -> dict:
    """Train, evaluate in-domain and zero-shot; returns ``{"in_domain": frame, "zero_shot": ProtocolResult,
    "models": [records]}``."""
    args = parse_args(argv)
    if args.smoke and not args.threads:
        args.threads = 1  # tiny models on a few cores: thread contention costs more than it gives
    set_threads(args)
    start = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)
    folder = load_corpus(args)
    sets = training_sets(args, folder) if any(p != "base" for p in args.presets) else {}
    # Zero-shot on XQuAD-R: train every (set, preset, seed) and evaluate it, the protocol's one loop.
    sample = evaluation_sample(args, "xquad-r")
    result = run_protocol(args.presets, train_pairs={name: pairs for name, (pairs, _) in sets.items()} or None,
                          train_description={name: desc for name, (_, desc) in sets.items()},
                          eval_benchmark="xquad-r", out_dir=args.out / "zero_shot", sample=sample,
                          model=args.model, budget=args.budget, seeds=args.seeds, cache_dir=args.cache_dir)
    models = trained_models(result)
    from pyterrier_hybrid.encoding import BiEncoder

    for m in models:  # one encoder per model, shared by both evaluations
        m["encoder"] = BiEncoder(m["dir"], batch_size=64, cache_dir=args.cache_dir)

    table = in_domain(args, folder, models)
    title = f"In-domain: {args.corpus.name}, {args.test_split} split (languages: {', '.join(folder.langs)})"
    markdown = table.to_markdown(index=False, floatfmt=".3f")
    atomic_write_text(args.out / "in_domain.csv", table.to_csv(index=False))
    atomic_write_text(args.out / "in_domain.md", f"{title}; budget: {args.budget.describe()}.\n\n{markdown}\n")
    plot_in_domain(table, args.out / "plots" / "in_domain.png", title)
    print(f"\n## {title}\n\n{markdown}\n\nplot: {args.out / 'plots' / 'in_domain.png'}")

    report("Zero-shot on XQuAD-R", args.out / "zero_shot")
    atomic_write_text(args.out / "results.md", f"## {title}\n\n{markdown}\n\n## Zero-shot on XQuAD-R\n\n"
                      + (args.out / "zero_shot" / "summary.md").read_text(encoding="utf-8"))
    print(f"written: {args.out / 'results.md'} ({time.perf_counter() - start:.0f}s)")
    return {"in_domain": table, "zero_shot": result, "models": models}


if __name__ == "__main__":
    main()
