"""Files that survive a crash: an exclusive lock, atomic replacement, and syncing a directory entry."""
from __future__ import annotations

import os

from .errors import InputError


class FileLock:
    """An exclusive ``flock`` on ``path`` (released by the kernel when the holder dies).

    ``what`` names the thing protected, for the error when another process holds the lock.
    """

    def __init__(self, path, what):
        self.path, self.what, self.fd = os.fspath(path), what, None

    def __enter__(self):
        import fcntl
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            self.fd = None
            raise InputError(f"{self.what}: another job is writing it (lock {self.path})") from None
        return self

    def __exit__(self, *exc):
        import fcntl
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
        self.fd = None


def fsync_dir(path) -> None:
    """fsync the directory holding ``path``, so that a rename or a new file in it is durable."""
    d = os.path.dirname(os.path.abspath(os.fspath(path)))
    try:
        fd = os.open(d, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that the file is either the old one or the new one, whole."""
    path = os.fspath(path)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path)
