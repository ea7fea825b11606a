"""The official langgraph-checkpoint-conformance suite against ProllyCheckpointSaver."""

from __future__ import annotations

import asyncio
import tempfile

import pytest

pytest.importorskip("langgraph.checkpoint.conformance")

from langgraph.checkpoint.conformance import checkpointer_test, validate  # noqa: E402

from prollytree.integrations.langgraph import ProllyCheckpointSaver  # noqa: E402
from prollytree.versioning import StorageBackend  # noqa: E402


@pytest.mark.parametrize("backend", [StorageBackend.File, StorageBackend.Git])
def test_conformance(backend, monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))

    @checkpointer_test(name=f"ProllyCheckpointSaver-{backend.name}")
    async def prolly_saver():
        saver = ProllyCheckpointSaver(tempfile.mkdtemp(dir=tmp_path) + "/ds", backend)
        yield saver
        saver.close()

    report = asyncio.run(validate(prolly_saver))
    failures = {cap: r.failures for cap, r in report.results.items() if r.passed is False}
    assert not failures, failures
    # every capability, base and extended, was detected and passed
    assert all(r.passed for r in report.results.values()), report.results
