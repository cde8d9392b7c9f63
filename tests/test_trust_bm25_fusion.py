"""Bad inputs and faults for BM25 (index, retrieval) and rank fusion: one clear line, or the correct result."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pyterrier as pt
import pytest
from trust import Case, ids, run_case

from pyterrier_hybrid._checks import NonFiniteError, TextError
from pyterrier_hybrid.bm25 import BM25Index, BM25Indexer, BM25Retriever, Tokenizer, make_tokenizer
from pyterrier_hybrid.fusion import LinearFusion, PerQueryMinMax, linear_fusion, rrf

ROOT = Path(__file__).resolve().parents[1]

DOCS = pd.DataFrame(
    {
        "docno": ["en_0", "en_1", "de_0", "de_1"],
        "text": ["London is the capital of England", "Rivers flow into the sea",
                 "Berlin ist die Hauptstadt von Deutschland", "Der Rhein fließt durch Städte"],
    }
)
QUERIES = pd.DataFrame({"qid": ["q1", "q2"], "query": ["capital of England", "Hauptstadt Deutschland"]})

# Two corpora with disjoint docnos: a search for "apple" tells which of them an index holds.
OLD = [{"docno": "old_a", "text": "apple pie"}, {"docno": "old_b", "text": "pear tart"}]
NEW = [{"docno": "new_a", "text": "apple juice"}, {"docno": "new_b", "text": "apple cider"},
       {"docno": "new_c", "text": "grape"}]


# ------------------------------------------------------------------------------------------------ helpers
def docs(*rows: tuple[Any, Any]) -> list[dict[str, Any]]:
    return [{"docno": d, "text": t} for d, t in rows]


def build(ctx, corpus, **kwargs) -> BM25Index:
    return BM25Indexer(ctx.fresh(), **kwargs).index(corpus)


def search(path: Path, query: str = "apple") -> set[str]:
    res = BM25Index(path).retriever()(pd.DataFrame({"qid": ["q"], "query": [query]}))
    return set(res["docno"])


def leftovers(path: Path) -> list[str]:
    """Hidden siblings of ``path`` (temporary or set-aside folders of a build)."""
    return sorted(p.name for p in path.parent.iterdir() if p.name.startswith(f".{path.name}."))


def queries(*rows: tuple[Any, Any]) -> pd.DataFrame:
    return pd.DataFrame({"qid": [q for q, _ in rows], "query": [t for _, t in rows]})


class ExplodingTokenizer(Tokenizer):
    """A tokenizer that must never be reached (input checks come first)."""

    name = "exploding"

    def tokenize(self, texts):
        raise AssertionError("the tokenizer ran before the input was checked")


class FailingTokenizer(Tokenizer):
    """Tokenizes the first batch, then fails: a build that dies midway."""

    name = "failing"

    def tokenize(self, texts):
        raise RuntimeError("tokenizer crashed")


def unreadable_corpus():
    raise AssertionError("the corpus was read before the output path was checked")
    yield  # pragma: no cover


def copy_index(ctx) -> Path:
    dest = ctx.fresh()
    shutil.copytree(ctx.index.path, dest)
    return dest


def corrupt(ctx, name: str, text: str) -> Path:
    path = copy_index(ctx)
    (path / name).write_text(text, encoding="utf-8")
    return path


def retrieve_from(path: Path) -> pd.DataFrame:
    return BM25Retriever(path)(QUERIES)


def nan_in_model(ctx) -> pd.DataFrame:
    path = copy_index(ctx)
    data_file = path / "pooled" / "data.csc.index.npy"
    data = np.load(data_file)
    data[:] = np.nan
    np.save(data_file, data)
    return retrieve_from(path)


def truncated_model(ctx) -> pd.DataFrame:
    path = copy_index(ctx)
    data_file = path / "pooled" / "data.csc.index.npy"
    data_file.write_bytes(data_file.read_bytes()[:40])
    return retrieve_from(path)


def failed_overwrite(ctx) -> tuple[Path, BaseException]:
    path = ctx.fresh()
    BM25Indexer(path).index(OLD)
    try:
        BM25Indexer(path, overwrite=True, tokenizer=FailingTokenizer()).index(NEW)
    except RuntimeError as e:
        return path, e
    raise AssertionError("the failing build did not fail")


def refused_corpus(ctx) -> Path:
    path = ctx.fresh()
    with pytest.raises(TextError):
        BM25Indexer(path).index(docs(("a", "x"), ("b", None)))
    return path


def other_folder(ctx) -> Path:
    path = ctx.fresh()
    path.mkdir()
    (path / "thesis.tex").write_text("precious", encoding="utf-8")
    return path


def overwrite_other_folder(ctx) -> str:
    path = other_folder(ctx)
    with pytest.raises(FileExistsError):
        BM25Indexer(path, overwrite=True).index(OLD)
    return (path / "thesis.tex").read_text(encoding="utf-8")


def results(*rows: tuple[Any, Any, Any]) -> pd.DataFrame:
    """A result frame to re-rank: (qid, query, docno) rows."""
    return pd.DataFrame({"qid": [q for q, _, _ in rows], "query": [t for _, t, _ in rows],
                         "docno": [d for _, _, d in rows]})


def rerank_without_models(ctx, frame: pd.DataFrame, **kwargs: Any) -> pd.DataFrame:
    """Re-rank ``frame`` with an index whose models must not be loaded (the input is refused first)."""
    index = BM25Index(ctx.index.path)

    def no_model(lang=None):
        raise AssertionError("a model was loaded before the result frame was checked")

    index.model = no_model  # type: ignore[method-assign]
    return index.retriever(**kwargs)(frame)


def rerank_with_nan_model(ctx) -> pd.DataFrame:
    path = copy_index(ctx)
    data_file = path / "pooled" / "data.csc.index.npy"
    np.save(data_file, np.full_like(np.load(data_file), np.nan))
    return BM25Retriever(path)(results(("q1", "capital", "en_1"), ("q1", "capital", "en_0")))


def check_rerank_zero(res: pd.DataFrame, ctx) -> None:
    assert res["docno"].tolist() == ["en_0", "de_1", "en_1"]
    assert res["score"].iloc[0] > 0 and (res["score"].iloc[1:] == 0).all()


def queries_checked_before_scoring(ctx) -> pd.DataFrame:
    index = BM25Index(ctx.index.path)

    def no_model(lang=None):
        raise AssertionError("a model was loaded before the queries were checked")

    index.model = no_model  # type: ignore[method-assign]
    return index.retriever()(queries(("q1", "capital"), ("q2", None)))


# ---------------------------------------------------------------------------------- kill -9 (subprocess)
KILL_SCRIPT = """
import json, os, signal, sys
from pathlib import Path
from pyterrier_hybrid import _io
import pyterrier_hybrid.bm25 as bm25

mode, path, corpus = sys.argv[1], Path(sys.argv[2]), json.loads(sys.argv[3])
die = lambda: os.kill(os.getpid(), signal.SIGKILL)
if mode == "exchange":  # the kernel swapped the folders, the process dies before removing the old one
    real = _io._exchange
    def exchange(a, b):
        done = real(a, b)
        (path.parent / "exchanged").write_text(json.dumps(done))
        die()
    _io._exchange = exchange
elif mode == "rename":  # no atomic exchange: killed after the old folder was moved aside, before the new came in
    _io._exchange = lambda a, b: False
    real_rename = os.rename
    def rename(src, dst):
        real_rename(src, dst)
        if Path(src) == path:
            die()
    os.rename = rename
elif mode == "build":  # killed while the new index is half written
    bm25._build_model = lambda tokens, params: die()
bm25.BM25Indexer(path, overwrite=True).index(corpus)
"""


def killed_build(ctx, mode: str) -> Path:
    """Build OLD at a fresh path, then overwrite it with NEW in a subprocess that SIGKILLs itself at ``mode``."""
    path = ctx.fresh() / "index"
    BM25Indexer(path).index(OLD)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", KILL_SCRIPT, mode, str(path), json.dumps(NEW)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, f"the build was not killed ({proc.returncode}): {proc.stderr[-2000:]}"
    return path


def check_killed_after_exchange(path: Path, ctx) -> None:
    exchanged = json.loads((path.parent / "exchanged").read_text())
    (path.parent / "exchanged").unlink()
    # renameat2 swapped the folders when supported: the new index is in; otherwise nothing moved yet.
    assert search(path) == ({"new_a", "new_b"} if exchanged else {"old_a"})
    assert leftovers(path), "the killed build left nothing behind (was it killed at the swap?)"
    BM25Indexer(path, overwrite=True).index(NEW)  # the next build removes the dead build's leftovers
    assert leftovers(path) == [] and search(path) == {"new_a", "new_b"}


def check_killed_between_renames(path: Path, ctx) -> None:
    assert not path.exists() and any(".old-" in name for name in leftovers(path))
    with pytest.raises(FileExistsError, match="already exists"):  # the next build puts the old index back first
        BM25Indexer(path).index(NEW)
    assert search(path) == {"old_a"} and leftovers(path) == []
    BM25Indexer(path, overwrite=True).index(NEW)
    assert search(path) == {"new_a", "new_b"} and leftovers(path) == []


def check_reader_restores(path: Path, ctx) -> None:
    assert not path.exists()
    assert search(path) == {"old_a"}  # opening the index puts the set-aside old folder back
    assert leftovers(path) == []


def check_killed_mid_build(path: Path, ctx) -> None:
    assert search(path) == {"old_a"}  # untouched
    assert leftovers(path), "the killed build left no temporary folder (was it killed while building?)"
    BM25Indexer(path, overwrite=True).index(NEW)
    assert leftovers(path) == [] and search(path) == {"new_a", "new_b"}


# ----------------------------------------------------------------------------------------------- fusion
RUN_A = pd.DataFrame({"qid": ["q1", "q1", "q2"], "query": ["first", "first", "second"],
                      "docno": ["d1", "d2", "d1"], "score": [3.0, 2.0, 5.0]})
RUN_B = pd.DataFrame({"qid": ["q1", "q1", "q2"], "query": ["first", "first", "second"],
                      "docno": ["d2", "d3", "d2"], "score": [0.9, 0.1, 1.0]})
TOPICS = pd.DataFrame({"qid": ["q1", "q2"], "query": ["first", "second"]})


def src(df: pd.DataFrame) -> pt.Transformer:
    return pt.Transformer.from_df(df.copy())


def with_score(run: pd.DataFrame, row: int, value: Any) -> pd.DataFrame:
    run = run.copy()
    run["score"] = run["score"].astype(object if isinstance(value, str) else np.float64)
    run.loc[row, "score"] = value
    return run


def repeated_docno(run: pd.DataFrame) -> pd.DataFrame:
    return pd.concat([run, run.iloc[[1]].assign(score=0.5)], ignore_index=True)


def scores_of(res: pd.DataFrame) -> dict[tuple[str, str], float]:
    return {(q, d): s for q, d, s in res[["qid", "docno", "score"]].itertuples(index=False)}


def check_query_spelling(res: pd.DataFrame, ctx) -> None:
    assert not res.duplicated(["qid", "docno"]).any()
    assert scores_of(res)[("q1", "d2")] == pytest.approx(1 / 62 + 1 / 61)
    assert res.loc[res["qid"] == "q1", "query"].unique().tolist() == ["first"]


def check_empty_fusion(res: pd.DataFrame, ctx) -> None:
    assert len(res) == 0 and {"qid", "docno", "score", "rank"} <= set(res.columns)


def check_same_docno_other_query(res: pd.DataFrame, ctx) -> None:
    assert scores_of(res)[("q1", "d1")] == pytest.approx(1 / 61)
    assert scores_of(res)[("q2", "d1")] == pytest.approx(1 / 61)  # the same docno under another qid: its own
    assert scores_of(res)[("q1", "d2")] == pytest.approx(1 / 62 + 1 / 61)


# ------------------------------------------------------------------------------------------------ cases
def same_index_twice(ctx) -> tuple[pd.DataFrame, pd.DataFrame]:
    tied = pd.DataFrame({"docno": [f"d{i}" for i in range(6)], "text": ["apple"] * 6})
    a, b = build(ctx, tied), build(ctx, tied.to_dict("records"))
    q = queries(("q", "apple"))
    return a.retriever(num_results=3)(q), b.retriever(num_results=3)(q)


def check_same_results(result, ctx) -> None:
    first, second = result
    pd.testing.assert_frame_equal(first, second)
    assert first["docno"].tolist() == ["d0", "d1", "d2"]  # equal scores: ties in index order


def check_empty_text_doc(index: BM25Index, ctx) -> None:
    assert len(index) == 3
    res = index.retriever()(queries(("q", "apple")))
    assert res["docno"].tolist() == ["a"]


def check_punctuation_language(index: BM25Index, ctx) -> None:
    assert index.langs == ["de", "en"]
    assert len(index.retriever(langs="de")(queries(("q", "apple")))) == 0
    assert index.retriever(langs="en")(queries(("q", "apple")))["docno"].tolist() == ["en_a"]


def check_repeated_qid(res: pd.DataFrame, ctx) -> None:
    once = ctx.index.retriever()(QUERIES.iloc[:1])
    pd.testing.assert_frame_equal(res, once)


CASES = [
    # -- documents: the missing-text policy, on both input paths
    Case("BM25Indexer: NaN text via iter-dicts", lambda c: build(c, docs(("en_0", "a b"), ("en_1", float("nan")))),
         TextError, r"'text' of docno 'en_1' is missing \(nan\)"),
    Case("BM25Indexer: None text via iter-dicts", lambda c: build(c, docs(("en_0", None))),
         TextError, r"'text' of docno 'en_0' is missing \(None\)"),
    Case("BM25Indexer: NaN text in a DataFrame",
         lambda c: build(c, pd.DataFrame({"docno": ["x", "y"], "text": ["a b", np.nan]})),
         TextError, r"'text' of docno 'y' is missing"),
    Case("BM25Indexer: pd.NA text in a DataFrame",
         lambda c: build(c, pd.DataFrame({"docno": ["x", "y"], "text": pd.array(["a", pd.NA], dtype="string")})),
         TextError, r"'text' of docno 'y' is missing"),
    Case("BM25Indexer: bytes text", lambda c: build(c, docs(("x", b"caf\xc3\xa9"))), TextError, r"docno 'x' is bytes"),
    Case("BM25Indexer: lone surrogate in a text", lambda c: build(c, docs(("x", "caf\udce9"))),
         TextError, "surrogate"),
    Case("BM25Indexer: a number as text", lambda c: build(c, docs(("x", 42))), TextError, r"docno 'x' is an int"),
    Case("BM25Indexer: missing text names the custom text_field",
         lambda c: build(c, [{"docno": "x", "body": None}], text_field="body"), TextError, r"'body' of docno 'x'"),
    Case("BM25Indexer: NaN text refused before tokenizing",
         lambda c: build(c, docs(("x", "a"), ("y", np.nan)), tokenizer=ExplodingTokenizer()), TextError, "docno 'y'"),
    Case("BM25Indexer: a refused corpus leaves no folder behind", refused_corpus,
         check=lambda path, c: (not path.exists() and leftovers(path) == []) or pytest.fail(str(leftovers(path)))),
    Case("BM25Indexer: empty-string text is a document without words",
         lambda c: build(c, docs(("a", "apple"), ("b", ""), ("c", "pear")), tokenizer="regex"),
         check=check_empty_text_doc),
    Case("BM25Indexer: every text empty", lambda c: build(c, docs(("a", ""), ("b", "!?"))),
         ValueError, "gives a single token"),
    Case("BM25Indexer: a language whose only document is punctuation",
         lambda c: build(c, docs(("en_a", "apple"), ("en_b", "pear"), ("de_a", "…!")), tokenizer="regex"),
         check=check_punctuation_language),
    # -- docnos
    Case("BM25Indexer: None docno", lambda c: build(c, docs(("a", "x"), (None, "y"))),
         TextError, r"docno of document #1 is missing .*astype\(str\)"),
    Case("BM25Indexer: NaN docno in a DataFrame",
         lambda c: build(c, pd.DataFrame({"docno": ["a", np.nan], "text": ["x", "y"]})),
         TextError, r"docno of document #1 is missing"),
    Case("BM25Indexer: integer docno", lambda c: build(c, docs((7, "x"))), TextError, r"is an int \(7\)"),
    Case("BM25Indexer: empty-string docno", lambda c: build(c, docs(("", "x"))), TextError, "empty string"),
    Case("BM25Indexer: duplicate docnos", lambda c: build(c, docs(("a", "x"), ("b", "y"), ("a", "z"))),
         ValueError, r"repeats docno 'a'"),
    Case("BM25Indexer: empty corpus", lambda c: build(c, []), ValueError, "empty corpus"),
    Case("BM25Indexer: empty DataFrame", lambda c: build(c, DOCS.iloc[:0]), ValueError, "empty corpus"),
    Case("BM25Indexer: corpus given as a path string", lambda c: build(c, "corpus.jsonl"), TypeError,
         "iter-dicts .* got a str"),
    Case("BM25Indexer: a document that is a tuple", lambda c: build(c, [("a", "x")]), TypeError, "not a dict"),
    Case("BM25Indexer: a document without the text field", lambda c: build(c, [{"docno": "a", "body": "x"}]),
         KeyError, "text_field="),
    # -- parameters (checked at construction, before any document is read)
    Case("BM25Indexer: k1=-1", lambda c: BM25Indexer(c.fresh(), k1=-1), ValueError, "k1 must be >= 0"),
    Case("BM25Indexer: k1=NaN", lambda c: BM25Indexer(c.fresh(), k1=float("nan")), ValueError, "k1 must be a finite"),
    Case("BM25Indexer: k1=inf", lambda c: BM25Indexer(c.fresh(), k1=float("inf")), ValueError, "finite"),
    Case("BM25Indexer: b=5", lambda c: BM25Indexer(c.fresh(), b=5), ValueError, r"b must be in \[0, 1\]"),
    Case("BM25Indexer: b=-0.1", lambda c: BM25Indexer(c.fresh(), b=-0.1), ValueError, r"b must be in \[0, 1\]"),
    Case("BM25Indexer: k1 as a string", lambda c: BM25Indexer(c.fresh(), k1="1.2"), ValueError, "finite number"),
    Case("BM25Indexer: unknown method", lambda c: BM25Indexer(c.fresh(), method="bm26"), ValueError,
         "unknown method 'bm26'.*lucene"),
    Case("BM25Indexer: bm25+ with k1=0 (would score NaN)", lambda c: BM25Indexer(c.fresh(), method="bm25+", k1=0),
         ValueError, "k1 > 0"),
    Case("BM25Indexer: k1=0 with lucene gives finite binary scores",
         lambda c: build(c, DOCS, k1=0).retriever()(QUERIES),
         check=lambda res, c: (len(res) > 0 and np.isfinite(res["score"]).all()) or pytest.fail("no results")),
    Case("BM25Indexer: ngram=0", lambda c: BM25Indexer(c.fresh(), ngram=0), ValueError, "ngram must be an int >= 1"),
    Case("BM25Indexer: ngram=2.5", lambda c: BM25Indexer(c.fresh(), ngram=2.5), ValueError, r"2\.5 \(float\)"),
    Case("BM25Indexer: ngram=True", lambda c: BM25Indexer(c.fresh(), ngram=True), ValueError, r"True \(bool\)"),
    Case("make_tokenizer: ngram=True", lambda c: make_tokenizer("ngram", ngram=True), ValueError, "bool"),
    Case("BM25Indexer: per_lang='yes'", lambda c: BM25Indexer(c.fresh(), per_lang="yes"), ValueError, "per_lang"),
    Case("BM25Retriever: num_results=2.5", lambda c: c.index.retriever(num_results=2.5), ValueError,
         r"num_results must be an int >= 1, got 2\.5"),
    Case("BM25Retriever: num_results=True", lambda c: c.index.retriever(num_results=True), ValueError, "bool"),
    Case("BM25Retriever: num_results=-3", lambda c: BM25Retriever(c.index, num_results=-3), ValueError, "-3"),
    Case("BM25Retriever: num_results as numpy int", lambda c: c.index.retriever(num_results=np.int64(1))(QUERIES),
         check=lambda res, c: res.groupby("qid").size().eq(1).all() or pytest.fail(str(res))),
    # -- the output path
    Case("BM25Indexer: existing index without overwrite", lambda c: BM25Indexer(c.index.path).index(DOCS),
         FileExistsError, "already exists; pass overwrite=True"),
    Case("BM25Indexer: existing path refused before the corpus is read",
         lambda c: BM25Indexer(c.index.path).index(unreadable_corpus()), FileExistsError, "overwrite=True"),
    Case("BM25Indexer: overwrite=True on a folder of other files",
         lambda c: BM25Indexer(other_folder(c), overwrite=True).index(OLD), FileExistsError,
         "not a BM25 index; it is never replaced"),
    Case("BM25Indexer: a refused overwrite leaves the other files intact", overwrite_other_folder,
         check=lambda text, c: text == "precious" or pytest.fail(text)),
    Case("BM25Indexer: overwrite=True on a corrupt index is refused",
         lambda c: BM25Indexer(corrupt(c, "manifest.json", "{\"format\": "), overwrite=True).index(OLD),
         FileExistsError, "never replaced"),
    Case("BM25Indexer: output path is a file",
         lambda c: BM25Indexer(c.file, overwrite=True).index(OLD),
         FileExistsError, "is a file"),
    Case("BM25Indexer: output path below a file", lambda c: BM25Indexer(c.file / "sub" / "idx").index(OLD),
         NotADirectoryError, "is a file, not a folder"),
    Case("BM25Indexer: a build that fails midway keeps the old index", failed_overwrite,
         check=lambda r, c: (search(r[0]) == {"old_a"} and leftovers(r[0]) == []) or pytest.fail(str(r))),
    Case("BM25Indexer: overwrite=True replaces the index whole",
         lambda c: BM25Indexer(copy_index(c), overwrite=True).index(NEW).path,
         check=lambda path, c: (search(path) == {"new_a", "new_b"} and leftovers(path) == []) or pytest.fail()),
    Case("BM25Indexer: kill -9 right after the atomic exchange", lambda c: killed_build(c, "exchange"),
         check=check_killed_after_exchange),
    Case("BM25Indexer: kill -9 between the two renames of the fallback swap", lambda c: killed_build(c, "rename"),
         check=check_killed_between_renames),
    Case("BM25Index: opening an index whose fallback swap was killed restores it", lambda c: killed_build(c, "rename"),
         check=check_reader_restores),
    Case("BM25Indexer: kill -9 while the new index is being written", lambda c: killed_build(c, "build"),
         check=check_killed_mid_build),
    Case("BM25Indexer: same corpus twice gives the same numbers", same_index_twice, check=check_same_results),
    # -- corrupt or truncated index files
    Case("BM25Index: truncated manifest.json", lambda c: BM25Index(corrupt(c, "manifest.json", '{"format": "pyt')),
         ValueError, r"manifest.json \(index manifest\) is not valid JSON .*rebuild the index"),
    Case("BM25Index: manifest.json without num_docs",
         lambda c: BM25Index(corrupt(c, "manifest.json", json.dumps(
             {k: v for k, v in c.index.manifest.items() if k != "num_docs"}))),
         ValueError, "malformed fields .*rebuild"),
    Case("BM25Index: manifest.json is a list", lambda c: BM25Index(corrupt(c, "manifest.json", "[1, 2]")),
         ValueError, "index, not a 'pyterrier_hybrid.bm25' one"),
    Case("BM25Index: manifest of a newer format version",
         lambda c: BM25Index(corrupt(c, "manifest.json", json.dumps({**c.index.manifest, "version": 99}))),
         ValueError, "format version 99"),
    Case("BM25Index: manifest counts disagree with its languages",
         lambda c: BM25Index(corrupt(c, "manifest.json", json.dumps({**c.index.manifest, "num_docs": 9}))),
         ValueError, "counts 4 documents over its languages but num_docs is 9"),
    Case("BM25Retriever: truncated docnos.json", lambda c: retrieve_from(corrupt(c, "docnos.json", '["en_0", "en')),
         ValueError, r"docnos.json \(docno list\) is not valid JSON"),
    Case("BM25Retriever: docnos.json shorter than the manifest",
         lambda c: retrieve_from(corrupt(c, "docnos.json", '["en_0", "en_1", "de_0"]')),
         ValueError, "holds 3 docnos but manifest.json says 4"),
    Case("BM25Retriever: docnos.json deleted",
         lambda c: (lambda p: ((p / "docnos.json").unlink(), retrieve_from(p)))(copy_index(c)),
         FileNotFoundError, "docnos.json is missing"),
    Case("BM25Retriever: truncated bm25s model file", truncated_model, ValueError,
         "cannot read the bm25s model in .*pooled"),
    Case("BM25Retriever: NaN statistics in the model files", nan_in_model, NonFiniteError,
         r"BM25 scores of qid 'q1' hold NaN"),
    # -- queries
    Case("BM25Retriever: None query text", lambda c: c.index.retriever()(queries(("q1", "capital"), ("q2", None))),
         TextError, r"'query' of qid 'q2' is missing"),
    Case("BM25Retriever: NaN query text",
         lambda c: c.index.retriever()(queries(("q1", float("nan")), ("q2", "capital"))),
         TextError, r"'query' of qid 'q1' is missing \(nan\)"),
    Case("BM25Retriever: bytes query text", lambda c: c.index.retriever()(queries(("q1", b"capital"))),
         TextError, r"qid 'q1' is bytes"),
    Case("BM25Retriever: numeric query text", lambda c: c.index.retriever()(queries(("q1", 3.5))),
         TextError, r"qid 'q1' is a float"),
    Case("BM25Retriever: bad query refused before any model is loaded", queries_checked_before_scoring,
         TextError, "qid 'q2'"),
    Case("BM25Retriever: one qid with two different texts",
         lambda c: c.index.retriever()(queries(("q1", "capital"), ("q1", "Hauptstadt"))),
         ValueError, r"qid 'q1' has two different query texts \('capital' and 'Hauptstadt'"),
    Case("BM25Retriever: one qid repeated with the same text is answered once",
         lambda c: c.index.retriever()(pd.concat([QUERIES.iloc[:1]] * 3, ignore_index=True)),
         check=check_repeated_qid),
    Case("BM25Retriever: query row without qid", lambda c: c.index.retriever()(queries((None, "capital"))),
         ValueError, "row 0 of the query frame has no qid"),
    Case("BM25Retriever: query frame without a query column",
         lambda c: c.index.retriever()(pd.DataFrame({"qid": ["q1"]})), Exception, "query"),
    Case("BM25Retriever: empty query frame", lambda c: c.index.retriever()(QUERIES.iloc[:0]),
         check=lambda res, c: (len(res) == 0 and list(res.columns) == ["qid", "query", "docno", "score", "rank"])
         or pytest.fail(str(res.columns))),
    Case("BM25Retriever: empty-string query finds nothing", lambda c: c.index.retriever()(queries(("q1", ""))),
         check=lambda res, c: len(res) == 0 or pytest.fail(str(res))),
    # -- re-ranking a result frame
    Case("BM25Retriever re-rank: a docno the index does not hold (refused before any model is loaded)",
         lambda c: rerank_without_models(c, results(("q1", "capital", "en_0"), ("q1", "capital", "fr_9"))),
         ValueError, r"docno 'fr_9' of qid 'q1' is not in the BM25 index .*\(1 of 2 rows in all\)"),
    Case("BM25Retriever re-rank: an integer docno",
         lambda c: rerank_without_models(c, results(("q1", "capital", 7))), ValueError,
         r"\(a int64; docnos are str\) of qid 'q1' is not in the BM25 index"),
    Case("BM25Retriever re-rank: a row without docno",
         lambda c: rerank_without_models(c, results(("q1", "capital", "en_0"), ("q1", "capital", None))),
         ValueError, r"row 1 \(qid 'q1'\) of the result frame has no docno"),
    Case("BM25Retriever re-rank: a docno twice for one query",
         lambda c: rerank_without_models(c, results(("q1", "capital", "en_0"), ("q1", "capital", "en_0"))),
         ValueError, r"gives docno 'en_0' more than once for qid 'q1'"),
    Case("BM25Retriever re-rank: a document outside the language filter",
         lambda c: rerank_without_models(c, results(("q1", "capital", "en_0"), ("q1", "capital", "de_0")),
                                         langs="en"),
         ValueError, r"docno 'de_0' of qid 'q1' is not of the language\(s\) \['en'\]"),
    Case("BM25Retriever re-rank: missing query text (refused before any model is loaded)",
         lambda c: rerank_without_models(c, results(("q1", None, "en_0"))), TextError, r"'query' of qid 'q1'"),
    Case("BM25Retriever re-rank: one qid with two query texts",
         lambda c: c.index.retriever()(results(("q1", "capital", "en_0"), ("q1", "Rhein", "de_1"))),
         ValueError, "qid 'q1' has two different query texts"),
    Case("BM25Retriever re-rank: a result frame without query column",
         lambda c: c.index.retriever()(results(("q1", "capital", "en_0")).drop(columns=["query"])), Exception, "query"),
    Case("BM25Retriever re-rank: NaN statistics in the model files", rerank_with_nan_model, NonFiniteError,
         r"BM25 scores of qid 'q1' hold NaN .*\(docno 'en_0'\)"),  # en_1 has no query token: 0, no statistic
    Case("BM25Retriever re-rank: documents without a query token stay, with score 0, in input order",
         lambda c: c.index.retriever()(results(("q1", "capital England", "de_1"), ("q1", "capital England", "en_1"),
                                               ("q1", "capital England", "en_0"))),
         check=check_rerank_zero),
    # -- fusion
    Case("rrf: NaN score in the second run", lambda c: rrf(src(RUN_A), src(with_score(RUN_B, 1, np.nan)))(TOPICS),
         NonFiniteError, r"scores of run 1 .* hold NaN or infinity .*qid 'q1'"),
    Case("rrf: infinite score", lambda c: rrf(src(with_score(RUN_A, 2, np.inf)), src(RUN_B))(TOPICS),
         NonFiniteError, r"run 0 .*qid 'q2'"),
    Case("linear_fusion: NaN score in the first run",
         lambda c: linear_fusion(src(with_score(RUN_A, 0, np.nan)), src(RUN_B))(TOPICS),
         NonFiniteError, r"scores of run 0 .*qid 'q1'"),
    Case("linear_fusion: -inf score with raw scores",
         lambda c: linear_fusion(src(RUN_A), src(with_score(RUN_B, 2, -np.inf)), normalize=None)(TOPICS),
         NonFiniteError, r"run 1 .*qid 'q2'"),
    Case("PerQueryMinMax: NaN score", lambda c: PerQueryMinMax()(with_score(RUN_A, 1, np.nan)), NonFiniteError,
         r"PerQueryMinMax .*qid 'q1'"),
    Case("rrf: scores that are strings", lambda c: rrf(src(with_score(RUN_A, 0, "high")))(TOPICS), ValueError,
         "scores of run 0 .* are not numbers"),
    Case("rrf: a docno repeated within one query of one run",
         lambda c: rrf(src(RUN_A), src(repeated_docno(RUN_B)))(TOPICS),
         ValueError, r"run 1 .*ranks docno 'd3' more than once for qid 'q1'"),
    Case("linear_fusion: a docno repeated within one query",
         lambda c: linear_fusion(src(repeated_docno(RUN_A)), src(RUN_B))(TOPICS),
         ValueError, r"run 0 .*docno 'd2' more than once for qid 'q1'"),
    Case("rrf: the same docno in two queries is fine", lambda c: rrf(src(RUN_A), src(RUN_B))(TOPICS),
         check=check_same_docno_other_query),
    Case("rrf: a run row without docno",
         lambda c: rrf(src(RUN_A.assign(docno=["d1", None, "d1"])))(TOPICS), ValueError, "without docno"),
    Case("rrf: a run without a score column", lambda c: rrf(src(RUN_A.drop(columns=["score"])))(TOPICS),
         ValueError, r"run 0 .* lacks column\(s\) \['score'\]"),
    Case("rrf: two runs spell one query differently",
         lambda c: rrf(src(RUN_A), src(RUN_B.assign(query=["First", "First", "second"])))(TOPICS),
         check=check_query_spelling),
    Case("rrf: k=NaN", lambda c: rrf(src(RUN_A), k=float("nan")), ValueError, "k must be a finite number"),
    Case("rrf: k=inf", lambda c: rrf(src(RUN_A), k=float("inf")), ValueError, "finite"),
    Case("rrf: k=-1", lambda c: rrf(src(RUN_A), k=-1), ValueError, "k must be >= 0"),
    Case("rrf: k as a string", lambda c: rrf(src(RUN_A), k="60"), ValueError, "finite number"),
    Case("rrf: num_results=2.5", lambda c: rrf(src(RUN_A), num_results=2.5), ValueError, r"2\.5 \(float\)"),
    Case("rrf: num_results=True", lambda c: rrf(src(RUN_A), num_results=True), ValueError, r"True \(bool\)"),
    Case("rrf: a DataFrame instead of a transformer", lambda c: rrf(RUN_A, src(RUN_B)), TypeError,
         r"argument 0 is a DataFrame.*from_df"),
    Case("rrf: empty runs give an empty frame", lambda c: rrf(src(RUN_A.iloc[:0]), src(RUN_B.iloc[:0]))(TOPICS),
         check=lambda res, c: (len(res) == 0 and list(res.columns) == ["qid", "query", "docno", "score", "rank"])
         or pytest.fail(str(res.columns))),
    Case("linear_fusion: weight=NaN", lambda c: linear_fusion(src(RUN_A), src(RUN_B), weight=float("nan")),
         ValueError, "weight must be a finite number"),
    Case("LinearFusion built directly with weight=NaN",
         lambda c: LinearFusion(src(RUN_A), src(RUN_B), weight=float("nan"), normalize="minmax", num_results=None),
         ValueError, "weight must be a finite number"),
    Case("linear_fusion: weight=True", lambda c: linear_fusion(src(RUN_A), src(RUN_B), weight=True), ValueError,
         r"weight .*\(bool\)"),
    Case("linear_fusion: weight=-0.1", lambda c: linear_fusion(src(RUN_A), src(RUN_B), weight=-0.1), ValueError,
         r"weight must be in \[0, 1\]"),
    Case("linear_fusion: num_results=2.5", lambda c: linear_fusion(src(RUN_A), src(RUN_B), num_results=2.5),
         ValueError, "num_results"),
    Case("linear_fusion: a DataFrame instead of a transformer", lambda c: linear_fusion(src(RUN_A), RUN_B),
         TypeError, "argument 1 is a DataFrame"),
    Case("linear_fusion: empty runs give an empty frame",
         lambda c: linear_fusion(src(RUN_A.iloc[:0]), src(RUN_B.iloc[:0]))(TOPICS), check=check_empty_fusion),
]


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    root = tmp_path_factory.mktemp("trust_bm25")
    counter = itertools.count()
    context = SimpleNamespace(root=root)
    context.fresh = lambda: root / f"p{next(counter)}"
    context.index = BM25Indexer(root / "base").index(DOCS)
    context.file = root / "a_file"
    context.file.write_text("not a folder", encoding="utf-8")
    return context


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_case(case, ctx):
    run_case(case, ctx)
