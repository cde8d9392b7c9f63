"""LIR: per-language principal directions removed from query/doc vectors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyterrier as pt
import pytest

from pyterrier_hybrid.lir import LIR


def _synthetic(n=40, dim=16, seed=0):
    """Translations share a meaning vector; each language adds its own strong offset direction."""
    rng = np.random.default_rng(seed)
    meaning = rng.standard_normal((n, dim))
    offsets = {"en": rng.standard_normal(dim) * 4, "de": rng.standard_normal(dim) * 4}
    vecs = {lang: meaning + off + 0.05 * rng.standard_normal((n, dim)) for lang, off in offsets.items()}
    return {lang: (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32) for lang, v in vecs.items()}


def _translation_accuracy(q, d):
    return float(np.mean(np.argmax(q @ d.T, axis=1) == np.arange(len(q))))


def test_lir_removes_language_directions_and_renormalises():
    vecs = _synthetic()
    lir = LIR(k=1).fit_vectors(vecs)
    en = lir.project(vecs["en"], ["en"] * len(vecs["en"]))
    de = lir.project(vecs["de"], ["de"] * len(vecs["de"]))
    np.testing.assert_allclose(np.linalg.norm(en, axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(en @ lir.directions["en"].T, 0, atol=1e-5)  # orthogonal to the removed direction
    # the language offset dominated similarity; removing it brings translations together
    before = np.mean(np.sum(vecs["en"] * vecs["de"], axis=1))
    after = np.mean(np.sum(en * de, axis=1))
    assert after > before
    assert _translation_accuracy(en, de) >= _translation_accuracy(vecs["en"], vecs["de"])


def test_lir_k0_only_normalises_and_centered_variant():
    vecs = _synthetic()
    lir = LIR(k=0).fit_vectors(vecs)
    np.testing.assert_allclose(lir.project(vecs["en"], ["en"] * 40), vecs["en"], atol=1e-6)
    centred = LIR(k=2, center=True).fit_vectors(vecs)
    assert centred.directions["de"].shape == (2, 16)


def test_lir_transformer_on_frames_uses_id_prefix_or_lang_column():
    vecs = _synthetic(n=6)
    docs = pd.DataFrame({"docno": [f"{lang}_{i}" for lang in vecs for i in range(6)],
                         "doc_vec": list(np.concatenate(list(vecs.values())))})
    lir = LIR(k=1).fit(docs)
    assert set(lir.directions) == {"en", "de"}
    out = lir(docs)
    assert list(out.columns) == ["docno", "doc_vec"] and len(out) == 12
    np.testing.assert_allclose(np.stack(out.doc_vec)[:6], lir.project(vecs["en"], ["en"] * 6), atol=1e-6)
    queries = pd.DataFrame({"qid": ["q1"], "lang": ["de"], "query": ["x"], "query_vec": [vecs["de"][0]]})
    encoder = pt.apply.query_vec(lambda row: vecs["de"][0])  # stands in for BiEncoder.query_encoder()
    res = (encoder >> lir)(queries.drop(columns=["query_vec"]))
    np.testing.assert_allclose(res.query_vec[0], lir.project(vecs["de"][:1], ["de"])[0], atol=1e-6)
    empty = lir(queries.iloc[:0])
    assert list(empty.columns) == list(queries.columns) and len(empty) == 0


def test_lir_errors_are_clear():
    with pytest.raises(ValueError, match="not fitted"):
        LIR().project(np.zeros((1, 4)), ["en"])
    lir = LIR(k=1).fit_vectors(_synthetic(n=3))
    with pytest.raises(ValueError, match="fitted languages: de, en"):
        lir.project(np.zeros((1, 16)), ["zh"])
    with pytest.raises(ValueError, match="'lang' or 'qid'"):
        lir(pd.DataFrame({"query": ["x"], "query_vec": [np.zeros(16)]}))
    with pytest.raises(ValueError, match="n >= k"):
        LIR(k=5).fit_vectors({"en": np.zeros((2, 4))})
    with pytest.raises(ValueError, match=">= 0"):
        LIR(k=-1)


@pytest.mark.integration
def test_grid_base_plus_lir(lareqa_mirror):
    from test_evaluation import FakeEncoder

    from pyterrier_hybrid.evaluation import encode_benchmark, evaluate_grid

    encoded = encode_benchmark(FakeEncoder(), "mlqa-r", langs=["en", "de"])
    base = evaluate_grid(encoded, "mlqa-r", langs=["en", "de"], pooled=False, bias_measures=[])
    lir = LIR(k=1)
    with_lir = evaluate_grid(encoded, "mlqa-r", langs=["en", "de"], pooled=False, bias_measures=[], lir=lir)
    assert lir.is_fitted and set(lir.directions) == {"en", "de"}
    assert len(base.results) == len(with_lir.results) == 4 * 4
    assert not np.allclose(base.results.value, with_lir.results.value)
