"""Fixtures for the storage conformance suite: one store factory per backend kind."""

from __future__ import annotations

from pathlib import Path

import pytest

from .helpers import KINDS, PERSISTENT, make_factory


@pytest.fixture(params=KINDS + ["s3"])
def store_factory(request: pytest.FixtureRequest, tmp_path: Path):
    """A StoreFactory for each backend kind, memory included; "s3" runs against the
    session's real SeaweedFS server (tests/s3_server.py)."""
    if request.param == "s3":
        request.getfixturevalue("s3_server")
    factory = make_factory(request.param, tmp_path)
    yield factory
    factory.close_all()


@pytest.fixture(params=PERSISTENT)
def disk_factory(request: pytest.FixtureRequest, tmp_path: Path):
    """A StoreFactory for each persistent backend kind."""
    factory = make_factory(request.param, tmp_path)
    yield factory
    factory.close_all()
