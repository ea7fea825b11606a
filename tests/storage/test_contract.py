"""Every node store in the package runs the shipped contract class
(:class:`prollytree.storage.testing.NodeStoreContract`), the Git node store and S3
included, exactly as an out-of-tree backend would."""

import uuid

import pytest

from prollytree.storage import MemoryNodeStore
from prollytree.storage.file import FileNodeStore
from prollytree.storage.git import GitNodeStore
from prollytree.storage.lmdb import LMDBNodeStore
from prollytree.storage.rocksdb import RocksDBNodeStore
from prollytree.storage.testing import NodeStoreContract


class TestMemory(NodeStoreContract):
    persistent = False

    def open_store(self, path, read_only=False):
        return MemoryNodeStore()


class TestFile(NodeStoreContract):
    def open_store(self, path, read_only=False):
        return FileNodeStore(str(path / "store"), read_only=read_only)


class TestRocksDB(NodeStoreContract):
    def open_store(self, path, read_only=False):
        return RocksDBNodeStore(str(path / "store"), read_only=read_only)


class TestLMDB(NodeStoreContract):
    def open_store(self, path, read_only=False):
        return LMDBNodeStore(str(path / "store"), read_only=read_only)


class TestGit(NodeStoreContract):
    supports_remove = False          # git gc reclaims objects, never the store

    def open_store(self, path, read_only=False):
        return GitNodeStore(str(path / "repo"), read_only=read_only)


class TestS3(NodeStoreContract):
    @pytest.fixture(autouse=True)
    def _server(self, s3_server):
        self.prefix = uuid.uuid4().hex[:12]

    def open_store(self, path, read_only=False):
        from prollytree.storage.s3 import S3NodeStore
        from tests.s3_server import BUCKET
        return S3NodeStore(f"s3://{BUCKET}/{path.name}-{self.prefix}", read_only=read_only)
