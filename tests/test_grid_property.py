"""Property: evaluate_grid gives per query exactly what pt.Experiment gives on the same vectors, ties included.

The vectors are random but quantised (3 dimensions, entries 0..2), so scores are small integers: exact in float32
whatever the summation order, and most candidates of a query share their score with others. The reference run
is built here from the texts of the registered ir_datasets entries (not from the grid's own vectors or helpers),
cut to the top ``k`` in trec_eval order (score descending, docno descending), and scored by ``pt.Experiment``
(ir_measures / trec_eval) on the slice's topics and qrels.
"""

from __future__ import annotations

import hashlib

import ir_measures
import numpy as np
import pandas as pd
import pyterrier as pt
import pytest

from pyterrier_hybrid import evaluation as ev
from pyterrier_hybrid.datasets import dataset_id, sample_benchmark

pytestmark = pytest.mark.integration

MEASURES = [ir_measures.AP, ir_measures.nDCG @ 10, ir_measures.RR, ir_measures.R @ 10]
SETTINGS = [("en", "en"), ("de", "zh"), ("th", "ar")]


class QuantisedEncoder:
    """Each text's vector drawn from a generator seeded by (seed, text): entries in {0, 1, 2}, 3 dimensions."""

    def __init__(self, seed: int, dim: int = 3, levels: int = 3):
        self.seed, self.dim, self.levels = seed, dim, levels

    def _encode(self, texts):
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            digest = hashlib.blake2b(f"{self.seed}\x00{text}".encode(), digest_size=8).digest()
            out[i] = np.random.default_rng(int.from_bytes(digest, "little")).integers(0, self.levels, self.dim)
        return out

    encode_queries = _encode
    encode_docs = _encode


@pytest.fixture(scope="module")
def corpora(lareqa_mirror):
    """docno -> text of every XQuAD-R candidate."""
    corpus = pd.DataFrame(pt.get_dataset("irds:xquad-r/multi").get_corpus_iter(verbose=False))
    return corpus.set_index("docno")["text"]


def _reference(encoder, sample, corpora, qlang, dlang, k):
    """Per-query values of pt.Experiment on the exhaustive top-k run of one setting."""
    ds = pt.get_dataset("irds:" + dataset_id("xquad-r", qlang, dlang))
    topics = sample.topics(ds.get_topics("text"))
    qrels = sample.qrels(ds.get_qrels())
    pool = sorted(d for d in sample.docnos if qlang is None or d.startswith(f"{dlang}_"))
    scores = encoder.encode_queries(topics["query"].tolist()) @ encoder.encode_docs(corpora[pool].tolist()).T
    run = pd.DataFrame({"qid": np.repeat(topics["qid"].to_numpy(), len(pool)),
                        "docno": np.tile(np.array(pool, dtype=object), len(topics)),
                        "score": scores.ravel().astype(np.float64)})
    run = run.sort_values(["qid", "score", "docno"], ascending=[True, False, False]).groupby("qid").head(k)
    ties = run.duplicated(["qid", "score"]).mean()
    res = pt.Experiment([pt.Transformer.from_df(run)], topics, qrels, MEASURES, names=["ref"], perquery=True,
                        validate="ignore")
    return res.pivot(index="qid", columns="measure", values="value"), ties


@pytest.mark.parametrize("k", [1000, 4])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_grid_equals_pt_experiment_with_ties(corpora, seed, k):
    sample = sample_benchmark("xquad-r", paragraphs=5, max_queries=8, seed=seed)
    encoder = QuantisedEncoder(seed)
    grid = ev.evaluate_grid(encoder, "xquad-r", sample=sample, settings=SETTINGS, pooled=True, num_results=k,
                            measures=MEASURES, bias_measures=[])
    for qlang, dlang in [*SETTINGS, (None, None)]:
        ref, ties = _reference(encoder, sample, corpora, qlang, dlang, k)
        assert ties > 0.3, "too few tied scores for the property to mean anything"
        rows = grid.perquery[(grid.perquery.qlang == (qlang or ev.ALL_QLANGS))
                             & (grid.perquery.dlang == (dlang or "multi"))]
        got = rows.pivot(index="qid", columns="measure", values="value")
        assert sorted(got.index) == sorted(ref.index) and len(ref) > 0, (qlang, dlang)
        for m in MEASURES:
            np.testing.assert_allclose(got.loc[ref.index, str(m)], ref[str(m)], rtol=0, atol=1e-9,
                                       err_msg=f"{m} {qlang}-{dlang} seed {seed} k {k}")
