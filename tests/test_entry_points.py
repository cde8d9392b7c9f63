"""Found without being asked: entry points and import hooks, ir_datasets counts and stores, the two CLIs.

Every "fresh process" test runs a subprocess that imports only what a user would (``import pyterrier``,
or ``import ir_datasets`` first), with the environment of this session (offline, LAReQA mirror).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import ir_datasets
import pytest

import pyterrier_hybrid
from pyterrier_hybrid import _plugin

CLI = [sys.executable, "-m", "pyterrier_hybrid.cli"]

# A run and qrels small enough to check by hand (see test_measures_cli for the arithmetic).
QRELS = "en_1 0 en_a 1\nen_1 0 de_a 1\nen_2 0 de_b 1\nen_2 0 en_b 1\n"
RUN = ("en_1 Q0 en_a 1 3.0 r\nen_1 Q0 de_x 2 2.0 r\nen_1 Q0 de_a 3 1.0 r\n"
       "en_2 Q0 de_b 1 5.0 r\nen_2 Q0 en_x 2 4.0 r\nen_2 Q0 en_b 3 3.0 r\n")


def run_python(code: str, tmp_path: Path, **env: str) -> dict:
    """Run ``code`` in a fresh interpreter (this session's environment plus ``env``); returns its JSON output."""
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                            cwd=tmp_path, env={**os.environ, **env}, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def run_cli(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, cwd=tmp_path, env=dict(os.environ),
                          timeout=600)


# --------------------------------------------------------------------------- import pyterrier only


def test_entry_point_is_declared():
    from importlib.metadata import entry_points

    modules = {ep.name: ep.value for ep in entry_points(group="pyterrier.modules")}
    assert modules.get("hybrid") == "pyterrier_hybrid", "reinstall: pip install --no-deps -e ."


def test_import_pyterrier_is_cheap_and_gives_pt_hybrid(tmp_path):
    out = run_python("""
        import json, sys
        import pyterrier as pt
        print(json.dumps({"hybrid": pt.hybrid.__name__, "loaded": sorted(
            m for m in ("torch", "ir_datasets", "scipy.stats", "pyterrier_hybrid.measures",
                        "pyterrier_hybrid.datasets") if m in sys.modules)}))
    """, tmp_path)
    assert out == {"hybrid": "pyterrier_hybrid", "loaded": []}


@pytest.mark.integration
def test_datasets_after_import_pyterrier_only(tmp_path):
    out = run_python("""
        import json, sys
        import pyterrier as pt
        ds = pt.get_dataset("irds:xquad-r/en-de")
        topics, qrels = ds.get_topics("text"), ds.get_qrels()
        first = next(iter(ds.get_corpus_iter(verbose=False)))
        noisy = pt.get_dataset("irds:xquad-r/en-de/noise-typo-20").get_topics("text")
        print(json.dumps({"topics": len(topics), "qrels": len(qrels), "docno": first["docno"],
                          "same_qids": list(noisy["qid"]) == list(topics["qid"]),
                          "changed": int((noisy["query"] != topics["query"]).sum()),
                          "torch": "torch" in sys.modules}))
    """, tmp_path)
    assert out["topics"] == out["qrels"] == 1190 and out["docno"].startswith("de_")
    assert out["same_qids"] and out["changed"] > 100 and not out["torch"]


@pytest.mark.integration
def test_ir_datasets_imported_before_pyterrier(tmp_path):
    out = run_python("""
        import json
        import ir_datasets
        import pyterrier as pt
        print(json.dumps({"irds": ir_datasets.load("mlqa-r/de-en").queries_count(),
                          "pt": len(pt.get_dataset("irds:mlqa-r/de-en").get_topics("text"))}))
    """, tmp_path)
    assert out["irds"] == out["pt"] > 0


def test_measures_by_name_in_experiment_after_import_pyterrier_only(tmp_path):
    out = run_python("""
        import json
        import ir_measures, pandas as pd
        import pyterrier as pt
        rows = [("en_1", "en_a", 3.0), ("en_1", "de_x", 2.0), ("en_1", "de_a", 1.0),
                ("en_2", "de_b", 5.0), ("en_2", "en_x", 4.0), ("en_2", "en_b", 3.0)]
        run = pd.DataFrame(rows, columns=["qid", "docno", "score"])
        qrels = pd.DataFrame([("en_1", "en_a", 1), ("en_1", "de_a", 1), ("en_2", "de_b", 1), ("en_2", "en_b", 1)],
                             columns=["qid", "docno", "label"])
        topics = pd.DataFrame({"qid": ["en_1", "en_2"], "query": ["x", "y"]})
        res = pt.Experiment([pt.Transformer.from_df(run)], topics, qrels,
                            eval_metrics=["map", "RankDistance", "SameLangPref", "LangPEER(weights={0:0.5,1:0.5})@3"],
                            names=["run"])
        try:
            pt.Experiment([pt.Transformer.from_df(run)], topics, qrels, eval_metrics=["map", "NoSuchMeasure"])
            unknown = "accepted"
        except ValueError as e:
            unknown = str(e)
        try:
            pt.Experiment([pt.Transformer.from_df(run)], topics, qrels, eval_metrics=["PEER@10"])
            peer = "accepted"
        except ValueError as e:
            peer = str(e)
        parsed = ir_measures.parse_measure("RankDistance@10")
        print(json.dumps({"row": res.drop(columns="name").iloc[0].to_dict(), "unknown": unknown, "peer": peer,
                          "parsed": [type(parsed).__module__, str(parsed)]}))
    """, tmp_path)
    row = out["row"]
    assert row["map"] == pytest.approx(5 / 6)
    assert row["RankDistance"] == 2.0 and row["SameLangPref"] == 0.5
    assert row["LangPEER(weights={0:0.5,1:0.5})@3"] == pytest.approx(0.5 + 0.5 * 0.31731050786291415)
    assert "NoSuchMeasure" in out["unknown"]  # other names fail as they did before
    assert "use 'LangPEER@1000'" in out["peer"]
    assert out["parsed"] == ["pyterrier_hybrid.measures", "RankDistance@10"]


def test_import_package_alone_registers_measure_names(tmp_path):
    out = run_python("""
        import json, sys
        import pyterrier_hybrid, ir_measures
        m = ir_measures.parse_measure("SameLangPref")
        print(json.dumps({"measure": str(m), "pyterrier": "pyterrier" in sys.modules}))
    """, tmp_path)
    assert out == {"measure": "SameLangPref", "pyterrier": False}


def test_plugin_can_be_switched_off(tmp_path):
    out = run_python("""
        import json
        import pyterrier as pt, ir_datasets, ir_measures
        try:
            ir_measures.parse_measure("RankDistance")
            name = True
        except NameError:
            name = False
        print(json.dumps({"hybrid": pt.hybrid.__name__, "dataset": "xquad-r/en" in ir_datasets.registry,
                          "measure": name}))
    """, tmp_path, **{_plugin.DISABLE_ENV: "1"})
    assert out == {"hybrid": "pyterrier_hybrid", "dataset": False, "measure": False}


def test_lazy_measure_placeholder_resolves_to_the_real_measure():
    import ir_measures

    from pyterrier_hybrid import measures, named_measures

    assert ir_measures.parse_measure("SameLangPref@5") == measures.SameLangPref @ 5
    assert ir_measures.parse_measure("LangPEER") == named_measures.LangPEER
    assert str(ir_measures.parse_measure("LangPEER@100")) == "LangPEER@100"


def test_lang_peer_equals_peer():
    import ir_measures

    from pyterrier_hybrid import measures

    qrels = list(ir_measures.read_trec_qrels(QRELS))
    run = list(ir_measures.read_trec_run(RUN))
    for weights in ({0: 1.0, 1: 0.0}, {0: 0.5, 1: 0.5}):
        named = ir_measures.parse_measure(f"LangPEER(weights={json.dumps(weights).replace(chr(34), '')})@3")
        direct = measures.peer(3, langs=["de", "en"], weights=weights)
        assert ir_measures.calc_aggregate([named], qrels, run)[named] == pytest.approx(
            ir_measures.calc_aggregate([direct], qrels, run)[direct])


# --------------------------------------------------------------------------- counts and stores


@pytest.mark.integration
def test_counts():
    ds = ir_datasets.load("xquad-r/en-de")
    assert (ds.docs_count(), ds.queries_count(), ds.qrels_count()) == (1276, 1190, 1190)
    assert len(ds.queries) == 1190 and len(ds.qrels) == 1190
    pooled = ir_datasets.load("xquad-r/multi")
    assert (pooled.queries_count(), pooled.qrels_count()) == (11 * 1190, 11 * 1190 * 11)
    cross = ir_datasets.load("mlqa-r/de-hi")  # only questions answerable in Hindi
    assert cross.queries_count() == sum(1 for _ in cross.queries_iter()) < 512
    assert cross.qrels_count() == sum(1 for _ in cross.qrels_iter())


@pytest.mark.integration
def test_queries_store_and_docs_store():
    ds = ir_datasets.load("xquad-r/en-de")
    first, second = list(ds.queries_iter())[:2]
    store = ds.queries_store()
    assert store.get(first.query_id) == first
    assert store.get(first.query_id, "text") == first.text
    assert list(store.get_many([second.query_id, "en_missing", first.query_id])) == [second.query_id,
                                                                                    first.query_id]
    assert store.count() == 1190
    with pytest.raises(KeyError, match="is not in this entry"):
        store.get("de_" + first.group_id)  # a German question is not in the en-de entry
    docs = ds.docs_store().get_many(["de_00000_001", "en_00000_001", "de_00000_000"])
    assert list(docs) == ["de_00000_001", "de_00000_000"] and docs["de_00000_000"].lang == "de"
    assert ds.queries.lookup(first.query_id) == first


# --------------------------------------------------------------------------- the two command lines


@pytest.mark.integration
def test_irds_cli_export_and_lookup(tmp_path):
    queries = run_cli(["irds", "export", "xquad-r/en-de", "queries", "--fields", "query_id", "text"], tmp_path)
    assert queries.returncode == 0, queries.stderr
    lines = queries.stdout.splitlines()
    assert len(lines) == 1190 and lines[0].startswith("en_") and len(lines[0].split("\t")) == 2
    qrels = run_cli(["irds", "export", "xquad-r/en-de", "qrels"], tmp_path)
    assert qrels.returncode == 0, qrels.stderr
    rows = [line.split() for line in qrels.stdout.splitlines()]
    assert len(rows) == 1190 and all(r[2].startswith("de_") and r[3] == "1" for r in rows)
    qid = lines[0].split("\t")[0]
    lookup = run_cli(["irds", "lookup", "xquad-r/en-de", "--qid", qid], tmp_path)
    assert lookup.returncode == 0 and lookup.stdout.split("\t")[:2] == lines[0].split("\t")
    doc = run_cli(["irds", "lookup", "xquad-r/en-de", "de_00000_000"], tmp_path)
    assert doc.returncode == 0 and doc.stdout.startswith("de_00000_000\t")


def test_irds_cli_exit_status_is_the_tools(tmp_path):
    ours = run_cli(["irds", "no-such-command"], tmp_path)
    theirs = subprocess.run([sys.executable, "-m", "ir_datasets", "no-such-command"], capture_output=True,
                            text=True, cwd=tmp_path, timeout=600)
    assert ours.returncode == theirs.returncode == 1 and "Usage: ir_datasets" in ours.stderr
    missing = run_cli(["irds", "export", "xquad-r/no-such-entry", "queries"], tmp_path)
    assert missing.returncode != 0


def test_measures_cli(tmp_path):
    (tmp_path / "qrels.txt").write_text(QRELS)
    (tmp_path / "run.txt").write_text(RUN)
    result = run_cli(["measures", "qrels.txt", "run.txt", "AP", "RankDistance", "SameLangPref",
                      "LangPEER(weights={0:0.5,1:0.5})@3"], tmp_path)
    assert result.returncode == 0, result.stderr
    values = dict(line.split("\t") for line in result.stdout.splitlines())
    # Both queries hold their relevant candidates at ranks 1 and 3: AP = (1 + 2/3) / 2, RD = 3 - 1.
    # SameLangPref: the top relevant candidate is English for en_1, German for en_2.
    # LangPEER: level 0 has one language per query (p = 1); level 1 compares rank {1} with rank {3}:
    # H = N - 1 = 1, p = chi2.sf(1, df=1) = 0.3173, so 0.5 * 1 + 0.5 * 0.3173.
    assert values == {"AP": "0.8333", "RankDistance": "2.0000", "SameLangPref": "0.5000",
                      "LangPEER(weights={0:0.5,1:0.5})@3": "0.6587"}
    per_query = run_cli(["measures", "qrels.txt", "run.txt", "SameLangPref", "-q"], tmp_path)
    assert per_query.stdout.splitlines()[:2] == ["en_1\tSameLangPref\t1.0000", "en_2\tSameLangPref\t0.0000"]


def test_measures_cli_exit_status_is_the_tools(tmp_path):
    (tmp_path / "qrels.txt").write_text(QRELS)
    (tmp_path / "run.txt").write_text(RUN)
    ours = run_cli(["measures", "qrels.txt", "run.txt", "NoSuchMeasure"], tmp_path)
    theirs = subprocess.run([sys.executable, "-m", "ir_measures", "qrels.txt", "run.txt", "NoSuchMeasure"],
                            capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert ours.returncode == theirs.returncode != 0 and "unknown measure: NoSuchMeasure" in ours.stderr


@pytest.mark.integration
def test_measures_cli_with_an_ir_datasets_id_as_qrels(tmp_path):
    ds = ir_datasets.load("xquad-r/en-de")
    gold = list(ds.qrels_iter())[:2]
    (tmp_path / "run.txt").write_text("".join(f"{q.query_id} Q0 {q.doc_id} 1 1.0 r\n"
                                              f"{q.query_id} Q0 en_00000_000 2 0.5 r\n" for q in gold))
    result = run_cli(["measures", "xquad-r/en-de", "run.txt", "RankDistance", "SameLangPref"], tmp_path)
    assert result.returncode == 0, result.stderr
    # One relevant (German) candidate per English question, retrieved at rank 1: RD 0, not the query language.
    assert result.stdout.splitlines() == ["RankDistance\t0.0000", "SameLangPref\t0.0000"]


def test_package_reexports_still_work():
    assert pyterrier_hybrid.dataset_id("xquad-r", "en", "de") == "xquad-r/en-de"
    assert "en" in pyterrier_hybrid.XQUAD_R_LANGS and pyterrier_hybrid.lang_of_id("de_1") == "de"
    assert pyterrier_hybrid.datasets.DATASET_IDS
