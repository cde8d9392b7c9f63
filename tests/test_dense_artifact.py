"""DenseIndex as a PyTerrier artifact, adoption of a pyterrier-dr FlexIndex, optional languages, ``% k`` folding,
``pt.inspect``, ambiguous query frames and foreign encoder objects."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyterrier as pt
import pytest

from pyterrier_hybrid.encoding import BiEncoder
from pyterrier_hybrid.index import CorruptIndexError, DenseIndex, DenseRetriever, EncoderMismatchError
from pyterrier_hybrid.languages import register_languages, unregister_languages

DOCS = pd.DataFrame({
    "docno": ["en_0", "en_1", "en_2", "de_0", "de_1", "de_2"],
    "text": ["London is the capital of England", "Rivers flow into the sea near London",
             "The capital city has a river", "Berlin ist die Hauptstadt von Deutschland",
             "Der Rhein fließt durch Städte", "Die Hauptstadt hat einen Fluss"],
})
PLAIN = DOCS.assign(docno=[f"d{i}" for i in range(len(DOCS))])  # pyterrier-dr style: no language in the docno
TOPICS = pd.DataFrame({"qid": ["q1", "q2"], "query": ["capital of England", "Hauptstadt Fluss"]})


@pytest.fixture(scope="module")
def enc(tiny_model_dir, one_torch_thread) -> BiEncoder:
    return BiEncoder(str(tiny_model_dir), device="cpu")


@pytest.fixture(scope="module")
def index(enc, tmp_path_factory) -> DenseIndex:
    return DenseIndex(tmp_path_factory.mktemp("dense") / "idx").indexer(enc).index(DOCS)


@pytest.fixture()
def pt_home(tmp_path, monkeypatch) -> Path:
    """An empty PyTerrier home: the artifact cache of the test (never ~/.pyterrier)."""
    home = tmp_path / "pyterrier_home"
    monkeypatch.setenv("PYTERRIER_HOME", str(home))
    return home


def ranking(frame: pd.DataFrame) -> list[tuple]:
    return list(zip(frame["qid"], frame["docno"], frame["rank"]))


# -------------------------------------------------------------------------------------------- artifact
def test_new_index_is_a_hybrid_flex_artifact(index):
    meta = json.loads((index.path / "pt_meta.json").read_text())
    assert (meta["type"], meta["format"], meta["package_hint"]) == ("dense_index", "hybrid_flex", "pyterrier-hybrid")
    assert (meta["doc_count"], meta["vec_size"]) == (len(index), index.manifest["dim"])
    assert isinstance(index, pt.Artifact)
    assert pt.inspect.artifact_type_format(index) == ("dense_index", "hybrid_flex")
    loaded = pt.Artifact.load(str(index.path))
    assert isinstance(loaded, DenseIndex) and loaded.path == index.path


def test_flex_property_serves_pyterrier_dr_retrievers(index, enc):
    import pyterrier_dr

    assert isinstance(index.flex, pyterrier_dr.FlexIndex)
    theirs = (enc.query_encoder() >> index.flex.np_retriever(num_results=3))(TOPICS)
    ours = index.retriever(enc, num_results=3)(TOPICS)
    assert ranking(theirs) == ranking(ours)
    np.testing.assert_allclose(theirs["score"], ours["score"], atol=1e-5)


LOAD_SCRIPT = """
import sys
import pyterrier as pt
# import pyterrier imports the package as pt.hybrid (cheaply); nothing loads the index module but the artifact lookup
assert "pyterrier_hybrid.index" not in sys.modules
index = pt.Artifact.load(sys.argv[1])
print(type(index).__module__ + "." + type(index).__name__, len(index), sorted(index.langs))
"""


def test_pt_artifact_load_without_importing_the_package(index, tmp_path):
    env = {**os.environ, "PYTERRIER_HOME": str(tmp_path / "pyterrier_home")}
    proc = subprocess.run([sys.executable, "-c", LOAD_SCRIPT, str(index.path)], capture_output=True, text=True,
                          env=env, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "pyterrier_hybrid.index.DenseIndex 6 ['de', 'en']"


def test_folder_of_an_earlier_version_still_opens(index, enc, tmp_path, pt_home):
    old = tmp_path / "old"
    shutil.copytree(index.path, old)
    meta = json.loads((old / "pt_meta.json").read_text())
    (old / "pt_meta.json").write_text(json.dumps({"type": "dense_index", "format": "flex", "vec_size": meta["vec_size"],
                                                  "doc_count": meta["doc_count"]}))
    expected = index.retriever(enc)(TOPICS)
    pd.testing.assert_frame_equal(DenseIndex(old).retriever(enc)(TOPICS), expected)
    # a package of the old folder names this class, so that it loads as a DenseIndex
    package = DenseIndex(old).build_package(str(tmp_path / "old.tar.lz4"), verbose=False)
    unpacked = DenseIndex.from_url(package)
    assert json.loads((unpacked.path / "pt_meta.json").read_text())["format"] == "hybrid_flex"
    assert isinstance(pt.Artifact.load(str(unpacked.path)), DenseIndex)
    assert json.loads((old / "pt_meta.json").read_text())["format"] == "flex"  # the folder itself is unchanged


def test_pt_meta_of_another_artifact_is_refused(index, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(index.path, other)
    (other / "pt_meta.json").write_text(json.dumps({"type": "sparse_index", "format": "hybrid_bm25"}))
    with pytest.raises(CorruptIndexError, match="'sparse_index'.'hybrid_bm25' artifact") as info:
        DenseIndex(other).manifest  # noqa: B018
    assert "\n" not in str(info.value)


def test_package_round_trip(index, enc, tmp_path, pt_home):
    meta: dict = {}
    package = index.build_package(str(tmp_path / "dense.tar.lz4"), metadata_out=meta, verbose=False)
    assert (meta["type"], meta["format"]) == ("dense_index", "hybrid_flex")
    sidecar = json.loads(Path(f"{package}.json").read_text())
    expected = index.retriever(enc)(TOPICS)
    for url in (package, Path(package).as_uri()):
        unpacked = DenseIndex.from_url(url, expected_sha256=sidecar["expected_sha256"])
        assert isinstance(unpacked, DenseIndex) and unpacked.path.parent == pt_home / "artifacts"
        pd.testing.assert_frame_equal(unpacked.retriever(enc)(TOPICS), expected)
    assert isinstance(pt.Artifact.load(str(unpacked.path)), DenseIndex)
    assert DenseIndex.from_url(str(index.path)).path == index.path  # a folder opens in place
    with pytest.raises(ValueError, match="expects 00ff"):
        DenseIndex.from_url(package, expected_sha256="00ff")
    with pytest.raises(FileNotFoundError, match="no dense index package at"):
        DenseIndex.from_url(str(tmp_path / "missing.tar.lz4"))


# -------------------------------------------------------------------------------------------- adoption
@pytest.fixture(scope="module")
def flex_dir(enc, tmp_path_factory) -> Path:
    """A FlexIndex written by pyterrier-dr itself (docnos carry languages)."""
    import pyterrier_dr

    path = tmp_path_factory.mktemp("flex") / "docs.flex"
    (enc.doc_encoder() >> pyterrier_dr.FlexIndex(str(path), verbose=False).indexer()).index(DOCS.to_dict("records"))
    return path


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_adopt_a_flex_index(flex_dir, index, enc, tmp_path):
    before = snapshot(flex_dir)
    adopted = DenseIndex.adopt(flex_dir, tmp_path / "adopted", encoder=enc)
    assert snapshot(flex_dir) == before  # the FlexIndex folder is only read
    assert adopted.manifest["langs"] == index.manifest["langs"] and adopted.manifest["encoder"] == enc.manifest()
    for langs in (None, ["de"]):
        got = adopted.retriever(enc, langs=langs)(TOPICS)
        ref = index.retriever(enc, langs=langs)(TOPICS)
        assert ranking(got) == ranking(ref)
        np.testing.assert_allclose(got["score"], ref["score"], atol=1e-6)
    assert isinstance(pt.Artifact.load(str(adopted.path)), DenseIndex)


def test_adopt_with_a_language_function_or_mapping(flex_dir, enc, tmp_path):
    by_function = DenseIndex.adopt(flex_dir, tmp_path / "f", langs=lambda d: "xx" if d.endswith("0") else "yy")
    assert by_function.manifest["langs"] == {"xx": [0, 2], "yy": [2, 6]}
    assert by_function.manifest["encoder"]["unverified"] is True
    by_function.retriever(enc)  # an unknown encoder: only the dimension is checked
    import pyterrier_dr

    mapping = {d: "fr" for d in DOCS["docno"]}
    flex = pyterrier_dr.FlexIndex(str(flex_dir), verbose=False)  # the FlexIndex object, or its path
    assert DenseIndex.adopt(flex, tmp_path / "m", langs=mapping).langs == ["fr"]
    with pytest.raises(ValueError, match="has no language .* but docno .* has one"):
        DenseIndex.adopt(flex_dir, tmp_path / "partial", langs={"en_0": "en"})
    assert not (tmp_path / "partial").exists()


def test_adopt_refusals(flex_dir, index, enc, tmp_path):
    with pytest.raises(ValueError, match="never writes into"):
        DenseIndex.adopt(flex_dir, flex_dir / "inside")
    with pytest.raises(ValueError, match="not a pyterrier-dr FlexIndex"):
        DenseIndex.adopt(index.path, tmp_path / "x")
    with pytest.raises(ValueError, match="is not a FlexIndex folder"):
        DenseIndex.adopt(tmp_path, tmp_path / "y")
    with pytest.raises(TypeError, match="langs must be"):
        DenseIndex.adopt(flex_dir, tmp_path / "z", langs=3)
    with pytest.raises(ValueError, match="langs gives docno 'en_0' the language ''"):
        DenseIndex.adopt(flex_dir, tmp_path / "z", langs=lambda d: "")
    assert not (tmp_path / "z").exists()


# -------------------------------------------------------------------------------------------- languages optional
@pytest.fixture(scope="module")
def plain(enc, tmp_path_factory) -> DenseIndex:
    return DenseIndex(tmp_path_factory.mktemp("plain") / "idx").indexer(enc).index(PLAIN)


def test_docnos_without_language_index_and_retrieve(plain, index, enc):
    assert plain.manifest["langs"] is None and not plain.has_langs and plain.langs == []
    assert list(plain.doc_langs()) == [None] * len(PLAIN)
    got = plain.retriever(enc, num_results=3)(TOPICS)
    ref = index.retriever(enc, num_results=3)(TOPICS)
    rename = dict(zip(DOCS["docno"], PLAIN["docno"]))
    assert list(got["docno"]) == [rename[d] for d in ref["docno"]]
    np.testing.assert_allclose(got["score"], ref["score"], atol=1e-6)
    assert isinstance(DenseIndex(plain.path).manifest, dict)  # reopens (no language ranges to check)


def test_language_filter_without_languages_is_one_clear_error(plain, enc):
    with pytest.raises(ValueError, match="has no document languages, so it cannot filter") as info:
        plain.retriever(enc, langs=["en"])
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("method", ["hnsw", "ivf"])
def test_approximate_search_without_languages(plain, enc, method):
    exact = plain.retriever(enc, num_results=3)(TOPICS)
    approx = plain.retriever(enc, num_results=3, method=method, n_probe=64)(TOPICS)
    assert list(approx["docno"]) == list(exact["docno"])


def test_languages_from_a_lang_column_or_the_registry(enc, tmp_path):
    column = DenseIndex(tmp_path / "col").indexer(enc).index(PLAIN.assign(lang=["en"] * 3 + ["de"] * 3))
    assert column.manifest["langs"] == {"de": [0, 3], "en": [3, 6]}
    register_languages(dict(zip(PLAIN["docno"], ["en"] * 3 + ["de"] * 3)))
    try:
        registered = DenseIndex(tmp_path / "reg").indexer(enc).index(PLAIN)
    finally:
        unregister_languages(PLAIN["docno"].tolist())
    assert registered.manifest["langs"] == {"de": [0, 3], "en": [3, 6]}
    assert set(registered.retriever(enc, langs="de")(TOPICS)["docno"]) <= {"d3", "d4", "d5"}


def test_documents_with_and_without_languages_are_refused(enc, tmp_path):
    mixed = pd.concat([DOCS.iloc[:2], PLAIN.iloc[2:]])
    with pytest.raises(ValueError, match="docno 'd2' has no language .* docno 'en_0' has one") as info:
        DenseIndex(tmp_path / "mixed").indexer(enc).index(mixed)
    assert "\n" not in str(info.value) and not (tmp_path / "mixed").exists()
    with pytest.raises(ValueError, match="has no language"):  # an iterable: found chunk by chunk
        DenseIndex(tmp_path / "mixed").indexer(enc, chunk_size=2).index(mixed.to_dict("records"))
    assert not (tmp_path / "mixed").exists()


def test_indexer_langs_option(enc, tmp_path):
    off = DenseIndex(tmp_path / "off").indexer(enc, langs=False).index(DOCS)  # prefixes ignored
    assert off.manifest["langs"] is None
    mixed = pd.concat([DOCS.iloc[:2], PLAIN.iloc[2:]])
    assert DenseIndex(tmp_path / "mixed").indexer(enc, langs=False).index(mixed).manifest["langs"] is None
    with pytest.raises(ValueError, match="docno 'd0' carries no language .* langs=True requires one"):
        DenseIndex(tmp_path / "on").indexer(enc, langs=True).index(PLAIN)
    assert DenseIndex(tmp_path / "on").indexer(enc, langs=True).index(DOCS).langs == ["de", "en"]
    with pytest.raises(TypeError, match="langs must be None"):
        DenseIndex(tmp_path / "bad").indexer(enc, langs="en")


def test_merge_of_shards_without_languages(plain, enc, tmp_path):
    a = DenseIndex(tmp_path / "a").indexer(enc).index(PLAIN.iloc[:3])
    b = DenseIndex(tmp_path / "b").indexer(enc).index(PLAIN.iloc[3:])
    merged = DenseIndex.merge(tmp_path / "ab", [a, b])
    assert merged.manifest["langs"] is None
    assert ranking(merged.retriever(enc)(TOPICS)) == ranking(plain.retriever(enc)(TOPICS))


# -------------------------------------------------------------------------------------------- % k and pt.inspect
def test_rank_cutoff_folds_into_the_retriever(index, enc):
    retr = index.retriever(langs=["en", "de"])
    folded = (retr % 2).compile()
    assert isinstance(folded, DenseRetriever)
    assert folded.num_results == 2 and folded.langs == ["en", "de"] and folded.index is index
    frame = enc.query_encoder()(TOPICS)
    pd.testing.assert_frame_equal(folded(frame), (retr % 2)(frame).reset_index(drop=True))
    assert (retr % 5000).compile() is retr
    assert ((index.retriever() % 4) % 2).compile().num_results == 2
    assert not isinstance((index.retriever() % 0).compile(), DenseRetriever)
    pipeline = (index.retriever(enc) % 3).compile()  # encoder >> retriever: the cutoff folds into the last stage
    assert isinstance(pipeline[-1], DenseRetriever) and pipeline[-1].num_results == 3
    pd.testing.assert_frame_equal(pipeline(TOPICS), (index.retriever(enc) % 3)(TOPICS).reset_index(drop=True))


def test_inspection(index, enc):
    retr = index.retriever()
    assert pt.inspect.transformer_inputs(retr) == [["qid", "query_vec"]]
    assert pt.inspect.transformer_outputs(retr, ["qid", "query_vec"]) == ["qid", "query_vec", "docno", "docid",
                                                                           "score", "rank"]
    assert pt.inspect.transformer_outputs(index.retriever(drop_query_vec=True), ["qid", "query", "query_vec"]) == [
        "qid", "query", "docno", "docid", "score", "rank"]
    assert pt.inspect.transformer_outputs(index.retriever(enc), ["qid", "query"]) == [
        "qid", "query", "query_vec", "docno", "docid", "score", "rank"]
    assert pt.inspect.transformer_inputs(enc.query_encoder()) == [["qid", "query"], ["query"]]
    assert pt.inspect.transformer_outputs(enc.query_encoder(), ["qid", "query"]) == ["qid", "query", "query_vec"]
    assert pt.inspect.transformer_outputs(enc.doc_encoder(), ["docno", "text"]) == ["docno", "text", "doc_vec"]
    assert "score" in pt.inspect.transformer_outputs(enc.text_scorer(), ["qid", "query", "docno", "text"])
    assert pt.inspect.transformer_inputs(enc)
    assert pt.inspect.transformer_outputs(enc, ["qid", "query"]) == ["qid", "query", "query_vec"]
    again = pt.inspect.transformer_apply_attributes(retr, num_results=7)
    assert isinstance(again, DenseRetriever) and again.num_results == 7 and again.index is index


# -------------------------------------------------------------------------------------------- ambiguous frames
def test_query_encoder_encodes_only_the_query(enc):
    topics = TOPICS.assign(text=["something else", "noch etwas"])
    out = enc.query_encoder()(topics)
    assert list(out.columns) == ["qid", "query", "text", "query_vec"]
    np.testing.assert_allclose(np.stack(out["query_vec"]), enc.encode_queries(TOPICS["query"]), atol=1e-6)


def test_encoder_refuses_a_topics_frame_with_text(enc, index):
    topics = TOPICS.assign(text=["something else", "noch etwas"])
    with pytest.raises(ValueError, match="'query' and 'text' but no 'docno'.*query_encoder") as info:
        enc(topics)
    assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match="no 'docno'"):
        (enc >> index.retriever())(topics)
    with pytest.raises(pt.validate.InputValidationError, match="docno"):
        enc.text_scorer()(topics)
    # what stays as it was: queries, documents and result frames
    assert "query_vec" in enc(TOPICS).columns and "doc_vec" in enc(DOCS).columns
    res = TOPICS.merge(DOCS, how="cross")
    assert {"score", "rank"} <= set(enc(res).columns)
    # the retriever built with the encoder takes such a frame: it encodes only the query
    pd.testing.assert_frame_equal(index.retriever(enc)(topics).drop(columns="text"), index.retriever(enc)(TOPICS))


# -------------------------------------------------------------------------------------------- foreign encoders
class Foreign:
    """Stands in for a pyterrier-dr encoder (an E5): a transformer factory without our manifest."""

    def query_encoder(self):
        return pt.apply.generic(lambda df: df)


@pytest.mark.parametrize("what", ["retriever", "indexer", "check_encoder"])
def test_foreign_encoder_is_a_clear_type_error(index, tmp_path, what):
    target = DenseIndex(tmp_path / "new") if what == "indexer" else index
    make = getattr(target, what)
    for foreign in (Foreign(), 3, [1, 2]):
        with pytest.raises(TypeError, match="BiEncoder, a SentenceTransformer or a model name or path") as info:
            make(foreign)
        assert "\n" not in str(info.value) and type(foreign).__name__ in str(info.value)


def test_pyterrier_dr_encoder_object(index, tiny_model_dir):
    import pyterrier_dr

    e5 = pyterrier_dr.SBertBiEncoder(str(tiny_model_dir), device="cpu")
    with pytest.raises(TypeError, match=r"not pyterrier_dr\..*SBertBiEncoder; wrap the model"):
        index.retriever(e5)


def test_model_path_or_sentence_transformer_is_wrapped_in_a_biencoder(index, enc, tiny_model_dir):
    from sentence_transformers import SentenceTransformer

    expected = index.retriever(enc)(TOPICS)
    pd.testing.assert_frame_equal(index.retriever(str(tiny_model_dir))(TOPICS), expected)
    st = SentenceTransformer(str(tiny_model_dir), device="cpu")
    before = {k: v.clone() for k, v in st.state_dict().items()}
    pd.testing.assert_frame_equal(index.retriever(st)(TOPICS), expected)  # same name and fingerprint as enc
    BiEncoder(st, pooling="cls", quantize="bf16")  # options apply to a copy: the caller's model is unchanged
    after = st.state_dict()
    assert all(after[k].dtype == v.dtype and bool((after[k] == v).all()) for k, v in before.items())
    with pytest.raises(TypeError, match="model_name_or_path must be a hub id, a model folder or a SentenceTransformer"):
        BiEncoder(3)


class Narrow(Foreign):
    """An encoder of another dimension."""

    def manifest(self) -> dict:
        return {"model": "narrow", "dim": 8}


def test_adopt_refuses_an_encoder_of_another_dimension(flex_dir, tmp_path):
    with pytest.raises(EncoderMismatchError, match="8-dimensional vectors but .* holds 32-dimensional"):
        DenseIndex.adopt(flex_dir, tmp_path / "narrow", encoder=Narrow())
    assert not (tmp_path / "narrow").exists()
