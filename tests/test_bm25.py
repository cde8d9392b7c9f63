"""Multilingual BM25: tokenizers, index round trip, language filters, and mAP on real XQuAD-R Thai."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pyterrier_hybrid.bm25 import BM25Index, BM25Indexer, BM25Retriever, make_tokenizer

# Two documents per language; each query (in that language) shares words with the first one only.
TOY = {
    "ar": ("القاهرة هي عاصمة مصر وأكبر مدنها", "يتحدث الناس اللغة العربية في المغرب", "ما هي عاصمة مصر"),
    "de": ("Berlin ist die Hauptstadt von Deutschland", "Der Rhein fließt durch Städte", "Hauptstadt Deutschland"),
    "el": ("Η Αθήνα είναι η πρωτεύουσα της Ελλάδας", "Η θάλασσα είναι γαλάζια το καλοκαίρι", "πρωτεύουσα Ελλάδας"),
    "en": ("London is the capital of England", "Rivers flow into the sea", "capital of England"),
    "es": ("Madrid es la capital de España", "El río Ebro pasa por Zaragoza", "capital de España"),
    "hi": ("भारत की राजधानी नई दिल्ली है", "गंगा नदी बहुत लंबी है", "भारत की राजधानी"),
    "ru": ("Москва является столицей России", "Волга впадает в Каспийское море", "столицей России"),
    "th": ("กรุงเทพมหานครเป็นเมืองหลวงของประเทศไทย", "แม่น้ำเจ้าพระยาไหลผ่านหลายจังหวัด", "เมืองหลวงของประเทศไทย"),
    "tr": ("Ankara Türkiye'nin başkentidir", "Boğaz iki kıtayı ayırır", "Türkiye başkent Ankara"),
    "vi": ("Hà Nội là thủ đô của Việt Nam", "Sông Mê Kông chảy qua nhiều nước", "thủ đô Việt Nam"),
    "zh": ("北京是中华人民共和国的首都", "长江是中国最长的河流", "中国的首都是北京"),
}


def toy_docs() -> pd.DataFrame:
    rows = []
    for lang, (d0, d1, _) in TOY.items():
        rows += [{"docno": f"{lang}_0", "text": d0}, {"docno": f"{lang}_1", "text": d1}]
    return pd.DataFrame(rows)


def toy_queries() -> pd.DataFrame:
    return pd.DataFrame([{"qid": f"{lang}_q", "query": q} for lang, (_, _, q) in TOY.items()])


@pytest.fixture(scope="module")
def toy_index(tmp_path_factory) -> BM25Index:
    return BM25Indexer(tmp_path_factory.mktemp("bm25") / "default").index(toy_docs())  # icu-ngram


def test_columns_and_ranks(toy_index):
    res = toy_index.retriever()(toy_queries())
    assert list(res.columns) == ["qid", "query", "docno", "score", "rank"]
    for _, g in res.groupby("qid"):
        assert g["rank"].tolist() == list(range(len(g)))
        assert (np.diff(g["score"].to_numpy()) <= 0).all()
        assert (g["score"] > 0).all()


@pytest.mark.parametrize("tokenizer", ["icu", "ngram", "icu-ngram"])
def test_ranks_matching_doc_first_in_every_language(tmp_path, tokenizer):
    index = BM25Indexer(tmp_path / tokenizer, tokenizer=tokenizer).index(toy_docs())
    res = index.retriever()(toy_queries())
    top = res[res["rank"] == 0].set_index("qid")["docno"]
    expected = {f"{lang}_q": f"{lang}_0" for lang in TOY}
    assert top.to_dict() == expected


def test_regex_baseline_cannot_split_chinese_or_thai():
    # bm25s's default pattern keeps an unspaced Chinese/Thai sentence as one token: sub-phrases never match.
    regex, icu = make_tokenizer("regex"), make_tokenizer("icu")
    assert len(regex([TOY["zh"][0]])[0]) == 1
    assert len(icu([TOY["zh"][0]])[0]) > 3
    assert len(icu([TOY["th"][0]])[0]) > 3


def test_ngram_keeps_hindi_vowel_signs_inside_words():
    grams = make_tokenizer("ngram", ngram=3)(["राजधानी"])[0]
    assert "".join(g[0] for g in grams) + grams[-1][1:] == "राजधानी"


def test_empty_frame_keeps_columns(toy_index):
    res = toy_index.retriever()(pd.DataFrame({"qid": pd.Series(dtype=str), "query": pd.Series(dtype=str)}))
    assert len(res) == 0
    assert list(res.columns) == ["qid", "query", "docno", "score", "rank"]


def test_query_without_known_tokens_returns_nothing(toy_index):
    res = toy_index.retriever()(pd.DataFrame({"qid": ["a", "b"], "query": ["zzzqqq", "capital"]}))
    assert set(res["qid"]) == {"b"}


def test_missing_query_column_is_a_clear_error(toy_index):
    with pytest.raises(Exception, match="query"):
        toy_index.retriever()(pd.DataFrame({"qid": ["1"]}))


def test_num_results_and_bad_options(toy_index):
    res = toy_index.retriever(num_results=1)(pd.DataFrame({"qid": ["1"], "query": ["capital capitale Hauptstadt"]}))
    assert len(res) == 1
    with pytest.raises(ValueError, match="num_results"):
        toy_index.retriever(num_results=0)
    with pytest.raises(ValueError, match="valid names"):
        make_tokenizer("whitespace")
    with pytest.raises(ValueError, match="subword_tokenizer"):
        make_tokenizer("subword")


def test_save_load_round_trip(tmp_path, toy_index):
    path = tmp_path / "idx"
    BM25Indexer(path).index(toy_docs().to_dict("records"))  # iter-dict input, as from get_corpus_iter()
    queries = toy_queries()
    again = BM25Retriever(str(path))(queries)  # a fresh object reading the files
    pd.testing.assert_frame_equal(again, toy_index.retriever()(queries))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idx"]  # no temporary directories left behind
    with pytest.raises(FileExistsError, match="overwrite"):
        BM25Indexer(path).index(toy_docs())
    BM25Indexer(path, overwrite=True, tokenizer="ngram").index(toy_docs())
    assert BM25Index(path).manifest["tokenizer"] == {"name": "ngram", "n": 3}
    with pytest.raises(FileNotFoundError, match="not a BM25 index"):
        BM25Index(tmp_path / "nothing")


def test_bad_corpus_errors(tmp_path):
    with pytest.raises(KeyError, match="docno"):
        BM25Indexer(tmp_path / "a").index([{"id": "x", "text": "hello"}])
    with pytest.raises(ValueError, match="empty"):
        BM25Indexer(tmp_path / "b").index([])
    with pytest.raises(ValueError, match="duplicate"):
        BM25Indexer(tmp_path / "c").index([{"docno": "en_1", "text": "a b"}, {"docno": "en_1", "text": "c"}])


def test_language_filter_equals_per_language_index(tmp_path, toy_index):
    docs = toy_docs()
    queries = pd.DataFrame({"qid": ["1", "2", "3"], "query": ["首都 北京", "中国 河流", "capital 北京"]})
    for langs in (["zh"], ["en"], ["zh", "en"]):
        alone = BM25Indexer(tmp_path / "_".join(langs)).index(docs[docs["docno"].str[:2].isin(langs)])
        want = alone.retriever()(queries)
        if len(langs) > 1:  # several languages: each scored by its own model, merged by score
            parts = [BM25Indexer(tmp_path / f"p{lang}").index(docs[docs["docno"].str[:2] == lang]) for lang in langs]
            want = pd.concat([p.retriever()(queries) for p in parts])
            want = want.sort_values(["qid", "score"], ascending=[True, False], kind="stable")
            want["rank"] = want.groupby("qid").cumcount()
            want = want.reset_index(drop=True)
        got = toy_index.retriever(langs=langs)(queries)
        assert set(got["docno"].str[:2]) <= set(langs)
        pd.testing.assert_frame_equal(got[want.columns], want, check_dtype=False)
    pooled = toy_index.retriever()(queries)
    assert {"zh", "en", "es"} <= set(pooled["docno"].str[:2])  # "capital" is Spanish too: the pool spans languages


def test_language_filter_errors(tmp_path, toy_index):
    with pytest.raises(ValueError, match="valid codes"):
        toy_index.retriever(langs=["xx"])
    no_lang = BM25Indexer(tmp_path / "nolang").index(pd.DataFrame({"docno": ["d1", "d2"], "text": ["a b", "c d"]}))
    assert no_lang.langs == []
    with pytest.raises(ValueError, match="no per-language"):
        no_lang.retriever(langs="en")


def _tiny_subword_tokenizer(path):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["[UNK]"])
    tok.train_from_iterator(toy_docs()["text"].str.lower(), trainer)
    tok.save(str(path))
    return path


def test_subword_tokenizer_is_copied_into_the_index(tmp_path):
    src = _tiny_subword_tokenizer(tmp_path / "tokenizer.json")
    index = BM25Indexer(tmp_path / "sub", tokenizer="subword", subword_tokenizer=src).index(toy_docs())
    queries = toy_queries()
    before = index.retriever()(queries)
    src.unlink()  # the index must not need the model's files any more
    after = BM25Index(tmp_path / "sub").retriever()(queries)
    pd.testing.assert_frame_equal(before, after)
    top = after[after["rank"] == 0].set_index("qid")["docno"]
    assert top["en_q"] == "en_0" and top["ru_q"] == "ru_0"
    with pytest.raises(FileNotFoundError, match="tokenizer.json"):
        make_tokenizer("subword", subword_tokenizer=tmp_path)


@pytest.mark.integration
def test_real_thai_map_far_above_random(lareqa_mirror, tmp_path):
    import pyterrier as pt
    from ir_measures import AP

    import pyterrier_hybrid  # noqa: F401

    ds = pt.get_dataset("irds:xquad-r/th")
    index = BM25Indexer(tmp_path / "th").index(ds.get_corpus_iter(verbose=False))
    topics = ds.get_topics("text").iloc[:300]
    res = pt.Experiment([index.retriever(num_results=100)], topics, ds.get_qrels(), eval_metrics=[AP])
    n_docs = len(index)
    random_ap = sum(1 / r for r in range(1, n_docs + 1)) / n_docs  # expected AP of a random ranking, 1 relevant
    assert res["AP"].iloc[0] > max(0.3, 20 * random_ap)


def test_stemming_is_per_language(tmp_path):
    pytest.importorskip("Stemmer")
    docs = pd.DataFrame(
        {"docno": ["ru_0", "ru_1", "de_0", "de_1"],
         "text": ["Москва является столицей России", "Волга впадает в море",
                  "Europas Hauptstädte sind groß", "Der Rhein fließt"]}
    )
    plain = BM25Indexer(tmp_path / "plain", tokenizer="icu").index(docs)
    stemmed = BM25Indexer(tmp_path / "stem", tokenizer="icu", stem=True).index(docs)
    assert BM25Index(tmp_path / "stem").manifest["stem"] is True
    queries = pd.DataFrame({"qid": ["ru_a", "de_b"], "query": ["столица", "Hauptstädten"]})
    assert len(plain.retriever()(queries)) == 0  # inflected forms differ without stemming
    top = stemmed.retriever()(queries).query("rank == 0").set_index("qid")["docno"].to_dict()
    assert top == {"ru_a": "ru_0", "de_b": "de_0"}
    # the query language comes from a `lang` column when there is one (here wrong on purpose: no match)
    wrong = stemmed.retriever()(queries.assign(qid=["1", "2"], lang=["th", "th"]))
    assert len(wrong) == 0


def test_icu_ngram_round_trip(tmp_path):
    index = BM25Indexer(tmp_path / "x", tokenizer="icu-ngram", ngram=4).index(toy_docs())
    again = BM25Index(tmp_path / "x")
    assert again.manifest["tokenizer"] == {"name": "icu-ngram", "n": 4}
    assert again.tokenizer(["Hauptstadt 首都"]) == [["haup", "aupt", "upts", "ptst", "tsta", "stad", "tadt", "首都"]]
    pd.testing.assert_frame_equal(again.retriever()(toy_queries()), index.retriever()(toy_queries()))
