"""HybridBatchSampler: proportions, group exclusivity, determinism, epochs, presets, DDP slicing, errors."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
import pytest

from pyterrier_hybrid.training import HybridBatchSampler, validate_mode
from pyterrier_hybrid.training.testing import synthetic_pairs

N_BATCHES = 10_000


@pytest.fixture(scope="module")
def pairs() -> pd.DataFrame:
    # Partial coverage: unequal pool sizes, like MLQA-R (a group exists in some of the languages).
    # Unequal language coverage so proportional and uniform choice of configurations differ clearly.
    return synthetic_pairs(600, ("en", "de", "es", "zh"), seed=1, coverage={"en": 1.0, "de": 0.6, "es": 0.4, "zh": 0.2})


def sampler(pairs: pd.DataFrame, **kwargs) -> HybridBatchSampler:
    kwargs.setdefault("batch_size", 8)
    return HybridBatchSampler(pairs["qlang"], pairs["dlang"], pairs["group_id"], **kwargs)


def expected_shares(pairs: pd.DataFrame, kind: str, batch: int) -> dict[tuple[str, str], float]:
    """Data proportions of the configurations of one kind (in full batches, the unit the sampler draws)."""
    mono = pairs["qlang"] == pairs["dlang"]
    sub = pairs[mono] if kind == "mono" else pairs[~mono]
    sizes = sub.groupby(["qlang", "dlang"]).size()
    return {key: n / sizes.sum() for key, n in sizes.items()}


@pytest.mark.parametrize("alpha", [0.3, 0.5, 0.8])
def test_hybrid_split_and_language_frequencies(pairs, alpha):
    s = sampler(pairs, mode="hybrid", alpha=alpha, batches_per_epoch=N_BATCHES, seed=3)
    configs = s.batch_configs(0)
    assert len(configs) == N_BATCHES
    mono_share = np.mean([c.kind == "mono" for c in configs])
    assert abs(mono_share - alpha) <= 0.02
    for kind in ("mono", "cross"):
        drawn = Counter((c.qlang, c.dlang) for c in configs if c.kind == kind)
        total = sum(drawn.values())
        for key, share in expected_shares(pairs, kind, 8).items():
            assert abs(drawn[key] / total - share) <= 0.02, (kind, key, drawn[key] / total, share)
        assert all((q == d) == (kind == "mono") for q, d in drawn)


def test_no_group_twice_in_a_batch(pairs):
    groups = pairs["group_id"].to_numpy()
    for mode in ("hybrid", "mono", "cross", "x-y", "en-en"):
        s = sampler(pairs, mode=mode, batch_size=16, seed=0)
        for config, batch in s.epoch_batches(0):
            assert len(batch) == 16
            assert len(set(groups[batch])) == len(batch), (mode, config)
            if config.kind != "mixed":
                assert set(pairs["qlang"].iloc[batch]) == {config.qlang}
                assert set(pairs["dlang"].iloc[batch]) == {config.dlang}


def test_no_group_twice_with_duplicate_groups_in_a_pool():
    # Several answers per question: the same group appears many times in one pool.
    rows = [(f"q{g}", f"a{g}-{k}", "en", "en", f"g{g}") for g in range(40) for k in range(5)]
    frame = pd.DataFrame(rows, columns=["query", "text", "qlang", "dlang", "group_id"])
    s = sampler(frame, mode="mono", batch_size=8)
    groups = frame["group_id"].to_numpy()
    batches = list(s)
    assert batches and all(len(set(groups[b])) == len(b) == 8 for b in batches)


def test_same_seed_same_batches_other_seed_differs(pairs):
    a = list(sampler(pairs, seed=7))
    b = list(sampler(pairs, seed=7))
    c = list(sampler(pairs, seed=8))
    assert a == b
    assert a != c


def test_epochs_differ_and_are_reproducible(pairs):
    s = sampler(pairs, seed=0)
    s.set_epoch(1)
    first = list(s)
    s.set_epoch(2)
    assert list(s) != first
    s.set_epoch(1)
    assert list(s) == first


@pytest.mark.parametrize("mode", ["mono", "cross"])
def test_epoch_covers_data_without_repeating_a_pair(pairs, mode):
    s = sampler(pairs, mode=mode, batch_size=8, seed=2)
    seen = [i for batch in s for i in batch]
    assert len(seen) == len(set(seen))  # no pair twice in one epoch
    mono = (pairs["qlang"] == pairs["dlang"]).to_numpy()
    usable = np.flatnonzero(mono if mode == "mono" else ~mono)
    sizes = pairs.iloc[usable].groupby(["qlang", "dlang"]).size()
    # Everything but each pool's remainder (< one batch) is covered.
    assert len(seen) == sum(n // 8 * 8 for n in sizes)
    assert set(seen) <= set(usable.tolist())
    assert len(s) == len(seen) // 8


def test_hybrid_streams_do_not_repeat_before_exhausted(pairs):
    s = sampler(pairs, mode="hybrid", alpha=0.5, batch_size=8, seed=4)
    mono_batches = [b for c, b in s.epoch_batches(0) if c.kind == "mono"]
    per_pass = sum(n // 8 for n in pairs[pairs.qlang == pairs.dlang].groupby(["qlang"]).size())
    first_pass = [i for b in mono_batches[:per_pass] for i in b]
    assert len(first_pass) == len(set(first_pass))
    # Epoch length: one pass over the mono and the cross stream.
    mono = pairs.qlang == pairs.dlang
    n = sum(k // 8 for k in pairs[mono].groupby(["qlang", "dlang"]).size()) + sum(
        k // 8 for k in pairs[~mono].groupby(["qlang", "dlang"]).size()
    )
    assert len(s) == n


def test_alpha_one_only_mono_alpha_zero_only_cross(pairs):
    assert {c.kind for c in sampler(pairs, mode="hybrid", alpha=1.0).batch_configs()} == {"mono"}
    assert {c.kind for c in sampler(pairs, mode="hybrid", alpha=0.0).batch_configs()} == {"cross"}
    assert {c.kind for c in sampler(pairs, mode="mono", alpha=0.2).batch_configs()} == {"mono"}
    assert {c.kind for c in sampler(pairs, mode="cross", alpha=0.9).batch_configs()} == {"cross"}


def test_presets(pairs):
    en = {(c.qlang, c.dlang) for c in sampler(pairs, mode="en-en").batch_configs()}
    assert en == {("en", "en")}
    # X-X (LAReQA): monolingual pairs, each group once, batches mixing languages (unlike mono).
    xx = [i for b in sampler(pairs, mode="x-x", batch_size=8, seed=5) for i in b]
    assert (pairs["qlang"].iloc[xx].to_numpy() == pairs["dlang"].iloc[xx].to_numpy()).all()
    assert len(set(pairs["group_id"].iloc[xx])) == len(xx)
    assert len(xx) == pairs["group_id"].nunique() // 8 * 8
    first = sampler(pairs, mode="x-x", batch_size=8, seed=5).epoch_batches(0)[0][1]
    assert pairs["qlang"].iloc[first].nunique() > 1
    xy = sampler(pairs, mode="x-y", batch_size=8, seed=0)
    picked = [i for b in xy for i in b]
    groups = pairs["group_id"].to_numpy()[picked]
    assert len(set(groups)) == len(groups)  # each group at most once per epoch
    assert len(picked) == pairs["group_id"].nunique() // 8 * 8
    configs = Counter(zip(pairs["qlang"].iloc[picked], pairs["dlang"].iloc[picked]))
    assert len(configs) > 4  # batches mix languages and pairs


def test_batch_larger_than_smallest_pool_is_skipped_or_error(pairs):
    small = pd.concat(
        [pairs, pd.DataFrame([("q", "a", "zh", "en", "gz1"), ("q", "a", "zh", "en", "gz2")], columns=pairs.columns)]
    )
    small = small[~((small.qlang == "zh") & (small.dlang == "en")) | small.group_id.str.startswith("gz")]
    with pytest.warns(UserWarning, match="zh->en"):
        s = sampler(small, mode="cross", batch_size=8)
    assert s.skipped_pools == {("zh", "en"): 2}
    assert ("zh", "en") not in {(c.qlang, c.dlang) for c in s.batch_configs()}
    with pytest.raises(ValueError, match="zh->en has 2 pairs"):
        sampler(small, mode="cross", batch_size=8, small_pools="error")
    with pytest.raises(ValueError, match="at least one full batch"), pytest.warns(UserWarning):
        sampler(pairs, mode="mono", batch_size=10_000)


def test_world_size_slices_share_one_configuration(pairs):
    world = 2
    s = sampler(pairs, mode="hybrid", batch_size=4, world_size=world, seed=1)
    batches = list(s)
    assert len(batches) == len(s) and len(s) % world == 0
    qlang, dlang = pairs["qlang"].to_numpy(), pairs["dlang"].to_numpy()
    groups = pairs["group_id"].to_numpy()
    for step in range(0, len(batches), world):
        # Accelerate gives batch i to rank i % world: one step's slices are consecutive.
        step_idx = [i for b in batches[step : step + world] for i in b]
        assert len({(qlang[i], dlang[i]) for i in step_idx}) == 1
        assert len(set(groups[step_idx])) == len(step_idx) == 4 * world


def test_errors():
    with pytest.raises(ValueError, match="unknown mode 'bilingual'"):
        validate_mode("bilingual", 0.5)
    for alpha in (-0.1, 1.5):
        with pytest.raises(ValueError, match=r"alpha .* \[0, 1\]"):
            validate_mode("hybrid", alpha)
    with pytest.raises(ValueError, match="empty"):
        HybridBatchSampler([], [], [], batch_size=4)
    with pytest.raises(ValueError, match="one entry per pair"):
        HybridBatchSampler(["en"], ["en", "de"], ["g"], batch_size=1)
    only_mono = synthetic_pairs(50, ("en",))
    with pytest.raises(ValueError, match="crosslingual pairs"):
        sampler(only_mono, mode="cross", batch_size=4)
    with pytest.raises(ValueError, match="English"):
        sampler(synthetic_pairs(50, ("de", "es")), mode="en-en", batch_size=4)
