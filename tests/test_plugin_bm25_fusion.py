"""BM25 and fusion as native PyTerrier parts: ``% k`` folding, re-ranking, ``pt.inspect``, artifacts."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyterrier as pt
import pyterrier_alpha as pta
import pytest

from pyterrier_hybrid.bm25 import BM25Index, BM25Indexer, BM25Retriever
from pyterrier_hybrid.fusion import RRF, LinearFusion, PerQueryMinMax, _CheckRun, linear_fusion, rrf

DOCS = pd.DataFrame(
    {
        "docno": ["en_0", "en_1", "en_2", "de_0", "de_1", "de_2"],
        "text": ["London is the capital of England", "Rivers flow into the sea near London",
                 "The capital city has a river", "Berlin ist die Hauptstadt von Deutschland",
                 "Der Rhein fließt durch Städte", "Die Hauptstadt hat einen Fluss"],
    }
)
TOPICS = pd.DataFrame({"qid": ["q1", "q2", "q3"], "query": ["capital of England", "Hauptstadt Fluss", "river"]})
RESULT_COLUMNS = ["qid", "query", "docno", "score", "rank"]


@pytest.fixture(scope="module")
def index(tmp_path_factory) -> BM25Index:
    return BM25Indexer(tmp_path_factory.mktemp("plugin") / "bm25").index(DOCS)


@pytest.fixture(scope="module")
def first_stage(tmp_path_factory) -> BM25Retriever:
    """Another retriever over the same docnos (a different tokenizer), standing in for a dense first stage."""
    return BM25Indexer(tmp_path_factory.mktemp("plugin") / "regex", tokenizer="regex").index(DOCS).retriever()


@pytest.fixture()
def pt_home(tmp_path, monkeypatch) -> Path:
    """An empty PyTerrier home: the artifact cache of the test (never ~/.pyterrier)."""
    home = tmp_path / "pyterrier_home"
    monkeypatch.setenv("PYTERRIER_HOME", str(home))
    return home


def candidates(frame: pd.DataFrame) -> pd.DataFrame:
    """A result frame every query of which is given every document (in docno order, with made-up scores)."""
    out = frame.merge(DOCS[["docno", "text"]], how="cross")
    return out.assign(score=np.arange(len(out), 0, -1, dtype=np.float64), rank=out.groupby("qid").cumcount())


# -------------------------------------------------------------------------------------------- % k folding
def test_rank_cutoff_folds_into_the_retriever(index):
    bm25 = index.retriever(langs=["en", "de"])
    folded = (bm25 % 2).compile()
    assert isinstance(folded, BM25Retriever)
    assert folded.num_results == 2 and folded.langs == ["en", "de"] and folded.index is index
    pd.testing.assert_frame_equal(folded(TOPICS), (bm25 % 2)(TOPICS))
    assert (bm25 % 5000).compile() is bm25  # a looser cutoff changes nothing


def test_rank_cutoff_keeps_the_stricter_of_two(index):
    assert (index.retriever(num_results=3) % 10).compile().num_results == 3
    assert ((index.retriever() % 4) % 2).compile().num_results == 2


def test_rank_cutoff_zero_is_left_to_pyterrier(index):
    pipeline = (index.retriever() % 0).compile()
    assert not isinstance(pipeline, BM25Retriever)
    assert len(pipeline(TOPICS)) == 0


@pytest.mark.parametrize("make", [lambda a, b: rrf(a, b, num_results=None), lambda a, b: linear_fusion(a, b)],
                         ids=["rrf", "linear_fusion"])
def test_rank_cutoff_folds_into_fusion(index, first_stage, make):
    fused = make(index.retriever(), first_stage)
    folded = (fused % 2).compile()
    assert type(folded) is type(fused) and folded.num_results == 2
    pd.testing.assert_frame_equal(folded(TOPICS), (fused % 2)(TOPICS).reset_index(drop=True))
    assert (folded % 5).compile() is folded


# -------------------------------------------------------------------------------------------- re-ranking
def test_rerank_gives_every_document_the_score_retrieval_gives_it(index):
    for bm25 in (index.retriever(), index.retriever(langs=["en", "de"]), index.retriever(langs="de")):
        retrieved = bm25(TOPICS)
        frame = candidates(TOPICS)
        if bm25.langs == ["de"]:
            frame = frame[frame["docno"].str.startswith("de_")]
        reranked = bm25(frame)
        got = dict(zip(zip(reranked["qid"], reranked["docno"]), reranked["score"]))
        for qid, docno, score in retrieved[["qid", "docno", "score"]].itertuples(index=False):
            assert got[(qid, docno)] == score  # bit for bit: the same model, the same query tokens
        unmatched = set(got) - set(zip(retrieved["qid"], retrieved["docno"]))
        assert unmatched and all(got[k] == 0.0 for k in unmatched)  # kept, with score 0


def test_rerank_returns_every_input_row_ranked(index):
    frame = candidates(TOPICS)
    out = index.retriever()(frame)
    assert list(out.columns) == ["qid", "query", "docno", "text", "score", "rank"]
    assert len(out) == len(frame)
    assert set(zip(out["qid"], out["docno"])) == set(zip(frame["qid"], frame["docno"]))
    assert out["qid"].drop_duplicates().tolist() == ["q1", "q2", "q3"]
    for qid, group in out.groupby("qid", sort=False):
        assert group["rank"].tolist() == list(range(len(group)))
        assert (np.diff(group["score"].to_numpy()) <= 0).all()
        zero = group[group["score"] == 0]
        order = frame[frame["qid"] == qid]["docno"].tolist()
        assert zero["docno"].tolist() == [d for d in order if d in set(zero["docno"])]  # ties: input order
    assert dict(zip(zip(out["qid"], out["docno"]), out["text"])) == dict(
        zip(zip(frame["qid"], frame["docno"]), frame["text"]))


def test_rerank_in_a_pipeline(index, first_stage):
    pipeline = first_stage % 2 >> index.retriever()
    out = pipeline(TOPICS)
    first = (first_stage % 2)(TOPICS)
    assert sorted(zip(out["qid"], out["docno"])) == sorted(zip(first["qid"], first["docno"]))
    assert list(out.columns) == RESULT_COLUMNS
    pd.testing.assert_frame_equal(out, pipeline(TOPICS))  # deterministic


@pytest.mark.parametrize("make", [rrf, linear_fusion], ids=["rrf", "linear_fusion"])
def test_fusion_of_rerankers_keeps_each_documents_columns(index, first_stage, make):
    frame = candidates(TOPICS)
    out = make(index.retriever(), first_stage)(frame)
    assert set(zip(out["qid"], out["docno"])) == set(zip(frame["qid"], frame["docno"]))
    if "text" in out.columns:  # rrf keeps only qid, query, docno, score, rank
        texts = dict(zip(zip(frame["qid"], frame["docno"]), frame["text"]))
        assert [texts[k] for k in zip(out["qid"], out["docno"])] == out["text"].tolist()


def test_rerank_num_results_and_cutoff(index):
    frame = candidates(TOPICS)
    out = index.retriever(num_results=2)(frame)
    assert out.groupby("qid").size().tolist() == [2, 2, 2]
    pd.testing.assert_frame_equal(out, (index.retriever() % 2).compile()(frame))


def test_rerank_query_without_known_tokens_keeps_input_order(index):
    frame = candidates(pd.DataFrame({"qid": ["q"], "query": ["zzzz"]}))
    out = index.retriever()(frame)
    assert out["docno"].tolist() == frame["docno"].tolist() and (out["score"] == 0).all()


def test_rerank_empty_result_frame(index):
    frame = candidates(TOPICS).iloc[:0]
    out = index.retriever()(frame)
    assert len(out) == 0 and list(out.columns) == ["qid", "query", "docno", "text", "score", "rank"]
    assert out["score"].dtype == np.float64 and out["rank"].dtype == np.int64


# -------------------------------------------------------------------------------------------- pt.inspect
def test_retriever_inspection(index):
    bm25 = index.retriever()
    assert pt.inspect.transformer_inputs(bm25) == [["qid", "query"], ["qid", "docno", "query"]]
    assert pt.inspect.transformer_outputs(bm25, ["qid", "query"]) == RESULT_COLUMNS
    assert pt.inspect.transformer_outputs(bm25, ["qid", "query", "lang"]) == ["qid", "query", "lang", "docno", "score",
                                                                             "rank"]
    assert pt.inspect.transformer_outputs(bm25, RESULT_COLUMNS) == RESULT_COLUMNS
    assert pt.inspect.subtransformers(bm25) == {}
    with pytest.raises(pt.validate.InputValidationError):
        pt.inspect.transformer_outputs(bm25, ["qid", "docno"])


def test_indexer_inspection(tmp_path):
    assert pt.inspect.indexer_inputs(BM25Indexer(tmp_path / "x")) == [["docno", "text"]]
    assert pt.inspect.indexer_inputs(BM25Indexer(tmp_path / "x", text_field="body")) == [["docno", "body"]]


class QueriesOnly(pt.Transformer):
    """A first-stage retriever that refuses result frames (as most dense retrievers do)."""

    def __init__(self, inner: pt.Transformer) -> None:
        self.inner = inner

    def transform(self, inp: pd.DataFrame) -> pd.DataFrame:
        pta.validate.query_frame(inp, extra_columns=["query"])
        return self.inner(inp)


def fusions(index, first_stage) -> dict[str, pt.Transformer]:
    with_text = first_stage >> pt.apply.generic(lambda df: df.assign(text="t"))
    return {
        "rrf": rrf(index.retriever(), first_stage),
        "rrf3": rrf(index.retriever(), first_stage, with_text, num_results=None),
        "linear": linear_fusion(index.retriever(), first_stage),
        "linear_text": linear_fusion(index.retriever(), with_text, weight=0.2, num_results=3),
        "linear_text_first": linear_fusion(with_text, index.retriever(), normalize=None),
        "minmax": PerQueryMinMax(),
        "check_run": _CheckRun("run 0"),
        "reranker": index.retriever(),
        "pipeline": first_stage % 2 >> index.retriever(),
    }


@pytest.mark.parametrize("name", ["rrf", "rrf3", "linear", "linear_text", "linear_text_first", "minmax",
                                  "check_run", "reranker", "pipeline"])
def test_declared_outputs_are_the_real_ones(index, first_stage, name):
    transformer = fusions(index, first_stage)[name]
    inputs = pt.inspect.transformer_inputs(transformer)
    assert inputs
    frames = {"Q": TOPICS, "R": first_stage(TOPICS), "R+text": candidates(TOPICS)}
    accepted = 0
    for frame in frames.values():
        for rows in (frame, frame.iloc[:0]):
            try:
                declared = pt.inspect.transformer_outputs(transformer, list(rows.columns))
            except pt.validate.InputValidationError:
                with pytest.raises((pt.validate.InputValidationError, ValueError)):
                    transformer(rows)
                continue
            assert declared == list(transformer(rows).columns)
            accepted += 1
    assert accepted >= 2


def test_fusion_inputs_and_subtransformers(index, first_stage):
    bm25 = index.retriever()
    fused = rrf(bm25, first_stage)
    assert pt.inspect.transformer_inputs(fused) == [["qid", "query"], ["qid", "query", "docno"]]
    assert pt.inspect.subtransformers(fused) == {"transformers": [bm25, first_stage]}
    lin = linear_fusion(bm25, first_stage)
    assert pt.inspect.transformer_inputs(lin) == [["qid", "query"], ["qid", "query", "docno"]]
    assert pt.inspect.subtransformers(lin) == {"a": bm25, "b": first_stage}
    assert pt.inspect.subtransformers(PerQueryMinMax()) == {}
    assert pt.inspect.transformer_inputs(PerQueryMinMax()) == [["qid", "docno", "score"]]
    assert pt.inspect.transformer_inputs(_CheckRun("x")) == [["qid", "docno", "score"]]
    # a retriever that only takes query frames leaves only the query-frame input to the fusion
    assert pt.inspect.transformer_inputs(rrf(bm25, QueriesOnly(first_stage))) == [["qid", "query"]]
    assert pt.inspect.transformer_inputs(linear_fusion(QueriesOnly(first_stage), bm25)) == [["qid", "query"]]
    with pytest.raises(pt.validate.InputValidationError):
        pt.inspect.transformer_outputs(lin, ["qid"])


def test_fusion_attributes_rebuild_it(index, first_stage):
    lin = linear_fusion(index.retriever(), first_stage, weight=0.25, num_results=5)
    again = pt.inspect.transformer_apply_attributes(lin, num_results=3)
    assert isinstance(again, LinearFusion) and (again.weight, again.num_results) == (0.25, 3)
    fused = rrf(index.retriever(), first_stage, k=10)
    again = pt.inspect.transformer_apply_attributes(fused, num_results=4)
    assert isinstance(again, RRF) and (again.k, again.num_results) == (10, 4)


# -------------------------------------------------------------------------------------------- artifacts
def test_new_index_carries_pt_meta(index):
    meta = json.loads((index.path / "pt_meta.json").read_text())
    assert meta == {"type": "sparse_index", "format": "hybrid_bm25", "package_hint": "pyterrier-hybrid"}
    assert pt.inspect.artifact_type_format(index) == ("sparse_index", "hybrid_bm25")
    assert isinstance(index, pt.Artifact)


LOAD_SCRIPT = """
import sys
import pandas as pd
import pyterrier as pt
# pt.hybrid (the pyterrier.modules entry point) imports the light package; the index module is loaded by
# pt.Artifact.load through the pyterrier.artifact entry point, not by the user.
assert "pyterrier_hybrid.bm25" not in sys.modules
index = pt.Artifact.load(sys.argv[1])
print(type(index).__module__ + "." + type(index).__name__)
topics = pd.read_json(sys.argv[2], orient="records", dtype=False)
print(index.retriever()(topics).to_json(orient="records", double_precision=15))
"""


def load_in_subprocess(path: Path, tmp_path: Path) -> tuple[str, pd.DataFrame]:
    topics = tmp_path / "topics.json"
    TOPICS.to_json(topics, orient="records")
    env = {**os.environ, "PYTERRIER_HOME": str(tmp_path / "pyterrier_home")}
    proc = subprocess.run([sys.executable, "-c", LOAD_SCRIPT, str(path), str(topics)], capture_output=True, text=True,
                          env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    cls, payload = proc.stdout.strip().splitlines()[-2:]
    return cls, pd.read_json(io.StringIO(payload), orient="records", dtype=False)


def test_pt_artifact_load_finds_the_index_without_importing_the_package(index, tmp_path):
    cls, res = load_in_subprocess(index.path, tmp_path)
    assert cls == "pyterrier_hybrid.bm25.BM25Index"
    expected = index.retriever()(TOPICS)
    assert res[["qid", "docno", "rank"]].to_dict("records") == expected[["qid", "docno", "rank"]].to_dict("records")
    np.testing.assert_allclose(res["score"], expected["score"], rtol=1e-12)


def test_index_without_pt_meta_still_opens(index, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(index.path, old)
    (old / "pt_meta.json").unlink()
    pd.testing.assert_frame_equal(BM25Index(old).retriever()(TOPICS), index.retriever()(TOPICS))
    pd.testing.assert_frame_equal(BM25Index.load(str(old)).retriever()(TOPICS), index.retriever()(TOPICS))
    assert not (old / "pt_meta.json").exists()  # opening never writes into the index
    # pt.Artifact.load needs pt_meta.json to pick the class: a package of the old index carries it
    meta: dict = {}
    BM25Index(old).build_package(str(tmp_path / "old.tar.lz4"), metadata_out=meta, verbose=False)
    assert (meta["type"], meta["format"], meta["package_hint"]) == ("sparse_index", "hybrid_bm25", "pyterrier-hybrid")


def test_pt_meta_of_another_artifact_is_refused(index, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(index.path, other)
    (other / "pt_meta.json").write_text(json.dumps({"type": "dense_index", "format": "flex"}))
    with pytest.raises(ValueError, match="'dense_index'.'flex' artifact") as info:
        BM25Index(other)
    assert "\n" not in str(info.value)
    (other / "pt_meta.json").write_text('{"type": "sparse_in')
    with pytest.raises(ValueError, match="pt_meta.json .* is not valid JSON"):
        BM25Index(other)


def test_package_round_trip(index, tmp_path, pt_home):
    meta: dict = {}
    package = index.build_package(str(tmp_path / "bm25.tar.lz4"), metadata_out=meta, verbose=False)
    assert meta == {"type": "sparse_index", "format": "hybrid_bm25", "package_hint": "pyterrier-hybrid"}
    sidecar = json.loads(Path(f"{package}.json").read_text())
    packaged = {c["path"] for c in sidecar["contents"]}
    on_disk = {str(p.relative_to(index.path)) for p in index.path.rglob("*") if p.is_file()}
    assert packaged == on_disk
    expected = index.retriever()(TOPICS)
    for url in (package, Path(package).as_uri()):
        unpacked = BM25Index.from_url(url, expected_sha256=sidecar["expected_sha256"])
        assert isinstance(unpacked, BM25Index) and unpacked.path.parent == pt_home / "artifacts"
        pd.testing.assert_frame_equal(unpacked.retriever()(TOPICS), expected)
    assert len([p for p in (pt_home / "artifacts").iterdir() if p.is_dir()]) == 1  # unpacked once
    # the unpacked folder is an artifact pt.Artifact.load recognises
    assert isinstance(pt.Artifact.load(str(unpacked.path)), BM25Index)
    # a folder is opened in place
    assert BM25Index.from_url(str(index.path)).path == index.path


def test_segmented_package_round_trip(index, tmp_path, pt_home):
    package = index.build_package(str(tmp_path / "bm25.tar.lz4"), max_file_size=500, verbose=False)
    assert not Path(package).exists() and Path(f"{package}.1").exists()
    pd.testing.assert_frame_equal(BM25Index.from_url(package).retriever()(TOPICS), index.retriever()(TOPICS))


def test_bad_packages_are_refused_before_unpacking(index, tmp_path, pt_home):
    package = Path(index.build_package(str(tmp_path / "bm25.tar.lz4"), verbose=False))
    with pytest.raises(ValueError, match="SHA-256 .* but expected_sha256 expects 00ff"):
        BM25Index.from_url(str(package), expected_sha256="00ff")
    truncated = tmp_path / "truncated.tar.lz4"
    truncated.write_bytes(package.read_bytes()[:-100])
    shutil.copyfile(f"{package}.json", f"{truncated}.json")
    with pytest.raises(ValueError, match="truncated.tar.lz4.json expects"):
        BM25Index.from_url(str(truncated))
    with pytest.raises(FileNotFoundError, match="no BM25 index package at"):
        BM25Index.from_url(str(tmp_path / "missing.tar.lz4"))
    assert not (pt_home / "artifacts").exists() or not any((pt_home / "artifacts").iterdir())
    (tmp_path / "junk.tar.lz4").write_bytes(b"not an lz4 stream")
    with pytest.raises(ValueError, match="cannot unpack .*junk.tar.lz4"):
        BM25Index.from_url(str(tmp_path / "junk.tar.lz4"))
    assert not [p for p in (pt_home / "artifacts").iterdir() if p.is_dir()]  # nothing half-unpacked is left
