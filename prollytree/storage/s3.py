"""The S3 store: nodes and refs as objects in an S3-compatible bucket (AWS S3, SeaweedFS,
MinIO, R2, ...), on ``boto3``.

A store is addressed ``s3://bucket/prefix``; under the prefix it keeps::

    prollytree-store.json      marker: this prefix holds a prollytree node store
    nodes/<ab>/<hex address>   one object per node, its encoded bytes
    refs/<escaped name>        one object per ref, its value

Endpoint, credentials and region come from the standard AWS settings (``AWS_ENDPOINT_URL``,
``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_PROFILE``,
``AWS_REGION`` / ``AWS_DEFAULT_REGION``), or from the constructor's arguments.

Safety:

- Every node read is checked against its SHA-256 address; damaged bytes raise
  :class:`~prollytree.errors.CorruptNodeError` and are never served.
- Refs change by conditional writes: ``If-None-Match: *`` creates a ref only if absent,
  ``If-Match: <etag>`` replaces (or deletes) it only if nobody changed it since it was
  read. So writers on different machines share one store without a lock and never lose
  an update: a compare-and-swap that loses the race returns False. Opening a store for
  writing proves the server honours conditional writes (a conditional create of the
  marker object must be refused when it exists, and so must a PUT and a DELETE with an
  ``If-Match`` of a wrong etag) and refuses to open otherwise.
- Nodes are immutable, so a local read cache (``cache_dir``) in front of the bucket is
  safe; cached bytes are checked against their address like remote ones, and a damaged
  cache file is dropped and fetched again.

Costs: each node is one object, so a read is one GET (none when cached) and a write is
one PUT per node, ``max_workers`` in parallel (default 32). ``has`` is one HEAD.
Writes are *write-behind*: ``put_many`` starts the PUTs and returns; ``flush()``, every
ref change and ``close()`` wait until they are durable. A node whose bytes contain the
address of a node still being written (a parent, a root set or commit record naming it)
is started only after that write completed, so after a crash no stored record refers to
a node that did not make it: a present node always has its whole subtree. If a write
fails, the store refuses further writes (StoreError): reopen it.
Small nodes are not packed into larger objects: packing would make ``has``, ``remove``
(garbage collection) and listing need an index that itself must be updated by
compare-and-swap; parallel PUTs already reach the throughput a prolly-tree commit needs
(a commit writes O(changes x depth) nodes).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any, Iterable, Iterator, Mapping

from ..errors import CorruptNodeError, ReadOnlyError, StoreError
from .base import ANY, NodeStore
from .checks import StoreProblem, check_address

__all__ = ["S3NodeStore", "parse_s3_url"]

MARKER = "prollytree-store.json"
NODES = "nodes/"
REFS = "refs/"
#: Environment variable naming a default local read-cache directory for S3 stores.
CACHE_ENV = "PROLLYTREE_S3_CACHE_DIR"
DEFAULT_WORKERS = 32

_INSTALL_HINT = "pip install 'prollytree-py[s3]'"
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.\-_]{1,61}[a-z0-9]$")
_HEX_RE = re.compile(r"^[0-9a-f]{64}$")
# Characters kept as-is in a ref's object key; everything else is %-escaped per UTF-8
# byte, so that names like "..", "a//b" or a trailing "/" cannot be normalised by a
# server into another ref's key.
_KEEP = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


def _boto3() -> Any:
    """Import boto3 lazily, so that only users of this backend need it."""
    try:
        import boto3
        import botocore
    except ImportError as e:
        raise StoreError(f"the s3 storage backend needs boto3 ({e}); "
                         f"install it with: {_INSTALL_HINT}") from e
    return boto3, botocore


def parse_s3_url(url: str) -> tuple[str, str]:
    """``(bucket, prefix)`` of ``s3://bucket/prefix`` (prefix without surrounding "/",
    possibly empty). Raises TypeError for a non-str, ValueError for a malformed URL."""
    if not isinstance(url, str):
        raise TypeError(f"s3 location must be a str, not {type(url).__name__}")
    if not url.startswith("s3://"):
        raise ValueError(f"s3 location must look like s3://bucket/prefix, got {url!r}")
    bucket, _, prefix = url[5:].partition("/")
    if not _BUCKET_RE.match(bucket):
        raise ValueError(f"{bucket!r} is not a valid S3 bucket name (in {url!r})")
    prefix = prefix.strip("/")
    if "//" in prefix or any(p in (".", "..") for p in prefix.split("/")) or any(
            ord(c) < 32 for c in prefix):
        raise ValueError(f"bad S3 key prefix {prefix!r} in {url!r}")
    return bucket, prefix


def _escape_ref(name: str) -> str:
    return "".join(chr(b) if b in _KEEP else "%%%02X" % b for b in name.encode("utf-8"))


def _unescape_ref(key: str) -> str | None:
    try:
        out = bytearray()
        i = 0
        while i < len(key):
            if key[i] == "%":
                out.append(int(key[i + 1:i + 3], 16))
                i += 3
            else:
                out.append(ord(key[i]))
                i += 1
        return out.decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None  # not a key this store wrote: ignore it


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


class S3NodeStore(NodeStore):
    """Nodes and refs as objects under ``s3://bucket/prefix``.

    ``read_only=True`` opens an existing store and refuses writes. ``cache_dir`` (default
    ``$PROLLYTREE_S3_CACHE_DIR``, else no cache) keeps read and written nodes on local
    disk. ``endpoint_url``, ``region`` override the AWS settings; ``max_workers`` bounds
    parallel requests. Any number of processes and machines may write one store at once.
    """

    kind = "s3"
    verify_reads = True

    def __init__(self, url: str, read_only: bool = False, *, cache_dir: str | os.PathLike |
                 None = None, endpoint_url: str | None = None, region: str | None = None,
                 max_workers: int = DEFAULT_WORKERS) -> None:
        self._closed = True  # until fully open
        bucket, prefix = parse_s3_url(url)
        if not isinstance(read_only, bool):
            raise TypeError(f"read_only must be a bool, not {type(read_only).__name__}")
        if cache_dir is not None and not isinstance(cache_dir, (str, os.PathLike)):
            raise TypeError(f"cache_dir must be a path, not {type(cache_dir).__name__}")
        for what, v in (("endpoint_url", endpoint_url), ("region", region)):
            if v is not None and not isinstance(v, str):
                raise TypeError(f"{what} must be a str, not {type(v).__name__}")
        if isinstance(max_workers, bool) or not isinstance(max_workers, int):
            raise TypeError(f"max_workers must be an int, not {type(max_workers).__name__}")
        if max_workers < 1:
            raise ValueError(f"max_workers must be >= 1, got {max_workers}")
        boto3, botocore = _boto3()
        self._ClientError = botocore.exceptions.ClientError
        self._BotoError = botocore.exceptions.BotoCoreError
        self.url = f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
        self.path = self.url
        self.bucket = bucket
        self._base = prefix + "/" if prefix else ""
        self.read_only = read_only
        endpoint_url = endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or \
            os.environ.get("AWS_ENDPOINT_URL") or None
        region = region or os.environ.get("AWS_REGION") or \
            os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        config = botocore.config.Config(
            max_pool_connections=max_workers + 4, connect_timeout=10, read_timeout=60,
            retries={"max_attempts": 6, "mode": "standard"},
            # custom endpoints (SeaweedFS, MinIO) rarely have per-bucket DNS names
            s3={"addressing_style": "path" if endpoint_url else "auto"})
        self._client = boto3.session.Session().client(
            "s3", endpoint_url=endpoint_url, region_name=region, config=config)
        self._pool = ThreadPoolExecutor(max_workers=max_workers,
                                        thread_name_prefix="prollytree-s3")
        self._workers = max_workers
        # write-behind: address -> (bytes, future) of node PUTs not yet complete
        self._pending: dict[bytes, tuple[bytes, Future]] = {}
        self._plock = threading.RLock()  # a done future runs its callback at once
        self._max_pending = 4 * max_workers
        self._failed: BaseException | None = None
        cache_dir = cache_dir if cache_dir is not None else os.environ.get(CACHE_ENV) or None
        self.cache_dir = os.fspath(cache_dir) if cache_dir is not None else None
        if self.cache_dir is not None:
            os.makedirs(self.cache_dir, exist_ok=True)
        try:
            self._open_marker()
        except BaseException:
            self._pool.shutdown(wait=False)
            raise
        self._closed = False

    # -- plumbing -------------------------------------------------------------------------

    def _node_key(self, address: bytes) -> str:
        h = address.hex()
        return f"{self._base}{NODES}{h[:2]}/{h}"

    def _ref_key(self, name: str) -> str:
        return f"{self._base}{REFS}{_escape_ref(name)}"

    def _code(self, e: Exception) -> tuple[str, int]:
        resp = getattr(e, "response", None) or {}
        return (str(resp.get("Error", {}).get("Code", "")),
                int(resp.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0))

    def _is_missing(self, e: Exception) -> bool:
        code, status = self._code(e)
        return status == 404 or code in ("NoSuchKey", "NotFound", "404")

    def _is_precondition(self, e: Exception) -> bool:
        code, status = self._code(e)
        return status == 412 or code == "PreconditionFailed"

    def _is_conflict(self, e: Exception) -> bool:
        # AWS answers 409 when another conditional write to the same key is in flight
        code, status = self._code(e)
        return status == 409 or code == "ConditionalRequestConflict"

    def _fail(self, what: str, e: Exception) -> StoreError:
        code, status = self._code(e)
        if code == "NoSuchBucket":
            return StoreError(f"bucket {self.bucket!r} does not exist ({self.url})")
        detail = f"{code or type(e).__name__} (HTTP {status})" if status else str(e)
        return StoreError(f"s3 store at {self.url}: {what} failed: {detail}")

    def _live(self) -> None:
        if self._closed:
            raise StoreError(f"s3 store at {self.url} is closed")

    def _call(self, what: str, fn: Any, **kw: Any) -> Any:
        try:
            return fn(Bucket=self.bucket, **kw)
        except self._ClientError:
            raise
        except self._BotoError as e:  # no credentials, endpoint unreachable, ...
            raise StoreError(f"s3 store at {self.url}: {what} failed: {e}") from e

    def _get_object(self, key: str) -> tuple[bytes, str] | None:
        """(body, etag) of ``key``, or None when absent."""
        try:
            r = self._call("GET " + key, self._client.get_object, Key=key)
            return r["Body"].read(), r["ETag"]
        except self._ClientError as e:
            if self._is_missing(e):
                return None
            raise self._fail("GET " + key, e) from e

    def _open_marker(self) -> None:
        """Check the bucket and the store marker; a writable open creates the marker with
        a conditional write, which also proves the server honours conditional writes."""
        key = self._base + MARKER
        body = json.dumps({"prollytree": "node store", "format": 1}).encode()
        if self.read_only:
            if self._get_object(key) is None:
                try:
                    self._call("HEAD bucket", self._client.head_bucket)
                except self._ClientError as e:
                    if self._is_missing(e):
                        raise StoreError(f"bucket {self.bucket!r} does not exist "
                                         f"({self.url})") from None
                    raise self._fail("HEAD bucket", e) from e
                raise StoreError(f"there is no prollytree s3 store at {self.url}")
            return
        def put(**cond: str) -> bool:
            """Whether a conditional PUT of the marker went through (False: refused)."""
            while True:
                try:
                    self._call("PUT " + key, self._client.put_object, Key=key, Body=body,
                               **cond)
                    return True
                except self._ClientError as e:
                    if self._is_precondition(e):
                        return False
                    if not self._is_conflict(e):
                        raise self._fail("writing the store marker", e) from e

        def unsafe(header: str) -> StoreError:
            return StoreError(f"the S3 server behind {self.url} ignores conditional writes "
                              f"({header}): compare-and-swap on refs would be unsafe, so "
                              f"the store is not opened")

        # create the marker if absent; once it exists a second create must be refused,
        # and so must an If-Match with an etag no object has
        if put(IfNoneMatch="*") and put(IfNoneMatch="*"):
            raise unsafe("If-None-Match")
        wrong = '"%s"' % ("0" * 32)
        if put(IfMatch=wrong):
            raise unsafe("If-Match")
        # deleting a ref by compare-and-swap sends If-Match on DeleteObject: check it too
        try:
            self._call("DELETE " + key, self._client.delete_object, Key=key, IfMatch=wrong)
        except self._ClientError as e:
            if not (self._is_precondition(e) or self._is_conflict(e)):
                raise self._fail("checking conditional deletes", e) from e
        else:
            put()  # the server deleted the marker regardless: restore it
            raise unsafe("If-Match on DeleteObject")

    # -- the local read cache ---------------------------------------------------------------

    def _cache_path(self, address: bytes) -> str:
        h = address.hex()
        return os.path.join(self.cache_dir, h[:2], h)  # type: ignore[arg-type]

    def _cache_get(self, address: bytes) -> bytes | None:
        if self.cache_dir is None:
            return None
        path = self._cache_path(address)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError:
            return None
        if _sha256(data) != address:  # damaged cache file: drop it, fetch again
            try:
                os.unlink(path)
            except OSError:
                pass
            return None
        return data

    def _cache_put(self, address: bytes, data: bytes) -> None:
        if self.cache_dir is None or _sha256(data) != address:
            return  # never cache bytes that do not match their address
        path = self._cache_path(address)
        tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, path)  # readers see the whole file or none
        except OSError:
            try:
                os.unlink(tmp)
            except OSError:
                pass

    def _cache_drop(self, address: bytes) -> None:
        if self.cache_dir is not None:
            try:
                os.unlink(self._cache_path(address))
            except OSError:
                pass

    # -- nodes ------------------------------------------------------------------------------

    def _fetch(self, address: bytes) -> bytes | None:
        """The verified node at ``address`` (being written, cached, remote), or None."""
        data = self._pending_data(address)
        if data is not None:
            return data
        data = self._cache_get(address)
        if data is not None:
            return data
        got = self._get_object(self._node_key(address))
        if got is None:
            return None
        data = got[0]
        if _sha256(data) != address:
            raise CorruptNodeError(address, f"the object in {self.url} does not hash "
                                            f"to its address")
        self._cache_put(address, data)
        return data

    def _get(self, address: bytes) -> bytes | None:
        self._live()
        return self._fetch(address)

    def get(self, address: bytes) -> bytes | None:
        """The node at ``address`` or None: one GET, none when cached; verified."""
        self._live()
        return self._fetch(check_address(address))

    def get_many(self, addresses: Iterable[bytes]) -> dict[bytes, bytes]:
        """The nodes present among ``addresses``, fetched ``max_workers`` in parallel."""
        self._live()
        wanted = list(dict.fromkeys(map(check_address, addresses)))
        if len(wanted) <= 1:
            got = [self._fetch(a) for a in wanted]
        else:
            got = list(self._pool.map(self._fetch, wanted))
        return {a: d for a, d in zip(wanted, got) if d is not None}

    def _put_one(self, item: tuple[bytes, bytes]) -> None:
        address, data = item
        key = self._node_key(address)
        try:
            self._call("PUT " + key, self._client.put_object, Key=key, Body=data)
        except self._ClientError as e:
            raise self._fail("PUT " + key, e) from e
        self._cache_put(address, data)

    def _put_many(self, items: list[tuple[bytes, bytes]]) -> None:
        """Start the PUTs and return: write-behind. A node whose bytes contain the address
        of a node still being written (a parent, a root set, a commit) is started only
        once that write completed, so no crash can leave a record without what it refers
        to. ``flush`` and every ref change wait for all writes."""
        self._live()
        self._raise_failed()
        for address, data in dict(items).items():
            with self._plock:
                deps = [f for a, (_, f) in self._pending.items() if a in data]
                busy = len(self._pending) >= self._max_pending
                if not busy and not deps:
                    self._submit(address, data)
                    continue
            for f in deps:
                if f.exception() is not None:  # waits; never write over a failed child
                    self._raise_failed()
            while True:
                with self._plock:
                    if len(self._pending) < self._max_pending:
                        self._submit(address, data)
                        break
                    running = [f for _, f in self._pending.values()]
                wait(running, return_when=FIRST_COMPLETED)
            self._raise_failed()

    def _submit(self, address: bytes, data: bytes) -> None:
        """Start one PUT (under ``_plock``)."""
        fut = self._pool.submit(self._put_one, (address, data))
        self._pending[address] = (data, fut)
        fut.add_done_callback(lambda f, a=address: self._settle(a, f))

    def _settle(self, address: bytes, fut: Future) -> None:
        with self._plock:
            if fut.exception() is not None:
                self._failed = self._failed or fut.exception()
            cur = self._pending.get(address)
            if cur is not None and cur[1] is fut:
                del self._pending[address]

    def _raise_failed(self) -> None:
        if self._failed is not None:
            raise StoreError(f"s3 store at {self.url}: a node write failed ({self._failed}); "
                             f"writes since the last flush may be lost: reopen the store")

    def flush(self) -> None:
        """Wait until every node write started so far is durable (raises StoreError if
        one failed)."""
        while True:
            with self._plock:
                running = [f for _, f in self._pending.values()]
            if not running:
                break
            wait(running)
        self._raise_failed()

    def _pending_data(self, address: bytes) -> bytes | None:
        entry = self._pending.get(address)
        if entry is None:
            return None
        if _sha256(entry[0]) != address:
            raise CorruptNodeError(address, "the bytes written do not hash to the address")
        return entry[0]

    def _head(self, address: bytes) -> bool:
        key = self._node_key(address)
        try:
            self._call("HEAD " + key, self._client.head_object, Key=key)
            return True
        except self._ClientError as e:
            if self._is_missing(e):
                return False
            raise self._fail("HEAD " + key, e) from e

    def _has(self, address: bytes) -> bool:
        self._live()
        if address in self._pending:
            return True
        if self.cache_dir is not None and os.path.exists(self._cache_path(address)):
            return True
        return self._head(address)

    def has_many(self, addresses: Iterable[bytes]) -> set[bytes]:
        """The addresses among ``addresses`` that are stored: HEADs in parallel."""
        self._live()
        wanted = list(dict.fromkeys(map(check_address, addresses)))
        found = list(self._pool.map(self._has, wanted)) if len(wanted) > 1 else \
            [self._has(a) for a in wanted]
        return {a for a, ok in zip(wanted, found) if ok}

    def _list(self, prefix: str) -> Iterator[str]:
        token = None
        while True:
            kw: dict[str, Any] = {"Prefix": prefix, "MaxKeys": 1000}
            if token:
                kw["ContinuationToken"] = token
            try:
                r = self._call("LIST " + prefix, self._client.list_objects_v2, **kw)
            except self._ClientError as e:
                raise self._fail("LIST " + prefix, e) from e
            for obj in r.get("Contents", ()):
                yield obj["Key"]
            token = r.get("NextContinuationToken")
            if not r.get("IsTruncated") or not token:
                return

    def addresses(self) -> Iterator[bytes]:
        """Every stored node address: one LIST request per 1000 nodes."""
        self._live()
        self.flush()
        start = self._base + NODES
        out = []
        for key in self._list(start):
            h = key[len(start):].rpartition("/")[2]
            if _HEX_RE.match(h) and key[len(start):] == f"{h[:2]}/{h}":
                out.append(bytes.fromhex(h))
        return iter(out)

    def remove(self, addresses: Iterable[bytes]) -> int:
        """Delete the given nodes (one HEAD each, then batched DELETEs); returns how many
        existed. Other processes' read caches may keep serving removed nodes."""
        if self.read_only:
            raise ReadOnlyError("s3 store is open read-only")
        self._live()
        wanted = list(dict.fromkeys(check_address(a) for a in addresses))
        self.flush()
        present = [a for a, ok in zip(wanted, self._pool.map(self._head, wanted)) if ok]
        for a in wanted:
            self._cache_drop(a)
        for i in range(0, len(present), 1000):
            batch = present[i:i + 1000]
            try:
                r = self._call("DELETE", self._client.delete_objects, Delete={
                    "Objects": [{"Key": self._node_key(a)} for a in batch], "Quiet": True})
            except self._ClientError as e:
                raise self._fail("DELETE nodes", e) from e
            if r.get("Errors"):
                err = r["Errors"][0]
                raise StoreError(f"s3 store at {self.url}: deleting {err.get('Key')} "
                                 f"failed: {err.get('Code')} {err.get('Message')}")
        return len(present)

    # -- refs -------------------------------------------------------------------------------

    def _get_ref(self, name: str) -> bytes | None:
        self._live()
        got = self._get_object(self._ref_key(name))
        return None if got is None else got[0]

    def _write_ref(self, key: str, value: bytes | None, **cond: str) -> bool:
        """One (conditional) PUT or DELETE; False when its precondition failed, None when
        the server reported a concurrent conditional write (retry)."""
        try:
            if value is None:
                self._call("DELETE " + key, self._client.delete_object, Key=key, **cond)
            else:
                self._call("PUT " + key, self._client.put_object, Key=key, Body=value,
                           **cond)
            return True
        except self._ClientError as e:
            if self._is_precondition(e):
                return False
            if self._is_conflict(e):
                return None  # type: ignore[return-value]
            if value is None and self._is_missing(e):
                return False  # deleted by someone else meanwhile
            raise self._fail(("DELETE " if value is None else "PUT ") + key, e) from e

    def _set_ref(self, name: str, value: bytes | None, expected: object) -> bool:
        self._live()
        self.flush()  # a ref must never point at nodes still being written
        key = self._ref_key(name)
        if expected is ANY:
            if value is None:
                try:
                    self._call("DELETE " + key, self._client.delete_object, Key=key)
                except self._ClientError as e:
                    if not self._is_missing(e):
                        raise self._fail("DELETE " + key, e) from e
                return True
            while self._write_ref(key, value) is None:  # 409: retry
                time.sleep(0.01 * (1 + random.random()))
            return True
        delay = 0.005
        while True:
            if expected is None:
                if value is None:  # "delete if absent": nothing to do but look
                    return self._get_object(key) is None
                ok = self._write_ref(key, value, IfNoneMatch="*")
            else:
                current = self._get_object(key)
                if current is None or current[0] != expected:
                    return False
                ok = self._write_ref(key, value, IfMatch=current[1])
            if ok is not None:
                if ok is True or expected is None:
                    return ok
                # If-Match lost: the ref changed after our read. It may hold the expected
                # value again (or still, when rewritten with equal bytes): read again.
            time.sleep(delay * (1 + random.random()))
            delay = min(delay * 2, 0.2)

    def refs(self) -> Mapping[str, bytes]:
        """Every ref: one LIST, then the values fetched in parallel."""
        self._live()
        start = self._base + REFS
        names = {}
        for key in self._list(start):
            name = _unescape_ref(key[len(start):])
            if name is not None and _escape_ref(name) == key[len(start):]:
                names[name] = key
        values = list(self._pool.map(self._get_object, names.values()))
        return {n: v[0] for n, v in zip(names, values) if v is not None}

    # -- lifecycle --------------------------------------------------------------------------

    def check(self) -> list[StoreProblem]:
        """Fetch every node and report those whose bytes do not hash to their address."""
        self._live()
        self.flush()
        problems = []

        def one(a: bytes) -> StoreProblem | None:
            got = self._get_object(self._node_key(a))
            if got is not None and _sha256(got[0]) != a:
                return StoreProblem(a, "stored bytes do not hash to the address")
            return None

        for p in self._pool.map(one, list(self.addresses())):
            if p is not None:
                problems.append(p)
        return problems

    def close(self) -> None:
        """Wait for pending writes (raising StoreError if one failed), then release the
        connection pool and worker threads."""
        if self._closed:
            return
        try:
            self.flush()
        finally:
            self._closed = True
            self._pool.shutdown(wait=True)
            self._client.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("read-only" if self.read_only else "open")
        return f"S3NodeStore({self.url!r}, {state})"
