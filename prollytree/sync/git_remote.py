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
clients; ``http://``/``https://`` through :mod:`prollytree.sync.http_client` (the
protocol of ``git prolly serve``, see ``docs/sync-http.md``).

Only the dataset's data and Git's objects/refs are handled: ``pull`` does not update
files of the work tree outside the dataset (run ``git merge``/``git checkout`` for those),
and a three-way merge commit's tree is the current branch's tree with the dataset merged.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from typing import Any, Callable

from ..errors import NonFastForwardError, RemoteError, UnknownRefError
from ..tree.codec import decode
from ..versioning import refs as _refs
from ..versioning.git_backend import GitBackend
from ..versioning.git_layout import DATASET_DIR, ROOT_ENTRY

__all__ = ["clone", "fetch", "pull", "push", "add_remote", "remove_remote", "list_remotes",
           "remote_url", "redact_url", "Progress"]

HEADS = b"refs/heads/"
TAGS = b"refs/tags/"
REMOTES = b"refs/remotes/"
ZERO_SHA = b"0" * 40

#: ``progress(phase, done, total)``: ``phase`` names the step ("Receiving objects",
#: "Learning dataset", ...), ``total`` is None when unknown.
Progress = Callable[[str, int, "int | None"], None]

_PROGRESS_RE = re.compile(rb"([A-Za-z][A-Za-z ]*):\s+(\d+)% \((\d+)/(\d+)\)")


def _dulwich_progress(progress: Progress | None):
    """Adapt Git's textual progress (``Counting objects:  50% (5/10)``) to ``progress``."""
    if progress is None:
        return None

    def report(data: bytes) -> None:
        for m in _PROGRESS_RE.finditer(data):
            progress(m.group(1).decode("ascii", "replace").strip(), int(m.group(3)),
                     int(m.group(4)))
    return report


# -- the store's repository ---------------------------------------------------------------------


def _git(store: Any) -> GitBackend:
    from ..versioning import VersionedKvStore
    if not isinstance(store, VersionedKvStore):
        raise TypeError(f"store must be a VersionedKvStore, not {type(store).__name__}")
    b = store.backend
    if not isinstance(b, GitBackend):
        raise ValueError(f"Git remotes need a Git-backed store; this one uses the "
                         f"{store.storage_backend()} backend")
    return b


def _check_remote_name(name: object) -> str:
    _refs.check_branch_name(name, "remote")
    assert isinstance(name, str)
    if "/" in name:
        raise ValueError(f"invalid remote name {name!r}: it contains '/'")
    return name


def _check_url(url: object) -> str:
    if isinstance(url, os.PathLike):
        url = os.fspath(url)
    if not isinstance(url, str):
        raise TypeError(f"url must be a str or os.PathLike, not {type(url).__name__}")
    if not url or any(c in url for c in "\0\n\r"):
        raise ValueError(f"invalid remote url {url!r}")
    if "://" not in url and not re.match(r"^[\w.-]+@[\w.-]+:", url):
        url = os.path.abspath(url)  # a path: absolute, so it works from anywhere
    return url


def _is_http(url: str) -> bool:
    return url.startswith(("http://", "https://"))


def list_remotes(store: Any) -> dict[str, str]:
    """``{name: url}`` of the repository's remotes (Git's ``[remote]`` config)."""
    repo = _git(store).repo
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
    _check_remote_name(name)
    remotes = list_remotes(store)
    if name not in remotes:
        raise ValueError(f"no remote named {name!r}" + (
            f" (remotes: {', '.join(remotes)})" if remotes else " (there are no remotes)"))
    return remotes[name]


def add_remote(store: Any, name: str, url: str | os.PathLike) -> None:
    """Add remote ``name`` at ``url`` (a path, ``file://``, ``git://``, ``ssh://``,
    ``user@host:path``, ``http(s)://``), with Git's default fetch refspec. ValueError
    when a remote of that name exists. A relative path is stored absolute."""
    _check_remote_name(name)
    url = _check_url(url)
    repo = _git(store).repo
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
    repo = _git(store).repo
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


# -- transports ---------------------------------------------------------------------------------


class _DulwichTransport:
    """Paths, file://, git://, ssh:// through dulwich's Git clients."""

    def __init__(self, repo, url: str) -> None:
        from dulwich.client import get_transport_and_path
        self.url = url
        #: {"objects", "bytes"} sent by the last push (bytes None: not measured)
        self.last_push = {"objects": 0, "bytes": 0}
        try:
            self.client, self.path = get_transport_and_path(
                url, config=repo.get_config_stack())
        except (ValueError, KeyError) as e:
            raise RemoteError(f"cannot use remote url {url!r}: {e}") from None

    def fetch(self, repo, determine_wants, progress: Progress | None):
        r = self.client.fetch(self.path, repo, determine_wants=determine_wants,
                              progress=_dulwich_progress(progress))
        return dict(r.refs), dict(r.symrefs or {})

    def push(self, repo, update_refs, progress: Progress | None) -> dict:
        def generate(have, want, *, ofs_delta=False, progress=None):
            n, records = repo.object_store.generate_pack_data(
                set(have), set(want), progress=progress, ofs_delta=ofs_delta)
            self.last_push = {"objects": n, "bytes": None}
            return n, records

        r = self.client.send_pack(self.path.encode("utf-8") if isinstance(self.path, str)
                                  else self.path, update_refs, generate,
                                  progress=_dulwich_progress(progress))
        return dict(r.ref_status or {})


class _LocalTransport(_DulwichTransport):
    """A repository on this machine (a path or ``file://``). Objects are copied
    directly — read from one repository, verified as any received objects are
    (:func:`verify_received`), written to the other as one pack — several times faster
    than dulwich's local client, which re-packs through its pure-Python pack code."""

    def __init__(self, repo, url: str, path: str) -> None:
        super().__init__(repo, url)
        self.local_path = path

    def fetch(self, repo, determine_wants, progress: Progress | None):
        from dulwich.errors import NotGitRepository
        from dulwich.repo import Repo
        try:
            src = Repo(self.local_path)
        except (NotGitRepository, OSError) as e:
            raise RemoteError(f"fetch from {self.url} failed: not a Git repository "
                              f"({e})") from None
        try:
            refs = {r: s for r, s in src.refs.as_dict().items()
                    if r.startswith((HEADS, TAGS))}
            symrefs = {}
            head = src.refs.read_ref(b"HEAD") or b""
            if head.startswith(b"ref: "):
                symrefs[b"HEAD"] = head[5:].strip()
            wants = list(determine_wants(dict(refs)))
            if not wants:
                return refs, symrefs
            store = repo.object_store
            local = [x for x in repo.refs.as_dict().values() if x in store]
            shas = list(objects_to_send(src, wants, local))
            objects = _raw_objects(src.object_store, shas, self.url, progress)
            triples = verify_received(repo, objects, wants, local)
            write_received(repo, triples)
            return refs, symrefs
        finally:
            src.close()

    def push(self, repo, update_refs, progress: Progress | None) -> dict:
        """Send what the target lacks and move its refs by compare-and-swap (dulwich's
        local client would scan the whole source pack for reusable deltas: O(dataset)
        per push). As Git's receive-pack does by default, a branch checked out in a
        non-bare target is not updated."""
        from dulwich.errors import NotGitRepository
        from dulwich.repo import Repo
        try:
            dst = Repo(self.local_path)
        except (NotGitRepository, OSError) as e:
            raise RemoteError(f"push to {self.url} failed: not a Git repository "
                              f"({e})") from None
        try:
            refs = {r: x for r, x in dst.refs.as_dict().items()
                    if r.startswith((HEADS, TAGS))}
            wanted = update_refs(dict(refs))
            updates = [(r, refs.get(r), n) for r, n in wanted.items() if refs.get(r) != n]
            if not updates:
                return {}
            if not dst.bare:
                head = (dst.refs.read_ref(b"HEAD") or b"").strip()
                for r, _, _ in updates:
                    if head == b"ref: " + r:
                        return {r: b"refusing to update the branch checked out in a "
                                   b"non-bare repository"}
            store = repo.object_store
            haves = [x for x in refs.values() if x in store]
            wants = [n for _, _, n in updates]
            objects = _raw_objects(store, list(objects_to_send(repo, wants, haves)),
                                   "this repository", progress)
            triples = verify_received(dst, objects, wants, list(refs.values()))
            before = _pack_bytes(dst)
            write_received(dst, triples)
            self.last_push = {"objects": len(triples), "bytes": _pack_bytes(dst) - before}
            status = {}
            for r, old, new in updates:
                ok = (dst.refs.add_if_new(r, new, message=b"prollytree: push") if old is None
                      else dst.refs.set_if_equals(r, old, new, message=b"prollytree: push"))
                status[r] = None if ok else b"the remote ref moved during the push"
            return status
        finally:
            dst.close()


def _raw_objects(store, shas: list, where: str, progress: Progress | None) -> dict:
    """``{id: (type number, body)}`` of ``shas`` read from ``store``, each id recomputed
    from the bytes (a damaged pack cannot pass an object off as another)."""
    names = {1: b"commit", 2: b"tree", 3: b"blob", 4: b"tag"}
    out = {}
    for i, sha in enumerate(shas):
        num, body = store.get_raw(sha)
        h = hashlib.sha1(names.get(num, b"?") + b" %d\0" % len(body))
        h.update(body)
        if h.hexdigest().encode("ascii") != sha:
            raise RemoteError(f"object {sha.decode()} is damaged in {where}")
        out[sha] = (num, body)
        if progress is not None and (i % 512 == 0 or i == len(shas) - 1):
            progress("Copying objects", i + 1, len(shas))
    return out


def _local_path(url: str) -> str | None:
    """The directory a path or ``file://`` URL names, or None for other URLs."""
    if url.startswith("file://"):
        from urllib.parse import unquote
        return unquote(url[len("file://"):])
    if "://" in url or re.match(r"^[\w.-]+@[\w.-]+:", url):
        return None
    return url


def _transport(repo, url: str, token: str | None):
    if _is_http(url):
        from .http_client import HttpTransport
        return HttpTransport(url, token=token)
    if token is not None:
        raise ValueError("a token is only used with http:// and https:// remotes")
    path = _local_path(url)
    if path is not None:
        return _LocalTransport(repo, url, path)
    return _DulwichTransport(repo, url)


def _remote_failure(what: str, url: str, e: BaseException) -> RemoteError:
    text = str(e) or type(e).__name__
    if isinstance(e, bytes):  # pragma: no cover - defensive
        text = e.decode("utf-8", "replace")
    return RemoteError(f"{what} {redact_url(url)} failed: {text.strip()}")


def redact_url(url: str) -> str:
    """``url`` without its credentials (``http://TOKEN@host`` -> ``http://***@host``);
    reports and error messages show only this form."""
    return re.sub(r"^([a-z+]+://)[^/@]*@", r"\1***@", url)


def _dulwich_errors() -> tuple:
    from dulwich.client import HTTPUnauthorized
    from dulwich.errors import GitProtocolError, HangupException, NotGitRepository
    return (GitProtocolError, HangupException, NotGitRepository, HTTPUnauthorized, OSError)


# -- fetch ---------------------------------------------------------------------------------------


def _fetch_into(backend: GitBackend, name: str, url: str, progress: Progress | None,
                token: str | None = None) -> dict:
    """Fetch every branch and tag of ``url`` into the repository; move
    ``refs/remotes/<name>/*``; learn the new commits' datasets. Returns the report."""
    repo = backend.repo
    transport = _transport(repo, url, token)
    store = repo.object_store
    before_packs = _pack_bytes(repo)
    local_heads = list(repo.refs.as_dict(HEADS).values())

    def determine_wants(refs, depth=None, **kw):
        wants = []
        for ref, sha in refs.items():
            if sha is None or sha == ZERO_SHA or ref.endswith(b"^{}"):
                continue
            if (ref.startswith(HEADS) or ref.startswith(TAGS)) and sha not in store:
                wants.append(sha)
        return list(dict.fromkeys(wants))

    try:
        remote_refs, symrefs = transport.fetch(repo, determine_wants, progress)
    except RemoteError:
        raise
    except _dulwich_errors() as e:
        raise _remote_failure("fetch from", url, e) from None
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
            "commits_learnt": learnt, "bytes": max(0, _pack_bytes(repo) - before_packs),
            "head": head[len(HEADS):].decode("utf-8")
            if head and head.startswith(HEADS) and prefix + head[len(HEADS):] in seen_remote
            else None}


def _pack_bytes(repo) -> int:
    """Bytes of pack files in the repository (to report what a fetch received)."""
    d = os.path.join(repo.controldir(), "objects", "pack")
    try:
        return sum(e.stat().st_size for e in os.scandir(d) if e.name.endswith(".pack"))
    except OSError:
        return 0


def learn_commits(backend: GitBackend, tips: list[bytes], old: list[bytes],
               progress: Progress | None) -> int:
    """Teach the node store where the nodes of the datasets of the commits ``tips``
    reach and ``old`` do not are (the node map only knows what this repository wrote or
    learnt)."""
    if not tips:
        return 0
    repo = backend.repo
    from dulwich.objects import Commit as GitCommit
    from dulwich.objects import Tag
    starts = []
    for sha in tips:
        obj = repo.object_store[sha]
        while isinstance(obj, Tag):
            obj = repo.object_store[obj.object[1]]
        if isinstance(obj, GitCommit):
            starts.append(obj.id)
    exclude = [s for s in old if s in repo.object_store]
    n = 0
    store = backend.store
    for entry in repo.get_walker(include=starts, exclude=exclude or None):
        cid = entry.commit.id.decode("ascii")
        info = backend.dataset_of(cid, entry.commit.tree)
        for mode, sha in info.mirrors.values():      # every named tree's mirror
            store.learn_mirror(mode, sha, decode)
        n += 1
        if progress is not None:
            progress("Learning dataset", n, None)
    return n


def fetch(store: Any, remote: str = "origin", *, progress: Progress | None = None,
          token: str | None = None) -> dict:
    """Fetch the branches and tags of ``remote``: objects the repository lacks arrive,
    ``refs/remotes/<remote>/<branch>`` move to the remote's branches. Local branches and
    the store's state do not change. Returns ``{"remote", "url", "updated": {branch:
    (old id | None, new id | None)}, "new_tags", "commits_learnt", "bytes", "head"}``.

    Costs what Git's fetch costs: objects reachable from the remote's refs and not from
    local ones travel (for a dataset, the nodes of the changed paths of each new
    commit)."""
    backend = _git(store)
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
    backend = _git(store)
    if branch is not None:
        _refs.check_branch_name(branch)
    current = store.current_branch()
    if current is None:
        raise ValueError("cannot pull: HEAD is detached (checkout a branch)")
    if store.status():
        raise ValueError("cannot pull with staged changes: commit them first")
    branch = branch or current
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
    backend = _git(store)
    if not isinstance(force, bool):
        raise TypeError(f"force must be a bool, not {type(force).__name__}")
    if branch is None:
        branch = store.current_branch()
        if branch is None:
            raise ValueError("cannot push: HEAD is detached (name a branch)")
    _refs.check_branch_name(branch)
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

    transport = _transport(repo, url, token)
    try:
        status = transport.push(repo, update_refs, progress)
    except (RemoteError, ValueError, TypeError):
        raise
    except _dulwich_errors() as e:
        raise _remote_failure("push to", url, e) from None
    except Exception as e:  # dulwich's SendPackError and friends
        from dulwich.errors import GitProtocolError
        if isinstance(e, GitProtocolError) or type(e).__name__.endswith("Error"):
            raise _remote_failure("push to", url, e) from None
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

    url = _check_url(url)
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
        transport = _transport(repo, url, token)
        store = repo.object_store

        def determine_wants(refs, depth=None, **kw):
            return list(dict.fromkeys(
                sha for ref, sha in refs.items()
                if sha and sha != ZERO_SHA and (ref.startswith(HEADS) or ref.startswith(TAGS))
                and not ref.endswith(b"^{}") and sha not in store))

        try:
            remote_refs, symrefs = transport.fetch(repo, determine_wants, progress)
        except RemoteError:
            raise
        except _dulwich_errors() as e:
            raise _remote_failure("clone of", url, e) from None
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


# -- receiving objects over a transport that is not Git's (prollytree.sync.http_*) -----------


def _reachability(repo, tips: list[bytes]):
    """A function telling whether a commit id is reachable from ``tips`` (walks the
    history lazily, remembering what it saw)."""
    from dulwich.objects import Commit as GitCommit
    from dulwich.objects import Tag
    store = repo.object_store
    seen: set = set()
    frontier = [t for t in tips if t in store]

    def reachable(cid: bytes) -> bool:
        if cid in seen:
            return True
        while frontier:
            sha = frontier.pop()
            if sha in seen:
                continue
            seen.add(sha)
            try:
                obj = store[sha]
            except KeyError:
                continue
            if isinstance(obj, Tag):
                frontier.append(obj.object[1])
            elif isinstance(obj, GitCommit):
                frontier.extend(obj.parents)
            if sha == cid:
                return True
        return cid in seen
    return reachable


def verify_received(repo, objects: dict, tips: list[bytes], trusted_tips: list[bytes]
                    ) -> list:
    """Check objects received from a peer before any is stored; returns the
    (kind, 20-byte id, body) triples to write (those the tips reach and the repository
    lacks). Raises :class:`RemoteError` naming the first problem.

    ``objects`` maps 40-hex ids *computed here* from the received bytes (so no object
    can be misnamed) to ``(type number, body)``. Checks: every object parses and passes
    dulwich's format checks (tree entry names without ``/``, ``.``, ``..``, sorted
    entries, well-formed commits); every object a tip needs is either received or in the
    repository; a commit not received must be reachable from ``trusted_tips`` (the
    receiver's refs: everything they reach is complete), and an existing tree or blob a
    received tree names must be the same entry of a trusted commit's tree at the same
    path, or be complete itself (walked)."""
    from dulwich.errors import ObjectFormatException
    from dulwich.objects import Blob, ShaFile, Tag, Tree
    from dulwich.objects import Commit as GitCommit

    store = repo.object_store
    parsed: dict = {}
    kinds = {1: GitCommit, 2: Tree, 3: Blob, 4: Tag}

    def get_new(sha: bytes):
        obj = parsed.get(sha)
        if obj is None:
            num, body = objects[sha]
            try:
                obj = ShaFile.from_raw_string(num, body, sha=sha)
                obj.check()
            except (ObjectFormatException, ValueError, KeyError, TypeError) as e:
                raise RemoteError(f"received object {sha.decode()} is malformed: {e}") \
                    from None
            parsed[sha] = obj
        return obj

    reachable = _reachability(repo, trusted_tips)
    used: set = set()
    trusted_roots: list = []
    new_roots: list = []
    todo = [(t, None) for t in tips]
    seen: set = set()
    while todo:
        sha, want = todo.pop()
        if sha in seen:
            continue
        seen.add(sha)
        if sha in objects:
            obj = get_new(sha)
            if want is not None and not isinstance(obj, want):
                raise RemoteError(f"received object {sha.decode()} is a "
                                  f"{obj.type_name.decode()}, not a {want.type_name.decode()}")
            used.add(sha)
            if isinstance(obj, Tag):
                todo.append((obj.object[1], kinds.get(obj.object[0].type_num)))
            elif isinstance(obj, GitCommit):
                todo.extend((p, GitCommit) for p in obj.parents)
                new_roots.append(obj.tree)
            elif isinstance(obj, Tree):
                new_roots.append(sha)
            continue
        if sha not in store:
            raise RemoteError(f"object {sha.decode()} is neither received nor present")
        obj = store[sha]
        if want is not None and not isinstance(obj, want):
            raise RemoteError(f"object {sha.decode()} is not a {want.type_name.decode()}")
        if isinstance(obj, GitCommit):
            if not reachable(sha):
                raise RemoteError(f"commit {sha.decode()} is not reachable from the "
                                  f"receiver's refs (it may be incomplete)")
            trusted_roots.append(obj.tree)
        elif isinstance(obj, Tree):
            new_roots.append(sha)
    complete: set = set()

    def walk_complete(start: bytes) -> None:
        stack = [start]
        while stack:
            s = stack.pop()
            if s in complete:
                continue
            try:
                o = store[s]
            except KeyError:
                raise RemoteError(f"object {s.decode()} is missing") from None
            complete.add(s)
            if isinstance(o, Tree):
                stack.extend(e.sha for e in o.iteritems() if e.mode != 0o160000)

    def ref_entries(refs: list) -> dict:
        """{name: [ids]} of the entries of the trusted trees at this path."""
        out: dict = {}
        for r in refs:
            try:
                t = store[r]
            except KeyError:
                continue
            if isinstance(t, Tree):
                for e in t.iteritems():
                    out.setdefault(e.path, []).append(e.sha)
        return out

    done: set = set()
    stack = [(r, trusted_roots) for r in new_roots]
    while stack:
        tree_id, refs = stack.pop()
        if tree_id in done:
            continue
        done.add(tree_id)
        if tree_id not in objects:
            if tree_id not in refs:
                walk_complete(tree_id)
            continue
        t = get_new(tree_id)
        if not isinstance(t, Tree):
            raise RemoteError(f"received object {tree_id.decode()} is not a tree")
        used.add(tree_id)
        here = ref_entries(refs)
        for e in t.iteritems():
            if e.path.lower() == b".git":  # dulwich refuses ".git" only; Git any case
                raise RemoteError(f"received tree {tree_id.decode()} has an entry "
                                  f"{e.path!r}")
            if e.mode == 0o160000:  # a submodule: not ours to carry
                continue
            is_tree = e.mode == 0o040000
            if e.sha in objects:
                o = get_new(e.sha)
                if is_tree:
                    if not isinstance(o, Tree):
                        raise RemoteError(f"tree entry {e.path!r} is not a tree")
                    stack.append((e.sha, here.get(e.path, [])))
                else:
                    if not isinstance(o, Blob):
                        raise RemoteError(f"tree entry {e.path!r} is not a blob")
                    used.add(e.sha)
            elif e.sha not in here.get(e.path, ()):
                walk_complete(e.sha)
    # into an empty repository (a clone) everything is new: skip the presence checks,
    # which cost a pack-index lookup and a stat each
    fresh = not trusted_tips
    return [(kinds[objects[s][0]].type_name, bytes.fromhex(s.decode()), objects[s][1])
            for s in used if fresh or s not in store]


def write_received(repo, triples: list) -> None:
    """Store verified objects ((kind, 20-byte id, body) triples) durably as one pack."""
    if triples:
        from ..git.pack import write_pack
        write_pack(os.path.join(repo.controldir(), "objects", "pack"), triples)


def objects_to_send(repo, wants: list[bytes], haves: list[bytes]) -> list[bytes]:
    """Ids of the objects ``wants`` reach that the holder of ``haves`` (the receiver's
    ref tips; ids unknown here are ignored) may lack, parents before children.

    Commits: those ``wants`` reach and ``haves`` do not (a walk of the commit graph).
    Trees and blobs: each new commit's tree is compared, path by path, with the trees
    of the commits the receiver has that border the new ones (and of ``haves``): an
    entry whose id is the same there is skipped with everything under it — the receiver
    has it, since its refs reach complete trees. The cost is proportional to the
    changed paths (times the fan-out), not to the dataset as a whole-closure walk
    (dulwich's ``MissingObjectFinder``) would be; an object moved to another path may be
    sent although the receiver has it (harmless)."""
    from dulwich.objects import Commit as GitCommit
    from dulwich.objects import Tag, Tree
    store = repo.object_store
    have_commits: set = set()
    stack = []
    for h in haves:
        if h not in store:
            continue
        obj = store[h]
        while isinstance(obj, Tag):
            stack.append(obj.id)
            have_commits.add(obj.id)
            t = obj.object[1]
            if t not in store:
                obj = None
                break
            obj = store[t]
        if isinstance(obj, GitCommit):
            stack.append(obj.id)
    while stack:  # every commit the receiver has (the commit graph only)
        c = stack.pop()
        if c in have_commits:
            continue
        have_commits.add(c)
        try:
            obj = store[c]
        except KeyError:
            continue
        if isinstance(obj, GitCommit):
            stack.extend(obj.parents)
    out: list[bytes] = []
    sent: set = set()
    roots: list[bytes] = []          # trees of the new commits
    border: set = set()              # commits the receiver has next to the new ones
    todo = list(wants)
    while todo:
        sha = todo.pop()
        if sha in sent or sha in have_commits:
            if sha in have_commits and sha not in sent:
                border.add(sha)
            continue
        obj = store[sha]
        sent.add(sha)
        out.append(sha)
        if isinstance(obj, Tag):
            todo.append(obj.object[1])
        elif isinstance(obj, GitCommit):
            roots.append(obj.tree)
            todo.extend(obj.parents)
        elif isinstance(obj, Tree):
            roots.append(sha)
            out.pop()
            sent.discard(sha)
    for h in haves:
        if h in store and isinstance(store[h], GitCommit):
            border.add(h)
    ref_roots = [store[c].tree for c in border if isinstance(store[c], GitCommit)]
    have_roots = set(ref_roots)

    def entries_of(trees: list) -> dict:
        found: dict = {}
        for t in trees:
            try:
                obj = store[t]
            except KeyError:
                continue
            if isinstance(obj, Tree):
                for e in obj.iteritems():
                    found.setdefault(e.path, set()).add(e.sha)
        return found

    stack2 = [(r, ref_roots) for r in roots]
    trees_out: list[bytes] = []
    while stack2:
        tree_id, refs = stack2.pop()
        if tree_id in sent or tree_id in have_roots:
            continue
        sent.add(tree_id)
        trees_out.append(tree_id)
        t = store[tree_id]
        theirs = entries_of(refs)
        for e in t.iteritems():
            if e.mode == 0o160000 or e.sha in sent or e.sha in theirs.get(e.path, ()):
                continue
            if e.mode == 0o040000:
                stack2.append((e.sha, list(theirs.get(e.path, ()))))
            else:
                sent.add(e.sha)
                trees_out.append(e.sha)
    return out + trees_out
