"""Small helpers that make file-system changes durable: one copy for every backend.

A rename or a new file is only durable once its directory is fsynced too; these helpers
do that, and :func:`make_store_dir` creates a store directory so that it survives a power
loss.
"""

from __future__ import annotations

import os

from .errors import StoreError


def fsync_dir(path: str, required: bool = True) -> None:
    """fsync directory ``path`` so that renames and creations in it are durable.

    With ``required=False`` errors are ignored: some file systems refuse fsync on
    directories, and callers that only add safety on top of another guarantee opt out."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        if required:
            raise
        return
    try:
        os.fsync(fd)
    except OSError:
        if required:
            raise
    finally:
        os.close(fd)


def unlink_quietly(path: str) -> None:
    """Remove ``path`` if it exists (a file someone else may have removed already)."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def atomic_write(path: str, data: bytes, fsync: bool = True) -> None:
    """Replace ``path`` with ``data`` atomically (temp file + rename); with ``fsync``, the
    new content and the rename are durable when this returns."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
        if fsync:
            f.flush()
            os.fsync(f.fileno())
    os.replace(tmp, path)
    if fsync:
        fsync_dir(os.path.dirname(os.path.abspath(path)), required=False)


def make_store_dir(path: str, what: str) -> None:
    """Create a store directory (and its parents) for a writable open, durably.

    Raises StoreError if ``path`` exists and is not a directory. When the directory is
    new, its parent is fsynced so that the directory entry itself survives a power loss
    (the backends take care of the files inside it).
    """
    if os.path.isdir(path):
        return
    try:
        os.makedirs(path, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise StoreError(f"{what} path {path} is not a directory") from None
    fsync_dir(os.path.dirname(os.path.abspath(path)) or ".", required=False)
