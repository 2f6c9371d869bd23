"""Atomic file and directory writes: readers never see a half-written result.

Everything written here gets the mode an ordinary ``open()``/``mkdir()`` would give under the
process umask (``mkstemp``/``mkdtemp`` create 0600/0700 entries, which a downstream job running as
another user could not read); pass ``private=True`` for secrets.

A directory replaced with :func:`atomic_dir` is swapped in with one ``renameat2(RENAME_EXCHANGE)``
on Linux, so a crash at any point leaves the old or the new directory under its name, never none.
Where the exchange is not available (another OS, a file system without it) the old directory is
moved aside first; :func:`recover_dir` (called by :func:`atomic_dir` and by readers) moves it back
if a crash struck between the two renames.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import hashlib
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux ``/proc``)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    old = os.umask(0o022)  # no /proc: the classic read-and-restore (not thread-safe, but restores at once)
    os.umask(old)
    return old


def _public_mode(path: Path, *, directory: bool, private: bool) -> None:
    base = (0o700 if directory else 0o600) if private else ((0o777 if directory else 0o666) & ~current_umask())
    os.chmod(path, base)


def sha256_file(path: str | os.PathLike[str]) -> str:
    """The sha256 of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fsync_dir(path: Path) -> None:
    """Flush a directory entry to disk (after a rename into it)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike[str], mode: str = "wb", *, private: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it over ``path`` on success.

    On an exception the temporary file is removed and ``path`` is untouched.
    The caller writes to the yielded path (by name), which lets libraries such
    as pyarrow write to it directly. The result has the umask's mode (0600 with ``private``).
    """
    del mode
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        _public_mode(tmp_path, directory=False, private=private)
        os.replace(tmp_path, target)
        fsync_dir(target.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_file(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    write_bytes_atomic(path, text.encode("utf-8"))


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _libc_renameat2() -> object | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


_renameat2 = _libc_renameat2()


def exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths in one atomic step (Linux ``renameat2``); False where not supported."""
    if _renameat2 is None:
        return False
    rc = _renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)  # type: ignore[operator]  # ctypes function
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def recover_dir(path: str | os.PathLike[str]) -> None:
    """Undo a swap cut short by a crash: when ``path`` is missing but its moved-aside copy
    (``.NAME.old-PID``) exists, move the newest such copy back. Leftover temporary folders of
    finished or crashed swaps (``.NAME.*.tmp``, other ``.old-*``) are removed."""
    target = Path(path)
    parent = target.parent
    if not parent.is_dir():
        return
    olds = sorted(parent.glob(f".{target.name}.old-*"), key=lambda p: p.stat().st_mtime, reverse=True)
    if not target.exists() and olds:
        os.replace(olds[0], target)
        fsync_dir(parent)
        olds = olds[1:]
    for leftover in [*olds, *parent.glob(f".{target.name}.*.tmp")]:
        if leftover.is_dir() and _owner_gone(leftover):
            shutil.rmtree(leftover, ignore_errors=True)


def _owner_gone(tmp: Path) -> bool:
    """Whether the process that made a ``.NAME.<pid>-….tmp`` / ``.old-PID`` folder is gone (or unknown)."""
    name = tmp.name
    pid_part = name.rsplit(".old-", 1)[1] if ".old-" in name else name.split(".")[-2].split("-")[0]
    if not pid_part.isdigit():
        return True
    pid = int(pid_part)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str], *, private: bool = False) -> Iterator[Path]:
    """Yield a temporary directory; on success it replaces ``path`` as a whole.

    The swap is one atomic exchange where the OS has it; elsewhere the old ``path`` is moved
    aside, the new one moved in, and :func:`recover_dir` repairs a crash between the two. Either
    way a crash leaves the old or the new directory under ``path``. The new directory gets the
    umask's mode (0700 with ``private``).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    recover_dir(target)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.{os.getpid()}-", suffix=".tmp", dir=target.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _public_mode(tmp, directory=True, private=private)
    if target.exists() and exchange(tmp, target):
        fsync_dir(target.parent)
        shutil.rmtree(tmp, ignore_errors=True)  # now the old directory
        return
    old = None
    if target.exists():
        old = target.parent / f".{target.name}.old-{os.getpid()}"
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
    os.replace(tmp, target)
    fsync_dir(target.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
