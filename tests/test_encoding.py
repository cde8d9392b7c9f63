"""BiEncoder: vectors, options, PyTerrier frames, vector cache (tiny random model with the real e5 tokenizer)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pyterrier_hybrid.encoding import BiEncoder, VectorCache

TEXTS = [
    "Who discovered penicillin?",
    "Alexander Fleming discovered penicillin in 1928, at St Mary's Hospital in London.",
    "Wer hat das Penicillin entdeckt?",
    "北京是中华人民共和国的首都。",
    "ما هي عاصمة مصر؟",
    "x",
]


@pytest.fixture(scope="module")
def enc(tiny_model_dir) -> BiEncoder:
    return BiEncoder(str(tiny_model_dir), batch_size=2, device="cpu")


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_shapes_dtype_and_unit_norm(enc):
    q = enc.encode_queries(TEXTS)
    d = enc.encode_docs(TEXTS)
    assert enc.dim == 32
    for v in (q, d):
        assert v.shape == (len(TEXTS), 32) and v.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert enc.encode_queries([]).shape == (0, 32)


def test_prompts_and_pooling_come_from_the_sentence_transformers_config(enc):
    assert (enc.query_prompt, enc.doc_prompt, enc.pooling) == ("query: ", "passage: ", "mean")
    # Query and document prompts differ, so the same text gets different vectors per role.
    assert not np.allclose(enc.encode_queries(TEXTS[:1]), enc.encode_docs(TEXTS[:1]))


def test_matches_sentence_transformers_encode(enc, tiny_model_dir):
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(tiny_model_dir), device="cpu")
    ref_q = st.encode(TEXTS, prompt_name="query", batch_size=len(TEXTS))
    ref_d = st.encode(TEXTS, prompt_name="document", batch_size=1)
    # Our length-sorted batches of 2 vs sentence-transformers' own batching: same vectors.
    np.testing.assert_allclose(enc.encode_queries(TEXTS), ref_q, atol=1e-5)
    np.testing.assert_allclose(enc.encode_docs(TEXTS), ref_d, atol=1e-5)


def test_same_input_gives_identical_vectors(enc):
    a = enc.encode_docs(TEXTS)
    b = enc.encode_docs(TEXTS)
    assert np.array_equal(a, b)
    # A text's vector does not depend on the order of the other texts.
    perm = enc.encode_docs(TEXTS[::-1])[::-1]
    np.testing.assert_allclose(a, perm, atol=1e-6)


def test_options_change_vectors(tiny_model_dir, enc):
    base = enc.encode_queries(TEXTS)
    cls = BiEncoder(str(tiny_model_dir), pooling="cls")
    assert cls.pooling == "cls" and cls.manifest()["pooling"] == "cls"
    assert not np.allclose(cls.encode_queries(TEXTS), base, atol=1e-3)

    raw = BiEncoder(str(tiny_model_dir), normalize=False)
    un = raw.encode_queries(TEXTS)
    assert not np.allclose(np.linalg.norm(un, axis=1), 1.0, atol=1e-3)
    np.testing.assert_allclose(_unit(un), base, atol=1e-5)  # same direction, no normalisation

    plain = BiEncoder(str(tiny_model_dir), query_prompt="")
    assert plain.query_prompt == ""
    np.testing.assert_allclose(plain.encode_queries(["query: " + t for t in TEXTS]), base, atol=1e-5)

    short = BiEncoder(str(tiny_model_dir), max_length=4)
    assert not np.allclose(short.encode_docs(TEXTS[1:2]), enc.encode_docs(TEXTS[1:2]), atol=1e-3)
    # Different options, different fingerprints (the vector cache and index manifests rely on that).
    prints = {e.fingerprint() for e in (enc, cls, raw, plain, short)}
    assert len(prints) == 5


def test_int8_speed_mode_stays_close(tiny_model_dir, enc):
    q8 = BiEncoder(str(tiny_model_dir), quantize="int8")
    v = q8.encode_docs(TEXTS)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert (v * enc.encode_docs(TEXTS)).sum(1).min() > 0.9
    assert q8.manifest()["quantize"] == "int8" and q8.fingerprint() != enc.fingerprint()


@pytest.mark.parametrize("kwargs", [{"pooling": "max"}, {"quantize": "fp8"}, {"max_length": 0}])
def test_bad_options_are_refused(tiny_model_dir, kwargs):
    with pytest.raises(ValueError):
        BiEncoder(str(tiny_model_dir), **kwargs)


def test_manifest(enc):
    m = enc.manifest()
    assert m["dim"] == 32 and m["normalize"] is True and m["query_prompt"] == "query: "
    assert m["model"] == enc.model_name_or_path and len(m["fingerprint"]) == 24


# ------------------------------------------------------------------------------------------- PyTerrier frames
def test_query_encoder_adds_query_vec(enc):
    topics = pd.DataFrame({"qid": ["q1", "q2", "q3"], "query": [TEXTS[0], TEXTS[2], TEXTS[0]]})
    out = enc.query_encoder()(topics)
    assert list(out.columns) == ["qid", "query", "query_vec"]
    np.testing.assert_allclose(np.stack(out["query_vec"]), enc.encode_queries(topics["query"]), atol=1e-6)


def test_doc_encoder_adds_doc_vec(enc):
    docs = pd.DataFrame({"docno": ["d1", "d2"], "text": TEXTS[1:3]})
    out = enc.doc_encoder()(docs)
    assert list(out.columns) == ["docno", "text", "doc_vec"]
    np.testing.assert_allclose(np.stack(out["doc_vec"]), enc.encode_docs(TEXTS[1:3]), atol=1e-6)


def test_empty_frames_keep_columns(enc):
    q = enc.query_encoder()(pd.DataFrame({"qid": [], "query": []}))
    d = enc.doc_encoder()(pd.DataFrame({"docno": [], "text": []}))
    s = enc.scorer()(pd.DataFrame({"qid": [], "query": [], "docno": [], "text": []}))
    assert q.empty and list(q.columns) == ["qid", "query", "query_vec"]
    assert d.empty and list(d.columns) == ["docno", "text", "doc_vec"]
    assert s.empty and {"score", "rank"} <= set(s.columns)


def test_missing_columns_are_clear_errors(enc):
    import pyterrier_alpha as pta

    with pytest.raises(pta.validate.InputValidationError, match="query"):
        enc.query_encoder()(pd.DataFrame({"qid": ["q1"]}))
    with pytest.raises(pta.validate.InputValidationError, match="text"):
        enc.doc_encoder()(pd.DataFrame({"docno": ["d1"]}))
    with pytest.raises(pta.validate.InputValidationError):
        enc.scorer()(pd.DataFrame({"qid": ["q1"], "docno": ["d1"]}))


def test_scorer_reranks_by_inner_product(enc):
    res = pd.DataFrame({"qid": ["q1"] * 3, "query": [TEXTS[0]] * 3, "docno": ["a", "b", "c"], "text": TEXTS[1:4]})
    out = enc.scorer()(res)
    expected = enc.encode_docs(TEXTS[1:4]) @ enc.encode_queries(TEXTS[:1])[0]
    np.testing.assert_allclose(out.set_index("docno").loc[["a", "b", "c"], "score"], expected, atol=1e-5)
    assert list(out.sort_values("rank")["docno"]) == list(np.array(["a", "b", "c"])[np.argsort(-expected)])


# ------------------------------------------------------------------------------------------- vector cache
def test_vector_cache_reuses_vectors(tiny_model_dir, tmp_path, monkeypatch):
    first = BiEncoder(str(tiny_model_dir), cache_dir=tmp_path)
    ref = first.encode_docs(TEXTS[:4])
    assert len(list((tmp_path / first.fingerprint() / "doc").glob("*.npz"))) == 1

    again = BiEncoder(str(tiny_model_dir), cache_dir=tmp_path)  # a new process would do the same
    calls: list[list[str]] = []
    real = again._encode

    def spy(role, texts, batch_size):
        calls.append(list(texts))
        return real(role, texts, batch_size)

    monkeypatch.setattr(again, "_encode", spy)
    np.testing.assert_array_equal(again.encode_docs(TEXTS[:4]), ref)
    assert calls == []  # all four read from disk
    mixed = again.encode_docs([TEXTS[5], TEXTS[0], TEXTS[5]])
    assert calls == [[TEXTS[5]]]  # only the new text, once
    np.testing.assert_array_equal(mixed[1], ref[0])
    np.testing.assert_allclose(mixed[0], first._encode("doc", [TEXTS[5]], None)[0], atol=1e-6)
    # Queries are cached apart from documents, and no temporary files are left behind.
    again.encode_queries(TEXTS[:1])
    assert calls[-1] == [TEXTS[0]]
    assert not list(tmp_path.rglob("*.tmp"))


def test_vector_cache_is_keyed_by_encoder(tiny_model_dir, tmp_path):
    a = BiEncoder(str(tiny_model_dir), cache_dir=tmp_path)
    b = BiEncoder(str(tiny_model_dir), cache_dir=tmp_path, pooling="cls")
    va, vb = a.encode_docs(TEXTS[:2]), b.encode_docs(TEXTS[:2])
    assert not np.allclose(va, vb, atol=1e-3)
    assert {p.name for p in tmp_path.iterdir()} == {a.fingerprint(), b.fingerprint()}


def test_vector_cache_direct(tmp_path):
    cache = VectorCache(tmp_path, "fp")
    cache.put("doc", ["a", "b"], np.eye(2, dtype=np.float32))
    found, missing = VectorCache(tmp_path, "fp").get("doc", ["b", "c", "a"])
    assert missing == [1]
    np.testing.assert_array_equal(found[0], [0, 1])
    np.testing.assert_array_equal(found[2], [1, 0])


@pytest.mark.slow
def test_multi_process_pool_matches_single_process(tiny_model_dir, enc):
    multi = BiEncoder(str(tiny_model_dir), processes=2)
    try:
        np.testing.assert_allclose(multi.encode_docs(TEXTS * 3), enc.encode_docs(TEXTS * 3), atol=1e-5)
    finally:
        multi.close()


def test_plain_hugging_face_directory(tiny_model_dir, tmp_path):
    """A model directory without sentence-transformers files: mean pooling, no prompts unless given."""
    import shutil

    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tiny_model_dir / name, tmp_path / name)
    plain = BiEncoder(str(tmp_path), doc_prompt="passage: ")
    assert (plain.pooling, plain.query_prompt, plain.doc_prompt) == ("mean", "", "passage: ")
    ref = BiEncoder(str(tiny_model_dir))
    np.testing.assert_allclose(plain.encode_docs(TEXTS), ref.encode_docs(TEXTS), atol=1e-5)
