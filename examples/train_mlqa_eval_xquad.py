"""Fine-tune e5-small on MLQA-R (7 languages) with mono / cross / hybrid(α) batches; zero-shot eval on XQuAD-R.

Reports, for the base model and each mode: average monolingual mAP (q-lang == d-lang, 11 settings), average
cross-lingual mAP (q-lang != d-lang, 110 settings) and pooled multilingual mAP (every question against the
candidates of all 11 languages; the gold sentence of every language is relevant). Every mode gets the same
budget (steps, batch size, seed, lr, frozen token embeddings).

CPU budget flags (the full XQuAD-R has ~13k sentences + ~13k questions, ≈20 min of encoding per model on 2
cores): ``--paragraphs`` keeps a random subset of English paragraphs (candidates = every sentence of those
paragraphs in every language, so the pool is the same for all models), ``--max-queries`` caps the questions
per language (the same parallel groups in every language), ``--steps`` / ``--batch-size`` set the training
budget. ``--paragraphs 0 --max-queries 0`` evaluates on the full benchmark.

Example (what the closing note reports)::

    flock /tmp/heavy.lock nice -n 5 python examples/train_mlqa_eval_xquad.py --steps 60 --batch-size 16 \\
        --paragraphs 30 --max-queries 60 --out runs/mlqa_xquad
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import ir_measures
import numpy as np
import pandas as pd
import torch
from ir_measures import AP

import pyterrier_hybrid  # noqa: F401  (registers the datasets)
from pyterrier_hybrid.datasets import load_language
from pyterrier_hybrid.languages import XQUAD_R_LANGS
from pyterrier_hybrid.models import DEFAULT_MODEL, resolve_model
from pyterrier_hybrid.training import HybridBatchTrainer, pairs_from_benchmark


def xquad_subset(paragraphs: int, max_queries: int, seed: int):
    """Questions (lang -> [(qid, group, text)]) and candidates (lang -> [(docno, text)]) and gold (lang, group)."""
    data = {lang: load_language("xquad-r", lang) for lang in XQUAD_R_LANGS}
    rng = np.random.default_rng(seed)
    en = data["en"]
    en_paras = sorted({en.gold[q.group_id].rsplit("_", 1)[0] for q in en.queries})
    if paragraphs:
        en_paras = sorted(rng.choice(en_paras, size=min(paragraphs, len(en_paras)), replace=False).tolist())
    keep = set(en_paras)
    groups = [q.group_id for q in en.queries if en.gold[q.group_id].rsplit("_", 1)[0] in keep]
    all_groups = list(groups)  # every group of the kept paragraphs defines the candidate pool
    if max_queries and len(groups) > max_queries:
        groups = sorted(rng.choice(groups, size=max_queries, replace=False).tolist())
    queries, candidates, gold = {}, {}, {}
    for lang, d in data.items():
        paras = {d.gold[g].rsplit("_", 1)[0] for g in all_groups if g in d.gold}
        candidates[lang] = [(doc.doc_id, doc.text) for doc in d.docs if doc.doc_id.rsplit("_", 1)[0] in paras]
        by_group = d.queries_by_group
        queries[lang] = [(by_group[g].query_id, g, by_group[g].text) for g in groups if g in by_group]
        for g in all_groups:
            if g in d.gold:
                gold[lang, g] = d.gold[g]
    return queries, candidates, gold


def evaluate(model, queries, candidates, gold, batch_size: int) -> dict[str, float]:
    """Mean AP for mono settings, cross settings and the pooled setting (exhaustive ranking of the pool)."""
    langs = list(queries)
    qtexts = [t for lang in langs for _, _, t in queries[lang]]
    dtexts = [t for lang in langs for _, t in candidates[lang]]
    qvec = model.encode(qtexts, prompt_name="query", batch_size=batch_size, normalize_embeddings=True)
    dvec = model.encode(dtexts, prompt_name="document", batch_size=batch_size, normalize_embeddings=True)
    qoff, doff, q0, d0 = {}, {}, 0, 0
    for lang in langs:
        qoff[lang] = (q0, q0 + len(queries[lang]))
        doff[lang] = (d0, d0 + len(candidates[lang]))
        q0, d0 = qoff[lang][1], doff[lang][1]
    docnos = np.array([d for lang in langs for d, _ in candidates[lang]])
    scores = qvec @ dvec.T

    def ap(qlang: str, dlangs: list[str]) -> float:
        cols = np.concatenate([np.arange(*doff[d]) for d in dlangs])
        run, qrels = [], []
        for row, (qid, group, _) in zip(range(*qoff[qlang]), queries[qlang]):
            rel = [gold[d, group] for d in dlangs if (d, group) in gold]
            if not rel:
                continue
            qrels.extend(ir_measures.Qrel(qid, r, 1) for r in rel)
            run.extend(ir_measures.ScoredDoc(qid, str(n), float(s)) for n, s in zip(docnos[cols], scores[row, cols]))
        return ir_measures.calc_aggregate([AP], qrels, run)[AP]

    mono = [ap(lang, [lang]) for lang in langs]
    cross = [ap(q, [d]) for q in langs for d in langs if q != d]
    # Pooled: every question against all candidates; mean over all questions of all languages.
    pooled_run, pooled_qrels = [], []
    for qlang in langs:
        for row, (qid, group, _) in zip(range(*qoff[qlang]), queries[qlang]):
            pooled_qrels.extend(ir_measures.Qrel(qid, gold[d, group], 1) for d in langs if (d, group) in gold)
            pooled_run.extend(ir_measures.ScoredDoc(qid, str(n), float(s)) for n, s in zip(docnos, scores[row]))
    pooled = ir_measures.calc_aggregate([AP], pooled_qrels, pooled_run)[AP]
    return {"mono_mAP": float(np.mean(mono)), "cross_mAP": float(np.mean(cross)), "pooled_mAP": float(pooled)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--modes", default="base,mono,cross,hybrid", help="comma list of base,mono,cross,hybrid")
    parser.add_argument("--alpha", type=float, default=0.5)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=3e-5)
    parser.add_argument("--max-seq-length", type=int, default=96)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--paragraphs", type=int, default=30, help="English paragraphs kept (0 = all 240)")
    parser.add_argument("--max-queries", type=int, default=60, help="questions per language (0 = all)")
    parser.add_argument("--encode-batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="runs/mlqa_xquad")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from sentence_transformers import SentenceTransformer

    queries, candidates, gold = xquad_subset(args.paragraphs, args.max_queries, args.seed)
    budget = {
        **{k: v for k, v in vars(args).items() if k not in ("out",)},
        "xquad_queries_per_lang": {lang: len(v) for lang, v in queries.items()},
        "xquad_candidates_per_lang": {lang: len(v) for lang, v in candidates.items()},
        "train_data": "mlqa-r, all 7 languages, all (qlang, dlang) pairs",
        "frozen_token_embeddings": True,
        "torch_threads": args.threads,
    }
    print(json.dumps(budget, indent=1), flush=True)
    pairs = pairs_from_benchmark("mlqa-r")
    results = []
    for mode in args.modes.split(","):
        t0 = time.time()
        model_dir = resolve_model(args.model)
        train_s = 0.0
        if mode != "base":
            trainer = HybridBatchTrainer(
                model_dir,
                mode=mode,
                alpha=args.alpha,
                batch_size=args.batch_size,
                max_steps=args.steps,
                lr=args.lr,
                seed=args.seed,
                freeze_embeddings=True,
                max_seq_length=args.max_seq_length,
                output_dir=out / mode,
                logging_steps=10,
                verbose=False,
            )
            trainer.fit_pairs(pairs, data_description="MLQA-R (all 7 languages, all language pairs)")
            model_dir = str(out / mode)
            train_s = time.time() - t0
        model = SentenceTransformer(model_dir, device="cpu")
        scores = evaluate(model, queries, candidates, gold, args.encode_batch_size)
        row = {
            "model": mode if mode != "base" else "base (no fine-tuning)",
            **scores,
            "train_s": round(train_s, 1),
            "total_s": round(time.time() - t0, 1),
        }
        results.append(row)
        print(json.dumps(row), flush=True)
        tmp = out / "results.json.tmp"
        tmp.write_text(json.dumps({"budget": budget, "results": results}, indent=2))
        os.replace(tmp, out / "results.json")
    print(pd.DataFrame(results).to_string(index=False, float_format=lambda x: f"{x:.4f}"))


if __name__ == "__main__":
    main()
