"""Trust cases of the encoder, the vector cache, the evaluation grid, LIR and the measures (issue 11).

Each case is one thing a user does with a bad input or a fault, and what must happen: one clear line raised before
any expensive work, or a correct result. The tiny random model stands in for a real one; its "NaN model" twin has
one weight matrix set to NaN (what a diverged training run leaves behind).
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import ir_measures
import numpy as np
import pandas as pd
import pytest
from trust import Case, ids, run_case

from pyterrier_hybrid import evaluation as ev
from pyterrier_hybrid import measures as bm
from pyterrier_hybrid._checks import NonFiniteError, TextError
from pyterrier_hybrid.encoding import BiEncoder, VectorCache
from pyterrier_hybrid.lir import LIR

TEXTS = ["Who discovered penicillin?", "Alexander Fleming discovered it in 1928.", "Wer hat es entdeckt?",
         "北京是中华人民共和国的首都。", "x"]
MISSING_MODEL = "/nonexistent/model/dir"  # loading it would fail: an option error proves nothing was loaded


class Counting:
    """A custom encoder (not a BiEncoder) that counts its calls; vectors from ``fn(texts)``."""

    def __init__(self, fn=None, dim: int = 8):
        self.calls = 0
        self.fn = fn or (lambda texts: np.random.default_rng(len(texts)).normal(size=(len(texts), dim)))

    def encode_queries(self, texts):
        self.calls += 1
        return self.fn(list(texts))

    encode_docs = encode_queries


@pytest.fixture(scope="module")
def ctx(tiny_model_dir, tmp_path_factory, one_torch_thread):
    enc = BiEncoder(str(tiny_model_dir), device="cpu", batch_size=4)
    nan = BiEncoder(str(tiny_model_dir), device="cpu", batch_size=4)
    nan.model[0].auto_model.encoder.layer[0].output.dense.weight.data[:] = float("nan")
    state = SimpleNamespace(enc=enc, nan=nan, model_dir=tiny_model_dir, _sample=None)

    def fresh_dir() -> Path:
        return tmp_path_factory.mktemp("case")

    def cached(root: Path, encoder: BiEncoder = enc) -> BiEncoder:
        """The encoder with a vector cache at ``root`` (the model shared: a new process in effect)."""
        out = copy.copy(encoder)
        out.cache = VectorCache(root, encoder.fingerprint(), dim=encoder.dim, normalize=encoder.normalize)
        return out

    def sample():
        """A small MLQA-R slice (needs the LAReQA mirror in ../shared)."""
        from conftest import LAREQA_MIRROR

        if not LAREQA_MIRROR.is_dir():
            pytest.skip(f"LAReQA mirror not found at {LAREQA_MIRROR}")
        if state._sample is None:
            from pyterrier_hybrid.datasets import sample_benchmark

            state._sample = sample_benchmark("mlqa-r", paragraphs=3, max_queries=4, seed=0)
        return state._sample

    state.fresh_dir, state.cached, state.sample = fresh_dir, cached, sample
    return state


# ------------------------------------------------------------------------------------------- helpers
def _no_encoding(call):
    """Run ``call(encoder)`` with a counting encoder; the case's error must come before any encoding."""

    def run(ctx):
        encoder = Counting()
        try:
            return call(encoder)
        finally:
            assert encoder.calls == 0, "encoded before refusing the arguments"

    return run


def _damaged_shard(damage, warning):
    """A cache whose one shard is damaged by ``damage(path, keys, vecs)``: named in a warning, set aside, re-encoded."""

    def run(ctx):
        root = ctx.fresh_dir()
        ctx.cached(root).encode_docs(TEXTS)
        folder = root / ctx.enc.fingerprint() / "doc"
        (shard,) = folder.glob("*.npz")
        with np.load(shard) as data:
            keys, vecs = data["keys"], data["vecs"]
        damage(shard, keys, vecs)
        before = shard.read_bytes()
        again = ctx.cached(root)
        with pytest.warns(RuntimeWarning, match=warning) as record:
            vecs = again.encode_docs(TEXTS)
        named = [str(w.message) for w in record if "vector cache shard" in str(w.message)]
        assert len(named) == 1 and str(shard) in named[0], named
        with warnings.catch_warnings(record=True) as later:
            warnings.simplefilter("always")
            again_vecs = ctx.cached(root).encode_docs(TEXTS)
        assert not [w for w in later if "vector cache shard" in str(w.message)]  # the new shard reads quietly
        return SimpleNamespace(vecs=vecs, again=again_vecs, shard=shard, before=before, folder=folder)

    return run


def _check_reencoded(result, ctx):
    fresh = ctx.enc.encode_docs(TEXTS)
    np.testing.assert_allclose(result.vecs, fresh, atol=1e-6)
    np.testing.assert_allclose(result.again, fresh, atol=1e-6)
    bad = result.shard.with_name(result.shard.name + ".bad")
    assert not result.shard.exists() and bad.read_bytes() == result.before  # set aside, byte for byte
    assert len(list(result.folder.glob("*.npz"))) == 1  # the re-encoded texts' new shard


def _save(path, **arrays):
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def _frame_nan_vec(ctx):
    vecs = ctx.enc.encode_docs(TEXTS[1:3])
    vecs[1, 0] = np.nan
    res = pd.DataFrame({"qid": ["q1", "q1"], "query": [TEXTS[0]] * 2, "docno": ["d1", "d2"],
                        "text": TEXTS[1:3], "doc_vec": list(vecs)})
    return ctx.enc.scorer()(res)


def _grid_with(ctx, encoder, **kwargs):
    return ev.evaluate_grid(encoder, "mlqa-r", sample=ctx.sample(), langs=["en", "de"], pooled=False,
                            num_results=10, **kwargs)


def _nan_for(docno_text_index):
    """A custom encoder whose vector of the text at position ``docno_text_index`` of each call is NaN."""

    def fn(texts):
        out = np.ones((len(texts), 8)) / np.sqrt(8)
        if len(texts) > docno_text_index:
            out[docno_text_index, 3] = np.nan
        return out

    return Counting(fn)


def _encoded_with_nan(ctx):
    encoded = ev.encode_benchmark(Counting(), "mlqa-r", langs=["en"], sample=ctx.sample())
    encoded.vectors["en"].qvecs[1] = np.nan
    return encoded


class _BrokenProjection:
    """A user's projection object (LIR-like) whose output holds NaN."""

    is_fitted = True

    def project(self, vectors, langs):
        out = np.array(vectors, dtype=np.float32)
        out[:, 0] = np.nan
        return out


def _only_settings(result, settings):
    assert set(zip(result.results.qlang, result.results.dlang)) == settings


def _grid_measures(result, ctx):
    assert list(result.results.measure.unique()) == ["AP"]
    assert len(result.results) == 4  # en-en, en-de, de-en, de-de: one AP row each


# ------------------------------------------------------------------------------------------- the cases
CASES = [
    # ---- encoder options: refused before the model is loaded (the model path does not exist)
    Case("create a BiEncoder with device='bogus'", lambda ctx: BiEncoder(MISSING_MODEL, device="bogus"),
         ValueError, r"device 'bogus' is not a torch device"),
    Case("create a BiEncoder with device='cuda' on a host without CUDA",
         lambda ctx: _without_cuda(lambda: BiEncoder(MISSING_MODEL, device="cuda")),
         ValueError, r"CUDA is not available.*device='cpu'"),
    Case("create a BiEncoder with devices=['cpu', 'bogus'] for the process pool",
         lambda ctx: BiEncoder(MISSING_MODEL, devices=["cpu", "bogus"]), ValueError, r"'bogus'"),
    Case("create a BiEncoder with batch_size=2.5", lambda ctx: BiEncoder(MISSING_MODEL, batch_size=2.5),
         ValueError, r"batch_size must be an int >= 1.*2\.5"),
    Case("create a BiEncoder with batch_size=True", lambda ctx: BiEncoder(MISSING_MODEL, batch_size=True),
         ValueError, r"batch_size must be an int >= 1"),
    Case("create a BiEncoder with max_length=0", lambda ctx: BiEncoder(MISSING_MODEL, max_length=0),
         ValueError, r"max_length must be an int >= 1"),
    Case("create a BiEncoder with threads=0", lambda ctx: BiEncoder(MISSING_MODEL, threads=0),
         ValueError, r"threads must be an int >= 1"),
    Case("create a BiEncoder with pooling='max'", lambda ctx: BiEncoder(MISSING_MODEL, pooling="max"),
         ValueError, r"pooling must be"),
    Case("create a BiEncoder with quantize='fp8'", lambda ctx: BiEncoder(MISSING_MODEL, quantize="fp8"),
         ValueError, r"quantize must be"),
    Case("encode with batch_size=0 per call", lambda ctx: ctx.enc.encode_docs(TEXTS, batch_size=0),
         ValueError, r"batch_size must be an int >= 1"),
    # ---- missing or invalid texts: never encoded as "None" / "nan" / "b'...'"
    Case("encode a document list holding None", lambda ctx: ctx.enc.encode_docs(["a", None, "c"]),
         TextError, r"row 1 is missing \(None\)"),
    Case("encode a query list holding NaN (a pandas gap)", lambda ctx: ctx.enc.encode_queries(["a", float("nan")]),
         TextError, r"'query' of row 1 is missing \(nan\)"),
    Case("encode bytes instead of str", lambda ctx: ctx.enc.encode_docs([b"abc"]),
         TextError, r"bytes.*decode"),
    Case("encode a number as a text", lambda ctx: ctx.enc.encode_docs(["a", 17]), TextError, r"int \(17\), not str"),
    Case("encode a text with a lone surrogate (bad decode)", lambda ctx: ctx.enc.encode_docs(["ok", "bad\ud800"]),
         TextError, r"row 1 .*lone surrogate"),
    Case("query_encoder on topics with a missing query",
         lambda ctx: ctx.enc.query_encoder()(pd.DataFrame({"qid": ["q1", "q2"], "query": ["a", None]})),
         TextError, r"'query' of qid 'q2' is missing"),
    Case("query_encoder on a query column without qid, holding pd.NA",
         lambda ctx: ctx.enc.query_encoder()(pd.DataFrame({"query": ["a", "b", pd.NA]})),
         TextError, r"'query' of row 2 is missing"),
    Case("doc_encoder on documents with a NaN text",
         lambda ctx: ctx.enc.doc_encoder()(pd.DataFrame({"docno": ["d1", "d2"], "text": ["a", np.nan]})),
         TextError, r"'text' of docno 'd2' is missing"),
    Case("doc_encoder over a 'body' text column holding bytes",
         lambda ctx: _with_field(ctx.enc, "body").doc_encoder()(pd.DataFrame({"docno": ["d1"], "body": [b"x"]})),
         TextError, r"'body' of docno 'd1' is bytes"),
    Case("scorer on results whose document text has a lone surrogate",
         lambda ctx: ctx.enc.scorer()(pd.DataFrame({"qid": ["q1"] * 2, "query": ["a"] * 2, "docno": ["d1", "d2"],
                                                    "text": pd.Series(["fine", "\udcff"], dtype=object)})),
         TextError, r"docno 'd2'.*surrogate"),
    Case("scorer on results with a missing query",
         lambda ctx: ctx.enc.scorer()(pd.DataFrame({"qid": ["q7"], "query": [None], "docno": ["d1"], "text": ["t"]})),
         TextError, r"'query' of qid 'q7' is missing"),
    Case("encode an empty string (a text of no words)", lambda ctx: ctx.enc.encode_queries(["", "a"]),
         check=lambda v, ctx: np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)),
    Case("query_encoder with repeated and mixed-script queries",
         lambda ctx: ctx.enc.query_encoder()(pd.DataFrame({"qid": list("abcd"),
                                                           "query": [TEXTS[3], "", TEXTS[3], TEXTS[0]]})),
         check=lambda out, ctx: np.testing.assert_allclose(
             np.stack(out.query_vec), ctx.enc.encode_queries([TEXTS[3], "", TEXTS[3], TEXTS[0]]), atol=1e-6)),
    # ---- a model that outputs NaN: refused everywhere, never a perfect score
    Case("encode queries with a NaN model", lambda ctx: ctx.nan.encode_queries(TEXTS),
         NonFiniteError, r"query vectors .* 5 of 5 rows \(row 0 'Who discovered penicillin\?'.*diverged"),
    Case("query_encoder of a NaN model",
         lambda ctx: ctx.nan.query_encoder()(pd.DataFrame({"qid": ["q1", "q2"], "query": TEXTS[:2]})),
         NonFiniteError, r"query vectors .*\(qid 'q1', 'q2'\)"),
    Case("doc_encoder of a NaN model",
         lambda ctx: ctx.nan.doc_encoder()(pd.DataFrame({"docno": ["d9"], "text": [TEXTS[1]]})),
         NonFiniteError, r"document vectors .*docno 'd9'"),
    Case("scorer (re-ranking) with a NaN model",
         lambda ctx: ctx.nan.scorer()(pd.DataFrame({"qid": ["q1"] * 2, "query": [TEXTS[0]] * 2,
                                                    "docno": ["d1", "d2"], "text": TEXTS[1:3]})),
         NonFiniteError, r"qid 'q1'.*diverged"),
    Case("scorer with a precomputed doc_vec column holding NaN", _frame_nan_vec,
         NonFiniteError, r"'doc_vec' column .*docno 'd2'"),
    Case("encode with a NaN model and a vector cache: nothing is cached",
         lambda ctx: _nan_with_cache(ctx), NonFiniteError, r"document vectors"),
    Case("evaluate_grid with a NaN model (the tester's all-1.000 grid)",
         lambda ctx: _grid_with(ctx, ctx.nan), NonFiniteError, r"mlqa-r de questions: query vectors .*\(row 0 '"),
    Case("evaluate_grid with a custom encoder returning one NaN vector",
         lambda ctx: _grid_with(ctx, _nan_for(0)), NonFiniteError,
         r"mlqa-r de question vectors from .* 1 of \d+ rows \(qid 'de_"),
    Case("evaluate_grid with a custom encoder returning values beyond float32",
         lambda ctx: _grid_with(ctx, Counting(lambda t: np.full((len(t), 4), 1e39))),
         NonFiniteError, r"vectors from .*float32 range"),
    Case("evaluate_grid with a custom encoder whose scores overflow float32",
         lambda ctx: _grid_with(ctx, Counting(lambda t: np.full((len(t), 4), 1e30))),
         NonFiniteError, r"scores hold NaN or infinity.*qid 'de_.*normalise"),
    Case("evaluate_grid on an EncodedBenchmark with a NaN question vector",
         lambda ctx: ev.evaluate_grid(_encoded_with_nan(ctx), "mlqa-r", langs="en", pooled=False),
         NonFiniteError, r"mlqa-r en question vectors passed to evaluate_grid .*1 of \d+ rows \(qid 'en_"),
    Case("evaluate_grid with a projection (lir=) that outputs NaN",
         lambda ctx: _grid_with(ctx, Counting(), lir=_BrokenProjection()),
         NonFiniteError, r"after the projection .*projection produced them"),
    Case("evaluate_grid with a custom encoder returning strings",
         lambda ctx: _grid_with(ctx, Counting(lambda t: [["a"] * 4] * len(t))),
         ValueError, r"encode_queries \(mlqa-r de questions\) returned something that is not a float matrix"),
    # ---- the vector cache: a damaged shard is named, set aside, re-encoded; never a permanent failure
    Case("encode after a cache shard was truncated (disk full, copy cut short)",
         _damaged_shard(lambda p, k, v: p.write_bytes(p.read_bytes()[:50]), r"unreadable"), check=_check_reencoded),
    Case("encode after a cache shard of another dimension appeared",
         _damaged_shard(lambda p, k, v: _save(p, keys=k, vecs=np.ones((len(k), 16), np.float32) / 4),
                        r"dimension 16, the encoder's are 32"), check=_check_reencoded),
    Case("encode after a cache shard with NaN vectors appeared",
         _damaged_shard(lambda p, k, v: _save(p, keys=k, vecs=np.where(np.arange(32) == 3, np.nan, v)),
                        r"5 vectors holding NaN"), check=_check_reencoded),
    Case("encode after a cache shard of non-unit vectors appeared (normalising encoder)",
         _damaged_shard(lambda p, k, v: _save(p, keys=k, vecs=v * 2), r"not of unit norm"), check=_check_reencoded),
    Case("encode after a cache shard without 'vecs' appeared",
         _damaged_shard(lambda p, k, v: _save(p, keys=k), r"not 'keys' and 'vecs'"), check=_check_reencoded),
    Case("encode after a cache shard with fewer vectors than keys appeared",
         _damaged_shard(lambda p, k, v: _save(p, keys=k, vecs=v[:2]), r"5 keys for 2 vectors"), check=_check_reencoded),
    Case("encode when a damaged shard's .bad name is already taken",
         lambda ctx: _bad_name_taken(ctx), check=lambda r, ctx: r()),
    # ---- the grid's arguments: checked before anything is encoded
    Case("evaluate_grid(measures='A')", _no_encoding(lambda e: ev.evaluate_grid(e, "mlqa-r", measures="A")),
         ValueError, r"measures: cannot parse 'A' \(measure not found"),
    Case("evaluate_grid(measures=['Foo@3'])", _no_encoding(lambda e: ev.evaluate_grid(e, "mlqa-r", measures=["Foo@3"])),
         ValueError, r"cannot parse 'Foo@3'.*known names"),
    Case("evaluate_grid(measures=['P']) (P needs a cutoff)",
         _no_encoding(lambda e: ev.evaluate_grid(e, "mlqa-r", measures=["P"])), ValueError, r"P needs a cutoff"),
    Case("evaluate_grid(measures=['R@2.5'])", _no_encoding(lambda e: ev.evaluate_grid(e, "mlqa-r", measures="R@2.5")),
         ValueError, r"cutoff 2\.5; a cutoff is an int >= 1"),
    Case("evaluate_grid(measures=['AP', None])",
         _no_encoding(lambda e: ev.evaluate_grid(e, "mlqa-r", measures=["AP", None])),
         ValueError, r"None is neither a measure name"),
    Case("evaluate_grid(measures=['ERR@10']) (trec_eval's gdeval cannot read LAReQA ids)",
         _no_encoding(lambda e: ev.evaluate_grid(e, "mlqa-r", measures=["ERR@10"])),
         ValueError, r"ERR@10 cannot be computed"),
    Case("evaluate_grid(bias_measures=['PEER@abc'])",
         _no_encoding(lambda e: ev.evaluate_grid(e, "mlqa-r", bias_measures=["PEER@abc"])),
         ValueError, r"'PEER@abc' has cutoff 'abc'; the PEER cutoff is an int >= 1"),
    Case("evaluate_grid(bias_measures='Fairness')",
         _no_encoding(lambda e: ev.evaluate_grid(e, "mlqa-r", bias_measures="Fairness")),
         ValueError, r"bias_measures: cannot parse 'Fairness'"),
    Case("evaluate_grid(num_results=2.5)", _no_encoding(lambda e: ev.evaluate_grid(e, "mlqa-r", num_results=2.5)),
         ValueError, r"num_results \(the run depth\) must be an int >= 1.*2\.5"),
    Case("evaluate_grid(num_results=True)", _no_encoding(lambda e: ev.evaluate_grid(e, "mlqa-r", num_results=True)),
         ValueError, r"num_results \(the run depth\) must be an int >= 1"),
    Case("evaluate_grid(measures=[], bias_measures=[])",
         _no_encoding(lambda e: ev.evaluate_grid(e, "mlqa-r", measures=[], bias_measures=[])),
         ValueError, r"no measure to compute"),
    Case("evaluate_grid(settings=['en'])",
         _no_encoding(lambda e: ev.evaluate_grid(e, "mlqa-r", settings=["en"], pooled=False)),
         ValueError, r"settings must be \(question language, candidate language\) pairs"),
    Case("evaluate_grid(lir=object())", _no_encoding(lambda e: ev.evaluate_grid(e, "mlqa-r", lir=object())),
         TypeError, r"lir must have project"),
    Case("evaluate_pipeline_grid(measures='A')",
         lambda ctx: ev.evaluate_pipeline_grid(_never_called, "mlqa-r", measures="A"), ValueError, r"cannot parse 'A'"),
    Case("evaluate_grid(measures='AP') (one name is one measure)",
         lambda ctx: _grid_with(ctx, Counting(), measures="AP", bias_measures=[]), check=_grid_measures),
    Case("evaluate_grid(measures=['AP', 'AP', ir_measures.AP]) (repeats counted once)",
         lambda ctx: _grid_with(ctx, Counting(), measures=["AP", "AP", ir_measures.AP]), check=_grid_measures),
    Case("evaluate_grid(langs='en') (one code is one language, not 'e' and 'n')",
         lambda ctx: ev.evaluate_grid(Counting(), "mlqa-r", sample=ctx.sample(), langs="en", pooled=False,
                                      measures="AP"),
         check=lambda r, ctx: _only_settings(r, {("en", "en")})),
    Case("EncodedBenchmark.run(num_results=2.5)", lambda ctx: _encoded_with_nan(ctx).run("en", "en", num_results=2.5),
         ValueError, r"num_results must be an int >= 1"),
    # ---- LIR and the measures
    Case("LIR(k=1.5)", lambda ctx: LIR(k=1.5), ValueError, r"k must be an int >= 0"),
    Case("fit LIR on NaN vectors", lambda ctx: LIR(k=1).fit_vectors({"en": np.eye(4), "de": np.full((4, 4), np.nan)}),
         NonFiniteError, r"language 'de'"),
    Case("LIR on query vectors with a missing lang",
         lambda ctx: LIR(k=1).fit_vectors({"en": np.eye(4)}).transform(
             pd.DataFrame({"qid": ["q1", "q2"], "lang": ["en", None], "query_vec": list(np.eye(4)[:2])})),
         TextError, r"'lang' of qid 'q2' is missing"),
    Case("LIR on a query_vec column holding NaN",
         lambda ctx: LIR(k=1).fit_vectors({"en": np.eye(4)}).transform(
             pd.DataFrame({"qid": ["en_1", "en_2"], "query_vec": [np.eye(4)[0], np.full(4, np.nan)]})),
         NonFiniteError, r"'query_vec' column .*qid 'en_2'"),
    Case("register_languages with a NaN language", lambda ctx: bm.register_languages({"doc7": float("nan")}),
         TextError, r"language of id 'doc7' .*missing"),
    Case("RankDistance on a run with a NaN score",
         lambda ctx: ir_measures.calc_aggregate(
             [bm.RankDistance], pd.DataFrame({"query_id": ["en_q"], "doc_id": ["en_d"], "relevance": [1]}),
             pd.DataFrame({"query_id": ["en_q", "en_q"], "doc_id": ["en_d", "de_d"], "score": [np.nan, 1.0]})),
         NonFiniteError, r"query 'en_q'.*docno 'en_d'"),
    Case("peer(cutoff=2.5)", lambda ctx: bm.peer(2.5, langs=["en"]), ValueError, r"PEER cutoff must be an int >= 1"),
]


def _without_cuda(call):
    with mock.patch("torch.cuda.is_available", return_value=False):
        return call()


def _with_field(enc: BiEncoder, field: str) -> BiEncoder:
    out = copy.copy(enc)
    out.text_field = field
    return out


def _nan_with_cache(ctx):
    root = ctx.fresh_dir()
    try:
        ctx.cached(root, ctx.nan).encode_docs(TEXTS)
    finally:
        assert not list(root.rglob("*.npz")), "NaN vectors were cached"


def _bad_name_taken(ctx):
    root = ctx.fresh_dir()
    ctx.cached(root).encode_docs(TEXTS)
    (shard,) = (root / ctx.enc.fingerprint() / "doc").glob("*.npz")
    taken = shard.with_name(shard.name + ".bad")
    taken.write_text("someone else's file")
    shard.write_bytes(b"not a zip")
    with pytest.warns(RuntimeWarning, match=r"moved aside to .*\.bad1"):
        vecs = ctx.cached(root).encode_docs(TEXTS)

    def check():
        assert taken.read_text() == "someone else's file"  # never overwritten
        assert shard.with_name(shard.name + ".bad1").read_bytes() == b"not a zip"
        np.testing.assert_allclose(vecs, ctx.enc.encode_docs(TEXTS), atol=1e-6)

    return check


def _never_called(dlang):
    raise AssertionError("the pipeline was built before the measures were checked")


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_case(case, ctx):
    run_case(case, ctx)
