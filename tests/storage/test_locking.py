"""The writer-lock timeout setting and the lazy imports of the optional backends."""

from __future__ import annotations

import subprocess
import sys

import pytest

from prollytree.errors import StoreError, StoreLockedError
from prollytree.storage import open_store
from prollytree.storage.locking import (
    DEFAULT_LOCK_TIMEOUT, LOCK_FILE_NAME, WriterLock, resolve_lock_timeout,
)


def test_lock_timeout_comes_from_argument_then_environment(monkeypatch):
    monkeypatch.delenv("PROLLYTREE_LOCK_TIMEOUT", raising=False)
    assert resolve_lock_timeout(None) == DEFAULT_LOCK_TIMEOUT
    assert resolve_lock_timeout(2) == 2.0
    monkeypatch.setenv("PROLLYTREE_LOCK_TIMEOUT", "0.5")
    assert resolve_lock_timeout(None) == 0.5
    assert resolve_lock_timeout(3.0) == 3.0                # the argument wins
    monkeypatch.setenv("PROLLYTREE_LOCK_TIMEOUT", "soon")
    with pytest.raises(ValueError, match="PROLLYTREE_LOCK_TIMEOUT"):
        resolve_lock_timeout(None)
    monkeypatch.setenv("PROLLYTREE_LOCK_TIMEOUT", "-1")
    with pytest.raises(ValueError, match="PROLLYTREE_LOCK_TIMEOUT"):
        resolve_lock_timeout(None)
    with pytest.raises(ValueError):
        resolve_lock_timeout(float("nan"))
    with pytest.raises(TypeError):
        resolve_lock_timeout(True)


def test_environment_timeout_reaches_open_store(tmp_path, monkeypatch):
    monkeypatch.setenv("PROLLYTREE_LOCK_TIMEOUT", "0.1")
    with open_store("file", tmp_path / "s"):
        # another process: inside this one the open store is shared instead
        r = subprocess.run([sys.executable, "-c", (
            "from prollytree.storage import open_store\n"
            "from prollytree.errors import StoreLockedError\n"
            "import sys, time\n"
            "t = time.monotonic()\n"
            "try:\n"
            f"    open_store('file', {str(tmp_path / 's')!r})\n"
            "except StoreLockedError:\n"
            "    print('LOCKED', time.monotonic() - t)\n")],
            capture_output=True, text=True, timeout=60)
        assert r.stdout.startswith("LOCKED"), r.stderr
        assert float(r.stdout.split()[1]) < 5


def test_writer_lock_is_exclusive_and_released(tmp_path):
    first = WriterLock(str(tmp_path), 0)
    first.acquire()
    assert first.held and (tmp_path / LOCK_FILE_NAME).exists()
    second = WriterLock(str(tmp_path), 0.05)
    with pytest.raises(StoreLockedError, match=str(tmp_path)):
        second.acquire()
    assert not second.held
    first.release()
    with second:
        assert second.held
    assert not second.held


@pytest.mark.parametrize("kind, module, extra", [
    ("rocksdb", "rocksdict", "rocksdb"), ("lmdb", "lmdb", "lmdb")])
def test_missing_optional_package_names_the_extra(tmp_path, monkeypatch, kind, module, extra):
    monkeypatch.setitem(sys.modules, module, None)        # makes "import module" fail
    with pytest.raises(StoreError) as err:
        open_store(kind, tmp_path / kind)
    assert isinstance(err.value, ValueError)
    assert f"pip install 'prollytree-py[{extra}]'" in str(err.value)


def test_forked_child_does_not_keep_the_lock(tmp_path):
    """A child forked while the lock is held must not keep it alive after the parent
    releases it (it shares the parent's open file description)."""
    import os
    import signal
    import time

    lock = WriterLock(str(tmp_path), 0)
    lock.acquire()
    pid = os.fork()
    if pid == 0:                                          # child: just stay alive a while
        time.sleep(30)
        os._exit(0)
    try:
        lock.release()
        again = WriterLock(str(tmp_path), 2)
        again.acquire()                                   # would time out if the child held it
        assert again.held
        again.release()
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
