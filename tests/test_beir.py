"""Local BEIR folders: loading, language-prefixed ids, qrels, training pairs, errors, pt.Experiment with BM25;
the shipped synthetic tenancy-law data and the domain fine-tuning example."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pandas as pd
import pytest

from pyterrier_hybrid.datasets import BeirFolder, lareqa_dir_to_beir, pairs_from_beir_dir, split_groups
from pyterrier_hybrid.datasets.beir import is_beir_folder, prefixed_id, write_beir_folder
from pyterrier_hybrid.datasets.pairs import PAIR_COLUMNS, pairs_from_lareqa_dir

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "examples" / "data"

CORPUS = [
    {"_id": "d1", "title": "Deposits", "text": "A landlord must return the deposit within 30 days."},
    {"_id": "d2", "title": "", "text": "Rent may be increased once every 12 months."},
    {"_id": "d3", "text": "Urgent repairs must start within 24 hours.", "metadata": {"source": "toy"}},
    {"_id": "de_d4", "title": "Kaution", "text": "Die Kaution ist binnen 30 Tagen zurückzuzahlen."},
    {"_id": "d5", "title": "Fianza", "text": "La fianza se devuelve en 30 días.", "lang": "es"},
]
QUERIES = [
    {"_id": "q1", "text": "When must the deposit be returned?"},
    {"_id": "q2", "text": "How often can rent go up?"},
    {"_id": "q3", "text": "How fast are urgent repairs?"},
    {"_id": "de_q1", "text": "Wann muss die Kaution zurückgezahlt werden?"},
]
QRELS = {
    "train": [("q2", "d2", 1), ("q3", "d3", 2), ("q3", "d1", 0)],
    "test": [("q1", "d1", 1), ("q1", "de_d4", 1), ("de_q1", "de_d4", 1), ("de_q1", "d1", 1), ("q1", "d2", 0)],
}


def write_jsonl(path: Path, rows) -> None:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in rows),
                    encoding="utf-8")


def write_qrels(path: Path, rows, header: str = "query-id\tcorpus-id\tscore") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + "\n" + "".join(f"{q}\t{d}\t{s}\n" for q, d, s in rows), encoding="utf-8")


def make_folder(root: Path, corpus=CORPUS, queries=QUERIES, qrels=QRELS) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    write_jsonl(root / "corpus.jsonl", corpus)
    write_jsonl(root / "queries.jsonl", queries)
    for split, rows in qrels.items():
        write_qrels(root / "qrels" / f"{split}.tsv", rows)
    return root


@pytest.fixture
def folder(tmp_path) -> Path:
    return make_folder(tmp_path / "toy")


# --------------------------------------------------------------------------------------------- loading
def test_documents_get_language_prefixes_and_joined_titles(folder):
    data = BeirFolder(folder)
    assert is_beir_folder(folder) and not is_beir_folder(folder / "qrels")
    assert data.splits == ["test", "train"] and data.split == "test"
    docs = data.get_corpus()
    assert docs["docno"].tolist() == ["en_d1", "en_d2", "en_d3", "de_d4", "es_d5"]
    assert docs["lang"].tolist() == ["en", "en", "en", "de", "es"]
    assert docs["text"].iloc[0] == "Deposits A landlord must return the deposit within 30 days."
    assert docs["text"].iloc[1] == "Rent may be increased once every 12 months."  # empty title: no leading space
    assert data.langs == ["de", "en", "es"]
    first = next(data.get_corpus_iter())
    assert first == {"docno": "en_d1", "text": docs["text"].iloc[0], "lang": "en"}
    assert len(list(data.get_corpus_iter(verbose=True))) == 5
    assert BeirFolder(folder, title_sep=". ").docs["text"].iloc[0].startswith("Deposits. A landlord")


def test_folder_language_and_prefix_rules(folder):
    data = BeirFolder(folder, lang="de")
    assert data.docs["docno"].tolist() == ["de_d1", "de_d2", "de_d3", "de_d4", "es_d5"]
    assert prefixed_id("17", "en") == "en_17"
    assert prefixed_id("de_17", "en") == "de_17"
    assert prefixed_id("xx_17", "en") == "en_xx_17"  # not a language code: prefixed


def test_prefix_collision_is_an_error(tmp_path):
    # with lang="de", the raw query ids "q1" and "de_q1" both become "de_q1"
    with pytest.raises(ValueError, match="both become 'de_q1'"):
        _ = BeirFolder(make_folder(tmp_path / "c"), lang="de").queries


def test_topics_and_qrels_of_each_split(folder):
    data = BeirFolder(folder)
    topics = data.get_topics()
    assert list(topics.columns) == ["qid", "query"]
    assert topics["qid"].tolist() == ["en_q1", "de_q1"]  # judged in test, in file order
    qrels = data.get_qrels()
    assert list(qrels.columns) == ["qid", "docno", "label"] and qrels["label"].dtype == "int64"
    assert set(zip(qrels.qid, qrels.docno, qrels.label)) == {
        ("en_q1", "en_d1", 1), ("en_q1", "de_d4", 1), ("de_q1", "de_d4", 1), ("de_q1", "en_d1", 1),
        ("en_q1", "en_d2", 0)}
    assert data.get_topics("train")["qid"].tolist() == ["en_q2", "en_q3"]
    assert len(data.get_qrels("train")) == 3
    assert BeirFolder(folder, split="train").get_topics()["qid"].tolist() == ["en_q2", "en_q3"]


def test_a_beir_folder_is_a_pyterrier_dataset_with_a_text_loader(folder):
    import pyterrier as pt

    data = BeirFolder(folder)
    assert isinstance(data, pt.datasets.Dataset)
    topics, qrels = data.get_topicsqrels("train")  # PyTerrier passes the split as variant=
    assert topics["qid"].tolist() == ["en_q2", "en_q3"] and len(qrels) == 3
    with pytest.raises(ValueError, match="differ"):
        data.get_topics("train", variant="test")
    assert data.get_corpus_lang() is None and data.get_topics_lang() is None  # en, de and es
    run = pd.DataFrame({"qid": ["en_q1", "en_q1"], "query": ["x", "x"], "docno": ["de_d4", "en_d2"],
                        "score": [2.0, 1.0], "rank": [0, 1]})
    with_text = pt.text.get_text(data, "text")(run)
    assert with_text["text"].tolist() == ["Kaution Die Kaution ist binnen 30 Tagen zurückzuzahlen.",
                                          "Rent may be increased once every 12 months."]
    assert list(with_text.columns) == [*run.columns, "text"] and with_text["score"].tolist() == [2.0, 1.0]
    every = data.text_loader()(run)
    assert every["lang"].tolist() == ["de", "en"] and every["title"].tolist() == ["Kaution", ""]
    assert data.text_loader("text")(run.iloc[:0]).columns.tolist() == [*run.columns, "text"]
    with pytest.raises(ValueError, match="no document field"):
        data.text_loader("body")
    with pytest.raises(KeyError, match="'en_d9' is not in"):
        data.text_loader("text")(run.assign(docno=["en_d9", "en_d2"]))


def test_pairs_are_relevant_judgements_grouped_by_unprefixed_id(folder):
    pairs = BeirFolder(folder).pairs()
    assert list(pairs.columns) == list(PAIR_COLUMNS)
    assert len(pairs) == 4  # label 0 is not a pair
    assert set(pairs["group_id"]) == {"q1"}  # en_q1 and de_q1 are translations: one group
    assert set(zip(pairs.qlang, pairs.dlang)) == {("en", "en"), ("en", "de"), ("de", "de"), ("de", "en")}
    row = pairs[(pairs.qlang == "de") & (pairs.dlang == "de")].iloc[0]
    assert row.query.startswith("Wann") and row.text.startswith("Kaution Die Kaution")
    train = pairs_from_beir_dir(folder)  # split="train" by default
    assert sorted(train["group_id"]) == ["q2", "q3"]
    assert len(pairs_from_beir_dir(folder, min_label=2)) == 1
    with pytest.raises(ValueError, match="no judgement with label >= 5"):
        pairs_from_beir_dir(folder, min_label=5)


def test_experiment_with_bm25_over_the_folder(folder, tmp_path):
    import pyterrier as pt

    from pyterrier_hybrid.bm25 import BM25Index

    data = BeirFolder(folder)
    index = BM25Index.build(data.get_corpus_iter(), tmp_path / "bm25")
    assert len(index) == 5 and index.langs == ["de", "en", "es"]
    result = pt.Experiment([index.retriever(num_results=10)], data.get_topics(), data.get_qrels(),
                           ["map", "ndcg_cut_10"], names=["BM25"])
    assert result.loc[0, "name"] == "BM25"
    assert 0.0 < result.loc[0, "map"] <= 1.0 and 0.0 < result.loc[0, "ndcg_cut_10"] <= 1.0


# --------------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize(("mutate", "message"), [
    (lambda p: None, "does not exist or is not a directory"),
    (lambda p: (p / "corpus.jsonl").unlink(), "corpus.jsonl is missing"),
    (lambda p: (p / "queries.jsonl").unlink(), "queries.jsonl is missing"),
    (lambda p: [f.unlink() for f in (p / "qrels").glob("*.tsv")], "no qrels"),
])
def test_missing_folder_or_files(tmp_path, mutate, message):
    path = make_folder(tmp_path / "f")
    if message.startswith("does not exist"):
        path = tmp_path / "nowhere"
    mutate(path)
    with pytest.raises(ValueError, match=message):
        BeirFolder(path)


def test_unknown_split_lists_the_available_ones(folder):
    with pytest.raises(ValueError, match="unknown split 'dev'.*available splits: test, train"):
        BeirFolder(folder, split="dev")
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        BeirFolder(folder).get_qrels("dev")


def test_unknown_language(folder, tmp_path):
    with pytest.raises(ValueError, match="unknown language of the BEIR folder 'xx'"):
        BeirFolder(folder, lang="xx")
    bad = make_folder(tmp_path / "b", corpus=[*CORPUS, {"_id": "d9", "text": "t", "lang": "klingon"}])
    with pytest.raises(ValueError, match="'lang' of row 6.*'klingon'"):
        _ = BeirFolder(bad).docs


@pytest.mark.parametrize(("corpus", "message"), [
    ([CORPUS[0], "{not json"], r"corpus.jsonl, line 2: not valid JSON"),
    ([CORPUS[0], "[1, 2]"], r"line 2: expected a JSON object, got list"),
    ([CORPUS[0], {"_id": "d7", "title": "no text"}], r"line 2: missing field\(s\) \['text'\]"),
    ([{"text": "no id"}], r"line 1: missing field\(s\) \['_id'\]"),
    ([CORPUS[0], {"_id": "d1", "text": "again"}], "id 'd1' occurs more than once"),
    ([{"_id": "d1", "text": {"nested": 1}}], r"line 1: field 'text' of id 'd1' is a dict .*must be a string"),
    ([{"_id": "de_d1", "text": "x", "lang": "es"}], "carries the language prefix 'de' but its 'lang' field says 'es'"),
    ([], "corpus.jsonl is empty"),
])
def test_bad_corpus_lines(tmp_path, corpus, message):
    path = make_folder(tmp_path / "b", corpus=corpus)
    with pytest.raises(ValueError, match=message):
        BeirFolder(path).get_qrels()


@pytest.mark.parametrize(("rows", "header", "message"), [
    ([("q1", "d99", 1)], None, "corpus-id 'd99' is not in corpus.jsonl"),
    ([("q99", "d1", 1)], None, "query-id 'q99' is not in queries.jsonl"),
    ([("q1", "d1", "high")], None, "score 'high' is not an integer"),
    ([("q1", "d1", 1)], "qid\tdocno\tlabel", r"lacks column\(s\) \['query-id', 'corpus-id', 'score'\]"),
    ([("q1", "d1", 1), ("q1", "d1", 1)], None, "judges document 'en_d1' more than once"),
    ([], None, "holds no judgements"),
])
def test_bad_qrels(folder, rows, header, message):
    write_qrels(folder / "qrels" / "test.tsv", rows, **({"header": header} if header else {}))
    with pytest.raises(ValueError, match=message):
        BeirFolder(folder).get_qrels()
    with pytest.raises(ValueError, match=message):
        BeirFolder(folder).get_topics()


def test_short_qrels_line_and_empty_file(folder):
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\n", encoding="utf-8")
    with pytest.raises(ValueError, match="line 2: 2 field"):
        BeirFolder(folder).get_qrels()
    (folder / "qrels" / "test.tsv").write_text("", encoding="utf-8")
    with pytest.raises(ValueError, match="test.tsv is empty"):
        BeirFolder(folder).get_qrels()


# --------------------------------------------------------------------------------------------- writing, splits
def test_write_and_read_back(tmp_path):
    corpus = pd.DataFrame({"docno": ["en_a", "de_b"], "title": ["T", ""], "text": ["alpha", "beta"],
                           "lang": ["en", "de"]})
    queries = pd.DataFrame({"qid": ["en_x", "de_x"], "query": ["what alpha", "was beta"]})
    qrels = {"test": pd.DataFrame({"qid": ["en_x", "de_x"], "docno": ["en_a", "de_b"], "label": [1, 1]})}
    path = write_beir_folder(tmp_path / "w", corpus=corpus, queries=queries, qrels=qrels)
    data = BeirFolder(path)
    assert data.docs["docno"].tolist() == ["en_a", "de_b"] and data.docs["text"].tolist() == ["T alpha", "beta"]
    assert data.get_qrels().equals(qrels["test"])
    with pytest.raises(FileExistsError):
        write_beir_folder(path, corpus=corpus, queries=queries, qrels=qrels)
    write_beir_folder(path, corpus=corpus, queries=queries, qrels=qrels, overwrite=True)
    with pytest.raises(ValueError, match="lacks column"):
        write_beir_folder(tmp_path / "v", corpus=corpus.drop(columns="text"), queries=queries, qrels=qrels)


def test_split_groups_is_reproducible_and_disjoint():
    groups = [f"g{i}" for i in range(20)]
    train, test = split_groups(groups, test_fraction=0.25, seed=3)
    assert len(test) == 5 and not set(train) & set(test) and sorted(train + test) == sorted(groups)
    assert split_groups(reversed(groups), test_fraction=0.25, seed=3) == (train, test)
    assert split_groups(groups, test_fraction=0.25, seed=4) != (train, test)
    assert sorted(map(len, split_groups(["a", "b"], test_fraction=0.9))) == [1, 1]  # one group left to train on
    with pytest.raises(ValueError, match=r"test_fraction must be in \(0, 1\)"):
        split_groups(groups, test_fraction=1.0)


# --------------------------------------------------------------------------------------------- shipped data
def load_script(path: Path):
    spec = importlib.util.spec_from_file_location(f"script_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_shipped_data_is_generated_and_small(capsys):
    assert load_script(DATA / "make_legal_qa.py").main(["--check"]) == 0
    size = sum(p.stat().st_size for p in DATA.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    assert size < 300 * 1024


def test_shipped_beir_folder(tmp_path):
    data = BeirFolder(DATA / "legal_qa_beir")
    assert data.langs == ["en"] and 150 <= len(data.docs) <= 300
    train, test = data.get_topics("train"), data.get_topics("test")
    assert 60 <= len(train) + len(test) <= 120 and not set(train.qid) & set(test.qid)
    assert len(data.pairs("train")) == len(train)


def test_shipped_lareqa_dir_converts_with_the_same_test_questions(tmp_path):
    converted = lareqa_dir_to_beir(DATA / "legal_qa_lareqa", tmp_path / "conv", test_fraction=0.3, seed=0)
    assert converted.langs == ["de", "en", "es"]
    english = BeirFolder(DATA / "legal_qa_beir")
    groups = {q.partition("_")[2] for q in converted.get_topics("test")["qid"]}
    assert groups == {q.partition("_")[2] for q in english.get_topics("test")["qid"]}
    # pooled qrels: each test question is relevant to its answer in all three languages
    assert converted.get_qrels().groupby("qid").size().eq(3).all()
    # the train pairs are the LAReQA pairs of the train groups
    lareqa = pairs_from_lareqa_dir(DATA / "legal_qa_lareqa")
    lareqa = lareqa[~lareqa["group_id"].isin(groups)]
    key = list(PAIR_COLUMNS)
    assert sorted(map(tuple, converted.pairs("train")[key].to_numpy())) == sorted(map(tuple, lareqa[key].to_numpy()))


def test_lareqa_conversion_errors(tmp_path):
    with pytest.raises(ValueError, match="not a directory"):
        lareqa_dir_to_beir(tmp_path / "none", tmp_path / "out")
    (tmp_path / "src").mkdir()
    with pytest.raises(ValueError, match="holds no <lang>.json"):
        lareqa_dir_to_beir(tmp_path / "src", tmp_path / "out")
    (tmp_path / "src" / "en.json").write_text('{"data": [{"paragraphs": [{"qas": []}]}]}', encoding="utf-8")
    with pytest.raises(ValueError, match="not LAReQA-style JSON"):
        lareqa_dir_to_beir(tmp_path / "src", tmp_path / "out")
    with pytest.raises(ValueError, match=r"no file for language\(s\) \['de'\]"):
        lareqa_dir_to_beir(tmp_path / "src", tmp_path / "out", langs=["de"])
    qa = {"id": "q1", "question": "Who?", "answers": [{"text": "Anna", "answer_start": 0}]}
    paragraph = {"context": "Anna did.", "sentences": ["Anna did."], "sentence_breaks": [[0, 9]], "qas": [qa, qa]}
    (tmp_path / "src" / "en.json").write_text(json.dumps({"data": [{"paragraphs": [paragraph]}]}), encoding="utf-8")
    with pytest.raises(ValueError, match="question id 'q1' occurs more than once"):
        lareqa_dir_to_beir(tmp_path / "src", tmp_path / "out")
    (tmp_path / "src" / "en.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match="en.json is not valid JSON"):
        lareqa_dir_to_beir(tmp_path / "src", tmp_path / "out")
