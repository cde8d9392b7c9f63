"""Approximate search per language (pyterrier_hybrid.ann through DenseIndex.retriever): routing, recall, storage."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pyterrier_hybrid.ann import LanguagePartitions, default_pq_m
from pyterrier_hybrid.index import DenseIndex

DIM = 16
SIZES = {"de": 10_000, "en": 10_000, "zh": 300}  # zh is too small to train PQ: searched exactly


class VectorsOnly:
    """An 'encoder' for indexes built from ready vectors (only its manifest is recorded)."""

    def manifest(self) -> dict:
        return {"model": "synthetic", "dim": DIM, "pooling": "none", "normalize": True, "query_prompt": "",
                "doc_prompt": "", "fingerprint": "synthetic"}


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _clustered(rng: np.random.Generator, lang_dir: np.ndarray, n: int) -> np.ndarray:
    """Vectors of one language: its direction + one of 50 shared topics + noise."""
    topics = _unit(np.random.default_rng(1).standard_normal((50, DIM)))
    return _unit(lang_dir + topics[rng.integers(0, 50, n)] + 0.3 * rng.standard_normal((n, DIM)))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    rng = np.random.default_rng(0)
    dirs = {lang: 2 * _unit(rng.standard_normal((1, DIM)))[0] for lang in SIZES}
    vecs = {lang: _clustered(rng, dirs[lang], n) for lang, n in SIZES.items()}
    frame = pd.DataFrame([{"docno": f"{lang}_{i}", "lang": lang, "doc_vec": v}
                          for lang in SIZES for i, v in enumerate(vecs[lang])])
    index = DenseIndex(tmp_path_factory.mktemp("ann") / "index")
    index.indexer(VectorsOnly()).index(frame)
    queries = _clustered(rng, dirs["en"], 40)  # English queries
    return index, queries


def _search(index, queries, **kwargs) -> pd.DataFrame:
    topics = pd.DataFrame({"qid": [f"q{i}" for i in range(len(queries))], "query_vec": list(queries)})
    return index.retriever(**kwargs)(topics)


def _recall(got: pd.DataFrame, exact: pd.DataFrame) -> float:
    hits = [len(set(g["docno"]) & set(exact[exact["qid"] == qid]["docno"])) / len(exact[exact["qid"] == qid])
            for qid, g in got.groupby("qid")]
    return float(np.mean(hits))


@pytest.mark.parametrize("method", ["hnsw", "ivf", "ivfpq"])
@pytest.mark.parametrize("langs", [["de"], ["en"], ["de", "zh"], None])
def test_filtered_approximate_search_finds_the_exact_neighbours(corpus, method, langs):
    index, queries = corpus
    exact = _search(index, queries, langs=langs, num_results=20)
    pq = {"pq_m": 8} if method == "ivfpq" else {}  # the default dim / 8 is 2 bytes here: too coarse for 16 dims
    got = _search(index, queries, langs=langs, num_results=20, method=method, n_probe=32, **pq)
    if langs is not None:
        assert set(got["docno"].str[:2]) <= set(langs)
    # Cross-lingual (English queries, German documents) as well as monolingual: routed to the right sub-index.
    assert _recall(got, exact) >= 0.9
    assert (got.groupby("qid")["score"].apply(lambda s: s.is_monotonic_decreasing)).all()


def test_ivfpq_scores_are_exact_inner_products(corpus):
    index, queries = corpus
    got = _search(index, queries[:5], langs=["de"], num_results=10, method="ivfpq")
    vecs = index.vectors()
    for row, (_, hit) in enumerate(got.groupby("qid", sort=False)):
        np.testing.assert_allclose(hit["score"], vecs[hit["docid"].to_numpy()] @ queries[row], atol=1e-5)


def test_sub_indexes_are_stored_once_and_reused(corpus):
    index, queries = corpus
    _search(index, queries[:2], method="ivf", langs=["en"])
    parts = LanguagePartitions(index, "ivf")
    folder = parts.folder()
    assert parts.built() and folder.parent.name == "ann" and (folder / "spec.json").is_file()
    before = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    again = DenseIndex(index.path)  # a fresh object (another process) reads the stored structure
    _search(again, queries[:2], method="ivf", langs=["de"])
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == before
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]  # no temporary folders left


def test_ivfpq_builds_are_deterministic(corpus, tmp_path):
    index, queries = corpus
    other = DenseIndex.merge(tmp_path / "copy", [index])
    a = _search(index, queries, method="ivfpq", num_results=10)
    b = _search(other, queries, method="ivfpq", num_results=10)
    assert list(a["docno"]) == list(b["docno"])
    np.testing.assert_array_equal(a["score"], b["score"])


def test_default_pq_size():
    assert default_pq_m(384) == 48 and default_pq_m(16) == 2 and default_pq_m(30) == 3 and default_pq_m(4) == 1


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"method": "pq"}, ValueError, "ivfpq"),
    ({"method": "ivfpq", "pq_m": 5}, ValueError, "divide"),
    ({"method": "ivfpq", "refine": 0}, ValueError, "refine"),
    ({"method": "ivf", "n_probe": 0}, ValueError, "n_probe"),
    ({"method": "ivf", "n_list": 2.5}, TypeError, "n_list"),
])
def test_bad_settings_fail_before_any_build(corpus, kwargs, error, match):
    index, _ = corpus
    with pytest.raises(error, match=match):
        index.retriever(**kwargs)
