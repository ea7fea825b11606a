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


# -- Git: a private HOME and a fixed identity (no user config leaks into the tests) ------

GIT_ENV = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "Test Author", "GIT_AUTHOR_EMAIL": "author@example.com",
    "GIT_COMMITTER_NAME": "Test Committer", "GIT_COMMITTER_EMAIL": "committer@example.com",
}


@pytest.fixture
def git_home(tmp_path_factory, monkeypatch):
    """A private HOME, a fixed Git identity, a longer lock timeout for loaded machines,
    and no GIT_DIR-style variables from the caller's environment."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    for k, v in GIT_ENV.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("PROLLYTREE_LOCK_TIMEOUT", "20")
    for k in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"):
        monkeypatch.delenv(k, raising=False)
    return home
