"""Sharded encoding: torchrun with 2 CPU processes (gloo) equals one process; a dead rank, its rerun, the merge."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pyterrier_hybrid.cli import main
from pyterrier_hybrid.datasets.beir import write_beir_folder
from pyterrier_hybrid.index import DenseIndex
from pyterrier_hybrid.sharding import (
    Corpus,
    IncompleteShardsError,
    Shard,
    encode_shard,
    merge_shards,
    open_corpus,
    shard_dir,
    shard_from_env,
    shards_root,
)

ROOT = Path(__file__).resolve().parents[1]
WORDS = {
    "en": "river bank money city music paper water school light house".split(),
    "de": "Fluss Bank Geld Stadt Musik Papier Wasser Schule Licht Haus".split(),
    "zh": "河流 银行 金钱 城市 音乐 纸张 水 学校 光 房子".split(),
}
TOPICS = pd.DataFrame({"qid": ["q1", "q2", "q3"], "query": ["river money", "Stadt Musik Haus", "学校 光"]})


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory) -> Path:
    """A BEIR folder of 300 short documents in 3 languages, interleaved so that every shard cuts across them."""
    rng = np.random.default_rng(0)
    rows = [{"docno": f"{lang}_{i:03d}", "text": " ".join(rng.choice(WORDS[lang], size=3 + i % 6)), "lang": lang}
            for i in range(100) for lang in ("zh", "en", "de")]
    corpus = pd.DataFrame(rows)
    queries = pd.DataFrame({"qid": ["en_q1"], "query": ["river"], "lang": ["en"]})
    qrels = {"test": pd.DataFrame({"qid": ["en_q1"], "docno": ["en_000"], "label": [1]})}
    return write_beir_folder(tmp_path_factory.mktemp("beir") / "corpus", corpus=corpus, queries=queries, qrels=qrels)


@pytest.fixture(scope="module")
def single(corpus_dir, tiny_model_dir, tmp_path_factory, one_torch_thread) -> DenseIndex:
    """The index one process builds (no shards)."""
    path = tmp_path_factory.mktemp("one") / "index"
    assert main(["index", str(corpus_dir), str(path), "--model", str(tiny_model_dir), "-q"]) == 0
    assert not shards_root(path).exists()
    return DenseIndex(path)


def _same_index(got: DenseIndex, ref: DenseIndex, model_dir: Path) -> None:
    from pyterrier_hybrid.encoding import BiEncoder

    assert got.manifest["langs"] == ref.manifest["langs"] == {"de": [0, 100], "en": [100, 200], "zh": [200, 300]}
    assert list(got.docnos()) == list(ref.docnos())
    np.testing.assert_allclose(got.vectors(), ref.vectors(), atol=1e-5)
    enc = BiEncoder(str(model_dir), device="cpu")
    for langs in (None, ["de"]):
        a = got.retriever(enc, langs=langs, num_results=20)(TOPICS)
        b = ref.retriever(enc, langs=langs, num_results=20)(TOPICS)
        assert list(a["docno"]) == list(b["docno"])
        np.testing.assert_allclose(a["score"], b["score"], atol=1e-5)


def _torchrun() -> str:
    found = shutil.which("torchrun") or str(Path(sys.executable).parent / "torchrun")
    if not Path(found).exists():
        pytest.skip("torchrun not found")
    return found


@pytest.mark.slow  # two torchrun processes, each importing the stack and loading the model
def test_torchrun_two_cpu_processes_equal_one_process(corpus_dir, tiny_model_dir, single, tmp_path):
    path = tmp_path / "index"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1",
           "PYTERRIER_HYBRID_OFFLINE": "1"}
    cmd = [_torchrun(), "--standalone", "--nnodes", "1", "--nproc_per_node", "2", "-m", "pyterrier_hybrid.cli",
           "index", str(corpus_dir), str(path), "--model", str(tiny_model_dir), "--threads", "1", "-q"]
    # The timeout only guards against a hung rendezvous; it is far above any run time.
    proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert f"indexed 300 documents into {path}" in proc.stdout
    assert "shard 1/2: documents 150-299" in proc.stdout
    _same_index(DenseIndex(path), single, tiny_model_dir)
    assert not shards_root(path).exists()  # merged, then the shard copies were removed


def test_dead_rank_is_named_and_its_rerun_completes_the_merge(corpus_dir, tiny_model_dir, single, tmp_path,
                                                              capsys):
    path = tmp_path / "index"
    base = ["index", str(corpus_dir), str(path), "--model", str(tiny_model_dir), "-q"]
    assert main([*base, "--shard", "0/2"]) == 0  # rank 1 "died": its shard was never written
    assert "merge with" in capsys.readouterr().out
    assert main([*base, "--merge"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "shard 1/2" in err and "--shard 1/2" in err and "--merge" in err
    assert not path.exists()
    assert main([*base, "--shard", "1/2"]) == 0
    assert main([*base, "--merge"]) == 0
    _same_index(DenseIndex(path), single, tiny_model_dir)
    assert not shards_root(path).exists()


def test_a_complete_shard_is_kept_and_a_foreign_one_refused(corpus_dir, tiny_model_dir, tmp_path, one_torch_thread):
    from pyterrier_hybrid.encoding import BiEncoder

    enc = BiEncoder(str(tiny_model_dir), device="cpu")
    corpus = open_corpus(corpus_dir)
    path = tmp_path / "index"
    folder = encode_shard(corpus, path, enc, Shard(1, 3))
    stamp = (folder / "shard.json").stat().st_mtime_ns
    assert encode_shard(corpus, path, enc, Shard(1, 3)) == folder  # rerun: kept, not encoded again
    assert (folder / "shard.json").stat().st_mtime_ns == stamp
    record = json.loads((folder / "shard.json").read_text())
    assert (record["start"], record["stop"], record["corpus_count"]) == (100, 200, 300)
    smaller = Corpus.from_records(list(corpus.read(0, 90)), name="other")
    with pytest.raises(FileExistsError, match="another corpus"):
        encode_shard(smaller, path, enc, Shard(1, 3))
    encode_shard(smaller, path, enc, Shard(0, 3))
    encode_shard(smaller, path, enc, Shard(2, 3))
    with pytest.raises(IncompleteShardsError, match="shard 1/3 .* was encoded from") as e:
        merge_shards(path)
    assert "\n" not in str(e.value)
    encode_shard(smaller, path, enc, Shard(1, 3), overwrite=True)
    assert len(merge_shards(path)) == 90


def test_shards_tile_the_corpus():
    for total in (0, 1, 5, 299, 300, 301):
        for n in (1, 2, 3, 7):
            bounds = [Shard(i, n).bounds(total) for i in range(n)]
            assert bounds[0][0] == 0 and bounds[-1][1] == total
            assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
    assert Shard.parse(" 1/4 ") == Shard(1, 4) and str(Shard(1, 4)) == "1/4"


@pytest.mark.parametrize("text", ["2/2", "-1/2", "1/0", "x", "1/2/3", "1.0/2"])
def test_bad_shards_are_one_line_errors(text):
    with pytest.raises(ValueError, match="shard|i/n") as e:
        Shard.parse(text)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("text", ["2/2", "x", "1/0"])
def test_cli_refuses_bad_shards_before_any_work(text, capsys, tmp_path):
    with pytest.raises(SystemExit) as e:
        main(["index", "xquad-r/multi", str(tmp_path / "i"), "--shard", text])
    assert e.value.code == 2
    assert "--shard" in capsys.readouterr().err


def test_torchrun_environment():
    assert shard_from_env({}) is None
    assert shard_from_env({"WORLD_SIZE": "1", "RANK": "0"}) is None
    assert shard_from_env({"WORLD_SIZE": "4", "RANK": "3"}) == Shard(3, 4)
    with pytest.raises(ValueError, match="0 <= i < n"):
        shard_from_env({"WORLD_SIZE": "2", "RANK": "2"})


def test_cli_errors_are_one_line(corpus_dir, tmp_path, capsys, monkeypatch):
    assert main(["index", "no-such/corpus", str(tmp_path / "i")]) == 1
    assert "neither a folder nor a known ir_datasets id" in capsys.readouterr().err
    assert main(["index", str(corpus_dir), str(tmp_path / "i"), "--merge"]) == 1
    assert "no shards" in capsys.readouterr().err
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    assert main(["index", str(corpus_dir), str(tmp_path / "i"), "--shard", "0/2", "-q"]) == 1
    assert "alternatives" in capsys.readouterr().err


def test_merge_with_several_shard_counts_asks_which(tmp_path):
    path = tmp_path / "index"
    for name in ("00000-of-00002", "00000-of-00003"):
        (shards_root(path) / name).mkdir(parents=True)
    with pytest.raises(IncompleteShardsError, match="--num-shards"):
        merge_shards(path)
    with pytest.raises(IncompleteShardsError, match="shard 0/2 .* missing or incomplete"):
        merge_shards(path, 2)  # a folder without its record is an unfinished (killed) build
    assert shard_dir(path, Shard(0, 2)).is_dir()  # never removed: not written by a finished shard


@pytest.mark.integration
def test_ir_datasets_corpus_slices_follow_the_iterator_order():
    import pyterrier as pt

    corpus = open_corpus("xquad-r/en")
    docs = list(pt.get_dataset("irds:xquad-r/en").get_corpus_iter(verbose=False))
    assert len(corpus) == len(docs)
    got = list(corpus.read(5, 9))
    assert [d["docno"] for d in got] == [d["docno"] for d in docs[5:9]]
    assert [d["text"] for d in got] == [d["text"] for d in docs[5:9]] and {d["lang"] for d in got} == {"en"}
