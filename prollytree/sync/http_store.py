"""A store-backed dataset (File, RocksDB, LMDB, S3) over HTTP: the node store's own
operations as requests, so :func:`~prollytree.sync.replicate` and the store remotes work
with an ``http://`` remote like with any other store (sending only what differs).

Server: :func:`create_store_app` (a Starlette app; ``git prolly serve`` picks it for a
store-backed dataset). Client: :class:`HttpNodeStore`. Requests, under ``/prolly/v1/store``:

* ``GET refs`` -> ``{"protocol": 1, "push": bool, "refs": {name: hex value}}`` (branches,
  tags, ``HEAD`` and ``versioning/config``: nothing else is visible);
* ``POST has``: a body of 32-byte addresses (at most 10,000) -> one byte per address
  (1 present, 0 absent);
* ``POST get``: a body of 32-byte addresses (at most 1,024) -> per address ``>I`` length
  (``0xFFFFFFFF``: absent) and the bytes;
* ``POST put`` (token): ``[32-byte address][>I length][bytes]`` records; every record is
  checked (SHA-256 of the bytes == the address) before any is stored, then all are
  stored and flushed;
* ``POST ref`` (token): ``{"name", "value": hex | null, "expected": hex | null}``, a
  compare-and-swap -> ``{"ok": bool}``. Only ``refs/heads/*`` and ``refs/tags/*`` (names
  passing Git's rules) move, and only to a commit record the store holds, whose root set
  and parents it holds too (so a ref never names data that has not arrived); ``HEAD`` and
  ``versioning/config`` can only be created.

Security as for the Git server (``docs/sync-http.md``): reads are open, writes need
``allow_push`` and the token (401 without one, 403 for a wrong one, compared in constant
time; a read-only server answers 403), request bodies are bounded (413), no request
names a file, and a refused request stores nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import threading
from typing import Iterable, Mapping

from ..errors import AuthenticationError, CorruptNodeError, RemoteError
from ..storage import NodeStore
from ..storage.base import ANY
from ..versioning import refs as _refs
from .http_client import API, PROTOCOL_HEADER, split_url
from .http_service import (REPLY_HEADERS, Refused, assemble, check_server_options, guarded,
                           read_body, reply)
from .http_service import authorize as authorize_write

__all__ = ["HttpNodeStore", "create_store_app", "STORE_API"]

STORE_API = f"{API}/store"
MAX_HAS = 10_000
MAX_GET = 1_024
MAX_REF_BODY = 64 << 10
DEFAULT_MAX_PUT = 256 << 20
ABSENT = 0xFFFFFFFF
_LEN = struct.Struct(">I")
_META_REFS = ("HEAD", "versioning/config")
_COMMIT_MAGIC = b"prollytree-commit"


def _visible(name: str) -> bool:
    return name.startswith(("refs/heads/", "refs/tags/")) or name in _META_REFS


def _check_ref_name(name: object) -> str:
    if not isinstance(name, str):
        raise Refused(400, "ref name must be a string")
    if name in _META_REFS:
        return name
    for prefix, what in (("refs/heads/", "branch"), ("refs/tags/", "tag")):
        if name.startswith(prefix):
            try:
                _refs.check_branch_name(name[len(prefix):], what)
            except (TypeError, ValueError) as e:
                raise Refused(400, str(e)) from None
            return name
    raise Refused(400, f"only refs/heads/*, refs/tags/*, HEAD and versioning/config can "
                        f"be set, not {name!r}")


def _hex_value(value: object, what: str) -> bytes | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 2 * 4096:
        raise Refused(400, f"{what} must be a hex string or null")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise Refused(400, f"{what} must be a hex string or null") from None


def _addresses(body: bytes, limit: int) -> list[bytes]:
    if len(body) % 32:
        raise Refused(400, "the body must be 32-byte addresses")
    n = len(body) // 32
    if n > limit:
        raise Refused(413, f"at most {limit} addresses per request, not {n}")
    return [body[i:i + 32] for i in range(0, len(body), 32)]


def _commit_complete(store: NodeStore, address: bytes) -> None:
    """Refuse (400) a ref value that is not a commit record whose root set (or, for a
    version-1 record, tree root) and parents are in ``store``."""
    import msgpack
    data = store.get(address) if len(address) == 32 else None
    if data is None:
        raise Refused(400, "a branch or tag must name a commit the server holds")
    try:
        rec = msgpack.unpackb(data, raw=False)
        ok = (isinstance(rec, list) and len(rec) >= 4 and rec[0] == _COMMIT_MAGIC
              and isinstance(rec[2], bytes) and isinstance(rec[3], list))
    except Exception:  # noqa: BLE001 - msgpack raises several unrelated types
        ok = False
    if not ok:
        raise Refused(400, "a branch or tag must name a commit record")
    needed = [rec[2], *rec[3]]
    if not all(isinstance(a, bytes) and len(a) == 32 for a in needed):
        raise Refused(400, "a damaged commit record")
    from ..tree.codec import EMPTY_ROOT
    missing = [a for a in needed if a != EMPTY_ROOT and not store.has(a)]
    if missing:
        raise Refused(400, f"the commit names {len(missing)} record(s) the server lacks "
                            f"(send them first)")


def create_store_app(location: str | os.PathLike, *, allow_push: bool = False,
                     token: str | None = None, max_put_bytes: int = DEFAULT_MAX_PUT):
    """The ASGI app serving the node store of the store-backed dataset at ``location``
    (a directory, or ``s3://...``). ``allow_push`` requires a non-empty ``token``. The
    store is opened read-only unless ``allow_push`` (then it holds the dataset's writer
    lock: commit through pushes while it serves)."""
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from .locations import open_dataset_store

    token_b = check_server_options(allow_push, token, max_put_bytes=max_put_bytes)
    store = open_dataset_store(location, read_only=not allow_push)
    write_lock = threading.Lock()      # one put or ref change at a time in this process

    def binary(data: bytes) -> Response:
        return Response(data, media_type="application/octet-stream", headers=REPLY_HEADERS)

    def authorize(request: Request) -> None:
        authorize_write(request, allow_push, token_b, "writing")

    async def refs_endpoint(request: Request) -> Response:
        refs = await run_in_threadpool(lambda: dict(store.refs()))
        return reply({"protocol": 1, "push": allow_push,
                      "refs": {k: v.hex() for k, v in sorted(refs.items()) if _visible(k)}})

    async def has_endpoint(request: Request) -> Response:
        wanted = _addresses(await read_body(request, MAX_HAS * 32), MAX_HAS)

        def work() -> bytes:
            many = getattr(store, "has_many", None)
            present = set(many(wanted)) if many else {a for a in wanted if store.has(a)}
            return bytes(1 if a in present else 0 for a in wanted)
        return binary(await run_in_threadpool(work))

    async def get_endpoint(request: Request) -> Response:
        wanted = _addresses(await read_body(request, MAX_GET * 32), MAX_GET)

        def work() -> bytes:
            got = store.get_many(wanted)
            out = []
            for a in wanted:
                data = got.get(a)
                out.append(_LEN.pack(ABSENT) if data is None else
                           _LEN.pack(len(data)) + data)
            return b"".join(out)
        return binary(await run_in_threadpool(work))

    async def put_endpoint(request: Request) -> Response:
        authorize(request)
        body = await read_body(request, max_put_bytes)
        items, i = [], 0
        while i < len(body):
            if i + 36 > len(body):
                raise Refused(400, "a truncated record")
            address = body[i:i + 32]
            (n,) = _LEN.unpack_from(body, i + 32)
            data = body[i + 36:i + 36 + n]
            if len(data) != n:
                raise Refused(400, "a truncated record")
            if hashlib.sha256(data).digest() != address:
                raise Refused(400, f"record {address.hex()} does not hash to its address; "
                                    f"nothing stored")
            items.append((address, data))
            i += 36 + n

        def work() -> int:
            with write_lock:
                store.put_many(items)
                store.flush()
            return len(items)
        return reply({"ok": True, "stored": await run_in_threadpool(work)})

    async def ref_endpoint(request: Request) -> Response:
        authorize(request)
        try:
            req = json.loads(await read_body(request, MAX_REF_BODY))
        except ValueError:
            raise Refused(400, "the body must be JSON") from None
        if not isinstance(req, dict):
            raise Refused(400, "the body must be a JSON object")
        name = _check_ref_name(req.get("name"))
        value = _hex_value(req.get("value"), "value")
        expected = _hex_value(req.get("expected"), "expected")
        if name in _META_REFS and (expected is not None or value is None):
            raise Refused(400, f"{name} can only be created, not changed or deleted")
        if name not in _META_REFS and value is not None and len(value) != 32:
            raise Refused(400, "a branch or tag holds a 32-byte commit address")

        def work() -> bool:
            with write_lock:
                if value is not None and name not in _META_REFS:
                    _commit_complete(store, value)
                ok = store.set_ref(name, value, expected=expected)
                store.flush()
                return ok
        return reply({"ok": await run_in_threadpool(work)})

    routes = [Route(f"{STORE_API}/refs", guarded(refs_endpoint), methods=["GET"]),
              Route(f"{STORE_API}/has", guarded(has_endpoint), methods=["POST"]),
              Route(f"{STORE_API}/get", guarded(get_endpoint), methods=["POST"]),
              Route(f"{STORE_API}/put", guarded(put_endpoint), methods=["POST"]),
              Route(f"{STORE_API}/ref", guarded(ref_endpoint), methods=["POST"])]
    app = assemble(routes, store.close)
    app.state.store = store
    return app


class HttpNodeStore(NodeStore):
    """The node store of a dataset served by ``git prolly serve`` (a store-backed one),
    at ``http(s)://[TOKEN@]host:port``. Reads are batched (``get_many``, ``has_many``:
    one request per 1,024 / 10,000 addresses) and verified against their addresses;
    writes are buffered and sent by :meth:`flush` (and before every ref change), so a
    ref never names records still in the buffer. Writing needs the server's token
    (``token=`` or in the URL). RemoteError when the server cannot be reached or
    refuses; AuthenticationError for a missing or wrong token."""

    kind = "http"
    verify_reads = True

    def __init__(self, url: str, *, token: str | None = None, read_only: bool = False,
                 timeout: float = 120.0, max_put_bytes: int = 32 << 20) -> None:
        if not isinstance(url, str):
            raise TypeError(f"url must be a str, not {type(url).__name__}")
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"not an http(s) URL: {url!r}")
        if token is not None and not isinstance(token, str):
            raise TypeError(f"token must be a str, not {type(token).__name__}")
        import httpx
        self.base, url_token = split_url(url)
        self.token = token if token is not None else url_token
        self.read_only = read_only
        self._max_put = max_put_bytes
        self._buffer: list[tuple[bytes, bytes]] = []
        self._buffered = 0
        headers = {"User-Agent": "prollytree"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        self._http = httpx.Client(base_url=self.base, headers=headers, timeout=timeout,
                                  follow_redirects=False, trust_env=False)
        info = self._json("GET", "refs", what="listing refs of")
        if not isinstance(info, dict) or not isinstance(info.get("refs"), dict):
            self._http.close()
            raise RemoteError(f"{self.base} is not serving a store-backed dataset")

    # -- requests ---------------------------------------------------------------------

    def _request(self, method: str, path: str, what: str, **kw):
        import httpx
        try:
            r = self._http.request(method, f"{STORE_API}/{path}", **kw)
        except httpx.HTTPError as e:
            raise RemoteError(f"cannot reach {self.base}: {e}") from None
        if r.status_code >= 400:
            try:
                detail = r.json().get("error", "")
            except Exception:  # noqa: BLE001 - any body that is not our JSON
                detail = r.text[:200]
            msg = f"{what} {self.base} failed: HTTP {r.status_code}: {detail}"
            if r.status_code in (401, 403):
                raise AuthenticationError(msg)
            raise RemoteError(msg)
        if r.headers.get(PROTOCOL_HEADER) != "1":
            raise RemoteError(f"{self.base} is not a prollytree server (git prolly serve)")
        return r

    def _json(self, method: str, path: str, what: str, **kw):
        r = self._request(method, path, what, **kw)
        try:
            return r.json()
        except ValueError:
            raise RemoteError(f"{self.base} answered {path} with an unexpected body") \
                from None

    # -- NodeStore --------------------------------------------------------------------

    def _get(self, address: bytes) -> bytes | None:
        return self.get_many([address]).get(address)

    def get_many(self, addresses: Iterable[bytes]) -> dict[bytes, bytes]:
        wanted = list(dict.fromkeys(addresses))
        out: dict[bytes, bytes] = {}
        for i in range(0, len(wanted), MAX_GET):
            batch = wanted[i:i + MAX_GET]
            body = self._request("POST", "get", "reading nodes from",
                                 content=b"".join(batch)).content
            pos = 0
            for a in batch:
                if pos + 4 > len(body):
                    raise RemoteError(f"{self.base} sent a truncated answer")
                (n,) = _LEN.unpack_from(body, pos)
                pos += 4
                if n == ABSENT:
                    continue
                data = body[pos:pos + n]
                pos += n
                if len(data) != n:
                    raise RemoteError(f"{self.base} sent a truncated answer")
                if hashlib.sha256(data).digest() != a:
                    raise CorruptNodeError(a, f"{self.base} sent bytes that do not hash to "
                                              f"the address")
                out[a] = data
        return out

    def _has(self, address: bytes) -> bool:
        return address in self.has_many([address])

    def has_many(self, addresses: Iterable[bytes]) -> set[bytes]:
        """The addresses among ``addresses`` the server holds (or this store buffers)."""
        wanted = list(dict.fromkeys(addresses))
        buffered = {a for a, _ in self._buffer}
        out = {a for a in wanted if a in buffered}
        ask = [a for a in wanted if a not in buffered]
        for i in range(0, len(ask), MAX_HAS):
            batch = ask[i:i + MAX_HAS]
            flags = self._request("POST", "has", "checking nodes at",
                                  content=b"".join(batch)).content
            if len(flags) != len(batch):
                raise RemoteError(f"{self.base} sent a malformed answer")
            out.update(a for a, f in zip(batch, flags) if f)
        return out

    def _put_many(self, items: list[tuple[bytes, bytes]]) -> None:
        for a, data in items:
            self._buffer.append((a, data))
            self._buffered += 36 + len(data)
            if self._buffered >= self._max_put:
                self.flush()

    def flush(self) -> None:
        """Send the buffered records (one request per ``max_put_bytes``); the server
        stores them durably before answering."""
        while self._buffer:
            batch, size = [], 0
            while self._buffer and (not batch or size + 36 + len(self._buffer[0][1])
                                    <= self._max_put):
                a, data = self._buffer.pop(0)
                batch.append(a + _LEN.pack(len(data)) + data)
                size += 36 + len(data)
            self._buffered -= size
            try:
                self._json("POST", "put", "sending nodes to", content=b"".join(batch))
            except BaseException:
                self._buffer.clear()       # a failed send: the caller resends (resume)
                self._buffered = 0
                raise

    def _get_ref(self, name: str) -> bytes | None:
        return self.refs().get(name)

    def refs(self) -> Mapping[str, bytes]:
        info = self._json("GET", "refs", "listing refs of")
        try:
            return {k: bytes.fromhex(v) for k, v in info["refs"].items()}
        except (KeyError, AttributeError, TypeError, ValueError):
            raise RemoteError(f"{self.base} answered refs with an unexpected body") \
                from None

    def _set_ref(self, name: str, value: bytes | None, expected: object) -> bool:
        self.flush()                       # what the ref names is stored first
        while True:
            exp = self._get_ref(name) if expected is ANY else expected
            ok = self._json("POST", "ref", "moving a ref at", content=json.dumps(
                {"name": name, "value": None if value is None else value.hex(),
                 "expected": None if exp is None else exp.hex()}).encode()).get("ok")
            if ok or expected is not ANY:
                return bool(ok)

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self._http.close()

    def __repr__(self) -> str:
        return f"<HttpNodeStore {self.base}>"


def serve_store(location: str | os.PathLike, host: str = "127.0.0.1", port: int = 8765, *,
                allow_push: bool = False, token: str | None = None,
                max_put_bytes: int = DEFAULT_MAX_PUT, log_level: str = "warning") -> None:
    """Serve the store-backed dataset at ``location`` until interrupted (uvicorn)."""
    import uvicorn
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        raise ValueError(f"port must be 1..65535, not {port!r}")
    app = create_store_app(location, allow_push=allow_push, token=token,
                           max_put_bytes=max_put_bytes)
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False)
