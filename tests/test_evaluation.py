"""Encode-once grid evaluator: ranking helpers, fast measures vs ir_measures, grid vs pt.Experiment."""

from __future__ import annotations

import hashlib

import ir_measures
import numpy as np
import pandas as pd
import pyterrier as pt
import pytest

from pyterrier_hybrid import _trec
from pyterrier_hybrid import evaluation as ev
from pyterrier_hybrid import measures as bm

# --------------------------------------------------------------------------------------------------
# a deterministic fake bi-encoder: integer bag-of-character-hash vectors, so float32 inner products are
# exact whatever the summation order (the grid and a per-setting retriever get identical scores), and
# there are many ties (which exercises trec_eval's doc-id tie-breaking).


class FakeEncoder:
    def __init__(self, dim: int = 32):
        self.dim = dim
        self.calls: list[int] = []

    def _enc(self, texts):
        self.calls.append(len(texts))
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for ch in text.lower():
                out[i, int(hashlib.md5(ch.encode()).hexdigest(), 16) % self.dim] += 1
        return out

    encode_queries = _enc
    encode_docs = _enc


class VectorRetriever(pt.Transformer):
    """Exhaustive inner-product retrieval over given doc vectors; top k in trec_eval order."""

    def __init__(self, encoder, docnos, dvecs, k=1000):
        desc = np.argsort(np.asarray(docnos, dtype=str), kind="stable")[::-1]  # doc ids descending
        self.encoder, self.docnos, self.dvecs, self.k = encoder, np.asarray(docnos)[desc], dvecs[desc], k

    def transform(self, topics):
        qvecs = self.encoder.encode_queries(topics["query"].tolist())
        scores = qvecs @ self.dvecs.T
        top = np.argsort(-scores, axis=1, kind="stable")[:, :self.k]  # stable: ties keep doc id descending
        return pd.DataFrame({
            "qid": np.repeat(topics["qid"].to_numpy(), top.shape[1]),
            "docno": self.docnos[top].ravel(),
            "score": np.take_along_axis(scores, top, axis=1).ravel().astype(np.float64),
            "rank": np.tile(np.arange(top.shape[1]), len(top)),
        })


# --------------------------------------------------------------------------------------------------
# unit tests (no data)


def _brute_ranks(scores, docnos):
    order = sorted(range(len(docnos)), key=lambda j: (scores[j], docnos[j]), reverse=True)
    return {docnos[j]: r + 1 for r, j in enumerate(order)}


def test_topk_and_relevant_ranks_follow_trec_eval_order():
    rng = np.random.default_rng(0)
    docnos = np.array([f"d{j:03d}" for j in rng.permutation(40)], dtype=object)
    scores = rng.integers(0, 5, size=(6, 40)).astype(np.float32)  # many ties
    order = ev._name_order(docnos)
    rel = np.array([[0, 5, -1], [7, 8, 9], [1, -1, -1], [39, 0, 2], [3, 4, 5], [10, -1, -1]])
    for k in (1, 7, 40):
        top = ev._topk(scores, k, order)
        ranks = ev._relevant_ranks(scores, rel, order, k)
        for i in range(len(scores)):
            brute = _brute_ranks(scores[i], list(docnos))
            expected = sorted(brute, key=brute.get)[:k]
            assert list(docnos[top[i]]) == expected
            for c, j in enumerate(rel[i]):
                want = brute[docnos[j]] if j >= 0 and brute[docnos[j]] <= k else np.inf
                assert ranks[i, c] == want


@pytest.mark.parametrize(
    "measure",
    [
        ir_measures.AP,
        ir_measures.AP @ 5,
        ir_measures.RR,
        ir_measures.nDCG,
        ir_measures.nDCG @ 10,
        ir_measures.R @ 5,
        ir_measures.R @ 100,
        ir_measures.P @ 5,
        ir_measures.Success @ 3,
    ],
)
def test_fast_binary_measures_equal_ir_measures(measure):
    rng = np.random.default_rng(1)
    docnos = np.array([f"x_{j:02d}" for j in range(30)], dtype=object)
    order = ev._name_order(docnos)
    qids = [f"q_{i}" for i in range(25)]
    scores = rng.integers(0, 6, size=(len(qids), 30)).astype(np.float32)
    rel = np.full((len(qids), 4), -1)
    qrels = []
    for i, q in enumerate(qids):
        cols = rng.choice(30, size=1 + i % 4, replace=False)
        rel[i, : len(cols)] = cols
        qrels += [(q, docnos[c], 1) for c in cols]
    k = 20
    ranks = ev._relevant_ranks(scores, rel, order, k)
    o = np.argsort(ranks, axis=1, kind="stable")
    ranks = np.take_along_axis(ranks, o, axis=1)
    n_rel = (rel >= 0).sum(axis=1)
    fast = _trec.binary_measure_values(measure, ranks, n_rel, np.full(len(qids), k))
    top = ev._topk(scores, k, order)
    run = pd.DataFrame(
        [(q, docnos[j], float(scores[i, j])) for i, q in enumerate(qids) for j in top[i]],
        columns=["query_id", "doc_id", "score"],
    )
    ref = {
        m.query_id: m.value
        for m in ir_measures.iter_calc([measure], pd.DataFrame(qrels, columns=["query_id", "doc_id", "relevance"]), run)
    }
    np.testing.assert_allclose(fast, [ref[q] for q in qids], rtol=0, atol=1e-12)
    assert _trec.is_fast_measure(measure)


def test_is_fast_measure_leaves_variants_to_ir_measures():
    assert not _trec.is_fast_measure(ir_measures.AP(judged_only=True))
    assert not _trec.is_fast_measure(ir_measures.nDCG(dcg="exp-log2") @ 10)
    assert not _trec.is_fast_measure(ir_measures.ERR @ 10)
    assert not _trec.is_fast_measure(ir_measures.RR @ 10)  # MS MARCO tie order: through ir_measures


def test_encode_benchmark_rejects_non_encoders_and_bad_shapes(monkeypatch):
    with pytest.raises(TypeError, match="encode_queries"):
        ev.encode_benchmark(object(), "xquad-r")
    with pytest.raises(ValueError, match="unknown benchmark"):
        ev.encode_benchmark(FakeEncoder(), "squad")
    with pytest.raises(ValueError, match="valid codes"):
        ev.evaluate_grid(FakeEncoder(), "mlqa-r", langs=["el"], pooled=False)
    with pytest.raises(ValueError, match=r"num_results \(the run depth\) must be an int >= 1"):
        ev.evaluate_grid(FakeEncoder(), "mlqa-r", num_results=0)


# --------------------------------------------------------------------------------------------------
# integration: the grid equals pt.Experiment on the registered entries


SETTINGS = [("en", "en"), ("de", "zh"), ("th", "el")]


@pytest.fixture(scope="module")
def xquad_encoded(lareqa_mirror):
    encoder = FakeEncoder()
    return encoder, ev.encode_benchmark(encoder, "xquad-r")


def _retriever_for(encoder, encoded, k):
    def make(dlang):
        docnos, dvecs = encoded.pool(dlang)
        return VectorRetriever(encoder, docnos, dvecs, k=k)

    return make


@pytest.mark.integration
def test_grid_encodes_each_text_once(lareqa_mirror):
    encoder = FakeEncoder()
    grid = ev.evaluate_grid(encoder, "mlqa-r", bias_measures=["RankDistance", "SameLangPref"], num_results=50)
    from pyterrier_hybrid.datasets import load_language

    n_texts = sum(
        len(load_language("mlqa-r", lang).docs) + len(load_language("mlqa-r", lang).queries)
        for lang in ("ar", "de", "en", "es", "hi", "vi", "zh")
    )
    assert sum(encoder.calls) == n_texts and len(encoder.calls) == 14
    res = grid.results
    assert len(res[(res.dlang != "multi")].groupby(["qlang", "dlang"])) == 49
    assert set(res.columns) == {"qlang", "dlang", "measure", "value", "n_queries"}
    summary = grid.summary()
    assert list(summary.columns) == ["mono", "cross", "pooled"]
    ap = grid.matrix("AP")
    assert summary.loc["AP", "mono"] == pytest.approx(np.mean(np.diag(ap.values)))
    by_lang = grid.pooled_by_qlang()
    assert sorted(by_lang.index) == ["ar", "de", "en", "es", "hi", "vi", "zh"]
    # the per-query-language pooled values average (query-weighted) to the pooled value
    pooled = res[(res.dlang == "multi") & (res.qlang != "all") & (res.measure == "AP")]
    assert np.average(pooled.value, weights=pooled.n_queries) == pytest.approx(summary.loc["AP", "pooled"])


@pytest.mark.integration
@pytest.mark.parametrize("k", [pytest.param(300, marks=pytest.mark.slow), 7])  # pt.Experiment at depth 300: slow
def test_grid_equals_pt_experiment(xquad_encoded, k):
    encoder, encoded = xquad_encoded
    measures = [
        ir_measures.AP,
        ir_measures.nDCG @ 10,
        ir_measures.R @ 10,
        ir_measures.RR,
        ir_measures.RR @ 5,
        ir_measures.Rprec,
    ]
    grid = ev.evaluate_grid(encoded, "xquad-r", settings=SETTINGS, pooled=False, num_results=k, measures=measures)
    make = _retriever_for(encoder, encoded, k)
    for qlang, dlang in SETTINGS:
        ds = pt.get_dataset(f"irds:xquad-r/{qlang}" + ("" if qlang == dlang else f"-{dlang}"))
        ref = pt.Experiment([make(dlang)], ds.get_topics("text"), ds.get_qrels(), measures, names=["m"],
                            validate="ignore")
        got = grid.results[(grid.results.qlang == qlang) & (grid.results.dlang == dlang)].set_index("measure")
        for m in measures:
            assert got.loc[str(m), "value"] == pytest.approx(ref[str(m)].iloc[0], abs=1e-12), (qlang, dlang, m)
        assert (got.n_queries == 1190).all()


@pytest.mark.integration
@pytest.mark.slow  # pt.Experiment on 570 questions against the 13,090-sentence pool
def test_pooled_grid_and_bias_measures_equal_pt_experiment(xquad_encoded):
    encoder, encoded = xquad_encoded
    k = 30
    peer = bm.peer(20, langs=encoded.langs)
    measures = [ir_measures.AP, ir_measures.nDCG @ 10]
    bias = [bm.RankDistance, bm.SameLangPref, peer]
    grid = ev.evaluate_grid(encoded, "xquad-r", settings=[], num_results=k, measures=measures, bias_measures=bias)
    ds = pt.get_dataset("irds:xquad-r/multi")
    topics = ds.get_topics("text").iloc[::23]  # 570 questions of every language
    ref = pt.Experiment(
        [_retriever_for(encoder, encoded, k)("multi")],
        topics,
        ds.get_qrels(),
        measures + bias,
        names=["m"],
        perquery=True,
        validate="ignore",
    )
    ref = ref.pivot(index="qid", columns="measure", values="value")
    got = grid.perquery.pivot(index="qid", columns="measure", values="value").reindex(ref.index)
    assert len(ref) == len(topics) and ref.index.map(bm.lang_of_id).nunique() == 11
    for m in measures + bias:
        np.testing.assert_allclose(got[str(m)], ref[str(m)], rtol=0, atol=1e-12, err_msg=str(m))
    row = grid.results[(grid.results.qlang == "all") & (grid.results.measure == "RankDistance")]
    assert row.value.iloc[0] == pytest.approx(np.nanmean(grid.perquery.query("measure == 'RankDistance'").value))


@pytest.mark.integration
@pytest.mark.parametrize("benchmark", ["xquad-r", "mlqa-r"])
def test_sample_keeps_whole_paragraphs_and_every_gold_sentence(lareqa_mirror, benchmark):
    from pyterrier_hybrid.datasets import sample_benchmark

    sample = sample_benchmark(benchmark, paragraphs=40, max_queries=20, seed=3)
    assert sample == sample_benchmark(benchmark, paragraphs=40, max_queries=20, seed=3)  # reproducible
    assert sample != sample_benchmark(benchmark, paragraphs=40, max_queries=20, seed=4)
    assert len(sample.groups) == 20
    qrels = pt.get_dataset(f"irds:{benchmark}/multi").get_qrels()
    asked = qrels[qrels.qid.map(sample.keeps_query)]
    assert asked.docno.map(sample.keeps_doc).all()  # every gold sentence of every asked question is in the pool
    assert sample.qrels(qrels).equals(asked.reset_index(drop=True))
    paragraphs = {d.rsplit("_", 1)[0] for d in sample.docnos}  # whole paragraphs: every sentence of each
    corpus = pd.DataFrame(pt.get_dataset(f"irds:{benchmark}/multi").get_corpus_iter(verbose=False))
    assert set(corpus.docno[corpus.docno.str.rsplit("_", n=1).str[0].isin(paragraphs)]) == set(sample.docnos)
    with pytest.raises(ValueError, match=">= 0"):
        sample_benchmark(benchmark, paragraphs=-1)


@pytest.mark.integration
def test_sampled_grid_equals_pt_experiment_on_the_slice(lareqa_mirror):
    from pyterrier_hybrid.datasets import dataset_id, sample_benchmark

    encoder = FakeEncoder()
    sample = sample_benchmark("xquad-r", paragraphs=10, max_queries=25, seed=0)
    encoded = ev.encode_benchmark(encoder, "xquad-r", sample=sample)
    assert sum(encoder.calls) == len(sample.docnos) + 11 * 25  # only the slice is encoded
    grid = ev.evaluate_grid(encoded, "xquad-r", num_results=40, measures=[ir_measures.AP],
                            bias_measures=["SameLangPref"])
    make = _retriever_for(encoder, encoded, 40)
    for qlang, dlang in [("en", "en"), ("de", "zh"), (None, None)]:
        ds = pt.get_dataset("irds:" + dataset_id("xquad-r", qlang, dlang))
        measures = [ir_measures.AP] + ([bm.SameLangPref] if qlang is None else [])
        ref = pt.Experiment([make(dlang or "multi")], sample.topics(ds.get_topics("text")),
                            sample.qrels(ds.get_qrels()), measures, names=["m"], validate="ignore")
        rows = grid.results[(grid.results.qlang == (qlang or "all")) & (grid.results.dlang == (dlang or "multi"))]
        got = rows.set_index("measure")
        for m in measures:
            assert got.loc[str(m), "value"] == pytest.approx(ref[str(m)].iloc[0], abs=1e-12), (qlang, dlang, m)
        assert (got.n_queries == (25 * 11 if qlang is None else 25)).all()
    with pytest.raises(ValueError, match="different slice"):
        ev.evaluate_grid(encoded, "xquad-r", sample=sample_benchmark("xquad-r", paragraphs=10, seed=1))


@pytest.mark.integration
def test_slow_pipeline_path_equals_fast_grid(xquad_encoded):
    encoder, encoded = xquad_encoded
    settings = SETTINGS[1:]
    fast = ev.evaluate_grid(encoded, "xquad-r", settings=settings, pooled=False, num_results=50)
    slow = ev.evaluate_pipeline_grid(_retriever_for(encoder, encoded, 50), "xquad-r", settings=settings, pooled=False)
    merged = fast.results.merge(slow.results, on=["qlang", "dlang", "measure"], suffixes=("_fast", "_slow"))
    assert len(merged) == len(fast.results) == len(slow.results) == 2 * 4
    np.testing.assert_allclose(merged.value_fast, merged.value_slow, rtol=0, atol=1e-12)
    assert (merged.n_queries_fast == merged.n_queries_slow).all()


@pytest.mark.integration
@pytest.mark.slow
def test_grid_with_real_biencoder_equals_pt_experiment_with_pyterrier_dr(lareqa_mirror, tiny_model_dir, tmp_path):
    """The real BiEncoder (tiny random weights) through pyterrier_dr's FlexIndex, one setting."""
    import pyterrier_dr

    from pyterrier_hybrid.encoding import BiEncoder

    # the vector cache makes the pipeline see the very vectors the grid computed
    encoder = BiEncoder(str(tiny_model_dir), cache_dir=tmp_path / "cache", batch_size=64)
    measures = [ir_measures.AP, ir_measures.nDCG @ 10]
    grid = ev.evaluate_grid(encoder, "xquad-r", settings=[("de", "en")], pooled=False, measures=measures)
    assert set(grid.results.measure) == {"AP", "nDCG@10"}
    ds = pt.get_dataset("irds:xquad-r/de-en")
    index = pyterrier_dr.FlexIndex(str(tmp_path / "en.flex"), verbose=False)
    (encoder.doc_encoder() >> index.indexer()).index(
        {"docno": d["docno"], "text": d["text"]} for d in pt.get_dataset("irds:xquad-r/en").get_corpus_iter(
            verbose=False))
    pipeline = encoder.query_encoder() >> index.np_retriever(num_results=1000)
    ref = pt.Experiment([pipeline], ds.get_topics("text"), ds.get_qrels(), measures, names=["m"], validate="ignore")
    got = grid.results.set_index("measure").value
    for m in measures:
        assert got[str(m)] == pytest.approx(ref[str(m)].iloc[0], abs=1e-6)
