"""The client side of ``git prolly serve``: ``http://`` and ``https://`` remotes.

Used by :mod:`prollytree.sync.git_remote` for remotes whose URL is ``http(s)://``; the
protocol (see ``docs/sync-http.md``) is three requests under ``<url>/prolly/v1/``:

* ``GET refs`` -> ``{"protocol": 1, "head": branch | null, "refs": {name: id}, "push": bool}``
* ``POST fetch`` ``{"wants": [id...], "haves": [id...]}`` -> an *object stream*
* ``POST push`` (``Authorization: Bearer <token>``) with a 4-byte big-endian length, a JSON
  header ``{"updates": [{"ref", "old", "new", "force"}]}`` and an object stream ->
  ``{"ok": true, "refs": {...}}``; 401/403 for a missing/wrong token, 409 when a ref moved
  since the client saw it (compare-and-swap), 413 when the body is too large.

An object stream is ``b"PROLLY-OBJECTS 1\\n"``, then per Git object a header
``struct(">BII")`` (type number 1 commit / 2 tree / 3 blob / 4 tag, body length, length of
the zlib-compressed body) and the compressed body, then ``b"\\0"`` and the object count
as ``>I``. Objects carry no id: the receiver computes each id from the bytes (SHA-1, as
Git does), so nothing can be misnamed, and checks connectivity before storing anything
(:func:`prollytree.sync.exchange.verify_received`).

The token comes from ``token=`` or from the URL (``http://TOKEN@host:port/``); it is
sent only as an ``Authorization`` header, never in the URL.
"""

from __future__ import annotations

import json
import struct
import zlib
from hashlib import sha1
from typing import Callable, Iterable, Iterator
from urllib.parse import urlsplit, urlunsplit

from ..errors import AuthenticationError, RemoteError

MAGIC = b"PROLLY-OBJECTS 1\n"
RECORD = struct.Struct(">BII")
END = struct.Struct(">BI")
API = "/prolly/v1"
PROTOCOL_HEADER = "X-Prollytree-Protocol"
#: largest single object accepted in a stream (a prolly node is far smaller)
MAX_OBJECT = 256 << 20
_TYPE_NAMES = {1: b"commit", 2: b"tree", 3: b"blob", 4: b"tag"}
ZERO = "0" * 40


def encode_objects(store, shas: Iterable[bytes], level: int = 1) -> Iterator[bytes]:
    """The object stream of ``shas`` (40-hex ids) read from dulwich's ``store``, in
    chunks of about 256 KiB."""
    yield MAGIC
    buf: list[bytes] = []
    size = n = 0
    for sha in shas:
        num, body = store.get_raw(sha)
        z = zlib.compress(body, level)
        buf.append(RECORD.pack(num, len(body), len(z)))
        buf.append(z)
        size += len(z) + RECORD.size
        n += 1
        if size >= 256 << 10:
            yield b"".join(buf)
            buf, size = [], 0
    buf.append(END.pack(0, n))
    yield b"".join(buf)


class ObjectStreamReader:
    """Parse an object stream fed in chunks; ``objects`` maps each object's computed
    40-hex id to ``(type number, body)``. ``limit`` bounds the stream's bytes."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.objects: dict[bytes, tuple[int, bytes]] = {}
        self.received = 0
        self._buf = bytearray()
        self._magic = False
        self._done = False
        self._count = 0

    def feed(self, data: bytes) -> None:
        self.received += len(data)
        if self.received > self.limit:
            raise RemoteError(f"object stream larger than the limit of {self.limit} bytes")
        if self._done:
            if data:
                raise RemoteError("data after the end of the object stream")
            return
        buf = self._buf
        buf += data
        pos = 0
        if not self._magic:
            if len(buf) < len(MAGIC):
                return
            if bytes(buf[:len(MAGIC)]) != MAGIC:
                raise RemoteError("not a prollytree object stream")
            self._magic = True
            pos = len(MAGIC)
        while True:
            if len(buf) - pos < 1:
                break
            if buf[pos] == 0:
                if len(buf) - pos < END.size:
                    break
                _, count = END.unpack_from(buf, pos)
                if count != self._count:
                    raise RemoteError(f"object stream ends after {self._count} object(s) "
                                      f"but announces {count}")
                pos += END.size
                if pos != len(buf):
                    raise RemoteError("data after the end of the object stream")
                self._done = True
                break
            if len(buf) - pos < RECORD.size:
                break
            num, raw_len, z_len = RECORD.unpack_from(buf, pos)
            if num not in _TYPE_NAMES or raw_len > MAX_OBJECT or z_len > MAX_OBJECT + 1024:
                raise RemoteError("malformed object stream record")
            if len(buf) - pos < RECORD.size + z_len:
                break
            start = pos + RECORD.size
            try:
                d = zlib.decompressobj()
                body = d.decompress(bytes(buf[start:start + z_len]), raw_len + 1)
            except zlib.error as e:
                raise RemoteError(f"damaged object in stream: {e}") from None
            if len(body) != raw_len or not d.eof:
                raise RemoteError("damaged object in stream: wrong length")
            h = sha1(_TYPE_NAMES[num] + b" %d\0" % raw_len)
            h.update(body)
            self.objects[h.hexdigest().encode("ascii")] = (num, body)
            self._count += 1
            pos = start + z_len
        del buf[:pos]

    def finish(self) -> dict[bytes, tuple[int, bytes]]:
        if not self._done:
            raise RemoteError("object stream truncated")
        return self.objects


def split_url(url: str) -> tuple[str, str | None]:
    """(URL without credentials and trailing slash, token from the URL or None)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url!r}")
    token = None
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, netloc = netloc.rsplit("@", 1)
        # http://TOKEN@host or http://user:TOKEN@host
        token = userinfo.split(":", 1)[1] if ":" in userinfo else userinfo
        from urllib.parse import unquote
        token = unquote(token) or None
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", "")), token


class HttpTransport:
    """A remote served by ``git prolly serve`` (see the module doc)."""

    def __init__(self, url: str, token: str | None = None, timeout: float = 120.0,
                 max_fetch_bytes: int = 16 << 30) -> None:
        if token is not None and not isinstance(token, str):
            raise TypeError(f"token must be a str, not {type(token).__name__}")
        self.base, url_token = split_url(url)
        self.token = token if token is not None else url_token
        self.timeout = timeout
        self.max_fetch_bytes = max_fetch_bytes
        #: {"objects", "bytes"} sent by the last push
        self.last_push = {"objects": 0, "bytes": 0}

    def _client(self):
        try:
            import httpx
        except ImportError:  # pragma: no cover - depends on the installation
            raise RemoteError("http remotes need httpx: pip install 'prollytree-py[sync]'") \
                from None
        headers = {"User-Agent": "prollytree"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return httpx.Client(base_url=self.base, headers=headers, timeout=self.timeout,
                            follow_redirects=False, trust_env=False)

    def _fail(self, r, what: str) -> None:
        if r.status_code < 400:
            return
        try:
            detail = r.json().get("error", "")
        except Exception:  # noqa: BLE001 - any body that is not our JSON
            detail = r.text[:200] if hasattr(r, "text") else ""
        msg = f"{what} {self.base} failed: HTTP {r.status_code}" + (f": {detail}" if detail
                                                                    else "")
        if r.status_code in (401, 403):
            raise AuthenticationError(msg)
        raise RemoteError(msg)

    def _refs(self, client) -> dict:
        import httpx
        try:
            r = client.get(f"{API}/refs")
        except httpx.HTTPError as e:
            raise RemoteError(f"cannot reach {self.base}: {e}") from None
        self._fail(r, "listing refs of")
        if r.headers.get(PROTOCOL_HEADER) != "1":
            raise RemoteError(f"{self.base} is not a prollytree server (git prolly serve)")
        info = r.json()
        if not isinstance(info, dict) or not isinstance(info.get("refs"), dict):
            raise RemoteError(f"{self.base} answered refs with an unexpected body")
        return info

    def fetch(self, repo, determine_wants, progress: Callable | None):
        """Fetch what ``determine_wants(refs)`` asks for into ``repo``; returns
        ``(refs, symrefs)`` as dulwich's clients do."""
        import httpx

        from .exchange import verify_received, write_received
        with self._client() as client:
            info = self._refs(client)
            refs = {k.encode("utf-8"): v.encode("ascii") for k, v in info["refs"].items()}
            symrefs = {}
            if info.get("head"):
                symrefs[b"HEAD"] = b"refs/heads/" + info["head"].encode("utf-8")
            wants = list(determine_wants(refs))
            if not wants:
                return refs, symrefs
            store = repo.object_store
            local = [s for s in repo.refs.as_dict().values() if s in store]
            haves = list(dict.fromkeys(local))
            reader = ObjectStreamReader(self.max_fetch_bytes)
            body = json.dumps({"wants": [w.decode() for w in wants],
                               "haves": [h.decode() for h in haves]}).encode()
            try:
                with client.stream("POST", f"{API}/fetch", content=body,
                                   headers={"Content-Type": "application/json"}) as r:
                    if r.status_code >= 400:
                        r.read()
                        self._fail(r, "fetch from")
                    total = r.headers.get("Content-Length")
                    total = int(total) if total and total.isdigit() else None
                    for chunk in r.iter_bytes():
                        reader.feed(chunk)
                        if progress is not None:
                            progress("Receiving objects", reader.received, total)
            except httpx.HTTPError as e:
                raise RemoteError(f"fetch from {self.base} failed: {e}") from None
            objects = reader.finish()
            if progress is not None:
                progress("Checking objects", 0, len(objects))
            triples = verify_received(repo, objects, wants, local)
            write_received(repo, triples)
            if progress is not None:
                progress("Checking objects", len(objects), len(objects))
            return refs, symrefs

    def push(self, repo, update_refs, progress: Callable | None) -> dict:
        """Push as dulwich's ``send_pack`` does: ``update_refs(remote refs)`` returns
        the wanted refs; returns ``{ref: None | error}``."""
        import httpx

        from .exchange import objects_to_send
        with self._client() as client:
            info = self._refs(client)
            refs = {k.encode("utf-8"): v.encode("ascii") for k, v in info["refs"].items()}
            wanted = update_refs(dict(refs))
            updates = []
            for ref, new in wanted.items():
                old = refs.get(ref)
                if new == old:
                    continue
                updates.append((ref, old, new))
            if not updates:
                return {}
            store = repo.object_store
            haves = [s for s in refs.values() if s in store]
            wants = [new for _, _, new in updates if new != ZERO.encode()]
            header = {"updates": [
                {"ref": ref.decode("utf-8"), "old": None if old is None else old.decode(),
                 "new": new.decode(), "force": bool(old is not None and not _is_ancestor(
                     repo, old, new))} for ref, old, new in updates]}
            hb = json.dumps(header).encode()
            shas = list(objects_to_send(repo, wants, haves))
            sent = [0]

            def body() -> Iterator[bytes]:
                yield struct.pack(">I", len(hb)) + hb
                for chunk in encode_objects(store, shas):
                    sent[0] += len(chunk)
                    if progress is not None:
                        progress("Sending objects", sent[0], None)
                    yield chunk
            try:
                r = client.post(f"{API}/push", content=body(),
                                headers={"Content-Type": "application/x-prolly-push"})
            except httpx.HTTPError as e:
                raise RemoteError(f"push to {self.base} failed: {e}") from None
            if r.status_code == 409:
                try:
                    detail = r.json().get("error", "")
                except Exception:  # noqa: BLE001
                    detail = ""
                raise RemoteError(f"push to {self.base} failed: the remote moved since it "
                                  f"was read ({detail}); fetch and retry")
            self._fail(r, "push to")
            self.last_push = {"objects": len(shas), "bytes": sent[0] + len(hb) + 4}
            return {}


def _is_ancestor(repo, old: bytes, new: bytes) -> bool:
    """Whether commit ``old`` is ``new`` or one of its ancestors (locally known)."""
    store = repo.object_store
    if old not in store:
        return False
    seen: set = set()
    todo = [new]
    while todo:
        c = todo.pop()
        if c == old:
            return True
        if c in seen or c not in store:
            continue
        seen.add(c)
        obj = store[c]
        todo.extend(getattr(obj, "parents", ()))
    return False

