"""The commit record shared by every history backend, and the author identity."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from .roots import RootSet

#: Identity used when neither the environment nor the Git config names the author.
FALLBACK_NAME = "prollytree"
FALLBACK_EMAIL = "prollytree@localhost"


@dataclass(frozen=True)
class Commit:
    """One commit: the dataset's root set (every named tree's root) at that point plus
    Git-style metadata.

    ``id`` is 40 lowercase hex characters; ``parents`` are commit ids, first parent first
    (a merge commit has two); ``timestamp`` is seconds since the epoch, ``tz_offset`` the
    committer's offset from UTC in seconds."""

    id: str
    trees: RootSet
    parents: tuple = ()
    author: str = ""
    committer: str = ""
    message: str = ""
    timestamp: int = 0
    tz_offset: int = 0
    extra: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def root(self) -> bytes:
        """Root address of the default tree."""
        return self.trees.default_root

    def as_dict(self) -> dict:
        """The public dict form used by ``log()``, ``get_commit_history()`` and
        ``commit_info()``."""
        return {"id": self.id, "parents": list(self.parents), "author": self.author,
                "committer": self.committer, "message": self.message,
                "timestamp": self.timestamp, "tz_offset": self.tz_offset}


def local_tz_offset(when: float | None = None) -> int:
    """Local offset from UTC, in seconds, at ``when`` (default now)."""
    t = time.localtime(when)
    return t.tm_gmtoff or 0


def identity(role: str, config_name: str | None, config_email: str | None) -> str:
    """``"Name <email>"`` for ``role`` ("AUTHOR" or "COMMITTER"), resolved like Git:
    ``GIT_<ROLE>_NAME``/``GIT_<ROLE>_EMAIL`` from the environment first, then the
    ``user.name``/``user.email`` config values given, then ``EMAIL`` for the address,
    then :data:`FALLBACK_NAME` / :data:`FALLBACK_EMAIL`."""
    name = os.environ.get(f"GIT_{role}_NAME") or config_name or FALLBACK_NAME
    email = (os.environ.get(f"GIT_{role}_EMAIL") or config_email or os.environ.get("EMAIL")
             or FALLBACK_EMAIL)
    name = name.replace("<", "").replace(">", "").replace("\n", " ").strip() or FALLBACK_NAME
    email = email.replace("<", "").replace(">", "").replace("\n", "").strip() or FALLBACK_EMAIL
    return f"{name} <{email}>"
