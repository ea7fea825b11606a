"""How objects and refs travel to and from a remote: dulwich's clients (``git://``,
``ssh://``), direct object copying between repositories on local paths, HTTP through
:mod:`.http_client`; Git's textual progress adapted to a ``progress`` callback; transport
failures as :class:`RemoteError`."""

from __future__ import annotations

import hashlib
import os
import re
import shlex
from typing import Callable

from ..errors import RemoteError
from .exchange import objects_to_send, pack_bytes, verify_received, write_received
from .remotes import HEADS, TAGS, is_http, redact_url

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



def ssh_command_from_env() -> str | None:
    """The ssh program Git would run, from the environment: ``GIT_SSH_COMMAND`` (a shell
    command line), else ``GIT_SSH`` (a program path), else None (then the repository's
    ``core.sshCommand``, else ``ssh``). dulwich's client reads only the config, so
    without this ``git`` and the store would reach an ``ssh://`` remote differently."""
    command = os.environ.get("GIT_SSH_COMMAND")
    if command:
        return command
    program = os.environ.get("GIT_SSH")
    return shlex.quote(program) if program else None


class _DulwichTransport:
    """Paths, file://, git://, ssh:// through dulwich's Git clients."""

    def __init__(self, repo, url: str) -> None:
        from dulwich.client import get_transport_and_path
        self.url = url
        #: {"objects", "bytes"} sent by the last push (bytes None: not measured)
        self.last_push = {"objects": 0, "bytes": 0}
        try:
            self.client, self.path = get_transport_and_path(
                url, config=repo.get_config_stack(), ssh_command=ssh_command_from_env())
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

    def _open(self, what: str):
        """The repository at the local path (RemoteError when there is none)."""
        from dulwich.errors import NotGitRepository
        from dulwich.repo import Repo
        try:
            return Repo(self.local_path)
        except (NotGitRepository, OSError) as e:
            raise RemoteError(f"{what} {self.url} failed: not a Git repository "
                              f"({e})") from None

    def fetch(self, repo, determine_wants, progress: Progress | None):
        src = self._open("fetch from")
        try:
            refs = _branches_and_tags(src)
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
        dst = self._open("push to")
        try:
            refs = _branches_and_tags(dst)
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
            before = pack_bytes(dst)
            write_received(dst, triples)
            self.last_push = {"objects": len(triples), "bytes": pack_bytes(dst) - before}
            status = {}
            for r, old, new in updates:
                ok = (dst.refs.add_if_new(r, new, message=b"prollytree: push") if old is None
                      else dst.refs.set_if_equals(r, old, new, message=b"prollytree: push"))
                status[r] = None if ok else b"the remote ref moved during the push"
            return status
        finally:
            dst.close()


def _branches_and_tags(repo) -> dict:
    """``{ref: id}`` of the branches and tags of ``repo``."""
    return {r: s for r, s in repo.refs.as_dict().items() if r.startswith((HEADS, TAGS))}


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


def local_path(url: str) -> str | None:
    """The directory a path or ``file://`` URL names, or None for other URLs."""
    if url.startswith("file://"):
        from urllib.parse import unquote
        return unquote(url[len("file://"):])
    if "://" in url or re.match(r"^[\w.-]+@[\w.-]+:", url):
        return None
    return url


def transport_for(repo, url: str, token: str | None):
    if is_http(url):
        from .http_client import HttpTransport
        return HttpTransport(url, token=token)
    if token is not None:
        raise ValueError("a token is only used with http:// and https:// remotes")
    path = local_path(url)
    if path is not None:
        return _LocalTransport(repo, url, path)
    return _DulwichTransport(repo, url)


def remote_failure(what: str, url: str, e: BaseException) -> RemoteError:
    text = str(e) or type(e).__name__
    if isinstance(e, bytes):  # pragma: no cover - defensive
        text = e.decode("utf-8", "replace")
    return RemoteError(f"{what} {redact_url(url)} failed: {text.strip()}")



def dulwich_errors() -> tuple:
    from dulwich.client import HTTPUnauthorized
    from dulwich.errors import GitProtocolError, HangupException, NotGitRepository
    return (GitProtocolError, HangupException, NotGitRepository, HTTPUnauthorized, OSError)


def fetch_refs(transport, repo, determine_wants, progress: Progress | None, what: str,
               url: str) -> tuple[dict, dict]:
    """``transport.fetch`` with transport failures as :class:`RemoteError` (``what``
    and the redacted ``url`` name the operation): the remote's refs and symbolic refs."""
    try:
        return transport.fetch(repo, determine_wants, progress)
    except RemoteError:
        raise
    except dulwich_errors() as e:
        raise remote_failure(what, url, e) from None
