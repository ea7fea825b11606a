"""Helpers shared by the storage tests: node makers, a store factory, subprocess runners."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import pytest

from prollytree.storage import MemoryNodeStore, NodeStore
from prollytree.storage.file import FileNodeStore
from prollytree.storage.lmdb import LMDBNodeStore
from prollytree.storage.rocksdb import RocksDBNodeStore
from prollytree.storage.s3 import S3NodeStore

KINDS = ["memory", "file", "rocksdb", "lmdb"]
PERSISTENT = ["file", "rocksdb", "lmdb"]
CLASSES: dict[str, Any] = {"file": FileNodeStore, "rocksdb": RocksDBNodeStore,
                           "lmdb": LMDBNodeStore}


def node(data: bytes) -> tuple[bytes, bytes]:
    """An (address, bytes) pair the way the tree layer makes them."""
    return hashlib.sha256(data).digest(), data


def nodes(n: int, size: int = 100, seed: int = 0) -> list[tuple[bytes, bytes]]:
    """``n`` distinct nodes of ``size`` pseudo-random (incompressible) bytes."""
    out = []
    for i in range(n):
        stream = hashlib.shake_256(b"%d:%d" % (seed, i)).digest(size)
        out.append(node(stream))
    return out


class StoreFactory:
    """Opens stores of one kind at one path. Memory stores have no path: every call
    returns the same instance, which stands in for "the store" across a reopen."""

    def __init__(self, kind: str, tmp_path: Path) -> None:
        self.kind = kind
        self.path = tmp_path / kind
        if kind == "s3":   # a fresh prefix in the session's SeaweedFS bucket (see s3_server)
            from tests.s3_server import BUCKET
            self.path = f"s3://{BUCKET}/{tmp_path.name}-{uuid.uuid4().hex[:12]}"
        self._memory: MemoryNodeStore | None = None
        self.opened: list[NodeStore] = []

    @property
    def persistent(self) -> bool:
        return self.kind != "memory"

    def __call__(self, read_only: bool = False, **kwargs: Any) -> NodeStore:
        if self.kind == "memory":
            if read_only:
                pytest.skip("the memory store has no read-only mode")
            if self._memory is None:
                self._memory = MemoryNodeStore()
            return self._memory
        cls = S3NodeStore if self.kind == "s3" else CLASSES[self.kind]
        store = cls(str(self.path), read_only=read_only, **kwargs)
        self.opened.append(store)
        return store

    def reopen(self, store: NodeStore) -> NodeStore:
        """Close ``store`` and open the same path again (memory: the same object)."""
        if self.kind == "memory":
            return store
        store.close()
        return self()

    def close_all(self) -> None:
        for store in self.opened:
            store.close()


def make_factory(kind: str, tmp_path: Path) -> StoreFactory:
    return StoreFactory(kind, tmp_path)


def run_python(script: str, env: dict[str, str] | None = None,
               timeout: float = 60) -> subprocess.CompletedProcess:
    """Run ``script`` in a fresh interpreter (a separate process, no inherited locks)."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(script)],
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def popen_python(script: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})


#: Prelude for subprocess scripts: open a store of a kind by name.
OPEN_PRELUDE = """
import hashlib, os, sys, time
from prollytree.storage.file import FileNodeStore
from prollytree.storage.lmdb import LMDBNodeStore
from prollytree.storage.rocksdb import RocksDBNodeStore
CLASSES = {"file": FileNodeStore, "rocksdb": RocksDBNodeStore, "lmdb": LMDBNodeStore}
def nodes(n, size=100, seed=0):
    out = []
    for i in range(n):
        data = hashlib.shake_256(b"%d:%d" % (seed, i)).digest(size)
        out.append((hashlib.sha256(data).digest(), data))
    return out
"""
