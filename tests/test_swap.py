"""Whole-folder swaps: kill -9 at the dangerous instant of a DenseIndex rebuild, and atomic_dir's own contract.

A build runs in a subprocess that SIGKILLs itself at one instant of the swap (``_io._exchange`` or ``os.rename``
patched) or while encoding. Afterwards the path must hold the complete old or the complete new index (opened and
searched here, compared with reference indexes), and the next build or :func:`recover_dir` must tidy up.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pyterrier_hybrid import _io
from pyterrier_hybrid.index import DenseIndex

ROOT = Path(__file__).resolve().parents[1]

# Shared by this process and the killed builds: a fake encoder (manifest only, or deterministic text vectors)
# and seeded corpora with precomputed doc_vec, so no model is loaded anywhere.
PRELUDE = '''
import os, signal, sys
import numpy as np, pandas as pd
from pyterrier_hybrid import _io
from pyterrier_hybrid.index import DenseIndex

DIM = 8


class Encoder:
    calls = 0

    def manifest(self):
        return {"model": "swap-test", "dim": DIM}

    def encode_docs(self, texts):
        Encoder.calls += 1
        if Encoder.calls == int(os.environ.get("DIE_AT_ENCODE_CALL", "0")):
            die()
        return np.stack([docs(int(t.split()[0]))["doc_vec"][int(t.split()[1])] for t in texts])


def docs(seed, n=40):
    rng = np.random.default_rng(seed)
    v = rng.standard_normal((n, DIM)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    docnos = [f"{('en', 'de')[i % 2]}_{seed}_{i:03d}" for i in range(n)]
    return pd.DataFrame({"docno": docnos, "doc_vec": list(v), "text": [f"{seed} {i}" for i in range(n)]})


def die():
    os.kill(os.getpid(), signal.SIGKILL)
'''
_NS: dict = {}
exec(PRELUDE, _NS)  # the same definitions here as in the subprocesses
Encoder, docs = _NS["Encoder"], _NS["docs"]

OLD, NEW, NEWER = 1, 2, 3


def _build(path: Path, seed: int, *, overwrite: bool = False) -> DenseIndex:
    index = DenseIndex(path)
    index.indexer(Encoder(), overwrite=overwrite).index(docs(seed)[["docno", "doc_vec"]])
    return index


def _queries() -> pd.DataFrame:
    rng = np.random.default_rng(99)
    return pd.DataFrame({"qid": [f"q{i}" for i in range(5)],
                         "query_vec": list(rng.standard_normal((5, 8)).astype(np.float32))})


def _ranking(path: Path) -> list[tuple]:
    res = DenseIndex(path).retriever(num_results=10)(_queries())
    return list(zip(res["qid"], res["docno"], np.round(res["score"].astype(float), 6)))


def _leftovers(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir() if p.name.startswith(f".{path.name}."))


def _run_killed(body: str, path: Path, **env: str) -> None:
    """Run PRELUDE + body in a fresh interpreter; it must die of SIGKILL (exit 3: exchange unsupported here)."""
    proc = subprocess.run([sys.executable, "-c", PRELUDE + body, str(path)], cwd=ROOT, capture_output=True,
                          text=True, env={**os.environ, **env}, timeout=600)
    if proc.returncode == 3:
        pytest.skip("this file system has no renameat2(RENAME_EXCHANGE)")
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[int, list[tuple]]:
    """Rankings of indexes built without interruption from each corpus."""
    root = tmp_path_factory.mktemp("reference")
    return {seed: _ranking(_build(root / str(seed), seed).path) for seed in (OLD, NEW, NEWER)}


@pytest.fixture
def old_index(tmp_path, reference) -> Path:
    path = tmp_path / "idx"
    _build(path, OLD)
    assert _ranking(path) == reference[OLD]
    return path


EXCHANGE_THEN_DIE = '''
real = _io._exchange
def exchange(a, b):
    if not real(a, b):
        sys.exit(3)
    die()  # swapped; the temporary sibling now holds the old index, not yet deleted
_io._exchange = exchange
DenseIndex(sys.argv[1]).indexer(Encoder(), overwrite=True).index(docs(2)[["docno", "doc_vec"]])
'''

DIE_BEFORE_EXCHANGE = '''
def exchange(a, b):
    die()  # the new index is complete in the temporary sibling, the old one still in place
_io._exchange = exchange
DenseIndex(sys.argv[1]).indexer(Encoder(), overwrite=True).index(docs(2)[["docno", "doc_vec"]])
'''

FALLBACK_DIE_AFTER = '''
_io._exchange = lambda a, b: False  # a file system without RENAME_EXCHANGE: rename aside, rename in
real_rename = os.rename
def rename(src, dst):
    real_rename(src, dst)
    if os.environ["DIE_AFTER"] in os.path.basename(dst if os.environ["DIE_AFTER"] == ".old-" else src):
        die()
os.rename = rename
DenseIndex(sys.argv[1]).indexer(Encoder(), overwrite=True).index(docs(2)[["docno", "doc_vec"]])
'''

DIE_WHILE_ENCODING = '''
DenseIndex(sys.argv[1]).indexer(Encoder(), overwrite=True, chunk_size=10).index(docs(2)[["docno", "text"]])
'''


def test_kill_right_after_the_exchange_leaves_the_new_index(old_index, reference):
    _run_killed(EXCHANGE_THEN_DIE, old_index)
    assert _ranking(old_index) == reference[NEW]
    assert [n.split(".")[2].split("-")[0] for n in _leftovers(old_index)] == ["tmp"]  # the old index, aside
    assert _io.recover_dir(old_index) and _leftovers(old_index) == []
    assert _ranking(old_index) == reference[NEW]


def test_kill_before_the_exchange_leaves_the_old_index_and_the_next_build_tidies_up(old_index, reference):
    _run_killed(DIE_BEFORE_EXCHANGE, old_index)
    assert _ranking(old_index) == reference[OLD]
    assert len(_leftovers(old_index)) == 1  # the complete new index in its temporary sibling
    _build(old_index, NEWER, overwrite=True)
    assert _leftovers(old_index) == [] and _ranking(old_index) == reference[NEWER]


def test_fallback_kill_after_moving_the_old_index_aside_restores_it(old_index, reference):
    _run_killed(FALLBACK_DIE_AFTER, old_index, DIE_AFTER=".old-")
    assert not old_index.exists()  # the one window of the fallback: the old index is aside, the new not in
    kinds = sorted(n.split(".")[2].split("-")[0] for n in _leftovers(old_index))
    assert kinds == ["old", "tmp"]
    assert DenseIndex(old_index).built()  # opening restores the old index
    assert _ranking(old_index) == reference[OLD] and _leftovers(old_index) == []


def test_fallback_kill_after_moving_the_new_index_in_keeps_it(old_index, reference):
    _run_killed(FALLBACK_DIE_AFTER, old_index, DIE_AFTER=".tmp-")
    assert _ranking(old_index) == reference[NEW]
    assert len(_leftovers(old_index)) == 1  # the old index, aside, not yet deleted
    _io.recover_dir(old_index)
    assert _leftovers(old_index) == [] and _ranking(old_index) == reference[NEW]


def test_fallback_kill_then_next_build_restores_then_replaces(old_index, reference):
    _run_killed(FALLBACK_DIE_AFTER, old_index, DIE_AFTER=".old-")
    with pytest.raises(FileExistsError, match="overwrite=True"):  # the restored old index is not overwritten
        _build(old_index, NEWER)
    assert _ranking(old_index) == reference[OLD]
    _build(old_index, NEWER, overwrite=True)
    assert _leftovers(old_index) == [] and _ranking(old_index) == reference[NEWER]


def test_kill_while_encoding_leaves_the_old_index(old_index, reference):
    _run_killed(DIE_WHILE_ENCODING, old_index, DIE_AT_ENCODE_CALL="2")
    assert _ranking(old_index) == reference[OLD]
    (left,) = _leftovers(old_index)
    assert (old_index.parent / left / "parts").is_dir()  # the half-built index of the killed process
    assert [p.name for p in _io.recover_dir(old_index)] == [left]
    assert _leftovers(old_index) == [] and _ranking(old_index) == reference[OLD]


def test_text_build_equals_doc_vec_build(tmp_path, reference):
    """The encoder path of the killed builds gives the same index as precomputed vectors."""
    index = DenseIndex(tmp_path / "text")
    index.indexer(Encoder(), chunk_size=7).index(docs(OLD)[["docno", "text"]])
    assert _ranking(index.path) == reference[OLD]


# ------------------------------------------------------------------------------------------ atomic_dir itself
def _owned_marker(path: Path) -> bool:
    return (path / "MARK").is_file()


def _write(folder: Path, text: str) -> None:
    (folder / "MARK").write_text(text)


def test_atomic_dir_writes_a_new_folder_whole(tmp_path):
    dest = tmp_path / "sub" / "out"
    with _io.atomic_dir(dest, owned=_owned_marker) as tmp:
        assert tmp.parent == dest.parent and tmp.name.startswith(".out.tmp-") and not any(tmp.iterdir())
        _write(tmp, "new")
        assert not dest.exists()  # nothing visible before the block ends
    assert (dest / "MARK").read_text() == "new" and _leftovers(dest) == []


def test_atomic_dir_refuses_an_existing_folder_without_overwrite(tmp_path):
    dest = tmp_path / "out"
    dest.mkdir()
    _write(dest, "old")
    with pytest.raises(FileExistsError, match="overwrite=True"), _io.atomic_dir(dest, owned=_owned_marker):
        pytest.fail("the block must not run")
    assert (dest / "MARK").read_text() == "old" and _leftovers(dest) == []


def test_atomic_dir_never_replaces_a_folder_it_does_not_own(tmp_path):
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "thesis.tex").write_text("years of work")
    with pytest.raises(FileExistsError, match="never replaced"), \
            _io.atomic_dir(dest, overwrite=True, owned=_owned_marker):
        pytest.fail("the block must not run")
    assert (dest / "thesis.tex").read_text() == "years of work" and _leftovers(dest) == []


def test_atomic_dir_refuses_a_file_at_dest(tmp_path):
    dest = tmp_path / "out"
    dest.write_text("a file")
    with pytest.raises(FileExistsError, match="is a file"), _io.atomic_dir(dest, overwrite=True):
        pytest.fail("the block must not run")
    assert dest.read_text() == "a file"


def test_atomic_dir_replaces_an_owned_folder_with_overwrite(tmp_path):
    dest = tmp_path / "out"
    dest.mkdir()
    _write(dest, "old")
    (dest / "stale").write_text("from the old build")
    with _io.atomic_dir(dest, overwrite=True, owned=_owned_marker) as tmp:
        _write(tmp, "new")
    assert sorted(p.name for p in dest.iterdir()) == ["MARK"] and (dest / "MARK").read_text() == "new"
    assert _leftovers(dest) == []


def test_atomic_dir_exception_removes_the_temporary_folder_and_keeps_the_old_one(tmp_path):
    dest = tmp_path / "out"
    dest.mkdir()
    _write(dest, "old")
    with pytest.raises(RuntimeError, match="writer failed"), \
            _io.atomic_dir(dest, overwrite=True, owned=_owned_marker) as tmp:
        _write(tmp, "half")
        raise RuntimeError("writer failed")
    assert (dest / "MARK").read_text() == "old" and _leftovers(dest) == []


def test_atomic_dir_refuses_a_folder_that_appeared_meanwhile(tmp_path):
    dest = tmp_path / "out"
    with pytest.raises(FileExistsError, match="overwrite=True"), _io.atomic_dir(dest) as tmp:
        _write(tmp, "mine")
        dest.mkdir()  # another writer got there first
        _write(dest, "theirs")
    assert (dest / "MARK").read_text() == "theirs" and _leftovers(dest) == []


def test_leftovers_of_a_live_process_are_kept_and_of_a_dead_one_removed(tmp_path):
    dest = tmp_path / "out"
    live = _io._sibling(dest, "tmp")  # this process: alive
    live.mkdir()
    dead_pid = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True, check=True).stdout.strip()
    dead = dest.with_name(f".{dest.name}.tmp-{_io._HOST}-{dead_pid}-0badf00d")
    dead.mkdir()
    other_host = dest.with_name(f".{dest.name}.tmp-elsewhere-{dead_pid}-0badf00d")  # shared file system
    other_host.mkdir()
    with _io.atomic_dir(dest) as tmp:
        _write(tmp, "new")
    assert live.is_dir() and other_host.is_dir() and not dead.exists()
    assert (dest / "MARK").read_text() == "new"
