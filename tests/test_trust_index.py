"""Bad inputs and faults for the dense index (build, open, search, merge): one clear line, or the correct result.

Error cases that must fail before any expensive work use an encoder that refuses to encode (``ctx.refuse``):
a check that came after encoding would surface as its AssertionError instead of the expected error. Cases that
must leave nothing behind check that in a ``finally`` (an AssertionError there also replaces the expected error).
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pyterrier_alpha as pta
import pytest
from trust import Case, ids, run_case

from pyterrier_hybrid import _io
from pyterrier_hybrid._checks import NonFiniteError, TextError
from pyterrier_hybrid.index import CorruptIndexError, DenseIndex, EncoderMismatchError

DIM = 4
Invalid = pta.validate.InputValidationError


# ------------------------------------------------------------------------------------------------ encoders
class RefusingEncoder:
    """Records a manifest; encoding is a test failure (the check under test must come first)."""

    def manifest(self) -> dict[str, Any]:
        return {"model": "trust-test", "dim": DIM}

    def encode_docs(self, texts: list[str]) -> np.ndarray:
        raise AssertionError("documents were encoded before the input was checked")


class HashEncoder(RefusingEncoder):
    """Deterministic unit vectors from the text; NaN for texts containing 'poison'; a wrong shape for 'short'."""

    def encode_docs(self, texts: list[str]) -> np.ndarray:
        out = []
        for t in texts:
            v = np.random.default_rng(sum(map(ord, t))).standard_normal(DIM).astype(np.float32)
            out.append(np.full(DIM, np.nan, np.float32) if "poison" in t else v / np.linalg.norm(v))
        arr = np.stack(out)
        return arr[:, :-1] if any("short" in t for t in texts) else arr


# ------------------------------------------------------------------------------------------------ helpers
def frame(docnos: list[Any], texts: list[Any] | None = None, **cols: Any) -> pd.DataFrame:
    texts = texts if texts is not None else [f"text of {d}" for d in docnos]
    return pd.DataFrame({"docno": docnos, "text": texts, **cols})


def vec_frame(docnos: list[Any], vecs: list[Any] | None = None) -> pd.DataFrame:
    vecs = vecs if vecs is not None else list(np.eye(len(docnos), DIM, dtype=np.float32) + 0.1)
    return pd.DataFrame({"docno": docnos, "doc_vec": vecs})


def leftovers(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir() if p.name.startswith(f".{path.name}."))


def refused_build(inp: Any, *, chunk_size: int = 4096) -> Callable[[Any], Any]:
    """Index ``inp`` at a fresh path with the refusing encoder; nothing may be left at or beside the path."""
    def run(ctx):
        path = ctx.fresh()
        try:
            DenseIndex(path).indexer(ctx.refuse, chunk_size=chunk_size).index(inp)
        finally:
            assert not path.exists() and leftovers(path) == [], "a refused build left files behind"
    return run


def built_with(ctx, inp: Any, encoder: Any = None, **kwargs: Any) -> DenseIndex:
    index = DenseIndex(ctx.fresh())
    index.indexer(encoder or ctx.hash, **kwargs).index(inp)
    return index


def queries(*vecs: Any, qids: list[str] | None = None) -> pd.DataFrame:
    return pd.DataFrame({"qid": qids or [f"q{i}" for i in range(len(vecs))], "query_vec": list(vecs)})


ONES = np.ones(DIM, np.float32)


def search(ctx, inp: pd.DataFrame, **kwargs: Any) -> pd.DataFrame:
    return ctx.index.retriever(**kwargs)(inp)


def damaged(edit: Callable[[Path], None]) -> Callable[[Any], Any]:
    """Copy the shared index, damage the copy with ``edit``, open it and search it."""
    def run(ctx):
        path = ctx.copy_index()
        edit(path)
        index = DenseIndex(path)
        return index.retriever(num_results=3)(queries(ONES))
    return run


def edit_manifest(change: Callable[[dict], None]) -> Callable[[Path], None]:
    def edit(path: Path) -> None:
        m = json.loads((path / "manifest.json").read_text())
        change(m)
        (path / "manifest.json").write_text(json.dumps(m))
    return edit


def truncate(name: str, keep: int) -> Callable[[Path], None]:
    def edit(path: Path) -> None:
        data = (path / name).read_bytes()
        (path / name).write_bytes(data[:keep])
    return edit


def drop_last_doc(path: Path) -> None:
    """Consistently shorten manifest, pt_meta and vecs.f4 by one document; docnos.npids keeps it."""
    m = json.loads((path / "manifest.json").read_text())
    m["count"] -= 1
    last = max(m["langs"], key=lambda lang: m["langs"][lang][1])
    m["langs"][last][1] -= 1
    (path / "manifest.json").write_text(json.dumps(m))
    meta = json.loads((path / "pt_meta.json").read_text())
    meta["doc_count"] -= 1
    (path / "pt_meta.json").write_text(json.dumps(meta))
    truncate("vecs.f4", m["count"] * DIM * 4)(path)


def nan_bytes(path: Path) -> None:
    vecs = np.memmap(path / "vecs.f4", dtype=np.float32, mode="r+")
    vecs[DIM:2 * DIM] = np.nan
    vecs.flush()
    del vecs


class NoHits:
    """Stands in for the cached FAISS index: no hit at all for the second query (ids -1, as FAISS pads)."""

    def __init__(self, inner: Any):
        self.inner = inner

    def search(self, x: np.ndarray, k: int, params: Any = None) -> tuple[np.ndarray, np.ndarray]:
        scores, found = self.inner.search(x, k, params=params)
        scores[1], found[1] = -3.4e38, -1
        return scores, found


def no_hits_for_q1(ctx) -> pd.DataFrame:
    index = DenseIndex(ctx.index.path)
    retr = index.retriever(num_results=3)
    key = ("flat", retr.neighbours, retr.ef_construction, retr.n_list)
    index._faiss[key] = NoHits(index._faiss_index(*key))
    return retr(queries(ONES, ONES))


def dead_leftover_then_build(ctx) -> Path:
    path = ctx.fresh()
    dead_pid = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True, check=True).stdout.strip()
    left = path.with_name(f".{path.name}.tmp-{_io._HOST}-{dead_pid}-0badf00d")
    (left / "parts").mkdir(parents=True)  # what a build killed while encoding leaves behind
    DenseIndex(path).indexer(ctx.hash).index(frame(["en_a", "en_b"]))
    return path


def foreign_folder(ctx) -> Path:
    path = ctx.fresh()
    path.mkdir()
    (path / "notes.txt").write_text("not an index")
    return path


def overwrite_foreign(ctx) -> Any:
    path = foreign_folder(ctx)
    try:
        DenseIndex(path).indexer(ctx.refuse, overwrite=True)
    finally:
        assert (path / "notes.txt").read_text() == "not an index"


def rebuild_corrupt(ctx) -> DenseIndex:
    path = ctx.copy_index()
    (path / "manifest.json").write_bytes(b"")  # truncated to nothing
    index = DenseIndex(path)
    index.indexer(ctx.hash, overwrite=True).index(frame(["en_x", "de_y"]))
    return index


def same_build_twice(ctx) -> list[bool]:
    """Byte-identical files for the same documents in other chunks; the same rankings in another order."""
    inp = frame([f"{lang}_{i}" for i in range(20) for lang in ("de", "en", "zh")])
    a, b = built_with(ctx, inp, chunk_size=7), built_with(ctx, inp, chunk_size=5)
    c = built_with(ctx, inp.sample(frac=1.0, random_state=3))
    q = queries(*np.random.default_rng(5).standard_normal((3, DIM)).astype(np.float32))
    ra, rc = a.retriever(num_results=20)(q), c.retriever(num_results=20)(q)
    same = [(a.path / f).read_bytes() == (b.path / f).read_bytes()
            for f in ("manifest.json", "vecs.f4", "docnos.npids", "pt_meta.json")]
    return [*same, list(ra["docno"]) == list(rc["docno"]), np.array_equal(ra["score"], rc["score"])]


def merge_of(*shards: list[str], name: str = "merged") -> Callable[[Any], Any]:
    def run(ctx):
        built = [built_with(ctx, frame(docnos)) for docnos in shards]
        return DenseIndex.merge(ctx.fresh(), built)
    return run


def merge_same_shard_twice(ctx) -> Any:
    shard = built_with(ctx, frame(["en_a", "de_b"]))
    out = ctx.fresh()
    try:
        DenseIndex.merge(out, [shard, shard.path])
    finally:
        assert not out.exists() and leftovers(out) == []


def materialise_into_foreign(ctx) -> Any:
    from pyterrier_hybrid.offline.e5_small import _DIR_NAME, materialise_e5_small

    parent = ctx.fresh()
    (parent / _DIR_NAME).mkdir(parents=True)
    (parent / _DIR_NAME / "my_model.bin").write_bytes(b"weights of my own")
    try:
        materialise_e5_small(parent)
    finally:
        assert (parent / _DIR_NAME / "my_model.bin").read_bytes() == b"weights of my own"


def tiny_nan_model(ctx) -> Any:
    import torch

    from pyterrier_hybrid.encoding import BiEncoder

    enc = BiEncoder(str(ctx.tiny_model_dir), device="cpu")
    with torch.no_grad():
        next(enc.model.parameters()).fill_(float("nan"))
    return built_with(ctx, frame(["en_a", "en_b"]), encoder=enc)


def tiny_text_none(ctx) -> Any:
    from pyterrier_hybrid.encoding import BiEncoder

    enc = BiEncoder(str(ctx.tiny_model_dir), device="cpu")
    return built_with(ctx, frame(["en_a", "en_b"], ["a text", None]), encoder=enc)


def iter_records(records: list[dict]) -> Iterator[dict]:
    yield from records


# ------------------------------------------------------------------------------------------------ checks
def has_docnos(*expected: str) -> Callable[[Any, Any], None]:
    def check(index: DenseIndex, ctx) -> None:
        again = DenseIndex(index.path)
        assert sorted(again.docnos()) == sorted(expected) and len(again) == len(expected)
        assert leftovers(index.path) == []
    return check


def scalar_cells(res: pd.DataFrame, ctx) -> None:
    assert len(res) == 1
    row = res.iloc[0]
    assert isinstance(row["docno"], str) and np.ndim(row["score"]) == 0 and np.ndim(row["rank"]) == 0
    assert row["rank"] == 0 and np.isfinite(row["score"])


def q1_has_no_rows(res: pd.DataFrame, ctx) -> None:
    assert list(res["qid"]) == ["q0"] * 3 and list(res["rank"]) == [0, 1, 2]
    assert all(isinstance(d, str) for d in res["docno"])


def empty_result(res: pd.DataFrame, ctx) -> None:
    assert res.empty and {"qid", "docno", "docid", "score", "rank"} <= set(res.columns)


def empty_index(index: DenseIndex, ctx) -> None:
    again = DenseIndex(index.path)
    assert len(again) == 0 and again.langs == []
    empty_result(again.retriever()(queries(ONES)), ctx)


def all_true(result: list[bool], ctx) -> None:
    assert all(result), result


def no_leftovers_and_built(path: Path, ctx) -> None:
    assert leftovers(path) == [] and sorted(DenseIndex(path).docnos()) == ["en_a", "en_b"]


def no_langs(index: DenseIndex, ctx) -> None:
    has_docnos("doc1", "doc2")(index, ctx)
    assert DenseIndex(index.path).manifest["langs"] is None


def langs_from_column(index: DenseIndex, ctx) -> None:
    has_docnos("doc1", "doc2")(index, ctx)
    assert DenseIndex(index.path).manifest["langs"] == {"../x": [0, 1], "en": [1, 2]}


# ------------------------------------------------------------------------------------------------ cases
CASES = [
    # --- texts: the missing-text policy, before anything is encoded
    Case("DenseIndexer: a text is None", refused_build(frame(["en_a", "en_b"], ["x", None])), TextError,
         r"'text' of docno 'en_b' is missing"),
    Case("DenseIndexer: a text is NaN", refused_build(frame(["en_a", "en_b"], [np.nan, "x"])), TextError,
         r"'text' of docno 'en_a' is missing \(nan\)"),
    Case("DenseIndexer: a text is pd.NA", refused_build(frame(["en_a"], pd.array([pd.NA], dtype="string"))),
         TextError, r"missing"),
    Case("DenseIndexer: a text is bytes", refused_build(frame(["en_a"], [b"caf\xc3\xa9"])), TextError,
         r"docno 'en_a' is bytes.*decode"),
    Case("DenseIndexer: a text holds a lone surrogate",
         refused_build(frame(["en_a"], pd.Series(["ab\ud800"], dtype=object))), TextError, r"surrogate"),
    Case("DenseIndexer: a text is a number", refused_build(frame(["en_a"], [3.5])), TextError, r"float"),
    Case("DenseIndexer: bad text in the last chunk is refused before the first chunk is encoded",
         refused_build(frame(["en_a", "en_b", "en_c"], ["x", "y", None]), chunk_size=1), TextError,
         r"docno 'en_c'"),
    Case("DenseIndexer: an empty text is a text",
         lambda ctx: built_with(ctx, frame(["en_a", "en_b"], ["", "x"])), check=has_docnos("en_a", "en_b")),
    # --- docnos and languages
    Case("DenseIndexer: duplicate docno in one chunk", refused_build(frame(["en_a", "en_b", "en_a"])), ValueError,
         r"docno 'en_a' occurs more than once.*drop_duplicates"),
    Case("DenseIndexer: duplicate docno across chunks of a frame",
         refused_build(frame(["en_a", "en_b", "en_c", "en_b"]), chunk_size=2), ValueError, r"docno 'en_b'"),
    Case("DenseIndexer: duplicate docno across chunks of an iterable of dicts",
         refused_build(iter_records(vec_frame(["en_a", "de_b", "en_a"]).to_dict("records")), chunk_size=1),
         ValueError, r"docno 'en_a' occurs more than once"),
    Case("DenseIndexer: a docno is None", refused_build(frame(["en_a", None])), TextError,
         r"'docno' of row 1 is missing"),
    Case("DenseIndexer: a docno is NaN", refused_build(vec_frame(["en_a", np.nan])), TextError,
         r"'docno' of row 1 is missing \(nan\)"),
    Case("DenseIndexer: a docno is an int", refused_build(frame(["en_a", 7])), TextError, r"'docno' of row 1.*int"),
    Case("DenseIndexer: a docno is empty", refused_build(frame(["en_a", ""])), ValueError, r"row 1.*empty"),
    Case("DenseIndexer: a docno holds a NUL character", refused_build(frame(["en_a", "en_b\x00"])), ValueError,
         r"row 1 \('en_b\\x00'\) contains a NUL character"),
    Case("DenseIndexer: a single document (npids would store a zero-width docno)",
         lambda ctx: built_with(ctx, frame(["en_only"])), check=has_docnos("en_only")),
    Case("DenseIndexer: docnos that share only the first byte of a UTF-8 character",
         lambda ctx: built_with(ctx, frame(["zh_文档", "zh_文本", "de_ü1", "de_ý2"])),
         check=has_docnos("zh_文档", "zh_文本", "de_ü1", "de_ý2")),
    Case("DenseIndexer: docnos without language prefix and no lang column give an index without languages",
         lambda ctx: built_with(ctx, frame(["doc1", "doc2"])), check=no_langs),
    Case("DenseIndexer: a docno without language prefix among docnos with one",
         refused_build(frame(["en_a", "doc1"])), ValueError, r"docno 'doc1' has no language .* 'en_a' has one"),
    Case("DenseIndexer: a docno without language prefix in a later chunk of an iterable",
         refused_build(iter_records(vec_frame(["en_a", "doc1"]).to_dict("records")), chunk_size=1), ValueError,
         r"docno 'doc1' has no language"),
    Case("DenseIndexer: a mixed chunk of an iterable is refused before its texts are encoded",
         refused_build(iter_records(frame(["doc1", "en_a"]).to_dict("records"))), ValueError,
         r"docno 'doc1' has no language"),
    Case("DenseIndexer: a lang is None", refused_build(frame(["a", "b"], lang=["en", None])), TextError,
         r"'lang' of docno 'b' is missing"),
    Case("DenseIndexer: a lang column overrides docno prefixes",
         lambda ctx: built_with(ctx, frame(["doc1", "doc2"], lang=["../x", "en"])),
         check=langs_from_column),
    # --- vectors
    Case("DenseIndexer: a doc_vec holds NaN",
         refused_build(vec_frame(["en_a", "en_b"], [ONES, np.array([1, np.nan, 0, 0], np.float32)])),
         NonFiniteError, r"document vectors hold NaN or infinity in 1 of 2 rows \(docno 'en_b'\)"),
    Case("DenseIndexer: a doc_vec holds inf", refused_build(vec_frame(["en_a"], [np.array([np.inf, 0, 0, 0])])),
         NonFiniteError, r"docno 'en_a'"),
    Case("DenseIndexer: a float64 doc_vec overflows float32",
         refused_build(vec_frame(["en_a"], [np.array([1e39, 0, 0, 0])])), NonFiniteError, r"docno 'en_a'"),
    Case("DenseIndexer: a doc_vec of the wrong dimension", refused_build(vec_frame(["en_a"], [np.ones(3)])),
         EncoderMismatchError, r"docno 'en_a' has dimension 3.*4-dimensional"),
    Case("DenseIndexer: a doc_vec is None", refused_build(vec_frame(["en_a", "en_b"], [ONES, None])), ValueError,
         r"'doc_vec' of docno 'en_b' is NoneType"),
    Case("DenseIndexer: a doc_vec of strings", refused_build(vec_frame(["en_a"], [np.array(list("abcd"))])),
         ValueError, r"not a numeric vector"),
    Case("DenseIndexer: the encoder outputs NaN",
         lambda ctx: built_with(ctx, frame(["en_a", "en_poison"], ["ok", "poison"])), NonFiniteError,
         r"docno 'en_poison'.*encoder outputs NaN"),
    Case("DenseIndexer: the encoder returns vectors of the wrong shape",
         lambda ctx: built_with(ctx, frame(["en_a"], ["short"])), ValueError, r"shape \(1, 3\).*\(1, 4\)"),
    # --- arguments and input kinds
    Case("DenseIndexer: chunk_size 2.5", lambda ctx: DenseIndex(ctx.fresh()).indexer(ctx.refuse, chunk_size=2.5),
         TypeError, r"chunk_size must be an int >= 1, got 2.5 \(float\)"),
    Case("DenseIndexer: chunk_size 0", lambda ctx: DenseIndex(ctx.fresh()).indexer(ctx.refuse, chunk_size=0),
         ValueError, r"chunk_size must be an int >= 1"),
    Case("DenseIndexer: chunk_size True", lambda ctx: DenseIndex(ctx.fresh()).indexer(ctx.refuse, chunk_size=True),
         TypeError, r"chunk_size"),
    Case("DenseIndexer: overwrite='yes'", lambda ctx: DenseIndex(ctx.fresh()).indexer(ctx.refuse, overwrite="yes"),
         TypeError, r"overwrite must be True or False"),
    Case("DenseIndexer: a path string instead of documents", refused_build("docs.jsonl"), TypeError,
         r"not str 'docs.jsonl'"),
    Case("DenseIndexer: a frame with neither text nor doc_vec", refused_build(pd.DataFrame({"docno": ["en_a"]})),
         Invalid, r"text"),
    Case("DenseIndexer: an empty frame gives an empty index that retrieves nothing",
         lambda ctx: built_with(ctx, frame([])), check=empty_index),
    Case("DenseIndexer: the same documents give identical files (other chunks) and rankings (other order)",
         same_build_twice, check=all_true),
    # --- output paths
    Case("DenseIndexer: an existing index without overwrite is refused by indexer(), before any encoding",
         lambda ctx: ctx.index.indexer(ctx.refuse), FileExistsError, r"already exists; pass overwrite=True"),
    Case("DenseIndexer: overwrite=True on a folder of other files is refused and the files are kept",
         overwrite_foreign, FileExistsError, r"not a dense index; it is never replaced"),
    Case("DenseIndexer: a file at the index path", lambda ctx: DenseIndex(ctx.a_file).indexer(ctx.refuse,
                                                                                             overwrite=True),
         FileExistsError, r"is a file"),
    Case("DenseIndexer: overwrite=True replaces a dense index",
         lambda ctx: (lambda p: (DenseIndex(p).indexer(ctx.hash, overwrite=True).index(frame(["en_n"])),
                                 DenseIndex(p))[1])(ctx.copy_index()), check=has_docnos("en_n")),
    Case("DenseIndexer: an index with a truncated manifest can be rebuilt with overwrite=True", rebuild_corrupt,
         check=has_docnos("en_x", "de_y")),
    Case("DenseIndexer: the next build removes a killed build's hidden temporary folder", dead_leftover_then_build,
         check=no_leftovers_and_built),
    # --- opening: the manifest against the files
    Case("DenseIndex: manifest.json truncated", damaged(truncate("manifest.json", 40)), CorruptIndexError,
         r"manifest.json is not valid JSON.*truncated or corrupt; rebuild it with .*overwrite=True"),
    Case("DenseIndex: manifest.json is a list", damaged(lambda p: (p / "manifest.json").write_text("[]")),
         CorruptIndexError, r"holds a list"),
    Case("DenseIndex: vecs.f4 missing", damaged(lambda p: (p / "vecs.f4").unlink()), CorruptIndexError,
         r"vecs.f4 is missing.*rebuild"),
    Case("DenseIndex: vecs.f4 truncated", damaged(truncate("vecs.f4", 20)), CorruptIndexError,
         r"vecs.f4 holds 20 bytes but .* gives 5 vectors of dimension 4 \(80 bytes\)"),
    Case("DenseIndex: pt_meta.json missing", damaged(lambda p: (p / "pt_meta.json").unlink()), CorruptIndexError,
         r"pt_meta.json is missing"),
    Case("DenseIndex: docnos.npids holds more docnos than the manifest counts", damaged(drop_last_doc),
         CorruptIndexError, r"docnos.npids holds 5 docnos but .* gives count 4"),
    Case("DenseIndex: docnos.npids is garbage",
         damaged(lambda p: (p / "docnos.npids").write_bytes(b"\x00garbage" * 3)), CorruptIndexError,
         r"docnos.npids is missing or unreadable"),
    Case("DenseIndex: overlapping language ranges",
         damaged(edit_manifest(lambda m: m["langs"].update(en=[1, 4]))), CorruptIndexError,
         r"language 'en' the docid range \[1, 4\].*contiguous"),
    Case("DenseIndex: language ranges that do not cover every document",
         damaged(edit_manifest(lambda m: m["langs"].pop("zh"))), CorruptIndexError, r"cover \[0, 4\) but count is 5"),
    Case("DenseIndex: a negative count", damaged(edit_manifest(lambda m: m.update(count=-1))), CorruptIndexError,
         r"count -1"),
    Case("DenseIndex: an unsupported format", damaged(edit_manifest(lambda m: m.update(format="other/9"))),
         ValueError, r"unsupported index format 'other/9'"),
    Case("DenseIndex: stored vectors damaged into NaN", damaged(nan_bytes), NonFiniteError,
         r"stored vectors .* \(docid 1\); vecs.f4 is corrupt"),
    Case("DenseIndex: no index at the path", lambda ctx: DenseIndex(ctx.fresh()).retriever(), FileNotFoundError,
         r"no dense index .* build it"),
    # --- retrieval
    Case("DenseRetriever: a query vector is all NaN", lambda ctx: search(ctx, queries(ONES, ONES * np.nan)),
         NonFiniteError, r"query vectors hold NaN or infinity in 1 of 2 rows \(qid 'q1'\)"),
    Case("DenseRetriever: a query vector holds inf", lambda ctx: search(ctx, queries(np.array([np.inf, 0, 0, 0]))),
         NonFiniteError, r"qid 'q0'"),
    Case("DenseRetriever: inner products overflow float32", lambda ctx: ctx.huge.retriever()(queries(ONES * 1e20)),
         NonFiniteError, r"retrieval scores hold NaN or infinity .*qid 'q0'.*overflow"),
    Case("DenseRetriever: a query_vec is None", lambda ctx: search(ctx, queries(ONES, None)), ValueError,
         r"'query_vec' of qid 'q1' is NoneType"),
    Case("DenseRetriever: a query_vec of the wrong dimension", lambda ctx: search(ctx, queries(np.ones(7))),
         EncoderMismatchError, r"dimension 7"),
    Case("DenseRetriever: no query_vec column", lambda ctx: search(ctx, pd.DataFrame({"qid": ["q"], "query": ["x"]})),
         Invalid, r"query_vec"),
    Case("DenseRetriever: num_results 2.5", lambda ctx: ctx.index.retriever(num_results=2.5), TypeError,
         r"num_results must be an int >= 1, got 2.5 \(float\)"),
    Case("DenseRetriever: num_results True", lambda ctx: ctx.index.retriever(num_results=True), TypeError,
         r"num_results .* \(bool\)"),
    Case("DenseRetriever: num_results '10'", lambda ctx: ctx.index.retriever(num_results="10"), TypeError,
         r"num_results .* \(str\)"),
    Case("DenseRetriever: num_results 0", lambda ctx: ctx.index.retriever(num_results=0), ValueError,
         r"num_results must be an int >= 1, got 0"),
    Case("DenseRetriever: n_probe -1", lambda ctx: ctx.index.retriever(method="ivf", n_probe=-1), ValueError,
         r"n_probe"),
    Case("DenseRetriever: an unknown method", lambda ctx: ctx.index.retriever(method="exact"), ValueError,
         r"method must be .*'exact'"),
    Case("DenseRetriever: an unknown language", lambda ctx: ctx.index.retriever(langs=["fr"]), ValueError,
         r"languages \['fr'\] are not in .* holds \['de', 'en', 'zh'\]"),
    Case("DenseRetriever: an empty language list", lambda ctx: ctx.index.retriever(langs=[]), ValueError,
         r"langs is empty.*None"),
    Case("DenseRetriever: num_results=1 gives plain cells, not arrays",
         lambda ctx: search(ctx, queries(ONES), num_results=1), check=scalar_cells),
    Case("DenseRetriever: one document in the filtered language gives plain cells",
         lambda ctx: search(ctx, queries(ONES), langs="zh"), check=scalar_cells),
    Case("DenseRetriever: a query without any hit gives no rows", no_hits_for_q1, check=q1_has_no_rows),
    Case("DenseRetriever: an empty query frame", lambda ctx: search(ctx, queries()), check=empty_result),
    # --- merge
    Case("DenseIndex.merge: the same docno in two shards", merge_of(["en_a", "de_b"], ["en_c", "en_a"]),
         ValueError, r"docno 'en_a' occurs more than once \(shard .*\)"),
    Case("DenseIndex.merge: a shard listed twice", merge_same_shard_twice, ValueError, r"occurs more than once"),
    Case("DenseIndex.merge: shards given as one path string", lambda ctx: DenseIndex.merge(ctx.fresh(), "shard0"),
         TypeError, r"shards must be a list"),
    Case("DenseIndex.merge: no shards", lambda ctx: DenseIndex.merge(ctx.fresh(), []), ValueError, r"at least one"),
    Case("DenseIndex.merge: into an existing index without overwrite",
         lambda ctx: DenseIndex.merge(ctx.index.path, [ctx.index]), FileExistsError, r"overwrite=True"),
    Case("DenseIndex.merge: disjoint shards", merge_of(["en_a", "de_b"], ["zh_c"]),
         check=has_docnos("en_a", "de_b", "zh_c")),
    # --- the offline model build shares the folder swap
    Case("materialise_e5_small: the model folder holds files of another origin", materialise_into_foreign,
         FileExistsError, r"never replaced"),
    # --- a real (tiny) BiEncoder
    Case("DenseIndexer with a BiEncoder: a text is None", tiny_text_none, TextError, r"docno 'en_b' is missing"),
    Case("DenseIndexer with a BiEncoder whose weights are NaN", tiny_nan_model, NonFiniteError, r"NaN"),
]


# ------------------------------------------------------------------------------------------------ context
@pytest.fixture(scope="module")
def ctx(tmp_path_factory, tiny_model_dir, one_torch_thread):
    root = tmp_path_factory.mktemp("trust_index")
    counter = itertools.count()

    def fresh() -> Path:
        return root / f"p{next(counter)}"

    # A small index of all three languages; zh holds one document.
    index = DenseIndex(fresh())
    index.indexer(RefusingEncoder()).index(vec_frame(["en_a", "en_b", "de_c", "de_d", "zh_e"]))
    huge = DenseIndex(fresh())
    huge.indexer(RefusingEncoder()).index(vec_frame(["en_a"], [ONES * 1e20]))

    def copy_index() -> Path:
        import shutil

        path = fresh()
        shutil.copytree(index.path, path)
        return path

    a_file = fresh()
    a_file.write_text("a file")
    return SimpleNamespace(fresh=fresh, index=index, huge=huge, copy_index=copy_index, a_file=a_file,
                           refuse=RefusingEncoder(), hash=HashEncoder(), tiny_model_dir=tiny_model_dir)


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_case(case, ctx):
    run_case(case, ctx)


def test_cases_are_named_once():
    assert len({c.name for c in CASES}) == len(CASES) >= 30
