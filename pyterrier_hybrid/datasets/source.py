"""Where the LAReQA JSON files come from: cache, local mirror, or the pinned URLs.

Resolution order for ``<benchmark>/<lang>.json`` (see :func:`lareqa_file`):

1. the ir_datasets cache, ``<ir_datasets home>/lareqa/<benchmark>/<lang>.json``;
2. a local mirror directory named by ``$PYTERRIER_HYBRID_LAREQA_DIR`` (a folder holding
   ``xquad-r/`` and ``mlqa-r/``), copied into the cache after md5 verification; the same
   import is available as :func:`import_mirror` and ``pyterrier-hybrid data import DIR``;
3. a download from the pinned commit of google-research-datasets/lareqa, md5-verified.
   Setting ``PYTERRIER_HYBRID_OFFLINE=1`` turns this step into an error (tests use it).

Every file is checked against its pinned md5 once per process; a mismatch is an error that
names the file, the expected md5 and how to fix it. Files are written to a temporary name
and renamed, so a cache never holds half a file.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import shutil
from pathlib import Path

from .._io import atomic_path
from ..languages import validate_benchmark, validate_lang

MIRROR_ENV = "PYTERRIER_HYBRID_LAREQA_DIR"
OFFLINE_ENV = "PYTERRIER_HYBRID_OFFLINE"

logger = logging.getLogger(__name__)

# Pinned commits of github.com/google-research-datasets/lareqa (MLQA-R was removed after 354d67d).
COMMITS: dict[str, str] = {
    "xquad-r": "9bc8c7fb6dd8d01d72a05a93c2cb96882b0d299c",
    "mlqa-r": "354d67d1cd066854cdfbf5ad0e6105528976141d",
}
URL_TEMPLATE = "https://raw.githubusercontent.com/google-research-datasets/lareqa/{commit}/{benchmark}/{lang}.json"

MD5: dict[str, str] = {
    "xquad-r/ar.json": "1114954691ce6b8ed452aa2befcd21c2",
    "xquad-r/de.json": "ca34197b707b08bd4e03db4b3640e863",
    "xquad-r/el.json": "d4982e87c3eff32830cc4d33a26e63fa",
    "xquad-r/en.json": "b8c2383f52bc96438cf09a69cdccabdd",
    "xquad-r/es.json": "e4a69ab74a1f71d64f771f419c6e3eea",
    "xquad-r/hi.json": "390ee65a0559e65033f4cc44a27617fe",
    "xquad-r/ru.json": "e6ef8814695fead9f2227d9b44144417",
    "xquad-r/th.json": "1270594bf229e0fa2082d6508095e0b1",
    "xquad-r/tr.json": "6ee6aed1a7a5745b2cd31322c7d58c15",
    "xquad-r/vi.json": "72a138effea0cea9d5f7573553d70809",
    "xquad-r/zh.json": "2122b7e42e66c2d3cbdbe78d21b1a11c",
    "mlqa-r/ar.json": "0cabca7da64041a9bcfbfa6397def23e",
    "mlqa-r/de.json": "5fdb66b2614ed2556d05356968eca0b2",
    "mlqa-r/en.json": "9ea5e240816f8a9c668ec49afbf45e7d",
    "mlqa-r/es.json": "1dc80d875f9e37192668eb90bf3e8a2d",
    "mlqa-r/hi.json": "84cee6c9864f8662ef1ef3ed5b96f990",
    "mlqa-r/vi.json": "395e63b077fb8af6735ca9c4337d656c",
    "mlqa-r/zh.json": "b9c78c32a0008dba5f93aea0ac5c2429",
}


class LareqaFileError(IOError):
    """A LAReQA file is missing or does not match its pinned md5."""


def cache_dir() -> Path:
    """Directory of the imported LAReQA files inside the ir_datasets home."""
    import ir_datasets

    return Path(ir_datasets.util.home_path()) / "lareqa"


def relative_path(benchmark: str, lang: str) -> str:
    """``"<benchmark>/<lang>.json"`` after validating both names."""
    validate_lang(lang, validate_benchmark(benchmark), what=f"{benchmark} language")
    return f"{benchmark}/{lang}.json"


def source_url(benchmark: str, lang: str) -> str:
    """Pinned download URL of one file."""
    relative_path(benchmark, lang)
    return URL_TEMPLATE.format(commit=COMMITS[benchmark], benchmark=benchmark, lang=lang)


def md5sum(path: Path) -> str:
    """Hex md5 of a file."""
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fix_hint(rel: str, *, mirror: bool = False) -> str:
    """How to restore a bad or missing ``rel`` (``<benchmark>/<lang>.json``), as the end of an error message.

    A cache file is deleted and imported again; a mirror file is the user's own copy, which this package never
    deletes, so the hint says to replace it with the pinned file.
    """
    benchmark, name = rel.split("/")
    commit = COMMITS[benchmark]
    if mirror:
        url = URL_TEMPLATE.format(commit=commit, benchmark=benchmark, lang=name.removesuffix(".json"))
        return (f"fix: replace it in the mirror with {rel} of commit {commit[:7]} of google-research-datasets/lareqa "
                f"({url}), then run `pyterrier-hybrid data import DIR` again")
    return (
        f"fix: delete it and run `pyterrier-hybrid data import DIR` (or set ${MIRROR_ENV}=DIR) with DIR a "
        f"LAReQA mirror holding {rel}, or let it download from {commit[:7]} of "
        "google-research-datasets/lareqa"
    )


def verify(path: Path, rel: str, *, mirror: bool = False) -> Path:
    """Check ``path`` against the pinned md5 of ``rel``; raise :class:`LareqaFileError` otherwise.

    Args:
        path: the file.
        rel: ``<benchmark>/<lang>.json``.
        mirror: ``path`` is in a user's mirror (the message then says how to replace it, not to delete it).
    """
    expected = MD5[rel]
    where = "LAReQA mirror file" if mirror else "LAReQA file"
    if not path.is_file():
        raise LareqaFileError(f"{path}: missing {where} {rel} (expected md5 {expected}); "
                              f"{fix_hint(rel, mirror=mirror)}")
    actual = md5sum(path)
    if actual != expected:
        raise LareqaFileError(
            f"{path}: md5 {actual} of this {where} does not match the pinned md5 {expected} of {rel} (truncated, "
            f"corrupt or a different version); {fix_hint(rel, mirror=mirror)}"
        )
    return path


def _fetch(source: str | Path, dest: Path, rel: str) -> None:
    """Copy ``rel`` from a mirror file or a URL into the cache, through ir_datasets' download classes.

    ``ir_datasets.util.Download`` streams the source through its md5 check (``HashStream``); the copy goes to a
    temporary sibling of ``dest`` that is renamed only once the md5 matched, so the cache never holds a partial
    or wrong file. ir_datasets checks files while it copies them, not files at rest: :func:`verify` does that.
    """
    import ir_datasets

    local = isinstance(source, Path)
    mirror = ir_datasets.util.LocalDownload(str(source)) if local else ir_datasets.util.RequestsDownload(source)
    download = ir_datasets.util.Download([mirror], expected_md5=MD5[rel], stream=True)
    try:
        with atomic_path(dest) as tmp:
            with open(tmp, "wb") as out, download.stream() as stream:
                shutil.copyfileobj(stream, out)
    except ir_datasets.util.HashVerificationError as e:  # a file that changed after verify(), or a bad download
        raise LareqaFileError(f"{source}: LAReQA file {rel} does not match its pinned md5 {MD5[rel]} ({e}); "
                              f"{fix_hint(rel, mirror=local)}") from None
    except Exception as e:
        if local:
            raise LareqaFileError(f"{source}: could not copy LAReQA file {rel} into {dest}: "
                                  f"{type(e).__name__}: {str(e)[:200]}") from e
        raise LareqaFileError(
            f"{dest}: could not download LAReQA file {rel} (expected md5 {MD5[rel]}) from {source}: "
            f"{type(e).__name__}: {str(e)[:200]}; offline? set ${MIRROR_ENV} to a LAReQA mirror directory or run "
            "`pyterrier-hybrid data import DIR`"
        ) from e


def import_mirror(mirror: str | os.PathLike, benchmarks: tuple[str, ...] = ("xquad-r", "mlqa-r")) -> list[Path]:
    """Copy every LAReQA file of ``benchmarks`` from a mirror directory into the cache, md5-verified.

    Args:
        mirror: a folder holding ``xquad-r/<lang>.json`` and ``mlqa-r/<lang>.json``
            (e.g. ``../shared/data/lareqa``).
        benchmarks: which benchmarks to import.

    Returns:
        The cache paths of the imported files.

    Raises:
        LareqaFileError: a mirror file is missing or its md5 is wrong (nothing is copied for it).
    """
    mirror = Path(mirror).expanduser()
    if not mirror.is_dir():
        raise LareqaFileError(f"LAReQA mirror {mirror} is not a folder; give the folder that holds "
                              "xquad-r/<lang>.json and mlqa-r/<lang>.json")
    imported = []
    for benchmark in benchmarks:
        for lang in validate_benchmark(benchmark):
            rel = relative_path(benchmark, lang)
            dest = cache_dir() / rel
            verify(mirror / rel, rel, mirror=True)
            if not (dest.is_file() and md5sum(dest) == MD5[rel]):
                logger.info("copying LAReQA file %s from the mirror %s into %s", rel, mirror, dest)
                _fetch(mirror / rel, dest, rel)
            imported.append(dest)
    _verified.cache_clear()
    return imported


@functools.cache
def _verified(path: str, rel: str) -> Path:
    return verify(Path(path), rel)


def lareqa_file(benchmark: str, lang: str) -> Path:
    """Path of ``<benchmark>/<lang>.json`` in the cache, importing or downloading it first if needed."""
    rel = relative_path(benchmark, lang)
    dest = cache_dir() / rel
    if not dest.is_file():
        mirror = os.environ.get(MIRROR_ENV)
        if mirror:
            if not Path(mirror).expanduser().is_dir():
                raise LareqaFileError(f"${MIRROR_ENV}={mirror} is not a folder; set it to the folder that holds "
                                      "xquad-r/<lang>.json and mlqa-r/<lang>.json, or unset it")
            src = Path(mirror).expanduser() / rel
            verify(src, rel, mirror=True)
            logger.info("copying LAReQA file %s from the mirror $%s=%s into %s", rel, MIRROR_ENV, mirror, dest)
            _fetch(src, dest, rel)
        elif os.environ.get(OFFLINE_ENV, "").lower() in ("1", "true", "yes"):
            raise LareqaFileError(
                f"{dest}: LAReQA file {rel} (md5 {MD5[rel]}) is not in the cache and ${OFFLINE_ENV} forbids "
                f"downloading it; set ${MIRROR_ENV} to a LAReQA mirror directory or run "
                "`pyterrier-hybrid data import DIR`"
            )
        else:
            logger.info("downloading LAReQA file %s from %s into %s", rel, source_url(benchmark, lang), dest)
            _fetch(source_url(benchmark, lang), dest, rel)
    return _verified(str(dest), rel)
