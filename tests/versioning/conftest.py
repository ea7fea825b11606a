import os
import subprocess

import pytest

from prollytree.versioning import StorageBackend, VersionedKvStore

@pytest.fixture(autouse=True)
def _git_identity(git_home):
    """Every versioning test runs with tests/conftest.py's private HOME and identity."""
    return git_home


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
    if request.param.name == "S3":
        # S3 locations are URLs: only tests that make their stores with make_store (or
        # ask for s3_location) run on S3; the server starts on first use
        if "make_store" not in request.fixturenames and \
                "location" not in request.fixturenames:
            pytest.skip("this test makes local paths; S3 runs the make_store tests")
        request.getfixturevalue("s3_server")
        state = request.getfixturevalue("tmp_path_factory").mktemp("s3state")
        # not monkeypatch: tests call monkeypatch.undo(), which must not move the state
        saved = os.environ.get("PROLLYTREE_S3_STATE_DIR")
        os.environ["PROLLYTREE_S3_STATE_DIR"] = str(state)
        yield request.param
        if saved is None:
            os.environ.pop("PROLLYTREE_S3_STATE_DIR", None)
        else:
            os.environ["PROLLYTREE_S3_STATE_DIR"] = saved
        return
    yield request.param


@pytest.fixture
def location(tmp_path, backend):
    """``location(sub)``: where a store of ``backend`` lives: ``tmp_path / sub``, or for
    S3 a fresh prefix in the test bucket."""
    import uuid
    run = uuid.uuid4().hex[:12]

    def where(sub="ds"):
        if backend.name == "S3":
            from tests.s3_server import BUCKET
            return f"s3://{BUCKET}/vkv-{run}/{sub}"
        return str(tmp_path / sub)
    return where


@pytest.fixture
def make_store(location, backend):
    opened = []

    def make(sub="ds"):
        s = VersionedKvStore(location(sub), backend)
        opened.append(s)
        return s

    yield make
    for s in opened:
        s.close()
