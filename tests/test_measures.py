"""Language-bias measures on hand-made runs with known answers, inside ir_measures and pt.Experiment."""

from __future__ import annotations

import math

import ir_measures
import numpy as np
import pandas as pd
import pyterrier as pt
import pytest

from pyterrier_hybrid import _trec
from pyterrier_hybrid import measures as bm

LANGS = ("en", "de", "zh")


def _qrels(groups):
    """One relevant candidate per language for each group: query '<lang>_g<i>' -> '<lang>_d<i>'."""
    rows = []
    for g in groups:
        for ql in LANGS:
            rows += [(f"{ql}_g{g}", f"{dl}_d{g}", 1) for dl in LANGS]
    return pd.DataFrame(rows, columns=["query_id", "doc_id", "relevance"])


def _run(rankings):
    """qid -> list of doc ids in rank order (scores descending)."""
    rows = [(q, d, float(len(docs) - i)) for q, docs in rankings.items() for i, d in enumerate(docs)]
    return pd.DataFrame(rows, columns=["query_id", "doc_id", "score"])


def _fillers(n):
    return [f"{LANGS[i % 3]}_x{i}" for i in range(n)]


def _values(measures, qrels, run):
    out = {}
    for m in ir_measures.iter_calc(measures, qrels, run):
        out[(str(m.measure), m.query_id)] = m.value
    return out


def test_perfectly_agnostic_run():
    # every query ranks the three translations of its answer at ranks 1-3, languages in rotating order
    qrels = _qrels([0])
    rankings = {}
    for i, ql in enumerate(LANGS):
        order = LANGS[i + 1:] + LANGS[:i + 1]  # own language last
        rankings[f"{ql}_g0"] = [f"{dl}_d0" for dl in order] + _fillers(6)
    vals = _values([bm.RankDistance, bm.SameLangPref], qrels, _run(rankings))
    assert all(vals[("RankDistance", f"{ql}_g0")] == 2 for ql in LANGS)  # ranks 1..3 -> 3 - 1
    assert all(vals[("SameLangPref", f"{ql}_g0")] == 0 for ql in LANGS)
    agg = ir_measures.calc_aggregate([bm.RankDistance, bm.SameLangPref], qrels, _run(rankings))
    assert agg[bm.RankDistance] == 2 and agg[bm.SameLangPref] == 0


def test_perfectly_biased_run():
    # the own-language answer first, then every filler, then the other translations
    qrels = _qrels([0, 1])
    rankings = {}
    for g in (0, 1):
        for ql in LANGS:
            others = [f"{dl}_d{g}" for dl in LANGS if dl != ql]
            rankings[f"{ql}_g{g}"] = [f"{ql}_d{g}"] + _fillers(7) + others
    vals = _values([bm.RankDistance, bm.SameLangPref], qrels, _run(rankings))
    for q in rankings:
        assert vals[("RankDistance", q)] == 10 - 1  # ranks 1 and 10
        assert vals[("SameLangPref", q)] == 1
    assert ir_measures.calc_aggregate([bm.SameLangPref], qrels, _run(rankings))[bm.SameLangPref] == 1.0


def test_missing_relevant_candidates():
    qrels = _qrels([0])
    rankings = {
        "en_g0": ["de_d0"] + _fillers(4),            # en_d0 and zh_d0 unretrieved (run depth 5) -> rank 6
        "de_g0": _fillers(5),                        # nothing relevant retrieved -> worst values (5, 0)
        "zh_g0": ["zh_d0", "en_d0"] + _fillers(3),   # de_d0 unretrieved -> rank 6
    }
    run = _run(rankings)
    vals = _values([bm.RankDistance, bm.SameLangPref, bm.RankDistance @ 3], qrels, run)
    assert vals[("RankDistance", "en_g0")] == 6 - 1
    assert vals[("SameLangPref", "en_g0")] == 0
    assert vals[("RankDistance", "de_g0")] == 5 and vals[("SameLangPref", "de_g0")] == 0
    assert vals[("RankDistance", "zh_g0")] == 6 - 1 and vals[("SameLangPref", "zh_g0")] == 1
    assert vals[("RankDistance@3", "zh_g0")] == 4 - 1  # cutoff 3: unretrieved at rank 4
    agg = ir_measures.calc_aggregate([bm.RankDistance, bm.SameLangPref], qrels, run)
    assert agg[bm.RankDistance] == 5 and agg[bm.SameLangPref] == pytest.approx(1 / 3)
    # a query absent from the run is undefined (NaN) and left out of ir_measures' mean
    agg = ir_measures.calc_aggregate([bm.SameLangPref], qrels, run[run.query_id != "zh_g0"])
    assert agg[bm.SameLangPref] == 0.0


def test_ties_are_broken_by_doc_id_descending():
    qrels = _qrels([0])
    run = pd.DataFrame([("en_g0", "de_d0", 1.0), ("en_g0", "en_d0", 1.0), ("en_g0", "zh_d0", 1.0)],
                       columns=["query_id", "doc_id", "score"])
    vals = _values([bm.SameLangPref, bm.RankDistance], qrels, run)
    assert vals[("SameLangPref", "en_g0")] == 0  # zh_d0 > en_d0 > de_d0: zh_d0 is first
    assert vals[("RankDistance", "en_g0")] == 2


def test_measures_parse_by_name_and_run_in_pt_experiment():
    assert ir_measures.parse_measure("RankDistance@100") == bm.RankDistance @ 100
    assert ir_measures.parse_measure("SameLangPref") == bm.SameLangPref
    qrels = _qrels([0]).rename(columns={"query_id": "qid", "doc_id": "docno", "relevance": "label"})
    rankings = {f"{ql}_g0": [f"{ql}_d0"] + _fillers(3) + [f"{dl}_d0" for dl in LANGS if dl != ql] for ql in LANGS}
    res = _run(rankings).rename(columns={"query_id": "qid", "doc_id": "docno"})
    topics = pd.DataFrame({"qid": list(rankings), "query": "q"})
    peer = bm.peer(10, langs=LANGS)
    measures = [ir_measures.AP, bm.RankDistance, ir_measures.parse_measure("SameLangPref"), peer]
    table = pt.Experiment([res], topics, qrels, measures, names=["biased"])
    assert table["RankDistance"].iloc[0] == 5 and table["SameLangPref"].iloc[0] == 1
    assert 0 <= table[str(peer)].iloc[0] <= 1


def test_query_without_relevant_results_keeps_pt_experiment_means_finite():
    """pt.Experiment averages per-query values itself: one NaN would turn the whole column into NaN."""
    qrels = _qrels([0]).rename(columns={"query_id": "qid", "doc_id": "docno", "relevance": "label"})
    rankings = {"en_g0": ["en_d0", "de_d0"] + _fillers(2), "de_g0": _fillers(4), "zh_g0": ["de_d0"] + _fillers(3)}
    res = _run(rankings).rename(columns={"query_id": "qid", "doc_id": "docno"})
    topics = pd.DataFrame({"qid": list(rankings), "query": "q"})
    table = pt.Experiment([res], topics, qrels, [bm.RankDistance, bm.SameLangPref], names=["run"])
    # en: ranks 1, 2 and zh_d0 at 5 -> 4; de: nothing relevant -> L = 4; zh: de_d0 at 1, others at 5 -> 4
    assert table["RankDistance"].iloc[0] == pytest.approx(4.0)
    assert table["SameLangPref"].iloc[0] == pytest.approx(1 / 3)


def test_peer_fixed_provider_matches_package_kruskal_and_orders_fairness():
    import peer_measure

    qrels = _qrels([0])
    # fair: non-relevant candidates of the three languages interleaved; unfair: grouped by language
    fair = {f"{ql}_g0": [f"{dl}_d0" for dl in LANGS] + _fillers(30) for ql in LANGS}
    blocks = [f"{lang}_x{i}" for lang in LANGS for i in range(10)]
    unfair = {f"{ql}_g0": [f"{dl}_d0" for dl in LANGS] + blocks for ql in LANGS}
    peer = bm.peer(33, langs=LANGS, weights={0: 1.0, 1: 0.0})
    v_fair = ir_measures.calc_aggregate([peer], qrels, _run(fair))[peer]
    v_unfair = ir_measures.calc_aggregate([peer], qrels, _run(unfair))[peer]
    assert v_fair > 0.5 and v_unfair < 0.01
    ranks = [[i + 4 for i, d in enumerate(blocks) if d.startswith(lang)] for lang in LANGS]
    assert v_unfair == pytest.approx(peer_measure.kruskal(*ranks)[1])
    with pytest.raises(ValueError, match="sum to 1"):
        bm.peer(10, langs=LANGS, weights={0: 0.7, 1: 0.7})


def test_nan_mean_aggregator():
    agg = bm._NanMeanAgg()
    assert math.isnan(agg.result())
    for v in (1.0, float("nan"), 3.0):
        agg.add(v)
    assert agg.result() == 2.0


def test_rank_helpers_match_definitions():
    ranks = np.array([[1, 4, np.inf], [np.inf, np.inf, np.inf], [2, np.inf, np.inf]])
    n_rel = np.array([3, 3, 1])
    rd = _trec.rank_distance_values(ranks, n_rel, np.array([10, 10, 10]))
    assert rd[0] == 11 - 1 and rd[1] == 10 and rd[2] == 0
    same = np.array([[False, True, False], [True, False, False], [True, False, False]])
    slp = _trec.same_lang_pref_values(ranks, same)
    assert slp[0] == 0 and slp[1] == 0 and slp[2] == 1


@pytest.fixture
def registry(monkeypatch):
    """The process-wide id -> language registry, restored after the test (a copy is what the test changes)."""
    from pyterrier_hybrid import languages

    monkeypatch.setattr(languages, "_REGISTERED", dict(languages._REGISTERED))
    return languages


def test_registered_languages_override_the_prefix(registry):
    bm.register_languages({"doc-without-prefix": "de", "zh_d1": "en"})
    assert bm.lang_of_id("doc-without-prefix") == "de"
    assert bm.lang_of_id("zh_d1") == "en"  # the registry comes before the prefix
    assert bm.lang_of_id("zh_d0") == "zh"
    with pytest.raises(ValueError, match="language prefix"):
        bm.lang_of_id("unknown")
    registry.unregister_languages(["doc-without-prefix", "zh_d1"])
    assert bm.lang_of_id("zh_d1") == "zh"
    with pytest.raises(ValueError, match="language prefix"):
        bm.lang_of_id("doc-without-prefix")


def test_peer_equal_ranks_give_one_not_nan():
    # peer-measure places the unretrieved de_d0 at rank (2 * 2 + 1 + 1) / 2 = 3, equal to en_d0's rank:
    # its Kruskal-Wallis statistic is 0 / 0; equal ranks mean no evidence of unequal expected rank -> 1
    qrels = pd.DataFrame([("en_q", "en_d0", 1), ("en_q", "de_d0", 1)], columns=["query_id", "doc_id", "relevance"])
    run = _run({"en_q": ["en_x1", "de_x2", "en_d0"]})
    peer = bm.peer(3, langs=["en", "de"], weights={0: 0.0, 1: 1.0})
    assert ir_measures.calc_aggregate([peer], qrels, run)[peer] == 1.0


def test_rank_distance_needs_no_language_in_the_ids():
    # pyterrier-dr-style ids ("d1", "q1") carry no language: RankDistance never uses it, SameLangPref must
    qrels = pd.DataFrame({"query_id": ["q1", "q1"], "doc_id": ["d1", "d2"], "relevance": [1, 1]})
    run = pd.DataFrame({"query_id": ["q1"] * 3, "doc_id": ["d1", "d9", "d2"], "score": [3.0, 2.0, 1.0]})
    assert ir_measures.calc_aggregate([bm.RankDistance], qrels, run)[bm.RankDistance] == 2
    with pytest.raises(ValueError, match="carries no language prefix"):
        ir_measures.calc_aggregate([bm.SameLangPref], qrels, run)
