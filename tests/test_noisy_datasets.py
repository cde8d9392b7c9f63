"""Noisy ir_datasets entries: id scheme, lazy registration, same qrels/docs/ids as the clean entries."""

from __future__ import annotations

import ir_datasets
import pytest

import pyterrier_hybrid  # noqa: F401 - registers the entries
from pyterrier_hybrid.datasets import NOISY_ID_PATTERN, noisy_dataset_id
from pyterrier_hybrid.datasets.noisy import NOISE_ID


def test_id_scheme():
    assert noisy_dataset_id("xquad-r", "en", "de", model="typo", level=20) == "xquad-r/en-de/noise-typo-20"
    assert noisy_dataset_id("xquad-r", "hi", model="script", level=50, seed=1) == "xquad-r/hi/noise-script-50-s1"
    assert noisy_dataset_id("mlqa-r", model="mixed", level=30, docs=True) == "mlqa-r/multi/noise-mixed-30-docs"
    for good in ["xquad-r/en-de/noise-typo-20", "xquad-r/hi/noise-dialect-0", "mlqa-r/multi/noise-mixed-100-s3-docs"]:
        assert NOISE_ID.match(good), good
    bad_ids = ["xquad-r/en-de/noise-typo-20x", "xquad-r/en-de/typo-20", "xquad-r/noise-typo-20", "mlqa/en/noise-typo-1"]
    for bad in bad_ids:
        assert not NOISE_ID.match(bad), bad
    assert NOISY_ID_PATTERN == NOISE_ID.pattern


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"model": "typos", "level": 20}, "valid models are"),
        ({"model": "typo", "level": 120}, r"\[0, 100\]"),
        ({"model": "typo", "level": 2.5}, "integer percents"),
        ({"model": "typo", "level": 20, "seed": -1}, "non-negative"),
    ],
)
def test_noisy_dataset_id_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        noisy_dataset_id("xquad-r", "en", "de", **kwargs)


def test_registered_lazily():
    # nothing is built at import: the pattern resolves an id on first load (no data read until iterated)
    name = "xquad-r/th-tr/noise-dialect-37-s9"
    assert name not in list(ir_datasets.registry)
    dataset = ir_datasets.load(name)
    assert name in list(ir_datasets.registry)
    assert "dialect noise 37% (seed 9)" in dataset.documentation()["pretty_name"]


@pytest.mark.parametrize(
    ("dataset_id", "message"),
    [
        ("xquad-r/en-xx/noise-typo-20", "valid codes are"),
        ("xquad-r/en/noise-foo-20", "valid models are: typo, orthographic"),
        ("xquad-r/en/noise-typo-101", r"\[0, 100\]"),
        ("xquad-r/hi-hi/noise-typo-10", "use xquad-r/hi/noise-"),
        ("mlqa-r/el/noise-typo-10", "valid codes are: ar, de, en, es, hi, vi, zh"),
    ],
)
def test_bad_ids_are_explained(dataset_id, message):
    with pytest.raises(ValueError, match=message):
        ir_datasets.load(dataset_id)


@pytest.mark.integration
@pytest.mark.parametrize(
    ("clean_id", "noise"),
    [("xquad-r/en-de", "noise-typo-20"), ("xquad-r/ar-en", "noise-mixed-50"), ("xquad-r/hi", "noise-script-30-s2"),
     ("mlqa-r/zh-es", "noise-orthographic-10"), ("mlqa-r/multi", "noise-dialect-50")],
)
def test_noisy_entry_pairs_with_clean(lareqa_mirror, clean_id, noise):
    clean, noisy = ir_datasets.load(clean_id), ir_datasets.load(f"{clean_id}/{noise}")
    assert sorted(noisy.qrels_iter()) == sorted(clean.qrels_iter())
    clean_q, noisy_q = list(clean.queries_iter()), list(noisy.queries_iter())
    assert [q.query_id for q in noisy_q] == [q.query_id for q in clean_q]
    assert [(q.lang, q.group_id) for q in noisy_q] == [(q.lang, q.group_id) for q in clean_q]
    assert all(q.text.strip() for q in noisy_q)
    changed = sum(a.text != b.text for a, b in zip(clean_q, noisy_q))
    assert changed > 0.05 * len(clean_q)
    assert noisy.docs_handler() is clean.docs_handler()
    assert noisy.docs_count() == clean.docs_count()
    info = noisy.documentation()
    assert noise.split("-")[1] in info["pretty_name"] and clean_id in info["desc"]
    assert ir_datasets.load(f"{clean_id}/{noise}") is noisy  # registered once resolved


@pytest.mark.integration
def test_level_zero_entry_is_the_clean_entry(lareqa_mirror):
    clean, zero = ir_datasets.load("xquad-r/de-en"), ir_datasets.load("xquad-r/de-en/noise-typo-0")
    assert list(zero.queries_iter()) == list(clean.queries_iter())


@pytest.mark.integration
def test_same_seed_same_entry_different_seed_different_text(lareqa_mirror):
    a = [q.text for q in ir_datasets.load("xquad-r/vi/noise-typo-20").queries_iter()]
    b = [q.text for q in ir_datasets.load("xquad-r/vi/noise-typo-20-s1").queries_iter()]
    assert a == [q.text for q in ir_datasets.load("xquad-r/vi/noise-typo-20").queries_iter()]
    assert sum(x != y for x, y in zip(a, b)) > 0.8 * len(a)
    # a query's noise is tied to its id, so it is the same in every entry that holds it
    mono = {q.query_id: q.text for q in ir_datasets.load("xquad-r/vi/noise-typo-20").queries_iter()}
    cross = {q.query_id: q.text for q in ir_datasets.load("xquad-r/vi-en/noise-typo-20").queries_iter()}
    assert all(mono[qid] == text for qid, text in cross.items())


@pytest.mark.integration
def test_noisy_documents_option(lareqa_mirror):
    clean, noisy = ir_datasets.load("xquad-r/ru"), ir_datasets.load("xquad-r/ru/noise-typo-30-docs")
    clean_docs, noisy_docs = list(clean.docs_iter()), list(noisy.docs_iter())
    assert [d.doc_id for d in noisy_docs] == [d.doc_id for d in clean_docs]
    assert [d.context for d in noisy_docs] == [d.context for d in clean_docs]
    assert sum(a.text != b.text for a, b in zip(clean_docs, noisy_docs)) > 0.9 * len(clean_docs)
    assert sorted(noisy.qrels_iter()) == sorted(clean.qrels_iter())
    assert noisy.docs_handler().docs_namespace() != clean.docs_handler().docs_namespace()
    doc = noisy_docs[5]
    assert noisy.docs_store().get(doc.doc_id) == doc


@pytest.mark.integration
def test_pyterrier_topics_equal_noise_transformer(lareqa_mirror):
    import pyterrier as pt

    from pyterrier_hybrid.noise import NoiseTransformer

    clean = pt.get_dataset("irds:xquad-r/ar-en")
    noisy = pt.get_dataset("irds:xquad-r/ar-en/noise-mixed-20")
    topics = noisy.get_topics("text")
    assert topics["qid"].tolist() == clean.get_topics("text")["qid"].tolist()
    assert topics["query"].tolist() == NoiseTransformer("mixed", 20)(clean.get_topics("text"))["query"].tolist()
    assert noisy.get_qrels().equals(clean.get_qrels())


@pytest.mark.integration
def test_noisy_entries_count_and_look_up_their_noisy_queries(lareqa_mirror):
    noisy = ir_datasets.load("xquad-r/en-de/noise-typo-50")
    clean = ir_datasets.load("xquad-r/en-de")
    assert noisy.queries_count() == clean.queries_count() == sum(1 for _ in noisy.queries_iter())
    first = next(iter(noisy.queries_iter()))
    assert noisy.queries_store().get(first.query_id) == first  # the noisy text, not the clean one
    assert first.text != clean.queries_store().get(first.query_id).text
    with pytest.raises(KeyError):
        noisy.queries_store().get("en_no-such-question")
