"""Fusion math on hand-made runs: reciprocal-rank fusion and min-max linear fusion."""

from __future__ import annotations

import pandas as pd
import pyterrier as pt
import pytest

from pyterrier_hybrid.fusion import PerQueryMinMax, linear_fusion, rrf

TOPICS = pd.DataFrame({"qid": ["q1", "q2"], "query": ["first", "second"]})
RUN_A = pd.DataFrame(
    {
        "qid": ["q1", "q1", "q1", "q2"],
        "query": ["first", "first", "first", "second"],
        "docno": ["d1", "d2", "d3", "d1"],
        "score": [3.0, 2.0, 1.0, 5.0],
    }
)
RUN_B = pd.DataFrame(
    {
        "qid": ["q1", "q1", "q2", "q2"],
        "query": ["first", "first", "second", "second"],
        "docno": ["d3", "d4", "d2", "d1"],
        "score": [0.9, 0.1, 1.0, 0.5],
    }
)


def source(df: pd.DataFrame) -> pt.Transformer:
    return pt.Transformer.from_df(df.copy())


def scores(res: pd.DataFrame) -> dict[tuple[str, str], float]:
    return {(q, d): s for q, d, s in res[["qid", "docno", "score"]].itertuples(index=False)}


def check_ranks(res: pd.DataFrame) -> None:
    for _, g in res.groupby("qid"):
        g = g.sort_values("rank")
        assert g["rank"].tolist() == list(range(len(g)))
        assert g["score"].is_monotonic_decreasing


def test_rrf_exact_scores_with_ranks_from_one():
    res = rrf(source(RUN_A), source(RUN_B), k=60)(TOPICS)
    expected = {
        ("q1", "d1"): 1 / 61,
        ("q1", "d2"): 1 / 62,
        ("q1", "d3"): 1 / 63 + 1 / 61,
        ("q1", "d4"): 1 / 62,
        ("q2", "d1"): 1 / 61 + 1 / 62,
        ("q2", "d2"): 1 / 61,
    }
    got = scores(res)
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=1e-12)
    check_ranks(res)
    top = res[res["rank"] == 0].set_index("qid")["docno"].to_dict()
    assert top == {"q1": "d3", "q2": "d1"}
    assert list(res.columns) == ["qid", "query", "docno", "score", "rank"]


def test_rrf_other_k_and_cutoffs():
    got = scores(rrf(source(RUN_A), source(RUN_B), k=0)(TOPICS))
    assert got[("q1", "d3")] == pytest.approx(1 / 3 + 1 / 1)
    cut = rrf(source(RUN_A), source(RUN_B), num_results=2)(TOPICS)
    assert cut.groupby("qid").size().to_dict() == {"q1": 2, "q2": 2}
    everything = rrf(source(RUN_A), source(RUN_B), num_results=None)(TOPICS)
    assert len(everything) == 6  # pyterrier-alpha 0.16.5's rr_fusion raises for num_results=None
    single = rrf(source(RUN_A))(TOPICS)
    assert scores(single)[("q1", "d2")] == pytest.approx(1 / 62)


def test_rrf_empty_and_bad_input():
    empty = RUN_A.iloc[:0]
    res = rrf(source(empty), source(empty))(TOPICS)
    assert len(res) == 0 and list(res.columns) == ["qid", "query", "docno", "score", "rank"]
    one_empty = rrf(source(RUN_A), source(empty))(TOPICS)
    assert scores(one_empty)[("q1", "d1")] == pytest.approx(1 / 61)
    with pytest.raises(ValueError, match="score"):
        rrf(source(RUN_A.drop(columns=["score"])), source(RUN_B))(TOPICS)
    with pytest.raises(ValueError, match="at least one"):
        rrf()
    with pytest.raises(ValueError, match="num_results"):
        rrf(source(RUN_A), num_results=0)


def test_per_query_min_max():
    res = PerQueryMinMax()(RUN_A)
    assert scores(res) == {("q1", "d1"): 1.0, ("q1", "d2"): 0.5, ("q1", "d3"): 0.0, ("q2", "d1"): 0.0}
    assert len(PerQueryMinMax()(RUN_A.iloc[:0])) == 0
    with pytest.raises(Exception, match="score"):
        PerQueryMinMax()(RUN_A.drop(columns=["score"]))


def test_linear_fusion_exact_scores():
    res = linear_fusion(source(RUN_A), source(RUN_B), weight=0.3)(TOPICS)
    expected = {
        # q1: A -> d1 1, d2 .5, d3 0; B -> d3 1, d4 0
        ("q1", "d1"): 0.3,
        ("q1", "d2"): 0.15,
        ("q1", "d3"): 0.7,
        ("q1", "d4"): 0.0,
        # q2: A has one document (constant scores -> 0); B -> d2 1, d1 0
        ("q2", "d1"): 0.0,
        ("q2", "d2"): 0.7,
    }
    got = scores(res)
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=1e-12)
    check_ranks(res)
    assert res["query"].notna().all()  # documents only the second run found keep their query text
    assert res.set_index("qid")["query"].groupby("qid").first().to_dict() == {"q1": "first", "q2": "second"}


def test_linear_fusion_raw_scores_weights_and_cutoff():
    raw = scores(linear_fusion(source(RUN_A), source(RUN_B), weight=0.5, normalize=None)(TOPICS))
    assert raw[("q1", "d3")] == pytest.approx(0.5 * 1.0 + 0.5 * 0.9)
    assert raw[("q2", "d1")] == pytest.approx(0.5 * 5.0 + 0.5 * 0.5)
    only_a = linear_fusion(source(RUN_A), source(RUN_B), weight=1.0)(TOPICS)
    assert only_a[only_a["rank"] == 0].set_index("qid")["docno"]["q1"] == "d1"
    cut = linear_fusion(source(RUN_A), source(RUN_B), num_results=1)(TOPICS)
    assert cut.groupby("qid").size().to_dict() == {"q1": 1, "q2": 1}
    with pytest.raises(ValueError, match="weight"):
        linear_fusion(source(RUN_A), source(RUN_B), weight=1.5)
    with pytest.raises(ValueError, match="normalize"):
        linear_fusion(source(RUN_A), source(RUN_B), normalize="zscore")


def test_linear_fusion_empty_runs():
    empty = RUN_A.iloc[:0]
    res = linear_fusion(source(empty), source(empty))(TOPICS)
    assert len(res) == 0 and {"qid", "docno", "score", "rank"} <= set(res.columns)


def test_fusions_in_experiment():
    from ir_measures import AP

    qrels = pd.DataFrame({"qid": ["q1", "q2"], "docno": ["d3", "d2"], "label": [1, 1]})
    a, b = source(RUN_A), source(RUN_B)
    res = pt.Experiment(
        [a, b, rrf(a, b), linear_fusion(a, b, weight=0.3)], TOPICS, qrels, eval_metrics=[AP],
        names=["a", "b", "rrf", "lin"],
    ).set_index("name")["AP"]
    # a: q1 d3 at rank 3, q2 d2 missing; b: d3 1st, d2 1st; rrf: d3 1st, d2 2nd; lin: d3 1st, d2 1st
    assert res.to_dict() == pytest.approx({"a": (1 / 3 + 0) / 2, "b": 1.0, "rrf": (1 + 1 / 2) / 2, "lin": 1.0})
