
import pytest


@pytest.fixture(autouse=True)
def _git_identity(monkeypatch, tmp_path):
    # commits need an identity; never read the user's
    monkeypatch.setenv("HOME", str(tmp_path))
    for k in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{k}_NAME", "Memory Test")
        monkeypatch.setenv(f"GIT_{k}_EMAIL", "memory@example.invalid")


class FakeClock:
    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.t = start

    def __call__(self) -> float:
        self.t += 0.001
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


@pytest.fixture
def clock():
    return FakeClock()
