"""LangGraph persistence on prollytree (extra ``langgraph``).

* :class:`ProllyCheckpointSaver` - a ``BaseCheckpointSaver``: every ``put`` is a commit of
  the dataset, so graph checkpoints are versioned, diffable and mergeable like any other
  prollytree data (and survive the process: resume a thread from a new process).
* :class:`ProllyStore` - a ``BaseStore`` (long-term memory): namespaced JSON items,
  filters, and semantic search through LangGraph's ``index`` config with any embedder
  (a LangChain ``Embeddings``, a function, or a :mod:`prollytree.search` embedder). The
  vector index is a derived cache of the store's tree (see :mod:`prollytree.search`).

Sync and async methods are both provided (async ones run the sync work in a thread).
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import json
import os
import random
import threading
from typing import Any, AsyncIterator, Iterable, Iterator, Sequence

import msgpack

try:
    from langgraph.checkpoint.base import (
        WRITES_IDX_MAP, BaseCheckpointSaver, ChannelVersions, Checkpoint, CheckpointMetadata,
        CheckpointTuple, get_checkpoint_id, get_checkpoint_metadata,
    )
    from langgraph.store.base import (
        BaseStore, GetOp, Item, ListNamespacesOp, PutOp, SearchItem, SearchOp,
    )
    from langgraph.store.base.embed import ensure_embeddings, get_text_at_path
except ImportError as e:  # pragma: no cover - depends on the extra
    raise ImportError("prollytree.integrations.langgraph needs langgraph: "
                      "pip install 'prollytree-py[langgraph]'") from e

from ..memory.storage import NamedTreeStorage
from ..search import CallableEmbedder, VectorIndex

CHECKPOINT_TREE = "langgraph/checkpoints"
STORE_TREE = "langgraph/store"


# -- key encoding: parts of any text, escaped so that NUL separates them -----------------------

def _esc(part: str) -> bytes:
    if not isinstance(part, str):
        raise TypeError(f"expected a str, not {type(part).__name__}")
    return part.encode().replace(b"\x01", b"\x01\x02").replace(b"\x00", b"\x01\x01")


def _unesc(raw: bytes) -> str:
    return raw.replace(b"\x01\x01", b"\x00").replace(b"\x01\x02", b"\x01").decode()


def _key(tag: bytes, *parts: str) -> bytes:
    return tag + b"".join(_esc(p) + b"\x00" for p in parts)


def _split(key: bytes, tag: bytes) -> list[str]:
    body = key[len(tag):]
    return [_unesc(p) for p in body.split(b"\x00")[:-1]]


def _pack(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


def _unpack(raw: bytes) -> Any:
    return msgpack.unpackb(raw, raw=False)


def _run(fn, *args, **kwargs):
    return asyncio.to_thread(fn, *args, **kwargs)


# -- the checkpoint saver ------------------------------------------------------------------------

class ProllyCheckpointSaver(BaseCheckpointSaver[str]):
    """LangGraph checkpoints in the prollytree dataset at ``path`` (Git by default).

    Layout of the tree ``langgraph/checkpoints``: ``c/<thread>/<ns>/<checkpoint id>`` (the
    checkpoint without channel values, its metadata, its parent), ``b/<thread>/<ns>/
    <channel>/<version>`` (channel values, stored once per version), ``w/<thread>/<ns>/
    <checkpoint id>/<task>/<idx>`` (pending writes). Every ``put`` commits (message
    ``checkpoint <thread> <id>``); writes are staged (crash-safe) until then."""

    def __init__(self, path: str | os.PathLike, storage_backend: Any = None, *,
                 serde: Any = None) -> None:
        super().__init__(serde=serde)
        self._st = NamedTreeStorage(path, storage_backend, (CHECKPOINT_TREE,))
        self._lock = threading.RLock()

    @property
    def storage(self) -> NamedTreeStorage:
        """The dataset (for its history: log, diff between checkpoints...)."""
        return self._st

    def close(self) -> None:
        with self._lock:
            self._st.close()

    def __enter__(self) -> "ProllyCheckpointSaver":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- helpers ---------------------------------------------------------------------------

    def _get(self, key: bytes) -> bytes | None:
        return self._st.get(CHECKPOINT_TREE, key)

    def _scan(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        return self._st.scan(CHECKPOINT_TREE, prefix)

    def _loads(self, typed: list) -> Any:
        return self.serde.loads_typed((typed[0], typed[1]))

    def _tuple(self, thread: str, ns: str, cid: str, raw: bytes) -> CheckpointTuple:
        rec = _unpack(raw)
        checkpoint = self._loads(rec["c"])
        values = {}
        for channel, version in checkpoint.get("channel_versions", {}).items():
            blob = self._get(_key(b"b/", thread, ns, channel, str(version)))
            if blob is not None:
                typed = _unpack(blob)
                if typed[0] != "empty":
                    values[channel] = self._loads(typed)
        checkpoint = {**checkpoint, "channel_values": values}
        writes = []
        for k, v in self._scan(_key(b"w/", thread, ns, cid)):
            task_id, idx = _split(k, b"w/")[3:5]
            channel, typ, data, task_path = _unpack(v)
            writes.append(((task_path, task_id, int(idx)),
                           (task_id, channel, self._loads([typ, data]))))
        writes.sort(key=lambda w: w[0])
        parent = rec.get("p")
        return CheckpointTuple(
            config={"configurable": {"thread_id": thread, "checkpoint_ns": ns,
                                     "checkpoint_id": cid}},
            checkpoint=checkpoint,
            metadata=self._loads(rec["m"]),
            parent_config=({"configurable": {"thread_id": thread, "checkpoint_ns": ns,
                                             "checkpoint_id": parent}} if parent else None),
            pending_writes=[w for _, w in writes],
        )

    def _commit(self, message: str) -> None:
        if self._st.has_staged():
            self._st.commit(message)

    # -- the BaseCheckpointSaver API ---------------------------------------------------------

    def get_tuple(self, config: dict) -> CheckpointTuple | None:
        """The checkpoint ``config`` names (its ``checkpoint_id``), or the thread's latest
        one in its namespace. O(log n) with an id; O(checkpoints of the thread) without."""
        conf = config["configurable"]
        thread, ns = str(conf["thread_id"]), conf.get("checkpoint_ns", "")
        cid = get_checkpoint_id(config)
        with self._lock:
            if cid:
                raw = self._get(_key(b"c/", thread, ns, cid))
                return None if raw is None else self._tuple(thread, ns, cid, raw)
            last = None
            for k, v in self._scan(_key(b"c/", thread, ns)):
                last = (k, v)
            if last is None:
                return None
            return self._tuple(thread, ns, _split(last[0], b"c/")[2], last[1])

    def list(self, config: dict | None, *, filter: dict[str, Any] | None = None,
             before: dict | None = None, limit: int | None = None
             ) -> Iterator[CheckpointTuple]:
        """Checkpoints newest first (by id), of one thread (and namespace, and id) when
        ``config`` says so, else of all; ``filter`` matches metadata values, ``before``
        keeps ids older than its checkpoint id."""
        conf = (config or {}).get("configurable", {})
        prefix = b"c/"
        if conf.get("thread_id") is not None:
            prefix = _key(b"c/", str(conf["thread_id"]))
            if "checkpoint_ns" in conf:
                prefix = _key(b"c/", str(conf["thread_id"]), conf["checkpoint_ns"])
        want_id = conf.get("checkpoint_id")
        before_id = get_checkpoint_id(before) if before else None
        with self._lock:
            found = []
            for k, v in self._scan(prefix):
                thread, ns, cid = _split(k, b"c/")
                if want_id and cid != want_id:
                    continue
                if before_id and not cid < before_id:
                    continue
                if filter:
                    meta = self._loads(_unpack(v)["m"])
                    if any(meta.get(fk) != fv for fk, fv in filter.items()):
                        continue
                found.append((cid, thread, ns, v))
            found.sort(key=lambda f: f[0], reverse=True)
            if limit is not None:
                found = found[:limit]
            out = [self._tuple(thread, ns, cid, v) for cid, thread, ns, v in found]
        return iter(out)

    def put(self, config: dict, checkpoint: Checkpoint, metadata: CheckpointMetadata,
            new_versions: ChannelVersions) -> dict:
        """Store ``checkpoint`` (channel values only for ``new_versions``) and commit."""
        conf = config["configurable"]
        thread, ns = str(conf["thread_id"]), conf.get("checkpoint_ns", "")
        c = dict(checkpoint)
        values = c.pop("channel_values", {})
        pairs = []
        for channel, version in new_versions.items():
            typed = (self.serde.dumps_typed(values[channel]) if channel in values
                     else ("empty", b""))
            pairs.append((_key(b"b/", thread, ns, channel, str(version)), _pack(list(typed))))
        rec = {"c": list(self.serde.dumps_typed(c)),
               "m": list(self.serde.dumps_typed(get_checkpoint_metadata(config, metadata))),
               "p": conf.get("checkpoint_id")}
        pairs.append((_key(b"c/", thread, ns, checkpoint["id"]), _pack(rec)))
        with self._lock:
            self._st.put_batch(CHECKPOINT_TREE, pairs)
            self._commit(f"checkpoint {thread} {checkpoint['id']}")
        return {"configurable": {"thread_id": thread, "checkpoint_ns": ns,
                                 "checkpoint_id": checkpoint["id"]}}

    def put_writes(self, config: dict, writes: Sequence[tuple[str, Any]], task_id: str,
                   task_path: str = "") -> None:
        """Stage the writes of task ``task_id`` for the checkpoint ``config`` names.
        Regular writes already stored for that task and index are kept (idempotent
        retries); special ones (errors, interrupts...) are replaced."""
        conf = config["configurable"]
        thread, ns = str(conf["thread_id"]), conf.get("checkpoint_ns", "")
        cid = conf["checkpoint_id"]
        with self._lock:
            pairs = []
            for idx, (channel, value) in enumerate(writes):
                widx = WRITES_IDX_MAP.get(channel, idx)
                key = _key(b"w/", thread, ns, cid, task_id, str(widx))
                if widx >= 0 and self._get(key) is not None:
                    continue
                typ, data = self.serde.dumps_typed(value)
                pairs.append((key, _pack([channel, typ, data, task_path])))
            if pairs:
                self._st.put_batch(CHECKPOINT_TREE, pairs)

    def _delete_prefixes(self, prefixes: Iterable[bytes]) -> int:
        dels = []
        for p in prefixes:
            dels.extend((k, None) for k, _ in self._scan(p))
        if dels:
            self._st.put_batch(CHECKPOINT_TREE, dels)
        return len(dels)

    def delete_thread(self, thread_id: str) -> None:
        """Delete every checkpoint, value and write of the thread (committed; the
        history keeps them)."""
        t = str(thread_id)
        with self._lock:
            self._delete_prefixes([_key(b"c/", t), _key(b"b/", t), _key(b"w/", t)])
            self._commit(f"delete thread {t}")

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints (and their writes) whose metadata ``run_id`` is one of
        ``run_ids``."""
        runs = set(run_ids)
        with self._lock:
            prefixes = []
            for k, v in self._scan(b"c/"):
                if self._loads(_unpack(v)["m"]).get("run_id") in runs:
                    thread, ns, cid = _split(k, b"c/")
                    prefixes += [k, _key(b"w/", thread, ns, cid)]
            self._delete_prefixes(prefixes)
            self._commit(f"delete runs {sorted(runs)}")

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy every checkpoint, value and write of one thread to another (metadata
        ``thread_id`` follows)."""
        src, dst = str(source_thread_id), str(target_thread_id)
        with self._lock:
            pairs = []
            for tag in (b"c/", b"b/", b"w/"):
                for k, v in self._scan(_key(tag, src)):
                    parts = _split(k, tag)
                    if tag == b"c/":
                        rec = _unpack(v)
                        meta = self._loads(rec["m"])
                        if "thread_id" in meta:
                            meta = {**meta, "thread_id": dst}
                            rec["m"] = list(self.serde.dumps_typed(meta))
                        v = _pack(rec)
                    pairs.append((_key(tag, dst, *parts[1:]), v))
            if pairs:
                self._st.put_batch(CHECKPOINT_TREE, pairs)
            self._commit(f"copy thread {src} to {dst}")

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """``keep_latest``: keep only the newest checkpoint of each namespace (with its
        writes and values); ``delete``: delete the threads."""
        if strategy not in ("keep_latest", "delete"):
            raise ValueError(f"unknown prune strategy {strategy!r}")
        with self._lock:
            for t in map(str, thread_ids):
                if strategy == "delete":
                    self._delete_prefixes([_key(b"c/", t), _key(b"b/", t), _key(b"w/", t)])
                    continue
                latest: dict[str, tuple[str, bytes]] = {}
                for k, v in self._scan(_key(b"c/", t)):
                    _, ns, cid = _split(k, b"c/")
                    if ns not in latest or cid > latest[ns][0]:
                        latest[ns] = (cid, v)
                drop = []
                for k, _ in self._scan(_key(b"c/", t)):
                    _, ns, cid = _split(k, b"c/")
                    if cid != latest[ns][0]:
                        drop += [k, _key(b"w/", t, ns, cid)]
                keep_blobs = set()
                for ns, (cid, v) in latest.items():
                    for ch, ver in self._loads(_unpack(v)["c"]).get("channel_versions",
                                                                      {}).items():
                        keep_blobs.add(_key(b"b/", t, ns, ch, str(ver)))
                dels = [(k, None) for k, _ in self._scan(_key(b"b/", t)) if k not in keep_blobs]
                if dels:
                    self._st.put_batch(CHECKPOINT_TREE, dels)
                self._delete_prefixes(drop)
            self._commit(f"prune {list(thread_ids)} ({strategy})")

    def get_next_version(self, current: str | int | None, channel: Any = None) -> str:
        """Monotonic string versions: a zero-padded counter and a random suffix."""
        if current is None:
            n = 0
        elif isinstance(current, int):
            n = current
        else:
            n = int(str(current).split(".")[0])
        return f"{n + 1:032}.{random.random():.16f}"

    # -- async versions ---------------------------------------------------------------------

    async def aget_tuple(self, config: dict) -> CheckpointTuple | None:
        return await _run(self.get_tuple, config)

    async def alist(self, config: dict | None, *, filter: dict[str, Any] | None = None,
                    before: dict | None = None, limit: int | None = None
                    ) -> AsyncIterator[CheckpointTuple]:
        items = await _run(lambda: list(self.list(config, filter=filter, before=before,
                                                  limit=limit)))
        for item in items:
            yield item

    async def aput(self, config: dict, checkpoint: Checkpoint, metadata: CheckpointMetadata,
                   new_versions: ChannelVersions) -> dict:
        return await _run(self.put, config, checkpoint, metadata, new_versions)

    async def aput_writes(self, config: dict, writes: Sequence[tuple[str, Any]], task_id: str,
                          task_path: str = "") -> None:
        return await _run(self.put_writes, config, writes, task_id, task_path)

    async def adelete_thread(self, thread_id: str) -> None:
        return await _run(self.delete_thread, thread_id)

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        return await _run(self.delete_for_runs, run_ids)

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        return await _run(self.copy_thread, source_thread_id, target_thread_id)

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        return await _run(self.prune, thread_ids, strategy=strategy)


# -- the long-term store ------------------------------------------------------------------------

def _ns_prefix(namespace: Sequence[str]) -> bytes:
    return _key(b"s/", *namespace)


def _item_key(namespace: Sequence[str], key: str) -> bytes:
    return _ns_prefix(namespace) + b"\x00" + _esc(key)


def _parse_item_key(raw: bytes) -> tuple[tuple[str, ...], str]:
    body, _, key = raw[2:].partition(b"\x00\x00")
    if not body and raw[2:3] == b"\x00":  # the empty namespace
        return (), _unesc(raw[3:])
    parts = tuple(_unesc(p) for p in body.split(b"\x00"))
    return parts, _unesc(key)


def _compare(value: Any, cond: Any) -> bool:
    if isinstance(cond, dict):
        if any(k.startswith("$") for k in cond):
            return all(_operator(value, op, arg) for op, arg in cond.items())
        return isinstance(value, dict) and all(_compare(value.get(k), v)
                                               for k, v in cond.items())
    if isinstance(cond, (list, tuple)):
        return (isinstance(value, (list, tuple)) and len(value) == len(cond)
                and all(_compare(a, b) for a, b in zip(value, cond)))
    return value == cond


def _operator(value: Any, op: str, arg: Any) -> bool:
    if op == "$eq":
        return value == arg
    if op == "$ne":
        return value != arg
    try:
        if op == "$gt":
            return value is not None and float(value) > float(arg)
        if op == "$gte":
            return value is not None and float(value) >= float(arg)
        if op == "$lt":
            return value is not None and float(value) < float(arg)
        if op == "$lte":
            return value is not None and float(value) <= float(arg)
    except (TypeError, ValueError):
        return False
    raise ValueError(f"unsupported filter operator {op!r}")


def _matches_ns(cond: Any, ns: tuple[str, ...]) -> bool:
    path = tuple(cond.path)
    if len(ns) < len(path):
        return False
    pairs = zip(ns, path) if cond.match_type == "prefix" else zip(reversed(ns), reversed(path))
    if cond.match_type not in ("prefix", "suffix"):
        raise ValueError(f"unsupported match type {cond.match_type!r}")
    return all(p == "*" or a == p for a, p in pairs)


class ProllyStore(BaseStore):
    """LangGraph long-term memory in the prollytree dataset at ``path`` (tree
    ``langgraph/store``). ``index``: LangGraph's ``IndexConfig`` (``dims``, ``embed``,
    ``fields``); ``embed`` may also be a :mod:`prollytree.search` embedder. Each batch
    with writes is one commit (message ``store batch``)."""

    __slots__ = ("_st", "_lock", "_index", "_fields", "_vec", "_embedder")

    def __init__(self, path: str | os.PathLike, storage_backend: Any = None, *,
                 index: dict | None = None) -> None:
        self._st = NamedTreeStorage(path, storage_backend, (STORE_TREE,))
        self._lock = threading.RLock()
        self._index = index
        self._vec = None
        self._fields = ["$"]
        if index is not None:
            try:
                self._embedder = self._make_embedder(index)
                self._fields = list(index.get("fields") or ["$"])
                cache = self._st.cache_dir("langgraph-cache")
                e = self._embedder
                safe = "".join(ch if ch.isalnum() or ch in "-_." else "_"
                               for ch in f"{e.id}-{e.version}-{e.dim}")
                self._vec = VectorIndex(
                    None if cache is None else os.path.join(cache, f"store-{safe}.db"),
                    embedder=e, document=self._document)
            except BaseException:
                self._st.close()
                raise

    @staticmethod
    def _make_embedder(index: dict) -> Any:
        embed = index.get("embed")
        if embed is None:
            raise ValueError("index config needs 'embed'")
        if all(hasattr(embed, a) for a in ("id", "version", "dim", "embed")):
            return embed  # a prollytree.search embedder
        dims = index.get("dims")
        if isinstance(dims, bool) or not isinstance(dims, int) or dims <= 0:
            raise ValueError("index config needs 'dims' (a positive int)")
        emb = ensure_embeddings(embed)
        name = getattr(embed, "__qualname__", type(embed).__qualname__)
        ident = index.get("embedder_id") or f"langgraph:{getattr(embed, '__module__', '')}.{name}"
        return CallableEmbedder(ident, str(index.get("embedder_version", "1")), dims,
                                lambda texts: emb.embed_documents(list(texts)))

    def _document(self, raw: bytes, value: bytes) -> str | None:
        if not self._st.key_in_tree(raw).startswith(b"s/"):
            return None
        rec = json.loads(value)
        fields = rec.get("index")
        if fields is False:
            return None
        texts: list[str] = []
        for path in (fields or self._fields):
            texts.extend(get_text_at_path(rec["value"], path))
        return "\n".join(t for t in texts if t) or None

    @property
    def storage(self) -> NamedTreeStorage:
        return self._st

    def close(self) -> None:
        with self._lock:
            if self._vec is not None:
                self._vec.close()
            self._st.close()

    # -- ops ---------------------------------------------------------------------------------

    def _get(self, ns: tuple[str, ...], key: str) -> Item | None:
        raw = self._st.get(STORE_TREE, _item_key(ns, key))
        if raw is None:
            return None
        rec = json.loads(raw)
        return Item(value=rec["value"], key=key, namespace=ns,
                    created_at=rec["created_at"], updated_at=rec["updated_at"])

    def _put(self, op: PutOp) -> None:
        ns, key = tuple(op.namespace), op.key
        k = _item_key(ns, key)
        if op.value is None:
            self._st.put_batch(STORE_TREE, [(k, None)])
            return
        if not isinstance(op.value, dict):
            raise TypeError(f"store values must be dicts, not {type(op.value).__name__}")
        now = _dt.datetime.now(_dt.timezone.utc).isoformat()
        old = self._st.get(STORE_TREE, k)
        created = json.loads(old)["created_at"] if old is not None else now
        index = op.index
        if index is not None and index is not False:
            index = list(index)
        rec = {"value": op.value, "created_at": created, "updated_at": now, "index": index}
        self._st.put_batch(STORE_TREE, [(k, json.dumps(rec, sort_keys=True).encode())])

    def _search(self, op: SearchOp) -> list[SearchItem]:
        prefix = tuple(op.namespace_prefix)

        def ok(ns: tuple[str, ...], value: dict) -> bool:
            if ns[:len(prefix)] != prefix:
                return False
            return not op.filter or all(_compare(value.get(k), v) for k, v in op.filter.items())

        out: list[SearchItem] = []
        if op.query and self._vec is not None:
            self._flush("store batch")
            for name, tree in self._st.index_sources():
                self._vec.sync(tree, name=name)

            def where(name: str, raw: bytes) -> bool:
                loc = self._st.from_index_key(name, raw)
                if loc is None:
                    return False
                ns, _ = _parse_item_key(loc[1])
                if ns[:len(prefix)] != prefix:
                    return False
                if not op.filter:
                    return True
                value = self._st.get(*loc)
                return value is not None and ok(ns, json.loads(value)["value"])

            hits = self._vec.search(op.query, op.offset + op.limit, where=where)
            for name, raw, score in hits[op.offset:]:
                tree, k = self._st.from_index_key(name, raw)
                ns, key = _parse_item_key(k)
                rec = json.loads(self._st.get(tree, k))
                out.append(SearchItem(ns, key, rec["value"], rec["created_at"],
                                      rec["updated_at"], score))
            return out
        skipped = 0
        for k, v in self._st.scan(STORE_TREE, _ns_prefix(prefix)):
            ns, key = _parse_item_key(k)
            rec = json.loads(v)
            if not ok(ns, rec["value"]):
                continue
            if skipped < op.offset:
                skipped += 1
                continue
            out.append(SearchItem(ns, key, rec["value"], rec["created_at"],
                                  rec["updated_at"], None))
            if len(out) >= op.limit:
                break
        return out

    def _list_namespaces(self, op: ListNamespacesOp) -> list[tuple[str, ...]]:
        seen: set[tuple[str, ...]] = set()
        for k, _ in self._st.scan(STORE_TREE, b"s/"):
            ns, _ = _parse_item_key(k)
            if op.match_conditions and not all(_matches_ns(c, ns)
                                               for c in op.match_conditions):
                continue
            if op.max_depth is not None:
                ns = ns[:op.max_depth]
            seen.add(ns)
        names = sorted(seen)
        return names[op.offset:op.offset + op.limit]

    def _flush(self, message: str) -> None:
        if self._st.has_staged():
            self._st.commit(message)

    def batch(self, ops: Iterable[Any]) -> list[Any]:
        """Run the operations in order; writes are committed once, at the end (or
        before a semantic search that follows them)."""
        results: list[Any] = []
        with self._lock:
            for op in ops:
                if isinstance(op, GetOp):
                    results.append(self._get(tuple(op.namespace), op.key))
                elif isinstance(op, PutOp):
                    self._put(op)
                    results.append(None)
                elif isinstance(op, SearchOp):
                    results.append(self._search(op))
                elif isinstance(op, ListNamespacesOp):
                    results.append(self._list_namespaces(op))
                else:
                    raise TypeError(f"unknown store operation {type(op).__name__}")
            self._flush("store batch")
        return results

    async def abatch(self, ops: Iterable[Any]) -> list[Any]:
        ops = list(ops)
        return await _run(self.batch, ops)
