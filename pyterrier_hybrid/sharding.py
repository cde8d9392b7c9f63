"""Sharded encoding of large corpora: every process encodes a contiguous shard, then the shards are merged.

A corpus of ``N`` documents split into ``n`` shards gives shard ``i`` the documents ``[i·N/n, (i+1)·N/n)`` of the
corpus iterator's order. Each shard is encoded into its own :class:`~pyterrier_hybrid.index.DenseIndex` in
``<path>.shards/<i>-of-<n>/`` (the index in ``index/`` and a record ``shard.json``), written with
:func:`pyterrier_hybrid._io.atomic_dir`, so a shard folder is complete or absent: a process that dies leaves
nothing half-written. :func:`merge_shards` then writes the index at ``path`` with
:meth:`~pyterrier_hybrid.index.DenseIndex.merge`; since the merge keeps the shards' order within each language,
the merged index holds the same documents at the same docids as an index built by one process.

Two ways to run the shards:

- ``torchrun --nnodes N --nproc_per_node P -m pyterrier_hybrid.cli index CORPUS PATH --model M``: every rank
  reads ``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK`` from the environment, encodes shard ``RANK/WORLD_SIZE`` (on
  GPU ``cuda:LOCAL_RANK``), waits at a ``torch.distributed`` barrier (gloo on CPU, NCCL on GPU; the only
  collective used), and rank 0 merges. If a rank dies, torchrun stops the others, nothing is merged, and the
  finished shards stay on disk.
- cluster job arrays: task ``i`` of ``n`` runs ``... index CORPUS PATH --model M --shard i/n``; when every task
  has finished, one more job runs ``... index CORPUS PATH --model M --merge``.

A shard that already exists for the same corpus and encoder is kept, not encoded again, so rerunning a failed
job (or the whole torchrun command) only encodes what is missing. :func:`merge_shards` refuses with one line
naming the first missing shard and the command that encodes it.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shlex
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._io import atomic_dir
from .index import DenseIndex

__all__ = [
    "Corpus",
    "IncompleteShardsError",
    "Shard",
    "encode_shard",
    "index_corpus",
    "merge_shards",
    "open_corpus",
    "shard_dir",
    "shard_from_env",
    "shards_root",
]

SHARD_FILE = "shard.json"
SHARD_FORMAT = "pyterrier_hybrid.shard/1"
_SHARD_NAME = re.compile(r"^(\d+)-of-(\d+)$")


class IncompleteShardsError(ValueError):
    """A merge was asked for while some shards are missing or belong to another corpus or encoder."""


# ------------------------------------------------------------------------------------------------ shards
@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (0-based).

    Raises:
        ValueError: unless ``0 <= index < count``.
    """

    index: int
    count: int

    def __post_init__(self) -> None:
        for name in ("index", "count"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"shard {name} must be an int, not {value!r}")
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ValueError(f"shard {self.index}/{self.count} does not exist: shards of n are numbered 0 to n-1, "
                             "so i/n needs 0 <= i < n")

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"i/n"`` → ``Shard(i, n)`` (a one-line ``ValueError`` for anything else)."""
        m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
        if not m:
            raise ValueError(f"expected a shard as i/n (e.g. 0/4: the first of 4 shards), got {text!r}")
        return cls(int(m[1]), int(m[2]))

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def bounds(self, total: int) -> tuple[int, int]:
        """The shard's documents ``[start, stop)`` in a corpus of ``total`` documents."""
        return self.index * total // self.count, (self.index + 1) * total // self.count


def shard_from_env(env: dict[str, str] | None = None) -> Shard | None:
    """The shard of this process under torchrun (``RANK`` of ``WORLD_SIZE``), or None outside a multi-process job."""
    env = os.environ if env is None else env
    if "WORLD_SIZE" not in env:
        return None
    try:
        world, rank = int(env["WORLD_SIZE"]), int(env.get("RANK", "0"))
    except ValueError:
        raise ValueError(f"RANK={env.get('RANK')!r} and WORLD_SIZE={env.get('WORLD_SIZE')!r} must be integers "
                         "(torchrun sets them)") from None
    return Shard(rank, world) if world > 1 else None


def shards_root(path: str | os.PathLike) -> Path:
    """The folder holding the shards of the index at ``path``: ``<path>.shards`` beside it."""
    path = Path(path)
    return path.with_name(f"{path.name}.shards")


def shard_dir(path: str | os.PathLike, shard: Shard) -> Path:
    """The folder of one shard of the index at ``path``."""
    return shards_root(path) / f"{shard.index:05d}-of-{shard.count:05d}"


# ------------------------------------------------------------------------------------------------ corpora
class Corpus:
    """A corpus that can be counted and read in slices, in a fixed order.

    Args:
        name: How to name the corpus on a command line (an ir_datasets id or a folder), or None.
        count: Number of documents.
        read: ``read(start, stop)`` yields the documents ``[start, stop)`` as dicts with ``docno``, ``text`` and
            ``lang`` (when known).
    """

    def __init__(self, name: str | None, count: int, read: Callable[[int, int], Iterator[dict[str, Any]]]):
        self.name, self.count, self._read = name, int(count), read

    def __repr__(self) -> str:
        return f"Corpus({self.name!r}, count={self.count})"

    def __len__(self) -> int:
        return self.count

    def read(self, start: int = 0, stop: int | None = None) -> Iterator[dict[str, Any]]:
        """The documents ``[start, stop)``."""
        stop = self.count if stop is None else min(stop, self.count)
        return self._read(start, stop) if start < stop else iter(())

    @classmethod
    def from_records(cls, records: Any, name: str | None = None) -> Corpus:
        """A corpus over a DataFrame or a list of dicts (held in memory)."""
        import pandas as pd

        frame = records if isinstance(records, pd.DataFrame) else pd.DataFrame(list(records))
        return cls(name, len(frame), lambda a, b: iter(frame.iloc[a:b].to_dict("records")))


def open_corpus(spec: str | os.PathLike, *, lang: str | None = None) -> Corpus:
    """A :class:`Corpus` from a BEIR folder (:class:`~pyterrier_hybrid.datasets.BeirFolder`) or an ir_datasets id.

    Args:
        spec: A folder holding ``corpus.jsonl`` (BEIR format), or an ir_datasets id (``xquad-r/multi``, registered
            by importing this package; ``miracl/de`` and other ir_datasets corpora where they are available).
        lang: Language of documents that name none: a BEIR folder's default (``"en"`` when not given); for an
            ir_datasets corpus, documents without a ``lang`` field take the corpus language that ir_datasets
            reports, else ``lang``, else the docno prefix (``de_17``).

    Raises:
        ValueError: neither a BEIR folder nor a known ir_datasets id (one line).
    """
    from . import datasets  # noqa: F401 - registers the package's ir_datasets entries

    path = Path(spec).expanduser()
    if path.is_dir():
        from .datasets import BeirFolder

        folder = BeirFolder(path, lang=lang or "en")
        docs = folder.docs
        return Corpus(str(spec), len(docs), lambda a, b: iter(docs.iloc[a:b][["docno", "text", "lang"]]
                                                                .to_dict("records")))
    import ir_datasets

    try:
        ds = ir_datasets.load(str(spec))
    except KeyError:
        raise ValueError(f"corpus {str(spec)!r} is neither a folder nor a known ir_datasets id (e.g. xquad-r/multi, "
                         "or a BEIR folder holding corpus.jsonl)") from None
    if not ds.has_docs():
        raise ValueError(f"ir_datasets entry {str(spec)!r} has no documents")
    default_lang = ds.docs_lang() or lang
    count = ds.docs_count()
    if count is None:  # some entries do not know their size: one cheap pass over the ids
        count = sum(1 for _ in ds.docs_iter())

    def read(start: int, stop: int) -> Iterator[dict[str, Any]]:
        it = ds.docs_iter()
        # ir_datasets' large corpora slice their doc store directly; others are read up to ``start``
        docs = it[start:stop] if hasattr(it, "__getitem__") else itertools.islice(it, start, stop)
        for doc in docs:
            fields = doc._asdict()
            text = fields.get("text", "")
            if fields.get("title"):
                text = f"{fields['title']} {text}".strip()
            record = {"docno": fields["doc_id"], "text": text}
            doc_lang = fields.get("lang") or default_lang
            if doc_lang:
                record["lang"] = doc_lang
            yield record

    return Corpus(str(spec), count, read)


# ------------------------------------------------------------------------------------------------ encoding
def _record(path: Path) -> dict[str, Any] | None:
    """The ``shard.json`` of a complete shard folder, or None."""
    try:
        record = json.loads((path / SHARD_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("format") == SHARD_FORMAT else None


def _same_work(record: dict[str, Any], shard: Shard, corpus: Corpus, fingerprint: Any) -> bool:
    return (record.get("shard"), record.get("num_shards"), record.get("corpus_count"), record.get("corpus"),
            record.get("fingerprint")) == (shard.index, shard.count, corpus.count, corpus.name, fingerprint)


def encode_shard(corpus: Corpus, path: str | os.PathLike, encoder: Any, shard: Shard, *, overwrite: bool = False,
                 chunk_size: int = 4096, rerun: str | None = None) -> Path:
    """Encode one shard of ``corpus`` into ``shard_dir(path, shard)``; returns that folder.

    A complete shard of the same corpus (name and size) and encoder is kept as it is.

    Args:
        corpus: The corpus (:func:`open_corpus`, :meth:`Corpus.from_records`).
        path: The final index's path (the shard goes to ``<path>.shards/``).
        encoder: A :class:`~pyterrier_hybrid.encoding.BiEncoder`.
        shard: Which shard.
        overwrite: Replace a complete shard that was encoded from another corpus or with another encoder.
        chunk_size: Documents encoded per step.
        rerun: The command that encodes this shard, recorded so that a merge can name the commands of missing
            shards (the command line fills it in).

    Raises:
        FileExistsError: the shard exists for another corpus or encoder and ``overwrite`` is false.
    """
    folder = shard_dir(path, shard)
    fingerprint = encoder.manifest().get("fingerprint")
    record = _record(folder)
    if record is not None and _same_work(record, shard, corpus, fingerprint):
        return folder
    if record is not None and not overwrite:
        raise FileExistsError(f"shard {shard} at {folder} was encoded from another corpus or with another encoder "
                              f"({record.get('corpus')!r}, {record.get('corpus_count')} documents, encoder "
                              f"{record.get('fingerprint')}); pass overwrite=True (--overwrite) to replace it")
    start, stop = shard.bounds(corpus.count)
    with atomic_dir(folder, overwrite=overwrite, owned=lambda p: _record(p) is not None, what="index shard") as tmp:
        DenseIndex(tmp / "index").indexer(encoder, chunk_size=chunk_size).index(corpus.read(start, stop))
        (tmp / SHARD_FILE).write_text(json.dumps({
            "format": SHARD_FORMAT, "shard": shard.index, "num_shards": shard.count, "start": start, "stop": stop,
            "corpus": corpus.name, "corpus_count": corpus.count, "fingerprint": fingerprint,
            "model": encoder.manifest().get("model"), "rerun": rerun}, indent=2) + "\n", encoding="utf-8")
    return folder


def _shard_counts(root: Path) -> set[int]:
    """The shard counts ``n`` of the shard folders present (complete or not) under ``root``."""
    if not root.is_dir():
        return set()
    return {int(m[2]) for p in root.iterdir() if (m := _SHARD_NAME.match(p.name))}


def _rerun_hint(shard: Shard, records: list[dict[str, Any]]) -> str:
    template = next((r.get("rerun") for r in records if r.get("rerun")), None)
    if template:
        return f"encode it with `{template.replace('{shard}', str(shard))}`"
    return f"encode it with encode_shard(corpus, path, encoder, Shard({shard.index}, {shard.count}))"


def merge_shards(path: str | os.PathLike, num_shards: int | None = None, *, overwrite: bool = False,
                 keep_shards: bool = False, merge_command: str | None = None) -> DenseIndex:
    """Merge the ``n`` complete shards in ``<path>.shards/`` into the index at ``path``.

    Args:
        path: The index to write.
        num_shards: ``n``; ``None``: the shard count found on disk (an error when several are).
        overwrite: Replace an existing index at ``path``.
        keep_shards: Keep the shard folders after a successful merge (default: remove them, they are copies).
        merge_command: How the user reruns this merge, for the error message.

    Raises:
        IncompleteShardsError: a shard is missing, incomplete, or from another corpus or encoder (one line naming
            the first such shard and the command that encodes it).
        FileExistsError: ``path`` exists and ``overwrite`` is false.
    """
    root = shards_root(path)
    counts = _shard_counts(root)
    if num_shards is None:
        if not counts:
            raise IncompleteShardsError(f"no shards of {path} in {root}; encode them first (--shard i/n for each "
                                        "i, or torchrun)")
        if len(counts) > 1:
            runs = ", ".join(f"of {n}" for n in sorted(counts))
            raise IncompleteShardsError(f"{root} holds shards of several runs ({runs}); say which with --num-shards N")
        num_shards = counts.pop()
    shards = [Shard(i, num_shards) for i in range(num_shards)]
    records = {s: _record(shard_dir(path, s)) for s in shards}
    present = [r for r in records.values() if r is not None]
    again = f"; then merge again{f' with `{merge_command}`' if merge_command else ''}"
    for s, record in records.items():
        if record is None:
            raise IncompleteShardsError(f"shard {s} of {path} is missing or incomplete ({shard_dir(path, s)}): its "
                                        f"process died or has not finished; {_rerun_hint(s, present)}{again}")
    first = present[0]
    for s, record in records.items():
        same = all(record.get(k) == first.get(k) for k in ("corpus", "corpus_count", "fingerprint"))
        if not same or (record.get("start"), record.get("stop")) != s.bounds(int(first["corpus_count"])):
            raise IncompleteShardsError(
                f"shard {s} of {path} was encoded from {record.get('corpus')!r} ({record.get('corpus_count')} "
                f"documents, encoder {record.get('fingerprint')}) but shard 0/{num_shards} from {first.get('corpus')!r}"
                f" ({first.get('corpus_count')} documents, encoder {first.get('fingerprint')}); re-encode it with "
                f"--overwrite: {_rerun_hint(s, present)}{again}")
        index = DenseIndex(shard_dir(path, s) / "index")
        if len(index) != record["stop"] - record["start"]:
            raise IncompleteShardsError(f"shard {s} of {path} holds {len(index)} documents, its record says "
                                        f"{record['stop'] - record['start']}; re-encode it with --overwrite: "
                                        f"{_rerun_hint(s, present)}{again}")
    merged = DenseIndex.merge(path, [shard_dir(path, s) / "index" for s in shards], overwrite=overwrite)
    if not keep_shards:
        for s in shards:  # only folders this module wrote (they hold a shard record)
            shutil.rmtree(shard_dir(path, s))
        if root.is_dir() and not any(root.iterdir()):
            root.rmdir()
    return merged


# ------------------------------------------------------------------------------------------------ one call
def _barrier() -> None:
    """Wait for every rank (torch.distributed: gloo on CPU, NCCL on GPU); the process group ends here."""
    from datetime import timedelta

    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        gpu = torch.cuda.is_available()
        if gpu:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        # Ranks finish their shards at different times; a dead rank makes torchrun stop the others anyway.
        dist.init_process_group("nccl" if gpu else "gloo", timeout=timedelta(hours=24))
    dist.barrier()
    dist.destroy_process_group()


def index_corpus(corpus: Corpus, path: str | os.PathLike, encoder: Any, *, shard: Shard | None = None,
                 overwrite: bool = False, keep_shards: bool = False, chunk_size: int = 4096,
                 rerun: str | None = None, merge_command: str | None = None) -> Path:
    """Index ``corpus`` at ``path``: in one process, as one shard, or as this torchrun rank's shard.

    Args:
        corpus: The corpus.
        path: The index to write.
        encoder: A :class:`~pyterrier_hybrid.encoding.BiEncoder`.
        shard: Encode only this shard (job arrays; merged later by :func:`merge_shards`). ``None``: the torchrun
            rank's shard when ``WORLD_SIZE > 1`` (then every rank meets at a barrier and rank 0 merges; the ranks
            must share a file system), else the whole corpus in this process. On GPUs, give each rank's encoder
            its own device (``cuda:LOCAL_RANK``).
        overwrite: Replace an existing index (and shards from another corpus or encoder).
        keep_shards: Keep the shard folders after the merge.
        chunk_size: Documents encoded per step.
        rerun: Command template that encodes shard ``{shard}`` (recorded for error messages).
        merge_command: The command that merges (for error messages).

    Returns:
        The folder written by this process: the index, or the shard folder of a rank that did not merge.
    """
    from .index import _check_target  # the index's own overwrite rules, checked before any encoding

    env_shard = shard_from_env()
    if shard is not None and env_shard is not None:
        raise ValueError("--shard i/n and torchrun are alternatives: under torchrun each rank's shard is its RANK "
                         "of WORLD_SIZE")
    if shard is None and env_shard is None:
        return DenseIndex(path).indexer(encoder, overwrite=overwrite, chunk_size=chunk_size).index(
            corpus.read()).path
    if shard is None and env_shard.index == 0:
        _check_target(Path(path), overwrite)  # the merge would refuse after all the encoding
    folder = encode_shard(corpus, path, encoder, shard or env_shard, overwrite=overwrite, chunk_size=chunk_size,
                          rerun=rerun)
    if shard is not None:
        return folder
    _barrier()
    if env_shard.index == 0:
        return merge_shards(path, env_shard.count, overwrite=overwrite, keep_shards=keep_shards,
                            merge_command=merge_command).path
    return folder


def command_line(args: list[str]) -> str:
    """A shell-quoted command line (for messages)."""
    return " ".join(shlex.quote(a) for a in args)
