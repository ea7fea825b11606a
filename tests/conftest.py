"""Shared test configuration: hypothesis profiles (CI runs the default one)."""

import os

from hypothesis import HealthCheck, settings

settings.register_profile("ci", max_examples=60, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("deep", max_examples=2000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


# -- a real S3 server (SeaweedFS), started once per test session on first use -----------

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """A running SeaweedFS S3 server on 127.0.0.1 (see tests/s3_server.py); the AWS_*
    settings for it are set in os.environ for the rest of the session."""
    from tests.s3_server import start_server

    server = start_server()
    saved = {k: os.environ.get(k) for k in server.env}
    os.environ.update(server.env)
    yield server
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    server.stop()
    import shutil
    shutil.rmtree(server.root, ignore_errors=True)
