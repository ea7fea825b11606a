"""Git remotes for Git-backed datasets: clone, fetch, pull, push.

A Git-backed :class:`~prollytree.versioning.VersionedKvStore` *is* a Git repository
(its commits are Git commits, the dataset lives at ``<prefix>/.prolly`` in each commit's
tree, every node reachable through the mirror trees), so syncing it is syncing Git
objects and refs:

* remotes are Git's: ``[remote "<name>"]`` sections in ``.git/config`` (``git remote -v``
  lists them; ``git fetch``/``git push`` use them too);
* ``fetch`` brings the objects of the remote's branches and tags and moves the
  remote-tracking refs ``refs/remotes/<remote>/<branch>``; new tags are created, existing
  ones are never moved; tracking refs of branches deleted on the remote are removed;
* ``pull`` fetches, then merges ``refs/remotes/<remote>/<branch>`` into the current
  branch with :meth:`VersionedKvStore.merge` (fast-forward when possible, else a
  two-parent merge commit);
* ``push`` sends what the remote lacks and moves the remote branch; the server checks the
  branch still is where the client saw it (Git's receive-pack does compare-and-swap), and
  a move that is not a fast-forward is refused (:class:`NonFastForwardError`) unless
  ``force=True``.

Transports: local paths, ``file://``, ``git://`` and ``ssh://`` through dulwich's
clients (ssh runs ``$GIT_SSH_COMMAND``, ``$GIT_SSH``, ``core.sshCommand`` or ``ssh``, as
Git does); ``http://``/``https://`` through :mod:`prollytree.sync.http_client` (the
protocol of ``git prolly serve``, see ``docs/sync-http.md``).

Only the dataset's data and Git's objects/refs are handled: ``pull`` does not update
files of the work tree outside the dataset (run ``git merge``/``git checkout`` for those),
and a three-way merge commit's tree is the current branch's tree with the dataset merged.
"""

from __future__ import annotations

import os
import shutil
from typing import Any

from ..errors import NonFastForwardError, RemoteError, UnknownRefError
from ..versioning import refs as _refs
from ..versioning.git_backend import GitBackend
from ..versioning.git_layout import DATASET_DIR, ROOT_ENTRY
from .exchange import learn_commits, pack_bytes
from .remotes import (
    HEADS, REMOTES, TAGS, ZERO_SHA, add_remote, check_pull, check_push, check_url, git_backend_of,
    list_remotes, redact_url, remote_url, remove_remote,
)
from .transports import Progress, dulwich_errors, fetch_refs, remote_failure, transport_for

__all__ = ["clone", "fetch", "pull", "push", "add_remote", "remove_remote", "list_remotes",
           "remote_url", "redact_url", "Progress"]


# -- fetch ---------------------------------------------------------------------------------------


def _fetch_into(backend: GitBackend, name: str, url: str, progress: Progress | None,
                token: str | None = None) -> dict:
    """Fetch every branch and tag of ``url`` into the repository; move
    ``refs/remotes/<name>/*``; learn the new commits' datasets. Returns the report."""
    repo = backend.repo
    transport = transport_for(repo, url, token)
    store = repo.object_store
    before_packs = pack_bytes(repo)
    local_heads = list(repo.refs.as_dict(HEADS).values())

    def determine_wants(refs, depth=None, **kw):
        wants = []
        for ref, sha in refs.items():
            if sha is None or sha == ZERO_SHA or ref.endswith(b"^{}"):
                continue
            if (ref.startswith(HEADS) or ref.startswith(TAGS)) and sha not in store:
                wants.append(sha)
        return list(dict.fromkeys(wants))

    remote_refs, symrefs = fetch_refs(transport, repo, determine_wants, progress,
                                         "fetch from", url)
    prefix = REMOTES + name.encode("utf-8") + b"/"
    old_tracking = {prefix + r: s for r, s in repo.refs.as_dict(prefix).items()}
    updated: dict[str, tuple[str | None, str | None]] = {}
    new_tips = []
    seen_remote = set()
    for ref, sha in remote_refs.items():
        if sha is None or not ref.startswith(HEADS):
            continue
        if sha not in store:  # the server did not send it: refuse to point at nothing
            raise RemoteError(f"fetch from {redact_url(url)}: {ref.decode()} -> "
                              f"{sha.decode()} was not received")
        tracking = prefix + ref[len(HEADS):]
        seen_remote.add(tracking)
        old = old_tracking.get(tracking)
        if old != sha:
            repo.refs.set_if_equals(tracking, old, sha, message=b"prollytree: fetch")
            updated[ref[len(HEADS):].decode("utf-8")] = (
                None if old is None else old.decode(), sha.decode())
            new_tips.append(sha)
    for tracking, old in old_tracking.items():
        if tracking not in seen_remote and tracking != prefix + b"HEAD":
            repo.refs.remove_if_equals(tracking, old, message=b"prollytree: fetch prune")
            updated[tracking[len(prefix):].decode("utf-8")] = (old.decode(), None)
    head = symrefs.get(b"HEAD")
    if head is not None and head.startswith(HEADS) and prefix + head[len(HEADS):] in seen_remote:
        repo.refs.set_symbolic_ref(prefix + b"HEAD", prefix + head[len(HEADS):])
    tags = []
    for ref, sha in remote_refs.items():
        if sha is None or not ref.startswith(TAGS) or ref.endswith(b"^{}"):
            continue
        if sha in store and repo.refs.add_if_new(ref, sha, message=b"prollytree: fetch"):
            tags.append(ref[len(TAGS):].decode("utf-8"))
            new_tips.append(sha)
    learnt = learn_commits(backend, new_tips, list(old_tracking.values()) + local_heads,
                        progress)
    return {"remote": name, "url": redact_url(url), "updated": updated, "new_tags": tags,
            "commits_learnt": learnt, "bytes": max(0, pack_bytes(repo) - before_packs),
            "head": head[len(HEADS):].decode("utf-8")
            if head and head.startswith(HEADS) and prefix + head[len(HEADS):] in seen_remote
            else None}


def fetch(store: Any, remote: str = "origin", *, progress: Progress | None = None,
          token: str | None = None) -> dict:
    """Fetch the branches and tags of ``remote``: objects the repository lacks arrive,
    ``refs/remotes/<remote>/<branch>`` move to the remote's branches. Local branches and
    the store's state do not change. Returns ``{"remote", "url", "updated": {branch:
    (old id | None, new id | None)}, "new_tags", "commits_learnt", "bytes", "head"}``.

    Costs what Git's fetch costs: objects reachable from the remote's refs and not from
    local ones travel (for a dataset, the nodes of the changed paths of each new
    commit)."""
    backend = git_backend_of(store)
    url = remote_url(store, remote)
    return _fetch_into(backend, remote, url, progress, token)


# -- pull ------------------------------------------------------------------------------------------


def pull(store: Any, remote: str = "origin", branch: str | None = None,
         conflict_resolution: Any = None, *, progress: Progress | None = None,
         token: str | None = None) -> dict:
    """Fetch ``remote``, then merge its ``branch`` (default: the current branch's name)
    into the current branch: a fast-forward when the current branch has no commits of
    its own, else a three-way merge commit with two parents (``conflict_resolution`` as
    in :meth:`VersionedKvStore.merge`; unresolved conflicts raise MergeConflictError and
    leave the branch as it was, the fetch having happened).

    Returns the fetch report plus ``"merged"`` (``"up-to-date"``, ``"fast-forward"`` or
    ``"merge"``) and ``"commit"`` (the current commit afterwards)."""
    backend = git_backend_of(store)
    branch = check_pull(store, branch, conflict_resolution)
    report = fetch(store, remote, progress=progress, token=token)
    tracking = backend.get_ref(f"refs/remotes/{remote}/{branch}")
    if tracking is None:
        raise UnknownRefError(f"remote {remote!r} has no branch {branch!r}")
    head = store.current_commit()
    if tracking == head or backend.history.merge_base(head, tracking) == tracking:
        kind = "up-to-date"
    elif backend.history.merge_base(head, tracking) == head:
        kind = "fast-forward"
    else:
        kind = "merge"
    if kind != "up-to-date":
        store.merge(tracking, conflict_resolution)
    report.update({"merged": kind, "branch": branch, "commit": store.current_commit()})
    return report


# -- push --------------------------------------------------------------------------------------------


def push(store: Any, remote: str = "origin", branch: str | None = None, force: bool = False,
         *, progress: Progress | None = None, token: str | None = None) -> dict:
    """Push the committed tip of ``branch`` (default: the current branch) to the same
    branch of ``remote``. Only objects the remote lacks are sent. The remote branch moves
    only if it still is where the push saw it (compare-and-swap on the server); a move
    that is not a fast-forward raises :class:`NonFastForwardError` (nothing changes)
    unless ``force``. Staged changes are not pushed.

    Returns ``{"remote", "url", "branch", "old", "new", "status", "objects_sent",
    "bytes_sent"}`` with ``status`` one of ``"up-to-date"``, ``"created"``,
    ``"fast-forward"``, ``"forced"`` (``bytes_sent`` is None where the transport does
    not tell: Git's own protocols)."""
    backend = git_backend_of(store)
    branch = check_push(store, branch, force)
    new = backend.get_ref(f"refs/heads/{branch}")
    if new is None:
        raise UnknownRefError(f"unknown branch {branch!r}")
    url = remote_url(store, remote)
    repo = backend.repo
    ref = HEADS + branch.encode("utf-8")
    new_b = new.encode("ascii")
    seen: dict[str, Any] = {}

    def update_refs(refs: dict) -> dict:
        old = refs.get(ref)
        if old == ZERO_SHA:
            old = None
        seen["old"] = old
        if old is None:
            seen["status"] = "created"
        elif old == new_b:
            seen["status"] = "up-to-date"
            return {}
        elif old in repo.object_store and backend.history.merge_base(
                old.decode("ascii"), new) == old.decode("ascii"):
            seen["status"] = "fast-forward"
        elif force:
            seen["status"] = "forced"
        else:
            raise NonFastForwardError(
                f"push to {remote!r} refused: branch {branch!r} there is at "
                f"{old.decode()[:12]}, which {branch!r} here ({new[:12]}) does not "
                f"contain; pull (fetch and merge) first, or push with force")
        out = dict(refs)
        out[ref] = new_b
        return out

    transport = transport_for(repo, url, token)
    try:
        status = transport.push(repo, update_refs, progress)
    except (RemoteError, ValueError, TypeError):
        raise
    except dulwich_errors() as e:
        raise remote_failure("push to", url, e) from None
    except Exception as e:  # dulwich's SendPackError and friends
        from dulwich.errors import GitProtocolError
        if isinstance(e, GitProtocolError) or type(e).__name__.endswith("Error"):
            raise remote_failure("push to", url, e) from None
        raise
    err = status.get(ref)
    if err is not None:
        text = err.decode("utf-8", "replace") if isinstance(err, bytes) else str(err)
        raise RemoteError(f"push to {redact_url(url)} failed: the remote refused "
                          f"{branch!r}: {text}")
    old = seen.get("old")
    tracking = REMOTES + remote.encode("utf-8") + b"/" + branch.encode("utf-8")
    repo.refs.set_if_equals(tracking, None, new_b, message=b"prollytree: push")
    sent = getattr(transport, "last_push", None) or {"objects": 0, "bytes": 0}
    return {"remote": remote, "url": redact_url(url), "branch": branch,
            "old": None if old is None else old.decode("ascii"), "new": new,
            "status": seen.get("status", "up-to-date"), "objects_sent": sent["objects"],
            "bytes_sent": sent["bytes"]}


# -- clone -----------------------------------------------------------------------------------------


def _find_datasets(repo, tree_id: bytes, limit_depth: int = 12) -> list[str]:
    """Prefixes (``""`` for the root) of the directories of tree ``tree_id`` that hold a
    dataset (``.prolly/ROOT``); ``.prolly`` directories are not searched."""
    from dulwich.objects import Tree
    out = []
    stack = [(b"", tree_id, 0)]
    while stack:
        path, sha, depth = stack.pop()
        t = repo.object_store[sha]
        if not isinstance(t, Tree):
            continue
        for e in t.iteritems():
            if e.path == DATASET_DIR and e.mode == 0o040000:
                sub = repo.object_store[e.sha]
                if isinstance(sub, Tree) and ROOT_ENTRY in sub:
                    out.append(path.decode("utf-8"))
            elif e.mode == 0o040000 and depth < limit_depth:
                stack.append((path + b"/" + e.path if path else e.path, e.sha, depth + 1))
    return sorted(out)


def _without_datasets(repo, tree_id: bytes, prefixes: list[str], sink) -> bytes:
    """Id of tree ``tree_id`` without the ``<prefix>/.prolly`` directories (new trees go
    to ``sink``, an object store): what the work tree gets (the dataset's files stay in
    the index only, flagged skip-worktree, as the store keeps them)."""
    from dulwich.objects import Tree

    def strip(sha: bytes, parts: list[list[bytes]]) -> bytes:
        t = repo.object_store[sha]
        new = Tree()
        for e in t.iteritems():
            here = [p[1:] for p in parts if p[0] == e.path]
            if [] in here:  # this entry is a dataset's .prolly
                continue
            if here and e.mode == 0o040000:
                new.add(e.path, e.mode, strip(e.sha, here))
            else:
                new.add(e.path, e.mode, e.sha)
        sink.add_object(new)
        return new.id

    paths = [[p.encode("utf-8") for p in pre.split("/") if p] + [DATASET_DIR]
             for pre in prefixes]
    return strip(tree_id, paths)


def clone(url: str | os.PathLike, path: str | os.PathLike, *, branch: str | None = None,
          dataset: str | None = None, progress: Progress | None = None,
          token: str | None = None):
    """Clone the repository at ``url`` into the new directory ``path`` (it must not
    exist, or be empty) and open its dataset: a :class:`VersionedKvStore` on ``branch``
    (default: the remote's default branch). ``dataset`` is the dataset's directory inside
    the repository (default: the only one in the branch's tip; ValueError when there are
    several, naming them). The remote is named ``origin``; files outside the dataset are
    checked out as ``git clone`` would. On failure ``path`` is left as it was."""
    from ..versioning import StorageBackend, VersionedKvStore
    from dulwich.index import build_index_from_tree
    from dulwich.object_store import MemoryObjectStore, OverlayObjectStore
    from dulwich.repo import Repo

    url = check_url(url)
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, not {type(path).__name__}")
    if branch is not None:
        _refs.check_branch_name(branch)
    if dataset is not None and not isinstance(dataset, str):
        raise TypeError(f"dataset must be a str, not {type(dataset).__name__}")
    path = os.path.abspath(os.fspath(path))
    existed = os.path.isdir(path)
    if os.path.exists(path) and (not existed or os.listdir(path)):
        raise ValueError(f"cannot clone into {path}: it exists and is not an empty directory")
    repo = None
    try:
        repo = Repo.init(path, mkdir=not existed, default_branch=b"main")
        cfg = repo.get_config()
        cfg.set((b"remote", b"origin"), b"url", url.encode("utf-8"))
        cfg.set((b"remote", b"origin"), b"fetch", b"+refs/heads/*:refs/remotes/origin/*")
        cfg.write_to_path()
        transport = transport_for(repo, url, token)
        store = repo.object_store

        def determine_wants(refs, depth=None, **kw):
            return list(dict.fromkeys(
                sha for ref, sha in refs.items()
                if sha and sha != ZERO_SHA and (ref.startswith(HEADS) or ref.startswith(TAGS))
                and not ref.endswith(b"^{}") and sha not in store))

        remote_refs, symrefs = fetch_refs(transport, repo, determine_wants, progress,
                                             "clone of", url)
        heads = {r[len(HEADS):].decode("utf-8"): s for r, s in remote_refs.items()
                 if r.startswith(HEADS) and s and s in store}
        if not heads:
            raise RemoteError(f"clone of {redact_url(url)}: the remote has no branches")
        if branch is None:
            head = symrefs.get(b"HEAD")
            if head is not None and head.startswith(HEADS) and \
                    head[len(HEADS):].decode("utf-8") in heads:
                branch = head[len(HEADS):].decode("utf-8")
            elif "main" in heads or len(heads) != 1:
                branch = "main" if "main" in heads else sorted(heads)[0]
            else:
                branch = next(iter(heads))
        if branch not in heads:
            raise UnknownRefError(f"the remote has no branch {branch!r} "
                                  f"(branches: {', '.join(sorted(heads))})")
        for name, sha in heads.items():
            repo.refs[REMOTES + b"origin/" + name.encode("utf-8")] = sha
        for ref, sha in remote_refs.items():
            if ref.startswith(TAGS) and not ref.endswith(b"^{}") and sha in store:
                repo.refs.add_if_new(ref, sha)
        b = branch.encode("utf-8")
        repo.refs[HEADS + b] = heads[branch]
        repo.refs.set_symbolic_ref(b"HEAD", HEADS + b)
        repo.refs.set_symbolic_ref(REMOTES + b"origin/HEAD", REMOTES + b"origin/" + b)
        cfg = repo.get_config()
        cfg.set((b"branch", b), b"remote", b"origin")
        cfg.set((b"branch", b), b"merge", HEADS + b)
        cfg.write_to_path()
        tree = repo.object_store[heads[branch]].tree
        found = _find_datasets(repo, tree)
        if dataset is None:
            if len(found) != 1:
                what = ("no dataset" if not found else
                        f"{len(found)} datasets ({', '.join(repr(f) for f in found)}); "
                        f"pass dataset=")
                raise ValueError(f"clone of {redact_url(url)}: branch {branch!r} has {what}")
            dataset = found[0]
        else:
            dataset = dataset.strip("/")
            if dataset not in found:
                raise ValueError(f"clone of {redact_url(url)}: no dataset at {dataset!r} in "
                                 f"branch {branch!r} (datasets: "
                                 f"{', '.join(repr(f) for f in found) or 'none'})")
        # the work tree gets every file but the datasets' (which the index lists,
        # skip-worktree, once the store syncs it)
        mem = MemoryObjectStore()
        stripped = _without_datasets(repo, tree, found, mem)
        build_index_from_tree(repo.path, repo.index_path(),
                              OverlayObjectStore([mem, repo.object_store]), stripped)
        repo.close()
        repo = None
        where = os.path.join(path, *dataset.split("/")) if dataset else path
        os.makedirs(where, exist_ok=True)
        kv = VersionedKvStore(where, StorageBackend.Git)
        try:
            gb = kv.backend
            learn_commits(gb, list(heads.values()), [], progress)
            gb.sync_index(kv.current_commit(), full=True)
        except BaseException:
            kv.close()
            raise
        return kv
    except BaseException:
        if repo is not None:
            repo.close()
        if existed:
            for entry in os.listdir(path):
                p = os.path.join(path, entry)
                shutil.rmtree(p) if os.path.isdir(p) and not os.path.islink(p) else os.unlink(p)
        else:
            shutil.rmtree(path, ignore_errors=True)
        raise
