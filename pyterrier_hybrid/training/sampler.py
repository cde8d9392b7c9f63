"""Batch sampling for hybrid batch training (Elmahdy, Lin & Ahmad 2024, arXiv 2408.10536).

Every training pair (question, answer sentence) has a question language, an answer language and a
*parallel group id* shared by the translations of one item. A *pool* holds the pairs of one ordered
language configuration ``(qlang, dlang)``: a *mono* pool when the languages are equal, a *cross* pool
otherwise. Each batch is drawn from ONE pool.

Modes:

- ``"mono"`` (LAReQA's X-X-mono): every batch is one language; languages come up in proportion to their
  number of pairs.
- ``"cross"``: every batch is one ordered pair ``q != d``, in proportion to its number of pairs.
- ``"hybrid"``: each batch is a mono batch with probability ``alpha``, else a cross batch.
- ``"en-en"``: English-only batches (the LAReQA En-En baseline).
- ``"x-y"``: the LAReQA X-Y baseline: every parallel group is used once per epoch with a
  ``(qlang, dlang)`` drawn uniformly from the configurations the group has; batches mix languages.
- ``"x-x"``: the LAReQA X-X baseline: as ``"x-y"`` but over monolingual pairs only, i.e. every group once
  per epoch in one of its languages (question and answer alike); batches mix languages, which is what
  separates it from ``"mono"``.

What an epoch is (``mono``/``cross``/``hybrid``/``en-en``): each pool is shuffled and cut into full
batches (the remainder of a pool, fewer than a batch, is left out of that pass and lands elsewhere in
the next reshuffle). The mono batches of all mono pools form the *mono stream*, the cross batches the
*cross stream*; each stream is a random permutation of its batches. Batch ``i`` of the epoch takes the
next batch of the mono stream with probability ``alpha`` (else of the cross stream). A stream that runs
out is rebuilt with a fresh shuffle, so no pair repeats before every batch of its stream has been used.
An epoch has as many batches as one pass over every stream that can be drawn (probability > 0) needs,
i.e. ``sum(pool_size // batch) over those pools``; with ``mono`` or ``cross`` every usable pair is seen
exactly once per epoch, and languages come up exactly in proportion to their number of batches. With
``hybrid`` the shorter stream is recycled within the epoch (e.g. with 7 fully parallel languages the
cross stream is six times the mono stream). Epoch ``e`` depends only on ``(seed, e)``, so a run resumed
from a checkpoint replays the same batches.

Pools smaller than one batch cannot give a batch: with ``small_pools="skip"`` (default) they are left
out (listed in :attr:`HybridBatchSampler.skipped_pools`, with a warning); with ``"error"`` a ValueError
is raised. If no pool is left, a ValueError is raised either way.

No batch ever holds two pairs of one group (a translation would be a false negative): within a pool a
pair whose group is already in the batch waits for the next batch.

Data parallel (``world_size > 1``): the sampler builds global batches of ``batch_size * world_size``
pairs from one pool and yields each as ``world_size`` consecutive chunks of ``batch_size``. Accelerate
(used by the Hugging Face Trainer) gives batch ``i`` to rank ``i % world_size``, so at every step all
ranks hold parts of the SAME language configuration and no group is repeated across ranks.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from torch.utils.data import Sampler

MODES: tuple[str, ...] = ("hybrid", "mono", "cross", "x-x", "x-y", "en-en")
MONO, CROSS, MIXED = "mono", "cross", "mixed"
MIXED_MODES = ("x-x", "x-y")  # batches mix language configurations (LAReQA's baselines)


@dataclass(frozen=True)
class BatchConfig:
    """The language configuration of one (global) batch.

    Attributes:
        kind: ``"mono"``, ``"cross"`` or ``"mixed"`` (X-Y batches).
        qlang: question language (``None`` for mixed batches).
        dlang: answer language (``None`` for mixed batches).
    """

    kind: str
    qlang: str | None
    dlang: str | None


def validate_mode(mode: str, alpha: float) -> tuple[str, float]:
    """Check ``mode`` and ``alpha``; return the canonical mode and the effective mono probability.

    ``mono``/``x-x``/``en-en`` mean ``alpha = 1`` and ``cross`` means ``alpha = 0``, whatever ``alpha`` says
    (``x-y`` draws mono and cross pairs as the data has them; its ``alpha`` is unused).

    Raises:
        ValueError: unknown mode, or ``alpha`` outside ``[0, 1]``.
    """
    mode = str(mode).lower()
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; valid modes are: {', '.join(MODES)}")
    try:
        alpha = float(alpha)
    except (TypeError, ValueError):
        raise ValueError(f"alpha must be a number in [0, 1], got {alpha!r}") from None
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha is the probability of a monolingual batch and must be in [0, 1], got {alpha}")
    effective = {"mono": 1.0, "x-x": 1.0, "en-en": 1.0, "cross": 0.0}.get(mode, alpha)
    return mode, effective


class HybridBatchSampler(Sampler[list[int]]):
    """Batch sampler yielding lists of pair indices, one language configuration per batch.

    Usable as ``DataLoader(dataset, batch_sampler=...)`` and by the sentence-transformers trainer (see
    :mod:`.trainer`). The module docstring defines the modes and what an epoch covers.

    Args:
        qlangs: question language of each pair.
        dlangs: answer language of each pair.
        groups: parallel group id of each pair.
        batch_size: pairs per batch (per process).
        mode: ``"hybrid"``, ``"mono"``, ``"cross"``, ``"en-en"``, ``"x-x"`` or ``"x-y"``.
        alpha: probability of a monolingual batch in ``"hybrid"`` mode.
        seed: seed; the same seed gives the same batches.
        world_size: number of data-parallel processes (see module docstring).
        small_pools: ``"skip"`` or ``"error"`` for pools with fewer pairs than a (global) batch.
        batches_per_epoch: override the number of global batches per epoch.
    """

    def __init__(
        self,
        qlangs: Sequence[str],
        dlangs: Sequence[str],
        groups: Sequence[object],
        *,
        batch_size: int,
        mode: str = "hybrid",
        alpha: float = 0.5,
        seed: int = 0,
        world_size: int = 1,
        small_pools: str = "skip",
        batches_per_epoch: int | None = None,
    ) -> None:
        self.mode, self.alpha = validate_mode(mode, alpha)
        if not (len(qlangs) == len(dlangs) == len(groups)):
            raise ValueError(
                f"qlangs, dlangs and groups must have one entry per pair; got {len(qlangs)}, {len(dlangs)}, "
                f"{len(groups)}"
            )
        if len(qlangs) == 0:
            raise ValueError("no training pairs: the data given to the sampler is empty")
        if int(batch_size) < 1 or int(world_size) < 1:
            raise ValueError(f"batch_size and world_size must be >= 1, got {batch_size} and {world_size}")
        if small_pools not in ("skip", "error"):
            raise ValueError(f"small_pools must be 'skip' or 'error', got {small_pools!r}")
        self.batch_size = int(batch_size)
        self.world_size = int(world_size)
        self.global_batch_size = self.batch_size * self.world_size
        self.seed = int(seed)
        self.epoch = 0
        self.drop_last = True
        qlangs = np.asarray(qlangs, dtype=object)
        dlangs = np.asarray(dlangs, dtype=object)
        # Integer group codes: cheap set membership while filling batches.
        _, self._groups = np.unique(np.asarray([str(g) for g in groups], dtype=object), return_inverse=True)
        self.skipped_pools: dict[tuple[str, str], int] = {}

        pools: dict[tuple[str, str], list[int]] = {}
        for i, key in enumerate(zip(qlangs.tolist(), dlangs.tolist())):
            pools.setdefault(key, []).append(i)
        self.pool_sizes = {key: len(idx) for key, idx in sorted(pools.items())}

        if self.mode in MIXED_MODES:
            eligible = qlangs == dlangs if self.mode == "x-x" else np.ones(len(qlangs), dtype=bool)
            per_group = [np.flatnonzero((self._groups == g) & eligible) for g in range(int(self._groups.max()) + 1)]
            self._group_pairs: list[np.ndarray] = [idx for idx in per_group if len(idx)]
            n_groups = len(self._group_pairs)
            if n_groups < self.global_batch_size:
                raise ValueError(
                    f"{self.mode} mode needs at least one batch of distinct groups: {n_groups} groups < batch "
                    f"size {self.global_batch_size}; lower batch_size"
                )
            self._n_global = n_groups // self.global_batch_size
        else:
            if self.mode == "en-en":
                pools = {key: idx for key, idx in pools.items() if key == ("en", "en")}
                if not pools:
                    raise ValueError("mode 'en-en' needs English question / English answer pairs; the data has none")
            wanted = []
            if self.alpha > 0:
                wanted.append(MONO)
            if self.alpha < 1:
                wanted.append(CROSS)
            self._pools: dict[str, dict[tuple[str, str], np.ndarray]] = {MONO: {}, CROSS: {}}
            for key, idx in sorted(pools.items()):
                kind = MONO if key[0] == key[1] else CROSS
                if kind not in wanted:
                    continue
                if len(idx) < self.global_batch_size:
                    if small_pools == "error":
                        raise ValueError(
                            f"pool {key[0]}->{key[1]} has {len(idx)} pairs, fewer than one batch of "
                            f"{self.global_batch_size}; lower batch_size or pass small_pools='skip'"
                        )
                    self.skipped_pools[key] = len(idx)
                    continue
                self._pools[kind][key] = np.asarray(idx)
            if self.skipped_pools:
                warnings.warn(
                    f"skipping language pools smaller than one batch of {self.global_batch_size}: "
                    + ", ".join(f"{q}->{d} ({n})" for (q, d), n in self.skipped_pools.items()),
                    stacklevel=2,
                )
            for kind in wanted:
                if not self._pools[kind]:
                    raise ValueError(
                        f"mode {self.mode!r} needs {kind}lingual pairs with at least one full batch "
                        f"({self.global_batch_size} pairs) in some language configuration; the data has "
                        f"{'none' if not self.skipped_pools else 'only smaller pools'}. Pools: {self.pool_sizes}"
                    )
            self._stream_len = {
                kind: sum(len(idx) // self.global_batch_size for idx in self._pools[kind].values()) for kind in wanted
            }
            self._n_global = sum(self._stream_len.values())
        if batches_per_epoch is not None:
            if int(batches_per_epoch) < 1:
                raise ValueError(f"batches_per_epoch must be >= 1, got {batches_per_epoch}")
            self._n_global = int(batches_per_epoch)

    # -- torch / sentence-transformers sampler protocol ------------------------------------------------
    def set_epoch(self, epoch: int) -> None:
        """Select the epoch; called by the Hugging Face Trainer at the start of every epoch."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        """Number of (per-process) batches in one epoch: a multiple of ``world_size``."""
        return self._n_global * self.world_size

    def __iter__(self) -> Iterator[list[int]]:
        """Batches of the current epoch (see :meth:`set_epoch`), each as ``world_size`` chunks."""
        for _, batch in self.epoch_batches(self.epoch):
            for rank in range(self.world_size):
                yield batch[rank * self.batch_size : (rank + 1) * self.batch_size]

    # -- the sampling itself -------------------------------------------------------------------------------
    def epoch_batches(self, epoch: int | None = None) -> list[tuple[BatchConfig, list[int]]]:
        """Global batches of ``epoch`` (default: the current one) with their language configurations."""
        epoch = self.epoch if epoch is None else int(epoch)
        rng = np.random.default_rng([self.seed, epoch])
        if self.mode in MIXED_MODES:
            return self._xy_batches(rng)
        kind_rng, mono_rng, cross_rng = rng.spawn(3)
        streams = {MONO: self._stream(MONO, mono_rng), CROSS: self._stream(CROSS, cross_rng)}
        draws = kind_rng.random(self._n_global)
        return [next(streams[MONO if u < self.alpha else CROSS]) for u in draws]

    def batch_configs(self, epoch: int | None = None) -> list[BatchConfig]:
        """Language configuration of every global batch of ``epoch``."""
        return [config for config, _ in self.epoch_batches(epoch)]

    def _stream(self, kind: str, rng: np.random.Generator) -> Iterator[tuple[BatchConfig, list[int]]]:
        """Endless permutation of the batches of all pools of ``kind``, rebuilt when used up."""
        while True:
            batches = []
            for (qlang, dlang), idx in self._pools[kind].items():
                config = BatchConfig(kind, qlang, dlang)
                batches.extend((config, batch) for batch in self._pool_batches(idx, rng))
            if not batches:  # unreachable for kinds in use: __init__ checks each has a full batch
                raise RuntimeError(f"no {kind} batches")
            for i in rng.permutation(len(batches)):
                yield batches[i]

    def _pool_batches(self, idx: np.ndarray, rng: np.random.Generator) -> list[list[int]]:
        """Shuffle one pool and cut it into full batches without a repeated group in any batch."""
        size = self.global_batch_size
        batches: list[list[int]] = []
        waiting: list[int] = []  # pairs whose group was already in the batch being filled
        batch: list[int] = []
        seen: set[int] = set()
        for i in rng.permutation(idx).tolist():
            waiting.append(i)
            j = 0  # earlier waiting pairs go first so none is starved
            while j < len(waiting):
                group = int(self._groups[waiting[j]])
                if group in seen:
                    j += 1
                    continue
                batch.append(waiting.pop(j))
                seen.add(group)
                if len(batch) == size:
                    batches.append(batch)
                    batch, seen, j = [], set(), 0
        # Leftovers (< one batch, or pairs that kept colliding) sit out this pass.
        return batches

    def _xy_batches(self, rng: np.random.Generator) -> list[tuple[BatchConfig, list[int]]]:
        """LAReQA X-Y / X-X: each group once, with a random eligible (qlang, dlang) of the ones it has."""
        order = rng.permutation(len(self._group_pairs))
        picks = [int(self._group_pairs[g][rng.integers(len(self._group_pairs[g]))]) for g in order]
        size = self.global_batch_size
        config = BatchConfig(MIXED, None, None)
        n_full = len(picks) // size
        batches = [(config, picks[b * size : (b + 1) * size]) for b in range(n_full)]
        # An explicit batches_per_epoch longer than one pass repeats the pass with new draws.
        while len(batches) < self._n_global:
            batches.extend(self._xy_batches(rng))
        return batches[: self._n_global]
