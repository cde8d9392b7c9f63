"""Atomic writes of files and whole folders: nothing is ever visible half-written, nothing is lost."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import re
import secrets
import shutil
import socket
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path


def _read_umask() -> int:
    """The process's umask (read by setting it and setting it back: there is no getter)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()  # once, at import: os.umask is process-wide and not thread-safe


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike, *, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside ``dest``; on success rename it to ``dest``, on failure delete it.

    Args:
        dest: the final file path (its folder is created).
        suffix: suffix of the temporary name (writers that infer a format from it need the real one).
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=suffix, dir=dest.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        if Path(tmp).is_file():  # mkstemp creates 0600; give the file the mode a plain open() would
            os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file in the same folder, then rename."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


# ----------------------------------------------------------------------------------------------------------------
# Whole-folder swaps
#
# A folder (index, model) is built in a hidden temporary sibling and then swapped in, so that the path
# holds either the complete old folder or the complete new one at every instant. On Linux the swap is
# one renameat2(RENAME_EXCHANGE) call; elsewhere the old folder is renamed aside first and, if the
# process dies before the new one is in, the next build (or recover_dir) renames it back.
# Sibling names carry host and pid, so leftovers of killed builds are recognised and removed later.

_LEFTOVER = re.compile(r"^\.(?P<name>.+)\.(?P<kind>tmp|old)-(?P<host>[^-]+)-(?P<pid>\d+)-[0-9a-f]{8}$")
_HOST = re.sub(r"[^A-Za-z0-9_.]", "_", socket.gethostname()) or "host"


def _sibling(dest: Path, kind: str) -> Path:
    return dest.with_name(f".{dest.name}.{kind}-{_HOST}-{os.getpid()}-{secrets.token_hex(4)}")


def _alive(host: str, pid: int) -> bool:
    """Whether the process that made a sibling may still be running (always True for another host)."""
    if host != _HOST:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two existing paths (Linux ``renameat2(RENAME_EXCHANGE)``); False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):  # no renameat2 in this libc (glibc < 2.28, musl)
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EPERM, errno.ENOTSUP):  # file system without the flag
        return False
    raise OSError(err, f"cannot swap {a} and {b}: {os.strerror(err)}")


def recover_dir(dest: str | os.PathLike) -> list[Path]:
    """Tidy up after builds of ``dest`` that were killed: restore or remove their leftover siblings.

    A leftover ``.old-`` folder of a dead process whose swap never finished (``dest`` missing) is renamed
    back to ``dest``; other leftovers of dead processes on this host are removed. Leftovers of running
    processes, or of other hosts on a shared file system, are left alone.

    Returns:
        The leftover paths that were restored or removed.
    """
    dest = Path(dest)
    if not dest.parent.is_dir():
        return []
    handled = []
    for path in sorted(dest.parent.iterdir()):
        m = _LEFTOVER.match(path.name)
        if not m or m["name"] != dest.name or _alive(m["host"], int(m["pid"])):
            continue
        if m["kind"] == "old" and not dest.exists():
            os.rename(path, dest)
        else:
            shutil.rmtree(path, ignore_errors=True)
        handled.append(path)
    return handled


def swap_dir(new: Path, dest: Path) -> None:
    """Move the complete folder ``new`` to ``dest``, replacing a folder there; ``new`` is gone afterwards."""
    if not dest.exists():
        os.rename(new, dest)
        return
    if not dest.is_dir():
        raise FileExistsError(f"{dest} is a file, not a folder; choose another path")
    if _exchange(new, dest):
        shutil.rmtree(new)  # it now holds the old folder
        return
    old = _sibling(dest, "old")
    os.rename(dest, old)
    os.rename(new, dest)
    shutil.rmtree(old)


@contextlib.contextmanager
def atomic_dir(dest: str | os.PathLike, *, overwrite: bool = False,
               owned: Callable[[Path], bool] | None = None, what: str = "folder") -> Iterator[Path]:
    """Yield an empty temporary sibling of ``dest`` to build a folder in; swap it in on success.

    On an exception (or a kill) the old folder at ``dest``, if any, is untouched and the temporary folder is
    removed (a killed build's one by the next build: see :func:`recover_dir`).

    Args:
        dest: the folder to write.
        overwrite: replace an existing folder at ``dest`` (otherwise that is an error, raised before the
            caller does any work).
        owned: ``owned(dest) -> bool``: whether an existing folder was written by this kind of writer;
            a folder that was not is never replaced, even with ``overwrite=True``.
        what: what is being written, for messages (``"dense index"``).
    """
    dest = Path(dest)
    recover_dir(dest)
    check_replaceable(dest, overwrite=overwrite, owned=owned, what=what)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = _sibling(dest, "tmp")
    tmp.mkdir()
    try:
        yield tmp
        check_replaceable(dest, overwrite=overwrite, owned=owned, what=what)  # may have appeared meanwhile
        swap_dir(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def check_replaceable(dest: Path, *, overwrite: bool, owned: Callable[[Path], bool] | None, what: str) -> None:
    """Raise unless a new ``what`` may be written at ``dest`` (see :func:`atomic_dir`)."""
    if not dest.exists():
        return
    if not dest.is_dir():
        raise FileExistsError(f"{dest} is a file; choose another path for the {what}")
    if not overwrite:
        raise FileExistsError(f"{dest} already exists; pass overwrite=True to replace the {what}")
    if owned is not None and any(dest.iterdir()) and not owned(dest):
        raise FileExistsError(f"{dest} holds files that are not a {what}; it is never replaced, choose another "
                              "path (or move those files away yourself)")
