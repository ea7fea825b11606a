import subprocess

import pytest

from prollytree.versioning import StorageBackend, VersionedKvStore

GIT_ENV = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "Test Author", "GIT_AUTHOR_EMAIL": "author@example.com",
    "GIT_COMMITTER_NAME": "Test Committer", "GIT_COMMITTER_EMAIL": "committer@example.com",
}


@pytest.fixture(autouse=True)
def git_home(tmp_path_factory, monkeypatch):
    """A private HOME (no user git config leaks in) and a fixed identity."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    for k, v in GIT_ENV.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("PROLLYTREE_LOCK_TIMEOUT", "20")
    return home


def git(cwd, *args, check=True):
    r = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if check and r.returncode:
        raise AssertionError(f"git {' '.join(args)} failed ({r.returncode}): {r.stderr}")
    return r


from prollytree.versioning.registry import BACKENDS as _SPECS  # noqa: E402

#: every registered history backend: the API tests run on each
BACKENDS = [StorageBackend[s.name] for s in _SPECS]


@pytest.fixture(params=BACKENDS, ids=lambda b: b.name)
def backend(request):
    return request.param


@pytest.fixture
def make_store(tmp_path, backend):
    opened = []

    def make(sub="ds"):
        s = VersionedKvStore(str(tmp_path / sub), backend)
        opened.append(s)
        return s

    yield make
    for s in opened:
        s.close()
