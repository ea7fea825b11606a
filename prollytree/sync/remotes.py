"""A Git-backed dataset's remotes: Git's own ``[remote "<name>"]`` sections in
``.git/config`` (``git remote -v`` lists them), their names and URLs, and URLs with the
credentials redacted for reports."""

from __future__ import annotations

import os
import re
from typing import Any

from ..versioning import refs as _refs
from ..versioning.git_backend import GitBackend

# the ref namespaces a remote's branches, tags and tracking refs live in
HEADS = b"refs/heads/"
TAGS = b"refs/tags/"
REMOTES = b"refs/remotes/"
ZERO_SHA = b"0" * 40


def git_backend_of(store: Any) -> GitBackend:
    from ..versioning import VersionedKvStore
    if not isinstance(store, VersionedKvStore):
        raise TypeError(f"store must be a VersionedKvStore, not {type(store).__name__}")
    b = store.backend
    if not isinstance(b, GitBackend):
        raise ValueError(f"Git remotes need a Git-backed store; this one uses the "
                         f"{store.storage_backend()} backend")
    return b


def check_remote_name(name: object) -> str:
    """A remote's name: a valid branch-name component without '/' (TypeError/ValueError)."""
    _refs.check_branch_name(name, "remote")
    assert isinstance(name, str)
    if "/" in name:
        raise ValueError(f"invalid remote name {name!r}: it contains '/'")
    return name


def check_url_text(url: object) -> str:
    """``url`` as a str (os.PathLike accepted): TypeError for other types, ValueError when
    empty or holding NUL or line breaks."""
    if isinstance(url, os.PathLike):
        url = os.fspath(url)
    if not isinstance(url, str):
        raise TypeError(f"url must be a str or os.PathLike, not {type(url).__name__}")
    if not url or any(c in url for c in "\0\n\r"):
        raise ValueError(f"invalid remote url {url!r}")
    return url


def check_url(url: object) -> str:
    """A Git remote's URL, checked; a path made absolute."""
    url = check_url_text(url)
    if "://" not in url and not re.match(r"^[\w.-]+@[\w.-]+:", url):
        url = os.path.abspath(url)  # a path: absolute, so it works from anywhere
    return url


def is_http(url: str) -> bool:
    return url.startswith(("http://", "https://"))


def list_remotes(store: Any) -> dict[str, str]:
    """``{name: url}`` of the repository's remotes (Git's ``[remote]`` config)."""
    repo = git_backend_of(store).repo
    cfg = repo.get_config()
    out = {}
    for section in cfg.sections():
        if len(section) == 2 and section[0] == b"remote":
            try:
                out[section[1].decode("utf-8")] = cfg.get(section, b"url").decode("utf-8")
            except KeyError:
                continue
    return dict(sorted(out.items()))


def remote_url(store: Any, name: str) -> str:
    """The URL of remote ``name``; ValueError when there is no such remote."""
    return pick_remote(list_remotes(store), name)


def pick_remote(remotes: dict[str, str], name: object) -> str:
    """The URL of remote ``name`` among ``remotes``; ValueError naming the remotes there
    are when it is not one of them."""
    check_remote_name(name)
    if name not in remotes:
        raise ValueError(f"no remote named {name!r}" + (
            f" (remotes: {', '.join(remotes)})" if remotes else " (there are no remotes)"))
    return remotes[name]


def add_remote(store: Any, name: str, url: str | os.PathLike) -> None:
    """Add remote ``name`` at ``url`` (a path, ``file://``, ``git://``, ``ssh://``,
    ``user@host:path``, ``http(s)://``), with Git's default fetch refspec. ValueError
    when a remote of that name exists. A relative path is stored absolute."""
    check_remote_name(name)
    url = check_url(url)
    repo = git_backend_of(store).repo
    if name in list_remotes(store):
        raise ValueError(f"remote {name!r} already exists")
    cfg = repo.get_config()
    section = (b"remote", name.encode("utf-8"))
    cfg.set(section, b"url", url.encode("utf-8"))
    cfg.set(section, b"fetch", f"+refs/heads/*:refs/remotes/{name}/*".encode("utf-8"))
    cfg.write_to_path()


def remove_remote(store: Any, name: str) -> None:
    """Remove remote ``name``, its config (``branch.*.remote`` settings naming it too) and
    its remote-tracking refs. ValueError when there is no such remote."""
    remote_url(store, name)
    repo = git_backend_of(store).repo
    cfg = repo.get_config()
    key = name.encode("utf-8")
    # dulwich's ConfigFile keeps sections in an ordered dict keyed by section tuple
    for section in list(cfg.sections()):
        if section == (b"remote", key):
            del cfg[section]
        elif len(section) == 2 and section[0] == b"branch":
            try:
                if cfg.get(section, b"remote") == key:
                    del cfg[section]
            except KeyError:
                pass
    cfg.write_to_path()
    prefix = REMOTES + key + b"/"
    for ref in list(repo.refs.keys(base=prefix)):
        repo.refs.remove_if_equals(prefix + ref, None)



def redact_url(url: str) -> str:
    """``url`` without its credentials (``http://TOKEN@host`` -> ``http://***@host``);
    reports and error messages show only this form."""
    return re.sub(r"^([a-z+]+://)[^/@]*@", r"\1***@", url)


def check_pull(store: Any, branch: object, conflict_resolution: object) -> str:
    """Check a pull before anything is fetched (a refused call changes nothing): the
    branch name, the conflict policy, a checked-out branch and no staged change in any
    named tree. Returns the branch to pull (default: the current one)."""
    from ..versioning import ConflictResolution
    if branch is not None:
        _refs.check_branch_name(branch)
    res = conflict_resolution
    if res is not None and not isinstance(res, ConflictResolution) and not callable(res):
        raise TypeError(f"conflict_resolution must be a ConflictResolution or a callable, "
                        f"not {type(res).__name__}")
    current = store.current_branch()
    if current is None:
        raise ValueError("cannot pull: HEAD is detached (checkout a branch)")
    if store.tree_status():
        raise ValueError("cannot pull with staged changes: commit them first")
    return branch or current


def check_push(store: Any, branch: object, force: object) -> str:
    """Check a push's arguments: ``force`` a bool, ``branch`` a valid name (default: the
    current branch; ValueError when HEAD is detached). Returns the branch."""
    if not isinstance(force, bool):
        raise TypeError(f"force must be a bool, not {type(force).__name__}")
    if branch is None:
        branch = store.current_branch()
        if branch is None:
            raise ValueError("cannot push: HEAD is detached (name a branch)")
    _refs.check_branch_name(branch)
    assert isinstance(branch, str)
    return branch
