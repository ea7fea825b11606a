import pytest

apsw = pytest.importorskip("apsw")


@pytest.fixture
def mem_store():
    from prollytree.sql import ProllySQLStore
    s = ProllySQLStore("unused", "memory")
    yield s
    s.close()
