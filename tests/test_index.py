"""DenseIndex: build, round trip, language-filtered pooled retrieval, encoder checks, shards; e5-small on XQuAD-R."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyterrier_alpha as pta
import pytest

from pyterrier_hybrid.encoding import BiEncoder
from pyterrier_hybrid.index import DenseIndex, EncoderMismatchError

LANGS = ["de", "en", "zh"]
WORDS = {
    "en": "river bank money city music paper water school light house".split(),
    "de": "Fluss Bank Geld Stadt Musik Papier Wasser Schule Licht Haus".split(),
    "zh": "河流 银行 金钱 城市 音乐 纸张 水 学校 光 房子".split(),
}


def _docs() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for lang in ["zh", "en", "de"]:  # deliberately not sorted: the index groups by language itself
        for i in range(25):
            words = rng.choice(WORDS[lang], size=3 + i % 6)
            rows.append({"docno": f"{lang}_{i:03d}", "text": " ".join(words), "lang": lang})
    return pd.DataFrame(rows).sample(frac=1.0, random_state=1).reset_index(drop=True)


@pytest.fixture(scope="module")
def enc(tiny_model_dir) -> BiEncoder:
    return BiEncoder(str(tiny_model_dir), device="cpu")


@pytest.fixture(scope="module")
def docs() -> pd.DataFrame:
    return _docs()


@pytest.fixture(scope="module")
def pooled(enc, docs, tmp_path_factory) -> DenseIndex:
    index = DenseIndex(tmp_path_factory.mktemp("idx") / "pooled")
    index.indexer(enc).index(docs)
    return index


@pytest.fixture(scope="module")
def topics() -> pd.DataFrame:
    return pd.DataFrame({"qid": ["q1", "q2", "q3"], "query": ["river money", "Stadt Musik Haus", "学校 光"]})


def test_round_trip_on_disk(pooled, enc, docs):
    again = DenseIndex(pooled.path)  # a fresh object reads everything from disk
    m = json.loads((pooled.path / "manifest.json").read_text())
    assert m["count"] == len(again) == len(docs) and m["dim"] == enc.dim
    assert m["encoder"] == enc.manifest()
    assert m["langs"] == {"de": [0, 25], "en": [25, 50], "zh": [50, 75]}
    by_docno = docs.set_index("docno")
    docnos = again.docnos()
    assert sorted(docnos) == sorted(docs["docno"])
    assert list(again.doc_langs()) == [d.split("_")[0] for d in docnos]
    np.testing.assert_allclose(again.vectors(), enc.encode_docs(by_docno.loc[docnos, "text"].tolist()), atol=1e-6)
    assert not [p for p in pooled.path.parent.iterdir() if p.name.startswith(".")]  # no temp dirs left


def test_language_comes_from_docno_when_lang_is_absent(enc, docs, tmp_path):
    index = DenseIndex(tmp_path / "nolang")
    index.indexer(enc).index(docs.drop(columns="lang").to_dict("records"))  # an iterable of dicts
    assert index.manifest["langs"] == {"de": [0, 25], "en": [25, 50], "zh": [50, 75]}


@pytest.mark.parametrize("langs", [["de"], ["zh"], ["en", "zh"]])
def test_filtered_pooled_retrieval_equals_separate_index(pooled, enc, docs, topics, tmp_path, langs):
    alone = DenseIndex(tmp_path / "alone")
    alone.indexer(enc).index(docs[docs["lang"].isin(langs)])
    got = pooled.retriever(enc, langs=langs, num_results=10)(topics)
    ref = alone.retriever(enc, num_results=10)(topics)
    assert len(got) == len(ref) == 30
    assert set(got["docno"].str[:2]) <= set(langs)
    assert list(got["docno"]) == list(ref["docno"])
    np.testing.assert_allclose(got["score"], ref["score"], atol=1e-6)
    assert list(got["rank"]) == list(ref["rank"])


def test_unfiltered_retrieval_is_exact(pooled, enc, docs, topics):
    res = pooled.retriever(enc, num_results=5)(topics)
    assert list(res.columns[:2]) == ["qid", "query"] and {"docno", "docid", "score", "rank"} <= set(res.columns)
    q = enc.encode_queries(topics["query"])
    scores = q @ pooled.vectors().T
    for i, qid in enumerate(topics["qid"]):
        top = np.sort(scores[i])[::-1][:5]
        np.testing.assert_allclose(res[res["qid"] == qid]["score"], top, atol=1e-5)
    assert (res.groupby("qid")["score"].apply(lambda s: s.is_monotonic_decreasing)).all()


def test_more_results_than_documents(pooled, enc, topics):
    res = pooled.retriever(enc, langs=["en"], num_results=1000)(topics)
    assert (res.groupby("qid").size() == 25).all()


@pytest.mark.parametrize("method", ["hnsw", "ivf"])
def test_approximate_methods_respect_the_filter(pooled, enc, topics, method):
    res = pooled.retriever(enc, langs=["de"], num_results=5, method=method, n_probe=64)(topics)
    assert len(res) == 15 and set(res["docno"].str[:2]) == {"de"}
    exact = pooled.retriever(enc, langs=["de"], num_results=5)(topics)
    # On 75 documents with a wide beam / all clusters probed, approximate search is exact.
    assert list(res["docno"]) == list(exact["docno"])


def test_mismatched_encoder_is_refused(pooled, tiny_model_dir):
    other = BiEncoder(str(tiny_model_dir), pooling="cls")
    with pytest.raises(EncoderMismatchError, match="pooling"):
        pooled.retriever(other)
    with pytest.raises(EncoderMismatchError, match="dimension"):
        pooled.retriever()(pd.DataFrame({"qid": ["q1"], "query_vec": [np.ones(8, np.float32)]}))


def test_empty_and_invalid_inputs(pooled, enc):
    retr = pooled.retriever(enc, langs=["de"])
    out = retr(pd.DataFrame({"qid": [], "query": []}))
    assert out.empty and {"qid", "query", "docno", "score", "rank"} <= set(out.columns)
    with pytest.raises(pta.validate.InputValidationError, match="query_vec"):
        pooled.retriever()(pd.DataFrame({"qid": ["q1"], "query": ["x"]}))
    with pytest.raises(ValueError, match="not in"):
        pooled.retriever(enc, langs=["fr"])
    with pytest.raises(FileExistsError):
        pooled.indexer(enc).index(pd.DataFrame({"docno": ["en_1"], "text": ["x"]}))
    with pytest.raises(pta.validate.InputValidationError, match="text"):
        DenseIndex(pooled.path.parent / "bad").indexer(enc).index(pd.DataFrame({"docno": ["en_1"]}))
    with pytest.raises(FileNotFoundError):
        DenseIndex(pooled.path.parent / "missing").manifest  # noqa: B018


def test_empty_corpus(enc, tmp_path):
    index = DenseIndex(tmp_path / "empty")
    index.indexer(enc).index(pd.DataFrame({"docno": [], "text": []}))
    assert len(index) == 0 and index.langs == []
    out = index.retriever(enc)(pd.DataFrame({"qid": ["q1"], "query": ["x"]}))
    assert out.empty and "docno" in out.columns


def test_overwrite_and_doc_vec_input(enc, docs, pooled, tmp_path):
    path = tmp_path / "vec"
    DenseIndex(path).indexer(enc).index(docs[docs["lang"] == "en"])
    encoded = enc.doc_encoder()(docs)  # already has doc_vec: not encoded again
    index = DenseIndex(path)
    index.indexer(enc, overwrite=True).index(encoded)
    assert len(index) == len(docs)
    np.testing.assert_allclose(index.vectors(), pooled.vectors(), atol=1e-6)


def test_merge_of_shards_equals_single_build(enc, docs, pooled, topics, tmp_path):
    shards = []
    for i, part in enumerate(np.array_split(np.arange(len(docs)), 3)):
        shard = DenseIndex(tmp_path / f"shard{i}")
        shard.indexer(enc).index(docs.iloc[part])
        shards.append(shard)
    merged = DenseIndex.merge(tmp_path / "merged", shards)
    assert merged.manifest["langs"] == pooled.manifest["langs"]
    for langs in (None, ["en"]):
        a = merged.retriever(enc, langs=langs, num_results=10)(topics)
        b = pooled.retriever(enc, langs=langs, num_results=10)(topics)
        assert list(a["docno"]) == list(b["docno"])


def test_merge_refuses_shards_of_different_encoders(enc, docs, tmp_path, tiny_model_dir):
    a, b = DenseIndex(tmp_path / "a"), DenseIndex(tmp_path / "b")
    a.indexer(enc).index(docs.iloc[:5])
    b.indexer(BiEncoder(str(tiny_model_dir), doc_prompt="")).index(docs.iloc[5:10])
    with pytest.raises(EncoderMismatchError, match="doc_prompt"):
        DenseIndex.merge(tmp_path / "ab", [a, b])
    assert not (tmp_path / "ab").exists()


@pytest.mark.integration
@pytest.mark.slow
def test_e5_small_on_xquad_r_en_is_far_above_random(e5_small_dir, tmp_path):
    """200 English questions against all 1180 English sentences with the offline multilingual-e5-small."""
    import pyterrier as pt
    from ir_measures import AP

    import pyterrier_hybrid  # noqa: F401 - registers the datasets

    ds = pt.get_dataset("irds:xquad-r/en")
    docs = pd.DataFrame(ds.get_corpus_iter(verbose=False))
    topics = ds.get_topics("text").sample(200, random_state=0)
    qrels = ds.get_qrels()
    enc = BiEncoder(str(e5_small_dir), batch_size=32)
    index = DenseIndex(tmp_path / "en")
    index.indexer(enc).index(docs)
    res = pt.Experiment([index.retriever(enc, num_results=100)], topics, qrels, eval_metrics=[AP @ 100])
    # A random ranking of 1180 sentences with ~1 relevant each scores mAP ~0.006.
    mean_ap = float(res["AP@100"].iloc[0])
    assert mean_ap > 0.5, mean_ap


def test_a_finished_build_is_logged(enc, docs, tmp_path, caplog):
    import logging
    from collections import Counter

    from pyterrier_hybrid.languages import lang_of_id

    with caplog.at_level(logging.INFO, logger="pyterrier_hybrid.index"):
        index = DenseIndex(tmp_path / "logged").indexer(enc).index(docs)
    line = next(r.getMessage() for r in caplog.records if r.name == "pyterrier_hybrid.index")
    assert line.startswith(f"dense index {index.path}: indexed {len(docs)} documents of dimension ")
    for lang, n in Counter(lang_of_id(d) for d in docs["docno"]).items():
        assert f"{lang} {n}" in line, line
