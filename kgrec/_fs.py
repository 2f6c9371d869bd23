"""File-system guards shared by the store, the model and the export (ground floor: imports only kgrec.errors).

* :func:`writer_lock` serialises writers of one folder with ``fcntl.flock`` on a lock file; the lock
  file records the holder's pid and start time so that a writer that gives up can say who holds it.
  The kernel drops the lock when its process dies (SIGKILL included), so a crash never leaves a
  stale lock.
* :func:`check_writable` fails before any work when a folder cannot be written.
* :func:`os_error_message` turns the OS errors of a full or read-only disk into one line that says
  what to free or where to write instead.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from kgrec.errors import KgrecError, StoreError

#: seconds a writer waits for another one before giving up (``KGREC_LOCK_TIMEOUT`` overrides it)
LOCK_TIMEOUT = 600.0

#: errno values that mean "this location cannot take the write", with what to do about each
DISK_ERRORS = {
    errno.EROFS: "the file system is read-only; write somewhere else",
    errno.EACCES: "permission denied; write somewhere you may write, or fix the folder's permissions",
    errno.EPERM: "the operation is not permitted (an immutable or protected folder?); write somewhere else",
    errno.ENOSPC: "no space left on the device; free space there or write somewhere else",
    errno.EDQUOT: "the disk quota is exceeded; free space there or write somewhere else",
    errno.EFBIG: "the file is larger than this process may write (file size limit); raise the limit or write elsewhere",
}


class LockTimeoutError(StoreError):
    """Another writer held the lock for longer than the timeout."""


def lock_timeout() -> float:
    raw = os.environ.get("KGREC_LOCK_TIMEOUT")
    if raw is None:
        return LOCK_TIMEOUT
    try:
        return max(0.0, float(raw))
    except ValueError:
        raise KgrecError(f"KGREC_LOCK_TIMEOUT={raw!r}: expected a number of seconds") from None


def _holder(lock: Path) -> str:
    try:
        text = lock.read_text(encoding="utf-8").split()
    except OSError:
        return "unknown process"
    if len(text) >= 2 and text[0].isdigit():
        try:
            since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(float(text[1])))
        except (ValueError, OverflowError):
            since = "an unknown time"
        return f"pid {text[0]} since {since}"
    return "unknown process"


@contextlib.contextmanager
def writer_lock(lock: str | os.PathLike[str], what: str, hint: str, *, timeout: float | None = None) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``lock`` (created if missing) for the block.

    Waits up to ``timeout`` seconds (default :func:`lock_timeout`; 0: do not wait) for another
    holder, then raises :class:`LockTimeoutError`: "``what`` (pid N since T); ``hint``".
    """
    import fcntl

    path = Path(lock)
    timeout = lock_timeout() if timeout is None else timeout
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockTimeoutError(f"{what} ({_holder(path)}); {hint}") from None
                time.sleep(0.1)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {time.time():.3f}\n".encode("ascii"), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # closing the descriptor drops the lock


def _existing(path: Path) -> Path:
    p = path
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def write_probe(folder: Path) -> OSError | None:
    """Create and remove a temporary file in the existing ``folder``: the error that stopped it, or None."""
    try:
        fd, name = tempfile.mkstemp(dir=folder, prefix=".kgrec-write-check-")
        os.close(fd)
        os.unlink(name)
    except OSError as e:
        return e
    return None


def check_writable(folder: str | os.PathLike[str], what: str, elsewhere: str) -> None:
    """Fail before any work when ``folder`` (or, if it does not exist yet, its nearest existing parent)
    cannot take a new file: "cannot write ``what`` to FOLDER: <reason>; ``elsewhere``"."""
    target = Path(folder).expanduser()
    probe_dir = _existing(target)
    if not probe_dir.is_dir():
        raise KgrecError(f"cannot write {what} to {target}: {probe_dir} is not a directory; {elsewhere}")
    err = write_probe(probe_dir)
    if err is not None:
        raise KgrecError(f"cannot write {what} to {target}: {err.strerror}; {elsewhere}")


def is_disk_error(e: BaseException) -> bool:
    """Whether ``e`` is an OS error of a full, read-only or forbidden location."""
    return isinstance(e, OSError) and e.errno in DISK_ERRORS


def disk_error(e: OSError, where: str) -> KgrecError:
    """A disk error of writing ``where`` (e.g. "the store /x") as one line; the temporary files are already gone."""
    reason = os.strerror(e.errno) if e.errno else str(e)
    return KgrecError(
        f"cannot write {where}: {reason} ({DISK_ERRORS.get(e.errno or 0, 'write somewhere else')}); nothing was changed"
    )


def os_error_message(e: OSError) -> str:
    """One line for a disk error: the path, the OS's words and what to do."""
    where = e.filename if e.filename is not None else "the output"
    what = DISK_ERRORS.get(e.errno or 0, "")
    return f"cannot write {where}: {e.strerror or e}" + (f" ({what})" if what else "")
