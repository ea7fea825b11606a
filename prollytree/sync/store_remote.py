"""Remotes of store-backed datasets (File, RocksDB, LMDB, InMemory, S3): the same calls as
Git remotes — ``add_remote``, ``list_remotes``, ``remove_remote``, ``fetch``, ``pull``,
``push``, ``clone`` — carried by :func:`~prollytree.sync.replicate` (only the nodes the
other side lacks travel; refs move by compare-and-swap after everything arrived).

A remote is another store-backed dataset: a directory (a path or ``file://``) holding a
File, RocksDB or LMDB dataset, or ``s3://bucket/prefix``. Remotes are this working
copy's own settings, as in Git: ``remotes.json`` in the dataset's local state directory
(the dataset directory; for S3 the per-machine state directory), kept in memory for an
InMemory dataset. ``fetch`` copies every branch of the remote into
``refs/remotes/<remote>/<branch>`` (forced, as Git's default refspec is); ``pull`` then
merges with :meth:`VersionedKvStore.merge`; ``push`` is :func:`replicate` into the
remote, refused as :class:`NonFastForwardError` unless a fast-forward or ``force``.
"""

from __future__ import annotations

import json
import os
import weakref
from typing import Any

from ..errors import NonFastForwardError, RemoteError, StoreError, UnknownRefError
from ..storage import NodeStore
from ..versioning import refs as _refs
from .locations import open_dataset_store
from .remotes import (check_pull, check_push, check_remote_name, check_url_text, pick_remote,
                      redact_url)
from .transports import local_path
from .replicate import HEADS, ReplicationStats, is_ancestor, replicate

__all__ = ["add_remote", "list_remotes", "remove_remote", "remote_url", "fetch", "pull",
           "push", "clone", "is_store_dataset"]

REMOTES_FILE = "remotes.json"
TRACKING = "refs/remotes/"
_LOCAL_KINDS = ("file", "rocksdb", "lmdb")
# an InMemory dataset's remotes live as long as its backend
_IN_MEMORY: "weakref.WeakKeyDictionary[Any, dict[str, str]]" = weakref.WeakKeyDictionary()


def _backend(store: Any):
    from ..versioning import VersionedKvStore
    if not isinstance(store, VersionedKvStore):
        raise TypeError(f"store must be a VersionedKvStore, not {type(store).__name__}")
    b = store.backend
    if not isinstance(getattr(b, "store", None), NodeStore):
        raise ValueError(f"store remotes need a store-backed dataset (File, RocksDB, LMDB, "
                         f"InMemory, S3); this one uses the {store.storage_backend()} backend")
    return b


def is_store_dataset(url: object) -> bool:
    """Whether ``url`` names a store-backed dataset: ``s3://...``, or a path /
    ``file://`` URL of a directory holding a node store (``nodes/``)."""
    if isinstance(url, os.PathLike):
        url = os.fspath(url)
    if not isinstance(url, str):
        return False
    if url.startswith("s3://"):
        return True
    if url.startswith(("http://", "https://")):
        return _serves_a_store(url)
    path = local_path(url)
    return path is not None and os.path.isdir(os.path.join(path, "nodes"))


def _serves_a_store(url: str) -> bool:
    """Whether the server at ``url`` serves a store-backed dataset (one GET); False when
    it serves a Git repository or cannot be reached (the Git client reports that)."""
    try:
        import httpx

        from .http_client import split_url
        from .http_store import STORE_API
        base, _ = split_url(url)
        r = httpx.get(base + STORE_API + "/refs", timeout=30, trust_env=False)
        return r.status_code == 200
    except Exception:  # noqa: BLE001 - any failure: not a store server
        return False


def _check_url(url: object) -> str:
    url = check_url_text(url)
    if url.startswith("s3://"):
        from ..storage.s3 import parse_s3_url
        parse_s3_url(url)
        return url
    if url.startswith(("http://", "https://")):
        return url                 # a store-backed dataset served by git prolly serve
    path = local_path(url)
    if path is None:
        raise ValueError(f"a store-backed dataset's remote is a directory, an s3:// "
                         f"location or an http(s):// server, not {url!r} (git:// and "
                         f"ssh:// remotes are for Git-backed datasets)")
    return os.path.abspath(path)


def _remotes_path(b) -> str | None:
    return None if b.state_dir is None else os.path.join(b.state_dir, REMOTES_FILE)


def _read(b) -> dict[str, str]:
    path = _remotes_path(b)
    if path is None:
        return dict(_IN_MEMORY.get(b, {}))
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise StoreError(f"cannot read the remotes of the dataset ({path}): {e}") from None
    if not isinstance(data, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        raise StoreError(f"damaged remotes file {path}")
    return data


def _write(b, remotes: dict[str, str]) -> None:
    path = _remotes_path(b)
    if path is None:
        _IN_MEMORY[b] = dict(remotes)
        return
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(dict(sorted(remotes.items())), f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)       # readers see the old file or the new one, never half


def list_remotes(store: Any) -> dict[str, str]:
    """``{name: url}`` of the dataset's remotes."""
    return dict(sorted(_read(_backend(store)).items()))


def remote_url(store: Any, name: str) -> str:
    return pick_remote(list_remotes(store), name)


def add_remote(store: Any, name: str, url: str | os.PathLike) -> None:
    """Add remote ``name`` at ``url`` (a dataset directory, ``file://``, or
    ``s3://bucket/prefix``; a relative path is stored absolute). ValueError when the name
    is taken or the url is of another kind."""
    b = _backend(store)
    check_remote_name(name)
    url = _check_url(url)
    with b.lock.exclusive():
        remotes = _read(b)
        if name in remotes:
            raise ValueError(f"remote {name!r} already exists")
        remotes[name] = url
        _write(b, remotes)


def remove_remote(store: Any, name: str) -> None:
    """Remove remote ``name`` and its remote-tracking refs."""
    b = _backend(store)
    remote_url(store, name)
    with b.lock.exclusive():
        remotes = _read(b)
        remotes.pop(name, None)
        _write(b, remotes)
        prefix = f"{TRACKING}{name}/"
        for ref, value in list(b.store.refs().items()):
            if ref.startswith(prefix):
                b.store.set_ref(ref, None, expected=value)
        b.store.flush()


def _open_remote(url: str, here: str, *, create: bool, kind: str | None = None,
                 token: str | None = None):
    """The remote's NodeStore: read-only to fetch from, writable to push to (a directory
    holding no dataset becomes one of ``kind``). ``here``: this dataset's location;
    ``token``: for an http(s) remote (else the URL's, else ``$GIT_PROLLY_TOKEN``)."""
    if token is not None and not isinstance(token, str):
        raise TypeError(f"token must be a str, not {type(token).__name__}")
    if url.startswith(("http://", "https://")):
        from .http_store import HttpNodeStore
        return HttpNodeStore(url, read_only=not create,
                             token=token or os.environ.get("GIT_PROLLY_TOKEN") or None)
    if token is not None:
        raise ValueError("a token is only used with http:// and https:// remotes")
    remote_dir = not url.startswith(("s3://", "http://", "https://"))
    if remote_dir and os.path.abspath(url) == os.path.abspath(here):
        raise ValueError(f"remote {url} is this dataset itself")
    if not create or not remote_dir or os.path.isdir(os.path.join(url, "nodes")):
        kind = None
    try:
        return open_dataset_store(url, kind, read_only=not create)
    except (StoreError, OSError, ValueError) as e:
        raise RemoteError(f"cannot open remote {redact_url(url)}: {e}") from None


def fetch(store: Any, remote: str = "origin", *, token: str | None = None) -> dict:
    """Copy every branch of ``remote`` into ``refs/remotes/<remote>/<branch>`` (only what
    this dataset lacks travels; tracking refs of branches the remote no longer has are
    removed). Local branches and the working state do not change. Returns ``{"remote",
    "url", "updated": {branch: (old, new)}, "nodes", "bytes", "commits", "head"}``
    (commit ids as 40 hex characters)."""
    b = _backend(store)
    url = remote_url(store, remote)
    prefix = f"{TRACKING}{remote}/"
    stats = ReplicationStats()
    updated: dict[str, tuple[str | None, str | None]] = {}
    with _open_remote(url, store.path, create=False, token=token) as src:
        theirs = {r[len(HEADS):]: v for r, v in src.refs().items()
                  if r.startswith(HEADS) and len(v) == 32}
        head = src.get_ref("HEAD") or b""
        with b.lock.exclusive():
            ours = {r[len(prefix):]: v for r, v in b.store.refs().items()
                    if r.startswith(prefix)}
            for branch, tip in sorted(theirs.items()):
                if ours.get(branch) == tip:
                    continue
                s = replicate(src, b.store, branch, force=True,
                              destination_ref=prefix + branch)
                stats.add(s)
                stats.commits += s.commits
                old = ours.get(branch)
                updated[branch] = (None if old is None else old[:20].hex(), tip[:20].hex())
            for branch, old in ours.items():
                if branch not in theirs:
                    b.store.set_ref(prefix + branch, None, expected=old)
                    updated[branch] = (old[:20].hex(), None)
            b.store.flush()
    head_branch = head[len(b"ref: " + HEADS.encode()):].decode("utf-8", "replace") \
        if head.startswith(b"ref: " + HEADS.encode()) else None
    return {"remote": remote, "url": redact_url(url), "updated": updated,
            "nodes": stats.nodes,
            "bytes": stats.bytes, "commits": stats.commits, "head": head_branch}


def pull(store: Any, remote: str = "origin", branch: str | None = None,
         conflict_resolution: Any = None, *, token: str | None = None) -> dict:
    """Fetch ``remote``, then merge its ``branch`` (default: the current branch's name)
    into the current branch with :meth:`VersionedKvStore.merge`: a fast-forward, or a
    two-parent merge commit (``conflict_resolution`` as for ``merge``; an unresolved
    conflict raises MergeConflictError with the branch unchanged, the fetch done).
    Returns the fetch report plus ``"merged"`` (``"up-to-date"``, ``"fast-forward"``,
    ``"merge"``), ``"branch"`` and ``"commit"``."""
    b = _backend(store)
    branch = check_pull(store, branch, conflict_resolution)
    report = fetch(store, remote, token=token)
    ref = f"{TRACKING}{remote}/{branch}"
    tracking = b.get_ref(ref)
    if tracking is None:
        raise UnknownRefError(f"remote {remote!r} has no branch {branch!r}")
    head = store.current_commit()
    base = None if head is None else store.merge_base("HEAD", ref)
    if tracking == head or base == tracking:
        kind = "up-to-date"
    else:
        kind = "fast-forward" if head is None or base == head else "merge"
        store.merge(ref, conflict_resolution)
    report.update({"merged": kind, "branch": branch, "commit": store.current_commit()})
    return report


def push(store: Any, remote: str = "origin", branch: str | None = None,
         force: bool = False, *, token: str | None = None) -> dict:
    """Replicate ``branch`` (default: the current one) into ``remote`` (a new directory
    becomes a dataset of this one's kind). Refused with NonFastForwardError — the remote
    unchanged — when the remote branch has commits this one lacks, unless ``force``.
    Returns ``{"remote", "url", "branch", "old", "new", "status": "created" |
    "fast-forward" | "forced" | "up-to-date", "nodes_sent", "bytes_sent", "skipped"}``."""
    b = _backend(store)
    branch = check_push(store, branch, force)
    url = remote_url(store, remote)
    tip = b.store.get_ref(HEADS + branch)
    if tip is None:
        raise UnknownRefError(f"unknown branch {branch!r}")
    local_kind = b.kind if b.kind in _LOCAL_KINDS else "file"
    with _open_remote(url, store.path, create=True, kind=local_kind, token=token) as dst:
        old = dst.get_ref(HEADS + branch)
        try:
            stats = replicate(b.store, dst, branch, force=force)
        except NonFastForwardError as e:
            raise NonFastForwardError(f"push to {redact_url(url)} refused: {e} (pull "
                                      f"first, then push again)") from None
    if old == tip:
        status = "up-to-date"
    elif old is None:
        status = "created"
    elif not force:
        status = "fast-forward"        # replicate refused anything else
    else:
        ff = is_ancestor(b.store, old, tip)
        status = "fast-forward" if ff else "forced"
    with b.lock.exclusive():     # remember where the remote's branch is now
        b.store.set_ref(f"{TRACKING}{remote}/{branch}", tip,
                        expected=b.store.get_ref(f"{TRACKING}{remote}/{branch}"))
        b.store.flush()
    return {"remote": remote, "url": redact_url(url), "branch": branch,
            "old": None if old is None else old[:20].hex(), "new": tip[:20].hex(),
            "status": status, "nodes_sent": stats.nodes, "bytes_sent": stats.bytes,
            "skipped": stats.skipped}


def clone(url: str | os.PathLike, path: str | os.PathLike, *, branch: str | None = None,
          storage_backend: Any = None) -> Any:
    """Copy the store-backed dataset at ``url`` into a new dataset in directory ``path``
    (File by default; ``storage_backend`` RocksDB or LMDB for those) with remote
    ``origin`` at ``url`` and every branch fetched; checks out ``branch`` (default: the
    remote's default branch) and returns the open :class:`VersionedKvStore`. ``path``
    must not exist or be an empty directory; on failure it is left as it was."""
    import shutil

    from ..versioning import StorageBackend, VersionedKvStore
    url = _check_url(url)
    backend = StorageBackend.coerce(storage_backend or StorageBackend.File)
    kinds = {"File": "file", "RocksDB": "rocksdb", "LMDB": "lmdb"}
    if backend.name not in kinds:
        raise ValueError(f"clone makes a File, RocksDB or LMDB dataset, not "
                         f"{backend.name}")
    if branch is not None:
        _refs.check_branch_name(branch)
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, not {type(path).__name__}")
    target = os.path.abspath(os.fspath(path))
    if os.path.exists(target) and (not os.path.isdir(target) or os.listdir(target)):
        raise ValueError(f"{target} exists and is not an empty directory")
    created = not os.path.exists(target)
    store = None
    try:
        with _open_remote(url, target, create=False) as src:
            head = src.get_ref("HEAD") or b""
            default = head[len(b"ref: refs/heads/"):].decode("utf-8", "replace") \
                if head.startswith(b"ref: refs/heads/") else None
            branch = branch or default or "main"
            if src.get_ref(HEADS + branch) is None:
                raise UnknownRefError(f"the remote has no branch {branch!r}")
            # the branch, its config and HEAD first, as replicate makes a new dataset
            with open_dataset_store(target, kinds[backend.name]) as dst:
                replicate(src, dst, branch)
        store = VersionedKvStore(target, backend)
        add_remote(store, "origin", url)
        fetch(store, "origin")             # the other branches, and the tracking refs
        return store
    except BaseException:
        if store is not None:
            store.close()
        if created:
            shutil.rmtree(target, ignore_errors=True)
        elif os.path.isdir(target):
            for name in os.listdir(target):
                p = os.path.join(target, name)
                shutil.rmtree(p) if os.path.isdir(p) else os.remove(p)
        raise
