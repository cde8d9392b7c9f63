"""Local packages of the package's artifacts (BM25 and dense indexes): paths, checks, unpacking.

``pt.Artifact.from_url`` (python-terrier 1.1) takes ``hf:`` and ``https:`` URLs, but hands a local package path
to ``load`` as if it were the unpacked folder and has no reader for ``file://`` URLs; both index classes send
local URLs here (:func:`local_folder`) and everything else to PyTerrier.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tarfile
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

import pyterrier as pt


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())


def local_path(url: str) -> Path | None:
    """The local path behind a plain path or ``file://`` URL; None for a remote URL (``hf:``, ``https:`` ...)."""
    parsed = urlparse(str(url))
    if parsed.scheme == "file":
        return Path(url2pathname(parsed.path))
    if parsed.scheme == "" or os.path.exists(url):  # os.path.exists: a Windows drive letter parses as a scheme
        return Path(url)
    return None


def unpack_package(package: Path, expected_sha256: str | None, *, what: str, write_hint: str) -> Path:
    """Check and unpack a local ``build_package`` package into PyTerrier's artifact cache; returns the folder.

    Wraps a gap of ``pt.Artifact.from_url`` (python-terrier 1.1): it hands a local package path to ``load`` as if
    it were the unpacked folder, and has no reader for ``file://`` URLs. The extraction follows its own (lz4 tar
    stream, files and folders only, nothing outside the folder, swapped in whole by ``pt.io.finalized_directory``).
    """
    from lz4.frame import LZ4FrameFile

    sidecar = Path(f"{package}.json")  # build_package's metadata: expected_sha256, segments
    try:
        info = json.loads(sidecar.read_text(encoding="utf-8")) if sidecar.is_file() else {}
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{sidecar} (package metadata) is not valid JSON ({_one_line(e)}): the file is truncated or "
                         "corrupt; copy it again with the package") from None
    info = info if isinstance(info, dict) else {}
    if package.is_file():
        parts = [package]
    elif Path(f"{package}.0").is_file():  # build_package(max_file_size=...) wrote segments .0, .1, ...
        parts = [Path(f"{package}.{i}") for i in range(max(len(info.get("segments", [])), 1))]
    else:
        raise FileNotFoundError(f"no {what} package at {package}; write one with {write_hint}")
    missing = [str(p) for p in parts if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"the package {package} is incomplete (missing {missing}); copy every segment, or "
                                "build the package again")
    digest = hashlib.sha256()
    for part in parts:
        with open(part, "rb") as fin:
            while chunk := fin.read(1 << 20):
                digest.update(chunk)
    sha = digest.hexdigest()
    for source, expected in (("expected_sha256", expected_sha256), (str(sidecar), info.get("expected_sha256"))):
        if expected is not None and str(expected).lower() != sha:
            raise ValueError(f"the package {package} has SHA-256 {sha}, but {source} expects {expected}: the file is "
                             "truncated, corrupt or another package")
    dest = Path(pt.io.pyterrier_home()) / "artifacts" / f"local-{sha}"
    if dest.is_dir():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        out = stack.enter_context(pt.io.finalized_directory(str(dest)))
        stack.enter_context(pt.io.finalized_open(f"{dest}.json", "t")).write(json.dumps({"path": str(package)}) + "\n")
        raw = stack.enter_context(pt.io.MultiReader(open(p, "rb") for p in parts))
        stream = stack.enter_context(LZ4FrameFile(raw)) if package.name.endswith(".lz4") else raw
        try:
            tar = stack.enter_context(tarfile.open(fileobj=stream, mode="r|"))
            for member in tar:
                if (member.isfile() or member.isdir()) and pt.io.path_is_under_base(member.name, out):
                    tar.extract(member, out, set_attrs=False, filter="data")
        except (tarfile.TarError, RuntimeError, EOFError) as e:
            raise ValueError(f"cannot unpack {package} ({type(e).__name__}: {_one_line(e)}): it is not a package "
                             "written by build_package, or it is corrupt") from None
    return dest


def local_folder(url: str, expected_sha256: str | None, *, what: str, write_hint: str) -> Path | None:
    """The folder to open for a local ``url`` (a folder as is, a package checked and unpacked); None if remote.

    Args:
        url: a folder, a package path (also split into ``.0``, ``.1`` ... segments) or a ``file://`` URL.
        expected_sha256: the package's SHA-256, checked before anything is unpacked.
        what: what the package holds, for messages (``"BM25 index"``).
        write_hint: how to write such a package, for messages.
    """
    local = local_path(url)
    if local is None:
        return None
    if local.is_dir():
        return local
    return unpack_package(local, expected_sha256, what=what, write_hint=write_hint)
