"""``git prolly serve``: a Git-backed dataset over HTTP (Starlette app run by uvicorn).

Fetch and clone are open to whoever can reach the server (it binds 127.0.0.1 unless told
otherwise); push needs the server started with ``allow_push`` and a ``token``, sent by
the client as ``Authorization: Bearer <token>``. The protocol and the security model are
in ``docs/sync-http.md``; the client is :mod:`prollytree.sync.http_client`.

What a request can do, and nothing more:

* ``GET /prolly/v1/refs``: list the repository's branches and tags;
* ``POST /prolly/v1/fetch``: objects reachable from advertised ref tips only (an id that
  is not a current branch or tag tip is refused: unreachable objects never leave), minus
  what the client says it has;
* ``POST /prolly/v1/push``: objects are verified (ids computed from the bytes, formats
  checked, connectivity to the server's refs) before any is stored; then each ref moves
  by compare-and-swap from the value the client saw, fast-forward only unless the
  client asks to force. Only ``refs/heads/*`` and ``refs/tags/*`` names that pass Git's
  ref-name rules are accepted; no request names a file path.

Request bodies are bounded (``max_request_bytes`` for fetch, ``max_push_bytes`` for a
push); a failed or refused request changes nothing but, at most, leaves unreferenced
objects in the repository (``git gc`` removes them).
"""

from __future__ import annotations

import json
import os
import re
import struct
import threading

from ..errors import ProllyError, RemoteError
from ..versioning import refs as _refs
from .http_client import API, ObjectStreamReader, encode_objects
from .http_service import (REPLY_HEADERS, Refused, assemble, authorize, check_server_options,
                           guarded, read_body, reply)

DEFAULT_MAX_PUSH = 1 << 30
DEFAULT_MAX_REQUEST = 4 << 20
MAX_UPDATES = 100
MAX_WANTS = 10_000
MAX_HAVES = 100_000
_HEX40 = re.compile(r"[0-9a-f]{40}\Z")
#: errors a handler raises for bad input: a 400 reply
_BAD_INPUT = (ProllyError, ValueError)


def _hex(value: object, what: str) -> bytes:
    if not isinstance(value, str) or not _HEX40.match(value):
        raise Refused(400, f"{what} must be a 40-hex object id")
    return value.encode("ascii")


def _ref_name(value: object) -> str:
    if not isinstance(value, str):
        raise Refused(400, "ref must be a string")
    for prefix in ("refs/heads/", "refs/tags/"):
        if value.startswith(prefix):
            try:
                _refs.check_branch_name(value[len(prefix):],
                                        "branch" if prefix == "refs/heads/" else "tag")
            except (TypeError, ValueError) as e:
                raise Refused(400, str(e)) from None
            return value
    raise Refused(400, f"only refs/heads/* and refs/tags/* can be pushed, not {value!r}")


def create_app(path: str | os.PathLike, *, allow_push: bool = False,
               token: str | None = None, max_push_bytes: int = DEFAULT_MAX_PUSH,
               max_request_bytes: int = DEFAULT_MAX_REQUEST):
    """The ASGI app serving the Git-backed dataset at ``path`` (its repository's
    branches and tags). ``allow_push`` requires a non-empty ``token``."""
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import Response, StreamingResponse
    from starlette.routing import Route

    from ..versioning import StorageBackend, VersionedKvStore
    from .exchange import learn_commits, verify_received, write_received

    token_b = check_server_options(allow_push, token, max_push_bytes=max_push_bytes,
                                   max_request_bytes=max_request_bytes)
    store = VersionedKvStore.open(path)
    if store.storage_backend() is not StorageBackend.Git:
        kind = store.storage_backend()
        store.close()
        raise ValueError(f"git prolly serve needs a Git-backed dataset; {path} is {kind}")
    backend = store.backend
    repo_dir = backend.repo.controldir()
    # pushes run in the thread pool: the dataset lock (flock) excludes other processes,
    # this lock the other threads of this one
    push_lock = threading.Lock()

    def open_repo():
        from dulwich.repo import Repo
        return Repo(repo_dir)

    def advertised(repo) -> dict[str, str]:
        out = {}
        for prefix in (b"refs/heads/", b"refs/tags/"):
            for name, sha in repo.refs.as_dict(prefix).items():
                out[(prefix + name).decode("utf-8", "replace")] = sha.decode("ascii")
        return dict(sorted(out.items()))

    async def refs_endpoint(request: Request) -> Response:
        def work():
            repo = open_repo()
            try:
                head = None
                target = repo.refs.read_ref(b"HEAD") or b""
                if target.startswith(b"ref: refs/heads/"):
                    head = target[len(b"ref: refs/heads/"):].strip().decode("utf-8")
                refs = advertised(repo)
                if head is not None and f"refs/heads/{head}" not in refs:
                    head = None
                return {"protocol": 1, "head": head, "refs": refs, "push": allow_push}
            finally:
                repo.close()
        return reply(await run_in_threadpool(work))

    async def fetch_endpoint(request: Request) -> Response:
        body = await read_body(request, max_request_bytes)
        try:
            req = json.loads(body)
        except ValueError:
            raise Refused(400, "the body must be JSON") from None
        if not isinstance(req, dict) or not isinstance(req.get("wants"), list) or \
                not isinstance(req.get("haves", []), list):
            raise Refused(400, 'expected {"wants": [ids], "haves": [ids]}')
        if len(req["wants"]) > MAX_WANTS or len(req.get("haves", [])) > MAX_HAVES:
            raise Refused(413, "too many wants or haves")
        wants = [_hex(w, "want") for w in req["wants"]]
        haves = [_hex(h, "have") for h in req.get("haves", [])]
        from .exchange import objects_to_send
        repo = open_repo()
        try:
            tips = {v.encode("ascii") for v in advertised(repo).values()}
            bad = [w for w in wants if w not in tips]
            if bad:
                raise Refused(400, f"{bad[0].decode()} is not the tip of an advertised ref")
            shas = await run_in_threadpool(lambda: list(objects_to_send(repo, wants, haves)))
        except BaseException:
            repo.close()
            raise

        def stream():
            try:
                yield from encode_objects(repo.object_store, shas)
            finally:
                repo.close()
        return StreamingResponse(stream(), media_type="application/x-prolly-objects",
                                 headers={**REPLY_HEADERS,
                                          "X-Prolly-Objects": str(len(shas))})

    async def push_endpoint(request: Request) -> Response:
        authorize(request, allow_push, token_b, "push")
        state: dict = {"buf": b"", "header": None}
        reader = ObjectStreamReader(max_push_bytes)

        def feed(chunk: bytes) -> None:
            if state["header"] is None:
                state["buf"] += chunk
                if len(state["buf"]) < 4:
                    return
                n = struct.unpack(">I", state["buf"][:4])[0]
                if n > max_request_bytes:
                    raise Refused(413, "push header too large")
                if len(state["buf"]) < 4 + n:
                    return
                try:
                    state["header"] = json.loads(state["buf"][4:4 + n])
                except ValueError:
                    raise Refused(400, "the push header must be JSON") from None
                rest = state["buf"][4 + n:]
                state["buf"] = b""
                if rest:
                    reader.feed(rest)
            else:
                reader.feed(chunk)
        try:
            await read_body(request, max_push_bytes, feed)
            if state["header"] is None:
                raise Refused(400, "push body truncated")
            objects = reader.finish()
        except RemoteError as e:
            raise Refused(400, str(e)) from None
        header = state["header"]
        ups = header.get("updates") if isinstance(header, dict) else None
        if not isinstance(ups, list) or not ups or len(ups) > MAX_UPDATES:
            raise Refused(400, f"expected 1 to {MAX_UPDATES} updates")
        updates = []
        for u in ups:
            if not isinstance(u, dict):
                raise Refused(400, "each update must be an object")
            ref = _ref_name(u.get("ref"))
            old = None if u.get("old") is None else _hex(u.get("old"), "old")
            new = _hex(u.get("new"), "new")
            force = u.get("force", False)
            if not isinstance(force, bool):
                raise Refused(400, "force must be a boolean")
            updates.append((ref.encode("utf-8"), old, new, force))
        if len({u[0] for u in updates}) != len(updates):
            raise Refused(400, "a ref is named twice")

        def work():
            from .http_client import _is_ancestor
            repo = backend.repo
            with push_lock, backend.lock.exclusive():
                current = repo.refs.as_dict()
                for ref, old, _new, _f in updates:
                    if current.get(ref) != old:
                        have = current.get(ref)
                        raise Refused(409, f"{ref.decode()} is at "
                                            f"{have.decode() if have else 'nothing'}, "
                                            f"not {old.decode() if old else 'nothing'}")
                trusted = [s for r, s in current.items() if r != b"HEAD"]
                try:
                    triples = verify_received(repo, objects, [u[2] for u in updates],
                                              trusted)
                except RemoteError as e:
                    raise Refused(400, str(e)) from None
                write_received(repo, triples)
                for ref, old, new, force in updates:
                    if old is not None and not force and not _is_ancestor(repo, old, new):
                        raise Refused(409, f"{ref.decode()}: not a fast-forward "
                                            f"(push with force to replace it)")
                # where the new commits' nodes are, before any branch moves (moving
                # the checked-out branch rewrites the Git index from them)
                learn_commits(backend, [u[2] for u in updates],
                           [s for r, s in current.items() if r.startswith(b"refs/")], None)
                done = {}
                for ref, old, new, _f in updates:
                    ok = (repo.refs.add_if_new(ref, new, message=b"prollytree: http push")
                          if old is None else
                          repo.refs.set_if_equals(ref, old, new,
                                                  message=b"prollytree: http push"))
                    if not ok:
                        raise Refused(409, f"{ref.decode()} moved during the push")
                    done[ref.decode("utf-8")] = new.decode("ascii")
                for ref, old, new, _f in updates:
                    if ref.startswith(b"refs/heads/"):
                        backend.after_branch_update(ref[len(b"refs/heads/"):].decode(),
                                                    None if old is None else old.decode(),
                                                    new.decode())
                return {"ok": True, "refs": done, "objects": len(triples)}
        return reply(await run_in_threadpool(work))

    routes = [Route(f"{API}/refs", guarded(refs_endpoint, _BAD_INPUT), methods=["GET"]),
              Route(f"{API}/fetch", guarded(fetch_endpoint, _BAD_INPUT), methods=["POST"]),
              Route(f"{API}/push", guarded(push_endpoint, _BAD_INPUT), methods=["POST"])]
    app = assemble(routes, store.close)
    app.state.store = store
    return app


def serve(path: str | os.PathLike, host: str = "127.0.0.1", port: int = 8765, *,
          allow_push: bool = False, token: str | None = None,
          max_push_bytes: int = DEFAULT_MAX_PUSH, log_level: str = "warning") -> None:
    """Serve the dataset at ``path`` until interrupted (uvicorn)."""
    import uvicorn
    if not isinstance(port, int) or not 0 < port < 65536:
        raise ValueError(f"port must be 1..65535, not {port!r}")
    app = create_app(path, allow_push=allow_push, token=token, max_push_bytes=max_push_bytes)
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False)
